import { describe, expect, it } from "vitest";
import {
  AS_OF_LABEL_MIN_GAIN_NATS,
  AS_OF_LABEL_MULTIPLIERS,
  AsOfHalfLifeError,
  chooseAsOfHalfLifeByLabels,
  type IdleAnswer,
  idleLogLik,
  idleLogLikCentred,
  labelAnswerOf,
} from "../../models/asOfHalfLife.ts";
import { KIND_PRACTICE, KIND_QUIZ, type LatentEvent, LatentFilter } from "../../models/latentFilter.ts";
import { mulberry32 } from "../../models/prng.ts";
import { decayTowards } from "../../models/servedDecay.ts";
import { LATENT_TEST_PARAMS } from "./latentFixtures.ts";

// Round 32 (docs/benchmarks.md "Round 32 (valid32, 2026-12-07)"): the as-of half-life chosen on the served
// training's proxy labels, the label window's quiz answers of the pairs idle at the snapshot.

/**
 * Labelled pairs whose window answers are drawn from the as-of decay with half-life h (idle 1-60 days), their
 * P(correct) moved by `shift` on the logit scale (the window's new practice, common to every pair).
 */
function simulateLabels(h: number, count: number, seed: number, shift = 0): IdleAnswer[] {
  const rnd = mulberry32(seed);
  const out: IdleAnswer[] = [];
  for (let i = 0; i < count; i++) {
    const pBefore = 0.45 + 0.5 * rnd();
    const pFloor = 0.25 + 0.1 * rnd();
    const gapDays = 1 + 59 * rnd();
    const n = 3 + Math.floor(5 * rnd());
    const d = decayTowards(pBefore, pFloor, h, gapDays);
    const p = 1 / (1 + Math.exp(-(Math.log(d / (1 - d)) + shift)));
    let k = 0;
    for (let j = 0; j < n; j++) if (rnd() < p) k++;
    out.push({ pBefore, pFloor, gapDays, n, k });
  }
  return out;
}

describe("chooseAsOfHalfLifeByLabels (round 32)", () => {
  it("known answer: the log-likelihood of each grid point by hand on two pairs", () => {
    // Pair 1: P 0.8 at its last event, floor 0.4, idle 10 days; pair 2 was active at the snapshot (idle 0): it
    // does not count (the same at every half-life).
    const labels: IdleAnswer[] = [
      { pBefore: 0.8, pFloor: 0.4, gapDays: 10, n: 2, k: 1 },
      { pBefore: 0.7, pFloor: 0.4, gapDays: 0, n: 4, k: 4 },
    ];
    const c = chooseAsOfHalfLifeByLabels(labels, 10, { minPairs: 1 });
    expect(c.pairs).toBe(1);
    expect(c.answers).toBe(2);
    expect(c.multipliers).toEqual([...AS_OF_LABEL_MULTIPLIERS]);
    // At the filter's 10 days: P = 0.4 + 0.4 x 2^-1 = 0.6, ln 0.6 + ln 0.4 = -1.4271163556401458.
    expect(c.logLik[c.multipliers.indexOf(1)]).toBeCloseTo(Math.log(0.6) + Math.log(0.4), 12);
    // At 2x (20 days): P = 0.4 + 0.4 x 2^-0.5.
    const p2 = 0.4 + 0.4 * Math.SQRT1_2;
    expect(c.logLik[c.multipliers.indexOf(2)]).toBeCloseTo(Math.log(p2) + Math.log(1 - p2), 12);
    // One answer of two right is best fitted at P = 0.5, i.e. 0.5x (5 days: 0.4 + 0.4 x 0.25 = 0.5), but the
    // gain over 0.6 is 0.04 nats, below the test's bar: the filter's half-life is kept.
    expect(c.halfLifeDays).toBe(10);
    expect(c.gainNats).toBe(0);
    expect(c.kept).toMatch(/best multiplier 0\.500 gains 0\.04 nats/);
  });

  for (const m of [0.5, 2, 4])
    it(`known answer: answers drawn at ${m}x the filter's half-life choose ${m}x`, () => {
      const h0 = 84.7;
      const labels = simulateLabels(m * h0, 4000, 7 + m);
      const c = chooseAsOfHalfLifeByLabels(labels, h0);
      expect(c.kept).toBeUndefined();
      expect(c.halfLifeDays).toBeCloseTo(m * h0, 9);
      expect(c.gainNats).toBeGreaterThan(AS_OF_LABEL_MIN_GAIN_NATS);
      expect(c.gainNats).toBeCloseTo(idleLogLik(labels, m * h0) - idleLogLik(labels, h0), 9);
      expect(c.pairs).toBe(4000);
    });

  it("keeps the filter's half-life when the answers were drawn with it", () => {
    const labels = simulateLabels(84.7, 4000, 3);
    const c = chooseAsOfHalfLifeByLabels(labels, 84.7);
    expect(c.halfLifeDays).toBe(84.7);
    expect(c.kept).toBeDefined();
  });

  it("keeps the filter's half-life with too few idle labelled pairs, and says so", () => {
    const labels = simulateLabels(4 * 84.7, 49, 5);
    const active: IdleAnswer[] = labels.map((a) => ({ ...a, gapDays: 0 }));
    const c = chooseAsOfHalfLifeByLabels([...labels, ...active], 84.7);
    expect(c.pairs).toBe(49);
    expect(c.halfLifeDays).toBe(84.7);
    expect(c.kept).toMatch(/49 labelled pairs idle at the snapshot \(< 50\)/);
  });

  it("refuses a non-positive half-life and an impossible label, naming the fix", () => {
    expect(() => chooseAsOfHalfLifeByLabels([], 0)).toThrow(/fit the latent filter first/);
    expect(() =>
      chooseAsOfHalfLifeByLabels([{ pBefore: 0.5, pFloor: 0.3, gapDays: 3, n: 2, k: 3 }], 20),
    ).toThrow(AsOfHalfLifeError);
    expect(() =>
      chooseAsOfHalfLifeByLabels([{ pBefore: 0.5, pFloor: 0.3, gapDays: 3, n: 2, k: 3 }], 20),
    ).toThrow(/0 <= k <= n/);
  });
});

describe("the label window's common shift profiled out (round 32's second candidate, labels-centred)", () => {
  it("known answer: one pair with 1 of 2 right is fitted exactly at 0.5 whatever the half-life", () => {
    const a: IdleAnswer = { pBefore: 0.8, pFloor: 0.4, gapDays: 10, n: 2, k: 1 };
    for (const h of [5, 10, 40]) {
      const c = idleLogLikCentred([a], h);
      expect(c.logLik).toBeCloseTo(2 * Math.log(0.5), 10);
      const p = decayTowards(0.8, 0.4, h, 10);
      expect(c.intercept).toBeCloseTo(-Math.log(p / (1 - p)), 8);
    }
    // Without the shift the same answers do prefer one half-life (P 0.5 at 5 days).
    expect(idleLogLik([a], 5)).toBeGreaterThan(idleLogLik([a], 40));
  });

  it("known answer: a common shift of +0.6 logit pushes the plain choice off, the centred one recovers 1x and the shift", () => {
    const h0 = 84.7;
    const labels = simulateLabels(h0, 6000, 11, 0.6);
    const plain = chooseAsOfHalfLifeByLabels(labels, h0);
    expect(plain.halfLifeDays).toBeGreaterThan(h0);
    const c = chooseAsOfHalfLifeByLabels(labels, h0, { intercept: true });
    expect(c.halfLifeDays).toBe(h0);
    expect(c.kept).toBeDefined();
    const b = c.intercepts![c.multipliers.indexOf(1)]!;
    expect(Math.abs(b - 0.6)).toBeLessThan(0.08);
    // logLik is the profile: at least the plain likelihood at every multiplier.
    for (let i = 0; i < c.multipliers.length; i++)
      expect(c.logLik[i]!).toBeGreaterThanOrEqual(plain.logLik[i]! - 1e-9);
  });

  it("known answer: with a common shift, answers drawn at 2x still choose 2x", () => {
    const h0 = 84.7;
    const c = chooseAsOfHalfLifeByLabels(simulateLabels(2 * h0, 6000, 12, 0.6), h0, { intercept: true });
    expect(c.halfLifeDays).toBeCloseTo(2 * h0, 9);
    expect(c.gainNats).toBeGreaterThan(AS_OF_LABEL_MIN_GAIN_NATS);
  });
});

describe("labelAnswerOf (round 32)", () => {
  const params = { ...LATENT_TEST_PARAMS, forgetSpread: 0.75, asOfForgetting: "decay" as const };
  const f = new LatentFilter({
    version: 1,
    bins: 40,
    params,
    topicPriorMean: { T: 0.4 },
    fit: { logLikPerObs: 0, observations: 0, sequences: 0, evaluations: 0 },
  });
  const events: LatentEvent[] = [
    { t: 0, kind: KIND_QUIZ, n: 1, k: 1 },
    { t: 4, kind: KIND_QUIZ, n: 1, k: 0 },
    { t: 9, kind: KIND_PRACTICE, n: 6, k: 5 },
  ];

  it("known answer: undoes the as-of step's decay of a filter estimate (P(correct) at the last event)", () => {
    const atLast = f.predict("T", events, 9);
    const later = f.predict("T", events, 39);
    expect(later.pCorrect).not.toBeCloseTo(atLast.pCorrect, 3);
    const a = labelAnswerOf(later, params, params.halfLifeDays, 5, 4);
    expect(a.gapDays).toBe(30);
    expect(a.pBefore).toBeCloseTo(atLast.pCorrect, 12);
    expect(a.pFloor).toBeCloseTo(params.guess + (1 - params.guess - params.slip) * params.floor, 12);
    expect({ n: a.n, k: a.k }).toEqual({ n: 5, k: 4 });
    // Re-decayed at the filter's half-life it is the estimate's own P(correct).
    expect(decayTowards(a.pBefore, a.pFloor, params.halfLifeDays, 30)).toBeCloseTo(later.pCorrect, 12);
  });

  it("known answer: the logistic emission's pFloor is taken as stored; a pair without events has no idle time", () => {
    const a = labelAnswerOf(
      { pCorrect: 0.5, pFloor: 0.3, daysSinceLast: 20 },
      { guess: 0.2, slip: 0.1, floor: 0.25 },
      20,
      3,
      1,
    );
    // 0.5 = 0.3 + (pBefore - 0.3) x 2^-1, so pBefore = 0.7.
    expect(a.pBefore).toBeCloseTo(0.7, 12);
    expect(a.pFloor).toBe(0.3);
    const b = labelAnswerOf(
      { pCorrect: 0.6, daysSinceLast: null },
      { guess: 0.2, slip: 0.1, floor: 0.25 },
      20,
      3,
      1,
    );
    expect(b).toEqual({ pBefore: 0.6, pFloor: 0.2 + 0.7 * 0.25, gapDays: 0, n: 3, k: 1 });
  });
});
