/**
 * One batch step's peak memory and CPU at scale (issue 17 item 4): each phase of the rule-scoring job
 * (or the BKT/Elo full job) with its wall time, the process's CPU seconds (user + sys, DuckDB and worker
 * threads included) and its peak RSS (sampled every 50 ms by a worker thread; VmHWM for the whole run).
 * The step runs on a copy of a prepared store (ingest + features done), so runs of two commits compare the
 * same input.
 *
 *   PREP=1 STUDENTS=100000 BIG_DIR=/tmp/x npx tsx bench/stepMemory.bench.ts        # generate, ingest, features
 *   STUDENTS=100000 BIG_DIR=/tmp/x MEMORY_LIMIT=800MB npx tsx bench/stepMemory.bench.ts   # score rules on a copy
 *   STEP="score bkt-elo" ...                                                       # the BKT/Elo full job instead
 *   RERUN=1 ...                                                                    # score rules twice (the 2nd over stored scores)
 *   STEP="features" ...                                                            # the features build again (as of the prep's "now")
 *   STEP="features" FEATURE_PARTS=6 ...                                            # ... in 6 student-key ranges (default: featureParts)
 *
 * MEMORY_LIMIT (default 4GB) is DuckDB's memory_limit; THREADS its threads. Each phase also reports the peak size
 * of DuckDB's spill directory (`<store>.tmp`, sampled with the RSS): how much of it the phase spilled. The BKT/Elo
 * step scores with models quick-fitted once on the prepared store and saved beside it (`prep-<students>/bkt`,
 * `/elo`), so runs of two commits score with the same models and skip the fit; DIGEST=1 adds what it stored
 * (bench/bktEloDigest.ts, clocks left out): equal digests mean the same rows. Prints one JSON line.
 */
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { ingestPaths } from "../features/ingest.ts";
import { Pseudonymizer } from "../features/pseudonymize.ts";
import { generateSynthetic } from "../features/synthetic/generate.ts";
import { buildFeatures, resolveAsOf } from "../features/windows.ts";
import { resolveModels, scoreBktElo } from "../serving/learnerState.ts";
import { scoreRules } from "../serving/ruleScoring.ts";
import { DuckStore } from "../storage/duckdb.ts";
import { bktEloDigest } from "./bktEloDigest.ts";
import { saveQuickModels } from "./quickModels.ts";
import { hwmMB, startRssSampler } from "./rssSampler.ts";
import { seedSchool } from "./seedSchool.ts";

const students = Number(process.env.STUDENTS ?? 10_000);
const memoryLimit = process.env.MEMORY_LIMIT ?? "4GB";
const threads = process.env.THREADS === undefined ? undefined : Number(process.env.THREADS);
const base = process.env.BIG_DIR ?? "/tmp/stepMemory";
const step = process.env.STEP ?? "score rules";
const dataDir = join(base, `data-${students}`);
const prepPath = join(base, `prep-${students}`, "mastery.duckdb");

const workDir = join(base, `run-${students}-${process.pid}`);
const workPath = join(workDir, "mastery.duckdb");
const sampler = startRssSampler(50, `${workPath}.tmp`);
const cpuNow = (): number => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};
const phases: { phase: string; seconds: number; cpuSeconds: number; peakRssMB: number; spillMB: number }[] =
  [];
let mark = { t: performance.now(), c: cpuNow() };
const phase = (name: string): void => {
  const r = {
    phase: name,
    seconds: Number(((performance.now() - mark.t) / 1000).toFixed(2)),
    cpuSeconds: Number((cpuNow() - mark.c).toFixed(2)),
    peakRssMB: sampler.takePeak(),
    spillMB: sampler.takeSpillPeak(),
  };
  phases.push(r);
  process.stderr.write(
    `${new Date().toISOString()} ${name}: ${r.seconds} s, cpu ${r.cpuSeconds} s, ${r.peakRssMB} MB, spill ${r.spillMB} MB\n`,
  );
  mark = { t: performance.now(), c: cpuNow() };
};
const open = (path: string): Promise<DuckStore> =>
  DuckStore.open(path, { memoryLimit, ...(threads === undefined ? {} : { threads }), encryption: null });

if (process.env.PREP === "1") {
  if (!existsSync(join(dataDir, "manifest.json"))) {
    await generateSynthetic(seedSchool(students, dataDir));
    phase("generate");
  }
  rmSync(join(base, `prep-${students}`), { recursive: true, force: true });
  const store = await open(prepPath);
  await store.run("SET preserve_insertion_order = false");
  const files = [dataDir].flatMap((d) =>
    ["assignments", "chatbot", "practice", "quiz_attempts", "videos", "topics"]
      .map((f) => join(d, `${f}.${f === "topics" ? "json" : "csv"}`))
      .filter((p) => existsSync(p)),
  );
  await ingestPaths(store, files, { pseudonymizer: new Pseudonymizer("bench-key-0123456789abcdef") });
  phase("ingest");
  await buildFeatures(store, await resolveAsOf(store, "now"), { truncate: true });
  phase("features");
  await store.run("CHECKPOINT");
  store.close();
  await store.whenClosed();
  process.stdout.write(`${JSON.stringify({ prepared: prepPath, phases })}\n`);
  process.exit(0);
}

if (!existsSync(prepPath)) throw new Error(`no prepared store at ${prepPath}: run with PREP=1 first`);
const bktDir = join(base, `prep-${students}`, "bkt");
const eloDir = join(base, `prep-${students}`, "elo");
if (step === "score bkt-elo" && !existsSync(join(eloDir, "model.json"))) {
  const prep = await open(prepPath);
  await saveQuickModels(prep, bktDir, eloDir);
  prep.close();
  await prep.whenClosed();
  phase("fit (quick, once per prepared store)");
}
rmSync(workDir, { recursive: true, force: true });
mkdirSync(workDir, { recursive: true });
copyFileSync(prepPath, workPath);
const store = await open(workPath);
await store.run("SET preserve_insertion_order = false");
if (step === "features") {
  // The prepared snapshot is emptied before the clock starts: the phase is the build alone, as on a fresh store.
  await store.run("DELETE FROM features_rows");
  await store.run("DELETE FROM feature_snapshots");
  await store.run("CHECKPOINT");
}
const effective = (await store.one<{ v: string }>("SELECT current_setting('memory_limit') AS v"))?.v;
process.stderr.write(`stepMemory: ${step}, ${students} students, memory_limit ${effective}\n`);
phase("open");
const t0 = performance.now();
const c0 = cpuNow();
const runs = process.env.RERUN === "1" ? 2 : 1;
const results: unknown[] = [];
for (let r = 0; r < runs; r++) {
  if (step === "score bkt-elo") {
    const models = await resolveModels(store, { bktModelDir: bktDir, eloModelDir: eloDir });
    phase("models");
    results.push(
      await scoreBktElo(store, models, {
        full: true,
        now: new Date("2026-12-05T00:00:00Z"),
        onPhase: (p) => phase(`${r > 0 ? "rerun " : ""}${p}`),
      }),
    );
  } else if (step === "features") {
    const asOf = await resolveAsOf(store, "now");
    const parts = process.env.FEATURE_PARTS;
    results.push(
      await buildFeatures(store, asOf, { truncate: true, ...(parts ? { parts: Number(parts) } : {}) }),
    );
    phase("features");
  } else {
    results.push(await scoreRules(store, { onPhase: (p) => phase(`${r > 0 ? "rerun " : ""}${p}`) }));
  }
}
const out = {
  step,
  students,
  memoryLimit: effective,
  seconds: Number(((performance.now() - t0) / 1000).toFixed(1)),
  cpuSeconds: Number((cpuNow() - c0).toFixed(1)),
  phases,
  processPeakRssMB: hwmMB(),
  load: readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" "),
  ...(step === "features"
    ? {
        features: results.map((r) => ({
          rows: (r as { rows: number }).rows,
          parts: (r as { parts: number }).parts,
        })),
      }
    : {}),
  ...(process.env.DIGEST === "1" && step === "score bkt-elo"
    ? { digest: await bktEloDigest(store, { withoutClocks: true }) }
    : {}),
};
sampler.stop();
store.close();
await store.whenClosed();
rmSync(workDir, { recursive: true, force: true });
process.stdout.write(`${JSON.stringify(out)}\n`);
void results;
