/**
 * Binning for histogram-based tree training: each feature's values are mapped once to small integer bins (one
 * byte each, row-major), so split finding scans at most 256 bins instead of sorted values.
 *
 * Cuts are chosen like XGBoost's `hist` method (gbtSketch.ts), so with the same maxBins (XGBoost's max_bin) the
 * candidate thresholds are XGBoost's. Bin b of feature f holds values v with cuts[f][b-1] <= v < cuts[f][b]
 * (b = number of cuts <= v); the last cut lies above every training value, so a split "bins 0..b go left" is
 * exactly the raw-value rule "x < cuts[f][b] goes left" and trained trees predict on raw values without bins.
 *
 * Missing values (NaN) get the code MISSING_BIN (255). A feature with 256 value bins uses code 255 for its
 * last bin too; if it also has missing values, an extra byte column (its missing indicator: 1 = missing) keeps
 * the two apart, so the histogram of bin 255 is the code-255 sum minus the indicator's sum.
 */
import { sketchCuts, sketchSource } from "./gbtSketch.ts";
import { checkMatrix, type Matrix } from "./treeEnsemble.ts";

/** Byte code of a missing value (shared with value bin 255 of a 256-bin feature; see missingCol). */
export const MISSING_BIN = 255;
/** Most value bins a feature can have (XGBoost's largest max_bin with one-byte bins). */
export const MAX_VALUE_BINS = 256;

export interface BinnedMatrix {
  /** Row-major codes: bins[r * stride + c] (a row's codes share a cache line; see gbtHistogram.ts). */
  bins: Uint8Array;
  nRows: number;
  /** Features; byte columns 0..nCols-1 hold their codes. */
  nCols: number;
  /**
   * Bytes per row: nCols codes, then one missing indicator per feature that needs one, then zero padding to a
   * multiple of 4 (the histogram kernel reads codes four at a time).
   */
  stride: number;
  /** Per feature, the sorted cuts: bin b is [cuts[b-1], cuts[b]); the last cut is above every value. */
  cuts: Float64Array[];
  /** Per feature, the number of value bins (cuts.length, 1..256). */
  nBins: Int32Array;
  /** Per feature, 1 when some training value is missing. */
  hasMissing: Uint8Array;
  /** Per feature, the byte column of its missing indicator, or -1 when code MISSING_BIN alone marks missing. */
  missingCol: Int32Array;
}

export class BinningError extends Error {
  readonly code = "GBT_BINNING";
  override readonly name = "BinningError";
}

/** The bin of v: the number of cuts <= v, capped at the last bin (XGBoost puts v >= the last cut there too). */
export function binOf(cuts: Float64Array, v: number): number {
  let lo = 0;
  let hi = cuts.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (cuts[mid]! <= v) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * Number of cuts <= v over cuts padded to 256 entries with +Infinity: a fixed 8-step search whose steps
 * compile to conditional moves. Capped by the caller at the last bin.
 */
function binOfPadded(p: Float64Array, v: number): number {
  let lo = 0;
  lo += p[lo + 127]! <= v ? 128 : 0;
  lo += p[lo + 63]! <= v ? 64 : 0;
  lo += p[lo + 31]! <= v ? 32 : 0;
  lo += p[lo + 15]! <= v ? 16 : 0;
  lo += p[lo + 7]! <= v ? 8 : 0;
  lo += p[lo + 3]! <= v ? 4 : 0;
  lo += p[lo + 1]! <= v ? 2 : 0;
  lo += p[lo]! <= v ? 1 : 0;
  return lo;
}

/** Buckets of binMatrix's value-to-bin lookup table (16x the bins, so a bucket rarely spans a cut). */
const BUCKETS = 4096;

/** Bucket of v in [lo, hi] (values outside clamp to the end buckets). */
function bucketOf(v: number, lo: number, hi: number, scale: number): number {
  if (!(v > lo)) return 0;
  if (v >= hi) return BUCKETS - 1;
  return Math.min(BUCKETS - 1, Math.floor((v - lo) * scale));
}

/** Columns read together from a row-major matrix (8 doubles = one cache line per row). */
const COL_GROUP = 2;

/**
 * Codes of one feature's values (NaN -> MISSING_BIN) into out[0..n), and 1 into ind[r] for missing rows when
 * ind is given. `cuts` as from sketchCuts; codes are binOf(cuts, v).
 */
function binColumn(
  col: Float64Array,
  n: number,
  c: Float64Array,
  out: Uint8Array,
  ind: Uint8Array | null,
): void {
  const last = c.length - 1;
  let lo = Number.POSITIVE_INFINITY;
  let hi = Number.NEGATIVE_INFINITY;
  for (let r = 0; r < n; r++) {
    const v = col[r]!;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  const scale = BUCKETS / (hi - lo);
  if (Number.isFinite(scale) && scale > 0) {
    // Bucket lookup: bucketOf is non-decreasing in v, so every cut in a lower bucket than v's is below v;
    // table[k] = number of cuts in buckets < k is a lower bound on the bin of any value in bucket k. Then
    // step up past cuts <= v: exact, ~0-1 steps.
    const table = new Int32Array(BUCKETS);
    for (let j = 0; j < c.length; j++) {
      const k = bucketOf(c[j]!, lo, hi, scale);
      if (k + 1 < BUCKETS) table[k + 1]!++;
    }
    for (let k = 1; k < BUCKETS; k++) table[k]! += table[k - 1]!;
    for (let r = 0; r < n; r++) {
      const v = col[r]!;
      if (Number.isNaN(v)) {
        out[r] = MISSING_BIN;
        if (ind !== null) ind[r] = 1;
        continue;
      }
      let bb = table[bucketOf(v, lo, hi, scale)]!;
      while (bb < last && c[bb]! <= v) bb++;
      out[r] = bb;
    }
  } else {
    // Infinite values or a single distinct value: the branch-free search over the padded cuts.
    const padded = new Float64Array(MAX_VALUE_BINS).fill(Number.POSITIVE_INFINITY);
    padded.set(c);
    for (let r = 0; r < n; r++) {
      const v = col[r]!;
      if (Number.isNaN(v)) {
        out[r] = MISSING_BIN;
        if (ind !== null) ind[r] = 1;
      } else out[r] = Math.min(binOfPadded(padded, v), last);
    }
  }
}

/** One binning run's inputs and outputs, as read and written by binGroupKernel on any thread. */
export interface BinJob {
  /** X's values, row-major (rowLayout) or column-major. */
  data: Float64Array;
  rowLayout: boolean;
  nRows: number;
  nCols: number;
  /** Per-row weights of the sketch, or empty for none. */
  weights: Float64Array;
  maxBins: number;
  /** Out: codes column by column, codes[f * nRows + r]. */
  codes: Uint8Array;
  /** Out: missing indicators column by column, written only for features that need one (see BinnedMatrix). */
  ind: Uint8Array;
  /** Out: cuts of feature f at cuts[f * 256 ..], nBins[f] of them. */
  cuts: Float64Array;
  nBins: Int32Array;
  hasMissing: Uint8Array;
}

/**
 * Bins features [g0, g1) of a job: cuts (`cutsOf` is sketchCuts) and codes. Row-major input is read a group of
 * columns at a time (one cache line per row instead of one per value). Runs on worker threads from its source
 * text, so it uses only this module's names (imports are renamed by transpilers; sketchCuts comes in as an
 * argument).
 */
export function binGroupKernel(job: BinJob, g0: number, g1: number, cutsOf: typeof sketchCuts): void {
  const { data, nRows, nCols } = job;
  const weighted = job.weights.length > 0;
  const present = new Float64Array(nRows);
  const presentW = weighted ? new Float64Array(nRows) : null;
  const group = job.rowLayout ? new Float64Array(nRows * (g1 - g0)) : null;
  if (group !== null) {
    const gw = g1 - g0;
    for (let r = 0; r < nRows; r++) {
      const o = r * nCols + g0;
      for (let j = 0; j < gw; j++) group[j * nRows + r] = data[o + j]!;
    }
  }
  for (let f = g0; f < g1; f++) {
    const col =
      group !== null
        ? group.subarray((f - g0) * nRows, (f - g0 + 1) * nRows)
        : data.subarray(f * nRows, (f + 1) * nRows);
    let m = 0;
    for (let r = 0; r < nRows; r++) {
      const v = col[r]!;
      if (Number.isNaN(v)) continue;
      if (presentW !== null) presentW[m] = job.weights[r]!;
      present[m++] = v;
    }
    const c = cutsOf(present.subarray(0, m), presentW === null ? null : presentW.subarray(0, m), job.maxBins);
    job.cuts.set(c, f * MAX_VALUE_BINS);
    job.nBins[f] = c.length;
    job.hasMissing[f] = m < nRows ? 1 : 0;
    const needInd = m < nRows && c.length > MISSING_BIN;
    const out = job.codes.subarray(f * nRows, (f + 1) * nRows);
    binColumn(col, nRows, c, out, needInd ? job.ind.subarray(f * nRows, (f + 1) * nRows) : null);
  }
}

/** Source text of binGroupKernel and everything it uses, for worker threads that run eval'd source. */
export function binningSource(): string {
  const parts: (string | { toString(): string })[] = [
    sketchSource(),
    `const MISSING_BIN = ${MISSING_BIN}; const MAX_VALUE_BINS = ${MAX_VALUE_BINS}; const BUCKETS = ${BUCKETS};`,
    binOfPadded,
    bucketOf,
    binColumn,
    binGroupKernel,
  ];
  return parts.map(String).join("\n");
}

/** Runs binGroupKernel over column groups on several threads (gbtHistogram.ts's pool). */
export interface BinningPool {
  /** A Float64Array of `length` zeros that every thread can read (SharedArrayBuffer). */
  sharedF64(length: number): Float64Array;
  sharedU8(length: number): Uint8Array;
  sharedI32(length: number): Int32Array;
  /** binGroupKernel over groups of at least `minGroup` columns, spread over the threads; returns when done. */
  binColumns(job: BinJob, minGroup: number): void;
}

/**
 * Bins every column of X into at most `maxBins` value bins (2..256, XGBoost's max_bin) plus missing. `weights`
 * (optional, per row) weight the quantile sketch like XGBoost's sample weights do. With a pool the column
 * groups are binned on its threads; every column's result is the same either way.
 */
export function binMatrix(
  X: Matrix,
  maxBins: number,
  weights: Float64Array | null = null,
  pool: BinningPool | null = null,
): BinnedMatrix {
  checkMatrix(X);
  if (!Number.isInteger(maxBins) || maxBins < 2 || maxBins > MAX_VALUE_BINS) {
    throw new BinningError(`maxBins must be an integer in 2..${MAX_VALUE_BINS} (got ${maxBins})`);
  }
  const { nRows, nCols } = X;
  const f64 = (len: number): Float64Array => (pool === null ? new Float64Array(len) : pool.sharedF64(len));
  const u8 = (len: number): Uint8Array => (pool === null ? new Uint8Array(len) : pool.sharedU8(len));
  let data: Float64Array = X.data;
  if (pool !== null && !(data.buffer instanceof SharedArrayBuffer)) {
    data = f64(X.data.length);
    data.set(X.data);
  }
  let w: Float64Array = new Float64Array(0);
  if (weights !== null) {
    w = f64(nRows);
    w.set(weights);
  }
  const job: BinJob = {
    data,
    rowLayout: X.layout === "row",
    nRows,
    nCols,
    weights: w,
    maxBins,
    codes: u8(nRows * nCols),
    ind: u8(nRows * nCols),
    cuts: f64(nCols * MAX_VALUE_BINS),
    nBins: pool === null ? new Int32Array(nCols) : pool.sharedI32(nCols),
    hasMissing: u8(nCols),
  };
  if (pool === null)
    for (let g0 = 0; g0 < nCols; g0 += COL_GROUP)
      binGroupKernel(job, g0, Math.min(g0 + COL_GROUP, nCols), sketchCuts);
  else pool.binColumns(job, COL_GROUP);
  const cuts: Float64Array[] = [];
  const nBins = Int32Array.from(job.nBins);
  const hasMissing = Uint8Array.from(job.hasMissing);
  const missingCol = new Int32Array(nCols).fill(-1);
  const indicators: Uint8Array[] = [];
  let stride = nCols;
  for (let f = 0; f < nCols; f++) {
    cuts.push(job.cuts.slice(f * MAX_VALUE_BINS, f * MAX_VALUE_BINS + nBins[f]!));
    if (hasMissing[f] === 1 && nBins[f]! > MISSING_BIN) {
      missingCol[f] = stride++;
      indicators.push(job.ind.subarray(f * nRows, (f + 1) * nRows));
    }
  }
  // Interleave into the row-major layout.
  const { codes } = job;
  stride = (stride + 3) & ~3;
  const bins = new Uint8Array(nRows * stride);
  for (let r = 0; r < nRows; r++) {
    const o = r * stride;
    for (let f = 0; f < nCols; f++) bins[o + f] = codes[f * nRows + r]!;
    for (let j = 0; j < indicators.length; j++) bins[o + nCols + j] = indicators[j]![r]!;
  }
  return { bins, nRows, nCols, stride, cuts, nBins, hasMissing, missingCol };
}
