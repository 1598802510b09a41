import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  Blend,
  chooseCalibrator,
  crossFitLogits,
  logit,
  StackedLogistic,
  sigmoid,
} from "../../models/blend.ts";
import { IsotonicCalibrator, PlattCalibrator } from "../../models/calibration.ts";
import { explanationTotal } from "../../models/explanation.ts";
import { mulberry32 as rng } from "../../models/prng.ts";

/** n rows of 2 standard-normal-ish inputs with y ~ Bernoulli(sigmoid(b0 + w . x)). */
function synthetic(n: number, w: [number, number], b0: number, seed: number) {
  const r = rng(seed);
  const X = new Float64Array(n * 2);
  const y = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    X[2 * i] = r() * 4 - 2;
    X[2 * i + 1] = r() * 4 - 2;
    y[i] = r() < sigmoid(b0 + w[0] * X[2 * i]! + w[1] * X[2 * i + 1]!) ? 1 : 0;
  }
  return { X, y };
}

describe("StackedLogistic", () => {
  it("recovers the weights of a logistic model (maximum likelihood, n = 40000)", () => {
    const { X, y } = synthetic(40_000, [1.2, -0.7], 0.5, 1);
    const m = StackedLogistic.fit(X, y, ["a", "b"]);
    expect(m.weights[0]).toBeCloseTo(1.2, 1);
    expect(m.weights[1]).toBeCloseTo(-0.7, 1);
    expect(m.intercept).toBeCloseTo(0.5, 1);
  });

  it("with one input equal to the true logit, finds weight 1 and intercept 0 (a calibrated source passes through)", () => {
    const r = rng(3);
    const n = 30_000;
    const X = new Float64Array(n);
    const y = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      X[i] = 6 * r() - 3;
      y[i] = r() < sigmoid(X[i]!) ? 1 : 0;
    }
    const m = StackedLogistic.fit(X, y, ["src"]);
    expect(m.weights[0]).toBeCloseTo(1, 1);
    expect(Math.abs(m.intercept)).toBeLessThan(0.05);
  });

  it("gradient is zero at the optimum: mean residual and residual-weighted inputs vanish", () => {
    const { X, y } = synthetic(5000, [0.4, 2], -1, 8);
    const m = StackedLogistic.fit(X, y, ["a", "b"], { l2: 0 });
    let g0 = 0;
    let g1 = 0;
    let g2 = 0;
    for (let i = 0; i < y.length; i++) {
      const r = sigmoid(m.logit(X.subarray(2 * i, 2 * i + 2))) - y[i]!;
      g0 += r;
      g1 += r * X[2 * i]!;
      g2 += r * X[2 * i + 1]!;
    }
    expect(Math.abs(g0) / y.length).toBeLessThan(1e-6);
    expect(Math.abs(g1) / y.length).toBeLessThan(1e-6);
    expect(Math.abs(g2) / y.length).toBeLessThan(1e-6);
  });

  it("JSON round trip keeps every logit", () => {
    const { X, y } = synthetic(500, [1, 1], 0, 2);
    const m = StackedLogistic.fit(X, y, ["a", "b"]);
    const back = StackedLogistic.fromJSON(JSON.parse(JSON.stringify(m.toJSON())));
    expect(Array.from(back.logits(X))).toEqual(Array.from(m.logits(X)));
  });

  it("crossFitLogits predicts each group with a model that never saw it", () => {
    const { X, y } = synthetic(400, [1, -1], 0, 4);
    const group = Int32Array.from({ length: 400 }, (_, i) => i % 4);
    const oof = crossFitLogits(X, y, ["a", "b"], group, 4);
    // Rows of group 0 equal the predictions of a model fitted on groups 1-3 only.
    const keep = Array.from({ length: 400 }, (_, i) => i).filter((i) => i % 4 !== 0);
    const Xt = new Float64Array(keep.length * 2);
    keep.forEach((r, q) => {
      Xt.set(X.subarray(2 * r, 2 * r + 2), 2 * q);
    });
    const m = StackedLogistic.fit(
      Xt,
      keep.map((r) => y[r]!),
      ["a", "b"],
    );
    for (let i = 0; i < 400; i += 4) expect(oof[i]).toBeCloseTo(m.logit(X.subarray(2 * i, 2 * i + 2)), 12);
  });
});

describe("Blend explanation", () => {
  it("source contributions + intercept == logit, and base + factors + rest == calibrated probability", () => {
    const { X, y } = synthetic(2000, [0.8, -1.5], 0.2, 5);
    const stacking = StackedLogistic.fit(X, y, ["bkt", "elo"]);
    const cals = [PlattCalibrator.fit(stacking.logits(X), y), IsotonicCalibrator.fit(stacking.logits(X), y)];
    fc.assert(
      fc.property(
        fc.double({ min: -5, max: 5, noNaN: true }),
        fc.double({ min: -5, max: 5, noNaN: true }),
        fc.integer({ min: 0, max: 1 }),
        (a, b, c) => {
          const blend = new Blend(stacking, cals[c]!);
          const e = blend.explain([a, b]);
          let s = e.intercept;
          for (const src of e.sources) {
            expect(src.contribution).toBeCloseTo(src.weight * src.value, 12);
            s += src.contribution;
          }
          expect(s).toBeCloseTo(e.logit, 10);
          expect(e.probability).toBe(blend.predict([a, b]));
          expect(explanationTotal(e.explanation)).toBeCloseTo(e.probability, 10);
        },
      ),
      { numRuns: 300 },
    );
  });

  it("hand-computed: w = (2, -1), b = 0.5, Platt identity", () => {
    const blend = new Blend(
      new StackedLogistic(["x", "z"], Float64Array.of(2, -1), 0.5),
      new PlattCalibrator(-1, 0),
    );
    const e = blend.explain([1, 3]);
    expect(e.sources.map((s) => s.contribution)).toEqual([2, -3]);
    expect(e.logit).toBe(-0.5);
    expect(e.probability).toBeCloseTo(sigmoid(-0.5), 12);
    expect(e.explanation.base).toBeCloseTo(sigmoid(0.5), 12);
    // Probability shares are proportional to the logit shares: (p - base) * (2 / -1) and (p - base) * (-3 / -1).
    const d = sigmoid(-0.5) - sigmoid(0.5);
    const byName = Object.fromEntries(e.explanation.factors.map((f) => [f.name, f.contribution]));
    expect(byName.x).toBeCloseTo(d * -2, 12);
    expect(byName.z).toBeCloseTo(d * 3, 12);
  });
});

describe("chooseCalibrator", () => {
  it("prefers Platt when the truth is logistic in the score, isotonic when it is a step", () => {
    const r = rng(11);
    const n = 6000;
    const s = new Float64Array(n);
    const yLogistic = new Float64Array(n);
    const yStep = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      s[i] = 8 * r() - 4;
      yLogistic[i] = r() < sigmoid(0.7 * s[i]! - 0.3) ? 1 : 0;
      yStep[i] = r() < (s[i]! > 1 ? 0.9 : s[i]! > -1 ? 0.5 : 0.45) ? 1 : 0;
    }
    const group = Int32Array.from({ length: n }, (_, i) => i % 5);
    const a = chooseCalibrator(s, yLogistic, group, 5);
    expect(a.calibrator.kind).toBe("platt");
    expect(a.cvLogloss.platt).toBeLessThan(a.cvLogloss.isotonic);
    const b = chooseCalibrator(s, yStep, group, 5);
    expect(b.calibrator.kind).toBe("isotonic");
  });

  it("logit clips probabilities so 0 and 1 stay finite", () => {
    expect(Number.isFinite(logit(0))).toBe(true);
    expect(Number.isFinite(logit(1))).toBe(true);
    expect(logit(0.5)).toBe(0);
  });
});
