/**
 * The monitor loop: on every tick, a drift check (reference = the champion's training data window
 * when the registry knows it, else the configured snapshot, else the window before the current
 * one), live performance of the current window against the previous one, and, when drift or decay
 * crosses the configured rule, a locked retrain run. The server calls startMonitorLoop on an
 * interval; `mastery retrain` calls monitorOnce.
 */

import type { Registry } from "../registry/registry.ts";
import type { DuckStore } from "../storage/duckdb.ts";
import type { GateConfig } from "../training/gate.ts";
import type { DriftConfig } from "./config.ts";
import {
  checkDrift,
  type DriftCheck,
  defaultWindows,
  type ReferenceSource,
  type TimeWindow,
} from "./driftMonitor.ts";
import type { RetrainLock } from "./locks.ts";
import { type DecayVerdict, decayVerdicts, type LivePerformance, livePerformance } from "./performance.ts";
import { type RetrainResult, retrainWithLock, type Trainer } from "./retrain.ts";

export interface MonitorOptions {
  store: DuckStore;
  config: DriftConfig;
  /** Needed for the champion reference window and for retraining. */
  registry?: Registry;
  lock?: RetrainLock;
  /** Scratch directory of the retrain job. */
  workDir?: string;
  /** Clock (tests pin it). The current window ends at the newest feature snapshot regardless. */
  now?: () => Date;
  /** Retrain when triggered (default true when registry and lock are given). */
  retrain?: boolean;
  /** Retrain even when nothing triggered (`mastery retrain --force`). */
  force?: boolean;
  trainer?: Trainer;
  gate?: GateConfig;
  /** Overrides the reference choice. */
  reference?: ReferenceSource;
  features?: { table: string };
}

export interface MonitorTickResult {
  at: string;
  drift: DriftCheck | null;
  driftError: string | null;
  performance: LivePerformance | null;
  decay: DecayVerdict[];
  triggers: string[];
  retrain: RetrainResult | null;
}

/** The reference the monitor compares against (see the module comment). */
export async function chooseReference(
  opts: Pick<MonitorOptions, "config" | "registry" | "reference">,
  fallback: TimeWindow,
): Promise<ReferenceSource> {
  if (opts.reference !== undefined) return opts.reference;
  if (opts.registry !== undefined) {
    const name = opts.config.retrain.model;
    const champ = await opts.registry.store.aliasTarget(name, "champion");
    if (champ !== undefined) {
      const v = await opts.registry.store.getVersion(name, champ);
      if (v?.data.from !== undefined && v.data.to !== undefined)
        return {
          kind: "window",
          window: { from: new Date(v.data.from), to: new Date(v.data.to) },
          label: `champion ${name}@${champ} training window`,
        };
    }
  }
  if (opts.config.windows.snapshot !== null) return { kind: "snapshot", id: opts.config.windows.snapshot };
  return {
    kind: "window",
    window: fallback,
    label: `the ${opts.config.windows.referenceDays} days before the current window`,
  };
}

export async function monitorOnce(opts: MonitorOptions): Promise<MonitorTickResult> {
  const now = (opts.now ?? (() => new Date()))();
  const cfg = opts.config;
  const table = opts.features?.table ?? "features";
  let drift: DriftCheck | null = null;
  let driftError: string | null = null;
  try {
    const w = await defaultWindows(opts.store, cfg, table);
    drift = await checkDrift(opts.store, {
      config: cfg,
      current: w.current,
      reference: await chooseReference(opts, w.reference),
      table,
      now,
    });
  } catch (err) {
    driftError = (err as Error).message;
  }
  const day = 86_400_000;
  const span = cfg.performance.windowDays * day;
  const current = { from: new Date(now.getTime() - span), to: now };
  const previous = { from: new Date(now.getTime() - 2 * span), to: current.from };
  const performance = await livePerformance(opts.store, current, cfg.performance.horizonDays);
  const decay = decayVerdicts(
    performance,
    await livePerformance(opts.store, previous, cfg.performance.horizonDays),
    cfg.performance,
  );
  const triggers: string[] = [];
  if (opts.force) triggers.push("forced");
  if (cfg.retrain.onDrift && drift?.decision.drift)
    triggers.push(`drift: ${drift.decision.reasons.join("; ")}`);
  if (cfg.retrain.onDecay)
    for (const d of decay.filter((x) => x.decayed))
      triggers.push(`decay of ${d.modelVersion} (${d.scoreSource}): ${d.reasons.join("; ")}`);
  let retrain: RetrainResult | null = null;
  const canRetrain = opts.registry !== undefined && opts.lock !== undefined && opts.retrain !== false;
  if (triggers.length > 0 && canRetrain)
    retrain = await retrainWithLock(
      opts.lock!,
      {
        store: opts.store,
        registry: opts.registry!,
        config: cfg,
        workDir: opts.workDir ?? ".mastery/retrain",
        now,
        ...(opts.trainer !== undefined ? { trainer: opts.trainer } : {}),
        ...(opts.gate !== undefined ? { gate: opts.gate } : {}),
      },
      triggers.join(" | ").slice(0, 2000),
    );
  return { at: now.toISOString(), drift, driftError, performance, decay, triggers, retrain };
}

export interface MonitorLoop {
  /** Runs one tick now (waits for a tick already running instead of overlapping it). */
  runOnce(): Promise<MonitorTickResult>;
  /** Stops the timer and waits for a running tick. */
  stop(): Promise<void>;
}

/**
 * Runs monitorOnce every intervalMs (the timer is unref'd so it never keeps a process alive).
 * Ticks never overlap; results and errors go to the callbacks.
 */
export function startMonitorLoop(
  opts: MonitorOptions & {
    intervalMs: number;
    onResult?: (r: MonitorTickResult) => void;
    onError?: (err: Error) => void;
    /**
     * Runs each tick (default: directly). The server passes its store gate, since the tick uses
     * the one DuckDB connection that request handlers also use.
     */
    runTick?: (tick: () => Promise<MonitorTickResult>) => Promise<MonitorTickResult>;
  },
): MonitorLoop {
  let running: Promise<MonitorTickResult> | null = null;
  const runTick = opts.runTick ?? ((t: () => Promise<MonitorTickResult>) => t());
  const tick = (): Promise<MonitorTickResult> => {
    if (running !== null) return running;
    running = runTick(() => monitorOnce(opts))
      .then((r) => {
        opts.onResult?.(r);
        return r;
      })
      .finally(() => {
        running = null;
      });
    return running;
  };
  const timer = setInterval(() => {
    tick().catch((err: Error) => opts.onError?.(err));
  }, opts.intervalMs);
  timer.unref();
  return {
    runOnce: tick,
    async stop() {
      clearInterval(timer);
      if (running !== null) await running.catch(() => undefined);
    },
  };
}
