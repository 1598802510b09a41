import { calibrate, chooseCalibrator, logit } from "../models/blend.ts";
import { type Calibrator, type CalibratorJSON, calibratorFromJSON } from "../models/calibration.ts";
import { type BinaryMetrics, binaryMetrics } from "../models/metrics.ts";
import { type MlpJSON, type MlpParams, MlpRegressor } from "../models/mlp.ts";
import {
  type AttemptContext,
  type AttemptContextJson,
  type AttemptFeatureMatrix,
  attemptFeatures,
  contextFromJson,
} from "./attemptFeatures.ts";
import { checkFeatures, pickLabels } from "./gbtTrain.ts";
import type { ResponseLog } from "./responses.ts";
import { loadTf } from "./tfRuntime.ts";
import { type AttemptTrainingSet, selectRows, type TrainingSplit } from "./trainingSet.ts";

/**
 * The MLP job on a response log: a small tfjs-trained network (models/mlp.ts, sigmoid output, cross-entropy)
 * on the attempt features, early-stopped on the validation students, then calibrated there like the GBT.
 * Counts are heavy-tailed (hundreds of attempts next to values in [0, 1]), so every count column goes through
 * log1p before the network's own standardisation; missing values (no earlier attempt) are imputed by the
 * network with the training mean.
 */

export const MLP_DEFAULTS: Partial<MlpParams> = {
  hidden: [32, 16],
  activation: "relu",
  output: "sigmoid",
  learningRate: 2e-3,
  batchSize: 512,
  maxEpochs: 30,
  patience: 4,
  l2: 1e-5,
};

/** Columns holding counts (log1p-transformed for the network). */
export function isCountFeature(name: string): boolean {
  return /_(attempts|correct)_(5|20|all|1h|1d|7d|30d|90d)$|_count$|^item_attempts_before$|_hours_since_last$/.test(
    name,
  );
}

/** log1p on the count columns, in place on a copy. */
export function mlpInputs(X: AttemptFeatureMatrix): AttemptFeatureMatrix {
  const data = Float64Array.from(X.data);
  X.names.forEach((name, c) => {
    if (!isCountFeature(name)) return;
    const col = data.subarray(c * X.nRows, (c + 1) * X.nRows);
    for (let r = 0; r < col.length; r++) col[r] = Math.log1p(Math.max(0, col[r]!));
  });
  return { ...X, data };
}

export interface MlpStage {
  mlp: MlpRegressor;
  calibrator: Calibrator;
  cvLogloss: { platt: number; isotonic: number };
  /** Logits of the raw network outputs on the validation rows. */
  validLogit: Float64Array;
  validMetrics: BinaryMetrics;
  fitSeconds: number;
}

export async function fitMlpStage(
  set: AttemptTrainingSet,
  split: TrainingSplit,
  params: Partial<MlpParams> = {},
  onEpoch?: (epoch: number, maxEpochs: number) => void,
): Promise<MlpStage> {
  const started = performance.now();
  const Xt = mlpInputs(selectRows(set.X, split.trainRows));
  const Xv = mlpInputs(selectRows(set.X, split.validRows));
  const yv = pickLabels(set.y, split.validRows);
  const mlp = await new MlpRegressor({ ...MLP_DEFAULTS, ...params }).fit(
    Xt,
    pickLabels(set.y, split.trainRows),
    {
      validation: { X: Xv, y: yv },
      featureNames: Xt.names,
      onEpoch: (log, max) => onEpoch?.(log.epoch + 1, max),
      tf: await loadTf(),
    },
  );
  const validLogit = mlp.predict(Xv).map(logit);
  const choice = chooseCalibrator(validLogit, yv, split.validGroup, split.nGroups);
  return {
    mlp,
    calibrator: choice.calibrator,
    cvLogloss: choice.cvLogloss,
    validLogit,
    validMetrics: binaryMetrics(
      yv,
      validLogit.map((z) => calibrate(choice.calibrator, z)),
    ),
    fitSeconds: (performance.now() - started) / 1000,
  };
}

export interface MlpArtifact {
  kind: "mlp";
  version: 1;
  features: string[];
  context: AttemptContextJson;
  mlp: MlpJSON;
  calibrator: CalibratorJSON;
  training: Record<string, unknown>;
}

export class MlpAttemptModel {
  constructor(
    readonly context: AttemptContext,
    readonly mlp: MlpRegressor,
    readonly calibrator: Calibrator,
  ) {}

  /** Uncalibrated network logits for raw attempt features. */
  logits(X: AttemptFeatureMatrix): Float64Array {
    return this.mlp.predict(mlpInputs(X)).map(logit);
  }

  predictFeatures(X: AttemptFeatureMatrix): Float64Array {
    return this.logits(X).map((z) => calibrate(this.calibrator, z));
  }

  predictLog(log: ResponseLog): Float64Array {
    return this.predictFeatures(attemptFeatures(log, this.context));
  }

  static fromArtifact(a: MlpArtifact): MlpAttemptModel {
    checkFeatures(a.features, "mlp", a.context.time === true);
    return new MlpAttemptModel(
      contextFromJson(a.context),
      MlpRegressor.fromJSON(a.mlp),
      calibratorFromJSON(a.calibrator),
    );
  }
}
