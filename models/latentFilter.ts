import {
  AS_OF_MIN_GAP_DAYS,
  type AsOfHalfLifeChoice,
  type AsOfLabelChoice,
  fitIdleHalfLife,
  type IdleAnswer,
} from "./asOfHalfLife.ts";
import { type ConsolidationChoice, fitConsolidation } from "./consolidation.ts";
import { type CentreShiftBand, centreShiftAt, emissionLogit } from "./latentCentre.ts";
import { align16, LATENT_WIDE_KERNELS, type LatentWideKernel, LatentWideWasm } from "./latentWideWasm.ts";
import { sigmoid } from "./logistic.ts";
import { nelderMead } from "./nelderMead.ts";
import { quasiNewton } from "./quasiNewton.ts";
import { decayTowards } from "./servedDecay.ts";
import type { StudentIntervalCheck } from "./studentInterval.ts";
import type { StudentScaleCheck } from "./studentScale.ts";

/**
 * A continuous-state knowledge-tracing filter (issue 16, round 4): the knowledge K in [0, 1] of one
 * (student, topic) is a hidden state on a grid of `bins` cells (an HMM with a discretised state, filtered
 * exactly by the forward algorithm). It is Bayesian Knowledge Tracing (Corbett & Anderson 1995) with the
 * binary state replaced by a grid, learning from every event kind (the "learning from non-assessment events"
 * extensions of BKT), and forgetting in time:
 *  - prior: a Beta(mean m_t, concentration c) discretised on the grid; m_t per topic, shrunk to the global m;
 *  - between events (dt days): K above the floor f decays towards it, K' = f + (K - f) 2^(-dt / halfLife);
 *    or (round 9, `durableShare` set) the gain above the pair's own prior mean b decays, keeping a durable
 *    share phi of it: K' = b + (K - b) (phi + (1 - phi) 2^(-dt / halfLife)) (exponential forgetting with an
 *    asymptote, one of the retention functions surveyed by Rubin & Wenzel 1996);
 *  - an event of kind k: first its outcome updates the state (emission), then it teaches:
 *    K' = K + r_k (1 - K) (learning rate r_k per kind: quiz, practice, video, assignment, chatbot), then a
 *    small process noise moves a share `noise` of each cell's mass to each neighbour;
 *  - emissions: P(correct | K) = guess + (1 - guess - slip) K for a quiz answer and for each practice answer
 *    (binomial in attempts / correct); an assignment score s in (0, 1) is Beta-distributed with mean
 *    P(correct | K) and concentration `assignmentConcentration`. Videos and chatbot help have no emission.
 * All parameters are fitted by maximising the likelihood of the observed outcomes (the product of the
 * one-step predictive probabilities of the forward pass) with Nelder-Mead (models/nelderMead.ts) on
 * unconstrained transforms, then each topic's prior mean by a 1-D penalised maximisation (empirical Bayes).
 *
 * The posterior after the last event, decayed to the scoring time, gives the mastery (posterior mean), its
 * 80% interval (10th / 90th percentile), and P(correct on the next item) (the emission of the mean).
 *
 * Pure math: no I/O, no clock.
 */

export const LATENT_KINDS = ["quiz", "practice", "video", "assignment", "chatbot"] as const;
export type LatentKind = (typeof LATENT_KINDS)[number];
export const KIND_QUIZ = 0;
export const KIND_PRACTICE = 1;
export const KIND_VIDEO = 2;
export const KIND_ASSIGNMENT = 3;
export const KIND_CHATBOT = 4;

/** One event of a (student, topic) sequence, in time order. */
export interface LatentEvent {
  /** Time in days (any origin; only differences matter). */
  t: number;
  /** Index into LATENT_KINDS. */
  kind: number;
  /** Quiz: 1 answer; practice: attempts; others 0. */
  n: number;
  /** Quiz / practice: correct answers (<= n); assignment: the score in [0, 1]; others 0. */
  k: number;
}

export interface LatentParams {
  priorMean: number;
  priorConcentration: number;
  guess: number;
  slip: number;
  /** Learning rate per kind (LATENT_KINDS order). */
  learn: number[];
  halfLifeDays: number;
  /** The global level forgetting decays towards (unused when `durableShare` is set). */
  floor: number;
  /**
   * Round 9: forgetting decays only the gain above the pair's own prior mean (the state's `base`: what the
   * student brought to the topic, student offset included), and keeps this share of it for good (absent =
   * the global `floor` form of rounds 4-8, the default). The hypothesis behind it: a global floor sits below
   * most pairs' long-run knowledge, so a finite half-life there would erase what well-practised pairs keep,
   * and the likelihood chose no forgetting (round 8's recency bias). On the generated logs this form's
   * likelihood is no better and the bias stays (docs/benchmarks.md Validity round 9): opt-in.
   */
  durableShare?: number;
  /**
   * Round 15: the share of forgetting that acts on a pair as a whole (absent or 0 = none, rounds 4-14). Over dt
   * days a pair's gain above the floor decays to the share d = 2^(-dt / halfLife) on average; the deterministic
   * form moves every cell x to f + (x - f) d, which contracts the posterior's spread by d, so an idle pair's
   * interval narrowed with time. With spread s, a share s of each cell's mass forgets all-or-none instead (the
   * half-life read as a memoryless survival time: the gain is kept whole with probability d, lost to the floor
   * with 1 - d) and 1 - s moves as before. The mean is the same for any s; the variance grows by
   * s d (1 - d) E[(K - f)^2], so what an idle pair kept becomes more uncertain with time.
   * Chosen label-free by the held-out dispersion check (LatentFilter.chooseForgetSpread).
   */
  forgetSpread?: number;
  /**
   * Round 16: how an estimate is carried from the pair's last event to the scoring time (as-of). Absent: with
   * the between-event step above (rounds 4-15, spread included). "decay": the deterministic decay of the
   * estimate at the last event: its mean, interval ends and P(correct) each move towards where the score
   * decays (the floor, or the durable-share form's own asymptote) by 2^(-t / halfLife) - the same step
   * GET /mastery applies to a stored row (serving/masteryView.ts decayServedRow), so a row stored at the last
   * event and decayed at request time equals the scoring at that time. Set by the fit only with a spread
   * (LatentFitOptions.asOfForgetting): the spread's variance, which grows with idle time, then shapes the
   * posterior between events (where answers weigh kept against lost) but not the idle pair's interval.
   */
  asOfForgetting?: "decay";
  /**
   * Round 28 (opt-in, LatentFitOptions.asOfHalfLife "idle-gaps"): the half-life of the as-of decay above, fitted
   * on the answers that follow idle gaps in the fit sample (models/asOfHalfLife.ts); absent = `halfLifeDays`.
   * Only the as-of step (and GET /mastery's request-time decay, which stores it) uses it; the filter between
   * events keeps `halfLifeDays`.
   */
  asOfHalfLifeDays?: number;
  /**
   * Round 29 (opt-in, LatentFitOptions.consolidation "fit"): each event on a pair consolidates this share c of
   * what is still forgettable of its gain above the floor, so after n events the share phi_n = 1 - (1 - c)^n of
   * the gain is kept for good and forgetting over dt days moves a cell x to f + (x - f) (phi_n + (1 - phi_n)
   * 2^(-dt / halfLife)): a well-practised pair decays towards a higher level than a barely-practised one (the
   * consolidation of memory with practice; exponential forgetting towards an asymptote, Rubin & Wenzel 1996).
   * Absent or 0 = rounds 4-28 (every pair towards the global floor). The floor form only (not `durableShare`).
   */
  consolidation?: number;
  noise: number;
  assignmentConcentration: number;
  /**
   * Logistic emission (round 6; absent = the linear one): P(correct | K) = guess + (1 - guess - slip)
   * sigmoid(slope (K - threshold_t)), threshold_t the topic's (LatentModelJson.topicThreshold) or this global
   * one. K is then knowledge on an item-threshold scale (ability-like) rather than accuracy.
   */
  slope?: number;
  threshold?: number;
}

export interface LatentModelJson {
  version: 1;
  bins: number;
  params: LatentParams;
  /** Fitted prior mean per topic (topics absent use params.priorMean). */
  topicPriorMean: Record<string, number>;
  /** Mean log-likelihood per graded observation on the fit sample, and its size. */
  fit: {
    logLikPerObs: number;
    observations: number;
    sequences: number;
    evaluations: number;
    /**
     * Why the optimiser stopped (round 10; absent in older models): "stall" = converged by relative change
     * (LATENT_FIT_BUDGET), "tolerance" = simplex tolerances met, "budget" = the evaluation cap.
     */
    stop?: "tolerance" | "stall" | "budget";
    /**
     * Round 30 (`globalFit: "converged"`): the quasi-Newton polish of the global parameters after the
     * Nelder-Mead search (LatentGlobalPolish); absent when the fit stopped at the Nelder-Mead's budget.
     */
    globalPolish?: LatentGlobalPolish;
    /**
     * The emission choice by held-out likelihood (`emission: "auto"`, LatentFilter.chooseEmission): the
     * held-out log-likelihood per observation of each form and the cut; absent when the form was given.
     */
    emissionChoice?: EmissionChoice;
    /**
     * The forgetting choice by held-out likelihood (`forgetting: "auto"`, LatentFilter.chooseForgetting, round
     * 12); absent when the form was given.
     */
    forgettingChoice?: ForgettingChoice;
    /**
     * Small-data guard (LatentFilter.fit, `minObservations`): present when the sample held fewer graded
     * observations than the minimum, so the global parameters were shrunk toward the prior centre (the
     * documented defaults) with `priorSd` per unconstrained coordinate.
     */
    smallData?: { minObservations: number; priorSd: number };
    /** Plausibility checks the fitted global parameters failed (LATENT_PLAUSIBLE); absent = none. */
    implausible?: string[];
    /**
     * Why the fitted global parameters were NOT kept: a small sample whose shrunk fit still failed a
     * plausibility check keeps the prior centre instead (its topic priors and student sd are still fitted).
     */
    fallback?: string;
    /**
     * The held-out dispersion check behind `intervalScale` (round 11): `ratio` = the method-of-moments
     * variance factor on the posterior's part (unclamped; 1 when no sequence qualified), the sequences it
     * used, and the mode that turned it into the scale (`intervalFactor`). Absent in older models.
     */
    dispersion?: { ratio: number; sequences: number; mode: LatentIntervalMode };
    /**
     * The threshold shrinkage chosen by held-out likelihood (`topicThresholdSd: "auto"`,
     * LatentFilter.chooseThresholdSd, round 13); absent when the sd was given or the emission is linear.
     */
    thresholdChoice?: ThresholdChoice;
    /**
     * The student effect's choice (round 14, `studentLearning: "auto"`): the held-out (leave one topic out)
     * log-likelihood per graded observation of the best prior sd at each learning loading; absent otherwise.
     */
    studentChoice?: StudentEffectChoice;
    /**
     * The forgetting's spread chosen by the held-out dispersion check (round 15, `forgetSpread: "auto"`,
     * LatentFilter.chooseForgetSpread); absent when the spread was given.
     */
    spreadChoice?: ForgetSpreadChoice;
    /** Round 28: the as-of half-life's fit on answers after idle gaps (`asOfHalfLife: "idle-gaps"`); absent otherwise. */
    asOfHalfLifeChoice?: AsOfHalfLifeChoice;
    /**
     * Round 32: the as-of half-life chosen on the served training's proxy labels (serving/servedTraining.ts
     * `asOfHalfLife: "labels"`, models/asOfHalfLife.ts chooseAsOfHalfLifeByLabels); absent otherwise.
     */
    asOfHalfLifeLabels?: AsOfLabelChoice;
    /** Round 29: the consolidation's fit (`consolidation: "fit"`); absent otherwise. */
    consolidationChoice?: ConsolidationChoice;
    /** Round 27: "joint" when the topic effects were fitted by the joint search (`topicFit`); absent = alternating. */
    topicFit?: "joint";
    /** The student part's moments check (round 19, models/studentScale.ts); absent when it was not run. */
    studentScaleCheck?: StudentScaleCheck;
    /**
     * Round 21 (opt-in): the held-out dispersion check run again on the model with its student part (after the
     * rein-in), which set `intervalScale` (models/studentInterval.ts); absent when it was not run.
     */
    studentIntervalCheck?: StudentIntervalCheck;
  };
  /**
   * Posterior spread factor of the 80% interval (absent = 1): the square root of the variance factor that
   * the held-out halves of the fit sample ask for (LatentFilter.dispersion, `intervalFactor`): >= 1 under
   * the "widen-only" interval mode (rounds 5-10), in [sqrt(LATENT_MIN_INFLATION), ...) under "two-sided".
   */
  intervalScale?: number;
  /**
   * Round 14, interval mode "by-evidence": the interval's spread factor by the pair's graded observations, each
   * band's from the held-out check after that many answers (`dispersionByEvidence`): sqrt(max(LATENT_MIN_INFLATION,
   * ratio)); a band with fewer than LATENT_BAND_MIN_SEQUENCES sequences keeps `intervalScale`. Sorted by `from`;
   * absent = `intervalScale` for every pair.
   */
  intervalScaleByEvidence?: { from: number; scale: number; ratio: number; sequences: number }[];
  /**
   * Round 17 (opt-in): the centre's shift by the pair's graded observations, fitted on the proxy labels by
   * `mastery train served --latent-centre by-evidence` (models/latentCentre.ts fitCentreShift). Added on the K
   * scale to the posterior mean and both interval ends at the pair's last event (P(correct) moves with it
   * through the emission), before the as-of decay. Absent = no shift (rounds 4-16).
   */
  centreShiftByEvidence?: CentreShiftBand[];
  /** Fitted emission threshold per topic (logistic emission only; topics absent use params.threshold). */
  topicThreshold?: Record<string, number>;
  /**
   * Prior sd (logit units) of a student's offset of the prior mean shared by all of their topics (a student
   * random effect, empirical Bayes: LatentFilter.studentOffset); absent or 0 = no student effect.
   */
  studentPriorSd?: number;
  /**
   * Round 14: how strongly the student's offset o also moves their learning: every learning rate's logit is
   * shifted by studentLearnLoading x o (LatentKernel `learnShift`), so one student factor sets both what the
   * student brings to a topic and how fast they learn it (a one-factor form of individualised BKT's per-student
   * prior and learning rate, Yudelson, Koedinger & Gordon 2013). Chosen with the prior sd by leave-one-topic-out
   * likelihood (LatentFilter.chooseStudentSd, `studentLearning: "auto"`); absent or 0 = the level only.
   */
  studentLearnLoading?: number;
  /**
   * Round 19 (opt-in, `mastery train served --latent-student-scale moments`): every student's offset is
   * multiplied by this factor in (0, 1] (0: the student part off) wherever it is computed (offsetFromSummary),
   * set by the label-free moments check of models/studentScale.ts (recorded in fit.studentScaleCheck). Absent = 1.
   */
  studentOffsetScale?: number;
  /**
   * fold27: how a student's interval carries the offset's uncertainty (models/latentStudent.ts
   * scoreStudentLatent): "basis" (absent: STUDENT_WIDENING_DEFAULT) takes the offset's sd and the widening from
   * the basis folds the score already ran (models/studentOffsetSd.ts studentOffsetSdFromBasis, widenFromBasis);
   * "refold" (rounds 7 to fold26) folds each pair again at off-grid offsets (the offset's sd at offset -+ 0.25,
   * the widening at offset -+ sd). The scores are the same.
   */
  studentWidening?: StudentWidening;
}

/** fold27: the two ways of carrying the offset's uncertainty into an interval (LatentModelJson.studentWidening). */
export type StudentWidening = "refold" | "basis";
export const STUDENT_WIDENINGS: readonly StudentWidening[] = ["refold", "basis"];
/**
 * The default of LatentModelJson.studentWidening: "basis" since fold27 (its pre-registered rule passed on all six
 * validity settings: docs/benchmarks.md "The served step's folds, round 2").
 */
export const STUDENT_WIDENING_DEFAULT: StudentWidening = "basis";

export class LatentFilterError extends Error {
  readonly code = "LATENT_FILTER";
  constructor(message: string) {
    super(message);
    this.name = "LatentFilterError";
  }
}

/** Lanczos approximation of ln Gamma(x), x > 0 (Numerical Recipes' g = 7, n = 9 coefficients). */
function lnGamma(x: number): number {
  if (x < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * x)) - lnGamma(1 - x);
  const c = [
    0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059,
    12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
  ];
  const z = x - 1;
  let a = c[0]!;
  const t = z + 7.5;
  for (let i = 1; i < 9; i++) a += c[i]! / (z + i);
  return 0.5 * Math.log(2 * Math.PI) + (z + 0.5) * Math.log(t) - t + Math.log(a);
}

const ASSIGN_EPS = 0.01;
/** Emission rows kept per emission table and kind (LatentKernel.keepLik): 4096 x 40 cells ~ 1.3 MB at most. */
const LIK_CACHE_SIZE = 4096;

/** The emission's increasing part in [0, 1]: K (linear) or sigmoid(slope (K - threshold)) (logistic). */
export function emissionShape(params: LatentParams, k: number, threshold?: number): number {
  if (params.slope === undefined) return k;
  return 1 / (1 + Math.exp(-params.slope * (k - (threshold ?? params.threshold ?? 0.5))));
}

/** A learning rate shifted by `shift` logits (a rate of 0, a kind that does not teach, stays 0). */
export function shiftedRate(r: number, shift: number): number {
  if (shift === 0 || !(r > 0)) return r;
  if (r >= 1) return 1;
  return 1 / (1 + Math.exp(-(Math.log(r / (1 - r)) + shift)));
}

/**
 * Round 29: the share of a pair's gain above the floor that its first `events` events consolidated
 * (LatentParams.consolidation): 1 - (1 - c)^events, 0 without consolidation.
 */
export function consolidatedShare(params: Pick<LatentParams, "consolidation">, events: number): number {
  const c = params.consolidation;
  if (c === undefined || !(c > 0) || !(events > 0)) return 0;
  return 1 - (1 - c) ** events;
}

/**
 * The plain forgetting's idle days that decay a pair's gain as much as `dtDays` decay it after `events` events
 * with consolidation: d = phi + (1 - phi) 2^(-dt / h) = 2^(-dt' / h), so dt' = -h log2(d) (dt itself without
 * consolidation). Every forgetting path goes through it, so the plans keyed by dt' serve both forms.
 */
export function forgettingDays(
  params: Pick<LatentParams, "consolidation" | "halfLifeDays">,
  dtDays: number,
  events: number,
): number {
  const phi = consolidatedShare(params, events);
  if (phi === 0 || !(dtDays > 0)) return dtDays;
  const d = phi + (1 - phi) * 2 ** (-dtDays / params.halfLifeDays);
  return d >= 1 ? 0 : -params.halfLifeDays * Math.log2(d);
}

/**
 * The level an estimate of posterior mean `mean` after `events` events decays to (the as-of step and GET
 * /mastery's request-time decay): with consolidation the filter's mean t days later is f + (mean - f) (phi +
 * (1 - phi) 2^(-t / h)), i.e. exactly floor' + (mean - floor') 2^(-t / h) with floor' = f + phi (mean - f);
 * the global floor f without it.
 */
export function consolidatedFloor(params: LatentParams, mean: number, events: number): number {
  const phi = consolidatedShare(params, events);
  return phi === 0 ? params.floor : params.floor + phi * (mean - params.floor);
}

/**
 * lean28: kernels that LatentKernel.foldWide folds together (`LatentKernel.wide`).
 */
export interface WideKernels {
  ks: readonly LatentKernel[];
}

/** Forgetting plans by dt (LatentKernel.keepForgetPlans): slot per dt, each slot's targets, weights and decay. */
interface ForgetPlans {
  slots: Map<number, number>;
  j: Int32Array;
  w: Float64Array;
  d: Float64Array;
  /** Per slot: the first cell from which on no move but the spread's loss reaches the floor's two cells. */
  fast: Int32Array;
  next: number;
}
/** Gaps kept per emission table (a student's pair has ~10 events; a ring: the oldest are dropped together). */
const FORGET_PLAN_SLOTS = 128;
/**
 * lean29: the slot after the ring, where `LatentKernel.foldWide` writes each gap's plan without keeping it: since
 * lean28 a plan serves all basis parts of an event at once, and a gap recurs in ~1 event in 10 of the 1M store, so
 * looking it up (a Map keyed by a double) and keeping it cost more than planning it again (the same numbers).
 */
const FORGET_PLAN_SCRATCH = FORGET_PLAN_SLOTS;

/** Per-parameter-set tables of one filter (grid, emissions, learning maps); built once per likelihood. */
export class LatentKernel {
  readonly bins: number;
  readonly params: LatentParams;
  /** Grid midpoints. */
  readonly x: Float64Array;
  /** P(correct | K) per cell, and its logs. */
  readonly emit: Float64Array;
  private readonly logEmit: Float64Array;
  private readonly logMiss: Float64Array;
  /** Beta log-density constants per cell (assignment emission). */
  private readonly betaA: Float64Array;
  private readonly betaB: Float64Array;
  private readonly betaC: Float64Array;
  /**
   * Learning map per kind: target cell and weight of the upper neighbour for each source cell (kind k's row at
   * k x bins).
   */
  private readonly learnLo: Int32Array;
  private readonly learnW: Float64Array;
  /** Scratch rows (shared by the kernels sharing the emission tables: every method runs to its end alone). */
  private readonly tmp: Float64Array;
  private readonly lik: Float64Array;
  /** ln x and ln(1 - x) per cell: the discretised Beta prior's terms (`prior`). */
  private readonly logX: Float64Array;
  private readonly log1mX: Float64Array;
  /**
   * exp(lik - max) per cell and max of an emission that recurs (a practice set's (correct, missed), an
   * assignment's score): `condition`'s factors, computed once per emission table (the same bits as computing
   * them again). Shared with the kernels sharing the tables.
   */
  private readonly practiceLik: Map<number, { e: Float64Array; max: number }>;
  private readonly assignmentLik: Map<number, { e: Float64Array; max: number }>;
  /** 1 - P(correct | K) per cell (a wrong quiz answer's likelihood). */
  private readonly missEmit: Float64Array;
  /** Scratch emission row of an event whose factors are not kept (`emissionRow`). */
  private readonly oddRow: { e: Float64Array; max: number };
  /** The learning rates' logit shift (constructor `learnShift`). */
  readonly learnShift: number;
  /** The forgetting's plans per dt (`keepForgetPlans`; null = computed every time). Shared like the tables. */
  private plans: ForgetPlans | null;

  /**
   * `learnShift` (logits, round 14): every learning rate r_k > 0 of `params` becomes sigmoid(logit(r_k) +
   * learnShift): the kernel of a student whose offset o loads on learning (LatentModelJson.studentLearnLoading,
   * shift = loading x o). 0 = the params' rates.
   */
  constructor(
    params: LatentParams,
    bins = 40,
    threshold?: number,
    learnShift = 0,
    /**
     * Round 25: a kernel of the same `params` object, `bins` and threshold whose grid and emission tables
     * (which do not depend on `learnShift`) this one shares read-only instead of recomputing them: the same
     * values, so the same bits. Only the learning maps are built.
     */
    tablesOf?: LatentKernel,
    /**
     * fold26: a kernel of the same `params` object, `bins` and `learnShift` whose learning maps (which do not
     * depend on the threshold) this one shares read-only instead of rebuilding them: the same values.
     */
    mapsOf?: LatentKernel,
  ) {
    if (!(bins >= 2)) throw new LatentFilterError(`bins must be >= 2 (got ${bins})`);
    if (!(params.guess >= 0 && params.slip >= 0 && params.guess + params.slip < 1))
      throw new LatentFilterError(
        `guess ${params.guess} + slip ${params.slip} must be in [0, 1): refit the latent filter`,
      );
    if (tablesOf !== undefined && (tablesOf.params !== params || tablesOf.bins !== bins))
      throw new LatentFilterError(
        "a kernel can share the emission tables only of a kernel with the same parameters and bins: build it without `tablesOf`",
      );
    if (
      mapsOf !== undefined &&
      (mapsOf.params !== params || mapsOf.bins !== bins || mapsOf.learnShift !== learnShift)
    )
      throw new LatentFilterError(
        "a kernel can share the learning maps only of a kernel with the same parameters, bins and learning shift: build it without `mapsOf`",
      );
    this.bins = bins;
    this.params = params;
    const G = bins;
    const shared = tablesOf !== undefined;
    this.x = tablesOf?.x ?? new Float64Array(G);
    this.emit = tablesOf?.emit ?? new Float64Array(G);
    this.logEmit = tablesOf?.logEmit ?? new Float64Array(G);
    this.logMiss = tablesOf?.logMiss ?? new Float64Array(G);
    this.betaA = tablesOf?.betaA ?? new Float64Array(G);
    this.betaB = tablesOf?.betaB ?? new Float64Array(G);
    this.betaC = tablesOf?.betaC ?? new Float64Array(G);
    this.logX = tablesOf?.logX ?? new Float64Array(G);
    this.log1mX = tablesOf?.log1mX ?? new Float64Array(G);
    this.tmp = tablesOf?.tmp ?? new Float64Array(G);
    this.lik = tablesOf?.lik ?? new Float64Array(G);
    this.practiceLik = tablesOf?.practiceLik ?? new Map();
    this.assignmentLik = tablesOf?.assignmentLik ?? new Map();
    this.missEmit = tablesOf?.missEmit ?? new Float64Array(G);
    this.oddRow = tablesOf?.oddRow ?? { e: new Float64Array(G), max: 0 };
    this.plans = tablesOf?.plans ?? null;
    const c = params.assignmentConcentration;
    for (let i = 0; i < G && !shared; i++) {
      const x = (i + 0.5) / G;
      this.x[i] = x;
      const e = params.guess + (1 - params.guess - params.slip) * emissionShape(params, x, threshold);
      this.emit[i] = e;
      this.logEmit[i] = Math.log(e);
      this.logMiss[i] = Math.log(1 - e);
      const a = e * c;
      const b = (1 - e) * c;
      this.betaA[i] = a - 1;
      this.betaB[i] = b - 1;
      this.betaC[i] = lnGamma(c) - lnGamma(a) - lnGamma(b);
      this.missEmit[i] = 1 - e;
      this.logX[i] = Math.log(x);
      this.log1mX[i] = Math.log(1 - x);
    }
    // One row of G cells per kind (LATENT_KINDS order) in one array each: a few allocations per kernel.
    this.learnLo = mapsOf?.learnLo ?? new Int32Array(LATENT_KINDS.length * G);
    this.learnW = mapsOf?.learnW ?? new Float64Array(LATENT_KINDS.length * G);
    this.learnShift = learnShift;
    for (let k = 0; k < LATENT_KINDS.length && mapsOf === undefined; k++) {
      const r = shiftedRate(params.learn[k] ?? 0, learnShift);
      for (let i = 0; i < G; i++)
        this.place(this.x[i]! + r * (1 - this.x[i]!), this.learnLo, this.learnW, k * G + i);
    }
  }

  /** Where value y lands on the grid: the cell below and the upper neighbour's share (linear interpolation). */
  private place(y: number, lo: Int32Array, w: Float64Array, i: number): void {
    const G = this.bins;
    const pos = y * G - 0.5;
    if (pos <= 0) {
      lo[i] = 0;
      w[i] = 0;
    } else if (pos >= G - 1) {
      lo[i] = G - 2;
      w[i] = 1;
    } else {
      const j = Math.floor(pos);
      lo[i] = j;
      w[i] = pos - j;
    }
  }

  /** The prior on the grid: a Beta(mean m, concentration c) density at the midpoints, normalised. */
  prior(mean: number, out: Float64Array = new Float64Array(this.bins)): Float64Array {
    const c = this.params.priorConcentration;
    const a = mean * c;
    const b = (1 - mean) * c;
    let max = Number.NEGATIVE_INFINITY;
    const lx = this.logX;
    const l1x = this.log1mX;
    for (let i = 0; i < this.bins; i++) {
      const l = (a - 1) * lx[i]! + (b - 1) * l1x[i]!;
      out[i] = l;
      if (l > max) max = l;
    }
    let s = 0;
    for (let i = 0; i < this.bins; i++) {
      const v = Math.exp(out[i]! - max);
      out[i] = v;
      s += v;
    }
    for (let i = 0; i < this.bins; i++) out[i]! /= s;
    return out;
  }

  /**
   * Forgetting over dt days (in place): mass above the floor moves towards it. `base` is the pair's prior
   * mean, the floor of the durable-share form (LatentParams.durableShare); the global-floor form ignores it.
   * `events`: the pair's events before the gap (their consolidation, LatentParams.consolidation; 0 = none).
   */
  forget(p: Float64Array, idleDays: number, base = Number.NaN, events = 0): void {
    const dtDays = forgettingDays(this.params, idleDays, events);
    if (!(dtDays > 0)) return;
    const { halfLifeDays, durableShare } = this.params;
    const durable = durableShare !== undefined;
    // fold26: the global floor's moves depend only on dt: planned once per dt (`keepForgetPlans`).
    const plans = durable ? null : this.plans;
    const slot = plans?.slots.get(dtDays);
    if (plans !== null && slot !== undefined) {
      this.forgetByPlan(p, plans, slot);
      return;
    }
    const decay = 2 ** (-dtDays / halfLifeDays);
    if (durable && !Number.isFinite(base))
      throw new LatentFilterError("the durable-share forgetting needs the pair's prior mean (base)");
    const floor = durable ? base : this.params.floor;
    const d = durable ? durableShare + (1 - durableShare) * decay : decay;
    if (plans !== null) {
      this.forgetByPlan(p, plans, this.planForget(plans, dtDays, floor, d));
      return;
    }
    if (d >= 1) return;
    const G = this.bins;
    const t = this.tmp;
    t.fill(0);
    // forgetSpread s: a share s of each cell's mass is kept whole (s d) or lost to the floor (s (1 - d));
    // the rest, 1 - s, moves to f + (x - f) d. Linear placement on the grid keeps the mean exact.
    const s = this.params.forgetSpread ?? 0;
    const glide = 1 - s;
    const keep = s * d;
    const lose = s * (1 - d);
    const fPos = floor * G - 0.5;
    const fj = fPos <= 0 ? 0 : Math.min(G - 2, Math.floor(fPos));
    const fw = fPos <= 0 ? 0 : Math.min(1, fPos - fj);
    for (let i = 0; i < G; i++) {
      const m = p[i]!;
      if (m === 0) continue;
      const x = this.x[i]!;
      if (x <= floor) {
        t[i]! += m;
        continue;
      }
      const g = s > 0 ? m * glide : m;
      const pos = (floor + (x - floor) * d) * G - 0.5;
      if (pos <= 0) t[0]! += g;
      else {
        const j = Math.floor(pos);
        const w = pos - j;
        t[j]! += g * (1 - w);
        if (w > 0) t[j + 1]! += g * w;
      }
      if (s > 0) {
        t[i]! += m * keep;
        const l = m * lose;
        t[fj]! += l * (1 - fw);
        if (fw > 0) t[fj + 1]! += l * fw;
      }
    }
    p.set(t);
  }

  /**
   * Keep the global-floor forgetting's moves per dt (a plan: each cell's target and weight, `forget`'s very
   * numbers) in a ring of FORGET_PLAN_SLOTS, shared with the kernels built on this one's tables afterwards: a
   * student's pair is folded ~14 times over the same gaps. For the filter's own kernels (LatentFilter.kernelFor).
   */
  keepForgetPlans(): this {
    if (this.plans === null) {
      const G = this.bins;
      const n = FORGET_PLAN_SLOTS + 1;
      this.plans = {
        slots: new Map(),
        j: new Int32Array(n * G),
        w: new Float64Array(n * G),
        d: new Float64Array(n),
        fast: new Int32Array(n),
        next: 0,
      };
    }
    return this;
  }

  /** Writes the plan of a move by `d` towards `floor` into the next slot (keyed by `dtDays`) and returns the slot. */
  private planForget(plans: ForgetPlans, dtDays: number, floor: number, d: number): number {
    if (plans.next === FORGET_PLAN_SLOTS) {
      plans.slots.clear();
      plans.next = 0;
    }
    const slot = plans.next++;
    plans.slots.set(dtDays, slot);
    this.writePlan(plans, slot, floor, d);
    return slot;
  }

  /** Writes the plan of a move by `d` towards `floor` into `slot` (`planForget`'s ring slot, or FORGET_PLAN_SCRATCH). */
  private writePlan(plans: ForgetPlans, slot: number, floor: number, d: number): void {
    plans.d[slot] = d;
    const G = this.bins;
    const at = slot * G;
    // -1: the cell is at or below the floor (its mass stays); -2: it lands below the first midpoint; else the
    // cell below and the upper neighbour's share, as `forget` computes them.
    const fPos = floor * G - 0.5;
    const fj = fPos <= 0 ? 0 : Math.min(G - 2, Math.floor(fPos));
    let fast = 0;
    for (let i = 0; i < G; i++) {
      const x = this.x[i]!;
      if (x <= floor) {
        plans.j[at + i] = -1;
        fast = i + 1;
        continue;
      }
      const pos = (floor + (x - floor) * d) * G - 0.5;
      if (pos <= 0) plans.j[at + i] = -2;
      else {
        const j = Math.floor(pos);
        plans.j[at + i] = j;
        plans.w[at + i] = pos - j;
      }
      // A cell that may add to the floor's cells fj, fj + 1 other than by the spread's loss (its own mass kept,
      // or its move's targets) is in the general part.
      const tj = pos <= 0 ? 0 : Math.floor(pos);
      if (i <= fj + 1 || tj <= fj + 1) fast = i + 1;
    }
    plans.fast[slot] = fast;
  }

  /** `forget` by a plan (`planForget`): the same additions in the same order. */
  private forgetByPlan(p: Float64Array, plans: ForgetPlans, slot: number): void {
    const d = plans.d[slot]!;
    if (d >= 1) return;
    const G = this.bins;
    const t = this.tmp;
    t.fill(0);
    const floor = this.params.floor;
    const s = this.params.forgetSpread ?? 0;
    const glide = 1 - s;
    const keep = s * d;
    const lose = s * (1 - d);
    const fPos = floor * G - 0.5;
    const fj = fPos <= 0 ? 0 : Math.min(G - 2, Math.floor(fPos));
    const fw = fPos <= 0 ? 0 : Math.min(1, fPos - fj);
    const at = slot * G;
    const pj = plans.j;
    const pw = plans.w;
    const fast = plans.fast[slot]!;
    for (let i = 0; i < fast; i++) {
      const m = p[i]!;
      if (m === 0) continue;
      const j = pj[at + i]!;
      if (j === -1) {
        t[i]! += m;
        continue;
      }
      const g = s > 0 ? m * glide : m;
      if (j === -2) t[0]! += g;
      else {
        const w = pw[at + i]!;
        t[j]! += g * (1 - w);
        if (w > 0) t[j + 1]! += g * w;
      }
      if (s > 0) {
        t[i]! += m * keep;
        const l = m * lose;
        t[fj]! += l * (1 - fw);
        if (fw > 0) t[fj + 1]! += l * fw;
      }
    }
    // From `fast` on only the spread's loss adds to the floor's cells: their sums are carried in registers (the
    // same additions in the same order).
    let f0 = t[fj]!;
    let f1 = t[fj + 1]!;
    for (let i = fast; i < G; i++) {
      const m = p[i]!;
      if (m === 0) continue;
      const j = pj[at + i]!;
      const g = s > 0 ? m * glide : m;
      const w = pw[at + i]!;
      t[j]! += g * (1 - w);
      if (w > 0) t[j + 1]! += g * w;
      if (s > 0) {
        t[i]! += m * keep;
        const l = m * lose;
        f0 += l * (1 - fw);
        if (fw > 0) f1 += l * fw;
      }
    }
    t[fj] = f0;
    t[fj + 1] = f1;
    p.set(t);
  }

  /**
   * Conditions p on one event's outcome (in place) and returns ln P(outcome | history) (0 for kinds without
   * an emission; the binomial coefficient of practice sets is left out: it does not depend on the parameters).
   */
  observe(p: Float64Array, e: LatentEvent): number {
    if (e.kind === KIND_QUIZ && e.n === 1) {
      const G = this.bins;
      let s = 0;
      const src = e.k >= 1 ? this.emit : this.missEmit;
      for (let i = 0; i < G; i++) s += p[i]! * src[i]!;
      for (let i = 0; i < G; i++) p[i] = (p[i]! * src[i]!) / s;
      return Math.log(s);
    }
    const row = this.emissionRow(e);
    return row === null ? 0 : this.conditionBy(p, row.e, row.max);
  }

  /**
   * The factors exp(lik - max) per cell and the max of an event's emission other than one quiz answer (null for
   * an event without an emission): `observe` conditions by them. A recurring (correct, missed) pair or assignment
   * score is kept per emission table (`keepLik`); any other goes into a scratch row (the same exps).
   */
  private emissionRow(e: LatentEvent): { e: Float64Array; max: number } | null {
    const G = this.bins;
    const lik = this.lik;
    if (e.kind === KIND_QUIZ || e.kind === KIND_PRACTICE) {
      if (!(e.n > 0)) return null;
      const k = e.k;
      const miss = e.n - e.k;
      // A (correct, missed) pair recurs across pairs and folds: its factors are kept (small whole counts only).
      const key =
        Number.isInteger(k) && Number.isInteger(miss) && k >= 0 && miss >= 0 && k < 4096 && miss < 4096
          ? k + 4096 * miss
          : -1;
      const cached = key >= 0 ? this.practiceLik.get(key) : undefined;
      if (cached !== undefined) return cached;
      let max = Number.NEGATIVE_INFINITY;
      for (let i = 0; i < G; i++) {
        const l = k * this.logEmit[i]! + miss * this.logMiss[i]!;
        lik[i] = l;
        if (l > max) max = l;
      }
      return this.keepLik(key >= 0 ? this.practiceLik : null, key, max);
    }
    if (e.kind === KIND_ASSIGNMENT) {
      const s = Math.min(1 - ASSIGN_EPS, Math.max(ASSIGN_EPS, e.k));
      const cached = this.assignmentLik.get(s);
      if (cached !== undefined) return cached;
      const ls = Math.log(s);
      const l1s = Math.log(1 - s);
      let max = Number.NEGATIVE_INFINITY;
      for (let i = 0; i < G; i++) {
        const l = this.betaC[i]! + this.betaA[i]! * ls + this.betaB[i]! * l1s;
        lik[i] = l;
        if (l > max) max = l;
      }
      return this.keepLik(this.assignmentLik, s, max);
    }
    return null;
  }

  /**
   * p *= f (an emission's factors exp(lik - max), `emissionRow`), normalised; returns the log of the normalising
   * constant plus max.
   */
  private conditionBy(p: Float64Array, f: Float64Array, max: number): number {
    const G = this.bins;
    let s = 0;
    for (let i = 0; i < G; i++) {
      const v = p[i]! * f[i]!;
      p[i] = v;
      s += v;
    }
    for (let i = 0; i < G; i++) p[i]! /= s;
    return Math.log(s) + max;
  }

  /**
   * exp(lik - max) of the row in `lik`, kept in `cache` under `key` (up to LIK_CACHE_SIZE rows); past that, or
   * without a cache (a row that does not recur), in the scratch row `oddRow` (lean28: no allocation per event).
   */
  private keepLik(
    cache: Map<number, { e: Float64Array; max: number }> | null,
    key: number,
    max: number,
  ): { e: Float64Array; max: number } {
    const G = this.bins;
    const row = cache !== null && cache.size < LIK_CACHE_SIZE ? { e: new Float64Array(G), max } : this.oddRow;
    for (let i = 0; i < G; i++) row.e[i] = Math.exp(this.lik[i]! - max);
    row.max = max;
    if (cache !== null && row !== this.oddRow) cache.set(key, row);
    return row;
  }

  /**
   * Learning from an event of `kind`, then process noise (in place). `round32`: leave p rounded to float32, as a
   * copy through a Float32Array would (Math.fround is the same rounding): the stored form LatentFilter.step keeps
   * between events.
   */
  learnFrom(p: Float64Array, kind: number, round32 = false): void {
    const G = this.bins;
    const t = this.tmp;
    const lo = this.learnLo;
    const w = this.learnW;
    // The noise reads the learnt posterior (in `t` after learning, else `p`) and writes `p`: each cell's new
    // value from its old one and its neighbours' (the previous one kept aside), so it can run in place.
    let src = p;
    if (
      Number.isInteger(kind) &&
      kind >= 0 &&
      kind < LATENT_KINDS.length &&
      (this.params.learn[kind] ?? 0) > 0
    ) {
      t.fill(0);
      const at = kind * G;
      // The two target cells c, c + 1 are carried in registers while consecutive cells land on them (the map
      // is monotone): every cell still receives the same additions in the same order, without a store and a
      // reload between them.
      let c = -1;
      let tc = 0;
      let tc1 = 0;
      for (let i = 0; i < G; i++) {
        const m = p[i]!;
        const j = lo[at + i]!;
        const u = w[at + i]!;
        if (j !== c) {
          if (c >= 0) {
            t[c] = tc;
            t[c + 1] = tc1;
          }
          c = j;
          tc = t[j]!;
          tc1 = t[j + 1]!;
        }
        tc += m * (1 - u);
        tc1 += m * u;
      }
      if (c >= 0) {
        t[c] = tc;
        t[c + 1] = tc1;
      }
      src = t;
    }
    const q = this.params.noise;
    if (q > 0) {
      // Reflecting boundaries: the edge cells keep the share that would leave the grid.
      const stay = 1 - 2 * q;
      let prev = src[0]!;
      if (round32)
        for (let i = 0; i < G; i++) {
          const cur = src[i]!;
          const next = i + 1 < G ? src[i + 1]! : cur;
          p[i] = Math.fround(cur * stay + q * (i > 0 ? prev : cur) + q * next);
          prev = cur;
        }
      else
        for (let i = 0; i < G; i++) {
          const cur = src[i]!;
          const next = i + 1 < G ? src[i + 1]! : cur;
          p[i] = cur * stay + q * (i > 0 ? prev : cur) + q * next;
          prev = cur;
        }
    } else if (round32) for (let i = 0; i < G; i++) p[i] = Math.fround(src[i]!);
    else if (src !== p) p.set(src);
  }

  /**
   * Runs the forward filter over one sequence from the prior with mean `priorMean`; the posterior after the
   * last event is left in `p`. Returns the sum of ln P(outcome | history) over the graded events.
   */
  run(events: readonly LatentEvent[], priorMean: number, p: Float64Array): number {
    this.prior(priorMean, p);
    const base = this.mean(p);
    let ll = 0;
    let last = Number.NaN;
    for (let i = 0; i < events.length; i++) {
      const e = events[i]!;
      if (Number.isFinite(last)) this.forget(p, e.t - last, base, i);
      last = e.t;
      ll += this.observe(p, e);
      this.learnFrom(p, e.kind);
    }
    return ll;
  }

  /**
   * lean28: `ks` (W kernels) as `foldWide` folds them together, or null if it cannot: they must share one emission
   * table set (the kernels of one topic at the basis offsets, LatentFilter.kernelFor, differ only in their
   * learning maps) and the global floor's forgetting with its plans kept (`keepForgetPlans`; the durable-share
   * floor is each part's own prior mean).
   */
  static wide(ks: readonly LatentKernel[]): WideKernels | null {
    const k0 = ks[0];
    if (k0 === undefined || k0.plans === null || k0.params.durableShare !== undefined) return null;
    if (!ks.every((k) => k.params === k0.params && k.emit === k0.emit && k.plans === k0.plans)) return null;
    return { ks: [...ks] };
  }

  /**
   * lean28: W folds of one sequence at once (`wk`: `LatentKernel.wide` of W kernels), each exactly `run`'s loop
   * of its own kernel with learnFrom's round32 (LatentFilter's lean basis folds): the posteriors are the W rows of
   * `p` (structure of arrays: cell i of part r at r x bins + i; float32 values), and each event's shared work (its
   * gap's forgetting plan, its emission row) is found once for all W. Every part receives the same
   * operations in the same order as in its own fold, so the same bits; where the fold skips an operation whose
   * result is an addition of +0 (no mass in a cell, no spread, an upper share of 0), this one adds the +0, which
   * leaves every (non-negative) cell as it is. `t` is scratch of the same size. Adds each part's ln P(outcome |
   * history) of the graded events to `ll[r]`. With `track` (`contributions`: W x LATENT_FACTORS.length,
   * part-major; `means`: each part's posterior mean to start from) also LatentFilter.foldInto's factor
   * contributions (the same means: each summed over the cells in order). Returns the array (`p` or `t`) that
   * holds the posteriors.
   */
  static foldWide(
    wk: WideKernels,
    events: readonly LatentEvent[],
    p: Float64Array,
    t: Float64Array,
    ll: Float64Array,
    track?: { contributions: Float64Array; means: Float64Array },
  ): Float64Array {
    const ks = wk.ks;
    const k0 = ks[0]!;
    const W = ks.length;
    const G = k0.bins;
    const prm = k0.params;
    const plans = k0.plans!;
    const s = prm.forgetSpread ?? 0;
    const glide = s > 0 ? 1 - s : 1;
    const floor = prm.floor;
    const fPos = floor * G - 0.5;
    const fj = fPos <= 0 ? 0 : Math.min(G - 2, Math.floor(fPos));
    const fw = fPos <= 0 ? 0 : Math.min(1, fPos - fj);
    const fw1 = 1 - fw;
    const q = prm.noise;
    const stay = 1 - 2 * q;
    const x = k0.x;
    const F = LATENT_FACTORS.length;
    const c = track?.contributions;
    const mean = track?.means;
    let a = p;
    let b = t;
    let last = Number.NaN;
    for (let n = 0; n < events.length; n++) {
      const e = events[n]!;
      // Forgetting since the previous event (`forget`: the global floor's, by its plan for the gap, written into
      // the scratch slot; with consolidation the gap's plain-forgetting equivalent, `forgettingDays`).
      const dt = Number.isFinite(last) ? forgettingDays(prm, e.t - last, n) : 0;
      if (dt > 0) {
        const slot = FORGET_PLAN_SCRATCH;
        k0.writePlan(plans, slot, floor, 2 ** (-dt / prm.halfLifeDays));
        const d = plans.d[slot]!;
        if (d < 1) {
          const keep = s > 0 ? s * d : 0;
          const lose = s > 0 ? s * (1 - d) : 0;
          b.fill(0);
          const at = slot * G;
          const pj = plans.j;
          const pw = plans.w;
          for (let r = 0; r < W; r++) {
            const o = r * G;
            for (let i = 0; i < G; i++) {
              const j = pj[at + i]!;
              const m = a[o + i]!;
              if (j === -1) {
                b[o + i]! += m;
                continue;
              }
              // -2: all of the move lands on the first cell (its weight 1, the next cell's 0).
              const w = j === -2 ? 0 : pw[at + i]!;
              const lo = o + (j === -2 ? 0 : j);
              const g = m * glide;
              b[lo]! += g * (j === -2 ? 1 : 1 - w);
              b[lo + 1]! += g * w;
              b[o + i]! += m * keep;
              const l = m * lose;
              b[o + fj]! += l * fw1;
              b[o + fj + 1]! += l * fw;
            }
            if (c !== undefined && mean !== undefined) {
              let m = 0;
              for (let i = 0; i < G; i++) m += b[o + i]! * x[i]!;
              c[r * F + FACTOR_FORGETTING]! += m - mean[r]!;
              mean[r] = m;
            }
          }
          const sw = a;
          a = b;
          b = sw;
        }
      }
      last = e.t;
      // The outcome (`observe`): one emission row for all parts; each normalised part's mean summed on the way.
      let f: Float64Array | null = null;
      let max = 0;
      const quiz = e.kind === KIND_QUIZ && e.n === 1;
      if (quiz) f = e.k >= 1 ? k0.emit : k0.missEmit;
      else {
        const row = k0.emissionRow(e);
        if (row !== null) {
          f = row.e;
          max = row.max;
        }
      }
      const kind = e.kind;
      const of = OBS_FACTOR[kind];
      const learns =
        Number.isInteger(kind) && kind >= 0 && kind < LATENT_KINDS.length && (prm.learn[kind] ?? 0) > 0;
      const lf = LEARN_FACTOR[kind] ?? LEARN_FACTOR[KIND_QUIZ]!;
      if (learns) b.fill(0);
      for (let r = 0; r < W; r++) {
        const o = r * G;
        if (f !== null) {
          let sum = 0;
          let m = 0;
          if (quiz) {
            for (let i = 0; i < G; i++) sum += a[o + i]! * f[i]!;
            for (let i = 0; i < G; i++) {
              const v = (a[o + i]! * f[i]!) / sum;
              a[o + i] = v;
              m += v * x[i]!;
            }
            ll[r]! += Math.log(sum);
          } else {
            for (let i = 0; i < G; i++) {
              const v = a[o + i]! * f[i]!;
              a[o + i] = v;
              sum += v;
            }
            for (let i = 0; i < G; i++) {
              const v = a[o + i]! / sum;
              a[o + i] = v;
              m += v * x[i]!;
            }
            ll[r]! += Math.log(sum) + max;
          }
          if (c !== undefined && mean !== undefined && of !== undefined) {
            c[r * F + of]! += m - mean[r]!;
            mean[r] = m;
          }
        }
        // Learning (the part's own map, `learnFrom`'s), then the noise, rounded to float32 (round32).
        let src = a;
        if (learns) {
          const k = ks[r]!;
          const lo = k.learnLo;
          const lw = k.learnW;
          const at = kind * G;
          for (let i = 0; i < G; i++) {
            const m = a[o + i]!;
            const j = o + lo[at + i]!;
            const u = lw[at + i]!;
            b[j]! += m * (1 - u);
            b[j + 1]! += m * u;
          }
          src = b;
        }
        const dst = src === a ? b : a;
        let m = 0;
        if (q > 0) {
          let prev = src[o]!;
          for (let i = 0; i < G; i++) {
            const cur = src[o + i]!;
            const next = i + 1 < G ? src[o + i + 1]! : cur;
            const v = Math.fround(cur * stay + q * (i > 0 ? prev : cur) + q * next);
            dst[o + i] = v;
            m += v * x[i]!;
            prev = cur;
          }
        } else
          for (let i = 0; i < G; i++) {
            const v = Math.fround(src[o + i]!);
            dst[o + i] = v;
            m += v * x[i]!;
          }
        if (c !== undefined && mean !== undefined) {
          c[r * F + lf]! += m - mean[r]!;
          mean[r] = m;
        }
      }
      // Without learning the noise wrote the posteriors into `b`; with it, back into `a`.
      if (!learns) {
        const sw = a;
        a = b;
        b = sw;
      }
    }
    return a;
  }

  /**
   * wasm34: `foldWide` with its cell loops in WebAssembly (models/latentWideWasm.ts, `engine`): the same inputs and
   * outputs, bit for bit (the module's own notes say why); the gaps' decays, the emission rows and the logs of
   * the normalising sums are computed here, as `foldWide` computes them. Leaves the posteriors in `p` and returns
   * it (`t` is not used).
   */
  static foldWideWasm(
    engine: LatentWideWasm,
    wk: WideKernels,
    events: readonly LatentEvent[],
    p: Float64Array,
    _t: Float64Array,
    ll: Float64Array,
    track?: { contributions: Float64Array; means: Float64Array },
  ): Float64Array {
    const ks = wk.ks;
    const k0 = ks[0]!;
    const W = ks.length;
    const Wp = W + (W & 1);
    const G = k0.bins;
    const prm = k0.params;
    const F = LATENT_FACTORS.length;
    const K = LATENT_KINDS.length;
    const nEv = events.length;
    const cellBytes = G * Wp * 8;
    // The tables of these kernels: x, the quiz's two emission rows, then per kind the learning maps (per cell and
    // lane: the lower target's byte offset in a state, then the upper share).
    const mapBytes = G * Wp * 12;
    const mapsAt = align16(3 * G * 8);
    let tables = engine.tablesAt(wk);
    if (tables < 0) {
      tables = engine.addTables(wk, mapsAt + K * mapBytes);
      const f = engine.f64;
      const n = engine.i32;
      f.set(k0.x, tables / 8);
      f.set(k0.emit, tables / 8 + G);
      f.set(k0.missEmit, tables / 8 + 2 * G);
      for (let kind = 0; kind < K; kind++) {
        const m = tables + mapsAt + kind * mapBytes;
        for (let i = 0; i < G; i++)
          for (let r = 0; r < Wp; r++) {
            const k = ks[Math.min(r, W - 1)]!;
            n[m / 4 + i * Wp + r] = (k.learnLo[kind * G + i]! * Wp + r) * 8;
            f[(m + G * Wp * 4) / 8 + i * Wp + r] = k.learnW[kind * G + i]!;
          }
      }
    }
    // This fold's scratch: the two states, the lanes' means and contributions, then per event.
    const oA = 0;
    const oB = oA + cellBytes;
    const oMean = oB + cellBytes;
    const oC = align16(oMean + Wp * 8);
    const oD = align16(oC + F * Wp * 8);
    const oKeep = align16(oD + nEv * 8);
    const oLose = align16(oKeep + nEv * 8);
    const oMax = align16(oLose + nEv * 8);
    const oRow = align16(oMax + nEv * 8);
    const oLearn = align16(oRow + nEv * 4);
    const oOf = align16(oLearn + nEv * 4);
    const oLf = align16(oOf + nEv * 4);
    const oSum = align16(oLf + nEv * 4);
    const oRows = align16(oSum + nEv * Wp * 8);
    const base = engine.scratch(oRows + nEv * G * 8);
    const f = engine.f64;
    const n32 = engine.i32;
    const A = (base + oA) / 8;
    for (let r = 0; r < Wp; r++) {
      const o = Math.min(r, W - 1) * G;
      for (let i = 0; i < G; i++) f[A + i * Wp + r] = p[o + i]!;
    }
    if (track === undefined) f.fill(0, (base + oMean) / 8, (base + oC) / 8 + F * Wp);
    else
      for (let r = 0; r < Wp; r++) {
        const rr = Math.min(r, W - 1);
        f[(base + oMean) / 8 + r] = track.means[rr]!;
        for (let c = 0; c < F; c++) f[(base + oC) / 8 + c * Wp + r] = track.contributions[rr * F + c]!;
      }
    const s = prm.forgetSpread ?? 0;
    const maxes = (base + oMax) / 8;
    let last = Number.NaN;
    for (let n = 0; n < nEv; n++) {
      const e = events[n]!;
      const dt = Number.isFinite(last) ? forgettingDays(prm, e.t - last, n) : 0;
      const d = dt > 0 ? 2 ** (-dt / prm.halfLifeDays) : 2;
      f[(base + oD) / 8 + n] = d;
      f[(base + oKeep) / 8 + n] = s > 0 ? s * d : 0;
      f[(base + oLose) / 8 + n] = s > 0 ? s * (1 - d) : 0;
      last = e.t;
      let row = 0;
      f[maxes + n] = Number.NaN;
      if (e.kind === KIND_QUIZ && e.n === 1) {
        row = tables + (e.k >= 1 ? G * 8 : 2 * G * 8);
        f[maxes + n] = 0;
      } else {
        const em = k0.emissionRow(e);
        if (em !== null) {
          row = base + oRows + n * G * 8;
          f.set(em.e, row / 8);
          f[maxes + n] = em.max;
        }
      }
      n32[(base + oRow) / 4 + n] = row;
      const kind = e.kind;
      const learns = Number.isInteger(kind) && kind >= 0 && kind < K && (prm.learn[kind] ?? 0) > 0;
      n32[(base + oLearn) / 4 + n] = learns ? tables + mapsAt + kind * mapBytes : 0;
      n32[(base + oOf) / 4 + n] = OBS_FACTOR[kind] ?? -1;
      n32[(base + oLf) / 4 + n] = LEARN_FACTOR[kind] ?? LEARN_FACTOR[KIND_QUIZ]!;
    }
    const floor = prm.floor;
    const fPos = floor * G - 0.5;
    const fj = fPos <= 0 ? 0 : Math.min(G - 2, Math.floor(fPos));
    const fw = fPos <= 0 ? 0 : Math.min(1, fPos - fj);
    const q = prm.noise;
    const res = engine.foldOf(Wp / 2)(
      nEv,
      G,
      base + oA,
      base + oB,
      tables,
      base + oD,
      base + oKeep,
      base + oLose,
      base + oRow,
      base + oLearn,
      base + oOf,
      base + oLf,
      base + oSum,
      base + oMean,
      base + oC,
      floor,
      fj,
      fw,
      1 - fw,
      s > 0 ? 1 - s : 1,
      q,
      1 - 2 * q,
      FACTOR_FORGETTING,
    );
    for (let n = 0; n < nEv; n++) {
      const max = f[maxes + n]!;
      if (Number.isNaN(max)) continue;
      const quiz = events[n]!.kind === KIND_QUIZ && events[n]!.n === 1;
      const at = (base + oSum) / 8 + n * Wp;
      for (let r = 0; r < W; r++) {
        if (quiz) ll[r]! += Math.log(f[at + r]!);
        else ll[r]! += Math.log(f[at + r]!) + max;
      }
    }
    for (let r = 0; r < W; r++) for (let i = 0; i < G; i++) p[r * G + i] = f[res / 8 + i * Wp + r]!;
    if (track !== undefined)
      for (let r = 0; r < W; r++) {
        track.means[r] = f[(base + oMean) / 8 + r]!;
        for (let c = 0; c < F; c++) track.contributions[r * F + c] = f[(base + oC) / 8 + c * Wp + r]!;
      }
    return p;
  }

  /** The mean of each of the W posteriors of `p` (part-major) into `out`, each summed as `mean` sums it. */
  wideMeans(p: Float64Array, W: number, out: Float64Array): void {
    const G = this.bins;
    const x = this.x;
    for (let r = 0; r < W; r++) {
      let m = 0;
      for (let i = 0; i < G; i++) m += p[r * G + i]! * x[i]!;
      out[r] = m;
    }
  }

  mean(p: Float64Array): number {
    let s = 0;
    for (let i = 0; i < this.bins; i++) s += p[i]! * this.x[i]!;
    return s;
  }

  /** P(correct on the next quiz item) under p: sum of p times the emission. */
  predictive(p: Float64Array): number {
    let s = 0;
    for (let i = 0; i < this.bins; i++) s += p[i]! * this.emit[i]!;
    return s;
  }

  variance(p: Float64Array): number {
    const m = this.mean(p);
    let s = 0;
    for (let i = 0; i < this.bins; i++) s += p[i]! * (this.x[i]! - m) ** 2;
    return s;
  }

  /** The q-quantile of p, each cell's mass spread uniformly over its width. */
  quantile(p: Float64Array, q: number): number {
    const G = this.bins;
    let c = 0;
    for (let i = 0; i < G; i++) {
      const m = p[i]!;
      if (c + m >= q && m > 0) return (i + (q - c) / m) / G;
      c += m;
    }
    return 1;
  }
}

/** Explanation factors of a filtered estimate: how much each step kind moved the posterior mean. */
export const LATENT_FACTORS = [
  "quiz_answers",
  "practice_results",
  "assignment_scores",
  "learning_quiz",
  "learning_practice",
  "learning_video",
  "learning_assignment",
  "learning_chatbot",
  "forgetting",
] as const;
export type LatentFactor = (typeof LATENT_FACTORS)[number];

export interface LatentEstimate {
  /** Posterior mean of K: the mastery score. */
  score: number;
  /** 10th / 90th percentile of the posterior: the 80% interval. */
  lo: number;
  hi: number;
  /** P(correct on the next quiz item) = E[guess + (1 - guess - slip) shape(K)] under the posterior. */
  pCorrect: number;
  /**
   * P(correct) at the forgetting floor (where the score decays to without evidence); present when the
   * emission is the logistic one (per topic), else guess + (1 - guess - slip) floor.
   */
  pFloor?: number;
  /**
   * Where this estimate decays to without new evidence (the half-life's asymptote, for the request-time decay
   * of a stored score): the global floor, or with the durable-share forgetting the score less the part of its
   * posterior's gain above the prior mean that is not durable (exact: floor + (score - floor) 2^(-t / h) is
   * the filter's own mean t days later). Absent (an estimate built elsewhere) = the params' global floor.
   */
  floor?: number;
  /** The prior mean the sequence started from (explanation base). */
  base: number;
  /** Signed change of the posterior mean by each factor; base + sum = score. */
  contributions: Record<LatentFactor, number>;
  /** Graded observations (quiz answers, practice answers, assignments) and events of any kind. */
  observations: number;
  events: number;
  /** Days from the last event to the scoring time (null without events). */
  daysSinceLast: number | null;
}

const factorIndex = (f: LatentFactor): number => LATENT_FACTORS.indexOf(f);
const FACTOR_FORGETTING = factorIndex("forgetting");
const OBS_FACTOR: Record<number, number> = {
  [KIND_QUIZ]: factorIndex("quiz_answers"),
  [KIND_PRACTICE]: factorIndex("practice_results"),
  [KIND_ASSIGNMENT]: factorIndex("assignment_scores"),
};
const LEARN_FACTOR: number[] = [
  factorIndex("learning_quiz"),
  factorIndex("learning_practice"),
  factorIndex("learning_video"),
  factorIndex("learning_assignment"),
  factorIndex("learning_chatbot"),
];

/**
 * The filter's per-pair state between events (what the stream stores per (student, topic); encoded by
 * models/latentState.ts). Built only by LatentFilter.init / step: one fold for the stream and the batch.
 */
export interface LatentState {
  /** Posterior over the grid cells (float32: the stored precision). */
  p: Float32Array;
  /** Mean of the discretised prior (the explanation's base). */
  base: number;
  /** Signed change of the posterior mean by each factor (LATENT_FACTORS order), up to the last event. */
  contributions: Float64Array;
  /** Graded observations and events folded in. */
  observations: number;
  events: number;
  /** Time (days) of the last event folded in; NaN without events. */
  lastT: number;
}

/**
 * The basis offsets (logits) of the student effect: -3 .. 3 in steps of 1 (the range of round 6's search).
 * A model with a student effect carries a pair's filter from each (LatentFilter.studentGrid).
 */
export const STUDENT_GRID: readonly number[] = [-3, -2, -1, 0, 1, 2, 3];

/**
 * How many off-basis student offsets keep their kernels in a LatentFilter (kernelFor): the newest ones. A
 * student's scoring and offset-uncertainty passes use up to 5 offsets in turn (its offset, +-1 step, +-1 sd),
 * each over all of its topics, so 8 keeps every reuse within a student while the memory stays bounded.
 */
export const LATENT_OFF_GRID_KERNEL_OFFSETS = 8;
const NO_STUDENT_GRID: readonly number[] = [0];
/** Pair summaries are rounded to multiples of 1 / LL_QUANTUM (exact float64 sums up to ~2^28 nats). */
const LL_QUANTUM = 2 ** 24;

/**
 * A pair's filter state under the student effect: one LatentState per basis offset (LatentFilter.studentGrid,
 * a single one without the effect) and each one's log-likelihood of the pair's graded events.
 */
export interface LatentBasisState {
  parts: LatentState[];
  ll: Float64Array;
}

/** `LatentFilter.predictStudentBasis`'s result: predictStudent's, with each sequence's basis parts' numbers. */
export interface StudentBasisPrediction {
  offset: number;
  estimates: LatentEstimate[];
  /** Per sequence, each basis part's log-likelihood of its graded events (`studentGrid` order). */
  ll: Float64Array[];
  /** Per sequence, each basis part's score as of the as-of (empty from `predictStudent`). */
  scores: Float64Array[];
}

/**
 * lean28: one sequence's basis parts folded together (LatentKernel.foldWide): the posteriors (part-major, in `res`,
 * one of the two buffers `a`, `b`), each part's factor contributions (part-major) and last mean, prior mean
 * (`base`), and the counts every part shares.
 */
interface WideFold {
  a: Float64Array;
  b: Float64Array;
  res: Float64Array;
  contributions: Float64Array;
  means: Float64Array;
  bases: Float64Array;
  observations: number;
  events: number;
  lastT: number;
}

/** Mean of a posterior over grid midpoints `x`. */
function meanOf(p: Float32Array, x: Float64Array): number {
  let s = 0;
  for (let i = 0; i < p.length; i++) s += p[i]! * x[i]!;
  return s;
}

/** A fitted filter: parameters, grid and per-topic priors (the estimator shape: fit / predict / toJSON). */
export class LatentFilter {
  readonly json: LatentModelJson;
  private readonly kernel: LatentKernel;
  private readonly kernels = new Map<string, LatentKernel>();
  /**
   * Kernels at a basis offset (`studentGrid`) with a learning loading: offset -> topic ("" = no own threshold)
   * -> kernel. Kept for the model's life: the basis has a few offsets.
   */
  private readonly shiftedKernels = new Map<number, Map<string, LatentKernel>>();
  /**
   * Kernels at other offsets (a student's own offset, its +-sd or +-step for the offset's uncertainty, c x the
   * offset of the rein-in): continuous values, one set per student, so only the LATENT_OFF_GRID_KERNEL_OFFSETS
   * most recently added offsets are kept (round 25: kept for the model's life they held ~1.6 GB on a 3,000-student
   * store). A kernel is a pure function of (params, bins, threshold, shift): a rebuilt one computes the same bits.
   */
  private readonly offGridKernels = new Map<number, Map<string, LatentKernel>>();
  private readonly p: Float64Array;
  /** A float32 posterior to fold in (the lean folds' state: `leanBasisLL`, `predictScore`). */
  private readonly q: Float32Array;
  /**
   * fold26: the discretised prior (float32, as `init` stores it) and its mean per topic and basis offset
   * (`studentGrid` index): the same for every student, so computed once (a few topics x 7 offsets x 40 cells).
   */
  private readonly priors = new Map<string, ({ p: Float32Array; base: number } | undefined)[]>();
  /** `basisKernels`' cache: the kernels at the basis offsets per topic (shifted ones are kept for the model's life). */
  private readonly basisKernelsByTopic = new Map<string, LatentKernel[]>();
  /** `priorEstimate`'s basis priors and `basisPriorScores`' scores per topic. */
  private readonly priorBases = new Map<string, LatentBasisState>();
  private readonly priorScores = new Map<string, { asOfDays: number; scores: Float64Array }>();
  /** `wideKernels`' cache. */
  private readonly wideKernelsByTopic = new Map<string, WideKernels | null>();
  /** `wideFold`'s buffers per sequence of a student. */
  private readonly wideFolds: WideFold[] = [];
  /**
   * wasm34: which kernel folds the basis parts (`useWideKernel`; "js" = LatentKernel.foldWide, the reference) and
   * the WebAssembly one's instance, made on the first fold that uses it.
   */
  private wideKernel: LatentWideKernel = "js";
  private wasm: LatentWideWasm | null = null;
  /** Two states to fold the basis parts predictStudent mixes into (mixParts copies what it keeps). */
  private readonly scratchA: LatentState;
  private readonly scratchC: LatentState;

  constructor(json: LatentModelJson) {
    this.json = json;
    this.kernel = new LatentKernel(json.params, json.bins).keepForgetPlans();
    this.p = new Float64Array(json.bins);
    this.q = new Float32Array(json.bins);
    this.scratchA = this.init("", 0);
    this.scratchC = this.init("", 0);
  }

  /**
   * wasm34: fold the basis parts with `kind`'s kernel: "wasm" (LatentKernel.foldWideWasm) or "js"
   * (LatentKernel.foldWide, the default). The same bits either way; "wasm" is faster where WebAssembly runs.
   */
  useWideKernel(kind: LatentWideKernel): this {
    if (!LATENT_WIDE_KERNELS.includes(kind))
      throw new LatentFilterError(
        `the wide kernel must be one of ${LATENT_WIDE_KERNELS.join(", ")} (got "${kind}")`,
      );
    this.wideKernel = kind;
    return this;
  }

  private wideEngine(): LatentWideWasm | null {
    if (this.wideKernel === "js") return null;
    this.wasm ??= new LatentWideWasm();
    return this.wasm;
  }

  /** The topic's emission threshold (logistic emission; undefined for the linear one). */
  threshold(topic: string): number | undefined {
    if (this.json.params.slope === undefined) return undefined;
    return this.json.topicThreshold?.[topic] ?? this.json.params.threshold;
  }

  /**
   * The kernel of a topic: the shared one unless the topic has its own emission threshold; at a student
   * offset `offset` other than 0 with a learning loading (studentLearnLoading), the one whose learning rates
   * are shifted by loading x offset (a basis part's, `studentGrid`).
   */
  kernelFor(topic: string, offset = 0): LatentKernel {
    const loading = this.json.studentLearnLoading ?? 0;
    const th = this.json.params.slope === undefined ? undefined : this.json.topicThreshold?.[topic];
    if (offset === 0 || loading === 0) {
      if (th === undefined) return this.kernel;
      let k = this.kernels.get(topic);
      if (k === undefined) {
        k = new LatentKernel(this.json.params, this.json.bins, th).keepForgetPlans();
        this.kernels.set(topic, k);
      }
      return k;
    }
    let byTopic = this.shiftedKernels.get(offset) ?? this.offGridKernels.get(offset);
    if (byTopic === undefined) {
      byTopic = new Map();
      if (this.studentGrid().includes(offset)) this.shiftedKernels.set(offset, byTopic);
      else {
        const cache = this.offGridKernels;
        if (cache.size >= LATENT_OFF_GRID_KERNEL_OFFSETS) {
          // Maps iterate in insertion order: drop the oldest offset's kernels.
          const oldest = cache.keys().next().value;
          if (oldest !== undefined) cache.delete(oldest);
        }
        cache.set(offset, byTopic);
      }
    }
    const key = th === undefined ? "" : topic;
    let k = byTopic.get(key);
    if (k === undefined) {
      // The emission tables are the topic's unshifted kernel's (kept for the model's life): only the learning
      // maps depend on the offset.
      // fold26: and the learning maps are any kernel's at this offset (they do not depend on the topic).
      const maps: LatentKernel | undefined = byTopic.values().next().value;
      k = new LatentKernel(
        this.json.params,
        this.json.bins,
        th,
        loading * offset,
        this.kernelFor(topic),
        maps,
      );
      byTopic.set(key, k);
    }
    return k;
  }

  static fromJSON(json: LatentModelJson): LatentFilter {
    if (json.version !== 1)
      throw new LatentFilterError(`latent model version ${json.version} is not 1: refit it`);
    return new LatentFilter(json);
  }

  toJSON(): LatentModelJson {
    return this.json;
  }

  priorMean(topic: string): number {
    return this.json.topicPriorMean[topic] ?? this.json.params.priorMean;
  }

  /**
   * The estimate of one (student, topic) from its events (time order) as of `asOfDays` (same time unit,
   * >= the last event's time), with the posterior mean change of each step attributed to its factor.
   * The one fold: init, then step per event, then estimate (the stream carries the state between events).
   */
  predict(topic: string, events: readonly LatentEvent[], asOfDays: number, priorOffset = 0): LatentEstimate {
    const s = this.init(topic, priorOffset);
    for (const e of events) this.step(s, e, topic, priorOffset);
    return this.estimate(s, asOfDays, topic);
  }

  /**
   * The state of a pair without events: the topic's prior on the grid (float32, as stored), its mean shifted by
   * `priorOffset` logits (the student effect, LatentFilter.studentOffset; 0 = none).
   */
  /** `init` into an existing state (the scratch states of predictStudent's folds). */
  private initInto(s: LatentState, topic: string, priorOffset: number): LatentState {
    s.base = this.priorInto(topic, priorOffset, s.p);
    s.contributions.fill(0);
    s.observations = 0;
    s.events = 0;
    s.lastT = Number.NaN;
    return s;
  }

  init(topic: string, priorOffset = 0): LatentState {
    const p = new Float32Array(this.json.bins);
    const base = this.priorInto(topic, priorOffset, p);
    return {
      p,
      base,
      contributions: new Float64Array(LATENT_FACTORS.length),
      observations: 0,
      events: 0,
      lastT: Number.NaN,
    };
  }

  /**
   * Writes `init`'s posterior (the topic's prior shifted by `priorOffset`, float32) into `out` and returns its
   * mean: the explanation's base (the discretised prior's mean differs from the topic's prior mean by the grid's
   * rounding, so base + contributions = score). At a basis offset from the cache (`priors`).
   */
  private priorInto(topic: string, priorOffset: number, out: Float32Array): number {
    const grid = this.studentGrid();
    const j = grid.indexOf(priorOffset);
    let byOffset = j < 0 ? undefined : this.priors.get(topic);
    const hit = byOffset?.[j];
    if (hit !== undefined) {
      out.set(hit.p);
      return hit.base;
    }
    const k = this.kernelFor(topic);
    const p = this.p;
    const prior = this.priorMean(topic);
    k.prior(priorOffset === 0 ? prior : sigmoid(logit(prior) + priorOffset), p);
    for (let i = 0; i < p.length; i++) out[i] = p[i]!;
    const base = meanOf(out, k.x);
    if (j >= 0) {
      if (byOffset === undefined) {
        byOffset = new Array(grid.length);
        this.priors.set(topic, byOffset);
      }
      byOffset[j] = { p: out.slice(), base };
    }
    return base;
  }

  /**
   * Folds one event (time order: `e.t` >= the state's last event) into `s`, in place: forgetting since the
   * last event, the outcome (emission), then learning and noise. The posterior is rounded to float32 after
   * every event (the stored form), so a state continued from storage and a replay from the start give the
   * same bits; the rounding's change of the mean is counted with the event's learning factor. `topic` picks
   * the topic's emission (it matters only for the opt-in item-difficulty emission); `offset`, the student
   * offset the state was started at (`init`), picks its learning rates when the model has a learning loading.
   * Returns ln P(outcome | history) of the event (0 for an ungraded one).
   */
  step(s: LatentState, e: LatentEvent, topic = "", offset = 0): number {
    if (s.p.length !== this.json.bins)
      throw new LatentFilterError(`latent state has ${s.p.length} cells, the model ${this.json.bins}`);
    return this.stepWith(s, e, this.kernelFor(topic, offset));
  }

  /**
   * `step` of every event of `events` into `s` with the kernel given (`kernelFor(topic, offset)`): the same
   * arithmetic, the posterior kept float32-rounded in place between events (learnFrom's round32) and stored once.
   */
  private foldInto(s: LatentState, events: readonly LatentEvent[], k: LatentKernel): void {
    const p = this.p;
    for (let i = 0; i < p.length; i++) p[i] = s.p[i]!;
    const c = s.contributions;
    let mean = k.mean(p);
    for (const e of events) {
      if (Number.isFinite(s.lastT)) {
        k.forget(p, e.t - s.lastT, s.base, s.events);
        const m = k.mean(p);
        c[FACTOR_FORGETTING]! += m - mean;
        mean = m;
      }
      s.lastT = e.t;
      k.observe(p, e);
      const of = OBS_FACTOR[e.kind];
      if (of !== undefined) {
        const m = k.mean(p);
        c[of]! += m - mean;
        mean = m;
        s.observations += e.kind === KIND_ASSIGNMENT ? 1 : e.n;
      }
      k.learnFrom(p, e.kind, true);
      // The rounded posterior's mean (`step`'s meanOf(s.p)) is the next event's starting mean.
      const m = k.mean(p);
      c[LEARN_FACTOR[e.kind] ?? LEARN_FACTOR[KIND_QUIZ]!]! += m - mean;
      mean = m;
      s.events++;
    }
    s.p.set(p);
  }

  /** `step` with the kernel given (`kernelFor(topic, offset)`). */
  private stepWith(s: LatentState, e: LatentEvent, k: LatentKernel): number {
    const p = this.p;
    for (let i = 0; i < p.length; i++) p[i] = s.p[i]!;
    const c = s.contributions;
    let mean = k.mean(p);
    if (Number.isFinite(s.lastT)) {
      k.forget(p, e.t - s.lastT, s.base, s.events);
      const m = k.mean(p);
      c[FACTOR_FORGETTING]! += m - mean;
      mean = m;
    }
    s.lastT = e.t;
    const ll = k.observe(p, e);
    const of = OBS_FACTOR[e.kind];
    if (of !== undefined) {
      const m = k.mean(p);
      c[of]! += m - mean;
      mean = m;
      s.observations += e.kind === KIND_ASSIGNMENT ? 1 : e.n;
    }
    k.learnFrom(p, e.kind);
    s.p.set(p);
    c[LEARN_FACTOR[e.kind] ?? LEARN_FACTOR[KIND_QUIZ]!]! += meanOf(s.p, k.x) - mean;
    s.events++;
    return ll;
  }

  /**
   * The estimate of a state as of `asOfDays` (>= its last event): forgetting to then, mean, interval (`topic`
   * as for `step`).
   */
  estimate(s: LatentState, asOfDays: number, topic = ""): LatentEstimate {
    const k = this.kernelFor(topic);
    const p = this.p;
    for (let i = 0; i < p.length; i++) p[i] = s.p[i]!;
    const contributions = {} as Record<LatentFactor, number>;
    for (let i = 0; i < LATENT_FACTORS.length; i++) contributions[LATENT_FACTORS[i]!] = s.contributions[i]!;
    let mean = k.mean(p);
    const last = s.lastT;
    const prm = this.json.params;
    // Round 16 (`asOfForgetting: "decay"`): the posterior stays at the last event; the summary is decayed below.
    const idle = prm.asOfForgetting === "decay" && Number.isFinite(last) ? Math.max(0, asOfDays - last) : 0;
    if (Number.isFinite(last) && prm.asOfForgetting !== "decay") {
      k.forget(p, asOfDays - last, s.base, s.events);
      const m = k.mean(p);
      contributions.forgetting += m - mean;
      mean = m;
    }
    const w = this.intervalScaleAt(s.observations);
    const widen = (q: number) => Math.min(1, Math.max(0, mean + w * (q - mean)));
    // The durable-share form moves each cell above the prior mean b to b + (x - b) d: the mean after t more
    // days is mean - (1 - d) E[(K - b)+], d = share + (1 - share) 2^(-t / h), i.e. exactly
    // floor + (mean - floor) 2^(-t / h) with floor = mean - (1 - share) E[(K - b)+].
    let floor = prm.floor;
    if (prm.durableShare !== undefined) {
      let above = 0;
      for (let i = 0; i < p.length; i++) if (k.x[i]! > s.base) above += p[i]! * (k.x[i]! - s.base);
      floor = mean - (1 - prm.durableShare) * above;
    } else floor = consolidatedFloor(prm, mean, s.events);
    const pFloor =
      prm.slope !== undefined
        ? prm.guess + (1 - prm.guess - prm.slip) * emissionShape(prm, floor, this.threshold(topic))
        : undefined;
    let score = mean;
    let lo = widen(k.quantile(p, 0.1));
    let hi = widen(k.quantile(p, 0.9));
    let pCorrect = k.predictive(p);
    // Round 17 (LatentModelJson.centreShiftByEvidence): the centre moved by its evidence band's shift.
    const shift = centreShiftAt(this.json.centreShiftByEvidence, s.observations);
    if (shift !== 0) {
      const clip = (x: number) => Math.min(1, Math.max(0, x));
      const moved = clip(score + shift);
      lo = clip(lo + shift);
      hi = clip(hi + shift);
      if (prm.slope !== undefined) {
        const em = { guess: prm.guess, slip: prm.slip, slope: prm.slope };
        const z = emissionLogit(pCorrect, em) + (moved - score) * prm.slope;
        pCorrect = prm.guess + (1 - prm.guess - prm.slip) / (1 + Math.exp(-z));
      }
      // (No factor of its own: the served explanation's `rest` carries it, so the factors still sum.)
      score = moved;
      mean = moved;
    }
    if (idle > 0) {
      // The as-of step of round 16: the estimate at the last event moved by the deterministic decay, with the
      // very function (and P(correct)'s level, serving/latentScoring.ts latentDecay) GET /mastery applies.
      const h = asOfHalfLife(prm);
      score = decayTowards(mean, floor, h, idle);
      lo = decayTowards(lo, floor, h, idle);
      hi = decayTowards(hi, floor, h, idle);
      pCorrect = decayTowards(pCorrect, pFloor ?? prm.guess + (1 - prm.guess - prm.slip) * floor, h, idle);
      contributions.forgetting += score - mean;
    }
    return {
      score,
      lo,
      hi,
      pCorrect,
      ...(pFloor !== undefined ? { pFloor } : {}),
      floor,
      base: s.base,
      contributions,
      observations: s.observations,
      events: s.events,
      daysSinceLast: Number.isFinite(last) ? Math.max(0, asOfDays - last) : null,
    };
  }

  /** The interval's spread factor of a pair with `observations` graded observations (intervalScaleByEvidence). */
  intervalScaleAt(observations: number): number {
    let w = this.json.intervalScale ?? 1;
    for (const b of this.json.intervalScaleByEvidence ?? []) if (observations >= b.from) w = b.scale;
    return w;
  }

  /**
   * The prior offsets (logits) of the student effect's basis: [0] without a student effect, else
   * STUDENT_GRID. A pair's state is the filter run from the topic's prior shifted by each of them
   * (LatentBasisState); the prior at any offset o in between is the mixture of its two neighbours' priors
   * (weights linear in o), so the pair's posterior and likelihood at o are exact mixtures of the stored ones
   * (the filter is linear in its prior): no re-run when the student's offset moves.
   */
  studentGrid(): readonly number[] {
    return (this.json.studentPriorSd ?? 0) > 0 ? STUDENT_GRID : NO_STUDENT_GRID;
  }

  /** A pair without events, from each basis prior (`studentGrid`). */
  initBasis(topic: string): LatentBasisState {
    const grid = this.studentGrid();
    return { parts: grid.map((o) => this.init(topic, o)), ll: new Float64Array(grid.length) };
  }

  /**
   * Folds one event into every basis part (as `step`, each part at its own basis offset), adding each part's
   * log-likelihood of it.
   */
  stepBasis(b: LatentBasisState, e: LatentEvent, topic = ""): void {
    const grid = this.studentGrid();
    if (b.parts.length !== grid.length)
      throw new LatentFilterError(
        `latent state has ${b.parts.length} basis parts, the model's student effect ${grid.length}: rebuild it from its events`,
      );
    for (let j = 0; j < b.parts.length; j++) b.ll[j]! += this.step(b.parts[j]!, e, topic, grid[j]!);
  }

  /**
   * A pair's summary for its student's offset: its log-likelihood at each basis offset, rounded to
   * multiples of 2^-24 so that sums of summaries are exact in float64 (any order, and a per-student
   * record can add the new and subtract the old summary of a pair without drift).
   */
  static summary(b: LatentBasisState): Float64Array {
    return b.ll.map((v) => Math.round(v * LL_QUANTUM) / LL_QUANTUM);
  }

  /**
   * A student's offset (logit units) of the prior mean shared by all of their topics, in closed form from the
   * sum of their pairs' summaries (`summary`, one value per basis offset): the penalised log-likelihood
   * F_j = sum_j - o_j^2 / (2 studentPriorSd^2) at the basis offsets, then the vertex of the parabola through
   * the best one and its neighbours (the best one itself at the grid's edge). 0 without a student effect.
   */
  offsetFromSummary(sum: ArrayLike<number>): number {
    const sd = this.json.studentPriorSd ?? 0;
    const grid = this.studentGrid();
    if (!(sd > 0) || grid.length < 3 || sum.length !== grid.length) return 0;
    // Round 19: the mode times the student part's reined-in scale (studentOffsetScale, 1 when absent).
    const scale = this.json.studentOffsetScale ?? 1;
    const f = grid.map((o, j) => sum[j]! - (0.5 * o * o) / (sd * sd));
    let best = 0;
    for (let j = 1; j < f.length; j++) if (f[j]! > f[best]!) best = j;
    if (best === 0 || best === f.length - 1) return scale * grid[best]!;
    const a = f[best - 1]!;
    const b = f[best]!;
    const c = f[best + 1]!;
    const den = a - 2 * b + c;
    if (!(den < 0)) return scale * grid[best]!;
    const step = grid[best + 1]! - grid[best]!;
    return scale * (grid[best]! + (0.5 * step * (a - c)) / den);
  }

  /**
   * Whether the student effect covers `topic`: the topics with a fitted prior mean (the fit sample's). A pair of
   * another topic neither informs the student's offset nor is shifted by it (offset 0), so that adding a pair
   * of an unknown topic never moves the others' scores: the batch and the stream agree on which pairs count.
   */
  studentTopic(topic: string): boolean {
    return (this.json.studentPriorSd ?? 0) > 0 && Object.hasOwn(this.json.topicPriorMean, topic);
  }

  /** The offset a pair of `topic` is scored at: the student's for a covered topic (`studentTopic`), else 0. */
  offsetFor(topic: string, studentOffset: number): number {
    return this.studentTopic(topic) ? studentOffset : 0;
  }

  /**
   * The student's offset from their pairs' basis states: the sum of the summaries (`summary`) of the pairs
   * of covered topics (`studentTopic`), then `offsetFromSummary`. Exact sums: any order of the pairs.
   */
  studentOffsetOf(pairs: readonly { topic: string; state: LatentBasisState }[]): number {
    return this.offsetOfLogLiks(pairs.map(({ topic, state }) => ({ topic, ll: state.ll })));
  }

  /** `studentOffsetOf` from each pair's basis log-likelihoods (LatentBasisState.ll): the same sums. */
  private offsetOfLogLiks(pairs: readonly { topic: string; ll: Float64Array }[]): number {
    const sum = new Float64Array(this.studentGrid().length);
    for (const { topic, ll } of pairs) {
      if (!this.studentTopic(topic)) continue;
      for (let j = 0; j < sum.length; j++) sum[j]! += Math.round(ll[j]! * LL_QUANTUM) / LL_QUANTUM;
    }
    return this.offsetFromSummary(sum);
  }

  /**
   * The pair's state at the student's `offset`: the posterior from the mixture of the two neighbouring basis
   * priors (weights 1 - w, w by where the offset lies between them), i.e. the mixture of the two basis
   * posteriors weighted by prior weight x likelihood. Base and factor contributions mix with the same
   * weights, so base + contributions = the mixed mean still holds. The part itself without a student effect.
   */
  mixAt(b: LatentBasisState, offset: number): LatentState {
    const grid = this.studentGrid();
    if (b.parts.length !== grid.length)
      throw new LatentFilterError(
        `latent state has ${b.parts.length} basis parts, the model's student effect ${grid.length}: rebuild it from its events`,
      );
    if (grid.length === 1) return b.parts[0]!;
    const { j, w } = this.basisPosition(offset);
    return this.mixParts(b.parts[j]!, b.parts[j + 1]!, b.ll[j]!, b.ll[j + 1]!, w);
  }

  /** The basis parts `j`, `j + 1` that `offset` lies between (clamped to the grid) and the upper one's prior weight. */
  private basisPosition(offset: number): { j: number; w: number } {
    const grid = this.studentGrid();
    const lo = grid[0]!;
    const step = grid[1]! - lo;
    const pos = Math.min(grid.length - 1, Math.max(0, (offset - lo) / step));
    const j = Math.min(grid.length - 2, Math.floor(pos));
    return { j, w: pos - j };
  }

  /** `mixAt` of two neighbouring basis parts with log-likelihoods `la`, `lc` and the upper one's prior weight `w`. */
  private mixParts(a: LatentState, c: LatentState, la: number, lc: number, w: number): LatentState {
    const m = Math.max(la, lc);
    let wa = (1 - w) * Math.exp(la - m);
    let wc = w * Math.exp(lc - m);
    const z = wa + wc;
    wa /= z;
    wc /= z;
    const p = new Float32Array(a.p.length);
    for (let i = 0; i < p.length; i++) p[i] = wa * a.p[i]! + wc * c.p[i]!;
    const contributions = new Float64Array(a.contributions.length);
    for (let i = 0; i < contributions.length; i++)
      contributions[i] = wa * a.contributions[i]! + wc * c.contributions[i]!;
    const base = wa * a.base + wc * c.base;
    // The float32 posterior's mean differs from the mixed mean by rounding (~1e-8): counted with the
    // forgetting factor, so that base + contributions = the posterior's mean as for a folded state.
    let sum = base;
    for (let i = 0; i < contributions.length; i++) sum += contributions[i]!;
    contributions[FACTOR_FORGETTING]! += meanOf(p, this.kernelFor("").x) - sum;
    return { p, base, contributions, observations: a.observations, events: a.events, lastT: a.lastT };
  }

  /**
   * Each basis part's log-likelihood of a sequence with `step`'s arithmetic (float32 posterior between events),
   * without the explanation or a state kept: for the summaries (`offsetOfLogLiks`).
   */
  private leanBasisLL(
    topic: string,
    events: readonly LatentEvent[],
    slot: number,
    scores?: { out: Float64Array; asOfDays: number },
  ): { ll: Float64Array; wide: WideFold | null } {
    const grid = this.studentGrid();
    const out = new Float64Array(grid.length);
    const p = this.p;
    const q = this.q;
    let observations = 0;
    for (const e of events)
      if (OBS_FACTOR[e.kind] !== undefined) observations += e.kind === KIND_ASSIGNMENT ? 1 : e.n;
    const ks = this.basisKernels(topic);
    const wk = ks.length > 1 ? this.wideKernels(topic, ks) : null;
    if (wk !== null) {
      // lean28: the parts folded together (LatentKernel.foldWide: the same arithmetic per part), keeping each
      // part's posterior and factor contributions (`foldInto`'s) for the estimate's two parts.
      const W = ks.length;
      const G = p.length;
      const w = this.wideFold(slot, W);
      for (let r = 0; r < W; r++) {
        w.bases[r] = this.priorInto(topic, grid[r]!, q);
        for (let i = 0; i < G; i++) w.a[r * G + i] = q[i]!;
      }
      w.contributions.fill(0);
      ks[0]!.wideMeans(w.a, W, w.means);
      const engine = this.wideEngine();
      w.res =
        engine === null
          ? LatentKernel.foldWide(wk, events, w.a, w.b, out, w)
          : LatentKernel.foldWideWasm(engine, wk, events, w.a, w.b, out, w);
      w.observations = observations;
      w.events = events.length;
      w.lastT = events.length > 0 ? events[events.length - 1]!.t : Number.NaN;
      if (scores !== undefined)
        for (let r = 0; r < W; r++) {
          for (let i = 0; i < G; i++) p[i] = w.res[r * G + i]!;
          scores.out[r] = this.scoreOfFolded(
            topic,
            p,
            w.bases[r]!,
            w.lastT,
            observations,
            events.length,
            scores.asOfDays,
          );
        }
      return { ll: out, wide: w };
    }
    for (let j = 0; j < grid.length; j++) {
      const k = ks[j]!;
      const base = this.priorInto(topic, grid[j]!, q);
      for (let i = 0; i < p.length; i++) p[i] = q[i]!;
      let ll = 0;
      let last = Number.NaN;
      // `p` holds float32 values between events (learnFrom's round32): `step`'s copy through s.p, in place.
      for (let n = 0; n < events.length; n++) {
        const e = events[n]!;
        if (Number.isFinite(last)) k.forget(p, e.t - last, base, n);
        last = e.t;
        ll += k.observe(p, e);
        k.learnFrom(p, e.kind, true);
      }
      out[j] = ll;
      // fold27: the part's score as of asOfDays: predictScore at this basis offset (the same fold and arithmetic).
      if (scores !== undefined)
        scores.out[j] = this.scoreOfFolded(
          topic,
          p,
          base,
          last,
          observations,
          events.length,
          scores.asOfDays,
        );
    }
    return { ll: out, wide: null };
  }

  /** The topic's kernels at the basis offsets (`studentGrid` order), kept per topic. */
  private basisKernels(topic: string): LatentKernel[] {
    let ks = this.basisKernelsByTopic.get(topic);
    if (ks === undefined) {
      ks = this.studentGrid().map((g) => this.kernelFor(topic, g));
      this.basisKernelsByTopic.set(topic, ks);
    }
    return ks;
  }

  /** The topic's basis kernels as `LatentKernel.foldWide` folds them (null if it cannot), kept per topic. */
  private wideKernels(topic: string, ks: readonly LatentKernel[]): WideKernels | null {
    let wk = this.wideKernelsByTopic.get(topic);
    if (wk === undefined) {
      wk = LatentKernel.wide(ks);
      this.wideKernelsByTopic.set(topic, wk);
    }
    return wk;
  }

  /** The `slot`-th sequence's wide fold buffers (W parts), kept between students. */
  private wideFold(slot: number, W: number): WideFold {
    let w = this.wideFolds[slot];
    if (w === undefined || w.bases.length !== W) {
      const n = W * this.json.bins;
      const a = new Float64Array(n);
      w = {
        a,
        b: new Float64Array(n),
        res: a,
        contributions: new Float64Array(W * LATENT_FACTORS.length),
        means: new Float64Array(W),
        bases: new Float64Array(W),
        observations: 0,
        events: 0,
        lastT: Number.NaN,
      };
      this.wideFolds[slot] = w;
    }
    return w;
  }

  /** Part `r` of a wide fold as `foldInto` leaves a state started by `initInto` at that basis offset. */
  private wideState(s: LatentState, w: WideFold, r: number): LatentState {
    const G = s.p.length;
    const F = LATENT_FACTORS.length;
    for (let i = 0; i < G; i++) s.p[i] = w.res[r * G + i]!;
    for (let f = 0; f < F; f++) s.contributions[f] = w.contributions[r * F + f]!;
    s.base = w.bases[r]!;
    s.observations = w.observations;
    s.events = w.events;
    s.lastT = w.lastT;
    return s;
  }

  /**
   * `predict(topic, events, asOfDays, priorOffset).score` without the explanation: the same folds (float32
   * posterior between events) and the same arithmetic of the score (`estimate`), for the interval's widening
   * (models/latentStudent.ts), which needs only the score.
   */
  predictScore(topic: string, events: readonly LatentEvent[], asOfDays: number, priorOffset = 0): number {
    const p = this.p;
    const q = this.q;
    const base = this.priorInto(topic, priorOffset, q);
    const k = this.kernelFor(topic, priorOffset);
    for (let i = 0; i < p.length; i++) p[i] = q[i]!;
    let last = Number.NaN;
    let observations = 0;
    for (let n = 0; n < events.length; n++) {
      const e = events[n]!;
      if (Number.isFinite(last)) k.forget(p, e.t - last, base, n);
      last = e.t;
      k.observe(p, e);
      if (OBS_FACTOR[e.kind] !== undefined) observations += e.kind === KIND_ASSIGNMENT ? 1 : e.n;
      k.learnFrom(p, e.kind, true);
    }
    return this.scoreOfFolded(topic, p, base, last, observations, events.length, asOfDays);
  }

  /**
   * `estimate`'s score, in its order of operations, of a folded posterior `p` (float32 values; forgotten to
   * as-of in place) with its prior's mean `base`, last event time, graded observations and events.
   */
  private scoreOfFolded(
    topic: string,
    p: Float64Array,
    base: number,
    last: number,
    observations: number,
    events: number,
    asOfDays: number,
  ): number {
    const ke = this.kernelFor(topic);
    let mean = ke.mean(p);
    const prm = this.json.params;
    const idle = prm.asOfForgetting === "decay" && Number.isFinite(last) ? Math.max(0, asOfDays - last) : 0;
    if (Number.isFinite(last) && prm.asOfForgetting !== "decay") {
      ke.forget(p, asOfDays - last, base, events);
      mean = ke.mean(p);
    }
    // The durable-share floor is the posterior's, before the centre's shift (only the as-of decay uses it);
    // so is the consolidated one (`asOfFloor`).
    let floor = prm.floor;
    if (idle > 0 && prm.durableShare !== undefined) {
      let above = 0;
      for (let i = 0; i < p.length; i++) if (ke.x[i]! > base) above += p[i]! * (ke.x[i]! - base);
      floor = mean - (1 - prm.durableShare) * above;
    } else if (idle > 0) floor = consolidatedFloor(prm, mean, events);
    let score = mean;
    const shift = centreShiftAt(this.json.centreShiftByEvidence, observations);
    if (shift !== 0) {
      score = Math.min(1, Math.max(0, score + shift));
      mean = score;
    }
    if (idle > 0) score = decayTowards(mean, floor, asOfHalfLife(prm), idle);
    return score;
  }

  /**
   * lean28: the estimate of a pair without events at the student's `offset` (`offsetFor`'s) as of `asOfDays`:
   * `estimate(mixAt(initBasis(topic), offset), asOfDays, topic)`, with the basis priors kept per topic (the same for
   * every student; mixAt and estimate only read them).
   */
  priorEstimate(topic: string, offset: number, asOfDays: number): LatentEstimate {
    let b = this.priorBases.get(topic);
    if (b === undefined) {
      b = this.initBasis(topic);
      this.priorBases.set(topic, b);
    }
    return this.estimate(this.mixAt(b, offset), asOfDays, topic);
  }

  /**
   * lean28: the basis priors' scores of a pair without events (`predictScore(topic, [], asOfDays, g)` at each basis
   * offset g, `studentGrid` order): the same numbers for every student, so kept per topic for the last as-of.
   * Read-only.
   */
  basisPriorScores(topic: string, asOfDays: number): Float64Array {
    const hit = this.priorScores.get(topic);
    if (hit !== undefined && Object.is(hit.asOfDays, asOfDays)) return hit.scores;
    const scores = Float64Array.from(this.studentGrid(), (g) => this.predictScore(topic, [], asOfDays, g));
    this.priorScores.set(topic, { asOfDays, scores });
    return scores;
  }

  /**
   * fold27: `values` given at the basis offsets (`studentGrid`), linearly interpolated at `offset` (clamped to
   * the grid): e.g. the basis parts' scores (`predictStudentBasis`) at a student's offset -+ its sd.
   */
  interpolateBasis(values: ArrayLike<number>, offset: number): number {
    if (values.length === 1) return values[0]!;
    const { j, w } = this.basisPosition(offset);
    return w === 0 ? values[j]! : (1 - w) * values[j]! + w * values[j + 1]!;
  }

  /** A fold of a sequence from every basis prior. */
  foldBasis(topic: string, events: readonly LatentEvent[]): LatentBasisState {
    const b = this.initBasis(topic);
    for (const e of events) this.stepBasis(b, e, topic);
    return b;
  }

  /**
   * A student's offset (logit units) of the prior mean shared by all of their topics: empirical Bayes, the
   * maximum of the penalised likelihood of their sequences (`offsetFromSummary` over the basis). 0 without a
   * student effect. Pass it to `predict` for one topic, or use `predictStudent` (the scoring path).
   */
  studentOffset(sequences: readonly LatentSequence[]): number {
    if (!((this.json.studentPriorSd ?? 0) > 0)) return 0;
    return this.studentOffsetOf(
      sequences.map((s) => ({ topic: s.topic, state: this.foldBasis(s.topic, s.events) })),
    );
  }

  /**
   * The estimates of one student's sequences as of `asOfDays` with their student offset: each sequence folded
   * once from every basis prior, the offset from the sum of the summaries, each estimate from the mixed state
   * at the offset (`offsetFor`: 0 for a topic the effect does not cover).
   * The stream computes the same from the stored basis states (serving/latentStream.ts).
   */
  predictStudent(
    sequences: readonly LatentSequence[],
    asOfDays: number,
  ): { offset: number; estimates: LatentEstimate[] } {
    const { offset, estimates } = this.predictStudentWith(sequences, asOfDays, false);
    return { offset, estimates };
  }

  /**
   * fold27: `predictStudent` (the same offset and estimates, bit for bit) with what its lean basis folds give for
   * free: per sequence each basis part's log-likelihood (`ll`, as LatentBasisState.ll) and score as of `asOfDays`
   * (`scores`: predictScore at that basis offset, bit for bit). The offset's sd and the interval's widening
   * (models/studentOffsetSd.ts studentOffsetSdFromBasis, widenFromBasis) need nothing more.
   */
  predictStudentBasis(sequences: readonly LatentSequence[], asOfDays: number): StudentBasisPrediction {
    return this.predictStudentWith(sequences, asOfDays, true);
  }

  private predictStudentWith(
    sequences: readonly LatentSequence[],
    asOfDays: number,
    withScores: boolean,
  ): StudentBasisPrediction {
    // The summaries from lean folds (the same arithmetic as `step`, so the same log-likelihood bits, without
    // the explanation's bookkeeping); then the full fold of only the two basis parts the offset mixes.
    const grid = this.studentGrid();
    const scores: Float64Array[] = [];
    const wide: (WideFold | null)[] = [];
    const pairs = sequences.map((s, n) => {
      let r: { ll: Float64Array; wide: WideFold | null };
      if (!withScores) r = this.leanBasisLL(s.topic, s.events, n);
      else {
        const out = new Float64Array(grid.length);
        scores.push(out);
        r = this.leanBasisLL(s.topic, s.events, n, { out, asOfDays });
      }
      wide.push(r.wide);
      return { topic: s.topic, ll: r.ll };
    });
    const offset = this.offsetOfLogLiks(pairs);
    const estimates = pairs.map((x, i) => {
      const off = this.offsetFor(x.topic, offset);
      const events = sequences[i]!.events;
      if (grid.length === 1) return this.predict(x.topic, events, asOfDays);
      const { j, w } = this.basisPosition(off);
      const folded = wide[i];
      if (folded !== null && folded !== undefined) {
        // lean28: the two parts as the wide fold left them (the same bits as folding them again).
        const a = this.wideState(this.scratchA, folded, j);
        const c = this.wideState(this.scratchC, folded, j + 1);
        return this.estimate(this.mixParts(a, c, x.ll[j]!, x.ll[j + 1]!, w), asOfDays, x.topic);
      }
      const a = this.initInto(this.scratchA, x.topic, grid[j]!);
      this.foldInto(a, events, this.kernelFor(x.topic, grid[j]!));
      const c = this.initInto(this.scratchC, x.topic, grid[j + 1]!);
      this.foldInto(c, events, this.kernelFor(x.topic, grid[j + 1]!));
      return this.estimate(this.mixParts(a, c, x.ll[j]!, x.ll[j + 1]!, w), asOfDays, x.topic);
    });
    return { offset, estimates, ll: pairs.map((x) => x.ll), scores };
  }

  /**
   * Label-free choice of the student effect's prior sd among `candidates` (0 = none): each sequence of a
   * student with several is predicted from the offset fitted on the student's OTHER sequences (leave one
   * topic out, on a grid of offsets), and the sd with the highest held-out log-likelihood wins.
   * Round 14: with `loadings` (the learning loading's candidates, LatentModelJson.studentLearnLoading) the
   * sequences are run at each offset with the learning rates that loading gives there, and the pair (sd,
   * loading) with the highest held-out score wins; a loading other than 0 only if its best sd beats the best
   * sd at loading 0 by more than `margin` ll per graded observation (a tie keeps the level-only effect).
   */
  static chooseStudentSd(
    model: LatentFilter,
    sequences: readonly LatentSequence[],
    candidates: readonly number[] = [0, 0.25, 0.5, 0.75, 1, 1.5, 2, 3],
    loadings: readonly number[] = [0],
    margin = LATENT_AUTO_MARGIN,
  ): { sd: number; heldOut: Record<string, number>; loading: number; choice: StudentEffectChoice } {
    const grid: number[] = [];
    for (let j = -12; j <= 12; j++) grid.push(j * 0.25);
    const byStudent = groupByStudent(sequences, (s) => s.events.some((e) => e.n > 0));
    const { params, bins } = model.json;
    const p = new Float64Array(bins);
    const all = loadings.includes(0) ? loadings : [0, ...loadings];
    const total = all.map(() => new Float64Array(candidates.length));
    // Kernels per (loading, offset, topic threshold): the shared one for loading 0 (model.kernelFor).
    const kernels = new Map<string, LatentKernel>();
    const kernelAt = (loading: number, o: number, topic: string): LatentKernel => {
      if (loading === 0 || o === 0) return model.kernelFor(topic);
      const th = model.threshold(topic);
      const key = `${loading}|${o}|${params.slope === undefined ? "" : topic}`;
      let k = kernels.get(key);
      if (k === undefined) {
        k = new LatentKernel(params, bins, th, loading * o);
        kernels.set(key, k);
      }
      return k;
    };
    let observations = 0;
    for (const seqs of byStudent.values()) {
      if (seqs.length < 2) continue;
      for (const s of seqs) for (const e of s.events) observations += gradedCount(e);
      all.forEach((loading, li) => {
        const ll = seqs.map((s) => {
          const m = logit(model.priorMean(s.topic));
          return grid.map((o) => kernelAt(loading, o, s.topic).run(s.events, sigmoid(m + o), p));
        });
        const sum = grid.map((_, j) => ll.reduce((a, r) => a + r[j]!, 0));
        candidates.forEach((sd, c) => {
          for (const r of ll) {
            let best = -Infinity;
            let at = 0;
            grid.forEach((o, j) => {
              const v = sum[j]! - r[j]! - (sd > 0 ? (0.5 * o * o) / (sd * sd) : o === 0 ? 0 : Infinity);
              if (v > best) {
                best = v;
                at = j;
              }
            });
            total[li]![c]! += r[at]!;
          }
        });
      });
    }
    const bestOf = (li: number): number => {
      let b = 0;
      for (let c = 1; c < candidates.length; c++) if (total[li]![c]! > total[li]![b]! + 1e-9) b = c;
      return b;
    };
    const perObs = (v: number): number => (observations > 0 ? v / observations : 0);
    const at0 = all.indexOf(0);
    let chosenL = at0;
    let chosenC = bestOf(at0);
    for (let li = 0; li < all.length; li++) {
      if (li === at0) continue;
      const c = bestOf(li);
      if (perObs(total[li]![c]!) > perObs(total[chosenL]![chosenC]!) + (chosenL === at0 ? margin : 0)) {
        chosenL = li;
        chosenC = c;
      }
    }
    const sd = candidates[chosenC]!;
    const loading = sd > 0 ? all[chosenL]! : 0;
    return {
      sd,
      loading,
      heldOut: Object.fromEntries(candidates.map((c, i) => [String(c), total[chosenL]![i]!])),
      choice: {
        sd,
        loading,
        heldOut: Object.fromEntries(
          all.map((l, li) => {
            const c = bestOf(li);
            return [String(l), { sd: candidates[c]!, logLikPerObs: perObs(total[li]![c]!) }];
          }),
        ),
        observations,
        margin,
      },
    };
  }

  /**
   * Maximum-likelihood fit on sequences (each: its topic and its events in time order). Progress goes to
   * `onProgress` (evaluations, mean log-likelihood per graded observation).
   */
  static fit(sequences: readonly LatentSequence[], opts: LatentFitOptions = {}): LatentFilter {
    if (opts.emission === "auto") {
      const choice = LatentFilter.chooseEmission(sequences, opts);
      const chosen: LatentFitOptions = {
        ...opts,
        emission: choice.chosen,
        ...(choice.chosen === "logistic" ? { fixedConcentration: LATENT_AUTO_CONCENTRATION } : {}),
      };
      // With the forgetting also "auto", its choice reuses the chosen form's held-out score (same split, same
      // fit: the emission choice compares the floor forms).
      const forgetting =
        opts.forgetting === "auto"
          ? LatentFilter.chooseForgetting(
              sequences,
              chosen,
              undefined,
              undefined,
              choice.heldOut[choice.chosen],
            )
          : undefined;
      const f = LatentFilter.fit(sequences, {
        ...chosen,
        ...(forgetting !== undefined ? { forgetting: forgetting.chosen } : {}),
      });
      f.json.fit.emissionChoice = choice;
      if (forgetting !== undefined) f.json.fit.forgettingChoice = forgetting;
      return f;
    }
    if (opts.forgetting === "auto") {
      const choice = LatentFilter.chooseForgetting(sequences, opts);
      const f = LatentFilter.fit(sequences, { ...opts, forgetting: choice.chosen });
      f.json.fit.forgettingChoice = choice;
      return f;
    }
    const objective = latentGlobalObjective(sequences, opts);
    const { bins, logistic, durable, fixC, observations, present, centre, minObservations, priorSd } =
      objective;
    const { logLik, nll } = objective;
    let x: Float64Array = Float64Array.from(centre);
    let evaluations = 0;
    let stop: NonNullable<LatentModelJson["fit"]["stop"]> = "budget";
    const rounds = opts.restarts ?? 1;
    let best = Number.POSITIVE_INFINITY;
    for (let r = 0; r < rounds; r++) {
      const res = nelderMead(nll, x, {
        step: r === 0 ? 0.6 : 0.3,
        maxEvaluations: opts.maxEvaluations ?? LATENT_FIT_BUDGET.maxEvaluations,
        ...(opts.stallEvaluations !== undefined ? { stallEvaluations: opts.stallEvaluations } : {}),
        stallTolerance: LATENT_FIT_BUDGET.stallTolerance,
        fTolerance: 1e-7,
        xTolerance: 1e-3,
        onIteration: (ev, f) => opts.onProgress?.(evaluations + ev, -f),
      });
      evaluations += res.evaluations;
      stop = res.stop;
      x = res.x;
      if (best - res.f < 1e-6) {
        best = Math.min(best, res.f);
        break;
      }
      best = res.f;
    }
    let globalPolish: LatentGlobalPolish | undefined;
    const globalFit = opts.globalFit ?? LATENT_GLOBAL_FIT_DEFAULT;
    if (globalFit !== "budget") {
      // Round 31 ("converged-noise-held"): the per-event noise kept at the budgeted search's estimate, the
      // other coordinates converged (round 30's converged fit takes the noise to its cap 0.25).
      // "converged-forgetting-held" (round 31's diagnostic of where the ridge goes): the half-life, the floor
      // and the noise held.
      const held =
        globalFit === "converged-noise-held"
          ? [LATENT_NOISE_COORDINATE]
          : globalFit === "converged-forgetting-held"
            ? [LATENT_NOISE_COORDINATE - 2, LATENT_NOISE_COORDINATE - 1, LATENT_NOISE_COORDINATE]
            : [];
      const polished = polishGlobalFit(nll, x, observations, held);
      x = polished.x;
      best = polished.f;
      globalPolish = polished.record;
    }
    let params = fixC(fromVector(x, present, logistic, durable));
    let logLikPerObs = Number.isFinite(priorSd) ? logLik(x) / observations : -best;
    const implausible = implausibleParams(params);
    let fallback: string | undefined;
    if (Number.isFinite(priorSd) && implausible.length > 0) {
      // Refuse the degenerate fit: keep the prior centre (the defaults), which the topic priors and the
      // student sd are then fitted around.
      fallback = `${observations} graded observations (< ${minObservations}) and the shrunk fit is implausible (${implausible.join("; ")}): global parameters kept at the defaults`;
      params = fixC(fromVector(centre, present, logistic, durable));
      logLikPerObs = logLik(centre) / observations;
    }
    // Round 29 (opt-in): the consolidation share, the other global parameters refitted with it
    // (models/consolidation.ts). Below `minObservations` the global fit is a penalised one (and may have fallen
    // back to the defaults): no consolidation is searched there, and the choice says so.
    let consolidationChoice: ConsolidationChoice | undefined;
    const consolidation = opts.consolidation ?? LATENT_CONSOLIDATION_DEFAULT;
    if (consolidation !== "off") {
      if (durable)
        throw new LatentFilterError(
          'the consolidation raises the global floor with practice; the durable-share forgetting has no global floor: use forgetting "floor" with consolidation "fit"',
        );
      const fixedShare = typeof consolidation === "number" ? consolidation : undefined;
      const rest0 = x;
      const res = Number.isFinite(priorSd)
        ? null
        : fitConsolidation(
            (c, rest) => {
              const q = fixC(fromVector(rest, present, logistic, durable));
              if (c > 0) q.consolidation = c;
              return objective.logLikAt(q);
            },
            rest0,
            fixedShare !== undefined ? { fixed: fixedShare } : {},
          );
      const filterHalfLifeDays = params.halfLifeDays;
      if (res === null)
        consolidationChoice = {
          chosen: 0,
          best: 0,
          logLik: {
            filter: logLikPerObs * observations,
            none: logLikPerObs * observations,
            best: logLikPerObs * observations,
          },
          evaluations: 0,
          refitted: 0,
          filterHalfLifeDays,
          halfLifeDays: filterHalfLifeDays,
          skipped: `${observations} graded observations (< ${minObservations}): the global fit is the small-data penalised one; no consolidation searched`,
        };
      else if (res.chosen > 0) {
        params = { ...fixC(fromVector(res.rest, present, logistic, durable)), consolidation: res.chosen };
        logLikPerObs = res.logLik.best / observations;
      }
      if (res !== null)
        consolidationChoice = {
          chosen: res.chosen,
          best: res.best,
          logLik: res.logLik,
          evaluations: res.evaluations,
          refitted: rest0.length,
          filterHalfLifeDays,
          halfLifeDays: params.halfLifeDays,
          ...(fixedShare !== undefined ? { fixed: true as const } : {}),
        };
    }
    const kernel = new LatentKernel(params, bins);
    const shrink = opts.topicPriorSd ?? 1;
    // The threshold's shrinkage: given, or (round 13, "auto") chosen by the held-out likelihood of the topic
    // fits on the other half of the students (LatentFilter.chooseThresholdSd; logistic emission only).
    // A sample too small to split (fewer than LATENT_THRESHOLD_MIN_HALF graded observations in a half) keeps the
    // fixed LATENT_TOPIC_THRESHOLD_SD, with no choice recorded.
    const splittable = (): boolean => {
      const { obs } = studentHalves(sequences);
      return Math.min(obs[0], obs[1]) >= LATENT_THRESHOLD_MIN_HALF;
    };
    const thresholdChoice =
      logistic && opts.topicThresholdSd === "auto" && splittable()
        ? LatentFilter.chooseThresholdSd(params, sequences, {
            bins,
            topicPriorSd: shrink,
            ...(opts.topicFit !== undefined ? { method: opts.topicFit } : {}),
          })
        : undefined;
    const thSd =
      thresholdChoice?.chosen ??
      (typeof opts.topicThresholdSd === "number" ? opts.topicThresholdSd : LATENT_TOPIC_THRESHOLD_SD);
    const { topicPriorMean, topicThreshold } = fitTopicEffects(params, bins, groupByTopic(sequences), {
      topicPriorSd: shrink,
      topicThresholdSd: thSd,
      ...(opts.topicFit !== undefined ? { method: opts.topicFit } : {}),
    });
    // Round 15: the forgetting's own spread, set after the global and topic fits (the mean of every forgetting
    // step is the same for any spread): given, or ("auto") the candidate whose held-out dispersion ratio is
    // closest to 1 (LatentFilter.chooseForgetSpread). The interval factor below is then measured with it.
    const spreadChoice =
      opts.forgetSpread === "auto"
        ? LatentFilter.chooseForgetSpread(params, sequences, { bins, topicPriorMean, topicThreshold })
        : undefined;
    const spread = spreadChoice?.chosen ?? (typeof opts.forgetSpread === "number" ? opts.forgetSpread : 0);
    if (!(spread >= 0 && spread <= 1))
      throw new LatentFilterError(`forgetSpread must be in [0, 1] or "auto" (got ${spread})`);
    if (spread > 0)
      params = {
        ...params,
        forgetSpread: spread,
        // Round 16: the interval's as-of step kept apart from the spread (LatentParams.asOfForgetting).
        ...(opts.asOfForgetting === "decay" ? { asOfForgetting: "decay" as const } : {}),
      };
    const globalKernel = spread > 0 ? new LatentKernel(params, bins) : kernel;
    const kernelOf = (t: string): LatentKernel =>
      logistic && topicThreshold[t] !== undefined
        ? new LatentKernel(params, bins, topicThreshold[t])
        : globalKernel;
    // Round 28 (opt-in): the as-of decay's half-life fitted on the answers after idle gaps (models/asOfHalfLife.ts).
    let asOfChoice: AsOfHalfLifeChoice | undefined;
    // Only a model with the "decay" as-of step has that half-life (no effect otherwise, as the as-of step itself
    // has none without a spread; `mastery train served` refuses idle-gaps with the spread as-of step).
    if (
      (opts.asOfHalfLife ?? LATENT_AS_OF_HALF_LIFE_DEFAULT) === "idle-gaps" &&
      params.asOfForgetting === "decay"
    ) {
      const prm = params;
      const pFloorOf = (t: string): number => {
        const th = topicThreshold[t] ?? prm.threshold;
        return prm.slope !== undefined
          ? prm.guess + (1 - prm.guess - prm.slip) * emissionShape(prm, prm.floor, th)
          : prm.guess + (1 - prm.guess - prm.slip) * prm.floor;
      };
      asOfChoice = fitIdleHalfLife(
        LatentFilter.idleAnswers(kernelOf, sequences, (t) => topicPriorMean[t] ?? prm.priorMean, pFloorOf),
        prm.halfLifeDays,
      );
      if (asOfChoice.kept === undefined) params = { ...params, asOfHalfLifeDays: asOfChoice.halfLifeDays };
    }
    const disp = LatentFilter.dispersion(kernelOf, sequences, (t) => topicPriorMean[t] ?? params.priorMean);
    const intervalMode = opts.interval ?? LATENT_INTERVAL_DEFAULT;
    const inflation = intervalFactor(disp, intervalMode);
    const json: LatentModelJson = {
      version: 1,
      bins,
      params,
      topicPriorMean,
      fit: {
        logLikPerObs,
        observations,
        sequences: sequences.length,
        evaluations,
        stop,
        ...(globalPolish !== undefined ? { globalPolish } : {}),
        ...(Number.isFinite(priorSd) ? { smallData: { minObservations, priorSd } } : {}),
        ...(implausible.length > 0 ? { implausible } : {}),
        ...(fallback !== undefined ? { fallback } : {}),
        dispersion: { ratio: disp.ratio, sequences: disp.sequences, mode: intervalMode },
        ...(thresholdChoice !== undefined ? { thresholdChoice } : {}),
        ...(spreadChoice !== undefined ? { spreadChoice } : {}),
        ...(opts.topicFit === "joint" ? { topicFit: "joint" as const } : {}),
        ...(asOfChoice !== undefined ? { asOfHalfLifeChoice: asOfChoice } : {}),
        ...(consolidationChoice !== undefined ? { consolidationChoice } : {}),
      },
      intervalScale: Math.sqrt(inflation),
      ...(intervalMode === "by-evidence"
        ? {
            intervalScaleByEvidence: dispersionByEvidence(
              kernelOf,
              sequences,
              (t) => topicPriorMean[t] ?? params.priorMean,
            ).map((b) => ({
              ...b,
              scale:
                b.sequences >= LATENT_BAND_MIN_SEQUENCES
                  ? Math.sqrt(Math.max(LATENT_MIN_INFLATION, b.ratio))
                  : Math.sqrt(inflation),
            })),
          }
        : {}),
      ...(logistic ? { topicThreshold } : {}),
    };
    if (opts.studentEffect === true) {
      const learning = opts.studentLearning === "auto" || opts.studentLearning === "wide";
      const chosen = LatentFilter.chooseStudentSd(
        new LatentFilter(json),
        sequences,
        undefined,
        studentLoadingCandidates(opts.studentLearning ?? "off"),
      );
      if (chosen.sd > 0) json.studentPriorSd = chosen.sd;
      if (chosen.sd > 0 && chosen.loading !== 0) json.studentLearnLoading = chosen.loading;
      if (learning) json.fit.studentChoice = chosen.choice;
    }
    return new LatentFilter(json);
  }

  /**
   * The topic threshold's shrinkage by held-out likelihood (round 13, `topicThresholdSd: "auto"`): the
   * students are split in two halves (`studentHalf`); for each candidate sd, every topic's prior mean and
   * threshold are fitted on one half's sequences (`fitTopicEffects`, the global `params` held) and score the
   * other half's sequences (log-likelihood of their graded events, from the topic's fitted prior; a topic
   * absent from the fitting half gets the global values), both directions summed, per graded observation.
   * The best candidate wins only if it beats `incumbent` by more than `margin` (a tie keeps the incumbent).
   * Topic-level parameters judged on students they were not fitted on: answers only. Throws when a half has
   * fewer than 50 graded observations.
   */
  static chooseThresholdSd(
    params: LatentParams,
    sequences: readonly LatentSequence[],
    opts: {
      bins?: number;
      topicPriorSd?: number;
      candidates?: readonly number[];
      incumbent?: number;
      margin?: number;
      /** How each half's topic effects are fitted (round 27); default LATENT_TOPIC_FIT_DEFAULT. */
      method?: LatentTopicFit;
    } = {},
  ): ThresholdChoice {
    if (params.slope === undefined)
      throw new LatentFilterError(
        "the threshold shrinkage is chosen only for the logistic emission (the linear one has no topic thresholds)",
      );
    const bins = opts.bins ?? 40;
    const candidates = opts.candidates ?? LATENT_THRESHOLD_SD_CANDIDATES;
    const incumbent = opts.incumbent ?? LATENT_TOPIC_THRESHOLD_SD;
    const margin = opts.margin ?? LATENT_AUTO_MARGIN;
    const all = candidates.includes(incumbent) ? candidates : [...candidates, incumbent];
    const { halves, obs } = studentHalves(sequences);
    if (Math.min(obs[0], obs[1]) < LATENT_THRESHOLD_MIN_HALF)
      throw new LatentFilterError(
        `only ${obs[0]} / ${obs[1]} graded observations in the two halves of the students to choose the topic threshold's shrinkage on; need ${LATENT_THRESHOLD_MIN_HALF} each: pass a number as topicThresholdSd (e.g. ${LATENT_TOPIC_THRESHOLD_SD})`,
      );
    const fitHalf = halves.map((h) => groupByTopic(h));
    const p = new Float64Array(bins);
    const heldOut: Record<string, number> = {};
    for (const sd of all) {
      let ll = 0;
      for (let h = 0; h < 2; h++) {
        const fitted = fitTopicEffects(params, bins, fitHalf[h]!, {
          topicPriorSd: opts.topicPriorSd ?? 1,
          topicThresholdSd: sd,
          ...(opts.method !== undefined ? { method: opts.method } : {}),
        });
        const kernels = new Map<string, LatentKernel>();
        for (const s of halves[1 - h]!) {
          let k = kernels.get(s.topic);
          if (k === undefined) {
            k = new LatentKernel(params, bins, fitted.topicThreshold[s.topic]);
            kernels.set(s.topic, k);
          }
          ll += k.run(s.events, fitted.topicPriorMean[s.topic] ?? params.priorMean, p);
        }
      }
      heldOut[String(sd)] = ll / (obs[0] + obs[1]);
    }
    let top = incumbent;
    for (const sd of all) if (heldOut[String(sd)]! > heldOut[String(top)]!) top = sd;
    const chosen = heldOut[String(top)]! > heldOut[String(incumbent)]! + margin ? top : incumbent;
    return { chosen, heldOut, incumbent, margin, observations: obs[0] + obs[1] };
  }

  /**
   * The emission form by held-out likelihood (round 10, `emission: "auto"`): the sample is cut in time at the
   * `cutQuantile` quantile of its graded events' times; the linear form and the logistic one (the latent's
   * spread held at LATENT_AUTO_CONCENTRATION: with a free slope the scale is not identified) are fitted on
   * the events before the cut (no student effect in either), then each filters every sequence through all
   * of its events and scores the graded events at or after the cut: log-likelihood per graded observation.
   * The logistic form is chosen only if it beats the linear one by more than `margin` (the simpler form
   * wins a tie). Throws when either side of the cut has fewer than 50 graded observations.
   */
  static chooseEmission(
    sequences: readonly LatentSequence[],
    opts: LatentFitOptions = {},
    cutQuantile = 0.8,
    margin = LATENT_AUTO_MARGIN,
  ): EmissionChoice {
    const split = heldOutSplit(sequences, cutQuantile, "emission", 'pass emission "linear"');
    // The forms are compared with the forgetting the caller fixed (the global floor for "auto": the forgetting
    // choice, if asked for, follows on the same split with the chosen emission).
    const {
      emission: _e,
      studentEffect: _s,
      studentLearning: _sl,
      fixedConcentration: _c,
      onProgress: _p,
      forgetting,
      // The emissions are compared at the fixed threshold shrinkage (round 13's held-out choice, if asked for,
      // runs in the chosen form's own fit).
      topicThresholdSd: _t,
      // Round 15's forgetting spread is set after the chosen form's own fit (it leaves the fit's means as they are).
      forgetSpread: _fs,
      // Round 30: the held-out choices keep the budgeted global fit (the converged one is the model's own).
      globalFit: _g,
      ...rest
    } = opts;
    const forget = forgetting === "durable" ? { forgetting } : {};
    const linear = LatentFilter.fit(split.before, { ...rest, ...forget, emission: "linear" });
    const logistic = LatentFilter.fit(split.before, {
      ...rest,
      ...forget,
      emission: "logistic",
      fixedConcentration: LATENT_AUTO_CONCENTRATION,
    });
    const heldOut = { linear: split.score(linear), logistic: split.score(logistic) };
    return {
      chosen: heldOut.logistic > heldOut.linear + margin ? "logistic" : "linear",
      heldOut,
      cutDay: split.cut,
      heldOutObservations: split.heldObs,
      margin,
    };
  }

  /**
   * The forgetting form by held-out likelihood (round 12, `forgetting: "auto"`), on the same time split as
   * `chooseEmission`: the global-floor form and the durable-share form (LatentParams.durableShare), each with the
   * emission (and held concentration, if any) of `opts`, are fitted on the events before the cut (no student
   * effect) and score the graded events after it.
   * The durable form is chosen only if it beats the floor form by more than `margin` (a tie keeps the floor).
   * `floorScore`: the floor form's held-out score when the caller already has it on the same split (the
   * emission choice's), so it is not fitted twice.
   */
  static chooseForgetting(
    sequences: readonly LatentSequence[],
    opts: LatentFitOptions = {},
    cutQuantile = 0.8,
    margin = LATENT_AUTO_MARGIN,
    floorScore?: number,
  ): ForgettingChoice {
    if (opts.emission === "auto")
      throw new LatentFilterError(
        "chooseForgetting needs the emission fixed (linear or logistic): choose it first (LatentFilter.chooseEmission)",
      );
    const split = heldOutSplit(sequences, cutQuantile, "forgetting", 'pass forgetting "floor"');
    // The forms are compared at the fixed threshold shrinkage (its held-out choice, if asked for, follows in the
    // chosen form's own fit).
    const {
      studentEffect: _s,
      studentLearning: _sl,
      onProgress: _p,
      forgetting: _f,
      topicThresholdSd: _t,
      // Round 15's forgetting spread is set after the chosen form's own fit (it leaves the fit's means as they are).
      forgetSpread: _fs,
      globalFit: _g,
      ...rest
    } = opts;
    const floor = floorScore ?? split.score(LatentFilter.fit(split.before, { ...rest, forgetting: "floor" }));
    const durable = split.score(LatentFilter.fit(split.before, { ...rest, forgetting: "durable" }));
    return {
      chosen: durable > floor + margin ? "durable" : "floor",
      heldOut: { floor, durable },
      cutDay: split.cut,
      heldOutObservations: split.heldObs,
      margin,
    };
  }

  /**
   * The forgetting's spread by the held-out dispersion check (round 15, `forgetSpread: "auto"`): with the fitted
   * parameters, topic prior means and thresholds held, LatentFilter.dispersion runs once per candidate spread
   * (each sequence filtered over its first half of answers, carried forward over the rest: the carry-forward
   * crosses the gaps between events, where the spread adds variance). The ratio is the factor the held-out
   * answers ask of the posterior's variance; the candidate whose ratio is closest to 1 (in log) wins, the
   * smaller spread on a tie. Answers only: no label, no truth. With no qualifying sequence, 0.
   */
  static chooseForgetSpread(
    params: LatentParams,
    sequences: readonly LatentSequence[],
    opts: {
      bins: number;
      topicPriorMean: Record<string, number>;
      topicThreshold: Record<string, number>;
      candidates?: readonly number[];
    },
  ): ForgetSpreadChoice {
    const candidates = opts.candidates ?? LATENT_FORGET_SPREAD_CANDIDATES;
    const ratios: Record<string, number> = {};
    let chosen = 0;
    let best = Number.POSITIVE_INFINITY;
    let used = 0;
    for (const c of candidates) {
      const prm: LatentParams = c > 0 ? { ...params, forgetSpread: c } : params;
      const global = new LatentKernel(prm, opts.bins);
      const byTopic = new Map<string, LatentKernel>();
      const kernelOf = (t: string): LatentKernel => {
        const th = prm.slope !== undefined ? opts.topicThreshold[t] : undefined;
        if (th === undefined) return global;
        let k = byTopic.get(t);
        if (k === undefined) {
          k = new LatentKernel(prm, opts.bins, th);
          byTopic.set(t, k);
        }
        return k;
      };
      const d = LatentFilter.dispersion(kernelOf, sequences, (t) => opts.topicPriorMean[t] ?? prm.priorMean);
      ratios[String(c)] = d.ratio;
      used = d.sequences;
      if (d.sequences === 0 || !(d.ratio > 0)) continue;
      const dist = Math.abs(Math.log(d.ratio));
      if (dist < best - 1e-12) {
        best = dist;
        chosen = c;
      }
    }
    return { chosen, ratios, sequences: used };
  }

  /**
   * Label-free check of the posterior's spread on held-out answers: each sequence with >= `minAnswers` quiz /
   * practice answers is filtered over the events before the one that brings half of its answers, then carried
   * forward (learning, forgetting, noise) without observing the rest. The number correct S in the held-out
   * half has, under the model, Var(S) = sum n_j E[e_j (1 - e_j)] (binomial given K) + Var(sum n_j e_j)
   * (the posterior's part; the carried-forward maps move K together, so the part is (sum n_j sd(e_j))^2),
   * e_j = guess + (1 - guess - slip) K at answer j. The inflation is the method-of-moments factor on the
   * posterior's part that makes the squared residuals match: (sum (S - E[S])^2 - sum binomial) / sum posterior,
   * at least 1 (a posterior that is too wide is left as it is). 1 when no sequence qualifies.
   */
  /**
   * Round 28: every graded event of `sequences` that follows a gap of >= `minGapDays` without any event on the
   * pair, with P(correct) of the filter's posterior right after the previous event (the state the as-of step
   * starts from), the floor's P(correct), the gap and the outcome (models/asOfHalfLife.ts IdleAnswer). The
   * filter runs each sequence as in the fit (forgetting between events, then the emission, then the learning);
   * the answers are read before they update it. Assignment scores are left out (not Bernoulli answers).
   */
  static idleAnswers(
    kernelOf: (topic: string) => LatentKernel,
    sequences: readonly LatentSequence[],
    priorMean: (topic: string) => number,
    pFloorOf: (topic: string) => number,
    minGapDays = AS_OF_MIN_GAP_DAYS,
  ): IdleAnswer[] {
    const out: IdleAnswer[] = [];
    let p = new Float64Array(0);
    for (const s of sequences) {
      const kernel = kernelOf(s.topic);
      if (p.length !== kernel.bins) p = new Float64Array(kernel.bins);
      kernel.prior(priorMean(s.topic), p);
      const base = kernel.mean(p);
      const pFloor = pFloorOf(s.topic);
      let last = Number.NaN;
      for (let n = 0; n < s.events.length; n++) {
        const e = s.events[n]!;
        if (Number.isFinite(last)) {
          const gap = e.t - last;
          if (gap >= minGapDays && (e.kind === KIND_QUIZ || e.kind === KIND_PRACTICE) && e.n >= 1)
            out.push({ pBefore: kernel.predictive(p), pFloor, gapDays: gap, n: e.n, k: e.k });
          kernel.forget(p, gap, base, n);
        }
        last = e.t;
        kernel.observe(p, e);
        kernel.learnFrom(p, e.kind);
      }
    }
    return out;
  }

  static dispersion(
    kernels: LatentKernel | ((topic: string) => LatentKernel),
    sequences: readonly LatentSequence[],
    priorMean: (topic: string) => number,
    minAnswers = 8,
  ): {
    inflation: number;
    ratio: number;
    sequences: number;
    residual: number;
    binomial: number;
    posterior: number;
  } {
    const kernelOf = typeof kernels === "function" ? kernels : () => kernels;
    let p = new Float64Array(0);
    const sums = new HeldOutSums();
    for (const s of sequences) {
      let total = 0;
      for (const e of s.events) if (e.kind === KIND_QUIZ || e.kind === KIND_PRACTICE) total += e.n;
      if (total < minAnswers) continue;
      const kernel = kernelOf(s.topic);
      if (p.length !== kernel.bins) p = new Float64Array(kernel.bins);
      kernel.prior(priorMean(s.topic), p);
      sums.addHalves(kernel, p, s.events, total);
    }
    const ratio = sums.ratio();
    const { used, residual, binomial, posterior } = sums;
    return { inflation: Math.max(1, ratio), ratio, sequences: used, residual, binomial, posterior };
  }
}

/**
 * Sums of the held-out dispersion check (method of moments): per sequence the held-out answers' expected and
 * observed number correct, their binomial part and the posterior's sd; over sequences the squared residuals.
 */
export class HeldOutSums {
  residual = 0;
  binomial = 0;
  posterior = 0;
  used = 0;
  private expS = 0;
  private obsS = 0;
  private bin = 0;
  private sdSum = 0;

  /** One held-out graded event, predicted from the state `p` (not observed). */
  add(kernel: LatentKernel, p: Float64Array, e: LatentEvent): void {
    const m = kernel.predictive(p);
    let e2 = 0;
    for (let i = 0; i < kernel.bins; i++) e2 += p[i]! * kernel.emit[i]! ** 2;
    const v = Math.max(0, e2 - m * m);
    this.expS += e.n * m;
    this.obsS += e.k;
    this.bin += e.n * (m * (1 - m) - v);
    this.sdSum += e.n * Math.sqrt(v);
  }

  /**
   * One sequence of `total` graded answers from the state `p` (changed in place): filtered over the events before
   * the one that brings half of its answers, then carried forward (learning, forgetting) with the rest held out
   * (`add`, not observed); the sequence's sums then join the totals.
   */
  addHalves(kernel: LatentKernel, p: Float64Array, events: readonly LatentEvent[], total: number): void {
    const base = kernel.mean(p);
    let seen = 0;
    let last = Number.NaN;
    let held = false;
    for (let n = 0; n < events.length; n++) {
      const e = events[n]!;
      if (Number.isFinite(last)) kernel.forget(p, e.t - last, base, n);
      last = e.t;
      const graded = e.kind === KIND_QUIZ || e.kind === KIND_PRACTICE;
      if (!held && graded && 2 * (seen + e.n) > total) held = true;
      if (held) {
        if (graded) this.add(kernel, p, e);
      } else {
        kernel.observe(p, e);
        if (graded) seen += e.n;
      }
      kernel.learnFrom(p, e.kind);
    }
    this.endSequence();
  }

  /** The sequence's sums join the totals. */
  endSequence(): void {
    this.residual += (this.obsS - this.expS) ** 2;
    this.binomial += this.bin;
    this.posterior += this.sdSum * this.sdSum;
    this.used++;
    this.discardSequence();
  }

  /** Forgets the sequence's sums (nothing was held out). */
  discardSequence(): void {
    this.expS = 0;
    this.obsS = 0;
    this.bin = 0;
    this.sdSum = 0;
  }

  /** (residual - binomial) / posterior; 1 with no sequence or no posterior spread. */
  ratio(): number {
    return this.used > 0 && this.posterior > 0 ? (this.residual - this.binomial) / this.posterior : 1;
  }
}

/**
 * The held-out dispersion check of `LatentFilter.dispersion` by evidence (round 14, a diagnosis): for each
 * lower bound L of `bands` (answers seen before the held-out part), every sequence with at least L + 4 quiz /
 * practice answers is filtered over its events until L answers are seen, then carried forward over the next
 * `hold` answers without observing them; the method-of-moments ratio (squared residual of the held-out number
 * correct - its binomial part) / the posterior's part is computed per band. A ratio below 1 says the posterior
 * after L answers is wider than the held-out answers' spread, above 1 narrower. Label-free: answers only.
 */
export function dispersionByEvidence(
  kernelOf: (topic: string) => LatentKernel,
  sequences: readonly LatentSequence[],
  priorMean: (topic: string) => number,
  bands: readonly number[] = [0, 1, 5, 15],
  hold = 8,
): { from: number; ratio: number; sequences: number }[] {
  return bands.map((from) => {
    const sums = new HeldOutSums();
    let p = new Float64Array(0);
    for (const s of sequences) {
      let total = 0;
      for (const e of s.events) if (e.kind === KIND_QUIZ || e.kind === KIND_PRACTICE) total += e.n;
      if (total < from + 4) continue;
      const kernel = kernelOf(s.topic);
      if (p.length !== kernel.bins) p = new Float64Array(kernel.bins);
      kernel.prior(priorMean(s.topic), p);
      const held = walkHeldOut(kernel, p, s.events, from, hold, (e) => sums.add(kernel, p, e));
      if (held === 0) sums.discardSequence();
      else sums.endSequence();
    }
    return { from, ratio: sums.ratio(), sequences: sums.used };
  });
}

/**
 * One sequence's held-out walk, shared by the dispersion checks (dispersionByEvidence, models/studentInterval.ts):
 * from the posterior `p` (updated in place, forgetting between events towards its starting mean), graded answers
 * are observed until more than `from` have been seen; the graded events after that, up to `hold` answers, are held
 * out: each is passed to `onHeld` with `p` as the posterior it is predicted from and is not observed. Returns the
 * number of held-out answers (0: the sequence had none after `from`).
 */
export function walkHeldOut(
  kernel: LatentKernel,
  p: Float64Array,
  events: readonly LatentEvent[],
  from: number,
  hold: number,
  onHeld: (e: LatentEvent) => void,
): number {
  const base = kernel.mean(p);
  let seen = 0;
  let held = 0;
  let last = Number.NaN;
  for (let n = 0; n < events.length; n++) {
    const e = events[n]!;
    if (held >= hold) break;
    if (Number.isFinite(last)) kernel.forget(p, e.t - last, base, n);
    last = e.t;
    const graded = e.kind === KIND_QUIZ || e.kind === KIND_PRACTICE;
    if (graded && (held > 0 || seen + e.n > from)) {
      onHeld(e);
      held += e.n;
    } else if (held === 0) {
      kernel.observe(p, e);
      if (graded) seen += e.n;
    }
    kernel.learnFrom(p, e.kind);
  }
  return held;
}

export interface LatentSequence {
  topic: string;
  /** The student (pseudonymous key) the sequence belongs to: groups sequences for the student effect. */
  student?: string;
  events: LatentEvent[];
}

export interface LatentFitOptions {
  bins?: number;
  start?: LatentParams;
  maxEvaluations?: number;
  restarts?: number;
  /** Prior sd (logit units) of a topic's prior-mean offset from the global one. Default 1. */
  topicPriorSd?: number;
  /**
   * Emission: "linear" (default; K on the accuracy scale), "logistic" (slope and per-topic threshold) or
   * "auto" (round 10: the one with the higher held-out likelihood, LatentFilter.chooseEmission; the logistic
   * form then holds the prior concentration at LATENT_AUTO_CONCENTRATION).
   */
  emission?: "linear" | "logistic" | "auto";
  /** Relative-change window of the optimiser (evaluations; round 10, opt-in): stop when it gains < 1e-6 relative. */
  stallEvaluations?: number;
  /**
   * Forgetting: "floor" (the fit's default, rounds 4-11: all of K above one global floor decays), "durable"
   * (round 9: LatentParams.durableShare, the gain above the pair's prior mean decays and a fitted share of it
   * is kept) or "auto" (round 12, opt-in: the one with the higher held-out likelihood,
   * LatentFilter.chooseForgetting). `mastery train served` passes LATENT_FORGETTING_DEFAULT (floor).
   */
  forgetting?: "durable" | "floor" | "auto";
  /**
   * Holds the prior concentration at this value instead of fitting it (round 9, bench-only A/B for the logistic
   * emission): with a free slope the latent's scale is not identified (a steeper slope on a tighter prior
   * gives the same answers), the IRT identification fixes the latent's spread and fits the discrimination.
   */
  fixedConcentration?: number;
  /**
   * How the held-out dispersion check sets the interval's spread (round 11, `intervalFactor`): "two-sided"
   * (the method-of-moments factor as measured, floored at LATENT_MIN_INFLATION) or "widen-only" (rounds 5-10:
   * at least 1, an over-wide posterior kept as it is). Default LATENT_INTERVAL_DEFAULT.
   */
  interval?: LatentIntervalMode;
  /**
   * Prior sd (K units) of a topic's emission threshold from the global one (logistic emission). Default
   * LATENT_TOPIC_THRESHOLD_SD (0.15, rounds 6-12); "auto" (round 13): the candidate with the highest held-out
   * likelihood on the other half of the students (LatentFilter.chooseThresholdSd).
   */
  topicThresholdSd?: number | "auto";
  /**
   * How each topic's prior mean and threshold are searched (round 27, `fitTopicEffects`): "alternating" (the
   * default, LATENT_TOPIC_FIT_DEFAULT) or "joint" (damped Newton in both at once, `jointTopicMin`); also used by
   * the threshold shrinkage's held-out choice. Recorded in the model as `fit.topicFit` when "joint".
   */
  topicFit?: LatentTopicFit;
  /**
   * Graded observations from which the global parameters are fitted by plain maximum likelihood; below it
   * they are shrunk toward `start` (the small-data guard, LatentFilter.fit). Default LATENT_MIN_OBSERVATIONS.
   */
  minObservations?: number;
  /**
   * Student effect: a per-student prior offset shared across topics, its sd chosen by leave-one-topic-out
   * likelihood (LatentFilter.chooseStudentSd; needs `student` on the sequences). Default off.
   */
  studentEffect?: boolean;
  /**
   * With the student effect, whether the student's offset also moves their learning rates (round 14):
   * "off" (the default of LatentFilter.fit: the level only) or "auto" (the loading among
   * LATENT_STUDENT_LOADING_CANDIDATES chosen with the sd by the same leave-one-topic-out likelihood,
   * LatentModelJson.studentLearnLoading) or "wide" (round 22: the same choice among
   * LATENT_STUDENT_LOADING_CANDIDATES_WIDE, which adds loadings above 1).
   */
  studentLearning?: StudentLearningMode;
  /**
   * Round 15, LatentParams.forgetSpread: the share of forgetting that acts all-or-none on a pair (0, the default of
   * LatentFilter.fit: rounds 4-14's deterministic decay), a number in [0, 1], or "auto": the candidate of
   * LATENT_FORGET_SPREAD_CANDIDATES whose held-out dispersion ratio is closest to 1 (LatentFilter.chooseForgetSpread).
   * Set after the global and topic fits (it leaves every forgetting step's mean as it is).
   */
  forgetSpread?: number | "auto";
  /**
   * Round 16, LatentParams.asOfForgetting: with a spread (forgetSpread > 0), how an estimate is carried from the
   * pair's last event to the scoring time: "spread" (the default of LatentFilter.fit, round 15: the
   * between-event step, spread included) or "decay" (the deterministic decay of the estimate at the last event,
   * which GET /mastery also applies). No effect without a spread (the two steps are then the same decay).
   */
  asOfForgetting?: "spread" | "decay";
  /**
   * Round 28: the half-life of the as-of decay (`asOfForgetting: "decay"`): "filter" (the default: the filter's
   * own `halfLifeDays`, rounds 16-27) or "idle-gaps" (opt-in: fitted on the fit sample's answers after idle gaps
   * of >= AS_OF_MIN_GAP_DAYS, each predicted as the as-of step predicts; LatentFilter.idleAnswers,
   * models/asOfHalfLife.ts fitIdleHalfLife). Needs the "decay" as-of step.
   */
  asOfHalfLife?: LatentAsOfHalfLife;
  /**
   * Round 29: "off" (the default, LATENT_CONSOLIDATION_DEFAULT: rounds 4-28's filter) or "fit" (opt-in: the
   * consolidation share LatentParams.consolidation and the other global parameters refitted with it by the
   * likelihood after the global fit, kept only past a likelihood-ratio test; models/consolidation.ts). The floor
   * forgetting only.
   * A number in (0, 1) is a diagnostic (the bench's, never `mastery train served`'s): c held there, only the
   * half-life refitted with it, kept whatever the likelihood says.
   */
  consolidation?: LatentConsolidation | number;
  /**
   * Round 30: "budget" (the default, LATENT_GLOBAL_FIT_DEFAULT: rounds 4-29's global fit, which stops at the
   * Nelder-Mead's LATENT_FIT_BUDGET) or "converged" (opt-in: the Nelder-Mead's result polished by BFGS with
   * central-difference gradients, models/quasiNewton.ts, to a stationary point within LATENT_GLOBAL_POLISH).
   * Round 31: "converged-noise-held" (opt-in): the same polish with the per-event noise held at the
   * Nelder-Mead's estimate, so the likelihood cannot trade forgetting for noise on the way to its maximum;
   * "converged-forgetting-held" (opt-in) holds the half-life and the floor there too.
   * Applies to the model's own global fit; the held-out choices' fits (emission, forgetting) keep the budget.
   */
  globalFit?: LatentGlobalFit;
  onProgress?: (evaluations: number, logLikPerObs: number) => void;
}

export const LATENT_GLOBAL_FITS = [
  "budget",
  "converged",
  "converged-noise-held",
  "converged-forgetting-held",
] as const;
export type LatentGlobalFit = (typeof LATENT_GLOBAL_FITS)[number];
/** What `mastery train served` fits when no global fit is named (round 30's converged fit is opt-in). */
export const LATENT_GLOBAL_FIT_DEFAULT: LatentGlobalFit = "budget";
/**
 * The converged global fit's polish (round 30): after the Nelder-Mead's budget, up to `restarts` more
 * Nelder-Mead searches from its point, then BFGS of at most `maxEvaluations` likelihood passes, which stops when
 * every gradient component of the mean negative log-likelihood per graded observation is below
 * `gradientTolerance` or two steps gain less than `fTolerance` per observation.
 */
export const LATENT_GLOBAL_POLISH = {
  /** Nelder-Mead restarts (each LATENT_FIT_BUDGET passes, a fresh simplex of this step) before the BFGS. */
  restarts: 4,
  restartStep: 0.3,
  /** A restart that gains less than this (nats, whole sample) ends the restarts. */
  restartGainNats: 0.05,
  maxEvaluations: 1_000,
  gradientStep: 1e-4,
  gradientTolerance: 1e-6,
  fTolerance: 1e-9,
} as const;

/** The converged global fit's record (LatentModelJson.fit.globalPolish). */
export interface LatentGlobalPolish {
  /** Likelihood passes of the polish, restarts and BFGS (the first Nelder-Mead's are `fit.evaluations`). */
  evaluations: number;
  /** Nelder-Mead restarts run (LATENT_GLOBAL_POLISH.restarts at most). */
  restarts: number;
  /** BFGS steps. */
  iterations: number;
  stop: "gradient" | "f-tolerance" | "no-descent" | "budget";
  /** Coordinates held at the Nelder-Mead's values during the polish (round 31: ["noise"]); absent: none. */
  held?: string[];
  /** Log-likelihood (nats, whole sample) at the Nelder-Mead's result and after the polish. */
  logLikBefore: number;
  logLikAfter: number;
  /** The largest gradient component at the end (per graded observation, unconstrained coordinates). */
  gradientMax: number;
}

export const LATENT_CONSOLIDATIONS = ["off", "fit"] as const;
export type LatentConsolidation = (typeof LATENT_CONSOLIDATIONS)[number];
/** What `mastery train served` fits when no consolidation is named (round 29's candidate is opt-in). */
export const LATENT_CONSOLIDATION_DEFAULT: LatentConsolidation = "off";

/** How the as-of decay's half-life is set (round 28; LatentFitOptions.asOfHalfLife). */
export const LATENT_AS_OF_HALF_LIVES = ["filter", "idle-gaps"] as const;
export type LatentAsOfHalfLife = (typeof LATENT_AS_OF_HALF_LIVES)[number];
/** The as-of half-life of `mastery train served` (round 28: "idle-gaps" opt-in, docs/benchmarks.md Validity round 28). */
export const LATENT_AS_OF_HALF_LIFE_DEFAULT: LatentAsOfHalfLife = "filter";

/** The half-life of the as-of decay: the fitted as-of one (round 28) when present, else the filter's own. */
export function asOfHalfLife(params: Pick<LatentParams, "halfLifeDays" | "asOfHalfLifeDays">): number {
  return params.asOfHalfLifeDays ?? params.halfLifeDays;
}

/**
 * The small-data guard of LatentFilter.fit: fewer graded observations than this and the global parameters
 * are shrunk toward the defaults below (a fit on the ASSISTments 2017 log with 691-3,582 answers was
 * degenerate, with 20,000+ it was not: docs/benchmarks.md "Real log, round 8" / "round 9").
 */
export const LATENT_MIN_OBSERVATIONS = 10_000;

/**
 * The fit's optimiser budget: `maxEvaluations` Nelder-Mead evaluations (rounds 4-10: 600). Round 10 measured
 * a relative-change stop (option `stallEvaluations`, e.g. 300, with `maxEvaluations` 4,000): it did not
 * converge within 4,000 on every seed (docs/benchmarks.md Validity round 10), so it is opt-in.
 */
export const LATENT_FIT_BUDGET = { maxEvaluations: 600, stallTolerance: 1e-6 } as const;
/** How LatentFilter.fit turns the held-out dispersion ratio into the interval's variance factor. */
/**
 * The forgetting `mastery train served` fits when none is named: the global floor (rounds 4-11). Round 12's
 * held-out choice ("auto", LatentFilter.chooseForgetting) picked the durable share on held-out seed 4 and
 * served a worse ranking there (truth Spearman 0.757 -> 0.733, docs/benchmarks.md "Round 12 (valid8)"), so
 * it stays an option.
 */
export const LATENT_FORGETTING_DEFAULT: "floor" | "durable" | "auto" = "floor";

export type LatentIntervalMode = "two-sided" | "widen-only" | "by-evidence";
export const LATENT_INTERVAL_MODES: readonly LatentIntervalMode[] = [
  "two-sided",
  "widen-only",
  "by-evidence",
];
/** Sequences a band of `dispersionByEvidence` needs for its own factor under "by-evidence" (else the one factor). */
export const LATENT_BAND_MIN_SEQUENCES = 200;
/** The candidate spreads of LatentFilter.chooseForgetSpread (round 15; 0 = rounds 4-14's deterministic decay). */
export const LATENT_FORGET_SPREAD_CANDIDATES: readonly number[] = [0, 0.25, 0.5, 0.75, 1];
/**
 * The forgetting spread `mastery train served` fits when none is named: "auto" (the held-out choice of round 15)
 * since round 24, as part of round 20's candidate adopted as the served default (docs/benchmarks.md "Round 24
 * (valid24)"); `--latent-forgetting-spread 0` is rounds 4-23's deterministic decay.
 */
export const LATENT_FORGET_SPREAD_DEFAULT: number | "auto" = "auto";
/**
 * How `mastery train served` carries a spread model's estimate to the scoring time when none is named (round 16,
 * LatentFitOptions.asOfForgetting). Pre-registered rule in docs/benchmarks.md "Round 16 (valid12)".
 */
export const LATENT_AS_OF_FORGETTING_DEFAULT: "spread" | "decay" = "decay";

/** The outcome of LatentFilter.chooseForgetSpread (round 15). */
export interface ForgetSpreadChoice {
  chosen: number;
  /** Held-out dispersion ratio per candidate spread (key: the spread). */
  ratios: Record<string, number>;
  /** Sequences the check used. */
  sequences: number;
}

/** The default interval mode of LatentFilter.fit (docs/benchmarks.md Validity, round 11). */
export const LATENT_INTERVAL_DEFAULT: LatentIntervalMode = "widen-only";
/**
 * Floor of the two-sided variance factor: the interval is never narrowed below half the posterior's own
 * spread (a ratio near 0 or below it is the moment estimator's noise when the binomial part dominates, not
 * evidence of a point-exact posterior). Set before any figure of round 11 was computed.
 */
export const LATENT_MIN_INFLATION = 0.25;

/**
 * The variance factor of the interval from the held-out dispersion check (pure): "widen-only" = max(1,
 * ratio) (rounds 5-10), "two-sided" = max(LATENT_MIN_INFLATION, ratio), 1 when the check used no sequence.
 * Method of moments is symmetric: a posterior wider than the held-out answers' spread is narrowed exactly as
 * a narrower one is widened.
 */
export function intervalFactor(d: { ratio: number; sequences: number }, mode: LatentIntervalMode): number {
  if (d.sequences === 0 || !Number.isFinite(d.ratio)) return 1;
  // "by-evidence" keeps rounds 5-10's one factor for pairs outside its bands (LatentModelJson.intervalScaleByEvidence).
  return mode !== "two-sided" ? Math.max(1, d.ratio) : Math.max(LATENT_MIN_INFLATION, d.ratio);
}

/** Prior concentration the logistic form holds under `emission: "auto"` (round 9's bench option, the start value). */
export const LATENT_AUTO_CONCENTRATION = 4;
/** Held-out ll/obs the logistic form must win by under `emission: "auto"` (a tie goes to the linear form). */
export const LATENT_AUTO_MARGIN = 0.0005;

/** The topic threshold's prior sd (K units) of the logistic emission when none is named (rounds 6-12). */
export const LATENT_TOPIC_THRESHOLD_SD = 0.15;
/** Graded observations each half of the students needs for LatentFilter.chooseThresholdSd. */
export const LATENT_THRESHOLD_MIN_HALF = 50;
/** The candidates of LatentFilter.chooseThresholdSd (round 13; 0 = one global threshold). */
export const LATENT_THRESHOLD_SD_CANDIDATES: readonly number[] = [0, 0.05, 0.1, 0.15, 0.3];
/**
 * The threshold shrinkage `mastery train served` fits when none is named: since round 13 the held-out choice
 * (it chose one global threshold, sd 0, on the two generated settings that missed Spearman 0.80 and lifted
 * them 0.757 -> 0.765 and 0.791 -> 0.809; kept 0.15 on the other four: docs/benchmarks.md "Round 13 (valid9)").
 * `LatentFilter.fit` called without one still fits the fixed LATENT_TOPIC_THRESHOLD_SD.
 */
export const LATENT_THRESHOLD_SD_DEFAULT: number | "auto" = "auto";

/** The outcome of LatentFilter.chooseThresholdSd (round 13). */
export interface ThresholdChoice {
  chosen: number;
  /** Held-out log-likelihood per graded observation of each candidate sd (key: the sd). */
  heldOut: Record<string, number>;
  /** The value kept unless another wins by more than `margin`. */
  incumbent: number;
  margin: number;
  /** Graded observations scored (both halves). */
  observations: number;
}

/**
 * The candidates of the student effect's learning loading (round 14, `studentLearning: "auto"`; logits of
 * learning rate per logit of the student's offset; 0 = the level only). Fixed before any figure of round 14.
 */
export const LATENT_STUDENT_LOADING_CANDIDATES: readonly number[] = [0, 0.25, 0.5, 1];
/**
 * Round 22 (`studentLearning: "wide"`): round 14's candidates and two above 1. On every generated setting the
 * choice took the largest of round 14's (1) with the held-out score still rising at it (docs/benchmarks.md
 * "Round 14 (valid10)", "Round 22 (valid22)"). Fixed before any figure of round 22.
 */
export const LATENT_STUDENT_LOADING_CANDIDATES_WIDE: readonly number[] = [0, 0.25, 0.5, 1, 1.5, 2];

/** Whether (and among which loadings) the student's offset also moves their learning rates (LatentFitOptions.studentLearning). */
export type StudentLearningMode = "off" | "auto" | "wide";
export const STUDENT_LEARNING_MODES: readonly StudentLearningMode[] = ["off", "auto", "wide"];

/** The learning loadings LatentFilter.chooseStudentSd is offered under each mode ([0]: the level only). */
export function studentLoadingCandidates(mode: StudentLearningMode): readonly number[] {
  if (mode === "wide") return LATENT_STUDENT_LOADING_CANDIDATES_WIDE;
  return mode === "auto" ? LATENT_STUDENT_LOADING_CANDIDATES : [0];
}

/**
 * Whether `mastery train served` lets the student effect's offset move the learning rates when none is named
 * (round 14, LatentFitOptions.studentLearning; docs/benchmarks.md "Round 14 (valid10)"): "auto" since round 24
 * (round 20's candidate adopted as the served default, docs/benchmarks.md "Round 24 (valid24)"); "off" is
 * rounds 6-23's level-only offset.
 */
export const LATENT_STUDENT_LEARNING_DEFAULT: StudentLearningMode = "auto";

/** The outcome of the student effect's choice with a learning loading (round 14). */
export interface StudentEffectChoice {
  sd: number;
  loading: number;
  /** Per loading candidate: its best prior sd and that sd's held-out ll per graded observation. */
  heldOut: Record<string, { sd: number; logLikPerObs: number }>;
  /** Graded observations of the held-out sequences (students with 2+ graded sequences). */
  observations: number;
  margin: number;
}

/** The outcome of LatentFilter.chooseForgetting (round 12). */
export interface ForgettingChoice {
  chosen: "floor" | "durable";
  /** Held-out log-likelihood per graded observation of each form (fitted before the cut). */
  heldOut: { floor: number; durable: number };
  cutDay: number;
  heldOutObservations: number;
  margin: number;
}

/** The outcome of LatentFilter.chooseEmission. */
export interface EmissionChoice {
  chosen: "linear" | "logistic";
  /** Held-out log-likelihood per graded observation of each form (fitted before the cut). */
  heldOut: { linear: number; logistic: number };
  /** The time cut (days, the events' clock) and the graded observations at or after it. */
  cutDay: number;
  heldOutObservations: number;
  margin: number;
}

/**
 * The time split of the held-out choices (`chooseEmission`, `chooseForgetting`): the cut at the `cutQuantile`
 * quantile of the graded events' times, the sequences' events before it (the fit sample), and the score of a
 * model fitted on them: every sequence filtered through all of its events (prior = the topic's fitted one),
 * the log-likelihood of the graded events at or after the cut per graded observation. Throws when either side
 * has fewer than 50 graded observations (`what` / `instead` name the choice and how to avoid it).
 */
function heldOutSplit(
  sequences: readonly LatentSequence[],
  cutQuantile: number,
  what: string,
  instead: string,
): { cut: number; before: LatentSequence[]; heldObs: number; score: (m: LatentFilter) => number } {
  const times: number[] = [];
  for (const s of sequences) for (const e of s.events) if (isGraded(e)) times.push(e.t);
  times.sort((a, b) => a - b);
  if (times.length === 0)
    throw new LatentFilterError(
      `no graded observations to choose the latent filter's ${what} on: ingest quiz / practice / assignment events`,
    );
  const cut = times[Math.min(times.length - 1, Math.floor(cutQuantile * times.length))]!;
  const before: LatentSequence[] = [];
  let heldObs = 0;
  for (const s of sequences) {
    const ev = s.events.filter((e) => e.t < cut);
    if (ev.length > 0) before.push({ ...s, events: ev });
    for (const e of s.events) if (e.t >= cut) heldObs += gradedCount(e);
  }
  if (heldObs < 50)
    throw new LatentFilterError(
      `only ${heldObs} graded observations after the time cut (day ${cut.toFixed(1)}) to choose the latent filter's ${what} on; need 50: ${instead} or ingest more history`,
    );
  const score = (m: LatentFilter): number => {
    let ll = 0;
    let p = new Float64Array(0);
    for (const s of sequences) {
      const k = m.kernelFor(s.topic);
      if (p.length !== k.bins) p = new Float64Array(k.bins);
      k.prior(m.json.topicPriorMean[s.topic] ?? m.json.params.priorMean, p);
      const base = k.mean(p);
      let last = Number.NaN;
      for (let n = 0; n < s.events.length; n++) {
        const e = s.events[n]!;
        if (Number.isFinite(last)) k.forget(p, e.t - last, base, n);
        last = e.t;
        const l = k.observe(p, e);
        if (e.t >= cut) ll += l;
        k.learnFrom(p, e.kind);
      }
    }
    return ll / heldObs;
  };
  return { cut, before, heldObs, score };
}

const isGraded = (e: LatentEvent): boolean =>
  e.kind === KIND_QUIZ || e.kind === KIND_PRACTICE || e.kind === KIND_ASSIGNMENT;
/** Graded observations in one event: the answers of a quiz / practice set, 1 for an assignment score. */
const gradedCount = (e: LatentEvent): number =>
  e.kind === KIND_QUIZ || e.kind === KIND_PRACTICE ? e.n : e.kind === KIND_ASSIGNMENT ? 1 : 0;
/** Prior sd (unconstrained coordinates) of the guard at half the minimum; it scales with sqrt(n / (min - n)). */
export const LATENT_SMALL_DATA_PRIOR_SD = 1;

/**
 * Plausible global parameters (documented bounds; a fit outside them is flagged in `fit.implausible`, and
 * below the minimum size replaced by the defaults): the answers must depend on knowledge (guess + slip <
 * 0.8), one quiz / practice answer may not teach half of what is left (rate < 0.5), and forgetting may not
 * halve knowledge within 2 days.
 */
export const LATENT_PLAUSIBLE = {
  maxGuessPlusSlip: 0.8,
  maxAnswerLearnRate: 0.5,
  minHalfLifeDays: 2,
} as const;

/** The plausibility checks `params` fails, each as a readable reason (empty: plausible). */
export function implausibleParams(params: LatentParams): string[] {
  const out: string[] = [];
  const b = LATENT_PLAUSIBLE;
  if (params.guess + params.slip >= b.maxGuessPlusSlip)
    out.push(`guess ${params.guess.toFixed(3)} + slip ${params.slip.toFixed(3)} >= ${b.maxGuessPlusSlip}`);
  for (const k of [KIND_QUIZ, KIND_PRACTICE]) {
    const r = params.learn[k] ?? 0;
    if (r >= b.maxAnswerLearnRate)
      out.push(`${LATENT_KINDS[k]} learning rate ${r.toFixed(3)} >= ${b.maxAnswerLearnRate}`);
  }
  if (params.halfLifeDays < b.minHalfLifeDays)
    out.push(`half-life ${params.halfLifeDays.toFixed(2)} days < ${b.minHalfLifeDays}`);
  return out;
}

const DEFAULT_START: LatentParams = {
  priorMean: 0.3,
  priorConcentration: 4,
  guess: 0.2,
  slip: 0.1,
  learn: [0.03, 0.03, 0.03, 0.03, 0.03],
  halfLifeDays: 60,
  floor: 0.1,
  noise: 0.01,
  assignmentConcentration: 6,
};

const LOGISTIC_START: LatentParams = {
  ...DEFAULT_START,
  priorMean: 0.2,
  guess: 0.15,
  slip: 0.08,
  slope: 8,
  threshold: 0.45,
};

const logit = (p: number): number => Math.log(p / (1 - p));
const clampP = (p: number): number => Math.min(1 - 1e-6, Math.max(1e-6, p));

/**
 * Unconstrained coordinates: logits / logs of the bounded parameters (guess, slip in (0, 0.5); noise in (0, 0.25)).
 * The forgetting's second parameter takes one slot: the global floor, or (`durable`) the durable share.
 */
/**
 * Round 30's converged global fit from the Nelder-Mead's point `x0` (LATENT_GLOBAL_POLISH): up to `restarts`
 * fresh Nelder-Mead searches from the last point, then BFGS (models/quasiNewton.ts). `observations` turns the
 * per-observation objective into nats for the record. Never returns a point worse than `x0`.
 */
export function polishGlobalFit(
  nllFull: (x: Float64Array) => number,
  x0Full: Float64Array,
  observations: number,
  held: readonly number[] = [],
): { x: Float64Array; f: number; record: LatentGlobalPolish } {
  // The held coordinates keep x0's values: the searches run on the others only.
  const free = [...x0Full.keys()].filter((i) => !held.includes(i));
  const expand = (z: Float64Array): Float64Array => {
    if (held.length === 0) return z;
    const full = Float64Array.from(x0Full);
    free.forEach((i, j) => {
      full[i] = z[j]!;
    });
    return full;
  };
  const nll = held.length === 0 ? nllFull : (z: Float64Array): number => nllFull(expand(z));
  const x0 = held.length === 0 ? x0Full : Float64Array.from(free, (i) => x0Full[i]!);
  const before = nll(x0);
  let x = x0;
  // Round 30's probe (bench/latentGlobalFit.bench.ts, seed 4): fresh simplexes from the last point gained
  // more per pass than BFGS alone on this ridge, so restarts first, BFGS to finish.
  let restartEvaluations = 0;
  let restarts = 0;
  let fx = before;
  for (let r = 0; r < LATENT_GLOBAL_POLISH.restarts; r++) {
    const res = nelderMead(nll, x, {
      step: LATENT_GLOBAL_POLISH.restartStep,
      maxEvaluations: LATENT_FIT_BUDGET.maxEvaluations,
      fTolerance: 1e-7,
      xTolerance: 1e-3,
    });
    restartEvaluations += res.evaluations;
    restarts++;
    const gain = (fx - res.f) * observations;
    if (res.f < fx) {
      x = res.x;
      fx = res.f;
    }
    if (gain < LATENT_GLOBAL_POLISH.restartGainNats) break;
  }
  const pol = quasiNewton(nll, x, LATENT_GLOBAL_POLISH);
  if (pol.f < fx) {
    x = pol.x;
    fx = pol.f;
  }
  return {
    x: expand(x),
    f: fx,
    record: {
      ...(held.length > 0 ? { held: held.map((i) => LATENT_COORDINATE_NAMES[i] ?? String(i)) } : {}),
      evaluations: restartEvaluations + pol.evaluations,
      restarts,
      iterations: pol.iterations,
      stop: pol.stop,
      logLikBefore: -before * observations,
      logLikAfter: -fx * observations,
      gradientMax: pol.gradient.reduce((m, g) => Math.max(m, Math.abs(g)), 0),
    },
  };
}

/** The global fit's objective (LatentFilter.fit; exported for round 30's stationarity check and bench). */
export interface LatentGlobalObjective {
  bins: number;
  logistic: boolean;
  durable: boolean;
  /** The options' fixed prior concentration, if any, put into a parameter set. */
  fixC: (q: LatentParams) => LatentParams;
  /** Graded observations of the sample (quiz / practice answers, assignment scores). */
  observations: number;
  present: ReadonlySet<number>;
  /** Scratch for the kernel's runs. */
  p: Float64Array;
  /** The start's unconstrained coordinates (the small-data prior's centre). */
  centre: Float64Array;
  minObservations: number;
  /** The small-data prior's sd per coordinate (infinite from `minObservations` on: no prior). */
  priorSd: number;
  /** Log-likelihood of the sample (nats) under a parameter set (-Infinity where the kernel refuses it). */
  logLikAt: (q: LatentParams) => number;
  /** Log-likelihood of the sample (nats) at unconstrained coordinates x. */
  logLik: (x: Float64Array) => number;
  /** What the fit minimises: (the small-data penalty - logLik) / observations. */
  nll: (x: Float64Array) => number;
  /** Coordinates <-> global parameters (the fixed concentration applied). */
  params: (x: Float64Array) => LatentParams;
  vector: (q: LatentParams) => Float64Array;
}

/**
 * The objective LatentFilter.fit minimises over the global parameters, on the unconstrained coordinates of
 * `toVector`: the mean negative log-likelihood per graded observation of the forward passes (plus the small-data
 * guard's penalty below `minObservations`). Pure; throws LatentFilterError below 50 graded observations.
 */
export function latentGlobalObjective(
  sequences: readonly LatentSequence[],
  opts: LatentFitOptions = {},
): LatentGlobalObjective {
  const bins = opts.bins ?? 40;
  const logistic = opts.emission === "logistic";
  const durable = opts.forgetting === "durable";
  const fixC = (q: LatentParams): LatentParams =>
    opts.fixedConcentration === undefined ? q : { ...q, priorConcentration: opts.fixedConcentration };
  let observations = 0;
  for (const s of sequences)
    for (const e of s.events)
      if (e.kind === KIND_QUIZ || e.kind === KIND_PRACTICE) observations += e.n;
      else if (e.kind === KIND_ASSIGNMENT) observations += 1;
  if (observations < 50)
    throw new LatentFilterError(
      `only ${observations} graded observations (quiz / practice answers, assignment scores) to fit the latent filter on; need 50: ingest more events`,
    );
  const present = new Set<number>();
  for (const s of sequences) for (const e of s.events) present.add(e.kind);
  const p = new Float64Array(bins);
  const start = opts.start ?? (logistic ? LOGISTIC_START : DEFAULT_START);
  const centre = toVector(start, logistic, durable);
  // Small-data guard: below `minObservations` the ~10 global parameters are weakly identified (a fit on a
  // few hundred answers can land on slip 0.49 / learning rate 1 / a 1-day half-life), so the fit is the
  // posterior mode under a Normal prior centred on the start values in the unconstrained coordinates, its
  // variance priorSd0^2 n / (min - n): the prior's precision falls with the data and is 0 from `min` on,
  // where the fit is the plain maximum likelihood (unchanged).
  const minObservations = opts.minObservations ?? LATENT_MIN_OBSERVATIONS;
  const priorSd =
    observations < minObservations
      ? LATENT_SMALL_DATA_PRIOR_SD * Math.sqrt(observations / (minObservations - observations))
      : Number.POSITIVE_INFINITY;
  const logLikAt = (params: LatentParams): number => {
    let kernel: LatentKernel;
    try {
      kernel = new LatentKernel(params, bins);
    } catch {
      return Number.NEGATIVE_INFINITY;
    }
    let ll = 0;
    for (const s of sequences) ll += kernel.run(s.events, params.priorMean, p);
    return ll;
  };
  const logLik = (x: Float64Array): number => logLikAt(fixC(fromVector(x, present, logistic, durable)));
  const penalty = (x: Float64Array): number => {
    if (!Number.isFinite(priorSd)) return 0;
    let q = 0;
    for (let i = 0; i < x.length; i++) q += (x[i]! - centre[i]!) ** 2;
    return q / (2 * priorSd * priorSd);
  };
  const nll = (x: Float64Array): number => (penalty(x) - logLik(x)) / observations;
  return {
    bins,
    logistic,
    durable,
    fixC,
    observations,
    present,
    p,
    centre,
    minObservations,
    priorSd,
    logLikAt,
    logLik,
    nll,
    params: (x) => fixC(fromVector(x, present, logistic, durable)),
    vector: (q) => toVector(q, logistic, durable),
  };
}

/** Names of toVector's coordinates (the forgetting's second slot: the floor, or the durable share). */
const LATENT_COORDINATE_NAMES = [
  "priorMean",
  "priorConcentration",
  "guess",
  "slip",
  ...LATENT_KINDS.map((k) => `learn.${k}`),
  "halfLifeDays",
  "floor",
  "noise",
  "assignmentConcentration",
  "slope",
  "threshold",
];
/** The per-event noise's coordinate in toVector's order. */
export const LATENT_NOISE_COORDINATE = 6 + LATENT_KINDS.length;

function toVector(p: LatentParams, logistic = false, durable = false): Float64Array {
  const v = [
    logit(clampP(p.priorMean)),
    Math.log(p.priorConcentration),
    logit(clampP(p.guess / 0.5)),
    logit(clampP(p.slip / 0.5)),
    ...LATENT_KINDS.map((_, k) => logit(clampP(p.learn[k] ?? 0.01))),
    Math.log(p.halfLifeDays),
    logit(clampP(durable ? (p.durableShare ?? 0.5) : p.floor)),
    logit(clampP(p.noise / 0.25)),
    Math.log(p.assignmentConcentration),
  ];
  if (logistic) v.push(Math.log(p.slope ?? 8), logit(clampP(((p.threshold ?? 0.5) + 0.5) / 2)));
  return Float64Array.from(v);
}

function fromVector(
  x: Float64Array,
  present: ReadonlySet<number>,
  logistic = false,
  durable = false,
): LatentParams {
  const n = LATENT_KINDS.length;
  const shape = logistic
    ? { slope: Math.min(60, Math.max(0.5, Math.exp(x[8 + n]!))), threshold: 2 * sigmoid(x[9 + n]!) - 0.5 }
    : {};
  return {
    ...shape,
    priorMean: sigmoid(x[0]!),
    priorConcentration: Math.min(200, Math.max(0.2, Math.exp(x[1]!))),
    guess: 0.5 * sigmoid(x[2]!),
    slip: 0.5 * sigmoid(x[3]!),
    // A kind absent from the data has no likelihood: its rate stays 0 instead of drifting.
    learn: LATENT_KINDS.map((_, k) => (present.has(k) ? sigmoid(x[4 + k]!) : 0)),
    halfLifeDays: Math.min(3650, Math.max(0.5, Math.exp(x[4 + n]!))),
    // The durable-share form has no global floor: 0 is stored for readers of `floor` (none decay with it).
    ...(durable ? { floor: 0, durableShare: sigmoid(x[5 + n]!) } : { floor: sigmoid(x[5 + n]!) }),
    noise: 0.25 * sigmoid(x[6 + n]!),
    assignmentConcentration: Math.min(500, Math.max(0.5, Math.exp(x[7 + n]!))),
  };
}

/** Sequences grouped by student (first-seen order); sequences without a student, or that `keep` refuses, left out. */
export function groupByStudent(
  sequences: readonly LatentSequence[],
  keep: (s: LatentSequence) => boolean = () => true,
): Map<string, LatentSequence[]> {
  const byStudent = new Map<string, LatentSequence[]>();
  for (const s of sequences) {
    if (s.student === undefined || !keep(s)) continue;
    const l = byStudent.get(s.student) ?? [];
    l.push(s);
    byStudent.set(s.student, l);
  }
  return byStudent;
}

/** Sequences grouped by topic (first-seen order). */
export function groupByTopic(sequences: readonly LatentSequence[]): Map<string, LatentSequence[]> {
  const byTopic = new Map<string, LatentSequence[]>();
  for (const s of sequences) {
    const l = byTopic.get(s.topic) ?? [];
    l.push(s);
    byTopic.set(s.topic, l);
  }
  return byTopic;
}

/**
 * How `fitTopicEffects` searches a topic's (prior-mean offset, threshold offset) when both are fitted (round 27):
 * "alternating" (rounds 6-26: two golden-section searches, one coordinate at a time, alternated twice) or
 * "joint" (`jointTopicMin`: damped Newton steps in both at once). The penalised likelihood is a narrow curved
 * ridge in the two (the answers pin K - threshold far better than the split), along which the alternating search
 * stops short of the optimum; the joint search follows the ridge to it. Same objective, answers only.
 */
export const LATENT_TOPIC_FITS = ["alternating", "joint"] as const;
export type LatentTopicFit = (typeof LATENT_TOPIC_FITS)[number];
/** The topic fit of LatentFilter.fit and `mastery train served` (round 27: "joint" opt-in, docs/benchmarks.md Validity round 27). */
export const LATENT_TOPIC_FIT_DEFAULT: LatentTopicFit = "alternating";

/**
 * The joint topic search's budget and steps (round 27): at most `maxEvaluations` runs of a topic's sequences
 * (the alternating search makes 64); stop once a Newton step's predicted decrease of the negative penalised
 * log-likelihood is below `tolerance` nats; central differences over (`priorLogit`, `threshold`), the steps
 * models/thresholdUncertainty.ts reads the curvature with.
 */
export const LATENT_TOPIC_JOINT = {
  maxEvaluations: 150,
  tolerance: 1e-4,
  priorLogit: 0.05,
  threshold: 0.01,
} as const;

/** What `jointTopicMin` did: the point, its value, Newton steps taken, runs of the objective, why it stopped. */
export interface JointTopicMin {
  o: number;
  d: number;
  value: number;
  steps: number;
  evaluations: number;
  stop: "converged" | "budget" | "no-descent";
}

/**
 * Minimises f(o, d) on the box [lo, hi] (o, d each) from (o0, d0) by damped Newton steps (Levenberg-Marquardt):
 * each step reads the gradient and Hessian from f on the 3 x 3 stencil of central differences (steps `h`), solves
 * (H + lambda diag|H|) s = -g (lambda raised tenfold, from 0, until the matrix is positive definite and the step,
 * cut back to the box, lowers f; lowered tenfold after a success), and moves only when f falls, so the result is
 * never worse than the start. Stops when the accepted step's predicted decrease -g.s - s.H.s / 2 is below
 * `tolerance` ("converged"), when no damping lowers f ("no-descent", a minimum up to the stencil's resolution),
 * or before a stencil would pass `maxEvaluations` runs of f ("budget"). Deterministic; pure.
 */
export function jointTopicMin(
  f: (o: number, d: number) => number,
  start: { o: number; d: number },
  box: { lo: readonly [number, number]; hi: readonly [number, number] },
  opts: { h: readonly [number, number]; tolerance: number; maxEvaluations: number },
): JointTopicMin {
  const [ho, hd] = opts.h;
  let evaluations = 0;
  const F = (o: number, d: number): number => {
    evaluations++;
    return f(o, d);
  };
  let o = Math.min(box.hi[0], Math.max(box.lo[0], start.o));
  let d = Math.min(box.hi[1], Math.max(box.lo[1], start.d));
  let fx = F(o, d);
  let lambda = 0;
  let steps = 0;
  const maxTries = 10;
  for (;;) {
    if (evaluations + 8 + 1 > opts.maxEvaluations)
      return { o, d, value: fx, steps, evaluations, stop: "budget" };
    const fp0 = F(o + ho, d);
    const fm0 = F(o - ho, d);
    const f0p = F(o, d + hd);
    const f0m = F(o, d - hd);
    const fpp = F(o + ho, d + hd);
    const fpm = F(o + ho, d - hd);
    const fmp = F(o - ho, d + hd);
    const fmm = F(o - ho, d - hd);
    const go = (fp0 - fm0) / (2 * ho);
    const gd = (f0p - f0m) / (2 * hd);
    const hoo = (fp0 - 2 * fx + fm0) / (ho * ho);
    const hdd = (f0p - 2 * fx + f0m) / (hd * hd);
    const hod = (fpp - fpm - fmp + fmm) / (4 * ho * hd);
    const doo = Math.max(Math.abs(hoo), 1e-9);
    const ddd = Math.max(Math.abs(hdd), 1e-9);
    let moved = false;
    let predicted = 0;
    for (let tries = 0; tries < maxTries && evaluations < opts.maxEvaluations; tries++) {
      const a = hoo + lambda * doo;
      const c = hdd + lambda * ddd;
      const det = a * c - hod * hod;
      if (!(a > 0 && det > 0 && Number.isFinite(det))) {
        lambda = lambda === 0 ? 1e-3 : lambda * 10;
        continue;
      }
      // Active set: a coordinate on a bound whose Newton step points out of the box is held there and the
      // other takes its own (damped) one-dimensional Newton step. Without that, a search that had stepped into a
      // corner could not leave it ("no-descent" short of the optimum, cutting the whole step back to zero).
      let so = -(c * go - hod * gd) / det;
      let sd = -(a * gd - hod * go) / det;
      const holdO = (o <= box.lo[0] && so < 0) || (o >= box.hi[0] && so > 0);
      const holdD = (d <= box.lo[1] && sd < 0) || (d >= box.hi[1] && sd > 0);
      if (holdO && holdD) break;
      if (holdD) {
        so = -go / a;
        sd = 0;
      } else if (holdO) {
        so = 0;
        sd = -gd / c;
      }
      // Cut the step back to the box (along its direction).
      let t = 1;
      if (o + so > box.hi[0]) t = Math.min(t, (box.hi[0] - o) / so);
      if (o + so < box.lo[0]) t = Math.min(t, (box.lo[0] - o) / so);
      if (d + sd > box.hi[1]) t = Math.min(t, (box.hi[1] - d) / sd);
      if (d + sd < box.lo[1]) t = Math.min(t, (box.lo[1] - d) / sd);
      so *= t;
      sd *= t;
      predicted = -(go * so + gd * sd) - 0.5 * (hoo * so * so + 2 * hod * so * sd + hdd * sd * sd);
      const fn = F(o + so, d + sd);
      if (fn < fx) {
        o += so;
        d += sd;
        fx = fn;
        lambda = lambda / 10 < 1e-3 ? 0 : lambda / 10;
        moved = true;
        break;
      }
      lambda = lambda === 0 ? 1e-3 : lambda * 10;
    }
    if (!moved) return { o, d, value: fx, steps, evaluations, stop: "no-descent" };
    steps++;
    if (predicted < opts.tolerance) return { o, d, value: fx, steps, evaluations, stop: "converged" };
  }
}

/**
 * Per-topic prior mean (and, with the logistic emission, emission threshold) around fixed global `params`:
 * maximise each topic's likelihood + a Normal(0, sd^2) penalty on the offset from the global value. One
 * coordinate: a golden-section search. Both (logistic emission, threshold sd > 0): `method` "alternating" (the
 * default, rounds 6-26: golden-section searches alternated twice) or "joint" (round 27, `jointTopicMin` from
 * (0, 0) on the same box and objective). A threshold sd of 0 holds the global one.
 */
export function fitTopicEffects(
  params: LatentParams,
  bins: number,
  byTopic: ReadonlyMap<string, readonly LatentSequence[]>,
  opts: { topicPriorSd: number; topicThresholdSd: number; method?: LatentTopicFit },
): { topicPriorMean: Record<string, number>; topicThreshold: Record<string, number> } {
  const logistic = params.slope !== undefined;
  const shrink = opts.topicPriorSd;
  const thSd = opts.topicThresholdSd;
  const searchThreshold = logistic && thSd > 0;
  const kernel = new LatentKernel(params, bins);
  const p = new Float64Array(bins);
  const topicPriorMean: Record<string, number> = {};
  const topicThreshold: Record<string, number> = {};
  const g0 = logit(params.priorMean);
  const th0 = params.threshold ?? 0.5;
  const joint = searchThreshold && (opts.method ?? LATENT_TOPIC_FIT_DEFAULT) === "joint";
  for (const [topic, seqs] of byTopic) {
    let off = 0;
    let thOff = 0;
    let k = kernel;
    const ll = (kk: LatentKernel, m: number): number => {
      let l = 0;
      for (const s of seqs) l += kk.run(s.events, m, p);
      return l;
    };
    if (joint) {
      // Kernels by threshold offset, sharing the learning maps of the topic-free kernel (the same values);
      // the stencil's three rows are reused across its nine runs and by the next step's trial.
      const kernels = new Map<number, LatentKernel>();
      const kernelAt = (dd: number): LatentKernel => {
        let kk = kernels.get(dd);
        if (kk === undefined) {
          if (kernels.size >= 8) kernels.clear();
          kk = new LatentKernel(params, bins, th0 + dd, 0, undefined, kernel);
          kernels.set(dd, kk);
        }
        return kk;
      };
      const r = jointTopicMin(
        (o, dd) =>
          -ll(kernelAt(dd), sigmoid(g0 + o)) +
          (0.5 * o * o) / (shrink * shrink) +
          (0.5 * dd * dd) / (thSd * thSd),
        { o: 0, d: 0 },
        { lo: [-3, -0.5], hi: [3, 0.5] },
        {
          h: [LATENT_TOPIC_JOINT.priorLogit, LATENT_TOPIC_JOINT.threshold],
          tolerance: LATENT_TOPIC_JOINT.tolerance,
          maxEvaluations: LATENT_TOPIC_JOINT.maxEvaluations,
        },
      );
      off = r.o;
      thOff = r.d;
    } else
      for (let round = 0; round < (searchThreshold ? 2 : 1); round++) {
        off = goldenMin((o) => -ll(k, sigmoid(g0 + o)) + (0.5 * o * o) / (shrink * shrink), -3, 3, 14);
        if (!searchThreshold) break;
        const m = sigmoid(g0 + off);
        thOff = goldenMin(
          (d) => -ll(new LatentKernel(params, bins, th0 + d), m) + (0.5 * d * d) / (thSd * thSd),
          -0.5,
          0.5,
          14,
        );
        k = new LatentKernel(params, bins, th0 + thOff);
      }
    topicPriorMean[topic] = sigmoid(g0 + off);
    if (logistic) topicThreshold[topic] = th0 + thOff;
  }
  return { topicPriorMean, topicThreshold };
}

/** The sequences of each half of the students (`studentHalf`; a sequence without a student by its index) and their graded observations. */
function studentHalves(sequences: readonly LatentSequence[]): {
  halves: [LatentSequence[], LatentSequence[]];
  obs: [number, number];
} {
  const halves: [LatentSequence[], LatentSequence[]] = [[], []];
  const obs: [number, number] = [0, 0];
  sequences.forEach((s, i) => {
    const h = studentHalf(s.student ?? `#${i}`);
    halves[h].push(s);
    for (const e of s.events) obs[h] += gradedCount(e);
  });
  return { halves, obs };
}

/** The half (0 or 1) a student key falls in for chooseThresholdSd: FNV-1a 32-bit hash of the key, low bit. */
export function studentHalf(key: string): 0 | 1 {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return ((h >>> 0) & 1) as 0 | 1;
}

/** Golden-section minimisation of a unimodal f on [a, b] with `iters` shrinks. */
function goldenMin(f: (x: number) => number, a: number, b: number, iters: number): number {
  const r = (Math.sqrt(5) - 1) / 2;
  let c = b - r * (b - a);
  let d = a + r * (b - a);
  let fc = f(c);
  let fd = f(d);
  for (let i = 0; i < iters; i++) {
    if (fc < fd) {
      b = d;
      d = c;
      fd = fc;
      c = b - r * (b - a);
      fc = f(c);
    } else {
      a = c;
      c = d;
      fc = fd;
      d = a + r * (b - a);
      fd = f(d);
    }
  }
  return (a + b) / 2;
}
