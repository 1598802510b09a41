/**
 * Quantile binning for histogram-based tree training: each feature's values are mapped once to small integer
 * bins (one byte each, row-major), so split finding scans at most 255 bins instead of sorted values.
 *
 * Bin b of feature f holds values v with cuts[f][b-1] <= v < cuts[f][b] (b = number of cuts <= v), so a split
 * "bins 0..b go left" is exactly the raw-value rule "x < cuts[f][b] goes left" and trained trees predict on raw
 * values without the bins. NaN gets the reserved code MISSING_BIN.
 */
import { checkMatrix, type Matrix } from "./treeEnsemble.ts";

/** Byte code of a missing value; value bins use 0..254. */
export const MISSING_BIN = 255;
/** Most value bins a feature can have (one code is reserved for missing). */
export const MAX_VALUE_BINS = 255;

export interface BinnedMatrix {
  /** Row-major codes: bins[r * nCols + f] (a row's codes share a cache line; see gbtHistogram.ts). */
  bins: Uint8Array;
  nRows: number;
  nCols: number;
  /** Per feature, the sorted upper bounds of bins 0..nBins-2 (the last bin is unbounded). */
  cuts: Float64Array[];
  /** Per feature, the number of value bins (cuts.length + 1). */
  nBins: Int32Array;
}

export class BinningError extends Error {
  readonly code = "GBT_BINNING";
  override readonly name = "BinningError";
}

/** A cut strictly above `a` and at most `b` (a < b): the midpoint, unless rounding puts it on `a`. */
function between(a: number, b: number): number {
  const m = a + (b - a) / 2;
  return m > a && m <= b ? m : b;
}

/** First index i in sorted s[0..n) with s[i] >= v. */
function lowerBound(s: Float64Array, n: number, v: number): number {
  let lo = 0;
  let hi = n;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (s[mid]! < v) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * Cut points for sorted finite-or-infinite values s[0..n): midpoints between all distinct values when there are
 * at most `maxBins` of them, otherwise between the values at ranks i*n/maxBins (i = 1..maxBins-1) and the
 * distinct value below them (heavy ties merge bins, so there may be fewer).
 */
export function quantileCuts(s: Float64Array, n: number, maxBins: number): Float64Array {
  const cuts: number[] = [];
  let distinct = n > 0 ? 1 : 0;
  for (let i = 1; i < n && distinct <= maxBins; i++) if (s[i]! !== s[i - 1]!) distinct++;
  if (distinct <= maxBins) {
    for (let i = 1; i < n; i++) if (s[i]! !== s[i - 1]!) cuts.push(between(s[i - 1]!, s[i]!));
    return Float64Array.from(cuts);
  }
  for (let k = 1; k < maxBins; k++) {
    const rank = Math.floor((k * n) / maxBins);
    const v = s[rank]!;
    const first = lowerBound(s, n, v);
    if (first === 0) continue;
    const c = between(s[first - 1]!, v);
    if (cuts.length === 0 || c > cuts[cuts.length - 1]!) cuts.push(c);
  }
  return Float64Array.from(cuts);
}

/** Number of cuts <= v, i.e. the bin of v. */
export function binOf(cuts: Float64Array, v: number): number {
  let lo = 0;
  let hi = cuts.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (cuts[mid]! <= v) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * binOf over cuts padded to 256 entries with +Infinity: a fixed 8-step search whose steps compile to
 * conditional moves (2-3x faster than the branching search on random data). Capped by the caller at the real
 * number of cuts, since +Infinity itself compares >= the padding.
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

/**
 * Sorts s (no NaN) ascending in place: LSD radix sort on the order-preserving 64-bit key of each double
 * (sign bit flipped for positives, all bits flipped for negatives), 16 bits per pass, skipping passes where
 * every key has the same digit (e.g. the low mantissa bits of float32 data). About 3x faster than
 * Float64Array.prototype.sort on 150k values. `tmp` has room for s.length doubles; `count` 65536 entries.
 */
export function radixSortF64(s: Float64Array, tmp: Float64Array, count: Uint32Array): void {
  const n = s.length;
  if (n < 2) return;
  const a = new Uint32Array(s.buffer, s.byteOffset, 2 * n);
  const b = new Uint32Array(tmp.buffer, tmp.byteOffset, 2 * n);
  // Little-endian words: a[2i] = low 32 bits, a[2i + 1] = high 32 bits (sign in bit 31).
  for (let i = 0; i < n; i++) {
    const hi = a[2 * i + 1]!;
    if (hi >>> 31 === 1) {
      a[2 * i] = ~a[2 * i]!;
      a[2 * i + 1] = ~hi;
    } else a[2 * i + 1] = hi | 0x80000000;
  }
  let src = a;
  let dst = b;
  for (let pass = 0; pass < 4; pass++) {
    const word = pass >> 1;
    const shift = (pass & 1) * 16;
    count.fill(0);
    for (let i = 0; i < n; i++) count[(src[2 * i + word]! >>> shift) & 0xffff]!++;
    if (count[(src[word]! >>> shift) & 0xffff] === n) continue;
    let sum = 0;
    for (let d = 0; d < 65536; d++) {
      const c = count[d]!;
      count[d] = sum;
      sum += c;
    }
    for (let i = 0; i < n; i++) {
      const lo = src[2 * i]!;
      const hi = src[2 * i + 1]!;
      const j = count[((word === 0 ? lo : hi) >>> shift) & 0xffff]!++;
      dst[2 * j] = lo;
      dst[2 * j + 1] = hi;
    }
    const t = src;
    src = dst;
    dst = t;
  }
  if (src !== a) a.set(src);
  for (let i = 0; i < n; i++) {
    const hi = a[2 * i + 1]!;
    if (hi >>> 31 === 1) a[2 * i + 1] = hi & 0x7fffffff;
    else {
      a[2 * i] = ~a[2 * i]!;
      a[2 * i + 1] = ~hi;
    }
  }
}

/** Buckets of binMatrix's value-to-bin lookup table (16x the bins, so a bucket rarely spans a cut). */
const BUCKETS = 4096;

/** Bucket of v in [lo, hi] (values outside clamp to the end buckets). */
function bucketOf(v: number, lo: number, hi: number, scale: number): number {
  if (!(v > lo)) return 0;
  if (v >= hi) return BUCKETS - 1;
  return Math.min(BUCKETS - 1, Math.floor((v - lo) * scale));
}

/** Bins every column of X into at most `maxBins` (2..256; 256 means 255 value bins + the missing code). */
export function binMatrix(X: Matrix, maxBins: number): BinnedMatrix {
  checkMatrix(X);
  if (!Number.isInteger(maxBins) || maxBins < 2 || maxBins > 256) {
    throw new BinningError(`maxBins must be an integer in 2..256 (got ${maxBins})`);
  }
  const valueBins = Math.min(maxBins, MAX_VALUE_BINS);
  const { nRows, nCols } = X;
  const bins = new Uint8Array(nRows * nCols);
  const cuts: Float64Array[] = [];
  const nBins = new Int32Array(nCols);
  const col = new Float64Array(nRows);
  const sorted = new Float64Array(nRows);
  const tmp = new Float64Array(nRows);
  const count = new Uint32Array(65536);
  const padded = new Float64Array(256);
  const table = new Int32Array(BUCKETS);
  for (let f = 0; f < nCols; f++) {
    if (X.layout === "col") col.set(X.data.subarray(f * nRows, (f + 1) * nRows));
    else for (let r = 0; r < nRows; r++) col[r] = X.data[r * nCols + f]!;
    let m = 0;
    for (let r = 0; r < nRows; r++) {
      const v = col[r]!;
      if (!Number.isNaN(v)) sorted[m++] = v;
    }
    const s = sorted.subarray(0, m);
    radixSortF64(s, tmp, count);
    const c = quantileCuts(s, m, valueBins);
    cuts.push(c);
    nBins[f] = c.length + 1;
    const last = c.length;
    const lo = m > 0 ? s[0]! : 0;
    const hi = m > 0 ? s[m - 1]! : 0;
    const scale = BUCKETS / (hi - lo);
    if (m > 0 && Number.isFinite(scale) && scale > 0) {
      // Bucket lookup: table[k] = smallest bin of any value in bucket k (computed with the same bucketOf, so it
      // is a lower bound for every value landing there), then step up past cuts <= v: exact, ~0-1 steps.
      table.fill(last);
      let b = 0;
      for (let i = 0; i < m; i++) {
        const v = s[i]!;
        while (b < last && c[b]! <= v) b++;
        const k = bucketOf(v, lo, hi, scale);
        if (b < table[k]!) table[k] = b;
      }
      for (let r = 0; r < nRows; r++) {
        const v = col[r]!;
        if (Number.isNaN(v)) {
          bins[r * nCols + f] = MISSING_BIN;
          continue;
        }
        let bb = table[bucketOf(v, lo, hi, scale)]!;
        while (bb < last && c[bb]! <= v) bb++;
        bins[r * nCols + f] = bb;
      }
    } else {
      padded.fill(Number.POSITIVE_INFINITY);
      padded.set(c);
      for (let r = 0; r < nRows; r++) {
        const v = col[r]!;
        bins[r * nCols + f] = Number.isNaN(v) ? MISSING_BIN : Math.min(binOfPadded(padded, v), last);
      }
    }
  }
  return { bins, nRows, nCols, cuts, nBins };
}
