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

/** Sample covariance of two equally long series (n - 1 in the denominator). */
export function covariance(x: ArrayLike<number>, y: ArrayLike<number>): number {
  const n = x.length;
  let mx = 0;
  let my = 0;
  for (let i = 0; i < n; i++) {
    mx += x[i]!;
    my += y[i]!;
  }
  mx /= n;
  my /= n;
  let s = 0;
  for (let i = 0; i < n; i++) s += (x[i]! - mx) * (y[i]! - my);
  return s / (n - 1);
}

/** Pearson correlation; NaN with fewer than 3 pairs or a constant side. */
export function pearson(x: ArrayLike<number>, y: ArrayLike<number>): number {
  const n = x.length;
  if (n < 3 || y.length !== n) return Number.NaN;
  const sxx = covariance(x, x);
  const syy = covariance(y, y);
  // The roots apart: sxx * syy underflows to 0 for tiny spreads (both denormal) and gave Infinity. The
  // clamp removes rounding past +-1 of a (near-)perfect correlation.
  const scale = Math.sqrt(sxx) * Math.sqrt(syy);
  if (!(scale > 0)) return Number.NaN;
  return Math.max(-1, Math.min(1, covariance(x, y) / scale));
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

/** A percentile interval (e.g. 2.5th and 97.5th) of a bootstrap distribution. */
export interface BootstrapInterval {
  estimate: number;
  lo: number;
  hi: number;
}

export interface PairedBootstrap {
  /** Spearman of each score against the outcome on every pair, with its cluster-bootstrap interval. */
  a: BootstrapInterval;
  b: BootstrapInterval;
  /** Spearman(a) - Spearman(b) on the same pairs, with its interval from the same resamples (paired). */
  diff: BootstrapInterval;
  /** Share of resamples where Spearman(a) > Spearman(b). */
  shareAbove: number;
  resamples: number;
}

/**
 * Paired cluster bootstrap of two scores' Spearman against one outcome. Clusters (e.g. students, whose pairs
 * are not independent) are drawn with replacement, all of a drawn cluster's pairs go in, and both
 * Spearmans are computed on that same resample, so their difference's interval reflects the pairing (a
 * difference both scores share cancels). `rnd` is a uniform [0, 1) source (seeded by the caller); `level`
 * the interval's coverage (0.95). Pure: no clock, no I/O.
 */
export function pairedClusterBootstrap(
  clusters: readonly number[],
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  outcome: ArrayLike<number>,
  opts: { resamples: number; rnd: () => number; level?: number },
): PairedBootstrap {
  const n = clusters.length;
  if (a.length !== n || b.length !== n || outcome.length !== n)
    throw new RangeError(
      `pairedClusterBootstrap: ${n} clusters, ${a.length} / ${b.length} / ${outcome.length} values`,
    );
  const byCluster = new Map<number, number[]>();
  for (let i = 0; i < n; i++) {
    const list = byCluster.get(clusters[i]!);
    if (list === undefined) byCluster.set(clusters[i]!, [i]);
    else list.push(i);
  }
  const groups = [...byCluster.values()];
  const sa: number[] = [];
  const sb: number[] = [];
  const sd: number[] = [];
  let above = 0;
  for (let r = 0; r < opts.resamples; r++) {
    const idx: number[] = [];
    for (let g = 0; g < groups.length; g++) {
      const pick = groups[Math.floor(opts.rnd() * groups.length)]!;
      for (const i of pick) idx.push(i);
    }
    const y = idx.map((i) => outcome[i]!);
    const ra = spearman(
      idx.map((i) => a[i]!),
      y,
    );
    const rb = spearman(
      idx.map((i) => b[i]!),
      y,
    );
    if (!Number.isFinite(ra) || !Number.isFinite(rb)) continue;
    sa.push(ra);
    sb.push(rb);
    sd.push(ra - rb);
    if (ra > rb) above++;
  }
  const level = opts.level ?? 0.95;
  const interval = (stats: number[], estimate: number): BootstrapInterval => {
    const s = [...stats].sort((x, z) => x - z);
    if (s.length === 0) return { estimate, lo: Number.NaN, hi: Number.NaN };
    const at = (q: number) => s[Math.min(s.length - 1, Math.max(0, Math.floor(q * s.length)))]!;
    return { estimate, lo: at((1 - level) / 2), hi: at(1 - (1 - level) / 2) };
  };
  const ea = spearman(a, outcome);
  const eb = spearman(b, outcome);
  return {
    a: interval(sa, ea),
    b: interval(sb, eb),
    diff: interval(sd, ea - eb),
    shareAbove: sd.length > 0 ? above / sd.length : Number.NaN,
    resamples: sd.length,
  };
}
