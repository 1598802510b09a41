/**
 * Incremental vs full daily features (+ rule scores) on one store (issue 17 item 3):
 * day 0 = generate + ingest + full features + rule scores (runPipeline, not timed here); then a new
 * day on which ACTIVE_PCT % of the students are active (their last day of events repeated one day
 * later, ingested now), and the daily run as of the new newest event, timed both ways on the same
 * store, alternating, REPEAT times each: incremental (features/incrementalFeatures.ts from the day-0
 * snapshot and watermark) and full (features/windows.ts buildFeatures). The incremental snapshot is
 * checked against the full one (rows that differ, both directions). Rule scores (every pair of the
 * snapshot; the recency signal moves with as-of for all of them) are timed after each mode.
 *
 *   npx tsx bench/incremental.bench.ts                     # 10,000 students x 30 days, ~1M events
 *   STUDENTS=100000 npx tsx bench/incremental.bench.ts     # ~10M events (issue 17: <= 5 s for 1% active)
 *   ACTIVE_PCT=5 REPEAT=5 ...
 *   ALIGN=0 ...      # as of newest event + 1 s instead of day 0's as-of + whole days
 *
 * Files go to $BENCH_DIR (default /tmp/incr-bench). Reports medians, the ratio full / incremental and
 * the load average at the start and end (the machine is shared: compare the ratio, not the seconds).
 */
import { rmSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import { alignedAsOf, buildFeaturesIncremental, ingestWatermark } from "../features/incrementalFeatures.ts";
import { Pseudonymizer } from "../features/pseudonymize.ts";
import { buildFeatures, resolveAsOf } from "../features/windows.ts";
import { runPipeline } from "../serving/pipeline.ts";
import { scoreRules } from "../serving/ruleScoring.ts";
import { DuckStore } from "../storage/duckdb.ts";
import { appendNextDay } from "./nextDay.ts";
import { seedSchool } from "./seedSchool.ts";

const students = Number(process.env.STUDENTS ?? 10_000);
const activePct = Number(process.env.ACTIVE_PCT ?? 1);
const repeat = Number(process.env.REPEAT ?? 3);
const root = join(process.env.BENCH_DIR ?? "/tmp/incr-bench", `incr-${students}`);
rmSync(root, { recursive: true, force: true });
const dataDir = join(root, "data");
const store = await DuckStore.open(join(root, "mastery.duckdb"));
const load0 = loadavg();
const log = (s: string) => process.stderr.write(`${s}\n`);

const day0 = await runPipeline({
  store,
  pseudonymizer: new Pseudonymizer("bench-key-0123456789abcdef"),
  dataDir,
  generate: seedSchool(students, dataDir, { truthEvery: 0 }),
  skip: ["score bkt-elo"],
  onStep: (s, ms) => log(`day 0 ${s}: ${(ms / 1000).toFixed(2)} s`),
});
const since = { asOf: day0.asOf, ingestedThroughUs: await ingestWatermark(store) };
const pairs0 = day0.featureRows;

// The new day: ACTIVE_PCT % of the students (by a hash of the key) repeat their last day one day later.
await appendNextDay(store, { mod: 10_000, below: Math.round(activePct * 100), from: day0.asOf });
const newEvents = Number(
  (await store.one<{ n: bigint }>("SELECT count(*) AS n FROM raw_events WHERE event_id LIKE '%-next'"))?.n ??
    0n,
);
const activeStudents = Number(
  (
    await store.one<{ n: bigint }>(
      "SELECT count(DISTINCT student_key) AS n FROM raw_events WHERE event_id LIKE '%-next'",
    )
  )?.n ?? 0n,
);
// ALIGN=0: as of the newest event + 1 s (a fractional-day move: uneven day buckets add dirty pairs);
// default: the daily grid `mastery schedule` uses (alignedAsOf: whole days after day 0's as-of).
const align = process.env.ALIGN !== "0";
const newest = await resolveAsOf(store, "now");
const asOf = align ? alignedAsOf(since, newest) : newest;
log(
  `new day: ${newEvents} events of ${activeStudents} students (${activePct} %), as of ${asOf.toISOString()} (${((asOf.getTime() - day0.asOf.getTime()) / 86400e3).toFixed(3)} days after day 0)`,
);

const t = async <T>(fn: () => Promise<T>): Promise<[number, T]> => {
  const t0 = performance.now();
  const out = await fn();
  return [(performance.now() - t0) / 1000, out];
};
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2
    ? (s[(s.length - 1) / 2] as number)
    : ((s[s.length / 2 - 1] as number) + (s[s.length / 2] as number)) / 2;
};
const incr: number[] = [];
const full: number[] = [];
const rulesAfterIncr: number[] = [];
const rulesAfterFull: number[] = [];
let recomputed = 0;
let copied = 0;
let differing = -1;
let beyondUlp = -1;
let matched = -1;
const asOfUs = BigInt(asOf.getTime()) * 1000n;
for (let r = 0; r < repeat; r++) {
  await store.run("DELETE FROM features WHERE as_of = make_timestamp($t::BIGINT)", { t: asOfUs });
  const [si, res] = await t(() => buildFeaturesIncremental(store, asOf, since));
  if (res.mode !== "incremental")
    throw new Error(`expected an incremental build, got full: ${res.fullReason}`);
  incr.push(si);
  recomputed = res.recomputed;
  copied = res.copied;
  log(
    `run ${r + 1} incremental features: ${si.toFixed(2)} s (${res.recomputed} pairs recomputed, ${res.copied} copied)`,
  );
  if (r === 0) {
    await store.run(
      "CREATE OR REPLACE TABLE incr_check AS SELECT * FROM features WHERE as_of = make_timestamp($t::BIGINT)",
      { t: asOfUs },
    );
    const [sr] = await t(() => scoreRules(store, { asOf }));
    rulesAfterIncr.push(sr);
    log(`run ${r + 1} rule scores after incremental: ${sr.toFixed(2)} s`);
  }
  const [sf] = await t(() => buildFeatures(store, asOf));
  full.push(sf);
  log(`run ${r + 1} full features: ${sf.toFixed(2)} s`);
  if (r === 0) {
    const d = await store.one<{ n: bigint }>(
      `SELECT (SELECT count(*) FROM (SELECT * FROM incr_check EXCEPT ALL SELECT * FROM features WHERE as_of = make_timestamp($t::BIGINT)))
            + (SELECT count(*) FROM (SELECT * FROM features WHERE as_of = make_timestamp($t::BIGINT) EXCEPT ALL SELECT * FROM incr_check)) AS n`,
      { t: asOfUs },
    );
    differing = Number(d?.n ?? -1n);
    // DuckDB's parallel sum of DOUBLEs (watch_pct, score_pct means) is not order-stable: two full builds
    // differ in the last bits of some means too. Rows beyond 1e-12 relative in any column are errors.
    const cols = (
      await store.all<{ c: string; t: string }>(
        "SELECT column_name AS c, data_type AS t FROM duckdb_columns() WHERE schema_name = 'main' AND table_name = 'features' AND column_name NOT IN ('student_key', 'topic_id', 'as_of')",
      )
    ).map((r) =>
      r.t === "DOUBLE"
        ? `(a.${r.c} IS NULL) <> (b.${r.c} IS NULL) OR abs(a.${r.c} - b.${r.c}) > 1e-12 * greatest(1, abs(b.${r.c}))`
        : `a.${r.c} IS DISTINCT FROM b.${r.c}`,
    );
    const far = await store.one<{ n: bigint; m: bigint }>(
      `SELECT count(*) FILTER (WHERE ${cols.join(" OR ")}) AS n, count(*) AS m
       FROM incr_check a FULL JOIN (SELECT * FROM features WHERE as_of = make_timestamp($t::BIGINT)) b
         USING (student_key, topic_id)`,
      { t: asOfUs },
    );
    beyondUlp = Number(far?.n ?? -1n);
    matched = Number(far?.m ?? -1n);
    const [sr] = await t(() => scoreRules(store, { asOf }));
    rulesAfterFull.push(sr);
    log(
      `run ${r + 1} rule scores after full: ${sr.toFixed(2)} s; incremental vs full snapshot: ${differing} rows differ in any bit, ${beyondUlp} beyond 1e-12 relative`,
    );
  }
}
const pairsNow = Number(
  (
    await store.one<{ n: bigint }>(
      "SELECT count(*) AS n FROM features WHERE as_of = make_timestamp($t::BIGINT)",
      { t: asOfUs },
    )
  )?.n ?? 0n,
);
const load1 = loadavg();
const out = {
  events: day0.events + newEvents,
  students,
  pairs: pairs0,
  newDay: { events: newEvents, activeStudents, activePct, aligned: align, asOf: asOf.toISOString() },
  featuresPairsRecomputed: recomputed,
  featuresPairsCopied: copied,
  rowsDifferingExactly: differing,
  rowsDifferingBeyond1e12Relative: beyondUlp,
  rowsJoined: matched,
  featuresSeconds: { incremental: incr.map((x) => +x.toFixed(2)), full: full.map((x) => +x.toFixed(2)) },
  median: {
    incrementalFeatures: +median(incr).toFixed(2),
    fullFeatures: +median(full).toFixed(2),
    ratioFullOverIncremental: +(median(full) / median(incr)).toFixed(2),
    ruleScores: +median([...rulesAfterIncr, ...rulesAfterFull]).toFixed(2),
  },
  loadavg: { start: load0.map((x) => +x.toFixed(2)), end: load1.map((x) => +x.toFixed(2)) },
};
process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
store.close();
if (beyondUlp !== 0 || matched !== pairsNow) {
  process.stderr.write(
    `error: the incremental snapshot differs from the full one in ${beyondUlp} rows beyond 1e-12 relative (${matched} rows joined, ${pairsNow} expected)\n`,
  );
  process.exitCode = 1;
}
