import type { RawEventRow } from "../storage/rawEventStore.ts";

/**
 * The server's DuckDB copy of raw rows whose system of record is elsewhere (PostgreSQL), written
 * AFTER the request that applied them was answered (issue 15): the copy is read by the data-quality
 * report, class membership and registry-model features, never by the update path, so it need not
 * hold up POST /events (it cost a DuckDB append of ~10 ms per group inside the store's queue).
 *
 *  - Rows queued while a copy is running are written together by the next one (one append each), and
 *    copies start at most one per `minGapMs` (default 500 ms): most of a copy's CPU is per copy, not per
 *    row (six DuckDB statements and the appender's flush: ~6 ms of process CPU a copy against ~9 µs a
 *    row; when every POST group was copied alone, ~10% of a busy server's POST CPU: docs/benchmarks.md
 *    "The POST's CPU, round 4 (post16, 2026-12-05)"), so under steady writes rows wait up to that long
 *    and are copied together (the copy's readers, /quality, class membership and registry-model
 *    features, see them that much later; such bodies are dropped when the copy lands); a row
 *    queued after a quiet spell is copied at once. `idle()` cuts the wait short.
 *  - The copy is idempotent (DuckRawEventStore.record keeps the first stored version of an event),
 *    so a failed copy is retried with backoff, rows kept, up to `maxPending` rows; past that the
 *    oldest are dropped with an error log (the record in PostgreSQL is complete either way).
 *  - After a copy lands, `onWritten` gets the students whose rows it wrote: the server drops their
 *    cached bodies, which may have been computed from the copy before it held these rows.
 *  - `idle()` resolves once everything queued before the call is written (or dropped): shutdown and
 *    tests wait for it.
 */
export interface RawMirrorOptions {
  /** Writes one batch (the server: DuckRawEventStore.record inside its StoreGate). */
  write: (rows: readonly RawEventRow[]) => Promise<unknown>;
  /** Called with the students of each written batch. */
  onWritten?: (studentKeys: ReadonlySet<string>) => void;
  onError?: (err: Error, pendingRows: number) => void;
  /** Most rows kept while copies fail (default 200,000). */
  maxPending?: number;
  /** First retry delay after a failed copy (ms, default 200; doubles up to 10 s). */
  retryMs?: number;
  /** Least time from one copy's start to the next one's (ms, default 500; 0: back to back). */
  minGapMs?: number;
}

export class RawMirror {
  private pending: RawEventRow[] = [];
  private running: Promise<void> | null = null;
  private failures = 0;
  /** Rows dropped because copies kept failing (logged; the record elsewhere is complete). */
  dropped = 0;
  private readonly maxPending: number;
  private readonly minGapMs: number;
  /** performance.now() at the start of the last copy. */
  private lastStart = Number.NEGATIVE_INFINITY;
  /** Ends the gap's wait now (idle() sets it: a caller waits for the copy). */
  private wake: (() => void) | null = null;
  private hurry = false;

  constructor(private readonly opts: RawMirrorOptions) {
    this.maxPending = opts.maxPending ?? 200_000;
    this.minGapMs = opts.minGapMs ?? 500;
    if (!(this.minGapMs >= 0))
      throw new RangeError(`RawMirror minGapMs must be >= 0 ms (got ${opts.minGapMs}); e.g. 500`);
  }

  /** Queues rows for the copy and returns at once. */
  enqueue(rows: readonly RawEventRow[]): void {
    if (rows.length === 0) return;
    for (const r of rows) this.pending.push(r);
    const over = this.pending.length - this.maxPending;
    if (over > 0) {
      this.pending.splice(0, over);
      this.dropped += over;
    }
    if (this.running === null) this.running = this.loop();
  }

  /** Resolves when no copy is queued or running. */
  async idle(): Promise<void> {
    while (this.running !== null) {
      this.hurry = true;
      this.wake?.();
      await this.running;
    }
  }

  /** Waits out the rest of the gap since the last copy's start (unless idle() hurries the copy). */
  private gap(left: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.wake = null;
        resolve();
      }, left);
      timer.unref();
      this.wake = () => {
        clearTimeout(timer);
        this.wake = null;
        resolve();
      };
    });
  }

  private async loop(): Promise<void> {
    try {
      while (this.pending.length > 0) {
        // (No await when there is nothing to wait for: the first copy starts within enqueue().)
        const left = this.lastStart + this.minGapMs - performance.now();
        if (left > 0 && !this.hurry) await this.gap(left);
        this.lastStart = performance.now();
        const batch = this.pending;
        this.pending = [];
        try {
          await this.opts.write(batch);
          this.failures = 0;
          this.opts.onWritten?.(new Set(batch.map((r) => r.student_key)));
        } catch (err) {
          this.failures++;
          // Back in front of anything queued meanwhile, the oldest first; bounded by maxPending.
          this.pending = batch.concat(this.pending);
          const over = this.pending.length - this.maxPending;
          if (over > 0) {
            this.pending.splice(0, over);
            this.dropped += over;
          }
          this.opts.onError?.(err as Error, this.pending.length);
          const delay = Math.min(10_000, (this.opts.retryMs ?? 200) * 2 ** (this.failures - 1));
          await new Promise((r) => setTimeout(r, delay).unref());
        }
      }
    } finally {
      this.running = null;
      this.hurry = false;
    }
  }
}
