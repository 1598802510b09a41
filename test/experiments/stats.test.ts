import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  bootstrapRmstDiff,
  chiSquareGoodnessOfFit,
  chiSquareSf,
  kaplanMeier,
  kmMedian,
  normalCdf,
  normalQuantile,
  restrictedMean,
  restrictedMeanWeighted,
  sampleSizeMeans,
  sortSurvival,
  studentTCdf,
  studentTQuantile,
  summarize,
  welchInterval,
} from "../../experiments/stats.ts";

describe("distribution functions (published table values)", () => {
  it("normal quantiles and CDF", () => {
    expect(normalQuantile(0.975)).toBeCloseTo(1.959963984540054, 12);
    expect(normalQuantile(0.8)).toBeCloseTo(0.8416212335729143, 12);
    expect(normalQuantile(0.001)).toBeCloseTo(-3.090232306167813, 10);
    expect(normalCdf(1.959963984540054)).toBeCloseTo(0.975, 14);
    expect(normalCdf(-1)).toBeCloseTo(0.15865525393145707, 14);
  });

  it("Student t quantiles (t_{0.975} with 10 df = 2.228139; 1 df = 12.706205)", () => {
    expect(studentTQuantile(0.975, 10)).toBeCloseTo(2.228138851986274, 8);
    expect(studentTQuantile(0.975, 1)).toBeCloseTo(12.706204736174698, 6);
    expect(studentTCdf(0, 7)).toBeCloseTo(0.5, 14);
  });

  it("chi-square upper tail: df 1 via the normal, df 2 = exp(-x/2)", () => {
    // df 1: P(X >= x) = 2 (1 - Φ(√x)).
    expect(chiSquareSf(1.6, 1)).toBeCloseTo(2 * (1 - normalCdf(Math.sqrt(1.6))), 12);
    expect(chiSquareSf(3.6333333333333333, 2)).toBeCloseTo(Math.exp(-3.6333333333333333 / 2), 12);
    expect(chiSquareSf(7.814727903251178, 3)).toBeCloseTo(0.05, 10); // table: χ²_{0.95, 3} = 7.8147
  });
});

describe("sample-ratio mismatch check", () => {
  it("two arms 520 / 480 at 50/50: chi2 = (20² + 20²) / 500 = 1.6, p = 0.2059", () => {
    const r = chiSquareGoodnessOfFit([520, 480], [0.5, 0.5]);
    expect(r.chi2).toBeCloseTo(1.6, 12);
    expect(r.df).toBe(1);
    expect(r.p).toBeCloseTo(0.2059032107320683, 10);
  });

  it("three arms 530 / 280 / 190 at 50/30/20: chi2 = 900/500 + 400/300 + 100/200 = 3.6333, p = e^{-chi2/2}", () => {
    const r = chiSquareGoodnessOfFit([530, 280, 190], [0.5, 0.3, 0.2]);
    expect(r.chi2).toBeCloseTo(1.8 + 4 / 3 + 0.5, 12);
    expect(r.df).toBe(2);
    expect(r.p).toBeCloseTo(Math.exp(-(1.8 + 4 / 3 + 0.5) / 2), 12);
  });

  it("600 / 400 at 50/50 is a mismatch: chi2 = 40, p < 0.001", () => {
    const r = chiSquareGoodnessOfFit([600, 400], [0.5, 0.5]);
    expect(r.chi2).toBeCloseTo(40, 12);
    expect(r.p).toBeLessThan(1e-9);
  });

  it("no exposure yet: df counts the arms with a share (2 arms -> 1, never -1) and p is NaN (nothing to test)", () => {
    const r = chiSquareGoodnessOfFit([0, 0], [0.5, 0.5]);
    expect(r).toEqual({ chi2: 0, df: 1, p: Number.NaN });
    const three = chiSquareGoodnessOfFit([0, 0, 0], [0.5, 0.5, 0]);
    expect(three.df).toBe(1);
    // An arm with share 0 is left out of df whether or not it has counts.
    expect(chiSquareGoodnessOfFit([50, 50, 3], [0.5, 0.5, 0]).df).toBe(1);
  });
});

describe("Welch interval and sample size", () => {
  it("hand-computed Welch: control {0.5, 0.75}, treatment {1, 0.5, 1}", () => {
    const w = welchInterval(summarize([1, 0.5, 1]), summarize([0.5, 0.75]));
    // var_c = 0.03125 -> /2 = 0.015625; var_t = 1/12 -> /3 = 1/36; se = sqrt(0.0434028) = 0.2083333
    expect(w.diff).toBeCloseTo(0.8333333333 - 0.625, 9);
    expect(w.se).toBeCloseTo(0.2083333333, 9);
    const vt = 1 / 36;
    const vc = 0.015625;
    expect(w.df).toBeCloseTo((vt + vc) ** 2 / (vt ** 2 / 2 + vc ** 2 / 1), 9);
    expect(w.df).toBeCloseTo(2.9905, 3);
    const tq = studentTQuantile(0.975, w.df);
    expect(w.lo).toBeCloseTo(w.diff - tq * w.se, 12);
    expect(w.hi).toBeCloseTo(w.diff + tq * w.se, 12);
    expect(w.p).toBeCloseTo(2 * (1 - studentTCdf(w.diff / w.se, w.df)), 12);
  });

  it("planned size for a 5-point difference, sd = sqrt(0.7 * 0.3), alpha 0.05, power 0.8: 1319 per arm", () => {
    // (1.959964 + 0.841621)^2 * 0.21 * 2 / 0.05^2 = 7.848879 * 0.42 / 0.0025 = 1318.6 -> 1319
    expect(sampleSizeMeans({ sd: Math.sqrt(0.21), mde: 0.05, alpha: 0.05, power: 0.8, ratio: 1 })).toEqual({
      control: 1319,
      treatment: 1319,
    });
    // Half as many treatment students (r = 0.5): n_c = 7.848879 * 0.21 * 3 / 0.0025 = 1977.9 -> 1978; n_t = 989.
    expect(sampleSizeMeans({ sd: Math.sqrt(0.21), mde: 0.05, alpha: 0.05, power: 0.8, ratio: 0.5 })).toEqual({
      control: 1978,
      treatment: 989,
    });
  });
});

describe("time to mastery with censoring", () => {
  // control: mastered at day 3, censored at 10, 10. treatment: mastered at 1 and 5, censored at 10.
  const ct = [3, 10, 10];
  const ce = [1, 0, 0];
  const tt = [1, 5, 10];
  const te = [1, 1, 0];

  it("Kaplan-Meier steps, median and RMST by hand", () => {
    const km = kaplanMeier(tt, te);
    expect(km.map((s) => [s.t, s.atRisk, s.events])).toEqual([
      [1, 3, 1],
      [5, 2, 1],
    ]);
    expect(km[0]!.survival).toBeCloseTo(2 / 3, 14);
    expect(km[1]!.survival).toBeCloseTo(1 / 3, 14);
    expect(kmMedian(tt, te)).toBe(5);
    expect(kmMedian(ct, ce)).toBeNull();
    // RMST(28): control 3 * 1 + 25 * 2/3 = 19.667; treatment 1 + 4 * 2/3 + 23 * 1/3 = 11.333
    expect(restrictedMean(ct, ce, 28)).toBeCloseTo(3 + 25 * (2 / 3), 12);
    expect(restrictedMean(tt, te, 28)).toBeCloseTo(1 + 4 * (2 / 3) + 23 / 3, 12);
    expect(restrictedMean(tt, te, 3)).toBeCloseTo(1 + 2 * (2 / 3), 12);
  });

  it("weighted RMST with unit weights equals RMST (property)", () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: 0, max: 40 }), fc.boolean()), { minLength: 1, maxLength: 40 }),
        fc.integer({ min: 1, max: 45 }),
        (rows, horizon) => {
          const t = rows.map((r) => r[0]);
          const e = rows.map((r) => (r[1] ? 1 : 0));
          const w = restrictedMeanWeighted(sortSurvival(t, e), new Float64Array(t.length).fill(1), horizon);
          return Math.abs(w - restrictedMean(t, e, horizon)) < 1e-9;
        },
      ),
    );
  });

  it("bootstrap interval contains the point difference and is reproducible from its seed", () => {
    const a = bootstrapRmstDiff(sortSurvival(tt, te), sortSurvival(ct, ce), 28, { resamples: 400, seed: 7 });
    const b = bootstrapRmstDiff(sortSurvival(tt, te), sortSurvival(ct, ce), 28, { resamples: 400, seed: 7 });
    expect(a.diff).toBeCloseTo(1 + 4 * (2 / 3) + 23 / 3 - (3 + 25 * (2 / 3)), 12);
    expect(a).toEqual(b);
    expect(a.lo).toBeLessThanOrEqual(a.diff);
    expect(a.hi).toBeGreaterThanOrEqual(a.diff);
  });
});
