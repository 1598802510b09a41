import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  fitTopicEffects,
  groupByTopic,
  KIND_VIDEO,
  LatentKernel,
  type LatentSequence,
} from "../../models/latentFilter.ts";
import { sigmoid } from "../../models/logistic.ts";
import {
  anchorSdFromThresholds,
  filterThresholdUncertainty,
  type ThresholdUncertainty,
  thresholdUncertainty,
} from "../../models/thresholdUncertainty.ts";
import { LATENT_LOGISTIC_PARAMS as LOGISTIC, simulateLatentStudents } from "./latentFixtures.ts";

const logit = (p: number): number => Math.log(p / (1 - p));
const BINS = 24;
const PENALTY = { topicPriorSd: 1, topicThresholdSd: 0.15 };

function fitted(seqs: LatentSequence[]) {
  const byTopic = groupByTopic(seqs);
  return { byTopic, fit: fitTopicEffects(LOGISTIC, BINS, byTopic, PENALTY) };
}

describe("thresholdUncertainty: the topic threshold's posterior sd (round 26)", () => {
  it("is the 2x2 Laplace marginal: (H^-1)_dd of the penalised likelihood's Hessian, recomputed here at twice the steps", () => {
    const { seqs } = simulateLatentStudents(LOGISTIC, { A: 0.42 }, 160, 0, 5);
    const { byTopic, fit } = fitted(seqs);
    const u = thresholdUncertainty(LOGISTIC, BINS, byTopic, fit, PENALTY).get("A")!;
    expect(u.fromCurvature).toBe(true);
    const g0 = logit(LOGISTIC.priorMean);
    const th0 = LOGISTIC.threshold!;
    const o0 = logit(fit.topicPriorMean.A!) - g0;
    const d0 = fit.topicThreshold.A! - th0;
    const p = new Float64Array(BINS);
    const f = (o: number, d: number): number => {
      const k = new LatentKernel(LOGISTIC, BINS, th0 + d);
      let ll = 0;
      for (const s of byTopic.get("A")!) ll += k.run(s.events, sigmoid(g0 + o), p);
      return -ll + (0.5 * o * o) / PENALTY.topicPriorSd ** 2 + (0.5 * d * d) / PENALTY.topicThresholdSd ** 2;
    };
    const h = 0.1;
    const k = 0.02;
    const hoo = (f(o0 + h, d0) - 2 * f(o0, d0) + f(o0 - h, d0)) / (h * h);
    const hdd = (f(o0, d0 + k) - 2 * f(o0, d0) + f(o0, d0 - k)) / (k * k);
    const hod = (f(o0 + h, d0 + k) - f(o0 + h, d0 - k) - f(o0 - h, d0 + k) + f(o0 - h, d0 - k)) / (4 * h * k);
    // The two are strongly traded off (the answers pin K - threshold): the marginal is far wider than 1 / sqrt(H_dd).
    expect(-hod / Math.sqrt(hoo * hdd)).toBeGreaterThan(0.9);
    const marginal = Math.sqrt(hoo / (hoo * hdd - hod * hod));
    expect(u.sd).toBeGreaterThan(0.9 * marginal);
    expect(u.sd).toBeLessThan(1.1 * marginal);
    expect(u.sd).toBeGreaterThan(2 / Math.sqrt(hdd));
    expect(u.sd).toBeLessThan(PENALTY.topicThresholdSd);
  }, 120_000);

  it("narrows as a topic has more students (4x the students: about half the sd), never past the prior", () => {
    const { seqs } = simulateLatentStudents(LOGISTIC, { A: 0.5, B: 0.58 }, 160, 0, 11);
    const few = seqs.filter((s) => Number(s.student!.slice(1)) < 40);
    const sdOf = (ss: LatentSequence[]): Map<string, ThresholdUncertainty> => {
      const { byTopic, fit } = fitted(ss);
      return thresholdUncertainty(LOGISTIC, BINS, byTopic, fit, PENALTY);
    };
    const a = sdOf(few);
    const b = sdOf(seqs);
    for (const t of ["A", "B"]) {
      expect(a.get(t)!.sequences).toBe(40);
      expect(b.get(t)!.sequences).toBe(160);
      expect(b.get(t)!.sd).toBeLessThan(a.get(t)!.sd);
      expect(b.get(t)!.sd / a.get(t)!.sd).toBeGreaterThan(0.35);
      expect(b.get(t)!.sd / a.get(t)!.sd).toBeLessThan(0.75);
      expect(a.get(t)!.sd).toBeLessThanOrEqual(PENALTY.topicThresholdSd);
    }
  }, 120_000);

  it("returns the prior sd exactly on a topic whose sequences grade nothing (the penalty is all the curvature)", () => {
    const seqs: LatentSequence[] = Array.from({ length: 5 }, (_, i) => ({
      topic: "V",
      student: `s${i}`,
      events: [
        { t: 0, kind: KIND_VIDEO, n: 0, k: 0 },
        { t: 1, kind: KIND_VIDEO, n: 0, k: 0 },
      ],
    }));
    const byTopic = groupByTopic(seqs);
    const u = thresholdUncertainty(
      LOGISTIC,
      BINS,
      byTopic,
      { topicPriorMean: { V: LOGISTIC.priorMean }, topicThreshold: { V: LOGISTIC.threshold! } },
      { topicPriorSd: 1, topicThresholdSd: 0.1 },
    ).get("V")!;
    expect(u.sd).toBeCloseTo(0.1, 6);
    expect(u.sequences).toBe(5);
  });

  it("property: every topic's sd is in (0, topicThresholdSd] whatever the penalties", () => {
    const { seqs } = simulateLatentStudents(LOGISTIC, { A: 0.45, B: 0.55 }, 30, 0.3, 3);
    const byTopic = groupByTopic(seqs);
    fc.assert(
      fc.property(
        fc.double({ min: 0.2, max: 2, noNaN: true }),
        fc.double({ min: 0.02, max: 0.4, noNaN: true }),
        (topicPriorSd, topicThresholdSd) => {
          const pen = { topicPriorSd, topicThresholdSd };
          const fit = fitTopicEffects(LOGISTIC, BINS, byTopic, pen);
          for (const u of thresholdUncertainty(LOGISTIC, BINS, byTopic, fit, pen).values()) {
            expect(u.sd).toBeGreaterThan(0);
            expect(u.sd).toBeLessThanOrEqual(topicThresholdSd * (1 + 1e-12));
          }
        },
      ),
      { numRuns: 5 },
    );
  }, 120_000);

  it("refuses the linear emission and a threshold sd of 0, naming the fix", () => {
    const { slope: _s, ...linear } = LOGISTIC;
    expect(() =>
      thresholdUncertainty(linear, BINS, new Map(), { topicPriorMean: {}, topicThreshold: {} }, PENALTY),
    ).toThrow(/logistic emission/);
    expect(() =>
      thresholdUncertainty(
        LOGISTIC,
        BINS,
        new Map(),
        { topicPriorMean: {}, topicThreshold: {} },
        {
          topicPriorSd: 1,
          topicThresholdSd: 0,
        },
      ),
    ).toThrow(/must be > 0/);
  });

  it("filterThresholdUncertainty: null without topic thresholds or with a shrinkage of 0; the fit's choice wins over the option", () => {
    const { seqs } = simulateLatentStudents(LOGISTIC, { A: 0.45 }, 40, 0, 9);
    const { byTopic, fit } = fitted(seqs);
    const json = {
      version: 1 as const,
      bins: BINS,
      params: { ...LOGISTIC, forgetSpread: 0.5, asOfForgetting: "decay" as const },
      topicPriorMean: fit.topicPriorMean,
      topicThreshold: fit.topicThreshold,
      fit: {
        logLikPerObs: 0,
        observations: 0,
        sequences: seqs.length,
        evaluations: 0,
        stop: "budget" as const,
        dispersion: { ratio: 1, sequences: 0, mode: "widen-only" as const },
        thresholdChoice: { chosen: 0.15, heldOut: {}, incumbent: 0.15, margin: 0, observations: 0 },
      },
    };
    // The spread and the as-of step are left out (the topic fit ran without them): same as the plain params.
    const viaFilter = filterThresholdUncertainty(json, seqs, { topicPriorSd: 1, topicThresholdSd: 0.3 })!;
    const direct = thresholdUncertainty(LOGISTIC, BINS, byTopic, fit, PENALTY);
    expect(viaFilter.get("A")!.sd).toBe(direct.get("A")!.sd);
    expect(
      filterThresholdUncertainty(
        { ...json, fit: { ...json.fit, thresholdChoice: { ...json.fit.thresholdChoice, chosen: 0 } } },
        seqs,
        { topicPriorSd: 1, topicThresholdSd: 0.3 },
      ),
    ).toBeNull();
    const { topicThreshold: _t, ...noThresholds } = json;
    expect(
      filterThresholdUncertainty(noThresholds, seqs, { topicPriorSd: 1, topicThresholdSd: 0.3 }),
    ).toBeNull();
  }, 60_000);
});

describe("anchorSdFromThresholds: the thresholds' sds on the anchor's logit scale", () => {
  it("known answer: two topics, each sd through 1 / (k (1 - k)) at its mean logit K, pair-weighted", () => {
    const unc = new Map<string, ThresholdUncertainty>([
      ["A", { sd: 0.05, sequences: 3, fromCurvature: true }],
      ["B", { sd: 0.1, sequences: 1, fromCurvature: true }],
    ]);
    // A: K 0.5 twice -> mean logit 0, k = 0.5, slope 4, sd 0.2 logit; B: K 0.8 -> slope 1 / 0.16 = 6.25, sd 0.625.
    // C has no uncertainty: left out.
    const r = anchorSdFromThresholds(
      [
        { topic: "A", p: 0.5 },
        { topic: "A", p: 0.5 },
        { topic: "B", p: 0.8 },
        { topic: "C", p: 0.3 },
      ],
      unc,
    );
    expect(r.sd).toBeCloseTo(Math.sqrt((2 * 0.2 ** 2 + 0.625 ** 2) / 3), 12);
    expect(r.pairs).toBe(3);
    expect(r.topics).toBe(2);
    expect(anchorSdFromThresholds([{ topic: "C", p: 0.3 }], unc).sd).toBeNaN();
  });
});
