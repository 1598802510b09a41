import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { calibratorFromJSON, IsotonicCalibrator, PlattCalibrator } from "../../models/calibration.ts";
import { ece } from "../../models/metrics.ts";
import { mulberry32 } from "../../models/prng.ts";

describe("isotonic calibration", () => {
  it("pools adjacent violators into a hand-computed step function", () => {
    // labels in score order: 1 0 0 1 1 -> blocks {1,0,0} mean 1/3 at mean score 2, then 1, 1.
    const cal = IsotonicCalibrator.fit([1, 2, 3, 4, 5], [1, 0, 0, 1, 1]);
    expect(cal.x).toEqual([2, 4, 5]);
    expect(cal.y.map((v) => Number(v.toFixed(12)))).toEqual([0.333333333333, 1, 1]);
    expect(cal.transform(3)).toBeCloseTo(1 / 3 + (2 / 3) * 0.5, 12);
    expect(cal.transform(-10)).toBeCloseTo(1 / 3, 12);
  });

  it("is non-decreasing for any data", () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.double({ min: 0, max: 1, noNaN: true }), fc.integer({ min: 0, max: 1 })), {
          minLength: 1,
          maxLength: 60,
        }),
        fc.array(fc.double({ min: -0.5, max: 1.5, noNaN: true }), { minLength: 2, maxLength: 20 }),
        (rows, probes) => {
          const cal = IsotonicCalibrator.fit(
            rows.map((r) => r[0]),
            rows.map((r) => r[1]),
          );
          const sorted = [...probes].sort((a, b) => a - b);
          for (let i = 1; i < sorted.length; i++) {
            if (cal.transform(sorted[i]!) < cal.transform(sorted[i - 1]!) - 1e-12) return false;
          }
          return true;
        },
      ),
    );
  });
});

describe("Platt calibration", () => {
  it("recovers the slope and intercept of a known logistic link", () => {
    // Labels drawn from p = 1/(1+exp(-(2s - 1))), i.e. a = -2, b = 1 in Platt's sign convention.
    const rand = mulberry32(7);
    const n = 20000;
    const s = new Float64Array(n);
    const y = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      s[i] = rand() * 4 - 2;
      y[i] = rand() < 1 / (1 + Math.exp(-(2 * s[i]! - 1))) ? 1 : 0;
    }
    const cal = PlattCalibrator.fit(s, y);
    expect(cal.a).toBeCloseTo(-2, 1);
    expect(cal.b).toBeCloseTo(1, 1);
  });

  it("fixes an over-confident predictor's ECE and round-trips through JSON", () => {
    const rand = mulberry32(11);
    const n = 20000;
    const raw = new Float64Array(n);
    const y = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      const truth = rand();
      y[i] = rand() < truth ? 1 : 0;
      // over-confident: pushes probabilities toward 0 and 1
      raw[i] = 1 / (1 + Math.exp(-14 * (truth - 0.5)));
    }
    const half = n / 2;
    const platt = PlattCalibrator.fit(raw.subarray(0, half), y.subarray(0, half));
    const iso = IsotonicCalibrator.fit(raw.subarray(0, half), y.subarray(0, half));
    const test = raw.subarray(half);
    const yTest = y.subarray(half);
    const before = ece(yTest, test);
    const afterIso = ece(
      yTest,
      Array.from(test, (v) => iso.transform(v)),
    );
    expect(before).toBeGreaterThan(0.05);
    expect(afterIso).toBeLessThan(0.02);
    const again = calibratorFromJSON(JSON.parse(JSON.stringify(platt.toJSON())));
    expect(again.transform(0.37)).toBe(platt.transform(0.37));
  });
});
