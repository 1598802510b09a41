/**
 * The BKT/Elo job (serving/learnerState.ts scoreBktElo) at a given DuckDB memory_limit, on a copy of a store
 * built by bench/bktElo.bench.ts (BENCH_DIR holds base.duckdb and the bkt / elo model directories): does a full
 * run fit in the limit, what does each step cost, and what did it store. Per pass, the CPU seconds of each step
 * (VERBOSE=1) and ok / FAILED with DuckDB's message; at the end a digest of what the job stored (row count and
 * an xor of row hashes of learner_state, student_mastery and student_mastery_history, the write-time stamps
 * left out, and of the watermark), so two trees or two block sizes can be compared on the same store:
 *
 *   BENCH_DIR=/tmp/x MEMORY_LIMIT=60MB VERBOSE=1 npx tsx bench/bktEloMemory.bench.ts
 *   BENCH_DIR=/tmp/x MEMORY_LIMIT=500MB PASSES=cold,day npx tsx bench/bktEloMemory.bench.ts  # then a 1% day
 *   WRITE_KEYS=4096 ...                                    # keys written per transaction (default from the limit)
 *
 *   MEMORY_LIMIT=40MB RERUN=full ...                      # after a failed pass: reopen at RERUN_LIMIT (4GB) and
 *                                                          # run again (full, or "day"), then the digest
 *
 * PASSES: "cold" (a full run on the copy), "warm" (a full rerun), "day" (an incremental run); after the cold
 * pass, when a day follows, 1% of the students' last day of events is appended one day later (new ids, ingested
 * now) as bench/bktElo.bench.ts does. The day's ingested_at is the wall clock, so the watermark's digest differs
 * between runs whenever a day is appended. DuckDB runs on one thread (THREADS to change). Exit status 2 on a
 * failed pass. Run it under `/usr/bin/time -v` for the peak RSS.
 */
import { copyFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { resolveModels, scoreBktElo } from "../serving/learnerState.ts";
import { DuckStore } from "../storage/duckdb.ts";
import { bktEloDigest } from "./bktEloDigest.ts";
import { appendNextDay } from "./nextDay.ts";

const root = process.env.BENCH_DIR ?? "/tmp/batch-bkt-10000";
const scratch = join(root, `memory-${process.pid}.duckdb`);
const drop = () => {
  rmSync(scratch, { force: true });
  rmSync(`${scratch}.wal`, { force: true });
  rmSync(`${scratch}.tmp`, { recursive: true, force: true });
};
drop();
copyFileSync(join(root, "base.duckdb"), scratch);
const open = (memoryLimit: string) =>
  DuckStore.open(scratch, { threads: Number(process.env.THREADS ?? 1), memoryLimit });
let store = await open(process.env.MEMORY_LIMIT ?? "4GB");
const models = await resolveModels(store, { bktModelDir: join(root, "bkt"), eloModelDir: join(root, "elo") });
const cpu = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};
let c0 = cpu();
const now = new Date("2026-12-05T00:00:00Z");
const writeKeys = process.env.WRITE_KEYS === undefined ? {} : { writeKeys: Number(process.env.WRITE_KEYS) };
const passes = (process.env.PASSES ?? "cold").split(",");
let failed = false;
for (const pass of passes) {
  try {
    const r = await scoreBktElo(store, models, {
      full: pass !== "day",
      now,
      ...writeKeys,
      onPhase: (p) => {
        const t = cpu();
        if (process.env.VERBOSE === "1") process.stderr.write(`  ${pass} ${p}: ${(t - c0).toFixed(2)}\n`);
        c0 = t;
      },
    });
    process.stderr.write(`${pass}: ok, keys ${r.keys}, history rows ${r.historyRows}\n`);
  } catch (err) {
    process.stderr.write(`${pass}: FAILED ${(err as Error).message.split("\n")[0]}\n`);
    failed = true;
    break;
  }
  if (pass === "cold" && passes.includes("day")) {
    await appendNextDay(store, { mod: 100, below: 1 });
    await store.run("CHECKPOINT");
    c0 = cpu();
  }
}
const rerun = process.env.RERUN;
if (failed && rerun !== undefined) {
  // A stopped run, then the next one in a new process (what a scheduler's retry does): what does it store?
  store.close();
  store = await open(process.env.RERUN_LIMIT ?? "4GB");
  const r = await scoreBktElo(store, models, { full: rerun !== "day", now, ...writeKeys });
  process.stderr.write(`rerun (${rerun}): ok, keys ${r.keys}, history rows ${r.historyRows}\n`);
  failed = false;
}
if (!failed) {
  const digest = await bktEloDigest(store, { withoutClocks: true });
  process.stdout.write(`${JSON.stringify({ memoryLimit: process.env.MEMORY_LIMIT ?? "4GB", digest })}\n`);
}
store.close();
drop();
if (failed) process.exit(2);
