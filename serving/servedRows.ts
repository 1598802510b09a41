import { type Explanation, explain } from "../models/explanation.ts";
import type { LatentEstimate } from "../models/latentFilter.ts";
import {
  type PairEvidence,
  type ServedEstimate,
  type ServedMastery,
  servedFromLatent,
} from "../models/servedMastery.ts";

/**
 * The served score's stored row, without storage: its explanation and the estimate it is made of. Shared by
 * `mastery score served` (serving/servedScoring.ts), the daily batch's scoring threads (serving/servedBatch.ts)
 * and the stream (serving/latentStream.ts), so every path stores the same text for the same estimate.
 */

/** The score_source of the served estimate in student_mastery (first in the serving order). */
export const SERVED_SOURCE = "served";

/**
 * The explanation stored with a served score: the usual base + top factors + rest (= score), plus the 80%
 * interval and the evidence behind it (issue 16, item 3). GET /mastery lifts `interval` and `evidence` out.
 */
export interface ServedExplanation extends Explanation {
  interval: { lo: number; hi: number; level: 0.8 };
  evidence: { kind: ServedEstimate["evidence"]; attempts: number; daysSinceLast: number | null };
  /** P(correct on an average next item) (the score is P(learned), the mastery scale). */
  pCorrect: number;
  /** Forgetting after as_of (GET /mastery applies it at request time: serving/masteryView.ts). */
  decay: ServedEstimate["decay"];
}

export function servedExplanation(est: ServedEstimate): ServedExplanation {
  const e = explain(
    est.base,
    est.contributions.map((c) => ({ name: c.name, value: c.value, contribution: c.contribution })),
    est.score,
  );
  return {
    ...e,
    rest: e.rest + est.rest,
    interval: { lo: est.lo, hi: est.hi, level: 0.8 },
    evidence: { kind: est.evidence, attempts: est.attempts, daysSinceLast: est.daysSinceLast },
    pCorrect: est.pCorrect,
    decay: est.decay,
  };
}

/** The served estimate of one pair: the latent filter's (model.json.servedFrom "latent") or the stack's. */
export function servedEstimate(
  model: ServedMastery,
  e: PairEvidence,
  latent: LatentEstimate | undefined,
): ServedEstimate {
  const lj = model.json.latent;
  if (model.json.servedFrom === "latent" && lj !== undefined && latent !== undefined)
    return servedFromLatent(
      latent,
      lj.params,
      model.calibration(e.topic),
      model.json.scale,
      model.anchorCalibration(),
      model.anchorSd(),
    );
  return model.predict(e);
}
