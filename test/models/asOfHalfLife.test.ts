import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  AS_OF_HALF_LIFE_RANGE,
  AsOfHalfLifeError,
  fitIdleHalfLife,
  type IdleAnswer,
  idleLogLik,
} from "../../models/asOfHalfLife.ts";
import {
  KIND_PRACTICE,
  KIND_QUIZ,
  KIND_VIDEO,
  type LatentEvent,
  LatentFilter,
  LatentKernel,
  type LatentParams,
} from "../../models/latentFilter.ts";
import { mulberry32 } from "../../models/prng.ts";
import { decayTowards } from "../../models/servedDecay.ts";
import { servedFromLatent, type TopicCalibration } from "../../models/servedMastery.ts";
import { latentDecay } from "../../serving/latentScoring.ts";
import { LATENT_TEST_PARAMS, latentEvents as toEvents } from "./latentFixtures.ts";

// Round 28 (docs/benchmarks.md "Round 28 (valid28)"): the as-of decay's half-life fitted on the answers that follow
// idle gaps, each predicted as the as-of step predicts a pair at its scoring time.

/** Answers drawn from the as-of decay itself with half-life h: P(correct) at the last event decays to pFloor. */
function simulateIdle(h: number, count: number, seed: number, pFloor = 0.3): IdleAnswer[] {
  const rnd = mulberry32(seed);
  const out: IdleAnswer[] = [];
  for (let i = 0; i < count; i++) {
    const pBefore = 0.4 + 0.55 * rnd();
    const gapDays = 7 + 60 * rnd();
    const n = rnd() < 0.7 ? 1 : 5;
    const p = decayTowards(pBefore, pFloor, h, gapDays);
    let k = 0;
    for (let j = 0; j < n; j++) if (rnd() < p) k++;
    out.push({ pBefore, pFloor, gapDays, n, k });
  }
  return out;
}

describe("fitIdleHalfLife (round 28)", () => {
  for (const truth of [12, 40, 200])
    it(`known answer: recovers the half-life the answers were drawn with (${truth} days)`, () => {
      const answers = simulateIdle(truth, 30_000, truth);
      const c = fitIdleHalfLife(answers, 84.7);
      expect(c.kept).toBeUndefined();
      expect(Math.abs(Math.log(c.halfLifeDays / truth))).toBeLessThan(truth >= 200 ? 0.35 : 0.15);
      expect(c.filterHalfLifeDays).toBe(84.7);
      expect(c.events).toBe(30_000);
      expect(c.answers).toBe(answers.reduce((s, a) => s + a.n, 0));
      expect(c.medianGapDays).toBeGreaterThan(30);
      expect(c.medianGapDays).toBeLessThan(44);
      // The chosen h is the likelihood's maximum: 10% either side is lower.
      const f = (h: number) => idleLogLik(answers, h);
      expect(f(c.halfLifeDays)).toBeGreaterThan(f(c.halfLifeDays * 1.1));
      expect(f(c.halfLifeDays)).toBeGreaterThan(f(c.halfLifeDays / 1.1));
      expect(c.logLikPerAnswer).toBeCloseTo(f(c.halfLifeDays) / c.answers, 12);
      expect(c.logLikPerAnswer).toBeGreaterThanOrEqual(c.filterLogLikPerAnswer);
    });

  it("property: the chosen half-life is never below another half-life in the range in likelihood (grid + golden section)", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 1e6 }),
        fc.double({ min: 1, max: 1000, noNaN: true }),
        fc.array(fc.double({ min: AS_OF_HALF_LIFE_RANGE.min, max: AS_OF_HALF_LIFE_RANGE.max, noNaN: true }), {
          minLength: 1,
          maxLength: 10,
        }),
        (seed, h, others) => {
          const answers = simulateIdle(h, 400, seed);
          const c = fitIdleHalfLife(answers, 60);
          expect(c.halfLifeDays).toBeGreaterThanOrEqual(AS_OF_HALF_LIFE_RANGE.min);
          expect(c.halfLifeDays).toBeLessThanOrEqual(AS_OF_HALF_LIFE_RANGE.max);
          const best = idleLogLik(answers, c.halfLifeDays);
          // Tolerance: the golden section's bracket is a grid step (0.1 in log h) and stops at 1e-6.
          for (const o of [60, ...others]) expect(best).toBeGreaterThanOrEqual(idleLogLik(answers, o) - 1e-6);
        },
      ),
      { numRuns: 30 },
    );
  });

  it("keeps the filter's half-life when too few answers follow idle gaps, and says so", () => {
    const answers = simulateIdle(20, 50, 3);
    const c = fitIdleHalfLife(answers, 84.7);
    expect(c.halfLifeDays).toBe(84.7);
    expect(c.kept).toMatch(/answers after idle gaps of >= 7 days \(< 200\): the filter's half-life kept/);
    expect(c.logLikPerAnswer).toBe(c.filterLogLikPerAnswer);
    expect(fitIdleHalfLife([], 30).kept).toMatch(/^0 answers/);
  });

  it("refuses a non-positive half-life and an impossible answer, naming the fix", () => {
    expect(() => fitIdleHalfLife([], 0)).toThrow(/fit the latent filter first/);
    expect(() => idleLogLik([], -1)).toThrow(AsOfHalfLifeError);
    expect(() => fitIdleHalfLife([{ pBefore: 0.5, pFloor: 0.3, gapDays: 9, n: 1, k: 2 }], 30)).toThrow(
      /0 <= k <= n/,
    );
  });
});

const PARAMS: LatentParams = { ...LATENT_TEST_PARAMS, forgetSpread: 0.75, asOfForgetting: "decay" };

describe("LatentFilter.idleAnswers (round 28)", () => {
  it("known answer: the graded events after gaps of >= 7 days, predicted from the posterior at the previous event", () => {
    const kernel = new LatentKernel(PARAMS, 40);
    const events: LatentEvent[] = [
      { t: 0, kind: KIND_QUIZ, n: 1, k: 1 },
      { t: 2, kind: KIND_QUIZ, n: 1, k: 0 },
      { t: 12, kind: KIND_QUIZ, n: 1, k: 1 }, // gap 10: counted
      { t: 13, kind: KIND_PRACTICE, n: 4, k: 3 },
      { t: 21, kind: KIND_PRACTICE, n: 5, k: 2 }, // gap 8: counted
      { t: 30, kind: KIND_VIDEO, n: 0, k: 0 }, // gap 9, not graded
      { t: 37, kind: KIND_QUIZ, n: 1, k: 0 }, // gap 7 after the video: counted
      { t: 43.5, kind: KIND_QUIZ, n: 1, k: 1 }, // gap 6.5: not counted
    ];
    const got = LatentFilter.idleAnswers(
      () => kernel,
      [{ topic: "T", events }],
      () => 0.4,
      () => 0.27,
    );
    expect(got.map((a) => [a.gapDays, a.n, a.k])).toEqual([
      [10, 1, 1],
      [8, 5, 2],
      [7, 1, 0],
    ]);
    const p = new Float64Array(40);
    for (const [i, at] of [
      [0, 2],
      [1, 4],
      [2, 6],
    ] as const) {
      kernel.run(events.slice(0, at), 0.4, p);
      expect(got[i]!.pBefore).toBe(kernel.predictive(p));
      expect(got[i]!.pFloor).toBe(0.27);
    }
  });
});

const filter = (params: LatentParams) =>
  new LatentFilter({
    version: 1,
    bins: 40,
    params,
    topicPriorMean: { T: 0.4 },
    fit: { logLikPerObs: 0, observations: 0, sequences: 0, evaluations: 0 },
  });

describe("the as-of step with a fitted as-of half-life (round 28: params.asOfHalfLifeDays)", () => {
  const events: LatentEvent[] = [
    { t: 0, kind: KIND_QUIZ, n: 1, k: 1 },
    { t: 3, kind: KIND_QUIZ, n: 1, k: 1 },
    { t: 9, kind: KIND_PRACTICE, n: 6, k: 5 },
  ];
  it("known answer: the score decays by the as-of half-life, the filter between events is unchanged", () => {
    const f = filter({ ...PARAMS, asOfHalfLifeDays: 80 });
    const atLast = f.predict("T", events, 9);
    const later = f.predict("T", events, 49);
    // 40 idle days at an 80-day as-of half-life (the filter's own is 20): 2^(-1/2) of the distance to 0.1 is left.
    expect(later.score).toBeCloseTo(0.1 + (atLast.score - 0.1) * Math.SQRT1_2, 12);
    expect(later.hi).toBeCloseTo(0.1 + (atLast.hi - 0.1) * Math.SQRT1_2, 12);
    expect(later.pCorrect).toBeCloseTo(0.27 + (atLast.pCorrect - 0.27) * Math.SQRT1_2, 12);
    expect(atLast).toEqual(filter(PARAMS).predict("T", events, 9));
    expect(f.predictScore("T", events, 49)).toBeCloseTo(later.score, 12);
    // The stored decay block carries it, so GET /mastery decays a stored row at the same rate.
    expect(latentDecay(f.json.params, later).halfLifeDays).toBe(80);
    const cal: TopicCalibration = { guess: 0.2, slip: 0.1, halfLifeDays: 30, base: 0.5 };
    expect(servedFromLatent(later, f.json.params, cal, "identity", cal).decay.halfLifeDays).toBe(80);
    // Without it: the filter's own 20 days.
    expect(latentDecay(filter(PARAMS).json.params).halfLifeDays).toBe(20);
  });

  const seqs = Array.from({ length: 240 }, (_, i) => ({
    student: `s${i}`,
    topic: "T",
    events: toEvents(
      Array.from({ length: 9 }, (_, j) => ({
        dt: j % 3 === 2 ? 8 + (i % 5) : 1 + ((i * j) % 3),
        kind: KIND_QUIZ,
        n: 1,
        frac: (i + j) % 3 ? 1 : 0,
      })),
    ),
  }));
  const opts = {
    maxEvaluations: 40,
    studentEffect: false,
    forgetSpread: 0.5,
    asOfForgetting: "decay",
  } as const;

  it("LatentFilter.fit: idle-gaps fits and records the as-of half-life and changes nothing else", () => {
    const plain = LatentFilter.fit(seqs, opts);
    const fitted = LatentFilter.fit(seqs, { ...opts, asOfHalfLife: "idle-gaps" });
    const c = fitted.json.fit.asOfHalfLifeChoice!;
    // Three gaps of 8-12 days in each sequence (before its 3rd, 6th and 9th answer), each followed by a quiz answer.
    expect(c.events).toBe(720);
    expect(c.answers).toBe(720);
    expect(c.kept).toBeUndefined();
    expect(fitted.json.params.asOfHalfLifeDays).toBe(c.halfLifeDays);
    expect(c.filterHalfLifeDays).toBe(plain.json.params.halfLifeDays);
    const { asOfHalfLifeDays: _h, ...rest } = fitted.json.params;
    expect(rest).toEqual(plain.json.params);
    const { asOfHalfLifeChoice: _c, ...fit } = fitted.json.fit;
    expect(fit).toEqual(plain.json.fit);
    expect(LatentFilter.fit(seqs, { ...opts, asOfHalfLife: "filter" }).toJSON()).toEqual(plain.toJSON());
  });

  it("LatentFilter.fit: idle-gaps has no effect without the decay as-of step (nothing to fit), as the as-of step has none", () => {
    const spreadAsOf = { ...opts, asOfForgetting: "spread" } as const;
    expect(LatentFilter.fit(seqs, { ...spreadAsOf, asOfHalfLife: "idle-gaps" }).toJSON()).toEqual(
      LatentFilter.fit(seqs, spreadAsOf).toJSON(),
    );
  });
});
