import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { explain, explanationTotal } from "../../models/explanation.ts";
import { IgOptionsError, integratedGradients, topAttributions } from "../../models/integratedGradients.ts";
import { type Activation, type MlpNetwork, mlpForward, type OutputKind } from "../../models/mlp.ts";

/** A network from flat weight lists (mean 0 / std 1 unless given). */
function network(
  widths: number[],
  weights: number[],
  activation: Activation,
  output: OutputKind,
  mean?: number[],
  std?: number[],
): MlpNetwork {
  const d = widths[0]!;
  let k = 0;
  const take = (n: number) => Float64Array.from({ length: n }, () => weights[k++ % weights.length]!);
  const layers = [];
  for (let l = 0; l + 1 < widths.length; l++) {
    const nIn = widths[l]!;
    const nOut = widths[l + 1]!;
    layers.push({ nIn, nOut, W: take(nIn * nOut), b: take(nOut) });
  }
  return {
    activation,
    output,
    mean: Float64Array.from(mean ?? new Array<number>(d).fill(0)),
    std: Float64Array.from(std ?? new Array<number>(d).fill(1)),
    layers,
  };
}

describe("integratedGradients: known answers", () => {
  // A linear model in raw units: f(x) = 0.5 + sum_i (W_i / std_i) (x_i - mean_i).
  const lin = network([3, 1], [2, -1, 0.5, 0.5], "relu", "linear", [1, 2, 3], [2, 4, 0.5]);
  const wRaw = [2 / 2, -1 / 4, 0.5 / 0.5];

  it("a linear model's attributions are w_i (x_i - b_i) exactly, for either rule and any steps", () => {
    const x = [3, -2, 4];
    const b = [0, 1, 2];
    for (const opts of [
      { baseline: b },
      { baseline: b, method: "trapezoid" as const, steps: 1 },
      { baseline: b, method: "trapezoid" as const, steps: 7 },
    ]) {
      const ig = integratedGradients(lin, x, opts);
      for (let i = 0; i < 3; i++) expect(ig.attributions[i]).toBeCloseTo(wRaw[i]! * (x[i]! - b[i]!), 12);
      expect(ig.baselineValue).toBeCloseTo(mlpForward(lin, b), 14);
      expect(ig.value).toBeCloseTo(mlpForward(lin, x), 14);
    }
    // Default baseline = the training mean: w_i (x_i - mean_i) = (1 * 2, -0.25 * -4, 1 * 1) = (2, 1, 1).
    expect(Array.from(integratedGradients(lin, x).attributions)).toEqual([2, 1, 1]);
  });

  it("a logistic model's attributions follow the closed form w_i (x_i - b_i) (p1 - p0) / (m1 - m0)", () => {
    // margin m = x0 - 2 x1; from b = (0, 0) (m0 = 0) to x = (1, 0.5)... choose x = (2, 0.25): m1 = 1.5.
    const logit = network([2, 1], [1, -2, 0], "relu", "sigmoid");
    const ig = integratedGradients(logit, [2, 0.25]);
    const p1 = 1 / (1 + Math.exp(-1.5));
    const scale = (p1 - 0.5) / 1.5;
    expect(ig.attributions[0]).toBeCloseTo(2 * scale, 14);
    expect(ig.attributions[1]).toBeCloseTo(-0.5 * scale, 14);
    expect(ig.gap).toBeCloseTo(0, 14);
    // In margin space the same model is linear: attributions are exactly w_i x_i.
    const m = integratedGradients(logit, [2, 0.25], { space: "margin" });
    expect(Array.from(m.attributions)).toEqual([2, -0.5]);
  });

  it("a 1-unit ReLU path that switches on half way is integrated exactly", () => {
    // h = relu(x0 - 1), f = 2 h. From 0 to 3: the unit is off on [0, 1/3], on after; f(3) = 4.
    // Exact IG = 4 (completeness); the trapezoid rule with 2 steps puts the knot mid-interval and gets 3.
    const net = network([1, 1, 1], [1, -1, 2, 0], "relu", "linear");
    const exact = integratedGradients(net, [3]);
    expect(exact.method).toBe("exact");
    expect(exact.steps).toBe(2);
    expect(exact.attributions[0]).toBeCloseTo(4, 14);
    const trap = integratedGradients(net, [3], { method: "trapezoid", steps: 2 });
    // Gradient samples at a = 0, 0.5, 1 are 0, 2, 2: integral ~ (0/2 + 2 + 2/2) / 2 = 1.5, times 3 = 4.5.
    expect(trap.attributions[0]).toBeCloseTo(4.5, 14);
    expect(trap.gap).toBeCloseTo(-0.5, 14);
  });

  it("a feature the model ignores gets zero, and x = baseline gives all zeros", () => {
    // The second input has all-zero outgoing weights (the paper's "dummy" axiom).
    const net = network(
      [2, 3, 1],
      [0.7, 0, -0.4, 0, 1.1, 0, 0.2, 0.1, -0.3, 1, -2, 0.5, 0.1],
      "tanh",
      "sigmoid",
    );
    net.layers[0]!.W.set([0, 0, 0], 3);
    const ig = integratedGradients(net, [1.5, -3]);
    expect(Math.abs(ig.attributions[1]!)).toBe(0);
    const same = integratedGradients(net, [1.5, -3], { baseline: [1.5, -3] });
    expect(Array.from(same.attributions, Math.abs)).toEqual([0, 0]);
  });

  it("rejects bad options with coded errors", () => {
    const net = network([2, 2, 1], [0.3, -0.2, 0.5], "tanh", "sigmoid");
    expect(() => integratedGradients(net, [1, 2], { steps: 0 })).toThrow(IgOptionsError);
    expect(() => integratedGradients(net, [1, 2], { method: "exact" })).toThrow(/ReLU/);
    expect(() => integratedGradients(net, [1, 2], { baseline: [1] })).toThrow(/baseline has 1 features/);
  });
});

/**
 * Uniform numbers on a 1/1000 grid in [min, max]. fc.double's bias towards tiny magnitudes (1e-300 ...)
 * yields near-zero networks on which a broken gradient mask still passed, so the bias is switched off.
 */
const coarse = (min: number, max: number) =>
  fc.noBias(fc.integer({ min: min * 1000, max: max * 1000 })).map((v) => v / 1000);

const netArb = (activation: Activation) =>
  fc
    .record({
      d: fc.integer({ min: 1, max: 5 }),
      h1: fc.integer({ min: 1, max: 12 }),
      h2: fc.integer({ min: 0, max: 8 }),
      weights: fc.array(coarse(-2, 2), { minLength: 7, maxLength: 7 * 13 }),
      sigmoidOut: fc.boolean(),
      xs: fc.array(coarse(-3, 3), { minLength: 10, maxLength: 10 }),
    })
    .map(({ d, h1, h2, weights, sigmoidOut, xs }) => {
      const widths = h2 > 0 ? [d, h1, h2, 1] : [d, h1, 1];
      const net = network(widths, weights, activation, sigmoidOut ? "sigmoid" : "linear");
      return { net, x: xs.slice(0, d), b: xs.slice(5, 5 + d) };
    });

describe("integratedGradients: properties", () => {
  it("completeness: exact IG on ReLU networks sums to f(x) - f(b) within 1% (in fact ~1e-12)", () => {
    fc.assert(
      fc.property(netArb("relu"), ({ net, x, b }) => {
        const ig = integratedGradients(net, x, { baseline: b });
        const delta = mlpForward(net, x) - mlpForward(net, b);
        let sum = 0;
        for (const a of ig.attributions) sum += a;
        expect(Math.abs(sum - delta)).toBeLessThanOrEqual(0.01 * Math.abs(delta) + 1e-12);
        expect(Math.abs(sum - delta)).toBeLessThanOrEqual(1e-9 * (1 + Math.abs(delta)));
      }),
      { numRuns: 200 },
    );
  });

  it("completeness: trapezoid IG on tanh networks (refined from 64 steps) sums to f(x) - f(b) within 1%", () => {
    fc.assert(
      fc.property(netArb("tanh"), ({ net, x, b }) => {
        const ig = integratedGradients(net, x, { baseline: b, refineTo: 0.01, maxSteps: 4096 });
        const delta = mlpForward(net, x) - mlpForward(net, b);
        expect(ig.value - ig.baselineValue).toBeCloseTo(delta, 12);
        // 1e-8 absolute floor: when f(x) ~ f(b) a relative bound is meaningless (refining stops at 4096 steps).
        expect(Math.abs(ig.gap)).toBeLessThanOrEqual(0.01 * Math.abs(delta) + 1e-8);
      }),
      { numRuns: 100 },
    );
  });

  it("exact IG equals the limit of the trapezoid rule (each attribution, not just the sum)", () => {
    // The trapezoid rule's error on a ReLU path is O(knots * jump / steps): over 2000 random networks of this
    // family the worst per-attribution gap at 16384 steps was 0.0025 (0.012 at 4096, i.e. ~1/steps), so
    // 0.02 leaves an 8x margin while a wrong mask or piece weight moves attributions by O(their size).
    fc.assert(
      fc.property(netArb("relu"), ({ net, x, b }) => {
        const exact = integratedGradients(net, x, { baseline: b });
        const fine = integratedGradients(net, x, { baseline: b, method: "trapezoid", steps: 16384 });
        for (let i = 0; i < x.length; i++) {
          expect(Math.abs(exact.attributions[i]! - fine.attributions[i]!)).toBeLessThan(0.02);
        }
      }),
      { numRuns: 40 },
    );
  });
});

describe("topAttributions", () => {
  it("orders by |attribution| with ties by feature order and plugs into explain()", () => {
    const attr = [0.1, -0.4, 0.4, 0, -0.05];
    const top = topAttributions(attr, 3, ["a", "b", "c", "d", "e"], [10, 20, 30, 40, 50]);
    expect(top).toEqual([
      { name: "b", value: 20, contribution: -0.4 },
      { name: "c", value: 30, contribution: 0.4 },
      { name: "a", value: 10, contribution: 0.1 },
    ]);
    expect(topAttributions(attr, 1)[0]!.name).toBe("x1");
    // base + every attribution == score, so explain() over all of them keeps its invariant.
    const all = topAttributions(attr, attr.length);
    const e = explain(0.5, all, 0.5 + 0.05);
    // explain() keeps the top 3 (b, c, a); rest = d + e = 0 - 0.05.
    expect(e.rest).toBeCloseTo(-0.05, 15);
    expect(explanationTotal(e)).toBeCloseTo(e.score, 15);
  });
});
