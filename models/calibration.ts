/**
 * Probability calibration fitted on a held-out fold: Platt scaling and isotonic regression.
 * Both map a raw score (a probability or a margin) to a calibrated probability.
 */

export interface Calibrator {
  readonly kind: "platt" | "isotonic";
  transform(score: number): number;
  toJSON(): CalibratorJSON;
}

export type CalibratorJSON =
  | { kind: "platt"; a: number; b: number }
  | { kind: "isotonic"; x: number[]; y: number[] };

/**
 * Platt scaling: p = 1 / (1 + exp(a * s + b)), fitted by Newton's method on the log-likelihood with
 * Platt's smoothed targets (Platt 1999; the Newton/backtracking form follows Lin, Lin & Weng 2007).
 */
export class PlattCalibrator implements Calibrator {
  readonly kind = "platt" as const;
  constructor(
    readonly a = -1,
    readonly b = 0,
  ) {}

  static fit(scores: ArrayLike<number>, labels: ArrayLike<number>, maxIter = 100): PlattCalibrator {
    const n = scores.length;
    let nPos = 0;
    for (let i = 0; i < n; i++) nPos += labels[i] === 1 ? 1 : 0;
    const nNeg = n - nPos;
    const hiTarget = (nPos + 1) / (nPos + 2);
    const loTarget = 1 / (nNeg + 2);
    const t = new Float64Array(n);
    for (let i = 0; i < n; i++) t[i] = labels[i] === 1 ? hiTarget : loTarget;
    let a = 0;
    let b = Math.log((nNeg + 1) / (nPos + 1));
    const objective = (A: number, B: number): number => {
      let f = 0;
      for (let i = 0; i < n; i++) {
        const fApB = scores[i]! * A + B;
        // Stable form of -[t log p + (1-t) log(1-p)] with p = 1/(1+exp(fApB)).
        f +=
          fApB >= 0
            ? t[i]! * fApB + Math.log1p(Math.exp(-fApB))
            : (t[i]! - 1) * fApB + Math.log1p(Math.exp(fApB));
      }
      return f;
    };
    let fval = objective(a, b);
    const sigma = 1e-12;
    for (let iter = 0; iter < maxIter; iter++) {
      let h11 = sigma;
      let h22 = sigma;
      let h21 = 0;
      let g1 = 0;
      let g2 = 0;
      for (let i = 0; i < n; i++) {
        const fApB = scores[i]! * a + b;
        const p = fApB >= 0 ? Math.exp(-fApB) / (1 + Math.exp(-fApB)) : 1 / (1 + Math.exp(fApB));
        const q = 1 - p;
        const d2 = p * q;
        const d1 = t[i]! - p;
        const s = scores[i]!;
        h11 += s * s * d2;
        h22 += d2;
        h21 += s * d2;
        g1 += s * d1;
        g2 += d1;
      }
      if (Math.abs(g1) < 1e-9 && Math.abs(g2) < 1e-9) break;
      const det = h11 * h22 - h21 * h21;
      const dA = -(h22 * g1 - h21 * g2) / det;
      const dB = -(-h21 * g1 + h11 * g2) / det;
      const gd = g1 * dA + g2 * dB;
      let step = 1;
      let improved = false;
      while (step >= 1e-10) {
        const na = a + step * dA;
        const nb = b + step * dB;
        const nf = objective(na, nb);
        if (nf < fval + 1e-4 * step * gd) {
          a = na;
          b = nb;
          fval = nf;
          improved = true;
          break;
        }
        step /= 2;
      }
      if (!improved) break;
    }
    return new PlattCalibrator(a, b);
  }

  transform(score: number): number {
    const z = this.a * score + this.b;
    return z >= 0 ? Math.exp(-z) / (1 + Math.exp(-z)) : 1 / (1 + Math.exp(z));
  }

  toJSON(): CalibratorJSON {
    return { kind: "platt", a: this.a, b: this.b };
  }
}

/**
 * Isotonic regression by pool-adjacent-violators: a non-decreasing step function of the score,
 * interpolated linearly between block centres and constant beyond the ends.
 */
export class IsotonicCalibrator implements Calibrator {
  readonly kind = "isotonic" as const;
  constructor(
    readonly x: readonly number[],
    readonly y: readonly number[],
  ) {
    if (x.length !== y.length || x.length === 0) {
      throw new RangeError("IsotonicCalibrator: x and y must be non-empty and of equal length");
    }
  }

  static fit(scores: ArrayLike<number>, labels: ArrayLike<number>): IsotonicCalibrator {
    const n = scores.length;
    if (n === 0) throw new RangeError("IsotonicCalibrator.fit: no data");
    const order = Array.from({ length: n }, (_, i) => i).sort((i, j) => scores[i]! - scores[j]!);
    // Blocks of (sum of labels, weight, mean score); ties in score start as one block.
    const sumY: number[] = [];
    const weight: number[] = [];
    const sumX: number[] = [];
    let k = 0;
    while (k < n) {
      let j = k;
      let sy = 0;
      let sx = 0;
      while (j < n && scores[order[j]!] === scores[order[k]!]) {
        sy += labels[order[j]!]!;
        sx += scores[order[j]!]!;
        j++;
      }
      sumY.push(sy);
      weight.push(j - k);
      sumX.push(sx);
      k = j;
      // Pool while the last two blocks violate monotonicity.
      while (sumY.length >= 2) {
        const m = sumY.length;
        if (sumY[m - 2]! / weight[m - 2]! <= sumY[m - 1]! / weight[m - 1]!) break;
        sumY[m - 2]! += sumY[m - 1]!;
        weight[m - 2]! += weight[m - 1]!;
        sumX[m - 2]! += sumX[m - 1]!;
        sumY.pop();
        weight.pop();
        sumX.pop();
      }
    }
    return new IsotonicCalibrator(
      sumX.map((s, i) => s / weight[i]!),
      sumY.map((s, i) => s / weight[i]!),
    );
  }

  transform(score: number): number {
    const { x, y } = this;
    if (score <= x[0]!) return y[0]!;
    if (score >= x[x.length - 1]!) return y[y.length - 1]!;
    let lo = 0;
    let hi = x.length - 1;
    while (hi - lo > 1) {
      const mid = (lo + hi) >> 1;
      if (x[mid]! <= score) lo = mid;
      else hi = mid;
    }
    const span = x[hi]! - x[lo]!;
    return span > 0 ? y[lo]! + ((y[hi]! - y[lo]!) * (score - x[lo]!)) / span : y[lo]!;
  }

  toJSON(): CalibratorJSON {
    return { kind: "isotonic", x: [...this.x], y: [...this.y] };
  }
}

export function calibratorFromJSON(json: CalibratorJSON): Calibrator {
  return json.kind === "platt" ? new PlattCalibrator(json.a, json.b) : new IsotonicCalibrator(json.x, json.y);
}
