/**
 * The whole daily batch on the embedded default, end to end: generate N events (timed apart, not part
 * of the batch), ingest, features, rule scores, BKT/Elo state and scores (learner_state,
 * student_mastery, student_mastery_history), the served score per (student, topic) (issue 16's estimate, the
 * batch's last step: serving/servedBatch.ts), with process CPU and peak RSS. Then the stream updater (the one incremental
 * path of POST /events and the worker) on a sample of the same events, so events/s of both paths sit
 * side by side.
 *
 *   npx tsx bench/pipeline.bench.ts                   # 2,000 students x 30 days, ~0.2M events (quick)
 *   STUDENTS=10000 npx tsx bench/pipeline.bench.ts    # ~1M events
 *   STUDENTS=100000 npx tsx bench/pipeline.bench.ts   # ~10M events (issue 17 target: batch <= 60 s)
 *   STREAM_EVENTS=50000 ...                           # events replayed through the stream updater (default 20,000)
 *   DIGEST=1 ...                                      # digests of the stored rows after the batch (bench/bktEloDigest.ts)
 *   OVERLAP=0|writes|auto|1 ...                       # how features, rules and BKT/Elo share the cores (default: the
 *                                                     # pipeline's, "auto"; serving/batchSteps.ts)
 *   SERVED_MODEL=dir ...                              # the served model (default: one trained on 2,000 generated
 *                                                     # students, cached in BENCH_DIR: bench/trainedServedModel.ts)
 *   SERVED_WORKERS=n ...                              # the served step's scoring threads (default its own)
 *
 * BKT/Elo scoring is the columnar batch (serving/learnerState.ts scoreBktElo, the one batch path).
 * The BKT/Elo models are quick-fitted on the store's quiz attempts after ingest ("fit bkt-elo", reported,
 * not counted: the daily batch scores with registered models). The batch is ingest + the scoring steps
 * (features, rules, BKT/Elo: one wall and CPU figure, as they may overlap; each step's own span beside it)
 * + the served score. No ML champion is registered here, so
 * the batch has no ML score step. Targets (issue 17): batch <= 60 s for 10M events; BKT/Elo scoring
 * <= 3 s per 1M events.
 */
import { rmSync } from "node:fs";
import { join } from "node:path";
import { ingestWatermark } from "../features/incrementalFeatures.ts";
import { Pseudonymizer } from "../features/pseudonymize.ts";
import { resolveAsOf } from "../features/windows.ts";
import { type BktEloModels, resolveModels, scoreBktElo } from "../serving/learnerState.ts";
import { runPipeline } from "../serving/pipeline.ts";
import { scoreServedBatch } from "../serving/servedBatch.ts";
import { IncrementalUpdater } from "../serving/updater.ts";
import { DuckStore } from "../storage/duckdb.ts";
import { DuckMasteryStore } from "../storage/masteryStore.ts";
import { DuckRawEventStore, type RawEventRow } from "../storage/rawEventStore.ts";
import { DuckStateStore } from "../storage/stateStore.ts";
import { BATCH_DIGEST_QUERIES, tableDigests } from "./bktEloDigest.ts";
import { appendNextDay } from "./nextDay.ts";
import { seedSchool } from "./seedSchool.ts";
import { trainedServedModel } from "./trainedServedModel.ts";

const students = Number(process.env.STUDENTS ?? 2_000);
const days = Number(process.env.DAYS ?? 30);
const streamEvents = Number(process.env.STREAM_EVENTS ?? 20_000);
const benchDir = process.env.BENCH_DIR ?? "bench/out";
const root = join(benchDir, `pipeline-${students}`);
rmSync(root, { recursive: true, force: true });
const served = await trainedServedModel(benchDir);
const servedWorkers =
  process.env.SERVED_WORKERS === undefined ? undefined : Number(process.env.SERVED_WORKERS);
const dataDir = join(root, "data");
const store = await DuckStore.open(join(root, "mastery.duckdb"));

const seconds: Record<string, number> = {};
const cpuSeconds: Record<string, number> = {};
const cpuNow = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};
async function step<T>(name: string, fn: () => Promise<T>): Promise<T> {
  const t0 = performance.now();
  const c0 = cpuNow();
  const out = await fn();
  seconds[name] = Number(((performance.now() - t0) / 1000).toFixed(2));
  cpuSeconds[name] = Number((cpuNow() - c0).toFixed(2));
  process.stderr.write(`${name}: ${seconds[name]} s (cpu ${cpuSeconds[name]} s)\n`);
  return out;
}

const count = async (sql: string): Promise<number> => Number((await store.one<{ n: bigint }>(sql))?.n ?? 0n);

// generate -> ingest -> fit (not counted) -> features, rule scores, BKT/Elo (the same functions `mastery schedule`
// calls). OVERLAP=0 runs the three in sequence, OVERLAP=writes|auto (the pipeline's default) puts each one-thread
// write phase beside the next step's work, OVERLAP=1 starts them together (serving/batchSteps.ts).
const overlapEnv = process.env.OVERLAP;
const overlap =
  overlapEnv === undefined
    ? undefined
    : overlapEnv === "0"
      ? false
      : overlapEnv === "1"
        ? true
        : overlapEnv === "writes" || overlapEnv === "auto"
          ? overlapEnv
          : (() => {
              throw new Error(`OVERLAP must be 0, 1, writes or auto (got ${overlapEnv})`);
            })();
let stepCpu = cpuNow();
let groupCpu = 0;
let groupEndCpu: number | undefined;
let models: BktEloModels | undefined;
const pipeline = await runPipeline({
  store,
  pseudonymizer: new Pseudonymizer("bench-key-0123456789abcdef"),
  dataDir,
  generate: seedSchool(students, dataDir, { days }),
  models: async (s) => {
    models = await resolveModels(s, { seed: 0 });
    return models;
  },
  bktEloFull: true,
  ...(overlap !== undefined ? { overlap } : {}),
  served: { model: served.model, version: served.version },
  ...(servedWorkers !== undefined ? { servedWorkers } : {}),
  // CPU per step: the process's user + sys since the previous step ended (onStep fires at each step's end). With
  // the steps overlapped a step's CPU is not its own: the group's CPU is reported instead.
  onStep: (s, ms) => {
    const c = cpuNow();
    const name = s === "fit bkt-elo" ? "fit bkt-elo (not counted)" : s;
    seconds[name] = Number((ms / 1000).toFixed(2));
    cpuSeconds[name] = Number((c - stepCpu).toFixed(2));
    if (s === "fit bkt-elo") groupCpu = c;
    // The served step runs after the scoring group: the group's CPU ends where it starts.
    if (s === "score served") groupEndCpu = stepCpu;
    stepCpu = c;
    process.stderr.write(`${name}: ${seconds[name]} s (cpu ${cpuSeconds[name]} s)\n`);
  },
});
if (models === undefined) throw new Error("the pipeline did not fit the BKT/Elo models");
const fitted: BktEloModels = models;
const SCORING = "features + score rules + score bkt-elo";
seconds[SCORING] = Number((pipeline.scoring.millis / 1000).toFixed(2));
cpuSeconds[SCORING] = Number(((groupEndCpu ?? cpuNow()) - groupCpu).toFixed(2));
process.stderr.write(
  `${SCORING} (${pipeline.scoring.schedule}): ${seconds[SCORING]} s (cpu ${cpuSeconds[SCORING]} s)\n`,
);
// DIGEST=1: what the batch stored, per table "rows/xor of row hashes", the clocks left out (bench/bktEloDigest.ts):
// equal digests mean the same rows, whatever the schedule.
const digests = process.env.DIGEST === "1" ? await tableDigests(store, BATCH_DIGEST_QUERIES) : undefined;
const historyRows = await count(
  "SELECT count(*) AS n FROM student_mastery_history WHERE score_source IN ('bkt', 'elo')",
);
// An incremental day: 1% of the students active (their last day of events again, one day later, new
// event ids), then the daily BKT/Elo run folds only those keys' new events onto their stored states.
// The day's served step rescores the students with rows ingested after this watermark (serving/servedBatch.ts since).
const dayWatermark = await ingestWatermark(store);
const dayEvents = await step("append a day, 1% of students (not counted)", async () => {
  await appendNextDay(store, { mod: 100, below: 1 });
  return count("SELECT count(*) AS n FROM raw_events WHERE event_id LIKE '%-next'");
});
const incremental = await step("score bkt-elo, incremental day", () => scoreBktElo(store, fitted));
const dayAsOf = await resolveAsOf(store, "now");
const servedDay = await step("score served, incremental day", () =>
  scoreServedBatch(store, served.model, served.version, {
    asOf: dayAsOf,
    since: { asOf: pipeline.asOf, ingestedThroughUs: dayWatermark },
  }),
);
// The served score (the pipeline's last step, serving/servedBatch.ts): every pair scored by the served model.
if (pipeline.served === null) throw new Error("the pipeline ran no served step");
const servedScores = pipeline.served.pairs;

const BATCH_STEPS = ["ingest", SCORING, "score served"];
const batchSeconds = BATCH_STEPS.reduce((s, k) => s + (seconds[k] ?? 0), 0);
const events = pipeline.events;

// The stream updater on the first STREAM_EVENTS events (time order) into a fresh embedded store.
const sample = (await store.all(
  `SELECT * EXCLUDE (ts, ingested_at), epoch_us(ts)::DOUBLE AS ts_us, epoch_us(ingested_at)::DOUBLE AS ingested_at_us
   FROM raw_events ORDER BY ts, event_id LIMIT $n`,
  { n: streamEvents },
)) as unknown as RawEventRow[];
const streamStore = await DuckStore.open(":memory:");
const updater = new IncrementalUpdater({
  raw: await DuckRawEventStore.open(streamStore),
  state: await DuckStateStore.open(streamStore),
  mastery: await DuckMasteryStore.open(streamStore),
  models: fitted,
});
const streamSeconds = await step("stream updater (sample)", async () => {
  const t0 = performance.now();
  for (let i = 0; i < sample.length; i += 500) await updater.apply(sample.slice(i, i + 500));
  return (performance.now() - t0) / 1000;
});
streamStore.close();

const out = {
  events,
  students,
  days,
  featureRows: pipeline.featureRows,
  ruleScores: pipeline.ruleScores,
  schedule: pipeline.scoring.schedule,
  bktEloKeys: pipeline.bktEloKeys,
  historyRowsBktElo: historyRows,
  servedScores,
  servedEvidence: pipeline.served.evidence,
  servedModel: served.dir,
  seconds,
  cpuSeconds,
  batchSeconds: Number(batchSeconds.toFixed(2)),
  batchCpuSeconds: Number(BATCH_STEPS.reduce((s, k) => s + (cpuSeconds[k] ?? 0), 0).toFixed(2)),
  batchEventsPerSecond: Math.round(events / batchSeconds),
  bktEloSecondsPer1M: Number(((seconds["score bkt-elo"] ?? 0) / (events / 1e6)).toFixed(2)),
  bktEloCpuSecondsPer1M: Number(((cpuSeconds["score bkt-elo"] ?? 0) / (events / 1e6)).toFixed(2)),
  incrementalDay: {
    newEvents: dayEvents,
    keys: incremental.keys,
    seconds: seconds["score bkt-elo, incremental day"],
    cpuSeconds: cpuSeconds["score bkt-elo, incremental day"],
    served: {
      incremental: servedDay.incremental,
      pairs: servedDay.scored,
      events: servedDay.events,
      seconds: seconds["score served, incremental day"],
      cpuSeconds: cpuSeconds["score served, incremental day"],
    },
  },
  streamUpdater: {
    events: sample.length,
    batch: 500,
    seconds: Number(streamSeconds.toFixed(2)),
    eventsPerSecond: Math.round(sample.length / streamSeconds),
  },
  batchBktEloEventsPerSecond: Math.round(pipeline.bktEloEvents / (seconds["score bkt-elo"] ?? 1)),
  processCpuSeconds: Number(cpuNow().toFixed(2)),
  peakRssMB: Math.round(process.resourceUsage().maxRSS / 1024),
  targets: { batchSecondsFor10M: 60, bktEloSecondsPer1M: 3 },
  ...(digests !== undefined ? { digests } : {}),
};
store.close();
process.stdout.write(`${JSON.stringify(out)}\n`);
rmSync(root, { recursive: true, force: true });
