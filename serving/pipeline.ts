import { existsSync } from "node:fs";
import { basename, extname, join } from "node:path";
import { expandPaths, type IngestReport, ingestPaths, PHASES } from "../features/ingest.ts";
import type { Pseudonymizer } from "../features/pseudonymize.ts";
import { type GenerateOptions, generateSynthetic } from "../features/synthetic/generate.ts";
import { buildFeatures, resolveAsOf } from "../features/windows.ts";
import type { ServedMastery } from "../models/servedMastery.ts";
import type { DuckStore } from "../storage/duckdb.ts";
import { RosterStore } from "../storage/rosterStore.ts";
import { type BatchSchedule, type OverlapSetting, runBatchSteps } from "./batchSteps.ts";
import { type BktEloModels, resolveModels, scoreBktElo } from "./learnerState.ts";
import { loadRosterFile, type RosterLoadReport } from "./roster.ts";
import { scoreRules } from "./ruleScoring.ts";
import { scoreServedBatch } from "./servedBatch.ts";

/**
 * The batch pipeline's steps, in order. "fit bkt-elo" resolves the BKT/Elo models (a quick fit on the store
 * unless given); features, rules and BKT/Elo may then run side by side (serving/batchSteps.ts).
 */
export const PIPELINE_STEPS = [
  "generate",
  "ingest",
  "fit bkt-elo",
  "features",
  "score rules",
  "score bkt-elo",
  "score served",
] as const;
export type PipelineStep = (typeof PIPELINE_STEPS)[number];

export interface PipelineOptions {
  store: DuckStore;
  pseudonymizer: Pseudonymizer;
  /** Synthetic data to generate into `generate.outDir`; omitted -> ingest `dataDir` as it is. */
  generate?: GenerateOptions;
  dataDir: string;
  /** Skip the BKT/Elo step (the 10M benchmark measures the rule path; BKT/Elo is timed separately). */
  skip?: readonly PipelineStep[];
  /** Progress of the current step: (step, done, total). */
  onProgress?: (step: PipelineStep, done: number, total: number) => void;
  /** Called when a step ends with its own wall time in milliseconds (overlapping steps' times overlap). */
  onStep?: (step: PipelineStep, millis: number) => void;
  /** The BKT/Elo models, or how to resolve them once ingest is done (default: resolveModels(store, {})). */
  models?: (store: DuckStore) => Promise<BktEloModels>;
  /** Replay every key in the BKT/Elo step (scoreBktElo full); default false. */
  bktEloFull?: boolean;
  /**
   * How features, rules and BKT/Elo share the cores (serving/batchSteps.ts runBatchSteps): default "auto" (each
   * one-thread write phase beside the next step's work, up to OVERLAP_MAX_EVENTS raw events; in sequence above).
   */
  overlap?: OverlapSetting;
  /**
   * The served model (`mastery train served`; serving/servedScoring.ts loadServedModel): with it the batch ends
   * with its served score for every pair (serving/servedBatch.ts, "score served"); without it that step is skipped.
   */
  served?: { model: ServedMastery; version: string };
  /** Scoring threads of the served step (default its own: serving/servedBatch.ts). */
  servedWorkers?: number;
}

export interface PipelineResult {
  events: number;
  ingest: IngestReport;
  /** The data directory's roster.csv (class lists, teacher access), when it has one. */
  roster: RosterLoadReport | null;
  asOf: Date;
  featureRows: number;
  ruleScores: number;
  bktEloKeys: number;
  /** Event rows the BKT/Elo step folded (0 when skipped). */
  bktEloEvents: number;
  /** Pairs the served step scored, by evidence kind (null without a served model). */
  served: { pairs: number; evidence: Record<string, number>; modelVersion: string } | null;
  millis: Record<PipelineStep, number>;
  /** Whether features, rules and BKT/Elo overlapped, on which schedule, and their wall time together. */
  scoring: { overlapped: boolean; schedule: BatchSchedule; millis: number };
}

/**
 * generate -> ingest (+ the directory's roster.csv) -> features as of the latest event -> rule scores -> BKT/Elo state and
 * scores -> the served score (with a served model).
 * The same functions the CLI commands call; nothing here is demo-specific. Features are built in full
 * (a backfill of everything ingested); the daily run that builds them incrementally from the previous
 * run's watermark is `mastery schedule` (serving/schedule.ts, features/incrementalFeatures.ts).
 */
export async function runPipeline(opts: PipelineOptions): Promise<PipelineResult> {
  const millis = Object.fromEntries(PIPELINE_STEPS.map((s) => [s, 0])) as Record<PipelineStep, number>;
  const skip = new Set(opts.skip ?? []);
  const timed = async <T>(step: PipelineStep, fn: () => Promise<T>): Promise<T> => {
    const t0 = performance.now();
    const out = await fn();
    millis[step] = performance.now() - t0;
    opts.onStep?.(step, millis[step]);
    return out;
  };
  const progress = (step: PipelineStep) => (done: number, total: number) =>
    opts.onProgress?.(step, done, total);

  let events = 0;
  if (opts.generate && !skip.has("generate")) {
    const gen = opts.generate;
    const manifest = await timed("generate", () =>
      generateSynthetic({
        ...gen,
        onProgress: (students) => opts.onProgress?.("generate", students, gen.students),
      }),
    );
    events = manifest.counts.events;
  }

  const files = expandPaths([opts.dataDir]).filter((f) => !/ground_truth|manifest/.test(f));
  const rosterPath = join(opts.dataDir, "roster.csv");
  let roster: RosterLoadReport | null = null;
  const ingest = await timed("ingest", async () => {
    // Event files report PHASES each (topic files none); the roster load is the last step.
    const hasRoster = existsSync(rosterPath);
    const total =
      files.filter((f) => basename(f, extname(f)).toLowerCase() !== "topics").length * PHASES.length +
      (hasRoster ? 1 : 0);
    let phases = 0;
    const report = await ingestPaths(opts.store, files, {
      pseudonymizer: opts.pseudonymizer,
      onPhase: () => progress("ingest")(++phases, total),
    });
    if (hasRoster) {
      roster = await loadRosterFile(
        await RosterStore.open(opts.store, "duckdb"),
        rosterPath,
        opts.pseudonymizer,
      );
      progress("ingest")(++phases, total);
    }
    return report;
  });
  if (events === 0) events = ingest.total.accepted;

  const asOf = await resolveAsOf(opts.store, "now");
  const withBktElo = !skip.has("score bkt-elo");
  const models = withBktElo
    ? await timed("fit bkt-elo", () => (opts.models ?? ((s) => resolveModels(s, {})))(opts.store))
    : undefined;
  const steps = await runBatchSteps(opts.store, {
    features: (store) => buildFeatures(store, asOf, { truncate: true, onProgress: progress("features") }),
    rules: (store, writesBegin) =>
      scoreRules(store, { asOf, onProgress: progress("score rules"), onWrites: writesBegin }),
    ...(models !== undefined
      ? {
          bktElo: (store: DuckStore, beforeWrite: () => Promise<void>) =>
            scoreBktElo(store, models, {
              ...(opts.bktEloFull === true ? { full: true } : {}),
              onProgress: progress("score bkt-elo"),
              beforeWrite,
            }),
        }
      : {}),
    overlap: opts.overlap ?? "auto",
    onStep: (step, span) => {
      millis[step] = span.endMs - span.startMs;
      opts.onStep?.(step, millis[step]);
    },
  });
  const rules = steps.rules;
  const bktEloKeys = steps.bktElo?.keys ?? 0;
  // The served score last: its pairs are every pair with an event or a stored score (the steps above).
  const served = opts.served;
  const servedRun =
    served !== undefined && !skip.has("score served")
      ? await timed("score served", () =>
          scoreServedBatch(opts.store, served.model, served.version, {
            asOf,
            ...(opts.servedWorkers !== undefined ? { workers: opts.servedWorkers } : {}),
            onProgress: progress("score served"),
          }),
        )
      : null;
  return {
    events,
    ingest,
    roster,
    asOf,
    featureRows: steps.features?.rows ?? 0,
    ruleScores: rules.scored,
    bktEloKeys,
    bktEloEvents: steps.bktElo?.events ?? 0,
    served:
      servedRun === null
        ? null
        : { pairs: servedRun.scored, evidence: servedRun.evidence, modelVersion: servedRun.modelVersion },
    millis,
    scoring: { overlapped: steps.overlapped, schedule: steps.schedule, millis: steps.millis },
  };
}

/** Default locations of the demo's data and store. */
export function demoPaths(root = ".mastery/demo"): { dataDir: string; dbPath: string } {
  return { dataDir: join(root, "data"), dbPath: join(root, "mastery.duckdb") };
}
