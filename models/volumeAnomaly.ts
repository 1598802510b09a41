/**
 * Volume anomalies in a daily count series: each day's count against a trailing baseline of the
 * days before it, by a robust z-score (median and MAD instead of mean and standard deviation, so a
 * past spike does not inflate the baseline). Iglewicz & Hoaglin (1993), "How to Detect and Handle
 * Outliers": z = (x - median) / (1.4826 * MAD), with |z| > 3.5 as the usual outlier cut.
 * School traffic is weekly (weekends are quiet), so with `period` 7 the expected count of a day is
 * the median of the baseline days on the same weekday, and the scale is the MAD of every baseline
 * day's deviation from its own weekday median (a seasonal median/MAD; period 1 is the plain one).
 * Pure: counts in, scores out.
 */

/** 1.4826 * MAD estimates the standard deviation of normally distributed data (1 / Phi^-1(3/4)). */
export const MAD_TO_SD = 1.482602218505602;

export interface VolumeAnomalyOptions {
  /** Days of trailing baseline before each scored day. */
  baselineDays: number;
  /** |z| at or above this flags the day. */
  threshold: number;
  /** Fewer baseline days than this (series start): the day is not scored. Must be >= period. */
  minBaselineDays: number;
  /** Seasonal period in days: 7 compares a day with the same weekdays, 1 with every baseline day. */
  period: number;
}

export const DEFAULT_VOLUME_OPTIONS: VolumeAnomalyOptions = {
  baselineDays: 28,
  threshold: 3.5,
  minBaselineDays: 14,
  period: 7,
};

export class VolumeOptionsError extends Error {
  readonly code = "VOLUME_OPTIONS";
  constructor(message: string) {
    super(message);
    this.name = "VolumeOptionsError";
  }
}

export interface DayScore {
  /** Index of the day in the input series. */
  index: number;
  count: number;
  /** Expected count: median of the baseline days of the same phase of the period (NaN when not scored). */
  median: number;
  /** Median absolute deviation of the baseline days from their own phase's median. */
  mad: number;
  /** The scale z divides by: max(1.4826 * MAD, sqrt(max(median, 1))). */
  scale: number;
  /** Robust z-score; null when the baseline is shorter than minBaselineDays. */
  z: number | null;
  /** count / median (null when not scored or the median is 0). */
  ratio: number | null;
  anomaly: "spike" | "drop" | null;
}

/** Median of the first n values of xs (sorts a copy). */
export function median(xs: Float64Array, n = xs.length): number {
  if (n === 0) return Number.NaN;
  const s = xs.slice(0, n).sort();
  const mid = n >> 1;
  return n % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/**
 * Scores every day of `counts` (consecutive days, zeros included: a day without events is a count
 * of 0, the strongest drop there is). The scale has a floor of sqrt(median): event counts are
 * roughly Poisson, so a perfectly flat baseline (MAD 0) must not turn a difference of one event
 * into an infinite z.
 */
export function scoreDailyCounts(
  counts: ArrayLike<number>,
  opts: VolumeAnomalyOptions = DEFAULT_VOLUME_OPTIONS,
): DayScore[] {
  const { baselineDays: b, period: p, minBaselineDays: minB, threshold } = opts;
  if (!Number.isInteger(p) || p < 1)
    throw new VolumeOptionsError(`period must be a positive integer (got ${p})`);
  if (!Number.isInteger(b) || b < p)
    throw new VolumeOptionsError(`baselineDays must be an integer >= period ${p} (got ${b})`);
  if (!(minB >= p && minB <= b))
    throw new VolumeOptionsError(
      `minBaselineDays must be between period ${p} and baselineDays ${b} (got ${minB})`,
    );
  if (!(threshold > 0)) throw new VolumeOptionsError(`threshold must be > 0 (got ${threshold})`);
  const out: DayScore[] = [];
  const phase = new Float64Array(b);
  const dev = new Float64Array(b);
  const phaseMedian = new Float64Array(p);
  for (let i = 0; i < counts.length; i++) {
    const x = counts[i]!;
    const from = Math.max(0, i - b);
    const n = i - from;
    if (n < minB) {
      out.push({
        index: i,
        count: x,
        median: Number.NaN,
        mad: Number.NaN,
        scale: Number.NaN,
        z: null,
        ratio: null,
        anomaly: null,
      });
      continue;
    }
    // n >= minB >= p, so every phase has at least one baseline day.
    for (let c = 0; c < p; c++) {
      let m = 0;
      for (let j = from + ((c - (from % p) + p) % p); j < i; j += p) phase[m++] = counts[j]!;
      phaseMedian[c] = median(phase, m);
    }
    for (let j = from; j < i; j++) dev[j - from] = Math.abs(counts[j]! - phaseMedian[j % p]!);
    const med = phaseMedian[i % p]!;
    const mad = median(dev, n);
    const scale = Math.max(MAD_TO_SD * mad, Math.sqrt(Math.max(med, 1)));
    const z = (x - med) / scale;
    const anomaly = z >= threshold ? "spike" : z <= -threshold ? "drop" : null;
    out.push({ index: i, count: x, median: med, mad, scale, z, ratio: med > 0 ? x / med : null, anomaly });
  }
  return out;
}
