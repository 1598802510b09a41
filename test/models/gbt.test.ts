import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { type GbtFitOptions, GbtInputError, GbtParamError, GradientBoostedTrees } from "../../models/gbt.ts";
import { binMatrix, binOf, MISSING_BIN } from "../../models/gbtBinning.ts";
import { auc } from "../../models/metrics.ts";
import { colMajor, type Matrix, rowMajor } from "../../models/treeEnsemble.ts";
import { acquireGbtThreads, gbtThreads, releaseGbtThreads } from "../../training/gbtThreads.ts";

/** Park-Miller generator so the test data is fixed. */
function lcg(seed: number): () => number {
  let s = seed;
  return () => {
    s = (s * 16807) % 2147483647;
    return s / 2147483647;
  };
}

function randomData(n: number, d: number, seed: number): { X: Matrix; raw: Float64Array; rnd: () => number } {
  const rnd = lcg(seed);
  const raw = new Float64Array(n * d);
  for (let i = 0; i < raw.length; i++) raw[i] = rnd() * 2 - 1;
  return { X: rowMajor(raw, n, d), raw, rnd };
}

function mse(a: Float64Array, y: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i]! - y[i]!) ** 2;
  return s / a.length;
}

describe("gbtBinning", () => {
  it("gives few distinct values one bin each, cut at the next value (XGBoost's rule)", () => {
    const X = colMajor(Float64Array.from([1, 1, 2, 4, 4, 4, Number.NaN]), 7, 1);
    const b = binMatrix(X, 10);
    const cuts = b.cuts[0]!;
    expect(Array.from(cuts.subarray(0, 2))).toEqual([2, 4]);
    expect(cuts[2]).toBeGreaterThan(4);
    // Rows are padded to 4 bytes (the histogram kernel reads codes four at a time).
    expect(b.stride).toBe(4);
    expect(Array.from(b.bins.filter((_, i) => i % 4 === 0))).toEqual([0, 0, 1, 2, 2, 2, MISSING_BIN]);
    expect(b.bins.filter((_, i) => i % 4 !== 0).every((v) => v === 0)).toBe(true);
    expect([
      binOf(cuts, 1),
      binOf(cuts, 1.5),
      binOf(cuts, 2),
      binOf(cuts, 3.9),
      binOf(cuts, 4),
      binOf(cuts, 99),
    ]).toEqual([0, 0, 1, 1, 2, 2]);
    expect(b.missingCol[0]).toBe(-1);
  });

  it("uses at most maxBins bins and maps v to bin b iff cuts[b-1] <= v < cuts[b] (the last bin takes the rest)", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.oneof(
            fc.double({ min: -1e6, max: 1e6, noNaN: true }),
            fc.integer({ min: -3, max: 3 }),
            fc.constantFrom(Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY),
          ),
          {
            minLength: 1,
            maxLength: 300,
          },
        ),
        fc.integer({ min: 2, max: 256 }),
        (values, maxBins) => {
          const X = colMajor(Float64Array.from([...values, Number.NaN]), values.length + 1, 1);
          const b = binMatrix(X, maxBins);
          const cuts = b.cuts[0]!;
          const nb = b.nBins[0]!;
          expect(nb).toBe(cuts.length);
          expect(nb).toBeLessThanOrEqual(maxBins);
          // Strictly increasing, except that +Infinity as a value is followed by the +Infinity "above max" cut.
          for (let i = 1; i < cuts.length; i++) {
            if (cuts[i] === Number.POSITIVE_INFINITY) expect(cuts[i]!).toBeGreaterThanOrEqual(cuts[i - 1]!);
            else expect(cuts[i]!).toBeGreaterThan(cuts[i - 1]!);
          }
          const s = b.stride;
          values.forEach((v, r) => {
            const bin = b.bins[r * s]!;
            if (bin > 0) expect(v).toBeGreaterThanOrEqual(cuts[bin - 1]!);
            if (bin < nb - 1) expect(v).toBeLessThan(cuts[bin]!);
            expect(bin).toBe(binOf(cuts, v));
            if (s > 1) expect(b.bins[r * s + 1]).toBe(0);
          });
          if (Number.isFinite(Math.max(...values)))
            expect(cuts[nb - 1]!).toBeGreaterThan(Math.max(...values));
          expect(b.bins[values.length * s]).toBe(MISSING_BIN);
          // Code 255 is ambiguous only with 256 value bins: then an indicator column marks missing rows.
          expect(b.missingCol[0]).toBe(nb === 256 ? 1 : -1);
          if (nb === 256) expect(b.bins[values.length * s + 1]).toBe(1);
        },
      ),
      { numRuns: 200, seed: 3 },
    );
  });

  it("bins the same on the worker threads as on one thread (also with more column groups than a task holds)", () => {
    const rnd = lcg(5);
    const n = 40;
    const d = 2100; // 263 groups of 8 columns > 255 blocks per task
    const raw = Float64Array.from({ length: n * d }, () => (rnd() < 0.02 ? Number.NaN : Math.fround(rnd())));
    const weights = Float64Array.from({ length: n }, () => 0.5 + rnd());
    const pool = acquireGbtThreads(2);
    try {
      for (const X of [rowMajor(raw, n, d), colMajor(raw, n, d)]) {
        expect(binMatrix(X, 64, weights, pool)).toEqual(binMatrix(X, 64, weights));
      }
    } finally {
      releaseGbtThreads(pool);
    }
  });

  it("reports an exception in a task instead of hanging, and does not reuse the failed pool", () => {
    const pool = acquireGbtThreads(2);
    const n = 100;
    const d = 16;
    const job = {
      data: pool.sharedF64(n * d).fill(1),
      rowLayout: true,
      nRows: n,
      nCols: d,
      weights: new Float64Array(0),
      maxBins: 16,
      codes: pool.sharedU8(n * d),
      ind: pool.sharedU8(n * d),
      cuts: pool.sharedF64(1), // too small: every block throws a RangeError
      nBins: pool.sharedI32(d),
      hasMissing: pool.sharedU8(d),
    };
    expect(() => pool.binColumns(job, 8)).toThrow(/RangeError|out of bounds|offset/i);
    expect(pool.closed).toBe(true);
    releaseGbtThreads(pool);
    const again = acquireGbtThreads(2);
    expect(again).not.toBe(pool);
    releaseGbtThreads(again);
  });

  it("keeps value bin 255 and missing apart with an indicator column (256 bins + NaN)", () => {
    const n = 2000;
    const xs = Float64Array.from({ length: n }, (_, i) => (i % 10 === 9 ? Number.NaN : i));
    const other = Float64Array.from({ length: n }, (_, i) => i % 3);
    const b = binMatrix(colMajor(Float64Array.from([...xs, ...other]), n, 2), 256);
    expect(b.nBins[0]).toBe(256);
    expect(b.nBins[1]).toBe(3);
    expect(b.missingCol).toEqual(Int32Array.from([2, -1]));
    expect(b.stride).toBe(4);
    for (let r = 0; r < n; r++) {
      const missing = Number.isNaN(xs[r]!);
      expect(b.bins[r * 4 + 2]).toBe(missing ? 1 : 0);
      if (missing) expect(b.bins[r * 4]).toBe(MISSING_BIN);
      else expect(b.bins[r * 4]).toBe(binOf(b.cuts[0]!, xs[r]!));
      expect(b.bins[r * 4 + 1]).toBe(other[r]);
      expect(b.bins[r * 4 + 3]).toBe(0);
    }
    expect(b.bins[1998 * 4]).toBe(255);
  });
});

describe("GradientBoostedTrees", () => {
  it("learns a step function exactly with squared loss (known answer)", () => {
    // y = 1 for x < 0.3, 3 otherwise: one depth-1 tree with lr 1 and lambda 0 puts the mean of each side in
    // its leaf, so predictions are exactly 1 and 3; with 8 distinct values each has its own bin and the
    // threshold is the first value of the right side (XGBoost's cut rule).
    const xs = [0.1, 0.2, 0.25, 0.29, 0.31, 0.5, 0.7, 0.9];
    const y = xs.map((x) => (x < 0.3 ? 1 : 3));
    const X = colMajor(Float64Array.from(xs), xs.length, 1);
    const m = new GradientBoostedTrees({
      nRounds: 1,
      maxDepth: 1,
      learningRate: 1,
      lambda: 0,
      minChildWeight: 0,
    });
    m.fit(X, y);
    expect(m.baseScore).toBe(2);
    const t = m.trees[0]!;
    expect(t.feature[0]).toBe(0);
    expect(t.threshold[0]).toBe(0.31);
    expect(Array.from(m.predict(X))).toEqual(y);
    expect(Array.from(t.cover)).toEqual([8, 4, 4]);
    expect(m.trainLoss).toEqual([0]);
  });

  it("shrinks leaf values by learningRate and lambda: w = -lr * G / (H + lambda)", () => {
    // Residuals at base 2 are -1 (x4) and +1 (x4): left leaf = -0.5 * (-4) / (4 + 2) = 1/3.
    const xs = [0, 1, 2, 3, 10, 11, 12, 13];
    const y = xs.map((x) => (x < 5 ? 1 : 3));
    const m = new GradientBoostedTrees({ nRounds: 1, maxDepth: 1, learningRate: 0.5, lambda: 2 });
    m.fit(colMajor(Float64Array.from(xs), 8, 1), y);
    const t = m.trees[0]!;
    expect(t.value[t.left[0]!]).toBeCloseTo(-1 / 3, 14);
    expect(t.value[t.right[0]!]).toBeCloseTo(1 / 3, 14);
  });

  it("reaches AUC ~1 with logistic loss on separable data", () => {
    const n = 2000;
    const { X, raw } = randomData(n, 4, 11);
    const y = new Float64Array(n);
    for (let r = 0; r < n; r++) y[r] = raw[r * 4]! + 0.5 * raw[r * 4 + 1]! > 0.1 ? 1 : 0;
    const m = new GradientBoostedTrees({
      objective: "logistic",
      nRounds: 60,
      maxDepth: 4,
      learningRate: 0.3,
    }).fit(X, y);
    expect(auc(y, m.predict(X))).toBeGreaterThan(0.999);
    const p = m.predict(X);
    for (const v of p) expect(v > 0 && v < 1).toBe(true);
  });

  it("never increases the training loss with more rounds (squared: exact Newton steps; logistic: lr <= 0.3)", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 1_000_000 }),
        fc.constantFrom("squared" as const, "logistic" as const),
        fc.integer({ min: 1, max: 4 }),
        fc.double({ min: 0.05, max: 0.3, noNaN: true }),
        fc.double({ min: 0, max: 5, noNaN: true }),
        (seed, objective, maxDepth, learningRate, lambda) => {
          const n = 150;
          const { X, raw, rnd } = randomData(n, 3, seed);
          const y = new Float64Array(n);
          for (let r = 0; r < n; r++) {
            const f = Math.sin(4 * raw[r * 3]!) + raw[r * 3 + 1]! * raw[r * 3 + 2]!;
            y[r] = objective === "squared" ? f + rnd() : f + rnd() - 0.5 > 0 ? 1 : 0;
          }
          const m = new GradientBoostedTrees({ objective, nRounds: 15, maxDepth, learningRate, lambda }).fit(
            X,
            y,
          );
          expect(m.trainLoss).toHaveLength(15);
          for (let i = 1; i < m.trainLoss.length; i++) {
            expect(m.trainLoss[i]!).toBeLessThanOrEqual(m.trainLoss[i - 1]! * (1 + 1e-12));
          }
        },
      ),
      { numRuns: 40, seed: 5 },
    );
  });

  it("keeps the binned training margins equal to raw-threshold predictions (also with subsampling and NaN)", () => {
    const n = 600;
    const { X, raw, rnd } = randomData(n, 3, 99);
    for (let i = 0; i < raw.length; i++) if (rnd() < 0.15) raw[i] = Number.NaN;
    const y = new Float64Array(n);
    for (let r = 0; r < n; r++) y[r] = (Number.isNaN(raw[r * 3]!) ? 2 : raw[r * 3]!) + rnd();
    const m = new GradientBoostedTrees({ nRounds: 20, maxDepth: 3, subsample: 0.6, seed: 1 }).fit(X, y);
    // trainLoss comes from margins updated through bins; mse recomputes them through thresholds.
    expect(mse(m.predictRaw(X), y)).toBeCloseTo(m.trainLoss.at(-1)!, 12);
  });

  it("learns where missing values go (NaN rows have their own label)", () => {
    const n = 400;
    const xs = new Float64Array(n);
    const y = new Float64Array(n);
    for (let r = 0; r < n; r++) {
      // Finite x: label 1 iff x >= 0.3; missing x: label 0 like the left side. A node without missing
      // values would send NaN right, so a default of "left" can only come from learning it from the NaN rows.
      xs[r] = r % 4 === 0 ? Number.NaN : (r % 97) / 97;
      y[r] = Number.isNaN(xs[r]!) ? 0 : xs[r]! >= 0.3 ? 1 : 0;
    }
    const X = colMajor(xs, n, 1);
    const m = new GradientBoostedTrees({
      objective: "logistic",
      nRounds: 30,
      maxDepth: 2,
      learningRate: 0.5,
    }).fit(X, y);
    const root = m.trees[0]!;
    expect(root.defaultLeft[0]).toBe(1);
    const p = m.predict(colMajor(Float64Array.from([Number.NaN, 0.1, 0.9]), 3, 1));
    expect(p[0]!).toBeLessThan(0.1);
    expect(p[1]!).toBeLessThan(0.1);
    expect(p[2]!).toBeGreaterThan(0.9);
  });

  it("sends NaN right at splits on features without missing training values (XGBoost's default)", () => {
    const n = 300;
    const xs = Float64Array.from({ length: n }, (_, r) => (r % 101) / 101);
    // The left side (x < 0.8) is far heavier, so "follow the heavier child" would send NaN left.
    const y = Float64Array.from(xs, (x) => (x < 0.8 ? 0 : 1));
    const m = new GradientBoostedTrees({ objective: "logistic", nRounds: 5, maxDepth: 1 }).fit(
      colMajor(xs, n, 1),
      y,
    );
    for (const t of m.trees) expect(t.defaultLeft[0]).toBe(0);
    const p = m.predict(colMajor(Float64Array.from([Number.NaN, 0.95]), 2, 1));
    expect(p[0]).toBe(p[1]);
  });

  it("splits the missing rows from all others with a threshold above the maximum, NaN right", () => {
    const n = 500;
    const xs = Float64Array.from({ length: n }, (_, r) =>
      r % 5 === 0 ? Number.NaN : ((r * 37) % 211) / 211,
    );
    const y = Float64Array.from(xs, (x) => (Number.isNaN(x) ? 1 : 0));
    const X = colMajor(xs, n, 1);
    const m = new GradientBoostedTrees({ objective: "logistic", nRounds: 1, maxDepth: 1 }).fit(X, y);
    const t = m.trees[0]!;
    const max = Math.max(...Array.from(xs).filter((x) => !Number.isNaN(x)));
    // XGBoost finds this split first as "all values left, missing right" (its forward pass) and keeps it over
    // the equal-gain mirror image "missing left" from the backward pass.
    expect(t.threshold[0]).toBe(binMatrix(X, 256).cuts[0]!.at(-1));
    expect(t.threshold[0]!).toBeGreaterThan(max);
    expect(t.defaultLeft[0]).toBe(0);
    // Base margin logit(0.2): every row has hessian 0.2 * 0.8.
    expect(t.cover[t.left[0]!]).toBeCloseTo(400 * 0.16, 9);
    expect(t.cover[t.right[0]!]).toBeCloseTo(100 * 0.16, 9);
  });

  it("stops early when the validation loss stops improving and keeps the best round's trees", () => {
    const n = 500;
    const { X, rnd } = randomData(n, 3, 4);
    const y = new Float64Array(n);
    for (let r = 0; r < n; r++) y[r] = rnd() < 0.5 ? 1 : 0; // pure noise: the model can only overfit
    const v = randomData(300, 3, 8);
    const vy = new Float64Array(300);
    for (let r = 0; r < 300; r++) vy[r] = v.rnd() < 0.5 ? 1 : 0;
    const m = new GradientBoostedTrees({
      objective: "logistic",
      nRounds: 500,
      maxDepth: 6,
      learningRate: 0.3,
      earlyStoppingRounds: 5,
    }).fit(X, y, { validation: { X: v.X, y: vy } });
    expect(m.validLoss.length).toBeLessThan(500);
    expect(m.validLoss.length).toBe(m.bestRound + 1 + 5);
    expect(m.trees).toHaveLength(m.bestRound + 1);
    const best = Math.min(...m.validLoss);
    expect(m.validLoss[m.bestRound]).toBe(best);
  });

  it("round-trips through toJSON/fromJSON with identical predictions", () => {
    const { X, raw } = randomData(300, 4, 21);
    const y = Array.from({ length: 300 }, (_, r) => raw[r * 4]! * 2 + raw[r * 4 + 3]!);
    const m = new GradientBoostedTrees({ nRounds: 10, maxDepth: 3 }).fit(X, y);
    const back = GradientBoostedTrees.fromJSON(JSON.parse(JSON.stringify(m.toJSON())));
    expect(Array.from(back.predict(X))).toEqual(Array.from(m.predict(X)));
    expect(back.params).toEqual(m.params);
  });

  it("is deterministic given the seed, and row- and column-major inputs train the same model", () => {
    const n = 300;
    const d = 3;
    const { X, raw } = randomData(n, d, 31);
    const y = Array.from({ length: n }, (_, r) => raw[r * d]! - raw[r * d + 2]!);
    const params = { nRounds: 8, maxDepth: 3, subsample: 0.7, seed: 9 };
    const a = new GradientBoostedTrees(params).fit(X, y).toJSON();
    const b = new GradientBoostedTrees(params).fit(X, y).toJSON();
    expect(b).toEqual(a);
    const cm = new Float64Array(n * d);
    for (let r = 0; r < n; r++) for (let c = 0; c < d; c++) cm[c * n + r] = raw[r * d + c]!;
    expect(new GradientBoostedTrees(params).fit(colMajor(cm, n, d), y).toJSON()).toEqual(a);
    const other = new GradientBoostedTrees({ ...params, seed: 10 }).fit(X, y).toJSON();
    expect(other.trees).not.toEqual(a.trees);
  });

  it("trains the same model with worker threads as without (histograms, partitions, gradients, margins)", () => {
    // Enough rows that the top nodes, the gradients (2 x 8192-row loss blocks) and the margin updates go
    // through the threaded paths (MIN_PARALLEL_ROWS = 4096); NaN gives 256-bin features missing indicators.
    const n = 20000;
    const d = 9;
    const { X, raw, rnd } = randomData(n, d, 77);
    for (let i = 0; i < raw.length; i++) if (rnd() < 0.05) raw[i] = Number.NaN;
    const y = Array.from({ length: n }, (_, r) => ((raw[r * d]! || 0) * (raw[r * d + 5]! || 1) > 0 ? 1 : 0));
    const params = { objective: "logistic" as const, nRounds: 12, maxDepth: 5, subsample: 0.8 };
    // The model JSON apart from nThreads: trees and per-round losses (summed per fixed row block) bit-identical.
    const fitted = (
      m: GradientBoostedTrees,
      opts: GbtFitOptions = {},
      labels: ArrayLike<number> = y,
    ): unknown => {
      const json = m.fit(X, labels, { threads: gbtThreads, ...opts }).toJSON();
      return { ...json, params: { ...json.params, nThreads: 0 } };
    };
    const serial = fitted(new GradientBoostedTrees(params));
    expect(fitted(new GradientBoostedTrees({ ...params, nThreads: 2 }))).toEqual(serial);
    const capped = { ...params, maxLeaves: 12, maxDepth: 12 };
    expect(fitted(new GradientBoostedTrees({ ...capped, nThreads: 3 }))).toEqual(
      fitted(new GradientBoostedTrees(capped)),
    );
    // All rows, row weights, and trees with more leaves than the first leaf buffer holds (64): noisy labels.
    const weights = Array.from({ length: n }, () => 0.5 + rnd());
    const noisy = Array.from({ length: n }, () => (rnd() < 0.5 ? 1 : 0));
    const deep = { objective: "logistic" as const, nRounds: 3, maxDepth: 9, minChildWeight: 0.1 };
    const deepSerial = new GradientBoostedTrees(deep);
    const deepJson = fitted(deepSerial, { weights }, noisy);
    expect(deepSerial.trees.some((t) => Array.from(t.feature).filter((f) => f < 0).length > 64)).toBe(true);
    expect(fitted(new GradientBoostedTrees({ ...deep, nThreads: 2 }), { weights }, noisy)).toEqual(deepJson);
  });

  it("respects maxDepth, maxLeaves, gamma and minChildWeight", () => {
    const { X, raw } = randomData(500, 3, 41);
    const y = Array.from({ length: 500 }, (_, r) => Math.sin(5 * raw[r * 3]!) + raw[r * 3 + 1]!);
    const leaves = (m: GradientBoostedTrees): number[] =>
      m.trees.map((t) => Array.from(t.feature).filter((f) => f < 0).length);
    const deep = new GradientBoostedTrees({ nRounds: 3, maxDepth: 3 }).fit(X, y);
    expect(Math.max(...leaves(deep))).toBe(8);
    const capped = new GradientBoostedTrees({ nRounds: 3, maxDepth: 10, maxLeaves: 5 }).fit(X, y);
    expect(leaves(capped)).toEqual([5, 5, 5]);
    const stump = new GradientBoostedTrees({ nRounds: 3, maxDepth: 3, gamma: 1e9 }).fit(X, y);
    expect(leaves(stump)).toEqual([1, 1, 1]);
    const heavy = new GradientBoostedTrees({ nRounds: 3, maxDepth: 6, minChildWeight: 200 }).fit(X, y);
    for (const t of heavy.trees)
      for (let i = 0; i < t.cover.length; i++) expect(t.cover[i]!).toBeGreaterThanOrEqual(200);
  });

  it("rejects bad parameters and inputs with a coded error naming the field", () => {
    expect(() => new GradientBoostedTrees({ learningRate: 0 })).toThrow(GbtParamError);
    expect(() => new GradientBoostedTrees({ maxBins: 300 })).toThrow(/maxBins/);
    const X = colMajor(Float64Array.from([1, 2, 3]), 3, 1);
    expect(() => new GradientBoostedTrees({ objective: "logistic" }).fit(X, [0, 1, 2])).toThrow(
      GbtInputError,
    );
    expect(() => new GradientBoostedTrees().fit(X, [0, 1])).toThrow(/y has 2 labels but X has 3 rows/);
    expect(() => new GradientBoostedTrees({ earlyStoppingRounds: 3 }).fit(X, [0, 1, 2])).toThrow(
      /validation/,
    );
    expect(() => new GradientBoostedTrees().predict(X)).toThrow(/not fitted/);
  });
});
