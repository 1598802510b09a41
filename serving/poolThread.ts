import type { Worker } from "node:worker_threads";

/**
 * The lifecycle both batch thread pools share (serving/ruleWorkerPool.ts, serving/servedBatch.ts): a persistent
 * thread that writes its own output file, replies per task, and answers a final `close` with what it wrote.
 * `watchPoolThread` routes the thread's replies, turns an error, an exit before the close or running out of its
 * capped heap into one named error (`onFailure`, once per thread), and resolves with the close reply's count.
 */
export interface PoolThreadWatch<M> {
  /** Names the thread in errors, e.g. "rule scoring thread 0". */
  name: string;
  heapMb: number;
  /** The environment variable that raises the heap cap (named in the out-of-memory error). */
  heapEnv: string;
  makeError: (message: string) => Error;
  /** The count a close reply carries; undefined for any other reply. */
  closedCount: (m: M) => number | undefined;
  onMessage: (m: M) => void;
  onFailure: (err: Error) => void;
}

/** Watches one thread (see the module comment); the promise rejects with the failure if the thread fails. */
export function watchPoolThread<M>(worker: Worker, w: PoolThreadWatch<M>): Promise<number> {
  let closedOk: (n: number) => void = () => {};
  let closedFail: (err: Error) => void = () => {};
  const closed = new Promise<number>((ok, fail) => {
    closedOk = ok;
    closedFail = fail;
  });
  // A failed close is reported by the pool's close(); this keeps it from being an unhandled rejection meanwhile.
  closed.catch(() => {});
  let wasClosed = false;
  worker.on("message", (m: M) => {
    const n = w.closedCount(m);
    if (n !== undefined) {
      wasClosed = true;
      closedOk(n);
      return;
    }
    w.onMessage(m);
  });
  const fail = (err: Error): void => {
    const e =
      (err as { code?: string }).code === "ERR_WORKER_OUT_OF_MEMORY"
        ? w.makeError(
            `${w.name} ran out of its ${w.heapMb} MB heap: raise ${w.heapEnv} (MB), e.g. ${w.heapEnv}=${w.heapMb * 4}`,
          )
        : w.makeError(`${w.name} failed: ${err.message}`);
    w.onFailure(e);
    closedFail(e);
  };
  worker.on("error", fail);
  worker.on("exit", (code) => {
    if (!wasClosed) fail(new Error(`exited with code ${code} before it was closed`));
  });
  return closed;
}

/** A thread's heap cap in MB from `env` (a whole number >= `min`), else `fallback`. */
export function poolHeapMb(
  env: string,
  fallback: number,
  min: number,
  makeError: (message: string) => Error,
): number {
  const raw = process.env[env];
  if (raw === undefined || raw === "") return fallback;
  const mb = Number(raw);
  if (!Number.isInteger(mb) || mb < min)
    throw makeError(`${env} must be a whole number of MB >= ${min} (got "${raw}"); e.g. ${fallback}`);
  return mb;
}
