/**
 * `mastery onnx import` / `export` on model directories: an XGBoost ONNX file (fixtures/xgboost-onnx.py)
 * becomes a tree-ensemble model dir that TreeSHAP explains exactly like XGBoost, and exporting that dir again
 * gives an ONNX file onnxruntime scores like XGBoost.
 */
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { rowMajor } from "../../models/treeEnsemble.ts";
import { treeShap } from "../../models/treeshap.ts";
import {
  exportToFile,
  importOnnxFile,
  loadTreeEnsembleDir,
  OnnxJobError,
} from "../../training/onnxExport.ts";
import { OnnxScorer } from "../../training/onnxScorer.ts";

const fixtures = fileURLToPath(new URL("../models/fixtures/", import.meta.url));
const golden = JSON.parse(readFileSync(join(fixtures, "xgboost-onnx.json"), "utf8")) as {
  X: (number | null)[][];
  background: (number | null)[][];
  squared: { prediction: number[]; contribs: number[][] };
};
const flat = (rows: (number | null)[][]): Float64Array =>
  Float64Array.from(rows.flatMap((r) => r.map((v) => v ?? Number.NaN)));

describe("onnx import/export of model directories", () => {
  it("import -> model dir -> TreeSHAP equals XGBoost pred_contribs; export -> onnxruntime equals XGBoost", async () => {
    const dir = mkdtempSync(join(tmpdir(), "onnx-import-"));
    const bg = rowMajor(flat(golden.background), golden.background.length, 5);
    const a = importOnnxFile(join(fixtures, "xgboost-squared.onnx"), dir, bg);
    expect(a.kind).toBe("tree-ensemble");
    expect(a.coverSource).toBe("background");
    expect(a.source.sha256).toMatch(/^[0-9a-f]{64}$/);

    const ens = loadTreeEnsembleDir(dir);
    const n = golden.X.length;
    const X = flat(golden.X);
    const { phi, expectedValue } = treeShap(ens, rowMajor(X, n, 5));
    let worst = 0;
    for (let r = 0; r < n; r++) {
      for (let c = 0; c < 5; c++)
        worst = Math.max(worst, Math.abs(phi[r * 5 + c]! - golden.squared.contribs[r]![c]!));
      worst = Math.max(worst, Math.abs(expectedValue - golden.squared.contribs[r]![5]!));
    }
    expect(worst).toBeLessThan(1e-5);

    const out = join(dir, "again.onnx");
    expect(exportToFile(dir, out)).toBeGreaterThan(1000);
    const scorer = await OnnxScorer.load(out);
    const score = await scorer.scoreOutput(Float32Array.from(X), n, 5, "score");
    for (let r = 0; r < n; r++)
      expect(Math.abs(score[r]! - golden.squared.prediction[r]!)).toBeLessThan(1e-5);
    await scorer.close();
  });

  it("refuses to export a model kind that has no ONNX form, naming the kinds it supports", () => {
    expect(() => exportToFile(join(fixtures, "nope"), "/dev/null")).toThrow(OnnxJobError);
  });
});
