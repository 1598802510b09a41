import type { RawEventRow } from "../storage/rawEventStore.ts";
import { storeErrorKind } from "../storage/storeErrors.ts";
import type { ApplyResult, EventUpdater } from "./updater.ts";

/**
 * Group commit for POST /events: requests that arrive while a batch is being applied wait, and are
 * then applied together as ONE batch of the updater (one raw append, one state load and commit, one
 * score write, one alert-check enqueue), instead of one after the other. Most of a batch's cost is per
 * statement and per commit, not per row, so under concurrent writers this multiplies the write
 * throughput, and every request still gets its own answer only once its rows are durable.
 *
 * The guarantees of the one update path (serving/updater.ts, docs/runbook.md "Write-path contract"):
 *  - a request resolves only after the group's apply and its `after` step resolved (durable in the
 *    stores readers use); its results are its own rows' results, in its row order;
 *  - an event sent by two requests of one group is applied once: the first row is `applied`, the
 *    other `duplicate`, and both requests are answered after the commit that applied it;
 *  - when the group fails on a value (a data error) and holds more than one request, each request is
 *    applied alone, so only the request that carries the value fails (and eventIntake then isolates
 *    the item); any other failure (a store down) fails every request of the group: nothing of the
 *    group is acknowledged and the clients' retries are safe (idempotent by event_id).
 * Groups start in arrival order, at most `maxRows` rows each (a request bigger than that forms a group
 * alone); one at a time, or (`pipelined`) the next one's state update overlapping this one's score write.
 */
export interface CoalescingOptions {
  /** Runs one group's store work (the embedded server's StoreGate; default: directly). */
  run?: <T>(fn: () => Promise<T>) => Promise<T>;
  /**
   * Inside `run`, around the apply alone (not `after`): the embedded server's one DuckDB transaction
   * per group, so the raw append, state commit and score write of a group are one commit (one WAL
   * flush) and land together or not at all. Default: none (each store commits on its own).
   */
  atomic?: <T>(fn: () => Promise<T>) => Promise<T>;
  /** Inside `run`, after a successful apply: e.g. queueing the alert check and the raw mirror, once per group. */
  after?: (rows: readonly RawEventRow[], results: readonly ApplyResult[]) => Promise<void>;
  /** Most rows per group (default 5,000). */
  maxRows?: number;
  /**
   * Start the next group as soon as the updater's state stage is free (`stateStageIdle`), while this
   * group's scores are still being written (an IncrementalUpdater with `pipelineMastery`: its own
   * connection for the score write). Each request is still answered only after its own group's apply
   * and `after` resolved. Only without `run` / `atomic` (a shared queue would take the next group
   * before this one ran). Default false: one group at a time.
   */
  pipelined?: boolean;
}

interface Waiter {
  rows: readonly RawEventRow[];
  resolve(results: ApplyResult[]): void;
  reject(err: unknown): void;
}

/** Counters since the updater was made (benchmarks and logs read them). */
export interface CoalescingStats {
  groups: number;
  requests: number;
  rows: number;
  /** Most requests applied in one group. */
  largestGroup: number;
  /** Groups that failed on a value and were applied request by request. */
  splits: number;
}

export class CoalescingUpdater implements EventUpdater {
  readonly stats: CoalescingStats = { groups: 0, requests: 0, rows: 0, largestGroup: 0, splits: 0 };
  private readonly queue: Waiter[] = [];
  private draining = false;
  private readonly maxRows: number;
  private readonly run: <T>(fn: () => Promise<T>) => Promise<T>;

  constructor(
    private readonly inner: EventUpdater,
    private readonly opts: CoalescingOptions = {},
  ) {
    this.maxRows = opts.maxRows ?? 5000;
    if (!Number.isInteger(this.maxRows) || this.maxRows < 1)
      throw new RangeError(
        `CoalescingUpdater maxRows must be an integer >= 1 (got ${opts.maxRows}); e.g. 5000`,
      );
    this.run = opts.run ?? ((fn) => fn());
    if (opts.pipelined === true && (opts.run !== undefined || opts.atomic !== undefined))
      throw new RangeError(
        "CoalescingUpdater pipelined needs the updater's own stages: drop `run` and `atomic`, or set pipelined: false",
      );
  }

  apply(rows: readonly RawEventRow[]): Promise<ApplyResult[]> {
    if (rows.length === 0) return Promise.resolve([]);
    return new Promise<ApplyResult[]>((resolve, reject) => {
      this.queue.push({ rows, resolve, reject });
      if (!this.draining) void this.drain();
    });
  }

  applied(rows: readonly RawEventRow[]): Promise<Set<string>> {
    const inner = this.inner;
    if (inner.applied === undefined) return Promise.resolve(new Set());
    return this.run(() => inner.applied!(rows));
  }

  stateStageIdle(): Promise<void> {
    return this.inner.stateStageIdle?.() ?? Promise.resolve();
  }

  private async drain(): Promise<void> {
    this.draining = true;
    try {
      while (this.queue.length > 0) {
        const flushed = this.flush(this.take());
        const idle = this.opts.pipelined === true ? this.inner.stateStageIdle?.() : undefined;
        // Pipelined: the next group may start once this one's state update is done (its scores being
        // written); flush never rejects (it answers its requests), so the race only picks the earlier.
        await (idle === undefined ? flushed : Promise.race([flushed, idle]));
      }
    } finally {
      this.draining = false;
    }
  }

  /** The next group: the oldest request, then the following ones while they fit in maxRows. */
  private take(): Waiter[] {
    const group = [this.queue.shift()!];
    let n = group[0]!.rows.length;
    while (this.queue.length > 0 && n + this.queue[0]!.rows.length <= this.maxRows) {
      const w = this.queue.shift()!;
      n += w.rows.length;
      group.push(w);
    }
    return group;
  }

  private once(rows: readonly RawEventRow[]): Promise<ApplyResult[]> {
    const atomic = this.opts.atomic;
    return this.run(async () => {
      const results =
        atomic === undefined ? await this.inner.apply(rows) : await atomic(() => this.inner.apply(rows));
      await this.opts.after?.(rows, results);
      return results;
    });
  }

  private async flush(group: Waiter[]): Promise<void> {
    const s = this.stats;
    s.groups++;
    s.requests += group.length;
    s.largestGroup = Math.max(s.largestGroup, group.length);
    const rows = group.length === 1 ? group[0]!.rows : group.flatMap((w) => w.rows);
    s.rows += rows.length;
    let results: ApplyResult[];
    try {
      results = await this.once(rows);
    } catch (err) {
      if (group.length === 1 || storeErrorKind(err) !== "data") {
        for (const w of group) w.reject(err);
        return;
      }
      s.splits++;
      for (const w of group) {
        try {
          w.resolve(await this.once(w.rows));
        } catch (e) {
          w.reject(e);
        }
      }
      return;
    }
    // One result per row, in row order (EventUpdater.apply's contract).
    let at = 0;
    for (const w of group) {
      w.resolve(results.slice(at, at + w.rows.length));
      at += w.rows.length;
    }
  }
}
