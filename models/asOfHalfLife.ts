import { sigmoid } from "./logistic.ts";
import { decayFactor, decayTowards } from "./servedDecay.ts";

/**
 * The as-of step's half-life fitted on the answers it predicts (issue 16, round 28; opt-in).
 *
 * The latent filter carries an estimate from a pair's last event to the scoring time by a deterministic decay
 * (round 16, `asOfForgetting: "decay"`): mean, interval ends and P(correct) move towards the floor by
 * 2^(-idle / h). Until this round h was the filter's own half-life, which the likelihood fits jointly with
 * every other parameter on all gaps between events, most of them a few days long, through the spread form of
 * forgetting. The as-of step is an extrapolation over idle spans of weeks. This module fits its h on exactly
 * that extrapolation, as the store's own answers show it: each graded event that follows an idle gap of at
 * least `minGapDays` is predicted the way the as-of step predicts a pair at its scoring time, P(correct) at the
 * previous event decayed towards the floor's P(correct) over the gap, and h maximises the Bernoulli / binomial
 * log-likelihood of those answers. Answers only, no labels, no truth.
 *
 * Pure math: no I/O, no clock.
 */

/** One graded event after an idle gap: P(correct) at the previous event, the floor's, the gap, the outcome. */
export interface IdleAnswer {
  /** P(correct on the next item) of the posterior right after the previous event (before any forgetting). */
  pBefore: number;
  /** P(correct) at the floor the as-of step decays towards. */
  pFloor: number;
  /** Days between the previous event and this one (>= the minimum gap). */
  gapDays: number;
  /** Answers (1 for a quiz answer, the attempts of a practice set) and how many were correct. */
  n: number;
  k: number;
}

export class AsOfHalfLifeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "AsOfHalfLifeError";
  }
}

/** An idle gap the as-of fit counts: a week or more without any event on the pair (fixed before any run). */
export const AS_OF_MIN_GAP_DAYS = 7;
/** Fewer answers after idle gaps than this and the fit keeps the filter's half-life (recorded as too few). */
export const AS_OF_MIN_ANSWERS = 200;
/** The search range of h (days): the filter's own bounds (models/latentFilter.ts fromVector). */
export const AS_OF_HALF_LIFE_RANGE = { min: 0.5, max: 3650 } as const;

const P_EPS = 1e-9;

/** Sum of ln P(outcomes) of `answers` under the as-of decay with half-life h (days). */
export function idleLogLik(answers: readonly IdleAnswer[], halfLifeDays: number): number {
  if (!(halfLifeDays > 0))
    throw new AsOfHalfLifeError(`half-life must be > 0 days (got ${halfLifeDays}): pass a positive number`);
  let ll = 0;
  for (const a of answers) {
    const p = Math.min(
      1 - P_EPS,
      Math.max(P_EPS, decayTowards(a.pBefore, a.pFloor, halfLifeDays, a.gapDays)),
    );
    ll += a.k * Math.log(p) + (a.n - a.k) * Math.log(1 - p);
  }
  return ll;
}

function assertFilterHalfLife(filterHalfLifeDays: number): void {
  if (!(filterHalfLifeDays > 0))
    throw new AsOfHalfLifeError(
      `the filter's half-life must be > 0 days (got ${filterHalfLifeDays}): fit the latent filter first`,
    );
}

/** `what` (an idle answer, a labelled pair) must have n >= 1 answers, k of them right, a gap >= 0, P in [0, 1]. */
function assertIdleAnswer(a: IdleAnswer, what: string): void {
  if (!(a.n >= 1 && a.k >= 0 && a.k <= a.n && a.gapDays >= 0 && a.pBefore >= 0 && a.pBefore <= 1))
    throw new AsOfHalfLifeError(
      `${what} needs n >= 1, 0 <= k <= n, a gap >= 0 and P(correct) in [0, 1] (got n ${a.n}, k ${a.k}, gap ${a.gapDays}, p ${a.pBefore})`,
    );
}

/** What `fitIdleHalfLife` found (stored in the model as `fit.asOfHalfLifeChoice`). */
export interface AsOfHalfLifeChoice {
  /** The as-of half-life in days: the fitted one, or the filter's own when too few answers. */
  halfLifeDays: number;
  /** The filter's own half-life it replaces. */
  filterHalfLifeDays: number;
  minGapDays: number;
  /** Graded events after idle gaps, their answers, and the median gap (days). */
  events: number;
  answers: number;
  medianGapDays: number;
  /** ln P per answer at the chosen h and at the filter's h (equal when too few answers). */
  logLikPerAnswer: number;
  filterLogLikPerAnswer: number;
  /** Present when the fit kept the filter's half-life: why. */
  kept?: string;
}

/**
 * The as-of half-life maximising `idleLogLik` over [AS_OF_HALF_LIFE_RANGE]: a grid of 97 log-spaced points, then
 * a golden-section search in log h between the best point's neighbours (the likelihood of a single decay rate
 * is smooth in log h; the grid keeps a second local optimum from trapping the search). With fewer than
 * `minAnswers` answers it keeps `filterHalfLifeDays`.
 */
export function fitIdleHalfLife(
  answers: readonly IdleAnswer[],
  filterHalfLifeDays: number,
  opts: { minGapDays?: number; minAnswers?: number } = {},
): AsOfHalfLifeChoice {
  assertFilterHalfLife(filterHalfLifeDays);
  const minGapDays = opts.minGapDays ?? AS_OF_MIN_GAP_DAYS;
  const minAnswers = opts.minAnswers ?? AS_OF_MIN_ANSWERS;
  let n = 0;
  for (const a of answers) {
    assertIdleAnswer(a, "an idle answer");
    n += a.n;
  }
  const gaps = answers.map((a) => a.gapDays).sort((x, y) => x - y);
  const medianGapDays = gaps.length === 0 ? 0 : gaps[Math.floor(gaps.length / 2)]!;
  const perAnswer = (h: number) => (n === 0 ? 0 : idleLogLik(answers, h) / n);
  const filterLL = perAnswer(filterHalfLifeDays);
  const base = { filterHalfLifeDays, minGapDays, events: answers.length, answers: n, medianGapDays };
  if (n < minAnswers)
    return {
      ...base,
      halfLifeDays: filterHalfLifeDays,
      logLikPerAnswer: filterLL,
      filterLogLikPerAnswer: filterLL,
      kept: `${n} answers after idle gaps of >= ${minGapDays} days (< ${minAnswers}): the filter's half-life kept`,
    };
  const lo = Math.log(AS_OF_HALF_LIFE_RANGE.min);
  const hi = Math.log(AS_OF_HALF_LIFE_RANGE.max);
  const G = 97;
  const at = (i: number) => lo + ((hi - lo) * i) / (G - 1);
  const days = (logH: number) =>
    Math.min(AS_OF_HALF_LIFE_RANGE.max, Math.max(AS_OF_HALF_LIFE_RANGE.min, Math.exp(logH)));
  let bestI = 0;
  let bestF = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < G; i++) {
    const f = perAnswer(days(at(i)));
    if (f > bestF) {
      bestF = f;
      bestI = i;
    }
  }
  // Golden section (maximising) in log h on [at(i - 1), at(i + 1)].
  let a = at(Math.max(0, bestI - 1));
  let b = at(Math.min(G - 1, bestI + 1));
  const r = (Math.sqrt(5) - 1) / 2;
  let c = b - r * (b - a);
  let d = a + r * (b - a);
  let fc = perAnswer(days(c));
  let fd = perAnswer(days(d));
  for (let it = 0; it < 40 && b - a > 1e-6; it++) {
    if (fc >= fd) {
      b = d;
      d = c;
      fd = fc;
      c = b - r * (b - a);
      fc = perAnswer(days(c));
    } else {
      a = c;
      c = d;
      fc = fd;
      d = a + r * (b - a);
      fd = perAnswer(days(d));
    }
  }
  let h = days((a + b) / 2);
  let f = perAnswer(h);
  if (bestF > f) {
    h = days(at(bestI));
    f = bestF;
  }
  return { ...base, halfLifeDays: h, logLikPerAnswer: f, filterLogLikPerAnswer: filterLL };
}

/**
 * Round 32 (opt-in, serving/servedTraining.ts `asOfHalfLife: "labels"`): the as-of half-life chosen on the
 * served training's proxy labels. The as-of step predicts a pair idle at the training snapshot; the label
 * window's quiz answers of that pair are what it predicts (the same proxy labels the stack, the label kind and
 * round 17's centre are fitted on). Each labelled pair idle at the snapshot is an `IdleAnswer` whose gap is its
 * idle time at the snapshot and whose answers are the window's; the half-life is the grid point of
 * `AS_OF_LABEL_MULTIPLIERS` x the filter's that maximises their binomial log-likelihood, kept only if it gains
 * more than `AS_OF_LABEL_MIN_GAIN_NATS` over the filter's own (a likelihood-ratio test at 95%, one parameter).
 * Grid, bar and minimum were fixed before any run of this round.
 */
/** Half-life multipliers tried (log-spaced by sqrt 2, 0.5x to 4x the filter's; 1 is the filter's own). */
export const AS_OF_LABEL_MULTIPLIERS: readonly number[] = [
  0.5,
  Math.SQRT1_2,
  1,
  Math.SQRT2,
  2,
  2 * Math.SQRT2,
  4,
];
/** Gain (nats) a multiplier other than 1 must pass: half the chi-square(1) 95% point, 3.841 / 2. */
export const AS_OF_LABEL_MIN_GAIN_NATS = 3.841 / 2;
/** Fewer labelled pairs idle at the snapshot than this and the filter's half-life is kept. */
export const AS_OF_LABEL_MIN_PAIRS = 50;

/** What `chooseAsOfHalfLifeByLabels` found (stored in the model as `fit.asOfHalfLifeLabels`). */
export interface AsOfLabelChoice {
  /** The as-of half-life in days: the chosen grid point, or the filter's own. */
  halfLifeDays: number;
  filterHalfLifeDays: number;
  /** Labelled pairs idle at the snapshot (gap > 0), their label answers, their median idle days. */
  pairs: number;
  answers: number;
  medianIdleDays: number;
  /** The multipliers tried and the log-likelihood (nats) of the label answers at each. */
  multipliers: number[];
  logLik: number[];
  /** Log-likelihood gained by the chosen point over the filter's half-life (0 when kept). */
  gainNats: number;
  /**
   * With `intercept` (round 32's second candidate, "labels-centred"): the label window's common logit shift
   * profiled out at each multiplier (`logLik` is then the profile log-likelihood); absent otherwise.
   */
  intercepts?: number[];
  /** Present when the filter's half-life was kept: why. */
  kept?: string;
}

/**
 * The label answers' log-likelihood at half-life h with a common logit shift b profiled out (Newton steps on b):
 * every labelled pair's P(correct) is sigmoid(logit(p_h) + b). b stands for what moves the whole label window's
 * accuracy alike, above all the new practice during the window (round 17's centre takes out the same pooled
 * intercept), so h is chosen on how the answers vary with idle time, not on their common level. Pure.
 */
export function idleLogLikCentred(
  answers: readonly IdleAnswer[],
  halfLifeDays: number,
): { logLik: number; intercept: number } {
  const z = answers.map((a) => {
    const p = Math.min(
      1 - P_EPS,
      Math.max(P_EPS, decayTowards(a.pBefore, a.pFloor, halfLifeDays, a.gapDays)),
    );
    return Math.log(p / (1 - p));
  });
  const at = (b: number) => {
    let ll = 0;
    let g = 0;
    let h = 0;
    for (let i = 0; i < answers.length; i++) {
      const a = answers[i]!;
      const q = Math.min(1 - P_EPS, Math.max(P_EPS, sigmoid(z[i]! + b)));
      ll += a.k * Math.log(q) + (a.n - a.k) * Math.log(1 - q);
      g += a.k - a.n * q;
      h += a.n * q * (1 - q);
    }
    return { ll, g, h };
  };
  let b = 0;
  let cur = at(b);
  // The log-likelihood is concave in b: Newton steps, halved while they do not raise it.
  for (let it = 0; it < 50 && cur.h > 0 && Math.abs(cur.g) > 1e-10 * Math.max(1, cur.h); it++) {
    let step = cur.g / cur.h;
    let next = at(b + step);
    for (let k = 0; k < 30 && next.ll < cur.ll; k++) {
      step /= 2;
      next = at(b + step);
    }
    if (next.ll < cur.ll) break;
    b += step;
    cur = next;
  }
  return { logLik: cur.ll, intercept: b };
}

/** The as-of half-life the proxy labels choose (see the block comment above). Pure. */
export function chooseAsOfHalfLifeByLabels(
  labels: readonly IdleAnswer[],
  filterHalfLifeDays: number,
  opts: { minPairs?: number; minGainNats?: number; intercept?: boolean } = {},
): AsOfLabelChoice {
  assertFilterHalfLife(filterHalfLifeDays);
  const minPairs = opts.minPairs ?? AS_OF_LABEL_MIN_PAIRS;
  const minGain = opts.minGainNats ?? AS_OF_LABEL_MIN_GAIN_NATS;
  const idle: IdleAnswer[] = [];
  let answers = 0;
  for (const a of labels) {
    assertIdleAnswer(a, "a labelled pair");
    if (a.gapDays > 0) {
      idle.push(a);
      answers += a.n;
    }
  }
  const gaps = idle.map((a) => a.gapDays).sort((x, y) => x - y);
  const multipliers = [...AS_OF_LABEL_MULTIPLIERS];
  const days = (m: number) =>
    Math.min(AS_OF_HALF_LIFE_RANGE.max, Math.max(AS_OF_HALF_LIFE_RANGE.min, m * filterHalfLifeDays));
  const centred = opts.intercept === true ? multipliers.map((m) => idleLogLikCentred(idle, days(m))) : null;
  const logLik = centred?.map((c) => c.logLik) ?? multipliers.map((m) => idleLogLik(idle, days(m)));
  const base = {
    filterHalfLifeDays,
    pairs: idle.length,
    answers,
    medianIdleDays: gaps.length === 0 ? 0 : gaps[Math.floor(gaps.length / 2)]!,
    multipliers,
    logLik,
    ...(centred !== null ? { intercepts: centred.map((c) => c.intercept) } : {}),
  };
  const own = logLik[multipliers.indexOf(1)]!;
  if (idle.length < minPairs)
    return {
      ...base,
      halfLifeDays: filterHalfLifeDays,
      gainNats: 0,
      kept: `${idle.length} labelled pairs idle at the snapshot (< ${minPairs}): the filter's half-life kept`,
    };
  let best = multipliers.indexOf(1);
  for (let i = 0; i < multipliers.length; i++) if (logLik[i]! > logLik[best]!) best = i;
  const gain = logLik[best]! - own;
  if (!(gain > minGain))
    return {
      ...base,
      halfLifeDays: filterHalfLifeDays,
      gainNats: 0,
      kept: `the best multiplier ${multipliers[best]!.toFixed(3)} gains ${gain.toFixed(2)} nats (<= ${minGain.toFixed(2)}): the filter's half-life kept`,
    };
  return { ...base, halfLifeDays: days(multipliers[best]!), gainNats: gain };
}

/**
 * A labelled pair as `chooseAsOfHalfLifeByLabels` reads it, from its estimate at the snapshot: the as-of step
 * decayed P(correct) over the idle days with half-life `halfLifeDays` towards the floor's P(correct) (the
 * estimate's `pFloor`, or guess + (1 - guess - slip) x floor for the linear emission), so the P(correct) at the
 * last event is recovered by undoing that decay. `n` / `k`: the label window's quiz answers and correct ones.
 */
export function labelAnswerOf(
  est: {
    pCorrect: number;
    pFloor?: number;
    floor?: number;
    daysSinceLast: number | null;
  },
  params: { guess: number; slip: number; floor: number },
  halfLifeDays: number,
  n: number,
  k: number,
): IdleAnswer {
  const gapDays = est.daysSinceLast ?? 0;
  const pFloor = est.pFloor ?? params.guess + (1 - params.guess - params.slip) * (est.floor ?? params.floor);
  const d = decayFactor(halfLifeDays, gapDays);
  const pBefore = Math.min(1, Math.max(0, pFloor + (est.pCorrect - pFloor) / d));
  return { pBefore, pFloor, gapDays, n, k };
}
