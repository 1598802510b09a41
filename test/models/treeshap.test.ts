import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { GradientBoostedTrees } from "../../models/gbt.ts";
import { allocTree, rowMajor, type Tree, type TreeEnsemble } from "../../models/treeEnsemble.ts";
import { expectedValue, treeShap, treeShapBruteForce } from "../../models/treeshap.ts";

/** A random tree spec: a leaf value, or a split with a positive leaf cover at the bottom. */
type Spec =
  | { leaf: true; value: number; cover: number }
  | { leaf: false; feature: number; threshold: number; defaultLeft: boolean; l: Spec; r: Spec };

function specArb(nFeatures: number, depth: number): fc.Arbitrary<Spec> {
  const leaf = fc.record({
    leaf: fc.constant(true as const),
    value: fc.double({ min: -5, max: 5, noNaN: true }),
    cover: fc.double({ min: 0.05, max: 20, noNaN: true }),
  });
  if (depth === 0) return leaf;
  const split = fc.record({
    leaf: fc.constant(false as const),
    feature: fc.integer({ min: 0, max: nFeatures - 1 }),
    // Thresholds on a small grid so that the same feature re-split on a path is common.
    threshold: fc.integer({ min: -3, max: 3 }).map((t) => t / 2),
    defaultLeft: fc.boolean(),
    l: specArb(nFeatures, depth - 1),
    r: specArb(nFeatures, depth - 1),
  });
  return fc.oneof({ weight: 1, arbitrary: leaf }, { weight: 3, arbitrary: split });
}

/** Flattens a spec into a Tree; an internal node's cover is the sum of its children's (consistent covers). */
function toTree(spec: Spec): Tree {
  const nodes: Spec[] = [];
  const count = (s: Spec): number => (s.leaf ? 1 : 1 + count(s.l) + count(s.r));
  const t = allocTree(count(spec));
  let next = 0;
  const place = (s: Spec): [number, number] => {
    const id = next++;
    nodes.push(s);
    if (s.leaf) {
      t.value[id] = s.value;
      t.cover[id] = s.cover;
      return [id, s.cover];
    }
    const [l, cl] = place(s.l);
    const [r, cr] = place(s.r);
    t.feature[id] = s.feature;
    t.threshold[id] = s.threshold;
    t.defaultLeft[id] = s.defaultLeft ? 1 : 0;
    t.left[id] = l;
    t.right[id] = r;
    t.cover[id] = cl + cr;
    t.value[id] = 0;
    return [id, cl + cr];
  };
  place(spec);
  return t;
}

const ensembleArb = fc.integer({ min: 1, max: 6 }).chain((nFeatures) =>
  fc.record({
    nFeatures: fc.constant(nFeatures),
    specs: fc.array(specArb(nFeatures, 4), { minLength: 1, maxLength: 3 }),
    baseScore: fc.double({ min: -2, max: 2, noNaN: true }),
    // Values on the threshold grid (ties exercise "x < t"), off it, and missing.
    x: fc.array(
      fc.oneof(
        fc.integer({ min: -4, max: 4 }).map((v) => v / 2),
        fc.double({ min: -3, max: 3, noNaN: true }),
        fc.constant(Number.NaN),
      ),
      { minLength: nFeatures, maxLength: nFeatures },
    ),
  }),
);

function phiOf(ens: TreeEnsemble, x: number[]): { phi: Float64Array; bias: number } {
  const res = treeShap(ens, rowMajor(Float64Array.from(x), 1, ens.nFeatures));
  return { phi: res.phi, bias: res.expectedValue };
}

describe("treeShap", () => {
  it("matches the hand-computed values of a stump", () => {
    // f(x) = x0 < 0.5 ? 1 : 3, covers 1 (left) and 3 (right): E[f] = (1*1 + 3*3)/4 = 2.5.
    const t = allocTree(3);
    t.feature[0] = 0;
    t.threshold[0] = 0.5;
    t.left[0] = 1;
    t.right[0] = 2;
    t.value[1] = 1;
    t.value[2] = 3;
    t.cover.set([4, 1, 3]);
    const ens = { trees: [t], baseScore: 0.25, nFeatures: 2 };
    const { phi, bias } = phiOf(ens, [0.2, 9]);
    expect(bias).toBeCloseTo(2.75, 15);
    expect(phi[0]).toBeCloseTo(1 - 2.5, 15);
    expect(phi[1]).toBe(0);
  });

  it("matches the hand-computed values of an AND tree (the paper's Fig. 1 style example)", () => {
    // f = 10 if x0 >= 0 and x1 >= 0 else 0, each split 50/50 by cover. At x = (1, 1):
    // v({}) = 2.5, v({0}) = v({1}) = 5, v({0,1}) = 10, so phi0 = phi1 = (2.5 + 5) / 2 = 3.75.
    const t = allocTree(5);
    t.feature.set([0, -1, 1, -1, -1]);
    t.threshold.set([0, 0, 0, 0, 0]);
    t.left.set([1, -1, 3, -1, -1]);
    t.right.set([2, -1, 4, -1, -1]);
    t.value.set([0, 0, 0, 0, 10]);
    t.cover.set([4, 2, 2, 1, 1]);
    const { phi, bias } = phiOf({ trees: [t], baseScore: 0, nFeatures: 2 }, [1, 1]);
    expect(bias).toBeCloseTo(2.5, 14);
    expect(phi[0]).toBeCloseTo(3.75, 14);
    expect(phi[1]).toBeCloseTo(3.75, 14);
  });

  it("equals brute-force Shapley enumeration on random trees and ensembles (1e-9)", () => {
    fc.assert(
      fc.property(ensembleArb, ({ nFeatures, specs, baseScore, x }) => {
        const ens: TreeEnsemble = { trees: specs.map(toTree), baseScore, nFeatures };
        const { phi, bias } = phiOf(ens, x);
        const brute = treeShapBruteForce(ens, x);
        for (let i = 0; i < nFeatures; i++) expect(Math.abs(phi[i]! - brute[i]!)).toBeLessThan(1e-9);
        expect(Math.abs(bias - expectedValue(ens))).toBeLessThan(1e-12);
      }),
      { numRuns: 500, seed: 20180212 },
    );
  });

  it("is locally accurate on a trained ensemble: bias + sum(phi) equals the raw margin", () => {
    const n = 400;
    const d = 5;
    const X = new Float64Array(n * d);
    const y = new Float64Array(n);
    let s = 7;
    const rnd = (): number => {
      s = (s * 16807) % 2147483647;
      return s / 2147483647;
    };
    for (let r = 0; r < n; r++) {
      for (let c = 0; c < d; c++) X[r * d + c] = rnd() < 0.1 ? Number.NaN : rnd() * 4 - 2;
      // Column 4 is constant: no tree can split on it.
      X[r * d + 4] = 1;
      const x0 = X[r * d]!;
      const x1 = X[r * d + 1]!;
      y[r] = (Number.isNaN(x0) ? 1 : x0) * (Number.isNaN(x1) ? -1 : x1) + rnd() > 0.2 ? 1 : 0;
    }
    const M = rowMajor(X, n, d);
    const model = new GradientBoostedTrees({ objective: "logistic", nRounds: 30, maxDepth: 4 }).fit(M, y);
    const raw = model.predictRaw(M);
    const { phi, expectedValue: bias } = treeShap(model, M);
    let maxErr = 0;
    for (let r = 0; r < n; r++) {
      let total = bias;
      for (let c = 0; c < d; c++) total += phi[r * d + c]!;
      maxErr = Math.max(maxErr, Math.abs(total - raw[r]!));
      expect(phi[r * d + 4]).toBe(0);
    }
    expect(maxErr).toBeLessThan(1e-10);
    // The trained trees do use the informative features.
    let used = 0;
    for (let r = 0; r < n; r++) used += Math.abs(phi[r * d]!);
    expect(used).toBeGreaterThan(0);
  });

  it("gives 0 to a feature that no tree splits on, in random ensembles", () => {
    fc.assert(
      fc.property(ensembleArb, ({ nFeatures, specs, baseScore, x }) => {
        const ens: TreeEnsemble = { trees: specs.map(toTree), baseScore, nFeatures: nFeatures + 1 };
        const { phi } = phiOf(ens, [...x, 0.5]);
        expect(phi[nFeatures]).toBe(0);
      }),
      { numRuns: 100, seed: 7 },
    );
  });
});
