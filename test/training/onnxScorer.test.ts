/**
 * Exported models served by onnxruntime-node agree with the TypeScript models on thousands of rows:
 * GBT (float32 export: probabilities within 1e-5 on float32 rows; float64 export: margins within 1e-5 on any
 * rows), MLP (relu and tanh, log1p columns, NaN imputation) and the Platt/isotonic calibration tails.
 * The XGBoost files written by fixtures/xgboost-onnx.py also score in onnxruntime exactly as XGBoost did.
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { calibrate } from "../../models/blend.ts";
import { IsotonicCalibrator, PlattCalibrator } from "../../models/calibration.ts";
import { GradientBoostedTrees } from "../../models/gbt.ts";
import { type MlpJSON, MlpRegressor, mlpForward } from "../../models/mlp.ts";
import { mlpToOnnx } from "../../models/onnx/mlpOnnx.ts";
import { encodeModel } from "../../models/onnx/onnxProto.ts";
import { treeEnsembleToOnnx } from "../../models/onnx/treeEnsembleOnnx.ts";
import { Xoshiro128 as Prng } from "../../models/prng.ts";
import { rowMajor } from "../../models/treeEnsemble.ts";
import { OnnxScorer } from "../../training/onnxScorer.ts";

const N = 4000;
const D = 6;

/** Seeded rows; `f32` rounds every value to float32 (what the float32 ONNX input sees). 8% NaN. */
function rows(seed: number, n: number, f32: boolean): Float64Array {
  const rng = new Prng(seed);
  const X = new Float64Array(n * D);
  for (let i = 0; i < X.length; i++) {
    const v = rng.next() < 0.08 ? Number.NaN : (rng.next() * 4 - 2) * (i % D === 5 ? 50 : 1);
    X[i] = f32 ? Math.fround(v) : v;
  }
  return X;
}

function labels(X: Float64Array, n: number, rng: Prng, logistic: boolean): Float64Array {
  const y = new Float64Array(n);
  for (let r = 0; r < n; r++) {
    const a = X[r * D] ?? 0;
    const f =
      (Number.isNaN(a) ? 1 : a) * (X[r * D + 1] || 0) + Math.sin(X[r * D + 2] || 0) + 0.3 * rng.next();
    y[r] = logistic ? (f > 0.3 ? 1 : 0) : f;
  }
  return y;
}

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

describe("GBT exported to ONNX and served by onnxruntime-node", () => {
  const Xtrain = rows(1, 3000, false);
  const logistic = new GradientBoostedTrees({
    objective: "logistic",
    nRounds: 120,
    maxDepth: 5,
    seed: 3,
  }).fit(rowMajor(Xtrain, 3000, D), labels(Xtrain, 3000, new Prng(2), true));

  it("float32 export: probabilities within 1e-5 and margins within 1e-4 on 4000 float32 rows", async () => {
    const X = rows(9, N, true);
    const platt = new PlattCalibrator(-0.9, 0.15);
    const scorer = await OnnxScorer.load(
      encodeModel(treeEnsembleToOnnx(logistic, { objective: "logistic", calibrator: platt.toJSON() })),
    );
    expect(scorer.inputType).toBe("float32");
    const { outputs } = await scorer.score(Float32Array.from(X), N, D);
    const M = rowMajor(X, N, D);
    const margin = logistic.predictRaw(M);
    expect(maxDiff(outputs.score!, logistic.predict(M))).toBeLessThan(1e-5);
    // Float32 summation of 120 leaves: the margin carries ~1e-6..1e-5 of rounding, never a flipped split.
    expect(maxDiff(outputs.margin!, margin)).toBeLessThan(1e-4);
    expect(
      maxDiff(
        outputs.calibrated!,
        margin.map((m) => calibrate(platt, m)),
      ),
    ).toBeLessThan(1e-5);
  });

  it("float64 export: margins within 1e-5 on 4000 rows that are NOT float32 values", async () => {
    const X = rows(11, N, false);
    const scorer = await OnnxScorer.load(
      encodeModel(treeEnsembleToOnnx(logistic, { objective: "logistic", precision: "float64" })),
    );
    expect(scorer.inputType).toBe("float64");
    const { outputs } = await scorer.score(X, N, D);
    const M = rowMajor(X, N, D);
    expect(maxDiff(outputs.margin!, logistic.predictRaw(M))).toBeLessThan(1e-5);
    expect(maxDiff(outputs.score!, logistic.predict(M))).toBeLessThan(1e-5);
  });

  it("squared loss with an isotonic tail: predictions and calibrated values within 1e-5", async () => {
    const y = labels(Xtrain, 3000, new Prng(5), false);
    const reg = new GradientBoostedTrees({ objective: "squared", nRounds: 60, maxDepth: 4 }).fit(
      rowMajor(Xtrain, 3000, D),
      y,
    );
    const iso = new IsotonicCalibrator([-1, -0.2, 0.5, 1.5, 2.5], [0.05, 0.2, 0.5, 0.7, 0.97]);
    const X = rows(12, N, true);
    const scorer = await OnnxScorer.load(
      encodeModel(treeEnsembleToOnnx(reg, { objective: "squared", calibrator: iso.toJSON() })),
    );
    const { outputs } = await scorer.score(Float32Array.from(X), N, D);
    const pred = reg.predict(rowMajor(X, N, D));
    expect(maxDiff(outputs.score!, pred)).toBeLessThan(1e-5);
    expect(
      maxDiff(
        outputs.calibrated!,
        pred.map((m) => calibrate(iso, m)),
      ),
    ).toBeLessThan(1e-5);
  });
});

function randomMlp(seed: number, activation: "relu" | "tanh"): MlpRegressor {
  const rng = new Prng(seed);
  const sizes = [D, 16, 8, 1];
  const layers = sizes.slice(1).map((nOut, i) => {
    const nIn = sizes[i]!;
    const s = 1 / Math.sqrt(nIn);
    return {
      nIn,
      nOut,
      W: Array.from({ length: nIn * nOut }, () => (rng.next() * 2 - 1) * 2 * s),
      b: Array.from({ length: nOut }, () => rng.next() - 0.5),
    };
  });
  const json: MlpJSON = {
    kind: "mlp",
    version: 1,
    params: {
      hidden: [16, 8],
      activation,
      output: "sigmoid",
      learningRate: 1e-3,
      batchSize: 32,
      maxEpochs: 1,
      patience: 1,
      minDelta: 0,
      l2: 0,
      validationFraction: 0.1,
      seed,
    },
    featureNames: null,
    activation,
    output: "sigmoid",
    mean: [0.1, -0.2, 0, 0.3, 0.5, 2],
    std: [1.1, 0.9, 1, 1.2, 0.4, 30],
    layers,
    training: null,
  };
  return MlpRegressor.fromJSON(json);
}

describe("MLP exported to ONNX (Gemm layers) and served by onnxruntime-node", () => {
  for (const activation of ["relu", "tanh"] as const) {
    it(`${activation}: outputs within 1e-5 of mlpForward on 4000 rows with NaN, log1p columns and calibration`, async () => {
      const mlp = randomMlp(activation === "relu" ? 21 : 22, activation);
      const net = mlp.network!;
      const log1p = [0, 0, 0, 0, 1, 1];
      const iso = new IsotonicCalibrator([-3, -1, 0, 2], [0.02, 0.3, 0.55, 0.9]);
      const model = mlpToOnnx(net, {
        log1pColumns: log1p,
        calibrator: iso.toJSON(),
      });
      const scorer = await OnnxScorer.load(encodeModel(model));
      const X = rows(31, N, true);
      const { outputs } = await scorer.score(Float32Array.from(X), N, D);
      const expected = new Float64Array(N);
      const expectedCal = new Float64Array(N);
      const x = new Float64Array(D);
      for (let r = 0; r < N; r++) {
        for (let c = 0; c < D; c++) {
          const v = X[r * D + c]!;
          x[c] = log1p[c] === 1 ? Math.log1p(Math.max(0, v)) : v;
        }
        expected[r] = mlpForward(net, x);
        const q = Math.min(1 - 1e-6, Math.max(1e-6, expected[r]!));
        expectedCal[r] = calibrate(iso, Math.log(q / (1 - q)));
      }
      expect(maxDiff(outputs.score!, expected)).toBeLessThan(1e-5);
      expect(maxDiff(outputs.calibrated!, expectedCal)).toBeLessThan(1e-5);
    });
  }
});

describe("XGBoost ONNX files from fixtures/xgboost-onnx.py served by onnxruntime-node", () => {
  it("predictions equal XGBoost's within 1e-5", async () => {
    const golden = JSON.parse(
      readFileSync(new URL("../models/fixtures/xgboost-onnx.json", import.meta.url), "utf8"),
    ) as { X: (number | null)[][]; logistic: { prediction: number[] }; squared: { prediction: number[] } };
    const n = golden.X.length;
    const X = Float32Array.from(golden.X.flatMap((r) => r.map((v) => v ?? Number.NaN)));
    for (const name of ["logistic", "squared"] as const) {
      const scorer = await OnnxScorer.load(
        readFileSync(new URL(`../models/fixtures/xgboost-${name}.onnx`, import.meta.url)),
      );
      const out = await scorer.scoreOutput(X, n, 5, "variable");
      expect(maxDiff(out, golden[name].prediction)).toBeLessThan(1e-5);
    }
  });
});
