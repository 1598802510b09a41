/**
 * Evaluation metrics for probabilistic binary predictions. Pure functions over typed arrays.
 * `y` holds 0/1 labels, `p` predicted probabilities of label 1.
 */

export interface BinaryMetrics {
  auc: number;
  rmse: number;
  logloss: number;
  ece: number;
  n: number;
}

const EPS = 1e-15;

/** Area under the ROC curve by the rank-sum (Mann-Whitney) formula; ties share their average rank. */
export function auc(y: ArrayLike<number>, p: ArrayLike<number>): number {
  const n = y.length;
  const order = new Uint32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  order.sort((a, b) => p[a]! - p[b]!);
  let nPos = 0;
  let rankSumPos = 0;
  let i = 0;
  while (i < n) {
    let j = i;
    while (j + 1 < n && p[order[j + 1]!] === p[order[i]!]) j++;
    const avgRank = (i + j) / 2 + 1;
    for (let k = i; k <= j; k++) {
      if (y[order[k]!] === 1) {
        nPos++;
        rankSumPos += avgRank;
      }
    }
    i = j + 1;
  }
  const nNeg = n - nPos;
  if (nPos === 0 || nNeg === 0) return Number.NaN;
  return (rankSumPos - (nPos * (nPos + 1)) / 2) / (nPos * nNeg);
}

export function rmse(y: ArrayLike<number>, p: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < y.length; i++) {
    const d = y[i]! - p[i]!;
    s += d * d;
  }
  return Math.sqrt(s / y.length);
}

/** Mean negative log-likelihood, with probabilities clipped to [1e-15, 1 - 1e-15]. */
export function logloss(y: ArrayLike<number>, p: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < y.length; i++) {
    const q = Math.min(1 - EPS, Math.max(EPS, p[i]!));
    s -= y[i] === 1 ? Math.log(q) : Math.log(1 - q);
  }
  return s / y.length;
}

export interface ReliabilityBin {
  lo: number;
  hi: number;
  count: number;
  meanPredicted: number;
  observedRate: number;
}

/** Reliability-diagram data over `bins` equal-width bins of [0, 1]; a prediction of exactly 1 falls in the last bin. */
export function reliability(y: ArrayLike<number>, p: ArrayLike<number>, bins = 10): ReliabilityBin[] {
  const count = new Float64Array(bins);
  const sumP = new Float64Array(bins);
  const sumY = new Float64Array(bins);
  for (let i = 0; i < y.length; i++) {
    const b = Math.min(bins - 1, Math.max(0, Math.floor(p[i]! * bins)));
    count[b]! += 1;
    sumP[b]! += p[i]!;
    sumY[b]! += y[i]!;
  }
  const out: ReliabilityBin[] = [];
  for (let b = 0; b < bins; b++) {
    const c = count[b]!;
    out.push({
      lo: b / bins,
      hi: (b + 1) / bins,
      count: c,
      meanPredicted: c > 0 ? sumP[b]! / c : Number.NaN,
      observedRate: c > 0 ? sumY[b]! / c : Number.NaN,
    });
  }
  return out;
}

/** Expected calibration error: count-weighted mean |observed - predicted| over equal-width bins (10 by default). */
export function ece(y: ArrayLike<number>, p: ArrayLike<number>, bins = 10): number {
  let s = 0;
  for (const b of reliability(y, p, bins)) {
    if (b.count > 0) s += b.count * Math.abs(b.observedRate - b.meanPredicted);
  }
  return s / y.length;
}

export function binaryMetrics(y: ArrayLike<number>, p: ArrayLike<number>): BinaryMetrics {
  if (y.length !== p.length)
    throw new RangeError(`labels (${y.length}) and predictions (${p.length}) differ in length`);
  return { auc: auc(y, p), rmse: rmse(y, p), logloss: logloss(y, p), ece: ece(y, p), n: y.length };
}
