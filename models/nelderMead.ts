/**
 * Derivative-free minimisation by the Nelder-Mead simplex method, with the standard coefficients
 * (reflection 1, expansion 2, contraction 1/2, shrink 1/2) and the ordering/tie rules of
 * Lagarias, Reeds, Wright & Wright (1998), "Convergence properties of the Nelder-Mead simplex
 * method in low dimensions", SIAM J. Optim. 9(1). Deterministic: the same start gives the same path.
 */

export interface NelderMeadOptions {
  /** Initial step along each coordinate (the simplex is x0 and x0 + step_i * e_i). Default 0.5. */
  step?: number | readonly number[];
  /** Stop after this many evaluations of f. Default 200. */
  maxEvaluations?: number;
  /** Stop when the spread of f over the simplex is below this and the simplex is smaller than xTolerance. */
  fTolerance?: number;
  xTolerance?: number;
  /**
   * Convergence by relative change: stop once the best value has improved by less than
   * `stallTolerance * |best|` over the last `stallEvaluations` evaluations. Off unless
   * `stallEvaluations` is set; `maxEvaluations` stays the hard cap. Default tolerance 1e-6.
   */
  stallEvaluations?: number;
  stallTolerance?: number;
  /** Called after every iteration with the evaluations so far and the best value. */
  onIteration?: (evaluations: number, bestF: number, bestX: Float64Array) => void;
}

export interface NelderMeadResult {
  x: Float64Array;
  f: number;
  evaluations: number;
  iterations: number;
  /** Why it stopped: the tolerances met, no relative progress (stall) or the evaluation cap. */
  stop: "tolerance" | "stall" | "budget";
}

export function nelderMead(
  f: (x: Float64Array) => number,
  x0: ArrayLike<number>,
  options: NelderMeadOptions = {},
): NelderMeadResult {
  const dim = x0.length;
  const maxEval = options.maxEvaluations ?? 200;
  const fTol = options.fTolerance ?? 1e-7;
  const xTol = options.xTolerance ?? 1e-4;
  let evaluations = 0;
  const evalF = (x: Float64Array): number => {
    evaluations++;
    const v = f(x);
    // A NaN would poison every comparison; treat it as the worst possible point.
    return Number.isNaN(v) ? Number.POSITIVE_INFINITY : v;
  };

  const pts: Float64Array[] = [];
  const fv = new Float64Array(dim + 1);
  for (let i = 0; i <= dim; i++) {
    const p = Float64Array.from(x0);
    if (i > 0) {
      const s = options.step;
      const step = typeof s === "number" ? s : s === undefined ? 0.5 : (s[i - 1] ?? 0.5);
      p[i - 1]! += step;
    }
    pts.push(p);
    fv[i] = evalF(p);
  }
  const order = new Int32Array(dim + 1);
  const centroid = new Float64Array(dim);
  const xr = new Float64Array(dim);
  const xe = new Float64Array(dim);
  const xc = new Float64Array(dim);
  let iterations = 0;
  const stallEvals = options.stallEvaluations;
  const stallTol = options.stallTolerance ?? 1e-6;
  // Best value at each evaluation count where an iteration ended (for the relative-change stop).
  const history: { ev: number; f: number }[] = [];
  let stop: NelderMeadResult["stop"] = "budget";

  const sortSimplex = (): void => {
    for (let i = 0; i <= dim; i++) order[i] = i;
    // Stable on ties (index order), as Lagarias et al. require for a well-defined method.
    const idx = Array.from(order).sort((a, b) => fv[a]! - fv[b]! || a - b);
    const newPts = idx.map((i) => pts[i]!);
    const newF = idx.map((i) => fv[i]!);
    for (let i = 0; i <= dim; i++) {
      pts[i] = newPts[i]!;
      fv[i] = newF[i]!;
    }
  };

  sortSimplex();
  while (evaluations < maxEval) {
    const spreadF = fv[dim]! - fv[0]!;
    let size = 0;
    for (let i = 1; i <= dim; i++)
      for (let j = 0; j < dim; j++) size = Math.max(size, Math.abs(pts[i]![j]! - pts[0]![j]!));
    if (spreadF <= fTol && size <= xTol) {
      stop = "tolerance";
      break;
    }
    if (stallEvals !== undefined) {
      history.push({ ev: evaluations, f: fv[0]! });
      // The best value stallEvals evaluations ago: the last record at or before that count.
      let i = history.length - 1;
      while (i >= 0 && history[i]!.ev > evaluations - stallEvals) i--;
      if (i >= 0 && history[i]!.f - fv[0]! <= stallTol * Math.abs(fv[0]!)) {
        stop = "stall";
        break;
      }
      if (i > 0) history.splice(0, i);
    }
    iterations++;

    centroid.fill(0);
    for (let i = 0; i < dim; i++) for (let j = 0; j < dim; j++) centroid[j]! += pts[i]![j]! / dim;
    const worst = pts[dim]!;
    for (let j = 0; j < dim; j++) xr[j] = centroid[j]! + (centroid[j]! - worst[j]!);
    const fr = evalF(xr);
    if (fr < fv[0]!) {
      for (let j = 0; j < dim; j++) xe[j] = centroid[j]! + 2 * (centroid[j]! - worst[j]!);
      const fe = evalF(xe);
      if (fe < fr) {
        worst.set(xe);
        fv[dim] = fe;
      } else {
        worst.set(xr);
        fv[dim] = fr;
      }
    } else if (fr < fv[dim - 1]!) {
      worst.set(xr);
      fv[dim] = fr;
    } else {
      // Outside contraction when the reflected point beats the worst, inside contraction otherwise.
      const outside = fr < fv[dim]!;
      for (let j = 0; j < dim; j++)
        xc[j] = outside
          ? centroid[j]! + 0.5 * (xr[j]! - centroid[j]!)
          : centroid[j]! + 0.5 * (worst[j]! - centroid[j]!);
      const fc = evalF(xc);
      if (fc < (outside ? fr : fv[dim]!)) {
        worst.set(xc);
        fv[dim] = fc;
      } else {
        const best = pts[0]!;
        for (let i = 1; i <= dim; i++) {
          const p = pts[i]!;
          for (let j = 0; j < dim; j++) p[j] = best[j]! + 0.5 * (p[j]! - best[j]!);
          fv[i] = evalF(p);
        }
      }
    }
    sortSimplex();
    options.onIteration?.(evaluations, fv[0]!, pts[0]!);
  }
  return { x: Float64Array.from(pts[0]!), f: fv[0]!, evaluations, iterations, stop };
}
