import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { calibrate } from "../models/blend.ts";
import { calibratorFromJSON } from "../models/calibration.ts";
import { GradientBoostedTrees } from "../models/gbt.ts";
import { MlpRegressor } from "../models/mlp.ts";
import { mlpToOnnx } from "../models/onnx/mlpOnnx.ts";
import { decodeModel, encodeModel, type OnnxModel } from "../models/onnx/onnxProto.ts";
import {
  type ImportedTrees,
  type TreeObjective,
  treeEnsembleFromOnnx,
  treeEnsembleToOnnx,
} from "../models/onnx/treeEnsembleOnnx.ts";
import {
  type Matrix,
  predictEnsembleRaw,
  type TreeEnsemble,
  type TreeJson,
  treeFromJson,
  treeToJson,
} from "../models/treeEnsemble.ts";
import { attemptFeatures } from "./attemptFeatures.ts";
import { type GbtArtifact, GbtAttemptModel } from "./gbtTrain.ts";
import { KINDS } from "./kinds.ts";
import { isCountFeature, type MlpArtifact, MlpAttemptModel } from "./mlpTrain.ts";
import { OnnxScorer } from "./onnxScorer.ts";
import type { ResponseLog } from "./responses.ts";

/**
 * ONNX jobs on model directories:
 * - export: DIR/model.json of kind "gbt" or "mlp" (training/gbtTrain.ts, mlpTrain.ts) or "tree-ensemble"
 *   (an import) -> one .onnx file. The ONNX input is the model's raw feature row (attempt features in
 *   ATTEMPT_FEATURES order for gbt/mlp; the MLP's log1p on count columns is inside the graph); outputs are
 *   "margin", "score" (probability for logistic/sigmoid models) and "calibrated" (the artifact's calibrator).
 * - import: a .onnx TreeEnsembleRegressor -> DIR/model.json of kind "tree-ensemble" (trees + covers), which
 *   loadTreeEnsembleDir reads back for prediction and TreeSHAP.
 * - check: the exported file scored by onnxruntime against the TypeScript model on a response log.
 */

export class OnnxJobError extends Error {
  readonly code = "ONNX_JOB";
  override readonly name = "OnnxJobError";
}

/** model.json written by `mastery onnx import`. */
export interface TreeEnsembleArtifact {
  kind: "tree-ensemble";
  version: 1;
  objective: TreeObjective;
  nFeatures: number;
  baseScore: number;
  featureNames: string[] | null;
  coverSource: ImportedTrees["coverSource"];
  source: { file: string; sha256: string; producer: string };
  trees: TreeJson[];
}

type AnyArtifact = GbtArtifact | MlpArtifact | TreeEnsembleArtifact;

export function readArtifact(dir: string): AnyArtifact {
  const path = join(dir, "model.json");
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, "utf8"));
  } catch (err) {
    throw new OnnxJobError(
      `cannot read ${path}: ${(err as Error).message}; pass --model DIR holding model.json`,
    );
  }
  const kind = (json as { kind?: unknown }).kind;
  const exportable = KINDS.filter((k) => k.onnx).map((k) => k.kind);
  if (kind !== "tree-ensemble" && !exportable.includes(String(kind)))
    throw new OnnxJobError(
      `${path} has kind "${String(kind)}"; ONNX export supports ${exportable.join(", ")} and tree-ensemble (the kinds with onnx: true in training/kinds.ts)`,
    );
  return json as AnyArtifact;
}

export interface ExportOptions {
  /** Tree models only: "float32" (default, float input) or "float64" (double input, exact thresholds). */
  precision?: "float32" | "float64";
}

/** Builds the ONNX model of the artifact in `dir`. */
export function exportModelDir(dir: string, opts: ExportOptions = {}): OnnxModel {
  const a = readArtifact(dir);
  const precision = opts.precision ?? "float32";
  if (a.kind === "gbt") {
    return treeEnsembleToOnnx(GradientBoostedTrees.fromJSON(a.gbt), {
      objective: a.gbt.params.objective,
      featureNames: a.features,
      calibrator: a.calibrator,
      precision,
      metadata: { "mastery.kind": "gbt" },
    });
  }
  if (a.kind === "tree-ensemble") {
    return treeEnsembleToOnnx(loadTreeEnsembleDir(dir), {
      objective: a.objective,
      ...(a.featureNames === null ? {} : { featureNames: a.featureNames }),
      precision,
      metadata: { "mastery.kind": "tree-ensemble" },
    });
  }
  if (precision !== "float32") throw new OnnxJobError("--precision float64 applies to tree models only");
  const net = MlpRegressor.fromJSON(a.mlp).network;
  if (net === null) throw new OnnxJobError("the MLP in model.json has no weights");
  return mlpToOnnx(net, {
    featureNames: a.features,
    log1pColumns: a.features.map((f) => (isCountFeature(f) ? 1 : 0)),
    calibrator: a.calibrator,
    metadata: { "mastery.kind": "mlp" },
  });
}

/** Writes the .onnx file; returns its size in bytes. */
export function exportToFile(dir: string, out: string, opts: ExportOptions = {}): number {
  const bytes = encodeModel(exportModelDir(dir, opts));
  writeFileSync(out, bytes);
  return bytes.length;
}

/** Reads a .onnx tree ensemble and writes DIR/model.json of kind "tree-ensemble". */
export function importOnnxFile(file: string, out: string, background?: Matrix): TreeEnsembleArtifact {
  const bytes = readFileSync(file);
  const model = decodeModel(bytes);
  const imp = treeEnsembleFromOnnx(model, background);
  const artifact: TreeEnsembleArtifact = {
    kind: "tree-ensemble",
    version: 1,
    objective: imp.objective,
    nFeatures: imp.ensemble.nFeatures,
    baseScore: imp.ensemble.baseScore,
    featureNames: imp.featureNames,
    coverSource: imp.coverSource,
    source: {
      file,
      sha256: createHash("sha256").update(bytes).digest("hex"),
      producer: `${model.producerName} ${model.producerVersion}`.trim(),
    },
    trees: imp.ensemble.trees.map(treeToJson),
  };
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, "model.json"), `${JSON.stringify(artifact)}\n`);
  return artifact;
}

/** The ensemble of a "tree-ensemble" model directory (TreeSHAP explains it directly). */
export function loadTreeEnsembleDir(dir: string): TreeEnsemble & { objective: TreeObjective } {
  const a = readArtifact(dir);
  if (a.kind !== "tree-ensemble")
    throw new OnnxJobError(
      `${dir}/model.json has kind "${a.kind}", expected "tree-ensemble" (from mastery onnx import)`,
    );
  return {
    trees: a.trees.map(treeFromJson),
    baseScore: a.baseScore,
    nFeatures: a.nFeatures,
    objective: a.objective,
  };
}

export interface OutputCheck {
  output: string;
  maxAbsDiff: number;
  meanAbsDiff: number;
}

export interface CheckReport {
  kind: string;
  nRows: number;
  nFeatures: number;
  onnxInput: "float32" | "float64";
  outputs: OutputCheck[];
  /** Model evaluation time only (features excluded; the TS GBT computes margin and score in two passes). */
  tsMsPer1kRows: number;
  onnxMsPer1kRows: number;
}

/** The TypeScript model's outputs for raw feature rows (same names as the ONNX outputs). */
function tsOutputs(
  dir: string,
  log: ResponseLog,
  f32: boolean,
): { X: Matrix; out: Record<string, Float64Array>; predictMs: number } {
  const a = readArtifact(dir);
  if (a.kind === "tree-ensemble")
    throw new OnnxJobError(
      "check on a response log needs a gbt or mlp model dir (imported trees have no feature code)",
    );
  const model = a.kind === "gbt" ? GbtAttemptModel.fromArtifact(a) : MlpAttemptModel.fromArtifact(a);
  const X = attemptFeatures(log, model.context);
  // The float32 ONNX input sees float32-rounded features; score the TS model on the same values.
  if (f32) for (let i = 0; i < X.data.length; i++) X.data[i] = Math.fround(X.data[i]!);
  const cal = calibratorFromJSON(a.calibrator);
  const t0 = performance.now();
  if (model instanceof GbtAttemptModel) {
    const margin = predictEnsembleRaw(model.gbt, X);
    const score = model.gbt.predict(X);
    const calibrated = margin.map((m) => calibrate(cal, m));
    return { X, out: { margin, score, calibrated }, predictMs: performance.now() - t0 };
  }
  const score = model.mlp.predict({ ...X, data: mlpLog1p(X.data, X.names, X.nRows) });
  const calibrated = model.predictFeatures(X);
  return { X, out: { score, calibrated }, predictMs: performance.now() - t0 };
}

function mlpLog1p(data: Float64Array, names: readonly string[], n: number): Float64Array {
  const out = Float64Array.from(data);
  names.forEach((name, c) => {
    if (!isCountFeature(name)) return;
    for (let r = 0; r < n; r++) out[c * n + r] = Math.log1p(Math.max(0, out[c * n + r]!));
  });
  return out;
}

/** Scores `log` with the model dir and the .onnx file; reports the largest differences per output. */
export async function checkOnnx(dir: string, onnxFile: string, log: ResponseLog): Promise<CheckReport> {
  const scorer = await OnnxScorer.load(onnxFile);
  const f32 = scorer.inputType === "float32";
  const { X, out, predictMs: tsMs } = tsOutputs(dir, log, f32);
  const n = X.nRows;
  const d = X.nCols;
  const rows = f32 ? new Float32Array(n * d) : new Float64Array(n * d);
  for (let r = 0; r < n; r++) for (let c = 0; c < d; c++) rows[r * d + c] = X.data[c * n + r]!;
  const t1 = performance.now();
  const onnx = await scorer.score(rows, n, d);
  const onnxMs = performance.now() - t1;
  await scorer.close();
  const outputs: OutputCheck[] = [];
  for (const [name, ref] of Object.entries(out)) {
    const got = onnx.outputs[name];
    if (got === undefined) continue;
    let max = 0;
    let sum = 0;
    for (let i = 0; i < n; i++) {
      const diff = Math.abs(got[i]! - ref[i]!);
      max = Math.max(max, diff);
      sum += diff;
    }
    outputs.push({ output: name, maxAbsDiff: max, meanAbsDiff: n > 0 ? sum / n : 0 });
  }
  return {
    kind: readArtifact(dir).kind,
    nRows: n,
    nFeatures: d,
    onnxInput: scorer.inputType,
    outputs,
    tsMsPer1kRows: n > 0 ? (tsMs * 1000) / n : 0,
    onnxMsPer1kRows: n > 0 ? (onnxMs * 1000) / n : 0,
  };
}
