import type { UpdatedKey } from "./updater.ts";

/**
 * The threshold-alert check of POST /events, moved out of the answer path: the keys a group applied are
 * queued, and checked together just after the answers are sent (one check at a time; keys queued while a
 * check runs go into the next one, each key once). A failed check keeps its keys and is retried with
 * exponential backoff (minBackoffMs · 2^(failures-1), at most maxBackoffMs); `drain` (graceful stop, tests)
 * runs what is queued at once and waits for it.
 *
 * Trade-off (docs/architecture.md "Alerts after the answer"): the check reads the score when it runs, not
 * as the POST left it, so a dip that recovers before the check raises no alert; queued keys are lost if the
 * process dies before their check, until the key's next event (or the daily time-crossing pass) checks it.
 */
export interface DeferredAlertChecksOptions {
  /** The check of a group of keys (AlertEngine.check, through the store gate where one is needed). */
  check: (keys: readonly UpdatedKey[]) => Promise<unknown>;
  /** First retry delay after a failed check (default 100 ms). */
  minBackoffMs?: number;
  /** Longest retry delay (default 30 s). */
  maxBackoffMs?: number;
  /** Most keys per check (default 5,000); more wait for the next one. */
  maxKeys?: number;
  /** Most keys per check of the background lane (default 500). */
  backgroundMaxKeys?: number;
  /** Pause between two checks of the background lane (ms, default 100). */
  backgroundPauseMs?: number;
  /** A failed check: how many keys wait, and in how many ms they are retried. */
  onError?: (err: unknown, pendingKeys: number, retryInMs: number) => void;
  /** Runs `fn` soon after the current answers are written (default: setImmediate). */
  defer?: (fn: () => void) => void;
}

/** A key's identity in the queue's maps ("student\0topic"). */
const keyId = (k: UpdatedKey): string => `${k.studentKey}\u0000${k.topicId}`;

export class DeferredAlertChecks {
  /** Keys waiting for a check, by "student\0topic" (a key queued twice is checked once). */
  private readonly queued = new Map<string, UpdatedKey>();
  /**
   * The background lane (enqueueBackground): keys checked only while no answered request's keys wait,
   * a small check at a time with a pause in between, so a start-up catch-up of thousands of keys does
   * not hold the process (and the store's pool) just as it takes traffic.
   */
  private readonly background = new Map<string, UpdatedKey>();
  private bgTimer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private scheduled = false;
  private timer: NodeJS.Timeout | null = null;
  private failures = 0;
  private readonly minBackoffMs: number;
  private readonly maxBackoffMs: number;
  private readonly maxKeys: number;
  private readonly backgroundMaxKeys: number;
  private readonly backgroundPauseMs: number;
  private readonly defer: (fn: () => void) => void;
  /** Counters since start (metrics, benches). */
  readonly stats = { checks: 0, keys: 0, failures: 0 };

  constructor(private readonly opts: DeferredAlertChecksOptions) {
    this.minBackoffMs = opts.minBackoffMs ?? 100;
    this.maxBackoffMs = opts.maxBackoffMs ?? 30_000;
    this.maxKeys = opts.maxKeys ?? 5000;
    this.backgroundMaxKeys = opts.backgroundMaxKeys ?? 500;
    this.backgroundPauseMs = opts.backgroundPauseMs ?? 100;
    if (!(this.minBackoffMs > 0 && this.maxBackoffMs >= this.minBackoffMs))
      throw new RangeError(
        `DeferredAlertChecks needs 0 < minBackoffMs <= maxBackoffMs (got ${this.minBackoffMs}, ${this.maxBackoffMs}); e.g. 100 and 30000`,
      );
    if (!(Number.isInteger(this.maxKeys) && this.maxKeys >= 1))
      throw new RangeError(
        `DeferredAlertChecks maxKeys must be an integer >= 1 (got ${opts.maxKeys}); e.g. 5000`,
      );
    if (
      !(
        Number.isInteger(this.backgroundMaxKeys) &&
        this.backgroundMaxKeys >= 1 &&
        this.backgroundPauseMs >= 0
      )
    )
      throw new RangeError(
        `DeferredAlertChecks needs an integer backgroundMaxKeys >= 1 and backgroundPauseMs >= 0 (got ${opts.backgroundMaxKeys}, ${opts.backgroundPauseMs}); e.g. 500 and 100`,
      );
    this.defer = opts.defer ?? ((fn) => void setImmediate(fn));
  }

  /** Keys waiting for their check (queued, not yet started or to be retried), both lanes. */
  get pending(): number {
    return this.queued.size + this.background.size;
  }

  /** Queues keys for a check soon after the current answers; never throws, never waits. */
  enqueue(keys: readonly UpdatedKey[]): void {
    for (const k of keys) {
      const id = keyId(k);
      this.queued.set(id, k);
      this.background.delete(id);
    }
    if (this.queued.size > 0) this.kick();
  }

  /**
   * Queues keys in the background lane: checked after every key of `enqueue` (including those queued
   * later), at most `backgroundMaxKeys` per check and `backgroundPauseMs` apart. For re-checks nobody
   * waits for (the start-up catch-up, serving/alerts.ts recoverAlertChecks). Never throws, never waits.
   */
  enqueueBackground(keys: readonly UpdatedKey[]): void {
    for (const k of keys) {
      const id = keyId(k);
      if (!this.queued.has(id)) this.background.set(id, k);
    }
    if (this.background.size > 0) this.kickBackground(0);
  }

  /**
   * Runs everything queued now (a retry waiting for its backoff too) and resolves once the queue is empty,
   * or after one failed attempt (its keys stay queued for the backoff retry; a stopping process loses them).
   */
  async drain(): Promise<void> {
    for (;;) {
      if (this.running !== null) await this.running;
      if (this.queued.size === 0 && this.background.size === 0) return;
      this.clearTimer();
      this.clearBgTimer();
      const before = this.stats.failures;
      await this.runOnce();
      if (this.stats.failures !== before) return;
    }
  }

  private kick(): void {
    if (this.scheduled || this.running !== null || this.timer !== null) return;
    this.scheduled = true;
    this.defer(() => {
      this.scheduled = false;
      if (this.running === null && this.timer === null && this.queued.size > 0) void this.runOnce();
    });
  }

  /** The next background check, `pauseMs` from now, unless a check runs or waits already. */
  private kickBackground(pauseMs: number): void {
    if (this.bgTimer !== null || this.running !== null || this.timer !== null || this.scheduled) return;
    this.bgTimer = setTimeout(() => {
      this.bgTimer = null;
      if (this.running === null && this.timer === null && !this.scheduled && this.pending > 0)
        void this.runOnce();
    }, pauseMs);
    this.bgTimer.unref();
  }

  private clearBgTimer(): void {
    if (this.bgTimer !== null) clearTimeout(this.bgTimer);
    this.bgTimer = null;
  }

  private clearTimer(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  /**
   * One check of up to maxKeys queued keys, or, with none queued, of up to backgroundMaxKeys of the
   * background lane; then the next one if more wait (the background lane after its pause).
   */
  private runOnce(): Promise<void> {
    this.clearBgTimer();
    const lane = this.queued.size > 0 ? this.queued : this.background;
    const most = lane === this.queued ? this.maxKeys : this.backgroundMaxKeys;
    const batch: UpdatedKey[] = [];
    for (const [id, k] of lane) {
      if (batch.length >= most) break;
      batch.push(k);
      lane.delete(id);
    }
    // `then` runs its callback later, so `running` is set before the check can finish.
    const run = Promise.resolve()
      .then(() => this.attempt(batch, lane))
      .then(() => {
        this.running = null;
        if (this.queued.size > 0) this.kick();
        else if (this.background.size > 0) this.kickBackground(this.backgroundPauseMs);
      });
    this.running = run;
    return run;
  }

  /** Checks `batch`; on failure puts it back in its lane and arms the backoff retry. Never rejects. */
  private async attempt(batch: readonly UpdatedKey[], lane: Map<string, UpdatedKey>): Promise<void> {
    this.stats.checks++;
    try {
      await this.opts.check(batch);
      this.stats.keys += batch.length;
      this.failures = 0;
    } catch (err) {
      this.stats.failures++;
      this.failures++;
      for (const k of batch) {
        const id = keyId(k);
        // A background key queued live meanwhile is checked there.
        if (!this.queued.has(id) && !lane.has(id)) lane.set(id, k);
      }
      const delay = Math.min(this.maxBackoffMs, this.minBackoffMs * 2 ** Math.min(this.failures - 1, 30));
      this.opts.onError?.(err, this.pending, delay);
      this.clearTimer();
      this.timer = setTimeout(() => {
        this.timer = null;
        if (this.running === null && this.pending > 0) void this.runOnce();
      }, delay);
      this.timer.unref();
    }
  }
}
