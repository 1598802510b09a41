/**
 * The retrain job: export recent quiz answers from raw_events, train a challenger of the champion's
 * kind with the existing training job, register it (registry/), point the `challenger` alias at it,
 * run the promotion gate (training/promote.ts: both models scored on the newest holdoutDays, group
 * calibration per school and grade) and promote or report why not. Every run is logged in
 * retrain_runs. `retrainWithLock` runs it under a RetrainLock so two processes never retrain at once.
 */
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Registry } from "../registry/registry.ts";
import type { DuckStore } from "../storage/duckdb.ts";
import { sqlString } from "../storage/duckdb.ts";
import { MONITORING_DDL } from "../storage/schema.ts";
import type { GateConfig } from "../training/gate.ts";
import { KIND_NAMES, kindOf, readModelJson } from "../training/kinds.ts";
import { evaluateModel, registryMetrics } from "../training/modelKind.ts";
import { promoteWithGate } from "../training/promote.ts";
import { loadResponses, type ResponseColumns } from "../training/responses.ts";
import type { DriftConfig } from "./config.ts";
import { sqlTimestamp } from "./driftMonitor.ts";
import { type RetrainLock, withLock } from "./locks.ts";

/** Columns of the CSV files the job exports (and hands to the trainer and the gate). */
export const EXPORT_COLUMNS: ResponseColumns = {
  user: "student_key",
  skill: "topic_id",
  item: "question_id",
  correct: "correct",
  order: "ts_ms",
};

/** Trains a model of `kind` on the CSV at `data`, writing `out`/model.json. */
export type Trainer = (args: {
  kind: string;
  data: string;
  columns: ResponseColumns;
  out: string;
  /** The champion's model.json (its fit parameters and seed are reused), or null without a champion. */
  champion?: unknown;
}) => Promise<void> | void;

/** Seed of a retrain without a champion (and of champions written before model.json carried one). */
export const RETRAIN_SEED = 42;

/**
 * The default trainer, for every kind of the table (training/kinds.ts): the champion's own fit
 * parameters and seed (model.json "fitParams" / "seed"; the kind's defaults without a champion), fitted
 * on the exported window with KindModel.fit, written as model.json.
 */
export const defaultTrainer: Trainer = async ({ kind, data, columns, out, champion }) => {
  const k = kindOf(kind);
  const champ = champion === undefined || champion === null ? undefined : k.fromJSON(champion);
  const log = loadResponses(data, columns);
  const model = await k
    .create(champ?.params ?? k.defaults)
    .fit(log, { seed: champ?.seed ?? RETRAIN_SEED, threads: 1 });
  mkdirSync(out, { recursive: true });
  writeFileSync(`${out}/model.json`, `${JSON.stringify(model.toJSON())}\n`);
};

export class RetrainError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = "RetrainError";
  }
}

export interface RetrainContext {
  store: DuckStore;
  registry: Registry;
  config: DriftConfig;
  /** Scratch directory for exported CSVs and the trained model (removed afterwards). */
  workDir: string;
  now: Date;
  actor?: string;
  trainer?: Trainer;
  gate?: GateConfig;
  /** Kind to train when there is no champion yet (default "elo"). */
  kind?: string;
  onStage?: (stage: string, done: number, total: number) => void;
}

export interface RetrainResult {
  status: "promoted" | "rejected" | "skipped" | "failed";
  modelName: string;
  trigger: string;
  champion: number | null;
  challenger: number | null;
  trainRows: number;
  holdoutRows: number;
  /** The gate's one-line summary, or why the run was skipped / failed. */
  summary: string;
  /** Failed gate checks' reasons (empty when promoted). */
  reasons: string[];
}

/** Writes quiz answers with ts in [from, to) as CSV; returns the row count. */
export async function exportResponses(store: DuckStore, from: Date, to: Date, path: string): Promise<number> {
  const select = `SELECT student_key, topic_id, coalesce(question_id, topic_id) AS question_id,
      CAST(is_correct AS INTEGER) AS correct, epoch_ms(ts) AS ts_ms,
      coalesce(school_id, '(none)') AS school_id, coalesce(CAST(grade AS VARCHAR), '(none)') AS grade
    FROM raw_events
    WHERE type = 'quiz_attempt' AND is_correct IS NOT NULL
      AND ts >= CAST(${sqlString(sqlTimestamp(from))} AS TIMESTAMP) AND ts < CAST(${sqlString(sqlTimestamp(to))} AS TIMESTAMP)
    ORDER BY ts, event_id`;
  await store.run(`COPY (${select}) TO ${sqlString(path)} (HEADER, DELIMITER ',')`);
  const r = await store.one<{ n: bigint }>(`SELECT count(*) AS n FROM (${select})`);
  return Number(r?.n ?? 0n);
}

async function logRun(store: DuckStore, started: Date, finished: Date, r: RetrainResult): Promise<void> {
  for (const ddl of MONITORING_DDL) await store.run(ddl);
  await store.run(
    "INSERT INTO retrain_runs VALUES (CAST($s AS TIMESTAMP), CAST($f AS TIMESTAMP), $m, $t, $st, $cv, $ch, $d)",
    {
      s: sqlTimestamp(started),
      f: sqlTimestamp(finished),
      m: r.modelName,
      t: r.trigger,
      st: r.status,
      cv: r.champion,
      ch: r.challenger,
      d: JSON.stringify({
        summary: r.summary,
        reasons: r.reasons,
        trainRows: r.trainRows,
        holdoutRows: r.holdoutRows,
      }),
    },
  );
}

/** One retrain run (no lock; see retrainWithLock). */
export async function retrain(ctx: RetrainContext, trigger: string): Promise<RetrainResult> {
  const started = new Date();
  const cfg = ctx.config.retrain;
  const name = cfg.model;
  const stage = ctx.onStage ?? (() => {});
  const day = 86_400_000;
  const holdoutFrom = new Date(ctx.now.getTime() - cfg.holdoutDays * day);
  const trainFrom = new Date(holdoutFrom.getTime() - cfg.trainDays * day);
  const base: Omit<RetrainResult, "status" | "summary" | "reasons"> = {
    modelName: name,
    trigger,
    champion: null,
    challenger: null,
    trainRows: 0,
    holdoutRows: 0,
  };
  const dir = join(ctx.workDir, `retrain-${process.pid}-${Date.now()}`);
  mkdirSync(dir, { recursive: true });
  let result: RetrainResult;
  try {
    base.champion = (await ctx.registry.store.aliasTarget(name, "champion")) ?? null;
    const kind =
      base.champion === null
        ? (ctx.kind ?? "elo")
        : ((await ctx.registry.store.getVersion(name, base.champion))?.kind ?? ctx.kind ?? "elo");
    stage("export", 0, 4);
    const trainCsv = join(dir, "train.csv");
    const holdoutCsv = join(dir, "holdout.csv");
    base.trainRows = await exportResponses(ctx.store, trainFrom, holdoutFrom, trainCsv);
    base.holdoutRows = await exportResponses(ctx.store, holdoutFrom, ctx.now, holdoutCsv);
    if (base.trainRows === 0 || base.holdoutRows === 0)
      throw new RetrainError(
        "NO_DATA",
        `no quiz answers to ${base.trainRows === 0 ? "train on" : "hold out"} (train ${trainFrom.toISOString()} .. ${holdoutFrom.toISOString()}: ${base.trainRows} rows; holdout .. ${ctx.now.toISOString()}: ${base.holdoutRows} rows)`,
      );
    stage("train", 1, 4);
    const out = join(dir, "model");
    const champion =
      base.champion === null
        ? null
        : readModelJson(await ctx.registry.materialize(name, base.champion, join(dir, "champion")));
    await (ctx.trainer ?? defaultTrainer)({ kind, data: trainCsv, columns: EXPORT_COLUMNS, out, champion });
    stage("register", 2, 4);
    // Holdout metrics recorded with the version (the gate scores the same holdout below).
    let metrics: { [key: string]: number } | undefined;
    if (KIND_NAMES.includes(kind)) {
      const holdout = loadResponses(holdoutCsv, EXPORT_COLUMNS);
      metrics = registryMetrics(evaluateModel(kindOf(kind).fromJSON(readModelJson(out)), holdout));
    }
    const v = await ctx.registry.register({
      name,
      dir: out,
      data: { from: trainFrom.toISOString(), to: holdoutFrom.toISOString(), rows: base.trainRows },
      ...(metrics !== undefined ? { metrics } : {}),
      ...(base.champion !== null ? { parent: String(base.champion) } : {}),
      tags: ["retrain"],
      description: `retrained on ${base.trainRows} answers (${trigger})`,
      actor: ctx.actor ?? "monitor",
    });
    base.challenger = v.version;
    await ctx.registry.setAlias(name, "challenger", v.version, {
      actor: ctx.actor ?? "monitor",
      reason: `retrain: ${trigger}`,
    });
    stage("gate", 3, 4);
    const promoted = await promoteWithGate(ctx.registry, {
      name,
      challenger: v.version,
      holdout: holdoutCsv,
      columns: EXPORT_COLUMNS,
      groupColumns: ["school_id", "grade"],
      ...(ctx.gate !== undefined ? { gate: ctx.gate } : {}),
      actor: ctx.actor ?? "monitor",
    });
    const failed = promoted.decision.checks.filter((c) => !c.pass).map((c) => c.reason);
    result = {
      ...base,
      status: promoted.promoted ? "promoted" : "rejected",
      summary: promoted.decision.summary,
      reasons: failed,
    };
    stage("done", 4, 4);
  } catch (err) {
    result = { ...base, status: "failed", summary: (err as Error).message, reasons: [] };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  await logRun(ctx.store, started, new Date(), result);
  return result;
}

/** Runs the job only if `lock` is free; otherwise returns status "skipped" without doing anything. */
export async function retrainWithLock(
  lock: RetrainLock,
  ctx: RetrainContext,
  trigger: string,
): Promise<RetrainResult> {
  const r = await withLock(lock, () => retrain(ctx, trigger));
  if (r.acquired) return r.value;
  return {
    status: "skipped",
    modelName: ctx.config.retrain.model,
    trigger,
    champion: null,
    challenger: null,
    trainRows: 0,
    holdoutRows: 0,
    summary: `another process holds the retrain lock (${lock.kind} ${lock.key}); not retraining now`,
    reasons: [],
  };
}
