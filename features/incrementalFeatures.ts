import type { DuckStore } from "../storage/duckdb.ts";
import {
  dropFeatureSnapshot,
  FEATURE_ROWS,
  FEATURE_SNAPSHOTS,
  featureSnapshot,
  keepOnlyFeatureSnapshot,
  visibleAtSql,
} from "../storage/featureRows.ts";
import { buildFeatures, FeatureBuildError, featureSql, WINDOW_DAYS } from "./windows.ts";

/**
 * Incremental feature snapshots: the snapshot as of T1 from the previous one as of T0 plus the
 * (student, topic) pairs whose window columns can differ, recomputed from raw_events. The result is
 * row for row the snapshot a full build as of T1 writes (test/features/incrementalFeatures.int.test.ts),
 * up to the last bits of DOUBLE means on large stores, where two full builds differ too (DuckDB's
 * parallel sums are not order-stable; bench/incremental.bench.ts checks 1e-12 relative).
 *
 * A pair's window columns (features/windows.ts) depend on T only through, for each of its events
 * before T, the windows it falls in and its day bucket k = ceil((T - ts) / 1 day) - 1 (active days,
 * trend). So a pair keeps its stored row (storage/featureRows.ts: the T1 snapshot reads it, with as_of T1
 * and days_since_last_activity computed from last_activity_at with the full build's expression; nothing is
 * written for it) when all of these hold, and is recomputed otherwise ("dirty"; its new row is stored as of
 * T1 and its previous one closed at T1):
 *  1. no new or late event: none ingested after the previous run's watermark (max ingested_at when
 *     it ran) and none with ts in [T0, T1);
 *  2. no event crosses a window edge: none with ts in [T0 - w, T1 - w) for w = 7, 30, 90 days, i.e.
 *     whose age passes w days between the runs (it leaves the window with no new event);
 *  3. its day buckets all move by the same number of days: k1 - k0 is equal for every event in the
 *     90-day window. When T1 - T0 is a whole number of days this always holds; otherwise events at
 *     different times of day can move by floor or ceil of the gap, which can merge or split active
 *     days and move the trend's x values unequally. With a uniform move the distinct-day counts are
 *     the same and the trend slope (exact integer sums, x shifted by a constant) is bit for bit equal.
 * Not covered (use a full build): rows deleted from raw_events, a changed feature definition, T1 < T0.
 */

export interface FeatureWatermark {
  /** as_of of the previous snapshot. */
  asOf: Date;
  /**
   * max(raw_events.ingested_at) when that snapshot was built, in microseconds since the epoch as a
   * decimal string (exact, JSON-safe; a Date would drop the microseconds); null = the store was empty.
   */
  ingestedThroughUs: string | null;
}

export interface IncrementalFeaturesResult {
  mode: "incremental" | "full";
  /** Why a full build ran instead (no previous snapshot, time went back, ...). */
  fullReason?: string;
  asOf: Date;
  rows: number;
  /** Pairs recomputed from raw_events (all of them in a full build). */
  recomputed: number;
  /** Pairs whose stored row the new snapshot reads unchanged (nothing written for them). */
  copied: number;
  /** The watermark to record for the next run. */
  watermark: FeatureWatermark;
  millis: number;
}

const DAY_US = 86_400_000_000n;
const us = (d: Date): bigint => BigInt(d.getTime()) * 1000n;

/**
 * The daily as-of on the previous run's day grid: the first as-of T0 + n whole days that is at or
 * after `newest` (the "now" as-of, newest event + 1 s), so every event is inside the windows and the
 * day buckets of untouched pairs all move by n (condition 3 then holds for every pair). Returns
 * `newest` itself without a previous run or when it is before T0.
 */
export function alignedAsOf(since: FeatureWatermark | null, newest: Date): Date {
  if (since === null || newest.getTime() < since.asOf.getTime()) return newest;
  const dayMs = 86_400_000;
  const n = Math.ceil((newest.getTime() - since.asOf.getTime()) / dayMs);
  return new Date(since.asOf.getTime() + n * dayMs);
}

/** max(ingested_at) of raw_events now in microseconds (null when empty): the watermark of a build about to run. */
export async function ingestWatermark(store: DuckStore): Promise<string | null> {
  const r = await store.one<{ u: bigint | null }>("SELECT epoch_us(max(ingested_at)) AS u FROM raw_events");
  return r?.u === null || r?.u === undefined ? null : String(r.u);
}

/**
 * The dirty pairs of the move T0 -> T1 (module comment, conditions 1-3) into temp.incr_dirty.
 * Exported for the bench and the tests; `buildFeaturesIncremental` calls it.
 */
export async function markDirtyPairs(store: DuckStore, since: FeatureWatermark, asOf: Date): Promise<number> {
  const t0 = us(since.asOf);
  const t1 = us(asOf);
  if (since.ingestedThroughUs !== null && !/^-?\d+$/.test(since.ingestedThroughUs))
    throw new FeatureBuildError(
      `the recorded watermark must be microseconds as an integer string (got "${since.ingestedThroughUs}"); run a full build`,
    );
  const wm = since.ingestedThroughUs === null ? -(2n ** 62n) : BigInt(since.ingestedThroughUs);
  // The windows are those of windows.ts: an event leaving any of them changes the pair's row.
  const crossing = WINDOW_DAYS.map(BigInt)
    .map((w) => `(epoch_us(ts) >= ${t0 - w * DAY_US} AND epoch_us(ts) < ${t1 - w * DAY_US})`)
    .join(" OR ");
  const longest = BigInt(Math.max(...WINDOW_DAYS));
  const carry = `CASE WHEN epoch_us(ts) >= ${t1 - longest * DAY_US}
    THEN (${t1} - epoch_us(ts) - 1) // ${DAY_US} - (${t0} - epoch_us(ts) - 1) // ${DAY_US} END`;
  const uniform = (t1 - t0) % DAY_US === 0n;
  const touched = `epoch_us(ingested_at) > ${wm} OR epoch_us(ts) >= ${t0} OR ${crossing}`;
  // Whole-day move: a filter (DuckDB skips row groups by the ts/ingested_at min-max) and DISTINCT;
  // otherwise every pair's 90-day events are grouped to compare their bucket moves.
  await store.run(
    uniform
      ? `CREATE OR REPLACE TEMP TABLE incr_dirty AS
         SELECT DISTINCT student_key, topic_id FROM raw_events
         WHERE ts < make_timestamp(${t1}) AND (${touched})`
      : `CREATE OR REPLACE TEMP TABLE incr_dirty AS
         SELECT student_key, topic_id FROM raw_events
         WHERE ts < make_timestamp(${t1})
         GROUP BY student_key, topic_id
         HAVING bool_or(${touched}) OR min(${carry}) <> max(${carry})`,
  );
  const n = await store.one<{ n: bigint }>("SELECT count(*) AS n FROM temp.incr_dirty");
  return Number(n?.n ?? 0n);
}

/**
 * The features snapshot as of `asOf` into `features`, incrementally from the snapshot as of
 * `since.asOf` (module comment). Falls back to a full build (mode "full", with the reason) when
 * there is no previous snapshot to start from. `truncate` deletes every other snapshot afterwards,
 * as buildFeatures({truncate}) does.
 */
export async function buildFeaturesIncremental(
  store: DuckStore,
  asOf: Date,
  since: FeatureWatermark | null,
  opts: {
    truncate?: boolean;
    onProgress?: (done: number, total: number) => void;
    /**
     * Leave the recomputed pairs in temp.incr_dirty (student_key, topic_id) after an incremental build, for
     * the rule scores to rescore only those (serving/ruleScoring.ts onlyPairs); the caller drops it.
     */
    keepDirty?: boolean;
    /** Called at the end of each step with its name (the bench prints CPU per step), as scoreRules' onPhase. */
    onPhase?: (phase: string) => void;
  } = {},
): Promise<IncrementalFeaturesResult> {
  const started = performance.now();
  const watermark: FeatureWatermark = { asOf, ingestedThroughUs: await ingestWatermark(store) };
  if (!Number.isFinite(asOf.getTime()))
    throw new FeatureBuildError(`as-of time is not a valid date (got ${String(asOf)})`);
  const full = async (reason: string): Promise<IncrementalFeaturesResult> => {
    const r = await buildFeatures(store, asOf, {
      ...(opts.truncate !== undefined ? { truncate: opts.truncate } : {}),
      ...(opts.onProgress !== undefined ? { onProgress: opts.onProgress } : {}),
    });
    return {
      mode: "full",
      fullReason: reason,
      asOf,
      rows: r.rows,
      recomputed: r.rows,
      copied: 0,
      watermark,
      millis: performance.now() - started,
    };
  };
  if (since === null) return full("no previous successful run recorded");
  if (asOf.getTime() < since.asOf.getTime())
    return full(`as-of ${asOf.toISOString()} is before the previous run's ${since.asOf.toISOString()}`);
  const t0 = us(since.asOf);
  const t1 = us(asOf);
  const prev = await featureSnapshot(store, t0);
  if (prev === null)
    return full(`the features table has no snapshot as of ${since.asOf.toISOString()} to start from`);
  if (prev.hasLater)
    return full(
      `the snapshot as of ${since.asOf.toISOString()} is not the newest of its chain (a later one was built from it)`,
    );
  const chain = prev.chainId;

  let recomputed = 0;
  let copied = 0;
  let rows = 0;
  await store.transaction(async () => {
    recomputed = await markDirtyPairs(store, since, asOf);
    opts.onPhase?.("dirty pairs");
    opts.onProgress?.(1, 3);
    // A snapshot already as of T1 (another chain: T1 > T0 and T0 is its chain's newest) is replaced.
    if (t1 !== t0) await dropFeatureSnapshot(store, t1);
    // The dirty pairs' open rows: stored as of T1 (same as-of) go, older ones are closed at T1.
    const dirty = `EXISTS (SELECT 1 FROM temp.incr_dirty d
      WHERE d.student_key = r.student_key AND d.topic_id = r.topic_id)`;
    const open = "r.chain_id = $c AND r.valid_until IS NULL";
    if (t1 === t0)
      await store.run(
        `DELETE FROM ${FEATURE_ROWS} r WHERE ${open} AND r.as_of = make_timestamp($t1::BIGINT) AND ${dirty}`,
        { c: chain, t1 },
      );
    await store.run(
      `UPDATE ${FEATURE_ROWS} r SET valid_until = make_timestamp($t1::BIGINT)
       WHERE ${open} AND r.as_of < make_timestamp($t1::BIGINT) AND ${dirty}`,
      { c: chain, t1 },
    );
    opts.onPhase?.("close dirty rows");
    opts.onProgress?.(2, 3);
    await store.run(
      featureSql(
        FEATURE_ROWS,
        "(SELECT r.* FROM raw_events r SEMI JOIN temp.incr_dirty d ON r.student_key = d.student_key AND r.topic_id = d.topic_id)",
        true,
      ),
      { asof: t1, chain },
    );
    if (t1 !== t0)
      await store.run(`INSERT INTO ${FEATURE_SNAPSHOTS} VALUES (make_timestamp($t1::BIGINT), $c)`, {
        t1,
        c: chain,
      });
    opts.onPhase?.("recompute dirty pairs");
    rows = await countAt(store, t1);
    copied = rows - recomputed;
    if (opts.truncate) await keepOnlyFeatureSnapshot(store, t1);
    if (!opts.keepDirty) await store.run("DROP TABLE temp.incr_dirty");
    opts.onProgress?.(3, 3);
  });
  opts.onPhase?.("commit");
  return {
    mode: "incremental",
    asOf,
    rows,
    recomputed,
    copied,
    watermark,
    millis: performance.now() - started,
  };
}

async function countAt(store: DuckStore, t: bigint): Promise<number> {
  const r = await store.one<{ n: bigint }>(
    `SELECT count(*) AS n FROM ${FEATURE_ROWS} r WHERE ${visibleAtSql("make_timestamp($t::BIGINT)")}`,
    { t },
  );
  return Number(r?.n ?? 0n);
}
