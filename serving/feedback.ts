import { randomUUID } from "node:crypto";
import { type Explanation, explain } from "../models/explanation.ts";
import type { DuckStore } from "../storage/duckdb.ts";
import { DuckDBTimestampValue } from "../storage/duckdbApi.ts";
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

/**
 * Stores a teacher correction: a row in teacher_labels (a label for training and calibration), an
 * audit_log entry, and the 'teacher_override' score in student_mastery (+ history), which GET
 * /mastery serves in place of the model's score from now on. Its explanation keeps the invariant
 * base + contributions = score: base is the score it replaces (the served model score, or the
 * override itself when there was none) and one factor, teacher_override, carries the difference.
 */
export async function recordTeacherCorrection(
  store: DuckStore,
  c: TeacherCorrection,
  now: Date = new Date(),
): Promise<CorrectionResult> {
  const prev = await store.all<{ mastery_score: number; score_source: string }>(
    "SELECT mastery_score, score_source FROM student_mastery WHERE student_key = $1 AND topic_id = $2",
    [c.studentKey, c.topicId],
  );
  const rank = (s: string) => {
    const i = DEFAULT_SOURCE_ORDER.indexOf(s);
    return s === TEACHER_OVERRIDE ? -1 : i < 0 ? DEFAULT_SOURCE_ORDER.length : i;
  };
  const served = prev.sort((a, b) => rank(a.score_source) - rank(b.score_source))[0];
  const base = served?.mastery_score ?? c.mastery;
  const explanation: Explanation = explain(
    base,
    [{ name: TEACHER_OVERRIDE, value: c.mastery, contribution: c.mastery - base }],
    c.mastery,
  );
  const labelId = randomUUID();
  const ts = micros(now);
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
      JSON.stringify({ labelId, mastery: c.mastery, reason: c.reason, previous: served ?? null }),
    ]);
    const exp = JSON.stringify(explanation);
    await store.run(
      `INSERT OR REPLACE INTO student_mastery VALUES ($1, $2, $3, '${TEACHER_OVERRIDE}', $4, $5, $6, $5)`,
      [c.studentKey, c.topicId, c.mastery, `teacher:${labelId}`, ts, exp],
    );
    await store.run(
      `INSERT INTO student_mastery_history VALUES ($1, $2, $3, '${TEACHER_OVERRIDE}', $4, $5, $6, $5)`,
      [c.studentKey, c.topicId, c.mastery, `teacher:${labelId}`, ts, exp],
    );
  });
  return {
    labelId,
    previousScore: served?.mastery_score ?? null,
    previousSource: served?.score_source ?? null,
  };
}
