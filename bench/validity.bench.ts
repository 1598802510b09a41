/**
 * Validity of the mastery scores (issue 16): does each stored score track the generator's latent mastery,
 * and does it rank next week's quiz accuracy?
 *
 * Per generator setting: generate `days` (default 63) of events; keep the events before the cut (end of day
 * `days - 7`, a ground-truth day) and run the batch pipeline on them (ingest -> features -> rule scores ->
 * BKT/Elo replay, the code the demo runs), so every score is "as of the cut" from the data before it. Then:
 *  - truth: `latent_mastery` of the cut day (ground_truth.csv) for every scored (student, topic);
 *    Spearman, Pearson, mean absolute error, mean, share of scores > 0.95 / > 0.99;
 *  - next week: quiz accuracy of the (student, topic) in the 7 days after the cut (pairs with >= 3 attempts),
 *    Spearman of each score against it;
 *  - sources: every score_source in student_mastery, plus plain quiz accuracy (all time, last 30 days).
 *
 *   npx tsx bench/validity.bench.ts                          # quick: 2 settings, 400 students each
 *   STUDENTS=2000 TOPICS=40 DAYS=63 SEEDS=1,2,3 npx tsx bench/validity.bench.ts   # the issue's scale
 *   ONLY=1 npx tsx bench/validity.bench.ts                     # first setting only (ONLY=2: the second)
 *   SYNTH=0 npx tsx bench/validity.bench.ts                    # the real log only
 *   LATENT_STUDENT=0 npx tsx bench/validity.bench.ts           # the latent filter without the student effect
 *   LATENT_EMISSION=linear npx tsx bench/validity.bench.ts     # rounds 4-9 default emission (unset: the product default, auto)
 *   LATENT_EMISSION=logistic npx tsx bench/validity.bench.ts   # the filter's logistic (item-threshold) emission
 *   LATENT_FORGETTING=durable npx tsx bench/validity.bench.ts  # round 9's durable-share forgetting (opt-in)
 *   LATENT_THRESHOLD_SD=0.15 npx tsx bench/validity.bench.ts   # rounds 6-12's fixed threshold shrinkage (unset: auto, round 13)
 *   LATENT_STUDENT_LEARNING=auto npx tsx bench/validity.bench.ts # round 14: the student offset also moves learning rates
 *   LATENT_STUDENT_LEARNING=wide npx tsx bench/validity.bench.ts # round 22: the same with loadings 1.5 and 2 offered too
 *   LATENT_INTERVAL=by-evidence npx tsx bench/validity.bench.ts  # round 14: one interval factor per band of answers
 *   LATENT_FORGET_SPREAD=auto npx tsx bench/validity.bench.ts    # round 15: all-or-none share of forgetting (or a number in [0, 1])
 *
 * Ratio printed per setting: each source's Spearman vs the best single stored source (the anchor).
 */
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Pseudonymizer } from "../features/pseudonymize.ts";
import { generateSynthetic } from "../features/synthetic/generate.ts";
import {
  dispersionByEvidence,
  LATENT_MIN_INFLATION,
  type LatentEstimate,
  LatentFilter,
  STUDENT_WIDENINGS,
} from "../models/latentFilter.ts";
import { mulberry32 } from "../models/prng.ts";
import {
  MASTERY_SCALES,
  masteryOf,
  type PairEvidence,
  ServedMastery,
  servedFromLatent,
} from "../models/servedMastery.ts";
import type { StudentIntervalCheck } from "../models/studentInterval.ts";
import type { StudentScaleCheck } from "../models/studentScale.ts";
import { type ScorePair, spearman, validityMeasures } from "../models/validity.ts";
import { attachLatent, loadLatentSequences } from "../serving/latentScoring.ts";
import { runPipeline } from "../serving/pipeline.ts";
import { loadPairEvidence } from "../serving/servedInputs.ts";
import { type ServedExplanation, scoreServed } from "../serving/servedScoring.ts";
import {
  ANCHOR_EASES,
  type AnchorEase,
  LATENT_CENTRES,
  type LatentCentre,
  SERVED_AS_OF_HALF_LIVES,
  SERVED_LABELS,
  type ServedAsOfHalfLife,
  type ServedLabelKind,
  trainServed,
} from "../serving/servedTraining.ts";
import { DuckStore, sqlString } from "../storage/duckdb.ts";
import { latentEnv } from "./latentEnv.ts";
import { CANDIDATE_SOURCES, printComparison, runRealCuts } from "./realLogCuts.ts";

interface Setting {
  seed: number;
  students: number;
  topics: number;
  days: number;
  eventsPerDay: number;
}

const envInt = (name: string, dflt: number): number => {
  const v = process.env[name];
  if (v === undefined || v === "") return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0)
    throw new Error(`${name} must be a positive integer (got ${v}); unset it for the default`);
  return n;
};
const students = envInt("STUDENTS", 400);
const topics = envInt("TOPICS", 40);
const days = envInt("DAYS", 63);
if (days < 15) throw new Error(`DAYS must be >= 15 (a 7-day cut needs history before it; got ${days})`);
const seeds = (process.env.SEEDS ?? "1,2")
  .split(",")
  .map((s) => Number(s))
  .filter((s) => Number.isInteger(s));
// Vary the generator beyond the seed: a sparser setting (fewer events a day, more topics) on even positions.
const settings: Setting[] = seeds.map((seed, i) => ({
  seed,
  students,
  topics: i % 2 === 0 ? topics : Math.round(topics * 1.5),
  days,
  eventsPerDay: i % 2 === 0 ? 3.4 : 2.2,
}));
// ONLY=k runs the k-th setting alone (1-based).
const onlyAt = Number(process.env.ONLY ?? 0);
const only = process.env.SYNTH === "0" ? [] : onlyAt >= 1 ? settings.slice(onlyAt - 1, onlyAt) : settings;
const START = "2026-09-01";
const DATA = process.env.MASTERY_DATA ?? join(import.meta.dirname, "..", "..", "shared", "data");
/** Proxy labels of the served estimate: accuracy over this many days after the training cut, pairs with >= MIN_LABEL_ATTEMPTS. */
const LABEL_DAYS = envInt("LABEL_DAYS", 7);
const MIN_LABEL_ATTEMPTS = envInt("MIN_LABEL_ATTEMPTS", 3);
/** The served estimate's proxy label (serving/servedTraining.ts SERVED_LABELS): LABEL=quiz is round 2's. */
const LABEL = (process.env.LABEL ?? "auto") as ServedLabelKind;
if (!SERVED_LABELS.includes(LABEL)) throw new Error(`LABEL must be one of ${SERVED_LABELS.join(", ")}`);
/** The environment variable `name` as one of `values`; unset or empty = undefined (the product default). */
function enumEnv<T extends string>(name: string, values: readonly T[]): T | undefined {
  const v = process.env[name];
  if (v === undefined || v === "") return undefined;
  const hit = values.find((a) => a === v);
  if (hit === undefined)
    throw new Error(`${name} must be one of ${values.join(", ")} (got ${v}); unset it for the default`);
  return hit;
}
/** ANCHOR_EASE: one of ANCHOR_EASES (round 26); unset = the product default. */
const ANCHOR_EASE: AnchorEase | undefined = enumEnv("ANCHOR_EASE", ANCHOR_EASES);
/** SERVED_AS_OF_HALF_LIFE: one of SERVED_AS_OF_HALF_LIVES (round 32); unset = the product default. */
const SERVED_AS_OF: ServedAsOfHalfLife | undefined = enumEnv(
  "SERVED_AS_OF_HALF_LIFE",
  SERVED_AS_OF_HALF_LIVES,
);
/** LATENT_CENTRE: one of LATENT_CENTRES (round 17). */
function latentCentreEnv(v: string): LatentCentre {
  const c = LATENT_CENTRES.find((x) => x === v);
  if (c === undefined)
    throw new Error(
      `LATENT_CENTRE must be one of ${LATENT_CENTRES.join(", ")} (got ${v}); unset it for the default`,
    );
  return c;
}
const DAY_MS = 86_400_000;
/** The LATENT_* options of this run (generated settings and real log alike), echoed once at the start. */
const LATENT_ENV = latentEnv(process.env);
const f3 = (x: number): string => (Number.isFinite(x) ? x.toFixed(3) : "  -  ");

/** Copies every event file of `from` into `to` keeping rows with timestamp < cut (plus topics/roster). */
async function cutEvents(store: DuckStore, from: string, to: string, cut: Date): Promise<void> {
  mkdirSync(to, { recursive: true });
  for (const f of readdirSync(from)) {
    if (f === "topics.json" || f === "roster.csv") copyFileSync(join(from, f), join(to, f));
    if (!f.endsWith(".csv") || f === "ground_truth.csv" || f === "roster.csv") continue;
    await store.run(
      `COPY (SELECT * FROM read_csv(${sqlString(join(from, f))}, header = true, all_varchar = true)
             WHERE timestamp < ${sqlString(cut.toISOString().replace(".000Z", "Z"))})
       TO ${sqlString(join(to, f))} (HEADER, DELIMITER ',')`,
    );
  }
}

/**
 * DIAGNOSTIC ONLY (never in the product): the same stack (ridge on the same inputs, ridge chosen by CV) fitted
 * with the generator's latent truth as the label, 5-fold cross-fitted (each pair predicted by a fit on the
 * other folds, identity scale). Its Spearman / MAE against the truth bound what the inputs carry: an oracle
 * far above the served score says the labels are the limit; an oracle near it says the inputs are.
 * `quizOnly` drops the other-kind evidence (practice, assignment, video, chatbot, exposure, recency): round 2's inputs.
 */
function oracle(
  evidence: Map<string, PairEvidence>,
  truth: Map<string, number>,
  served: ServedMastery,
  quizOnly: boolean,
): ReturnType<typeof validityMeasures> {
  const xs: PairEvidence[] = [];
  const ys: number[] = [];
  for (const [k, e] of evidence) {
    const t = truth.get(k);
    if (t === undefined) continue;
    xs.push(
      quizOnly
        ? {
            topic: e.topic,
            rule: e.rule,
            bkt: e.bkt,
            elo: e.elo,
            attempts: e.attempts,
            correct: e.correct,
            daysSinceQuiz: e.daysSinceQuiz,
            daysSinceAny: Number.POSITIVE_INFINITY,
          }
        : e,
    );
    ys.push(t);
  }
  const folds = 5;
  const pairs: ScorePair[] = new Array(xs.length);
  for (let f = 0; f < folds; f++) {
    const idx = xs.map((_, i) => i).filter((i) => i % folds !== f);
    const m = ServedMastery.fit(
      idx.map((i) => xs[i]!),
      idx.map((i) => ys[i]!),
      { topics: served.json.topics, global: served.json.global, scale: "identity" },
    );
    for (let i = f; i < xs.length; i += folds) pairs[i] = { score: m.predict(xs[i]!).score, truth: ys[i]! };
  }
  return validityMeasures(pairs);
}

export interface SettingResult {
  setting: Setting;
  rows: { source: string; m: ReturnType<typeof validityMeasures> }[];
}

export async function runSetting(s: Setting, work: string): Promise<SettingResult> {
  const full = join(work, "full");
  const cutDir = join(work, "cut");
  await generateSynthetic({
    students: s.students,
    topics: s.topics,
    days: s.days,
    seed: s.seed,
    start: START,
    eventsPerDay: s.eventsPerDay,
    truthEvery: 7,
    outDir: full,
    workers: 0,
  });
  const cutDay = s.days - 8; // day index whose end is the cut; (cutDay + 1) % 7 === 0 when days % 7 === 0
  const cut = new Date(Date.parse(`${START}T00:00:00Z`) + (cutDay + 1) * DAY_MS);
  const cutDayStr = new Date(cut.getTime() - DAY_MS).toISOString().slice(0, 10);
  const rows = await evaluateCut({
    title: `seed ${s.seed}: ${s.students} students x ${s.topics} topics x ${s.days} days, ${s.eventsPerDay} events/day`,
    work,
    full,
    cutDir,
    cut,
    truthDay: cutDayStr,
  });
  return { setting: s, rows };
}

interface CutOptions {
  title: string;
  work: string;
  /** Directory of event CSVs (generator layout; quiz_attempts.csv at least). */
  full: string;
  cutDir: string;
  cut: Date;
  /** Ground-truth day (YYYY-MM-DD) in full/ground_truth.csv, or null for a real log. */
  truthDay: string | null;
  /** Label window of the served estimate's training (default LABEL_DAYS). */
  labelDays?: number;
  /** Raw student ids whose next week counts (default: everyone). */
  nextWeekStudents?: ReadonlySet<string>;
}

/** Pipeline on the events before the cut, served estimate trained and scored, every source measured. */
async function evaluateCut(
  o: CutOptions,
): Promise<SettingResult["rows"] & { pairs?: Map<string, ScorePair[]> }> {
  const { work, full, cutDir, cut } = o;
  const pseudonymizer = new Pseudonymizer("validity-bench-key-0123456789");
  let store = await DuckStore.open(join(work, "mastery.duckdb"));
  let served: ServedMastery;
  let closed = false;
  try {
    await cutEvents(store, full, cutDir, cut);
    const t0 = performance.now();
    const res = await runPipeline({ store, pseudonymizer, dataDir: cutDir });
    const pipelineSeconds = (performance.now() - t0) / 1000;
    // The served estimate, trained on the store's own history (snapshot cut - LABEL_DAYS, labels after it),
    // then scored as of the cut: the same code `mastery train served` / `mastery score served` run.
    store.close();
    closed = true;
    const t1 = performance.now();
    const trained = await trainServed({
      dbPath: join(work, "mastery.duckdb"),
      labelEnd: cut,
      labelDays: o.labelDays ?? LABEL_DAYS,
      minLabelAttempts: MIN_LABEL_ATTEMPTS,
      label: LABEL,
      // The LATENT_* options (bench/latentEnv.ts; the real-log harness takes the same ones).
      latentFit: {
        studentEffect: true,
        ...LATENT_ENV.fit,
        ...(LATENT_ENV.studentScale !== undefined ? { studentScale: LATENT_ENV.studentScale } : {}),
        ...(LATENT_ENV.studentInterval !== undefined ? { studentInterval: LATENT_ENV.studentInterval } : {}),
        ...(LATENT_ENV.studentWidening !== undefined ? { studentWidening: LATENT_ENV.studentWidening } : {}),
      },
      ...(process.env.BALANCE !== undefined ? { balance: Number(process.env.BALANCE) } : {}),
      // ANCHOR_EASE=share|thresholds: what the anchor's sd carries (round 26; unset: the product default).
      ...(ANCHOR_EASE !== undefined ? { anchorEase: ANCHOR_EASE } : {}),
      // SERVED_AS_OF_HALF_LIFE=filter|labels: the as-of decay's half-life (round 32; unset: the product default).
      ...(SERVED_AS_OF !== undefined ? { asOfHalfLife: SERVED_AS_OF } : {}),
      // LATENT_CENTRE=none|by-evidence: the centre's calibration by evidence band on the proxy labels (round 17;
      // unset: the product default).
      ...(process.env.LATENT_CENTRE !== undefined && process.env.LATENT_CENTRE !== ""
        ? { latentCentre: latentCentreEnv(process.env.LATENT_CENTRE) }
        : {}),
    });
    const trainSeconds = (performance.now() - t1) / 1000;
    // FIT_SAMPLE_OUT=file (round 30): the latent fit's sample of sequences as JSON, so the global fit's
    // convergence can be studied on it alone (bench/latentGlobalFit.bench.ts).
    const sampleOut = process.env.FIT_SAMPLE_OUT;
    if (sampleOut !== undefined && sampleOut !== "" && trained.latentFit !== null)
      writeFileSync(sampleOut, JSON.stringify(trained.latentFit.sample));
    served = trained.model;
    store = await DuckStore.open(join(work, "mastery.duckdb"));
    closed = false;
    await scoreServed(store, served, "bench", { asOf: cut });

    // Truth and next-week accuracy are keyed by raw id; pseudonymize the distinct ids as ingest does.
    const keyOf = new Map<string, string>();
    const key = (raw: string): string => {
      let k = keyOf.get(raw);
      if (k === undefined) {
        k = pseudonymizer.studentKey(raw);
        keyOf.set(raw, k);
      }
      return k;
    };
    const truthRows =
      o.truthDay === null
        ? []
        : await store.all<{ student_id: string; topic_id: string; latent_mastery: number }>(
            `SELECT student_id, topic_id, latent_mastery FROM read_csv(${sqlString(join(full, "ground_truth.csv"))}, header = true)
             WHERE CAST(day AS VARCHAR) = ${sqlString(o.truthDay)}`,
          );
    if (o.truthDay !== null && truthRows.length === 0)
      throw new Error(`no ground truth on the cut day ${o.truthDay}: DAYS must be a multiple of 7`);
    const truth = new Map<string, number>();
    for (const t of truthRows) truth.set(`${key(t.student_id)}|${t.topic_id}`, Number(t.latent_mastery));
    const nextRows = await store.all<{ student_id: string; topic_id: string; n: number; acc: number }>(
      `SELECT student_id, topic_id, count(*)::INTEGER AS n, avg(CASE WHEN is_correct = 'true' THEN 1.0 ELSE 0.0 END) AS acc
       FROM read_csv(${sqlString(join(full, "quiz_attempts.csv"))}, header = true, all_varchar = true)
       WHERE timestamp >= ${sqlString(cut.toISOString().replace(".000Z", "Z"))}
         AND timestamp < ${sqlString(new Date(cut.getTime() + 7 * DAY_MS).toISOString().replace(".000Z", "Z"))}
       GROUP BY ALL HAVING count(*) >= 3`,
    );
    const nextWeek = new Map<string, number>();
    for (const r of nextRows)
      if (o.nextWeekStudents === undefined || o.nextWeekStudents.has(r.student_id))
        nextWeek.set(`${key(r.student_id)}|${r.topic_id}`, Number(r.acc));

    const scores = await store.all<{
      student_key: string;
      topic_id: string;
      source: string;
      score: number;
      explanation: string | null;
    }>(
      `SELECT student_key, topic_id, score_source AS source, mastery_score AS score,
              CASE WHEN score_source IN ('served', 'latent') THEN explanation END AS explanation FROM student_mastery
       UNION ALL
       SELECT student_key, topic_id, 'accuracy_all' AS source, avg(CASE WHEN is_correct THEN 1.0 ELSE 0.0 END) AS score, NULL AS explanation
       FROM raw_events WHERE type = 'quiz_attempt' GROUP BY ALL
       UNION ALL
       SELECT student_key, topic_id, 'accuracy_30d' AS source, avg(CASE WHEN is_correct THEN 1.0 ELSE 0.0 END) AS score, NULL AS explanation
       FROM raw_events WHERE type = 'quiz_attempt' AND ts >= ${sqlString(new Date(cut.getTime() - 30 * DAY_MS).toISOString())}::TIMESTAMP
       GROUP BY ALL`,
    );
    const bySource = new Map<string, ScorePair[]>();
    const kinds = new Map<string, number>();
    for (const r of scores) {
      const k = `${r.student_key}|${r.topic_id}`;
      let list = bySource.get(r.source);
      if (list === undefined) {
        list = [];
        bySource.set(r.source, list);
      }
      const x = r.explanation === null ? null : (JSON.parse(r.explanation) as ServedExplanation);
      if (x !== null && r.source === "served")
        kinds.set(x.evidence.kind, (kinds.get(x.evidence.kind) ?? 0) + 1);
      list.push({
        score: r.score,
        truth: truth.get(k),
        nextWeek: nextWeek.get(k),
        lo: x?.interval.lo,
        hi: x?.interval.hi,
      });
      // The same estimate on the other mastery scales (identity = P(correct on an average next item)).
      if (x !== null && r.source === "served")
        for (const scale of MASTERY_SCALES) {
          if (scale === served.json.scale) continue;
          const name = `served:${scale}`;
          const p = bySource.get(name) ?? [];
          bySource.set(name, p);
          p.push({
            score: masteryOf(x.pCorrect, served.calibration(r.topic_id), scale, served.anchorCalibration()),
            truth: truth.get(k),
            nextWeek: nextWeek.get(k),
          });
        }
    }
    // The stack's own estimate on the same pairs (the served score when --served-from stack).
    const evidence = await loadPairEvidence(store, cut);
    const raw = new Map<string, LatentEstimate>();
    const latentEst =
      served.json.latent === undefined
        ? null
        : await attachLatent(store, evidence, LatentFilter.fromJSON(served.json.latent), cut, { raw });
    // Round 7's A/B on the same fit: the served score with rounds 2-6's anchor (the log's typical
    // correctness after a gap, `global.base`) and neither the anchor's nor the offset's uncertainty in the
    // interval (served:gap-anchor = round 6's served score); served:new-anchor = round 7's anchor with its
    // sd, without the offset's.
    if (served.json.servedFrom === "latent" && latentEst !== null && served.json.latent !== undefined) {
      const list: ScorePair[] = [];
      const list2: ScorePair[] = [];
      for (const [k, e] of evidence) {
        const est = raw.get(k) ?? latentEst.get(k);
        if (est === undefined) continue;
        const b = servedFromLatent(
          est,
          served.json.latent.params,
          served.calibration(e.topic),
          served.json.scale,
          served.json.global,
        );
        list.push({ score: b.score, truth: truth.get(k), nextWeek: nextWeek.get(k), lo: b.lo, hi: b.hi });
        const a = servedFromLatent(
          est,
          served.json.latent.params,
          served.calibration(e.topic),
          served.json.scale,
          served.anchorCalibration(),
          served.anchorSd(),
        );
        list2.push({ score: a.score, truth: truth.get(k), nextWeek: nextWeek.get(k), lo: a.lo, hi: a.hi });
      }
      bySource.set("served:gap-anchor", list);
      bySource.set("served:new-anchor", list2);
      // fold27: the served score with each interval widening (LatentModelJson.studentWidening) on the same fit:
      // the same scores, only lo / hi differ. The one the model uses reproduces the "served" row (a self-check).
      if ((served.json.latent.studentPriorSd ?? 0) > 0)
        for (const w of STUDENT_WIDENINGS) {
          const lj = { ...served.json.latent, studentWidening: w };
          const est = await attachLatent(store, evidence, LatentFilter.fromJSON(lj), cut);
          const list3: ScorePair[] = [];
          for (const [k, e] of evidence) {
            const x = est.get(k);
            if (x === undefined) continue;
            const a = servedFromLatent(
              x,
              lj.params,
              served.calibration(e.topic),
              served.json.scale,
              served.anchorCalibration(),
              served.anchorSd(),
            );
            list3.push({
              score: a.score,
              truth: truth.get(k),
              nextWeek: nextWeek.get(k),
              lo: a.lo,
              hi: a.hi,
            });
          }
          bySource.set(`served:${w}-widening`, list3);
        }
    }
    if (served.json.servedFrom === "latent") {
      const list: ScorePair[] = [];
      for (const [k, e] of evidence) {
        const est = served.predict(e);
        list.push({
          score: est.score,
          truth: truth.get(k),
          nextWeek: nextWeek.get(k),
          lo: est.lo,
          hi: est.hi,
        });
      }
      bySource.set("served:stack", list);
    }
    const rows = [...bySource].map(([source, pairs]) => ({ source, m: validityMeasures(pairs) }));
    // DUMP=dir: the latent and served rows of every scored pair with its truth / next week, and the model
    // (offline analysis of the scale map and the interval: bench/validityReplay.ts).
    if (process.env.DUMP !== undefined) {
      mkdirSync(process.env.DUMP, { recursive: true });
      const dumped = scores
        .filter((r) => r.source === "served" || r.source === "latent" || r.source === "accuracy_all")
        .map((r) => {
          const k = `${r.student_key}|${r.topic_id}`;
          return {
            k,
            source: r.source,
            score: r.score,
            truth: truth.get(k),
            nextWeek: nextWeek.get(k),
            x: r.explanation === null ? null : JSON.parse(r.explanation),
          };
        });
      const file = join(process.env.DUMP, `${o.title.replace(/[^a-z0-9]+/gi, "_").slice(0, 60)}.json`);
      writeFileSync(file, JSON.stringify({ title: o.title, model: served.json, rows: dumped }));
      console.log(`dumped ${dumped.length} rows to ${file}`);
    }
    // The interval by evidence (round 14): the truth's cover per band of the pair's answers (bench: reads the
    // truth) next to the label-free held-out dispersion ratio per band on the store's own sequences as of the
    // cut (models/latentFilter.ts dispersionByEvidence), and the cover the intervals would have with each band's
    // ratio in place of the one factor (half-widths scaled by sqrt(max(0.25, ratio_band) / factor); offline
    // arithmetic on the served intervals, an approximation: the offset and anchor parts scale with them).
    if (truth.size > 0 && trained.latentFit !== null)
      await intervalByEvidence(trained.latentFit.model).catch((e: unknown) =>
        console.log(`DIAGNOSTIC interval by evidence failed: ${String(e)}`),
      );
    async function intervalByEvidence(lf: LatentFilter): Promise<void> {
      const seqs = [...(await loadLatentSequences(store, cut)).values()];
      const bands = dispersionByEvidence(
        (t) => lf.kernelFor(t),
        seqs,
        (t) => lf.priorMean(t),
      );
      const factor = (lf.json.intervalScale ?? 1) ** 2;
      const bandOf = (n: number): number => {
        let b = 0;
        for (let i = 0; i < bands.length; i++) if (n >= bands[i]!.from) b = i;
        return b;
      };
      const agg = bands.map(() => ({ n: 0, cover: 0, below: 0, width: 0, banded: 0 }));
      for (const r of scores) {
        if (r.source !== "served" || r.explanation === null) continue;
        const t = truth.get(`${r.student_key}|${r.topic_id}`);
        if (t === undefined) continue;
        const x = JSON.parse(r.explanation) as ServedExplanation;
        const iv = (x as { interval?: { lo: number; hi: number } }).interval;
        if (iv === undefined) continue;
        const attempts = (x as { evidence?: { attempts?: number } }).evidence?.attempts ?? 0;
        const b = bandOf(attempts);
        const a = agg[b]!;
        a.n++;
        if (t >= iv.lo && t <= iv.hi) a.cover++;
        if (t < iv.lo) a.below++;
        a.width += iv.hi - iv.lo;
        const k = Math.sqrt(Math.max(LATENT_MIN_INFLATION, bands[b]!.ratio) / factor);
        const lo = Math.max(0, r.score - k * (r.score - iv.lo));
        const hi = Math.min(1, r.score + k * (iv.hi - r.score));
        if (t >= lo && t <= hi) a.banded++;
      }
      const tot = agg.reduce((x, a) => ({ n: x.n + a.n, c: x.c + a.cover, b: x.b + a.banded }), {
        n: 0,
        c: 0,
        b: 0,
      });
      console.log(
        `DIAGNOSTIC interval by evidence (answers from: held-out ratio on N sequences | truth cover (below) width, n | cover with the band's ratio): ${bands
          .map(
            (d, i) =>
              `${d.from}+: ${d.ratio.toFixed(3)} on ${d.sequences} | ${f3(agg[i]!.cover / agg[i]!.n)} (${f3(agg[i]!.below / agg[i]!.n)}) ${f3(agg[i]!.width / agg[i]!.n)}, ${agg[i]!.n} | ${f3(agg[i]!.banded / agg[i]!.n)}`,
          )
          .join(
            "; ",
          )}; all: ${f3(tot.c / tot.n)} -> ${f3(tot.b / tot.n)} (one factor ${factor.toFixed(3)}, ratio ${lf.json.fit.dispersion?.ratio.toFixed(3) ?? "?"})`,
      );
    }
    if (truth.size > 0) {
      for (const quizOnly of [true, false]) {
        const m = oracle(evidence, truth, served, quizOnly);
        console.log(
          `DIAGNOSTIC oracle (stack fitted on the latent truth, 5-fold cross-fitted; not the product), ${quizOnly ? "round-2 inputs" : "all inputs  "}: pairs ${m.n} spearman ${f3(m.spearman)} pearson ${f3(m.pearson)} MAE ${f3(m.mae)}`,
        );
      }
    }
    const key1 = (m: ReturnType<typeof validityMeasures>) =>
      Number.isFinite(m.spearman) ? m.spearman : m.nextSpearman;
    rows.sort((a, b) => key1(b.m) - key1(a.m));
    console.log(
      `\n${o.title}; cut ${cut.toISOString()} ` +
        `(${res.ingest.total.accepted} events before it; pipeline ${pipelineSeconds.toFixed(1)} s); ${truth.size} true pairs, ${nextWeek.size} next-week pairs`,
    );
    console.log(
      "source          pairs  truth: spearman pearson  MAE    mean  >0.95  >0.99 cover80 | next week: pairs spearman | ratio",
    );
    const anchor = Math.max(
      ...rows
        .filter((r) => !r.source.startsWith("accuracy") && !r.source.startsWith("served"))
        .map((r) => r.m.spearman),
    );
    for (const { source, m } of rows) {
      console.log(
        `${source.padEnd(14)} ${String(m.n).padStart(6)}         ${f3(m.spearman)}   ${f3(m.pearson)}  ${f3(m.mae)}  ${f3(m.mean)}  ${f3(m.above95)}  ${f3(m.above99)}  ${f3(m.coverage)} |  ${String(m.nNext).padStart(10)}  ${f3(m.nextSpearman)}   | ${f3(m.spearman / anchor)}`,
      );
    }
    console.log(
      `served (${served.json.scale}): ${[...kinds].map(([k, n]) => `${k} ${n}`).join(", ")}; weights ${served.json.inputs.map((n, j) => `${n}=${served.json.weights[j]!.toFixed(3)}`).join(" ")} intercept=${served.json.intercept.toFixed(3)} ridge=${served.json.ridge} (${served.json.trainPairs} training pairs, label ${trained.label}${trained.labelCv === null ? "" : ` (CV error quiz ${trained.labelCv.quiz.toFixed(4)} / graded ${trained.labelCv.graded.toFixed(4)})`}, balance ${process.env.BALANCE ?? "default"}: practice set = ${trained.kindWeights.practice.toFixed(2)} / assignment = ${trained.kindWeights.assignment.toFixed(2)} quiz answers; train ${trainSeconds.toFixed(1)} s)`,
    );
    const an = served.json.anchor;
    if (an !== undefined)
      console.log(
        `anchor (${ANCHOR_EASE ?? "default"}): base ${an.base.toFixed(4)}, sd ${an.sd.toFixed(4)} logit; between-topic sd ${an.betweenSd?.toFixed(4) ?? "-"}, ease share ${an.easeShare?.toFixed(4) ?? "-"} on ${an.easeTopics ?? "-"} topics${an.ease === "thresholds" ? `; from the thresholds' posterior sd on ${an.thresholdTopics} topics (the share's sd ${an.shareSd?.toFixed(4)})` : ""}`,
      );
    if (trained.latentFit !== null) {
      const lf = trained.latentFit.model.json;
      const tp = Object.values(lf.topicPriorMean);
      console.log(
        `anchor ${JSON.stringify(served.json.anchor ?? null)} (gap-accuracy base ${served.json.global.base.toFixed(3)}); latent filter: interval scale ${(lf.intervalScale ?? 1).toFixed(3)} (held-out dispersion ratio ${lf.fit.dispersion?.ratio.toFixed(4) ?? "?"} on ${lf.fit.dispersion?.sequences ?? "?"} pairs, ${lf.fit.dispersion?.mode ?? "widen-only"}); student prior sd ${lf.studentPriorSd ?? 0}; ${JSON.stringify(lf.params, (_, v) => (typeof v === "number" ? Number(v.toPrecision(4)) : v))}; topic prior means ${tp.length > 0 ? `${Math.min(...tp).toFixed(3)}-${Math.max(...tp).toFixed(3)}` : "-"}; fit on ${lf.fit.sequences} pairs, ${lf.fit.observations} observations, ${lf.fit.evaluations} evaluations (stop: ${lf.fit.stop ?? "?"}), ll/obs ${lf.fit.logLikPerObs.toFixed(4)}${guardNote(lf.fit)}, ${trained.latentFit.seconds.toFixed(1)} s`,
      );
      const gp = lf.fit.globalPolish;
      if (gp !== undefined)
        console.log(
          `global fit polish (round 30): ${gp.evaluations} passes, ${gp.restarts} restarts, ${gp.iterations} BFGS steps, stop ${gp.stop}; ll ${gp.logLikBefore.toFixed(2)} -> ${gp.logLikAfter.toFixed(2)} (+${(gp.logLikAfter - gp.logLikBefore).toFixed(2)} nats), |gradient| max ${gp.gradientMax.toExponential(2)}`,
        );
      const ch = lf.fit.emissionChoice;
      if (ch !== undefined)
        console.log(
          `emission choice (held-out, graded events from day ${ch.cutDay.toFixed(1)}, ${ch.heldOutObservations} observations): linear ${ch.heldOut.linear.toFixed(5)} / logistic (concentration 4) ${ch.heldOut.logistic.toFixed(5)} ll/obs -> ${ch.chosen}`,
        );
      const fc = lf.fit.forgettingChoice;
      if (fc !== undefined)
        console.log(
          `forgetting choice (same split, ${fc.heldOutObservations} observations): floor ${fc.heldOut.floor.toFixed(5)} / durable ${fc.heldOut.durable.toFixed(5)} ll/obs -> ${fc.chosen}${lf.params.durableShare !== undefined ? ` (durable share ${lf.params.durableShare.toFixed(3)}, half-life ${lf.params.halfLifeDays.toFixed(1)} d)` : ""}`,
        );
      const spc = lf.fit.spreadChoice;
      if (spc !== undefined)
        console.log(
          `forgetting spread choice (held-out dispersion ratio on ${spc.sequences} pairs): ${Object.entries(
            spc.ratios,
          )
            .map(([sp, r]) => `spread ${sp} ${r.toFixed(4)}`)
            .join(" / ")} -> ${spc.chosen}`,
        );
      const ahc = lf.fit.asOfHalfLifeChoice;
      if (ahc !== undefined)
        console.log(
          `as-of half-life (round 28, answers after idle gaps >= ${ahc.minGapDays} d: ${ahc.events} events, ${ahc.answers} answers, median gap ${ahc.medianGapDays.toFixed(1)} d): filter's ${ahc.filterHalfLifeDays.toFixed(1)} d ${ahc.filterLogLikPerAnswer.toFixed(5)} ll/answer -> ${ahc.halfLifeDays.toFixed(1)} d ${ahc.logLikPerAnswer.toFixed(5)}${ahc.kept !== undefined ? ` (${ahc.kept})` : ""}`,
        );
      const alc = lf.fit.asOfHalfLifeLabels;
      if (alc !== undefined)
        console.log(
          `as-of half-life (round 32, proxy labels: ${alc.pairs} labelled pairs idle at the snapshot, ${alc.answers} answers, median idle ${alc.medianIdleDays.toFixed(1)} d): ll by multiplier of the filter's ${alc.filterHalfLifeDays.toFixed(1)} d ${alc.multipliers.map((m, i) => `${m.toFixed(3)}: ${alc.logLik[i]!.toFixed(2)}`).join(" / ")} ${alc.intercepts !== undefined ? ` (the window's common logit shift profiled out: ${alc.intercepts.map((b) => b.toFixed(3)).join(" / ")})` : ""} -> ${alc.halfLifeDays.toFixed(1)} d (gain ${alc.gainNats.toFixed(2)} nats)${alc.kept !== undefined ? ` (${alc.kept})` : ""}`,
        );
      const cc = lf.fit.consolidationChoice;
      if (cc !== undefined)
        console.log(
          `consolidation (round 29, ${cc.evaluations} evaluations, ${cc.refitted} other coordinates refitted with it${cc.fixed === true ? ", share held (diagnostic)" : ""}${cc.skipped !== undefined ? `, skipped: ${cc.skipped}` : ""}): ll ${cc.logLik.filter.toFixed(2)} at c 0 (h ${cc.filterHalfLifeDays.toFixed(1)} d), ${cc.logLik.none.toFixed(2)} refitted at c 0 -> ${cc.logLik.best.toFixed(2)} at c ${cc.best.toFixed(4)} (LR ${(2 * (cc.logLik.best - cc.logLik.none)).toFixed(2)}) -> chosen c ${cc.chosen.toFixed(4)}, h ${cc.halfLifeDays.toFixed(1)} d`,
        );
      const cs = lf.centreShiftByEvidence;
      if (cs !== undefined)
        console.log(
          `centre shift by evidence (${lf.fit.studentIntervalCheck?.bands !== undefined ? "the fit sample's held-out answers, round 23; band from: K shift, raw K shift, sequences" : "label window's quiz answers; band from: K shift, band intercept, pairs"}, answers): ${cs
            .map((b) => `${b.from}+: ${b.shift.toFixed(4)} (${b.delta.toFixed(3)}, ${b.pairs}, ${b.answers})`)
            .join(" / ")}`,
        );
      const tc = lf.fit.thresholdChoice;
      const th = Object.values(lf.topicThreshold ?? {});
      if (tc !== undefined)
        console.log(
          `threshold shrinkage choice (two halves of the students, ${tc.observations} observations): ${Object.entries(
            tc.heldOut,
          )
            .map(([sd, v]) => `sd ${sd} ${v.toFixed(5)}`)
            .join(
              " / ",
            )} ll/obs -> ${tc.chosen}; topic thresholds ${th.length > 0 ? `${Math.min(...th).toFixed(3)}-${Math.max(...th).toFixed(3)}` : "-"}`,
        );
      const sc = lf.fit.studentChoice;
      if (sc !== undefined)
        console.log(
          `student effect choice (leave one topic out, ${sc.observations} observations): ${Object.entries(
            sc.heldOut,
          )
            .map(([l, v]) => `loading ${l} (sd ${v.sd}) ${v.logLikPerObs.toFixed(5)}`)
            .join(" / ")} ll/obs -> sd ${sc.sd}, loading ${sc.loading}`,
        );
      const ss = lf.fit.studentScaleCheck;
      if (ss !== undefined) console.log(`student scale check: ${studentScaleLine(ss)}`);
      const si = lf.fit.studentIntervalCheck;
      if (si !== undefined) console.log(`student interval check: ${studentIntervalLine(si)}`);
    }
    const cal = Object.values(served.json.topics);
    const med = (xs: number[]) => {
      const q = [...xs].sort((a, b) => a - b);
      return q.length === 0 ? Number.NaN : q[Math.floor(q.length / 2)]!;
    };
    const range = (xs: number[]) =>
      `median ${med(xs).toFixed(3)} [${Math.min(...xs).toFixed(3)}, ${Math.max(...xs).toFixed(3)}]`;
    console.log(
      `calibration (${cal.length} topics): guess ${range(cal.map((c) => c.guess))}, slip ${range(cal.map((c) => c.slip))}, half-life days ${range(cal.map((c) => c.halfLifeDays))} (global ${served.json.global.halfLifeDays} d from ${trained.decay.global.n} gaps >= 1 day), base ${range(cal.map((c) => c.base))}`,
    );
    console.log(
      `truth mean ${f3(truthRows.reduce((a, t) => a + Number(t.latent_mastery), 0) / truthRows.length)}`,
    );
    return Object.assign(rows, { pairs: bySource });
  } finally {
    if (!closed) store.close();
  }
}

/**
 * The real log with timestamps (assistments17_gervet/split, issue 16 item 5): every attempt becomes a quiz_attempt
 * event (timestamp = 2020-01-01 + the log's seconds; skill = topic; topics.json with difficulty = 1 - the skill's
 * accuracy), one global cut at the median time of the test users' rows; the next week is measured on the test
 * users (user_id % 5 == 0) only. There is no truth here, only the next-week measure.
 */
async function runRealLog(work: string): Promise<void> {
  const dir = join(DATA, "assistments17_gervet", "split");
  const files = ["preprocessed_data_train.csv", "preprocessed_data_test.csv"].map((f) => join(dir, f));
  if (!files.every(existsSync))
    throw new Error(`real log not found under ${dir}: set MASTERY_DATA to the shared data folder`);
  const full = join(work, "full");
  mkdirSync(full, { recursive: true });
  const conv = await DuckStore.open(join(work, "convert.duckdb"));
  const cuts: Date[] = [];
  const testUsers = new Set<string>();
  try {
    const src = `read_csv([${files.map(sqlString).join(", ")}], delim = '\t', header = true)`;
    await conv.run(
      `COPY (SELECT 'q-' || row_number() OVER (ORDER BY user_id, timestamp) AS event_id, 'quiz_attempt' AS type,
                    'u' || user_id AS student_id, 's' || skill_id AS topic_id,
                    strftime(TIMESTAMP '2020-01-01' + to_seconds(timestamp::BIGINT), '%Y-%m-%dT%H:%M:%SZ') AS timestamp,
                    'i' || item_id AS question_id, CASE WHEN correct = 1 THEN 'true' ELSE 'false' END AS is_correct
             FROM ${src}) TO ${sqlString(join(full, "quiz_attempts.csv"))} (HEADER, DELIMITER ',')`,
    );
    const topics = await conv.all<{ topic_id: string; difficulty: number }>(
      `SELECT 's' || skill_id AS topic_id, 1 - avg(correct) AS difficulty FROM ${src} WHERE user_id % 5 <> 0 GROUP BY ALL`,
    );
    const allTopics = await conv.all<{ topic_id: string }>(
      `SELECT DISTINCT 's' || skill_id AS topic_id FROM ${src}`,
    );
    const diff = new Map(topics.map((t) => [t.topic_id, Number(t.difficulty)]));
    writeFileSync(
      join(full, "topics.json"),
      JSON.stringify(
        allTopics.map((t) => ({
          topic_id: t.topic_id,
          name: t.topic_id,
          chapter_id: "ch1",
          subject_id: "sub1",
          course_id: "c1",
          difficulty_estimate: diff.get(t.topic_id) ?? 0.5,
          prerequisites: [],
          content_length: 10,
        })),
      ),
    );
    const nCuts = envInt("REAL_CUTS", 6);
    for (let i = 0; i < nCuts; i++) {
      const q = 0.2 + (0.5 * i) / Math.max(1, nCuts - 1);
      const r = await conv.one<{ t: number }>(
        `SELECT quantile_disc(timestamp::BIGINT, ${q})::BIGINT AS t FROM ${src} WHERE user_id % 5 = 0`,
      );
      cuts.push(new Date(Date.parse("2020-01-01T00:00:00Z") + Math.floor(Number(r!.t) / 86_400) * DAY_MS));
    }
    for (const r of await conv.all<{ u: string }>(
      `SELECT DISTINCT 'u' || user_id AS u FROM ${src} WHERE user_id % 5 = 0`,
    ))
      testUsers.add(r.u);
  } finally {
    conv.close();
  }
  // One cut gives ~20 next-week pairs of the 67 test users: pool the next-week pairs of several cuts (each
  // cut: its own pipeline on the events before it, its own served fit), then measure on the pooled pairs.
  const pooled = new Map<string, ScorePair[]>();
  for (const [i, cut] of cuts.entries()) {
    const sub = join(work, `cut${i}`);
    mkdirSync(sub, { recursive: true });
    let rows: Awaited<ReturnType<typeof evaluateCut>>;
    try {
      rows = await evaluateCut({
        title: `real log assistments17_gervet, cut ${i + 1} of ${cuts.length}`,
        work: sub,
        full,
        cutDir: join(sub, "cut"),
        cut,
        truthDay: null,
        nextWeekStudents: testUsers,
        // The log is sparse (342 users over 16 months): a week holds too few labelled pairs to fit on.
        labelDays: envInt("REAL_LABEL_DAYS", 56),
      });
    } catch (err) {
      // A cut in a quiet stretch of the log has too few labelled pairs to fit the served estimate: skip it.
      if ((err as { code?: string }).code !== "SERVED_TRAIN") throw err;
      console.log(`\nreal log cut ${i + 1} skipped: ${(err as Error).message}`);
      continue;
    }
    for (const [source, pairs] of rows.pairs ?? []) {
      const list = pooled.get(source) ?? [];
      for (const p of pairs) if (p.nextWeek !== undefined) list.push(p);
      pooled.set(source, list);
    }
  }
  console.log(
    `\nreal log assistments17_gervet, ${cuts.length} cuts pooled (test users' next week, pairs with >= 3 attempts):`,
  );
  const measured = [...pooled].map(([source, pairs]) => ({ source, pairs, m: validityMeasures(pairs) }));
  measured.sort((a, b) => b.m.nextSpearman - a.m.nextSpearman);
  const plain = measured.find((r) => r.source === "accuracy_all")?.m.nextSpearman ?? Number.NaN;
  for (const { source, pairs, m } of measured) {
    const [lo, hi] = bootstrapNextSpearman(pairs, 1000, 16);
    console.log(
      `${source.padEnd(14)} next-week pairs ${String(m.nNext).padStart(5)}  spearman ${f3(m.nextSpearman)}  (bootstrap 95% ${f3(lo)}..${f3(hi)})  vs plain accuracy ${f3(m.nextSpearman - plain)}`,
    );
  }
}

/** One line of the interval's check on the model with its student part (round 21, models/studentInterval.ts). */
function studentIntervalLine(c: StudentIntervalCheck): string {
  const bands =
    c.bands === undefined
      ? ""
      : `; held-out bands (from: sequences, answers, excess, z, raw K shift -> shift, ratio about it -> scale): ${c.bands
          .map(
            (b) =>
              `${b.from}+: ${b.sequences}, ${b.answers}, ${b.excess.toFixed(1)}, ${b.z.toFixed(2)}, ${b.rawShift.toFixed(4)} -> ${b.shift.toFixed(4)}, ${b.ratio.toFixed(4)} -> ${b.scale.toFixed(4)}${b.reason !== undefined ? ` (${b.reason})` : ""}`,
          )
          .join(" / ")}`;
  return `dispersion ratio ${c.ratioBefore.toFixed(4)} at offset 0 (scale ${c.scaleBefore.toFixed(4)}) -> ${c.ratio.toFixed(4)} with the student part (${c.sequences} sequences, ${c.withOffset} at an offset; ${c.mode}) -> scale ${c.scale.toFixed(4)}${c.reason !== undefined ? ` (${c.reason})` : ""}${bands}`;
}

/** One line of the student part's moments check (rounds 19/20, models/studentScale.ts). */
function studentScaleLine(c: StudentScaleCheck): string {
  return `${c.students} students, ${c.answers} graded answers; moments estimate of the students' spread (variance of the true excess ${c.on === "mastery" ? "of K, through the emission's slope" : "of correct answers"}) ${c.trueVariance.toFixed(6)}, the student part's ${c.partVariance.toFixed(6)}${c.partVarianceAfter !== undefined ? ` -> ${c.partVarianceAfter.toFixed(6)}` : ""}; offsets x ${c.scale.toFixed(4)}${c.reason !== undefined ? ` (${c.reason})` : ""}`;
}

/** The latent fit's small-data guard as printed next to a fit (models/latentFilter.ts LATENT_MIN_OBSERVATIONS). */
function guardNote(fit: LatentFilter["json"]["fit"]): string {
  if (fit.fallback !== undefined)
    return `; small-data guard: FALLBACK to the defaults (${fit.implausible?.join("; ")})`;
  if (fit.smallData !== undefined)
    return `; small-data guard: shrunk (prior sd ${fit.smallData.priorSd.toFixed(3)})`;
  return fit.implausible !== undefined ? `; implausible: ${fit.implausible.join("; ")}` : "";
}

/** The real log, per-student cuts (bench/realLogCuts.ts): the default real-log protocol. */
function runStudentCuts(): void {
  const o = {
    dataDir: join(DATA, "assistments17_gervet", "split"),
    cutsPerStudent: envInt("REAL_CUTS_PER_STUDENT", 20),
    epochs: envInt("REAL_EPOCHS", 4),
    seed: envInt("REAL_SEED", 1),
    // REAL_FOLDS=0,1,2,3,4: cross-fitting over user folds (user_id % 5), every user scored by models fitted
    // on the other folds' users; the default 0 = the log's own test users (rounds reallog / 7).
    folds: (process.env.REAL_FOLDS ?? "0").split(",").map((x) => Number(x)),
    onProgress: (line: string) => console.log(`[${new Date().toISOString().slice(11, 19)}] ${line}`),
    resamples: envInt("REAL_RESAMPLES", 1000),
    maxFitEvents: envInt("REAL_FIT_EVENTS", 40_000),
    ...(process.env.REAL_CACHE !== undefined ? { cacheDir: process.env.REAL_CACHE } : {}),
    // REAL_STUDENT=0: the filter without the student effect (rounds 4-6's real-log runs).
    studentEffect: process.env.REAL_STUDENT !== "0",
    ...(process.env.REAL_CANDIDATES === "1" ? { extra: CANDIDATE_SOURCES } : {}),
    latentFit: LATENT_ENV.fit,
    ...(LATENT_ENV.studentScale !== undefined ? { studentScale: LATENT_ENV.studentScale } : {}),
    ...(LATENT_ENV.studentInterval !== undefined ? { studentInterval: LATENT_ENV.studentInterval } : {}),
  };
  if (SERVED_AS_OF !== undefined && SERVED_AS_OF !== "filter")
    throw new Error(
      "SERVED_AS_OF_HALF_LIFE=labels is chosen on the proxy labels of `mastery train served`, which the real-log cuts do not fit: unset it with REAL=1 (or run REAL=0)",
    );
  if (process.env.LATENT_CENTRE !== undefined && process.env.LATENT_CENTRE !== "")
    throw new Error(
      "LATENT_CENTRE is fitted on the proxy labels of `mastery train served`, which the real-log cuts do not fit: unset it with REAL=1 (or run REAL=0)",
    );
  const r = runRealCuts(o);
  console.log(
    `\nreal log assistments17_gervet, per-student cuts: ${r.students} scored students x ${o.cutsPerStudent} cuts = ${r.cuts} cuts, ` +
      `user folds ${o.folds.join(",")}, ${o.epochs} fit epochs per fold (the other folds' attempts before each), seed ${o.seed}; ${r.seconds.toFixed(1)} s`,
  );
  for (const [i, m] of r.epochs.entries()) {
    const p = m.filter.json.params;
    console.log(
      `fold ${m.fold} epoch ${(i % o.epochs) + 1}: fit before ${new Date(Date.UTC(2020, 0, 1) + m.time * DAY_MS).toISOString().slice(0, 10)} (log day ${m.time.toFixed(1)}) on ${m.trainAttempts} train attempts ` +
        `(filter: ${m.filter.json.fit.sequences} pairs, ll/obs ${m.filter.json.fit.logLikPerObs.toFixed(4)}${guardNote(m.filter.json.fit)}; guess ${p.guess.toFixed(3)} slip ${p.slip.toFixed(3)} learn ${p.learn[0]!.toFixed(3)} half-life ${p.halfLifeDays.toFixed(0)} d; ` +
        `student sd ${m.filter.json.studentPriorSd ?? 0} (marginal likelihood: ${m.sdMarginal}), loading ${m.filter.json.studentLearnLoading ?? 0}${m.filter.json.fit.studentScaleCheck !== undefined ? `, student scale check: ${studentScaleLine(m.filter.json.fit.studentScaleCheck)}` : ""}${m.filter.json.fit.studentIntervalCheck !== undefined ? `, student interval check: ${studentIntervalLine(m.filter.json.fit.studentIntervalCheck)}` : ""}, spread ${p.forgetSpread ?? 0}; centred-logit anchor ${m.anchor.base.toFixed(3)} (sd ${m.anchor.sd.toFixed(3)}, gap-accuracy base ${m.global.base.toFixed(3)})); ${r.pairs.filter((x) => x.fold === m.fold && x.epoch === i % o.epochs).length} pairs; ${m.fitSeconds.toFixed(1)} s`,
    );
  }
  // REAL_DUMP=file: every scored pair as JSON (offline analysis: per epoch, per fold).
  if (process.env.REAL_DUMP !== undefined) writeFileSync(process.env.REAL_DUMP, JSON.stringify(r.pairs));
  printComparison(
    "measured pairs (>= 1 attempt on the skill before the cut)",
    r.pairs.filter((p) => p.before > 0),
    "accuracy_all",
    o.resamples,
    o.seed,
  );
  if (o.extra !== undefined)
    printComparison(
      "candidates against the served score, every labelled pair",
      r.pairs,
      "served",
      o.resamples,
      o.seed,
    );
  printComparison(
    "every labelled pair (plain accuracy falls back to the skill's train accuracy: accuracy_or_skill)",
    r.pairs,
    "accuracy_or_skill",
    o.resamples,
    o.seed,
  );
}

/** Percentile bootstrap 95% interval of the next-week Spearman (pairs resampled with replacement, seeded). */
function bootstrapNextSpearman(pairs: readonly ScorePair[], reps: number, seed: number): [number, number] {
  const withNext = pairs.filter((p) => p.nextWeek !== undefined);
  if (withNext.length < 5) return [Number.NaN, Number.NaN];
  const rnd = mulberry32(seed);
  const stats: number[] = [];
  for (let r = 0; r < reps; r++) {
    const x = new Float64Array(withNext.length);
    const y = new Float64Array(withNext.length);
    for (let i = 0; i < withNext.length; i++) {
      const p = withNext[Math.floor(rnd() * withNext.length)]!;
      x[i] = p.score;
      y[i] = p.nextWeek!;
    }
    const s = spearman(x, y);
    if (Number.isFinite(s)) stats.push(s);
  }
  stats.sort((a, b) => a - b);
  return [stats[Math.floor(0.025 * stats.length)]!, stats[Math.floor(0.975 * stats.length)]!];
}

if (process.argv[1]?.endsWith("validity.bench.ts")) {
  console.log(
    `latent fit options: ${JSON.stringify(LATENT_ENV.fit)}, student scale ${LATENT_ENV.studentScale ?? "default"}, student interval ${LATENT_ENV.studentInterval ?? "default"} (mastery train served ${LATENT_ENV.flags.length === 0 ? "defaults" : LATENT_ENV.flags.join(" ")}); generated settings${process.env.REAL !== "0" ? " and the real log" : ""}`,
  );
  if (process.env.REAL !== "0") {
    if (process.env.REAL_PROTOCOL === "global") {
      const work = mkdtempSync(join(tmpdir(), "valid-real-"));
      try {
        await runRealLog(work);
      } finally {
        rmSync(work, { recursive: true, force: true });
      }
    } else runStudentCuts();
  }
  for (const s of only) {
    const work = mkdtempSync(join(tmpdir(), `valid-${s.seed}-`));
    try {
      await runSetting(s, work);
    } finally {
      if (existsSync(work)) rmSync(work, { recursive: true, force: true });
    }
  }
}
