import { join } from "node:path";
import { Worker } from "node:worker_threads";
import type { RuleConfig, RuleStateColumns } from "../models/ruleScorer.ts";
import { poolHeapMb, watchPoolThread } from "./poolThread.ts";
import type { RuleWorkerReply, RuleWorkerSetup, RuleWorkerTask } from "./ruleScoringWorker.ts";

/** Default heap cap of each scoring thread in MB (env RULE_WORKER_HEAP): a thread holds ~1 MB of lines at a time. */
export const RULE_WORKER_HEAP_MB = 64;

export class RuleWorkerError extends Error {
  readonly code = "RULE_WORKER";
  constructor(message: string) {
    super(message);
    this.name = "RuleWorkerError";
  }
}

interface Pending {
  resolve: () => void;
  reject: (err: Error) => void;
}

/**
 * Persistent scoring threads for the rule job (serving/ruleScoring.ts): started once per run, each writes
 * its own TSV file (ruleScoringWorker.ts), and every block of shared state columns is split between them.
 * Starting a thread costs ~0.5 s (it registers tsx from source), so a pool instead of threads per block;
 * each thread's old generation is capped (`heapMb`), so a runaway thread fails with an error instead of
 * growing the process past the batch's memory budget.
 */
export class RuleWorkerPool {
  private readonly pending = new Map<number, Pending>();
  private readonly progress = new Map<number, (done: number) => void>();
  private nextId = 0;
  private failure: Error | null = null;
  private readonly closed: Promise<number>[] = [];

  private constructor(
    private readonly workers: Worker[],
    /** The threads' output files, one each. */
    readonly paths: readonly string[],
  ) {}

  static start(
    size: number,
    config: RuleConfig,
    asOfUs: number,
    dir: string,
    heapMb = heapFromEnv(),
  ): RuleWorkerPool {
    if (!Number.isInteger(size) || size < 1)
      throw new RuleWorkerError(`rule worker pool size must be an integer >= 1 (got ${size})`);
    // From source a bootstrap registers tsx in the thread first; compiled (dist/) runs the JavaScript body directly.
    const entry = import.meta.url.endsWith(".ts")
      ? new URL("./ruleScoringWorkerEntry.mjs", import.meta.url)
      : new URL("./ruleScoringWorker.js", import.meta.url);
    const paths: string[] = [];
    const workers: Worker[] = [];
    for (let w = 0; w < size; w++) {
      const path = join(dir, `scores-${w}.tsv`);
      paths.push(path);
      const setup: RuleWorkerSetup = { config, asOfUs, path };
      workers.push(
        new Worker(entry, { workerData: setup, resourceLimits: { maxOldGenerationSizeMb: heapMb } }),
      );
    }
    const pool = new RuleWorkerPool(workers, paths);
    for (const [w, worker] of workers.entries()) pool.watch(worker, w, heapMb);
    return pool;
  }

  get size(): number {
    return this.workers.length;
  }

  private watch(worker: Worker, w: number, heapMb: number): void {
    this.closed.push(
      watchPoolThread<RuleWorkerReply>(worker, {
        name: `rule scoring thread ${w}`,
        heapMb,
        heapEnv: "RULE_WORKER_HEAP",
        makeError: (message) => new RuleWorkerError(message),
        closedCount: (m) => ("closed" in m ? m.rows : undefined),
        onMessage: (m) => {
          if ("closed" in m) return;
          this.progress.get(m.id)?.(m.done);
          if (m.finished) {
            this.progress.delete(m.id);
            this.pending.get(m.id)?.resolve();
            this.pending.delete(m.id);
          }
        },
        onFailure: (e) => {
          this.failure ??= e;
          for (const p of this.pending.values()) p.reject(e);
          this.pending.clear();
        },
      }),
    );
  }

  /**
   * Scores rows [0, rows) of one block, split evenly between the threads. The arrays must be views of
   * SharedArrayBuffers and must not be refilled before the promise resolves. `onDone(k)`: k rows of this
   * block are scored so far.
   */
  score(
    block: { rid: Float64Array; cols: RuleStateColumns },
    rows: number,
    onDone?: (done: number) => void,
  ): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    const per = Math.ceil(rows / this.workers.length);
    const done = new Array<number>(this.workers.length).fill(0);
    const runs: Promise<void>[] = [];
    this.workers.forEach((worker, w) => {
      const from = w * per;
      const to = Math.min(rows, from + per);
      if (from >= to) return;
      const id = this.nextId++;
      runs.push(
        new Promise<void>((resolve, reject) => {
          this.pending.set(id, { resolve, reject });
        }),
      );
      if (onDone)
        this.progress.set(id, (k) => {
          done[w] = k;
          onDone(done.reduce((a, b) => a + b, 0));
        });
      const task: RuleWorkerTask = { id, ...block, from, to };
      worker.postMessage(task);
    });
    return Promise.all(runs).then(() => {});
  }

  /** Closes every thread's file and ends the threads; resolves with the rows written in all. */
  async close(): Promise<number> {
    for (const worker of this.workers) worker.postMessage({ close: true });
    const rows = await Promise.all(this.closed);
    return rows.reduce((a, b) => a + b, 0);
  }

  /** Ends the threads at once (after a failure); their files are left as they are. */
  async terminate(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}

function heapFromEnv(): number {
  return poolHeapMb("RULE_WORKER_HEAP", RULE_WORKER_HEAP_MB, 16, (m) => new RuleWorkerError(m));
}
