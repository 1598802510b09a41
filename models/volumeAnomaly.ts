/**
 * Volume anomalies in a daily count series: each day's count against a trailing baseline of the
 * days before it, by a robust z-score (median and MAD instead of mean and standard deviation, so a
 * past spike does not inflate the baseline). Iglewicz & Hoaglin (1993), "How to Detect and Handle
 * Outliers": z = (x - median) / (1.4826 * MAD), with |z| > 3.5 as the usual outlier cut.
 * Pure: counts in, scores out.
 */

/** 1.4826 * MAD estimates the standard deviation of normally distributed data (1 / Phi^-1(3/4)). */
export const MAD_TO_SD = 1.482602218505602;

export interface VolumeAnomalyOptions {
  /** Days of trailing baseline before each scored day. */
  baselineDays: number;
  /** |z| at or above this flags the day. */
  threshold: number;
  /** Fewer baseline days than this (series start): the day is not scored. */
  minBaselineDays: number;
}

export const DEFAULT_VOLUME_OPTIONS: VolumeAnomalyOptions = {
  baselineDays: 14,
  threshold: 3.5,
  minBaselineDays: 7,
};

export interface DayScore {
  /** Index of the day in the input series. */
  index: number;
  count: number;
  /** Median of the baseline days (NaN when not scored). */
  median: number;
  /** Median absolute deviation of the baseline days from their median. */
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
  const out: DayScore[] = [];
  const window = new Float64Array(opts.baselineDays);
  const dev = new Float64Array(opts.baselineDays);
  for (let i = 0; i < counts.length; i++) {
    const x = counts[i]!;
    const from = Math.max(0, i - opts.baselineDays);
    const n = i - from;
    if (n < opts.minBaselineDays || n === 0) {
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
    for (let k = 0; k < n; k++) window[k] = counts[from + k]!;
    const med = median(window, n);
    for (let k = 0; k < n; k++) dev[k] = Math.abs(window[k]! - med);
    const mad = median(dev, n);
    const scale = Math.max(MAD_TO_SD * mad, Math.sqrt(Math.max(med, 1)));
    const z = (x - med) / scale;
    const anomaly = z >= opts.threshold ? "spike" : z <= -opts.threshold ? "drop" : null;
    out.push({ index: i, count: x, median: med, mad, scale, z, ratio: med > 0 ? x / med : null, anomaly });
  }
  return out;
}
