import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  KIND_PRACTICE,
  LATENT_FACTORS,
  type LatentEvent,
  LatentKernel,
  type LatentState,
} from "../../models/latentFilter.ts";
import { PROPERTY_TOPICS, studentSequencesArb } from "./latentFixtures.ts";
import { LATENT_STUDENT_VARIANTS } from "./latentStudentCases.ts";

/** A float64's bits (hex), so that -0, NaN and 1-ulp differences show in a failure. */
const bits = (x: number): string => Buffer.from(Float64Array.of(x).buffer).toString("hex");

/** The events with every practice set's correct count made fractional (an emission row that is not kept). */
const fractional = (events: readonly LatentEvent[]): LatentEvent[] =>
  events.map((e) => (e.kind === KIND_PRACTICE && e.k < e.n ? { ...e, k: e.k + 0.5 } : e));

describe("LatentKernel.foldWide (lean28: the basis parts of a pair folded in one pass)", () => {
  it("gives every basis part the bits of its own fold: posterior, log-likelihood, factor contributions, mean", () => {
    for (const { name, model } of LATENT_STUDENT_VARIANTS) {
      const grid = model.studentGrid();
      const W = grid.length;
      const G = model.json.bins;
      const F = LATENT_FACTORS.length;
      fc.assert(
        fc.property(studentSequencesArb(PROPERTY_TOPICS, 20, 30), ({ seqs }) => {
          for (const s of seqs.flatMap((x) => [x, { ...x, events: fractional(x.events) }])) {
            const ks = grid.map((g) => model.kernelFor(s.topic, g));
            const wk = LatentKernel.wide(ks);
            if (model.json.params.durableShare !== undefined) {
              // The durable share's floor is each part's own prior mean: no shared forgetting plan.
              expect(wk, name).toBeNull();
              continue;
            }
            expect(wk, name).not.toBeNull();
            // Each part alone: `step` per event from its basis prior (the stream's and predict's fold).
            const states: LatentState[] = grid.map((g) => model.init(s.topic, g));
            const p = new Float64Array(W * G);
            states.forEach((st, r) => {
              for (let i = 0; i < G; i++) p[r * G + i] = st.p[i]!;
            });
            const means = new Float64Array(W);
            ks[0]!.wideMeans(p, W, means);
            const contributions = new Float64Array(W * F);
            const ll = new Float64Array(W);
            const res = LatentKernel.foldWide(wk!, s.events, p, new Float64Array(W * G), ll, {
              contributions,
              means,
            });
            states.forEach((st, r) => {
              let l = 0;
              for (const e of s.events) l += model.step(st, e, s.topic, grid[r]!);
              const col = Array.from({ length: G }, (_, i) => bits(res[r * G + i]!));
              expect(col, `${name}: part ${r}'s posterior`).toEqual(Array.from(st.p, bits));
              expect(bits(ll[r]!), `${name}: part ${r}'s log-likelihood`).toBe(bits(l));
              expect(
                Array.from(contributions.subarray(r * F, (r + 1) * F), bits),
                `${name}: part ${r}'s contributions`,
              ).toEqual(Array.from(st.contributions, bits));
              // The last mean is the stored posterior's (base + contributions = score rests on it).
              let m = 0;
              for (let i = 0; i < G; i++) m += st.p[i]! * ks[0]!.x[i]!;
              expect(bits(means[r]!), `${name}: part ${r}'s mean`).toBe(bits(m));
            });
          }
        }),
        { numRuns: 30 },
      );
    }
  });

  it("refuses kernels that do not share one emission table set", () => {
    const { model } = LATENT_STUDENT_VARIANTS.find((v) => v.name.startsWith("logistic, topic thresholds"))!;
    // Topics A and B have their own emission thresholds: their kernels' tables differ.
    expect(LatentKernel.wide([model.kernelFor("A", 1), model.kernelFor("B", 1)])).toBeNull();
    expect(LatentKernel.wide([model.kernelFor("A", 1), model.kernelFor("A", 2)])).not.toBeNull();
    expect(LatentKernel.wide([])).toBeNull();
  });
});
