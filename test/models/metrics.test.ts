import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { auc, ece, logloss, reliability, rmse } from "../../models/metrics.ts";

describe("metrics", () => {
  it("auc matches a hand-counted pair comparison with ties", () => {
    // positives {0.8, 0.4, 0.4}, negatives {0.4, 0.1}: pairs won 2 (0.8) + 1.5 + 1.5 (ties at 0.4 count half, win vs 0.1) = 5 of 6
    const y = [1, 1, 1, 0, 0];
    const p = [0.8, 0.4, 0.4, 0.4, 0.1];
    expect(auc(y, p)).toBeCloseTo(5 / 6, 12);
  });

  it("auc equals the brute-force pair count on random data", () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: 0, max: 1 }), fc.integer({ min: 0, max: 5 })), {
          minLength: 2,
          maxLength: 40,
        }),
        (rows) => {
          const y = rows.map((r) => r[0]);
          const p = rows.map((r) => r[1] / 5);
          let wins = 0;
          let pairs = 0;
          for (let i = 0; i < y.length; i++)
            for (let j = 0; j < y.length; j++)
              if (y[i] === 1 && y[j] === 0) {
                pairs++;
                wins += p[i]! > p[j]! ? 1 : p[i] === p[j] ? 0.5 : 0;
              }
          const a = auc(y, p);
          if (pairs === 0) return Number.isNaN(a);
          return Math.abs(a - wins / pairs) < 1e-12;
        },
      ),
    );
  });

  it("rmse and logloss known answers", () => {
    expect(rmse([1, 0], [0.5, 0.5])).toBeCloseTo(0.5, 12);
    expect(logloss([1, 0], [0.5, 0.5])).toBeCloseTo(Math.LN2, 12);
    expect(logloss([1, 0], [0.9, 0.2])).toBeCloseTo(-(Math.log(0.9) + Math.log(0.8)) / 2, 12);
  });

  it("ece is the count-weighted gap over 10 equal-width bins", () => {
    // bin [0.2,0.3): p=0.25 x2, observed 1/2 -> gap 0.25; bin [0.9,1]: p=0.95 x2, observed 1 -> gap 0.05
    const y = [1, 0, 1, 1];
    const p = [0.25, 0.25, 0.95, 0.95];
    expect(ece(y, p)).toBeCloseTo((2 * 0.25 + 2 * 0.05) / 4, 12);
    expect(reliability(y, [0.25, 0.25, 1, 1]).at(-1)?.count).toBe(2);
  });
});
