import type { DuckStore } from "../storage/duckdb.ts";
import {
  dropAllFeatureSnapshots,
  dropFeatureSnapshot,
  FEATURE_ROWS,
  FEATURE_SNAPSHOTS,
  nextChainId,
} from "../storage/featureRows.ts";

/**
 * Windowed features per (student_key, topic_id), point-in-time correct.
 *
 * Definitions (T = as_of; every window is the half-open interval [T - w days, T), so an event
 * exactly w days before T IS in the w-day window and an event at T is in no window):
 *
 * | column (per window w = 7d, 30d, 90d) | definition over the window's rows of this (student, topic) |
 * |---|---|
 * | attempts_w              | number of quiz_attempt rows |
 * | correct_w               | quiz_attempt rows with is_correct |
 * | accuracy_w              | correct_w / attempts_w; NULL when attempts_w = 0 |
 * | avg_time_per_question_w | mean time_spent_sec of quiz attempts (non-NULL values); NULL when none |
 * | hint_usage_rate_w       | sum(hints_used) / attempts_w (hints per quiz attempt); NULL when attempts_w = 0 |
 * | practice_attempts_w     | sum(attempts) over practice rows |
 * | practice_success_rate_w | sum(correct_count) / sum(attempts) over practice rows; NULL when the sum is 0 |
 * | videos_w                | number of video rows with a watch_pct |
 * | video_watch_pct_w       | mean watch_pct of video rows (same unit as the event, 0-100); NULL when none |
 * | assignments_w           | number of assignment rows with a score_pct |
 * | assignment_score_pct_w  | mean score_pct of assignment rows (0-100); NULL when none |
 * | help_requests_w         | sum(help_requests) over chatbot rows |
 * | active_days_w           | distinct activity days, a day being a 24-hour bucket counted back from T (bucket k holds ts in [T-(k+1)d, T-k d)), so the 7-day window has exactly 7 buckets |
 * | revisit_rate_w          | (active_days_w - 1) / active_days_w: the share of active days that are returns to the topic after the first (0 = all activity on one day, toward 1 = spaced practice); NULL when active_days_w = 0 |
 *
 * Plus, once per row:
 * - trend_slope_30d: ordinary least-squares slope of quiz correctness (0/1 per attempt) on the
 *   day index x = 29 - k (k = day bucket above, so x grows with time, 0..29) over the 30-day
 *   window; unit "correctness per day". NULL with no attempts or all attempts on one day.
 * - days_since_last_activity: (T - latest ts of any event before T) in fractional days.
 * - last_activity_at: that latest ts.
 *
 * The `features` table of the embedded file is a view over stored rows (storage/featureRows.ts): a row is
 * stored once as of the time it was computed and read in every snapshot of its chain it stays valid for,
 * with days_since_last_activity computed from last_activity_at as of the snapshot.
 *
 * A row exists for every (student, topic) with at least one event before T (even if all of them
 * are older than 90 days: then the window columns are 0/NULL and only recency is informative).
 *
 * Counts of each type are of raw_events rows; raw_events holds one row per (event, topic), so an
 * assignment covering three topics counts once for each of them.
 */
export const WINDOW_DAYS = [7, 30, 90] as const;
export type WindowDays = (typeof WINDOW_DAYS)[number];

/** Window-suffixed feature names in the order of the features table (without the _7d/_30d/_90d suffix). */
export const WINDOW_FEATURES = [
  "attempts",
  "correct",
  "accuracy",
  "avg_time_per_question",
  "hint_usage_rate",
  "practice_attempts",
  "practice_success_rate",
  "videos",
  "video_watch_pct",
  "assignments",
  "assignment_score_pct",
  "help_requests",
  "active_days",
  "revisit_rate",
] as const;

export interface BuildFeaturesOptions {
  /** Target table (default "features", created by storage/schema.ts); any other name is created like it. */
  table?: string;
  /** Delete every other as_of snapshot from the table first (default false: only the rebuilt ones are replaced). */
  truncate?: boolean;
  /** Called after each as-of snapshot with (done, total). */
  onProgress?: (done: number, total: number) => void;
  /**
   * Student-key ranges each snapshot is built in, one statement each (default: featureParts of raw_events' rows
   * and DuckDB's memory_limit). The rows do not depend on it.
   */
  parts?: number;
}

export interface BuildFeaturesResult {
  asOf: Date[];
  rows: number;
  millis: number;
  /** Student-key ranges each snapshot was built in. */
  parts: number;
}

export class FeatureBuildError extends Error {
  readonly code = "FEATURE_BUILD";
  constructor(message: string) {
    super(message);
    this.name = "FeatureBuildError";
  }
}

const DAY_US = 86_400_000_000n;

/**
 * The INSERT ... SELECT that builds one as-of snapshot into `table` (the parameter $asof is the time)
 * from `source` (default raw_events; the incremental build passes the rows of its dirty pairs only).
 * `stored`: the rows go to features_rows (storage/featureRows.ts): no days_since_last_activity (read time
 * computes it) and the chain id from the parameter $chain. `part`: only the pairs whose student_key is in
 * range `part.index` of `part.of` (studentRangeSql); the statements of the `of` ranges insert the snapshot's
 * rows between them, each row once.
 */
export function featureSql(
  table: string,
  source = "raw_events",
  stored = false,
  part: { index: number; of: number } = { index: 0, of: 1 },
): string {
  const inPart = studentRangeSql(part.index, part.of);
  // A fixed-point sum (HUGEINT, exact) back to seconds or percent; dividing by a power of two is exact.
  const fixed = (sum: string): string => `((${sum})::DOUBLE / ${FIXED})`;
  // Window i (7, 30, 90 days) is the union of bands 0..i; a band missing for this pair adds 0.
  const acc = (col: string, i: number): string =>
    Array.from({ length: i + 1 }, (_, b) => `coalesce(b${b}.${col}, 0)`).join(" + ");
  const cols: string[] = [];
  for (const [i, w] of WINDOW_DAYS.entries()) {
    const q = acc("q_n", i);
    const p = acc("p_attempts", i);
    const v = acc("v_n", i);
    const a = acc("a_n", i);
    const days = Array.from({ length: i + 1 }, (_, b) => `coalesce(bit_count(b${b}.day_mask), 0)`).join(
      " + ",
    );
    cols.push(
      `CAST(${q} AS INTEGER) AS attempts_${w}d`,
      `CAST(${acc("q_correct", i)} AS INTEGER) AS correct_${w}d`,
      `(${acc("q_correct", i)}) / nullif(${q}, 0) AS accuracy_${w}d`,
      `${fixed(acc("q_time_sum", i))} / nullif(${acc("q_time_n", i)}, 0) AS avg_time_per_question_${w}d`,
      `(${acc("q_hints", i)}) / nullif(${q}, 0) AS hint_usage_rate_${w}d`,
      `CAST(${p} AS INTEGER) AS practice_attempts_${w}d`,
      `(${acc("p_correct", i)}) / nullif(${p}, 0) AS practice_success_rate_${w}d`,
      `CAST(${v} AS INTEGER) AS videos_${w}d`,
      `${fixed(acc("v_sum", i))} / nullif(${v}, 0) AS video_watch_pct_${w}d`,
      `CAST(${a} AS INTEGER) AS assignments_${w}d`,
      `${fixed(acc("a_sum", i))} / nullif(${a}, 0) AS assignment_score_pct_${w}d`,
      `CAST(${acc("c_help", i)} AS INTEGER) AS help_requests_${w}d`,
      `CAST(${days} AS INTEGER) AS active_days_${w}d`,
      `(${days} - 1) / nullif(${days}, 0) AS revisit_rate_${w}d`,
    );
  }
  // Least squares over the 30-day window's attempts (x_i, y_i):
  // slope = (n Sxy - Sx Sy) / (n Sxx - Sx^2). The sums are small integers held in DOUBLE (exact
  // below 2^53), so the slope is exact up to the final division.
  const n = acc("q_n", 1);
  const sx = `(${acc("q_sx", 1)})`;
  const slope = `((${n}) * (${acc("q_sxy", 1)}) - ${sx} * (${acc("q_correct", 1)})) / nullif((${n}) * (${acc("q_sxx", 1)}) - ${sx} * ${sx}, 0)`;

  // Stage 1 (bands) collapses events into one row per (student, topic, band), band 0..3 holding
  // day buckets k in [0,7), [7,30), [30,90), >= 90. Stage 2 rebuilds each nested window as a sum of
  // bands through three joins. Shapes chosen for speed (DuckDB's cost grows with the number of
  // aggregates times rows): one hash aggregation of ~18 aggregates over the raw rows, plus joins.
  // Distinct active days travel as a day bitmask per band (bit k - first k of the band; bands span
  // at most 60 days), the trend as the sufficient statistics of the regression. Counts and sums are
  // DOUBLE because sum(BIGINT) widens to HUGEINT, which is slower; the three fractional inputs (seconds,
  // watch and score percent) are summed as fixed-point integers instead (see FIXED). $asof = BIGINT microseconds.
  return `
INSERT INTO ${table} BY NAME
WITH ev AS (
  SELECT student_key, topic_id, ts, is_correct, time_spent_sec, hints_used, attempts, correct_count,
         watch_pct, help_requests, score_pct, type,
         -- k = ceil((T - ts) / 1 day) - 1 in integer microseconds: ts in [T-(k+1)d, T-k d)
         ($asof::BIGINT - epoch_us(ts) - 1) // ${DAY_US} AS k
  FROM ${source}
  WHERE ts < make_timestamp($asof::BIGINT)${inPart === "" ? "" : ` AND ${inPart}`}
),
banded AS (
  SELECT student_key, topic_id, ts, k,
    CASE WHEN k < 7 THEN 0 WHEN k < 30 THEN 1 WHEN k < 90 THEN 2 ELSE 3 END AS band,
    -- bit of day k inside its band's mask (band starts 0, 7, 30); 0 for band 3, which needs no mask
    CASE WHEN k < 7 THEN 1::UBIGINT << k::INTEGER WHEN k < 30 THEN 1::UBIGINT << (k - 7)::INTEGER
         WHEN k < 90 THEN 1::UBIGINT << (k - 30)::INTEGER ELSE 0::UBIGINT END AS day_bit,
    CASE WHEN type = 'quiz_attempt' THEN 1.0 END AS q,
    CASE WHEN type = 'quiz_attempt' THEN is_correct::DOUBLE END AS q_y,
    CASE WHEN type = 'quiz_attempt' AND k < 30 THEN (29 - k)::DOUBLE END AS q_x,
    CASE WHEN type = 'quiz_attempt' THEN round(time_spent_sec * ${FIXED})::BIGINT END AS q_time,
    CASE WHEN type = 'quiz_attempt' THEN hints_used::DOUBLE END AS q_hints,
    CASE WHEN type = 'practice' THEN attempts::DOUBLE END AS p_attempts,
    CASE WHEN type = 'practice' THEN correct_count::DOUBLE END AS p_correct,
    CASE WHEN type = 'video' THEN round(watch_pct * ${FIXED})::BIGINT END AS v_pct,
    CASE WHEN type = 'chatbot' THEN help_requests::DOUBLE END AS c_help,
    CASE WHEN type = 'assignment' THEN round(score_pct * ${FIXED})::BIGINT END AS a_pct
  FROM ev
),
bands AS (
  SELECT student_key, topic_id, band,
    max(ts) AS last_ts,
    bit_or(day_bit) AS day_mask,
    count(q) AS q_n,
    sum(q_y) AS q_correct,
    sum(q_x) AS q_sx,
    sum(q_x * q_x) AS q_sxx,
    sum(q_x * q_y) AS q_sxy,
    sum(q_time) AS q_time_sum,
    count(q_time) AS q_time_n,
    sum(q_hints) AS q_hints,
    sum(p_attempts) AS p_attempts,
    sum(p_correct) AS p_correct,
    sum(v_pct) AS v_sum,
    count(v_pct) AS v_n,
    sum(c_help) AS c_help,
    sum(a_pct) AS a_sum,
    count(a_pct) AS a_n
  FROM banded
  GROUP BY student_key, topic_id, band
),
pairs AS (
  SELECT student_key, topic_id, max(last_ts) AS last_ts FROM bands GROUP BY student_key, topic_id
)
SELECT pairs.student_key, pairs.topic_id, make_timestamp($asof::BIGINT) AS as_of,
  ${cols.join(",\n  ")},
  ${slope} AS trend_slope_30d,
  ${
    stored
      ? "$chain::BIGINT AS chain_id"
      : "($asof::BIGINT - epoch_us(pairs.last_ts)) / 86400e6 AS days_since_last_activity"
  },
  pairs.last_ts AS last_activity_at
FROM pairs
LEFT JOIN bands b0 ON b0.band = 0 AND b0.student_key = pairs.student_key AND b0.topic_id = pairs.topic_id
LEFT JOIN bands b1 ON b1.band = 1 AND b1.student_key = pairs.student_key AND b1.topic_id = pairs.topic_id
LEFT JOIN bands b2 ON b2.band = 2 AND b2.student_key = pairs.student_key AND b2.topic_id = pairs.topic_id`;
}

/**
 * Fractional inputs are summed as integers in units of 2^-20 (round(x * 2^20) as BIGINT; sum widens to an exact
 * HUGEINT). A DOUBLE sum depends on the order DuckDB's parallel aggregation adds rows in, so the same store gave
 * averages that differed in the last bit from run to run; integer sums are order-free. Inputs are bounded by the
 * contract (seconds <= 1e9, percent <= 100), so x * 2^20 fits a BIGINT; the rounding moves an input by <= 2^-21.
 */
const FIXED = 1048576;

const IDENT = /^[a-z_][a-z0-9_]*$/;

/**
 * Bytes of DuckDB memory_limit a full build wants per event row to run without spilling. The one statement's
 * hash aggregation (one group per (student, topic, band)), the bands it materializes, the joins and the insert
 * peaked at 2.27 GB of DuckDB's buffer for 10.6M event rows (214 bytes a row, 2 threads); past the limit the
 * aggregation spills and its cost per row grows with the spill (docs/benchmarks.md "100M's bend, round 3": 30M
 * rows at 1.6 GB spilled 1.9-2.1 GB and took 1.28x the CPU of the same build in 6 ranges). 256 leaves a margin.
 */
export const FEATURE_BYTES_PER_EVENT = 256;
/** Most student-key ranges a build is split into (two hex digits of the key; studentRangeSql). */
export const FEATURE_MAX_PARTS = 256;

/**
 * Student-key ranges a full build of `eventRows` event rows runs in under a DuckDB memory_limit of `limitBytes`:
 * enough that each range's share of FEATURE_BYTES_PER_EVENT fits the limit, 1 when the whole build does, at
 * most FEATURE_MAX_PARTS. 10.6M rows at 4 GB -> 1; 31.8M at 1.6 GB -> 6; 102M at 5 GB -> 6.
 */
export function featureParts(eventRows: number, limitBytes: number): number {
  if (!Number.isFinite(limitBytes) || limitBytes <= 0)
    throw new FeatureBuildError(
      `featureParts: the memory limit must be a positive number of bytes, got ${limitBytes}; pass DuckStore.memoryLimitBytes()`,
    );
  if (!Number.isInteger(eventRows) || eventRows < 0)
    throw new FeatureBuildError(
      `featureParts: the event row count must be a non-negative integer, got ${eventRows}`,
    );
  return Math.max(
    1,
    Math.min(FEATURE_MAX_PARTS, Math.ceil((eventRows * FEATURE_BYTES_PER_EVENT) / limitBytes)),
  );
}

/**
 * SQL condition on student_key selecting range `index` (0-based) of `of` ranges, "" when of = 1. The ranges
 * split the key space at two-hex-digit prefixes (range i starts at floor(256 i / of) in hex), the first range
 * has no lower bound and the last no upper bound, so every string is in exactly one range whatever it holds;
 * they hold about equal numbers of students because a student_key is hex of an HMAC (features/pseudonymize.ts).
 * A range is a plain comparison, which DuckDB evaluates in the scan (measured cheaper than a hash of the key).
 */
export function studentRangeSql(index: number, of: number): string {
  if (!Number.isInteger(of) || of < 1 || of > FEATURE_MAX_PARTS)
    throw new FeatureBuildError(
      `the number of student-key ranges must be an integer in 1..${FEATURE_MAX_PARTS} (got ${of})`,
    );
  if (!Number.isInteger(index) || index < 0 || index >= of)
    throw new FeatureBuildError(
      `a student-key range index must be an integer in 0..${of - 1} (got ${index})`,
    );
  const bound = (i: number): string =>
    Math.floor((256 * i) / of)
      .toString(16)
      .padStart(2, "0");
  const lower = index > 0 ? `student_key >= '${bound(index)}'` : "";
  const upper = index < of - 1 ? `student_key < '${bound(index + 1)}'` : "";
  return [lower, upper].filter((c) => c !== "").join(" AND ");
}

/** The ranges a full build from raw_events runs in: opts.parts, else rawEventParts. */
async function partsFor(store: DuckStore, opts: BuildFeaturesOptions): Promise<number> {
  if (opts.parts !== undefined) {
    studentRangeSql(0, opts.parts);
    return opts.parts;
  }
  return rawEventParts(store);
}

/**
 * featureParts of the store's raw_events rows and DuckDB memory_limit: how many student-key ranges a statement
 * that groups all of raw_events by (student, topic) should run in. Also the rule step's states statement
 * (serving/ruleScoring.ts), which has the same shape and spilled the same way (docs/benchmarks.md "100M's bend,
 * round 3").
 */
export async function rawEventParts(store: DuckStore): Promise<number> {
  const r = await store.one<{ n: bigint }>("SELECT count(*) AS n FROM raw_events");
  return featureParts(Number(r?.n ?? 0n), await store.memoryLimitBytes());
}

/** Microseconds since the Unix epoch (what $asof carries). */
function toMicros(d: Date): bigint {
  const ms = d.getTime();
  if (!Number.isFinite(ms)) throw new FeatureBuildError(`as-of time is not a valid date (got ${String(d)})`);
  return BigInt(ms) * 1000n;
}

/**
 * Builds the feature snapshot(s) as of each given time into `opts.table` (default `features`),
 * replacing any rows already there for the same as_of. One SQL statement per as-of time and student-key range
 * (opts.parts; one range unless raw_events outgrows DuckDB's memory_limit, see featureParts).
 */
export async function buildFeatures(
  store: DuckStore,
  asOf: Date | readonly Date[],
  opts: BuildFeaturesOptions = {},
): Promise<BuildFeaturesResult> {
  const started = performance.now();
  const times = [...(Array.isArray(asOf) ? asOf : [asOf as Date])];
  if (times.length === 0) throw new FeatureBuildError("buildFeatures: give at least one as-of time");
  const table = opts.table ?? "features";
  if (!IDENT.test(table)) throw new FeatureBuildError(`table name must match ${IDENT} (got "${table}")`);
  if (table !== "features") {
    await store.run(`CREATE TABLE IF NOT EXISTS ${table} AS SELECT * FROM features WHERE false`);
  }
  const parts = await partsFor(store, opts);
  if (table === "features") return buildStoredSnapshots(store, times, opts, parts, started);
  const sqls = Array.from({ length: parts }, (_, index) =>
    featureSql(table, "raw_events", false, { index, of: parts }),
  );
  let rows = 0;
  await store.transaction(async () => {
    if (opts.truncate) await store.run(`DELETE FROM ${table}`);
    for (let i = 0; i < times.length; i++) {
      const us = toMicros(times[i] as Date);
      await store.run(`DELETE FROM ${table} WHERE as_of = make_timestamp($asof::BIGINT)`, { asof: us });
      const before = await countRows(store, table);
      for (const sql of sqls) await store.run(sql, { asof: us });
      rows += (await countRows(store, table)) - before;
      opts.onProgress?.(i + 1, times.length);
    }
  });
  return { asOf: times, rows, millis: performance.now() - started, parts };
}

/** buildFeatures into the features view's tables: each snapshot a new chain of stored rows. */
async function buildStoredSnapshots(
  store: DuckStore,
  times: readonly Date[],
  opts: BuildFeaturesOptions,
  parts: number,
  started: number,
): Promise<BuildFeaturesResult> {
  const sqls = Array.from({ length: parts }, (_, index) =>
    featureSql(FEATURE_ROWS, "raw_events", true, { index, of: parts }),
  );
  let rows = 0;
  await store.transaction(async () => {
    if (opts.truncate) await dropAllFeatureSnapshots(store);
    for (let i = 0; i < times.length; i++) {
      const us = toMicros(times[i] as Date);
      await dropFeatureSnapshot(store, us);
      const chain = await nextChainId(store);
      for (const sql of sqls) await store.run(sql, { asof: us, chain });
      await store.run(`INSERT INTO ${FEATURE_SNAPSHOTS} VALUES (make_timestamp($asof::BIGINT), $chain)`, {
        asof: us,
        chain,
      });
      const n = await store.one<{ n: bigint }>(
        `SELECT count(*) AS n FROM ${FEATURE_ROWS} WHERE chain_id = $chain`,
        {
          chain,
        },
      );
      rows += Number(n?.n ?? 0n);
      opts.onProgress?.(i + 1, times.length);
    }
  });
  return { asOf: [...times], rows, millis: performance.now() - started, parts };
}

async function countRows(store: DuckStore, table: string): Promise<number> {
  const r = await store.one<{ n: bigint }>(`SELECT count(*) AS n FROM ${table}`);
  return Number(r?.n ?? 0n);
}

/**
 * Resolves the CLI's as-of argument: an ISO 8601 timestamp, or "now" = the latest event time
 * plus one second (so the newest event is inside every window), for reproducible builds.
 */
export async function resolveAsOf(store: DuckStore, spec: string): Promise<Date> {
  if (spec === "now") {
    const r = await store.one<{ t: Date | null }>("SELECT max(ts) AS t FROM raw_events");
    if (!r?.t)
      throw new FeatureBuildError(
        'as-of "now" means the latest event time + 1 s, but raw_events is empty: ingest events first or pass --as-of <ISO time>',
      );
    return new Date(r.t.getTime() + 1000);
  }
  // Require an explicit offset or Z so a local-time reading never shifts the window silently.
  if (!/^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2}))?$/.test(spec)) {
    throw new FeatureBuildError(
      `--as-of must be "now", a date (2024-03-01, read as UTC midnight) or an ISO time with offset (2024-03-01T12:00:00Z); got "${spec}"`,
    );
  }
  const d = new Date(spec.length === 10 ? `${spec}T00:00:00Z` : spec);
  if (Number.isNaN(d.getTime())) throw new FeatureBuildError(`--as-of: "${spec}" is not a valid date`);
  return d;
}
