/**
 * How uncertain each topic's emission threshold is (round 26, issue 16): the part of a topic's ease that the
 * answers cannot pin down, for the served scale's anchor term (models/servedMastery.ts ScaleAnchor.sd).
 *
 * With the latent filter's logistic emission, P(correct) = guess + (1 - guess - slip) sigmoid(slope (K -
 * threshold_t)): the per-topic threshold is the topic's ease on K's own scale, fitted with the topic's prior mean
 * (models/latentFilter.ts fitTopicEffects: penalised likelihood, Normal(0, topicPriorSd^2) on the prior mean's
 * logit offset and Normal(0, topicThresholdSd^2) on the threshold's offset). The answers identify K - threshold
 * well and the split between the two only through the dynamics (learning, forgetting, the shape of the prior),
 * so a topic's K carries the threshold's error one for one. Round 8's anchor term (models/anchorEase.ts) reads
 * the share of the raw accuracy's between-topic spread that persists as ease, and carries that share of K's
 * spread, although the thresholds already took the part of the ease the answers identify out of K (round 25's
 * diagnosis: on seed 1 that term is ~3x the topic-level error it stands for).
 *
 * This is the Laplace approximation of each topic's posterior under the fit's own penalised likelihood: the
 * Hessian H of the negative penalised log-likelihood in (prior-mean offset o, threshold offset d) at the fitted
 * values, by central differences (9 runs of the topic's sequences), and the threshold's posterior variance
 * (H^-1)_dd = H_oo / (H_oo H_dd - H_od^2), which counts the trade-off between the two. Where H is not positive
 * definite (a fit at a search bound, or a flat direction) the prior variance topicThresholdSd^2 is returned: no
 * evidence, no narrowing. Answers only: no label is read. Pure.
 */
import {
  groupByTopic,
  LatentKernel,
  type LatentModelJson,
  type LatentParams,
  type LatentSequence,
} from "./latentFilter.ts";
import { sigmoid } from "./logistic.ts";

export interface ThresholdUncertainty {
  /** Posterior sd of the topic's threshold (K units). */
  sd: number;
  /** Sequences of the topic behind it. */
  sequences: number;
  /** False where the Hessian was not positive definite and the prior sd was returned. */
  fromCurvature: boolean;
}

/** Central-difference steps: the prior mean's logit offset and the threshold (K units). */
export const THRESHOLD_CURVATURE_STEPS = { priorLogit: 0.05, threshold: 0.01 } as const;

const logit = (p: number): number => Math.log(p / (1 - p));

export class ThresholdUncertaintyError extends Error {
  readonly code = "THRESHOLD_UNCERTAINTY";
  constructor(message: string) {
    super(message);
    this.name = "ThresholdUncertaintyError";
  }
}

/**
 * The posterior sd of every topic's fitted threshold (see the file comment). `params` are the global parameters
 * the topic effects were fitted around (logistic emission: `slope` and `threshold` set), `fitted` the fit's
 * topic prior means and thresholds, `topicPriorSd` / `topicThresholdSd` its penalties. A topic without a fitted
 * threshold or prior mean is skipped.
 */
export function thresholdUncertainty(
  params: LatentParams,
  bins: number,
  byTopic: ReadonlyMap<string, readonly LatentSequence[]>,
  fitted: {
    topicPriorMean: Readonly<Record<string, number>>;
    topicThreshold: Readonly<Record<string, number>>;
  },
  opts: { topicPriorSd: number; topicThresholdSd: number },
): Map<string, ThresholdUncertainty> {
  if (params.slope === undefined)
    throw new ThresholdUncertaintyError(
      "threshold uncertainty needs the logistic emission (params.slope set); the linear emission has no topic thresholds",
    );
  const sPrior = opts.topicPriorSd;
  const sTh = opts.topicThresholdSd;
  if (!(sPrior > 0) || !(sTh > 0))
    throw new ThresholdUncertaintyError(
      `topicPriorSd and topicThresholdSd must be > 0 (got ${sPrior} / ${sTh}): with a threshold sd of 0 the thresholds are held at the global one and have no posterior to read`,
    );
  const g0 = logit(params.priorMean);
  const th0 = params.threshold ?? 0.5;
  const h = THRESHOLD_CURVATURE_STEPS.priorLogit;
  const k = THRESHOLD_CURVATURE_STEPS.threshold;
  const p = new Float64Array(bins);
  const out = new Map<string, ThresholdUncertainty>();
  for (const topic of [...byTopic.keys()].sort()) {
    const seqs = byTopic.get(topic)!;
    const m = fitted.topicPriorMean[topic];
    const th = fitted.topicThreshold[topic];
    if (m === undefined || th === undefined || seqs.length === 0) continue;
    const o = logit(m) - g0;
    const d = th - th0;
    // f(i, j): the negative penalised log-likelihood at (o + i h, d + j k), i, j in {-1, 0, 1}.
    const f = new Float64Array(9);
    for (let j = -1; j <= 1; j++) {
      const kernel = new LatentKernel(params, bins, th + j * k);
      for (let i = -1; i <= 1; i++) {
        const oo = o + i * h;
        const dd = d + j * k;
        const prior = sigmoid(g0 + oo);
        let ll = 0;
        for (const s of seqs) ll += kernel.run(s.events, prior, p);
        f[(j + 1) * 3 + (i + 1)] = -ll + (0.5 * oo * oo) / (sPrior * sPrior) + (0.5 * dd * dd) / (sTh * sTh);
      }
    }
    const at = (i: number, j: number): number => f[(j + 1) * 3 + (i + 1)]!;
    const hoo = (at(1, 0) - 2 * at(0, 0) + at(-1, 0)) / (h * h);
    const hdd = (at(0, 1) - 2 * at(0, 0) + at(0, -1)) / (k * k);
    const hod = (at(1, 1) - at(1, -1) - at(-1, 1) + at(-1, -1)) / (4 * h * k);
    const det = hoo * hdd - hod * hod;
    const ok = hoo > 0 && hdd > 0 && det > 0 && Number.isFinite(det);
    // The posterior can only be narrower than the prior (a penalised likelihood's curvature includes the penalty).
    const v = ok ? Math.min(sTh * sTh, hoo / det) : sTh * sTh;
    out.set(topic, { sd: Math.sqrt(v), sequences: seqs.length, fromCurvature: ok });
  }
  return out;
}

/**
 * The anchor's sd (logit units of the served score) that the thresholds' posterior sds stand for: a topic whose
 * threshold is off by e has every pair's K off by about e, so its typical pair's logit K by e / (k(1 - k)) with
 * k = the logistic of the topic's mean logit K over its scored pairs; the topics' variances so converted are
 * averaged with their scored pairs as weights. `pairs` = (topic, K) of every scored pair at the snapshot (what
 * models/servedMastery.ts fitAnchor reads). Topics without an uncertainty are left out (their pairs too); none
 * left: NaN.
 */
export function anchorSdFromThresholds(
  pairs: readonly { topic: string; p: number }[],
  uncertainty: ReadonlyMap<string, ThresholdUncertainty>,
): { sd: number; pairs: number; topics: number } {
  const byTopic = new Map<string, { s: number; n: number }>();
  for (const { topic, p } of pairs) {
    if (!uncertainty.has(topic)) continue;
    const c = Math.min(1 - 1e-6, Math.max(1e-6, p));
    const t = byTopic.get(topic) ?? { s: 0, n: 0 };
    t.s += logit(c);
    t.n++;
    byTopic.set(topic, t);
  }
  let v = 0;
  let n = 0;
  for (const [topic, t] of byTopic) {
    const kbar = sigmoid(t.s / t.n);
    const slope = 1 / (kbar * (1 - kbar));
    const e = uncertainty.get(topic)!.sd;
    v += t.n * (e * slope) ** 2;
    n += t.n;
  }
  return { sd: n > 0 ? Math.sqrt(v / n) : Number.NaN, pairs: n, topics: byTopic.size };
}

/**
 * `thresholdUncertainty` for a fitted filter: its topic prior means and thresholds, around the global parameters
 * the topic effects were fitted with (the forgetting's spread and as-of step are set after the topic fit, so
 * they are left out, as they were then), on the fit's own sample. `topicThresholdSd` = the shrinkage the fit
 * used (its held-out choice, `fit.thresholdChoice.chosen`, when it made one). Null when the filter has no topic
 * thresholds (linear emission) or held them at the global one (a shrinkage of 0): nothing to read.
 */
export function filterThresholdUncertainty(
  json: LatentModelJson,
  sample: readonly LatentSequence[],
  opts: { topicPriorSd: number; topicThresholdSd: number },
): Map<string, ThresholdUncertainty> | null {
  const topicThreshold = json.topicThreshold;
  if (json.params.slope === undefined || topicThreshold === undefined) return null;
  const thSd = json.fit.thresholdChoice?.chosen ?? opts.topicThresholdSd;
  if (!(thSd > 0)) return null;
  const { forgetSpread: _s, asOfForgetting: _a, ...params } = json.params;
  return thresholdUncertainty(
    params,
    json.bins,
    groupByTopic(sample),
    { topicPriorMean: json.topicPriorMean, topicThreshold },
    {
      topicPriorSd: opts.topicPriorSd,
      topicThresholdSd: thSd,
    },
  );
}
