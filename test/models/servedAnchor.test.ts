import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { mulberry32 } from "../../models/prng.ts";
import {
  fitAnchor,
  IDENTITY_CALIBRATION,
  masteryOf,
  ServedMasteryError,
  servedFromLatent,
  widenLogit,
} from "../../models/servedMastery.ts";

const sigmoid = (z: number): number => 1 / (1 + Math.exp(-z));
const logit = (p: number): number => Math.log(p / (1 - p));

/** Standard normal draws (Box-Muller) from a seeded uniform. */
function normal(rnd: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - rnd())) * Math.cos(2 * Math.PI * rnd());
}

describe("fitAnchor (round 7: the pair-centred scale anchor)", () => {
  it("puts the logistic of the mean logit P(correct) at 0.5 (known answer)", () => {
    const a = fitAnchor([
      { topic: "A", p: sigmoid(-1) },
      { topic: "A", p: sigmoid(0.5) },
      { topic: "B", p: sigmoid(1.1) },
    ]);
    expect(a.method).toBe("pair-centred");
    expect(a.base).toBeCloseTo(sigmoid(0.2), 12);
    expect(a.pairs).toBe(3);
    expect(a.topics).toBe(2);
    // Topics with fewer than 5 pairs do not enter the between-topic sd.
    expect(a.sd).toBe(0);
    // The anchor maps to 0.5 on the centred-logit scale.
    expect(
      masteryOf(a.base, IDENTITY_CALIBRATION, "centred-logit", { ...IDENTITY_CALIBRATION, base: a.base }),
    ).toBeCloseTo(0.5, 12);
  });

  it("recovers the between-topic sd of simulated topic means, and none when topics do not differ", () => {
    const rnd = mulberry32(7);
    for (const trueSd of [0, 0.4, 1]) {
      const pairs: { topic: string; p: number }[] = [];
      for (let t = 0; t < 200; t++) {
        const mu = 0.3 + trueSd * normal(rnd);
        for (let i = 0; i < 40; i++) pairs.push({ topic: `t${t}`, p: sigmoid(mu + 0.8 * normal(rnd)) });
      }
      const a = fitAnchor(pairs);
      expect(Math.abs(a.sd - trueSd)).toBeLessThan(trueSd === 0 ? 0.08 : 0.15 * trueSd + 0.05);
      expect(logit(a.base)).toBeCloseTo(0.3, 0);
    }
  });

  it("refuses an empty population with a message that says what to do", () => {
    expect(() => fitAnchor([])).toThrow(ServedMasteryError);
    expect(() => fitAnchor([])).toThrow(/ingest events/);
  });
});

describe("widenLogit", () => {
  it("adds the extra sd in variance on the logit scale (known answer) and keeps sd 0 unchanged", () => {
    const score = sigmoid(0.4);
    const lo = sigmoid(0.4 - 0.3);
    const hi = sigmoid(0.4 + 0.4);
    expect(widenLogit(score, lo, hi, 0)).toEqual({ lo, hi });
    const z = 1.2815515655446004;
    const w = widenLogit(score, lo, hi, 0.5);
    expect(logit(w.lo)).toBeCloseTo(0.4 - Math.sqrt(0.09 + (z * 0.5) ** 2), 9);
    expect(logit(w.hi)).toBeCloseTo(0.4 + Math.sqrt(0.16 + (z * 0.5) ** 2), 9);
  });

  it("property: the widened interval contains the old one and the score, and grows with the sd", () => {
    fc.assert(
      fc.property(
        fc.double({ min: -4, max: 4, noNaN: true }),
        fc.double({ min: 0, max: 2, noNaN: true }),
        fc.double({ min: 0, max: 2, noNaN: true }),
        fc.double({ min: 0, max: 2, noNaN: true }),
        fc.double({ min: 0, max: 2, noNaN: true }),
        (z, a, b, sd1, dsd) => {
          const score = sigmoid(z);
          const lo = sigmoid(z - a);
          const hi = sigmoid(z + b);
          const w1 = widenLogit(score, lo, hi, sd1);
          const w2 = widenLogit(score, lo, hi, sd1 + dsd);
          expect(w1.lo).toBeLessThanOrEqual(lo);
          expect(w1.hi).toBeGreaterThanOrEqual(hi);
          expect(w1.lo).toBeLessThanOrEqual(score);
          expect(w1.hi).toBeGreaterThanOrEqual(score);
          expect(w2.lo).toBeLessThanOrEqual(w1.lo + 1e-12);
          expect(w2.hi).toBeGreaterThanOrEqual(w1.hi - 1e-12);
        },
      ),
    );
  });

  it("servedFromLatent carries the anchor sd into the interval only, not the score", () => {
    const est = {
      score: 0.6,
      lo: 0.5,
      hi: 0.7,
      pCorrect: 0.6,
      base: 0.4,
      contributions: {} as never,
      observations: 5,
      events: 5,
      daysSinceLast: 1,
    };
    const params = { guess: 0, slip: 0, halfLifeDays: 100, floor: 0.2 };
    const g = { ...IDENTITY_CALIBRATION, base: 0.55 };
    const a = servedFromLatent(est, params, g, "centred-logit", g);
    const b = servedFromLatent(est, params, g, "centred-logit", g, 0.7);
    expect(b.score).toBe(a.score);
    expect(a.score).toBeCloseTo(sigmoid(logit(0.6) - logit(0.55)), 12);
    expect(b.lo).toBeLessThan(a.lo);
    expect(b.hi).toBeGreaterThan(a.hi);
  });

  it("the logistic emission's K is anchored on centred-logit and served as it is on the other scales", () => {
    const est = {
      score: 0.62,
      lo: 0.5,
      hi: 0.7,
      pCorrect: 0.9,
      base: 0.4,
      contributions: {} as never,
      observations: 5,
      events: 5,
      daysSinceLast: 1,
    };
    const params = { guess: 0.1, slip: 0.05, halfLifeDays: 100, floor: 0.2, slope: 30 };
    const g = { ...IDENTITY_CALIBRATION, base: 0.55 };
    const a = servedFromLatent(est, params, g, "centred-logit", g, 0.4);
    // K (not the emission of K) against the anchor; the interval carries the anchor sd.
    expect(a.score).toBeCloseTo(sigmoid(logit(0.62) - logit(0.55)), 12);
    expect(a.pCorrect).toBe(0.9);
    const z = 1.2815515655446004;
    expect(logit(a.lo)).toBeCloseTo(
      logit(a.score) - Math.sqrt((logit(0.62) - logit(0.5)) ** 2 + (z * 0.4) ** 2),
      9,
    );
    expect(a.decay.floor).toBeCloseTo(sigmoid(logit(0.2) - logit(0.55)), 12);
    const b = servedFromLatent(est, params, g, "identity", g, 0.4);
    expect([b.score, b.lo, b.hi]).toEqual([0.62, 0.5, 0.7]);
  });
});
