/**
 * Live performance of served scores as labels arrive.
 *
 * Label of a served score (a student_mastery_history row for student s, topic t, as of T): the
 * correctness of s's NEXT quiz answer on t after T, if it comes within horizonDays. So every quiz
 * answer is paired with the score that was current just before it (DuckDB ASOF JOIN), i.e. the
 * online next-response prediction the models are trained for. Experiment arms: every quiz answer
 * of a student (any topic: exposures carry no topic) within horizonDays after the student's latest
 * exposure is labelled against that exposure's score and arm. Teacher corrections (teacher_labels, when the table exists): label = mastery >= 0.5,
 * paired with the last score of that (student, topic) before the correction.
 *
 * Metrics per model_version (and score_source), per experiment arm, over the window of label
 * times [from, to): AUC, log-loss, ECE (models/metrics.ts), plus a per-day series.
 */
import { binaryMetrics } from "../models/metrics.ts";
import type { DuckStore } from "../storage/duckdb.ts";
import type { DriftConfig } from "./config.ts";
import { sqlTimestamp, type TimeWindow } from "./driftMonitor.ts";

export interface LiveMetrics {
  n: number;
  auc: number;
  logloss: number;
  ece: number;
  positiveRate: number;
}

export interface VersionPerformance extends LiveMetrics {
  modelVersion: string;
  scoreSource: string;
  labelSource: "next_answer" | "teacher";
  daily: ({ day: string } & LiveMetrics)[];
}

export interface ArmPerformance extends LiveMetrics {
  experimentId: string;
  arm: string;
  model: string;
}

export interface LivePerformance {
  window: { from: string; to: string };
  horizonDays: number;
  versions: VersionPerformance[];
  arms: ArmPerformance[];
}

function metricsOf(y: Float64Array, p: Float64Array): LiveMetrics {
  if (y.length === 0)
    return { n: 0, auc: Number.NaN, logloss: Number.NaN, ece: Number.NaN, positiveRate: Number.NaN };
  let pos = 0;
  for (const v of y) pos += v;
  const m = binaryMetrics(y, p);
  return { n: y.length, auc: m.auc, logloss: m.logloss, ece: m.ece, positiveRate: pos / y.length };
}

interface Pair {
  key: string;
  day: string;
  y: number;
  p: number;
}

function group<P extends Pair>(pairs: readonly P[]): Map<string, P[]> {
  const m = new Map<string, P[]>();
  for (const x of pairs) {
    let l = m.get(x.key);
    if (l === undefined) {
      l = [];
      m.set(x.key, l);
    }
    l.push(x);
  }
  return m;
}

function metricsOfPairs(pairs: readonly Pair[]): LiveMetrics {
  return metricsOf(
    Float64Array.from(pairs, (x) => x.y),
    Float64Array.from(pairs, (x) => x.p),
  );
}

const NEXT_ANSWER_SQL = `
  SELECT h.model_version, h.score_source, h.mastery_score AS p, CAST(q.is_correct AS INTEGER) AS y,
         strftime(q.ts, '%Y-%m-%d') AS day
  FROM (SELECT student_key, topic_id, ts, is_correct FROM raw_events
        WHERE type = 'quiz_attempt' AND is_correct IS NOT NULL
          AND ts >= CAST($from AS TIMESTAMP) AND ts < CAST($to AS TIMESTAMP)) q
  ASOF JOIN student_mastery_history h
    ON q.student_key = h.student_key AND q.topic_id = h.topic_id AND q.ts > h.as_of
  WHERE q.ts <= h.as_of + to_days(CAST($horizon AS INTEGER))`;

const TEACHER_SQL = `
  SELECT h.model_version, h.score_source, h.mastery_score AS p, CAST(t.mastery >= 0.5 AS INTEGER) AS y,
         strftime(t.created_at, '%Y-%m-%d') AS day
  FROM (SELECT * FROM teacher_labels
        WHERE created_at >= CAST($from AS TIMESTAMP) AND created_at < CAST($to AS TIMESTAMP)) t
  ASOF JOIN student_mastery_history h
    ON t.student_key = h.student_key AND t.topic_id = h.topic_id AND t.created_at >= h.as_of`;

const ARM_SQL = `
  SELECT e.experiment_id, e.arm, e.model_name || '@' || e.model_version AS model, e.score AS p,
         CAST(q.is_correct AS INTEGER) AS y
  FROM (SELECT student_key, ts, is_correct FROM raw_events
        WHERE type = 'quiz_attempt' AND is_correct IS NOT NULL
          AND ts >= CAST($from AS TIMESTAMP) AND ts < CAST($to AS TIMESTAMP)) q
  ASOF JOIN experiment_exposures e ON q.student_key = e.student_key AND q.ts > e.served_at
  WHERE q.ts <= e.served_at + to_days(CAST($horizon AS INTEGER))`;

/** Live metrics over label times in `window`. Tables that do not exist contribute nothing. */
export async function livePerformance(
  store: DuckStore,
  window: TimeWindow,
  horizonDays: number,
): Promise<LivePerformance> {
  const tables = new Set(await store.tableNames());
  const params = { from: sqlTimestamp(window.from), to: sqlTimestamp(window.to), horizon: horizonDays };
  const versions: VersionPerformance[] = [];
  const sources: ["next_answer" | "teacher", string, boolean][] = [
    ["next_answer", NEXT_ANSWER_SQL, tables.has("raw_events") && tables.has("student_mastery_history")],
    ["teacher", TEACHER_SQL, tables.has("teacher_labels") && tables.has("student_mastery_history")],
  ];
  for (const [labelSource, sql, ok] of sources) {
    if (!ok) continue;
    const { horizon: _h, ...noHorizon } = params;
    const rows = await store.all(sql, labelSource === "teacher" ? noHorizon : params);
    const pairs: Pair[] = rows.map((r) => ({
      key: `${r.model_version}\u0000${r.score_source}`,
      day: String(r.day),
      y: Number(r.y),
      p: Number(r.p),
    }));
    for (const [key, list] of [...group(pairs)].sort((a, b) => a[0].localeCompare(b[0]))) {
      const [modelVersion, scoreSource] = key.split("\u0000") as [string, string];
      const byDay = new Map<string, Pair[]>();
      for (const x of list) byDay.set(x.day, [...(byDay.get(x.day) ?? []), x]);
      versions.push({
        modelVersion,
        scoreSource,
        labelSource,
        ...metricsOfPairs(list),
        daily: [...byDay]
          .sort((a, b) => a[0].localeCompare(b[0]))
          .map(([day, l]) => ({ day, ...metricsOfPairs(l) })),
      });
    }
  }
  const arms: ArmPerformance[] = [];
  if (tables.has("experiment_exposures") && tables.has("raw_events")) {
    const rows = await store.all(ARM_SQL, params);
    const pairs: (Pair & { model: string })[] = rows.map((r) => ({
      key: `${r.experiment_id}\u0000${r.arm}`,
      day: "",
      y: Number(r.y),
      p: Number(r.p),
      model: String(r.model),
    }));
    for (const [key, list] of [...group(pairs)].sort((a, b) => a[0].localeCompare(b[0]))) {
      const [experimentId, arm] = key.split("\u0000") as [string, string];
      const models = [...new Set(list.map((x) => x.model))].sort();
      arms.push({ experimentId, arm, model: models.join(", "), ...metricsOfPairs(list) });
    }
  }
  return {
    window: { from: window.from.toISOString(), to: window.to.toISOString() },
    horizonDays,
    versions,
    arms,
  };
}

export interface DecayVerdict {
  modelVersion: string;
  scoreSource: string;
  decayed: boolean;
  /** Why (or why no verdict: too few labels). */
  reasons: string[];
  current: LiveMetrics;
  baseline: LiveMetrics | null;
}

/**
 * Performance decay of each next-answer model version: the current window against the previous
 * window of the same length (same version), with the thresholds of config.performance. A version
 * with fewer than minLabels labels in either window gets no verdict (decayed = false, reason says so).
 */
export function decayVerdicts(
  current: LivePerformance,
  previous: LivePerformance,
  cfg: DriftConfig["performance"],
): DecayVerdict[] {
  const out: DecayVerdict[] = [];
  for (const v of current.versions) {
    if (v.labelSource !== "next_answer") continue;
    const base =
      previous.versions.find(
        (b) =>
          b.modelVersion === v.modelVersion &&
          b.scoreSource === v.scoreSource &&
          b.labelSource === "next_answer",
      ) ?? null;
    const reasons: string[] = [];
    let decayed = false;
    if (v.n < cfg.minLabels) {
      reasons.push(`only ${v.n} labels in the window (< ${cfg.minLabels}); no verdict`);
    } else {
      if (v.ece > cfg.maxEce) {
        decayed = true;
        reasons.push(`ECE ${v.ece.toFixed(4)} > ${cfg.maxEce}`);
      }
      if (base !== null && base.n >= cfg.minLabels) {
        if (base.auc - v.auc > cfg.maxAucDrop) {
          decayed = true;
          reasons.push(`AUC fell ${base.auc.toFixed(4)} -> ${v.auc.toFixed(4)} (> ${cfg.maxAucDrop})`);
        }
        if (v.logloss - base.logloss > cfg.maxLoglossIncrease) {
          decayed = true;
          reasons.push(
            `log-loss rose ${base.logloss.toFixed(4)} -> ${v.logloss.toFixed(4)} (> ${cfg.maxLoglossIncrease})`,
          );
        }
      } else reasons.push("no baseline window with enough labels; only the ECE bound applies");
    }
    out.push({
      modelVersion: v.modelVersion,
      scoreSource: v.scoreSource,
      decayed,
      reasons,
      current: v,
      baseline: base,
    });
  }
  return out;
}
