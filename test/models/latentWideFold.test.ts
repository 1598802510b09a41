import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { KIND_PRACTICE, type LatentEvent, LatentKernel } from "../../models/latentFilter.ts";
import { PROPERTY_TOPICS, studentSequencesArb } from "./latentFixtures.ts";
import { expectWideFoldEqualsSteps } from "./latentPathChecks.ts";
import { LATENT_STUDENT_VARIANTS } from "./latentStudentCases.ts";

/** A float64's bits (hex), so that -0, NaN and 1-ulp differences show in a failure. */
const _bits = (x: number): string => Buffer.from(Float64Array.of(x).buffer).toString("hex");

/** The events with every practice set's correct count made fractional (an emission row that is not kept). */
const fractional = (events: readonly LatentEvent[]): LatentEvent[] =>
  events.map((e) => (e.kind === KIND_PRACTICE && e.k < e.n ? { ...e, k: e.k + 0.5 } : e));

describe("LatentKernel.foldWide (lean28: the basis parts of a pair folded in one pass)", () => {
  it("gives every basis part the bits of its own fold: posterior, log-likelihood, factor contributions, mean", () => {
    for (const { name, model } of LATENT_STUDENT_VARIANTS) {
      const grid = model.studentGrid();
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
            expectWideFoldEqualsSteps(model, s, name);
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
