/**
 * Per-feature cut points chosen the way XGBoost's `hist` tree method chooses them (version 1.7: the weighted
 * quantile sketch of Chen & Guestrin 2016, appendix A, run as a merge-and-prune sketch), so a model trained here
 * with maxBins = max_bin splits on the same candidate thresholds as XGBoost on the same data.
 *
 * The sketch works on summaries: sorted distinct values v with rank bounds rmin/rmax (weight of values below v,
 * resp. up to and including v) and wmin (weight of v itself). Values arrive in row order and are buffered; each
 * full buffer becomes an exact summary that is pruned to `limit` entries and merged into a binary cascade of
 * levels (combine, then prune again when a level overflows). At the end every level is merged into one
 * summary, which is pruned to 8 * maxBins and then to maxBins + 1 entries; the cuts are the values of entries
 * 1..maxBins-1 of that summary plus one cut above the maximum (max + |max| + 1e-5). Bin b of a feature holds
 * cuts[b-1] <= v < cuts[b], so with at most maxBins distinct values every distinct value has its own bin.
 *
 * Ranks are float32 in XGBoost, and the pruning decisions compare rounded rank sums, so every rank operation
 * here is rounded to float32 (Math.fround) in the same order. Values are compared as given (float64); for
 * float32-representable data (XGBoost stores features as float32) the cuts are identical to XGBoost's.
 * With weights, tied values' weights may be summed in a different order than XGBoost's unstable sort does,
 * which can change the last bit of a rank.
 */

const f32 = Math.fround;

/** A summary: entries 0..size-1, sorted by value, with float32 rank bounds. */
export class Summary {
  readonly rmin: Float32Array;
  readonly rmax: Float32Array;
  readonly wmin: Float32Array;
  readonly value: Float64Array;
  size = 0;

  constructor(capacity: number) {
    this.rmin = new Float32Array(capacity);
    this.rmax = new Float32Array(capacity);
    this.wmin = new Float32Array(capacity);
    this.value = new Float64Array(capacity);
  }

  private put(i: number, src: Summary, j: number): void {
    this.rmin[i] = src.rmin[j]!;
    this.rmax[i] = src.rmax[j]!;
    this.wmin[i] = src.wmin[j]!;
    this.value[i] = src.value[j]!;
  }

  copyFrom(src: Summary): void {
    const n = src.size;
    this.rmin.set(src.rmin.subarray(0, n));
    this.rmax.set(src.rmax.subarray(0, n));
    this.wmin.set(src.wmin.subarray(0, n));
    this.value.set(src.value.subarray(0, n));
    this.size = n;
  }

  /**
   * This = src pruned to at most maxSize entries: the first and last entries, and for k = 1..maxSize-2 the
   * entry whose rank midpoint is nearest to begin + k * range / (maxSize - 1) (each taken once).
   */
  setPrune(src: Summary, maxSize: number): void {
    const m = src.size;
    if (m <= maxSize) {
      this.copyFrom(src);
      return;
    }
    const { rmin, rmax, wmin } = src;
    const begin = rmax[0]!;
    const range = f32(rmin[m - 1]! - begin);
    const n = maxSize - 1;
    this.put(0, src, 0);
    let size = 1;
    let i = 1;
    let lastIdx = 0;
    for (let k = 1; k < n; k++) {
      const dx2 = f32(2 * f32(f32(f32(k * range) / n) + begin));
      while (i < m - 1 && dx2 >= f32(rmax[i + 1]! + rmin[i + 1]!)) i++;
      if (i === m - 1) break;
      // rmin of the next value after entry i + rmax of the last value before entry i + 1.
      if (dx2 < f32(f32(rmin[i]! + wmin[i]!) + f32(rmax[i + 1]! - wmin[i + 1]!))) {
        if (i !== lastIdx) {
          this.put(size++, src, i);
          lastIdx = i;
        }
      } else if (i + 1 !== lastIdx) {
        this.put(size++, src, i + 1);
        lastIdx = i + 1;
      }
    }
    if (lastIdx !== m - 1) this.put(size++, src, m - 1);
    this.size = size;
  }

  /** This = the merge of summaries a and b (rank bounds add up), with rounding errors repaired. */
  setCombine(a: Summary, b: Summary): void {
    if (a.size === 0) {
      this.copyFrom(b);
      return;
    }
    if (b.size === 0) {
      this.copyFrom(a);
      return;
    }
    const { rmin, rmax, wmin, value } = this;
    let i = 0;
    let j = 0;
    let d = 0;
    // rmin of the next value after the last taken entry of each input (XGBoost's "extended rmin").
    let aPrev = 0;
    let bPrev = 0;
    while (i < a.size && j < b.size) {
      const va = a.value[i]!;
      const vb = b.value[j]!;
      if (va === vb) {
        rmin[d] = a.rmin[i]! + b.rmin[j]!;
        rmax[d] = a.rmax[i]! + b.rmax[j]!;
        wmin[d] = a.wmin[i]! + b.wmin[j]!;
        value[d++] = va;
        aPrev = f32(a.rmin[i]! + a.wmin[i]!);
        bPrev = f32(b.rmin[j]! + b.wmin[j]!);
        i++;
        j++;
      } else if (va < vb) {
        rmin[d] = a.rmin[i]! + bPrev;
        rmax[d] = a.rmax[i]! + f32(b.rmax[j]! - b.wmin[j]!);
        wmin[d] = a.wmin[i]!;
        value[d++] = va;
        aPrev = f32(a.rmin[i]! + a.wmin[i]!);
        i++;
      } else {
        rmin[d] = b.rmin[j]! + aPrev;
        rmax[d] = b.rmax[j]! + f32(a.rmax[i]! - a.wmin[i]!);
        wmin[d] = b.wmin[j]!;
        value[d++] = vb;
        bPrev = f32(b.rmin[j]! + b.wmin[j]!);
        j++;
      }
    }
    if (i < a.size) {
      const bMax = b.rmax[b.size - 1]!;
      for (; i < a.size; i++) {
        rmin[d] = a.rmin[i]! + bPrev;
        rmax[d] = a.rmax[i]! + bMax;
        wmin[d] = a.wmin[i]!;
        value[d++] = a.value[i]!;
      }
    }
    if (j < b.size) {
      const aMax = a.rmax[a.size - 1]!;
      for (; j < b.size; j++) {
        rmin[d] = b.rmin[j]! + aPrev;
        rmax[d] = b.rmax[j]! + aMax;
        wmin[d] = b.wmin[j]!;
        value[d++] = b.value[j]!;
      }
    }
    this.size = d;
    // Re-establish rmin and rmax non-decreasing and rmax >= rmin + wmin after float rounding.
    let prevMin = 0;
    let prevMax = 0;
    for (let k = 0; k < d; k++) {
      if (rmin[k]! < prevMin) rmin[k] = prevMin;
      else prevMin = rmin[k]!;
      if (rmax[k]! < prevMax) rmax[k] = prevMax;
      const next = f32(rmin[k]! + wmin[k]!);
      if (rmax[k]! < next) rmax[k] = next;
      prevMax = rmax[k]!;
    }
  }
}

/** XGBoost's sizing of a sketch for `maxn` values at accuracy eps: entries per level and number of levels. */
export function sketchLimit(maxn: number, eps: number): number {
  let nLevel = 1;
  let limit = 0;
  for (;;) {
    limit = Math.min(maxn, Math.ceil(nLevel / eps) + 1);
    if (2 ** nLevel * limit >= maxn) return limit;
    nLevel++;
  }
}

/** Sorted (value, weight) pairs -> exact summary with tied values merged (weights summed in float32). */
function exactSummary(vals: Float64Array, ws: Float64Array | null, n: number, out: Summary): void {
  let size = 0;
  let wsum = 0;
  for (let i = 0; i < n; ) {
    const v = vals[i]!;
    let w = ws === null ? 1 : ws[i]!;
    let j = i + 1;
    while (j < n && vals[j] === v) {
      w = f32(w + (ws === null ? 1 : ws[j]!));
      j++;
    }
    out.rmin[size] = wsum;
    out.rmax[size] = wsum + w;
    out.wmin[size] = w;
    out.value[size++] = v;
    wsum = f32(wsum + w);
    i = j;
  }
  out.size = size;
}

/** Scratch space of sortChunk, grown on demand. */
export class SortScratch {
  k1 = new Uint32Array(0);
  k2 = new Uint32Array(0);
  w2 = new Float64Array(0);
  readonly count = new Uint32Array(2048);
  /** Digit counts of the three 11-bit digits of 32-bit keys. */
  readonly count3 = new Uint32Array(3 * 2048);

  ensure(n: number): void {
    if (this.w2.length >= n) return;
    this.k1 = new Uint32Array(2 * n);
    this.k2 = new Uint32Array(2 * n);
    this.w2 = new Float64Array(n);
  }
}

/**
 * One stable LSD pass over 64-bit keys stored as (lo, hi) word pairs by the digit of `mask` width whose window
 * starts at bit `shift`, carrying the weights payload when given. Returns false (and moves nothing) when every
 * key has the same digit.
 */
function radixPass64(
  k: Uint32Array,
  kOut: Uint32Array,
  ws: Float64Array | null,
  wsOut: Float64Array,
  n: number,
  shift: number,
  mask: number,
  count: Uint32Array,
): boolean {
  // Digit = (lo >>> sl | hi << sh) >>> 0 & mask, or from hi alone (the window never spans more than 2 words).
  const inHi = shift >= 32;
  const sl = shift & 31;
  const sh = 32 - sl;
  const dig = (lo: number, hi: number): number =>
    inHi ? (hi >>> sl) & mask : sl === 0 ? lo & mask : ((lo >>> sl) | (hi << sh)) & mask;
  count.fill(0, 0, mask + 1);
  for (let i = 0; i < n; i++) count[dig(k[2 * i]!, k[2 * i + 1]!)]!++;
  if (count[dig(k[0]!, k[1]!)] === n) return false;
  let sum = 0;
  for (let d = 0; d <= mask; d++) {
    const c = count[d]!;
    count[d] = sum;
    sum += c;
  }
  for (let i = 0; i < n; i++) {
    const lo = k[2 * i]!;
    const hi = k[2 * i + 1]!;
    const j = count[dig(lo, hi)]!++;
    kOut[2 * j] = lo;
    kOut[2 * j + 1] = hi;
    if (ws !== null) wsOut[j] = ws[i]!;
  }
  return true;
}

/**
 * Sorts vals[0..n) (no NaN) ascending in place, permuting ws alongside when given: LSD radix sort on the
 * order-preserving key of each value (32-bit when every value is a float32, else 64-bit; sign bit flipped for
 * positives, all bits for negatives), in passes of at most 11 bits over only the bits that differ between
 * keys. Stable, so tied values keep their row order.
 */
export function sortChunk(vals: Float64Array, ws: Float64Array | null, n: number, sc: SortScratch): void {
  if (n < 2) return;
  sc.ensure(n);
  if (sortChunkF32(vals, ws, n, sc)) return;
  let k = sc.k1;
  let kOut = sc.k2;
  let lowVary = 0;
  let highVary = 0;
  const bits = new Uint32Array(vals.buffer, vals.byteOffset, 2 * n);
  for (let i = 0; i < n; i++) {
    const lo = bits[2 * i]!;
    const hi = bits[2 * i + 1]!;
    const neg = hi >>> 31 === 1;
    k[2 * i] = neg ? ~lo >>> 0 : lo;
    k[2 * i + 1] = neg ? ~hi >>> 0 : (hi | 0x80000000) >>> 0;
  }
  for (let i = 1; i < n; i++) {
    lowVary |= k[2 * i]! ^ k[0]!;
    highVary |= k[2 * i + 1]! ^ k[1]!;
  }
  if (lowVary === 0 && highVary === 0) return;
  // Bit range [first, last] of the key that varies, split into equal passes of <= 11 bits.
  const first =
    lowVary !== 0 ? 31 - Math.clz32(lowVary & -lowVary) : 32 + 31 - Math.clz32(highVary & -highVary);
  const last = highVary !== 0 ? 32 + 31 - Math.clz32(highVary) : 31 - Math.clz32(lowVary);
  const nBits = last - first + 1;
  const passes = Math.ceil(nBits / 11);
  const width = Math.ceil(nBits / passes);
  const mask = (1 << width) - 1;
  let w: Float64Array | null = ws;
  let wOut: Float64Array = sc.w2;
  for (let p = 0; p < passes; p++) {
    if (radixPass64(k, kOut, w, wOut, n, first + p * width, mask, sc.count)) {
      const t = k;
      k = kOut;
      kOut = t;
      if (w !== null) {
        const tw = w;
        w = wOut;
        wOut = tw;
      }
    }
  }
  for (let i = 0; i < n; i++) {
    const lo = k[2 * i]!;
    const hi = k[2 * i + 1]!;
    const pos = hi >>> 31 === 1;
    bits[2 * i] = pos ? lo : ~lo >>> 0;
    bits[2 * i + 1] = pos ? hi & 0x7fffffff : ~hi >>> 0;
  }
  if (ws !== null && w !== ws) ws.set(w!.subarray(0, n));
}

/**
 * sortChunk for values that are all float32 (the usual case: XGBoost-style data): 32-bit keys, the three
 * 11-bit digit counts taken in the key pass, then up to three scatter passes. Returns false, leaving vals
 * untouched, when some value is not a float32.
 */
function sortChunkF32(vals: Float64Array, ws: Float64Array | null, n: number, sc: SortScratch): boolean {
  const fa = new Float32Array(sc.k1.buffer, sc.k1.byteOffset, n);
  fa.set(vals.subarray(0, n));
  for (let i = 0; i < n; i++) if (fa[i] !== vals[i]) return false;
  let k = sc.k1;
  let kOut = sc.k2;
  const c = sc.count3;
  c.fill(0);
  for (let i = 0; i < n; i++) {
    const b = k[i]!;
    const key = b >>> 31 === 1 ? ~b >>> 0 : (b | 0x80000000) >>> 0;
    k[i] = key;
    c[key & 0x7ff]!++;
    c[2048 + ((key >>> 11) & 0x7ff)]!++;
    c[4096 + (key >>> 22)]!++;
  }
  let w: Float64Array | null = ws;
  let wOut: Float64Array = sc.w2;
  for (let p = 0; p < 3; p++) {
    const off = p * 2048;
    const shift = 11 * p;
    if (c[off + ((k[0]! >>> shift) & 0x7ff)] === n) continue;
    let sum = 0;
    for (let d = off; d < off + 2048; d++) {
      const cnt = c[d]!;
      c[d] = sum;
      sum += cnt;
    }
    if (w === null) {
      for (let i = 0; i < n; i++) {
        const key = k[i]!;
        kOut[c[off + ((key >>> shift) & 0x7ff)]!++] = key;
      }
    } else {
      for (let i = 0; i < n; i++) {
        const key = k[i]!;
        const j = c[off + ((key >>> shift) & 0x7ff)]!++;
        kOut[j] = key;
        wOut[j] = w[i]!;
      }
      const tw = w;
      w = wOut;
      wOut = tw;
    }
    const t = k;
    k = kOut;
    kOut = t;
  }
  for (let i = 0; i < n; i++) {
    const key = k[i]!;
    k[i] = key >>> 31 === 1 ? key & 0x7fffffff : ~key >>> 0;
  }
  vals.set(new Float32Array(k.buffer, k.byteOffset, n));
  if (ws !== null && w !== ws) ws.set(w!.subarray(0, n));
  return true;
}

/**
 * XGBoost-compatible cuts of one feature from its non-missing values x[0..n) in row order (optional weights,
 * rows of weight 0 are skipped like XGBoost does). Returns the sorted cuts; the last one is above every value,
 * so the feature has cuts.length bins (1..maxBins). n = 0 gives one cut (XGBoost's empty-column value).
 */
export function sketchCuts(x: Float64Array, w: Float64Array | null, maxBins: number): Float64Array {
  const n = x.length;
  if (n === 0) return Float64Array.of(aboveMax(f32(1e-5)));
  const nBinsEps = Math.max(1, Math.min(maxBins, n));
  const eps = 1 / f32(nBinsEps * 8);
  const limit = sketchLimit(n, eps);
  const cap = 2 * limit;
  // Current chunk, raw values in row order. XGBoost's queue holds `cap` entries (a run of equal consecutive
  // values shares one entry) and is flushed when a value different from the last one arrives while it is
  // full; `tail` counts its entries.
  let qv = new Float64Array(cap);
  let qw = w === null ? null : new Float64Array(cap);
  const sc = new SortScratch();
  let qn = 0;
  const temp = new Summary(cap);
  const levels: Summary[] = [new Summary(limit)];
  const pushTemp = (): void => {
    for (let l = 1; ; l++) {
      if (levels.length <= l) levels.push(new Summary(limit));
      const lv = levels[l]!;
      if (lv.size === 0) {
        lv.setPrune(temp, limit);
        return;
      }
      levels[0]!.setPrune(temp, limit);
      temp.setCombine(levels[0]!, lv);
      if (temp.size > limit) lv.size = 0;
      else {
        lv.copyFrom(temp);
        return;
      }
    }
  };
  const flush = (): void => {
    sortChunk(qv, qw, qn, sc);
    exactSummary(qv, qw, qn, temp);
    qn = 0;
    pushTemp();
  };
  if (w === null) {
    // Chunks are runs of rows [a, b) with `cap` entries, found in a tight loop and copied in bulk.
    let a = 0;
    while (a < n) {
      let b = a + 1;
      let tail = 1;
      // A full queue is flushed when a different value arrives; an equal one still joins the last entry
      // (XGBoost 1.7's Push checks both).
      for (; b < n; b++) {
        if (x[b] !== x[b - 1]) {
          if (tail === cap) break;
          tail++;
        }
      }
      qn = b - a;
      if (qn > qv.length) qv = new Float64Array(qn);
      qv.set(x.subarray(a, b));
      // The last chunk stays open (GetSummary below); a full one is flushed when a further value arrives.
      if (b < n) flush();
      a = b;
    }
  } else {
    let prev = Number.NaN;
    let tail = 0;
    for (let r = 0; r < n; r++) {
      const wr = f32(w[r]!);
      if (wr === 0) continue;
      const v = x[r]!;
      if (tail === cap && v !== prev) {
        flush();
        tail = 0;
      }
      if (tail === 0 || v !== prev) tail++;
      prev = v;
      if (qn === qv.length) {
        // Runs of equal values: a chunk can hold more values than entries.
        const grown = new Float64Array(2 * qn);
        grown.set(qv);
        qv = grown;
        const gw = new Float64Array(2 * qn);
        gw.set(qw!);
        qw = gw;
      }
      qv[qn] = v;
      qw![qn] = wr;
      qn++;
    }
  }
  // Final summary: the open chunk merged with every level (XGBoost's GetSummary).
  const out = new Summary(Math.max(cap, qn));
  sortChunk(qv, qw, qn, sc);
  exactSummary(qv, qw, qn, out);
  let summary: Summary;
  if (levels.length > 1) {
    const l0 = levels[0]!;
    l0.setPrune(out, limit);
    for (let l = 1; l < levels.length; l++) {
      const lv = levels[l]!;
      if (lv.size === 0) continue;
      if (l0.size === 0) l0.copyFrom(lv);
      else {
        out.setCombine(l0, lv);
        l0.setPrune(out, limit);
      }
    }
    summary = l0;
  } else if (out.size > limit) {
    temp.setPrune(out, limit);
    summary = temp;
  } else summary = out;
  const inter = Math.min(n, maxBins * 8);
  const reduced = new Summary(inter);
  reduced.setPrune(summary, inter);
  const numBins = Math.min(inter, maxBins);
  const a = new Summary(numBins + 1);
  a.setPrune(reduced, numBins + 1);
  const cuts: number[] = [];
  const required = Math.min(a.size, numBins);
  for (let i = 1; i < required; i++) {
    const c = a.value[i]!;
    if (cuts.length === 0 || c > cuts[cuts.length - 1]!) cuts.push(c);
  }
  cuts.push(aboveMax(a.value[a.size - 1]!));
  return Float64Array.from(cuts);
}

/**
 * XGBoost's last cut: max + (|max| + 1e-5) in float32 arithmetic (float64 when max is not a float32). For a max
 * of -Infinity (where the formula gives NaN) any finite value is above it.
 */
function aboveMax(max: number): number {
  if (max === Number.NEGATIVE_INFINITY) return -Number.MAX_VALUE;
  if (f32(max) === max) return f32(max + f32(f32(Math.abs(max)) + f32(1e-5)));
  return max + (Math.abs(max) + 1e-5);
}

/**
 * Source text of this module's code (sketchCuts and everything it uses), for worker threads that run eval'd
 * source (gbtHistogram.ts): they cannot import modules.
 */
export function sketchSource(): string {
  const parts: (string | { toString(): string })[] = [
    "const f32 = Math.fround;",
    Summary,
    sketchLimit,
    exactSummary,
    SortScratch,
    radixPass64,
    sortChunk,
    sortChunkF32,
    sketchCuts,
    aboveMax,
  ];
  return parts.map(String).join("\n");
}
