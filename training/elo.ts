import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Elo, type EloFitProgress, type EloModelJson } from "../models/elo.ts";
import { loadResponses, type ReadOptions, type ResponseColumns, type ResponseLog } from "./responses.ts";

/**
 * Training job for the Elo model: load a response log, fit the K function and the item
 * difficulties (models/elo.ts), write DIR/model.json. Importing this module registers the "elo"
 * kind with the online evaluator, so `mastery evaluate --model DIR` can read what it writes.
 */

export interface TrainEloOptions {
  data: string;
  columns: ResponseColumns;
  out: string;
  sep?: string;
  seed?: number;
  /** Budget of training replays for the K search (default: the model's, 150). */
  maxEvaluations?: number;
  onProgress?: (p: EloFitProgress) => void;
  /** Skip policy and row report for the data file. */
  read?: ReadOptions;
}

/** model.json as written: the model's own JSON plus where it came from. */
export interface EloArtifact extends EloModelJson {
  data: { file: string; columns: ResponseColumns; rows: number; skipped: number };
  seed: number;
  fitSeconds: number;
}

export interface TrainEloResult {
  model: Elo;
  artifact: EloArtifact;
  modelPath: string;
}

/** Fits Elo on a loaded log; returns the model and the seconds the fit took. */
export function fitElo(
  log: ResponseLog,
  opts: Pick<TrainEloOptions, "seed" | "maxEvaluations" | "onProgress"> = {},
): { model: Elo; fitSeconds: number } {
  const started = performance.now();
  const model = new Elo({
    seed: opts.seed ?? 0,
    ...(opts.maxEvaluations !== undefined ? { maxEvaluations: opts.maxEvaluations } : {}),
    ...(opts.onProgress !== undefined ? { onProgress: opts.onProgress } : {}),
  }).fit(log);
  return { model, fitSeconds: (performance.now() - started) / 1000 };
}

export function trainElo(opts: TrainEloOptions): TrainEloResult {
  const log = loadResponses(opts.data, opts.columns, opts.sep, opts.read);
  const { model, fitSeconds } = fitElo(log, opts);
  const artifact: EloArtifact = {
    ...model.toJSON(),
    data: { file: opts.data, columns: opts.columns, rows: log.n, skipped: log.skipped },
    seed: opts.seed ?? 0,
    fitSeconds,
  };
  mkdirSync(opts.out, { recursive: true });
  const modelPath = join(opts.out, "model.json");
  writeFileSync(modelPath, `${JSON.stringify(artifact, null, 1)}\n`);
  return { model, artifact, modelPath };
}
