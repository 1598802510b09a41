import { mulberry32 } from "./prng.ts";
/**
 * Bayesian Knowledge Tracing (Corbett & Anderson 1995) as a two-state hidden Markov model per skill,
 * with the optional forgetting transition of pyBKT (Badrinath et al. 2021).
 *
 * States: L (learned) and U (unlearned). Transition L->U is `forget`, U->L is `learn`.
 * Emissions: P(correct | L) = 1 - slip, P(correct | U) = guess. Initial P(L) = prior.
 *
 * Fitting is Baum-Welch EM (Rabiner 1989, section III.C) with the scaled forward-backward recursion
 * (Rabiner eqs. 91-93): the forward variable is the filtered P(L_t | o_1..o_t), the scale factors are the
 * one-step predictive likelihoods, and their logs sum to the sequence log-likelihood.
 *
 * Pure math: no I/O, no clock, no environment.
 */

/** One skill's parameters. */
export interface BktParams {
  prior: number;
  learn: number;
  forget: number;
  guess: number;
  slip: number;
}

/** Bounds applied after each M-step (the Q-function is separable per parameter, so clipping is the constrained maximum). */
export interface BktBounds {
  /** Smallest value of any probability parameter; keeps every emission and transition away from 0 and 1. */
  min: number;
  maxGuess: number;
  maxSlip: number;
  maxLearn: number;
  maxForget: number;
}

export interface BktOptions {
  /** Fit the L->U (forgetting) transition; otherwise forget is fixed at 0 as in classic BKT. */
  forgets: boolean;
  /** Random restarts per skill; the one with the best log-likelihood is kept. */
  restarts: number;
  /** Seed of the restart initialisations; the fit is a pure function of (data, options). */
  seed: number;
  /** Maximum EM iterations per restart. */
  maxIter: number;
  /**
   * Stop when the absolute change of a skill's total log-likelihood between iterations is below this (nats).
   * Default 0.1: pyBKT's C++ build compares log-likelihoods truncated to integers against its 1e-3
   * (E_step.cpp returns PyLong_FromLong(total_loglike)), so it effectively stops at changes below ~1 nat.
   */
  tol: number;
  bounds: BktBounds;
}

/**
 * Default bounds: none beyond keeping every probability in [1e-6, 1 - 1e-6], as pyBKT fits, so accuracy is
 * comparable with its published figures. Set maxGuess/maxSlip (e.g. 0.3 or 0.5) to rule out degenerate fits
 * where a correct answer is evidence of NOT knowing the skill (guess > 1 - slip).
 */
export const DEFAULT_BKT_BOUNDS: Readonly<BktBounds> = Object.freeze({
  min: 1e-6,
  maxGuess: 1,
  maxSlip: 1,
  maxLearn: 1 - 1e-6,
  maxForget: 1 - 1e-6,
});

export const DEFAULT_BKT_OPTIONS: Readonly<BktOptions> = Object.freeze({
  forgets: false,
  restarts: 5,
  seed: 42,
  maxIter: 100,
  tol: 0.1,
  bounds: DEFAULT_BKT_BOUNDS,
});

export class BktError extends Error {
  readonly code = "BKT";
  constructor(message: string) {
    super(message);
    this.name = "BktError";
  }
}

// ---------------------------------------------------------------------------------------------
// Online filtering: O(1) per event.

/** P(correct on the next attempt) given P(L) (and P(U), when carried apart) before the attempt. */
export function bktPredict(params: BktParams, pL: number, pU = 1 - pL): number {
  return pL * (1 - params.slip) + pU * params.guess;
}

/**
 * One filtering step on a belief held as the pair (P(U), P(L)) in st[i], st[i + 1]: Bayes' rule on the
 * answer, then the learn/forget transition; writes the belief before the next attempt back in place.
 *
 * Both probabilities are carried because P(U) = 1 - P(L) rounds to exactly 0 after about 20 correct
 * answers in a row; from then on no number of wrong answers could lower P(L) again. Kept apart, P(U)
 * shrinks to 1e-30 and a few wrong answers bring it back, as the model says (pyBKT's forward pass also
 * keeps both). Nothing here subtracts two probabilities, so both stay accurate to the last bit.
 */
export function bktStepPair(
  learn: number,
  forget: number,
  guess: number,
  slip: number,
  st: Float64Array,
  i: number,
  correct: boolean,
): void {
  const k = st[i + 1]! * (correct ? 1 - slip : slip);
  const u = st[i]! * (correct ? guess : 1 - guess);
  const z = k + u;
  // An answer impossible under both states (only with guess/slip at 0 or 1) leaves the belief as it was.
  const postL = z > 0 ? k / z : st[i + 1]!;
  const postU = z > 0 ? u / z : st[i]!;
  st[i] = postL * forget + postU * (1 - learn);
  st[i + 1] = postL * (1 - forget) + postU * learn;
}

/**
 * P(L) before the next attempt, given P(L) before this attempt and its outcome: Bayes' rule on the
 * observation, then one transition step (learn from U, forget from L). For a long history keep the pair
 * (P(U), P(L)) and use bktStepPair: P(L) alone cannot hold P(U) below 1e-16.
 */
export function bktUpdate(params: BktParams, pL: number, correct: boolean | number): number {
  const st = new Float64Array([1 - pL, pL]);
  bktStepPair(
    params.learn,
    params.forget,
    params.guess,
    params.slip,
    st,
    0,
    correct === true || correct === 1,
  );
  return st[1]!;
}

// ---------------------------------------------------------------------------------------------
// Seeded PRNG.

/** FNV-1a hash of a string mixed with a seed and an integer, for per-(skill, restart) seeds. */
export function restartSeed(seed: number, skillName: string, restart: number): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < skillName.length; i++) {
    h ^= skillName.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  h ^= restart + 0x9e3779b9;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b) >>> 0;
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

const clamp = (x: number, lo: number, hi: number): number => Math.min(Math.max(x, lo), hi);

/**
 * A restart's starting point, drawn from pyBKT's ranges (random_model_uni): prior U(0,1),
 * learn U(0,0.4), guess U(0,0.4), slip U(0,0.3), forget 0 or U(0,1) with forgets; then clipped to bounds.
 */
export function initialParams(
  seed: number,
  skillName: string,
  restart: number,
  forgets: boolean,
  bounds: BktBounds,
): BktParams {
  const rnd = mulberry32(restartSeed(seed, skillName, restart));
  const prior = rnd();
  const learn = rnd() * 0.4;
  const guess = rnd() * 0.4;
  const slip = rnd() * 0.3;
  const forget = forgets ? rnd() : 0;
  return clipParams({ prior, learn, forget, guess, slip }, forgets, bounds);
}

export function clipParams(p: BktParams, forgets: boolean, b: BktBounds): BktParams {
  const top = 1 - b.min;
  return {
    prior: clamp(p.prior, b.min, top),
    learn: clamp(p.learn, b.min, Math.min(top, b.maxLearn)),
    forget: forgets ? clamp(p.forget, b.min, Math.min(top, b.maxForget)) : 0,
    guess: clamp(p.guess, b.min, Math.min(top, b.maxGuess)),
    slip: clamp(p.slip, b.min, Math.min(top, b.maxSlip)),
  };
}

// ---------------------------------------------------------------------------------------------
// Data layout for fitting.

/** The columns of a response log BKT needs (training/responses.ts's ResponseLog has this shape). */
export interface SkillResponses {
  n: number;
  /** Rows grouped by user, in each user's order. */
  user: Int32Array;
  skill: Int32Array;
  correct: Uint8Array;
  skillNames: readonly string[];
}

/**
 * Observations regrouped by skill, then by user: skill s owns sequences [skillSeq[s], skillSeq[s+1]),
 * sequence q owns obs[seqStart[q] .. seqStart[q+1]). Each sequence is one student's attempts at one
 * skill in order. Backed by plain (or shared) array buffers so workers can read it without copying.
 */
export interface SkillSequences {
  skillNames: readonly string[];
  obs: Uint8Array;
  seqStart: Int32Array;
  skillSeq: Int32Array;
}

export function groupBySkill(
  log: SkillResponses,
  alloc: (bytes: number) => ArrayBufferLike = (b) => new ArrayBuffer(b),
): SkillSequences {
  const nSkills = log.skillNames.length;
  const n = log.n;
  const count = new Int32Array(nSkills + 1);
  for (let i = 0; i < n; i++) count[log.skill[i]! + 1]!++;
  for (let s = 0; s < nSkills; s++) count[s + 1]! += count[s]!;
  // Counting sort by skill is stable, so user grouping and each user's order survive inside a skill.
  const rowSkillPos = new Int32Array(n);
  const fill = count.slice(0, nSkills);
  const obs = new Uint8Array(alloc(n));
  const rowUser = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const s = log.skill[i]!;
    const k = fill[s]!++;
    obs[k] = log.correct[i]!;
    rowUser[k] = log.user[i]!;
    rowSkillPos[i] = k;
  }
  // A sequence starts where the skill block starts or the user changes.
  let nSeq = 0;
  for (let s = 0; s < nSkills; s++) {
    for (let k = count[s]!; k < count[s + 1]!; k++)
      if (k === count[s] || rowUser[k] !== rowUser[k - 1]) nSeq++;
  }
  const seqStart = new Int32Array(alloc(4 * (nSeq + 1)));
  const skillSeq = new Int32Array(alloc(4 * (nSkills + 1)));
  let q = 0;
  for (let s = 0; s < nSkills; s++) {
    skillSeq[s] = q;
    for (let k = count[s]!; k < count[s + 1]!; k++) {
      if (k === count[s] || rowUser[k] !== rowUser[k - 1]) seqStart[q++] = k;
    }
  }
  skillSeq[nSkills] = q;
  seqStart[nSeq] = n;
  return { skillNames: log.skillNames, obs, seqStart, skillSeq };
}

/** Number of observations of skill s. */
export function skillRows(data: SkillSequences, s: number): number {
  return data.seqStart[data.skillSeq[s + 1]!]! - data.seqStart[data.skillSeq[s]!]!;
}

// ---------------------------------------------------------------------------------------------
// EM.

/** Scratch buffers reused across EM runs (one set per thread): no allocation inside the EM loop. */
export class EmScratch {
  /** Filtered P(L_t | o_<=t) and P(U_t | o_<=t), both kept: 1 - P(L) rounds to 0 after long runs of one outcome. */
  filteredL: Float64Array;
  filteredU: Float64Array;
  constructor(capacity = 1024) {
    this.filteredL = new Float64Array(capacity);
    this.filteredU = new Float64Array(capacity);
  }
  ensure(n: number): void {
    if (this.filteredL.length < n) {
      const cap = Math.max(n, this.filteredL.length * 2);
      this.filteredL = new Float64Array(cap);
      this.filteredU = new Float64Array(cap);
    }
  }
}

/** Layout of the E-step's expected sufficient statistics (and the log-likelihood of the parameters used). */
const Acc = {
  LogLik: 0,
  Prior: 1, // sum over sequences of P(L at the first step | o)
  XiUL: 2, // expected U->L transitions
  GammaUTrans: 3, // expected time in U at steps that have a successor
  XiLU: 4,
  GammaLTrans: 5,
  GammaL: 6, // expected time in L
  GammaLWrong: 7, // ... with an incorrect answer
  GammaU: 8,
  GammaURight: 9,
  Size: 10,
} as const;

// Unnormalised recursions are rescaled by 2^RESCALE_BITS when their sum falls below 2^-RESCALE_BITS.
const RESCALE_BITS = 600;
const RESCALE_UP = 2 ** RESCALE_BITS;
const RESCALE_DOWN = 2 ** -RESCALE_BITS;
const RESCALE_LOG = RESCALE_BITS * Math.LN2;

/**
 * One E-step over sequences [q0, q1) of `data` with parameters p = [prior, learn, forget, guess, slip]:
 * forward-backward; fills `acc` (length 10) with expected counts and the log-likelihood.
 *
 * Numerics: the textbook scaled recursion (Rabiner eqs. 91-93) puts a division in the step-to-step
 * dependency chain, which makes it latency-bound. Here the forward and backward variables are carried
 * unnormalised (they only shrink: both are probabilities of observation sets) and multiplied by 2^600
 * on the rare step where they fall below 2^-600; the normalised quantities (filtered P(state), gamma, xi)
 * are divisions off the chain. Both states are carried separately rather than as P(U) = 1 - P(L), which
 * would round to 0 after a long run of one outcome.
 */
export function eStep(
  data: SkillSequences,
  q0: number,
  q1: number,
  p: Float64Array,
  scratch: EmScratch,
  acc: Float64Array,
): void {
  const obs = data.obs;
  const seqStart = data.seqStart;
  const base = seqStart[q0]!;
  scratch.ensure(seqStart[q1]! - base);
  const FL = scratch.filteredL;
  const FU = scratch.filteredU;
  const prior = p[0]!;
  const learn = p[1]!;
  const forget = p[2]!;
  const guess = p[3]!;
  const slip = p[4]!;
  const stay = 1 - forget;
  const unlearn = 1 - learn;
  // Emission probabilities P(o | state) = e0 + o * d (branch-free: answers are 0/1 and hard to predict).
  const eL0 = slip;
  const dL = 1 - 2 * slip;
  const eU0 = 1 - guess;
  const dU = 2 * guess - 1;
  let logLik = 0;
  let aPrior = 0;
  let aXiUL = 0;
  let aGUT = 0;
  let aXiLU = 0;
  let aGLT = 0;
  let aGL = 0;
  let aGLW = 0;
  let aGU = 0;
  let aGUR = 0;
  for (let q = q0; q < q1; q++) {
    const a = seqStart[q]! - base;
    const b = seqStart[q + 1]! - base;
    // Forward: (pL, pU) = P(o_<t, state_t) up to the rescaling; filtered P(state_t | o_<=t) is stored.
    let pL = prior;
    let pU = 1 - prior;
    let nL = 0;
    let nU = 0;
    let rescales = 0;
    for (let i = a; i < b; i++) {
      const o = obs[base + i]!;
      nL = pL * (eL0 + o * dL);
      nU = pU * (eU0 + o * dU);
      const ic = 1 / (nL + nU);
      FL[i] = nL * ic;
      FU[i] = nU * ic;
      pL = nL * stay + nU * learn;
      pU = nL * forget + nU * unlearn;
      if (pL + pU < RESCALE_DOWN) {
        pL *= RESCALE_UP;
        pU *= RESCALE_UP;
        nL *= RESCALE_UP;
        nU *= RESCALE_UP;
        rescales++;
      }
    }
    logLik += Math.log(nL + nU) - rescales * RESCALE_LOG;
    // Backward: (bL, bU) = P(o_>t | state_t) up to rescaling; gamma and xi are normalised per step by
    // z_t = sum_i f_t(i) beta_t(i) = sum_ij f_t(i) A_ij e_j(o_t+1) beta_t+1(j).
    let gL = FL[b - 1]!;
    let gU = FU[b - 1]!;
    let o1 = obs[base + b - 1]!;
    aGL += gL;
    aGU += gU;
    aGUR += o1 * gU;
    aGLW += (1 - o1) * gL;
    let bL = 1;
    let bU = 1;
    for (let i = b - 2; i >= a; i--) {
      const wL = (eL0 + o1 * dL) * bL;
      const wU = (eU0 + o1 * dU) * bU;
      bL = stay * wL + forget * wU;
      bU = learn * wL + unlearn * wU;
      const fL = FL[i]!;
      const fU = FU[i]!;
      const z = fL * bL + fU * bU;
      const o = obs[base + i]!;
      if (z > 0) {
        const iz = 1 / z;
        aXiLU += fL * forget * wU * iz;
        aXiUL += fU * learn * wL * iz;
        gL = fL * bL * iz;
        gU = fU * bU * iz;
      } else {
        // Both paths underflowed (hundreds of answers that each state explains badly); the filtered
        // distribution is the best estimate left for this step, and beta restarts uninformative.
        gL = fL;
        gU = fU;
        bL = 1;
        bU = 1;
      }
      if (bL + bU < RESCALE_DOWN) {
        bL *= RESCALE_UP;
        bU *= RESCALE_UP;
      }
      aGLT += gL;
      aGUT += gU;
      aGL += gL;
      aGU += gU;
      aGUR += o * gU;
      aGLW += (1 - o) * gL;
      o1 = o;
    }
    aPrior += gL;
  }
  acc[Acc.LogLik] = logLik;
  acc[Acc.Prior] = aPrior;
  acc[Acc.XiUL] = aXiUL;
  acc[Acc.GammaUTrans] = aGUT;
  acc[Acc.XiLU] = aXiLU;
  acc[Acc.GammaLTrans] = aGLT;
  acc[Acc.GammaL] = aGL;
  acc[Acc.GammaLWrong] = aGLW;
  acc[Acc.GammaU] = aGU;
  acc[Acc.GammaURight] = aGUR;
}

/** M-step: maximise the expected complete-data log-likelihood given `acc`, then clip to bounds; writes into p. */
export function mStep(
  acc: Float64Array,
  nSeq: number,
  p: Float64Array,
  forgets: boolean,
  b: BktBounds,
): void {
  const top = 1 - b.min;
  const ratio = (num: number, den: number, old: number): number => (den > 0 ? num / den : old);
  p[0] = clamp(ratio(acc[Acc.Prior]!, nSeq, p[0]!), b.min, top);
  p[1] = clamp(ratio(acc[Acc.XiUL]!, acc[Acc.GammaUTrans]!, p[1]!), b.min, Math.min(top, b.maxLearn));
  p[2] = forgets
    ? clamp(ratio(acc[Acc.XiLU]!, acc[Acc.GammaLTrans]!, p[2]!), b.min, Math.min(top, b.maxForget))
    : 0;
  p[3] = clamp(ratio(acc[Acc.GammaURight]!, acc[Acc.GammaU]!, p[3]!), b.min, Math.min(top, b.maxGuess));
  p[4] = clamp(ratio(acc[Acc.GammaLWrong]!, acc[Acc.GammaL]!, p[4]!), b.min, Math.min(top, b.maxSlip));
}

export interface EmResult {
  params: BktParams;
  logLikelihood: number;
  iterations: number;
}

/**
 * EM from `start` on skill s. Stops after maxIter E-steps or when the log-likelihood changes by less than
 * tol; the returned parameters are the ones whose log-likelihood is returned (the last E-step's).
 * `trace`, when given, receives the log-likelihood of every iteration.
 */
export function emFitSkill(
  data: SkillSequences,
  s: number,
  start: BktParams,
  opts: Pick<BktOptions, "forgets" | "maxIter" | "tol" | "bounds">,
  scratch: EmScratch,
  trace?: number[],
): EmResult {
  const q0 = data.skillSeq[s]!;
  const q1 = data.skillSeq[s + 1]!;
  const p = new Float64Array([start.prior, start.learn, start.forget, start.guess, start.slip]);
  const acc = new Float64Array(Acc.Size);
  let prev = Number.NEGATIVE_INFINITY;
  let it = 0;
  let ll = Number.NEGATIVE_INFINITY;
  while (it < opts.maxIter) {
    eStep(data, q0, q1, p, scratch, acc);
    ll = acc[Acc.LogLik]!;
    it++;
    trace?.push(ll);
    if (Math.abs(ll - prev) < opts.tol || it === opts.maxIter) break;
    prev = ll;
    mStep(acc, q1 - q0, p, opts.forgets, opts.bounds);
  }
  return {
    params: { prior: p[0]!, learn: p[1]!, forget: p[2]!, guess: p[3]!, slip: p[4]! },
    logLikelihood: ll,
    iterations: it,
  };
}

/** Log-likelihood of skill s's sequences under `params`. */
export function skillLogLikelihood(data: SkillSequences, s: number, params: BktParams): number {
  const acc = new Float64Array(Acc.Size);
  const p = new Float64Array([params.prior, params.learn, params.forget, params.guess, params.slip]);
  eStep(data, data.skillSeq[s]!, data.skillSeq[s + 1]!, p, new EmScratch(skillRows(data, s)), acc);
  return acc[Acc.LogLik]!;
}

// ---------------------------------------------------------------------------------------------
// Estimator.

export interface BktSkillFit extends BktParams {
  logLikelihood: number;
  n: number;
  iterations: number;
  /** Which restart won. */
  restart: number;
}

/** Serialized form (model.json). */
export interface BktModelJson {
  kind: "bkt";
  version: 1;
  settings: {
    forgets: boolean;
    restarts: number;
    seed: number;
    maxIter: number;
    tol: number;
    bounds: BktBounds;
  };
  /** Sum of the per-skill log-likelihoods of the kept fits. */
  logLikelihood: number;
  nRows: number;
  fitSeconds?: number;
  /** Parameters used for skills not seen in training: the unweighted mean of the fitted skills' parameters. */
  fallback: BktParams;
  skills: Record<string, BktSkillFit>;
}

/** Which restart a skill keeps: best log-likelihood, ties to the lowest restart index (order-independent). */
export function betterFit(
  a: { logLikelihood: number; restart: number },
  b: { logLikelihood: number; restart: number },
): boolean {
  if (Number.isNaN(b.logLikelihood)) return !Number.isNaN(a.logLikelihood);
  return a.logLikelihood > b.logLikelihood || (a.logLikelihood === b.logLikelihood && a.restart < b.restart);
}

export function meanParams(fits: readonly BktParams[]): BktParams {
  if (fits.length === 0) return { prior: 0.5, learn: 0.1, forget: 0, guess: 0.2, slip: 0.1 };
  const m = { prior: 0, learn: 0, forget: 0, guess: 0, slip: 0 };
  for (const f of fits) {
    m.prior += f.prior;
    m.learn += f.learn;
    m.forget += f.forget;
    m.guess += f.guess;
    m.slip += f.slip;
  }
  const k = fits.length;
  return {
    prior: m.prior / k,
    learn: m.learn / k,
    forget: m.forget / k,
    guess: m.guess / k,
    slip: m.slip / k,
  };
}

/**
 * The BKT estimator: hyper-parameters in the constructor, `fit` learns one parameter set per skill,
 * `predict` gives online next-response probabilities, `toJSON`/`fromJSON` round-trip model.json.
 */
export class BKT {
  readonly options: BktOptions;
  skills = new Map<string, BktSkillFit>();
  fallback: BktParams = meanParams([]);
  nRows = 0;
  fitSeconds: number | undefined = undefined;

  constructor(options: Partial<BktOptions> = {}) {
    this.options = {
      ...DEFAULT_BKT_OPTIONS,
      ...options,
      bounds: { ...DEFAULT_BKT_BOUNDS, ...(options.bounds ?? {}) },
    };
    const o = this.options;
    if (!Number.isInteger(o.restarts) || o.restarts < 1)
      throw new BktError(`restarts must be an integer >= 1 (got ${o.restarts})`);
    if (!Number.isInteger(o.maxIter) || o.maxIter < 1)
      throw new BktError(`maxIter must be an integer >= 1 (got ${o.maxIter})`);
    if (!(o.tol >= 0)) throw new BktError(`tol must be >= 0 (got ${o.tol})`);
    const b = o.bounds;
    if (!(b.min > 0 && b.min < 0.5)) throw new BktError(`bounds.min must be in (0, 0.5) (got ${b.min})`);
    for (const k of ["maxGuess", "maxSlip", "maxLearn", "maxForget"] as const) {
      if (!(b[k] > b.min && b[k] <= 1))
        throw new BktError(`bounds.${k} must be in (bounds.min, 1] (got ${b[k]})`);
    }
  }

  /** Single-threaded fit of every skill (training/bktFit.ts runs the same jobs on worker threads). */
  fit(log: SkillResponses | SkillSequences): this {
    const data = "obs" in log ? log : groupBySkill(log);
    const scratch = new EmScratch();
    const fits: (BktSkillFit | undefined)[] = [];
    for (let s = 0; s < data.skillNames.length; s++) {
      for (let r = 0; r < this.options.restarts; r++) {
        const f = fitRestart(data, s, r, this.options, scratch);
        const cur = fits[s];
        if (cur === undefined || betterFit(f, cur)) fits[s] = f;
      }
    }
    this.setFits(data, fits);
    return this;
  }

  /** Installs per-skill fits (index = skill id in `data`) and derives the fallback. */
  setFits(data: SkillSequences, fits: readonly (BktSkillFit | undefined)[]): void {
    this.skills = new Map();
    let nRows = 0;
    for (let s = 0; s < data.skillNames.length; s++) {
      const f = fits[s];
      if (f === undefined || f.n === 0) continue;
      this.skills.set(data.skillNames[s]!, f);
      nRows += f.n;
    }
    this.nRows = nRows;
    this.fallback = meanParams([...this.skills.values()]);
  }

  /** Parameters of a skill, or the fallback for a skill unseen in training. */
  paramsFor(skillName: string): BktParams {
    return this.skills.get(skillName) ?? this.fallback;
  }

  get logLikelihood(): number {
    let s = 0;
    for (const f of this.skills.values()) s += f.logLikelihood;
    return s;
  }

  /**
   * Online next-response predictions: row k's P(correct) uses only the same student's earlier rows of
   * the same skill, starting from the skill's prior (as pyBKT's predict_onestep does per sequence).
   */
  predict(log: SkillResponses): Float64Array {
    const nSkills = log.skillNames.length;
    const table = new Float64Array(nSkills * 5);
    for (let s = 0; s < nSkills; s++) {
      const p = this.paramsFor(log.skillNames[s]!);
      table.set([p.prior, p.learn, p.forget, p.guess, p.slip], s * 5);
    }
    // Rows are grouped by user, so one belief (P(U), P(L)) per skill suffices; `owner` marks whose it is.
    const belief = new Float64Array(2 * nSkills);
    const owner = new Int32Array(nSkills).fill(-1);
    const out = new Float64Array(log.n);
    for (let i = 0; i < log.n; i++) {
      const s = log.skill[i]!;
      const u = log.user[i]!;
      const o = s * 5;
      if (owner[s] !== u) {
        owner[s] = u;
        belief[2 * s] = 1 - table[o]!;
        belief[2 * s + 1] = table[o]!;
      }
      const guess = table[o + 3]!;
      const slip = table[o + 4]!;
      out[i] = belief[2 * s + 1]! * (1 - slip) + belief[2 * s]! * guess;
      bktStepPair(table[o + 1]!, table[o + 2]!, guess, slip, belief, 2 * s, log.correct[i] === 1);
    }
    return out;
  }

  toJSON(): BktModelJson {
    const skills: Record<string, BktSkillFit> = {};
    for (const [name, f] of this.skills) skills[name] = { ...f };
    const o = this.options;
    const json: BktModelJson = {
      kind: "bkt",
      version: 1,
      settings: {
        forgets: o.forgets,
        restarts: o.restarts,
        seed: o.seed,
        maxIter: o.maxIter,
        tol: o.tol,
        bounds: { ...o.bounds },
      },
      logLikelihood: this.logLikelihood,
      nRows: this.nRows,
      fallback: { ...this.fallback },
      skills,
    };
    if (this.fitSeconds !== undefined) json.fitSeconds = this.fitSeconds;
    return json;
  }

  static fromJSON(json: unknown): BKT {
    const j = json as Partial<BktModelJson> | null;
    if (j === null || typeof j !== "object" || j.kind !== "bkt")
      throw new BktError(`model.json: expected "kind": "bkt" (got ${JSON.stringify(j?.kind)})`);
    if (j.settings === undefined || j.skills === undefined || typeof j.skills !== "object")
      throw new BktError(`model.json: a BKT model needs "settings" and "skills" objects`);
    const m = new BKT({ ...j.settings });
    const num = (v: unknown, where: string): number => {
      if (typeof v !== "number" || !(v >= 0 && v <= 1))
        throw new BktError(`model.json: ${where} must be a probability in [0, 1] (got ${JSON.stringify(v)})`);
      return v;
    };
    let nRows = 0;
    for (const [name, f] of Object.entries(j.skills)) {
      for (const k of ["prior", "learn", "forget", "guess", "slip"] as const)
        num(f[k], `skills["${name}"].${k}`);
      m.skills.set(name, { ...f });
      nRows += f.n ?? 0;
    }
    m.nRows = j.nRows ?? nRows;
    m.fallback =
      j.fallback !== undefined
        ? {
            prior: num(j.fallback.prior, "fallback.prior"),
            learn: num(j.fallback.learn, "fallback.learn"),
            forget: num(j.fallback.forget, "fallback.forget"),
            guess: num(j.fallback.guess, "fallback.guess"),
            slip: num(j.fallback.slip, "fallback.slip"),
          }
        : meanParams([...m.skills.values()]);
    if (j.fitSeconds !== undefined) m.fitSeconds = j.fitSeconds;
    return m;
  }
}

/** One (skill, restart) fit job: the unit that workers run. */
export function fitRestart(
  data: SkillSequences,
  s: number,
  restart: number,
  opts: BktOptions,
  scratch: EmScratch,
): BktSkillFit {
  const start = initialParams(opts.seed, data.skillNames[s]!, restart, opts.forgets, opts.bounds);
  const r = emFitSkill(data, s, start, opts, scratch);
  return {
    ...r.params,
    logLikelihood: r.logLikelihood,
    n: skillRows(data, s),
    iterations: r.iterations,
    restart,
  };
}
