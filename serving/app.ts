/**
 * The Express app: `createApp(deps)` wires the store, auth, updater, alerts, cache and metrics into
 * the routes of serving/routes/ (one table, also the source of the OpenAPI document).
 * Raw student ids appear only in URLs and bodies; they are pseudonymized at once and never logged:
 * request logs carry the route pattern and the student_key.
 */

import { readFileSync } from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import express, { type Express, type NextFunction, type Request, type Response } from "express";
import { type Logger, pino } from "pino";
import { parse as parseYaml } from "yaml";
import type { ExperimentStore } from "../experiments/store.ts";
import type { TimeRange } from "../features/contractConfig.ts";
import { warmUpValidators } from "../features/contracts.ts";
import type { Pseudonymizer } from "../features/pseudonymize.ts";
import { qualityReportOrThrow } from "../features/quality.ts";
import type { MonitorLoop } from "../monitoring/loop.ts";
import type { Registry } from "../registry/registry.ts";
import { type AlertStore, DuckAlertStore } from "../storage/alertStore.ts";
import { BatchRunStore } from "../storage/batchRuns.ts";
import type { DuckStore } from "../storage/duckdb.ts";
import { DuckMasteryStore } from "../storage/masteryStore.ts";
import { DuckRawEventStore } from "../storage/rawEventStore.ts";
import { RosterStore } from "../storage/rosterStore.ts";
import { SERVING_DDL } from "../storage/schema.ts";
import { DuckStateStore } from "../storage/stateStore.ts";
import { redactErrorMessage } from "../storage/storeErrors.ts";
import { BACKEND_LABEL } from "../storage/unavailable.ts";
import { AlertEngine, loadThresholds, recoverAlertChecks, type ThresholdConfig } from "./alerts.ts";
import {
  Authenticator,
  maxTtlFromEnv,
  type Principal,
  requireAction,
  requireStudent,
  type Scope,
} from "./auth.ts";
import { type BackendEvent, BackendMonitor } from "./backendMonitor.ts";
import { BatchRunMetrics } from "./batchRunMetrics.ts";
import { BodyCache } from "./bodyCache.ts";
import { CoalescingUpdater } from "./coalescingUpdater.ts";
import { dashboardRouter, faviconRedirect } from "./dashboard/router.ts";
import { DeferredAlertChecks } from "./deferredAlertChecks.ts";
import type { IntakeDeps } from "./eventIntake.ts";
import { ExperimentArms } from "./experimentArms.ts";
import type { ScoreStore } from "./feedback.ts";
import {
  type HistoryBody,
  historyBodyBytes,
  historyBodyOf,
  historyCacheGroup,
  historyCacheKey,
} from "./historyBody.ts";
import { errorAnswer, HttpError } from "./httpError.ts";
import { masteryHitListener } from "./masteryHitPath.ts";
import { DuckMasteryReadStore, type MasteryReadStore, type TopicRow } from "./masteryReadStore.ts";
import {
  DEFAULT_SOURCE_ORDER,
  type ExperimentArm,
  historyJsonParts,
  scoreRowNeeds,
  studentMasteryJson,
  type TopicMeta,
  topicMetaOf,
} from "./masteryView.ts";
import { ServerMetrics } from "./metrics.ts";
import { DEFAULT_MODEL_NAME, MODEL_NAME_ENV, ModelScoring, servingRegistry } from "./modelScoring.ts";
import {
  MonitorMetrics,
  QualityMetrics,
  type ServingMonitorOptions,
  startServingMonitor,
} from "./qualityMetrics.ts";
import { type RateLimitConfig, rateLimiter, trustProxySetting } from "./rateLimit.ts";
import { RawMirror } from "./rawMirror.ts";
import { createRollupViews } from "./rollups.ts";
import { RosterAccess } from "./roster.ts";
import { ROUTES } from "./routes/index.ts";
import { MASTERY_ROUTE } from "./routes/mastery.ts";
import { securityHeaderList, securityHeaderSetter } from "./securityHeaders.ts";
import { type ServedBody, servedBody, servedBodyBytes } from "./servedBody.ts";
import type { SharedCacheInvalidation } from "./servingBackends.ts";
import { StoreGate } from "./storeGate.ts";
import type { BackendProbe } from "./streamStores.ts";
import { outageGuard, respondUnavailable } from "./unavailableResponse.ts";
import { alertKeys, type EventUpdater, IncrementalUpdater, streamModels } from "./updater.ts";

/** Express's application dispatch, app.handle (not in its type declarations); `next` when mounted in a parent app. */
type ExpressDispatch = (req: IncomingMessage, res: ServerResponse, next?: NextFunction) => void;

/** Longest life of a cached GET /mastery body: served scores decay at request time. */
export const SERVED_DECAY_CACHE_MS = 3_600_000;

export const DEFAULT_SERVING_CONFIG_PATH = join(
  dirname(fileURLToPath(import.meta.url)),
  "..",
  "config",
  "serving.yaml",
);

export interface ServingConfig {
  scoreSources: readonly string[];
  masteredAt: number;
  targetSuccess: number;
  maxBatch: number;
  cacheSize: number;
  /** Upper bound of the GET /mastery body cache in bytes (serving.yaml cache_max_mb). */
  cacheMaxBytes: number;
  /**
   * Upper bound of the GET /mastery/:id/:topic/history body cache in bytes (serving.yaml history_cache_max_mb;
   * 0 turns it off). Invalidated as the GET /mastery bodies are: on every write of the student.
   */
  historyCacheMaxBytes: number;
  /**
   * GET /mastery body cache TTL in PostgreSQL + Redis mode while cross-process invalidation is heard
   * (ms; serving.yaml shared_cache_ttl_s; 0: no invalidation channel, the 1 s TTL always).
   */
  sharedCacheTtlMs: number;
  /**
   * Extra DuckDB connections for concurrent GET reads on the embedded store (read_connections;
   * 0: every read queues in the StoreGate with the writes).
   */
  readConnections: number;
  /** PostgreSQL pool size of the server (pg_pool_max; MASTERY_PG_POOL_MAX overrides). */
  pgPoolMax: number;
  /**
   * Threads of `mastery serve`'s DuckDB instance (duck_threads; 0: DuckDB's default, one per core). The
   * served reads are small queries whose scheduling over several threads costs more CPU than it saves.
   */
  duckThreads: number;
  /** Request limits per caller (serving/rateLimit.ts). */
  rateLimit: RateLimitConfig;
  /**
   * Express's "trust proxy": which proxies' X-Forwarded-For names the client (trust_proxy; env
   * MASTERY_TRUST_PROXY overrides): false, true, "loopback", or a comma-separated address/CIDR list.
   */
  trustProxy: boolean | string;
  bodyLimit: string;
  /** Registry model name whose champion (or experiment arm) serves ML scores; env MASTERY_MODEL_NAME overrides. */
  modelName: string;
  /** Drift-monitor tick interval (ms; serving.yaml monitor_interval_s); `mastery serve --no-monitor` turns it off. */
  monitorIntervalMs: number;
  /** Data-quality gauges on /metrics are recomputed when older than this (ms; quality_max_age_s). */
  qualityMaxAgeMs: number;
  /**
   * Time budget of one data-quality report (ms; quality_budget_ms): GET /quality answers
   * `status: "partial"` past it, and a /metrics refresh past it keeps the last gauges.
   */
  qualityBudgetMs: number;
  /**
   * Start-up warm-up of `mastery serve` before /readyz turns 200 (serving/warmUp.ts; warm_up):
   * `rounds` passes over the hot requests of `students` stored students, stopped after `budgetMs`.
   * rounds 0: no warm-up. `minRequests`: more passes until that many requests were sent (JIT tiers).
   */
  warmUp: { rounds: number; students: number; budgetMs: number; minRequests: number };
}

export const DEFAULT_SERVING_CONFIG: ServingConfig = {
  scoreSources: DEFAULT_SOURCE_ORDER,
  masteredAt: 0.7,
  targetSuccess: 0.7,
  maxBatch: 1000,
  cacheSize: 20_000,
  cacheMaxBytes: 64 * 1024 * 1024,
  historyCacheMaxBytes: 16 * 1024 * 1024,
  sharedCacheTtlMs: 300_000,
  readConnections: 4,
  pgPoolMax: 10,
  duckThreads: 1,
  rateLimit: { windowMs: 60_000, limit: 6000, serviceLimit: 0 },
  trustProxy: false,
  bodyLimit: "5mb",
  modelName: DEFAULT_MODEL_NAME,
  monitorIntervalMs: 900_000,
  qualityMaxAgeMs: 60_000,
  qualityBudgetMs: 10_000,
  warmUp: { rounds: 3, students: 25, budgetMs: 5000, minRequests: 600 },
};

/** Reads config/serving.yaml (snake_case keys) over the defaults. */
export function loadServingConfig(path = DEFAULT_SERVING_CONFIG_PATH): ServingConfig {
  const d = (parseYaml(readFileSync(path, "utf8")) ?? {}) as Record<string, unknown>;
  const rl = (d.rate_limit ?? {}) as Record<string, unknown>;
  const wu = (d.warm_up ?? {}) as Record<string, unknown>;
  const num = (v: unknown, fallback: number, key: string): number => {
    if (v === undefined) return fallback;
    if (typeof v !== "number" || !Number.isFinite(v))
      throw new HttpError(500, "config", key, `${path}: ${key} must be a number`);
    return v;
  };
  const def = DEFAULT_SERVING_CONFIG;
  return {
    scoreSources: Array.isArray(d.score_sources) ? (d.score_sources as string[]) : def.scoreSources,
    masteredAt: num(d.mastered_at, def.masteredAt, "mastered_at"),
    targetSuccess: num(d.target_success, def.targetSuccess, "target_success"),
    maxBatch: num(d.max_batch, def.maxBatch, "max_batch"),
    cacheSize: num(d.cache_size, def.cacheSize, "cache_size"),
    cacheMaxBytes: Math.round(
      1024 * 1024 * num(d.cache_max_mb, def.cacheMaxBytes / (1024 * 1024), "cache_max_mb"),
    ),
    historyCacheMaxBytes: Math.round(
      1024 *
        1024 *
        num(d.history_cache_max_mb, def.historyCacheMaxBytes / (1024 * 1024), "history_cache_max_mb"),
    ),
    sharedCacheTtlMs: 1000 * num(d.shared_cache_ttl_s, def.sharedCacheTtlMs / 1000, "shared_cache_ttl_s"),
    readConnections: num(d.read_connections, def.readConnections, "read_connections"),
    pgPoolMax: num(d.pg_pool_max, def.pgPoolMax, "pg_pool_max"),
    duckThreads: duckThreadsSetting(d.duck_threads, def.duckThreads, path),
    rateLimit: {
      windowMs: num(rl.window_ms, def.rateLimit.windowMs, "rate_limit.window_ms"),
      limit: num(rl.limit, def.rateLimit.limit, "rate_limit.limit"),
      serviceLimit: num(rl.service_limit, def.rateLimit.serviceLimit ?? 0, "rate_limit.service_limit"),
    },
    trustProxy: trustProxySetting(process.env.MASTERY_TRUST_PROXY ?? d.trust_proxy, def.trustProxy, path),
    bodyLimit: typeof d.body_limit === "string" ? d.body_limit : def.bodyLimit,
    modelName: typeof d.model_name === "string" ? d.model_name : def.modelName,
    monitorIntervalMs: 1000 * num(d.monitor_interval_s, def.monitorIntervalMs / 1000, "monitor_interval_s"),
    qualityMaxAgeMs: 1000 * num(d.quality_max_age_s, def.qualityMaxAgeMs / 1000, "quality_max_age_s"),
    qualityBudgetMs: num(d.quality_budget_ms, def.qualityBudgetMs, "quality_budget_ms"),
    warmUp: {
      rounds: num(wu.rounds, def.warmUp.rounds, "warm_up.rounds"),
      students: num(wu.students, def.warmUp.students, "warm_up.students"),
      budgetMs: num(wu.budget_ms, def.warmUp.budgetMs, "warm_up.budget_ms"),
      minRequests: num(wu.min_requests, def.warmUp.minRequests, "warm_up.min_requests"),
    },
  };
}

/** DuckStore.open's options for `mastery serve`'s file under this config (its duck_threads). */
export const servingDuckOptions = (config: Pick<ServingConfig, "duckThreads">): { threads?: number } =>
  config.duckThreads > 0 ? { threads: config.duckThreads } : {};

/** serving.yaml duck_threads: an integer >= 0 (0: one DuckDB thread per core). */
function duckThreadsSetting(v: unknown, fallback: number, path: string): number {
  if (v === undefined) return fallback;
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0)
    throw new HttpError(
      500,
      "config",
      "duck_threads",
      `${path}: duck_threads must be an integer >= 0 (got ${JSON.stringify(v)}); e.g. 1, or 0 for one thread per core`,
    );
  return v;
}

export interface AppDeps {
  store: DuckStore;
  pseudonymizer: Pseudonymizer;
  jwtSecret: string;
  /** Longest accepted token lifetime (s); default MASTERY_JWT_MAX_TTL or 24 h (serving/auth.ts). */
  jwtMaxTtlSec?: number;
  /**
   * Class rosters (teacher access) on their own connection, e.g. PostgreSQL so `mastery roster load`
   * can change them while the server runs. Default: the roster tables of the embedded store.
   */
  roster?: RosterStore;
  config?: Partial<ServingConfig>;
  /**
   * The one incremental update path (serving/updater.ts). Default: IncrementalUpdater on the
   * embedded store with the models in `modelDirs` (defaults when none).
   */
  updater?: EventUpdater;
  modelDirs?: { bkt?: string; elo?: string; served?: string };
  /**
   * Where GET /mastery, /history and /recommendations read scores, topics and learner_state
   * (serving/masteryReadStore.ts). Default: the embedded store. Pass the PostgreSQL one when the
   * updater writes to PostgreSQL (serving/servingBackends.ts wires both from the environment).
   */
  read?: MasteryReadStore;
  /**
   * How long a cached GET /mastery body may be served (ms; default: until an update through this
   * server invalidates it). Set it when other processes (stream workers) write the scores this
   * server reads, since their writes cannot invalidate this server's cache.
   */
  cacheTtlMs?: number;
  /**
   * Cross-process invalidation (PostgreSQL + Redis mode, serving/servingBackends.ts): this server's
   * writes are published to the other processes, theirs drop bodies here, and while the subscription
   * is up the TTL is `cacheInvalidation.ttlMs` instead of `cacheTtlMs`.
   */
  cacheInvalidation?: SharedCacheInvalidation;
  /**
   * `mastery serve --via-stream`: POST /events validates and stores the batch as usual, then
   * publishes the accepted events (as received) here instead of applying them; a stream worker
   * (serving/streamWorker.ts) applies them and the scores show up once it has.
   */
  publishEvents?: (events: readonly { eventId: string; type: string; record: unknown }[]) => Promise<void>;
  /** Default: config/thresholds.yaml. */
  thresholds?: ThresholdConfig;
  /**
   * Where alerts read the scores and keep their state (storage/alertStore.ts): the store the updater
   * writes student_mastery to. Default: the embedded store. serving/servingBackends.ts passes the
   * PostgreSQL one with MASTERY_PG_URL.
   */
  alertStore?: AlertStore;
  /**
   * Where student_mastery is written (teacher corrections go there too, so GET /mastery serves them):
   * default this server's DuckDB file; serving/servingBackends.ts passes PostgreSQL with MASTERY_PG_URL.
   */
  scoreStore?: ScoreStore;
  webhookRetry?: { attempts: number; baseMs: number };
  /** Experiment arm of a student (experiments/ plugs in here); default: none. */
  experimentArm?: (studentKey: string) => Promise<ExperimentArm | null>;
  logger?: Logger;
  now?: () => Date;
  /** Prometheus default process metrics (off in tests to keep them quiet). */
  defaultMetrics?: boolean;
  /** Model registry; default: on `store`, artifacts at artifactBase. */
  registry?: Registry;
  /** Experiment store; default: on `store`. */
  experiments?: ExperimentStore;
  /** Default: MASTERY_ARTIFACTS or .mastery/artifacts. */
  artifactBase?: string;
  /** Overrides config.modelName and MASTERY_MODEL_NAME. */
  modelName?: string;
  /** Where served model versions are materialized (default: a temp directory). */
  modelCacheDir?: string;
  /** How often aliases and experiments are re-read (ms, default 5000). */
  modelRefreshMs?: number;
  /** Runs the drift monitor loop (retrain under `lock`) inside the server; off when absent. */
  monitor?: ServingMonitorOptions;
  /**
   * Probes of the services the server uses besides its DuckDB file (serving/servingBackends.ts
   * passes PostgreSQL, Redis, NATS); /readyz reports them and outages answer 503 + Retry-After.
   */
  probes?: readonly BackendProbe[];
  /** Called on each backend state change (default: a warn/info log line). */
  onBackendChange?: (e: BackendEvent) => void;
  /** Plausible timestamp range of POST /events (default: config/events.yaml and the environment). */
  timeRange?: TimeRange;
}

/** Everything a route handler needs; handlers stay thin over these. */
export interface ServingContext {
  store: DuckStore;
  /** The read side of the served scores (DuckDB or PostgreSQL); reads run through `gate` too. */
  read: MasteryReadStore;
  gate: StoreGate;
  pseudonymizer: Pseudonymizer;
  config: ServingConfig;
  /** Class rosters: teacher access and the /roster routes. */
  roster: RosterAccess;
  updater: EventUpdater;
  /** Set with --via-stream (AppDeps.publishEvents): POST /events publishes instead of applying. */
  publishEvents: AppDeps["publishEvents"];
  /** What POST /events writes through (serving/eventIntake.ts). */
  intake: IntakeDeps;
  alerts: AlertEngine;
  /** POST /events' alert checks, run after the answers (serving/deferredAlertChecks.ts). */
  alertChecks: DeferredAlertChecks;
  /** Where the served scores live (teacher corrections are written there). */
  scores: ScoreStore;
  metrics: ServerMetrics;
  /** Newest successful scheduled runs (batch_runs): /metrics gauge and /healthz. */
  batchRuns: BatchRunMetrics;
  logger: Logger;
  now: () => Date;
  experimentArm: (studentKey: string) => Promise<ExperimentArm | null>;
  registry: Registry;
  experiments: ExperimentStore;
  modelScoring: ModelScoring;
  /** Which backends are down (503 + Retry-After while they are) and /readyz's probes. */
  backends: BackendMonitor;
  /**
   * Start-up state: while `warmingUp`, /readyz answers 503 `warming_up` (the balancer sends no
   * traffic yet) and the process warms itself (serving/warmUp.ts, `mastery serve`). createApp
   * starts it false; a server that warms up sets it true before listening and false when done.
   */
  startup: { warmingUp: boolean };
  /** After an alias move or experiment change: re-resolve the served models and drop every cached body. */
  modelsChanged(): Promise<void>;
  /** 401/403 unless the bearer token allows `scope`. */
  principal(req: Request, scope: Scope): Promise<Principal>;
  /**
   * Pseudonymizes a raw id from a URL or body (or takes a `key:<student_key>` as is, see
   * studentKeyOf) and checks the principal may see that student.
   */
  student(p: Principal, rawStudentId: string, res: Response): Promise<string>;
  /** GET /mastery's JSON body for a student (hot cache). */
  masteryJson(studentKey: string): Promise<string>;
  /**
   * The cached GET /mastery body when a fresh one is cached (counted as a hit), else undefined (nothing
   * counted: masteryBody then computes it). Starts a due model refresh either way (never waits for it).
   */
  cachedMasteryBody(studentKey: string): ServedBody | undefined;
  /** The same body as cached: encoded once, with its ETag (what GET /mastery sends). */
  masteryBody(studentKey: string): Promise<ServedBody>;
  /**
   * GET /mastery/:studentId/:topicId/history's answer of one (student, topic), from its own cache (bounded by
   * history_cache_max_mb, dropped on every write of the student as GET /mastery's bodies are).
   */
  historyBody(studentKey: string, topicId: string): Promise<HistoryBody>;
  /**
   * Runs a read of `read`: at once when it is concurrent (PostgreSQL pool, DuckDB read pool), else
   * inside `gate` with the writes.
   */
  readRun<T>(fn: () => Promise<T>): Promise<T>;
  /** The topics table (prerequisites, rollup levels), re-read at most once a minute. */
  topicRows(): Promise<readonly TopicRow[]>;
  /**
   * Drops cached data of these students (after any update): here at once (before it returns), and
   * (shared mode) in every server once the returned publish is acknowledged.
   */
  invalidate(studentKeys: Iterable<string>): Promise<void>;
}

export interface AppHandle {
  app: Express;
  ctx: ServingContext;
  /**
   * Waits for webhook deliveries in flight, the raw-row copy into DuckDB (serving/rawMirror.ts) and the
   * cache-invalidation publishes POST /events answered before.
   */
  drain(): Promise<void>;
  /** Data-quality gauges on /metrics. */
  quality: QualityMetrics;
  /** The drift monitor loop (null when deps.monitor was not given); stop it on shutdown. */
  monitor: MonitorLoop | null;
  monitorMetrics: MonitorMetrics;
}

/**
 * How a request names a student: the raw LMS id (pseudonymized here), or `key:` followed by the
 * 32-hex student_key, which is how the class view (it lists pseudonyms only: raw ids are never
 * stored) links to a student's page. The same access rules apply to both forms.
 */
export const STUDENT_KEY_REF = /^key:([0-9a-f]{32})$/;

export function studentKeyOf(pseudonymizer: Pseudonymizer, studentId: string): string {
  return STUDENT_KEY_REF.exec(studentId)?.[1] ?? pseudonymizer.studentKey(studentId);
}

export async function createApp(deps: AppDeps): Promise<AppHandle> {
  warmUpValidators();
  const config: ServingConfig = { ...DEFAULT_SERVING_CONFIG, ...deps.config };
  const store = deps.store;
  const gate = new StoreGate();
  await gate.run(async () => {
    for (const ddl of SERVING_DDL) await store.run(ddl);
    await createRollupViews(store);
  });
  const logger = deps.logger ?? pino({ level: process.env.LOG_LEVEL ?? "info" });
  const metrics = new ServerMetrics({ defaultMetrics: deps.defaultMetrics ?? true });
  const batchRunStore = await gate.run(() => BatchRunStore.open(store));
  const batchRuns = new BatchRunMetrics(metrics.registry, (job) =>
    gate.run(() => batchRunStore.lastSuccess(job)),
  );
  // First read now, so /healthz (which never waits for a re-read) has the values from the start.
  await batchRuns.lastSuccess(2000);
  const now = deps.now ?? (() => new Date());
  const auth = new Authenticator(deps.jwtSecret, deps.pseudonymizer, {
    maxTtlSec: deps.jwtMaxTtlSec ?? maxTtlFromEnv(),
  });
  // Teacher access comes from the roster, never from events' class_id (serving/auth.ts).
  const rosterGate = deps.roster !== undefined ? new StoreGate() : gate;
  const roster = new RosterAccess({
    store: deps.roster ?? (await gate.run(() => RosterStore.open(store, "duckdb"))),
    run: (fn) => rosterGate.run(fn),
    pseudonymizer: deps.pseudonymizer,
  });
  const localRaw = await gate.run(() => DuckRawEventStore.open(store));
  const updater =
    deps.updater ??
    (await gate.run(
      async () =>
        new IncrementalUpdater({
          raw: localRaw,
          state: await DuckStateStore.open(store),
          mastery: await DuckMasteryStore.open(store),
          models: streamModels({
            bktModelDir: deps.modelDirs?.bkt,
            eloModelDir: deps.modelDirs?.elo,
            servedModelDir: deps.modelDirs?.served,
          }),
          nowUs: () => now().getTime() * 1000,
        }),
    ));
  // Alerts are checked where the scores live: PostgreSQL when the updater writes there, else this file.
  const scores: ScoreStore = deps.scoreStore ?? {
    mastery: await gate.run(() => DuckMasteryStore.open(store)),
    onServerFile: true,
  };
  const alertStore = deps.alertStore ?? (await gate.run(() => DuckAlertStore.open(store)));
  const thresholds = deps.thresholds ?? loadThresholds();
  // Alert-store work runs directly on a pool (PostgreSQL), else in the DuckDB file's queue.
  const alertRun = <T>(fn: () => Promise<T>): Promise<T> => (alertStore.concurrent ? fn() : gate.run(fn));
  const alerts = new AlertEngine(alertStore, thresholds, {
    withStore: alertRun,
    now,
    ...(deps.webhookRetry ? { retry: deps.webhookRetry } : {}),
    onAlert: () => metrics.alerts.inc(),
    onDelivery: (outcome) => metrics.webhooks.inc({ outcome }),
  });
  // The threshold check of POST /events runs after the answer (docs/architecture.md "Alerts after the
  // answer"): the events are stored and applied by then, so a failing check fails no request (the client
  // would retry events that are already in); it is retried with backoff, and a graceful stop drains it.
  const alertChecks = new DeferredAlertChecks({
    check: (keys) => alertRun(() => alerts.check(keys)),
    onError: (err, pendingKeys, retryInMs) =>
      logger.warn(
        { err: { message: redactErrorMessage((err as Error).message) }, pendingKeys, retryInMs },
        "alert check after POST /events failed; retrying",
      ),
  });
  // The checks a stopped process had queued after its answers were in its memory only: a starting server
  // re-checks the keys whose score moved in the last `recovery_minutes` (config/thresholds.yaml), in the
  // background; a key checked already raises nothing again (serving/alerts.ts recoverAlertChecks).
  const recentlyScored = (since: Date, limit: number) =>
    alertRun(() => alertStore.recentlyScored(since, limit));
  // The catch-up's keys go in the background lane: small checks, paced, after every answered request's.
  const alertRecovery = recoverAlertChecks({ recentlyScored }, thresholds, now(), (keys) =>
    alertChecks.enqueueBackground(keys),
  ).then(
    (n) => {
      if (n > 0)
        logger.info(
          { keys: n, minutes: thresholds.recoveryMinutes },
          "re-checking alerts of the keys scored just before this start",
        );
    },
    (err: unknown) =>
      logger.warn(
        { err: { message: redactErrorMessage((err as Error).message) } },
        "reading the recently scored keys for the alert catch-up failed; their next event or the daily batch checks them",
      ),
  );
  // An updater given by the caller keeps the raw zone elsewhere (PostgreSQL): the applied (or, with
  // --via-stream, published) events are copied into this server's DuckDB too, which class
  // membership, /quality and model features read. The copy is not the record and no write path reads
  // it, so it is written after the answer (serving/rawMirror.ts), not inside the request.
  const mirrorRaw = deps.updater !== undefined;
  const mirror = mirrorRaw
    ? new RawMirror({
        write: (rows) => gate.run(() => localRaw.append(rows)),
        // A body computed from the copy before it held these rows is stale when a registry model served
        // it (its features read the copy); bodies of other students never read the copy. (A change of the
        // served models clears the whole cache, so the test now is the test at compute time.)
        onWritten: (keys) => bodies.invalidate([...keys].filter((k) => modelScoring.usesStore(k))),
        onError: (err, pending) =>
          logger.warn(
            { err: { message: redactErrorMessage(err.message) }, pending },
            "copying applied raw rows into the server's DuckDB failed; retrying",
          ),
      })
    : null;
  // POST /events applies concurrent requests as one batch (group commit, serving/coalescingUpdater.ts),
  // with the alert check's keys queued once per group (checked after the answers). Groups run in the DuckDB store's queue when the updater writes
  // this file; an updater of its own (PostgreSQL) does not wait for this file's queue.
  const intakeUpdater = new CoalescingUpdater(updater, {
    ...(mirrorRaw ? {} : { run: <T>(fn: () => Promise<T>) => gate.run(fn) }),
    // The updater writes this file: a group's raw append, state and scores in one DuckDB transaction
    // (one commit instead of three; the alert check runs after the answers, its failure fails nothing).
    ...(deps.updater === undefined ? { atomic: <T>(fn: () => Promise<T>) => store.transaction(fn) } : {}),
    // An updater of its own (PostgreSQL + Redis): the next group's state update overlaps this group's
    // score write (each request still answered after its own scores are written).
    pipelined: mirrorRaw,
    after: async (rows, results) => {
      mirror?.enqueue(rows);
      // Duplicates too: a client's retry of a request whose check never ran (updater.ts alertKeys).
      // Checked just after the answers, not before them (serving/deferredAlertChecks.ts).
      alertChecks.enqueue(alertKeys(results));
    },
  });
  const intake: IntakeDeps = {
    updater: intakeUpdater,
    deadLetters: { deadLetter: (rows) => gate.run(() => localRaw.deadLetter(rows)) },
    mirror:
      mirror !== null && deps.publishEvents !== undefined
        ? {
            record: async (rows) => {
              mirror.enqueue(rows);
              return [];
            },
          }
        : null,
    publish: deps.publishEvents,
    pseudonymizer: deps.pseudonymizer,
    ...(deps.timeRange !== undefined ? { timeRange: deps.timeRange } : {}),
  };
  // Served scores decay with time (serving/masteryView.ts decayServedRow), so a cached body lives at most
  // SERVED_DECAY_CACHE_MS: with half-lives of >= 1 day an hour moves a score by <= 3% of its distance to the floor.
  const cacheTtlMs = Math.min(deps.cacheTtlMs ?? Number.POSITIVE_INFINITY, SERVED_DECAY_CACHE_MS);
  // Bounded in bytes; a read that overlapped an update of its student never caches its body
  // (serving/bodyCache.ts). A TTL of 0 turns caching off.
  const bodies = new BodyCache<ServedBody>({
    bytesOf: servedBodyBytes,
    maxBytes: cacheTtlMs > 0 ? config.cacheMaxBytes : 0,
    maxEntries: config.cacheSize,
    ttlMs: cacheTtlMs,
  });
  // GET /mastery/:id/:topic/history's answers, by (student, topic), under the same rules: a write of the
  // student drops all of that student's histories (groupOf), here and, through the channel, in every server.
  const histories = new BodyCache<HistoryBody>({
    bytesOf: historyBodyBytes,
    maxBytes: cacheTtlMs > 0 ? config.historyCacheMaxBytes : 0,
    ttlMs: cacheTtlMs,
    groupOf: historyCacheGroup,
  });

  // Other processes' writes drop bodies here while the subscription is up (long TTL); while it is
  // down, messages may be lost: the cache is cleared and the short TTL applies until it is back.
  const shared = deps.cacheInvalidation;
  /** Invalidation publishes not yet acknowledged by Redis (drain waits for them). */
  const publishing = new Set<Promise<void>>();
  if (shared !== undefined) metrics.owedInvalidations = () => shared.owedKeys();
  if (shared !== undefined && cacheTtlMs > 0) {
    const longTtl = Math.min(shared.ttlMs, SERVED_DECAY_CACHE_MS);
    await shared.subscribe({
      keys: (keys) => {
        bodies.invalidate(keys);
        histories.invalidateGroups(keys);
      },
      all: () => {
        bodies.clear();
        histories.clear();
      },
      up: () => {
        // Writes made while not subscribed were not heard.
        bodies.clear();
        histories.clear();
        bodies.setTtlMs(longTtl);
        histories.setTtlMs(longTtl);
        metrics.cacheInvalidation.set(1);
      },
      down: (detail) => {
        bodies.clear();
        histories.clear();
        bodies.setTtlMs(cacheTtlMs);
        histories.setTtlMs(cacheTtlMs);
        metrics.cacheInvalidation.set(0);
        logger.warn(
          { detail: redactErrorMessage(detail), ttlMs: cacheTtlMs },
          "body cache invalidation channel lost; cache cleared, short TTL until it is back",
        );
      },
    });
  }

  const models = await gate.run(() =>
    servingRegistry(store, deps.artifactBase ?? process.env.MASTERY_ARTIFACTS ?? ".mastery/artifacts", now),
  );
  const registry = deps.registry ?? models.registry;
  const experiments = deps.experiments ?? models.experiments;
  const modelScoring = new ModelScoring({
    registry,
    arms: new ExperimentArms(experiments, now, deps.modelRefreshMs),
    experiments,
    modelName: deps.modelName ?? (process.env[MODEL_NAME_ENV] || config.modelName),
    now,
    ...(deps.modelCacheDir !== undefined ? { cacheDir: deps.modelCacheDir } : {}),
    ...(deps.modelRefreshMs !== undefined ? { refreshMs: deps.modelRefreshMs } : {}),
  });
  const invalidateAll = (): void => {
    bodies.clear();
    histories.clear();
  };
  let modelRefresh: Promise<void> | null = null;
  const experimentArm =
    deps.experimentArm ??
    (async (studentKey: string): Promise<ExperimentArm | null> => {
      const a = modelScoring.assignment(studentKey);
      return a === null ? null : { experimentId: a.experimentId, arm: a.arm };
    });
  // Topic metadata changes rarely (ingest of topics files); re-read at most once a minute, for the
  // rollups of GET /mastery and the prerequisites of GET /recommendations alike.
  let topicCache:
    | { at: number; rows: readonly TopicRow[]; meta: TopicMeta; byId: ReadonlyMap<string, TopicRow> }
    | undefined;
  let topicRead: Promise<NonNullable<typeof topicCache>> | null = null;
  // GET reads on the embedded store use their own connections (DuckDB MVCC: they see committed data
  // and do not wait for a write's transaction on the main connection).
  const read =
    deps.read ??
    new DuckMasteryReadStore(
      config.readConnections > 0 ? await gate.run(() => store.readPool(config.readConnections)) : store,
    );
  const readRun = <T>(fn: () => Promise<T>): Promise<T> => (read.concurrent ? fn() : gate.run(fn));
  const topicTable = async (): Promise<NonNullable<typeof topicCache>> => {
    if (topicCache !== undefined && Date.now() - topicCache.at <= 60_000) return topicCache;
    // One read at a time (concurrent misses share it). Called inside masteryJson's computation or
    // readRun: already in the gate when reads need it.
    topicRead ??= read
      .topics()
      .then((rows) => {
        topicCache = {
          at: Date.now(),
          rows,
          meta: topicMetaOf(rows),
          byId: new Map(rows.map((r) => [r.topic_id, r])),
        };
        return topicCache;
      })
      .finally(() => {
        topicRead = null;
      });
    return topicRead;
  };
  const topics = async (): Promise<TopicMeta> => (await topicTable()).meta;

  // The DuckDB probe has its own connection: a gate queue full of writes means busy, not down (a probe
  // timing out behind it turned every request into a 503 under load, PostgreSQL-backed reads included).
  const probeConn = await gate.run(() => store.readPool(1));
  const backends = new BackendMonitor({
    probes: [
      {
        backend: "duckdb",
        ping: async () => void (await probeConn.one("SELECT 1 AS ok")),
        // Its own connection (no queue behind writes); a stalled DuckDB still answers "down" within 2 s.
        timeoutMs: 2000,
      },
      ...(deps.probes ?? []),
    ],
    // PostgreSQL, Redis, NATS: no answer within 1 s is down (503 + Retry-After, /readyz names it).
    probeTimeoutMs: 1000,
    onChange:
      deps.onBackendChange ??
      ((e) =>
        e.state === "down"
          ? logger.warn(
              { backend: e.backend, detail: e.detail },
              `${BACKEND_LABEL[e.backend]} is down; answering 503 with Retry-After and probing with backoff`,
            )
          : logger.info(
              { backend: e.backend, downMs: e.downMs },
              `${BACKEND_LABEL[e.backend]} is back; serving again`,
            )),
  });

  const ctx: ServingContext = {
    startup: { warmingUp: false },
    store,
    read,
    backends,
    gate,
    pseudonymizer: deps.pseudonymizer,
    config,
    roster,
    updater,
    publishEvents: deps.publishEvents,
    intake,
    alerts,
    alertChecks,
    scores,
    metrics,
    batchRuns,
    logger,
    now,
    experimentArm,
    registry,
    experiments,
    modelScoring,
    async modelsChanged() {
      await gate.run(() => modelScoring.refresh(true));
      invalidateAll();
    },
    async principal(req, scope) {
      const p = await auth.authenticate(req.headers.authorization);
      requireAction(p, scope);
      return p;
    },
    async student(p, rawStudentId, res) {
      const key = studentKeyOf(deps.pseudonymizer, rawStudentId);
      res.locals.studentKey = key;
      await requireStudent(p, key, (k) => roster.classesOf(k));
      return key;
    },
    async masteryJson(studentKey) {
      return (await ctx.masteryBody(studentKey)).buf.toString("utf8");
    },
    cachedMasteryBody(studentKey) {
      // One model refresh at a time (it queues in the gate behind writes): a cache hit does not wait
      // for it (a refresh that changes the served models clears the cache when it ends), a miss does.
      if (modelRefresh === null && modelScoring.due()) {
        modelRefresh = gate
          .run(() => modelScoring.refresh())
          .then(
            (changed) => {
              if (changed) invalidateAll();
            },
            (err: Error) => logger.warn({ err: { message: err.message } }, "model refresh failed"),
          )
          .finally(() => {
            modelRefresh = null;
          });
      }
      const hit = bodies.peek(studentKey);
      if (hit !== undefined) metrics.cache.inc({ result: "hit" });
      return hit;
    },
    async masteryBody(studentKey) {
      const hit = ctx.cachedMasteryBody(studentKey);
      if (hit !== undefined) return hit;
      metrics.cache.inc({ result: "miss" });
      if (modelRefresh !== null) await modelRefresh;
      return bodies.get(studentKey, async () => {
        const arm = await experimentArm(studentKey);
        // Rows neither served nor listed with a read-time score need no text (the embedded store then
        // renders none for them; PostgreSQL sends every row whole: docs/benchmarks.md, cold16).
        const needs = scoreRowNeeds({ sourceOrder: config.scoreSources, arm });
        const build = async () => {
          // The scores without the join to topics: their names and levels come from the topics cache.
          const [rows, { byId }] = await Promise.all([read.scoreRows(studentKey, needs), topicTable()]);
          for (const r of rows) {
            const t = byId.get(r.topic_id);
            if (t === undefined) continue;
            r.name = t.name ?? null;
            r.chapter_id = t.chapter_id;
            r.subject_id = t.subject_id;
            r.course_id = t.course_id;
          }
          const topicIds = [...new Set(rows.map((r) => r.topic_id))];
          const model = await modelScoring.scoreStudent(store, studentKey, topicIds);
          const body = await studentMasteryJson(read, studentKey, {
            sourceOrder: config.scoreSources,
            arm,
            topics,
            model,
            rows,
            // Served scores forget from their scoring time to now (the body cache keeps this for at most
            // SERVED_DECAY_CACHE_MS, see below).
            now: now(),
          });
          // One exposure per score served from an experiment arm, when the body is computed (cache
          // hits re-serve an already logged score).
          await modelScoring.logExposures(
            studentKey,
            model.info,
            body.modelServedScores.map((score) => ({ score })),
          );
          return body;
        };
        // A registry model reads features from the embedded store, and a read store without its own
        // connections shares the writes' one: then inside the gate. Otherwise nothing waits for it.
        const body =
          read.concurrent && !modelScoring.usesStore(studentKey) ? await build() : await gate.run(build);
        return servedBody(body.parts, body.topics);
      });
    },
    historyBody(studentKey, topicId) {
      const key = historyCacheKey(studentKey, topicId);
      const hit = histories.peek(key);
      metrics.historyCache.inc({ result: hit !== undefined ? "hit" : "miss" });
      if (hit !== undefined) return Promise.resolve(hit);
      return histories.get(key, async () => {
        const rows = await readRun(() => read.history(studentKey, topicId));
        return historyBodyOf(studentKey, topicId, historyJsonParts(rows));
      });
    },
    readRun,
    topicRows: async () => (await topicTable()).rows,
    invalidate(studentKeys) {
      const keys = [...studentKeys];
      // This process's bodies are dropped at once (before this returns): its own reads after the answer
      // see the write.
      bodies.invalidate(keys);
      histories.invalidateGroups(keys);
      if (shared === undefined || keys.length === 0) return Promise.resolve();
      // After the write committed. POST /events answers without waiting for it (delivery to the other
      // servers is asynchronous anyway); a graceful stop waits for it (drain). A failure is logged, not
      // the request's: its write is in.
      const sent = shared.publish(keys).catch((err: unknown) => {
        metrics.cacheInvalidationErrors.inc();
        logger.warn(
          { err: { message: redactErrorMessage((err as Error).message) }, keys: keys.length },
          "publishing a body cache invalidation failed; it is re-published in the background until Redis answers (mastery_cache_invalidation_owed_keys)",
        );
      });
      publishing.add(sent);
      void sent.finally(() => publishing.delete(sent));
      return sent;
    },
  };

  const app = express();
  app.disable("x-powered-by");
  app.set("trust proxy", config.trustProxy);
  // helmet()'s headers, computed once (serving/securityHeaders.ts).
  const setSecurityHeaders = securityHeaderSetter();
  const limiter = rateLimiter(config.rateLimit, (header) => auth.authenticate(header));
  // Request metrics and the info log line, recorded when the response finishes. `route`: the matched
  // route's pattern when known up front (the hit path), else read from Express's req.route then;
  // `studentKey`: the hit path's, else what the route left in res.locals.
  const observe = (req: IncomingMessage, res: ServerResponse, route?: string, studentKey?: string): void => {
    const t0 = process.hrtime.bigint();
    res.on("finish", () => {
      const pattern =
        route ?? ((req as Request).route as { path?: string } | undefined)?.path ?? "(unmatched)";
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      // A server's request always has its method (IncomingMessage types it optional for client responses).
      const method = req.method ?? "";
      metrics.requests.inc({ method, route: pattern, status: String(res.statusCode) });
      metrics.duration.observe({ method, route: pattern }, seconds);
      if (logger.isLevelEnabled("info")) {
        logger.info(
          {
            method,
            route: pattern,
            status: res.statusCode,
            ms: Math.round(seconds * 1e5) / 100,
            studentKey: studentKey ?? ((res as Response).locals?.studentKey as string | undefined),
          },
          "request",
        );
      }
    });
  };
  // GET /mastery's cache hits and misses, answered in front of Express (serving/masteryHitPath.ts): Express's
  // own dispatch (app.handle: its final handler, the request and response prototype swaps, the router) runs
  // only for the requests the hit path leaves, which go on unchanged, and for a taken miss whose body failed:
  // that one enters Express already observed, with its error (missFailures), answered by the error handler.
  const missFailures = new WeakMap<IncomingMessage, { err: unknown; studentKey: string }>();
  const serviceLimit = config.rateLimit.serviceLimit ?? 0;
  const hitPath = masteryHitListener({
    route: MASTERY_ROUTE,
    cachedPrincipal: (header) => auth.cachedPrincipal(header),
    studentKey: (rawId) => studentKeyOf(deps.pseudonymizer, rawId),
    cachedBody: (key) => ctx.cachedMasteryBody(key),
    anyBackendDown: () => backends.anyDown(),
    // The limiter skips services when they have no limit of their own (serving/rateLimit.ts).
    rateLimited: (p) => limiter !== undefined && !(p.role === "service" && serviceLimit <= 0),
    securityHeaders: securityHeaderList(),
    observe,
    missBody: (key) => ctx.masteryBody(key),
  });
  // Express's application function calls app.handle(req, res, next) for every request (a server made with
  // app.listen or http.createServer(app), supertest, a parent app): the one place in front of all of it.
  const dispatch = app as unknown as { handle: ExpressDispatch };
  const expressHandle = dispatch.handle.bind(app);
  dispatch.handle = (req, res, next) => {
    let taken: boolean;
    try {
      taken = hitPath(req, res, (err, studentKey) => {
        missFailures.set(req, { err, studentKey });
        expressHandle(req, res, next);
      });
    } catch (err) {
      // Nothing written: the route answers it (and its error handler any failure). Written: cut it short.
      if (res.headersSent) return void res.destroy(err as Error);
      taken = false;
    }
    if (!taken) expressHandle(req, res, next);
  };
  app.use((_req: Request, res: Response, next: NextFunction) => {
    setSecurityHeaders(res);
    next();
  });
  if (limiter !== undefined) app.use(limiter);
  app.use(express.json({ limit: config.bodyLimit }));
  app.use((req: Request, res: Response, next: NextFunction) => {
    const failed = missFailures.get(req);
    if (failed === undefined) {
      observe(req, res);
      return next();
    }
    // A miss of the hit path whose body failed (observed there): the route's failure, as the route had it.
    res.locals.studentKey = failed.studentKey;
    next(failed.err);
  });
  app.use(outageGuard(backends));
  for (const r of ROUTES) app[r.method](r.path, r.handler(ctx));
  // The web dashboard (static pages over this same JSON API; serving/dashboard/).
  app.use("/app", dashboardRouter());
  app.use("/favicon.ico", faviconRedirect);
  app.use((_req: Request, res: Response) => {
    res.status(404).json({ error: "not_found", field: "(path)", reason: "no such route; see /openapi.json" });
  });
  app.use((err: unknown, _req: Request, res: Response, _next: NextFunction) => {
    // A store outage: 503 + Retry-After from the backend monitor, which logs it once per outage
    // (not once per request) and finds out when it is back.
    if (respondUnavailable(err, res, backends)) return;
    const answer = errorAnswer(err, config.bodyLimit);
    if (answer.status >= 500) {
      // Never the raw message: drivers and parsers quote values there (a URL's raw student id).
      const e = err as { name?: unknown; code?: unknown; message?: unknown };
      logger.error(
        {
          err: {
            name: String(e?.name ?? "Error"),
            ...(typeof e?.code === "string" ? { code: e.code } : {}),
            message: redactErrorMessage(String(e?.message ?? err)),
          },
          status: answer.status,
        },
        "unhandled error",
      );
    }
    if (answer.retryAfterS !== undefined) res.setHeader("Retry-After", String(answer.retryAfterS));
    res.status(answer.status).json(answer.body);
  });
  const quality = new QualityMetrics({
    registry: metrics.registry,
    // Section by section through the gate (requests get the store in between), within the budget.
    report: () =>
      qualityReportOrThrow(store, {
        asOf: now(),
        budgetMs: config.qualityBudgetMs,
        runSection: (fn) => gate.run(fn),
      }),
    maxAgeMs: config.qualityMaxAgeMs,
    onError: (err) => logger.warn({ err: { message: err.message } }, "data-quality metrics refresh failed"),
  });
  const monitorMetrics = new MonitorMetrics(metrics.registry);
  const monitor =
    deps.monitor === undefined
      ? null
      : startServingMonitor({
          store,
          registry,
          withStore: (fn) => gate.run(fn),
          metrics: monitorMetrics,
          options: deps.monitor,
          onError: (err) => logger.error({ err: { message: err.message } }, "monitor tick failed"),
        });
  return {
    app,
    ctx,
    drain: async () => {
      await Promise.all([
        alertRecovery.then(() => alertChecks.drain()).then(() => alerts.drain()),
        mirror?.idle(),
        Promise.all([...publishing]),
      ]);
    },
    quality,
    monitor,
    monitorMetrics,
  };
}
export { HttpError } from "./httpError.ts";
