import { describe, expect, it } from "vitest";
import { mulberry32 } from "../../models/prng.ts";
import { denseLabel, kindWeights, MAX_KIND_WEIGHT, type WindowOutcomes } from "../../models/servedLabels.ts";

/** Pairs with accuracy p; quiz answers Bernoulli(p); practice sets of 8 answers at p + offset; assignments p + N-ish noise. */
function windows(n: number, seed: number, practiceOffset: number, assignmentNoise: number): WindowOutcomes[] {
  const rnd = mulberry32(seed);
  return Array.from({ length: n }, () => {
    const p = 0.2 + 0.6 * rnd();
    const quizN = 2 + Math.floor(rnd() * 8);
    let quizCorrect = 0;
    for (let i = 0; i < quizN; i++) if (rnd() < p) quizCorrect++;
    const q = Math.min(1, Math.max(0, p + practiceOffset));
    let c = 0;
    for (let i = 0; i < 8; i++) if (rnd() < q) c++;
    const a = Math.min(1, Math.max(0, p + assignmentNoise * (rnd() + rnd() + rnd() - 1.5) * 2));
    return { quizN, quizCorrect, practice: [c / 8], assignments: [a] };
  });
}

describe("served proxy labels over every graded outcome", () => {
  it("weighs a practice set of 8 answers like ~8 quiz answers and a noisy assignment less than a precise one", () => {
    const w = kindWeights(windows(20_000, 1, 0, 0.05));
    // A set of 8 answers at the pair's own accuracy carries the information of ~8 quiz answers.
    expect(w.practice).toBeGreaterThan(6);
    expect(w.practice).toBeLessThan(MAX_KIND_WEIGHT);
    const noisy = kindWeights(windows(20_000, 2, 0, 0.3));
    expect(noisy.assignment).toBeLessThan(w.assignment);
    expect(noisy.assignment).toBeGreaterThan(0);
    expect(w.nPractice).toBe(20_000);
  });

  it("an offset from the quiz scale costs a kind weight", () => {
    const same = kindWeights(windows(20_000, 3, 0, 0.1));
    const offset = kindWeights(windows(20_000, 3, 0.25, 0.1));
    expect(offset.practice).toBeLessThan(same.practice / 2);
  });

  it("the label is the weighted mean of the outcomes and its weight their sum", () => {
    const w = { practice: 4, assignment: 2, nPractice: 100, nAssignment: 100 };
    const l = denseLabel({ quizN: 3, quizCorrect: 2, practice: [0.5], assignments: [1] }, w);
    expect(l.weight).toBe(9);
    expect(l.label).toBeCloseTo((2 + 4 * 0.5 + 2 * 1) / 9, 12);
    expect(denseLabel({ quizN: 0, quizCorrect: 0, practice: [], assignments: [] }, w).weight).toBe(0);
    // Too few comparisons: the kind weighs 0 and the label is quiz accuracy.
    const few = kindWeights(windows(10, 4, 0, 0.05));
    expect(few.practice).toBe(0);
    expect(denseLabel({ quizN: 4, quizCorrect: 1, practice: [1], assignments: [1] }, few).label).toBe(0.25);
  });
});
