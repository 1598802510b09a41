/**
 * The real-log next-week measure with per-student cuts (issue 16 item 5; helper "reallog", 2026-12-03).
 *
 * Log: assistments17_gervet/split (ASSISTments 2017 first attempts with real timestamps in seconds; users
 * with user_id % 5 == 0 are the test users, the rest train). Protocol:
 *  - cuts: each test student's span [first attempt, last attempt] is cut at REAL_CUTS_PER_STUDENT points,
 *    stratified random fractions in [0.05, 0.95] (one draw per stratum, seeded by REAL_SEED);
 *  - label of a (student, cut, skill): the student's accuracy on the skill in [cut, cut + 7 days), kept when
 *    it holds >= 3 attempts (the issue's rule);
 *  - score of the same (student, cut, skill): from the student's own attempts before the cut only, with
 *    model parameters fitted on the TRAIN users' attempts before a fit time <= the cut. Fitting once per cut
 *    is too slow (hundreds of cuts), so the cuts are grouped into REAL_EPOCHS fit epochs: the epoch times
 *    are quantiles of the cut times; a cut uses the latest epoch at or before it. No test user's attempt
 *    and no attempt after the cut reaches a score (no leakage across users or time);
 *  - sources: the served score (the latent filter of models/latentFilter.ts fitted by `LatentFilter.fit` as
 *    `mastery train served` fits it, its posterior mapped by the centred-logit scale with the base of the
 *    decay fit on the same train attempts: the served default), the filter's own scale, bounded BKT
 *    P(learned) (models/bktMasteryOptions.ts), plain accuracy (all the student's attempts on the skill
 *    before the cut; last 30 days);
 *  - the measure: Spearman of each score against the label over the pooled (student, cut, skill) pairs; 95%
 *    intervals by a cluster bootstrap over students (a student's pairs share the student and overlap in
 *    time), and the PAIRED difference served - plain accuracy from the same resamples
 *    (models/validity.ts pairedClusterBootstrap).
 * Pairs where the student had no attempt on the skill before the cut have no plain accuracy: the main
 * comparison is on "measured" pairs (>= 1 attempt before the cut); a second one on every labelled pair,
 * with plain accuracy falling back to the skill's train accuracy before the epoch.
 *
 *   SYNTH=0 npx tsx bench/validity.bench.ts                       # real log (this protocol) only
 *   REAL_CUTS_PER_STUDENT=20 REAL_EPOCHS=4 REAL_SEED=1 ...         # the defaults
 *   REAL_PROTOCOL=global SYNTH=0 npx tsx bench/validity.bench.ts   # round 2's 6 global cuts (full pipeline)
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { BKT, type BktModelJson, type BktParams, bktStepPair, type SkillResponses } from "../models/bkt.ts";
import { MASTERY_BKT_OPTIONS } from "../models/bktMasteryOptions.ts";
import {
  groupByStudent,
  KIND_QUIZ,
  LATENT_AS_OF_FORGETTING_DEFAULT,
  LATENT_FORGET_SPREAD_DEFAULT,
  LATENT_FORGETTING_DEFAULT,
  LATENT_STUDENT_LEARNING_DEFAULT,
  LATENT_THRESHOLD_SD_DEFAULT,
  LATENT_TOPIC_THRESHOLD_SD,
  type LatentEstimate,
  type LatentEvent,
  LatentFilter,
  type LatentFitOptions,
  type LatentModelJson,
  type LatentSequence,
} from "../models/latentFilter.ts";
import { sigmoid } from "../models/logistic.ts";
import { mulberry32 } from "../models/prng.ts";
import { type DecayTransition, fitDecay } from "../models/servedDecay.ts";
import { fitAnchor, masteryOf, type ScaleAnchor, type TopicCalibration } from "../models/servedMastery.ts";
import {
  applyStudentIntervalMode,
  STUDENT_INTERVAL_DEFAULT,
  type StudentIntervalMode,
} from "../models/studentInterval.ts";
import { applyStudentScale, STUDENT_SCALE_DEFAULT, type StudentScaleMode } from "../models/studentScale.ts";
import { pairedClusterBootstrap } from "../models/validity.ts";
import { latentCacheTag } from "./latentEnv.ts";

const DAY_S = 86_400;

interface Attempt {
  /** Days since the log's origin. */
  t: number;
  skill: string;
  correct: 0 | 1;
}

interface UserLog {
  user: number;
  test: boolean;
  attempts: Attempt[];
}

function loadLog(dir: string): UserLog[] {
  const files = ["preprocessed_data_train.csv", "preprocessed_data_test.csv"].map((f) => join(dir, f));
  for (const f of files) if (!existsSync(f)) throw new Error(`real log not found: ${f} (set MASTERY_DATA)`);
  const users = new Map<number, UserLog>();
  for (const f of files) {
    const lines = readFileSync(f, "utf8").split("\n");
    const head = lines[0]!.split("\t");
    const col = (name: string) => {
      const i = head.indexOf(name);
      if (i < 0) throw new Error(`${f}: no column ${name}`);
      return i;
    };
    const [cu, ct, cc, cs] = [col("user_id"), col("timestamp"), col("correct"), col("skill_id")];
    for (let i = 1; i < lines.length; i++) {
      const line = lines[i]!;
      if (line === "") continue;
      const p = line.split("\t");
      const user = Number(p[cu]);
      let u = users.get(user);
      if (u === undefined) {
        u = { user, test: user % 5 === 0, attempts: [] };
        users.set(user, u);
      }
      u.attempts.push({ t: Number(p[ct]) / DAY_S, skill: `s${p[cs]}`, correct: p[cc] === "1" ? 1 : 0 });
    }
  }
  // Time order per user; the file order breaks ties (a stable sort).
  for (const u of users.values()) u.attempts.sort((a, b) => a.t - b.t);
  return [...users.values()].sort((a, b) => a.user - b.user);
}

/**
 * REAL_EMISSION=linear|logistic|auto: the filter's emission for the real-log fits (round 10; absent = the
 * product's default, auto, as `mastery train served` fits it). Part of the cache file name except for linear
 * (rounds 4-9's caches, fitted before the choice existed, are linear).
 */
const realEmission = ((): "linear" | "logistic" | "auto" => {
  const v = process.env.REAL_EMISSION ?? "auto";
  if (v !== "linear" && v !== "logistic" && v !== "auto")
    throw new Error(`REAL_EMISSION must be linear, logistic or auto (got ${v})`);
  return v;
})();
/**
 * REAL_THRESHOLD_SD=auto|<sd>: the topic threshold's shrinkage of logistic real-log fits (round 13; absent = the
 * product's default, LATENT_THRESHOLD_SD_DEFAULT). Part of the cache file name unless it is the fixed 0.15 of
 * rounds 6-12 (their caches).
 */
const realThresholdSd = ((): number | "auto" => {
  const v = process.env.REAL_THRESHOLD_SD;
  if (v === undefined || v === "") return LATENT_THRESHOLD_SD_DEFAULT;
  if (v === "auto") return v;
  const n = Number(v);
  if (!(v.trim() !== "" && n >= 0))
    throw new Error(`REAL_THRESHOLD_SD must be auto or a number >= 0 (got ${v})`);
  return n;
})();
/** FNV-1a of a string: a deterministic pair sample, as fitLatentOnStore samples pairs by hash. */
function hash32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

/** Everything fitted on the train users' attempts before one epoch time. */
export interface EpochModels {
  time: number;
  filter: LatentFilter;
  global: TopicCalibration;
  /** The served scale's anchor (round 7, models/servedMastery.ts fitAnchor) on the fit sample's pairs at the epoch time. */
  anchor: ScaleAnchor;
  bkt: BKT;
  skillAccuracy: Map<string, number>;
  trainAttempts: number;
  fitSeconds: number;
  /** The student prior sd that maximises the fit sample's marginal likelihood (bench candidate served:sdml). */
  sdMarginal: number;
}

/**
 * Empirical-Bayes choice of the student effect's prior sd among `candidates` (0 = none) by marginal
 * likelihood: each student's sequences are folded from the basis priors (STUDENT_GRID); under the model the
 * product scores with (`LatentFilter.mixAt`: the prior at offset o is the mixture of its two neighbouring basis priors),
 * the student's likelihood at o is the product over their pairs of the mixture of the two basis
 * likelihoods; it is integrated against Normal(0, sd^2) truncated to the basis range (quadrature on a
 * 0.05-logit grid), and the sd with the highest sum over students of the log marginal likelihood wins.
 * Label-free. Bench only (round 8: tried as a fit option, not merged): an alternative to
 * `LatentFilter.chooseStudentSd`'s leave-one-topic-out plug-in criterion, which prefers
 * small sds when each student's offset is estimated with noise.
 */
export function marginalStudentSd(
  model: LatentFilter,
  sequences: readonly LatentSequence[],
  candidates: readonly number[] = [0, 0.25, 0.5, 0.75, 1, 1.5, 2, 3],
): { sd: number; logMarginal: Record<string, number> } {
  const basis = new LatentFilter({ ...model.json, studentPriorSd: 1 });
  const grid = basis.studentGrid();
  const lo = grid[0]!;
  const step = grid[1]! - lo;
  const nodes: number[] = [];
  for (let i = Math.round(lo / 0.05); i <= Math.round(grid[grid.length - 1]! / 0.05); i++)
    nodes.push(i * 0.05);
  const zero = nodes.findIndex((o) => Math.abs(o) < 1e-9);
  const byStudent = groupByStudent(sequences, (s) => basis.studentTopic(s.topic));
  const total = new Float64Array(candidates.length);
  const logL = new Float64Array(nodes.length);
  for (const seqs of byStudent.values()) {
    logL.fill(0);
    for (const q of seqs) {
      const ll = basis.foldBasis(q.topic, q.events).ll;
      for (let i = 0; i < nodes.length; i++) {
        const pos = Math.min(grid.length - 1, Math.max(0, (nodes[i]! - lo) / step));
        const j = Math.min(grid.length - 2, Math.floor(pos));
        const w = pos - j;
        const a = ll[j]!;
        const b = ll[j + 1]!;
        const m = Math.max(a, b);
        logL[i]! += m + Math.log((1 - w) * Math.exp(a - m) + w * Math.exp(b - m));
      }
    }
    let m = Number.NEGATIVE_INFINITY;
    for (const v of logL) if (v > m) m = v;
    candidates.forEach((sd, c) => {
      if (!(sd > 0)) {
        total[c]! += logL[zero]!;
        return;
      }
      let num = 0;
      let den = 0;
      for (let i = 0; i < nodes.length; i++) {
        const wq = Math.exp((-0.5 * nodes[i]! * nodes[i]!) / (sd * sd));
        num += wq * Math.exp(logL[i]! - m);
        den += wq;
      }
      total[c]! += m + Math.log(num / den);
    });
  }
  let bestC = 0;
  for (let c = 1; c < candidates.length; c++) if (total[c]! > total[bestC]! + 1e-9) bestC = c;
  return {
    sd: candidates[bestC]!,
    logMarginal: Object.fromEntries(candidates.map((sd, c) => [String(sd), total[c]!])),
  };
}

function fitEpoch(
  train: readonly UserLog[],
  time: number,
  maxEvents: number,
  cacheDir: string | undefined,
  studentEffect: boolean,
  fold: number,
  latentFit: LatentFitOptions,
  studentScale: StudentScaleMode,
  studentInterval: StudentIntervalMode,
): EpochModels {
  const t0 = performance.now();
  // The product's defaults as `mastery train served` passes them (serving/servedTraining.ts), then the
  // options named (the bench's LATENT_* options, round 19; REAL_EMISSION / REAL_THRESHOLD_SD win when set).
  const fitOpts: LatentFitOptions = {
    forgetting: LATENT_FORGETTING_DEFAULT,
    studentLearning: LATENT_STUDENT_LEARNING_DEFAULT,
    forgetSpread: LATENT_FORGET_SPREAD_DEFAULT,
    asOfForgetting: LATENT_AS_OF_FORGETTING_DEFAULT,
    ...latentFit,
    studentEffect,
    emission: process.env.REAL_EMISSION !== undefined ? realEmission : (latentFit.emission ?? realEmission),
    topicThresholdSd:
      process.env.REAL_THRESHOLD_SD !== undefined && process.env.REAL_THRESHOLD_SD !== ""
        ? realThresholdSd
        : (latentFit.topicThresholdSd ?? realThresholdSd),
  };
  const emission = fitOpts.emission!;
  const thresholdSd = fitOpts.topicThresholdSd!;
  // Fold 0 (the log's own test users) keeps the cache name of the single-fold protocol.
  const cacheFile =
    cacheDir === undefined
      ? undefined
      : join(
          cacheDir,
          `epoch-${time.toFixed(6)}-${maxEvents}${studentEffect ? "-student" : ""}${fold === 0 ? "" : `-fold${fold}`}${emission === "linear" ? "" : `-${emission}`}${emission === "linear" || thresholdSd === LATENT_TOPIC_THRESHOLD_SD ? "" : `-th${thresholdSd}`}${latentCacheTag(fitOpts)}.json`,
        );
  // The latent filter, on a deterministic hash sample of pairs of about maxEvents attempts (as the product).
  const bySeq = new Map<string, LatentSequence>();
  const transitions: DecayTransition[] = [];
  const users: number[] = [];
  const skills: number[] = [];
  const correct: number[] = [];
  const skillIndex = new Map<string, number>();
  const acc = new Map<string, { n: number; k: number }>();
  let total = 0;
  for (const u of train) for (const a of u.attempts) if (a.t < time) total++;
  const sample = Math.max(1, Math.ceil(total / maxEvents));
  for (const [ui, u] of train.entries()) {
    const last = new Map<string, { t: number; n: number; k: number }>();
    for (const a of u.attempts) {
      if (a.t >= time) break;
      const key = `${u.user}|${a.skill}`;
      // With the student effect, whole students (as fitLatentOnStore samples them), else pairs.
      if (sample === 1 || hash32(studentEffect ? String(u.user) : key) % sample === 0) {
        let s = bySeq.get(key);
        if (s === undefined) {
          s = { topic: a.skill, student: String(u.user), events: [] };
          bySeq.set(key, s);
        }
        s.events.push({ t: a.t, kind: KIND_QUIZ, n: 1, k: a.correct });
      }
      // Decay transitions (serving/servedInputs.ts loadDecayTransitions): next answer after a gap >= 1 day
      // against the pair's smoothed accuracy before it.
      const prev = last.get(a.skill);
      if (prev !== undefined && a.t - prev.t >= 1)
        transitions.push({
          topic: a.skill,
          gapDays: a.t - prev.t,
          prevAcc: (prev.k + 1) / (prev.n + 2),
          y: a.correct,
        });
      last.set(a.skill, {
        t: a.t,
        n: (prev?.n ?? 0) + 1,
        k: (prev?.k ?? 0) + a.correct,
      });
      let si = skillIndex.get(a.skill);
      if (si === undefined) {
        si = skillIndex.size;
        skillIndex.set(a.skill, si);
      }
      users.push(ui);
      skills.push(si);
      correct.push(a.correct);
      const c = acc.get(a.skill) ?? { n: 0, k: 0 };
      c.n++;
      c.k += a.correct;
      acc.set(a.skill, c);
    }
  }
  const log: SkillResponses = {
    n: users.length,
    user: Int32Array.from(users),
    skill: Int32Array.from(skills),
    correct: Uint8Array.from(correct),
    skillNames: [...skillIndex.keys()],
  };
  let filter: LatentFilter;
  let bkt: BKT;
  if (cacheFile !== undefined && existsSync(cacheFile)) {
    const c = JSON.parse(readFileSync(cacheFile, "utf8")) as { filter: LatentModelJson; bkt: BktModelJson };
    filter = LatentFilter.fromJSON(c.filter);
    bkt = BKT.fromJSON(c.bkt);
  } else {
    // REAL_MIN_OBS=0: the fit without the small-data guard (rounds 4-8; bench comparison only).
    const minObs = process.env.REAL_MIN_OBS;
    filter = LatentFilter.fit([...bySeq.values()], {
      ...fitOpts,
      ...(minObs !== undefined ? { minObservations: Number(minObs) } : {}),
    });
    bkt = new BKT({ ...MASTERY_BKT_OPTIONS, restarts: 3 }).fit(log);
    if (cacheFile !== undefined) {
      mkdirSync(cacheDir!, { recursive: true });
      writeFileSync(cacheFile, JSON.stringify({ filter: filter.toJSON(), bkt: bkt.toJSON() }));
    }
  }
  // Rounds 19/20: the student part's rein-in on the same sample (after the cache: the fit itself is the same).
  if (studentScale === "moments" || studentScale === "mastery")
    filter = applyStudentScale(filter, [...bySeq.values()], studentScale);
  // Round 21: the interval's check on the model with its student part (after the rein-in and the cache).
  if (studentInterval !== "off")
    filter = applyStudentIntervalMode(filter, [...bySeq.values()], studentInterval);
  const decay = fitDecay(transitions);
  const skillAccuracy = new Map([...acc].map(([s, c]) => [s, (c.k + 1) / (c.n + 2)]));
  // The anchor as `mastery train served` fits it: every sampled pair's served P(correct) at the epoch time,
  // each from its student's offset (the student effect).
  const byStudent = new Map<string, LatentSequence[]>();
  for (const q of bySeq.values()) {
    const l = byStudent.get(q.student!) ?? [];
    l.push(q);
    byStudent.set(q.student!, l);
  }
  const lp = filter.json.params;
  const anchorPairs: { topic: string; p: number }[] = [];
  for (const seqs of byStudent.values()) {
    const off = filter.studentOffset(seqs);
    for (const q of seqs)
      anchorPairs.push({
        topic: q.topic,
        p: lp.guess + (1 - lp.guess - lp.slip) * filter.predict(q.topic, q.events, time, off).score,
      });
  }
  return {
    time,
    filter,
    sdMarginal: studentEffect ? marginalStudentSd(filter, [...bySeq.values()]).sd : 0,
    anchor: fitAnchor(anchorPairs),
    global: { guess: 0, slip: 0, halfLifeDays: decay.global.halfLifeDays, base: decay.global.base },
    bkt,
    skillAccuracy,
    trainAttempts: total,
    fitSeconds: (performance.now() - t0) / 1000,
  };
}

/** One labelled (student, cut, skill). */
export interface CutPair {
  student: number;
  /** The user fold the student was scored in (user_id % 5): models fitted on the other folds' users. */
  fold: number;
  cut: number;
  skill: string;
  epoch: number;
  /** Accuracy in [cut, cut + 7 d) and its attempts (>= 3). */
  label: number;
  labelAttempts: number;
  /** The student's attempts on the skill before the cut, and how many were correct. */
  before: number;
  beforeCorrect: number;
  scores: Record<string, number>;
}

/** What a source sees to score one pair: the epoch's models and the student's history before the cut. */
export interface CutContext {
  m: EpochModels;
  skill: string;
  cut: number;
  /** The student's attempts on this skill before the cut (time order). */
  history: readonly Attempt[];
  /** The student's attempts on every skill before the cut (time order). */
  all: readonly Attempt[];
  latent: LatentEstimate;
  /**
   * The same pair as the product scores it (LatentFilter.predictStudent): the mixture of the two basis parts
   * next to the student's offset, where `latent` runs the filter from the prior at the offset itself. The two
   * are equal without a student effect.
   */
  latentMix: LatentEstimate;
  /** The first epoch's models (a scale anchor held fixed across refits: served:first-anchor). */
  first: EpochModels;
  /** The student's basis summaries before the cut per covered skill, and their sum (empty: no student effect). */
  summaries: ReadonlyMap<string, Float64Array>;
  sum: Float64Array;
}

export type CutSource = (c: CutContext) => number;

const bktScore = (p: BktParams, h: readonly Attempt[]): number => {
  const st = new Float64Array([1 - p.prior, p.prior]);
  for (const a of h) bktStepPair(p.learn, p.forget, p.guess, p.slip, st, 0, a.correct === 1);
  return st[1]!;
};

/** The sources every run reports; `extra` adds candidate scores (bench experiments). */
export const BASE_SOURCES: Record<string, CutSource> = {
  // The served default: the filter (with the student's offset when the fit has a student effect) mapped by
  // centred-logit on the round-7 anchor; served:gap-anchor = the same on rounds 2-6's anchor.
  served: (c) =>
    masteryOf(emitOf(c.m, c.latent.score), c.m.global, "centred-logit", {
      ...c.m.global,
      base: c.m.anchor.base,
    }),
  "served:gap-anchor": (c) => masteryOf(emitOf(c.m, c.latent.score), c.m.global, "centred-logit", c.m.global),
  // The round-7 anchor of the FIRST fit kept for every later refit (scale equating across fit times).
  "served:first-anchor": (c) =>
    masteryOf(emitOf(c.m, c.latent.score), c.m.global, "centred-logit", {
      ...c.m.global,
      base: c.first.anchor.base,
    }),
  // Round 19: the product's path of the student effect (the basis mixture at the offset).
  "served:mix": (c) =>
    masteryOf(emitOf(c.m, c.latentMix.score), c.m.global, "centred-logit", {
      ...c.m.global,
      base: c.m.anchor.base,
    }),
  latent: (c) => c.latent.score,
  bkt: (c) => bktScore(c.m.bkt.paramsFor(c.skill), c.history),
};

/** The filter's emission at K (what servedFromLatent maps). */
const emitOf = (m: EpochModels, k: number): number => {
  const p = m.filter.json.params;
  return p.guess + (1 - p.guess - p.slip) * k;
};

const logit = (p: number): number => Math.log(p / (1 - p));

/**
 * The student's ability offset (logit) from their attempts on the OTHER skills before the cut: observed
 * correct against what the skills' train accuracies expect, shrunk with `a` pseudo-attempts at the expected
 * rate. Label-free (no next-week outcome is read).
 */
export function studentOffset(c: CutContext, a: number): number {
  let n = 0;
  let k = 0;
  let e = 0;
  for (const x of c.all) {
    if (x.skill === c.skill) continue;
    n++;
    k += x.correct;
    e += c.m.skillAccuracy.get(x.skill) ?? 0.5;
  }
  if (n === 0) return 0;
  const expected = e / n;
  return logit((k + a * expected) / (n + a)) - logit(expected);
}

/** The filter with the pair's prior mean moved by `offset` (logit) from its topic prior. */
function predictWithOffset(c: CutContext, offset: number): LatentEstimate {
  const json = c.m.filter.json;
  const prior = sigmoid(logit(c.m.filter.priorMean(c.skill)) + offset);
  const f = new LatentFilter({ ...json, topicPriorMean: { ...json.topicPriorMean, [c.skill]: prior } });
  return f.predict(
    c.skill,
    c.history.map((x) => ({ t: x.t, kind: KIND_QUIZ, n: 1, k: x.correct })),
    c.cut,
  );
}

/** The served score of the context's pair at a given student offset, with a filter of the same fit. */
function servedAtOffset(c: CutContext, filter: LatentFilter, offset: number, asOf = c.cut): number {
  const est = filter.predict(
    c.skill,
    c.history.map((x) => ({ t: x.t, kind: KIND_QUIZ, n: 1, k: x.correct })),
    asOf,
    filter.offsetFor(c.skill, offset),
  );
  return masteryOf(emitOf(c.m, est.score), c.m.global, "centred-logit", {
    ...c.m.global,
    base: c.m.anchor.base,
  });
}

/** The epoch's filter with another student prior sd (same fit otherwise). */
const filterCache = new WeakMap<EpochModels, Map<number, LatentFilter>>();
function withSd(m: EpochModels, sd: number): LatentFilter {
  let byM = filterCache.get(m);
  if (byM === undefined) {
    byM = new Map();
    filterCache.set(m, byM);
  }
  let f = byM.get(sd);
  if (f === undefined) {
    f = new LatentFilter({ ...m.filter.json, studentPriorSd: sd });
    byM.set(sd, f);
  }
  return f;
}

const servedWithSd =
  (sd: number): CutSource =>
  (c) => {
    if (c.sum.length === 0) return c.latent.score;
    const f = withSd(c.m, sd);
    return servedAtOffset(c, f, f.offsetFromSummary(c.sum));
  };

const conc3 = new WeakMap<EpochModels, LatentFilter>();
const skillPrior = new WeakMap<EpochModels, LatentFilter>();

/**
 * The epoch's filter with each covered topic's prior mean replaced by the K whose emission is the skill's
 * training accuracy ((k + 1) / (n + 2) on the training users before the epoch), clipped to [0.02, 0.98].
 */
function withSkillPrior(m: EpochModels): LatentFilter {
  let f = skillPrior.get(m);
  if (f === undefined) {
    const json = m.filter.json;
    const { guess, slip } = json.params;
    const topicPriorMean: Record<string, number> = {};
    for (const t of Object.keys(json.topicPriorMean)) {
      const acc = m.skillAccuracy.get(t);
      topicPriorMean[t] =
        acc === undefined
          ? json.topicPriorMean[t]!
          : Math.min(0.98, Math.max(0.02, (acc - guess) / Math.max(0.05, 1 - guess - slip)));
    }
    f = new LatentFilter({ ...json, topicPriorMean });
    skillPrior.set(m, f);
  }
  return f;
}

/** Candidate scores tried against the served one (REAL_CANDIDATES=1). */
export const CANDIDATE_SOURCES: Record<string, CutSource> = {
  // The student's offset from the OTHER skills only (the pair's own summary left out of the sum).
  "served:loo": (c) => {
    const own = c.summaries.get(c.skill);
    if (c.sum.length === 0 || own === undefined)
      return servedAtOffset(c, c.m.filter, c.m.filter.offsetFromSummary(c.sum));
    return servedAtOffset(c, c.m.filter, c.m.filter.offsetFromSummary(c.sum.map((v, j) => v - own[j]!)));
  },
  // The served score without the forgetting since the pair's last answer (as of that answer).
  "served:nodecay": (c) =>
    servedAtOffset(
      c,
      c.m.filter,
      c.m.filter.offsetFromSummary(c.sum),
      c.history.length > 0 ? c.history[c.history.length - 1]!.t : c.cut,
    ),
  // Decomposition of acc_student_prior against the served score (bench only):
  // the Beta-binomial with the FILTER's student offset instead of the accuracy-based one;
  acc_filter_offset: (c) => {
    const p0 = sigmoid(logit(c.m.skillAccuracy.get(c.skill) ?? 0.5) + c.m.filter.offsetFromSummary(c.sum));
    const k = c.history.reduce((s, x) => s + x.correct, 0);
    return (k + 4 * p0) / (c.history.length + 4);
  },
  // the same with the FILTER's topic prior (its emission at the topic's prior mean moved by the offset);
  acc_filter_prior: (c) => {
    const f = c.m.filter;
    const k0 = sigmoid(logit(f.priorMean(c.skill)) + f.offsetFor(c.skill, f.offsetFromSummary(c.sum)));
    const p0 = emitOf(c.m, k0);
    const k = c.history.reduce((s, x) => s + x.correct, 0);
    return (k + 4 * p0) / (c.history.length + 4);
  },
  // the served filter with a 3x stronger prior (prior concentration), same offset;
  "served:conc3": (c) => {
    let f = conc3.get(c.m);
    if (f === undefined) {
      const json = c.m.filter.json;
      f = new LatentFilter({
        ...json,
        params: { ...json.params, priorConcentration: 3 * json.params.priorConcentration },
      });
      conc3.set(c.m, f);
    }
    return servedAtOffset(c, f, c.m.filter.offsetFromSummary(c.sum));
  },
  // The served filter with the topic priors from the skills' training accuracies (offset recomputed).
  "served:skillprior": (c) => {
    const f = withSkillPrior(c.m);
    const seqs = new Map<string, LatentSequence>();
    for (const a of c.all) {
      const q = seqs.get(a.skill) ?? { topic: a.skill, events: [] };
      q.events.push({ t: a.t, kind: KIND_QUIZ, n: 1, k: a.correct });
      seqs.set(a.skill, q);
    }
    return servedAtOffset(c, f, f.studentOffset([...seqs.values()]));
  },
  "served:sdml": (c) => servedWithSd(c.m.sdMarginal)(c),
  "served:sd1": servedWithSd(1),
  "served:sd1.5": servedWithSd(1.5),
  "served:sd3": servedWithSd(3),
  student_acc: (c) => (c.all.reduce((s, x) => s + x.correct, 0) + 1) / (c.all.length + 2),
  served_student10: (c) => {
    const est = predictWithOffset(c, studentOffset(c, 10));
    return masteryOf(est.pCorrect, c.m.global, "centred-logit", c.m.global);
  },
  served_student3: (c) => {
    const est = predictWithOffset(c, studentOffset(c, 3));
    return masteryOf(est.pCorrect, c.m.global, "centred-logit", c.m.global);
  },
  acc_student_prior: (c) => {
    const p0 = sigmoid(logit(c.m.skillAccuracy.get(c.skill) ?? 0.5) + studentOffset(c, 10));
    const k = c.history.reduce((s, x) => s + x.correct, 0);
    return (k + 4 * p0) / (c.history.length + 4);
  },
};

export interface RealCutsOptions {
  dataDir: string;
  cutsPerStudent: number;
  epochs: number;
  seed: number;
  /**
   * The user folds scored (user_id % 5, each in 0..4): fold f's students are scored by models fitted on the
   * users of the other four folds (cross-fitting). [0] = the log's own test users only (the default).
   */
  folds?: readonly number[];
  resamples: number;
  maxFitEvents: number;
  /** Progress lines (fits, folds) to this callback; default none. */
  onProgress?: (line: string) => void;
  /** Directory keeping each epoch's fitted models (bench iterations refit nothing; default: none). */
  cacheDir?: string;
  /** The filter's student effect (the product's default, round 7 on the real log); false = rounds 4-6's fit. */
  studentEffect?: boolean;
  /**
   * The filter's fit options beyond the product's defaults (the bench's LATENT_* options, bench/latentEnv.ts;
   * round 19). Default none: the shipped `mastery train served` fit.
   */
  latentFit?: LatentFitOptions;
  /**
   * Rounds 19/20: the student part's rein-in (models/studentScale.ts), applied to each epoch's fit (cached or not).
   * Default STUDENT_SCALE_DEFAULT, as `mastery train served` (mastery since round 24).
   */
  studentScale?: StudentScaleMode;
  /** Round 21: the interval's check on the model with its student part (models/studentInterval.ts); default STUDENT_INTERVAL_DEFAULT. */
  studentInterval?: StudentIntervalMode;
  extra?: Record<string, CutSource>;
}

export interface RealCutsResult {
  pairs: CutPair[];
  /** The fitted epochs of every fold (fold order, then time). */
  epochs: (EpochModels & { fold: number })[];
  cuts: number;
  students: number;
  seconds: number;
}

export function runRealCuts(o: RealCutsOptions): RealCutsResult {
  const t0 = performance.now();
  const log = loadLog(o.dataDir);
  const folds = o.folds ?? [0];
  for (const f of folds)
    if (!Number.isInteger(f) || f < 0 || f > 4)
      throw new Error(`real-log fold ${f} is not one of 0..4 (user_id % 5); pass folds such as 0,1,2,3,4`);
  const sources = { ...BASE_SOURCES, ...(o.extra ?? {}) };
  const pairs: CutPair[] = [];
  const allEpochs: (EpochModels & { fold: number })[] = [];
  let nCuts = 0;
  const scored = new Set<number>();
  for (const fold of folds) {
    const isTest = (u: UserLog): boolean => u.user % 5 === fold;
    const train = log.filter((u) => !isTest(u));
    const test = log.filter((u) => isTest(u) && u.attempts.length > 0);
    // Fold 0 draws its cuts as the single-fold protocol did (same seed): its pairs are unchanged.
    const rnd = mulberry32(fold === 0 ? o.seed : o.seed + 7919 * fold);
    const cuts: { u: UserLog; t: number }[] = [];
    for (const u of test) {
      const first = u.attempts[0]!.t;
      const span = u.attempts[u.attempts.length - 1]!.t - first;
      if (!(span > 0)) continue;
      for (let i = 0; i < o.cutsPerStudent; i++) {
        const f = 0.05 + (0.9 * (i + rnd())) / o.cutsPerStudent;
        cuts.push({ u, t: first + f * span });
      }
    }
    nCuts += cuts.length;
    for (const c of cuts) scored.add(c.u.user);
    // Fit epochs: quantiles of the times of the fold's cuts that have a label (the first = the earliest).
    const labelled = (u: UserLog, cut: number): boolean => {
      const n = new Map<string, number>();
      for (const a of u.attempts) if (a.t >= cut && a.t < cut + 7) n.set(a.skill, (n.get(a.skill) ?? 0) + 1);
      return [...n.values()].some((x) => x >= 3);
    };
    const times = cuts
      .filter((c) => labelled(c.u, c.t))
      .map((c) => c.t)
      .sort((a, b) => a - b);
    if (times.length === 0) continue;
    const epochTimes = Array.from(
      { length: o.epochs },
      (_, k) => times[Math.floor((k / o.epochs) * times.length)]!,
    );
    const epochs = epochTimes.map((t, k) => {
      const m = fitEpoch(
        train,
        t,
        o.maxFitEvents,
        o.cacheDir,
        o.studentEffect ?? true,
        fold,
        o.latentFit ?? {},
        o.studentScale ?? STUDENT_SCALE_DEFAULT,
        o.studentInterval ?? STUDENT_INTERVAL_DEFAULT,
      );
      o.onProgress?.(
        `fold ${fold} epoch ${k + 1}/${o.epochs}: fitted on ${m.trainAttempts} train attempts before log day ${t.toFixed(1)} in ${m.fitSeconds.toFixed(1)} s`,
      );
      return m;
    });
    for (const m of epochs) allEpochs.push({ ...m, fold });
    scoreCuts(cuts, epochs, fold, sources, pairs);
  }
  return {
    pairs,
    epochs: allEpochs,
    cuts: nCuts,
    students: scored.size,
    seconds: (performance.now() - t0) / 1000,
  };
}

/** Scores every labelled (student, cut, skill) of one fold's cuts with the fold's epoch models. */
function scoreCuts(
  cuts: readonly { u: UserLog; t: number }[],
  epochs: readonly EpochModels[],
  fold: number,
  sources: Record<string, CutSource>,
  pairs: CutPair[],
): void {
  for (const { u, t: cut } of cuts) {
    let e = 0;
    while (e + 1 < epochs.length && epochs[e + 1]!.time <= cut) e++;
    const m = epochs[e]!;
    const next = new Map<string, { n: number; k: number }>();
    const all: Attempt[] = [];
    for (const a of u.attempts) {
      if (a.t < cut) all.push(a);
      else if (a.t < cut + 7) {
        const c = next.get(a.skill) ?? { n: 0, k: 0 };
        c.n++;
        c.k += a.correct;
        next.set(a.skill, c);
      }
    }
    // The student's offset from all of their skills before the cut (0 without a student effect): the sum of
    // the covered skills' basis summaries (LatentFilter.studentOffsetOf), kept per skill for the candidates.
    let offset: number | undefined;
    const summaries = new Map<string, Float64Array>();
    let sum = new Float64Array(0);
    for (const [skill, lab] of next) {
      if (lab.n < 3) continue;
      if (offset === undefined) {
        const seqs = new Map<string, LatentSequence>();
        for (const a of all) {
          const q = seqs.get(a.skill) ?? { topic: a.skill, events: [] };
          q.events.push({ t: a.t, kind: KIND_QUIZ, n: 1, k: a.correct });
          seqs.set(a.skill, q);
        }
        sum = new Float64Array(m.filter.studentGrid().length);
        for (const q of seqs.values()) {
          if (!m.filter.studentTopic(q.topic)) continue;
          const x = LatentFilter.summary(m.filter.foldBasis(q.topic, q.events));
          summaries.set(q.topic, x);
          for (let j = 0; j < sum.length; j++) sum[j]! += x[j]!;
        }
        offset = m.filter.offsetFromSummary(sum);
      }
      const history = all.filter((a) => a.skill === skill);
      const events: LatentEvent[] = history.map((a) => ({ t: a.t, kind: KIND_QUIZ, n: 1, k: a.correct }));
      const latent = m.filter.predict(skill, events, cut, offset);
      const latentMix = m.filter.studentTopic(skill)
        ? m.filter.estimate(
            m.filter.mixAt(m.filter.foldBasis(skill, events), m.filter.offsetFor(skill, offset)),
            cut,
            skill,
          )
        : latent;
      const ctx: CutContext = {
        m,
        skill,
        cut,
        history,
        all,
        latent,
        latentMix,
        first: epochs[0]!,
        summaries,
        sum,
      };
      const scores: Record<string, number> = {};
      for (const [name, f] of Object.entries(sources)) scores[name] = f(ctx);
      const k = history.reduce((s, a) => s + a.correct, 0);
      const recent = history.filter((a) => a.t >= cut - 30);
      if (history.length > 0) scores.accuracy_all = k / history.length;
      if (recent.length > 0) scores.accuracy_30d = recent.reduce((s, a) => s + a.correct, 0) / recent.length;
      // Plain accuracy with a fallback for unseen skills: the skill's train accuracy before the epoch.
      scores.accuracy_or_skill =
        history.length > 0 ? k / history.length : (m.skillAccuracy.get(skill) ?? 0.5);
      pairs.push({
        student: u.user,
        fold,
        cut,
        skill,
        epoch: e,
        label: lab.k / lab.n,
        labelAttempts: lab.n,
        before: history.length,
        beforeCorrect: k,
        scores,
      });
    }
  }
}

const f3 = (x: number): string => (Number.isFinite(x) ? x.toFixed(3) : "  -  ");
const sgn = (x: number): string => (Number.isFinite(x) ? `${x >= 0 ? "+" : ""}${x.toFixed(3)}` : "  -  ");

/** Prints the per-source table of one subset of pairs against a reference source. */
export function printComparison(
  title: string,
  pairs: readonly CutPair[],
  reference: string,
  resamples: number,
  seed: number,
): void {
  const names = [...new Set(pairs.flatMap((p) => Object.keys(p.scores)))];
  const withRef = pairs.filter((p) => p.scores[reference] !== undefined);
  console.log(
    `\n${title}: ${withRef.length} pairs (student, cut, skill), ${new Set(withRef.map((p) => p.student)).size} students, ` +
      `${new Set(withRef.map((p) => `${p.student}|${p.skill}`)).size} distinct (student, skill); label attempts median ${median(withRef.map((p) => p.labelAttempts))}`,
  );
  console.log(
    `source              pairs  spearman  cluster-bootstrap 95%   | paired diff vs ${reference} (95%)      P(diff > 0)`,
  );
  const rows: { name: string; line: string; s: number }[] = [];
  for (const name of names) {
    const ps = withRef.filter((p) => p.scores[name] !== undefined);
    if (ps.length < 5) continue;
    const b = pairedClusterBootstrap(
      ps.map((p) => p.student),
      ps.map((p) => p.scores[name]!),
      ps.map((p) => p.scores[reference]!),
      ps.map((p) => p.label),
      { resamples, rnd: mulberry32(seed) },
    );
    rows.push({
      name,
      s: b.a.estimate,
      line: `${name.padEnd(18)} ${String(ps.length).padStart(6)}   ${f3(b.a.estimate)}    ${f3(b.a.lo)}..${f3(b.a.hi)}       | ${name === reference ? "          -            " : `${sgn(b.diff.estimate)} (${sgn(b.diff.lo)}..${sgn(b.diff.hi)})`}    ${name === reference ? "" : f3(b.shareAbove)}`,
    });
  }
  rows.sort((x, y) => y.s - x.s);
  for (const r of rows) console.log(r.line);
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? Number.NaN : s[Math.floor(s.length / 2)]!;
}
