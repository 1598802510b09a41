import { setImmediate as nextTurn } from "node:timers/promises";

/**
 * Cooperative slicing of long synchronous work on the event loop (a POST /events batch of 1,000
 * events, the fold of a key's events). Between two items the caller asks `due`; once `sliceMs` has
 * passed since the last yield, `yield()` gives the loop one turn (setImmediate: pending I/O and
 * timers run, e.g. a /healthz request), so no slice holds the loop much longer than `sliceMs`.
 *
 *   const budget = new EventLoopBudget();
 *   for (const item of items) {
 *     if (budget.due) await budget.yield();
 *     work(item);
 *   }
 *
 * One budget per unit of work (a request); it is not shared between concurrent requests.
 */
export class EventLoopBudget {
  private last: number;
  /** Turns given to the loop so far (tests and benchmarks read it). */
  yields = 0;

  constructor(
    readonly sliceMs = DEFAULT_SLICE_MS,
    private readonly clock: () => number = () => performance.now(),
  ) {
    if (!(sliceMs > 0))
      throw new RangeError(`EventLoopBudget sliceMs must be > 0 milliseconds (got ${sliceMs}); e.g. 5`);
    this.last = clock();
  }

  /** True once the current slice has used its time: call `yield()` before the next item. */
  get due(): boolean {
    return this.clock() - this.last >= this.sliceMs;
  }

  /**
   * Starts a new slice without a turn: call it after an `await` of I/O (the loop ran meanwhile), so the
   * time spent waiting is not counted as this slice's and does not cost an extra turn right after.
   */
  resume(): void {
    this.last = this.clock();
  }

  /** Gives the event loop one turn and starts a new slice. */
  async yield(): Promise<void> {
    await nextTurn();
    this.yields++;
    this.last = this.clock();
  }
}

/** 5 ms: a /healthz answer waits at most about this long for a batch's synchronous part. */
export const DEFAULT_SLICE_MS = 5;
