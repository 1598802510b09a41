import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  KIND_QUIZ,
  type LatentEvent,
  LatentFilter,
  type LatentParams,
  type LatentSequence,
} from "../../models/latentFilter.ts";
import { mulberry32 } from "../../models/prng.ts";
import {
  answerPredictions,
  applyStudentScale,
  chooseStudentScale,
  emissionSlopes,
  excessVariance,
} from "../../models/studentScale.ts";
import {
  LATENT_STILL_PARAMS as STILL,
  stillStudents,
  STUDENT_TEST_TOPICS as TOPICS,
} from "./latentFixtures.ts";

const model = (params: LatentParams, studentPriorSd: number, bins = 40, priorMean = params.priorMean) =>
  new LatentFilter({
    version: 1,
    bins,
    params,
    topicPriorMean: Object.fromEntries(TOPICS.map((t) => [t, priorMean])),
    fit: { logLikPerObs: 0, observations: 0, sequences: 0, evaluations: 0 },
    ...(studentPriorSd > 0 ? { studentPriorSd } : {}),
  });

const students = (n: number, trueSd: number, seed: number): LatentSequence[] =>
  stillStudents(n, trueSd, seed, 0.5, 8);

describe("student part's scale: the moments check (round 19)", () => {
  it("predicts each answer before it (known answer: two cells, uniform prior, guess 0.2, slip 0.1)", () => {
    // Both answers at t = 0 (no forgetting between them). Grid midpoints 0.25 / 0.75, Beta(1, 1) prior: P(correct) = 0.2 + 0.7 x = 0.375 / 0.725, first 0.55;
    // after a right answer the cells weigh 0.1875 / 0.3625 (of 0.55), so the second is
    // (0.1875 * 0.375 + 0.3625 * 0.725) / 0.55 = 0.60568181...
    const f = model({ ...STILL, priorMean: 0.5, priorConcentration: 2 }, 0, 2, 0.5);
    const a = answerPredictions(f, {
      topic: "A",
      events: [
        { t: 0, kind: KIND_QUIZ, n: 1, k: 1 },
        { t: 0, kind: KIND_QUIZ, n: 1, k: 0 },
      ],
    });
    expect(a.n).toEqual([1, 1]);
    expect(a.k).toEqual([1, 0]);
    expect(a.p[0]).toBeCloseTo(0.55, 12);
    expect(a.p[1]).toBeCloseTo((0.1875 * 0.375 + 0.3625 * 0.725) / 0.55, 12);
  });

  it("estimates the true spread by moments (known answer)", () => {
    // Excesses +-0.1 (variance 0.01) with binomial noise 0.004 each: 0.006; weights move both parts.
    expect(excessVariance([0.1, -0.1], [0.004, 0.004], [1, 1])).toBeCloseTo(0.006, 15);
    // Weights 3 : 1 on 0.2 / -0.2: mean 0.1, variance (3 * 0.01 + 0.09) / 4 = 0.03; noise (3 * 0.01 + 0.05) / 4.
    expect(excessVariance([0.2, -0.2], [0.01, 0.05], [3, 1])).toBeCloseTo(0.03 - 0.02, 15);
  });

  it("keeps c = 1 without a student effect, and reins in a student part wider than the students differ", () => {
    const same = students(100, 0, 7);
    expect(chooseStudentScale(model(STILL, 0), same)).toMatchObject({
      scale: 1,
      reason: "no student effect",
    });
    // The students do not differ, the model lets offsets move with a prior sd of 3: the part claims spread that
    // the answers do not hold, so c < 1 and the part's spread after it is the moments estimate's (or 0).
    const wide = chooseStudentScale(model(STILL, 3), same);
    expect(wide.students).toBe(100);
    expect(wide.partVariance).toBeGreaterThan(Math.max(0, wide.trueVariance));
    expect(wide.scale).toBeLessThan(0.8);
    if (wide.trueVariance > 0) expect(wide.partVarianceAfter!).toBeCloseTo(wide.trueVariance, 4);
    // Students that differ a lot, the model's prior sd about theirs: the bound holds, nothing changes.
    const differ = students(100, 1.5, 8);
    const fit = chooseStudentScale(model(STILL, 1), differ);
    expect(fit.trueVariance).toBeGreaterThan(wide.trueVariance);
    expect(fit.scale).toBeGreaterThan(wide.scale);
  }, 60_000);

  it("applies c to every offset and its sd, and leaves a model the check keeps byte for byte", () => {
    const differ = students(100, 1.5, 8);
    const kept = applyStudentScale(model(STILL, 1), differ);
    expect(kept.json.studentOffsetScale).toBeUndefined();
    expect(kept.json.fit.studentScaleCheck?.scale).toBe(1);
    const same = students(100, 0, 7);
    const base = model(STILL, 3);
    const reined = applyStudentScale(base, same);
    const c = reined.json.studentOffsetScale!;
    expect(c).toBeGreaterThanOrEqual(0);
    expect(c).toBeLessThan(1);
    for (let s = 0; s < 5; s++) {
      const seqs = same.filter((q) => q.student === `s${s}`);
      expect(reined.studentOffset(seqs)).toBe(c * base.studentOffset(seqs));
    }
  }, 60_000);

  it("property: a scaled model's offset is c times the unscaled one for any summary (order kept)", () => {
    const base = model(STILL, 1.2);
    fc.assert(
      fc.property(
        fc.array(fc.double({ min: -40, max: 0, noNaN: true }), { minLength: 7, maxLength: 7 }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        (sum, c) => {
          const scaled = new LatentFilter({ ...base.json, studentOffsetScale: c });
          const o = base.offsetFromSummary(sum);
          expect(scaled.offsetFromSummary(sum)).toBe(c * o);
          expect(Math.abs(scaled.offsetFromSummary(sum))).toBeLessThanOrEqual(Math.abs(o));
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe("student part's scale: the check on the mastery scale (round 20)", () => {
  it("emission slopes: 1 - guess - slip on every cell of the linear emission (known answer)", () => {
    const k = model(STILL, 0).kernelFor("A");
    const b = emissionSlopes(k);
    expect(b.length).toBe(40);
    for (const v of b) expect(v).toBeCloseTo(1 - STILL.guess - STILL.slip, 12);
  });

  it("emission slopes: the logistic emission's derivative (1 - g - s) a s(z)(1 - s(z)) at the grid (hand values)", () => {
    // guess 0.2, slip 0.1, slope 10, threshold 0.5, 4 cells at 0.125 / 0.375 / 0.625 / 0.875.
    const prm: LatentParams = { ...STILL, guess: 0.2, slip: 0.1, slope: 10, threshold: 0.5 };
    const b = emissionSlopes(model(prm, 0, 4).kernelFor("A"));
    const e = (x: number) => 0.2 + 0.7 / (1 + Math.exp(-10 * (x - 0.5)));
    // Central differences over two cells (0.25 apart each side), one-sided at the ends.
    expect(b[0]).toBeCloseTo((e(0.375) - e(0.125)) / 0.25, 12);
    expect(b[1]).toBeCloseTo((e(0.625) - e(0.125)) / 0.5, 12);
    expect(b[2]).toBeCloseTo((e(0.875) - e(0.375)) / 0.5, 12);
    expect(b[3]).toBeCloseTo((e(0.875) - e(0.625)) / 0.25, 12);
    // By symmetry around the threshold the two inner cells' slopes are equal: (e(0.625) - e(0.125)) / 0.5.
    expect(b[1]).toBeCloseTo(b[2]!, 12);
    expect(b[1]).toBeCloseTo((0.7 / (1 + Math.exp(-1.25)) - 0.7 / (1 + Math.exp(3.75))) / 0.5, 12);
  });

  it("records the posterior's mean K and mean slope before each answer (two cells, known answer)", () => {
    // As the round 19 hand case: cells 0.25 / 0.75, slopes (0.725 - 0.375) / 0.5 = 0.7 on both (linear).
    const f = model({ ...STILL, priorMean: 0.5, priorConcentration: 2 }, 0, 2, 0.5);
    const a = answerPredictions(f, {
      topic: "A",
      events: [
        { t: 0, kind: KIND_QUIZ, n: 1, k: 1 },
        { t: 0, kind: KIND_QUIZ, n: 1, k: 0 },
      ],
    });
    expect(a.m[0]).toBeCloseTo(0.5, 12);
    // After the right answer: weights 0.1875 / 0.3625 of 0.55.
    expect(a.m[1]).toBeCloseTo((0.1875 * 0.25 + 0.3625 * 0.75) / 0.55, 12);
    expect(a.b[0]).toBeCloseTo(0.7, 12);
    expect(a.b[1]).toBeCloseTo(0.7, 12);
  });

  it("on the linear emission the mastery check is the answers' check divided by the slope squared: same c", () => {
    // P(correct) = g + (1 - g - s) E[K] exactly, so both sides of the mastery check are the answers' over
    // (1 - g - s)^2 and c is the same.
    const same = students(100, 0, 7);
    const b2 = (1 - STILL.guess - STILL.slip) ** 2;
    const ans = chooseStudentScale(model(STILL, 3), same);
    const k = chooseStudentScale(model(STILL, 3), same, "mastery");
    expect(k.on).toBe("mastery");
    expect(ans.on).toBeUndefined();
    expect(k.students).toBe(ans.students);
    expect(k.trueVariance).toBeCloseTo(ans.trueVariance / b2, 10);
    expect(k.partVariance).toBeCloseTo(ans.partVariance / b2, 10);
    expect(k.scale).toBeCloseTo(ans.scale, 6);
    expect(k.scale).toBeLessThan(0.8);
  }, 60_000);

  it("on a logistic emission, students on its flat top count in full: the mastery check reins in harder", () => {
    // The students differ a little (right with probability 0.5 or 0.9); the model's student prior sd 3 lifts
    // the abler ones far above the threshold 0.3, where an answer hardly moves. In answers that lift is hidden;
    // on K it is not.
    const prm: LatentParams = { ...STILL, priorMean: 0.5, slope: 12, threshold: 0.3 };
    const f = model(prm, 3, 40, 0.5);
    const rnd = mulberry32(11);
    const seqs: LatentSequence[] = [];
    for (let s = 0; s < 80; s++)
      for (const topic of TOPICS) {
        const events: LatentEvent[] = [];
        for (let j = 0; j < 8; j++)
          events.push({ t: j, kind: KIND_QUIZ, n: 1, k: rnd() < 0.5 + 0.4 * (s % 2) ? 1 : 0 });
        seqs.push({ topic, student: `s${s}`, events });
      }
    const ans = chooseStudentScale(f, seqs);
    const k = chooseStudentScale(f, seqs, "mastery");
    expect(ans.scale).toBeLessThan(1);
    expect(k.scale).toBeLessThan(ans.scale);
    if (k.trueVariance > 0) expect(k.partVarianceAfter!).toBeCloseTo(k.trueVariance, 4);
  }, 60_000);

  it("property: the mastery check's c is in [0, 1] and a model it keeps (c = 1) holds the bound", () => {
    fc.assert(
      fc.property(
        fc.double({ min: 0.2, max: 3, noNaN: true }),
        fc.double({ min: 0, max: 2, noNaN: true }),
        fc.integer({ min: 1, max: 1000 }),
        (priorSd, trueSd, seed) => {
          const c = chooseStudentScale(model(STILL, priorSd), students(40, trueSd, seed), "mastery");
          expect(c.scale).toBeGreaterThanOrEqual(0);
          expect(c.scale).toBeLessThanOrEqual(1);
          if (c.scale === 1) expect(c.partVariance).toBeLessThanOrEqual(Math.max(0, c.trueVariance));
          else expect(c.partVariance).toBeGreaterThan(Math.max(0, c.trueVariance));
        },
      ),
      { numRuns: 8 },
    );
  }, 120_000);
});
