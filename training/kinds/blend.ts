import { type BlendArtifact, BlendAttemptModel } from "../blendTrain.ts";
import type { KindParams, ModelKind } from "../modelKind.ts";
import { AttemptKindModel, type AttemptKindSpec } from "./attemptKind.ts";

/**
 * The calibrated stacked blend of BKT, Elo, GBT, MLP and the rule accuracy (training/blendTrain.ts). A
 * served score is explained by the per-source contributions (Blend.explain, probability space); the
 * detail adds the per-source logits and the GBT's top 3 TreeSHAP features.
 */
const spec: AttemptKindSpec<BlendAttemptModel> = {
  kind: "blend",
  defaults: { gbt: {}, mlp: {} },
  fromArtifact: (o) => BlendAttemptModel.fromArtifact(o as unknown as BlendArtifact),
  explainRows(model, X) {
    return Array.from({ length: X.nRows }, (_, r) => {
      const e = model.explainRow(X, r);
      return {
        explanation: e.explanation,
        detail: {
          sources: e.sources,
          intercept: e.intercept,
          logit: e.logit,
          gbtTopFeatures: e.gbtTopFeatures,
        },
      };
    });
  },
};

export const blendKind: ModelKind = {
  kind: "blend",
  summary: "calibrated stacked blend of bkt, elo, gbt, mlp and rule accuracy; per-source explanations",
  scoreSource: "blend",
  servedFrom: "attempts",
  onnx: false,
  defaults: spec.defaults,
  create: (params?: KindParams) => new AttemptKindModel(spec, { ...spec.defaults, ...params }),
  fromJSON: (json) => AttemptKindModel.fromJSON(spec, json),
};
