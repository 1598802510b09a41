import { mkdirSync, writeFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import { Worker } from "node:worker_threads";
import {
  BKT,
  type BktOptions,
  type BktSkillFit,
  betterFit,
  EmScratch,
  fitRestart,
  groupBySkill,
  type SkillResponses,
  type SkillSequences,
  skillRows,
} from "../models/bkt.ts";
import { loadResponses, type ReadOptions, type ResponseColumns } from "./responses.ts";

/** One EM run: a skill and a restart index (the restart's start point derives from seed, skill name, index). */
export interface BktJob {
  skill: number;
  restart: number;
}

export interface BktJobResult {
  skill: number;
  fit: BktSkillFit;
}

/** Sent once to each worker; the typed arrays are backed by SharedArrayBuffers, so nothing is copied. */
export interface BktWorkerData {
  skillNames: readonly string[];
  obs: Uint8Array;
  seqStart: Int32Array;
  skillSeq: Int32Array;
  options: BktOptions;
  maxSkillRows: number;
}

export interface BktFitRunOptions {
  /** Compute threads including this one (default: available cores). 1 = no workers. */
  threads?: number;
  /** Called after every finished job with (done, total). */
  onProgress?: (done: number, total: number) => void;
}

/**
 * Fits BKT on every skill of `log`, running the (skill, restart) EM jobs on this thread plus
 * `threads - 1` worker threads. Each job is a pure function of (data, options, skill, restart) and the
 * kept restart per skill is chosen by an order-independent rule, so the model is identical for any
 * thread count. Biggest skills go first so the last jobs are short (longest-processing-time order).
 */
export async function fitBktParallel(
  log: SkillResponses,
  options: Partial<BktOptions>,
  run: BktFitRunOptions = {},
): Promise<BKT> {
  const started = performance.now();
  const model = new BKT(options);
  const opts = model.options;
  const data = groupBySkill(log, (bytes) => new SharedArrayBuffer(bytes));
  const nSkills = data.skillNames.length;
  const jobs: BktJob[] = [];
  let maxSkillRows = 0;
  for (let s = 0; s < nSkills; s++) {
    const rows = skillRows(data, s);
    maxSkillRows = Math.max(maxSkillRows, rows);
    if (rows > 0) for (let r = 0; r < opts.restarts; r++) jobs.push({ skill: s, restart: r });
  }
  jobs.sort(
    (a, b) =>
      skillRows(data, b.skill) - skillRows(data, a.skill) || a.skill - b.skill || a.restart - b.restart,
  );

  const best: (BktSkillFit | undefined)[] = new Array(nSkills);
  let done = 0;
  const accept = (r: BktJobResult): void => {
    const cur = best[r.skill];
    if (cur === undefined || betterFit(r.fit, cur)) best[r.skill] = r.fit;
    done++;
    run.onProgress?.(done, jobs.length);
  };

  const threads = Math.max(1, Math.min(run.threads ?? availableParallelism(), jobs.length));
  await runJobs(data, opts, maxSkillRows, jobs, threads - 1, accept);

  model.setFits(data, best);
  model.fitSeconds = (performance.now() - started) / 1000;
  return model;
}

/**
 * Work queue shared by this thread and `nWorkers` workers. This thread computes too, yielding to the
 * event loop between jobs so worker results are collected and workers are fed; it also covers the
 * workers' start-up time. If a worker fails, its job goes back on the queue and this thread finishes.
 */
async function runJobs(
  data: SkillSequences,
  options: BktOptions,
  maxSkillRows: number,
  jobs: readonly BktJob[],
  nWorkers: number,
  accept: (r: BktJobResult) => void,
): Promise<void> {
  let next = 0;
  const retry: BktJob[] = [];
  const take = (): BktJob | undefined => retry.pop() ?? (next < jobs.length ? jobs[next++] : undefined);
  let pending = 0;
  const workers: Worker[] = [];
  let workerError: Error | undefined;
  let wake: (() => void) | undefined;
  const signal = (): void => {
    const w = wake;
    wake = undefined;
    w?.();
  };

  const workerData: BktWorkerData = {
    skillNames: data.skillNames,
    obs: data.obs,
    seqStart: data.seqStart,
    skillSeq: data.skillSeq,
    options,
    maxSkillRows,
  };
  for (let i = 0; i < nWorkers; i++) {
    // From source a bootstrap registers tsx in the thread first; compiled (dist/) runs the JavaScript body directly.
    const entry = import.meta.url.endsWith(".ts")
      ? new URL("./bktWorker.js", import.meta.url)
      : new URL("./bktWorkerBody.js", import.meta.url);
    const w = new Worker(entry, { workerData });
    let inFlight: BktJob | undefined;
    const feed = (): void => {
      inFlight = take();
      if (inFlight !== undefined) {
        pending++;
        w.postMessage(inFlight);
      }
    };
    w.on("message", (msg: BktJobResult | "ready") => {
      if (msg !== "ready") {
        pending--;
        accept(msg);
      }
      feed();
      signal();
    });
    w.on("error", (err) => {
      workerError = err;
      if (inFlight !== undefined) {
        pending--;
        retry.push(inFlight);
        inFlight = undefined;
      }
      signal();
    });
    workers.push(w);
  }

  const scratch = new EmScratch(maxSkillRows);
  try {
    for (;;) {
      const job = take();
      if (job !== undefined) {
        accept({ skill: job.skill, fit: fitRestart(data, job.skill, job.restart, options, scratch) });
        if (nWorkers > 0) await new Promise<void>((r) => setImmediate(r));
        continue;
      }
      if (pending === 0) break;
      await new Promise<void>((r) => {
        wake = r;
      });
    }
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
  // A worker that failed had its job redone here; the model is still complete, so only note it.
  if (workerError !== undefined && process.env.MASTERY_DEBUG === "1")
    process.stderr.write(`bkt worker failed, its jobs ran on the main thread: ${workerError.message}\n`);
}

// `mastery evaluate` finds BKT models through the predictor registry.

export interface TrainBktOptions extends BktFitRunOptions {
  data: string;
  columns: ResponseColumns;
  sep?: string;
  out: string;
  options: Partial<BktOptions>;
  /** Skip policy and row report for the data file. */
  read?: ReadOptions;
}

/**
 * The BKT training job (`mastery train bkt`, and the retrain job's default for BKT champions): loads the
 * log, fits, writes out/model.json (the model plus the data file and the number of skipped rows).
 */
export async function trainBkt(
  opts: TrainBktOptions,
): Promise<{ model: BKT; modelPath: string; skipped: number }> {
  const log = loadResponses(opts.data, opts.columns, opts.sep, opts.read);
  const model = await fitBktParallel(log, opts.options, {
    ...(opts.threads === undefined ? {} : { threads: opts.threads }),
    ...(opts.onProgress === undefined ? {} : { onProgress: opts.onProgress }),
  });
  mkdirSync(opts.out, { recursive: true });
  const modelPath = join(opts.out, "model.json");
  writeFileSync(
    modelPath,
    `${JSON.stringify({ ...model.toJSON(), data: opts.data, skippedRows: log.skipped }, null, 2)}\n`,
  );
  return { model, modelPath, skipped: log.skipped };
}
