import type { LatentEstimate, LatentFilter, LatentSequence } from "./latentFilter.ts";

/**
 * The uncertainty of a student's prior offset (the latent filter's student effect, round 6) and its share of
 * a pair's 80% interval (round 7, issue 16 lead b). The offset is the mode of the student's penalised
 * likelihood f(o) = -sum ln P(sequences | prior shifted by o) + o^2 / (2 sd^2) (LatentFilter.studentOffset);
 * its Laplace (normal) approximation has sd 1 / sqrt(f''(o)), f'' by a central second difference. A
 * student with few answers keeps most of the prior sd; one with many has a small offset sd. The pair's
 * interval then carries the posterior mean's change over +-1 offset sd, added in variance to its own
 * (posterior) half-widths. Label-free: the same likelihood the offset is fitted on. Pure: no I/O.
 */

/** Step of the second difference (logit units). */
const H = 0.25;
/** z of the 90th percentile of a standard normal. */
const Z80 = 1.2815515655446004;

const logit = (p: number): number => Math.log(p / (1 - p));
const sigmoid = (z: number): number => 1 / (1 + Math.exp(-z));

/**
 * Laplace sd (logit units) of the student's offset at `offset` (0 without a student effect; the prior sd
 * when the likelihood is flat, e.g. no graded events).
 */
export function studentOffsetSd(
  model: LatentFilter,
  sequences: readonly LatentSequence[],
  offset: number,
): number {
  const sd = model.json.studentPriorSd ?? 0;
  if (!(sd > 0)) return 0;
  const p = new Float64Array(model.json.bins);
  const f = (o: number): number => {
    let ll = 0;
    for (const s of sequences)
      ll += model.kernelFor(s.topic, o).run(s.events, sigmoid(logit(model.priorMean(s.topic)) + o), p);
    return -ll + (0.5 * o * o) / (sd * sd);
  };
  const curv = (f(offset + H) - 2 * f(offset) + f(offset - H)) / (H * H);
  // The penalty alone has curvature 1 / sd^2: never report more uncertainty than the prior's. Round 19: a
  // reined-in student part (studentOffsetScale c) scores at c times the mode, whose sd is c times the mode's.
  const scale = model.json.studentOffsetScale ?? 1;
  return scale * (curv > 1 / (sd * sd) ? 1 / Math.sqrt(curv) : sd);
}

/**
 * fold27: `studentOffsetSd` from the basis folds the score already ran (LatentFilter.predictStudentBasis), with
 * no fold at an off-grid offset. The basis parts are the filter run from the prior shifted by each basis offset
 * g_j (with that offset's learning rates), so f at the basis offsets is exact: F_j = -sum ll_j + g_j^2 / (2 sd^2)
 * over the same sequences as `studentOffsetSd`. f'' is the second difference of F at each inner basis offset
 * (step 1: the curvature of the parabola whose vertex is the offset, LatentFilter.offsetFromSummary),
 * interpolated linearly at `offset`; then the same floor and rein-in scale as `studentOffsetSd`.
 */
export function studentOffsetSdFromBasis(
  model: LatentFilter,
  ll: readonly ArrayLike<number>[],
  offset: number,
): number {
  const sd = model.json.studentPriorSd ?? 0;
  if (!(sd > 0)) return 0;
  const grid = model.studentGrid();
  const n = grid.length;
  const scale = model.json.studentOffsetScale ?? 1;
  if (n < 3) return scale * sd;
  const f = new Float64Array(n);
  for (let j = 0; j < n; j++) {
    let s = 0;
    for (const x of ll) s += x[j]!;
    f[j] = -s + (0.5 * grid[j]! * grid[j]!) / (sd * sd);
  }
  const step = grid[1]! - grid[0]!;
  const d2 = (k: number) => (f[k - 1]! - 2 * f[k]! + f[k + 1]!) / (step * step);
  // Centres grid[1] .. grid[n - 2]; the curvature between two centres by linear interpolation, clamped at the ends.
  const pos = Math.min(n - 3, Math.max(0, (offset - grid[1]!) / step));
  const k = Math.min(n - 4, Math.floor(pos));
  const w = pos - k;
  const curv = n === 3 ? d2(1) : (1 - w) * d2(k + 1) + w * d2(k + 2);
  return scale * (curv > 1 / (sd * sd) ? 1 / Math.sqrt(curv) : sd);
}

/**
 * fold27: `widenByScores` with the two predictions' scores at offset -+ offsetSd taken from the basis parts'
 * scores (`scores`, LatentFilter.predictStudentBasis: each is predictScore at a basis offset, exactly), linearly
 * interpolated (LatentFilter.interpolateBasis) instead of folded again at the two off-grid offsets.
 */
export function widenFromBasis(
  model: LatentFilter,
  est: LatentEstimate,
  scores: ArrayLike<number>,
  offset: number,
  offsetSd: number,
): LatentEstimate {
  return widenByScores(
    est,
    model.interpolateBasis(scores, offset - offsetSd),
    model.interpolateBasis(scores, offset + offsetSd),
  );
}

/**
 * `est` (predicted with the student's offset) with its 80% interval widened by the offset's uncertainty:
 * d = half the change of the posterior mean between the predictions at offset -+ offsetSd; each side's
 * half-width w becomes sqrt(w^2 + (z80 d)^2), clamped to [0, 1]. Score and explanation unchanged.
 */
export function widenForOffset(
  est: LatentEstimate,
  below: LatentEstimate,
  above: LatentEstimate,
): LatentEstimate {
  return widenByScores(est, below.score, above.score);
}

/**
 * `widenForOffset` from the two predictions' scores alone (LatentFilter.predictScore: the widening needs no
 * more of them).
 */
export function widenByScores(est: LatentEstimate, below: number, above: number): LatentEstimate {
  const d = Math.abs(above - below) / 2;
  if (!(d > 0)) return est;
  const e = (Z80 * d) ** 2;
  const m = est.score;
  return {
    ...est,
    lo: Math.max(0, m - Math.sqrt((m - est.lo) ** 2 + e)),
    hi: Math.min(1, m + Math.sqrt((est.hi - m) ** 2 + e)),
  };
}
