import { type BinaryMetrics, binaryMetrics } from "../models/metrics.ts";
import { KIND_NAMES, loadModel, modelFromJson } from "./kinds.ts";
import type { KindModel } from "./modelKind.ts";
import type { ResponseLog } from "./responses.ts";

/**
 * Online next-response evaluation shared by every model kind. The model.json's "kind" field picks the
 * kind from the table in training/kinds.ts (no registration by import).
 */
export interface OnlinePredictor {
  kind: string;
  /**
   * For every row k of `log` (in log order), P(correct) computed ONLY from rows of the same student
   * that come before k in the log (BKT further restricts to the same skill). Never from row k itself
   * or from any later row.
   */
  predictLog(log: ResponseLog): Float64Array;
}

export class EvaluateError extends Error {
  readonly code = "EVALUATE";
  constructor(message: string) {
    super(message);
    this.name = "EvaluateError";
  }
}

/** Every kind of the table, sorted. */
export function registeredKinds(): string[] {
  return [...KIND_NAMES].sort();
}

/** The fitted model of a parsed model.json (ModelKindError when it is not a valid model of a known kind). */
export function predictorFromJson(modelJson: unknown): KindModel {
  return modelFromJson(modelJson);
}

/** Reads DIR/model.json and builds its model. */
export function loadPredictor(modelDir: string): KindModel {
  return loadModel(modelDir);
}

/** Online next-response metrics of `predictor` on `log` (AUC, RMSE, log-loss, ECE, n). */
export function evaluateOnline(predictor: OnlinePredictor, log: ResponseLog): BinaryMetrics {
  const p = predictor.predictLog(log);
  if (p.length !== log.n)
    throw new EvaluateError(
      `predictor "${predictor.kind}" returned ${p.length} predictions for ${log.n} rows`,
    );
  return binaryMetrics(log.correct, p);
}
