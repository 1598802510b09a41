/**
 * Gradient/hessian histograms for GBT split finding, single-threaded or split across worker threads.
 *
 * Layout: hist[c * 512 + 2b] = sum of g, hist[c * 512 + 2b + 1] = sum of h over the node's rows whose byte
 * column c has code b (b = 0..255; byte columns are the features' bins and missing indicators, gbtBinning.ts).
 * `nCols` below is the number of byte columns per row.
 *
 * Threads: every feature's histogram is summed by exactly one thread, in row order, so the result is
 * bit-identical for any thread count. Threads claim contiguous feature blocks (one per thread) from a shared
 * counter (the calling thread works too; nodes under MIN_PARALLEL_ROWS rows stay on the calling thread) over
 * SharedArrayBuffer views of bins, g/h, row ids and histograms,
 * and synchronise with Atomics.wait/notify, so `build` stays synchronous for the caller. Spawning threads is
 * not I/O on data, but it is a process resource: callers must `close()` the builder.
 */
import { Worker } from "node:worker_threads";

export const HIST_STRIDE = 512;
/**
 * Nodes with fewer rows than this are built by the calling thread alone: waking the workers costs tens of
 * microseconds, more than a small node's histogram.
 */
const MIN_PARALLEL_ROWS = 4096;

/**
 * Histogram of features [fBegin, fEnd) over rows rowIdx[start..end), or rows 0..n-1 when `all`. Bins are
 * row-major (bins[r * nCols + f]), so a row's codes share one cache line: after a few splits a node's rows are
 * scattered, and column-major codes cost one cache miss per (row, feature) instead of one per row. Each row's
 * g/h is loaded once for the whole feature range. Self-contained (no outer references): worker threads run
 * its source text.
 */
export function histKernel(
  hist: Float64Array,
  bins: Uint8Array,
  nCols: number,
  n: number,
  gh: Float64Array,
  rowIdx: Uint32Array,
  start: number,
  end: number,
  all: boolean,
  fBegin: number,
  fEnd: number,
): void {
  hist.fill(0, fBegin * 512, fEnd * 512);
  const kBegin = all ? 0 : start;
  const kEnd = all ? n : end;
  const f4 = fBegin + ((fEnd - fBegin) & ~3);
  for (let k = kBegin; k < kEnd; k++) {
    const r = all ? k : rowIdx[k]!;
    const g = gh[2 * r]!;
    const h = gh[2 * r + 1]!;
    const base = r * nCols;
    let f = fBegin;
    for (; f < f4; f += 4) {
      const o = base + f;
      let j = (f << 9) + (bins[o]! << 1);
      hist[j]! += g;
      hist[j + 1]! += h;
      j = ((f + 1) << 9) + (bins[o + 1]! << 1);
      hist[j]! += g;
      hist[j + 1]! += h;
      j = ((f + 2) << 9) + (bins[o + 2]! << 1);
      hist[j]! += g;
      hist[j + 1]! += h;
      j = ((f + 3) << 9) + (bins[o + 3]! << 1);
      hist[j]! += g;
      hist[j + 1]! += h;
    }
    for (; f < fEnd; f++) {
      const j = (f << 9) + (bins[base + f]! << 1);
      hist[j]! += g;
      hist[j + 1]! += h;
    }
  }
}

/**
 * Stable partition of rowIdx[start..end) by side[code of byte column f] (1 = left), or, when mc >= 0, by
 * missLeft for rows whose missing indicator (byte column mc) is 1: left rows are compacted in place from
 * `start`, right rows go to scratch[start..). Returns the number of left rows. Branch-free (which side a row
 * goes is a coin flip to the branch predictor). Self-contained: worker threads run its source.
 */
export function partitionKernel(
  rowIdx: Uint32Array,
  scratch: Uint32Array,
  bins: Uint8Array,
  nCols: number,
  f: number,
  side: Uint8Array,
  mc: number,
  missLeft: number,
  start: number,
  end: number,
): number {
  let nl = start;
  let nr = start;
  if (mc < 0) {
    for (let k = start; k < end; k++) {
      const r = rowIdx[k]!;
      const left = side[bins[r * nCols + f]!]!;
      rowIdx[nl] = r;
      scratch[nr] = r;
      nl += left;
      nr += 1 - left;
    }
  } else {
    for (let k = start; k < end; k++) {
      const r = rowIdx[k]!;
      const base = r * nCols;
      const left = bins[base + mc] === 1 ? missLeft : side[bins[base + f]!]!;
      rowIdx[nl] = r;
      scratch[nr] = r;
      nl += left;
      nr += 1 - left;
    }
  }
  return nl - start;
}

/** Builds histograms for one training run; the trainer owns bins, gh, rowIdx and histograms through it. */
export interface HistogramBuilder {
  readonly gh: Float64Array;
  readonly rowIdx: Uint32Array;
  readonly bins: Uint8Array;
  /** A zero-cost handle to a histogram buffer (nCols * 512 doubles). */
  take(): Float64Array;
  release(h: Float64Array): void;
  build(hist: Float64Array, start: number, end: number, all: boolean): void;
  /**
   * Stable in-place partition of rowIdx[start..end): rows whose byte-column-f code c has side[c] = 1 first
   * (rows with missing indicator mc = 1 go left iff missLeft = 1, when mc >= 0). Returns the first right
   * position.
   */
  partition(start: number, end: number, f: number, side: Uint8Array, mc: number, missLeft: number): number;
  close(): void;
}

/** Moves the right rows from scratch after the left ones (single-range case); returns the first right position. */
function finishPartition(
  rowIdx: Uint32Array,
  scratch: Uint32Array,
  start: number,
  end: number,
  nl: number,
): number {
  rowIdx.set(scratch.subarray(start, start + (end - start - nl)), start + nl);
  return start + nl;
}

/** Single-threaded builder over ordinary typed arrays. */
export class SerialHistogramBuilder implements HistogramBuilder {
  readonly gh: Float64Array;
  readonly rowIdx: Uint32Array;
  private readonly scratch: Uint32Array;
  private readonly pool: Float64Array[] = [];

  constructor(
    readonly bins: Uint8Array,
    private readonly n: number,
    private readonly nCols: number,
  ) {
    this.gh = new Float64Array(2 * n);
    this.rowIdx = new Uint32Array(n);
    this.scratch = new Uint32Array(n);
  }

  take(): Float64Array {
    return this.pool.pop() ?? new Float64Array(this.nCols * HIST_STRIDE);
  }

  release(h: Float64Array): void {
    this.pool.push(h);
  }

  build(hist: Float64Array, start: number, end: number, all: boolean): void {
    histKernel(hist, this.bins, this.nCols, this.n, this.gh, this.rowIdx, start, end, all, 0, this.nCols);
  }

  partition(start: number, end: number, f: number, side: Uint8Array, mc: number, missLeft: number): number {
    const nl = partitionKernel(
      this.rowIdx,
      this.scratch,
      this.bins,
      this.nCols,
      f,
      side,
      mc,
      missLeft,
      start,
      end,
    );
    return finishPartition(this.rowIdx, this.scratch, start, end, nl);
  }

  close(): void {}
}

// Control words (Int32Array over a SharedArrayBuffer).
const SEQ = 0; // task sequence number; workers wait on it
const CMD = 1; // 1 = build, 2 = exit, 3 = partition
const NEXT = 2; // (seq & 0x7fffff) << 8 | next block to claim
const FINISHED = 3; // blocks finished in the current task
const HIST = 4; // histogram slot in the arena
const START = 5;
const END = 6;
const ALL = 7;
const NBLOCKS = 8;
const BLOCKSIZE = 9; // features per block
const FEATURE = 10; // partition: split feature
const LEFT0 = 11; // partition: left count of block 0 (block 1 at LEFT0 + 1)
const MISSCOL = 13; // partition: missing indicator column or -1
const MISSLEFT = 14; // partition: 1 when indicated missing rows go left

/** Worker entry; runs from its source text (CommonJS eval worker), so it must not reference module scope. */
function workerMain(kernel: typeof histKernel, pKernel: typeof partitionKernel): void {
  const { workerData } = require("node:worker_threads");
  const { ctl, bins, gh, rowIdx, scratch, side, arena, n, nCols } = workerData as {
    ctl: Int32Array;
    bins: Uint8Array;
    gh: Float64Array;
    rowIdx: Uint32Array;
    scratch: Uint32Array;
    side: Uint8Array;
    arena: Float64Array;
    n: number;
    nCols: number;
  };
  const histSize = nCols * 512;
  let seen = 0;
  for (;;) {
    // Spin briefly before sleeping: the next node's task usually follows within ~100 us, and a futex wake-up
    // costs tens of microseconds per node.
    for (let spin = 0; spin < 100000 && Atomics.load(ctl, 0) === seen; spin++);
    Atomics.wait(ctl, 0, seen);
    seen = Atomics.load(ctl, 0);
    if (Atomics.load(ctl, 1) === 2) return;
    const tag = (seen & 0x7fffff) << 8;
    for (;;) {
      const cur = Atomics.load(ctl, 2);
      // A claim is only valid for the task it was issued for; the caller resets the counter per task.
      if ((cur & ~0xff) !== tag) break;
      const blk = cur & 0xff;
      const nBlocks = ctl[8]!;
      if (blk >= nBlocks) break;
      if (Atomics.compareExchange(ctl, 2, cur, cur + 1) !== cur) continue;
      if (ctl[1] === 3) {
        // Partition: block 0 is [start, start + half), block 1 the rest (half in ctl[7]).
        const a = blk === 0 ? ctl[5]! : ctl[5]! + ctl[7]!;
        const b = blk === 0 ? ctl[5]! + ctl[7]! : ctl[6]!;
        ctl[11 + blk] = pKernel(rowIdx, scratch, bins, nCols, ctl[10]!, side, ctl[13]!, ctl[14]!, a, b);
        if (Atomics.add(ctl, 3, 1) + 1 === nBlocks) Atomics.notify(ctl, 3);
        continue;
      }
      const slot = ctl[4]!;
      const hist = arena.subarray(slot * histSize, (slot + 1) * histSize);
      const block = ctl[9]!;
      const fb = blk * block;
      kernel(
        hist,
        bins,
        nCols,
        n,
        gh,
        rowIdx,
        ctl[5]!,
        ctl[6]!,
        ctl[7] === 1,
        fb,
        Math.min(fb + block, nCols),
      );
      if (Atomics.add(ctl, 3, 1) + 1 === nBlocks) Atomics.notify(ctl, 3);
    }
  }
}

/**
 * Feature-parallel builder: `threads - 1` workers plus the caller. Histograms live in a fixed arena of
 * `slots` buffers; when it is exhausted `take` falls back to a private buffer built by the caller alone.
 */
export class ParallelHistogramBuilder implements HistogramBuilder {
  readonly gh: Float64Array;
  readonly rowIdx: Uint32Array;
  readonly bins: Uint8Array;
  private readonly scratch: Uint32Array;
  private readonly side: Uint8Array;
  private readonly ctl: Int32Array;
  private readonly arena: Float64Array;
  private readonly histSize: number;
  private readonly free: number[] = [];
  private readonly slotOf = new Map<Float64Array, number>();
  private readonly workers: Worker[] = [];
  private seq = 0;
  private readonly nBlocks: number;
  private readonly block: number;

  constructor(
    bins: Uint8Array,
    private readonly n: number,
    private readonly nCols: number,
    threads: number,
    slots: number,
  ) {
    this.bins = new Uint8Array(new SharedArrayBuffer(bins.length));
    this.bins.set(bins);
    this.gh = new Float64Array(new SharedArrayBuffer(16 * n));
    this.rowIdx = new Uint32Array(new SharedArrayBuffer(4 * n));
    this.scratch = new Uint32Array(new SharedArrayBuffer(4 * n));
    this.side = new Uint8Array(new SharedArrayBuffer(256));
    this.ctl = new Int32Array(new SharedArrayBuffer(64));
    this.histSize = nCols * HIST_STRIDE;
    this.arena = new Float64Array(new SharedArrayBuffer(8 * this.histSize * slots));
    for (let s = slots - 1; s >= 0; s--) this.free.push(s);
    // One contiguous feature range per thread: with row-major bins every block re-reads the node's rows.
    this.block = Math.ceil(nCols / threads);
    this.nBlocks = Math.ceil(nCols / this.block);
    // Bundlers may wrap functions in a __name() helper; the stub keeps the source text runnable.
    const source = `const __name = (f) => f;\n(${workerMain.toString()})(${histKernel.toString()}, ${partitionKernel.toString()});`;
    for (let w = 0; w < threads - 1; w++) {
      const worker = new Worker(source, {
        eval: true,
        workerData: {
          ctl: this.ctl,
          bins: this.bins,
          gh: this.gh,
          rowIdx: this.rowIdx,
          scratch: this.scratch,
          side: this.side,
          arena: this.arena,
          n,
          nCols,
        },
      });
      worker.unref();
      this.workers.push(worker);
    }
  }

  take(): Float64Array {
    const slot = this.free.pop();
    if (slot === undefined) return new Float64Array(this.histSize);
    const h = this.arena.subarray(slot * this.histSize, (slot + 1) * this.histSize);
    this.slotOf.set(h, slot);
    return h;
  }

  release(h: Float64Array): void {
    const slot = this.slotOf.get(h);
    if (slot === undefined) return;
    this.slotOf.delete(h);
    this.free.push(slot);
  }

  build(hist: Float64Array, start: number, end: number, all: boolean): void {
    const slot = this.slotOf.get(hist);
    if (slot === undefined || this.workers.length === 0 || (!all && end - start < MIN_PARALLEL_ROWS)) {
      histKernel(hist, this.bins, this.nCols, this.n, this.gh, this.rowIdx, start, end, all, 0, this.nCols);
      return;
    }
    const ctl = this.ctl;
    ctl[CMD] = 1;
    ctl[HIST] = slot;
    ctl[START] = start;
    ctl[END] = end;
    ctl[ALL] = all ? 1 : 0;
    ctl[NBLOCKS] = this.nBlocks;
    ctl[BLOCKSIZE] = this.block;
    this.dispatch();
    for (;;) {
      const cur = Atomics.load(ctl, NEXT);
      const blk = cur & 0xff;
      if (blk >= this.nBlocks) break;
      if (Atomics.compareExchange(ctl, NEXT, cur, cur + 1) !== cur) continue;
      const fb = blk * this.block;
      histKernel(
        hist,
        this.bins,
        this.nCols,
        this.n,
        this.gh,
        this.rowIdx,
        start,
        end,
        all,
        fb,
        Math.min(fb + this.block, this.nCols),
      );
      Atomics.add(ctl, FINISHED, 1);
    }
    this.await(this.nBlocks);
  }

  /**
   * Big nodes: the caller and a worker each partition one half stably (left rows compacted in place, right
   * rows to scratch), then the halves are concatenated as leftA leftB rightA rightB, which is the serial
   * order, so the result does not depend on the thread count.
   */
  partition(start: number, end: number, f: number, side: Uint8Array, mc: number, missLeft: number): number {
    const { rowIdx, scratch } = this;
    if (this.workers.length === 0 || end - start < MIN_PARALLEL_ROWS) {
      const nl = partitionKernel(rowIdx, scratch, this.bins, this.nCols, f, side, mc, missLeft, start, end);
      return finishPartition(rowIdx, scratch, start, end, nl);
    }
    const ctl = this.ctl;
    const half = (end - start) >>> 1;
    this.side.set(side);
    ctl[CMD] = 3;
    ctl[START] = start;
    ctl[END] = end;
    ctl[ALL] = half;
    ctl[FEATURE] = f;
    ctl[MISSCOL] = mc;
    ctl[MISSLEFT] = missLeft;
    ctl[NBLOCKS] = 2;
    this.dispatch();
    for (;;) {
      const cur = Atomics.load(ctl, NEXT);
      const blk = cur & 0xff;
      if (blk >= 2) break;
      if (Atomics.compareExchange(ctl, NEXT, cur, cur + 1) !== cur) continue;
      const a = blk === 0 ? start : start + half;
      const b = blk === 0 ? start + half : end;
      ctl[LEFT0 + blk] = partitionKernel(
        rowIdx,
        scratch,
        this.bins,
        this.nCols,
        f,
        this.side,
        mc,
        missLeft,
        a,
        b,
      );
      Atomics.add(ctl, FINISHED, 1);
    }
    this.await(2);
    const m0 = start + half;
    const nlA = ctl[LEFT0]!;
    const nlB = ctl[LEFT0 + 1]!;
    const nrA = half - nlA;
    const nrB = end - m0 - nlB;
    rowIdx.copyWithin(start + nlA, m0, m0 + nlB);
    const mid = start + nlA + nlB;
    rowIdx.set(scratch.subarray(start, start + nrA), mid);
    rowIdx.set(scratch.subarray(m0, m0 + nrB), mid + nrA);
    return mid;
  }

  /** Publishes the task set up in ctl to the workers. */
  private dispatch(): void {
    const ctl = this.ctl;
    this.seq = (this.seq + 1) & 0x7fffff;
    Atomics.store(ctl, FINISHED, 0);
    Atomics.store(ctl, NEXT, this.seq << 8);
    Atomics.store(ctl, SEQ, this.seq);
    Atomics.notify(ctl, SEQ);
  }

  /** Waits until `nBlocks` blocks of the current task are finished (spinning briefly first). */
  private await(nBlocks: number): void {
    const ctl = this.ctl;
    for (let spin = 0; spin < 100000 && Atomics.load(ctl, FINISHED) < nBlocks; spin++);
    for (;;) {
      const done = Atomics.load(ctl, FINISHED);
      if (done >= nBlocks) break;
      Atomics.wait(ctl, FINISHED, done);
    }
  }

  close(): void {
    Atomics.store(this.ctl, CMD, 2);
    Atomics.store(this.ctl, SEQ, (this.seq + 1) & 0x7fffff);
    Atomics.notify(this.ctl, SEQ);
    for (const w of this.workers) void w.terminate();
    this.workers.length = 0;
  }
}
