/**
 * `mastery score served`'s cost with and without the latent filter's student effect (issue 16 / 17, "latoff"):
 * the same store, the same served model (its score = the latent filter), scored as of the same time with
 * studentPriorSd = 0 (A: one filter pass per pair) and SD (B: the student effect), interleaved A B / B A / ...
 * Prints process CPU seconds (user + sys) and wall seconds of each run, the medians, the ratio B/A and the
 * load average. The anchor is A (no student effect): round 6 measured B/A ~7-18 with the golden-section
 * offset search (docs/benchmarks.md "Round 6 (valid)").
 *
 *   npx tsx bench/latentOffset.bench.ts                      # 600 students x 40 topics x 56 days, seed 1
 *   STUDENTS=600 REPEAT=3 SD=2 npx tsx bench/latentOffset.bench.ts
 *   BENCH_DIR=/tmp/latoff-bench npx tsx bench/latentOffset.bench.ts   # keep (and reuse) the generated store
 *
 * The filter's parameters are fixed (a fit of the validity bench's seed 2, 600 students): the cost does not
 * depend on them. Uses only APIs that exist before and after the change, so the same file runs on both trees.
 */
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import { Pseudonymizer } from "../features/pseudonymize.ts";
import { generateSynthetic } from "../features/synthetic/generate.ts";
import type { LatentModelJson } from "../models/latentFilter.ts";
import { latentOnlyServedJson, ServedMastery } from "../models/servedMastery.ts";
import { runPipeline } from "../serving/pipeline.ts";
import { scoreServed } from "../serving/servedScoring.ts";
import { DuckStore } from "../storage/duckdb.ts";

const envNum = (name: string, dflt: number): number => {
  const v = process.env[name];
  if (v === undefined || v === "") return dflt;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0)
    throw new Error(`${name} must be a number >= 0 (got ${v}); unset it for the default`);
  return n;
};
const STUDENTS = envNum("STUDENTS", 600);
const TOPICS = envNum("TOPICS", 40);
const DAYS = envNum("DAYS", 56);
const REPEAT = envNum("REPEAT", 3);
const SD = envNum("SD", 2);
const DIR = process.env.BENCH_DIR ?? `/tmp/latoff-bench-${process.pid}`;
const START = "2026-01-05";
const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 === 1 ? s[s.length >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

const data = join(DIR, "data");
const db = join(DIR, `store-${STUDENTS}.duckdb`);
if (!existsSync(db)) {
  mkdirSync(DIR, { recursive: true });
  console.log(`generating ${STUDENTS} students x ${TOPICS} topics x ${DAYS} days into ${data} ...`);
  await generateSynthetic({
    students: STUDENTS,
    topics: TOPICS,
    days: DAYS,
    seed: 1,
    start: START,
    eventsPerDay: 3.4,
    truthEvery: 7,
    outDir: data,
    workers: 0,
  });
  const store = await DuckStore.open(db);
  const res = await runPipeline({
    store,
    pseudonymizer: new Pseudonymizer("latoff-bench-key-0123456789"),
    dataDir: data,
  });
  console.log(`pipeline: ${JSON.stringify(res.millis)} ms`);
  await store.run("CHECKPOINT");
  store.close();
}
const topics = (JSON.parse(readFileSync(join(data, "topics.json"), "utf8")) as { topic_id: string }[]).map(
  (t) => t.topic_id,
);

function served(sd: number): ServedMastery {
  const latent: LatentModelJson = {
    version: 1,
    bins: 40,
    params: {
      priorMean: 0.4562,
      priorConcentration: 3.182,
      guess: 0.000736,
      slip: 0.01966,
      learn: [0.07021, 0.1783, 0.056, 0.0001988, 0.009617],
      halfLifeDays: 66.93,
      floor: 0.7507,
      noise: 0.2335,
      assignmentConcentration: 11.65,
    },
    topicPriorMean: Object.fromEntries(topics.map((t, i) => [t, 0.3 + (0.4 * i) / topics.length])),
    fit: { logLikPerObs: -0.5, observations: 0, sequences: 0, evaluations: 0 },
    intervalScale: 1.3,
    ...(sd > 0 ? { studentPriorSd: sd } : {}),
  };
  return ServedMastery.fromJSON(latentOnlyServedJson(latent));
}

const asOf = new Date(Date.parse(`${START}T00:00:00Z`) + DAYS * 86_400_000);
const cpu: Record<"A" | "B", number[]> = { A: [], B: [] };
const wall: Record<"A" | "B", number[]> = { A: [], B: [] };
const loads: number[] = [loadavg()[0]!];
for (let rep = 0; rep < REPEAT; rep++) {
  for (const label of rep % 2 === 0 ? (["A", "B"] as const) : (["B", "A"] as const)) {
    const copy = join(DIR, `run-${label}.duckdb`);
    copyFileSync(db, copy);
    const store = await DuckStore.open(copy);
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    const r = await scoreServed(store, served(label === "A" ? 0 : SD), "bench", { asOf, now: asOf });
    const c = process.cpuUsage(c0);
    const s = (performance.now() - t0) / 1000;
    store.close();
    rmSync(copy, { force: true });
    rmSync(`${copy}.wal`, { force: true });
    cpu[label].push((c.user + c.system) / 1e6);
    wall[label].push(s);
    loads.push(loadavg()[0]!);
    console.log(
      `rep ${rep} ${label} (${label === "A" ? "no student effect" : `student effect sd ${SD}`}): ${cpu[label].at(-1)!.toFixed(2)} CPU-s, ${s.toFixed(2)} s wall, ${JSON.stringify(r).slice(0, 120)}; load ${loadavg()[0]!.toFixed(1)}`,
    );
  }
}
console.log(
  `${STUDENTS} students: A (no effect) median ${median(cpu.A).toFixed(2)} CPU-s (${median(wall.A).toFixed(2)} s wall); B (sd ${SD}) median ${median(cpu.B).toFixed(2)} CPU-s (${median(wall.B).toFixed(2)} s wall); B/A CPU ${(median(cpu.B) / median(cpu.A)).toFixed(2)}; load average ${Math.min(...loads).toFixed(1)}-${Math.max(...loads).toFixed(1)}`,
);
if (process.env.BENCH_DIR === undefined) rmSync(DIR, { recursive: true, force: true });
