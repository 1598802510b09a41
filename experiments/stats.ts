import { Xoshiro128 } from "../models/prng.ts";

/**
 * Statistics for experiment outcome analysis. Pure functions (no I/O, clock or env); seeded
 * resampling only. Distribution functions follow Numerical Recipes (Press et al., 3rd ed.):
 * Lanczos log-gamma (6.1), incomplete gamma by series / continued fraction (6.2), incomplete beta
 * by Lentz's continued fraction (6.4); the normal quantile is Acklam's rational approximation
 * refined by one Halley step.
 */

/** ln Γ(x), x > 0 (Lanczos, g = 7, n = 9; ~15 digits). */
export function logGamma(x: number): number {
  const c = [
    0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059,
    12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
  ];
  if (x < 0.5) return Math.log(Math.PI / Math.abs(Math.sin(Math.PI * x))) - logGamma(1 - x);
  const z = x - 1;
  let a = c[0]!;
  const t = z + 7.5;
  for (let i = 1; i < 9; i++) a += c[i]! / (z + i);
  return 0.5 * Math.log(2 * Math.PI) + (z + 0.5) * Math.log(t) - t + Math.log(a);
}

/** Regularized upper incomplete gamma Q(a, x) = Γ(a, x) / Γ(a). */
export function gammaQ(a: number, x: number): number {
  if (x <= 0) return 1;
  const gln = logGamma(a);
  if (x < a + 1) {
    // Series for P(a, x).
    let sum = 1 / a;
    let del = sum;
    let ap = a;
    for (let n = 0; n < 1000; n++) {
      ap += 1;
      del *= x / ap;
      sum += del;
      if (Math.abs(del) < Math.abs(sum) * 1e-15) break;
    }
    return 1 - sum * Math.exp(-x + a * Math.log(x) - gln);
  }
  // Continued fraction for Q(a, x) (modified Lentz).
  let b = x + 1 - a;
  let c = 1 / 1e-300;
  let d = 1 / b;
  let h = d;
  for (let i = 1; i < 1000; i++) {
    const an = -i * (i - a);
    b += 2;
    d = an * d + b;
    if (Math.abs(d) < 1e-300) d = 1e-300;
    c = b + an / c;
    if (Math.abs(c) < 1e-300) c = 1e-300;
    d = 1 / d;
    const del = d * c;
    h *= del;
    if (Math.abs(del - 1) < 1e-15) break;
  }
  return Math.exp(-x + a * Math.log(x) - gln) * h;
}

/** Upper tail P(X >= x) of a chi-square distribution with `df` degrees of freedom. */
export function chiSquareSf(x: number, df: number): number {
  return gammaQ(df / 2, x / 2);
}

function betaCf(a: number, b: number, x: number): number {
  const qab = a + b;
  const qap = a + 1;
  const qam = a - 1;
  let c = 1;
  let d = 1 - (qab * x) / qap;
  if (Math.abs(d) < 1e-300) d = 1e-300;
  d = 1 / d;
  let h = d;
  for (let m = 1; m < 1000; m++) {
    const m2 = 2 * m;
    let aa = (m * (b - m) * x) / ((qam + m2) * (a + m2));
    d = 1 + aa * d;
    if (Math.abs(d) < 1e-300) d = 1e-300;
    c = 1 + aa / c;
    if (Math.abs(c) < 1e-300) c = 1e-300;
    d = 1 / d;
    h *= d * c;
    aa = (-(a + m) * (qab + m) * x) / ((a + m2) * (qap + m2));
    d = 1 + aa * d;
    if (Math.abs(d) < 1e-300) d = 1e-300;
    c = 1 + aa / c;
    if (Math.abs(c) < 1e-300) c = 1e-300;
    d = 1 / d;
    const del = d * c;
    h *= del;
    if (Math.abs(del - 1) < 1e-15) break;
  }
  return h;
}

/** Regularized incomplete beta I_x(a, b). */
export function betaI(a: number, b: number, x: number): number {
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  const bt = Math.exp(logGamma(a + b) - logGamma(a) - logGamma(b) + a * Math.log(x) + b * Math.log(1 - x));
  return x < (a + 1) / (a + b + 2) ? (bt * betaCf(a, b, x)) / a : 1 - (bt * betaCf(b, a, 1 - x)) / b;
}

/** CDF of Student's t with `df` degrees of freedom. */
export function studentTCdf(t: number, df: number): number {
  const tail = 0.5 * betaI(df / 2, 0.5, df / (df + t * t));
  return t >= 0 ? 1 - tail : tail;
}

/** Quantile of Student's t (bisection on the CDF; 100 halvings of [-1e4, 1e4] reach double precision). */
export function studentTQuantile(p: number, df: number): number {
  if (!Number.isFinite(df) || df > 1e7) return normalQuantile(p);
  let lo = -1e4;
  let hi = 1e4;
  for (let i = 0; i < 100; i++) {
    const mid = (lo + hi) / 2;
    if (studentTCdf(mid, df) < p) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}

/** Standard normal CDF: for x < 0, Φ(x) = erfc(|x|/√2)/2 = Q(1/2, x²/2)/2 (incomplete gamma, full double precision). */
export function normalCdf(x: number): number {
  const half = 0.5 * gammaQ(0.5, (x * x) / 2);
  return x < 0 ? half : 1 - half;
}

/** Standard normal quantile (Acklam's algorithm + one Halley refinement step). */
export function normalQuantile(p: number): number {
  if (p <= 0) return Number.NEGATIVE_INFINITY;
  if (p >= 1) return Number.POSITIVE_INFINITY;
  const a = [
    -3.969683028665376e1, 2.209460984245205e2, -2.759285104469687e2, 1.38357751867269e2, -3.066479806614716e1,
    2.506628277459239,
  ];
  const b = [
    -5.447609879822406e1, 1.615858368580409e2, -1.556989798598866e2, 6.680131188771972e1,
    -1.328068155288572e1,
  ];
  const c = [
    -7.784894002430293e-3, -3.223964580411365e-1, -2.400758277161838, -2.549732539343734, 4.374664141464968,
    2.938163982698783,
  ];
  const d = [7.784695709041462e-3, 3.224671290700398e-1, 2.445134137142996, 3.754408661907416];
  const pl = 0.02425;
  let x: number;
  if (p < pl) {
    const q = Math.sqrt(-2 * Math.log(p));
    x =
      (((((c[0]! * q + c[1]!) * q + c[2]!) * q + c[3]!) * q + c[4]!) * q + c[5]!) /
      ((((d[0]! * q + d[1]!) * q + d[2]!) * q + d[3]!) * q + 1);
  } else if (p <= 1 - pl) {
    const q = p - 0.5;
    const r = q * q;
    x =
      ((((((a[0]! * r + a[1]!) * r + a[2]!) * r + a[3]!) * r + a[4]!) * r + a[5]!) * q) /
      (((((b[0]! * r + b[1]!) * r + b[2]!) * r + b[3]!) * r + b[4]!) * r + 1);
  } else {
    const q = Math.sqrt(-2 * Math.log(1 - p));
    x =
      -(((((c[0]! * q + c[1]!) * q + c[2]!) * q + c[3]!) * q + c[4]!) * q + c[5]!) /
      ((((d[0]! * q + d[1]!) * q + d[2]!) * q + d[3]!) * q + 1);
  }
  const e = normalCdf(x) - p;
  const u = e * Math.sqrt(2 * Math.PI) * Math.exp((x * x) / 2);
  return x - u / (1 + (x * u) / 2);
}

export interface Summary {
  n: number;
  mean: number;
  /** Sample variance (n - 1 denominator); NaN when n < 2. */
  variance: number;
}

export function summarize(xs: ArrayLike<number>): Summary {
  const n = xs.length;
  let s = 0;
  for (let i = 0; i < n; i++) s += xs[i]!;
  const mean = n > 0 ? s / n : Number.NaN;
  let ss = 0;
  for (let i = 0; i < n; i++) ss += (xs[i]! - mean) ** 2;
  return { n, mean, variance: n > 1 ? ss / (n - 1) : Number.NaN };
}

export interface Interval {
  /** treatment - control */
  diff: number;
  lo: number;
  hi: number;
  /** Two-sided p-value of diff = 0 (NaN for bootstrap intervals). */
  p: number;
  method: string;
}

/**
 * Welch's unequal-variance t interval for mean(treatment) - mean(control), with the
 * Welch–Satterthwaite degrees of freedom.
 */
export function welchInterval(
  treatment: Summary,
  control: Summary,
  level = 0.95,
): Interval & { df: number; se: number } {
  const vt = treatment.variance / treatment.n;
  const vc = control.variance / control.n;
  const se = Math.sqrt(vt + vc);
  const df = (vt + vc) ** 2 / (vt ** 2 / (treatment.n - 1) + vc ** 2 / (control.n - 1));
  const diff = treatment.mean - control.mean;
  if (!(se > 0) || !Number.isFinite(df))
    return { diff, lo: Number.NaN, hi: Number.NaN, p: Number.NaN, df: Number.NaN, se, method: "welch" };
  const tq = studentTQuantile(1 - (1 - level) / 2, df);
  const t = diff / se;
  return {
    diff,
    lo: diff - tq * se,
    hi: diff + tq * se,
    p: 2 * (1 - studentTCdf(Math.abs(t), df)),
    df,
    se,
    method: "welch",
  };
}

/**
 * Pearson chi-square goodness of fit of observed counts to expected shares (sample-ratio mismatch
 * check). df = (categories with a positive share) - 1, whatever the counts; with no observation at
 * all (total 0) or a single category there is nothing to test and p is NaN.
 */
export function chiSquareGoodnessOfFit(
  observed: readonly number[],
  shares: readonly number[],
): { chi2: number; df: number; p: number } {
  const total = observed.reduce((a, b) => a + b, 0);
  let chi2 = 0;
  let k = 0;
  for (let i = 0; i < observed.length; i++) {
    if (!(shares[i]! > 0)) continue;
    k++;
    if (total > 0) {
      const e = total * shares[i]!;
      chi2 += (observed[i]! - e) ** 2 / e;
    }
  }
  const df = Math.max(0, k - 1);
  return { chi2, df, p: df > 0 && total > 0 ? chiSquareSf(chi2, df) : Number.NaN };
}

/**
 * Planned sample size for a difference in means of `mde` (absolute) between a treatment and the
 * control, two-sided level alpha, power 1 - beta, allocation ratio r = n_treatment / n_control:
 *   n_control = (z_{1-α/2} + z_{1-β})² σ² (1 + 1/r) / mde²,  n_treatment = r n_control
 * (normal approximation; e.g. Chow, Shao & Wang, "Sample Size Calculations in Clinical Research", 3.2).
 */
export function sampleSizeMeans(opts: {
  sd: number;
  mde: number;
  alpha: number;
  power: number;
  ratio: number;
}): {
  control: number;
  treatment: number;
} {
  const z = normalQuantile(1 - opts.alpha / 2) + normalQuantile(opts.power);
  const nc = (z * z * opts.sd * opts.sd * (1 + 1 / opts.ratio)) / (opts.mde * opts.mde);
  return { control: Math.ceil(nc - 1e-9), treatment: Math.ceil(opts.ratio * nc - 1e-9) };
}

export interface KaplanMeierStep {
  t: number;
  /** P(no event by t). */
  survival: number;
  atRisk: number;
  events: number;
}

/** Kaplan–Meier estimate of P(time to event > t); `event[i]` = 0 marks a censored time. */
export function kaplanMeier(time: ArrayLike<number>, event: ArrayLike<number>): KaplanMeierStep[] {
  const n = time.length;
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => time[a]! - time[b]!);
  const steps: KaplanMeierStep[] = [];
  let s = 1;
  let atRisk = n;
  let i = 0;
  while (i < n) {
    const t = time[order[i]!]!;
    let d = 0;
    let c = 0;
    while (i < n && time[order[i]!] === t) {
      if (event[order[i]!]) d++;
      else c++;
      i++;
    }
    if (d > 0) {
      s *= 1 - d / atRisk;
      steps.push({ t, survival: s, atRisk, events: d });
    }
    atRisk -= d + c;
  }
  return steps;
}

/** Restricted mean time to event up to `horizon`: the area under the KM curve on [0, horizon]. */
export function restrictedMean(time: ArrayLike<number>, event: ArrayLike<number>, horizon: number): number {
  let area = 0;
  let prevT = 0;
  let s = 1;
  for (const step of kaplanMeier(time, event)) {
    if (step.t >= horizon) break;
    area += s * (step.t - prevT);
    prevT = step.t;
    s = step.survival;
  }
  return area + s * (horizon - prevT);
}

/** Median time to event from the KM curve (first t with survival <= 0.5), or null if not reached. */
export function kmMedian(time: ArrayLike<number>, event: ArrayLike<number>): number | null {
  for (const step of kaplanMeier(time, event)) if (step.survival <= 0.5) return step.t;
  return null;
}

/** Times sorted ascending with their event flags, prepared once for repeated weighted RMSTs. */
export interface SortedSurvival {
  time: Float64Array;
  event: Uint8Array;
}

export function sortSurvival(time: ArrayLike<number>, event: ArrayLike<number>): SortedSurvival {
  const order = Array.from({ length: time.length }, (_, i) => i).sort((a, b) => time[a]! - time[b]!);
  return {
    time: Float64Array.from(order, (i) => time[i]!),
    event: Uint8Array.from(order, (i) => (event[i] ? 1 : 0)),
  };
}

/**
 * Restricted mean of a KM curve where subject i counts weight[i] times (bootstrap counts), over
 * pre-sorted data: O(n), no allocation. With all weights 1 it equals restrictedMean.
 */
export function restrictedMeanWeighted(
  s: SortedSurvival,
  weight: ArrayLike<number>,
  horizon: number,
): number {
  const n = s.time.length;
  let atRisk = 0;
  for (let i = 0; i < n; i++) atRisk += weight[i]!;
  let surv = 1;
  let prevT = 0;
  let area = 0;
  let i = 0;
  while (i < n) {
    const t = s.time[i]!;
    if (t >= horizon) break;
    let d = 0;
    let c = 0;
    while (i < n && s.time[i] === t) {
      if (s.event[i]) d += weight[i]!;
      else c += weight[i]!;
      i++;
    }
    if (d > 0 && atRisk > 0) {
      area += surv * (t - prevT);
      prevT = t;
      surv *= 1 - d / atRisk;
    }
    atRisk -= d + c;
  }
  return area + surv * (horizon - prevT);
}

/**
 * Percentile bootstrap interval of RMST(treatment) - RMST(control): students are resampled with
 * replacement within each arm (multinomial counts), B times, from a seeded generator, so the same
 * data give the same interval.
 */
export function bootstrapRmstDiff(
  treatment: SortedSurvival,
  control: SortedSurvival,
  horizon: number,
  opts: { resamples?: number; seed?: number; level?: number } = {},
): Interval {
  const B = opts.resamples ?? 1000;
  const level = opts.level ?? 0.95;
  const rng = new Xoshiro128(opts.seed ?? 1);
  const ones = (n: number) => new Float64Array(n).fill(1);
  const diff =
    restrictedMeanWeighted(treatment, ones(treatment.time.length), horizon) -
    restrictedMeanWeighted(control, ones(control.time.length), horizon);
  const wt = new Float64Array(treatment.time.length);
  const wc = new Float64Array(control.time.length);
  const draw = (w: Float64Array): void => {
    w.fill(0);
    for (let k = 0; k < w.length; k++) w[rng.int(w.length)]! += 1;
  };
  const draws = new Float64Array(B);
  for (let b = 0; b < B; b++) {
    draw(wt);
    draw(wc);
    draws[b] = restrictedMeanWeighted(treatment, wt, horizon) - restrictedMeanWeighted(control, wc, horizon);
  }
  draws.sort();
  const q = (p: number): number => draws[Math.min(B - 1, Math.max(0, Math.floor(p * B)))]!;
  return {
    diff,
    lo: q((1 - level) / 2),
    hi: q(1 - (1 - level) / 2),
    p: Number.NaN,
    method: `bootstrap (${B} resamples)`,
  };
}
