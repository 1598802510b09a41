import {
  asOfHalfLife,
  type LatentEstimate,
  type LatentFactor,
  type LatentModelJson,
} from "./latentFilter.ts";
import { decayTowards } from "./servedDecay.ts";

/**
 * The served mastery estimate (issue 16, items 1-3): one stacked, calibrated combination of the stored
 * sources (rule, BKT, Elo) with the evidence behind them (quiz attempt counts, smoothed / recent / decayed
 * accuracy, days since the last quiz and since any event, practice accuracy and volume, assignment mean,
 * videos, chatbot resolved rate and volume, event exposure decayed over 3 and 14 days), fitted by ridge least
 * squares on proxy labels (performance on the topic in the days after a cut, the mission's labelling step:
 * serving/servedTraining.ts, models/servedLabels.ts). Time since the last evidence is an input, so the fitted weights say
 * how much an old score decays; the estimate as of T is computed with days since last evidence measured at T.
 *
 * The stack predicts accuracy (P(correct on an average next item), `pCorrect`). The served score maps it to
 * a mastery scale with the model's `scale` (MASTERY_SCALES), per topic, through an increasing function:
 *  - "bkt-emission": BKT's emission model says P(correct) = guess + (1 - guess - slip) P(learned), so
 *    score = (pCorrect - guess_t) / (1 - guess_t - slip_t), clipped, with the topic's guess/slip from the
 *    (bounded) BKT fit on the same history: P(learned);
 *  - "topic-logit": an IRT (Rasch) reading, score = logistic(logit(pCorrect) - logit(base_t)) with base_t
 *    the topic's fitted typical correctness: ability relative to the topic's difficulty, 0.5 = answers like
 *    the topic's typical attempt (the population-centred convention of IRT ability scales);
 *  - "centred-logit": the same with one anchor for all topics, score = logistic(logit(pCorrect) -
 *    logit(base_global)): a global increasing map, so every ranking measure equals the stack's own; 0.5 =
 *    answers like the population's typical attempt after a gap (a convention: not criterion-referenced);
 *  - "identity": score = pCorrect.
 * The interval goes through the same map; the explanation's contributions are scaled by the map's secant
 * slope between the base and the estimate, so base + contributions + rest = score still holds. The accuracy input `accuracy_decayed` forgets towards
 * the topic's base with the half-life fitted on the log (models/servedDecay.ts); the same half-life decays a
 * stored score at request time (`decay` of the estimate: floor and half-life).
 *
 * Each estimate carries an 80% interval: the 10th and 90th percentile of the training residuals in its
 * evidence band (no quiz evidence, 1-4, 5-14, 15+ attempts), and an evidence kind: "measured" (quiz
 * evidence), "indirect" (only other events: video, practice, chatbot, assignment) or "prior" (nothing).
 * The explanation is linear: base (intercept + weights x training means) + sum of contributions = estimate
 * before clipping to [0, 1]; the clip goes in `rest`.
 *
 * Pure math: no I/O, no clock.
 */

export const SERVED_INPUTS = [
  "rule_score",
  "bkt_p_learned",
  "elo_score",
  "accuracy_smoothed",
  "log_attempts",
  "days_since_last",
  "accuracy_decayed",
  "days_since_any",
  "accuracy_recent",
  "practice_accuracy",
  "log_practice_attempts",
  "assignment_mean",
  "log_videos",
  "chat_resolved_rate",
  "log_chat_requests",
  "exposure_3d",
  "exposure_14d",
  "latent_mastery",
] as const;
export type ServedInputName = (typeof SERVED_INPUTS)[number];
const D = SERVED_INPUTS.length;

/** The evidence behind one (student, topic) at the scoring time. */
export interface PairEvidence {
  /** The topic (selects its guess/slip and half-life; unknown topics use the global calibration). */
  topic: string;
  /** Stored source scores; NaN when the source has none (the training mean is used instead). */
  rule: number;
  bkt: number;
  elo: number;
  /** Quiz attempts and correct answers before the scoring time. */
  attempts: number;
  correct: number;
  /** Days from the last quiz evidence to the scoring time (Infinity when none). */
  daysSinceQuiz: number;
  /** Days from the last event of any kind to the scoring time (Infinity when none). */
  daysSinceAny: number;
  /**
   * Evidence of the other event kinds before the scoring time (absent = none): practice attempts / correct,
   * assignments and their mean score (0-1), videos, chatbot help requests / resolved.
   */
  practiceAttempts?: number;
  practiceCorrect?: number;
  assignments?: number;
  assignmentMean?: number;
  videos?: number;
  chatRequests?: number;
  chatResolved?: number;
  /** Quiz answers weighted by 2^(-age / 7 days): weight sum and weighted correct (recent accuracy). */
  recentAttempts?: number;
  recentCorrect?: number;
  /** Events of every kind weighted by 2^(-age / 3 days) and 2^(-age / 14 days) (decayed exposure). */
  exposure3d?: number;
  exposure14d?: number;
  /**
   * Posterior mean of the latent-state filter (models/latentFilter.ts) as of the scoring time; absent or NaN
   * = none (imputed with the training mean).
   */
  latent?: number;
}

export class ServedMasteryError extends Error {
  readonly code = "SERVED_MASTERY";
  constructor(message: string) {
    super(message);
    this.name = "ServedMasteryError";
  }
}

export type EvidenceKind = "measured" | "indirect" | "prior";

/** Per-topic calibration: BKT guess/slip (mastery scale) and the fitted forgetting (servedDecay.ts). */
export interface TopicCalibration {
  guess: number;
  slip: number;
  halfLifeDays: number;
  /** Accuracy a pair forgets towards. */
  base: number;
}

/** Identity transform and no forgetting: the estimate stays on the label's scale. */
export const IDENTITY_CALIBRATION: Readonly<TopicCalibration> = Object.freeze({
  guess: 0,
  slip: 0,
  halfLifeDays: 3650,
  base: 0.5,
});

export interface ServedEstimate {
  /** Mastery scale (P(learned)). */
  score: number;
  /** P(correct on an average next item): the stack's prediction before the mastery transform. */
  pCorrect: number;
  lo: number;
  hi: number;
  /** How the score decays after the scoring time: towards `floor` (mastery) / `pFloor` (P(correct)). */
  decay: { halfLifeDays: number; floor: number; pFloor: number };
  evidence: EvidenceKind;
  attempts: number;
  daysSinceLast: number | null;
  base: number;
  /** The stack's inputs, or the latent filter's factors when the score is the filter's (servedFromLatent). */
  contributions: { name: ServedInputName | LatentFactor; value: number; contribution: number }[];
  rest: number;
}

/** Evidence bands for the intervals. */
const BANDS = [0, 1, 5, 15] as const;
const bandOf = (attempts: number): number => {
  let b = 0;
  for (let i = 0; i < BANDS.length; i++) if (attempts >= BANDS[i]!) b = i;
  return b;
};

const clip01 = (x: number): number => Math.min(1, Math.max(0, x));

export const SERVED_FROM = ["latent", "stack"] as const;
export type ServedFrom = (typeof SERVED_FROM)[number];

export const MASTERY_SCALES = ["centred-logit", "topic-logit", "bkt-emission", "identity"] as const;
export type MasteryScale = (typeof MASTERY_SCALES)[number];

const P_EPS = 1e-3;
const logit = (p: number): number => {
  const q = Math.min(1 - P_EPS, Math.max(P_EPS, p));
  return Math.log(q / (1 - q));
};

/**
 * P(correct) -> the mastery scale `scale` for a topic calibrated by `c` (`global`: the model's global
 * calibration, the anchor of "centred-logit"); increasing in p, in [0, 1].
 */
export function masteryOf(
  p: number,
  c: TopicCalibration,
  scale: MasteryScale,
  global: TopicCalibration = c,
): number {
  if (scale === "bkt-emission") return clip01(toMasteryScale(p, c));
  if (scale === "topic-logit") return 1 / (1 + Math.exp(-(logit(p) - logit(c.base))));
  if (scale === "centred-logit") return 1 / (1 + Math.exp(-(logit(p) - logit(global.base))));
  return clip01(p);
}

/** P(correct) -> mastery through the topic's guess/slip (the BKT emission model inverted), unclipped. */
export function toMasteryScale(p: number, c: Pick<TopicCalibration, "guess" | "slip">): number {
  const span = 1 - c.guess - c.slip;
  if (!(span > 0))
    throw new ServedMasteryError(
      `guess ${c.guess} + slip ${c.slip} >= 1: the topic's BKT fit is degenerate; refit BKT with bounds (models/bktMasteryOptions.ts)`,
    );
  return (p - c.guess) / span;
}

export function evidenceKind(e: PairEvidence): EvidenceKind {
  if (e.attempts > 0) return "measured";
  return Number.isFinite(e.daysSinceAny) ? "indirect" : "prior";
}

function rawInputs(e: PairEvidence, c: TopicCalibration, out: Float64Array, off: number): void {
  const acc = (e.correct + 1) / (e.attempts + 2);
  const days = Number.isFinite(e.daysSinceQuiz) ? e.daysSinceQuiz : 60;
  const forgotten = e.attempts > 0 ? decayTowards(acc, c.base, c.halfLifeDays, days) : c.base;
  out[off] = e.rule;
  out[off + 1] = e.bkt;
  out[off + 2] = e.elo;
  out[off + 3] = acc;
  out[off + 4] = Math.log1p(e.attempts);
  out[off + 5] = Math.min(days, 60) / 30;
  out[off + 6] = forgotten;
  const daysAny = Number.isFinite(e.daysSinceAny) ? e.daysSinceAny : 60;
  out[off + 7] = Math.min(daysAny, 60) / 30;
  out[off + 8] =
    e.recentAttempts === undefined ? Number.NaN : ((e.recentCorrect ?? 0) + c.base) / (e.recentAttempts + 1);
  const pa = e.practiceAttempts ?? 0;
  out[off + 9] = ((e.practiceCorrect ?? 0) + 1) / (pa + 2);
  out[off + 10] = Math.log1p(pa);
  // No assignment: NaN, imputed with the training mean (as a missing source score).
  out[off + 11] = (e.assignments ?? 0) > 0 ? (e.assignmentMean ?? Number.NaN) : Number.NaN;
  out[off + 12] = Math.log1p(e.videos ?? 0);
  const ch = e.chatRequests ?? 0;
  out[off + 13] = ((e.chatResolved ?? 0) + 1) / (ch + 2);
  out[off + 14] = Math.log1p(ch);
  out[off + 15] = Math.log1p(e.exposure3d ?? 0);
  out[off + 16] = Math.log1p(e.exposure14d ?? 0);
  out[off + 17] = e.latent ?? Number.NaN;
}

export interface ServedMasteryJson {
  kind: "served-mastery";
  version: 4;
  inputs: readonly string[];
  means: number[];
  weights: number[];
  intercept: number;
  /** Per evidence band [q10, q90] of (label - prediction). */
  residualQuantiles: [number, number][];
  ridge: number;
  trainPairs: number;
  /** How P(correct) maps to the served (mastery-scale) score. */
  scale: MasteryScale;
  /** Per topic calibration; topics not listed use `global`. */
  topics: Record<string, TopicCalibration>;
  global: TopicCalibration;
  /** The latent-state filter behind the `latent_mastery` input (fitted with the stack), when there is one. */
  latent?: LatentModelJson;
  /**
   * What the served score is: "latent" = the filter's posterior (mean, 80% interval, factors) mapped to the
   * model's scale (servedFromLatent); "stack" (or absent) = the stack's prediction.
   */
  servedFrom?: ServedFrom;
  /**
   * The anchor of the logit scales (round 7, `fitAnchor`): the P(correct) served as 0.5 by "centred-logit"
   * and the uncertainty of that anchor (sd, logit units) that the 80% intervals carry. Absent (models
   * trained before round 7): the anchor is `global.base` and the intervals carry no anchor uncertainty.
   */
  anchor?: ScaleAnchor;
}

/** Where the logit scales put 0.5, and how uncertain that is (models/servedMastery.ts `fitAnchor`). */
export interface ScaleAnchor {
  /** "pair-centred": the scored population's mean logit P(correct) at the training snapshot. */
  method: "pair-centred";
  /** The P(correct) served as 0.5 by "centred-logit". */
  base: number;
  /** Sd (logit units) of the anchor a pair's interval carries (between-topic sd of the topics' own anchors). */
  sd: number;
  /** Pairs and topics behind it. */
  pairs: number;
  topics: number;
  /**
   * Round 8 (models/anchorEase.ts): the between-topic sd before the ease share, the share (sd = betweenSd *
   * sqrt(easeShare)) and the topics it was estimated on. Absent (round 7 models): sd is the whole between-topic sd.
   */
  betweenSd?: number;
  easeShare?: number;
  easeTopics?: number;
  /**
   * Round 26 (serving/servedTraining.ts `anchorEase: "thresholds"`): sd is the latent filter's topic thresholds'
   * posterior sd in logit units (models/thresholdUncertainty.ts anchorSdFromThresholds) on `thresholdTopics`
   * topics; `shareSd` is what round 8's ease share would have carried. Absent: sd is round 8's.
   */
  ease?: "thresholds";
  shareSd?: number;
  thresholdTopics?: number;
}

/** z of the 90th percentile of a standard normal: the 80% interval's half-width in sds. */
const Z80 = 1.2815515655446004;
/** Topics need this many pairs to enter the between-topic sd of the anchor. */
const ANCHOR_MIN_TOPIC_PAIRS = 5;

/**
 * A served model whose score is the latent filter's estimate alone (no stacked inputs, identity
 * calibration), for a filter with known parameters: benches and tests build the stream's and the
 * batch's served model this way; `extra` overrides fields (topics, trainPairs, ...).
 */
export function latentOnlyServedJson(
  latent: LatentModelJson,
  extra: Partial<ServedMasteryJson> = {},
): ServedMasteryJson {
  return {
    kind: "served-mastery",
    version: 4,
    inputs: SERVED_INPUTS,
    means: SERVED_INPUTS.map(() => 0),
    weights: SERVED_INPUTS.map(() => 0),
    intercept: 0.5,
    residualQuantiles: BANDS.map((): [number, number] => [-0.2, 0.2]),
    ridge: 1,
    trainPairs: 0,
    scale: "centred-logit",
    topics: {},
    global: { ...IDENTITY_CALIBRATION, base: 0.62 },
    latent,
    servedFrom: "latent",
    ...extra,
  };
}

/**
 * The anchor of the logit scales, fitted label-free on what the product scores (round 7): `base` = the
 * logistic of the mean logit P(correct) over every scored (student, topic) at the training snapshot (the
 * IRT convention: ability is centred on the population of persons, here (student, topic) pairs, so the
 * typical pair is served 0.5), and `sd` = the between-topic sd of the topics' own mean logits (shrunk for
 * their pair counts): one global anchor reads a P(correct) the same on an easy and a hard topic, and how much
 * of a topic's higher accuracy is ease rather than mastery is not identified without labels of mastery, so
 * each score carries that sd in its interval. Pure: `pairs` = (topic, P(correct)) of every scored pair.
 */
export function fitAnchor(pairs: readonly { topic: string; p: number }[]): ScaleAnchor {
  if (pairs.length === 0)
    throw new ServedMasteryError(
      "the scale anchor needs scored pairs at the training snapshot (got none): ingest events before the snapshot",
    );
  let sum = 0;
  const byTopic = new Map<string, { s: number; ss: number; n: number }>();
  for (const { topic, p } of pairs) {
    const z = logit(p);
    sum += z;
    const t = byTopic.get(topic) ?? { s: 0, ss: 0, n: 0 };
    t.s += z;
    t.ss += z * z;
    t.n++;
    byTopic.set(topic, t);
  }
  const mean = sum / pairs.length;
  // Between-topic variance of the topic means, minus their sampling variance (method of moments).
  const used = [...byTopic.values()].filter((t) => t.n >= ANCHOR_MIN_TOPIC_PAIRS);
  let between = 0;
  if (used.length >= 2) {
    const ms = used.map((t) => t.s / t.n);
    const mm = ms.reduce((a, b) => a + b, 0) / ms.length;
    let v = 0;
    let noise = 0;
    used.forEach((t, i) => {
      v += (ms[i]! - mm) ** 2;
      const within = Math.max(0, t.ss / t.n - (t.s / t.n) ** 2) * (t.n / Math.max(1, t.n - 1));
      noise += within / t.n;
    });
    between = Math.max(0, v / (used.length - 1) - noise / used.length);
  }
  return {
    method: "pair-centred",
    base: 1 / (1 + Math.exp(-mean)),
    sd: Math.sqrt(between),
    pairs: pairs.length,
    topics: byTopic.size,
  };
}

/**
 * An interval [lo, hi] around `score` (logit scales) widened by an extra sd on the logit scale: each side's
 * logit half-width h becomes sqrt(h^2 + (z80 sd)^2) (independent errors add in variance). sd 0 = unchanged.
 */
export function widenLogit(score: number, lo: number, hi: number, sd: number): { lo: number; hi: number } {
  if (!(sd > 0)) return { lo, hi };
  const z = logit(score);
  const e = (Z80 * sd) ** 2;
  const wl = Math.sqrt(Math.max(0, z - logit(lo)) ** 2 + e);
  const wh = Math.sqrt(Math.max(0, logit(hi) - z) ** 2 + e);
  return { lo: Math.min(lo, 1 / (1 + Math.exp(-(z - wl)))), hi: Math.max(hi, 1 / (1 + Math.exp(-(z + wh)))) };
}

const quantile = (sorted: readonly number[], q: number): number => {
  if (sorted.length === 0) return Number.NaN;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
};

/** Solves A x = b for a symmetric positive definite A (Cholesky), in place on copies. */
function solveSpd(A: Float64Array, b: Float64Array, n: number): Float64Array {
  const L = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let s = A[i * n + j]!;
      for (let k = 0; k < j; k++) s -= L[i * n + k]! * L[j * n + k]!;
      if (i === j) {
        if (!(s > 0))
          throw new ServedMasteryError(
            "served mastery fit: normal equations not positive definite; raise the ridge",
          );
        L[i * n + i] = Math.sqrt(s);
      } else L[i * n + j] = s / L[j * n + j]!;
    }
  }
  const y = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let s = b[i]!;
    for (let k = 0; k < i; k++) s -= L[i * n + k]! * y[k]!;
    y[i] = s / L[i * n + i]!;
  }
  const x = new Float64Array(n);
  for (let i = n - 1; i >= 0; i--) {
    let s = y[i]!;
    for (let k = i + 1; k < n; k++) s -= L[k * n + i]! * x[k]!;
    x[i] = s / L[i * n + i]!;
  }
  return x;
}

export interface FitOptions {
  /** Fixed ridge penalty; absent: chosen by cross-validation from RIDGE_GRID. */
  ridge?: number;
  weights?: ArrayLike<number>;
  /**
   * Answers behind each label (a label is an accuracy over them): the intervals then leave out the labels'
   * sampling noise (they are for the estimate's target, not for one more noisy week). Optional.
   */
  labelAttempts?: ArrayLike<number>;
  topics?: Record<string, TopicCalibration>;
  global?: TopicCalibration;
  scale?: MasteryScale;
}

/** Ridge penalties tried by the cross-validation (per unit of mean weight, on centred inputs). */
export const RIDGE_GRID: readonly number[] = [1e-3, 1e-2, 0.1, 1, 10, 100];

export class ServedMastery {
  constructor(readonly json: ServedMasteryJson) {}

  /**
   * Ridge least squares of `labels` on the inputs (centred; missing source scores imputed with the training
   * mean), plus residual quantiles per evidence band. `weights` (e.g. label attempt counts) are optional.
   * Without `ridge`, the penalty is chosen from RIDGE_GRID by 5-fold cross-validation (weighted squared error
   * of the held-out labels; folds by index), then the model is refitted on every pair.
   */
  static fit(
    pairs: readonly PairEvidence[],
    labels: ArrayLike<number>,
    opts: FitOptions = {},
  ): ServedMastery {
    if (opts.ridge !== undefined) return ServedMastery.fitRidge(pairs, labels, opts, opts.ridge);
    const n = pairs.length;
    const folds = 5;
    // The folds only need the weights (intervals are not used there).
    const { labelAttempts: _unused, ...cvOpts } = opts;
    let best = RIDGE_GRID[0]!;
    let bestErr = Number.POSITIVE_INFINITY;
    if (n >= folds * (D + 2) && labels.length === n) {
      for (const ridge of RIDGE_GRID) {
        let err = 0;
        for (let f = 0; f < folds; f++) {
          const idx: number[] = [];
          for (let i = 0; i < n; i++) if (i % folds !== f) idx.push(i);
          const sub = ServedMastery.fitRidge(
            idx.map((i) => pairs[i]!),
            idx.map((i) => labels[i]!),
            {
              ...cvOpts,
              ...(opts.weights !== undefined ? { weights: idx.map((i) => opts.weights![i]!) } : {}),
            },
            ridge,
          );
          for (let i = f; i < n; i += folds) {
            const r = labels[i]! - sub.linear(pairs[i]!);
            err += (opts.weights?.[i] ?? 1) * r * r;
          }
        }
        if (err < bestErr - 1e-12) {
          bestErr = err;
          best = ridge;
        }
      }
    }
    return ServedMastery.fitRidge(pairs, labels, opts, best);
  }

  private static fitRidge(
    pairs: readonly PairEvidence[],
    labels: ArrayLike<number>,
    opts: FitOptions,
    ridge: number,
  ): ServedMastery {
    const topics = opts.topics ?? {};
    const global = opts.global ?? IDENTITY_CALIBRATION;
    const cal = (t: string): TopicCalibration => topics[t] ?? global;
    const n = pairs.length;
    if (n < D + 2 || labels.length !== n)
      throw new ServedMasteryError(
        `served mastery fit needs more labelled pairs than inputs (got ${n} pairs, ${labels.length} labels); use a longer history before the cut`,
      );
    const X = new Float64Array(n * D);
    for (let i = 0; i < n; i++) rawInputs(pairs[i]!, cal(pairs[i]!.topic), X, i * D);
    const means = new Array<number>(D).fill(0);
    const counts = new Array<number>(D).fill(0);
    for (let i = 0; i < n; i++)
      for (let j = 0; j < D; j++) {
        const v = X[i * D + j]!;
        if (Number.isFinite(v)) {
          means[j]! += v;
          counts[j]! += 1;
        }
      }
    for (let j = 0; j < D; j++) means[j] = counts[j]! > 0 ? means[j]! / counts[j]! : 0;
    for (let i = 0; i < n; i++)
      for (let j = 0; j < D; j++) {
        const v = X[i * D + j]!;
        X[i * D + j] = Number.isFinite(v) ? v - means[j]! : 0;
      }
    let wSum = 0;
    let yMean = 0;
    for (let i = 0; i < n; i++) {
      const w = opts.weights?.[i] ?? 1;
      wSum += w;
      yMean += w * labels[i]!;
    }
    yMean /= wSum;
    const A = new Float64Array(D * D);
    const b = new Float64Array(D);
    for (let i = 0; i < n; i++) {
      const w = opts.weights?.[i] ?? 1;
      const r = labels[i]! - yMean;
      for (let j = 0; j < D; j++) {
        const xj = X[i * D + j]!;
        b[j]! += w * xj * r;
        for (let k = 0; k <= j; k++) A[j * D + k]! += w * xj * X[i * D + k]!;
      }
    }
    for (let j = 0; j < D; j++) {
      for (let k = 0; k < j; k++) A[k * D + j] = A[j * D + k]!;
      A[j * D + j]! += ridge * (wSum / n);
    }
    const coef = solveSpd(A, b, D);
    // Centred inputs: with weighted means not equal to the plain ones the intercept absorbs the difference.
    let intercept = yMean;
    const model = new ServedMastery({
      kind: "served-mastery",
      version: 4,
      inputs: SERVED_INPUTS,
      means,
      weights: Array.from(coef),
      intercept,
      residualQuantiles: [],
      ridge,
      trainPairs: n,
      scale: opts.scale ?? "identity",
      topics,
      global,
    });
    let bias = 0;
    const preds = pairs.map((p) => model.linear(p));
    for (let i = 0; i < n; i++) bias += (opts.weights?.[i] ?? 1) * (labels[i]! - preds[i]!);
    intercept += bias / wSum;
    model.json.intercept = intercept;
    const byBand: number[][] = BANDS.map(() => []);
    // Sampling noise of each label (a share of labelAttempts[i] answers): p(1 - p) / attempts.
    const noiseByBand: number[][] = BANDS.map(() => []);
    for (let i = 0; i < n; i++) {
      const b = bandOf(pairs[i]!.attempts);
      const pred = preds[i]! + bias / wSum;
      byBand[b]!.push(labels[i]! - pred);
      const m = opts.labelAttempts?.[i];
      if (m !== undefined && m > 0) {
        const p = clip01(pred);
        noiseByBand[b]!.push((p * (1 - p)) / m);
      }
    }
    const all = byBand.flat().sort((a, c) => a - c);
    const allNoise = noiseByBand.flat();
    const mean = (xs: readonly number[]) => xs.reduce((a, c) => a + c, 0) / Math.max(1, xs.length);
    model.json.residualQuantiles = byBand.map((r, b) => {
      // A band with too few residuals borrows the pooled quantiles.
      const pooled = r.length < 30;
      const s = pooled ? all : r.sort((a, c) => a - c);
      // The residual against a label = error of the estimate + the label's own sampling noise; the interval
      // is for the estimate's target, so the quantiles shrink by sqrt(1 - noise variance / residual variance)
      // (at least 0.3 of their width; 1 without labelAttempts).
      const noise = mean(pooled ? allNoise : noiseByBand[b]!);
      const v = mean(s.map((x) => x * x));
      const k = v > 0 && noise > 0 ? Math.sqrt(Math.max(0.09, 1 - noise / v)) : 1;
      return [k * quantile(s, 0.1), k * quantile(s, 0.9)];
    });
    return model;
  }

  static fromJSON(json: ServedMasteryJson): ServedMastery {
    if (
      json.kind !== "served-mastery" ||
      json.version !== 4 ||
      json.inputs.join() !== SERVED_INPUTS.join() ||
      json.global === undefined ||
      !(MASTERY_SCALES as readonly string[]).includes(json.scale)
    )
      throw new ServedMasteryError(
        `not a served-mastery model of this code version (kind ${json.kind}, inputs ${json.inputs.join()}); refit it`,
      );
    return new ServedMastery(json);
  }

  toJSON(): ServedMasteryJson {
    return this.json;
  }

  calibration(topic: string): TopicCalibration {
    return this.json.topics[topic] ?? this.json.global;
  }

  /** The global calibration with the scale's anchor as its base (what masteryOf's `global` reads). */
  anchorCalibration(): TopicCalibration {
    const a = this.json.anchor;
    return a === undefined ? this.json.global : { ...this.json.global, base: a.base };
  }

  /** Sd (logit units) of the anchor the intervals carry: 0 without an anchor or on a non-logit scale. */
  anchorSd(): number {
    const s = this.json.scale;
    return s === "centred-logit" || s === "topic-logit" ? (this.json.anchor?.sd ?? 0) : 0;
  }

  /** The stack's unclipped accuracy-scale prediction. */
  linear(e: PairEvidence): number {
    const x = new Float64Array(D);
    rawInputs(e, this.calibration(e.topic), x, 0);
    let s = this.json.intercept;
    for (let j = 0; j < D; j++) {
      const v = x[j]!;
      if (Number.isFinite(v)) s += this.json.weights[j]! * (v - this.json.means[j]!);
    }
    return s;
  }

  /**
   * The estimate of one pair: the stack on the accuracy scale (pCorrect), mapped to the mastery scale
   * through the topic's guess/slip; the explanation is on the mastery scale (base + contributions + rest =
   * score, the clip in rest).
   */
  predict(e: PairEvidence): ServedEstimate {
    const c = this.calibration(e.topic);
    const scale = this.json.scale;
    const x = new Float64Array(D);
    rawInputs(e, c, x, 0);
    const accContrib = SERVED_INPUTS.map((_, j) => {
      const v = x[j]!;
      return Number.isFinite(v) ? this.json.weights[j]! * (v - this.json.means[j]!) : 0;
    });
    const rawP = accContrib.reduce((s, v) => s + v, this.json.intercept);
    const pCorrect = clip01(rawP);
    const g = this.anchorCalibration();
    const score = masteryOf(rawP, c, scale, g);
    const base = masteryOf(this.json.intercept, c, scale, g);
    // Secant slope of the (increasing) map between the base and the estimate; the derivative-free fallback
    // at rawP = intercept (nothing to scale) keeps the contributions at 0.
    const dp = rawP - this.json.intercept;
    const slope = dp !== 0 ? (score - base) / dp : 0;
    const contributions = SERVED_INPUTS.map((name, j) => ({
      name,
      value: x[j]!,
      contribution: accContrib[j]! * slope,
    }));
    const [q10, q90] = this.json.residualQuantiles[bandOf(e.attempts)] ?? [Number.NaN, Number.NaN];
    const { lo, hi } = widenLogit(
      score,
      masteryOf(rawP + q10, c, scale, g),
      masteryOf(rawP + q90, c, scale, g),
      this.anchorSd(),
    );
    return {
      score,
      pCorrect,
      lo,
      hi,
      decay: { halfLifeDays: c.halfLifeDays, floor: masteryOf(c.base, c, scale, g), pFloor: c.base },
      evidence: evidenceKind(e),
      attempts: e.attempts,
      daysSinceLast: Number.isFinite(e.daysSinceAny) ? e.daysSinceAny : null,
      base,
      contributions,
      rest: score - (base + contributions.reduce((s, v) => s + v.contribution, 0)),
    };
  }
}

/**
 * The served estimate read off the latent filter's posterior (models/latentFilter.ts): P(correct) = the
 * filter's emission at the posterior mean and at its 10th / 90th percentiles, mapped to the model's mastery
 * scale like the stack's prediction (masteryOf; identity keeps the filter's own scale up to guess/slip). The
 * explanation is the filter's: the prior mean (base) and how much each kind of step moved the posterior mean,
 * scaled by the map's secant slope so base + contributions + rest = score. Forgetting after the scoring time
 * uses the filter's half-life and floor. With the filter's logistic emission (round 6: `slope` in its params)
 * K is knowledge on the filter's own item-threshold scale, and the served score is its posterior as it is
 * (mean, 10th / 90th percentiles; P(correct) = the posterior expectation of the topic's emission): the scale
 * map applies to the linear emission only, whose K is accuracy. `anchorSd` (ServedMastery.anchorSd: the
 * uncertainty of the logit scale's anchor) widens the mapped interval on the logit scale (widenLogit).
 */
export function servedFromLatent(
  est: LatentEstimate,
  latent: Pick<
    LatentModelJson["params"],
    "guess" | "slip" | "halfLifeDays" | "asOfHalfLifeDays" | "floor" | "slope"
  >,
  c: TopicCalibration,
  scale: MasteryScale,
  global: TopicCalibration,
  anchorSd = 0,
): ServedEstimate {
  const emit = (k: number) => latent.guess + (1 - latent.guess - latent.slip) * k;
  // A logistic emission puts K on its own (item-threshold) scale, whose location the answers do not pin
  // (round 6). On "centred-logit" it gets the same convention as P(correct) on the linear emission (round 8):
  // the anchor (`global.base`, fitted on the pairs' K by `mastery train served`) is served as 0.5; on the
  // other scales K is served as it is.
  const own = latent.slope !== undefined;
  const ownMapped = own && scale === "centred-logit";
  const map = ownMapped
    ? (k: number) => masteryOf(k, c, scale, global)
    : own
      ? (k: number) => k
      : (k: number) => masteryOf(emit(k), c, scale, global);
  const score = map(est.score);
  const base = map(est.base);
  const dk = est.score - est.base;
  const slope = dk !== 0 ? (score - base) / dk : 0;
  const contributions = Object.entries(est.contributions).map(([name, v]) => ({
    name: name as LatentFactor,
    value: v,
    contribution: v * slope,
  }));
  const { lo, hi } =
    own && !ownMapped ? { lo: est.lo, hi: est.hi } : widenLogit(score, map(est.lo), map(est.hi), anchorSd);
  return {
    score,
    pCorrect: est.pCorrect,
    lo,
    hi,
    // The estimate's own asymptote (the durable-share forgetting's depends on the pair), else the global floor.
    decay: {
      halfLifeDays: asOfHalfLife(latent),
      floor: map(est.floor ?? latent.floor),
      pFloor: est.pFloor ?? emit(est.floor ?? latent.floor),
    },
    evidence: est.observations > 0 ? "measured" : est.events > 0 ? "indirect" : "prior",
    attempts: est.observations,
    daysSinceLast: est.daysSinceLast,
    base,
    contributions,
    rest: score - (base + contributions.reduce((s, v) => s + v.contribution, 0)),
  };
}
