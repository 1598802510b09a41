/**
 * Stacking (Wolpert 1992, "Stacked generalization"): a logistic regression over the outputs of other models,
 * fitted on rows none of them trained on, then a probability calibrator. Pure math: no I/O, no clock.
 *
 *   logit = intercept + sum_j w_j * x_j        p = calibrator(logit)
 *
 * Each x_j is one source's output on the logit scale (BKT, Elo, the GBT margin, the MLP, a rule accuracy), so
 * w_j * x_j is that source's exact share of the logit; the shares plus the intercept sum to the logit.
 */
import {
  type Calibrator,
  type CalibratorJSON,
  calibratorFromJSON,
  IsotonicCalibrator,
  PlattCalibrator,
} from "./calibration.ts";
import { type Explanation, explain, type Factor } from "./explanation.ts";
import { logloss } from "./metrics.ts";

export class BlendError extends Error {
  readonly code = "BLEND";
  constructor(message: string) {
    super(message);
    this.name = "BlendError";
  }
}

const MAX_LOGIT = 30;
const P_EPS = 1e-6;

export const sigmoid = (x: number): number =>
  1 / (1 + Math.exp(-Math.max(-MAX_LOGIT, Math.min(MAX_LOGIT, x))));

/** log(p / (1 - p)) with p clipped to [1e-6, 1 - 1e-6], so a source that says 0 or 1 stays finite. */
export function logit(p: number): number {
  const q = Math.min(1 - P_EPS, Math.max(P_EPS, p));
  return Math.log(q / (1 - q));
}

export interface StackingOptions {
  /** L2 penalty on the weights (not the intercept), as a multiple of the number of rows. Default 1e-6. */
  l2?: number;
  maxIter?: number;
}

export interface StackingJson {
  names: string[];
  weights: number[];
  intercept: number;
}

export interface SourceContribution {
  name: string;
  /** The source's input (logit scale). */
  value: number;
  weight: number;
  /** weight * value: the source's share of the logit. */
  contribution: number;
}

/** Solves A x = b for a small symmetric positive definite A (row-major d x d) by Cholesky. */
function solveSpd(A: Float64Array, b: Float64Array, d: number): Float64Array {
  const L = new Float64Array(d * d);
  for (let i = 0; i < d; i++) {
    for (let j = 0; j <= i; j++) {
      let s = A[i * d + j]!;
      for (let k = 0; k < j; k++) s -= L[i * d + k]! * L[j * d + k]!;
      if (i === j) {
        if (!(s > 0))
          throw new BlendError("stacking Hessian is not positive definite; inputs are collinear or constant");
        L[i * d + i] = Math.sqrt(s);
      } else L[i * d + j] = s / L[j * d + j]!;
    }
  }
  const z = new Float64Array(d);
  for (let i = 0; i < d; i++) {
    let s = b[i]!;
    for (let k = 0; k < i; k++) s -= L[i * d + k]! * z[k]!;
    z[i] = s / L[i * d + i]!;
  }
  const x = new Float64Array(d);
  for (let i = d - 1; i >= 0; i--) {
    let s = z[i]!;
    for (let k = i + 1; k < d; k++) s -= L[k * d + i]! * x[k]!;
    x[i] = s / L[i * d + i]!;
  }
  return x;
}

/** Logistic regression over source outputs, fitted by Newton's method (IRLS) with a line search. */
export class StackedLogistic {
  constructor(
    readonly names: readonly string[],
    readonly weights: Float64Array,
    readonly intercept: number,
  ) {
    if (names.length !== weights.length)
      throw new BlendError(`stacking has ${names.length} names but ${weights.length} weights`);
  }

  /** Fits on row-major X (n x names.length) and 0/1 labels y. */
  static fit(
    X: Float64Array,
    y: ArrayLike<number>,
    names: readonly string[],
    opts: StackingOptions = {},
  ): StackedLogistic {
    const d = names.length;
    const n = y.length;
    if (X.length !== n * d)
      throw new BlendError(`X has ${X.length} values, expected ${n} rows x ${d} sources`);
    if (n === 0) throw new BlendError("cannot fit the stacking model on 0 rows");
    const lam = (opts.l2 ?? 1e-6) * n;
    const D = d + 1; // weights then intercept
    let beta = new Float64Array(D);
    let mean = 0;
    for (let i = 0; i < n; i++) mean += y[i]!;
    beta[d] = logit(mean / n);
    const objective = (b: Float64Array): number => {
      let f = 0;
      for (let i = 0; i < n; i++) {
        let z = b[d]!;
        for (let j = 0; j < d; j++) z += b[j]! * X[i * d + j]!;
        // log(1 + e^z) - y z, in a stable form.
        f += (z > 0 ? z + Math.log1p(Math.exp(-z)) : Math.log1p(Math.exp(z))) - y[i]! * z;
      }
      for (let j = 0; j < d; j++) f += 0.5 * lam * b[j]! * b[j]!;
      return f;
    };
    let fval = objective(beta);
    const g = new Float64Array(D);
    const H = new Float64Array(D * D);
    const row = new Float64Array(D);
    row[d] = 1;
    for (let it = 0; it < (opts.maxIter ?? 50); it++) {
      g.fill(0);
      H.fill(0);
      for (let i = 0; i < n; i++) {
        let z = beta[d]!;
        for (let j = 0; j < d; j++) {
          row[j] = X[i * d + j]!;
          z += beta[j]! * row[j]!;
        }
        const p = sigmoid(z);
        const r = p - y[i]!;
        const w = Math.max(p * (1 - p), 1e-12);
        for (let a = 0; a < D; a++) {
          g[a]! += r * row[a]!;
          const wa = w * row[a]!;
          for (let b = 0; b <= a; b++) H[a * D + b]! += wa * row[b]!;
        }
      }
      for (let j = 0; j < d; j++) {
        g[j]! += lam * beta[j]!;
        H[j * D + j]! += lam;
      }
      H[d * D + d]! += 1e-9;
      for (let a = 0; a < D; a++) for (let b = a + 1; b < D; b++) H[a * D + b] = H[b * D + a]!;
      const step = solveSpd(H, g, D);
      let gd = 0;
      for (let a = 0; a < D; a++) gd += g[a]! * step[a]!;
      if (gd < 1e-10 * n) break; // Newton decrement: converged
      let t = 1;
      let accepted = false;
      while (t > 1e-8) {
        const cand = new Float64Array(D);
        for (let a = 0; a < D; a++) cand[a] = beta[a]! - t * step[a]!;
        const fc = objective(cand);
        if (fc <= fval - 1e-4 * t * gd) {
          beta = cand;
          fval = fc;
          accepted = true;
          break;
        }
        t /= 2;
      }
      if (!accepted) break;
    }
    return new StackedLogistic([...names], beta.slice(0, d), beta[d]!);
  }

  logit(x: ArrayLike<number>): number {
    let z = this.intercept;
    for (let j = 0; j < this.weights.length; j++) z += this.weights[j]! * x[j]!;
    return z;
  }

  /** Logits of every row of row-major X. */
  logits(X: Float64Array): Float64Array {
    const d = this.weights.length;
    const n = X.length / d;
    const out = new Float64Array(n);
    for (let i = 0; i < n; i++) out[i] = this.logit(X.subarray(i * d, (i + 1) * d));
    return out;
  }

  /** Each source's share of the logit; intercept + sum(contribution) === logit. */
  contributions(x: ArrayLike<number>): { intercept: number; sources: SourceContribution[]; logit: number } {
    const sources = this.names.map((name, j) => ({
      name,
      value: x[j]!,
      weight: this.weights[j]!,
      contribution: this.weights[j]! * x[j]!,
    }));
    return { intercept: this.intercept, sources, logit: this.logit(x) };
  }

  toJSON(): StackingJson {
    return { names: [...this.names], weights: Array.from(this.weights), intercept: this.intercept };
  }

  static fromJSON(j: StackingJson): StackedLogistic {
    if (!Array.isArray(j.names) || !Array.isArray(j.weights) || typeof j.intercept !== "number")
      throw new BlendError("stacking JSON needs names[], weights[] and a numeric intercept");
    return new StackedLogistic(j.names, Float64Array.from(j.weights), j.intercept);
  }
}

/**
 * Out-of-fold logits: for each group g, the stacking model fitted on the rows of the other groups predicts
 * the rows of g. Used to fit the calibrator on logits the stacker did not see.
 */
export function crossFitLogits(
  X: Float64Array,
  y: ArrayLike<number>,
  names: readonly string[],
  group: Int32Array,
  nGroups: number,
  opts: StackingOptions = {},
): Float64Array {
  const d = names.length;
  const n = y.length;
  const out = new Float64Array(n);
  for (let g = 0; g < nGroups; g++) {
    const trainIdx: number[] = [];
    for (let i = 0; i < n; i++) if (group[i] !== g) trainIdx.push(i);
    if (trainIdx.length === n) continue;
    const Xt = new Float64Array(trainIdx.length * d);
    const yt = new Float64Array(trainIdx.length);
    trainIdx.forEach((r, q) => {
      Xt.set(X.subarray(r * d, (r + 1) * d), q * d);
      yt[q] = y[r]!;
    });
    const m = StackedLogistic.fit(Xt, yt, names, opts);
    for (let i = 0; i < n; i++) if (group[i] === g) out[i] = m.logit(X.subarray(i * d, (i + 1) * d));
  }
  return out;
}

/** A calibrator whose outputs stay inside [1e-6, 1 - 1e-6] (isotonic steps can reach 0 or 1). */
export function calibrate(cal: Calibrator, score: number): number {
  return Math.min(1 - P_EPS, Math.max(P_EPS, cal.transform(score)));
}

export interface CalibratorChoice {
  calibrator: Calibrator;
  /** Cross-validated log-loss of each candidate. */
  cvLogloss: { platt: number; isotonic: number };
}

/**
 * Picks Platt scaling or isotonic regression for `scores` (logits) by cross-validated log-loss over the
 * given groups (students), then refits the winner on all rows.
 */
export function chooseCalibrator(
  scores: Float64Array,
  y: ArrayLike<number>,
  group: Int32Array,
  nGroups: number,
): CalibratorChoice {
  const n = scores.length;
  const pPlatt = new Float64Array(n);
  const pIso = new Float64Array(n);
  for (let g = 0; g < nGroups; g++) {
    const s: number[] = [];
    const l: number[] = [];
    for (let i = 0; i < n; i++) {
      if (group[i] !== g) {
        s.push(scores[i]!);
        l.push(y[i]!);
      }
    }
    if (s.length === 0 || s.length === n) continue;
    const platt = PlattCalibrator.fit(s, l);
    const iso = IsotonicCalibrator.fit(s, l);
    for (let i = 0; i < n; i++) {
      if (group[i] !== g) continue;
      pPlatt[i] = calibrate(platt, scores[i]!);
      pIso[i] = calibrate(iso, scores[i]!);
    }
  }
  const cvLogloss = { platt: logloss(y, pPlatt), isotonic: logloss(y, pIso) };
  const calibrator =
    cvLogloss.isotonic < cvLogloss.platt ? IsotonicCalibrator.fit(scores, y) : PlattCalibrator.fit(scores, y);
  return { calibrator, cvLogloss };
}

export interface BlendJson {
  stacking: StackingJson;
  calibrator: CalibratorJSON;
}

export interface BlendExplanation {
  /** Logit decomposition: intercept + sum(sources[].contribution) === logit. */
  intercept: number;
  sources: SourceContribution[];
  logit: number;
  /** calibrator(logit). */
  probability: number;
  /**
   * The same in probability space: base = calibrator(intercept); each source gets the share of
   * probability - base proportional to its share of logit - intercept, so base + factors + rest === probability.
   */
  explanation: Explanation;
}

/** The calibrated stacking model. */
export class Blend {
  constructor(
    readonly stacking: StackedLogistic,
    readonly calibrator: Calibrator,
  ) {}

  predict(x: ArrayLike<number>): number {
    return calibrate(this.calibrator, this.stacking.logit(x));
  }

  explain(x: ArrayLike<number>, top = 3): BlendExplanation {
    const c = this.stacking.contributions(x);
    const probability = calibrate(this.calibrator, c.logit);
    const base = calibrate(this.calibrator, c.intercept);
    const span = c.logit - c.intercept;
    const scale = span === 0 ? 0 : (probability - base) / span;
    const factors: Factor[] = c.sources.map((s) => ({
      name: s.name,
      value: s.value,
      contribution: s.contribution * scale,
    }));
    return { ...c, probability, explanation: explain(base, factors, probability, top) };
  }

  toJSON(): BlendJson {
    return { stacking: this.stacking.toJSON(), calibrator: this.calibrator.toJSON() };
  }

  static fromJSON(j: BlendJson): Blend {
    return new Blend(StackedLogistic.fromJSON(j.stacking), calibratorFromJSON(j.calibrator));
  }
}
