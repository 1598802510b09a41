import { sigmoid } from "./logistic.ts";
/**
 * The latent filter's centre calibrated by evidence band on proxy labels (issue 16, round 17).
 *
 * The filter's 80% intervals miss one-sidedly on some logs (docs/benchmarks.md Validity, round 16): a bias of
 * the interval's centre that differs between pairs with little and much evidence, not a width. The product
 * cannot see the truth, but it sees the proxy labels (the quiz answers of the label window after the training
 * snapshot). Per band of the pair's graded observations at the snapshot (the bands of the interval's
 * by-evidence factor), a Platt-style intercept is fitted on those answers: with the logistic emission
 * P(correct | K) = guess + (1 - guess - slip) sigmoid(z), z = slope (K - threshold), the band's shift delta of z
 * maximises the binomial likelihood of the labels given P_i(delta) = guess + (1 - guess - slip) sigmoid(z_i + delta),
 * z_i read from the filter's P(correct) at the snapshot. The pooled shift (every band together) is taken off
 * each band's: it holds what is common to all labelled pairs (the learning of the label week, the level the
 * served scale fixes by its own convention), so only the bands' bias relative to one another moves the centre.
 * Each band's relative shift is shrunk by answers / (answers + CENTRE_SHRINK_ANSWERS) and read on the K scale
 * as delta / slope (the emission's local map of z to K).
 *
 * Pure math: no I/O, no clock.
 */

/** One labelled pair: the filter's P(correct) at the snapshot, its evidence, and the label window's answers. */
export interface CentreLabel {
  /** The filter's P(correct on an average next item) at the snapshot. */
  pCorrect: number;
  /** Graded observations behind the pair's posterior at the snapshot (LatentEstimate.observations). */
  observations: number;
  /** Quiz answers in the label window and how many were correct. */
  answers: number;
  correct: number;
}

/** The emission's parameters the shift is read through (logistic emission). */
export interface CentreEmission {
  guess: number;
  slip: number;
  slope: number;
}

/** One band's fitted centre shift (K scale), with what it was fitted on. */
export interface CentreShiftBand {
  /** The band holds pairs with at least this many graded observations (up to the next band's `from`). */
  from: number;
  /** The shift added to the posterior mean and both interval ends on the K scale (before the as-of decay). */
  shift: number;
  /**
   * Round 17 (fitCentreShift): the band's own intercept on the emission's logit scale, before the pooled one is taken
   * off and shrinkage. Round 23 (studentInterval.ts applyHeldOutBands): the held-out excess carried to K, before its
   * gate and shrinkage.
   */
  delta: number;
  pairs: number;
  answers: number;
}

/** The bands of the centre shift (the interval's by-evidence bands, round 14). */
export const CENTRE_BANDS = [0, 1, 5, 15] as const;
/** Shrinkage of a band's relative shift: weight answers / (answers + this). */
export const CENTRE_SHRINK_ANSWERS = 200;
/** Bound of a shift on the emission's logit scale (a band far outside it is a misfit, not a calibration). */
const DELTA_BOUND = 3;
const P_EPS = 1e-4;

export class LatentCentreError extends Error {
  readonly code = "LATENT_CENTRE";
  constructor(message: string) {
    super(message);
    this.name = "LatentCentreError";
  }
}

/** z of a P(correct) under the emission: logit((p - guess) / (1 - guess - slip)), clipped inside (0, 1). */
export function emissionLogit(p: number, em: CentreEmission): number {
  const u = (p - em.guess) / (1 - em.guess - em.slip);
  const q = Math.min(1 - P_EPS, Math.max(P_EPS, u));
  return Math.log(q / (1 - q));
}

/**
 * The intercept delta maximising sum_i [correct_i ln P_i + (answers_i - correct_i) ln (1 - P_i)],
 * P_i = guess + (1 - guess - slip) sigmoid(z_i + delta), bounded to [-DELTA_BOUND, DELTA_BOUND]: Newton's method
 * kept inside a bracket of the score's sign change, with a bisection step wherever Newton's would leave it or the
 * curvature is not negative (the guess / slip floor makes the log-likelihood non-concave far from the optimum, where
 * plain Newton stopped early and two fits of the same bias could disagree). Returns 0 without answers.
 */
export function fitIntercept(
  z: ArrayLike<number>,
  answers: ArrayLike<number>,
  correct: ArrayLike<number>,
  em: CentreEmission,
): number {
  const a = em.guess;
  const b = 1 - em.guess - em.slip;
  let total = 0;
  for (let i = 0; i < z.length; i++) total += answers[i]!;
  if (!(total > 0)) return 0;
  // The score (first derivative) and the second derivative of the log-likelihood at delta.
  const derivatives = (delta: number): [number, number] => {
    let g = 0;
    let h = 0;
    for (let i = 0; i < z.length; i++) {
      const n = answers[i]!;
      if (!(n > 0)) continue;
      const s = sigmoid(z[i]! + delta);
      const ds = s * (1 - s);
      const p = Math.min(1 - 1e-12, Math.max(1e-12, a + b * s));
      const dp = b * ds;
      const k = correct[i]!;
      const r = k / p - (n - k) / (1 - p);
      g += r * dp;
      h += r * b * ds * (1 - 2 * s) - (k / (p * p) + (n - k) / ((1 - p) * (1 - p))) * dp * dp;
    }
    return [g, h];
  };
  let lo = -DELTA_BOUND;
  let hi = DELTA_BOUND;
  if (!(derivatives(lo)[0] > 0)) return lo; // the likelihood falls from the lower bound on
  if (!(derivatives(hi)[0] < 0)) return hi; // it still rises at the upper bound
  let delta = 0;
  for (let iter = 0; iter < 200 && hi - lo > 1e-12; iter++) {
    const [g, h] = derivatives(delta);
    if (g === 0) return delta;
    if (g > 0) lo = delta;
    else hi = delta;
    const newton = h < 0 ? delta - g / h : Number.NaN;
    const next = newton > lo && newton < hi ? newton : (lo + hi) / 2;
    if (Math.abs(next - delta) < 1e-12) return next;
    delta = next;
  }
  return delta;
}

/**
 * The centre shift per evidence band (K scale) from the labelled pairs: each band's intercept less the pooled
 * one, shrunk, over the emission's slope. A band without labelled answers gets shift 0.
 */
export function fitCentreShift(labels: readonly CentreLabel[], em: CentreEmission): CentreShiftBand[] {
  if (!(em.slope > 0))
    throw new LatentCentreError(
      `the centre shift needs the logistic emission's slope > 0 (got ${em.slope}): fit the filter with emission "logistic" or "auto"`,
    );
  if (!(em.guess >= 0 && em.slip >= 0 && em.guess + em.slip < 1))
    throw new LatentCentreError(
      `the emission's guess and slip must be >= 0 with guess + slip < 1 (got ${em.guess}, ${em.slip})`,
    );
  for (const l of labels)
    if (!(l.answers >= 0 && l.correct >= 0 && l.correct <= l.answers && l.pCorrect >= 0 && l.pCorrect <= 1))
      throw new LatentCentreError(
        `a centre label needs 0 <= correct <= answers and pCorrect in [0, 1] (got ${l.correct} of ${l.answers}, pCorrect ${l.pCorrect})`,
      );
  const bandOf = (obs: number): number => {
    let b = 0;
    for (let i = 0; i < CENTRE_BANDS.length; i++) if (obs >= CENTRE_BANDS[i]!) b = i;
    return b;
  };
  const z = labels.map((l) => emissionLogit(l.pCorrect, em));
  const n = labels.map((l) => l.answers);
  const k = labels.map((l) => l.correct);
  const pooled = fitIntercept(z, n, k, em);
  return CENTRE_BANDS.map((from, b) => {
    const idx = labels.map((l, i) => (bandOf(l.observations) === b ? i : -1)).filter((i) => i >= 0);
    const answers = idx.reduce((s, i) => s + n[i]!, 0);
    if (answers === 0) return { from, shift: 0, delta: 0, pairs: 0, answers: 0 };
    const delta = fitIntercept(
      idx.map((i) => z[i]!),
      idx.map((i) => n[i]!),
      idx.map((i) => k[i]!),
      em,
    );
    const weight = answers / (answers + CENTRE_SHRINK_ANSWERS);
    return { from, shift: ((delta - pooled) * weight) / em.slope, delta, pairs: idx.length, answers };
  });
}

/** The shift of a pair with `observations` graded observations (the last band whose `from` it reaches). */
export function centreShiftAt(bands: readonly CentreShiftBand[] | undefined, observations: number): number {
  let s = 0;
  for (const b of bands ?? []) if (observations >= b.from) s = b.shift;
  return s;
}
