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
  /** A failed check: how many keys wait, and in how many ms they are retried. */
  onError?: (err: unknown, pendingKeys: number, retryInMs: number) => void;
  /** Runs `fn` soon after the current answers are written (default: setImmediate). */
  defer?: (fn: () => void) => void;
}

export class DeferredAlertChecks {
  /** Keys waiting for a check, by "student\0topic" (a key queued twice is checked once). */
  private readonly queued = new Map<string, UpdatedKey>();
  private running: Promise<void> | null = null;
  private scheduled = false;
  private timer: NodeJS.Timeout | null = null;
  private failures = 0;
  private readonly minBackoffMs: number;
  private readonly maxBackoffMs: number;
  private readonly maxKeys: number;
  private readonly defer: (fn: () => void) => void;
  /** Counters since start (metrics, benches). */
  readonly stats = { checks: 0, keys: 0, failures: 0 };

  constructor(private readonly opts: DeferredAlertChecksOptions) {
    this.minBackoffMs = opts.minBackoffMs ?? 100;
    this.maxBackoffMs = opts.maxBackoffMs ?? 30_000;
    this.maxKeys = opts.maxKeys ?? 5000;
    if (!(this.minBackoffMs > 0 && this.maxBackoffMs >= this.minBackoffMs))
      throw new RangeError(
        `DeferredAlertChecks needs 0 < minBackoffMs <= maxBackoffMs (got ${this.minBackoffMs}, ${this.maxBackoffMs}); e.g. 100 and 30000`,
      );
    if (!(Number.isInteger(this.maxKeys) && this.maxKeys >= 1))
      throw new RangeError(
        `DeferredAlertChecks maxKeys must be an integer >= 1 (got ${opts.maxKeys}); e.g. 5000`,
      );
    this.defer = opts.defer ?? ((fn) => void setImmediate(fn));
  }

  /** Keys waiting for their check (queued, not yet started or to be retried). */
  get pending(): number {
    return this.queued.size;
  }

  /** Queues keys for a check soon after the current answers; never throws, never waits. */
  enqueue(keys: readonly UpdatedKey[]): void {
    for (const k of keys) this.queued.set(`${k.studentKey}\u0000${k.topicId}`, k);
    if (this.queued.size > 0) this.kick();
  }

  /**
   * Runs everything queued now (a retry waiting for its backoff too) and resolves once the queue is empty,
   * or after one failed attempt (its keys stay queued for the backoff retry; a stopping process loses them).
   */
  async drain(): Promise<void> {
    for (;;) {
      if (this.running !== null) await this.running;
      if (this.queued.size === 0) return;
      this.clearTimer();
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

  private clearTimer(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  /** One check of up to maxKeys queued keys; then the next one if more were queued meanwhile. */
  private runOnce(): Promise<void> {
    const batch: UpdatedKey[] = [];
    for (const [id, k] of this.queued) {
      if (batch.length >= this.maxKeys) break;
      batch.push(k);
      this.queued.delete(id);
    }
    // `then` runs its callback later, so `running` is set before the check can finish.
    const run = Promise.resolve()
      .then(() => this.attempt(batch))
      .then(() => {
        this.running = null;
        if (this.queued.size > 0) this.kick();
      });
    this.running = run;
    return run;
  }

  /** Checks `batch`; on failure puts it back in the queue and arms the backoff retry. Never rejects. */
  private async attempt(batch: readonly UpdatedKey[]): Promise<void> {
    this.stats.checks++;
    try {
      await this.opts.check(batch);
      this.stats.keys += batch.length;
      this.failures = 0;
    } catch (err) {
      this.stats.failures++;
      this.failures++;
      for (const k of batch) {
        const id = `${k.studentKey}\u0000${k.topicId}`;
        if (!this.queued.has(id)) this.queued.set(id, k);
      }
      const delay = Math.min(this.maxBackoffMs, this.minBackoffMs * 2 ** Math.min(this.failures - 1, 30));
      this.opts.onError?.(err, this.queued.size, delay);
      this.clearTimer();
      this.timer = setTimeout(() => {
        this.timer = null;
        if (this.running === null && this.queued.size > 0) void this.runOnce();
      }, delay);
      this.timer.unref();
    }
  }
}
