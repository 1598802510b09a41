import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { easeShare } from "../models/anchorEase.ts";
import { chooseAsOfHalfLifeByLabels, type IdleAnswer, labelAnswerOf } from "../models/asOfHalfLife.ts";
import { type CentreLabel, fitCentreShift } from "../models/latentCentre.ts";
import {
  LATENT_AS_OF_FORGETTING_DEFAULT,
  LATENT_FORGET_SPREAD_DEFAULT,
  LATENT_FORGETTING_DEFAULT,
  LATENT_STUDENT_LEARNING_DEFAULT,
  LATENT_THRESHOLD_SD_DEFAULT,
  LATENT_TOPIC_THRESHOLD_SD,
  type LatentEstimate,
} from "../models/latentFilter.ts";
import { type DecayFit, fitDecay } from "../models/servedDecay.ts";
import { denseLabel, type KindWeights, kindWeights, type WindowOutcomes } from "../models/servedLabels.ts";
import {
  fitAnchor,
  type MasteryScale,
  type PairEvidence,
  type ServedFrom,
  ServedMastery,
  type TopicCalibration,
} from "../models/servedMastery.ts";
import { STUDENT_INTERVAL_DEFAULT } from "../models/studentInterval.ts";
import { STUDENT_SCALE_DEFAULT } from "../models/studentScale.ts";
import { anchorSdFromThresholds, filterThresholdUncertainty } from "../models/thresholdUncertainty.ts";
import { DuckStore, sqlString } from "../storage/duckdb.ts";
import {
  attachLatent,
  type FitLatentResult,
  fitLatentOnStore,
  type LatentStoreFitOptions,
} from "./latentScoring.ts";
import { resolveModels, scoreBktElo } from "./learnerState.ts";
import { scoreRules } from "./ruleScoring.ts";
import { loadDecayTransitions, loadPairAnswers, loadPairEvidence } from "./servedInputs.ts";

const DAY_MS = 86_400_000;

/** The default mastery scale of the served estimate (docs/benchmarks.md "Validity" compares the three). */
export const SERVED_SCALE: MasteryScale = "centred-logit";

export interface TrainServedOptions {
  /** The store to learn from (read only): its raw_events and topics. */
  dbPath: string;
  /** End of the label window (default: the latest event + 1 s). */
  labelEnd?: Date;
  /** Days of the label window; the training snapshot is as of labelEnd - labelDays. Default 7. */
  labelDays?: number;
  /** Pairs need at least this much evidence in the label window (quiz-answer equivalents). Default 3. */
  minLabelAttempts?: number;
  /**
   * The proxy label: "graded" = every graded outcome in the window (quiz answers, practice sets, assignment
   * scores) weighted by its information (models/servedLabels.ts); "quiz" = quiz accuracy only; "auto"
   * (default) = the one whose fit predicts held-out pairs' quiz accuracy better (5-fold cross-validation).
   */
  label?: ServedLabelKind;
  /**
   * Reweight the labelled pairs to the population scored (every pair of the store): a pair's weight is
   * divided by its fitted probability of having a label (a linear probability model on the same inputs,
   * floored at 0.05), raised to this power (0: no reweighting, 1: full inverse-probability weights), so pairs
   * like the unlabelled ones (inactive, old evidence) count more. Default SERVED_BALANCE.
   */
  balance?: number;
  /** How P(correct) maps to the served score (models/servedMastery.ts MASTERY_SCALES). Default SERVED_SCALE. */
  scale?: MasteryScale;
  /** Directory to write model.json into (optional). */
  out?: string;
  /** Fit the latent-state filter and use it as an input (default true). */
  latent?: boolean;
  /** What the served score is (with the latent filter on): its posterior or the stack. Default SERVED_FROM_DEFAULT. */
  servedFrom?: ServedFrom;
  /** Options of the latent filter's fit (serving/latentScoring.ts); `emission` defaults to "auto". */
  latentFit?: LatentStoreFitOptions;
  /**
   * Round 17: the latent filter's centre by evidence band, fitted on the proxy labels (models/latentCentre.ts):
   * "by-evidence" or "none" (no shift). Default LATENT_CENTRE_DEFAULT.
   */
  latentCentre?: LatentCentre;
  /**
   * The logit scales' anchor (what "centred-logit" serves as 0.5): "pair-centred" (default, round 7:
   * models/servedMastery.ts fitAnchor, with its uncertainty in the intervals) or "gap-accuracy" (rounds 2-6:
   * the log's typical correctness after a gap, no anchor uncertainty).
   */
  anchor?: ServedAnchor;
  /**
   * What the pair-centred anchor's sd carries (round 26): "share" (rounds 8-25: the between-topic sd of the
   * pairs' logit K times the square root of the answers' ease share, models/anchorEase.ts) or "thresholds"
   * (the latent filter's topic thresholds' posterior sd, models/thresholdUncertainty.ts: the ease the answers
   * leave unpinned; falls back to "share" without topic thresholds). Default SERVED_ANCHOR_EASE_DEFAULT.
   */
  anchorEase?: AnchorEase;
  /**
   * Round 32: the half-life of the latent filter's as-of decay: "filter" (the default: the filter's own, or
   * round 28's idle-gap fit when the latent fit was asked for it) or "labels" (opt-in: chosen on the proxy
   * labels, models/asOfHalfLife.ts chooseAsOfHalfLifeByLabels) or "labels-centred" (opt-in: the same with the
   * label window's common logit shift profiled out). Default SERVED_AS_OF_HALF_LIFE_DEFAULT.
   */
  asOfHalfLife?: ServedAsOfHalfLife;
}

export const SERVED_AS_OF_HALF_LIVES = ["filter", "labels", "labels-centred"] as const;
export type ServedAsOfHalfLife = (typeof SERVED_AS_OF_HALF_LIVES)[number];
/** docs/benchmarks.md "Round 32 (valid32, 2026-12-07)": opt-in until its pre-registered rule adopts it. */
export const SERVED_AS_OF_HALF_LIFE_DEFAULT: ServedAsOfHalfLife = "filter";

export const ANCHOR_EASES = ["share", "thresholds"] as const;
export type AnchorEase = (typeof ANCHOR_EASES)[number];
/** docs/benchmarks.md "Round 26 (valid26)". */
export const SERVED_ANCHOR_EASE_DEFAULT: AnchorEase = "share";

export const SERVED_ANCHORS = ["pair-centred", "gap-accuracy"] as const;
export type ServedAnchor = (typeof SERVED_ANCHORS)[number];
/** docs/benchmarks.md "Validity", round 7 (valid3). */
export const SERVED_ANCHOR_DEFAULT: ServedAnchor = "pair-centred";

/**
 * Default power of the selection reweighting (TrainServedOptions.balance): 0, none. Reweighting towards every
 * scored pair (0.5, 1) ranks the generator's latent truth better but next week's accuracy worse, and on the
 * real log (the one check not made on our own generator) it cost 0.05 of next-week Spearman; a value chosen
 * by looking at the generator's truth would be tuned to it, so the default is off and the option documented
 * (docs/benchmarks.md "Validity", round 3, shows 0 / 0.5 / 1).
 */
export const SERVED_BALANCE = 0;

/**
 * The served score is the latent filter's posterior by default: on the validity bench it ranks the
 * generator's truth better than the stack on every setting (0.76-0.78 vs 0.66-0.69), with a lower MAE, and the
 * real log's next week better (0.440 vs 0.363); the stack ranks the generated next week better (by 0.03-0.04).
 * docs/benchmarks.md "Validity", round 4.
 */
export const SERVED_FROM_DEFAULT: ServedFrom = "latent";

export const LATENT_CENTRES = ["none", "by-evidence"] as const;
export type LatentCentre = (typeof LATENT_CENTRES)[number];
/**
 * The latent centre's calibration by evidence band (round 17, docs/benchmarks.md Validity): opt-in until the
 * validity bench's pre-registered rule adopts it; "none" fits the model of rounds 13-16 byte for byte.
 */
export const LATENT_CENTRE_DEFAULT: LatentCentre = "none";

export const SERVED_LABELS = ["auto", "graded", "quiz"] as const;
export type ServedLabelKind = (typeof SERVED_LABELS)[number];

export interface TrainServedResult {
  model: ServedMastery;
  snapshot: Date;
  labelEnd: Date;
  labelledPairs: number;
  modelPath: string | null;
  /** The forgetting fitted on the history before the snapshot (models/servedDecay.ts). */
  decay: DecayFit;
  /** The label the model was fitted on ("auto" resolved). */
  label: Exclude<ServedLabelKind, "auto">;
  /** With label "auto": the cross-validated error of each label on held-out pairs' quiz accuracy. */
  labelCv: { quiz: number; graded: number } | null;
  /** The latent filter's fit (null with `latent: false`). */
  latentFit: FitLatentResult | null;
  /** Weights of practice sets / assignment scores in the labels (quiz answers = 1; zeros for "quiz"). */
  kindWeights: KindWeights;
}

/**
 * The latent filter's fit options `mastery train served` passes when none is named (each a model's documented
 * default; the comment in trainServed says which round chose each).
 */
export function servedLatentFitDefaults(): LatentStoreFitOptions {
  return {
    emission: "auto",
    forgetting: LATENT_FORGETTING_DEFAULT,
    topicThresholdSd: LATENT_THRESHOLD_SD_DEFAULT,
    studentLearning: LATENT_STUDENT_LEARNING_DEFAULT,
    forgetSpread: LATENT_FORGET_SPREAD_DEFAULT,
    asOfForgetting: LATENT_AS_OF_FORGETTING_DEFAULT,
    studentScale: STUDENT_SCALE_DEFAULT,
    studentInterval: STUDENT_INTERVAL_DEFAULT,
  };
}

export class ServedTrainError extends Error {
  readonly code = "SERVED_TRAIN";
  constructor(message: string) {
    super(message);
    this.name = "ServedTrainError";
  }
}

/**
 * Fits the served mastery estimate (models/servedMastery.ts) on the store's own history, point in time:
 * the events before the snapshot T0 = labelEnd - labelDays are copied into a scratch store and run through
 * the same steps the pipeline runs (rule scores -> BKT/Elo replay, models fitted on those events
 * only); the label of a (student, topic) is its quiz accuracy in [T0, labelEnd) (the mission's proxy label),
 * weighted by its attempt count. Nothing at or after T0 reaches the inputs.
 */
export async function trainServed(opts: TrainServedOptions): Promise<TrainServedResult> {
  const labelDays = opts.labelDays ?? 7;
  const minAttempts = opts.minLabelAttempts ?? 3;
  const work = mkdtempSync(join(tmpdir(), "served-train-"));
  const scratch = await DuckStore.open(join(work, "snapshot.duckdb"));
  try {
    await scratch.run(`ATTACH ${sqlString(opts.dbPath)} AS live (READ_ONLY)`);
    let labelEnd = opts.labelEnd;
    if (labelEnd === undefined) {
      const r = await scratch.one<{ t: Date | null }>("SELECT max(ts) AS t FROM live.raw_events");
      if (!r?.t) throw new ServedTrainError(`${opts.dbPath} has no raw_events: ingest events first`);
      labelEnd = new Date(r.t.getTime() + 1000);
    }
    const snapshot = new Date(labelEnd.getTime() - labelDays * DAY_MS);
    await scratch.run("INSERT INTO topics SELECT * FROM live.topics");
    await scratch.run("INSERT INTO raw_events SELECT * FROM live.raw_events WHERE ts < $1::TIMESTAMP", [
      snapshot.toISOString(),
    ]);
    const requested = opts.label ?? "auto";
    const outcomeRows = await scratch.all<{
      student_key: string;
      topic_id: string;
      type: string;
      is_correct: boolean | null;
      attempts: number | null;
      correct_count: number | null;
      score_pct: number | null;
    }>(
      `SELECT DISTINCT ON (event_id, student_key, topic_id) student_key, topic_id, type, is_correct, attempts,
              correct_count, score_pct
       FROM live.raw_events
       WHERE ts >= $1::TIMESTAMP AND ts < $2::TIMESTAMP AND type IN ('quiz_attempt', 'practice', 'assignment')`,
      [snapshot.toISOString(), labelEnd.toISOString()],
    );
    const windows = new Map<string, WindowOutcomes>();
    for (const r of outcomeRows) {
      const k = `${r.student_key}|${r.topic_id}`;
      let w = windows.get(k);
      if (w === undefined) {
        w = { quizN: 0, quizCorrect: 0, practice: [], assignments: [] };
        windows.set(k, w);
      }
      if (r.type === "quiz_attempt" && r.is_correct !== null) {
        w.quizN++;
        if (r.is_correct) w.quizCorrect++;
      } else if (r.type === "practice" && Number(r.attempts ?? 0) > 0)
        w.practice.push(Number(r.correct_count ?? 0) / Number(r.attempts));
      else if (r.type === "assignment" && r.score_pct !== null)
        w.assignments.push(Math.min(1, Math.max(0, Number(r.score_pct) / 100)));
    }
    const noKinds: KindWeights = { practice: 0, assignment: 0, nPractice: 0, nAssignment: 0 };
    const gradedWeights = kindWeights([...windows.values()]);
    const labelsOf = (w: KindWeights) => {
      const out: { key: string; y: number; n: number }[] = [];
      for (const [key, win] of windows) {
        const l = denseLabel(win, w);
        if (l.weight >= minAttempts) out.push({ key, y: l.label, n: l.weight });
      }
      return out;
    };
    await scratch.run("DETACH live");
    const before = await scratch.one<{ n: number }>("SELECT count(*)::INTEGER AS n FROM raw_events");
    if ((before?.n ?? 0) === 0)
      throw new ServedTrainError(
        `no events before the training snapshot ${snapshot.toISOString()}: the store needs more than ${labelDays} days of history (or pass a shorter --label-days)`,
      );
    await scoreRules(scratch, { asOf: snapshot });
    const models = await resolveModels(scratch, {});
    await scoreBktElo(scratch, models);
    const evidence = await loadPairEvidence(scratch, snapshot);
    // The latent-state filter: fitted by maximum likelihood on the events before the snapshot (no labels),
    // its posterior mean as of the snapshot is one more input of the stack.
    const latentFit =
      opts.latent === false
        ? null
        : // The emission is chosen on held-out answers unless the caller names one (round 10 in
          // docs/benchmarks.md); the forgetting is LATENT_FORGETTING_DEFAULT (the global floor; round 12's
          // held-out choice, "auto", is an option); the topic threshold's shrinkage is LATENT_THRESHOLD_SD_DEFAULT
          // (round 13: chosen on held-out students); the student effect's learning loading is
          // LATENT_STUDENT_LEARNING_DEFAULT (round 14); the forgetting's spread is LATENT_FORGET_SPREAD_DEFAULT
          // (round 15), carried to the scoring time by LATENT_AS_OF_FORGETTING_DEFAULT (round 16); the student
          // part's rein-in is STUDENT_SCALE_DEFAULT (round 19), the interval's check on the model with its
          // student part STUDENT_INTERVAL_DEFAULT (round 21). Since round 24 the learning loading, the spread and
          // the rein-in are round 20's candidate (auto / auto / mastery; docs/benchmarks.md "Round 24 (valid24)").
          await fitLatentOnStore(scratch, snapshot, {
            ...servedLatentFitDefaults(),
            ...(opts.latentFit ?? {}),
          });
    let latentEst =
      latentFit === null ? null : await attachLatent(scratch, evidence, latentFit.model, snapshot);
    /** The pairs the filter scored at the snapshot with >= minAttempts quiz answers in the label window. */
    const labelledEstimates = (est: Map<string, LatentEstimate>): [LatentEstimate, WindowOutcomes][] => {
      const out: [LatentEstimate, WindowOutcomes][] = [];
      for (const [key, w] of windows) {
        const e = est.get(key);
        if (e !== undefined && w.quizN >= minAttempts) out.push([e, w]);
      }
      return out;
    };
    // Round 17 (opt-in): the centre's shift per evidence band from the label window's quiz answers of the
    // pairs the filter scored at the snapshot; the estimates are then taken again with the shift.
    const lpar = latentFit?.model.json.params;
    if (
      (opts.latentCentre ?? LATENT_CENTRE_DEFAULT) === "by-evidence" &&
      latentFit !== null &&
      latentEst !== null &&
      lpar !== undefined
    ) {
      if (latentFit.model.json.centreShiftByEvidence !== undefined)
        throw new ServedTrainError(
          "--latent-centre by-evidence would replace the centre shift --latent-student-interval bands fitted: pass only one of them",
        );
      if (lpar.slope === undefined)
        throw new ServedTrainError(
          "--latent-centre by-evidence needs the filter's logistic emission, but the fit chose the linear one: pass --latent-centre none",
        );
      const labels: CentreLabel[] = labelledEstimates(latentEst).map(([est, w]) => ({
        pCorrect: est.pCorrect,
        observations: est.observations,
        answers: w.quizN,
        correct: w.quizCorrect,
      }));
      latentFit.model.json.centreShiftByEvidence = fitCentreShift(labels, {
        guess: lpar.guess,
        slip: lpar.slip,
        slope: lpar.slope,
      });
      latentEst = await attachLatent(scratch, evidence, latentFit.model, snapshot);
    }
    // Round 32 (opt-in): the as-of decay's half-life chosen on the label window's quiz answers of the pairs idle
    // at the snapshot; the estimates are then taken again with it (the stack's latent input and the anchor too).
    const asOfFrom = opts.asOfHalfLife ?? SERVED_AS_OF_HALF_LIFE_DEFAULT;
    if (asOfFrom === "labels" || asOfFrom === "labels-centred") {
      if (latentFit === null || latentEst === null || lpar === undefined)
        throw new ServedTrainError(
          `--served-as-of-half-life ${asOfFrom} chooses the latent filter's as-of half-life: it needs --latent on`,
        );
      if (lpar.asOfForgetting !== "decay")
        throw new ServedTrainError(
          `--served-as-of-half-life ${asOfFrom} needs the as-of decay step: pass --latent-as-of-forgetting decay`,
        );
      if (lpar.asOfHalfLifeDays !== undefined)
        throw new ServedTrainError(
          `--served-as-of-half-life ${asOfFrom} would replace the as-of half-life --latent-as-of-half-life idle-gaps fitted: pass only one of them`,
        );
      const labels: IdleAnswer[] = labelledEstimates(latentEst).map(([est, w]) =>
        labelAnswerOf(est, lpar, lpar.halfLifeDays, w.quizN, w.quizCorrect),
      );
      // "labels-centred" (the second candidate): the label window's common logit shift profiled out at each h.
      const choice = chooseAsOfHalfLifeByLabels(labels, lpar.halfLifeDays, {
        intercept: asOfFrom === "labels-centred",
      });
      latentFit.model.json.fit.asOfHalfLifeLabels = choice;
      if (choice.kept === undefined) {
        // The params object is mutated in place (its kernels share it); the as-of step reads it at each call.
        lpar.asOfHalfLifeDays = choice.halfLifeDays;
        latentEst = await attachLatent(scratch, evidence, latentFit.model, snapshot);
      }
    }
    // Calibration per topic: guess/slip of the bounded BKT fit on the same history (mastery scale), the
    // half-life and base of the decay fit on the same history (forgetting).
    const decay = fitDecay(await loadDecayTransitions(scratch, snapshot));
    const topicIds = (await scratch.all<{ topic_id: string }>("SELECT topic_id FROM topics")).map(
      (r) => r.topic_id,
    );
    const bktOf = (t: string) => models.bkt?.paramsFor(t) ?? undefined;
    const meanOf = (xs: number[], d: number) =>
      xs.length > 0 ? xs.reduce((a, b) => a + b, 0) / xs.length : d;
    const fitted = topicIds.map(bktOf).filter((p) => p !== undefined);
    const global: TopicCalibration = {
      guess: meanOf(
        fitted.map((p) => p.guess),
        0,
      ),
      slip: meanOf(
        fitted.map((p) => p.slip),
        0,
      ),
      halfLifeDays: decay.global.halfLifeDays,
      base: decay.global.base,
    };
    const calibration: Record<string, TopicCalibration> = {};
    for (const t of topicIds) {
      const p = bktOf(t);
      const d = decay.topics[t];
      calibration[t] = {
        guess: p?.guess ?? global.guess,
        slip: p?.slip ?? global.slip,
        halfLifeDays: d?.halfLifeDays ?? global.halfLifeDays,
        base: d?.base ?? global.base,
      };
    }
    const balance = opts.balance ?? SERVED_BALANCE;
    const all = [...evidence.values()];
    /** The training set of one label kind: inputs, labels, label weights, fit weights (reweighted). */
    const trainingSet = (w: KindWeights) => {
      const labels = labelsOf(w);
      const xs: PairEvidence[] = [];
      const ys: number[] = [];
      const ws: number[] = [];
      const keys: string[] = [];
      for (const l of labels) {
        const e = evidence.get(l.key);
        if (e === undefined) continue;
        xs.push(e);
        ys.push(l.y);
        ws.push(l.n);
        keys.push(l.key);
      }
      const fitWeights = [...ws];
      if (balance > 0 && xs.length >= 50) {
        const labelled = new Set(keys);
        const selection = ServedMastery.fit(
          all,
          [...evidence.keys()].map((k) => (labelled.has(k) ? 1 : 0)),
          { topics: calibration, global, scale: "identity", ridge: 1 },
        );
        const share = xs.length / all.length;
        for (let i = 0; i < xs.length; i++)
          fitWeights[i] = ws[i]! * (share / Math.min(1, Math.max(0.05, selection.linear(xs[i]!)))) ** balance;
      }
      return { xs, ys, ws, fitWeights, keys };
    };
    const fitOpts = { topics: calibration, global, scale: opts.scale ?? SERVED_SCALE };
    const quizSet = trainingSet(noKinds);
    let labelKind: Exclude<ServedLabelKind, "auto"> = requested === "auto" ? "quiz" : requested;
    let labelCv: TrainServedResult["labelCv"] = null;
    if (requested === "auto" && quizSet.xs.length >= 50) {
      // Both labels are scored on the same held-out target: the quiz accuracy of held-out pairs (5 folds by
      // a hash of the pair key, so a pair is in the same fold under both labels).
      const gradedSet = trainingSet(gradedWeights);
      const foldOf = (key: string) => createHash("sha256").update(key).digest()[0]! % 5;
      const quizFold = quizSet.keys.map(foldOf);
      const cv = (set: typeof quizSet) => {
        const fold = set.keys.map(foldOf);
        let err = 0;
        let wsum = 0;
        for (let f = 0; f < 5; f++) {
          const idx = set.xs.map((_, i) => i).filter((i) => fold[i] !== f);
          const m = ServedMastery.fit(
            idx.map((i) => set.xs[i]!),
            idx.map((i) => set.ys[i]!),
            { ...fitOpts, weights: idx.map((i) => set.fitWeights[i]!) },
          );
          for (let i = 0; i < quizSet.xs.length; i++) {
            if (quizFold[i] !== f) continue;
            const r = quizSet.ys[i]! - m.linear(quizSet.xs[i]!);
            err += quizSet.fitWeights[i]! * r * r;
            wsum += quizSet.fitWeights[i]!;
          }
        }
        return err / wsum;
      };
      labelCv = { quiz: cv(quizSet), graded: gradedSet.xs.length >= 50 ? cv(gradedSet) : Number.NaN };
      if (labelCv.graded < labelCv.quiz) labelKind = "graded";
    }
    const weights = labelKind === "graded" ? gradedWeights : noKinds;
    const { xs, ys, ws, fitWeights } = labelKind === "graded" ? trainingSet(gradedWeights) : quizSet;
    if (xs.length < 50)
      throw new ServedTrainError(
        `only ${xs.length} (student, topic) pairs have >= ${minAttempts} ${labelKind === "quiz" ? "quiz attempts" : "graded answers (quiz-answer equivalents)"} in the label window ${snapshot.toISOString()} .. ${labelEnd.toISOString()} and history before it; need 50: use a longer --label-days or a lower --min-label-attempts`,
      );
    const model = ServedMastery.fit(xs, ys, {
      weights: fitWeights,
      labelAttempts: ws,
      topics: calibration,
      global,
      scale: opts.scale ?? SERVED_SCALE,
    });
    if (latentFit !== null) {
      model.json.latent = latentFit.model.toJSON();
      model.json.servedFrom = opts.servedFrom ?? SERVED_FROM_DEFAULT;
    }
    if ((opts.anchor ?? SERVED_ANCHOR_DEFAULT) === "pair-centred") {
      // The served P(correct) of every scored pair at the snapshot: the filter's emission at its posterior
      // mean (what servedFromLatent maps) or the stack's prediction.
      const lp = model.json.latent?.params;
      const fromLatent = model.json.servedFrom === "latent" && lp !== undefined && latentEst !== null;
      const ps: { topic: string; p: number }[] = [];
      for (const [k, e] of evidence) {
        const est = latentEst?.get(k);
        // (The logistic emission's K has its own scale: the anchor is fitted on K itself.)
        const p =
          fromLatent && est !== undefined
            ? lp.slope !== undefined
              ? est.score
              : lp.guess + (1 - lp.guess - lp.slip) * est.score
            : Math.min(1, Math.max(0, model.linear(e)));
        ps.push({ topic: e.topic, p });
      }
      const anchor = fitAnchor(ps);
      // Round 8: only the share of the between-topic spread that persists from first to last answers is
      // read as ease (models/anchorEase.ts); the rest is mastery and the anchor does not need to cover it.
      const ease = easeShare(await loadPairAnswers(scratch, snapshot));
      const shareSd = anchor.sd * Math.sqrt(ease.share);
      // Round 26 (opt-in "thresholds"): the ease left in K after the filter's topic thresholds took the part the
      // answers identify: their posterior sd on the fit's own sample (models/thresholdUncertainty.ts).
      const unc =
        (opts.anchorEase ?? SERVED_ANCHOR_EASE_DEFAULT) === "thresholds" && fromLatent && latentFit !== null
          ? filterThresholdUncertainty(latentFit.model.json, latentFit.sample, {
              topicPriorSd: opts.latentFit?.topicPriorSd ?? 1,
              topicThresholdSd:
                typeof opts.latentFit?.topicThresholdSd === "number"
                  ? opts.latentFit.topicThresholdSd
                  : LATENT_TOPIC_THRESHOLD_SD,
            })
          : null;
      const th = unc === null ? null : anchorSdFromThresholds(ps, unc);
      const useTh = th !== null && Number.isFinite(th.sd);
      model.json.anchor = {
        ...anchor,
        sd: useTh ? th.sd : shareSd,
        betweenSd: anchor.sd,
        easeShare: ease.share,
        easeTopics: ease.topics,
        ...(th !== null && Number.isFinite(th.sd)
          ? { ease: "thresholds" as const, shareSd, thresholdTopics: th.topics }
          : {}),
      };
    }
    let modelPath: string | null = null;
    if (opts.out !== undefined) {
      mkdirSync(opts.out, { recursive: true });
      modelPath = join(opts.out, "model.json");
      writeFileSync(
        modelPath,
        `${JSON.stringify(
          {
            ...model.toJSON(),
            snapshot: snapshot.toISOString(),
            labelEnd: labelEnd.toISOString(),
            labelDays,
            minLabelAttempts: minAttempts,
            label: labelKind,
            kindWeights: weights,
          },
          null,
          2,
        )}\n`,
      );
    }
    return {
      model,
      snapshot,
      labelEnd,
      labelledPairs: xs.length,
      modelPath,
      decay,
      label: labelKind,
      labelCv,
      kindWeights: weights,
      latentFit,
    };
  } finally {
    scratch.close();
    rmSync(work, { recursive: true, force: true });
  }
}
