/**
 * Ingest throughput: a 1M-row quiz_attempts.csv in the generator's format (type column, ISO
 * timestamps with Z, 100k students) into a fresh DuckDB file, or any directory given as argv[2].
 *   npx tsx bench/ingest.bench.ts [DIR] [--rows N]
 * Prints wall and process CPU seconds per phase and rows/s. Results: docs/benchmarks.md.
 */
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ingestPaths } from "../features/ingest.ts";
import { DEMO_PSEUDONYM_KEY, Pseudonymizer } from "../features/pseudonymize.ts";
import { DuckStore } from "../storage/duckdb.ts";

const args = process.argv.slice(2);
const rowsFlag = args.indexOf("--rows");
const rows = rowsFlag >= 0 ? Number(args[rowsFlag + 1]) : 1_000_000;
const work = mkdtempSync(join(tmpdir(), "mastery-ingest-bench-"));
let input = args.find((a, i) => !a.startsWith("--") && args[i - 1] !== "--rows");

if (!input) {
  input = join(work, "csv");
  mkdirSync(input);
  const gen = await DuckStore.open(":memory:");
  await gen.run(`CREATE OR REPLACE TEMP TABLE ids AS SELECT range AS i FROM range(${rows})`);
  await gen.run(`COPY (
    SELECT printf('q-%06d-%06d', i % 100000, i // 100000) AS event_id, 'quiz_attempt' AS type,
           printf('stu-%06d', i % 100000) AS student_id, printf('t%04d', i % 120) AS topic_id,
           strftime(TIMESTAMP '2026-09-01' + to_seconds(i * 2), '%Y-%m-%dT%H:%M:%SZ') AS timestamp,
           printf('sch%04d', (i % 100000) // 300) AS school_id, printf('cls%05d', (i % 100000) // 25) AS class_id,
           6 + i % 7 AS grade, printf('t%04d-q%02d', i % 120, i % 13) AS question_id,
           CASE WHEN hash(i) % 3 = 0 THEN 'false' ELSE 'true' END AS is_correct,
           round((hash(i) % 1800) / 10.0, 1) AS time_spent_sec, 1 + i % 3 AS attempt_number, i % 4 AS hints_used
    FROM ids) TO '${join(input, "quiz_attempts.csv")}' (HEADER)`);
  gen.close();
}

const db = join(work, "bench.duckdb");
const store = await DuckStore.open(process.env.BENCH_MEM ? ":memory:" : db);
const cpu = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};
const t0 = performance.now();
const c0 = cpu();
let last = t0;
let lastCpu = c0;
const report = await ingestPaths(store, [input], {
  pseudonymizer: new Pseudonymizer(DEMO_PSEUDONYM_KEY),
  onPhase: (file, phase) => {
    const now = performance.now();
    const c = cpu();
    console.log(
      `${file.split("/").pop()?.padEnd(20)} ${phase.padEnd(13)} wall ${((now - last) / 1000).toFixed(2)} s  cpu ${(c - lastCpu).toFixed(2)} s`,
    );
    last = now;
    lastCpu = c;
  },
});
const seconds = (performance.now() - t0) / 1000;
const n = report.total.accepted + report.total.duplicate + report.total.rejected;
console.log(
  JSON.stringify({
    rows: n,
    ...report.total,
    wallSeconds: Number(seconds.toFixed(2)),
    cpuSeconds: Number((cpu() - c0).toFixed(2)),
    rowsPerSecond: Math.round(n / seconds),
  }),
);
store.close();
rmSync(work, { recursive: true, force: true });
