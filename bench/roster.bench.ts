/**
 * The daily batch's roster load (serving/roster.ts loadRosterFile -> storage/rosterStore.ts replace) into a
 * fresh DuckDB file store with a memory limit: the step that ran out of DuckDB's 4 GB after ingest at 100M
 * events (1M students in 40,000 classes of 25, the generator's roster.csv). Prints wall, process CPU seconds
 * (user + sys), peak RSS (VmHWM) and DuckDB's own memory by tag after the load.
 *
 *   STUDENTS=100000 MEMORY_LIMIT=400MB nice -n 10 npx tsx bench/roster.bench.ts   # 4,000 classes
 *   STUDENTS=1000000 MEMORY_LIMIT=4GB nice -n 10 npx tsx bench/roster.bench.ts    # the 100M batch's roster
 *
 * ROSTER=path loads that file instead of writing one (class_id,student_id; e.g. a generated data directory's
 * roster.csv). The store and the written roster go to BENCH_DIR (default /tmp/roster-bench) and are removed.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Pseudonymizer } from "../features/pseudonymize.ts";
import { loadRosterFile } from "../serving/roster.ts";
import { DuckStore } from "../storage/duckdb.ts";
import { RosterStore } from "../storage/rosterStore.ts";

const students = Number(process.env.STUDENTS ?? 100_000);
const perClass = Number(process.env.PER_CLASS ?? 25);
const memoryLimit = process.env.MEMORY_LIMIT ?? "4GB";
const dir = process.env.BENCH_DIR ?? "/tmp/roster-bench";
rmSync(dir, { recursive: true, force: true });
mkdirSync(dir, { recursive: true });
let file = process.env.ROSTER;
if (file === undefined) {
  file = join(dir, "roster.csv");
  const lines = ["class_id,student_id"];
  for (let i = 0; i < students; i++) {
    lines.push(
      `cls${String(Math.floor(i / perClass) + 1).padStart(5, "0")},stu-${String(i).padStart(6, "0")}`,
    );
  }
  writeFileSync(file, `${lines.join("\n")}\n`);
}

const cpu = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};
const hwmMB = () =>
  Math.round(Number(/VmHWM:\s+(\d+)/.exec(readFileSync("/proc/self/status", "utf8"))?.[1] ?? 0) / 1024);
const store = await DuckStore.open(join(dir, "store", "mastery.duckdb"), { memoryLimit, encryption: null });
const roster = await RosterStore.open(store, "duckdb");
const hwmBefore = hwmMB();
const t0 = performance.now();
const c0 = cpu();
process.stderr.write(`roster: ${file}, DuckDB memory_limit ${memoryLimit}, loading...\n`);
const report = await loadRosterFile(roster, file, new Pseudonymizer("bench-key-0123456789abcdef"));
const seconds = (performance.now() - t0) / 1000;
const cpuSeconds = cpu() - c0;
const duck = await store.all<{ tag: string; b: bigint }>(
  "SELECT tag, memory_usage_bytes AS b FROM duckdb_memory() WHERE memory_usage_bytes > 0 ORDER BY b DESC",
);
const summary = await roster.summary();
store.close();
rmSync(dir, { recursive: true, force: true });
process.stdout.write(
  `${JSON.stringify({
    rows: report.rows,
    classes: report.classes,
    students: report.students,
    stored: summary,
    memoryLimit,
    seconds: Number(seconds.toFixed(1)),
    cpuSeconds: Number(cpuSeconds.toFixed(1)),
    peakRssMB: hwmMB(),
    peakRssBeforeLoadMB: hwmBefore,
    duckdbMemoryMB: Object.fromEntries(duck.map((d) => [d.tag, Math.round(Number(d.b) / 1048576)])),
    load: readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" "),
  })}\n`,
);
