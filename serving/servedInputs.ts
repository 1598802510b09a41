import type { PairEvidence } from "../models/servedMastery.ts";
import type { DuckStore } from "../storage/duckdb.ts";

const DAY_SECONDS = 86_400;

/**
 * The evidence behind every (student, topic) of the store as of `asOf` (issue 16): stored rule/BKT/Elo
 * scores, quiz attempts and correct answers before `asOf`, and days since the last quiz / any event.
 * Pairs with a score but no event before `asOf` get Infinity days (no direct evidence).
 */
export async function loadPairEvidence(store: DuckStore, asOf: Date): Promise<Map<string, PairEvidence>> {
  const rows = await store.all<{
    student_key: string;
    topic_id: string;
    attempts: number | null;
    correct: number | null;
    quiz_age: number | null;
    any_age: number | null;
    rule: number | null;
    bkt: number | null;
    elo: number | null;
  }>(
    `WITH ev AS (
       SELECT student_key, topic_id,
              count(*) FILTER (WHERE type = 'quiz_attempt')::INTEGER AS attempts,
              count(*) FILTER (WHERE type = 'quiz_attempt' AND is_correct)::INTEGER AS correct,
              epoch($1::TIMESTAMP) - epoch(max(ts) FILTER (WHERE type = 'quiz_attempt')) AS quiz_age,
              epoch($1::TIMESTAMP) - epoch(max(ts)) AS any_age
       FROM raw_events WHERE ts < $1::TIMESTAMP GROUP BY ALL
     ), sc AS (
       SELECT student_key, topic_id,
              max(mastery_score) FILTER (WHERE score_source = 'rule_based') AS rule,
              max(mastery_score) FILTER (WHERE score_source = 'bkt') AS bkt,
              max(mastery_score) FILTER (WHERE score_source = 'elo') AS elo
       FROM student_mastery GROUP BY ALL
     )
     SELECT * FROM ev FULL OUTER JOIN sc USING (student_key, topic_id)`,
    [asOf.toISOString()],
  );
  const out = new Map<string, PairEvidence>();
  const num = (v: number | null): number => (v === null ? Number.NaN : Number(v));
  for (const r of rows) {
    out.set(`${r.student_key}|${r.topic_id}`, {
      rule: num(r.rule),
      bkt: num(r.bkt),
      elo: num(r.elo),
      attempts: Number(r.attempts ?? 0),
      correct: Number(r.correct ?? 0),
      daysSinceQuiz: r.quiz_age === null ? Number.POSITIVE_INFINITY : Number(r.quiz_age) / DAY_SECONDS,
      daysSinceAny: r.any_age === null ? Number.POSITIVE_INFINITY : Number(r.any_age) / DAY_SECONDS,
    });
  }
  return out;
}
