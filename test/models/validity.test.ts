import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { mulberry32 } from "../../models/prng.ts";
import {
  averageRanks,
  pairedClusterBootstrap,
  pearson,
  spearman,
  validityMeasures,
} from "../../models/validity.ts";

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

  it("Pearson of tiny spreads is finite (the variances' product underflowed to 0 and gave Infinity)", () => {
    // fast-check's counterexample: one value of 3.6e-162 among zeros (its variance squared is 0 in doubles).
    const xs = [0, 0, 0, -3.629749838363508e-162];
    const r = pearson(
      xs,
      xs.map((x, i) => Math.sin(x + i)),
    );
    expect(Number.isFinite(r)).toBe(true);
    expect(Math.abs(r)).toBeLessThanOrEqual(1);
    expect(pearson(xs, xs)).toBe(1);
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

describe("pairedClusterBootstrap", () => {
  const seeded = (seed: number) => mulberry32(seed);

  it("one cluster: every resample is the whole set, so each interval collapses to its estimate", () => {
    const y = [0.1, 0.4, 0.2, 0.9, 0.6, 0.3];
    const a = [1, 2, 3, 4, 5, 6];
    const b = [0.2, 0.3, 0.1, 0.8, 0.7, 0.2];
    const r = pairedClusterBootstrap([7, 7, 7, 7, 7, 7], a, b, y, { resamples: 50, rnd: seeded(1) });
    expect(r.a.estimate).toBeCloseTo(spearman(a, y), 12);
    expect([r.a.lo, r.a.hi]).toEqual([r.a.estimate, r.a.estimate]);
    expect(r.diff.estimate).toBeCloseTo(spearman(a, y) - spearman(b, y), 12);
    expect(r.diff.lo).toBeCloseTo(r.diff.estimate, 12);
    expect(r.diff.hi).toBeCloseTo(r.diff.estimate, 12);
    expect(r.resamples).toBe(50);
  });

  it("the same score twice: the paired difference is exactly 0 in every resample", () => {
    const rnd = seeded(3);
    const n = 60;
    const y = Array.from({ length: n }, () => rnd());
    const a = y.map((v) => v + rnd());
    const clusters = Array.from({ length: n }, (_, i) => i % 12);
    const r = pairedClusterBootstrap(clusters, a, a, y, { resamples: 200, rnd: seeded(4) });
    expect([r.diff.lo, r.diff.estimate, r.diff.hi, r.shareAbove]).toEqual([0, 0, 0, 0]);
    // The marginal interval is not degenerate: the clusters differ.
    expect(r.a.hi - r.a.lo).toBeGreaterThan(0.05);
  });

  it("resolves a real difference that the two marginal intervals overlap on", () => {
    // a = outcome + small noise, b = a + a shared large noise per cluster + own noise: a ranks better.
    const rnd = seeded(5);
    const n = 300;
    const clusters = Array.from({ length: n }, (_, i) => i % 30);
    const shared = Array.from({ length: 30 }, () => rnd() - 0.5);
    const y = Array.from({ length: n }, (_, i) => rnd() + shared[clusters[i]!]!);
    const a = y.map((v) => v + 0.6 * (rnd() - 0.5));
    const b = a.map((v) => v + 0.5 * (rnd() - 0.5));
    const r = pairedClusterBootstrap(clusters, a, b, y, { resamples: 500, rnd: seeded(6) });
    expect(r.diff.estimate).toBeGreaterThan(0);
    expect(r.diff.lo).toBeGreaterThan(0);
    expect(r.shareAbove).toBeGreaterThan(0.975);
    // The marginals overlap: two separate intervals could not tell them apart.
    expect(r.b.hi).toBeGreaterThan(r.a.lo);
  });

  it("property: every interval is ordered, and the difference estimate is the difference of the estimates", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.tuple(
            fc.integer({ min: 0, max: 5 }),
            fc.double({ min: 0, max: 1, noNaN: true }),
            fc.double({ min: 0, max: 1, noNaN: true }),
            fc.double({ min: 0, max: 1, noNaN: true }),
          ),
          { minLength: 8, maxLength: 40 },
        ),
        fc.integer({ min: 1, max: 1000 }),
        (rows, seed) => {
          const r = pairedClusterBootstrap(
            rows.map((x) => x[0]),
            rows.map((x) => x[1]),
            rows.map((x) => x[2]),
            rows.map((x) => x[3]),
            { resamples: 30, rnd: seeded(seed) },
          );
          if (r.resamples === 0) return;
          for (const i of [r.a, r.b, r.diff]) expect(i.lo).toBeLessThanOrEqual(i.hi);
          if (Number.isFinite(r.a.estimate) && Number.isFinite(r.b.estimate))
            expect(r.diff.estimate).toBeCloseTo(r.a.estimate - r.b.estimate, 12);
        },
      ),
      { numRuns: 60 },
    );
  });

  it("rejects arrays of different lengths", () => {
    expect(() =>
      pairedClusterBootstrap([1, 2], [1, 2, 3], [1, 2], [1, 2], { resamples: 1, rnd: seeded(1) }),
    ).toThrow(RangeError);
  });
});
