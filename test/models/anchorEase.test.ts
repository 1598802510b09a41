import { describe, expect, it } from "vitest";
import { EASE_MIN_TOPIC_PAIRS, easeShare, type PairAnswers } from "../../models/anchorEase.ts";
import { mulberry32 } from "../../models/prng.ts";

const sigmoid = (z: number): number => 1 / (1 + Math.exp(-z));

/** Standard normal draws (Box-Muller) from a seeded uniform. */
function normal(rnd: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - rnd())) * Math.cos(2 * Math.PI * rnd());
}

/**
 * Topics with ease e_t ~ N(0, easeSd) that moves first and last answers alike, and knowledge that differs
 * between topics independently at the first answer (sd knowSd) and at the last one (sd knowSd, plus 1 logit
 * of learning for everyone): the true ease share of the late spread is easeSd^2 / (easeSd^2 + knowSd^2).
 */
function simulate(easeSd: number, knowSd: number, topics: number, pairsPerTopic: number, seed: number) {
  const rnd = mulberry32(seed);
  const pairs: PairAnswers[] = [];
  for (let t = 0; t < topics; t++) {
    const ease = easeSd * normal(rnd);
    const k0 = knowSd * normal(rnd);
    const k1 = 1 + knowSd * normal(rnd);
    for (let i = 0; i < pairsPerTopic; i++) {
      const student = 0.8 * normal(rnd);
      pairs.push({
        topic: `t${t}`,
        half: (i & 1) as 0 | 1,
        first: rnd() < sigmoid(ease + k0 + student) ? 1 : 0,
        last: rnd() < 0.2 ? null : rnd() < sigmoid(ease + k1 + student) ? 1 : 0,
      });
    }
  }
  return pairs;
}

describe("easeShare (round 8: how much of the between-topic spread is ease)", () => {
  it("recovers the share of simulated ease in the late spread: all ease, none, half", () => {
    for (const [easeSd, knowSd, want] of [
      [0.6, 0, 1],
      [0, 0.6, 0],
      [0.5, 0.5, 0.5],
    ] as const) {
      const r = easeShare(simulate(easeSd, knowSd, 400, 400, 11));
      expect(r.topics).toBe(400);
      expect(Math.abs(r.share - want)).toBeLessThan(0.12);
    }
  });

  it("does not read the topics' sampling noise as shared spread (no ease, no knowledge differences)", () => {
    // Few pairs per topic: the within-half topic means are noisy, the cross-half moments are not biased.
    const r = easeShare(simulate(0, 0, 300, 2 * EASE_MIN_TOPIC_PAIRS + 10, 5));
    expect(Math.abs(r.covEarlyLate)).toBeLessThan(0.03);
    expect(Math.abs(r.varLate)).toBeLessThan(0.03);
  });

  it("keeps the upper bound (share 1) without enough topics, and stays in [0, 1]", () => {
    const few = easeShare(simulate(0, 0.8, 4, 400, 3));
    expect(few.topics).toBe(4);
    expect(few.share).toBe(1);
    for (let seed = 1; seed <= 20; seed++) {
      const r = easeShare(simulate(0.3, 0.3, 12, 60, seed));
      expect(r.share).toBeGreaterThanOrEqual(0);
      expect(r.share).toBeLessThanOrEqual(1);
    }
  });

  it("counts a topic only with enough first and last answers in both halves", () => {
    const pairs = simulate(0.5, 0, 10, 400, 8);
    // One topic with no second answers anywhere: it drops out.
    for (const p of pairs) if (p.topic === "t0") p.last = null;
    expect(easeShare(pairs).topics).toBe(9);
  });
});
