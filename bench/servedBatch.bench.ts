/**
 * The real served score in the daily batch (issue 17 item 1, issue 16's estimate): what `mastery score served`
 * (serving/servedScoring.ts scoreServed) costs at the batch's scale, apart from the stand-in the pipeline benches
 * time (bench/pipeline.bench.ts, bench/big.bench.ts: `bench_served` = the first source in config order).
 *
 * 1. Builds a store with the pipeline (serving/pipeline.ts runPipeline: generate, ingest, features, rule scores,
 *    BKT/Elo full, as bench/pipeline.bench.ts does; STUDENTS=N, 30 days), or reuses it (REUSE=1).
 * 2. Trains the served model on it as `mastery train served` does with its defaults (serving/servedTraining.ts
 *    trainServed; reported apart: the daily batch scores with a registered model), or reuses one (MODEL=dir, or
 *    REUSE=1 and a model already trained on the store).
 * 3. On a copy of the store (so reruns start equal), times the stand-in, then `scoreServed` as of the batch's as-of
 *    (latest event + 1 s, as the pipeline's): wall, process CPU-s (user + sys, DuckDB's threads included), peak RSS
 *    (VmHWM reset before scoring, and a 100 ms sampler per phase), pairs scored, CPU-us per pair and per event, and
 *    its phases: the store's calls (all / run / appendRows / transaction) are timestamped on entry and exit, so the
 *    segments are the evidence query, the evidence map (JS), the latent sequences query, the latent filter (JS),
 *    the append (estimates + explanation JSON) and the writes + commit.
 *
 *   STUDENTS=10000 npx tsx bench/servedBatch.bench.ts                  # ~1M events, ~112k pairs
 *   STUDENTS=100000 REUSE=1 MODEL=/tmp/x/model node --max-old-space-size=12288 --import tsx \
 *     bench/servedBatch.bench.ts                                      # ~10M with a model trained at 1M (~12 GB RSS;
 *                                                                      # node's default heap is too small)
 *   GC=1 node --expose-gc --import tsx bench/servedBatch.bench.ts      # heap after a full GC at each mark (retained
 *                                                                      # JS memory per pair / per event; GC time is
 *                                                                      # left out of the phases)
 *   SERVED_PATH=old                                                  # scoreServed (mastery score served) instead
 *                                                                      # of the batch's step (scoreServedBatch)
 *   WORKERS (the batch step's scoring threads; default its own), PARTS (its student-key ranges)
 *   BENCH_DIR (default $TMPDIR/servedBatch), MEMORY_LIMIT (DuckDB's, default DuckDB's own), RUNS (scorings, default 1)
 * Both paths print a digest of the stored served/latent rows (count and xor of row hashes, the clock columns left
 * out): equal digests mean the same rows; and `textDigest`: SHA-256 of the served/latent rows of student_mastery and
 * of its history as readers see them (the explanation text rendered where a row stores numbers: serving/
 * storedExplanations.ts), comparable between a tree that stores texts and one that stores numbers.
 * `write` sums the phases from the read-back of the threads' files (CREATE ... served_score) to the end;
 * `fileMB` is the scored store's size after a CHECKPOINT. KEEP=name keeps the scored store as
 * BENCH_DIR/store-N/kept-<name>.duckdb (the read-side benches' input).
 */
import { createHash } from "node:crypto";
import { copyFileSync, existsSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { Pseudonymizer } from "../features/pseudonymize.ts";
import { resolveAsOf } from "../features/windows.ts";
import { resolveModels } from "../serving/learnerState.ts";
import { DEFAULT_SOURCE_ORDER } from "../serving/masteryView.ts";
import { runPipeline } from "../serving/pipeline.ts";
import { scoreServedBatch } from "../serving/servedBatch.ts";
import { loadServedModel, scoreServed } from "../serving/servedScoring.ts";
import { trainServed } from "../serving/servedTraining.ts";
import { withExplanationTexts } from "../serving/storedExplanations.ts";
import { DuckStore } from "../storage/duckdb.ts";
import { STORED_NUMBERS_SELECT, type WithExplanationNumberColumns } from "../storage/explanationNumbers.ts";
import { cpuNow, roundedMedian } from "./cpuClock.ts";
import { hwmMB, resetHwm, startRssSampler } from "./rssSampler.ts";
import { seedSchool } from "./seedSchool.ts";

const students = Number(process.env.STUDENTS ?? 2_000);
const days = Number(process.env.DAYS ?? 30);
const runs = Number(process.env.RUNS ?? 1);
const reuse = process.env.REUSE === "1";
const memoryLimit = process.env.MEMORY_LIMIT;
const root = join(process.env.BENCH_DIR ?? join(tmpdir(), "servedBatch"), `store-${students}`);
const dbPath = join(root, "mastery.duckdb");
const builtPath = join(root, "built.json");
const modelDir = process.env.MODEL ?? join(root, "model");
const servedPath = process.env.SERVED_PATH ?? "batch";
if (servedPath !== "batch" && servedPath !== "old")
  throw new Error(`SERVED_PATH must be "batch" or "old" (got "${servedPath}")`);
const envInt = (name: string): number | undefined =>
  process.env[name] === undefined || process.env[name] === "" ? undefined : Number(process.env[name]);
const gc = process.env.GC === "1" ? (globalThis as { gc?: () => void }).gc : undefined;
if (process.env.GC === "1" && gc === undefined)
  throw new Error(
    "GC=1 needs node --expose-gc (e.g. GC=1 node --expose-gc --import tsx bench/servedBatch.bench.ts)",
  );

const load = () => loadavg().map((x) => Number(x.toFixed(2)));
const log = (s: string) => process.stderr.write(`${new Date().toISOString()} ${s}\n`);
const mb = (bytes: number) => Math.round(bytes / 1048576);
// Peak RSS between marks (bench/rssSampler.ts: a thread samples the whole process every 100 ms, so a phase that
// blocks the main thread, the filter's JS or a native query, is still sampled).
const sampler = startRssSampler(100);
const takePeak = (): number => sampler.takePeak();

/** Wall, process CPU and peak RSS of `fn` (the sampler's peak over it). */
async function measured<T>(
  name: string,
  fn: () => Promise<T>,
): Promise<{ out: T; seconds: number; cpuSeconds: number; peakRssMB: number; load: number[] }> {
  takePeak();
  const t0 = performance.now();
  const c0 = cpuNow();
  const out = await fn();
  const r = {
    out,
    seconds: Number(((performance.now() - t0) / 1000).toFixed(2)),
    cpuSeconds: Number((cpuNow() - c0).toFixed(2)),
    peakRssMB: takePeak(),
    load: load(),
  };
  log(`${name}: ${r.seconds} s, cpu ${r.cpuSeconds} s, peak RSS ${r.peakRssMB} MB, load ${r.load.join(" ")}`);
  return r;
}

// 1. The store: the pipeline's batch on generated data (or the one a previous REUSE=1 run built).
let built: { events: number; pipelineSeconds: Record<string, number>; buildLoad: number[] };
if (reuse && existsSync(builtPath) && existsSync(dbPath)) {
  built = JSON.parse(readFileSync(builtPath, "utf8")) as typeof built;
  log(`reusing ${dbPath} (${built.events.toLocaleString("en")} events)`);
} else {
  rmSync(root, { recursive: true, force: true });
  const dataDir = join(root, "data");
  const store = await DuckStore.open(dbPath, memoryLimit === undefined ? {} : { memoryLimit });
  const b = await measured("build (generate + pipeline)", () =>
    runPipeline({
      store,
      pseudonymizer: new Pseudonymizer("bench-key-0123456789abcdef"),
      dataDir,
      generate: seedSchool(students, dataDir, { days }),
      models: (s) => resolveModels(s, { seed: 0 }),
      bktEloFull: true,
    }),
  );
  await store.run("CHECKPOINT");
  store.close();
  rmSync(dataDir, { recursive: true, force: true });
  built = {
    events: b.out.events,
    pipelineSeconds: Object.fromEntries(
      Object.entries(b.out.millis).map(([k, v]) => [k, Number((v / 1000).toFixed(2))]),
    ),
    buildLoad: b.load,
  };
  writeFileSync(builtPath, JSON.stringify(built));
}

// 2. The served model, as `mastery train served` fits it with the CLI's defaults (bin/commands/train-served.ts).
let training: {
  seconds: number;
  cpuSeconds: number;
  peakRssMB: number;
  load: number[];
  labelledPairs: number;
} | null = null;
if (existsSync(join(modelDir, "model.json")) && (reuse || process.env.MODEL !== undefined)) {
  log(`reusing the served model ${modelDir}`);
} else {
  const t = await measured("train served (not part of the batch)", () =>
    // Every option at trainServed's defaults, which are `mastery train served`'s without flags.
    trainServed({ dbPath, out: modelDir }),
  );
  training = {
    seconds: t.seconds,
    cpuSeconds: t.cpuSeconds,
    peakRssMB: t.peakRssMB,
    load: t.load,
    labelledPairs: t.out.labelledPairs,
  };
}
const { model, version } = loadServedModel(modelDir);

// 3. The scoring, on a copy of the store each run.
interface Mark {
  label: string;
  tBefore: number;
  tAfter: number;
  cpuBefore: number;
  cpuAfter: number;
  peakRssMB: number;
  heapMB: number;
  rssMB: number;
}
interface Segment {
  phase: string;
  seconds: number;
  cpuSeconds: number;
  peakRssMB: number;
  heapAfterMB: number;
}
/** Timestamps every call of the store's all / run / appendRows / transaction (entry and exit, nested ones too). */
function instrument(store: DuckStore, marks: Mark[]): void {
  const mark = (label: string) => {
    const tBefore = performance.now();
    const cpuBefore = cpuNow();
    const peakRssMB = takePeak();
    gc?.();
    const mu = process.memoryUsage();
    marks.push({
      label,
      tBefore,
      cpuBefore,
      tAfter: performance.now(),
      cpuAfter: cpuNow(),
      peakRssMB,
      heapMB: mb(mu.heapUsed),
      rssMB: mb(mu.rss),
    });
  };
  const s = store as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>;
  for (const method of ["all", "run", "appendRows", "transaction"]) {
    const orig = s[method]!.bind(store);
    s[method] = async (...args: unknown[]) => {
      const head = typeof args[0] === "string" ? args[0].replace(/\s+/g, " ").trim().slice(0, 48) : "(fn)";
      mark(`${method} ${head}`);
      const out = await orig(...args);
      mark(`after ${method} ${head}`);
      return out;
    };
  }
  mark("start");
}
/** Segment i runs from mark i to mark i + 1 (GC at the marks left out). */
function segments(marks: readonly Mark[]): Segment[] {
  const out: Segment[] = [];
  for (let i = 0; i + 1 < marks.length; i++) {
    const a = marks[i]!;
    const b = marks[i + 1]!;
    out.push({
      phase: a.label,
      seconds: Number(((b.tBefore - a.tAfter) / 1000).toFixed(3)),
      cpuSeconds: Number((b.cpuBefore - a.cpuAfter).toFixed(3)),
      peakRssMB: b.peakRssMB,
      heapAfterMB: b.heapMB,
    });
  }
  return out;
}

const scoreDb = join(root, "score.duckdb");
const results = [];
for (let run = 0; run < runs; run++) {
  rmSync(scoreDb, { force: true });
  rmSync(`${scoreDb}.wal`, { force: true });
  copyFileSync(dbPath, scoreDb);
  const store = await DuckStore.open(scoreDb, memoryLimit === undefined ? {} : { memoryLimit });
  const asOf = await resolveAsOf(store, "now");
  const pairs = Number(
    (
      await store.one<{ n: bigint }>(
        "SELECT count(*) AS n FROM (SELECT DISTINCT student_key, topic_id FROM raw_events)",
      )
    )?.n ?? 0n,
  );
  const events = Number((await store.one<{ n: bigint }>("SELECT count(*) AS n FROM raw_events"))?.n ?? 0n);
  // The stand-in the pipeline benches time (first source in config order), for scale.
  const standIn = await measured("stand-in served (first source in order)", () =>
    store.run(
      `CREATE OR REPLACE TEMP TABLE bench_served AS
       SELECT student_key, topic_id, arg_min(mastery_score, list_position($order::VARCHAR[], score_source)) AS mastery_score
       FROM student_mastery WHERE list_position($order::VARCHAR[], score_source) IS NOT NULL
       GROUP BY student_key, topic_id`,
      { order: `[${DEFAULT_SOURCE_ORDER.map((x) => `"${x}"`).join(",")}]` },
    ),
  );
  await store.run("DROP TABLE bench_served");
  gc?.();
  const hwmReset = resetHwm();
  const hwmBefore = hwmMB();
  const rssBefore = mb(process.memoryUsage().rss);
  const heapBefore = mb(process.memoryUsage().heapUsed);
  const marks: Mark[] = [];
  instrument(store, marks);
  log(
    `scoreServed: ${pairs.toLocaleString("en")} pairs, ${events.toLocaleString("en")} events, as of ${asOf.toISOString()}`,
  );
  const t0 = performance.now();
  const c0 = cpuNow();
  const res =
    servedPath === "old"
      ? await scoreServed(store, model, version, { asOf })
      : await scoreServedBatch(store, model, version, {
          asOf,
          ...(envInt("WORKERS") !== undefined ? { workers: envInt("WORKERS")! } : {}),
          ...(envInt("PARTS") !== undefined ? { parts: envInt("PARTS")! } : {}),
          onPhase: (phase) => log(`  phase: ${phase} (load ${load().join(" ")})`),
        });
  const wall = (performance.now() - t0) / 1000;
  const cpu = cpuNow() - c0;
  const hwmAfter = hwmMB();
  const segs = segments([...marks, { ...marks[marks.length - 1]!, label: "end" }]).filter(
    (x) => x.seconds >= 0.001 || x.cpuSeconds >= 0.001,
  );
  // The last mark is the exit of the final call: the segment list ends there.
  const segWall = segs.reduce((a, x) => a + x.seconds, 0);
  const segCpu = segs.reduce((a, x) => a + x.cpuSeconds, 0);
  for (const x of segs)
    log(
      `  ${x.phase.padEnd(60)} ${x.seconds.toFixed(2).padStart(8)} s  cpu ${x.cpuSeconds.toFixed(2).padStart(8)} s  peak ${x.peakRssMB} MB  heap ${x.heapAfterMB} MB`,
    );
  const rows = await store.all<{ score_source: string; n: bigint }>(
    "SELECT score_source, count(*) AS n FROM student_mastery WHERE score_source IN ('served', 'latent') GROUP BY ALL ORDER BY 1",
  );
  const digest = await store.one<{ n: bigint; x: bigint }>(
    `SELECT count(*) AS n, bit_xor(hash(student_key, topic_id, score_source, model_version, as_of, explanation,
            mastery_score)) AS x
     FROM student_mastery WHERE score_source IN ('served', 'latent')`,
  );
  const textDigest = async (table: string): Promise<string> => {
    const h = createHash("sha256");
    const rowsOf = await store.all<
      {
        student_key: string;
        topic_id: string;
        score_source: string;
        model_version: string;
        as_of_us: bigint;
        explanation: string;
        mastery_score: number;
      } & WithExplanationNumberColumns
    >(
      `SELECT student_key, topic_id, score_source, model_version, epoch_us(as_of) AS as_of_us, explanation,
              mastery_score, ${STORED_NUMBERS_SELECT}
       FROM ${table} WHERE score_source IN ('served', 'latent') ORDER BY student_key, topic_id, score_source`,
    );
    for (const x of withExplanationTexts(rowsOf))
      h.update(
        `${x.student_key}|${x.topic_id}|${x.score_source}|${x.model_version}|${x.as_of_us}|${x.explanation}|${x.mastery_score}\n`,
      );
    return h.digest("hex").slice(0, 16);
  };
  const texts = {
    current: await textDigest("student_mastery"),
    history: await textDigest("student_mastery_history"),
  };
  await store.run("CHECKPOINT");
  store.close();
  const fileMB = Number((statSync(scoreDb).size / 1048576).toFixed(1));
  if (process.env.KEEP !== undefined && process.env.KEEP !== "")
    renameSync(scoreDb, join(root, `kept-${process.env.KEEP}.duckdb`));
  rmSync(scoreDb, { force: true });
  rmSync(`${scoreDb}.wal`, { force: true });
  const w = segs.findIndex((x) => x.phase.startsWith("run CREATE OR REPLACE TEMP TABLE served_score"));
  const writeSegs = w < 0 ? [] : segs.slice(w);
  // With GC=1 the marks' full collections are left out of the phases: the scoring's own figures are their sum.
  const wallOwn = gc === undefined ? wall : segWall;
  const cpuOwn = gc === undefined ? cpu : segCpu;
  const r = {
    run,
    events,
    pairs,
    scored: res.scored,
    evidence: res.evidence,
    path: servedPath,
    digest: `${digest?.n ?? 0n}/${(digest?.x ?? 0n).toString(16)}`,
    textDigest: texts,
    fileMB,
    write: {
      seconds: Number(writeSegs.reduce((a, x) => a + x.seconds, 0).toFixed(2)),
      cpuSeconds: Number(writeSegs.reduce((a, x) => a + x.cpuSeconds, 0).toFixed(2)),
    },
    storedRows: Object.fromEntries(rows.map((x) => [x.score_source, Number(x.n)])),
    asOf: res.asOf,
    standIn: { seconds: standIn.seconds, cpuSeconds: standIn.cpuSeconds },
    seconds: Number(wallOwn.toFixed(2)),
    cpuSeconds: Number(cpuOwn.toFixed(2)),
    rawSeconds: Number(wall.toFixed(2)),
    rawCpuSeconds: Number(cpu.toFixed(2)),
    cpuUsPerPair: Number(((cpuOwn * 1e6) / res.scored).toFixed(1)),
    cpuUsPerEvent: Number(((cpuOwn * 1e6) / events).toFixed(2)),
    peakRssMB: Math.max(0, ...segs.map((x) => x.peakRssMB)),
    vmHwmMB: hwmReset ? hwmAfter : null,
    before: { rssMB: rssBefore, heapMB: heapBefore, vmHwmMB: hwmBefore },
    phases: segs,
    gcAtMarks: gc !== undefined,
    load: load(),
  };
  log(
    `${servedPath === "old" ? "scoreServed" : "scoreServedBatch"}: ${r.seconds} s, cpu ${r.cpuSeconds} s (${r.cpuUsPerPair} us/pair, ${r.cpuUsPerEvent} us/event), write ${r.write.seconds} s / cpu ${r.write.cpuSeconds} s, file ${fileMB} MB, texts ${texts.current}/${texts.history}, peak RSS ${r.peakRssMB} MB (VmHWM ${r.vmHwmMB} MB), load ${r.load.join(" ")}`,
  );
  results.push(r);
}
sampler.stop();

const out = {
  students,
  days,
  events: built.events,
  build: built,
  model: { dir: modelDir, version },
  training,
  scoring: results,
  medians:
    results.length > 1
      ? {
          seconds: roundedMedian(results.map((x) => x.seconds)),
          cpuSeconds: roundedMedian(results.map((x) => x.cpuSeconds)),
          peakRssMB: roundedMedian(results.map((x) => x.peakRssMB)),
        }
      : null,
  memoryLimit: memoryLimit ?? null,
  heapLimitMB: null as number | null,
};
const { getHeapStatistics } = await import("node:v8");
out.heapLimitMB = mb(getHeapStatistics().heap_size_limit);
process.stdout.write(`${JSON.stringify(out)}\n`);
if (!reuse) rmSync(root, { recursive: true, force: true });
