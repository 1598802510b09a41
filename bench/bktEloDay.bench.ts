/**
 * The 1% day's BKT/Elo step alone (serving/learnerState.ts scoreBktElo, incremental), on a store of
 * bench/bktElo.bench.ts (BENCH_DIR with base.duckdb, bkt/, elo/), split by step (onPhase):
 *
 *   BENCH_DIR=/tmp/bkt12/store1m RUNS=3 THREADS=1 nice -n 10 npx tsx bench/bktEloDay.bench.ts
 *
 * The first call prepares `day.duckdb` next to base.duckdb (once): a copy of base.duckdb, a full run, a
 * CHECKPOINT, the 1% day's events (as bench/bktElo.bench.ts: the active students' last day again, one day
 * later, new ids) and a CHECKPOINT. Every run then copies day.duckdb to a scratch file and measures only the
 * day's run (process CPU seconds, user + sys, DuckDB threads included), with a fixed `now`, so two trees run on
 * one prepared file store the same rows: the output ends with a digest (row count and xor of row hashes) of
 * learner_state, student_mastery, student_mastery_history and the watermark after the run. Prepare the file
 * with one tree and run both trees on it (A/B pairs).
 */
import { copyFileSync, existsSync, rmSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import { resolveModels, scoreBktElo } from "../serving/learnerState.ts";
import { DuckStore } from "../storage/duckdb.ts";
import { bktEloDigest } from "./bktEloDigest.ts";
import { cpuNow, roundedMedian as median } from "./cpuClock.ts";

const root = process.env.BENCH_DIR ?? "/tmp/batch-bkt-10000";
const runs = Number(process.env.RUNS ?? 3);
const threads = Number(process.env.THREADS ?? 1);
const basePath = join(root, "base.duckdb");
const dayPath = join(root, "day.duckdb");
const scratch = join(root, `day-scratch-${process.pid}.duckdb`);
const bktDir = join(root, "bkt");
const eloDir = join(root, "elo");
if (!existsSync(join(bktDir, "model.json")))
  throw new Error(
    `bktEloDay.bench: no store in ${root}; build one with bench/bktElo.bench.ts (BENCH_DIR=${root})`,
  );

const now = new Date("2030-01-01T00:00:00Z");
const open = (path: string) => DuckStore.open(path, threads > 0 ? { threads } : {});

if (!existsSync(dayPath)) {
  process.stderr.write(`preparing ${dayPath} (once): full run, the 1% day's events\n`);
  const prep = join(root, `day-prep-${process.pid}.duckdb`);
  copyFileSync(basePath, prep);
  const store = await open(prep);
  const models = await resolveModels(store, { bktModelDir: bktDir, eloModelDir: eloDir });
  await scoreBktElo(store, models, { full: true, now: new Date("2029-12-31T00:00:00Z") });
  await store.run("CHECKPOINT");
  await store.run(
    `INSERT INTO raw_events
     SELECT * REPLACE (event_id || '-next' AS event_id, ts + INTERVAL 1 DAY AS ts, now()::TIMESTAMP AS ingested_at)
     FROM raw_events
     WHERE hash(student_key) % 100 = 0 AND ts >= (SELECT max(ts) - INTERVAL 1 DAY FROM raw_events)`,
  );
  await store.run("CHECKPOINT");
  store.close();
  copyFileSync(prep, dayPath);
  rmSync(prep, { force: true });
}

const phaseCpu = new Map<string, number[]>();
const totals: number[] = [];
let digest: Record<string, string> = {};
let keys = 0;
let narrowing = "";
for (let r = 0; r < runs; r++) {
  rmSync(scratch, { force: true });
  rmSync(`${scratch}.wal`, { force: true });
  copyFileSync(dayPath, scratch);
  const store = await open(scratch);
  const models = await resolveModels(store, { bktModelDir: bktDir, eloModelDir: eloDir });
  let phaseStart = cpuNow();
  const onPhase = (name: string) => {
    const t = cpuNow();
    phaseCpu.set(name, [...(phaseCpu.get(name) ?? []), t - phaseStart]);
    phaseStart = t;
  };
  const c0 = cpuNow();
  const out = await scoreBktElo(store, models, { now, onPhase });
  totals.push(cpuNow() - c0);
  keys = out.keys;
  narrowing = out.narrowing;
  digest = await bktEloDigest(store, { withoutClocks: false });
  store.close();
  process.stderr.write(`run ${r + 1}/${runs}: day cpu ${totals[r]!.toFixed(3)} s, keys ${keys}\n`);
}
rmSync(scratch, { force: true });
rmSync(`${scratch}.wal`, { force: true });
process.stdout.write(
  `${JSON.stringify({
    root,
    runs,
    threads,
    keys,
    narrowing,
    dayCpuSeconds: median(totals),
    dayCpuByStep: Object.fromEntries([...phaseCpu].map(([k, v]) => [k, median(v)])),
    loadavg: loadavg().map((x) => Number(x.toFixed(2))),
    digest,
  })}\n`,
);
