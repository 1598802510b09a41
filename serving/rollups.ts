import type { DuckStore } from "../storage/duckdb.ts";
import { readTimeScoreSql } from "./readTimeScoreSql.ts";

/**
 * Chapter, subject and course mastery per student, computed (views), never stored by hand.
 *
 * Rollup of level L for a student and score_source = the weighted mean of that student's topic
 * scores over the topics of L the student has a score for:
 *   mastery = Σ w_t · score_t / Σ w_t,  w_t = content_length of topic t when > 0, otherwise the
 *   mean positive content_length of all topics (1 when no topic has one).
 * So longer topics count more, and a topic without a length counts as an average one rather than
 * dropping out or dominating. Unscored topics are left out (not counted as 0); the views report
 * coverage (topics_scored / topics_total) so a reader can tell a strong score on one topic from a
 * strong score on all of them. Topics without a course_id are not in mastery_by_course. Rule scores are
 * taken as of the latest rule run (readTimeScoreSql): a stored row holds its pair's decayed evidence as of
 * its own run, which may be older.
 */
export const ROLLUP_LEVELS = ["chapter", "subject", "course"] as const;
export type RollupLevel = (typeof ROLLUP_LEVELS)[number];

const VIEW: Record<RollupLevel, string> = {
  chapter: "mastery_by_chapter",
  subject: "mastery_by_subject",
  course: "mastery_by_course",
};

function rollupViewSql(level: RollupLevel): string {
  const key = `${level}_id`;
  return `CREATE OR REPLACE VIEW ${VIEW[level]} AS
WITH totals AS (
  SELECT ${key}, count(*) AS topics_total FROM topic_rollup_weights WHERE ${key} IS NOT NULL GROUP BY ${key}
), rt AS (
  SELECT epoch_us(max(as_of)) AS at_us FROM student_mastery WHERE score_source = 'rule_based'
)
-- Rule scores as of the latest rule run (a run rewrites only the pairs with new or late events; the others'
-- evidence is decayed to that time by readTimeScoreSql), as GET /mastery shows them as of a request time.
SELECT m.student_key, m.score_source, w.${key},
       sum(w.weight * ${readTimeScoreSql("m", "rt.at_us")}) / sum(w.weight) AS mastery_score,
       CAST(count(*) AS INTEGER) AS topics_scored,
       CAST(any_value(t.topics_total) AS INTEGER) AS topics_total,
       max(m.as_of) AS as_of
FROM student_mastery m
JOIN topic_rollup_weights w ON w.topic_id = m.topic_id
JOIN totals t ON t.${key} = w.${key}
CROSS JOIN rt
WHERE w.${key} IS NOT NULL
GROUP BY m.student_key, m.score_source, w.${key}`;
}

const WEIGHTS_VIEW = `CREATE OR REPLACE VIEW topic_rollup_weights AS
SELECT topic_id, chapter_id, subject_id, course_id,
       CASE WHEN content_length > 0 THEN content_length
            ELSE coalesce((SELECT avg(content_length) FROM topics WHERE content_length > 0), 1) END AS weight
FROM topics`;

/** Creates (or replaces) topic_rollup_weights and the mastery_by_{chapter,subject,course} views. */
export async function createRollupViews(store: DuckStore): Promise<void> {
  await store.run(WEIGHTS_VIEW);
  for (const level of ROLLUP_LEVELS) await store.run(rollupViewSql(level));
}

export interface RollupRow {
  studentKey: string;
  scoreSource: string;
  id: string;
  masteryScore: number;
  topicsScored: number;
  topicsTotal: number;
}

/** Rollup rows of one level, optionally for one student and/or one score source, ordered by student and id. */
export async function rollupMastery(
  store: DuckStore,
  level: RollupLevel,
  filter: { studentKey?: string; scoreSource?: string } = {},
): Promise<RollupRow[]> {
  await createRollupViews(store);
  const rows = await store.all<{
    student_key: string;
    score_source: string;
    id: string;
    mastery_score: number;
    topics_scored: number;
    topics_total: number;
  }>(
    `SELECT student_key, score_source, ${level}_id AS id, mastery_score, topics_scored, topics_total
     FROM ${VIEW[level]}
     WHERE ($student::VARCHAR IS NULL OR student_key = $student::VARCHAR)
       AND ($source::VARCHAR IS NULL OR score_source = $source::VARCHAR)
     ORDER BY student_key, score_source, id`,
    { student: filter.studentKey ?? null, source: filter.scoreSource ?? null },
  );
  return rows.map((r) => ({
    studentKey: r.student_key,
    scoreSource: r.score_source,
    id: r.id,
    masteryScore: r.mastery_score,
    topicsScored: r.topics_scored,
    topicsTotal: r.topics_total,
  }));
}
