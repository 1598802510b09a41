/**
 * Worker threads for GBT training (a process resource, so not in models/): the pool that
 * models/gbtHistogram.ts ParallelHistogramBuilder runs on, and `gbtThreads`, the runtime that keeps
 * idle pools between fits. Pass it to a multi-threaded fit:
 * `new GradientBoostedTrees({ nThreads: 4 }).fit(X, y, { threads: gbtThreads })`.
 */
import { MessageChannel, type MessagePort, receiveMessageOnPort, Worker } from "node:worker_threads";
import type { BinJob } from "../models/gbtBinning.ts";
import {
  GBT_POOL_PROTOCOL,
  type GbtKernels,
  type GbtPool,
  type GbtShared,
  type GbtThreadRuntime,
} from "../models/gbtHistogram.ts";

const { runBlock, emptyShared } = GBT_POOL_PROTOCOL;
const { SEQ, CMD, NEXT, FINISHED, NBLOCKS, BLOCKSIZE, FAILED, CTL_WORDS } = GBT_POOL_PROTOCOL.ctl;
const { CMD_EXIT, CMD_REBIND, CMD_BIN } = GBT_POOL_PROTOCOL.cmd;
const MAX_TASKS = GBT_POOL_PROTOCOL.MAX_TASKS;
type Shared = GbtShared;
type Kernels = GbtKernels;

/**
 * Worker threads for GBT training: `threads - 1` workers plus the caller, which all run the blocks of one task
 * at a time (runBlock). A fit takes a pool with acquireGbtThreads (binning runs on it), binds its training
 * arrays through ParallelHistogramBuilder, and gives it back with releaseGbtThreads.
 */
export class GbtThreads implements GbtPool {
  /** The arrays the threads currently work on. */
  s: Shared;
  readonly nWorkers: number;
  private readonly kernels: Kernels = GBT_POOL_PROTOCOL.kernels();
  private readonly workers: Worker[] = [];
  private readonly ports: MessagePort[] = [];
  private seq = 0;

  constructor(threads: number) {
    this.s = emptyShared(new Int32Array(new SharedArrayBuffer(4 * CTL_WORDS)));
    this.nWorkers = threads - 1;
    const source = GBT_POOL_PROTOCOL.workerSource();
    for (let i = 0; i < this.nWorkers; i++) {
      const { port1, port2 } = new MessageChannel();
      const worker = new Worker(source, {
        eval: true,
        workerData: { shared: this.s, port: port2 },
        transferList: [port2],
      });
      worker.unref();
      port1.unref();
      this.workers.push(worker);
      this.ports.push(port1);
    }
  }

  sharedF64(length: number): Float64Array {
    return new Float64Array(new SharedArrayBuffer(8 * length));
  }

  sharedU8(length: number): Uint8Array {
    return new Uint8Array(new SharedArrayBuffer(length));
  }

  sharedI32(length: number): Int32Array {
    return new Int32Array(new SharedArrayBuffer(4 * length));
  }

  /** Makes every thread work on `s` from the next task on. */
  rebind(s: Shared): void {
    this.s = s;
    if (this.nWorkers === 0) return;
    for (const p of this.ports) p.postMessage(s);
    s.ctl[CMD] = CMD_REBIND;
    s.ctl[NBLOCKS] = this.nWorkers;
    this.dispatch(this.nWorkers);
    this.await(this.nWorkers);
  }

  binColumns(job: BinJob, minGroup: number): void {
    this.rebind({ ...this.s, job });
    const ctl = this.s.ctl;
    // At most MAX_TASKS blocks per task (the claim word has 8 bits for them).
    const group = Math.max(minGroup, Math.ceil(job.nCols / MAX_TASKS));
    ctl[CMD] = CMD_BIN;
    ctl[BLOCKSIZE] = group;
    ctl[NBLOCKS] = Math.ceil(job.nCols / group);
    this.run(ctl[NBLOCKS]!);
    this.rebind({ ...this.s, job: null });
  }

  /** Publishes the task set up in ctl, works on its blocks alongside the workers and waits for all of them. */
  run(nBlocks: number): void {
    const ctl = this.s.ctl;
    let failure: unknown = null;
    this.dispatch(nBlocks);
    for (;;) {
      const cur = Atomics.load(ctl, NEXT);
      const blk = cur & 0xff;
      if (blk >= nBlocks) break;
      if (Atomics.compareExchange(ctl, NEXT, cur, cur + 1) !== cur) continue;
      try {
        runBlock(this.s, this.kernels, blk);
      } catch (e) {
        failure ??= e;
      }
      Atomics.add(ctl, FINISHED, 1);
    }
    // Always wait for the workers' blocks: the next task must not start while one of this task runs.
    this.await(nBlocks);
    if (failure !== null || Atomics.load(ctl, FAILED) === 1) {
      const msgs = this.ports.map((p) => receiveMessageOnPort(p)?.message).filter((m) => m !== undefined);
      this.close();
      if (failure !== null) throw failure;
      throw new Error(`GBT worker thread failed: ${msgs.join("; ")}`);
    }
  }

  /** Publishes the task set up in ctl to the workers. */
  private dispatch(nBlocks: number): void {
    const ctl = this.s.ctl;
    this.seq = (this.seq + 1) & 0x7fff;
    Atomics.store(ctl, FINISHED, 0);
    Atomics.store(ctl, NEXT, (this.seq << 16) | (nBlocks << 8));
    Atomics.store(ctl, SEQ, this.seq);
    Atomics.notify(ctl, SEQ);
  }

  /** Waits until `nBlocks` blocks of the current task are finished (spinning briefly first). */
  private await(nBlocks: number): void {
    const ctl = this.s.ctl;
    for (let spin = 0; spin < 100000 && Atomics.load(ctl, FINISHED) < nBlocks; spin++);
    for (;;) {
      const done = Atomics.load(ctl, FINISHED);
      if (done >= nBlocks) break;
      Atomics.wait(ctl, FINISHED, done);
    }
  }

  /** True once close() ran (also after a worker failed): the pool must not be used again. */
  get closed(): boolean {
    return this.workers.length === 0 && this.nWorkers > 0;
  }

  close(): void {
    const ctl = this.s.ctl;
    Atomics.store(ctl, CMD, CMD_EXIT);
    Atomics.store(ctl, SEQ, (this.seq + 1) & 0x7fff);
    Atomics.notify(ctl, SEQ);
    for (const w of this.workers) void w.terminate();
    for (const p of this.ports) p.close();
    this.workers.length = 0;
  }
}

/**
 * Idle pools kept between fits: a new pool's workers run their code cold (interpreted until V8 optimises it),
 * which costs a fit about 0.1-0.2 s; a reused pool's code is already optimised. Idle workers sleep in
 * Atomics.wait (no CPU), hold no training arrays, and do not keep the process alive (unref'd).
 */
const idlePools: GbtThreads[] = [];

/** A pool with `threads` threads (the caller counts as one): an idle one if there is one, else a new one. */
export function acquireGbtThreads(threads: number): GbtThreads {
  const i = idlePools.findIndex((p) => p.nWorkers === threads - 1);
  if (i < 0) return new GbtThreads(threads);
  return idlePools.splice(i, 1)[0]!;
}

/** Gives a pool back for reuse after unbinding its arrays (a failed pool is closed instead). */
export function releaseGbtThreads(pool: GbtPool): void {
  if (!(pool instanceof GbtThreads))
    throw new TypeError(
      "releaseGbtThreads: the pool was not made by acquireGbtThreads (training/gbtThreads.ts)",
    );
  if (pool.closed) return;
  try {
    pool.rebind(emptyShared(pool.s.ctl));
  } catch {
    pool.close();
    return;
  }
  idlePools.push(pool);
}

/** Terminates the idle pools (e.g. before a long pause or in tests); later fits start new ones. */
export function closeIdleGbtThreads(): void {
  for (const p of idlePools.splice(0)) p.close();
}

/** The runtime to pass to GradientBoostedTrees.fit(X, y, { threads: gbtThreads }) when nThreads > 1. */
export const gbtThreads: GbtThreadRuntime = { acquire: acquireGbtThreads, release: releaseGbtThreads };
