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
  excessVariance,
} from "../../models/studentScale.ts";
import { LATENT_TEST_PARAMS } from "./latentFixtures.ts";

/** No learning, no forgetting, no noise: the filter is a Bayes update of a fixed K. */
const STILL: LatentParams = {
  ...LATENT_TEST_PARAMS,
  priorMean: 0.4,
  priorConcentration: 6,
  learn: [0, 0, 0, 0, 0],
  halfLifeDays: 3650,
  floor: 0.01,
  noise: 0,
};
const TOPICS = ["A", "B", "C", "D", "E", "F"];

const model = (params: LatentParams, studentPriorSd: number, bins = 40, priorMean = params.priorMean) =>
  new LatentFilter({
    version: 1,
    bins,
    params,
    topicPriorMean: Object.fromEntries(TOPICS.map((t) => [t, priorMean])),
    fit: { logLikPerObs: 0, observations: 0, sequences: 0, evaluations: 0 },
    ...(studentPriorSd > 0 ? { studentPriorSd } : {}),
  });

/**
 * Students answering every topic from the filter's own linear emission: K ~ logit-normal around the prior mean
 * shifted by the student's true offset (Normal(0, trueSd^2)), 8 answers a topic.
 */
function students(n: number, trueSd: number, seed: number): LatentSequence[] {
  const rnd = mulberry32(seed);
  const normal = () => Math.sqrt(-2 * Math.log(1 - rnd())) * Math.cos(2 * Math.PI * rnd());
  const sig = (z: number) => 1 / (1 + Math.exp(-z));
  const seqs: LatentSequence[] = [];
  for (let s = 0; s < n; s++) {
    const off = trueSd * normal();
    for (const topic of TOPICS) {
      const K = sig(Math.log(0.4 / 0.6) + off + 0.5 * normal());
      const pc = STILL.guess + (1 - STILL.guess - STILL.slip) * K;
      const events: LatentEvent[] = [];
      for (let j = 0; j < 8; j++) events.push({ t: j, kind: KIND_QUIZ, n: 1, k: rnd() < pc ? 1 : 0 });
      seqs.push({ topic, student: `s${s}`, events });
    }
  }
  return seqs;
}

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
