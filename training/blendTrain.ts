import { readFileSync } from "node:fs";
import { join } from "node:path";
import { BKT } from "../models/bkt.ts";
import {
  Blend,
  type BlendExplanation,
  type BlendJson,
  chooseCalibrator,
  crossFitLogits,
  logit,
  StackedLogistic,
} from "../models/blend.ts";
import type { CalibratorJSON } from "../models/calibration.ts";
import { Elo } from "../models/elo.ts";
import type { GbtJson, GbtParams } from "../models/gbt.ts";
import { type BinaryMetrics, binaryMetrics } from "../models/metrics.ts";
import type { MlpJSON, MlpParams } from "../models/mlp.ts";
import { rowMajor } from "../models/treeEnsemble.ts";
import { treeShap } from "../models/treeshap.ts";
import {
  type AttemptContext,
  type AttemptContextJson,
  type AttemptFeatureMatrix,
  attemptFeatureNames,
  attemptFeatures,
  contextFromJson,
  contextToJson,
  featureColumn,
} from "./attemptFeatures.ts";
import {
  checkFeatures,
  fitGbtStage,
  type GbtArtifact,
  GbtAttemptModel,
  type GbtStage,
  pickLabels,
  writeArtifact,
} from "./gbtTrain.ts";
import { fitMlpStage, type MlpArtifact, MlpAttemptModel, type MlpStage } from "./mlpTrain.ts";
import { loadResponses, type ReadOptions, type ResponseColumns, type ResponseLog } from "./responses.ts";
import {
  buildAttemptTrainingSet,
  selectRows,
  TrainingSetError,
  type TrainingSplit,
  trainingSplit,
} from "./trainingSet.ts";

/**
 * The blend: a stacked logistic regression (models/blend.ts) over
 *   [logit BKT P(correct), logit Elo P(correct), GBT margin, logit MLP output, logit rule accuracy]
 * fitted on the validation students (whom the GBT and MLP did not train on), then calibrated. The calibrator
 * is fitted on out-of-fold stacking logits (the validation students split into groups), and Platt vs isotonic
 * is chosen by cross-validated log-loss across those groups.
 *
 * This module also runs the three response-log jobs (`mastery train gbt|mlp|blend`): load, fit BKT and Elo
 * (or load them), build the out-of-fold training set, split off the validation students, fit, write model.json.
 */

export const BLEND_SOURCES = ["bkt", "elo", "gbt", "mlp", "rule"] as const;

/** Row-major n x 5 stacking inputs from the attempt features and the GBT / MLP outputs. */
export function blendInputs(
  X: AttemptFeatureMatrix,
  gbtMargin: Float64Array,
  mlpLogit: Float64Array,
): Float64Array {
  const n = X.nRows;
  const bkt = featureColumn(X, "bkt_p_correct");
  const elo = featureColumn(X, "elo_p_correct");
  const rule = featureColumn(X, "rule_accuracy");
  const out = new Float64Array(n * BLEND_SOURCES.length);
  for (let i = 0; i < n; i++) {
    const o = i * BLEND_SOURCES.length;
    out[o] = logit(bkt[i]!);
    out[o + 1] = logit(elo[i]!);
    out[o + 2] = gbtMargin[i]!;
    out[o + 3] = mlpLogit[i]!;
    out[o + 4] = logit(rule[i]!);
  }
  return out;
}

export interface BlendStage {
  blend: Blend;
  cvLogloss: { platt: number; isotonic: number };
  /** Validation metrics of each source alone (its raw probability) and of the blend (out-of-fold logits, calibrated). */
  validMetrics: Record<string, BinaryMetrics>;
}

export function fitBlendStage(
  X: AttemptFeatureMatrix,
  y: Uint8Array,
  split: TrainingSplit,
  gbt: GbtStage,
  mlp: MlpStage,
): BlendStage {
  const Xv = selectRows(X, split.validRows);
  const yv = pickLabels(y, split.validRows);
  const inputs = blendInputs(Xv, gbt.validMargin, mlp.validLogit);
  const names = [...BLEND_SOURCES];
  const oof = crossFitLogits(inputs, yv, names, split.validGroup, split.nGroups);
  const choice = chooseCalibrator(oof, yv, split.validGroup, split.nGroups);
  const stacking = StackedLogistic.fit(inputs, yv, names);
  const blend = new Blend(stacking, choice.calibrator);
  const d = names.length;
  const validMetrics: Record<string, BinaryMetrics> = {};
  names.forEach((name, j) => {
    const p = new Float64Array(yv.length);
    for (let i = 0; i < p.length; i++) p[i] = 1 / (1 + Math.exp(-inputs[i * d + j]!));
    validMetrics[name] = binaryMetrics(yv, p);
  });
  validMetrics.blend_oof = binaryMetrics(
    yv,
    oof.map((z) => choice.calibrator.transform(z)),
  );
  return { blend, cvLogloss: choice.cvLogloss, validMetrics };
}

export interface BlendArtifact {
  kind: "blend";
  version: 1;
  features: string[];
  context: AttemptContextJson;
  gbt: GbtJson;
  gbtCalibrator: CalibratorJSON;
  mlp: MlpJSON;
  mlpCalibrator: CalibratorJSON;
  blend: BlendJson;
  training: Record<string, unknown>;
}

export interface GbtFeatureAttribution {
  name: string;
  value: number;
  /** TreeSHAP value in GBT-margin units. */
  shap: number;
  /** shap times the GBT's stacking weight: its share of the blend logit. */
  blendLogit: number;
}

export interface BlendPredictionExplanation extends BlendExplanation {
  /** Top 3 features behind the GBT source by |TreeSHAP| (Lundberg et al. 2018). */
  gbtTopFeatures: GbtFeatureAttribution[];
  /** E[GBT margin] over the training covers. */
  gbtExpectedValue: number;
  /** Sum of the SHAP values of the other features. */
  gbtRest: number;
  /** gbtExpectedValue + top SHAP values + gbtRest (TreeSHAP local accuracy). */
  gbtMargin: number;
}

/** The blend as an online predictor and explainer. */
export class BlendAttemptModel {
  constructor(
    readonly context: AttemptContext,
    readonly gbt: GbtAttemptModel,
    readonly mlp: MlpAttemptModel,
    readonly blend: Blend,
  ) {}

  inputs(X: AttemptFeatureMatrix): Float64Array {
    return blendInputs(X, this.gbt.gbt.predictRaw(X), this.mlp.logits(X));
  }

  predictFeatures(X: AttemptFeatureMatrix): Float64Array {
    const inputs = this.inputs(X);
    const d = BLEND_SOURCES.length;
    const out = new Float64Array(X.nRows);
    for (let i = 0; i < out.length; i++) out[i] = this.blend.predict(inputs.subarray(i * d, (i + 1) * d));
    return out;
  }

  predictLog(log: ResponseLog): Float64Array {
    return this.predictFeatures(attemptFeatures(log, this.context));
  }

  /** Explanation of row `row` of the feature matrix. */
  explainRow(X: AttemptFeatureMatrix, row: number, top = 3): BlendPredictionExplanation {
    const one = selectRows(X, [row]);
    const d = BLEND_SOURCES.length;
    const inputs = this.inputs(one).subarray(0, d);
    const e = this.blend.explain(inputs, top);
    const x = new Float64Array(X.nCols);
    for (let c = 0; c < X.nCols; c++) x[c] = one.data[c]!;
    const shap = treeShap(this.gbt.gbt, rowMajor(x, 1, X.nCols));
    const wGbt = this.blend.stacking.weights[BLEND_SOURCES.indexOf("gbt")]!;
    const order = Array.from({ length: X.nCols }, (_, c) => c).sort(
      (a, b) => Math.abs(shap.phi[b]!) - Math.abs(shap.phi[a]!) || a - b,
    );
    const gbtTopFeatures = order.slice(0, top).map((c) => ({
      name: X.names[c]!,
      value: x[c]!,
      shap: shap.phi[c]!,
      blendLogit: wGbt * shap.phi[c]!,
    }));
    let gbtRest = 0;
    for (const c of order.slice(top)) gbtRest += shap.phi[c]!;
    return {
      ...e,
      gbtTopFeatures,
      gbtExpectedValue: shap.expectedValue,
      gbtRest,
      gbtMargin: inputs[BLEND_SOURCES.indexOf("gbt")]!,
    };
  }

  static fromArtifact(a: BlendArtifact): BlendAttemptModel {
    checkFeatures(a.features, "blend", a.context.time === true);
    const context = contextFromJson(a.context);
    const blend = Blend.fromJSON(a.blend);
    const gbt = GbtAttemptModel.fromArtifact({
      kind: "gbt",
      version: 1,
      features: a.features,
      context: a.context,
      gbt: a.gbt,
      calibrator: a.gbtCalibrator,
      training: {},
    });
    const mlp = MlpAttemptModel.fromArtifact({
      kind: "mlp",
      version: 1,
      features: a.features,
      context: a.context,
      mlp: a.mlp,
      calibrator: a.mlpCalibrator,
      training: {},
    });
    return new BlendAttemptModel(context, gbt, mlp, blend);
  }
}

// ---------------------------------------------------------------------------------------------------------
// The jobs.

export type AttemptModelKind = "gbt" | "mlp" | "blend";

export interface TrainAttemptModelOptions {
  kind: AttemptModelKind;
  data: string;
  columns: ResponseColumns;
  out: string;
  sep?: string;
  seed?: number;
  folds?: number;
  /** Directories holding a BKT / Elo model.json to use instead of fitting them. */
  bktModel?: string;
  eloModel?: string;
  threads?: number;
  gbt?: Partial<GbtParams>;
  mlp?: Partial<MlpParams>;
  /** Progress per stage: (stage, done, total). */
  onProgress?: (stage: string, done: number, total: number) => void;
  /** Skip policy and row report for the data file. */
  read?: ReadOptions;
}

export interface TrainAttemptModelResult {
  modelPath: string;
  summary: Record<string, unknown>;
  model: GbtAttemptModel | MlpAttemptModel | BlendAttemptModel;
}

function readModelJson(dir: string, what: string): unknown {
  const path = join(dir, "model.json");
  try {
    return JSON.parse(readFileSync(path, "utf8"));
  } catch (err) {
    throw new TrainingSetError(
      `--${what}-model: cannot read ${path} (${(err as Error).message}); pass a directory written by "mastery train ${what}"`,
    );
  }
}

export async function trainAttemptModel(opts: TrainAttemptModelOptions): Promise<TrainAttemptModelResult> {
  const log = loadResponses(opts.data, opts.columns, opts.sep, opts.read);
  const bkt = opts.bktModel !== undefined ? BKT.fromJSON(readModelJson(opts.bktModel, "bkt")) : undefined;
  const elo = opts.eloModel !== undefined ? Elo.fromJSON(readModelJson(opts.eloModel, "elo")) : undefined;
  const fitted = await fitAttemptModel(log, {
    ...opts,
    ...(bkt !== undefined ? { bkt } : {}),
    ...(elo !== undefined ? { elo } : {}),
    dataInfo: { file: opts.data, columns: opts.columns, skipped: "skipped" in log ? log.skipped : 0 },
  });
  const modelPath = writeArtifact(opts.out, fitted.artifact);
  return { modelPath, summary: { model: modelPath, ...fitted.summary }, model: fitted.model };
}

export interface FitAttemptModelOptions
  extends Omit<
    TrainAttemptModelOptions,
    "data" | "columns" | "out" | "sep" | "read" | "bktModel" | "eloModel"
  > {
  /** BKT / Elo models to use instead of fitting them out of fold. */
  bkt?: BKT;
  elo?: Elo;
  /** Where the log came from, recorded in model.json's "training.data". */
  dataInfo?: Record<string, unknown>;
}

/** Fits a gbt / mlp / blend model on a loaded log: the artifact (model.json) and the online model. */
export async function fitAttemptModel(
  log: ResponseLog,
  opts: FitAttemptModelOptions,
): Promise<{
  artifact: GbtArtifact | MlpArtifact | BlendArtifact;
  model: GbtAttemptModel | MlpAttemptModel | BlendAttemptModel;
  summary: Record<string, unknown>;
}> {
  const started = performance.now();
  const seed = opts.seed ?? 42;
  const progress = opts.onProgress ?? (() => {});
  const { bkt, elo } = opts;
  const set = await buildAttemptTrainingSet(log, {
    seed,
    ...(opts.folds !== undefined ? { folds: opts.folds } : {}),
    ...(bkt !== undefined ? { bkt } : {}),
    ...(elo !== undefined ? { elo } : {}),
    ...(opts.threads !== undefined ? { threads: opts.threads } : {}),
    onStage: progress,
  });
  const split = trainingSplit(log, set, { seed });
  const gbtParams = { seed, nThreads: opts.threads ?? 2, ...opts.gbt };
  const mlpParams = { seed, ...opts.mlp };
  const data = {
    ...opts.dataInfo,
    rows: log.n,
    students: log.userNames.length,
    trainRows: split.trainRows.length,
    validRows: split.validRows.length,
  };
  const context = contextToJson(set.context);
  const features = [...attemptFeatureNames(set.context)];

  let gbt: GbtStage | undefined;
  let mlp: MlpStage | undefined;
  if (opts.kind !== "mlp")
    gbt = fitGbtStage(set, split, gbtParams, (r, total) => progress("gbt rounds", r + 1, total));
  if (opts.kind !== "gbt")
    mlp = await fitMlpStage(set, split, mlpParams, (e, total) => progress("mlp epochs", e, total));

  let artifact: GbtArtifact | MlpArtifact | BlendArtifact;
  let model: GbtAttemptModel | MlpAttemptModel | BlendAttemptModel;
  const summary: Record<string, unknown> = { kind: opts.kind, rows: log.n, features: features.length };
  if (opts.kind === "gbt" && gbt !== undefined) {
    const training = {
      data,
      seed,
      trees: gbt.gbt.trees.length,
      calibrator: gbt.calibrator.kind,
      cvLogloss: gbt.cvLogloss,
      valid: gbt.validMetrics,
      fitSeconds: (performance.now() - started) / 1000,
    };
    artifact = {
      kind: "gbt",
      version: 1,
      features,
      context,
      gbt: gbt.gbt.toJSON(),
      calibrator: gbt.calibrator.toJSON(),
      training,
    };
    model = new GbtAttemptModel(set.context, gbt.gbt, gbt.calibrator);
    Object.assign(summary, {
      trees: training.trees,
      calibrator: training.calibrator,
      valid: gbt.validMetrics,
    });
  } else if (opts.kind === "mlp" && mlp !== undefined) {
    const training = {
      data,
      seed,
      epochs: mlp.mlp.training?.epochsRun,
      calibrator: mlp.calibrator.kind,
      cvLogloss: mlp.cvLogloss,
      valid: mlp.validMetrics,
      fitSeconds: (performance.now() - started) / 1000,
    };
    artifact = {
      kind: "mlp",
      version: 1,
      features,
      context,
      mlp: mlp.mlp.toJSON(),
      calibrator: mlp.calibrator.toJSON(),
      training,
    };
    model = new MlpAttemptModel(set.context, mlp.mlp, mlp.calibrator);
    Object.assign(summary, {
      epochs: training.epochs,
      calibrator: training.calibrator,
      valid: mlp.validMetrics,
    });
  } else if (gbt !== undefined && mlp !== undefined) {
    const b = fitBlendStage(set.X, set.y, split, gbt, mlp);
    const training = {
      data,
      seed,
      trees: gbt.gbt.trees.length,
      epochs: mlp.mlp.training?.epochsRun,
      weights: Object.fromEntries(BLEND_SOURCES.map((s, j) => [s, b.blend.stacking.weights[j]!])),
      intercept: b.blend.stacking.intercept,
      calibrator: b.blend.calibrator.kind,
      cvLogloss: b.cvLogloss,
      valid: b.validMetrics,
      fitSeconds: (performance.now() - started) / 1000,
    };
    artifact = {
      kind: "blend",
      version: 1,
      features,
      context,
      gbt: gbt.gbt.toJSON(),
      gbtCalibrator: gbt.calibrator.toJSON(),
      mlp: mlp.mlp.toJSON(),
      mlpCalibrator: mlp.calibrator.toJSON(),
      blend: b.blend.toJSON(),
      training,
    };
    model = new BlendAttemptModel(
      set.context,
      new GbtAttemptModel(set.context, gbt.gbt, gbt.calibrator),
      new MlpAttemptModel(set.context, mlp.mlp, mlp.calibrator),
      b.blend,
    );
    Object.assign(summary, {
      weights: training.weights,
      calibrator: training.calibrator,
      validAuc: Object.fromEntries(Object.entries(b.validMetrics).map(([k, v]) => [k, v.auc])),
    });
  } else {
    throw new TrainingSetError(`unknown model kind "${opts.kind}"`);
  }
  summary.fitSeconds = (performance.now() - started) / 1000;
  return { artifact, model, summary };
}
