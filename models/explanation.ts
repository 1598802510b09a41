/**
 * Explanations attached to every score: the base value plus signed contributions of factors.
 * Invariant: base + sum(factors[].contribution) + rest === score (up to float rounding), where
 * `factors` are the top 3 by absolute contribution and `rest` folds in all the others.
 */
export interface Factor {
  /** Machine name of the factor, e.g. "accuracy_30d" or "bkt_learn". */
  name: string;
  /** Readable name for people (dashboards), when it differs from `name`. */
  label?: string;
  /** The factor's own value (in its natural unit). */
  value: number;
  /** Signed contribution to the score. */
  contribution: number;
}

export interface Explanation {
  base: number;
  factors: Factor[];
  /** Sum of contributions of factors not among the top ones (0 when there are none). */
  rest: number;
  score: number;
}

/** Builds an explanation keeping the `top` factors with the largest absolute contribution. */
export function explain(base: number, all: readonly Factor[], score: number, top = 3): Explanation {
  const sorted = [...all].sort(
    (a, b) => Math.abs(b.contribution) - Math.abs(a.contribution) || a.name.localeCompare(b.name),
  );
  const factors = sorted.slice(0, top);
  let rest = 0;
  for (const f of sorted.slice(top)) rest += f.contribution;
  return { base, factors, rest, score };
}

/** base + contributions + rest; equals `score` for a well-formed explanation. */
export function explanationTotal(e: Explanation): number {
  let s = e.base + e.rest;
  for (const f of e.factors) s += f.contribution;
  return s;
}
