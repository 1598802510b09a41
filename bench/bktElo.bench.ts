/**
 * The BKT/Elo daily batch alone (serving/learnerState.ts scoreBktElo), full recompute and a 1%-active
 * incremental day, on a stored pipeline store, so the job can be profiled and timed apart from
 * ingest/features/rules:
 *
 *   npx tsx bench/bktElo.bench.ts                       # 10,000 students (~1M events), 3 runs
 *   STUDENTS=100000 RUNS=1 npx tsx bench/bktElo.bench.ts # ~10M events
 *   node --cpu-prof --cpu-prof-dir=/tmp/batch-prof --import tsx bench/bktElo.bench.ts   # profile
 *   THREADS=1 npx tsx bench/bktElo.bench.ts            # DuckDB on one thread
 *   EVENT_BLOCK_ROWS=262144 npx tsx bench/bktElo.bench.ts  # event rows read and folded per block (default 4M)
 *   PHASES=1 npx tsx bench/bktElo.bench.ts              # also the full job's CPU split by step (medians)
 *   WARM=1 npx tsx bench/bktElo.bench.ts                # also a second full run over the scored store (a rerun)
 *   MEMORY_LIMIT=200MB npx tsx bench/bktElo.bench.ts    # DuckDB's memory_limit for the runs (default: DuckDB's)
 *   WRITE_KEYS=20000 npx tsx bench/bktElo.bench.ts      # keys written per transaction (default from the limit)
 *
 * After each full run a CHECKPOINT is measured apart (fullCheckpointCpuSeconds, and the job with it per 1M):
 * what the job's commit left in the WAL is written there (or at the file's close) instead.
 *
 * The first run builds the store under BENCH_DIR (default /tmp/batch-bkt-<students>: generate, ingest,
 * features, rule scores; BKT and Elo fitted once and saved as model directories) and keeps it; every
 * run copies it to a scratch file so each measures the same work. Reported per run: wall and process
 * CPU seconds (user + sys, DuckDB threads included) of the full job and of the incremental day, and as
 * an anchor, in the same run, one DuckDB aggregation over raw_events (GROUP BY student_key, topic_id):
 * the ratio job / anchor is what to compare across machine states. Medians over RUNS.
 */
import { copyFileSync, existsSync, mkdirSync, rmSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import { Pseudonymizer } from "../features/pseudonymize.ts";
import { resolveModels, scoreBktElo } from "../serving/learnerState.ts";
import { runPipeline } from "../serving/pipeline.ts";
import { DuckStore } from "../storage/duckdb.ts";
import { cpuNow, roundedMedian as median } from "./cpuClock.ts";
import { appendNextDay } from "./nextDay.ts";
import { saveQuickModels } from "./quickModels.ts";
import { seedSchool } from "./seedSchool.ts";

const students = Number(process.env.STUDENTS ?? 10_000);
const runs = Number(process.env.RUNS ?? 3);
const threads = Number(process.env.THREADS ?? 0);
const eventBlockRows =
  process.env.EVENT_BLOCK_ROWS === undefined ? {} : { eventBlockRows: Number(process.env.EVENT_BLOCK_ROWS) };
const memoryLimit = process.env.MEMORY_LIMIT === undefined ? {} : { memoryLimit: process.env.MEMORY_LIMIT };
const writeKeys = process.env.WRITE_KEYS === undefined ? {} : { writeKeys: Number(process.env.WRITE_KEYS) };
const root = process.env.BENCH_DIR ?? `/tmp/batch-bkt-${students}`;
const basePath = join(root, "base.duckdb");
const bktDir = join(root, "bkt");
const eloDir = join(root, "elo");

async function measure<T>(fn: () => Promise<T>): Promise<{ out: T; wall: number; cpu: number }> {
  const t0 = performance.now();
  const c0 = cpuNow();
  const out = await fn();
  return { out, wall: (performance.now() - t0) / 1000, cpu: cpuNow() - c0 };
}

if (!existsSync(join(bktDir, "model.json"))) {
  rmSync(root, { recursive: true, force: true });
  mkdirSync(root, { recursive: true });
  process.stderr.write(`building the store for ${students} students in ${root} (once)\n`);
  const store = await DuckStore.open(basePath);
  await runPipeline({
    store,
    pseudonymizer: new Pseudonymizer("bench-key-0123456789abcdef"),
    dataDir: join(root, "data"),
    generate: seedSchool(students, join(root, "data")),
    skip: ["score bkt-elo"],
    onStep: (s, ms) => process.stderr.write(`  ${s}: ${(ms / 1000).toFixed(1)} s\n`),
  });
  await saveQuickModels(store, bktDir, eloDir);
  store.close();
  rmSync(join(root, "data"), { recursive: true, force: true });
}

const scratch = join(root, "scratch.duckdb");
// Per step of the full job (scoreBktElo onPhase): process CPU seconds since the previous step, per run.
const phaseCpu = new Map<string, number[]>();
const phases = process.env.PHASES === "1";
// WARM=1: after the cold full run, a second full run over the store it scored (the daily `--full` rerun over
// unchanged events: every state and score is recomputed and equals the stored one).
const warm = process.env.WARM === "1";
const rows: {
  full: number;
  fullCpu: number;
  fullCkptCpu: number;
  warm: number;
  warmCpu: number;
  warmCkptCpu: number;
  day: number;
  dayCpu: number;
  anchorCpu: number;
}[] = [];
// Rows the job appended to student_mastery_history (null when the job does not report them).
const historyOf = (out: object): number | null =>
  "historyRows" in out && typeof out.historyRows === "number" ? out.historyRows : null;
let history: Record<string, number | null> = {};
let info: Record<string, number> = {};
let narrowing = "";
for (let r = 0; r < runs; r++) {
  rmSync(scratch, { force: true });
  rmSync(`${scratch}.wal`, { force: true });
  copyFileSync(basePath, scratch);
  // THREADS=n opens the store with n DuckDB worker threads (default: one per core; `score bkt-elo --threads`).
  const store = await DuckStore.open(scratch, { ...(threads > 0 ? { threads } : {}), ...memoryLimit });
  const models = await resolveModels(store, { bktModelDir: bktDir, eloModelDir: eloDir });
  const anchor = await measure(() =>
    store.all("SELECT student_key, topic_id, count(*) AS n FROM raw_events GROUP BY ALL"),
  );
  let phaseStart = cpuNow();
  const onPhase = (name: string) => {
    const t = cpuNow();
    phaseCpu.set(name, [...(phaseCpu.get(name) ?? []), t - phaseStart]);
    phaseStart = t;
  };
  const full = await measure(() =>
    scoreBktElo(store, models, {
      full: true,
      ...eventBlockRows,
      ...writeKeys,
      ...(phases ? { onPhase } : {}),
    }),
  );
  // The job's commit checkpoints only when its WAL passes DuckDB's threshold; what it leaves in the WAL is
  // written by the next checkpoint (this one, or the file's close): measured apart so the job's figure cannot
  // shrink by leaving its writes to it.
  const fullCkpt = await measure(() => store.run("CHECKPOINT"));
  let warmRun = { wall: 0, cpu: 0, history: null as number | null, ckptCpu: 0 };
  if (warm) {
    const onWarmPhase = (name: string) => onPhase(`warm: ${name}`);
    phaseStart = cpuNow();
    const w = await measure(() =>
      scoreBktElo(store, models, {
        full: true,
        ...eventBlockRows,
        ...writeKeys,
        ...(phases ? { onPhase: onWarmPhase } : {}),
      }),
    );
    const ckpt = await measure(() => store.run("CHECKPOINT"));
    warmRun = { wall: w.wall, cpu: w.cpu, history: historyOf(w.out), ckptCpu: ckpt.cpu };
  }
  // A day with 1% of the students active: their last day of events again, one day later, new ids.
  await appendNextDay(store, { mod: 100, below: 1 });
  // As on a real day, the previous run's writes are checkpointed (a daily run is a new process; DuckDB
  // checkpoints at close): without this, the day's commit pays for the full run's checkpoint.
  await store.run("CHECKPOINT");
  const day = await measure(() => scoreBktElo(store, models, { ...eventBlockRows, ...writeKeys }));
  info = { events: full.out.events, keys: full.out.keys, dayEvents: day.out.events, dayKeys: day.out.keys };
  narrowing = day.out.narrowing;
  history = {
    full: historyOf(full.out),
    ...(warm ? { warm: warmRun.history } : {}),
    day: historyOf(day.out),
  };
  rows.push({
    full: full.wall,
    fullCpu: full.cpu,
    fullCkptCpu: fullCkpt.cpu,
    warm: warmRun.wall,
    warmCpu: warmRun.cpu,
    warmCkptCpu: warmRun.ckptCpu,
    day: day.wall,
    dayCpu: day.cpu,
    anchorCpu: anchor.cpu,
  });
  const warmText = warm
    ? `, warm full ${warmRun.wall.toFixed(2)} s (cpu ${warmRun.cpu.toFixed(2)}, checkpoint after it ${warmRun.ckptCpu.toFixed(2)})`
    : "";
  process.stderr.write(
    `run ${r + 1}/${runs}: full ${full.wall.toFixed(2)} s (cpu ${full.cpu.toFixed(2)}, checkpoint after it ${fullCkpt.cpu.toFixed(2)})${warmText}, day ${day.wall.toFixed(2)} s (cpu ${day.cpu.toFixed(2)}), anchor cpu ${anchor.cpu.toFixed(2)}, history rows ${JSON.stringify(history)}\n`,
  );
  store.close();
}
rmSync(scratch, { force: true });
const fullCpu = median(rows.map((x) => x.fullCpu));
const anchorCpu = median(rows.map((x) => x.anchorCpu));
process.stdout.write(
  `${JSON.stringify({
    students,
    runs,
    duckdbThreads: threads > 0 ? threads : "default",
    memoryLimit: process.env.MEMORY_LIMIT ?? "default",
    writeKeys: process.env.WRITE_KEYS ?? "default",
    ...info,
    fullSeconds: median(rows.map((x) => x.full)),
    fullCpuSeconds: fullCpu,
    fullCpuSecondsPer1M: Number((fullCpu / (info.events! / 1e6)).toFixed(2)),
    // CPU of a CHECKPOINT right after the job (what its commit left in the WAL), and the job with it.
    fullCheckpointCpuSeconds: median(rows.map((x) => x.fullCkptCpu)),
    fullWithCheckpointCpuSecondsPer1M: Number(
      (median(rows.map((x) => x.fullCpu + x.fullCkptCpu)) / (info.events! / 1e6)).toFixed(2),
    ),
    ...(warm
      ? {
          warmFullSeconds: median(rows.map((x) => x.warm)),
          warmFullCpuSeconds: median(rows.map((x) => x.warmCpu)),
          warmFullCpuSecondsPer1M: Number(
            (median(rows.map((x) => x.warmCpu)) / (info.events! / 1e6)).toFixed(2),
          ),
          warmCheckpointCpuSeconds: median(rows.map((x) => x.warmCkptCpu)),
          warmWithCheckpointCpuSecondsPer1M: Number(
            (median(rows.map((x) => x.warmCpu + x.warmCkptCpu)) / (info.events! / 1e6)).toFixed(2),
          ),
        }
      : {}),
    historyRows: history,
    daySeconds: median(rows.map((x) => x.day)),
    dayCpuSeconds: median(rows.map((x) => x.dayCpu)),
    anchorCpuSeconds: anchorCpu,
    dayNarrowing: narrowing,
    loadavg: loadavg().map((x) => Number(x.toFixed(2))),
    fullOverAnchor: Number((fullCpu / anchorCpu).toFixed(1)),
    ...(phases ? { fullCpuByStep: Object.fromEntries([...phaseCpu].map(([k, v]) => [k, median(v)])) } : {}),
    target: { fullCpuSecondsPer1M: 3, daySecondsOn10M: 5 },
  })}\n`,
);
