/**
 * Lead 3 of issue 17 item 3, priced before it is built: per-(pair, day) aggregates on the daily as-of grid,
 * with the 7/30/90-day window sums taken at read time, so a day recomputes only the pairs with new or late
 * events instead of every pair an event's 7/30/90-day birthday dirties (features/incrementalFeatures.ts).
 * On a store built by bench/dailyDay.bench.ts (its BENCH_DIR, day.json and base.duckdb; a copy is used):
 *   1. pairs the incremental day recomputes today (markDirtyPairs) vs pairs with new or late events only;
 *   2. the day table: rows per pair, and its build from raw_events (as a full build would);
 *   3. exactness: window columns summed from the day rows as of the grid's own as-of against the stored
 *      snapshot there (counts exact; DOUBLE means compared bit for bit and within 1e-12 relative);
 *   4. the read-time price: every pair's window columns from the day rows as of the next day vs reading
 *      the stored snapshot, and one student's pairs (what a point read of features would cost).
 * Figures are process CPU seconds (user + sys, DuckDB threads included); REPEAT times each read.
 *
 *   BENCH_DIR=/tmp/day5/store-10000 npx tsx bench/featureDays.bench.ts
 */
import { copyFileSync, readFileSync, rmSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import { alignedAsOf, markDirtyPairs } from "../features/incrementalFeatures.ts";
import { resolveAsOf } from "../features/windows.ts";
import { DuckStore } from "../storage/duckdb.ts";

const root = process.env.BENCH_DIR ?? "/tmp/day-bench-10000";
const repeat = Number(process.env.REPEAT ?? 3);
const meta = JSON.parse(readFileSync(join(root, "day.json"), "utf8")) as {
  since: { asOf: string; ingestedThroughUs: string | null };
};
const since = { asOf: new Date(meta.since.asOf), ingestedThroughUs: meta.since.ingestedThroughUs };
const scratch = join(root, "feature-days.duckdb");
rmSync(scratch, { force: true });
rmSync(`${scratch}.wal`, { force: true });
copyFileSync(join(root, "base.duckdb"), scratch);
const store = await DuckStore.open(scratch);
const load0 = loadavg();
const asOf = alignedAsOf(since, await resolveAsOf(store, "now"));
const DAY = 86_400_000_000n;
const grid = BigInt(since.asOf.getTime()) * 1000n; // T0: the stored snapshot's as-of, the grid's origin
const t1 = BigInt(asOf.getTime()) * 1000n;
const moved = (t1 - grid) / DAY;
if ((t1 - grid) % DAY !== 0n) throw new Error("the day's as-of is not on the grid");

const cpuNow = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};
const out: Record<string, unknown> = {};
async function timed<T>(name: string, fn: () => Promise<T>): Promise<T> {
  const c = cpuNow();
  const r = await fn();
  const cpu = Number((cpuNow() - c).toFixed(3));
  process.stderr.write(`${name}: cpu ${cpu} s\n`);
  const prev = out[name];
  out[name] = Array.isArray(prev) ? [...prev, cpu] : prev === undefined ? cpu : [prev, cpu];
  return r;
}
const n = (r: { n: bigint } | undefined) => Number(r?.n ?? 0n);

// 1. Pairs recomputed today vs pairs with new or late events.
const dirty = await timed("dirty pairs (markDirtyPairs)", () => markDirtyPairs(store, since, asOf));
const wm = since.ingestedThroughUs === null ? -(2n ** 62n) : BigInt(since.ingestedThroughUs);
const touched = n(
  await timed("pairs with new or late events", () =>
    store.one<{ n: bigint }>(
      `SELECT count(*) AS n FROM (SELECT DISTINCT student_key, topic_id FROM raw_events
       WHERE ts < make_timestamp(${t1}) AND (epoch_us(ingested_at) > ${wm} OR epoch_us(ts) >= ${grid}))`,
    ),
  ),
);

// 2. The day table: day d = the grid's day bucket as of T0 (bucket k as of T0 + m days is d + m).
await timed("build the day table from raw_events (ts < T0)", () =>
  store.run(`CREATE TEMP TABLE feature_days AS
  SELECT student_key, topic_id, (${grid} - epoch_us(ts) - 1) // ${DAY} AS d, max(ts) AS last_ts,
    count(*) FILTER (WHERE type = 'quiz_attempt')::DOUBLE AS q_n,
    sum(is_correct::DOUBLE) FILTER (WHERE type = 'quiz_attempt') AS q_correct,
    sum(time_spent_sec) FILTER (WHERE type = 'quiz_attempt') AS q_time_sum,
    count(time_spent_sec) FILTER (WHERE type = 'quiz_attempt')::DOUBLE AS q_time_n,
    sum(hints_used::DOUBLE) FILTER (WHERE type = 'quiz_attempt') AS q_hints,
    sum(attempts::DOUBLE) FILTER (WHERE type = 'practice') AS p_attempts,
    sum(correct_count::DOUBLE) FILTER (WHERE type = 'practice') AS p_correct,
    sum(watch_pct) FILTER (WHERE type = 'video') AS v_sum,
    count(watch_pct) FILTER (WHERE type = 'video')::DOUBLE AS v_n,
    sum(help_requests::DOUBLE) FILTER (WHERE type = 'chatbot') AS c_help,
    sum(score_pct) FILTER (WHERE type = 'assignment') AS a_sum,
    count(score_pct) FILTER (WHERE type = 'assignment')::DOUBLE AS a_n
  FROM raw_events WHERE ts < make_timestamp(${grid}) GROUP BY ALL`),
);
const size = await store.one<{ rows: bigint; pairs: bigint }>(
  "SELECT count(*) AS rows, count(DISTINCT (student_key, topic_id)) AS pairs FROM temp.feature_days",
);

/** Window columns as of T0 + m days from the day rows (features/windows.ts definitions). */
const windowsSql = (m: bigint, where = "") => {
  const s = (w: number, col: string) => `sum(${col}) FILTER (WHERE d + ${m} < ${w})`;
  const x = `(29 - d - ${m})`;
  const cols = [7, 30, 90].flatMap((w) => [
    `CAST(coalesce(${s(w, "q_n")}, 0) AS INTEGER) AS attempts_${w}d`,
    `${s(w, "q_correct")} / nullif(${s(w, "q_n")}, 0) AS accuracy_${w}d`,
    `${s(w, "q_time_sum")} / nullif(${s(w, "q_time_n")}, 0) AS avg_time_per_question_${w}d`,
    `${s(w, "q_hints")} / nullif(${s(w, "q_n")}, 0) AS hint_usage_rate_${w}d`,
    `${s(w, "p_correct")} / nullif(${s(w, "p_attempts")}, 0) AS practice_success_rate_${w}d`,
    `${s(w, "v_sum")} / nullif(${s(w, "v_n")}, 0) AS video_watch_pct_${w}d`,
    `${s(w, "a_sum")} / nullif(${s(w, "a_n")}, 0) AS assignment_score_pct_${w}d`,
    `CAST(count(*) FILTER (WHERE d + ${m} < ${w}) AS INTEGER) AS active_days_${w}d`,
  ]);
  const q = s(30, "q_n");
  const sx = `sum(${x} * q_n) FILTER (WHERE d + ${m} < 30)`;
  const slope = `(${q} * sum(${x} * q_correct) FILTER (WHERE d + ${m} < 30) - ${sx} * ${s(30, "q_correct")})
    / nullif(${q} * sum(${x} * ${x} * q_n) FILTER (WHERE d + ${m} < 30) - ${sx} * ${sx}, 0)`;
  return `SELECT student_key, topic_id, max(last_ts) AS last_activity_at, ${cols.join(", ")},
    ${slope} AS trend_slope_30d FROM temp.feature_days ${where} GROUP BY student_key, topic_id`;
};

// 3. Exactness as of T0 against the stored snapshot.
const doubles = [7, 30, 90].flatMap((w) =>
  [
    "accuracy",
    "avg_time_per_question",
    "hint_usage_rate",
    "practice_success_rate",
    "video_watch_pct",
    "assignment_score_pct",
  ].map((c) => `${c}_${w}d`),
);
doubles.push("trend_slope_30d");
const exact = [7, 30, 90].flatMap((w) => [`attempts_${w}d`, `active_days_${w}d`]);
exact.push("last_activity_at");
const differs = (c: string, tol: boolean) =>
  tol
    ? `(a.${c} IS NULL) <> (f.${c} IS NULL) OR abs(a.${c} - f.${c}) > 1e-12 * greatest(abs(a.${c}), abs(f.${c}))`
    : `a.${c} IS DISTINCT FROM f.${c}`;
const check = await timed("exactness check as of T0", () =>
  store.one<{ joined: bigint; exact_off: bigint; any_bit: bigint; beyond: bigint }>(
    `WITH a AS (${windowsSql(0n)}), f AS (SELECT * FROM features WHERE as_of = make_timestamp(${grid}))
     SELECT count(*) AS joined,
       count(*) FILTER (WHERE ${exact.map((c) => differs(c, false)).join(" OR ")}) AS exact_off,
       count(*) FILTER (WHERE ${doubles.map((c) => differs(c, false)).join(" OR ")}) AS any_bit,
       count(*) FILTER (WHERE ${doubles.map((c) => differs(c, true)).join(" OR ")}) AS beyond
     FROM a FULL JOIN f USING (student_key, topic_id)`,
  ),
);

// 4. The read-time price.
const student = await store.one<{ k: string }>("SELECT min(student_key) AS k FROM temp.feature_days");
for (let i = 0; i < repeat; i++) {
  // Materialized, so every column is computed (a count over the query would let DuckDB drop unused ones).
  await timed("all pairs, windows from day rows as of T1", () =>
    store.run(`CREATE OR REPLACE TEMP TABLE read_all AS ${windowsSql(moved)}`),
  );
  await timed("all pairs, stored snapshot T0 (features view)", () =>
    store.run(
      `CREATE OR REPLACE TEMP TABLE read_all AS SELECT * FROM features WHERE as_of = make_timestamp(${grid})`,
    ),
  );
  await timed("one student, windows from day rows as of T1", () =>
    store.all(`${windowsSql(moved, "WHERE student_key = $k")}`, { k: student?.k ?? "" }),
  );
  await timed("one student, stored snapshot T0 (features view)", () =>
    store.all(`SELECT * FROM features WHERE as_of = make_timestamp(${grid}) AND student_key = $k`, {
      k: student?.k ?? "",
    }),
  );
}
store.close();
rmSync(scratch, { force: true });
rmSync(`${scratch}.wal`, { force: true });
const pairs = Number(size?.pairs ?? 0n);
console.log(
  JSON.stringify(
    {
      store: root,
      moved_days: Number(moved),
      pairs,
      day_rows: Number(size?.rows ?? 0n),
      day_rows_per_pair: Number((Number(size?.rows ?? 0n) / Math.max(1, pairs)).toFixed(2)),
      recomputed_today: dirty,
      with_new_or_late_events: touched,
      exactness_as_of_t0: {
        joined: Number(check?.joined ?? 0n),
        counts_or_last_activity_differ: Number(check?.exact_off ?? 0n),
        doubles_differ_any_bit: Number(check?.any_bit ?? 0n),
        doubles_beyond_1e12: Number(check?.beyond ?? 0n),
      },
      cpu_s: out,
      loadavg: { start: load0, end: loadavg() },
    },
    null,
    2,
  ),
);
