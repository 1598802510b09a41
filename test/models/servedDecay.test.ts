import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { mulberry32 } from "../../models/prng.ts";
import {
  type DecayTransition,
  decayFactor,
  decayTowards,
  fitDecay,
  HALF_LIFE_SHRINK,
  NO_DECAY_DAYS,
} from "../../models/servedDecay.ts";
import {
  IDENTITY_CALIBRATION,
  MASTERY_SCALES,
  masteryOf,
  type PairEvidence,
  ServedMastery,
  type TopicCalibration,
  toMasteryScale,
} from "../../models/servedMastery.ts";

/** Attempts after gaps of 1-60 days whose correctness follows the decay model with half-life h. */
function transitions(n: number, seed: number, topic: string, h: number, base = 0.6): DecayTransition[] {
  const rnd = mulberry32(seed);
  return Array.from({ length: n }, () => {
    const gapDays = 1 + rnd() * 59;
    const prevAcc = rnd();
    const p = base + (prevAcc - base) * 2 ** (-gapDays / h);
    return { topic, gapDays, prevAcc, y: rnd() < p ? 1 : 0 };
  });
}

describe("decay (known answers)", () => {
  it("halves the distance to the floor every half-life", () => {
    expect(decayFactor(7, 0)).toBe(1);
    expect(decayFactor(7, 7)).toBeCloseTo(0.5, 12);
    expect(decayFactor(7, 14)).toBeCloseTo(0.25, 12);
    expect(decayTowards(0.8, 0.4, 7, 7)).toBeCloseTo(0.6, 12);
    expect(decayTowards(0.2, 0.4, 10, 10)).toBeCloseTo(0.3, 12);
    // Time before the scoring time does not move a score.
    expect(decayTowards(0.8, 0.4, 7, -3)).toBe(0.8);
    expect(() => decayFactor(0, 1)).toThrow(/half-life must be > 0/);
  });

  it("fits the half-life that generated the answers, and none when answers ignore the past", () => {
    const fit = fitDecay(transitions(40_000, 1, "A", 10));
    expect(fit.global.halfLifeDays).toBeGreaterThanOrEqual(7);
    expect(fit.global.halfLifeDays).toBeLessThanOrEqual(14);
    expect(fit.global.base).toBeCloseTo(
      0.6 + 0, // answers after long gaps sit at the base; the mean over 1-60 days is close to it
      1,
    );
    // No forgetting: correctness follows the past fully whatever the gap.
    const flat = fitDecay(transitions(40_000, 2, "A", 1e9));
    expect(flat.global.halfLifeDays).toBeGreaterThanOrEqual(365);
    // Gaps under a day do not count.
    expect(fitDecay([{ topic: "A", gapDays: 0.2, prevAcc: 0.9, y: 1 }]).global.n).toBe(0);
  });

  it("shrinks a sparse topic's half-life towards the global one, not a dense topic's", () => {
    const dense = transitions(40_000, 3, "dense", 5);
    const sparse = transitions(HALF_LIFE_SHRINK / 4, 4, "sparse", NO_DECAY_DAYS);
    const fit = fitDecay([...dense, ...sparse]);
    const g = fit.global.halfLifeDays;
    const d = fit.topics.dense!;
    const s = fit.topics.sparse!;
    expect(d.n).toBe(40_000);
    expect(Math.abs(Math.log(d.halfLifeDays) - Math.log(5))).toBeLessThan(Math.log(2));
    // Weight of its own fit n / (n + shrink) = 0.2: within a factor (own/global)^0.2 of the global.
    expect(s.halfLifeDays).toBeGreaterThanOrEqual(g);
    expect(s.halfLifeDays).toBeLessThanOrEqual(g * (NO_DECAY_DAYS / g) ** 0.21);
  });
});

describe("decay (properties)", () => {
  it("is monotone in elapsed time and stays between the value and the floor", () => {
    fc.assert(
      fc.property(
        fc.double({ min: 0, max: 1, noNaN: true }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        fc.double({ min: 0.5, max: 4000, noNaN: true }),
        fc.double({ min: 0, max: 400, noNaN: true }),
        fc.double({ min: 0, max: 400, noNaN: true }),
        (v, floor, h, a, b) => {
          const [t1, t2] = a <= b ? [a, b] : [b, a];
          const x1 = decayTowards(v, floor, h, t1);
          const x2 = decayTowards(v, floor, h, t2);
          expect(Math.abs(x2 - floor)).toBeLessThanOrEqual(Math.abs(x1 - floor) + 1e-12);
          expect(x2).toBeGreaterThanOrEqual(Math.min(v, floor) - 1e-12);
          expect(x2).toBeLessThanOrEqual(Math.max(v, floor) + 1e-12);
        },
      ),
    );
  });
});

describe("mastery scale (BKT emission inverted)", () => {
  it("maps P(correct) through guess/slip: known answers", () => {
    const c = { guess: 0.2, slip: 0.1 };
    expect(toMasteryScale(0.2, c)).toBeCloseTo(0, 12);
    expect(toMasteryScale(0.9, c)).toBeCloseTo(1, 12);
    expect(toMasteryScale(0.55, c)).toBeCloseTo(0.5, 12);
    expect(() => toMasteryScale(0.5, { guess: 0.6, slip: 0.4 })).toThrow(/degenerate/);
  });

  it("serves P(learned) next to P(correct), explanation sums to the score, interval around it", () => {
    const rnd = mulberry32(5);
    const cal: TopicCalibration = { guess: 0.25, slip: 0.1, halfLifeDays: 14, base: 0.6 };
    const xs: PairEvidence[] = Array.from({ length: 2000 }, () => {
      const attempts = 1 + Math.floor(rnd() * 20);
      return {
        topic: "T1",
        rule: rnd(),
        bkt: rnd(),
        elo: rnd(),
        attempts,
        correct: Math.floor(rnd() * (attempts + 1)),
        daysSinceQuiz: rnd() * 30,
        daysSinceAny: rnd() * 30,
      };
    });
    const ys = xs.map((p) => 0.3 + 0.5 * p.rule + (rnd() - 0.5) * 0.1);
    const m = ServedMastery.fit(xs, ys, {
      topics: { T1: cal },
      global: IDENTITY_CALIBRATION,
      ridge: 1e-9,
      scale: "bkt-emission",
    });
    const e = m.predict(xs[3]!);
    expect(e.score).toBeCloseTo(Math.min(1, Math.max(0, (e.pCorrect - 0.25) / 0.65)), 9);
    expect(e.decay).toEqual({ halfLifeDays: 14, floor: (0.6 - 0.25) / 0.65, pFloor: 0.6 });
    // An unknown topic uses the global (identity) calibration: score = P(correct).
    const u = m.predict({ ...xs[3]!, topic: "other" });
    expect(u.score).toBeCloseTo(u.pCorrect, 12);
    // The stack was fitted with T1's decayed accuracy; a wrong topic changes that input, not the weights.
    expect(m.calibration("other")).toEqual(IDENTITY_CALIBRATION);
  });

  it("topic-logit scale: a pair answering like the topic's base sits at 0.5; the map is increasing", () => {
    const c: TopicCalibration = { guess: 0.2, slip: 0.1, halfLifeDays: 10, base: 0.8 };
    expect(masteryOf(0.8, c, "topic-logit")).toBeCloseTo(0.5, 12);
    // logit(0.9) - logit(0.8) = ln(9/4): logistic of it = 9 / 13.
    expect(masteryOf(0.9, c, "topic-logit")).toBeCloseTo(9 / 13, 12);
    expect(masteryOf(0.55, c, "bkt-emission")).toBeCloseTo(0.5, 12);
    expect(masteryOf(1.3, c, "identity")).toBe(1);
    // centred-logit anchors every topic on the global base: logit(0.9) - logit(0.6) = ln 6 -> 6 / 7.
    expect(masteryOf(0.9, c, "centred-logit", { ...c, base: 0.6 })).toBeCloseTo(6 / 7, 12);
    for (const scale of MASTERY_SCALES)
      for (let p = 0; p < 1; p += 0.01)
        expect(masteryOf(p + 0.01, c, scale)).toBeGreaterThanOrEqual(masteryOf(p, c, scale));
  });

  it("property: served score, P(correct) and interval are in [0, 1] and the interval holds the score", () => {
    const xs: PairEvidence[] = Array.from({ length: 300 }, (_, i) => ({
      topic: "T1",
      rule: (i % 17) / 17,
      bkt: (i % 13) / 13,
      elo: (i % 7) / 7,
      attempts: i % 9,
      correct: i % 5 <= i % 9 ? i % 5 : 0,
      daysSinceQuiz: i % 9 === 0 ? Number.POSITIVE_INFINITY : i % 31,
      daysSinceAny: i % 31,
    }));
    const m = ServedMastery.fit(
      xs,
      xs.map((p) => 0.2 + 0.7 * p.rule),
      { topics: { T1: { guess: 0.2, slip: 0.1, halfLifeDays: 10, base: 0.6 } }, scale: "topic-logit" },
    );
    const num = fc.double({ min: -1, max: 2, noNaN: true });
    fc.assert(
      fc.property(
        fc.record({
          topic: fc.constantFrom("T1", "T2"),
          rule: fc.oneof(num, fc.constant(Number.NaN)),
          bkt: fc.oneof(num, fc.constant(Number.NaN)),
          elo: fc.oneof(num, fc.constant(Number.NaN)),
          attempts: fc.integer({ min: 0, max: 500 }),
          correctShare: fc.double({ min: 0, max: 1, noNaN: true }),
          daysSinceQuiz: fc.oneof(fc.double({ min: 0, max: 1000, noNaN: true }), fc.constant(Infinity)),
          daysSinceAny: fc.oneof(fc.double({ min: 0, max: 1000, noNaN: true }), fc.constant(Infinity)),
        }),
        (r) => {
          const e = m.predict({ ...r, correct: Math.floor(r.correctShare * r.attempts) });
          for (const v of [e.score, e.pCorrect, e.lo, e.hi]) {
            expect(v).toBeGreaterThanOrEqual(0);
            expect(v).toBeLessThanOrEqual(1);
          }
          expect(e.lo).toBeLessThanOrEqual(e.score);
          expect(e.hi).toBeGreaterThanOrEqual(e.score);
          const total = e.contributions.reduce((s, c) => s + c.contribution, e.base) + e.rest;
          expect(total).toBeCloseTo(e.score, 9);
        },
      ),
    );
  });
});
