/**
 * wasm34: LatentKernel.foldWide (JavaScript) against LatentKernel.foldWideWasm (models/latentWideWasm.ts) in
 * isolation: one process, the same sequences (fast-check's generator of the property tests, seed fixed: ~960
 * sequences of 1-19 events over 5 topics, gaps up to 10 days) folded from flat posteriors over the 7 basis parts
 * of the served defaults' model shape (test/models/latentStudentCases.ts), with the factor bookkeeping on as in
 * the served step; the two kernels alternated ROUNDS times (default 5), REPS passes each (default 30). Prints each
 * round's CPU-s (process user + system) per kernel, the ratio, and the median ratio.
 *
 *   npx tsx bench/latentWideWasm.bench.ts
 */
import { loadavg } from "node:os";
import fc from "fast-check";
import { LATENT_FACTORS, LatentKernel } from "../models/latentFilter.ts";
import { LatentWideWasm } from "../models/latentWideWasm.ts";
import { PROPERTY_TOPICS, studentSequencesArb } from "../test/models/latentFixtures.ts";
import { LATENT_STUDENT_VARIANTS } from "../test/models/latentStudentCases.ts";
import { cpuNow, roundedMedian } from "./cpuClock.ts";

const rounds = Number(process.env.ROUNDS ?? 5);
const reps = Number(process.env.REPS ?? 30);
const { model } = LATENT_STUDENT_VARIANTS.find((v) => v.name === "served defaults' shape")!;
const seqs = fc
  .sample(studentSequencesArb(PROPERTY_TOPICS, 19, 10), { numRuns: 400, seed: 7 })
  .flatMap((x) => x.seqs)
  .filter((s) => s.events.length > 0);
const grid = model.studentGrid();
const G = model.json.bins;
const W = grid.length;
const F = LATENT_FACTORS.length;
const wks = new Map(
  PROPERTY_TOPICS.map((t) => [t, LatentKernel.wide(grid.map((g) => model.kernelFor(t, g)))!]),
);
const p = new Float64Array(W * G);
const t = new Float64Array(W * G);
const ll = new Float64Array(W);
const contributions = new Float64Array(W * F);
const means = new Float64Array(W);
const engine = new LatentWideWasm();
const kernels: Record<string, typeof LatentKernel.foldWide> = {
  js: LatentKernel.foldWide,
  wasm: (...a) => LatentKernel.foldWideWasm(engine, ...a),
};

function pass(fold: typeof LatentKernel.foldWide, n: number): { cpu: number; check: number } {
  const c0 = cpuNow();
  let check = 0;
  for (let r = 0; r < n; r++)
    for (const s of seqs) {
      p.fill(1 / G);
      ll.fill(0);
      contributions.fill(0);
      means.fill(0.5);
      check += fold(wks.get(s.topic)!, s.events, p, t, ll, { contributions, means })[3]! + ll[0]!;
    }
  return { cpu: cpuNow() - c0, check };
}

const events = seqs.reduce((a, s) => a + s.events.length, 0);
process.stderr.write(`${seqs.length} sequences, ${events} events, W = ${W}, load ${loadavg().join(" ")}\n`);
pass(kernels.js!, 3);
pass(kernels.wasm!, 3);
const ratios: number[] = [];
for (let i = 0; i < rounds; i++) {
  const a = pass(kernels.js!, reps);
  const b = pass(kernels.wasm!, reps);
  if (a.check !== b.check) throw new Error(`the kernels disagree (${a.check} vs ${b.check})`);
  ratios.push(a.cpu / b.cpu);
  const us = (x: number) => ((x / reps / seqs.length) * 1e6).toFixed(1);
  process.stderr.write(
    `round ${i + 1}: js ${a.cpu.toFixed(3)} CPU-s (${us(a.cpu)} us a fold), wasm ${b.cpu.toFixed(3)} (${us(b.cpu)}), ratio ${(a.cpu / b.cpu).toFixed(2)}, load ${loadavg()[0]!.toFixed(2)}\n`,
  );
}
console.log(
  JSON.stringify({ sequences: seqs.length, events, W, ratios, medianRatio: roundedMedian(ratios, 2) }),
);
