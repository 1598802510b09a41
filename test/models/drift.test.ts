import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  adjustPValues,
  binCounts,
  categoricalDrift,
  chiSquareHomogeneity,
  chiSquareSf,
  DriftInputError,
  jensenShannon,
  kolmogorovSf,
  ksTwoSample,
  numericDrift,
  psiFromCounts,
  psiLevel,
  quantileEdges,
  wasserstein1,
} from "../../models/drift.ts";
import { Xoshiro128 } from "../../models/prng.ts";

function normals(seed: number, n: number, mean = 0, sd = 1): Float64Array {
  const g = new Xoshiro128(seed);
  return Float64Array.from({ length: n }, () => mean + sd * g.normal());
}

describe("PSI", () => {
  it("matches the hand computation on a 4-bin histogram", () => {
    // sum (c-r) ln(c/r) with r = .25 each, c = .1 .2 .3 .4 (computed by hand / Python: 0.2282174096)
    expect(psiFromCounts([25, 25, 25, 25], [10, 20, 30, 40])).toBeCloseTo(0.22821740957339182, 12);
    expect(psiFromCounts([1, 1, 1, 1], [1, 1, 1, 1])).toBe(0);
  });

  it("floors empty bins at 1e-4 so one empty bin gives a finite value", () => {
    // r = (.5,.5,0->1e-4), c = (.5,.25,.25): 0 + (-.25) ln(.5) + (.25-1e-4) ln(.25/1e-4)
    const want = -0.25 * Math.log(0.5) + (0.25 - 1e-4) * Math.log(0.25 / 1e-4);
    expect(psiFromCounts([2, 2, 0], [2, 1, 1])).toBeCloseTo(want, 12);
  });

  it("levels at the default 0.1 / 0.25 thresholds", () => {
    expect(psiLevel(0.09)).toBe("ok");
    expect(psiLevel(0.1)).toBe("warn");
    expect(psiLevel(0.25)).toBe("alert");
  });

  it("cuts bins at the reference quantiles, dropping duplicate edges", () => {
    const ref = Float64Array.from({ length: 100 }, (_, i) => i + 1); // 1..100
    const edges = quantileEdges(ref, 4);
    // simple-statistics quantileSorted interpolates linearly (R type 7): 1 + 99 k/4.
    expect(Array.from(edges)).toEqual([25.75, 50.5, 75.25]);
    expect(Array.from(binCounts(ref, edges))).toEqual([25, 25, 25, 25]);
    const ties = Float64Array.from([0, 0, 0, 0, 0, 0, 0, 0, 1, 2]);
    // R type 7 on 8 zeros, 1, 2: p = .1 .. .7 -> 0, p = .8 -> 0.2, p = .9 -> 1.1; duplicates of 0 dropped.
    const te = Array.from(quantileEdges(ties, 10));
    expect(te).toHaveLength(3);
    expect(te[0]).toBe(0);
    expect(te[1]).toBeCloseTo(0.2, 12);
    expect(te[2]).toBeCloseTo(1.1, 12);
    expect(Array.from(binCounts([0, 0.5, 1, 3], Float64Array.from([0, 1])))).toEqual([1, 2, 1]);
  });

  it("is near 0 for two samples of one distribution and large for a 1-sd shift", () => {
    expect(numericDrift(normals(1, 5000), normals(2, 5000)).psi).toBeLessThan(0.02);
    const shifted = numericDrift(normals(1, 5000), normals(2, 5000, 1));
    expect(shifted.psi).toBeGreaterThan(0.25);
    expect(shifted.level).toBe("alert");
  });
});

describe("Kolmogorov-Smirnov", () => {
  it("computes D by hand, ties included", () => {
    // F_ref - F_cur at 2: .5 - 0, at 3: .75 - .25, at 4: 1 - .5  ->  D = .5
    expect(ksTwoSample([1, 2, 3, 4], [3, 4, 5, 6]).statistic).toBe(0.5);
    expect(ksTwoSample([1, 2, 3], [4, 5]).statistic).toBe(1);
    // Identical tied samples: D = 0 (a naive merge would report 1/n steps).
    expect(ksTwoSample([0, 0, 1, 1], [0, 1, 0, 1]).statistic).toBe(0);
  });

  it("p-value follows the Kolmogorov distribution with Stephens' correction", () => {
    // Q_KS(1.3581) = 0.05, the classical 5% critical value of sqrt(n) D.
    expect(kolmogorovSf(1.3581)).toBeCloseTo(0.05, 4);
    expect(kolmogorovSf(0.1)).toBe(1);
    // n = m = 4, D = .5: en = sqrt(2), lambda = (en + .12 + .11/en) * .5 -> Q = 0.5344157 (series by hand in Python)
    expect(ksTwoSample([1, 2, 3, 4], [3, 4, 5, 6]).pValue).toBeCloseTo(0.5344157192165071, 9);
  });

  it("rejects at about the nominal rate when nothing changed", () => {
    let rejections = 0;
    for (let s = 0; s < 300; s++)
      if (ksTwoSample(normals(s, 200), normals(s + 10_000, 200)).pValue < 0.05) rejections++;
    expect(rejections / 300).toBeLessThanOrEqual(0.07);
    expect(rejections).toBeGreaterThan(0);
  });
});

describe("chi-square", () => {
  it("matches the survival function at published critical values and scipy", () => {
    expect(chiSquareSf(3.841458820694124, 1)).toBeCloseTo(0.05, 12);
    expect(chiSquareSf(5, 3)).toBeCloseTo(0.1717971442967335, 12); // scipy.stats.chi2.sf(5, 3)
    expect(chiSquareSf(50, 40)).toBeCloseTo(0.1335748340856504, 12);
    expect(chiSquareSf(0.5, 7)).toBeCloseTo(0.9994464813904249, 12);
  });

  it("tests homogeneity of a 2 x 3 table by hand", () => {
    // Totals 60 / 60, column sums 30 40 50 -> expected 15 20 25 in both rows;
    // chi2 = 2 (25/15 + 0 + 25/25) = 16/3, df = 2, p = exp(-chi2 / 2).
    const r = chiSquareHomogeneity([10, 20, 30], [20, 20, 20]);
    expect(r.statistic).toBeCloseTo(16 / 3, 12);
    expect(r.df).toBe(2);
    expect(r.pValue).toBeCloseTo(Math.exp(-8 / 3), 12);
  });

  it("drops categories empty on both sides (scipy chi2_contingency on the 2 x 3 rest)", () => {
    const r = chiSquareHomogeneity([12, 30, 8, 0], [20, 25, 15, 0]);
    expect(r.df).toBe(2);
    expect(r.statistic).toBeCloseTo(3.7065217391304355, 10);
    expect(r.pValue).toBeCloseTo(0.15672527148819576, 10);
  });

  it("categoricalDrift aligns categories by name", () => {
    const d = categoricalDrift(
      new Map([
        ["a", 10],
        ["b", 20],
        ["c", 30],
      ]),
      new Map([
        ["c", 20],
        ["a", 20],
        ["b", 20],
      ]),
    );
    expect(d.categories).toEqual(["a", "b", "c"]);
    expect(d.chiSquare.statistic).toBeCloseTo(16 / 3, 12);
  });
});

describe("Jensen-Shannon", () => {
  it("is 1 bit for disjoint supports and 0.3112781 for (.5,.5) vs (1,0)", () => {
    expect(jensenShannon([1, 0], [0, 1])).toBe(1);
    // m = (.75,.25): .5 KL(p||m) + .5 KL(q||m) in bits (Python: 0.31127812445913283)
    expect(jensenShannon([0.5, 0.5], [1, 0])).toBeCloseTo(0.31127812445913283, 12);
    expect(jensenShannon([2, 2], [5, 5])).toBe(0);
  });

  it("is symmetric and in [0, 1]", () => {
    const hist = fc
      .array(fc.integer({ min: 0, max: 50 }), { minLength: 4, maxLength: 4 })
      .filter((a) => a.some((v) => v > 0));
    fc.assert(
      fc.property(hist, hist, (p, q) => {
        const a = jensenShannon(p, q);
        expect(a).toBeGreaterThanOrEqual(0);
        expect(a).toBeLessThanOrEqual(1);
        expect(jensenShannon(q, p)).toBeCloseTo(a, 12);
        expect(psiFromCounts(p, q)).toBeGreaterThanOrEqual(0);
      }),
    );
  });
});

describe("Wasserstein-1", () => {
  it("matches scipy.stats.wasserstein_distance by hand", () => {
    expect(wasserstein1([0, 1], [2, 3])).toBe(2);
    expect(wasserstein1([0, 1, 3], [5, 6])).toBeCloseTo(4.166666666666666, 12);
  });

  it("equals shift / sd for a shifted sample", () => {
    const ref = normals(7, 2000, 30, 8);
    const cur = ref.map((v) => v + 4);
    const d = numericDrift(ref, cur);
    expect(d.wasserstein).toBeCloseTo(4, 9);
    expect(d.wassersteinScaled).toBeCloseTo(4 / d.sdReference, 9);
    expect(d.sdReference).toBeGreaterThan(7.5);
    expect(d.sdReference).toBeLessThan(8.5);
    expect(d.meanCurrent - d.meanReference).toBeCloseTo(4, 9);
  });
});

describe("p-value corrections", () => {
  it("Bonferroni multiplies by m and caps at 1", () => {
    expect(Array.from(adjustPValues([0.01, 0.04, 0.03, 0.005], "bonferroni"))).toEqual([
      0.04, 0.16, 0.12, 0.02,
    ]);
    expect(Array.from(adjustPValues([0.5, 0.6], "bonferroni"))).toEqual([1, 1]);
  });

  it("Benjamini-Hochberg step-up by hand", () => {
    // ascending .005 .01 .03 .04 -> m p / rank = .02 .02 .04 .04 -> running min from the top
    const adj = Array.from(adjustPValues([0.01, 0.04, 0.03, 0.005], "bh"));
    expect(adj.map((x) => Number(x.toFixed(12)))).toEqual([0.02, 0.04, 0.04, 0.02]);
  });

  it("ignores NaN p-values in m", () => {
    const adj = adjustPValues([0.01, Number.NaN], "bonferroni");
    expect(adj[0]).toBe(0.01);
    expect(Number.isNaN(adj[1]!)).toBe(true);
  });
});

describe("input errors", () => {
  it("names the problem", () => {
    expect(() => ksTwoSample([], [1])).toThrow(DriftInputError);
    expect(() => ksTwoSample([1, Number.NaN], [1])).toThrow(/reference\[1\] is NaN/);
    expect(() => psiFromCounts([1, 2], [1])).toThrow(/same bins/);
  });
});
