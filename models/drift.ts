/**
 * Distribution-shift statistics between a reference sample and a current sample. Pure functions
 * (no I/O, no clock); numeric samples are Float64Array, categorical samples are count maps.
 *
 * - PSI over bins cut at the reference's quantiles (Siddiqi 2006, "Credit Risk Scorecards", ch. 8;
 *   the 0.1 / 0.25 rule of thumb is his).
 * - Two-sample Kolmogorov-Smirnov statistic with the asymptotic p-value of the Kolmogorov
 *   distribution, using Stephens' (1970) small-sample correction as in Numerical Recipes 3rd ed. §14.3.3.
 * - Pearson chi-square test of homogeneity on a 2 x k table (categoricals).
 * - Jensen-Shannon divergence (Lin 1991) in bits, so it lies in [0, 1].
 * - 1-D Wasserstein-1 distance between the empirical distributions, the area between the two
 *   empirical CDFs, optionally divided by the reference standard deviation.
 * - Bonferroni and Benjamini-Hochberg (1995) adjusted p-values.
 */
import { gammaln, quantileSorted, sampleStandardDeviation } from "simple-statistics";

export class DriftInputError extends Error {
  readonly code = "DRIFT_INPUT";
  constructor(message: string) {
    super(message);
    this.name = "DriftInputError";
  }
}

export type DriftLevel = "ok" | "warn" | "alert";

export interface PsiThresholds {
  warn: number;
  alert: number;
}

export const DEFAULT_PSI_THRESHOLDS: PsiThresholds = { warn: 0.1, alert: 0.25 };

/** Floor on a bin's proportion so an empty bin contributes a large but finite term. */
export const PSI_EPSILON = 1e-4;

export function psiLevel(psi: number, t: PsiThresholds = DEFAULT_PSI_THRESHOLDS): DriftLevel {
  return psi >= t.alert ? "alert" : psi >= t.warn ? "warn" : "ok";
}

function sortedCopy(x: ArrayLike<number>): Float64Array {
  const s = Float64Array.from(x);
  s.sort();
  return s;
}

function requireNonEmpty(x: ArrayLike<number>, what: string): void {
  if (x.length === 0)
    throw new DriftInputError(`${what} is empty; drift needs at least one value on each side`);
  for (let i = 0; i < x.length; i++)
    if (!Number.isFinite(x[i]!))
      throw new DriftInputError(`${what}[${i}] is ${x[i]}; drop NULL/NaN values before comparing`);
}

/**
 * Interior cut points at the reference's quantiles k/bins (k = 1..bins-1), deduplicated: with many
 * ties (counts that are mostly 0) fewer bins remain. The last bin (above the top edge) may be empty
 * in the reference; current values beyond the reference's range then land there and raise PSI.
 */
export function quantileEdges(reference: ArrayLike<number>, bins = 10): Float64Array {
  if (!Number.isInteger(bins) || bins < 2)
    throw new DriftInputError(`bins must be an integer >= 2 (got ${bins})`);
  requireNonEmpty(reference, "reference");
  const sorted = Array.from(sortedCopy(reference));
  const edges: number[] = [];
  for (let k = 1; k < bins; k++) {
    const q = quantileSorted(sorted, k / bins);
    if (edges.length === 0 || q > edges[edges.length - 1]!) edges.push(q);
  }
  return Float64Array.from(edges);
}

/** Counts per bin: bin b holds values in (edges[b-1], edges[b]] (first bin open below, last open above). */
export function binCounts(values: ArrayLike<number>, edges: Float64Array): Float64Array {
  const counts = new Float64Array(edges.length + 1);
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    let lo = 0;
    let hi = edges.length;
    // Smallest b with v <= edges[b] (or edges.length).
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (v <= edges[mid]!) hi = mid;
      else lo = mid + 1;
    }
    counts[lo]! += 1;
  }
  return counts;
}

function proportions(counts: ArrayLike<number>): Float64Array {
  let total = 0;
  for (let i = 0; i < counts.length; i++) total += counts[i]!;
  if (total <= 0) throw new DriftInputError("histogram has no mass; give at least one count > 0");
  const p = new Float64Array(counts.length);
  for (let i = 0; i < counts.length; i++) p[i] = counts[i]! / total;
  return p;
}

/**
 * Population stability index of two histograms over the same bins:
 * PSI = sum_b (c_b - r_b) ln(c_b / r_b), proportions floored at `epsilon`.
 */
export function psiFromCounts(
  referenceCounts: ArrayLike<number>,
  currentCounts: ArrayLike<number>,
  epsilon = PSI_EPSILON,
): number {
  if (referenceCounts.length !== currentCounts.length)
    throw new DriftInputError(
      `histograms have ${referenceCounts.length} and ${currentCounts.length} bins; both must use the same bins`,
    );
  const r = proportions(referenceCounts);
  const c = proportions(currentCounts);
  let s = 0;
  for (let b = 0; b < r.length; b++) {
    const rb = Math.max(r[b]!, epsilon);
    const cb = Math.max(c[b]!, epsilon);
    s += (cb - rb) * Math.log(cb / rb);
  }
  return s;
}

/** Jensen-Shannon divergence in bits of two histograms (normalized here), in [0, 1]. */
export function jensenShannon(p: ArrayLike<number>, q: ArrayLike<number>): number {
  if (p.length !== q.length)
    throw new DriftInputError(`distributions have ${p.length} and ${q.length} entries; they must match`);
  const a = proportions(p);
  const b = proportions(q);
  let s = 0;
  for (let i = 0; i < a.length; i++) {
    const m = 0.5 * (a[i]! + b[i]!);
    if (a[i]! > 0) s += 0.5 * a[i]! * Math.log2(a[i]! / m);
    if (b[i]! > 0) s += 0.5 * b[i]! * Math.log2(b[i]! / m);
  }
  // Rounding can leave -1e-17 for identical inputs.
  return Math.min(1, Math.max(0, s));
}

export interface KsResult {
  /** sup_x |F_ref(x) - F_cur(x)| */
  statistic: number;
  /** Asymptotic p-value (conservative with many ties). */
  pValue: number;
  nReference: number;
  nCurrent: number;
}

/**
 * Kolmogorov distribution survival function Q_KS(lambda) = 2 sum_{j>=1} (-1)^{j-1} exp(-2 j^2 lambda^2)
 * (Numerical Recipes §6.14). The alternating series converges slowly for small lambda, where Q is 1
 * to double precision anyway.
 */
export function kolmogorovSf(lambda: number): number {
  if (lambda < 0.2) return 1;
  let sum = 0;
  let sign = 1;
  let prev = 0;
  const a = -2 * lambda * lambda;
  for (let j = 1; j <= 100; j++) {
    const term = sign * 2 * Math.exp(a * j * j);
    sum += term;
    if (Math.abs(term) <= 1e-10 * Math.abs(prev) || Math.abs(term) <= 1e-16 * Math.abs(sum))
      return Math.min(1, Math.max(0, sum));
    sign = -sign;
    prev = term;
  }
  return 1;
}

/** Two-sample KS test. Ties are advanced together, so D is exact for discrete data too. */
export function ksTwoSample(reference: ArrayLike<number>, current: ArrayLike<number>): KsResult {
  requireNonEmpty(reference, "reference");
  requireNonEmpty(current, "current");
  const a = sortedCopy(reference);
  const b = sortedCopy(current);
  return ksSorted(a, b);
}

/** KS on already-sorted samples (the drift monitor sorts each reference once). */
export function ksSorted(a: Float64Array, b: Float64Array): KsResult {
  const n = a.length;
  const m = b.length;
  let i = 0;
  let j = 0;
  let d = 0;
  while (i < n && j < m) {
    const x = Math.min(a[i]!, b[j]!);
    while (i < n && a[i]! <= x) i++;
    while (j < m && b[j]! <= x) j++;
    const diff = Math.abs(i / n - j / m);
    if (diff > d) d = diff;
  }
  const en = Math.sqrt((n * m) / (n + m));
  const pValue = kolmogorovSf((en + 0.12 + 0.11 / en) * d);
  return { statistic: d, pValue, nReference: n, nCurrent: m };
}

/**
 * Regularized upper incomplete gamma Q(a, x): series for x < a + 1, Lentz continued fraction
 * otherwise (Numerical Recipes §6.2).
 */
export function gammaQ(a: number, x: number): number {
  if (x <= 0) return 1;
  const lnPre = -x + a * Math.log(x) - gammaln(a);
  if (x < a + 1) {
    let ap = a;
    let del = 1 / a;
    let sum = del;
    for (let k = 0; k < 1000; k++) {
      ap += 1;
      del *= x / ap;
      sum += del;
      if (Math.abs(del) < Math.abs(sum) * 1e-15) break;
    }
    return Math.min(1, Math.max(0, 1 - sum * Math.exp(lnPre)));
  }
  const tiny = 1e-300;
  let b = x + 1 - a;
  let c = 1 / tiny;
  let d = 1 / b;
  let h = d;
  for (let k = 1; k < 1000; k++) {
    const an = -k * (k - a);
    b += 2;
    d = an * d + b;
    if (Math.abs(d) < tiny) d = tiny;
    c = b + an / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    const del = d * c;
    h *= del;
    if (Math.abs(del - 1) < 1e-15) break;
  }
  return Math.min(1, Math.max(0, Math.exp(lnPre) * h));
}

/** P(X >= x) for X ~ chi-square with df degrees of freedom. */
export function chiSquareSf(x: number, df: number): number {
  if (!(df > 0)) throw new DriftInputError(`chi-square df must be > 0 (got ${df})`);
  return gammaQ(df / 2, x / 2);
}

export interface ChiSquareResult {
  statistic: number;
  df: number;
  pValue: number;
}

/**
 * Pearson chi-square test of homogeneity for two count vectors over the same categories (a 2 x k
 * table). Categories empty on both sides are dropped; with fewer than two categories left there is
 * nothing to test (statistic 0, p 1).
 */
export function chiSquareHomogeneity(
  referenceCounts: ArrayLike<number>,
  currentCounts: ArrayLike<number>,
): ChiSquareResult {
  if (referenceCounts.length !== currentCounts.length)
    throw new DriftInputError(
      `count vectors have ${referenceCounts.length} and ${currentCounts.length} categories; align them first`,
    );
  let nA = 0;
  let nB = 0;
  for (let i = 0; i < referenceCounts.length; i++) {
    nA += referenceCounts[i]!;
    nB += currentCounts[i]!;
  }
  if (nA <= 0 || nB <= 0)
    throw new DriftInputError("chi-square needs counts on both sides (a side sums to 0)");
  const total = nA + nB;
  let stat = 0;
  let k = 0;
  for (let i = 0; i < referenceCounts.length; i++) {
    const col = referenceCounts[i]! + currentCounts[i]!;
    if (col === 0) continue;
    k++;
    const eA = (nA * col) / total;
    const eB = (nB * col) / total;
    stat += (referenceCounts[i]! - eA) ** 2 / eA + (currentCounts[i]! - eB) ** 2 / eB;
  }
  if (k < 2) return { statistic: 0, df: 0, pValue: 1 };
  return { statistic: stat, df: k - 1, pValue: chiSquareSf(stat, k - 1) };
}

/** Wasserstein-1 distance between two empirical distributions: integral of |F_a(x) - F_b(x)| dx. */
export function wasserstein1(reference: ArrayLike<number>, current: ArrayLike<number>): number {
  requireNonEmpty(reference, "reference");
  requireNonEmpty(current, "current");
  return wassersteinSorted(sortedCopy(reference), sortedCopy(current));
}

export function wassersteinSorted(a: Float64Array, b: Float64Array): number {
  const n = a.length;
  const m = b.length;
  let i = 0;
  let j = 0;
  let w = 0;
  let x = Math.min(a[0]!, b[0]!);
  while (i < n || j < m) {
    const next = Math.min(i < n ? a[i]! : Number.POSITIVE_INFINITY, j < m ? b[j]! : Number.POSITIVE_INFINITY);
    w += Math.abs(i / n - j / m) * (next - x);
    x = next;
    while (i < n && a[i]! <= x) i++;
    while (j < m && b[j]! <= x) j++;
  }
  return w;
}

export interface NumericDrift {
  nReference: number;
  nCurrent: number;
  psi: number;
  level: DriftLevel;
  /** Interior bin edges (reference quantiles) and the two histograms' proportions over them. */
  edges: number[];
  referenceShare: number[];
  currentShare: number[];
  ks: KsResult;
  js: number;
  wasserstein: number;
  /** wasserstein / sd(reference); equals the shift in sd units for a pure location shift. NaN if sd = 0. */
  wassersteinScaled: number;
  meanReference: number;
  meanCurrent: number;
  sdReference: number;
}

export interface NumericDriftOptions {
  bins?: number;
  thresholds?: PsiThresholds;
}

/** Every statistic for one numeric feature. `reference` may be passed pre-sorted (it is not modified). */
export function numericDrift(
  reference: ArrayLike<number>,
  current: ArrayLike<number>,
  opts: NumericDriftOptions = {},
): NumericDrift {
  requireNonEmpty(reference, "reference");
  requireNonEmpty(current, "current");
  const a = sortedCopy(reference);
  const b = sortedCopy(current);
  const edges = quantileEdges(a, opts.bins ?? 10);
  const rc = binCounts(a, edges);
  const cc = binCounts(b, edges);
  const psi = psiFromCounts(rc, cc);
  const sd = a.length > 1 ? sampleStandardDeviation(Array.from(a)) : 0;
  const w = wassersteinSorted(a, b);
  let sumA = 0;
  let sumB = 0;
  for (let i = 0; i < a.length; i++) sumA += a[i]!;
  for (let i = 0; i < b.length; i++) sumB += b[i]!;
  return {
    nReference: a.length,
    nCurrent: b.length,
    psi,
    level: psiLevel(psi, opts.thresholds),
    edges: Array.from(edges),
    referenceShare: Array.from(proportions(rc)),
    currentShare: Array.from(proportions(cc)),
    ks: ksSorted(a, b),
    js: jensenShannon(rc, cc),
    wasserstein: w,
    wassersteinScaled: sd > 0 ? w / sd : Number.NaN,
    meanReference: sumA / a.length,
    meanCurrent: sumB / b.length,
    sdReference: sd,
  };
}

export interface CategoricalDrift {
  nReference: number;
  nCurrent: number;
  categories: string[];
  referenceShare: number[];
  currentShare: number[];
  psi: number;
  level: DriftLevel;
  chiSquare: ChiSquareResult;
  js: number;
}

/** Every statistic for one categorical feature, over the union of categories seen on either side. */
export function categoricalDrift(
  reference: ReadonlyMap<string, number>,
  current: ReadonlyMap<string, number>,
  thresholds: PsiThresholds = DEFAULT_PSI_THRESHOLDS,
): CategoricalDrift {
  const categories = [...new Set([...reference.keys(), ...current.keys()])].sort();
  const rc = Float64Array.from(categories, (c) => reference.get(c) ?? 0);
  const cc = Float64Array.from(categories, (c) => current.get(c) ?? 0);
  const psi = psiFromCounts(rc, cc);
  let nA = 0;
  let nB = 0;
  for (const v of rc) nA += v;
  for (const v of cc) nB += v;
  return {
    nReference: nA,
    nCurrent: nB,
    categories,
    referenceShare: Array.from(proportions(rc)),
    currentShare: Array.from(proportions(cc)),
    psi,
    level: psiLevel(psi, thresholds),
    chiSquare: chiSquareHomogeneity(rc, cc),
    js: jensenShannon(rc, cc),
  };
}

export type Correction = "none" | "bonferroni" | "bh";

/**
 * Adjusted p-values for a family of tests. Bonferroni controls the family-wise error rate;
 * Benjamini-Hochberg controls the false discovery rate (and the FWER when every null is true,
 * which is what bounds the no-drift false-alarm rate). NaN p-values stay NaN and do not count in m.
 */
export function adjustPValues(pValues: ArrayLike<number>, method: Correction): Float64Array {
  const out = Float64Array.from(pValues);
  const idx: number[] = [];
  for (let i = 0; i < out.length; i++) if (!Number.isNaN(out[i]!)) idx.push(i);
  const m = idx.length;
  if (method === "none" || m === 0) return out;
  if (method === "bonferroni") {
    for (const i of idx) out[i] = Math.min(1, out[i]! * m);
    return out;
  }
  // BH step-up: adj_(k) = min_{j >= k} m p_(j) / j over ascending p.
  idx.sort((x, y) => (pValues[x] as number) - (pValues[y] as number));
  let running = 1;
  for (let r = m - 1; r >= 0; r--) {
    const i = idx[r]!;
    running = Math.min(running, ((pValues[i] as number) * m) / (r + 1));
    out[i] = running;
  }
  return out;
}
