/**
 * Unconstrained minimisation by BFGS with central-difference gradients and a backtracking (Armijo) line search
 * (Nocedal & Wright 2006, "Numerical Optimization", 2nd ed.: Algorithm 6.1 with the inverse-Hessian update
 * (6.17), the first step's scaling (6.20), and Algorithm 3.1's sufficient-decrease test). For smooth objectives
 * of a few dozen coordinates whose gradient is not available in closed form: each gradient costs 2 * dim
 * evaluations. Deterministic: the same start gives the same path.
 */

export interface QuasiNewtonOptions {
  /** Stop before an evaluation would pass this many evaluations of f. Default 2,000. */
  maxEvaluations?: number;
  /** Central-difference step along each coordinate. Default 1e-4. */
  gradientStep?: number;
  /** Stop when every gradient component is below this in absolute value. Default 1e-7. */
  gradientTolerance?: number;
  /** Stop when two successive steps each lower f by less than this. Default 1e-10. */
  fTolerance?: number;
  /** The largest change of any coordinate in one step (a step past it is shortened). Default 1. */
  maxStep?: number;
}

export interface QuasiNewtonResult {
  x: Float64Array;
  f: number;
  /** The central-difference gradient at x. */
  gradient: Float64Array;
  evaluations: number;
  iterations: number;
  /**
   * Why it stopped: "gradient" (every component below the tolerance), "f-tolerance" (two steps of negligible
   * decrease), "no-descent" (the line search found no decrease along the steepest descent either) or "budget".
   */
  stop: "gradient" | "f-tolerance" | "no-descent" | "budget";
}

export class QuasiNewtonError extends Error {
  readonly code = "QUASI_NEWTON";
  constructor(message: string) {
    super(message);
    this.name = "QuasiNewtonError";
  }
}

const ARMIJO = 1e-4;
const BACKTRACKS = 30;

export function quasiNewton(
  f: (x: Float64Array) => number,
  x0: ArrayLike<number>,
  options: QuasiNewtonOptions = {},
): QuasiNewtonResult {
  const dim = x0.length;
  const maxEval = options.maxEvaluations ?? 2_000;
  const h = options.gradientStep ?? 1e-4;
  const gTol = options.gradientTolerance ?? 1e-7;
  const fTol = options.fTolerance ?? 1e-10;
  const maxStep = options.maxStep ?? 1;
  let evaluations = 0;
  const evalF = (x: Float64Array): number => {
    evaluations++;
    const v = f(x);
    return Number.isNaN(v) ? Number.POSITIVE_INFINITY : v;
  };
  const x = Float64Array.from(x0);
  let fx = evalF(x);
  if (!Number.isFinite(fx))
    throw new QuasiNewtonError(
      `the objective is ${fx} at the start point: start quasiNewton where f is finite (e.g. from a Nelder-Mead result)`,
    );
  const probe = new Float64Array(dim);
  const gradientAt = (at: Float64Array, out: Float64Array): void => {
    probe.set(at);
    for (let i = 0; i < dim; i++) {
      probe[i] = at[i]! + h;
      const up = evalF(probe);
      probe[i] = at[i]! - h;
      const down = evalF(probe);
      probe[i] = at[i]!;
      // A step into an infinite region has no usable slope there: the coordinate is held for this step.
      out[i] = Number.isFinite(up) && Number.isFinite(down) ? (up - down) / (2 * h) : 0;
    }
  };
  let g = new Float64Array(dim);
  gradientAt(x, g);
  // The inverse Hessian approximation, row-major; the identity until the first curvature pair scales it.
  const H = new Float64Array(dim * dim);
  const identity = (scale: number): void => {
    H.fill(0);
    for (let i = 0; i < dim; i++) H[i * dim + i] = scale;
  };
  identity(1);
  let fresh = true;
  const p = new Float64Array(dim);
  const xn = new Float64Array(dim);
  let gn = new Float64Array(dim);
  const s = new Float64Array(dim);
  const y = new Float64Array(dim);
  const Hy = new Float64Array(dim);
  let iterations = 0;
  let small = 0;
  let stop: QuasiNewtonResult["stop"] = "budget";
  const gradSmall = (v: Float64Array): boolean => v.every((c) => Math.abs(c) < gTol);
  while (true) {
    if (gradSmall(g)) {
      stop = "gradient";
      break;
    }
    if (evaluations + 1 + 2 * dim > maxEval) break;
    iterations++;
    for (let i = 0; i < dim; i++) {
      let v = 0;
      for (let j = 0; j < dim; j++) v -= H[i * dim + j]! * g[j]!;
      p[i] = v;
    }
    let slope = 0;
    for (let i = 0; i < dim; i++) slope += g[i]! * p[i]!;
    if (!(slope < 0)) {
      // Not a descent direction (the approximation lost positive definiteness): restart from steepest descent.
      identity(1);
      fresh = true;
      for (let i = 0; i < dim; i++) p[i] = -g[i]!;
      slope = 0;
      for (let i = 0; i < dim; i++) slope += g[i]! * p[i]!;
    }
    let longest = 0;
    for (let i = 0; i < dim; i++) longest = Math.max(longest, Math.abs(p[i]!));
    let alpha = longest > maxStep ? maxStep / longest : 1;
    let fn = Number.POSITIVE_INFINITY;
    let found = false;
    for (let b = 0; b < BACKTRACKS && evaluations + 1 + 2 * dim <= maxEval; b++) {
      for (let i = 0; i < dim; i++) xn[i] = x[i]! + alpha * p[i]!;
      fn = evalF(xn);
      if (fn <= fx + ARMIJO * alpha * slope) {
        found = true;
        break;
      }
      alpha *= 0.5;
    }
    if (!found) {
      if (evaluations + 1 + 2 * dim > maxEval) break;
      if (!fresh) {
        // The quasi-Newton direction failed: one more try along the steepest descent before giving up.
        identity(1);
        fresh = true;
        continue;
      }
      stop = "no-descent";
      break;
    }
    gradientAt(xn, gn);
    let sy = 0;
    let yy = 0;
    for (let i = 0; i < dim; i++) {
      s[i] = xn[i]! - x[i]!;
      y[i] = gn[i]! - g[i]!;
      sy += s[i]! * y[i]!;
      yy += y[i]! * y[i]!;
    }
    const decrease = fx - fn;
    x.set(xn);
    fx = fn;
    [g, gn] = [gn, g];
    if (sy > 1e-12 * Math.sqrt(yy) * Math.hypot(...s)) {
      if (fresh) identity(sy / yy);
      fresh = false;
      // H <- (I - rho s y') H (I - rho y s') + rho s s', rho = 1 / (y's)  (Nocedal & Wright (6.17)).
      const rho = 1 / sy;
      for (let i = 0; i < dim; i++) {
        let v = 0;
        for (let j = 0; j < dim; j++) v += H[i * dim + j]! * y[j]!;
        Hy[i] = v;
      }
      let yHy = 0;
      for (let i = 0; i < dim; i++) yHy += y[i]! * Hy[i]!;
      for (let i = 0; i < dim; i++)
        for (let j = 0; j < dim; j++)
          H[i * dim + j] =
            H[i * dim + j]! -
            rho * (Hy[i]! * s[j]! + s[i]! * Hy[j]!) +
            (rho * rho * yHy + rho) * s[i]! * s[j]!;
    }
    small = decrease < fTol ? small + 1 : 0;
    if (small >= 2) {
      stop = "f-tolerance";
      break;
    }
  }
  return { x, f: fx, gradient: g, evaluations, iterations, stop };
}
