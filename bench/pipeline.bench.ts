/**
 * End-to-end batch pipeline on the embedded default: generate N events, ingest them, build the
 * 7/30/90-day features and the rule-based scores; BKT/Elo scoring is timed separately.
 *
 *   npx tsx bench/pipeline.bench.ts                 # 100k students x 30 days, about 10M events
 *   STUDENTS=10000 npx tsx bench/pipeline.bench.ts  # a quick run
 *
 * Target (issue 2): generate + ingest + features + score <= 60 s for 10M events on 2 cores.
 */
import { rmSync } from "node:fs";
import { join } from "node:path";
import { Pseudonymizer } from "../features/pseudonymize.ts";
import { PIPELINE_STEPS, runPipeline } from "../serving/pipeline.ts";
import { DuckStore } from "../storage/duckdb.ts";

const students = Number(process.env.STUDENTS ?? 100_000);
const days = Number(process.env.DAYS ?? 30);
const withBktElo = process.env.BKT_ELO === "1";
const root = join(process.env.BENCH_DIR ?? "bench/out", `pipeline-${students}`);
rmSync(root, { recursive: true, force: true });
const dataDir = join(root, "data");
const store = await DuckStore.open(join(root, "mastery.duckdb"));
const t0 = performance.now();
const result = await runPipeline({
  store,
  pseudonymizer: new Pseudonymizer("bench-key-0123456789abcdef"),
  dataDir,
  generate: {
    students,
    topics: 120,
    days,
    seed: 1,
    start: "2026-09-01",
    eventsPerDay: 3.4,
    truthEvery: 7,
    outDir: dataDir,
  },
  skip: withBktElo ? [] : ["score bkt-elo"],
  onStep: (step, ms) => process.stderr.write(`${step}: ${(ms / 1000).toFixed(2)} s\n`),
});
const totalCore = ["generate", "ingest", "features", "score rules"].reduce(
  (s, k) => s + result.millis[k as (typeof PIPELINE_STEPS)[number]],
  0,
);
store.close();
const out = {
  events: result.events,
  students,
  days,
  featureRows: result.featureRows,
  ruleScores: result.ruleScores,
  seconds: Object.fromEntries(PIPELINE_STEPS.map((s) => [s, Number((result.millis[s] / 1000).toFixed(2))])),
  generateIngestFeaturesScoreSeconds: Number((totalCore / 1000).toFixed(2)),
  eventsPerSecond: Math.round(result.events / (totalCore / 1000)),
  wallSeconds: Number(((performance.now() - t0) / 1000).toFixed(2)),
  targetSeconds: 60,
};
process.stdout.write(`${JSON.stringify(out)}\n`);
rmSync(root, { recursive: true, force: true });
