import { nelderMead } from "./nelderMead.ts";

/**
 * Round 29 (issue 16): the latent filter's consolidation share c (LatentParams.consolidation) and its half-life,
 * fitted together by the likelihood of the fit sample's outcomes with every other global parameter held.
 *
 * Why both: with consolidation a pair keeps the share 1 - (1 - c)^n of its gain after n events, so the
 * forgetting seen over the fit sample's gaps can be explained by a short half-life towards a rising floor or by
 * a long one towards the global floor; fitting c alone at the c = 0 fit's half-life would pin that trade-off at
 * one end. The search is a 2-D Nelder-Mead in (logit c, ln h) from c = CONSOLIDATION_START at the fitted h.
 *
 * The choice is a likelihood-ratio test of the nested models (c = 0 is rounds 4-28's filter): c is kept only if
 * twice the log-likelihood gain exceeds CONSOLIDATION_LR_CRITICAL (chi-square with 1 degree of freedom, 95%);
 * otherwise the filter's c = 0 fit stays, bit for bit. Label-free: answers only.
 *
 * Pure math: no I/O, no clock.
 */

/** The search's start: a small consolidation share (c = 0 itself is the boundary of the logit scale). */
export const CONSOLIDATION_START = 0.05;
/** chi-square(1) at 95%: the likelihood-ratio bar the consolidation must clear to be kept. */
export const CONSOLIDATION_LR_CRITICAL = 3.841;
/** The search's evaluation budget (each is one pass of the filter over the fit sample). */
export const CONSOLIDATION_MAX_EVALUATIONS = 80;
/** The half-lives the search may reach (days), as the global fit's. */
const H_MIN = 0.25;
const H_MAX = 3650;

export interface ConsolidationChoice {
  /** The consolidation share chosen (0 = none kept). */
  chosen: number;
  /** The half-life that goes with it (the filter's own when c = 0 is kept). */
  halfLifeDays: number;
  /** The filter's half-life without consolidation (the search's start). */
  filterHalfLifeDays: number;
  /** The search's best share and half-life, and the log-likelihoods (total, not per observation) at c = 0 and there. */
  best: { consolidation: number; halfLifeDays: number };
  logLik: { none: number; best: number };
  evaluations: number;
}

export class ConsolidationError extends Error {
  readonly code = "CONSOLIDATION";
  constructor(message: string) {
    super(message);
    this.name = "ConsolidationError";
  }
}

const sigmoid = (z: number): number => 1 / (1 + Math.exp(-z));

/**
 * `logLik(c, h)`: the fit sample's log-likelihood (total) with consolidation share c and half-life h, every
 * other parameter held (c = 0 must give the filter's own model). `halfLifeDays`: the c = 0 fit's half-life.
 * `fixed` (a diagnostic, never the product's choice): c held at this share, only h fitted, kept whatever the
 * likelihood says (what the form would do if the answers identified c).
 */
export function fitConsolidation(
  logLik: (consolidation: number, halfLifeDays: number) => number,
  halfLifeDays: number,
  maxEvaluations = CONSOLIDATION_MAX_EVALUATIONS,
  fixed?: number,
): ConsolidationChoice {
  if (fixed !== undefined && !(fixed > 0 && fixed < 1))
    throw new ConsolidationError(`a fixed consolidation share must be in (0, 1) (got ${fixed}); e.g. 0.1`);
  if (!(halfLifeDays > 0))
    throw new ConsolidationError(
      `the consolidation's fit starts from the filter's half-life, which must be > 0 days (got ${halfLifeDays}): fit the filter first`,
    );
  const none = logLik(0, halfLifeDays);
  if (!Number.isFinite(none))
    throw new ConsolidationError(
      `the filter's log-likelihood without consolidation is ${none}: the consolidation cannot be compared with it; check the fit sample`,
    );
  const h0 = Math.min(H_MAX, Math.max(H_MIN, halfLifeDays));
  const at = (y: Float64Array): { c: number; h: number } =>
    fixed !== undefined
      ? { c: fixed, h: Math.min(H_MAX, Math.max(H_MIN, Math.exp(y[0]!))) }
      : { c: sigmoid(y[0]!), h: Math.min(H_MAX, Math.max(H_MIN, Math.exp(y[1]!))) };
  const nll = (y: Float64Array): number => {
    const { c, h } = at(y);
    const ll = logLik(c, h);
    return Number.isFinite(ll) ? -ll : Number.POSITIVE_INFINITY;
  };
  const start =
    fixed !== undefined
      ? Float64Array.of(Math.log(h0))
      : Float64Array.of(Math.log(CONSOLIDATION_START / (1 - CONSOLIDATION_START)), Math.log(h0));
  const res = nelderMead(nll, start, {
    step: fixed !== undefined ? [0.5] : [1, 0.5],
    maxEvaluations,
    fTolerance: 0.01,
    xTolerance: 0.01,
  });
  const best = at(res.x);
  const bestLl = -res.f;
  const kept = fixed !== undefined || 2 * (bestLl - none) > CONSOLIDATION_LR_CRITICAL;
  return {
    chosen: kept ? best.c : 0,
    halfLifeDays: kept ? best.h : halfLifeDays,
    filterHalfLifeDays: halfLifeDays,
    best: { consolidation: best.c, halfLifeDays: best.h },
    logLik: { none, best: bestLl },
    evaluations: res.evaluations + 1,
  };
}
