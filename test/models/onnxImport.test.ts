/**
 * Import of ONNX tree ensembles trained elsewhere: fixtures/xgboost-onnx.py trains two XGBoost 1.7 models
 * (binary:logistic and reg:squarederror, 25 trees of depth 4, NaN inputs) and writes each as an ai.onnx.ml
 * TreeEnsembleRegressor with its OWN protobuf encoder (not ours), next to XGBoost's predictions and
 * pred_contribs on 200 held-out rows. The logistic file carries covers in nodes_hitrates; the squared one has
 * none, so covers are counted on the 400 training rows (XGBoost's cover for squared loss is that row count).
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { decodeModel } from "../../models/onnx/onnxProto.ts";
import { OnnxTreeError, treeEnsembleFromOnnx } from "../../models/onnx/treeEnsembleOnnx.ts";
import { type Matrix, predictEnsembleRaw, rowMajor } from "../../models/treeEnsemble.ts";
import { treeShap } from "../../models/treeshap.ts";

interface Reference {
  margin: number[];
  prediction: number[];
  contribs: number[][];
}
interface Golden {
  nFeatures: number;
  X: (number | null)[][];
  background: (number | null)[][];
  logistic: Reference;
  squared: Reference;
}

const golden = JSON.parse(
  readFileSync(new URL("./fixtures/xgboost-onnx.json", import.meta.url), "utf8"),
) as Golden;
const fixture = (name: string): Uint8Array => readFileSync(new URL(`./fixtures/${name}`, import.meta.url));

function matrix(rows: (number | null)[][], d: number): Matrix {
  const X = new Float64Array(rows.length * d);
  rows.forEach((r, i) => {
    for (let c = 0; c < d; c++) X[i * d + c] = r[c] ?? Number.NaN;
  });
  return rowMajor(X, rows.length, d);
}

const d = golden.nFeatures;
const X = matrix(golden.X, d);
const background = matrix(golden.background, d);

function maxShapDiff(ref: Reference, phi: Float64Array, expected: number): number {
  let worst = 0;
  for (let r = 0; r < X.nRows; r++) {
    const row = ref.contribs[r]!;
    for (let c = 0; c < d; c++) worst = Math.max(worst, Math.abs(phi[r * d + c]! - row[c]!));
    worst = Math.max(worst, Math.abs(expected - row[d]!));
  }
  return worst;
}

describe("ONNX tree import (XGBoost model written by an independent encoder)", () => {
  it("logistic: margins and probabilities equal XGBoost's within 1e-5, covers from nodes_hitrates", () => {
    const imp = treeEnsembleFromOnnx(decodeModel(fixture("xgboost-logistic.onnx")));
    expect(imp.objective).toBe("logistic");
    expect(imp.coverSource).toBe("hitrates");
    expect(imp.ensemble.trees).toHaveLength(25);
    expect(imp.ensemble.nFeatures).toBe(5);
    const m = predictEnsembleRaw(imp.ensemble, X);
    for (let r = 0; r < X.nRows; r++) {
      expect(Math.abs(m[r]! - golden.logistic.margin[r]!)).toBeLessThan(1e-5);
      expect(Math.abs(1 / (1 + Math.exp(-m[r]!)) - golden.logistic.prediction[r]!)).toBeLessThan(1e-5);
    }
  });

  it("logistic: TreeSHAP on the imported trees equals XGBoost pred_contribs within 1e-5", () => {
    const imp = treeEnsembleFromOnnx(decodeModel(fixture("xgboost-logistic.onnx")));
    const { phi, expectedValue } = treeShap(imp.ensemble, X);
    expect(maxShapDiff(golden.logistic, phi, expectedValue)).toBeLessThan(1e-5);
  });

  it("squared: without covers the import asks for background rows", () => {
    expect(() => treeEnsembleFromOnnx(decodeModel(fixture("xgboost-squared.onnx")))).toThrow(OnnxTreeError);
    expect(() => treeEnsembleFromOnnx(decodeModel(fixture("xgboost-squared.onnx")))).toThrow(/background/);
  });

  it("squared: covers counted on the training rows give XGBoost's predictions and pred_contribs within 1e-5", () => {
    const imp = treeEnsembleFromOnnx(decodeModel(fixture("xgboost-squared.onnx")), background);
    expect(imp.objective).toBe("squared");
    expect(imp.coverSource).toBe("background");
    expect(imp.ensemble.trees[0]!.cover[0]).toBe(400);
    const m = predictEnsembleRaw(imp.ensemble, X);
    for (let r = 0; r < X.nRows; r++)
      expect(Math.abs(m[r]! - golden.squared.prediction[r]!)).toBeLessThan(1e-5);
    const { phi, expectedValue } = treeShap(imp.ensemble, X);
    expect(maxShapDiff(golden.squared, phi, expectedValue)).toBeLessThan(1e-5);
  });

  it("SHAP values of an imported model sum to its margin (local accuracy)", () => {
    const imp = treeEnsembleFromOnnx(decodeModel(fixture("xgboost-logistic.onnx")));
    const { phi, expectedValue } = treeShap(imp.ensemble, X);
    const m = predictEnsembleRaw(imp.ensemble, X);
    for (let r = 0; r < X.nRows; r++) {
      let s = expectedValue;
      for (let c = 0; c < d; c++) s += phi[r * d + c]!;
      expect(Math.abs(s - m[r]!)).toBeLessThan(1e-9);
    }
  });
});
