import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { explanationTotal } from "../../models/explanation.ts";
import type { MasteryViewRow } from "../../serving/masteryReadStore.ts";
import { decayServedRow } from "../../serving/masteryView.ts";

const DAY_MS = 86_400_000;
const asOf = new Date("2026-10-27T00:00:00Z");

function servedRow(score: number, extra: Record<string, unknown> = {}): MasteryViewRow {
  return {
    topic_id: "T1",
    mastery_score: score,
    score_source: "served",
    model_version: "served-test",
    as_of: asOf,
    explanation: JSON.stringify({
      base: 0.5,
      factors: [{ name: "rule_score", value: 0.9, contribution: score - 0.5 }],
      rest: 0,
      score,
      interval: { lo: score - 0.1, hi: score + 0.1, level: 0.8 },
      evidence: { kind: "measured", attempts: 12, daysSinceLast: 2 },
      pCorrect: 0.85,
      decay: { halfLifeDays: 7, floor: 0.4, pFloor: 0.6 },
      ...extra,
    }),
    last_updated: asOf,
    name: null,
    chapter_id: null,
    subject_id: null,
    course_id: null,
  };
}

describe("served scores forget at request time (GET /mastery)", () => {
  it("known answer: one half-life later the score, interval and P(correct) are halfway to their floors", () => {
    const now = new Date(asOf.getTime() + 7 * DAY_MS);
    const r = decayServedRow(servedRow(0.8), now);
    expect(r.mastery_score).toBeCloseTo(0.6, 12);
    expect(r.as_of).toEqual(now);
    const e = JSON.parse(r.explanation);
    expect(e.interval.lo).toBeCloseTo(0.4 + (0.7 - 0.4) / 2, 12);
    expect(e.interval.hi).toBeCloseTo(0.4 + (0.9 - 0.4) / 2, 12);
    expect(e.pCorrect).toBeCloseTo(0.6 + (0.85 - 0.6) / 2, 12);
    expect(e.evidence.daysSinceLast).toBeCloseTo(9, 12);
    expect(e.forgetting).toEqual({
      scoredAt: asOf.toISOString(),
      elapsedDays: 7,
      contribution: e.score - 0.8,
    });
    expect(explanationTotal(e)).toBeCloseTo(r.mastery_score, 12);
  });

  it("leaves other sources, older served rows (no decay field) and earlier request times alone", () => {
    const later = new Date(asOf.getTime() + 30 * DAY_MS);
    const bkt = { ...servedRow(0.8), score_source: "bkt" };
    expect(decayServedRow(bkt, later)).toBe(bkt);
    const old = servedRow(0.8, { decay: undefined });
    expect(decayServedRow(old, later)).toBe(old);
    const row = servedRow(0.8);
    expect(decayServedRow(row, new Date(asOf.getTime() - DAY_MS))).toBe(row);
  });

  it("leaves a pair without events alone: its prior does not move with time (a full recompute scores it the same)", () => {
    const prior = servedRow(0.35, { evidence: { kind: "prior", attempts: 0, daysSinceLast: null } });
    expect(decayServedRow(prior, new Date(asOf.getTime() + 30 * DAY_MS))).toBe(prior);
  });

  it("property: monotone in elapsed time, interval keeps the score, everything in [0, 1]", () => {
    fc.assert(
      fc.property(
        fc.double({ min: 0.1, max: 0.9, noNaN: true }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        fc.double({ min: 1, max: 3650, noNaN: true }),
        fc.double({ min: 0, max: 365, noNaN: true }),
        fc.double({ min: 0, max: 365, noNaN: true }),
        (score, floor, h, a, b) => {
          const row = servedRow(score, { decay: { halfLifeDays: h, floor, pFloor: floor } });
          const [t1, t2] = a <= b ? [a, b] : [b, a];
          const r1 = decayServedRow(row, new Date(asOf.getTime() + t1 * DAY_MS));
          const r2 = decayServedRow(row, new Date(asOf.getTime() + t2 * DAY_MS));
          expect(Math.abs(r2.mastery_score - floor)).toBeLessThanOrEqual(
            Math.abs(r1.mastery_score - floor) + 1e-12,
          );
          const e = JSON.parse(r2.explanation);
          expect(e.interval.lo).toBeLessThanOrEqual(r2.mastery_score + 1e-12);
          expect(e.interval.hi).toBeGreaterThanOrEqual(r2.mastery_score - 1e-12);
          for (const v of [r2.mastery_score, e.interval.lo, e.interval.hi, e.pCorrect]) {
            expect(v).toBeGreaterThanOrEqual(0);
            expect(v).toBeLessThanOrEqual(1);
          }
        },
      ),
    );
  });
});
