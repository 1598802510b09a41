import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  KIND_PRACTICE,
  LATENT_FACTORS,
  type LatentEvent,
  LatentKernel,
  type LatentSequence,
} from "../../models/latentFilter.ts";
import { LatentWideWasm, latentWideWasmBytes } from "../../models/latentWideWasm.ts";
import { PROPERTY_TOPICS, studentSequencesArb } from "./latentFixtures.ts";
import { LATENT_STUDENT_VARIANTS } from "./latentStudentCases.ts";

/** A float64's bits (hex), so that -0, NaN and 1-ulp differences show in a failure. */
const bits = (x: number): string => Buffer.from(Float64Array.of(x).buffer).toString("hex");

/** The events with every practice set's correct count made fractional (an emission row that is not kept). */
const fractional = (events: readonly LatentEvent[]): LatentEvent[] =>
  events.map((e) => (e.kind === KIND_PRACTICE && e.k < e.n ? { ...e, k: e.k + 0.5 } : e));

const engine = new LatentWideWasm();

/** Both kernels' fold of one sequence's basis parts from the basis priors: every output's bits. */
function bothFolds(
  model: (typeof LATENT_STUDENT_VARIANTS)[number]["model"],
  s: LatentSequence,
  parts?: number,
): { js: string[]; wasm: string[] } | null {
  const grid = model.studentGrid().slice(0, parts);
  const G = model.json.bins;
  const W = grid.length;
  const F = LATENT_FACTORS.length;
  const wk = LatentKernel.wide(grid.map((g) => model.kernelFor(s.topic, g)));
  if (wk === null) return null;
  const run = (fold: typeof LatentKernel.foldWide): string[] => {
    const p = new Float64Array(W * G);
    grid.forEach((g, r) => {
      const st = model.init(s.topic, g);
      for (let i = 0; i < G; i++) p[r * G + i] = st.p[i]!;
    });
    const p2 = p.slice();
    const means = new Float64Array(W);
    wk.ks[0]!.wideMeans(p, W, means);
    const contributions = new Float64Array(W * F);
    const ll = new Float64Array(W).fill(0.25);
    const res = fold(wk, s.events, p, new Float64Array(W * G), ll, { contributions, means });
    // Without the factors' bookkeeping too (the posteriors and log-likelihoods alone).
    const ll2 = new Float64Array(W);
    const res2 = fold(wk, s.events, p2, new Float64Array(W * G), ll2);
    return [...res, ...ll, ...contributions, ...means, ...res2, ...ll2].map(bits);
  };
  return {
    js: run(LatentKernel.foldWide),
    wasm: run((...a) => LatentKernel.foldWideWasm(engine, ...a)),
  };
}

describe("LatentKernel.foldWideWasm (wasm34: foldWide's cell loops in WebAssembly)", () => {
  it("gives foldWide's bits on random sequences: posteriors, log-likelihoods, contributions, means", () => {
    let compared = 0;
    for (const { name, model } of LATENT_STUDENT_VARIANTS) {
      fc.assert(
        fc.property(studentSequencesArb(PROPERTY_TOPICS, 20, 30), ({ seqs }) => {
          for (const s of seqs.flatMap((x) => [x, { ...x, events: fractional(x.events) }])) {
            // All basis parts (an odd count: the padding lane), and an even count of them.
            for (const parts of [undefined, 4]) {
              const r = bothFolds(model, s, parts);
              if (r === null) continue;
              compared++;
              expect(r.wasm, `${name}, ${s.topic}, ${s.events.length} events`).toEqual(r.js);
            }
          }
        }),
        { numRuns: 30 },
      );
    }
    expect(compared).toBeGreaterThan(500);
  });

  it("emits a valid module", () => {
    const wasm = (globalThis as unknown as { WebAssembly: { validate(b: Uint8Array): boolean } }).WebAssembly;
    for (const W2 of [1, 2, 4, 9]) expect(wasm.validate(latentWideWasmBytes(W2))).toBe(true);
  });
});
