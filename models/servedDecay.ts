/**
 * Forgetting of the served mastery estimate (issue 16, item 2): a half-life per topic fitted on the quiz log,
 * shrunk to one global half-life where a topic has few observations, applied at scoring time (as an input of
 * the stack) and at request time (GET /mastery decays a stored served score from its as_of to now).
 *
 * Model, per topic t: after a gap of g days since the pair's last quiz attempt, the expected correctness of
 * the next attempt is
 *     E[y] = base_t + beta_t (acc_prev - base_t) 2^(-g / h_t)
 * with acc_prev the pair's smoothed accuracy before the attempt ((correct + 1) / (attempts + 2)), base_t the
 * topic's mean correctness (the level a pair forgets towards) and beta_t the attenuation of a noisy acc_prev
 * at gap 0 (without it a short half-life would absorb the noise of small attempt counts). For each half-life
 * of the grid, beta is the closed-form least-squares slope; the half-life is the grid point with the least
 * squared error. Per topic, log h_t is shrunk towards the global log h with weight n_t / (n_t + SHRINK), the
 * base towards the global base with n_t / (n_t + BASE_SHRINK).
 *
 * Only attempts at least `minGapDays` after the previous one count (within a session, learning dominates).
 * Pure math: no I/O, no clock.
 */

/** One observed attempt after a gap. */
export interface DecayTransition {
  topic: string;
  gapDays: number;
  /** Smoothed accuracy of the pair before the attempt. */
  prevAcc: number;
  /** 1 when the attempt was correct, else 0. */
  y: number;
}

export interface TopicDecay {
  /** Half-life of the distance to `base` (days); NO_DECAY_DAYS means no forgetting measured. */
  halfLifeDays: number;
  /** Accuracy level a pair forgets towards. */
  base: number;
  /** Transitions behind the fit. */
  n: number;
}

export interface DecayFit {
  global: TopicDecay;
  topics: Record<string, TopicDecay>;
}

/** "Never forgets" on the grid (10 years): keeps log h finite for the shrinkage. */
export const NO_DECAY_DAYS = 3650;
export const HALF_LIFE_GRID: readonly number[] = [
  1,
  2,
  3,
  5,
  7,
  10,
  14,
  21,
  30,
  45,
  60,
  90,
  120,
  180,
  365,
  730,
  NO_DECAY_DAYS,
];
/** Transitions at which a topic's own half-life and the global one weigh the same (log scale). */
export const HALF_LIFE_SHRINK = 200;
const BASE_SHRINK = 20;

export class DecayFitError extends Error {
  readonly code = "DECAY_FIT";
  constructor(message: string) {
    super(message);
    this.name = "DecayFitError";
  }
}

/** Share of the distance to the base left after `elapsedDays` (1 at 0, monotone non-increasing). */
export function decayFactor(halfLifeDays: number, elapsedDays: number): number {
  if (!(halfLifeDays > 0)) throw new DecayFitError(`half-life must be > 0 days (got ${halfLifeDays})`);
  return elapsedDays <= 0 ? 1 : 2 ** (-elapsedDays / halfLifeDays);
}

/** `value` moved towards `floor` by the decay over `elapsedDays`. */
export function decayTowards(
  value: number,
  floor: number,
  halfLifeDays: number,
  elapsedDays: number,
): number {
  return floor + (value - floor) * decayFactor(halfLifeDays, elapsedDays);
}

/** Squared error of the best beta at half-life h over transitions idx, with base b. */
function sseAt(ts: readonly DecayTransition[], idx: readonly number[], b: number, h: number): number {
  let zz = 0;
  let zr = 0;
  let rr = 0;
  for (const i of idx) {
    const t = ts[i]!;
    const z = (t.prevAcc - b) * 2 ** (-t.gapDays / h);
    const r = t.y - b;
    zz += z * z;
    zr += z * r;
    rr += r * r;
  }
  // beta = zr / zz, clipped to [0, 1] (more evidence cannot predict against itself, nor more than itself).
  const beta = zz > 0 ? Math.min(1, Math.max(0, zr / zz)) : 0;
  return rr - 2 * beta * zr + beta * beta * zz;
}

function bestHalfLife(ts: readonly DecayTransition[], idx: readonly number[], b: number): number {
  let best = NO_DECAY_DAYS;
  let bestSse = Number.POSITIVE_INFINITY;
  for (const h of HALF_LIFE_GRID) {
    const s = sseAt(ts, idx, b, h);
    // Ties (e.g. no signal) go to the longer half-life: forgetting must be shown by the data.
    if (s < bestSse - 1e-12) {
      bestSse = s;
      best = h;
    }
  }
  return best;
}

export function fitDecay(
  transitions: readonly DecayTransition[],
  opts: { minGapDays?: number; shrink?: number } = {},
): DecayFit {
  const minGap = opts.minGapDays ?? 1;
  const shrink = opts.shrink ?? HALF_LIFE_SHRINK;
  const all: number[] = [];
  const byTopic = new Map<string, number[]>();
  transitions.forEach((t, i) => {
    if (!(t.gapDays >= minGap) || !Number.isFinite(t.prevAcc)) return;
    all.push(i);
    const list = byTopic.get(t.topic);
    if (list) list.push(i);
    else byTopic.set(t.topic, [i]);
  });
  if (all.length === 0) return { global: { halfLifeDays: NO_DECAY_DAYS, base: 0.5, n: 0 }, topics: {} };
  let ySum = 0;
  for (const i of all) ySum += transitions[i]!.y;
  const gBase = ySum / all.length;
  const gH = bestHalfLife(transitions, all, gBase);
  const topics: Record<string, TopicDecay> = {};
  for (const [topic, idx] of byTopic) {
    let s = 0;
    for (const i of idx) s += transitions[i]!.y;
    const n = idx.length;
    const base = (s + BASE_SHRINK * gBase) / (n + BASE_SHRINK);
    const own = bestHalfLife(transitions, idx, base);
    const w = n / (n + shrink);
    topics[topic] = { halfLifeDays: Math.exp(w * Math.log(own) + (1 - w) * Math.log(gH)), base, n };
  }
  return { global: { halfLifeDays: gH, base: gBase, n: all.length }, topics };
}
