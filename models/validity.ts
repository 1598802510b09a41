/**
 * Validity measures of a mastery score against a known truth (issue 16): rank and linear correlation,
 * mean absolute error, saturation, interval coverage, and rank correlation with a future outcome
 * (next-week quiz accuracy). Pure math; the bench (bench/validity.bench.ts) supplies the pairs.
 */

/** One scored (student, topic): the score, and the truth / next-week outcome when known. */
export interface ScorePair {
  score: number;
  truth?: number | undefined;
  nextWeek?: number | undefined;
  /** An interval around the score (e.g. 80%), when the source has one. */
  lo?: number | undefined;
  hi?: number | undefined;
}

export interface ValidityMeasures {
  /** Pairs with a truth. */
  n: number;
  spearman: number;
  pearson: number;
  mae: number;
  mean: number;
  above95: number;
  above99: number;
  /** Share of truths inside [lo, hi] among pairs that have an interval (NaN when none has). */
  coverage: number;
  /** Pairs with a next-week outcome, and the Spearman of the score against it. */
  nNext: number;
  nextSpearman: number;
}

/** Pearson correlation; NaN with fewer than 3 pairs or a constant side. */
export function pearson(x: ArrayLike<number>, y: ArrayLike<number>): number {
  const n = x.length;
  if (n < 3 || y.length !== n) return Number.NaN;
  let mx = 0;
  let my = 0;
  for (let i = 0; i < n; i++) {
    mx += x[i]!;
    my += y[i]!;
  }
  mx /= n;
  my /= n;
  let sxy = 0;
  let sxx = 0;
  let syy = 0;
  for (let i = 0; i < n; i++) {
    const dx = x[i]! - mx;
    const dy = y[i]! - my;
    sxy += dx * dy;
    sxx += dx * dx;
    syy += dy * dy;
  }
  return sxx > 0 && syy > 0 ? sxy / Math.sqrt(sxx * syy) : Number.NaN;
}

/** Ranks 1..n with ties given their average rank. */
export function averageRanks(x: ArrayLike<number>): Float64Array {
  const n = x.length;
  const idx = Array.from({ length: n }, (_, i) => i).sort((a, b) => x[a]! - x[b]!);
  const r = new Float64Array(n);
  let i = 0;
  while (i < n) {
    let j = i;
    while (j + 1 < n && x[idx[j + 1]!] === x[idx[i]!]) j++;
    const avg = (i + j) / 2 + 1;
    for (let k = i; k <= j; k++) r[idx[k]!] = avg;
    i = j + 1;
  }
  return r;
}

/** Spearman rank correlation (Pearson of average ranks, so ties are handled). */
export function spearman(x: ArrayLike<number>, y: ArrayLike<number>): number {
  if (x.length < 3 || y.length !== x.length) return Number.NaN;
  return pearson(averageRanks(x), averageRanks(y));
}

export function validityMeasures(pairs: readonly ScorePair[]): ValidityMeasures {
  const withTruth = pairs.filter((p) => p.truth !== undefined);
  const s = withTruth.map((p) => p.score);
  const t = withTruth.map((p) => p.truth as number);
  let mae = 0;
  let mean = 0;
  let a95 = 0;
  let a99 = 0;
  for (let i = 0; i < s.length; i++) {
    mae += Math.abs(s[i]! - t[i]!);
    mean += s[i]!;
    if (s[i]! > 0.95) a95++;
    if (s[i]! > 0.99) a99++;
  }
  const n = s.length;
  const withInterval = withTruth.filter((p) => p.lo !== undefined && p.hi !== undefined);
  const inside = withInterval.filter(
    (p) => (p.truth as number) >= (p.lo as number) && (p.truth as number) <= (p.hi as number),
  );
  const next = pairs.filter((p) => p.nextWeek !== undefined);
  return {
    n,
    spearman: spearman(s, t),
    pearson: pearson(s, t),
    mae: n > 0 ? mae / n : Number.NaN,
    mean: n > 0 ? mean / n : Number.NaN,
    above95: n > 0 ? a95 / n : Number.NaN,
    above99: n > 0 ? a99 / n : Number.NaN,
    coverage: withInterval.length > 0 ? inside.length / withInterval.length : Number.NaN,
    nNext: next.length,
    nextSpearman: spearman(
      next.map((p) => p.score),
      next.map((p) => p.nextWeek as number),
    ),
  };
}
