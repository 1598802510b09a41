import { readFileSync } from "node:fs";
import { join } from "node:path";
import { type BinaryMetrics, binaryMetrics } from "../models/metrics.ts";
import type { ResponseLog } from "./responses.ts";

/**
 * Online next-response evaluation shared by every model kind (BKT, Elo, ...).
 *
 * A model kind registers a loader that turns its model.json into an OnlinePredictor; `evaluate`
 * reads the "kind" field of model.json and calls the matching loader. Registration happens when
 * the kind's training module is imported: bin/commands/train-<kind>.ts imports it, and bin/cli.ts
 * loads every command file before parsing, so `mastery evaluate` knows every kind.
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

export type PredictorLoader = (modelJson: unknown) => OnlinePredictor;

export class EvaluateError extends Error {
  readonly code = "EVALUATE";
  constructor(message: string) {
    super(message);
    this.name = "EvaluateError";
  }
}

const loaders = new Map<string, PredictorLoader>();

/** Registers (or replaces) the loader for model.json files whose "kind" is `kind`. */
export function registerPredictor(kind: string, loader: PredictorLoader): void {
  loaders.set(kind, loader);
}

/** Kinds with a registered loader, sorted. */
export function registeredKinds(): string[] {
  return [...loaders.keys()].sort();
}

/** Builds the predictor for a parsed model.json, dispatching on its "kind" field. */
export function predictorFromJson(modelJson: unknown): OnlinePredictor {
  const kind =
    typeof modelJson === "object" && modelJson !== null && "kind" in modelJson
      ? (modelJson as { kind: unknown }).kind
      : undefined;
  if (typeof kind !== "string")
    throw new EvaluateError(
      `model.json has no string "kind" field; expected one of: ${registeredKinds().join(", ") || "(none registered)"}`,
    );
  const loader = loaders.get(kind);
  if (loader === undefined)
    throw new EvaluateError(
      `model.json has kind "${kind}" but no predictor is registered for it; registered kinds: ${
        registeredKinds().join(", ") || "(none)"
      } (import the kind's training module, which calls registerPredictor)`,
    );
  return loader(modelJson);
}

/** Reads DIR/model.json and builds its predictor. */
export function loadPredictor(modelDir: string): OnlinePredictor {
  const path = join(modelDir, "model.json");
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new EvaluateError(
      `cannot read ${path} (${(err as Error).message}); pass --model DIR where DIR holds the model.json written by "mastery train"`,
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new EvaluateError(`${path} is not valid JSON: ${(err as Error).message}`);
  }
  return predictorFromJson(json);
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
