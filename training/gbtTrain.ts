import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { calibrate, chooseCalibrator } from "../models/blend.ts";
import { type Calibrator, type CalibratorJSON, calibratorFromJSON } from "../models/calibration.ts";
import { type GbtJson, type GbtParams, GradientBoostedTrees } from "../models/gbt.ts";
import { type BinaryMetrics, binaryMetrics } from "../models/metrics.ts";
import {
  type AttemptContext,
  type AttemptContextJson,
  type AttemptFeatureMatrix,
  attemptFeatureNames,
  attemptFeatures,
  contextFromJson,
} from "./attemptFeatures.ts";
import { gbtThreads } from "./gbtThreads.ts";
import type { ResponseLog } from "./responses.ts";
import { type AttemptTrainingSet, selectRows, TrainingSetError, type TrainingSplit } from "./trainingSet.ts";

/**
 * The GBT job on a response log: gradient-boosted trees (logistic loss, models/gbt.ts) on the attempt features
 * of training/attemptFeatures.ts, early-stopped on a validation fold of whole students, then calibrated on
 * that fold (Platt or isotonic, chosen by cross-validated log-loss across its students).
 */

export const GBT_DEFAULTS: Partial<GbtParams> = {
  objective: "logistic",
  nRounds: 600,
  learningRate: 0.05,
  maxDepth: 6,
  maxLeaves: 48,
  lambda: 1,
  minChildWeight: 20,
  subsample: 0.8,
  maxBins: 128,
  earlyStoppingRounds: 40,
};

export interface GbtStage {
  gbt: GradientBoostedTrees;
  calibrator: Calibrator;
  cvLogloss: { platt: number; isotonic: number };
  /** Raw margins of the validation rows. */
  validMargin: Float64Array;
  validMetrics: BinaryMetrics;
  fitSeconds: number;
}

/** Fits the GBT on the training part of `set` and calibrates it on the validation students. */
export function fitGbtStage(
  set: AttemptTrainingSet,
  split: TrainingSplit,
  params: Partial<GbtParams> = {},
  onRound?: (round: number, nRounds: number) => void,
): GbtStage {
  const started = performance.now();
  const p = { ...GBT_DEFAULTS, ...params };
  const Xt = selectRows(set.X, split.trainRows);
  const Xv = selectRows(set.X, split.validRows);
  const yt = pickLabels(set.y, split.trainRows);
  const yv = pickLabels(set.y, split.validRows);
  const gbt = new GradientBoostedTrees(p).fit(Xt, yt, {
    validation: { X: Xv, y: yv },
    onRound: (r) => onRound?.(r, p.nRounds ?? 600),
    threads: gbtThreads,
  });
  const validMargin = gbt.predictRaw(Xv);
  const choice = chooseCalibrator(validMargin, yv, split.validGroup, split.nGroups);
  const pv = validMargin.map((m) => calibrate(choice.calibrator, m));
  return {
    gbt,
    calibrator: choice.calibrator,
    cvLogloss: choice.cvLogloss,
    validMargin,
    validMetrics: binaryMetrics(yv, pv),
    fitSeconds: (performance.now() - started) / 1000,
  };
}

export function pickLabels(y: Uint8Array, rows: Int32Array): Float64Array {
  const out = new Float64Array(rows.length);
  for (let q = 0; q < rows.length; q++) out[q] = y[rows[q]!]!;
  return out;
}

export interface GbtArtifact {
  kind: "gbt";
  version: 1;
  features: string[];
  context: AttemptContextJson;
  gbt: GbtJson;
  calibrator: CalibratorJSON;
  training: Record<string, unknown>;
}

/** Online predictor of a GBT artifact: features from each student's earlier rows, then margin, then calibration. */
export class GbtAttemptModel {
  constructor(
    readonly context: AttemptContext,
    readonly gbt: GradientBoostedTrees,
    readonly calibrator: Calibrator,
  ) {}

  predictFeatures(X: AttemptFeatureMatrix): Float64Array {
    const m = this.gbt.predictRaw(X);
    for (let i = 0; i < m.length; i++) m[i] = calibrate(this.calibrator, m[i]!);
    return m;
  }

  predictLog(log: ResponseLog): Float64Array {
    return this.predictFeatures(attemptFeatures(log, this.context));
  }

  static fromArtifact(a: GbtArtifact): GbtAttemptModel {
    checkFeatures(a.features, "gbt", a.context.time === true);
    return new GbtAttemptModel(
      contextFromJson(a.context),
      GradientBoostedTrees.fromJSON(a.gbt),
      calibratorFromJSON(a.calibrator),
    );
  }
}

/** A model.json written by another version of the feature code cannot be read safely. */
export function checkFeatures(features: readonly string[], kind: string, time = false): void {
  const want = attemptFeatureNames({ time });
  if (features.length !== want.length || features.some((f, i) => f !== want[i]))
    throw new TrainingSetError(
      `${kind} model.json lists ${features.length} features that differ from this code's ${want.length} attempt features${time ? " (with time)" : ""}; retrain the model with this version`,
    );
}

export function writeArtifact(out: string, artifact: object): string {
  mkdirSync(out, { recursive: true });
  const path = join(out, "model.json");
  writeFileSync(path, `${JSON.stringify(artifact)}\n`);
  return path;
}
