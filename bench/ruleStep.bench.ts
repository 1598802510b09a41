/**
 * The rule step alone (serving/ruleScoring.ts scoreRules), phase by phase, on copies of a store that
 * bench/dailyDay.bench.ts built: MODE=full (default) rescores every pair (a backfill or a model change), MODE=day
 * refolds only the pairs with new events since the build's watermark (the daily run), MODE=first rescores every
 * pair of a copy whose stored rule rows were deleted first (not timed): a first run, as bench/big.bench.ts's
 * pipeline runs the step (no stored rule score: no history comparison, plain inserts). Each run copies
 * BENCH_DIR/base.duckdb to a scratch file, runs the step with a fixed `now` (so two code versions store the
 * same bytes), then a CHECKPOINT (what the step leaves to write to the file is part of its cost), and prints
 * process CPU seconds (user + sys, DuckDB's and the worker threads' included) and wall seconds per phase
 * (onPhase), then the medians over RUNS. With DIGEST=1 it also prints a SHA-256 over the stored rule rows
 * (every row and column of student_mastery, and its rule_based rows alone) and over the history rows the step appended (recorded_at = the fixed `now`), so two
 * worktrees' runs can be compared byte for byte.
 *
 *   BENCH_DIR=/tmp/day1m STUDENTS=10000 RUNS=0 npx tsx bench/dailyDay.bench.ts    # build the 1M store once
 *   BENCH_DIR=/tmp/day1m RUNS=3 npx tsx bench/ruleStep.bench.ts                    # full step, 3 runs
 *   BENCH_DIR=/tmp/day1m RUNS=3 MODE=day DIGEST=1 npx tsx bench/ruleStep.bench.ts  # the daily step, digests
 *   BENCH_DIR=/tmp/day10m RUNS=1 MODE=first DIGEST=sum npx tsx bench/ruleStep.bench.ts  # 10M: order-free digests
 *   MEMORY_LIMIT=4GB ...               # DuckDB's memory_limit (default DuckDB's, 80% of RAM)
 *   SCRATCH=/other/disk/x.duckdb ...   # where the copy goes (default BENCH_DIR/rulestep.duckdb)
 *   KEEP=1 ...                          # keep the last run's scored copy (bench/ruleAnswers.bench.ts reads it)
 */
import { copyFileSync, existsSync, readFileSync, rmSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import { alignedAsOf } from "../features/incrementalFeatures.ts";
import { resolveAsOf } from "../features/windows.ts";
import { scoreRules } from "../serving/ruleScoring.ts";
import { DuckStore } from "../storage/duckdb.ts";
import { cpuNow, roundedMedian } from "./cpuClock.ts";

const root = process.env.BENCH_DIR ?? "/tmp/day-bench-10000";
const runs = Number(process.env.RUNS ?? 3);
const mode = process.env.MODE ?? "full";
const digest = process.env.DIGEST === "1";
// DIGEST=sum: order-free digests in bounded memory (the sum of each row's MD5, low 64 bits), for 10M stores,
// where DIGEST=1's one string of every row does not fit.
const sumDigest = process.env.DIGEST === "sum";
const scratch = process.env.SCRATCH ?? join(root, "rulestep.duckdb");
/** DuckDB's memory_limit (e.g. 4GB, as bench/big.bench.ts); default DuckDB's (80% of RAM). */
const memoryLimit = process.env.MEMORY_LIMIT;
const log = (s: string) => process.stderr.write(`${s}\n`);

if (mode !== "full" && mode !== "day" && mode !== "first")
  throw new Error(
    `MODE must be "full" (every pair rescored), "first" (every pair, no stored rule rows) or "day" (the daily refold); got "${mode}"`,
  );
const metaPath = join(root, "day.json");
if (!existsSync(metaPath))
  throw new Error(
    `${metaPath} is missing: build the store first (BENCH_DIR=${root} STUDENTS=10000 RUNS=0 npx tsx bench/dailyDay.bench.ts)`,
  );
const meta = JSON.parse(readFileSync(metaPath, "utf8")) as {
  since: { asOf: string; ingestedThroughUs: string | null };
};
const since = { asOf: new Date(meta.since.asOf), ingestedThroughUs: meta.since.ingestedThroughUs };

const cpu: Record<string, number[]> = {};
const wall: Record<string, number[]> = {};
const order: string[] = [];
const record = (name: string, c: number, w: number) => {
  if (!(name in cpu)) {
    order.push(name);
    cpu[name] = [];
    wall[name] = [];
  }
  cpu[name]!.push(c);
  wall[name]!.push(w);
};
const load0 = loadavg();
for (let r = 0; r < runs; r++) {
  rmSync(scratch, { force: true });
  rmSync(`${scratch}.wal`, { force: true });
  copyFileSync(join(root, "base.duckdb"), scratch);
  const store = await DuckStore.open(scratch, memoryLimit === undefined ? {} : { memoryLimit });
  if (mode === "first") {
    // Not timed: the copy as a first run finds it (no stored rule score), written to the file before the step.
    await store.run("DELETE FROM student_mastery_base WHERE score_source = 'rule_based'");
    await store.run("DELETE FROM student_mastery_delta WHERE score_source = 'rule_based'");
    await store.run("CHECKPOINT");
  }
  const asOf = alignedAsOf(since, await resolveAsOf(store, "now"));
  const c0 = cpuNow();
  const t0 = performance.now();
  let pc = c0;
  let pt = t0;
  const phase = (name: string) => {
    const c = cpuNow();
    const t = performance.now();
    record(name, c - pc, (t - pt) / 1000);
    log(`run ${r + 1} ${mode} ${name}: ${((t - pt) / 1000).toFixed(2)} s (cpu ${(c - pc).toFixed(2)} s)`);
    pc = c;
    pt = t;
  };
  const res = await scoreRules(store, {
    asOf,
    now: asOf,
    onPhase: phase,
    ...(mode === "day" ? { since } : {}),
  });
  if (mode === "day" && res.mode !== "incremental")
    throw new Error(`expected an incremental day, got a full run: ${res.fullReason}`);
  phase("rollup views");
  await store.run("CHECKPOINT");
  phase("checkpoint");
  record("step", cpuNow() - c0, (performance.now() - t0) / 1000);
  log(
    `run ${r + 1} ${mode} step: ${((performance.now() - t0) / 1000).toFixed(2)} s (cpu ${(cpuNow() - c0).toFixed(2)} s); ${res.scored} pairs, ${res.changed} history rows`,
  );
  if (digest) {
    // Every row of student_mastery (every source and column: a full run rewrites the base table), and the
    // rule rows alone.
    const rows = await store.all<{ h: string; n: bigint; hr: string; nr: bigint }>(
      `SELECT sha256(string_agg(m::VARCHAR, chr(10) ORDER BY student_key, topic_id, score_source)) AS h, count(*) AS n,
              sha256(string_agg(m::VARCHAR, chr(10) ORDER BY student_key, topic_id)
                FILTER (WHERE score_source = 'rule_based')) AS hr,
              count(*) FILTER (WHERE score_source = 'rule_based') AS nr
       FROM student_mastery m`,
    );
    const hist = await store.all<{ h: string; n: bigint }>(
      `SELECT sha256(string_agg(concat_ws('|', student_key, topic_id, mastery_score::VARCHAR, score_source,
              model_version, as_of::VARCHAR, explanation, recorded_at::VARCHAR), chr(10)
              ORDER BY student_key, topic_id, score_source, as_of, recorded_at, explanation)) AS h, count(*) AS n
       FROM student_mastery_history WHERE recorded_at = make_timestamp($t::BIGINT)`,
      { t: BigInt(asOf.getTime()) * 1000n },
    );
    log(
      `run ${r + 1} digest: student_mastery rows ${rows[0]?.n} ${rows[0]?.h?.slice(0, 16)}, of them rule rows ${rows[0]?.nr} ${rows[0]?.hr?.slice(0, 16)}; new history rows ${hist[0]?.n} ${hist[0]?.h?.slice(0, 16)}`,
    );
  }
  if (sumDigest) {
    const md5 = (row: string, filter = "") => `sum(md5_number_lower(${row})::HUGEINT) ${filter}::VARCHAR`;
    const rows = await store.all<{ h: string; n: bigint; hr: string; nr: bigint }>(
      `SELECT ${md5("m::VARCHAR")} AS h, count(*) AS n,
              ${md5("m::VARCHAR", "FILTER (WHERE score_source = 'rule_based')")} AS hr,
              count(*) FILTER (WHERE score_source = 'rule_based') AS nr
       FROM student_mastery m`,
    );
    const hist = await store.all<{ h: string; n: bigint }>(
      `SELECT ${md5("h::VARCHAR")} AS h, count(*) AS n
       FROM student_mastery_history h WHERE recorded_at = make_timestamp($t::BIGINT)`,
      { t: BigInt(asOf.getTime()) * 1000n },
    );
    log(
      `run ${r + 1} sum digest: student_mastery rows ${rows[0]?.n} ${rows[0]?.h}, of them rule rows ${rows[0]?.nr} ${rows[0]?.hr}; new history rows ${hist[0]?.n} ${hist[0]?.h}`,
    );
  }
  store.close();
  await store.whenClosed();
}
// KEEP=1: the last run's scored copy stays (e.g. for bench/ruleAnswers.bench.ts).
if (process.env.KEEP !== "1") {
  rmSync(scratch, { force: true });
  rmSync(`${scratch}.wal`, { force: true });
}
const load1 = loadavg();
log(`load average ${load0[0]?.toFixed(1)} -> ${load1[0]?.toFixed(1)}`);
log(`${mode} rule step, ${runs} run(s): phase, median CPU-s [each run], median wall s`);
for (const name of order)
  log(
    `  ${name.padEnd(16)} ${roundedMedian(cpu[name]!, 2).toFixed(2).padStart(7)} [${cpu[name]!.map((x) => x.toFixed(2)).join(", ")}]  ${roundedMedian(wall[name]!, 2).toFixed(2)}`,
  );
const medians = Object.fromEntries(order.map((name) => [name, roundedMedian(cpu[name]!, 2)]));
console.log(JSON.stringify({ mode, runs, load: [load0[0], load1[0]], cpuMedians: medians }));
