import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { LATENT_FACTORS, type LatentEstimate } from "../../models/latentFilter.ts";
import {
  type ServedExplanationShape,
  servedExplanationNumbers,
  servedExplanationText,
} from "../../models/servedExplanationNumbers.ts";
import type { ServedEstimate } from "../../models/servedMastery.ts";
import { latentDecay, latentExplanation, latentExplanationNumbers } from "../../serving/latentScoring.ts";
import { servedExplanation, servedExplanationNumbersOf } from "../../serving/servedRows.ts";
import { explanationText } from "../../serving/storedExplanations.ts";
import { servedNumberValues, storedNumbersOf } from "../../storage/explanationNumbers.ts";
import { SERVED_EXPLANATION_COLUMNS } from "../../storage/schema.ts";

// The served step stores its 'served' and 'latent' explanations as numbers (storage/schema.ts
// SERVED_EXPLANATION_COLUMNS) and readers render the text: it must be byte for byte the text the builders'
// JSON.stringify wrote (serving/servedRows.ts servedExplanation, serving/latentScoring.ts latentExplanation).

// Any finite double whose sums stay finite (an overflow to Infinity is JSON null: left to the text, tested below).
const anyDouble = fc.double({ min: -1e300, max: 1e300, noNaN: true });
// Contributions that tie often (zeros of both signs, equal magnitudes of both signs): explain's name order decides.
const tying = fc.oneof(anyDouble, fc.constantFrom(0, -0, 0.125, -0.125, 0.5));
const unit = fc.double({ min: 0, max: 1, noNaN: true });
const days = fc.option(fc.double({ min: 0, max: 400, noNaN: true }), { nil: null });

const latentArb: fc.Arbitrary<LatentEstimate> = fc
  .record({
    score: unit,
    lo: unit,
    hi: unit,
    pCorrect: unit,
    pFloor: fc.option(unit, { nil: undefined }),
    floor: fc.option(unit, { nil: undefined }),
    base: unit,
    contributions: fc.array(tying, {
      minLength: LATENT_FACTORS.length,
      maxLength: LATENT_FACTORS.length,
    }),
    observations: fc.nat(500),
    events: fc.nat(800),
    daysSinceLast: days,
  })
  .map(({ contributions, pFloor, floor, ...r }) => ({
    ...r,
    ...(pFloor === undefined ? {} : { pFloor }),
    ...(floor === undefined ? {} : { floor }),
    contributions: Object.fromEntries(
      LATENT_FACTORS.map((f, i) => [f, contributions[i]!]),
    ) as LatentEstimate["contributions"],
  }));

const servedArb: fc.Arbitrary<ServedEstimate> = fc.record({
  score: unit,
  pCorrect: unit,
  lo: unit,
  hi: unit,
  decay: fc.record({
    halfLifeDays: fc.double({ min: 0.1, max: 1e4, noNaN: true }),
    floor: unit,
    pFloor: unit,
  }),
  evidence: fc.constantFrom("measured", "indirect", "prior"),
  attempts: fc.nat(500),
  daysSinceLast: days,
  base: unit,
  contributions: fc
    .shuffledSubarray([...LATENT_FACTORS], { minLength: 0 })
    .chain((names) =>
      fc.tuple(
        ...names.map((name) => fc.record({ name: fc.constant(name), value: anyDouble, contribution: tying })),
      ),
    ),
  rest: anyDouble,
});

const params = { floor: 0.05, halfLifeDays: 30, guess: 0.2, slip: 0.1 };

/** The numbers' way through the columns: the writer's values, read back by column name as a reader does. */
function throughColumns(e: ServedExplanationShape, score: number): string {
  const n = servedExplanationNumbers(e, score);
  if (n === null) throw new Error("not encoded");
  const values = servedNumberValues(n);
  const byName = new Map<string, number | null>(SERVED_EXPLANATION_COLUMNS.map((c, i) => [c, values[i]!]));
  const stored = storedNumbersOf((c) => byName.get(c) ?? null);
  expect(stored !== null && "served" in stored).toBe(true);
  return explanationText("", stored, score);
}

describe("served explanations stored as numbers", () => {
  it("render a latent row's text byte for byte (builder, numbers, columns)", () => {
    fc.assert(
      fc.property(latentArb, (est) => {
        const e = latentExplanation(est, latentDecay(params as never, est));
        const text = JSON.stringify(e);
        const n = servedExplanationNumbers(e as ServedExplanationShape, est.score);
        expect(n).not.toBeNull();
        expect(servedExplanationText(n!, est.score)).toBe(text);
        expect(throughColumns(e as ServedExplanationShape, est.score)).toBe(text);
        // The batch's way: the numbers straight from the estimate, equal to the bit (Object.is).
        expect(latentExplanationNumbers(est, latentDecay(params as never, est))).toEqual(n);
      }),
      { numRuns: 400 },
    );
  });

  it("render a served row's text byte for byte, 0 to 3 factors", () => {
    fc.assert(
      fc.property(servedArb, (est) => {
        const e = servedExplanation(est);
        const text = JSON.stringify(e);
        expect(throughColumns(e, est.score)).toBe(text);
        expect(servedExplanationNumbersOf(est)).toEqual(servedExplanationNumbers(e, est.score));
      }),
      { numRuns: 400 },
    );
  });

  it("known answer: a latent row's text from its numbers", () => {
    const n = {
      base: 0.25,
      rest: -0,
      factors: [
        { factor: LATENT_FACTORS.indexOf("quiz_answers"), value: 0.5, contribution: 0.5 },
        { factor: LATENT_FACTORS.indexOf("forgetting"), value: -0.125, contribution: -0.125 },
      ],
      lo: 0.375,
      hi: 0.75,
      kind: 0,
      attempts: 12,
      daysSinceLast: 1.5,
      pCorrect: 0.6,
      halfLifeDays: 30,
      floor: 0.05,
      pFloor: 0.235,
    };
    expect(servedExplanationText(n, 0.625)).toBe(
      '{"base":0.25,"factors":[{"name":"quiz_answers","value":0.5,"contribution":0.5},' +
        '{"name":"forgetting","value":-0.125,"contribution":-0.125}],"rest":0,"score":0.625,' +
        '"interval":{"lo":0.375,"hi":0.75,"level":0.8},"evidence":{"kind":"measured","attempts":12,"daysSinceLast":1.5},' +
        '"pCorrect":0.6,"decay":{"halfLifeDays":30,"floor":0.05,"pFloor":0.235}}',
    );
  });

  it("leave a shape the numbers cannot hold to the text", () => {
    const est: ServedEstimate = {
      score: 0.5,
      pCorrect: 0.5,
      lo: 0.4,
      hi: 0.6,
      decay: { halfLifeDays: 30, floor: 0.05, pFloor: 0.2 },
      evidence: "measured",
      attempts: 3,
      daysSinceLast: 2,
      base: 0.3,
      contributions: [{ name: "quiz_answers", value: 1, contribution: 0.2 }],
      rest: 0,
    };
    const e = servedExplanation(est);
    expect(servedExplanationNumbers(e, 0.5)).not.toBeNull();
    // The score must be the row's (the text carries it).
    expect(servedExplanationNumbers(e, 0.51)).toBeNull();
    // A factor of the stack (not a latent filter's), a label, a non-finite number (JSON null), no decay.
    expect(
      servedExplanationNumbers(
        servedExplanation({ ...est, contributions: [{ name: "rule_score", value: 1, contribution: 0.2 }] }),
        0.5,
      ),
    ).toBeNull();
    expect(
      servedExplanationNumbers({ ...e, factors: [{ ...e.factors[0]!, label: "Quiz answers" }] }, 0.5),
    ).toBeNull();
    expect(servedExplanationNumbers({ ...e, pCorrect: Number.NaN }, 0.5)).toBeNull();
    expect(servedExplanationNumbers({ ...e, decay: undefined }, 0.5)).toBeNull();
    // The estimates' way refuses the same shapes.
    expect(
      servedExplanationNumbersOf({
        ...est,
        contributions: [{ name: "rule_score", value: 1, contribution: 0.2 }],
      }),
    ).toBeNull();
    expect(servedExplanationNumbersOf({ ...est, pCorrect: Number.POSITIVE_INFINITY })).toBeNull();
    expect(
      servedExplanationNumbersOf({
        ...est,
        contributions: [
          { name: "quiz_answers", value: 1, contribution: 0.2 },
          { name: "quiz_answers", value: 1, contribution: 0.1 },
        ],
      }),
    ).toBeNull();
    expect(
      servedExplanationNumbers(
        { ...e, factors: [e.factors[0]!, e.factors[0]!, e.factors[0]!, e.factors[0]!] },
        0.5,
      ),
    ).toBeNull();
  });
});
