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
 * Atomics.wait/notify, so every call stays synchronous for the caller. The threads are a process resource, so
 * they are not started here: training/gbtThreads.ts owns the pool and fit() is given it (GbtThreadRuntime).
 */
import { type BinJob, type BinningPool, binGroupKernel, binningSource } from "./gbtBinning.ts";
import { sketchCuts } from "./gbtSketch.ts";

export const HIST_STRIDE = 512;
/**
 * Nodes with fewer rows than this are built by the calling thread alone: waking the workers costs tens of
 * microseconds, more than a small node's histogram.
 */
const MIN_PARALLEL_ROWS = 4096;
/** Rows per partial loss sum (gradKernel); the loss is the sum of these partials in order. */
const LOSS_BLOCK = 8192;

/**
 * Histogram of byte columns [fBegin, fEnd) (multiples of 4) over rows rowIdx[start..end), or rows 0..n-1 when
 * `all`. Codes are row-major (bins[r * nCols + c], nCols a multiple of 4) and read four at a time through a
 * Uint32Array view (b32, little-endian), so a row's codes share one cache line: after a few splits a node's
 * rows are scattered, and column-major codes would cost one cache miss per (row, feature) instead of one per
 * row. Each row's g/h is loaded once for the whole column range. Self-contained (no outer references): worker
 * threads run its source text.
 */
export function histKernel(
  hist: Float64Array,
  b32: Uint32Array,
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
  const words = nCols >> 2;
  const w0 = fBegin >> 2;
  const w1 = fEnd >> 2;
  for (let k = kBegin; k < kEnd; k++) {
    const r = all ? k : rowIdx[k]!;
    const g = gh[2 * r]!;
    const h = gh[2 * r + 1]!;
    const base = r * words;
    for (let w = w0; w < w1; w++) {
      const word = b32[base + w]!;
      const f = w << 11;
      let j = f + ((word & 0xff) << 1);
      hist[j]! += g;
      hist[j + 1]! += h;
      j = f + 512 + (((word >>> 8) & 0xff) << 1);
      hist[j]! += g;
      hist[j + 1]! += h;
      j = f + 1024 + (((word >>> 16) & 0xff) << 1);
      hist[j]! += g;
      hist[j + 1]! += h;
      j = f + 1536 + ((word >>> 24) << 1);
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

/** Split-search settings of one fit (splitKernel). */
export interface SplitConfig {
  /** Features (byte columns 0..nFeat-1 of the histograms). */
  nFeat: number;
  /** Per feature: value bins, 1 if it has missing values, its missing indicator column or -1, and 1 if the
   * split "all values left, missing right" is allowed (its threshold, the last cut, is finite). */
  nBins: Int32Array;
  hasMissing: Uint8Array;
  missingCol: Int32Array;
  lastOk: Uint8Array;
  lambda: number;
  gamma: number;
  minChildWeight: number;
}

/**
 * Best split of a node from its histogram (G, H = the node's gradient and hessian sums), in XGBoost's order:
 * for each feature, "bins 0..b left, missing right" for ascending b (b = nBins - 1 separates the missing rows
 * from all others), then, when the node has missing rows, "bins b+1.. right, missing left" for descending b.
 * Gains are rounded to float32 like XGBoost's (each child's score, their sum, the difference), so candidates
 * equal to float precision tie and the first one wins. A split needs both children's hessian sums >=
 * minChildWeight, gain > 1e-6 (XGBoost's kRtEps) and >= gamma. Writes out[o..o+5] = gain (-Infinity: no
 * split), feature, bin (bins 0..bin go left), default left (1/0), GL, HL. Self-contained: worker threads run
 * its source.
 */
export function splitKernel(
  hist: Float64Array,
  G: number,
  H: number,
  cfg: SplitConfig,
  out: Float64Array,
  o: number,
): void {
  const f32 = Math.fround;
  const { nBins, hasMissing, missingCol, lastOk, lambda, gamma, minChildWeight } = cfg;
  const parentScore = f32((G * G) / (H + lambda));
  let bestGain = 0;
  let bestF = -1;
  let bestBin = -1;
  let bestDefLeft = 0;
  let bestGL = 0;
  let bestHL = 0;
  for (let f = 0; f < cfg.nFeat; f++) {
    const hOff = f * 512;
    const nb = nBins[f]!;
    const mc = missingCol[f]!;
    // Missing rows: the indicator's code-1 bin, or code 255, which then holds no values.
    let gM = 0;
    let hM = 0;
    if (hasMissing[f] === 1) {
      const mOff = mc >= 0 ? mc * 512 + 2 : hOff + 2 * 255;
      gM = hist[mOff]!;
      hM = hist[mOff + 1]!;
    }
    const missing = hM > 0;
    // With an indicator, code 255 holds value bin 255 and the missing rows.
    const fix = mc >= 0 ? 255 : -1;
    // Missing right: left = bins 0..b.
    let GL = 0;
    let HL = 0;
    const lastB = missing && lastOk[f] === 1 ? nb - 1 : nb - 2;
    for (let b = 0; b <= lastB; b++) {
      GL += b === fix ? hist[hOff + 2 * b]! - gM : hist[hOff + 2 * b]!;
      HL += b === fix ? hist[hOff + 2 * b + 1]! - hM : hist[hOff + 2 * b + 1]!;
      const HR = H - HL;
      if (HL >= minChildWeight && HR >= minChildWeight) {
        const GR = G - GL;
        const gain = f32(f32(f32((GL * GL) / (HL + lambda)) + f32((GR * GR) / (HR + lambda))) - parentScore);
        if (gain > bestGain) {
          bestGain = gain;
          bestF = f;
          bestBin = b;
          bestDefLeft = 0;
          bestGL = GL;
          bestHL = HL;
        }
      }
    }
    if (!missing) continue;
    // Missing left: right = bins b..nb-1 for descending b, left = bins 0..b-1 and the missing rows.
    let GR = 0;
    let HR = 0;
    for (let b = nb - 1; b >= 1; b--) {
      GR += b === fix ? hist[hOff + 2 * b]! - gM : hist[hOff + 2 * b]!;
      HR += b === fix ? hist[hOff + 2 * b + 1]! - hM : hist[hOff + 2 * b + 1]!;
      const HLm = H - HR;
      if (HLm >= minChildWeight && HR >= minChildWeight) {
        const GLm = G - GR;
        const gain = f32(
          f32(f32((GLm * GLm) / (HLm + lambda)) + f32((GR * GR) / (HR + lambda))) - parentScore,
        );
        if (gain > bestGain) {
          bestGain = gain;
          bestF = f;
          bestBin = b - 1;
          bestDefLeft = 1;
          bestGL = GLm;
          bestHL = HLm;
        }
      }
    }
  }
  const ok = bestF >= 0 && bestGain > 1e-6 && bestGain >= gamma;
  out[o] = ok ? bestGain : Number.NEGATIVE_INFINITY;
  out[o + 1] = bestF;
  out[o + 2] = bestBin;
  out[o + 3] = bestDefLeft;
  out[o + 4] = bestGL;
  out[o + 5] = bestHL;
}

/** One histogram to build: rows rowIdx[start..end) (all rows when `all`), minus-subtracted from `parent`. */
export interface HistItem {
  hist: Float64Array;
  start: number;
  end: number;
  all: boolean;
  parent: Float64Array | null;
}

/** One partition: rows rowIdx[start..end) by byte column f (see HistogramBuilder.partition). */
export interface PartitionItem {
  start: number;
  end: number;
  f: number;
  side: Uint8Array;
  mc: number;
  missLeft: number;
}

/** One split search: a node's histogram and its gradient and hessian sums. */
export interface SplitItem {
  hist: Float64Array;
  G: number;
  H: number;
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
  /** Settings for splitMany (once per fit). */
  configureSplits(cfg: SplitConfig): void;
  /** build() for every item (disjoint histograms; an item's parent is no other item's histogram). */
  buildMany(items: HistItem[]): void;
  /** partition() for every item (disjoint row ranges); returns each item's first right position. */
  partitionMany(items: PartitionItem[]): number[];
  /** splitKernel for every item: 6 numbers per item (see splitKernel). */
  splitMany(items: SplitItem[]): Float64Array;
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

  protected cfg: SplitConfig | null = null;

  configureSplits(cfg: SplitConfig): void {
    this.cfg = cfg;
  }
}

/** Single-threaded builder over ordinary typed arrays. */
export class SerialHistogramBuilder extends BuilderBase implements HistogramBuilder {
  /** The codes four at a time (bins.length is a multiple of 4). */
  private readonly b32: Uint32Array;
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
    this.b32 = new Uint32Array(bins.buffer, bins.byteOffset, bins.length >> 2);
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
    histKernel(hist, this.b32, this.nCols, this.n, this.gh, this.rowIdx, start, end, all, 0, this.nCols);
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

  buildMany(items: HistItem[]): void {
    for (const it of items) this.build(it.hist, it.start, it.end, it.all, it.parent);
  }

  partitionMany(items: PartitionItem[]): number[] {
    return items.map((it) => this.partition(it.start, it.end, it.f, it.side, it.mc, it.missLeft));
  }

  splitMany(items: SplitItem[]): Float64Array {
    const out = new Float64Array(6 * items.length);
    items.forEach((it, i) => {
      splitKernel(it.hist, it.G, it.H, this.cfg!, out, 6 * i);
    });
    return out;
  }

  close(): void {}
}

// Control words (Int32Array over a SharedArrayBuffer).
const SEQ = 0; // task sequence number; workers wait on it
const CMD = 1; // task kind, see below
const NEXT = 2; // seq << 16 | blocks << 8 | next block to claim: one word, so a claim never mixes two tasks
const FINISHED = 3; // blocks finished in the current task
const HIST = 4; // build: histogram slot in the arena
const START = 5;
const END = 6;
const ALL = 7; // build: 1 = all rows; partition: rows in block 0; gradients, margins: first row of block 1
const NBLOCKS = 8;
const BLOCKSIZE = 9; // build: features per block; binning: columns per block
const FEATURE = 10; // partition: split feature
const LEFT0 = 11; // partition: left count of block 0 (block 1 at LEFT0 + 1)
const MISSCOL = 13; // partition: missing indicator column or -1
const MISSLEFT = 14; // partition: 1 when indicated missing rows go left
const PARENT = 15; // build: arena slot of the parent histogram to subtract from, or -1
const FLAGS = 16; // gradients: 1 = logistic, 2 = weighted; margins: number of leaves
const FAILED = 17; // set by a worker whose block threw (the error text follows on its port)
// Task tables (CMD_TABLE): block b runs the task tasks[b * TASK_WORDS ..]; at most MAX_TASKS per run.
const CTL_WORDS = 18;

// Task kinds (the literals in runBlock and workerMain).
const CMD_BUILD = 1;
const CMD_EXIT = 2;
const CMD_PARTITION = 3;
const CMD_GRADIENTS = 4;
const CMD_MARGINS = 5;
const CMD_REBIND = 6;
const CMD_BIN = 7;
const CMD_TABLE = 8;
const TASK_WORDS = 10;
const MAX_TASKS = 255;
// Task table kinds.
const TASK_HIST = 1;
const TASK_PARTITION = 3;
const TASK_SPLIT = 9;

/** Arrays every thread works on (SharedArrayBuffer views); the training ones are empty until bound. */
interface Shared {
  ctl: Int32Array;
  bins: Uint8Array;
  /** bins four codes at a time. */
  b32: Uint32Array;
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
  /** The binning run, while binMatrix runs. */
  job: BinJob | null;
  /** Task table (CMD_TABLE), partition results and side tables, split inputs/outputs (8 per split task). */
  tasks: Int32Array;
  tres: Int32Array;
  sides: Uint8Array;
  splitIO: Float64Array;
  cfg: SplitConfig | null;
}

interface Kernels {
  hist: typeof histKernel;
  part: typeof partitionKernel;
  grad: typeof gradKernel;
  margin: typeof marginKernel;
  bin: typeof binGroupKernel;
  cuts: typeof sketchCuts;
  split: typeof splitKernel;
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
    k.hist(hist, s.b32, s.nCols, s.n, s.gh, s.rowIdx, ctl[5]!, ctl[6]!, ctl[7] === 1, fb, fe);
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
  } else if (cmd === 7) {
    const job = s.job!;
    const g0 = blk * ctl[9]!;
    k.bin(job, g0, Math.min(g0 + ctl[9]!, job.nCols), k.cuts);
  } else if (cmd === 8) {
    const t = s.tasks;
    const o = blk * 10;
    const kind = t[o]!;
    const histSize = s.nCols * 512;
    if (kind === 1) {
      // Histogram of features [fb, fe): slot, start, end, all, fb, fe, parent slot or -1.
      const slot = t[o + 1]!;
      const hist = s.arena.subarray(slot * histSize, (slot + 1) * histSize);
      const fb = t[o + 5]!;
      const fe = t[o + 6]!;
      k.hist(hist, s.b32, s.nCols, s.n, s.gh, s.rowIdx, t[o + 2]!, t[o + 3]!, t[o + 4] === 1, fb, fe);
      const ps = t[o + 7]!;
      if (ps >= 0) {
        const parent = s.arena.subarray(ps * histSize, (ps + 1) * histSize);
        for (let j = fb * 512; j < fe * 512; j++) parent[j]! -= hist[j]!;
      }
    } else if (kind === 3) {
      // Partition of [a, b): a, b, feature, indicator column, missLeft, side table, result index, whole.
      const a = t[o + 1]!;
      const b = t[o + 2]!;
      const side = s.sides.subarray(t[o + 6]! * 256, t[o + 6]! * 256 + 256);
      const nl = k.part(s.rowIdx, s.scratch, s.bins, s.nCols, t[o + 3]!, side, t[o + 4]!, t[o + 5]!, a, b);
      s.tres[t[o + 7]!] = nl;
      // A whole node: move its right rows after the left ones (the rows of other tasks are elsewhere).
      if (t[o + 8] === 1) s.rowIdx.set(s.scratch.subarray(a, a + (b - a - nl)), a + nl);
    } else if (kind === 9) {
      // Split search: slot, io index (splitIO[8i] = G, [8i + 1] = H, results from 8i + 2).
      const slot = t[o + 1]!;
      const io = t[o + 2]! * 8;
      const hist = s.arena.subarray(slot * histSize, (slot + 1) * histSize);
      k.split(hist, s.splitIO[io]!, s.splitIO[io + 1]!, s.cfg!, s.splitIO, io + 2);
    }
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
      // New shared arrays, posted on the port before the task was published.
      s = receiveMessageOnPort(port).message as Shared;
      if (Atomics.add(ctl, 3, 1) + 1 === ctl[8]) Atomics.notify(ctl, 3);
      continue;
    }
    for (;;) {
      // A claim is valid only for the task it was issued for: the sequence number, the task's block count and
      // the next block share one word (a count read from elsewhere could already be the next task's).
      const cur = Atomics.load(ctl, 2);
      if (cur >>> 16 !== seen) break;
      const nBlocks = (cur >>> 8) & 0xff;
      const blk = cur & 0xff;
      if (blk >= nBlocks) break;
      if (Atomics.compareExchange(ctl, 2, cur, cur + 1) !== cur) continue;
      try {
        run(s, k, blk);
      } catch (e) {
        // Report instead of dying: the caller is blocked in Atomics.wait and would never hear of it.
        port.postMessage(String((e as Error)?.stack ?? e));
        Atomics.store(ctl, 17, 1);
      }
      if (Atomics.add(ctl, 3, 1) + 1 === nBlocks) Atomics.notify(ctl, 3);
    }
  }
}

/** Shared state with no arrays bound (the threads hold no memory of a finished fit). */
function emptyShared(ctl: Int32Array): Shared {
  const none = new Float64Array(0);
  return {
    ctl,
    bins: new Uint8Array(0),
    b32: new Uint32Array(0),
    gh: none,
    rowIdx: new Uint32Array(0),
    scratch: new Uint32Array(0),
    side: new Uint8Array(0),
    arena: none,
    margin: none,
    y: none,
    w: none,
    parts: none,
    leaves: none,
    n: 0,
    nCols: 0,
    job: null,
    tasks: new Int32Array(0),
    tres: new Int32Array(0),
    sides: new Uint8Array(0),
    splitIO: none,
    cfg: null,
  };
}

/**
 * What ParallelHistogramBuilder needs of a thread pool: shared memory, the control words (`s.ctl`),
 * rebinding the threads to new arrays, and running the blocks of the task set up in ctl. The pool
 * itself (worker threads, kept between fits) is a process resource, so it lives outside models/:
 * training/gbtThreads.ts (GbtThreads, gbtThreads), injected through GradientBoostedTrees.fit's `threads`.
 */
export interface GbtPool extends BinningPool {
  /** The arrays the threads currently work on. */
  s: Shared;
  readonly nWorkers: number;
  /** Makes every thread work on `s` from the next task on. */
  rebind(s: Shared): void;
  /** Publishes the task set up in ctl, works on its blocks alongside the workers and waits for all of them. */
  run(nBlocks: number): void;
}

/** Lends thread pools to fits (training/gbtThreads.ts gbtThreads); fit acquires one and releases it when done. */
export interface GbtThreadRuntime {
  acquire(threads: number): GbtPool;
  release(pool: GbtPool): void;
}

/**
 * The pool protocol for training/gbtThreads.ts: the worker entry and block runner (run from their source
 * text), the kernels, the control-word indices and task kinds. Pure code; no thread is started here.
 */
export const GBT_POOL_PROTOCOL = {
  runBlock,
  workerMain,
  emptyShared,
  kernels: (): Kernels => ({
    hist: histKernel,
    part: partitionKernel,
    grad: gradKernel,
    margin: marginKernel,
    bin: binGroupKernel,
    cuts: sketchCuts,
    split: splitKernel,
  }),
  /** The workers' source text (CommonJS eval worker). */
  workerSource: (): string =>
    // Bundlers may wrap functions in a __name() helper; the stub keeps the source text runnable.
    `const __name = (f) => f;\n${binningSource()}\n(${workerMain.toString()})(${runBlock.toString()}, ` +
    `{ hist: ${histKernel.toString()}, part: ${partitionKernel.toString()}, grad: ${gradKernel.toString()}, ` +
    `margin: ${marginKernel.toString()}, bin: binGroupKernel, cuts: sketchCuts, ` +
    `split: ${splitKernel.toString()} });`,
  ctl: { SEQ, CMD, NEXT, FINISHED, NBLOCKS, BLOCKSIZE, FAILED, CTL_WORDS },
  cmd: { CMD_EXIT, CMD_REBIND, CMD_BIN },
  MAX_TASKS,
} as const;

export type { Kernels as GbtKernels, Shared as GbtShared };

/**
 * Feature-parallel builder on a GbtPool (training/gbtThreads.ts). Histograms live in a fixed arena of `slots` buffers; when it
 * is exhausted `take` falls back to a private buffer built by the caller alone.
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
  private readonly histSize: number;
  private readonly free: number[] = [];
  private readonly slotOf = new Map<Float64Array, number>();
  private readonly nBlocks: number;
  private readonly block: number;

  constructor(
    bins: Uint8Array,
    n: number,
    private readonly nCols: number,
    private readonly pool: GbtPool,
    slots: number,
  ) {
    super(n);
    const f64 = (len: number): Float64Array => pool.sharedF64(len);
    this.bins = pool.sharedU8(bins.length);
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
      ctl: pool.s.ctl,
      bins: this.bins,
      b32: new Uint32Array(this.bins.buffer, 0, this.bins.length >> 2),
      gh: this.gh,
      rowIdx: this.rowIdx,
      scratch: new Uint32Array(new SharedArrayBuffer(4 * n)),
      side: pool.sharedU8(256),
      arena: f64(this.histSize * slots),
      margin: this.margin,
      y: this.y,
      w: this.w,
      parts: this.parts,
      leaves: this.leaves,
      n,
      nCols,
      job: null,
      tasks: new Int32Array(new SharedArrayBuffer(4 * TASK_WORDS * MAX_TASKS)),
      tres: new Int32Array(new SharedArrayBuffer(4 * MAX_TASKS)),
      sides: pool.sharedU8(256 * MAX_TASKS),
      splitIO: f64(8 * MAX_TASKS),
      cfg: null,
    };
    pool.rebind(this.s);
    for (let s = slots - 1; s >= 0; s--) this.free.push(s);
    // One contiguous column range per thread (a multiple of 4 columns): with row-major bins every block
    // re-reads the node's rows.
    const threads = pool.nWorkers + 1;
    this.block = (Math.ceil(nCols / threads) + 3) & ~3;
    this.nBlocks = Math.ceil(nCols / this.block);
  }

  protected alloc(length: number): Float64Array {
    return this.pool.sharedF64(length);
  }

  override leafBuffer(nLeaves: number): Float64Array {
    const before = this.leaves;
    const buf = super.leafBuffer(nLeaves);
    if (buf !== before) {
      this.s.leaves = buf;
      this.pool.rebind(this.s);
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
      this.pool.nWorkers === 0 ||
      (!all && end - start < MIN_PARALLEL_ROWS)
    ) {
      histKernel(hist, this.s.b32, this.nCols, this.n, this.gh, this.rowIdx, start, end, all, 0, this.nCols);
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
    this.pool.run(this.nBlocks);
  }

  /**
   * Big nodes: the caller and a worker each partition one half stably (left rows compacted in place, right
   * rows to scratch), then the halves are concatenated as leftA leftB rightA rightB, which is the serial
   * order, so the result does not depend on the thread count.
   */
  partition(start: number, end: number, f: number, side: Uint8Array, mc: number, missLeft: number): number {
    const { rowIdx, scratch } = this.s;
    if (this.pool.nWorkers === 0 || end - start < MIN_PARALLEL_ROWS) {
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
    this.pool.run(2);
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
    if (this.pool.nWorkers === 0 || n < 2 * LOSS_BLOCK) {
      gradKernel(this.logistic, this.weighted, this.y, this.w, this.margin, this.gh, 0, n, this.parts);
    } else {
      const ctl = this.s.ctl;
      ctl[CMD] = CMD_GRADIENTS;
      ctl[ALL] = half;
      ctl[FLAGS] = (this.logistic ? 1 : 0) | (this.weighted ? 2 : 0);
      ctl[NBLOCKS] = 2;
      this.pool.run(2);
    }
    return meanOfParts(this.parts, n);
  }

  addLeaves(nLeaves: number, nSample: number): void {
    if (this.pool.nWorkers === 0 || nSample < MIN_PARALLEL_ROWS) {
      marginKernel(this.margin, this.rowIdx, this.leaves, nLeaves, 0, nSample);
      return;
    }
    const ctl = this.s.ctl;
    ctl[CMD] = CMD_MARGINS;
    ctl[ALL] = nSample >>> 1;
    ctl[END] = nSample;
    ctl[FLAGS] = nLeaves;
    ctl[NBLOCKS] = 2;
    this.pool.run(2);
  }

  override configureSplits(cfg: SplitConfig): void {
    super.configureSplits(cfg);
    const shared = (a: Int32Array | Uint8Array): Int32Array | Uint8Array => {
      const b = a instanceof Int32Array ? this.pool.sharedI32(a.length) : this.pool.sharedU8(a.length);
      b.set(a);
      return b;
    };
    this.s.cfg = {
      ...cfg,
      nBins: shared(cfg.nBins) as Int32Array,
      hasMissing: shared(cfg.hasMissing) as Uint8Array,
      missingCol: shared(cfg.missingCol) as Int32Array,
      lastOk: shared(cfg.lastOk) as Uint8Array,
    };
    this.pool.rebind(this.s);
  }

  /** Runs the first `count` tasks of the table on all threads. */
  private runTable(count: number): void {
    if (count === 0) return;
    this.s.ctl[CMD] = CMD_TABLE;
    this.s.ctl[NBLOCKS] = count;
    this.pool.run(count);
  }

  /** Nodes with at least MIN_PARALLEL_ROWS rows are split by feature blocks, smaller ones are one task each. */
  buildMany(items: HistItem[]): void {
    const t = this.s.tasks;
    let count = 0;
    const serial: HistItem[] = [];
    for (const it of items) {
      const slot = this.slotOf.get(it.hist);
      const ps = it.parent === null ? -1 : (this.slotOf.get(it.parent) ?? -2);
      const rows = it.all ? this.n : it.end - it.start;
      const nb = rows >= MIN_PARALLEL_ROWS ? this.nBlocks : 1;
      if (slot === undefined || ps === -2 || count + nb > MAX_TASKS) {
        serial.push(it);
        continue;
      }
      const block = nb > 1 ? this.block : this.nCols;
      for (let b = 0; b < nb; b++) {
        const o = TASK_WORDS * count++;
        t[o] = TASK_HIST;
        t[o + 1] = slot;
        t[o + 2] = it.start;
        t[o + 3] = it.end;
        t[o + 4] = it.all ? 1 : 0;
        t[o + 5] = b * block;
        t[o + 6] = Math.min((b + 1) * block, this.nCols);
        t[o + 7] = ps;
      }
    }
    this.runTable(count);
    for (const it of serial) {
      histKernel(
        it.hist,
        this.s.b32,
        this.nCols,
        this.n,
        this.gh,
        this.rowIdx,
        it.start,
        it.end,
        it.all,
        0,
        this.nCols,
      );
      if (it.parent !== null) for (let j = 0; j < it.parent.length; j++) it.parent[j]! -= it.hist[j]!;
    }
  }

  /**
   * Small nodes are one task each (partitioned and put back in place by the thread); nodes with at least
   * MIN_PARALLEL_ROWS rows are split in two halves concatenated afterwards in serial order (see partition).
   */
  partitionMany(items: PartitionItem[]): number[] {
    if (items.length > MAX_TASKS / 2) {
      return items.map((it) => this.partition(it.start, it.end, it.f, it.side, it.mc, it.missLeft));
    }
    const t = this.s.tasks;
    const { tres, sides, rowIdx, scratch } = this.s;
    let count = 0;
    const halves: boolean[] = [];
    items.forEach((it, i) => {
      sides.set(it.side, 256 * i);
      const split = it.end - it.start >= MIN_PARALLEL_ROWS;
      halves.push(split);
      const half = (it.end - it.start) >>> 1;
      const ranges = split
        ? [
            [it.start, it.start + half],
            [it.start + half, it.end],
          ]
        : [[it.start, it.end]];
      ranges.forEach(([a, b], h) => {
        const o = TASK_WORDS * count++;
        t[o] = TASK_PARTITION;
        t[o + 1] = a!;
        t[o + 2] = b!;
        t[o + 3] = it.f;
        t[o + 4] = it.mc;
        t[o + 5] = it.missLeft;
        t[o + 6] = i;
        t[o + 7] = 2 * i + h;
        t[o + 8] = split ? 0 : 1;
      });
    });
    this.runTable(count);
    return items.map((it, i) => {
      if (!halves[i]) return it.start + tres[2 * i]!;
      const half = (it.end - it.start) >>> 1;
      const m0 = it.start + half;
      const nlA = tres[2 * i]!;
      const nlB = tres[2 * i + 1]!;
      const nrA = half - nlA;
      const nrB = it.end - m0 - nlB;
      rowIdx.copyWithin(it.start + nlA, m0, m0 + nlB);
      const mid = it.start + nlA + nlB;
      rowIdx.set(scratch.subarray(it.start, it.start + nrA), mid);
      rowIdx.set(scratch.subarray(m0, m0 + nrB), mid + nrA);
      return mid;
    });
  }

  splitMany(items: SplitItem[]): Float64Array {
    const out = new Float64Array(6 * items.length);
    const t = this.s.tasks;
    const io = this.s.splitIO;
    const placed: number[] = [];
    let count = 0;
    items.forEach((it, i) => {
      const slot = this.slotOf.get(it.hist);
      if (slot === undefined || count >= MAX_TASKS) {
        splitKernel(it.hist, it.G, it.H, this.cfg!, out, 6 * i);
        return;
      }
      io[8 * count] = it.G;
      io[8 * count + 1] = it.H;
      const o = TASK_WORDS * count;
      t[o] = TASK_SPLIT;
      t[o + 1] = slot;
      t[o + 2] = count;
      placed.push(i);
      count++;
    });
    this.runTable(count);
    for (let k = 0; k < placed.length; k++) out.set(io.subarray(8 * k + 2, 8 * k + 8), 6 * placed[k]!);
    return out;
  }

  /** The pool is the fit's; it closes it. */
  close(): void {}
}
