/**
 * The data-quality report (features/quality.ts) on N synthetic raw_events (3 sources, 5 types, 60
 * days, plus two events dated 0001-01-01 and 9999-12-31, which once made the volume series one
 * slot per calendar day), against a bare-scan anchor in the same process: one pass over the same
 * table (count, distinct event ids, newest timestamp per source and type). Prints the median of
 * `rounds` runs of each, the ratio, the slowest section and the event loop's worst delay while the
 * budgeted report runs (what /healthz would wait at most).
 *   npx tsx bench/quality.bench.ts [events=1000000] [rounds=3]
 *   (QUALITY_BENCH_EVENTS / QUALITY_BENCH_ROUNDS work too)
 */
import { loadavg } from "node:os";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { QUALITY_SECTIONS, qualityReportWithin } from "../features/quality.ts";
import { DuckStore } from "../storage/duckdb.ts";

const positional = process.argv.slice(2).filter((a) => !a.startsWith("--"));
const events = Number(positional[0] ?? process.env.QUALITY_BENCH_EVENTS ?? 1_000_000);
const rounds = Number(positional[1] ?? process.env.QUALITY_BENCH_ROUNDS ?? 3);
if (!(Number.isInteger(events) && events > 0 && Number.isInteger(rounds) && rounds > 0))
  throw new Error("usage: npx tsx bench/quality.bench.ts [events>0] [rounds>0]");

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

const store = await DuckStore.open(":memory:");
let t = performance.now();
await store.run(`
  INSERT INTO raw_events (event_id, type, student_key, topic_id, ts, source, is_correct, time_spent_sec,
    watch_pct, attempts, correct_count, ingested_at)
  SELECT 'e' || i,
    CASE WHEN h % 10 < 6 THEN 'quiz_attempt' WHEN h % 10 = 6 THEN 'assignment' WHEN h % 10 = 7 THEN 'video'
         WHEN h % 10 = 8 THEN 'practice' ELSE 'chatbot' END,
    'k' || (h % 20000), 't' || ((h // 7) % 120),
    TIMESTAMP '2026-01-01' + to_microseconds(((h // 13) % (60 * 86400000000))::BIGINT),
    'lms' || ((h // 3) % 3), (h // 11) % 3 > 0, ((h // 17) % 120)::DOUBLE,
    CASE WHEN h % 50 = 0 THEN NULL ELSE ((h // 29) % 101)::DOUBLE END, 5, ((h // 31) % 6)::INTEGER,
    TIMESTAMP '2026-03-02'
  FROM (SELECT i, hash(i) AS h FROM range(${events}) t(i))`);
await store.run(
  `INSERT INTO raw_events (event_id, type, student_key, topic_id, ts, source, ingested_at) VALUES
     ('old', 'quiz_attempt', 'k1', 't1', TIMESTAMP '0001-01-01', 'lms0', TIMESTAMP '2026-03-02'),
     ('new', 'quiz_attempt', 'k1', 't1', TIMESTAMP '9999-12-31', 'lms0', TIMESTAMP '2026-03-02')`,
);
console.log(`synthetic ${events} events: ${((performance.now() - t) / 1000).toFixed(1)} s`);

const asOf = new Date("2026-03-02T00:00:00Z");
const scan: number[] = [];
const report: number[] = [];
const lag: number[] = [];
const sectionMs = new Map<string, number[]>();
for (let r = 0; r < rounds; r++) {
  t = performance.now();
  await store.all(
    `SELECT source, type, count(*) AS n, count(DISTINCT event_id) AS events, max(ts) AS last_ts
     FROM raw_events GROUP BY ALL`,
  );
  scan.push(performance.now() - t);

  const h = monitorEventLoopDelay({ resolution: 5 });
  h.enable();
  t = performance.now();
  let i = 0;
  const out = await qualityReportWithin(store, {
    asOf,
    budgetMs: 600_000,
    runSection: async (fn) => {
      const s0 = performance.now();
      const v = await fn();
      const k = QUALITY_SECTIONS[i++]!;
      sectionMs.set(k, [...(sectionMs.get(k) ?? []), performance.now() - s0]);
      return v;
    },
  });
  report.push(performance.now() - t);
  h.disable();
  lag.push(h.max / 1e6);
  if (out.status !== "complete") throw new Error(`report incomplete: ${out.missing.join(", ")}`);
  if (r === 0) console.log(`volume lastDay ${out.volume?.lastDay}, series ${out.volume?.latest.length}`);
}

const s = median(scan);
const q = median(report);
console.log(`load average ${loadavg()[0]!.toFixed(1)}; ${rounds} rounds, medians:`);
console.log(`  bare scan (anchor)      ${s.toFixed(0)} ms`);
console.log(`  data-quality report     ${q.toFixed(0)} ms  (${(q / s).toFixed(1)}x the scan)`);
console.log(`  event-loop max delay    ${median(lag).toFixed(0)} ms during the report`);
for (const [k, v] of sectionMs) console.log(`    ${k.padEnd(14)} ${median(v).toFixed(0)} ms`);
store.close();
