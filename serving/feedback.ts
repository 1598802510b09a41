import { randomUUID } from "node:crypto";
import { type Explanation, explain } from "../models/explanation.ts";
import type { DuckStore } from "../storage/duckdb.ts";
import { DuckDBTimestampValue } from "../storage/duckdbApi.ts";
import type { MasteryStore, ScoreOverride } from "../storage/masteryStore.ts";
import { sourceRank } from "./masteryReadStore.ts";
import { DEFAULT_SOURCE_ORDER, TEACHER_OVERRIDE } from "./masteryView.ts";

export interface TeacherCorrection {
  studentKey: string;
  topicId: string;
  /** The mastery the teacher asserts, in [0, 1]. */
  mastery: number;
  reason: string;
  actor: string;
  actorRole: string;
}

export interface CorrectionResult {
  labelId: string;
  previousScore: number | null;
  previousSource: string | null;
}

const micros = (d: Date): DuckDBTimestampValue => new DuckDBTimestampValue(BigInt(d.getTime()) * 1000n);

/** Where the served scores live: this server's DuckDB file (onServerFile) or another store (PostgreSQL). */
export interface ScoreStore {
  mastery: MasteryStore;
  onServerFile: boolean;
}

/**
 * Stores a teacher correction: a row in teacher_labels (a label for training and calibration) and an
 * audit_log entry in the server's DuckDB file, and the 'teacher_override' score in student_mastery (+
 * history) of the store the scores are served from (`scores`: the same file, in one transaction with
 * the label; or PostgreSQL, written after the label and audit rows commit, so a failure there leaves an
 * audited label whose retry adds a second one, never a served override without its audit row), which
 * GET /mastery serves in place of the model's score from now on. Its explanation keeps the invariant
 * base + contributions = score: base is the score it replaces (the served model score, or the
 * override itself when there was none) and one factor, teacher_override, carries the difference.
 */
export async function recordTeacherCorrection(
  store: DuckStore,
  scores: ScoreStore,
  c: TeacherCorrection,
  now: Date = new Date(),
): Promise<CorrectionResult> {
  const prev = (await scores.mastery.forStudent(c.studentKey)).filter((r) => r.topic_id === c.topicId);
  const rank = (s: string) => sourceRank(s, DEFAULT_SOURCE_ORDER, TEACHER_OVERRIDE);
  const served = prev.sort((a, b) => rank(a.score_source) - rank(b.score_source))[0];
  const base = served?.mastery_score ?? c.mastery;
  const explanation: Explanation = explain(
    base,
    [{ name: TEACHER_OVERRIDE, value: c.mastery, contribution: c.mastery - base }],
    c.mastery,
  );
  const labelId = randomUUID();
  const ts = micros(now);
  const override: ScoreOverride = {
    studentKey: c.studentKey,
    topicId: c.topicId,
    source: TEACHER_OVERRIDE,
    score: c.mastery,
    modelVersion: `teacher:${labelId}`,
    atUs: now.getTime() * 1000,
    explanation: JSON.stringify(explanation),
  };
  await store.transaction(async () => {
    await store.run(`INSERT INTO teacher_labels VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`, [
      labelId,
      c.studentKey,
      c.topicId,
      c.mastery,
      c.reason,
      c.actor,
      served?.mastery_score ?? null,
      served?.score_source ?? null,
      ts,
    ]);
    await store.run(`INSERT INTO audit_log VALUES ($1, $2, $3, 'feedback', $4, $5, $6)`, [
      ts,
      c.actorRole,
      c.actor,
      c.studentKey,
      c.topicId,
      JSON.stringify({
        labelId,
        mastery: c.mastery,
        reason: c.reason,
        previous: served ? { mastery_score: served.mastery_score, score_source: served.score_source } : null,
      }),
    ]);
    if (scores.onServerFile) await scores.mastery.writeOverride(override);
  });
  if (!scores.onServerFile) await scores.mastery.writeOverride(override);
  return {
    labelId,
    previousScore: served?.mastery_score ?? null,
    previousSource: served?.score_source ?? null,
  };
}
