import { PerformanceObserver } from "node:perf_hooks";

/** One stretch during which the event loop ran nothing else (no timer, no request callback). */
export interface Stall {
  /** How much later than due the watch's timer fired (ms): the loop was busy that long. */
  blockedMs: number;
  /** Garbage-collection time that ended inside the stretch (ms; 0 when none was observed). */
  gcMs: number;
  /** When the stall ended (epoch ms). */
  endedAt: number;
}

export interface StallWatchOptions {
  /** A late timer counts as a stall from this many ms late (default 100). */
  thresholdMs?: number;
  /** The watch's timer period (ms, default 20). */
  intervalMs?: number;
  /** Called once per stall, after it ended (logging, a metric). */
  onStall: (stall: Stall) => void;
  /** Clock in ms (tests); default performance.now. */
  now?: () => number;
  /** Observe garbage collection to split a stall's time (default true; tests turn it off). */
  observeGc?: boolean;
}

/**
 * Watches the event loop for stretches in which it answered nothing: a timer due every `intervalMs`
 * that fires `thresholdMs` or more late means every request waiting on this process waited as long. The
 * latency histogram of /metrics shows that requests were slow; this says when the whole process stopped,
 * for how long, and how much of it was garbage collection (docs/runbook.md "Slow answers from one server").
 */
export class StallWatch {
  private readonly thresholdMs: number;
  private readonly intervalMs: number;
  private readonly now: () => number;
  private timer: NodeJS.Timeout | null = null;
  private observer: PerformanceObserver | null = null;
  private last = 0;
  /** GC time (ms) observed since the last tick. */
  private gcMs = 0;
  /** Counters since start. */
  readonly stats = { stalls: 0, blockedMs: 0, worstMs: 0 };

  constructor(private readonly opts: StallWatchOptions) {
    this.thresholdMs = opts.thresholdMs ?? 100;
    this.intervalMs = opts.intervalMs ?? 20;
    if (!(this.intervalMs > 0 && this.thresholdMs > 0))
      throw new RangeError(
        `StallWatch needs intervalMs > 0 and thresholdMs > 0 (got ${this.intervalMs}, ${this.thresholdMs}); e.g. 20 and 100`,
      );
    this.now = opts.now ?? (() => performance.now());
  }

  start(): void {
    if (this.timer !== null) return;
    this.last = this.now();
    this.timer = setInterval(() => this.tick(this.now()), this.intervalMs);
    this.timer.unref();
    if (this.opts.observeGc !== false) {
      this.observer = new PerformanceObserver((list) => {
        for (const e of list.getEntries()) this.gcMs += e.duration;
      });
      this.observer.observe({ entryTypes: ["gc"] });
    }
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    this.observer?.disconnect();
    this.observer = null;
  }

  /** Adds observed garbage-collection time (ms); the GC observer calls it, tests may too. */
  addGc(ms: number): void {
    this.gcMs += ms;
  }

  /** One timer firing at `at` (ms on the watch's clock); public so the arithmetic is testable alone. */
  tick(at: number): void {
    const late = at - this.last - this.intervalMs;
    this.last = at;
    const gcMs = this.gcMs;
    this.gcMs = 0;
    if (late < this.thresholdMs) return;
    this.stats.stalls++;
    this.stats.blockedMs += late;
    this.stats.worstMs = Math.max(this.stats.worstMs, late);
    this.opts.onStall({
      blockedMs: Math.round(late),
      gcMs: Math.round(Math.min(gcMs, late + this.intervalMs)),
      endedAt: Date.now(),
    });
  }
}
