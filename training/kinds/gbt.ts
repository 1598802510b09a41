import { calibrate } from "../../models/blend.ts";
import { rowMajor } from "../../models/treeEnsemble.ts";
import { treeShap } from "../../models/treeshap.ts";
import { type GbtArtifact, GbtAttemptModel } from "../gbtTrain.ts";
import { type KindParams, type ModelKind, rescaledExplanation } from "../modelKind.ts";
import { AttemptKindModel, type AttemptKindSpec } from "./attemptKind.ts";

/**
 * Gradient-boosted trees on the attempt features (training/gbtTrain.ts), calibrated. A served score is
 * explained by the TreeSHAP values of its feature row (exact, margin space), rescaled to probability
 * space: base = calibrated E[margin], factors = the top 3 features by |SHAP|, rest = the others.
 */
const spec: AttemptKindSpec<GbtAttemptModel> = {
  kind: "gbt",
  defaults: { gbt: {} },
  fromArtifact: (o) => GbtAttemptModel.fromArtifact(o as unknown as GbtArtifact),
  explainRows(model, X) {
    const p = model.predictFeatures(X);
    const rows = new Float64Array(X.nRows * X.nCols);
    for (let r = 0; r < X.nRows; r++)
      for (let c = 0; c < X.nCols; c++) rows[r * X.nCols + c] = X.data[c * X.nRows + r]!;
    const shap = treeShap(model.gbt, rowMajor(rows, X.nRows, X.nCols));
    const base = calibrate(model.calibrator, shap.expectedValue);
    return Array.from({ length: X.nRows }, (_, r) => ({
      explanation: rescaledExplanation(
        X.names,
        rows.subarray(r * X.nCols, (r + 1) * X.nCols),
        shap.phi.subarray(r * X.nCols, (r + 1) * X.nCols),
        base,
        p[r]!,
      ),
    }));
  },
};

export const gbtKind: ModelKind = {
  kind: "gbt",
  summary: "gradient-boosted trees on the attempt features, calibrated; TreeSHAP explanations",
  scoreSource: "ml",
  servedFrom: "attempts",
  onnx: true,
  defaults: spec.defaults,
  create: (params?: KindParams) => new AttemptKindModel(spec, { ...spec.defaults, ...params }),
  fromJSON: (json) => AttemptKindModel.fromJSON(spec, json),
};
