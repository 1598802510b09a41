import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { LATENT_FACTORS, type LatentEstimate } from "../../models/latentFilter.ts";
import type { ServedEstimate } from "../../models/servedMastery.ts";
import { latentExplanation } from "../../serving/latentScoring.ts";
import { latentExplanationText, servedExplanationText } from "../../serving/servedExplanationText.ts";
import { servedExplanation } from "../../serving/servedRows.ts";

/** Any double (NaN, -0, infinities, subnormals), or one of a few values so that |contribution| ties are common. */
const numberArb = fc.oneof(
  fc.double(),
  fc.constantFrom(0, -0, 0.1, -0.1, 1e-9, -1e-9, 0.25),
  fc.double({ min: -1, max: 1, noNaN: true }),
);
const kindArb = fc.constantFrom("measured" as const, "indirect" as const, "prior" as const);
const daysArb = fc.option(numberArb, { nil: null });
const decayArb = fc.record({ halfLifeDays: numberArb, floor: numberArb, pFloor: numberArb });

const latentArb: fc.Arbitrary<LatentEstimate> = fc
  .record({
    score: numberArb,
    lo: numberArb,
    hi: numberArb,
    pCorrect: numberArb,
    base: numberArb,
    contributions: fc.array(numberArb, {
      minLength: LATENT_FACTORS.length,
      maxLength: LATENT_FACTORS.length,
    }),
    observations: fc.oneof(fc.nat(40), numberArb),
    events: fc.nat(60),
    daysSinceLast: daysArb,
  })
  .map((r) => ({
    ...r,
    contributions: Object.fromEntries(LATENT_FACTORS.map((f, i) => [f, r.contributions[i]!])) as Record<
      (typeof LATENT_FACTORS)[number],
      number
    >,
  }));

const servedArb: fc.Arbitrary<ServedEstimate> = fc.record({
  score: numberArb,
  pCorrect: numberArb,
  lo: numberArb,
  hi: numberArb,
  decay: decayArb,
  evidence: kindArb,
  attempts: fc.oneof(fc.nat(40), numberArb),
  daysSinceLast: daysArb,
  base: numberArb,
  contributions: fc
    .array(fc.tuple(numberArb, numberArb), {
      minLength: LATENT_FACTORS.length,
      maxLength: LATENT_FACTORS.length,
    })
    .map((xs) => xs.map(([value, contribution], i) => ({ name: LATENT_FACTORS[i]!, value, contribution }))),
  rest: numberArb,
});

describe("the served step's explanation texts straight from the estimates (lean29)", () => {
  it("servedExplanationText is JSON.stringify(servedExplanation(e)), or null only where explain's order is not strict", () => {
    let fast = 0;
    fc.assert(
      fc.property(servedArb, (e) => {
        const t = servedExplanationText(e);
        if (t === null) {
          expect(e.contributions.some((c) => !Number.isFinite(c.contribution))).toBe(true);
          return;
        }
        fast++;
        expect(t).toBe(JSON.stringify(servedExplanation(e)));
      }),
      { numRuns: 3000 },
    );
    expect(fast).toBeGreaterThan(1000);
  });

  it("latentExplanationText is JSON.stringify(latentExplanation(est, decay)), or null only where explain's order is not strict", () => {
    let fast = 0;
    fc.assert(
      fc.property(latentArb, decayArb, (est, decay) => {
        const t = latentExplanationText(est, decay);
        if (t === null) {
          expect(Object.values(est.contributions).some((c) => !Number.isFinite(c))).toBe(true);
          return;
        }
        fast++;
        expect(t).toBe(JSON.stringify(latentExplanation(est, decay)));
      }),
      { numRuns: 3000 },
    );
    expect(fast).toBeGreaterThan(1000);
  });

  it("known answer: ties in |contribution| go by the name, the rest sums the others, -0 and NaN print as JSON does", () => {
    const contributions = Object.fromEntries(
      LATENT_FACTORS.map((f) => [f, 0]),
    ) as LatentEstimate["contributions"];
    contributions.forgetting = -0.125;
    contributions.quiz_answers = 0.125;
    contributions.learning_quiz = 0.0625;
    contributions.practice_results = -0;
    contributions.learning_video = 0.03125;
    const est: LatentEstimate = {
      score: 0.5,
      lo: -0,
      hi: 0.75,
      pCorrect: Number.NaN,
      base: 0.46875,
      contributions,
      observations: 3,
      events: 4,
      daysSinceLast: null,
    };
    expect(latentExplanationText(est, { halfLifeDays: 40, floor: 0.05, pFloor: 0.2 })).toBe(
      '{"base":0.46875,"factors":[{"name":"forgetting","value":-0.125,"contribution":-0.125},' +
        '{"name":"quiz_answers","value":0.125,"contribution":0.125},' +
        '{"name":"learning_quiz","value":0.0625,"contribution":0.0625}],"rest":0.03125,"score":0.5,' +
        '"interval":{"lo":0,"hi":0.75,"level":0.8},"evidence":{"kind":"measured","attempts":3,"daysSinceLast":null},' +
        '"pCorrect":null,"decay":{"halfLifeDays":40,"floor":0.05,"pFloor":0.2}}',
    );
  });
});
