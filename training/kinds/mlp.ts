import { calibrate } from "../../models/blend.ts";
import { integratedGradients } from "../../models/integratedGradients.ts";
import { type MlpArtifact, MlpAttemptModel, mlpInputs } from "../mlpTrain.ts";
import { type KindParams, type ModelKind, rescaledExplanation } from "../modelKind.ts";
import { AttemptKindModel, type AttemptKindSpec } from "./attemptKind.ts";
import { featureRow } from "./attemptScoring.ts";

/**
 * A small MLP on the attempt features (training/mlpTrain.ts), calibrated. A served score is explained by
 * integrated gradients of the network's logit from the training-mean baseline (models/integratedGradients.ts),
 * rescaled to probability space (base = calibrated logit at the baseline, rest makes the sum exact).
 */
const spec: AttemptKindSpec<MlpAttemptModel> = {
  kind: "mlp",
  defaults: { mlp: {} },
  fromArtifact: (o) => MlpAttemptModel.fromArtifact(o as unknown as MlpArtifact),
  explainRows(model, X) {
    const p = model.predictFeatures(X);
    const Z = mlpInputs(X);
    const net = model.mlp.fittedNetwork();
    return Array.from({ length: X.nRows }, (_, r) => {
      const ig = integratedGradients(net, featureRow(Z, r), { space: "margin" });
      return {
        explanation: rescaledExplanation(
          X.names,
          featureRow(X, r),
          ig.attributions,
          calibrate(model.calibrator, ig.baselineValue),
          p[r]!,
        ),
      };
    });
  },
};

export const mlpKind: ModelKind = {
  kind: "mlp",
  summary: "a small neural network on the attempt features, calibrated; integrated-gradients explanations",
  scoreSource: "ml",
  servedFrom: "attempts",
  onnx: true,
  defaults: spec.defaults,
  create: (params?: KindParams) => new AttemptKindModel(spec, { ...spec.defaults, ...params }),
  fromJSON: (json) => AttemptKindModel.fromJSON(spec, json),
};
