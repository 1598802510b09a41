/**
 * Windowed features + rule scoring at scale on synthetic raw_events made by one INSERT ... SELECT
 * from range() (no generator needed). Prints wall times; figures go to docs/benchmarks.md.
 * Shape like the 10M pipeline benchmark (mastery generate --students 100000 --topics 120 --days 30):
 * each student works on `topicsPerStudent` of 120 topics over `days` days.
 *   npx tsx bench/features.bench.ts [events=1000000] [students=10000] [topicsPerStudent=20] [days=30] [--score]
 */
import { buildFeatures } from "../features/windows.ts";
import { scoreRules } from "../serving/ruleScoring.ts";
import { DuckStore } from "../storage/duckdb.ts";

const positional = process.argv.slice(2).filter((a) => !a.startsWith("--"));
const events = Number(positional[0] ?? 1_000_000);
const students = Number(positional[1] ?? 10_000);
const topicsPerStudent = Number(positional[2] ?? 20);
const days = Number(positional[3] ?? 30);

const store = await DuckStore.open(":memory:");
let t = performance.now();
// Deterministic pseudo-random columns from hash(i); 64-hex student keys like the HMAC pseudonyms;
// `days` days of history ending 2024-06-30; type mix 60% quiz, 10% each of the other four.
await store.run(`
  CREATE TEMP TABLE sk AS SELECT i, sha256('s' || i) AS student_key FROM range(${students}) t(i)`);
await store.run(`
  INSERT INTO raw_events (event_id, type, student_key, topic_id, ts, is_correct, time_spent_sec, attempt_number,
    hints_used, score_pct, watch_pct, attempts, correct_count, help_requests, ingested_at)
  SELECT 'e' || e.i,
    CASE WHEN h % 10 < 6 THEN 'quiz_attempt' WHEN h % 10 = 6 THEN 'assignment' WHEN h % 10 = 7 THEN 'video'
         WHEN h % 10 = 8 THEN 'practice' ELSE 'chatbot' END,
    sk.student_key, 't' || ((sk.i * 7 + h2 % ${topicsPerStudent}) % 120),
    TIMESTAMP '2024-06-30' - to_microseconds(((h // 13) % (${days} * 86400000000))::BIGINT),
    (h // 11) % 3 > 0, ((h // 17) % 120)::DOUBLE, 1, ((h // 19) % 3)::INTEGER,
    ((h // 23) % 101)::DOUBLE, ((h // 29) % 101)::DOUBLE, 5, ((h // 31) % 6)::INTEGER, 1,
    TIMESTAMP '2024-06-30'
  FROM (SELECT i, hash(i) AS h, hash(i + 7919) AS h2 FROM range(${events}) t(i)) e
  JOIN sk ON sk.i = e.h % ${students}`);
console.log(`synthetic ${events} events: ${((performance.now() - t) / 1000).toFixed(1)} s`);

t = performance.now();
const res = await buildFeatures(store, new Date("2024-06-30T00:00:01Z"));
console.log(`features: ${res.rows} rows in ${(res.millis / 1000).toFixed(2)} s`);

if (process.argv.includes("--score")) {
  t = performance.now();
  const s = await scoreRules(store, { asOf: new Date("2024-06-30T00:00:01Z") });
  console.log(`rule scoring: ${s.scored} rows in ${((performance.now() - t) / 1000).toFixed(2)} s`, s);
}
store.close();
