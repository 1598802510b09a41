import { sigmoid } from "./logistic.ts";
import { nelderMead } from "./nelderMead.ts";

/**
 * Round 29 (issue 16): the latent filter's consolidation share c (LatentParams.consolidation), fitted together with
 * the filter's other global parameters by the likelihood of the fit sample's outcomes.
 *
 * Why all of them: with consolidation a pair keeps the share 1 - (1 - c)^n of its gain after n events, so the
 * forgetting seen over the fit sample's gaps can be explained by a short half-life towards a rising floor or by
 * a long one towards the global floor, and the learning rates and the floor trade with both; fitting c alone at
 * the c = 0 fit's values would pin those trade-offs at one end. The search is a Nelder-Mead in (logit c, the
 * global fit's unconstrained coordinates) from c = CONSOLIDATION_START at the fitted values.
 *
 * The choice is a likelihood-ratio test of the nested models (c = 0 is rounds 4-28's filter): c is kept only if
 * twice the log-likelihood gain exceeds CONSOLIDATION_LR_CRITICAL (chi-square with 1 degree of freedom, 95%);
 * otherwise the filter's c = 0 fit stays, bit for bit. The null model gets the same search with c held at 0 (the
 * same start and budget), so that what the global fit left unconverged is not counted as the consolidation's
 * gain. Label-free: answers only.
 *
 * Pure math: no I/O, no clock.
 */

/** The search's start: a small consolidation share (c = 0 itself is the boundary of the logit scale). */
export const CONSOLIDATION_START = 0.05;
/** chi-square(1) at 95%: the likelihood-ratio bar the consolidation must clear to be kept. */
export const CONSOLIDATION_LR_CRITICAL = 3.841;
/** Each search's evaluation budget (with c, and the null one; each is one pass of the filter over the fit sample). */
export const CONSOLIDATION_MAX_EVALUATIONS = 200;
/** The search's first step in logit c and in each other coordinate (the global fit's restart step). */
const STEP_C = 1;
const STEP_REST = 0.3;

/** What LatentFilter.fit stores of the search (model.json `fit.consolidationChoice`). */
export interface ConsolidationChoice {
  /** The consolidation share chosen (0 = none kept: the filter's own fit, bit for bit). */
  chosen: number;
  /** The search's best share (held there with `fixed`). */
  best: number;
  /**
   * The fit sample's log-likelihood (total): the filter's fit (c = 0), the null search's best (c = 0, the other
   * coordinates searched as with c) and the search's best with c.
   */
  logLik: { filter: number; none: number; best: number };
  /** Likelihood evaluations, and how many other parameters were refitted with c. */
  evaluations: number;
  refitted: number;
  /** The half-life without consolidation and with the chosen share (equal when c = 0 is kept). */
  filterHalfLifeDays: number;
  halfLifeDays: number;
  /** Set when the share was held (the bench's diagnostic), not chosen. */
  fixed?: true;
  /** Why no search ran (a small-data fit), when none did. */
  skipped?: string;
}

export interface ConsolidationFit {
  chosen: number;
  best: number;
  logLik: { filter: number; none: number; best: number };
  evaluations: number;
  /** The other coordinates at the chosen share: the search's when c is kept, else `rest0` itself. */
  rest: Float64Array;
}

export class ConsolidationError extends Error {
  readonly code = "CONSOLIDATION";
  constructor(message: string) {
    super(message);
    this.name = "ConsolidationError";
  }
}

/**
 * `logLik(c, rest)`: the fit sample's log-likelihood (total) with consolidation share c and the filter's other
 * free coordinates `rest` (the global fit's unconstrained vector; c = 0 at `rest0` must be the filter's own fit).
 * The search refits c and every coordinate of `rest` together from (CONSOLIDATION_START, rest0). `fixed` (a
 * diagnostic, never the product's choice): c held at this share, only `rest` refitted, kept whatever the
 * likelihood says (what the form would do if the answers identified c).
 */
export function fitConsolidation(
  logLik: (consolidation: number, rest: Float64Array) => number,
  rest0: Float64Array,
  opts: { fixed?: number; maxEvaluations?: number } = {},
): ConsolidationFit {
  const { fixed } = opts;
  if (fixed !== undefined && !(fixed > 0 && fixed < 1))
    throw new ConsolidationError(`a fixed consolidation share must be in (0, 1) (got ${fixed}); e.g. 0.1`);
  if (rest0.length === 0 || !rest0.every(Number.isFinite))
    throw new ConsolidationError(
      "the consolidation's search starts from the filter's fitted parameters, which must be finite: fit the filter first",
    );
  const filter = logLik(0, rest0);
  if (!Number.isFinite(filter))
    throw new ConsolidationError(
      `the filter's log-likelihood without consolidation is ${filter}: the consolidation cannot be compared with it; check the fit sample`,
    );
  const r = rest0.length;
  // y = (logit c, rest...), or rest alone with a fixed share.
  const off = fixed !== undefined ? 0 : 1;
  const shareOf = (y: Float64Array): number => (fixed !== undefined ? fixed : sigmoid(y[0]!));
  const nll = (y: Float64Array): number => {
    const ll = logLik(shareOf(y), y.subarray(off));
    return Number.isFinite(ll) ? -ll : Number.POSITIVE_INFINITY;
  };
  const start = new Float64Array(off + r);
  if (fixed === undefined) start[0] = Math.log(CONSOLIDATION_START / (1 - CONSOLIDATION_START));
  start.set(rest0, off);
  const step = Array.from(start, (_, i) => (i < off ? STEP_C : STEP_REST));
  const budget = {
    maxEvaluations: opts.maxEvaluations ?? CONSOLIDATION_MAX_EVALUATIONS,
    fTolerance: 0.01,
    xTolerance: 0.01,
  };
  const res = nelderMead(nll, start, { step, ...budget });
  const best = shareOf(res.x);
  const bestLl = -res.f;
  let none = filter;
  let evaluations = res.evaluations + 1;
  if (fixed === undefined) {
    const nullRes = nelderMead(
      (y) => {
        const ll = logLik(0, y);
        return Number.isFinite(ll) ? -ll : Number.POSITIVE_INFINITY;
      },
      Float64Array.from(rest0),
      { step: STEP_REST, ...budget },
    );
    none = Math.max(filter, -nullRes.f);
    evaluations += nullRes.evaluations;
  }
  const kept = fixed !== undefined || 2 * (bestLl - none) > CONSOLIDATION_LR_CRITICAL;
  return {
    chosen: kept ? best : 0,
    best,
    logLik: { filter, none, best: bestLl },
    evaluations,
    rest: kept ? Float64Array.from(res.x.subarray(off)) : rest0,
  };
}
