/**
 * Golden test against the reference implementation: an XGBoost 1.7.4 model (binary:logistic, 20 trees of depth
 * 4, NaN inputs) with XGBoost's own `predict(pred_contribs=True)` and `output_margin=True` on 40 rows, generated
 * by fixtures/xgboost-treeshap.py (Debian's python3-xgboost). Our loader reads the trees into the shared
 * structure and our TreeSHAP must reproduce XGBoost's attributions. XGBoost accumulates in float32, so the
 * tolerance is 1e-6 (values are O(1)).
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { predictRowRaw, rowMajor } from "../../models/treeEnsemble.ts";
import { treeShap } from "../../models/treeshap.ts";
import { ensembleFromXgboostJson } from "../../models/xgboostTrees.ts";

interface Golden {
  model: unknown;
  X: (number | null)[][];
  contribs: number[][];
  margin: number[];
}

const golden = JSON.parse(
  readFileSync(new URL("./fixtures/xgboost-treeshap.json", import.meta.url), "utf8"),
) as Golden;

describe("TreeSHAP against XGBoost pred_contribs", () => {
  const ens = ensembleFromXgboostJson(golden.model);
  const d = ens.nFeatures;
  const n = golden.X.length;
  const X = new Float64Array(n * d);
  for (let r = 0; r < n; r++) {
    for (let c = 0; c < d; c++) {
      const v = golden.X[r]![c]!;
      X[r * d + c] = v === null ? Number.NaN : v;
    }
  }

  it("loads the XGBoost trees and reproduces its margins", () => {
    expect(ens.trees).toHaveLength(20);
    for (let r = 0; r < n; r++) {
      expect(Math.abs(predictRowRaw(ens, X.subarray(r * d, (r + 1) * d)) - golden.margin[r]!)).toBeLessThan(
        1e-5,
      );
    }
  });

  it("matches XGBoost's SHAP values and bias within 1e-6", () => {
    const { phi, expectedValue } = treeShap(ens, rowMajor(X, n, d));
    let maxDiff = 0;
    for (let r = 0; r < n; r++) {
      const ref = golden.contribs[r]!;
      for (let c = 0; c < d; c++) maxDiff = Math.max(maxDiff, Math.abs(phi[r * d + c]! - ref[c]!));
      maxDiff = Math.max(maxDiff, Math.abs(expectedValue - ref[d]!));
    }
    expect(maxDiff).toBeLessThan(1e-6);
  });
});
