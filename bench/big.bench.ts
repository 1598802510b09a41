/**
 * The daily batch at 1M / 10M / 100M events in bounded memory (issue 17 item 4): generate (not counted)
 * -> ingest -> features -> rule scores -> BKT/Elo state and scores (full) -> the served score, each step
 * with its wall time, the process's CPU seconds (user + sys, DuckDB threads included) and its peak RSS
 * (sampled every 100 ms by a worker thread, so a step that blocks the main thread is still sampled; the
 * process's exact peak, VmHWM, is reported for the whole run).
 *
 *   STUDENTS=10000 npx tsx bench/big.bench.ts                       # ~1M events
 *   STUDENTS=100000 npx tsx bench/big.bench.ts                      # ~10M
 *   STUDENTS=1000000 BIG_DIR=/tmp/big nice -n 19 npx tsx bench/big.bench.ts   # ~100M, ~11 GB of CSV
 *   SERVED_MODEL=dir ...                                            # the served model (default: bench/trainedServedModel.ts)
 *
 * MEMORY_LIMIT (default 4GB) is DuckDB's memory_limit; it spills to the store's `.tmp` directory beyond it.
 * THREADS sets DuckDB's threads (default: one per core). REUSE=1 keeps the generated CSV files between runs
 * (BIG_DIR/data-<students>) and skips generation when they are there; the store is always rebuilt.
 * The BKT/Elo models are quick-fitted on the store ("fit", not counted; the quick fit reads a bounded sample
 * of students' quiz attempts, serving/learnerState.ts QUICK_FIT_MAX_ATTEMPTS).
 */
import { existsSync, rmSync } from "node:fs";
import { join } from "node:path";
import { Pseudonymizer } from "../features/pseudonymize.ts";
import { resolveModels } from "../serving/learnerState.ts";
import { runPipeline } from "../serving/pipeline.ts";
import { scoreServedBatch } from "../serving/servedBatch.ts";
import { DuckStore } from "../storage/duckdb.ts";
import { BATCH_DIGEST_QUERIES, tableDigests } from "./bktEloDigest.ts";
import { hwmMB, startRssSampler } from "./rssSampler.ts";
import { seedSchool } from "./seedSchool.ts";
import { trainedServedModel } from "./trainedServedModel.ts";

const students = Number(process.env.STUDENTS ?? 10_000);
const days = Number(process.env.DAYS ?? 30);
const memoryLimit = process.env.MEMORY_LIMIT ?? "4GB";
const threads = process.env.THREADS === undefined ? undefined : Number(process.env.THREADS);
const reuse = process.env.REUSE === "1";
const base = process.env.BIG_DIR ?? "/tmp/big";
const dataDir = join(base, `data-${students}`);
const dbPath = join(base, `store-${students}`, "mastery.duckdb");
rmSync(join(base, `store-${students}`), { recursive: true, force: true });
const haveData = reuse && existsSync(join(dataDir, "manifest.json"));
if (!haveData) rmSync(dataDir, { recursive: true, force: true });
// The served model (SERVED_MODEL=dir, else one trained on 2,000 generated students, cached in BIG_DIR; not timed).
const served = await trainedServedModel(base);

// Peak RSS per step: a worker thread samples /proc/self/statm (the whole process) every 100 ms.
const sampler = startRssSampler();

const cpuNow = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};
const rows: { step: string; seconds: number; cpuSeconds: number; peakRssMB: number }[] = [];
let mark = { t: performance.now(), c: cpuNow() };
const startStep = () => {
  sampler.takePeak();
  mark = { t: performance.now(), c: cpuNow() };
};
const endStep = (step: string) => {
  const r = {
    step,
    seconds: Number(((performance.now() - mark.t) / 1000).toFixed(1)),
    cpuSeconds: Number((cpuNow() - mark.c).toFixed(1)),
    peakRssMB: sampler.takePeak(),
  };
  rows.push(r);
  process.stderr.write(
    `${new Date().toISOString()} ${step}: ${r.seconds} s, cpu ${r.cpuSeconds} s, peak RSS ${r.peakRssMB} MB\n`,
  );
  startStep();
};
let lastNote = 0;
const progress = (what: string, done: number, total: number) => {
  const now = performance.now();
  if (now - lastNote < 15_000 && done < total) return;
  lastNote = now;
  process.stderr.write(`  ${what}: ${done.toLocaleString("en")} / ${total.toLocaleString("en")}\n`);
};

const store = await DuckStore.open(dbPath, {
  memoryLimit,
  ...(threads === undefined ? {} : { threads }),
  encryption: null,
});
await store.run("SET preserve_insertion_order = false");
process.stderr.write(
  `big: ${students.toLocaleString("en")} students x ${days} days, DuckDB memory_limit ${memoryLimit}, data ${dataDir}${haveData ? " (reused)" : ""}, store ${dbPath}\n`,
);

startStep();
// Features, rules and BKT/Elo in sequence (OVERLAP=0), or side by side (serving/batchSteps.ts) with OVERLAP=1 (all
// together), OVERLAP=writes (each one-thread write phase beside the next step's work) or OVERLAP=auto ("writes"
// up to OVERLAP_MAX_EVENTS events, the pipeline's default): their CPU and peak RSS are the group's, each step's
// own wall span is reported beside it.
// OVERLAP=writes: the one-thread write phases beside the next step's work; unset: the pipeline's default ("auto").
const overlapEnv = process.env.OVERLAP;
const overlap =
  overlapEnv === "1"
    ? true
    : overlapEnv === "auto" || overlapEnv === "writes"
      ? overlapEnv
      : overlapEnv === undefined
        ? undefined
        : false;
const spans: Record<string, number> = {};
const pipeline = await runPipeline({
  store,
  pseudonymizer: new Pseudonymizer("bench-key-0123456789abcdef"),
  dataDir,
  ...(haveData ? {} : { generate: seedSchool(students, dataDir, { days }) }),
  models: (s) => resolveModels(s, { seed: 0 }),
  bktEloFull: true,
  ...(overlap !== undefined ? { overlap } : {}),
  onProgress: (s, done, total) => progress(s, done, total),
  onStep: (s, millis) => {
    if (s === "generate" || s === "ingest" || s === "fit bkt-elo")
      endStep(s === "ingest" ? s : `${s} (not counted)`);
    else {
      spans[s] = Number((millis / 1000).toFixed(1));
      process.stderr.write(`${new Date().toISOString()}   ${s}: ${spans[s]} s (own span)\n`);
    }
  },
});
const SCORING = "features + score rules + score bkt-elo";
endStep(SCORING);
const bktElo = { keys: pipeline.bktEloKeys };
// The served score (issue 16's estimate; the pipeline's last step, run here on its own so its figures are apart).
const servedRun = await scoreServedBatch(store, served.model, served.version, {
  asOf: pipeline.asOf,
  onProgress: (done, total) => progress("score served", done, total),
});
const servedScores = servedRun.scored;
endStep("score served");
sampler.stop();

const BATCH = ["ingest", SCORING, "score served"];
const batch = rows.filter((r) => BATCH.includes(r.step));
const events = pipeline.ingest.total.accepted;
const out = {
  students,
  days,
  events,
  featureRows: pipeline.featureRows,
  ruleScores: pipeline.ruleScores,
  bktEloKeys: bktElo.keys,
  servedScores,
  servedEvidence: servedRun.evidence,
  servedParts: servedRun.parts,
  servedWorkers: servedRun.workers,
  servedModel: served.dir,
  memoryLimit,
  steps: rows,
  overlapped: pipeline.scoring.overlapped,
  spans,
  batchSeconds: Number(batch.reduce((s, r) => s + r.seconds, 0).toFixed(1)),
  batchCpuSeconds: Number(batch.reduce((s, r) => s + r.cpuSeconds, 0).toFixed(1)),
  batchPeakRssMB: Math.max(...batch.map((r) => r.peakRssMB)),
  processPeakRssMB: hwmMB(),
  processCpuSeconds: Number(cpuNow().toFixed(1)),
  targets: { batchSecondsFor100M: 900, peakRssMB: 8192 },
};
// DIGEST=1: what the batch stored, per table "rows/xor of row hashes" with the clocks left out (equal digests
// mean the same rows; docs/benchmarks.md "Ingest at 10M, round 3").
if (process.env.DIGEST === "1") {
  const digests = await tableDigests(store, [
    ...BATCH_DIGEST_QUERIES,
    ["student_context", "SELECT * FROM student_context"],
  ]);
  Object.assign(out, { digests });
}
store.close();
process.stdout.write(`${JSON.stringify(out)}\n`);
rmSync(join(base, `store-${students}`), { recursive: true, force: true });
if (!reuse) rmSync(dataDir, { recursive: true, force: true });
