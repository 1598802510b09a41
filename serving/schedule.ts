/**
 * The scheduled tiers (`mastery schedule`): the daily batch and the drift/retrain checks, each run
 * under one shared lock (monitoring/locks.ts: PostgreSQL advisory lock, Redis, or a lock file) with a
 * batch_runs record (storage/batchRuns.ts: start, end, counts, status, error). A failed run is
 * recorded, reported to the configured webhooks (signed like the at-risk alerts) and returned as
 * "failed" so the CLI exits non-zero; a run that finds the lock held does nothing and says who holds
 * it. The lock is taken before the store is opened, so a second process never even opens the DuckDB
 * file that the first one is writing.
 */
import { randomBytes } from "node:crypto";
import { mkdirSync, renameSync } from "node:fs";
import { basename, join } from "node:path";
import {
  alignedAsOf,
  buildFeaturesIncremental,
  type FeatureWatermark,
  ingestWatermark,
} from "../features/incrementalFeatures.ts";
import { expandPaths, ingestPaths } from "../features/ingest.ts";
import type { Pseudonymizer } from "../features/pseudonymize.ts";
import { resolveAsOf } from "../features/windows.ts";
import type { DriftConfig } from "../monitoring/config.ts";
import type { RetrainLock } from "../monitoring/locks.ts";
import { monitorOnce } from "../monitoring/loop.ts";
import type { Registry } from "../registry/registry.ts";
import { DuckAlertStore } from "../storage/alertStore.ts";
import { BatchRunStore } from "../storage/batchRuns.ts";
import type { DuckStore } from "../storage/duckdb.ts";
import { compactionReason, compactServingTables, deltaShares } from "../storage/servingTables.ts";
import { AlertEngine, checkTimeCrossings, signWebhook, type ThresholdConfig } from "./alerts.ts";
import { runBatchSteps } from "./batchSteps.ts";
import { resolveModels, scoreBktElo } from "./learnerState.ts";
import { scoreRules } from "./ruleScoring.ts";
import { nextRunAt, SCHEDULED_JOBS, type ScheduleConfig, type ScheduledJob } from "./scheduleConfig.ts";
import { scoreServedBatch } from "./servedBatch.ts";
import { loadServedModel } from "./servedScoring.ts";

export class ScheduleError extends Error {
  readonly code = "SCHEDULE";
  constructor(message: string) {
    super(message);
    this.name = "ScheduleError";
  }
}

/** What a job works on; `close` is called when the job ends. */
export interface JobHandles {
  store: DuckStore;
  /** The model registry, for the checks job's champion reference and retraining. */
  registry?: Registry;
  close(): Promise<void>;
}

export interface RunJobOptions {
  job: ScheduledJob;
  config: ScheduleConfig;
  /** The schedule lock (config lock.key); held for the whole run. */
  lock: RetrainLock;
  open: () => Promise<JobHandles>;
  /** Needed by the batch when config batch.inbox is set. */
  pseudonymizer?: () => Pseudonymizer;
  /** The checks job's drift configuration and its retrain lock (config/drift.yaml retrain.lockKey). */
  drift?: { config: DriftConfig; retrainLock?: RetrainLock };
  /** Wall clock for the run record (tests pin it). */
  now?: () => Date;
  fetchImpl?: typeof fetch;
  /** Webhook retries: attempts and the base of the exponential backoff (default 3 x 500 ms). */
  retry?: { attempts: number; baseMs: number };
  /**
   * At-risk thresholds (config/thresholds.yaml): when given, the daily batch checks the keys whose score
   * crossed under a threshold with time alone (serving/alerts.ts checkTimeCrossings), as of the run's as-of.
   */
  thresholds?: ThresholdConfig;
}

export type JobOutcome =
  | { job: ScheduledJob; status: "ok"; runId: string; counts: Record<string, unknown>; millis: number }
  | { job: ScheduledJob; status: "failed"; runId: string | null; error: string; millis: number }
  | { job: ScheduledJob; status: "locked"; lock: string; millis: number };

/** The body POSTed to each alert webhook when a run fails. */
export interface JobFailureAlert {
  alertId: string;
  rule: "scheduled_job_failed";
  job: ScheduledJob;
  runId: string | null;
  error: string;
  failedAt: string;
}

/** Runs one job now under the lock; see the module comment. Never throws for a job's own failure. */
export async function runScheduledJob(opts: RunJobOptions): Promise<JobOutcome> {
  const now = opts.now ?? (() => new Date());
  const t0 = performance.now();
  const millis = () => Math.round(performance.now() - t0);
  let runId: string | null = null;
  let acquired = false;
  try {
    acquired = await opts.lock.tryAcquire();
    if (!acquired)
      return {
        job: opts.job,
        status: "locked",
        lock: `${opts.lock.kind} ${opts.lock.key}`,
        millis: millis(),
      };
    let handles: JobHandles | undefined;
    try {
      handles = await opts.open();
      const runs = await BatchRunStore.open(handles.store);
      runId = await runs.start(opts.job, now());
      try {
        const counts =
          opts.job === "batch"
            ? await dailyBatch(handles.store, opts, runId)
            : await checks(handles, opts, now);
        await runs.finish(runId, { at: now(), status: "ok", counts });
        return { job: opts.job, status: "ok", runId, counts, millis: millis() };
      } catch (err) {
        const error = (err as Error).message;
        await runs.finish(runId, { at: now(), status: "failed", error }).catch(() => undefined);
        throw err;
      }
    } finally {
      await handles?.close();
    }
  } catch (err) {
    const error = `${opts.job}: ${(err as Error).message}`;
    await sendFailureAlert(opts, {
      alertId: runId ?? `${now().toISOString()}-${randomBytes(4).toString("hex")}`,
      rule: "scheduled_job_failed",
      job: opts.job,
      runId,
      error,
      failedAt: now().toISOString(),
    });
    return { job: opts.job, status: "failed", runId, error, millis: millis() };
  } finally {
    if (acquired) await opts.lock.release();
  }
}

/** A watermark recorded in a run's counts ({asOf, ingestedThroughUs}), or null when absent or malformed. */
function watermarkOf(v: unknown): FeatureWatermark | null {
  const w = v as { asOf?: unknown; ingestedThroughUs?: unknown } | undefined;
  if (w === undefined || w === null || typeof w.asOf !== "string") return null;
  const asOf = new Date(w.asOf);
  if (Number.isNaN(asOf.getTime())) return null;
  const through = w.ingestedThroughUs;
  return { asOf, ingestedThroughUs: typeof through === "string" ? through : null };
}

/**
 * The previous successful batch's watermark (batch_runs counts.watermark: its as-of and the ingest mark
 * taken before it scored), or null when there is none (first run): the rule and BKT/Elo steps' "since".
 */
export async function lastFeatureWatermark(runs: BatchRunStore): Promise<FeatureWatermark | null> {
  const last = await runs.lastSuccessfulRun("batch");
  return watermarkOf(last?.counts?.watermark);
}

/**
 * The newest features snapshot's watermark, from whichever job built it (counts.featureWatermark of the
 * last successful batch or checks run; a batch recorded before that key existed built its snapshot with
 * counts.watermark), or null: then the next build is full.
 */
export async function lastSnapshotWatermark(runs: BatchRunStore): Promise<FeatureWatermark | null> {
  const found: FeatureWatermark[] = [];
  for (const job of SCHEDULED_JOBS) {
    const c = (await runs.lastSuccessfulRun(job))?.counts;
    if (c === undefined || c === null) continue;
    const w =
      watermarkOf(c.featureWatermark) ??
      (job === "batch" && c.featureWatermark === undefined && c.featureRows !== undefined
        ? watermarkOf(c.watermark)
        : null);
    if (w !== null) found.push(w);
  }
  found.sort((a, b) => b.asOf.getTime() - a.asOf.getTime());
  return found[0] ?? null;
}

/**
 * The features snapshot as of `newest` aligned to the previous snapshot's day grid, built incrementally
 * from it (features/incrementalFeatures.ts); its counts, with the watermark the next build starts from.
 */
async function buildSnapshot(
  store: DuckStore,
  newest: Date,
  full: boolean,
): Promise<Record<string, unknown>> {
  const since = full ? null : await lastSnapshotWatermark(await BatchRunStore.open(store));
  const features = await buildFeaturesIncremental(store, alignedAsOf(since, newest), since);
  const counts: Record<string, unknown> = {
    featureRows: features.rows,
    featureMode: features.mode,
    featurePairsRecomputed: features.recomputed,
    featurePairsCopied: features.copied,
    featureWatermark: {
      asOf: features.watermark.asOf.toISOString(),
      ingestedThroughUs: features.watermark.ingestedThroughUs,
    },
  };
  if (features.fullReason !== undefined) counts.featureFullReason = full ? "batch.full" : features.fullReason;
  return counts;
}

/**
 * ingest the inbox -> rule scores -> BKT/Elo state and scores (-> the features snapshot with batch.features).
 * The as-of is the previous run's plus whole days (the first as-of on that grid at or after the newest
 * event + 1 s); the watermark (as-of and max ingested_at, taken before anything is scored) is recorded in
 * this run's counts for the next one. Rule scores are refolded from raw_events only for the pairs with new
 * or late events since that watermark: a pair's rule row stores its decayed evidence, whose score read time
 * takes as of any time (models/ruleScorer.ts ruleScoreAt), so an untouched pair's stored row is already what
 * a full run would store. No score reads the features snapshot; its reader on the schedule is the drift
 * check, so by default (batch.features false) the checks job builds it (buildSnapshot), incrementally from
 * the newest snapshot whichever job built it.
 */
async function dailyBatch(
  store: DuckStore,
  opts: RunJobOptions,
  runId: string,
): Promise<Record<string, unknown>> {
  const cfg = opts.config.batch;
  const counts: Record<string, unknown> = {};
  if (cfg.inbox !== null) {
    const files = expandPaths([cfg.inbox]);
    if (files.length > 0) {
      if (opts.pseudonymizer === undefined)
        throw new ScheduleError(
          "batch.inbox is set but no pseudonymizer was given; set MASTERY_PSEUDONYM_KEY",
        );
      const report = await ingestPaths(store, files, { pseudonymizer: opts.pseudonymizer() });
      const done = join(cfg.inbox, "ingested", runId);
      mkdirSync(done, { recursive: true });
      for (const f of files) renameSync(f, join(done, basename(f)));
      counts.files = files.length;
      counts.accepted = report.total.accepted;
      counts.duplicate = report.total.duplicate;
      counts.rejected = report.total.rejected;
    } else counts.files = 0;
  }
  const since = cfg.full ? null : await lastFeatureWatermark(await BatchRunStore.open(store));
  // Incremental runs keep the first run's time of day (whole-day steps; see alignedAsOf).
  const newest = await resolveAsOf(store, "now");
  const asOf = alignedAsOf(since, newest);
  counts.asOf = asOf.toISOString();
  // The mark is taken before anything is scored: rows ingested while this run works are the next run's.
  counts.watermark = { asOf: asOf.toISOString(), ingestedThroughUs: await ingestWatermark(store) };
  // The snapshot, the rule scores and BKT/Elo read nothing another writes: serving/batchSteps.ts can run them side
  // by side (BKT/Elo writing after the rule step's commit); in sequence by default until a quiet A/B shows a gain.
  const steps = await runBatchSteps(store, {
    ...(cfg.features ? { features: (s: DuckStore) => buildSnapshot(s, newest, cfg.full) } : {}),
    // Rule rows store decayed evidence (read time moves it with time), so only pairs with new or late events move.
    rules: (s) => scoreRules(s, { asOf, ...(cfg.full ? {} : { since }) }),
    bktElo: async (s, beforeWrite) => {
      const models = await resolveModels(s, {
        ...(cfg.bktModel !== null ? { bktModelDir: cfg.bktModel } : {}),
        ...(cfg.eloModel !== null ? { eloModelDir: cfg.eloModel } : {}),
      });
      return scoreBktElo(s, models, { full: cfg.full, beforeWrite });
    },
  });
  if (steps.features !== undefined) Object.assign(counts, steps.features);
  const rules = steps.rules;
  counts.ruleScores = rules.scored;
  counts.ruleMode = rules.mode;
  if (rules.fullReason !== undefined) counts.ruleFullReason = rules.fullReason;
  const bktElo = steps.bktElo;
  if (bktElo === undefined) throw new ScheduleError("the batch's BKT/Elo step returned no result");
  counts.bktEloKeys = bktElo.keys;
  counts.bktEloEvents = bktElo.events;
  counts.stepsOverlapped = steps.overlapped;
  if (cfg.servedModel !== null) {
    // The served score last (its pairs include every stored score's); a daily run rescoring only the students
    // with rows ingested since the last run (a student's offset moves all of their topics).
    const { model, version } = loadServedModel(cfg.servedModel);
    const t0 = performance.now();
    const served = await scoreServedBatch(store, model, version, {
      asOf,
      since: cfg.full ? null : since,
    });
    counts.servedPairs = served.scored;
    counts.servedIncremental = served.incremental;
    counts.servedMillis = Math.round(performance.now() - t0);
  }
  counts.stepMillis = Object.fromEntries(
    Object.entries(steps.spans).map(([step, span]) => [step, Math.round(span.endMs - span.startMs)]),
  );
  // The day's incremental rows went to the serving tables' deltas (storage/servingTables.ts): fold them into
  // the bases when a delta passes its share of the base or its age, so reads and the next days stay cheap.
  const shares = await deltaShares(store, Date.now() * 1000);
  counts.deltaRows = Object.fromEntries(shares.map((s) => [s.table, s.deltaRows]));
  const why = compactionReason(shares, { maxShare: cfg.compactShare, maxAgeDays: cfg.compactAfterDays });
  if (why !== null) {
    const c = await compactServingTables(store);
    counts.compaction = { reason: why, folded: c.folded, millis: Math.round(c.millis) };
  }
  if (opts.thresholds !== undefined) {
    const engine = new AlertEngine(await DuckAlertStore.open(store), opts.thresholds, {
      now: () => asOf,
      ...(opts.fetchImpl !== undefined ? { fetchImpl: opts.fetchImpl } : {}),
      ...(opts.retry !== undefined ? { retry: opts.retry } : {}),
    });
    const alerts = await checkTimeCrossings(store, engine, asOf, opts.thresholds);
    counts.alertCandidates = alerts.candidates;
    counts.alertsRaised = alerts.raised.length;
  }
  return counts;
}

/** Drift and live performance; retrain through the promotion gate when they fire. */
async function checks(h: JobHandles, opts: RunJobOptions, now: () => Date): Promise<Record<string, unknown>> {
  if (opts.drift === undefined) throw new ScheduleError("the checks job needs the drift configuration");
  const asOf = await resolveAsOf(h.store, "now").catch(() => now());
  // With batch.features false the drift check's snapshots are built here, where they are read.
  const snapshot = opts.config.batch.features ? {} : await buildSnapshot(h.store, asOf, false);
  const r = await monitorOnce({
    store: h.store,
    config: opts.drift.config,
    ...(h.registry !== undefined ? { registry: h.registry } : {}),
    ...(opts.drift.retrainLock !== undefined ? { lock: opts.drift.retrainLock } : {}),
    retrain: opts.config.checks.retrain,
    now: () => asOf,
  });
  if (r.retrain?.status === "failed") throw new ScheduleError(`retrain failed: ${r.retrain.summary}`);
  return {
    asOf: asOf.toISOString(),
    ...snapshot,
    drift: r.drift?.decision.drift ?? null,
    driftError: r.driftError,
    triggers: r.triggers.length,
    retrain: r.retrain?.status ?? null,
  };
}

async function sendFailureAlert(opts: RunJobOptions, alert: JobFailureAlert): Promise<void> {
  const body = JSON.stringify(alert);
  const doFetch = opts.fetchImpl ?? fetch;
  const { attempts, baseMs } = opts.retry ?? { attempts: 3, baseMs: 500 };
  await Promise.all(
    opts.config.alert.webhooks.map(async (w) => {
      for (let attempt = 1; attempt <= attempts; attempt++) {
        try {
          const t = Math.floor(Date.now() / 1000);
          const res = await doFetch(w.url, {
            method: "POST",
            headers: {
              "content-type": "application/json",
              "idempotency-key": alert.alertId,
              "x-mastery-signature": signWebhook(w.secret, body, t),
            },
            body,
            signal: AbortSignal.timeout(10_000),
          });
          await res.arrayBuffer().catch(() => undefined);
          if (res.ok) return;
        } catch {
          // Retried below; the failure itself is already in batch_runs, stderr and the exit code.
        }
        if (attempt < attempts) await new Promise((r) => setTimeout(r, baseMs * 2 ** (attempt - 1)));
      }
    }),
  );
}

export interface Scheduler {
  /** When each job runs next. */
  next(): Record<ScheduledJob, Date>;
  /** Stops the timers and waits for a running job to end. */
  stop(): Promise<void>;
}

/**
 * Runs `run(job)` at each job's configured times until stopped. Jobs of one scheduler never overlap
 * (they queue); the lock keeps other schedulers out.
 */
export function startScheduler(opts: {
  config: ScheduleConfig;
  jobs: readonly ScheduledJob[];
  run: (job: ScheduledJob) => Promise<JobOutcome>;
  onOutcome?: (o: JobOutcome) => void;
  now?: () => Date;
}): Scheduler {
  const now = opts.now ?? (() => new Date());
  const timers = new Map<ScheduledJob, NodeJS.Timeout>();
  const nextAt = {} as Record<ScheduledJob, Date>;
  let chain: Promise<void> = Promise.resolve();
  let stopped = false;
  // A timer is measured on the monotonic clock and `now()` is the wall clock: they can disagree by a
  // millisecond or more (NTP slews, a test clock), so a timer may fire while `now()` is still before the
  // run time. Then it waits out the rest instead of running early, and the next run is computed from
  // max(now, this run's time), so one run time never runs twice.
  const arm = (job: ScheduledJob, ran?: Date) => {
    if (stopped) return;
    const current = now();
    const at = nextRunAt(opts.config[job].at, ran !== undefined && ran > current ? ran : current);
    nextAt[job] = at;
    const fire = () => {
      if (stopped) return;
      const left = at.getTime() - now().getTime();
      if (left > 0) {
        timers.set(job, setTimeout(fire, left));
        return;
      }
      chain = chain.then(async () => {
        if (stopped) return;
        const t0 = performance.now();
        let outcome: JobOutcome;
        try {
          outcome = await opts.run(job);
        } catch (err) {
          const millis = Math.round(performance.now() - t0);
          outcome = { job, status: "failed", runId: null, error: (err as Error).message, millis };
        }
        opts.onOutcome?.(outcome);
      });
      void chain.finally(() => arm(job, at));
    };
    timers.set(job, setTimeout(fire, Math.max(0, at.getTime() - current.getTime())));
  };
  for (const job of opts.jobs) arm(job);
  return {
    next: () => ({ ...nextAt }),
    stop: async () => {
      stopped = true;
      for (const t of timers.values()) clearTimeout(t);
      await chain;
    },
  };
}
