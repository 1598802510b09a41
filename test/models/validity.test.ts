import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { averageRanks, pearson, spearman, validityMeasures } from "../../models/validity.ts";

describe("validity measures", () => {
  it("average ranks give ties their mean rank", () => {
    expect(Array.from(averageRanks([10, 20, 20, 5]))).toEqual([2, 3.5, 3.5, 1]);
  });

  it("Pearson and Spearman match hand-computed values", () => {
    // x = 1..5, y = [2, 1, 4, 3, 5]: Spearman = 1 - 6*sum(d^2)/(n(n^2-1)) = 1 - 6*4/120 = 0.8
    expect(spearman([1, 2, 3, 4, 5], [2, 1, 4, 3, 5])).toBeCloseTo(0.8, 12);
    expect(pearson([1, 2, 3, 4, 5], [2, 1, 4, 3, 5])).toBeCloseTo(0.8, 12);
    // Spearman is invariant to a monotone transform; Pearson is not.
    const y = [1, 2, 3, 4, 100];
    expect(spearman([1, 2, 3, 4, 5], y)).toBeCloseTo(1, 12);
    expect(pearson([1, 2, 3, 4, 5], y)).toBeLessThan(0.8);
    expect(Number.isNaN(pearson([1, 1, 1], [1, 2, 3]))).toBe(true);
  });

  it("MAE, saturation, coverage and next-week counts on a known set", () => {
    const m = validityMeasures([
      { score: 0.96, truth: 0.9, lo: 0.8, hi: 1, nextWeek: 1 },
      { score: 0.995, truth: 0.5, lo: 0.9, hi: 1, nextWeek: 0.6 },
      { score: 0.2, truth: 0.3, lo: 0.1, hi: 0.4 },
      { score: 0.5, nextWeek: 0.2 },
    ]);
    expect(m.n).toBe(3);
    expect(m.mae).toBeCloseTo((0.06 + 0.495 + 0.1) / 3, 12);
    expect(m.above95).toBeCloseTo(2 / 3, 12);
    expect(m.above99).toBeCloseTo(1 / 3, 12);
    expect(m.coverage).toBeCloseTo(2 / 3, 12);
    expect(m.nNext).toBe(3);
    // scores rank [2, 3, 1], next week [3, 2, 1]: Pearson of the ranks = 1 / 2.
    expect(m.nextSpearman).toBeCloseTo(0.5, 12);
  });

  it("correlations stay in [-1, 1] and Spearman of a strictly increasing map is 1", () => {
    fc.assert(
      fc.property(
        fc.array(fc.double({ min: -1e6, max: 1e6, noNaN: true }), { minLength: 3, maxLength: 40 }),
        (xs) => {
          const ys = xs.map((x, i) => Math.sin(x + i));
          const r = pearson(xs, ys);
          const s = spearman(xs, ys);
          if (!Number.isNaN(r)) expect(Math.abs(r)).toBeLessThanOrEqual(1 + 1e-9);
          if (!Number.isNaN(s)) expect(Math.abs(s)).toBeLessThanOrEqual(1 + 1e-9);
          // x * 4 is exact in floating point (a power of two, no overflow here), so strictly increasing;
          // x * 3 is not: two neighbouring doubles can round to the same product (a tie, Spearman < 1).
          if (new Set(xs).size === xs.length)
            expect(
              spearman(
                xs,
                xs.map((x) => x * 4),
              ),
            ).toBeCloseTo(1, 9);
        },
      ),
    );
  });
});
