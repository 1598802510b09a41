import cluster, { type Worker } from "node:cluster";

/**
 * `mastery serve --workers N`: the primary process forks N server processes (node:cluster; they
 * share the listening port, the primary hands out connections round-robin) and supervises them:
 * - a worker that dies unexpectedly is replaced (after 1 s, doubling to 30 s while it keeps dying
 *   within 10 s of its start);
 * - SIGHUP: rolling restart, one worker at a time, the new one listening before the old one drains;
 * - SIGTERM / SIGINT: every worker drains (stop accepting, finish in-flight, close keep-alive) and
 *   the primary exits once all have, or after the shutdown timeout + 2 s.
 * Each worker runs the same command line with MASTERY_WORKER_ID=1..N in its environment.
 */
export const WORKER_ID_ENV = "MASTERY_WORKER_ID";
/**
 * Which DuckDB file the worker opens (<db>.workerS): its id, or id + N for the replacement started
 * by a rolling restart while the old worker still holds the id's file.
 */
export const WORKER_SLOT_ENV = "MASTERY_WORKER_SLOT";

export interface SuperviseOptions {
  workers: number;
  shutdownMs: number;
  log: (msg: string, fields?: Record<string, unknown>) => void;
}

export function workerId(): number | null {
  const v = process.env[WORKER_ID_ENV];
  return cluster.isWorker && v !== undefined ? Number(v) : null;
}

export function workerSlot(): number | null {
  const v = process.env[WORKER_SLOT_ENV];
  return cluster.isWorker && v !== undefined ? Number(v) : workerId();
}

export function superviseWorkers(opts: SuperviseOptions): Promise<number> {
  const byId = new Map<number, Worker>();
  const startedAt = new Map<Worker, number>();
  const backoff = new Map<number, number>();
  const retiring = new Set<Worker>();
  let stopping = false;

  const slots = new Map<number, number>();
  const fork = (id: number, slot = slots.get(id) ?? id): Worker => {
    slots.set(id, slot);
    const w = cluster.fork({ [WORKER_ID_ENV]: String(id), [WORKER_SLOT_ENV]: String(slot) });
    byId.set(id, w);
    startedAt.set(w, Date.now());
    w.on("exit", (code, signal) => {
      if (byId.get(id) === w) byId.delete(id);
      if (stopping || retiring.has(w)) return;
      const lived = Date.now() - (startedAt.get(w) ?? 0);
      const delay = lived < 10_000 ? Math.min(30_000, (backoff.get(id) ?? 500) * 2) : 1000;
      backoff.set(id, delay);
      opts.log("server worker exited unexpectedly; replacing it", { worker: id, code, signal, inMs: delay });
      setTimeout(() => {
        if (!stopping) fork(id);
      }, delay).unref();
    });
    return w;
  };
  const listening = (w: Worker, ms: number) =>
    new Promise<boolean>((resolve) => {
      const t = setTimeout(() => resolve(false), ms);
      w.once("listening", () => {
        clearTimeout(t);
        resolve(true);
      });
      w.once("exit", () => {
        clearTimeout(t);
        resolve(false);
      });
    });
  const exited = (w: Worker, ms: number) =>
    new Promise<void>((resolve) => {
      if (w.isDead()) return resolve();
      const t = setTimeout(() => {
        w.process.kill("SIGKILL");
        resolve();
      }, ms);
      w.once("exit", () => {
        clearTimeout(t);
        resolve();
      });
    });

  // Worker 1 first: it creates the PostgreSQL tables (concurrent CREATE TABLE IF NOT EXISTS of one
  // table in a new schema can fail), then the others.
  void listening(fork(1), 120_000).then(() => {
    for (let id = 2; id <= opts.workers; id++) if (!stopping) fork(id);
  });

  let rolling = false;
  process.on("SIGHUP", () => {
    if (rolling || stopping) return;
    rolling = true;
    void (async () => {
      opts.log("SIGHUP: rolling restart of the server workers", { workers: byId.size });
      for (const [id, old] of [...byId.entries()]) {
        if (stopping) break;
        retiring.add(old);
        const oldSlot = slots.get(id) ?? id;
        const fresh = fork(id, oldSlot === id ? id + opts.workers : id);
        const ok = await listening(fresh, 60_000);
        if (!ok) {
          opts.log("rolling restart: the new worker did not start listening; keeping the old one", {
            worker: id,
          });
          retiring.add(fresh);
          fresh.process.kill("SIGKILL");
          retiring.delete(old);
          byId.set(id, old);
          slots.set(id, oldSlot);
          break;
        }
        old.process.kill("SIGTERM");
        await exited(old, opts.shutdownMs + 2000);
      }
      rolling = false;
      opts.log("rolling restart done", { workers: byId.size });
    })();
  });

  return new Promise<number>((resolve) => {
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      const all = [...(cluster.workers ? Object.values(cluster.workers) : [])].filter(
        (w): w is Worker => w !== undefined,
      );
      opts.log("stopping: every server worker drains", { signal, workers: all.length });
      for (const w of all) w.process.kill("SIGTERM");
      void Promise.all(all.map((w) => exited(w, opts.shutdownMs + 2000))).then(() => {
        const clean = all.every((w) => w.process.exitCode === 0);
        resolve(clean ? 0 : 1);
      });
    };
    process.on("SIGTERM", () => stop("SIGTERM"));
    process.on("SIGINT", () => stop("SIGINT"));
  });
}
