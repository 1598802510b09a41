/**
 * What the rule rows' explanation text costs the rule step's writes (docs/benchmarks.md "The rule step at 10M,
 * round 3 (rule19)"). On a copy of a store that bench/dailyDay.bench.ts built, the stored rule rows are taken
 * out of student_mastery (into a temp table, not timed), then written back the way a first run of the rule step
 * writes them (one transaction on one DuckDB thread: the history insert, the student_mastery insert, the COMMIT
 * with DuckDB's automatic checkpoint, then a CHECKPOINT), with the explanation:
 *   both: the text in both tables (what serving/ruleScoring.ts stores today);
 *   hist: the text in history only, '' in student_mastery (the text written once);
 *   none: '' in both (the text's write cost; a compact stored form adds its numbers' cost back).
 * Every other column is written as stored. Variants run in turn (A B C A B C ...), RUNS rounds; printed: process
 * CPU-s (user + sys, DuckDB's threads included) per phase, the WAL's size after the COMMIT with the automatic
 * checkpoint held off, the file's growth, and medians per variant.
 *
 *   BENCH_DIR=/tmp/day1m STUDENTS=10000 RUNS=0 npx tsx bench/dailyDay.bench.ts   # the store, once
 *   BENCH_DIR=/tmp/day1m RUNS=3 npx tsx bench/ruleTextWrites.bench.ts
 *   VARIANTS=both,none ... / SCRATCH=/other/disk/x.duckdb ... / MEMORY_LIMIT=4GB ...
 */
import { copyFileSync, existsSync, rmSync, statSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import { DuckStore } from "../storage/duckdb.ts";
import { cpuNow, roundedMedian } from "./cpuClock.ts";

const root = process.env.BENCH_DIR ?? "/tmp/day-bench-10000";
const runs = Number(process.env.RUNS ?? 3);
const scratch = process.env.SCRATCH ?? join(root, "ruletext.duckdb");
const memoryLimit = process.env.MEMORY_LIMIT;
const VARIANTS = ["both", "hist", "none"] as const;
type Variant = (typeof VARIANTS)[number];
const variants = (process.env.VARIANTS ?? VARIANTS.join(",")).split(",") as Variant[];
for (const v of variants)
  if (!VARIANTS.includes(v))
    throw new Error(`VARIANTS holds "${v}"; use a comma-separated list of ${VARIANTS.join(", ")}`);
if (!existsSync(join(root, "base.duckdb")))
  throw new Error(
    `${join(root, "base.duckdb")} is missing: build the store first (BENCH_DIR=${root} STUDENTS=10000 RUNS=0 npx tsx bench/dailyDay.bench.ts)`,
  );
const log = (s: string) => process.stderr.write(`${s}\n`);
const fileSize = (p: string): number => (existsSync(p) ? statSync(p).size : 0);

const results: Record<string, Record<string, number[]>> = {};
const record = (v: Variant, name: string, x: number) => {
  const byName = results[v] ?? {};
  results[v] = byName;
  const xs = byName[name] ?? [];
  byName[name] = xs;
  xs.push(x);
};
const load0 = loadavg();
for (let r = 0; r < runs; r++) {
  for (const v of variants) {
    rmSync(scratch, { force: true });
    rmSync(`${scratch}.wal`, { force: true });
    copyFileSync(join(root, "base.duckdb"), scratch);
    const store = await DuckStore.open(scratch, memoryLimit === undefined ? {} : { memoryLimit });
    // Not timed: the stored rule rows out, the file as a first run of the rule step finds it.
    await store.run(
      "CREATE TEMP TABLE rule_rows AS SELECT * FROM student_mastery WHERE score_source = 'rule_based'",
    );
    await store.run("DELETE FROM student_mastery_base WHERE score_source = 'rule_based'");
    await store.run("DELETE FROM student_mastery_delta WHERE score_source = 'rule_based'");
    await store.run("CHECKPOINT");
    // The WAL is what the COMMIT writes when no automatic checkpoint follows it; the CHECKPOINT after it is then
    // the checkpoint the COMMIT would have run.
    await store.run("SET wal_autocheckpoint = '1TB'");
    const size0 = fileSize(scratch);
    const histText = v === "none" ? "''" : "explanation";
    const masteryText = v === "both" ? "explanation" : "''";
    const c0 = cpuNow();
    let rows = 0;
    await store.withThreads(1, () =>
      store.transaction(async () => {
        rows = await store.runCount(
          `INSERT INTO student_mastery_history BY NAME
           SELECT * EXCLUDE (explanation, last_updated), ${histText} AS explanation, last_updated AS recorded_at
           FROM temp.rule_rows`,
        );
        const c1 = cpuNow();
        record(v, "history", c1 - c0);
        await store.run(
          `INSERT INTO student_mastery_base BY NAME
           SELECT * EXCLUDE (explanation), ${masteryText} AS explanation FROM temp.rule_rows`,
        );
        record(v, "student_mastery", cpuNow() - c1);
      }),
    );
    const c2 = cpuNow();
    const wal = fileSize(`${scratch}.wal`);
    await store.run("CHECKPOINT");
    const c3 = cpuNow();
    const history = results[v]!.history!;
    const mastery = results[v]!.student_mastery!;
    const commit = c2 - c0 - history[history.length - 1]! - mastery[mastery.length - 1]!;
    record(v, "commit (WAL)", commit);
    record(v, "checkpoint", c3 - c2);
    record(v, "writes", c3 - c0);
    record(v, "WAL MB", wal / 1e6);
    record(v, "file MB", (fileSize(scratch) - size0) / 1e6);
    log(
      `round ${r + 1} ${v}: ${rows} rows; history ${history[history.length - 1]!.toFixed(2)}, student_mastery ${mastery[mastery.length - 1]!.toFixed(2)}, commit ${commit.toFixed(2)}, checkpoint ${(c3 - c2).toFixed(2)}, writes ${(c3 - c0).toFixed(2)} CPU-s; WAL ${(wal / 1e6).toFixed(1)} MB, file +${((fileSize(scratch) - size0) / 1e6).toFixed(1)} MB`,
    );
    store.close();
    await store.whenClosed();
  }
}
rmSync(scratch, { force: true });
rmSync(`${scratch}.wal`, { force: true });
const load1 = loadavg();
log(`load average ${load0[0]?.toFixed(1)} -> ${load1[0]?.toFixed(1)}`);
log(`medians over ${runs} round(s), CPU-s unless named:`);
for (const v of variants)
  log(
    `  ${v.padEnd(5)} ${Object.entries(results[v] ?? {})
      .map(([name, xs]) => `${name} ${roundedMedian(xs, 2)}`)
      .join(", ")}`,
  );
console.log(
  JSON.stringify({
    runs,
    load: [load0[0], load1[0]],
    medians: Object.fromEntries(
      variants.map((v) => [
        v,
        Object.fromEntries(Object.entries(results[v] ?? {}).map(([n, xs]) => [n, roundedMedian(xs, 2)])),
      ]),
    ),
  }),
);
