/**
 * The per-row work of GBT training (gradient/hessian histograms, row partitions, gradients, margin updates),
 * single-threaded or split across worker threads.
 *
 * Layout: hist[c * 512 + 2b] = sum of g, hist[c * 512 + 2b + 1] = sum of h over the node's rows whose byte
 * column c has code b (b = 0..255; byte columns are the features' bins and missing indicators, gbtBinning.ts).
 * `nCols` below is the number of byte columns per row.
 *
 * Threads: every feature's histogram is summed by exactly one thread, in row order; partitions are split into
 * two halves concatenated in serial order; gradients and margin updates touch each row once, and the loss is
 * summed per fixed block of rows, then over blocks in order. So every result is bit-identical for any thread
 * count. Threads claim blocks of a task from a shared counter (the calling thread works too; nodes under
 * MIN_PARALLEL_ROWS rows stay on the calling thread) over SharedArrayBuffer views, and synchronise with
 * Atomics.wait/notify, so every call stays synchronous for the caller. Spawning threads is not I/O on data, but
 * it is a process resource: callers must `close()` the builder.
 */
import { MessageChannel, type MessagePort, Worker } from "node:worker_threads";

export const HIST_STRIDE = 512;
/**
 * Nodes with fewer rows than this are built by the calling thread alone: waking the workers costs tens of
 * microseconds, more than a small node's histogram.
 */
const MIN_PARALLEL_ROWS = 4096;
/** Rows per partial loss sum (gradKernel); the loss is the sum of these partials in order. */
const LOSS_BLOCK = 8192;

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

/**
 * Gradients and hessians of rows [start, end) at margins m into gh (times the row weight when `weighted`):
 * squared loss g = m - y, h = 1; logistic g = q - y, h = max(q(1 - q), 1e-16) with q = sigmoid(m). Also the
 * loss (squared error, or log(1 + e^m) - y m without overflow) and weight sums of each block of 8192 rows into
 * parts[2b], parts[2b + 1]; start must be a multiple of 8192. Self-contained: worker threads run its source.
 */
export function gradKernel(
  logistic: boolean,
  weighted: boolean,
  y: Float64Array,
  w: Float64Array,
  m: Float64Array,
  gh: Float64Array,
  start: number,
  end: number,
  parts: Float64Array,
): void {
  const B = 8192;
  for (let b0 = start; b0 < end; b0 += B) {
    const b1 = Math.min(b0 + B, end);
    let s = 0;
    let sw = 0;
    if (!logistic) {
      for (let r = b0; r < b1; r++) {
        const wr = weighted ? w[r]! : 1;
        const d = m[r]! - y[r]!;
        gh[2 * r] = wr * d;
        gh[2 * r + 1] = wr;
        s += wr * d * d;
        sw += wr;
      }
    } else if (!weighted) {
      // Sum log(1 + e) as the log of products of 512 factors in (1, 2] (at most 2^512, no overflow): one
      // Math.log per 512 rows instead of a log1p per row. The loss is only reported, so the ~1e-13 relative
      // rounding difference does not touch the trees.
      let prod = 1;
      for (let r = b0; r < b1; r++) {
        const mr = m[r]!;
        const e = Math.exp(-Math.abs(mr));
        const q = mr >= 0 ? 1 / (1 + e) : e / (1 + e);
        gh[2 * r] = q - y[r]!;
        gh[2 * r + 1] = Math.max(q * (1 - q), 1e-16);
        s += Math.max(mr, 0) - y[r]! * mr;
        prod *= 1 + e;
        if ((r & 511) === 511) {
          s += Math.log(prod);
          prod = 1;
        }
      }
      s += Math.log(prod);
      sw = b1 - b0;
    } else {
      for (let r = b0; r < b1; r++) {
        const wr = w[r]!;
        const mr = m[r]!;
        const e = Math.exp(-Math.abs(mr));
        const q = mr >= 0 ? 1 / (1 + e) : e / (1 + e);
        gh[2 * r] = wr * (q - y[r]!);
        // The floor keeps the Newton step finite when predictions saturate.
        gh[2 * r + 1] = wr * Math.max(q * (1 - q), 1e-16);
        s += wr * (Math.max(mr, 0) + Math.log1p(e) - y[r]! * mr);
        sw += wr;
      }
    }
    const b = (b0 / B) | 0;
    parts[2 * b] = s;
    parts[2 * b + 1] = sw;
  }
}

/**
 * margin[rowIdx[k]] += value for the positions k in [a, b) of every leaf; leaves[3i..3i+2] = start, end,
 * value of leaf i (its rows are rowIdx[start..end)). Self-contained: worker threads run its source.
 */
export function marginKernel(
  margin: Float64Array,
  rowIdx: Uint32Array,
  leaves: Float64Array,
  nLeaves: number,
  a: number,
  b: number,
): void {
  for (let i = 0; i < nLeaves; i++) {
    const lo = Math.max(leaves[3 * i]!, a);
    const hi = Math.min(leaves[3 * i + 1]!, b);
    const v = leaves[3 * i + 2]!;
    for (let k = lo; k < hi; k++) margin[rowIdx[k]!]! += v;
  }
}

/** Per-row training work for one fit; the trainer owns bins, gh, rowIdx, margins and histograms through it. */
export interface HistogramBuilder {
  readonly gh: Float64Array;
  readonly rowIdx: Uint32Array;
  readonly bins: Uint8Array;
  /** Current margins of the training rows (the trainer initialises them). */
  readonly margin: Float64Array;
  /** A zero-cost handle to a histogram buffer (nCols * 512 doubles). */
  take(): Float64Array;
  release(h: Float64Array): void;
  /**
   * Histogram of rows rowIdx[start..end) (rows 0..n-1 when `all`) into hist; when `parent` is given it
   * becomes parent - hist (the sibling's histogram), element by element.
   */
  build(hist: Float64Array, start: number, end: number, all: boolean, parent: Float64Array | null): void;
  /**
   * Stable in-place partition of rowIdx[start..end): rows whose byte-column-f code c has side[c] = 1 first
   * (rows with missing indicator mc = 1 go left iff missLeft = 1, when mc >= 0). Returns the first right
   * position.
   */
  partition(start: number, end: number, f: number, side: Uint8Array, mc: number, missLeft: number): number;
  /** Labels and optional row weights (copied), and the loss used by gradients(). */
  setTargets(y: ArrayLike<number>, w: Float64Array | null, logistic: boolean): void;
  /** Writes g and h of every row at the current margins into gh; returns the (weighted) mean loss there. */
  gradients(): number;
  /** Room for leaf ranges of addLeaves: leaves[3i..3i+2] = start, end, value. */
  leafBuffer(nLeaves: number): Float64Array;
  /** Adds each leaf's value to the margins of its rows rowIdx[start..end), for leaves covering 0..nSample. */
  addLeaves(nLeaves: number, nSample: number): void;
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

/** Sum of the loss partials in block order (the same for any thread count). */
function meanOfParts(parts: Float64Array, n: number): number {
  let s = 0;
  let sw = 0;
  const nb = Math.ceil(n / LOSS_BLOCK);
  for (let b = 0; b < nb; b++) {
    s += parts[2 * b]!;
    sw += parts[2 * b + 1]!;
  }
  return s / sw;
}

/** State shared by both builders: labels, weights, margins, loss partials and leaf ranges. */
abstract class BuilderBase {
  abstract readonly margin: Float64Array;
  protected abstract y: Float64Array;
  protected abstract w: Float64Array;
  protected abstract parts: Float64Array;
  protected abstract leaves: Float64Array;
  protected weighted = false;
  protected logistic = false;

  constructor(protected readonly n: number) {}

  /** A buffer of at least `length` doubles, shared with the workers where there are any. */
  protected abstract alloc(length: number): Float64Array;

  setTargets(y: ArrayLike<number>, w: Float64Array | null, logistic: boolean): void {
    for (let r = 0; r < this.n; r++) this.y[r] = y[r]!;
    this.weighted = w !== null;
    if (w !== null) this.w.set(w);
    this.logistic = logistic;
  }

  leafBuffer(nLeaves: number): Float64Array {
    if (this.leaves.length < 3 * nLeaves) this.leaves = this.alloc(3 * Math.max(nLeaves, 64));
    return this.leaves;
  }
}

/** Single-threaded builder over ordinary typed arrays. */
export class SerialHistogramBuilder extends BuilderBase implements HistogramBuilder {
  readonly gh: Float64Array;
  readonly rowIdx: Uint32Array;
  readonly margin: Float64Array;
  protected y: Float64Array;
  protected w: Float64Array;
  protected parts: Float64Array;
  protected leaves = new Float64Array(0);
  private readonly scratch: Uint32Array;
  private readonly pool: Float64Array[] = [];

  constructor(
    readonly bins: Uint8Array,
    n: number,
    private readonly nCols: number,
  ) {
    super(n);
    this.gh = new Float64Array(2 * n);
    this.rowIdx = new Uint32Array(n);
    this.scratch = new Uint32Array(n);
    this.margin = new Float64Array(n);
    this.y = new Float64Array(n);
    this.w = new Float64Array(n);
    this.parts = new Float64Array(2 * Math.ceil(n / LOSS_BLOCK));
  }

  protected alloc(length: number): Float64Array {
    return new Float64Array(length);
  }

  take(): Float64Array {
    return this.pool.pop() ?? new Float64Array(this.nCols * HIST_STRIDE);
  }

  release(h: Float64Array): void {
    this.pool.push(h);
  }

  build(hist: Float64Array, start: number, end: number, all: boolean, parent: Float64Array | null): void {
    histKernel(hist, this.bins, this.nCols, this.n, this.gh, this.rowIdx, start, end, all, 0, this.nCols);
    if (parent !== null) for (let j = 0; j < parent.length; j++) parent[j]! -= hist[j]!;
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

  gradients(): number {
    gradKernel(this.logistic, this.weighted, this.y, this.w, this.margin, this.gh, 0, this.n, this.parts);
    return meanOfParts(this.parts, this.n);
  }

  addLeaves(nLeaves: number, nSample: number): void {
    marginKernel(this.margin, this.rowIdx, this.leaves, nLeaves, 0, nSample);
  }

  close(): void {}
}

// Control words (Int32Array over a SharedArrayBuffer).
const SEQ = 0; // task sequence number; workers wait on it
const CMD = 1; // task kind, see below
const NEXT = 2; // (seq & 0x7fffff) << 8 | next block to claim
const FINISHED = 3; // blocks finished in the current task
const HIST = 4; // build: histogram slot in the arena
const START = 5;
const END = 6;
const ALL = 7; // build: 1 = all rows; partition: rows in block 0; gradients, margins: first row of block 1
const NBLOCKS = 8;
const BLOCKSIZE = 9; // build: features per block
const FEATURE = 10; // partition: split feature
const LEFT0 = 11; // partition: left count of block 0 (block 1 at LEFT0 + 1)
const MISSCOL = 13; // partition: missing indicator column or -1
const MISSLEFT = 14; // partition: 1 when indicated missing rows go left
const PARENT = 15; // build: arena slot of the parent histogram to subtract from, or -1
const FLAGS = 16; // gradients: 1 = logistic, 2 = weighted; margins: number of leaves
const CTL_WORDS = 17;

// Task kinds.
const CMD_BUILD = 1;
const CMD_EXIT = 2;
const CMD_PARTITION = 3;
const CMD_GRADIENTS = 4;
const CMD_MARGINS = 5;

/** Arrays every thread works on (SharedArrayBuffer views). */
interface Shared {
  ctl: Int32Array;
  bins: Uint8Array;
  gh: Float64Array;
  rowIdx: Uint32Array;
  scratch: Uint32Array;
  side: Uint8Array;
  arena: Float64Array;
  margin: Float64Array;
  y: Float64Array;
  w: Float64Array;
  parts: Float64Array;
  leaves: Float64Array;
  n: number;
  nCols: number;
}

interface Kernels {
  hist: typeof histKernel;
  part: typeof partitionKernel;
  grad: typeof gradKernel;
  margin: typeof marginKernel;
}

/**
 * Runs block `blk` of the task described in ctl; the caller and the workers run the same code. Runs from its
 * source text in the workers, so it must not reference module scope (the ctl indices are literals here).
 */
function runBlock(s: Shared, k: Kernels, blk: number): void {
  const ctl = s.ctl;
  const cmd = ctl[1]!;
  if (cmd === 1) {
    const histSize = s.nCols * 512;
    const slot = ctl[4]!;
    const hist = s.arena.subarray(slot * histSize, (slot + 1) * histSize);
    const block = ctl[9]!;
    const fb = blk * block;
    const fe = Math.min(fb + block, s.nCols);
    k.hist(hist, s.bins, s.nCols, s.n, s.gh, s.rowIdx, ctl[5]!, ctl[6]!, ctl[7] === 1, fb, fe);
    const ps = ctl[15]!;
    if (ps >= 0) {
      const parent = s.arena.subarray(ps * histSize, (ps + 1) * histSize);
      for (let j = fb * 512; j < fe * 512; j++) parent[j]! -= hist[j]!;
    }
  } else if (cmd === 3) {
    // Block 0 is [start, start + half), block 1 the rest (half in ctl[7]).
    const a = blk === 0 ? ctl[5]! : ctl[5]! + ctl[7]!;
    const b = blk === 0 ? ctl[5]! + ctl[7]! : ctl[6]!;
    ctl[11 + blk] = k.part(s.rowIdx, s.scratch, s.bins, s.nCols, ctl[10]!, s.side, ctl[13]!, ctl[14]!, a, b);
  } else if (cmd === 4) {
    const a = blk === 0 ? 0 : ctl[7]!;
    const b = blk === 0 ? ctl[7]! : s.n;
    const flags = ctl[16]!;
    k.grad((flags & 1) === 1, (flags & 2) === 2, s.y, s.w, s.margin, s.gh, a, b, s.parts);
  } else if (cmd === 5) {
    const a = blk === 0 ? 0 : ctl[7]!;
    const b = blk === 0 ? ctl[7]! : ctl[6]!;
    k.margin(s.margin, s.rowIdx, s.leaves, ctl[16]!, a, b);
  }
}

/** Worker entry; runs from its source text (CommonJS eval worker), so it must not reference module scope. */
function workerMain(run: typeof runBlock, k: Kernels): void {
  const { workerData, receiveMessageOnPort } = require("node:worker_threads");
  const { port } = workerData;
  let s = workerData.shared as Shared;
  const ctl = s.ctl;
  let seen = 0;
  for (;;) {
    // Spin briefly before sleeping: the next node's task usually follows within ~100 us, and a futex wake-up
    // costs tens of microseconds per node.
    for (let spin = 0; spin < 100000 && Atomics.load(ctl, 0) === seen; spin++);
    Atomics.wait(ctl, 0, seen);
    seen = Atomics.load(ctl, 0);
    const cmd = Atomics.load(ctl, 1);
    if (cmd === 2) return;
    if (cmd === 6) {
      // New shared arrays (e.g. a larger leaf buffer), sent before the task was published.
      s = receiveMessageOnPort(port).message as Shared;
      if (Atomics.add(ctl, 3, 1) + 1 === ctl[8]) Atomics.notify(ctl, 3);
      continue;
    }
    const tag = (seen & 0x7fffff) << 8;
    for (;;) {
      const cur = Atomics.load(ctl, 2);
      // A claim is only valid for the task it was issued for; the caller resets the counter per task.
      if ((cur & ~0xff) !== tag) break;
      const blk = cur & 0xff;
      const nBlocks = ctl[8]!;
      if (blk >= nBlocks) break;
      if (Atomics.compareExchange(ctl, 2, cur, cur + 1) !== cur) continue;
      run(s, k, blk);
      if (Atomics.add(ctl, 3, 1) + 1 === nBlocks) Atomics.notify(ctl, 3);
    }
  }
}

/** Task kind telling the workers to take new shared arrays from their message port. */
const CMD_REBIND = 6;

/**
 * Feature-parallel builder: `threads - 1` workers plus the caller. Histograms live in a fixed arena of
 * `slots` buffers; when it is exhausted `take` falls back to a private buffer built by the caller alone.
 */
export class ParallelHistogramBuilder extends BuilderBase implements HistogramBuilder {
  readonly gh: Float64Array;
  readonly rowIdx: Uint32Array;
  readonly bins: Uint8Array;
  readonly margin: Float64Array;
  protected y: Float64Array;
  protected w: Float64Array;
  protected parts: Float64Array;
  protected leaves: Float64Array;
  private readonly s: Shared;
  private readonly kernels: Kernels = {
    hist: histKernel,
    part: partitionKernel,
    grad: gradKernel,
    margin: marginKernel,
  };
  private readonly histSize: number;
  private readonly free: number[] = [];
  private readonly slotOf = new Map<Float64Array, number>();
  private readonly workers: Worker[] = [];
  private readonly ports: MessagePort[] = [];
  private seq = 0;
  private readonly nBlocks: number;
  private readonly block: number;

  constructor(
    bins: Uint8Array,
    n: number,
    private readonly nCols: number,
    threads: number,
    slots: number,
  ) {
    super(n);
    const f64 = (len: number): Float64Array => new Float64Array(new SharedArrayBuffer(8 * len));
    this.bins = new Uint8Array(new SharedArrayBuffer(bins.length));
    this.bins.set(bins);
    this.gh = f64(2 * n);
    this.rowIdx = new Uint32Array(new SharedArrayBuffer(4 * n));
    this.margin = f64(n);
    this.y = f64(n);
    this.w = f64(n);
    this.parts = f64(2 * Math.ceil(n / LOSS_BLOCK));
    this.leaves = f64(3 * 64);
    this.histSize = nCols * HIST_STRIDE;
    this.s = {
      ctl: new Int32Array(new SharedArrayBuffer(4 * CTL_WORDS)),
      bins: this.bins,
      gh: this.gh,
      rowIdx: this.rowIdx,
      scratch: new Uint32Array(new SharedArrayBuffer(4 * n)),
      side: new Uint8Array(new SharedArrayBuffer(256)),
      arena: f64(this.histSize * slots),
      margin: this.margin,
      y: this.y,
      w: this.w,
      parts: this.parts,
      leaves: this.leaves,
      n,
      nCols,
    };
    for (let s = slots - 1; s >= 0; s--) this.free.push(s);
    // One contiguous feature range per thread: with row-major bins every block re-reads the node's rows.
    this.block = Math.ceil(nCols / threads);
    this.nBlocks = Math.ceil(nCols / this.block);
    // Bundlers may wrap functions in a __name() helper; the stub keeps the source text runnable.
    const source =
      `const __name = (f) => f;\n(${workerMain.toString()})(${runBlock.toString()}, { hist: ${histKernel.toString()}, ` +
      `part: ${partitionKernel.toString()}, grad: ${gradKernel.toString()}, margin: ${marginKernel.toString()} });`;
    for (let i = 0; i < threads - 1; i++) {
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

  protected alloc(length: number): Float64Array {
    return new Float64Array(new SharedArrayBuffer(8 * length));
  }

  override leafBuffer(nLeaves: number): Float64Array {
    const before = this.leaves;
    const buf = super.leafBuffer(nLeaves);
    if (buf !== before && this.workers.length > 0) {
      this.s.leaves = buf;
      for (const p of this.ports) p.postMessage(this.s);
      this.s.ctl[CMD] = CMD_REBIND;
      this.s.ctl[NBLOCKS] = this.workers.length;
      this.dispatch();
      this.await(this.workers.length);
    }
    return buf;
  }

  take(): Float64Array {
    const slot = this.free.pop();
    if (slot === undefined) return new Float64Array(this.histSize);
    const h = this.s.arena.subarray(slot * this.histSize, (slot + 1) * this.histSize);
    this.slotOf.set(h, slot);
    return h;
  }

  release(h: Float64Array): void {
    const slot = this.slotOf.get(h);
    if (slot === undefined) return;
    this.slotOf.delete(h);
    this.free.push(slot);
  }

  build(hist: Float64Array, start: number, end: number, all: boolean, parent: Float64Array | null): void {
    const slot = this.slotOf.get(hist);
    const ps = parent === null ? -1 : (this.slotOf.get(parent) ?? -2);
    if (
      slot === undefined ||
      ps === -2 ||
      this.workers.length === 0 ||
      (!all && end - start < MIN_PARALLEL_ROWS)
    ) {
      histKernel(hist, this.bins, this.nCols, this.n, this.gh, this.rowIdx, start, end, all, 0, this.nCols);
      if (parent !== null) for (let j = 0; j < parent.length; j++) parent[j]! -= hist[j]!;
      return;
    }
    const ctl = this.s.ctl;
    ctl[CMD] = CMD_BUILD;
    ctl[HIST] = slot;
    ctl[START] = start;
    ctl[END] = end;
    ctl[ALL] = all ? 1 : 0;
    ctl[NBLOCKS] = this.nBlocks;
    ctl[BLOCKSIZE] = this.block;
    ctl[PARENT] = ps;
    this.run(this.nBlocks);
  }

  /**
   * Big nodes: the caller and a worker each partition one half stably (left rows compacted in place, right
   * rows to scratch), then the halves are concatenated as leftA leftB rightA rightB, which is the serial
   * order, so the result does not depend on the thread count.
   */
  partition(start: number, end: number, f: number, side: Uint8Array, mc: number, missLeft: number): number {
    const { rowIdx, scratch } = this.s;
    if (this.workers.length === 0 || end - start < MIN_PARALLEL_ROWS) {
      const nl = partitionKernel(rowIdx, scratch, this.bins, this.nCols, f, side, mc, missLeft, start, end);
      return finishPartition(rowIdx, scratch, start, end, nl);
    }
    const ctl = this.s.ctl;
    const half = (end - start) >>> 1;
    this.s.side.set(side);
    ctl[CMD] = CMD_PARTITION;
    ctl[START] = start;
    ctl[END] = end;
    ctl[ALL] = half;
    ctl[FEATURE] = f;
    ctl[MISSCOL] = mc;
    ctl[MISSLEFT] = missLeft;
    ctl[NBLOCKS] = 2;
    this.run(2);
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

  /** Rows split in two at a multiple of the loss block; the loss partials are summed in block order. */
  gradients(): number {
    const n = this.n;
    const half = Math.ceil(n / 2 / LOSS_BLOCK) * LOSS_BLOCK;
    if (this.workers.length === 0 || n < 2 * LOSS_BLOCK) {
      gradKernel(this.logistic, this.weighted, this.y, this.w, this.margin, this.gh, 0, n, this.parts);
    } else {
      const ctl = this.s.ctl;
      ctl[CMD] = CMD_GRADIENTS;
      ctl[ALL] = half;
      ctl[FLAGS] = (this.logistic ? 1 : 0) | (this.weighted ? 2 : 0);
      ctl[NBLOCKS] = 2;
      this.run(2);
    }
    return meanOfParts(this.parts, n);
  }

  addLeaves(nLeaves: number, nSample: number): void {
    if (this.workers.length === 0 || nSample < MIN_PARALLEL_ROWS) {
      marginKernel(this.margin, this.rowIdx, this.leaves, nLeaves, 0, nSample);
      return;
    }
    const ctl = this.s.ctl;
    ctl[CMD] = CMD_MARGINS;
    ctl[ALL] = nSample >>> 1;
    ctl[END] = nSample;
    ctl[FLAGS] = nLeaves;
    ctl[NBLOCKS] = 2;
    this.run(2);
  }

  /** Publishes the task set up in ctl, works on its blocks alongside the workers and waits for all of them. */
  private run(nBlocks: number): void {
    const ctl = this.s.ctl;
    this.dispatch();
    for (;;) {
      const cur = Atomics.load(ctl, NEXT);
      const blk = cur & 0xff;
      if (blk >= nBlocks) break;
      if (Atomics.compareExchange(ctl, NEXT, cur, cur + 1) !== cur) continue;
      runBlock(this.s, this.kernels, blk);
      Atomics.add(ctl, FINISHED, 1);
    }
    this.await(nBlocks);
  }

  /** Publishes the task set up in ctl to the workers. */
  private dispatch(): void {
    const ctl = this.s.ctl;
    this.seq = (this.seq + 1) & 0x7fffff;
    Atomics.store(ctl, FINISHED, 0);
    Atomics.store(ctl, NEXT, this.seq << 8);
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

  close(): void {
    const ctl = this.s.ctl;
    Atomics.store(ctl, CMD, CMD_EXIT);
    Atomics.store(ctl, SEQ, (this.seq + 1) & 0x7fffff);
    Atomics.notify(ctl, SEQ);
    for (const w of this.workers) void w.terminate();
    for (const p of this.ports) p.close();
    this.workers.length = 0;
  }
}
