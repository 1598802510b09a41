import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  KIND_PRACTICE,
  LATENT_FACTORS,
  type LatentEvent,
  LatentFilter,
  LatentKernel,
  type LatentSequence,
} from "../../models/latentFilter.ts";
import { type LatentWideKernel, LatentWideWasm, latentWideWasmBytes } from "../../models/latentWideWasm.ts";
import { PROPERTY_TOPICS, studentSequencesArb } from "./latentFixtures.ts";
import { LATENT_STUDENT_VARIANTS } from "./latentStudentCases.ts";

/** A float64's bits (hex), so that -0, NaN and 1-ulp differences show in a failure. */
const bits = (x: number): string => Buffer.from(Float64Array.of(x).buffer).toString("hex");

/** The events with every practice set's correct count made fractional (an emission row that is not kept). */
const fractional = (events: readonly LatentEvent[]): LatentEvent[] =>
  events.map((e) => (e.kind === KIND_PRACTICE && e.k < e.n ? { ...e, k: e.k + 0.5 } : e));

const engine = new LatentWideWasm();

/**
 * Every variant of the lean paths' model set (global floor with and without the forget spread, learning loadings,
 * logistic and linear emissions, noise and none), and two with consolidation (the gap's plain-forgetting
 * equivalent): the forgetting forms foldWide supports (the durable share has no shared plan: `wide` refuses it).
 */
const MODELS: readonly { name: string; model: LatentFilter }[] = [
  ...LATENT_STUDENT_VARIANTS,
  ...(["student effect + learning loading", "served defaults' shape"] as const).map((variant) => {
    const json = LATENT_STUDENT_VARIANTS.find((v) => v.name === variant)!.model.json;
    return {
      name: `${variant}, consolidation 0.1`,
      model: new LatentFilter({ ...json, params: { ...json.params, consolidation: 0.1 } }),
    };
  }),
];

/** Both kernels' fold of one sequence's basis parts from the basis priors: every output's bits. */
function bothFolds(
  model: LatentFilter,
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
    const kinds = new Set<number>();
    for (const { name, model } of MODELS) {
      fc.assert(
        fc.property(studentSequencesArb(PROPERTY_TOPICS, 20, 30), ({ seqs }) => {
          for (const s of seqs.flatMap((x) => [x, { ...x, events: fractional(x.events) }])) {
            // All basis parts (an odd count: the padding lane), and an even count of them.
            for (const parts of [undefined, 4]) {
              const r = bothFolds(model, s, parts);
              if (r === null) continue;
              compared++;
              for (const e of s.events) kinds.add(e.kind);
              expect(r.wasm, `${name}, ${s.topic}, ${s.events.length} events`).toEqual(r.js);
            }
          }
        }),
        { numRuns: 30 },
      );
    }
    expect(compared).toBeGreaterThan(500);
    expect([...kinds].sort()).toEqual([0, 1, 2, 3, 4]);
  });

  it("LatentFilter.predictStudentBasis with the wasm kernel is the js kernel's, bit for bit", () => {
    for (const { name, model } of MODELS) {
      const js = new LatentFilter(model.json).useWideKernel("js");
      const wasm = new LatentFilter(model.json).useWideKernel("wasm");
      fc.assert(
        fc.property(studentSequencesArb(PROPERTY_TOPICS, 15, 30), ({ seqs }) => {
          const a = js.predictStudentBasis(seqs, 40);
          const b = wasm.predictStudentBasis(seqs, 40);
          const flat = (r: typeof a): string[] =>
            [
              r.offset,
              ...r.ll.flatMap((x) => [...x]),
              ...r.scores.flatMap((x) => [...x]),
              ...r.estimates.flatMap((e) => [
                e.score,
                e.lo,
                e.hi,
                e.pCorrect,
                ...Object.values(e.contributions),
              ]),
            ].map(bits);
          expect(flat(b), name).toEqual(flat(a));
        }),
        { numRuns: 15 },
      );
    }
  });

  it("refuses a kernel name it does not know, naming the choices", () => {
    const model = MODELS[0]!.model;
    expect(() => model.useWideKernel("c" as LatentWideKernel)).toThrow(/one of js, wasm \(got "c"\)/);
  });

  it("emits a valid module", () => {
    const wasm = (globalThis as unknown as { WebAssembly: { validate(b: Uint8Array): boolean } }).WebAssembly;
    for (const W2 of [1, 2, 4, 9]) expect(wasm.validate(latentWideWasmBytes(W2))).toBe(true);
  });
});
