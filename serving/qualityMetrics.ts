/**
 * Prometheus gauges for data quality and the drift monitor, on the server's own registry.
 *
 * QualityMetrics runs the data-quality report (features/quality.ts) at most once per `maxAgeMs`,
 * in the background when a scrape finds the gauges older than that (the scrape itself never waits:
 * it serves the last computed values, all from one report) and, optionally, on an interval. A failed refresh keeps the last values and counts the
 * error. MonitorMetrics records each monitor tick: last run time, drift verdict and alert counts,
 * decayed models, retrain outcomes. startServingMonitor runs the monitor loop through the store gate.
 */
import { Counter, Gauge, type Registry } from "prom-client";
import type { QualityReport } from "../features/quality.ts";
import type { DriftConfig } from "../monitoring/config.ts";
import type { RetrainLock } from "../monitoring/locks.ts";
import { type MonitorLoop, type MonitorTickResult, startMonitorLoop } from "../monitoring/loop.ts";
import type { Trainer } from "../monitoring/retrain.ts";
import type { Registry as ModelRegistry } from "../registry/registry.ts";
import type { DuckStore } from "../storage/duckdb.ts";

export interface QualityMetricsOptions {
  registry: Registry;
  /** Produces the report (the server runs it through its store gate). */
  report: () => Promise<QualityReport>;
  /** A scrape finding the gauges older than this starts a background refresh (ms). */
  maxAgeMs: number;
  now?: () => number;
  onError?: (err: Error) => void;
}

export class QualityMetrics {
  private readonly completeness: Gauge<"type" | "field">;
  private readonly freshness: Gauge<"source" | "type">;
  private readonly nullRate: Gauge<"type" | "field">;
  private readonly deadLetters: Gauge<"field">;
  private readonly schemaDrift: Gauge<"origin" | "source" | "type" | "field" | "change">;
  private readonly schemaChanges: Gauge<"source" | "type">;
  private readonly volumeZ: Gauge<"source" | "type">;
  private readonly volumeEvents: Gauge<"source" | "type">;
  private readonly volumeAnomaly: Gauge<"source" | "type">;
  private readonly reportTime: Gauge;
  readonly errors: Counter;
  private refreshedAt = Number.NEGATIVE_INFINITY;
  private inFlight: Promise<void> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private readonly now: () => number;

  constructor(private readonly opts: QualityMetricsOptions) {
    this.now = opts.now ?? Date.now;
    const registers = [opts.registry];
    // A scrape never waits for the report: it starts a refresh in the background when the gauges
    // are older than maxAgeMs and serves the last computed values now.
    const collect = () => {
      void this.ensureFresh();
    };
    this.completeness = new Gauge({
      name: "mastery_quality_completeness_ratio",
      help: "Share of events of a type (accepted + rejected) that carried a required field",
      labelNames: ["type", "field"] as const,
      registers,
      collect,
    });
    this.freshness = new Gauge({
      name: "mastery_quality_freshness_seconds",
      help: "Seconds from the newest event of a source and type to the report time",
      labelNames: ["source", "type"] as const,
      registers,
      collect,
    });
    this.nullRate = new Gauge({
      name: "mastery_quality_null_rate",
      help: "Share of raw_events rows of a type with the column null",
      labelNames: ["type", "field"] as const,
      registers,
      collect,
    });
    this.deadLetters = new Gauge({
      name: "mastery_quality_dead_letters",
      help: "Dead-letter entries by field (all time)",
      labelNames: ["field"] as const,
      registers,
      collect,
    });
    this.schemaDrift = new Gauge({
      name: "mastery_quality_schema_drift",
      help: "1 for each new, missing or retyped field of a source and type vs the schema reference",
      labelNames: ["origin", "source", "type", "field", "change"] as const,
      registers,
      collect,
    });
    this.schemaChanges = new Gauge({
      name: "mastery_quality_schema_changes",
      help: "Schema changes (new + missing + retyped fields) of a source and type vs the reference",
      labelNames: ["source", "type"] as const,
      registers,
      collect,
    });
    this.volumeZ = new Gauge({
      name: "mastery_quality_volume_zscore",
      help: "Robust z-score of the newest day's event count vs the trailing baseline (type (all): every type)",
      labelNames: ["source", "type"] as const,
      registers,
      collect,
    });
    this.volumeEvents = new Gauge({
      name: "mastery_quality_volume_events",
      help: "Events of the newest day in the store, by source and type",
      labelNames: ["source", "type"] as const,
      registers,
      collect,
    });
    this.volumeAnomaly = new Gauge({
      name: "mastery_quality_volume_anomaly",
      help: "Newest day's volume: 1 spike, -1 drop, 0 normal or not scored",
      labelNames: ["source", "type"] as const,
      registers,
      collect,
    });
    this.reportTime = new Gauge({
      name: "mastery_quality_report_timestamp_seconds",
      help: "When the data-quality gauges were last computed (unix seconds)",
      registers,
      collect,
    });
    this.errors = new Counter({
      name: "mastery_quality_refresh_errors_total",
      help: "Data-quality refreshes that failed (the gauges keep their last values)",
      registers,
    });
  }

  /** Refreshes unless the last refresh is younger than maxAgeMs; concurrent callers share one run. */
  ensureFresh(): Promise<void> {
    if (this.inFlight !== null) return this.inFlight;
    if (this.now() - this.refreshedAt < this.opts.maxAgeMs) return Promise.resolve();
    return this.refresh();
  }

  /** Runs the report now and replaces every gauge's values. */
  refresh(): Promise<void> {
    if (this.inFlight !== null) return this.inFlight;
    this.inFlight = this.opts
      .report()
      .then((r) => {
        this.apply(r);
        this.refreshedAt = this.now();
      })
      .catch((err: Error) => {
        this.errors.inc();
        // Retry on the next scrape, not on every gauge of this one.
        this.refreshedAt = this.now();
        this.opts.onError?.(err);
      })
      .finally(() => {
        this.inFlight = null;
      });
    return this.inFlight;
  }

  /** Also refreshes every intervalMs (unref'd timer). */
  startInterval(intervalMs: number): void {
    this.stopInterval();
    this.timer = setInterval(() => void this.refresh(), intervalMs);
    this.timer.unref();
  }

  stopInterval(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  private apply(r: QualityReport): void {
    for (const g of [
      this.completeness,
      this.freshness,
      this.nullRate,
      this.deadLetters,
      this.schemaDrift,
      this.schemaChanges,
      this.volumeZ,
      this.volumeEvents,
      this.volumeAnomaly,
    ] as Gauge<string>[])
      g.reset();
    for (const c of r.completeness)
      if (c.seen > 0) this.completeness.set({ type: c.type, field: c.field }, c.completeness);
    for (const f of r.freshness)
      this.freshness.set({ source: f.source, type: f.type }, f.secondsSinceLastEvent);
    for (const n of r.nullRates) this.nullRate.set({ type: n.type, field: n.column }, n.nullRate);
    const byField = new Map<string, number>();
    for (const d of r.deadLetters) byField.set(d.field, (byField.get(d.field) ?? 0) + d.count);
    for (const [field, n] of byField) this.deadLetters.set({ field }, n);
    for (const c of r.schemaDrift.changes) {
      this.schemaDrift.set(
        { origin: c.origin, source: c.source, type: c.type, field: c.field, change: c.change },
        1,
      );
      this.schemaChanges.inc({ source: c.source, type: c.type });
    }
    for (const v of r.volume.latest) {
      const l = { source: v.source, type: v.type };
      this.volumeEvents.set(l, v.count);
      if (v.z !== null) this.volumeZ.set(l, v.z);
      this.volumeAnomaly.set(l, v.anomaly === "spike" ? 1 : v.anomaly === "drop" ? -1 : 0);
    }
    this.reportTime.set(Date.parse(r.asOf) / 1000);
  }
}

/** Counters and gauges of the monitor loop running inside the server. */
export class MonitorMetrics {
  readonly runs: Counter<"outcome">;
  readonly lastRun: Gauge;
  readonly drift: Gauge;
  readonly driftAlertingFeatures: Gauge;
  readonly driftAlertingSegments: Gauge;
  readonly decayedModels: Gauge;
  readonly triggers: Gauge;
  readonly retrains: Counter<"status">;
  readonly lastRetrain: Gauge<"status">;
  /** The last tick's result (null before the first). */
  last: MonitorTickResult | null = null;

  constructor(registry: Registry) {
    const registers = [registry];
    this.runs = new Counter({
      name: "mastery_monitor_runs_total",
      help: "Monitor ticks by outcome (ok, drift_error, error)",
      labelNames: ["outcome"] as const,
      registers,
    });
    this.lastRun = new Gauge({
      name: "mastery_monitor_last_run_timestamp_seconds",
      help: "When the last monitor tick finished (unix seconds)",
      registers,
    });
    this.drift = new Gauge({
      name: "mastery_monitor_drift",
      help: "1 when the last drift check decided drift, 0 when not, -1 when it could not run",
      registers,
    });
    this.driftAlertingFeatures = new Gauge({
      name: "mastery_monitor_drift_alerting_features",
      help: "Features alerting over all rows in the last drift check",
      registers,
    });
    this.driftAlertingSegments = new Gauge({
      name: "mastery_monitor_drift_alerting_segments",
      help: "Segments (topic, school, grade) with an alerting feature in the last drift check",
      registers,
    });
    this.decayedModels = new Gauge({
      name: "mastery_monitor_decayed_models",
      help: "Served model versions whose live performance decayed in the last tick",
      registers,
    });
    this.triggers = new Gauge({
      name: "mastery_monitor_retrain_triggers",
      help: "Retrain triggers (drift, decay, forced) in the last tick",
      registers,
    });
    this.retrains = new Counter({
      name: "mastery_monitor_retrains_total",
      help: "Retrain attempts by status (promoted, rejected, skipped: lock held elsewhere, failed)",
      labelNames: ["status"] as const,
      registers,
    });
    this.lastRetrain = new Gauge({
      name: "mastery_monitor_last_retrain",
      help: "1 on the status of the last retrain attempt (unix seconds of the tick in _timestamp)",
      labelNames: ["status"] as const,
      registers,
    });
  }

  record(r: MonitorTickResult): void {
    this.last = r;
    this.runs.inc({ outcome: r.driftError === null ? "ok" : "drift_error" });
    this.lastRun.set(Date.parse(r.at) / 1000);
    this.drift.set(r.drift === null ? -1 : r.drift.decision.drift ? 1 : 0);
    this.driftAlertingFeatures.set(r.drift?.decision.alertingFeatures.length ?? 0);
    this.driftAlertingSegments.set(r.drift?.decision.alertingSegments.length ?? 0);
    this.decayedModels.set(r.decay.filter((d) => d.decayed).length);
    this.triggers.set(r.triggers.length);
    if (r.retrain !== null) {
      this.retrains.inc({ status: r.retrain.status });
      this.lastRetrain.reset();
      this.lastRetrain.set({ status: r.retrain.status }, 1);
    }
  }

  recordError(): void {
    this.runs.inc({ outcome: "error" });
  }
}

export interface ServingMonitorOptions {
  config: DriftConfig;
  lock: RetrainLock;
  intervalMs: number;
  /** Scratch directory of the retrain job. */
  workDir?: string;
  trainer?: Trainer;
  now?: () => Date;
  /** Retrain on every tick even without a trigger (drills and tests). */
  force?: boolean;
}

/**
 * Starts the monitor loop of a server: ticks through `withStore` (the store gate), results and
 * errors into `metrics`. The caller stops it (and closes the lock) on shutdown.
 */
export function startServingMonitor(deps: {
  store: DuckStore;
  registry: ModelRegistry;
  withStore: <T>(fn: () => Promise<T>) => Promise<T>;
  metrics: MonitorMetrics;
  options: ServingMonitorOptions;
  onError?: (err: Error) => void;
}): MonitorLoop {
  const o = deps.options;
  return startMonitorLoop({
    store: deps.store,
    registry: deps.registry,
    config: o.config,
    lock: o.lock,
    intervalMs: o.intervalMs,
    ...(o.workDir !== undefined ? { workDir: o.workDir } : {}),
    ...(o.trainer !== undefined ? { trainer: o.trainer } : {}),
    ...(o.now !== undefined ? { now: o.now } : {}),
    ...(o.force !== undefined ? { force: o.force } : {}),
    runTick: (t) => deps.withStore(t),
    onResult: (r) => deps.metrics.record(r),
    onError: (err) => {
      deps.metrics.recordError();
      deps.onError?.(err);
    },
  });
}
