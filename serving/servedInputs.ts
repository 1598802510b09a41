import { createHash } from "node:crypto";
import type { PairAnswers } from "../models/anchorEase.ts";
import { ruleScoreOnlyAt } from "../models/ruleScorer.ts";
import type { DecayTransition } from "../models/servedDecay.ts";
import type { PairEvidence } from "../models/servedMastery.ts";
import type { DuckStore } from "../storage/duckdb.ts";
import {
  RULE_AS_OF_US,
  takeExplanationNumbers,
  type WithExplanationNumberColumns,
} from "../storage/explanationNumbers.ts";
import { RULE_BLOCK_COLUMNS } from "../storage/schema.ts";
import { ruleRowAt } from "./masteryView.ts";

const DAY_SECONDS = 86_400;

/**
 * The evidence behind every (student, topic) of the store as of `asOf` (issue 16): stored rule/BKT/Elo
 * scores (the rule score as of `asOf`, serving/masteryView.ts ruleRowAt), quiz attempts and correct answers before `asOf`, days since the last quiz / any event, the other
 * kinds' evidence (practice attempts/correct, assignments and their mean score, videos, chatbot requests /
 * resolved), quiz answers weighted by 2^(-age / 7 d) and every event weighted by 2^(-age / 3 d) and
 * 2^(-age / 14 d) (decayed exposure).
 * Pairs with a score but no event before `asOf` get Infinity days (no direct evidence).
 */
export async function loadPairEvidence(store: DuckStore, asOf: Date): Promise<Map<string, PairEvidence>> {
  const rows = await store.all<
    {
      student_key: string;
      topic_id: string;
      attempts: number | null;
      correct: number | null;
      quiz_age: number | null;
      any_age: number | null;
      p_attempts: number | null;
      p_correct: number | null;
      assignments: number | null;
      a_mean: number | null;
      videos: number | null;
      c_help: number | null;
      c_resolved: number | null;
      r_attempts: number | null;
      r_correct: number | null;
      x3: number | null;
      x14: number | null;
      rule: number | null;
      rule_explanation: string | null;
      rule_as_of: Date | null;
      bkt: number | null;
      elo: number | null;
    } & WithExplanationNumberColumns
  >(
    `WITH e AS (
       SELECT *, (epoch($1::TIMESTAMP) - epoch(ts)) / ${DAY_SECONDS} AS age FROM raw_events WHERE ts < $1::TIMESTAMP
     ), ev AS (
       SELECT student_key, topic_id,
              count(*) FILTER (WHERE type = 'quiz_attempt')::INTEGER AS attempts,
              count(*) FILTER (WHERE type = 'quiz_attempt' AND is_correct)::INTEGER AS correct,
              epoch($1::TIMESTAMP) - epoch(max(ts) FILTER (WHERE type = 'quiz_attempt')) AS quiz_age,
              epoch($1::TIMESTAMP) - epoch(max(ts)) AS any_age,
              sum(attempts) FILTER (WHERE type = 'practice')::DOUBLE AS p_attempts,
              sum(correct_count) FILTER (WHERE type = 'practice')::DOUBLE AS p_correct,
              count(*) FILTER (WHERE type = 'assignment' AND score_pct IS NOT NULL)::INTEGER AS assignments,
              avg(score_pct / 100) FILTER (WHERE type = 'assignment') AS a_mean,
              count(*) FILTER (WHERE type = 'video')::INTEGER AS videos,
              sum(help_requests) FILTER (WHERE type = 'chatbot')::DOUBLE AS c_help,
              sum(resolved_count) FILTER (WHERE type = 'chatbot')::DOUBLE AS c_resolved,
              sum(pow(2, -age / 7)) FILTER (WHERE type = 'quiz_attempt') AS r_attempts,
              sum(pow(2, -age / 7)) FILTER (WHERE type = 'quiz_attempt' AND is_correct) AS r_correct,
              sum(pow(2, -age / 3)) AS x3,
              sum(pow(2, -age / 14)) AS x14
       FROM e GROUP BY ALL
     ), sc AS (
       SELECT student_key, topic_id,
              max(mastery_score) FILTER (WHERE score_source = 'rule_based') AS rule,
              any_value(explanation) FILTER (WHERE score_source = 'rule_based') AS rule_explanation,
              any_value(as_of) FILTER (WHERE score_source = 'rule_based') AS rule_as_of,
              ${RULE_BLOCK_COLUMNS.map((c) => `any_value(${c}) FILTER (WHERE score_source = 'rule_based') AS ${c}`).join(",\n              ")},
              any_value(epoch_us(as_of)::DOUBLE) FILTER (WHERE score_source = 'rule_based') AS ${RULE_AS_OF_US},
              max(mastery_score) FILTER (WHERE score_source = 'bkt') AS bkt,
              max(mastery_score) FILTER (WHERE score_source = 'elo') AS elo
       FROM student_mastery GROUP BY ALL
     )
     SELECT * FROM ev FULL OUTER JOIN sc USING (student_key, topic_id)`,
    [asOf.toISOString()],
  );
  const out = new Map<string, PairEvidence>();
  const num = (v: number | null): number => (v === null ? Number.NaN : Number(v));
  const n0 = (v: number | null): number => (v === null ? 0 : Number(v));
  // A stored rule row holds decayed evidence; the stack's input is the rule score as of `asOf` (read time):
  // from the block's columns (the batch's rows), else from the block in its text (ruleRowAt parses it).
  const asOfUs = asOf.getTime() * 1000;
  const ruleAt = (r: (typeof rows)[number]): number => {
    const n = takeExplanationNumbers(r);
    if (r.rule !== null && n !== null && "rule" in n) return ruleScoreOnlyAt(n.rule, Number(r.rule), asOfUs);
    return r.rule === null ||
      r.rule_explanation === null ||
      r.rule_explanation === "" ||
      r.rule_as_of === null
      ? num(r.rule)
      : ruleRowAt(
          {
            score_source: "rule_based",
            mastery_score: r.rule,
            explanation: r.rule_explanation,
            as_of: r.rule_as_of,
          },
          asOf,
        ).mastery_score;
  };
  for (const r of rows) {
    out.set(`${r.student_key}|${r.topic_id}`, {
      topic: r.topic_id,
      rule: ruleAt(r),
      bkt: num(r.bkt),
      elo: num(r.elo),
      attempts: Number(r.attempts ?? 0),
      correct: Number(r.correct ?? 0),
      daysSinceQuiz: r.quiz_age === null ? Number.POSITIVE_INFINITY : Number(r.quiz_age) / DAY_SECONDS,
      daysSinceAny: r.any_age === null ? Number.POSITIVE_INFINITY : Number(r.any_age) / DAY_SECONDS,
      practiceAttempts: n0(r.p_attempts),
      practiceCorrect: n0(r.p_correct),
      assignments: n0(r.assignments),
      assignmentMean: num(r.a_mean),
      videos: n0(r.videos),
      chatRequests: n0(r.c_help),
      chatResolved: n0(r.c_resolved),
      recentAttempts: n0(r.r_attempts),
      recentCorrect: n0(r.r_correct),
      exposure3d: n0(r.x3),
      exposure14d: n0(r.x14),
    });
  }
  return out;
}

/**
 * Every quiz attempt before `before` that follows an earlier attempt of the same (student, topic) by at least
 * `minGapDays`: the gap, the pair's smoothed accuracy before it and its outcome (the data of the decay fit,
 * models/servedDecay.ts). Copies of one event_id count once.
 */
export async function loadDecayTransitions(
  store: DuckStore,
  before: Date,
  minGapDays = 1,
): Promise<DecayTransition[]> {
  const rows = await store.all<{ topic_id: string; gap: number; prev_acc: number; y: number }>(
    `WITH q AS (
       SELECT DISTINCT ON (event_id, student_key, topic_id) student_key, topic_id, ts,
              CASE WHEN is_correct THEN 1 ELSE 0 END AS y
       FROM raw_events WHERE type = 'quiz_attempt' AND is_correct IS NOT NULL AND ts < $1::TIMESTAMP
       ORDER BY event_id, student_key, topic_id, ts
     ), w AS (
       SELECT topic_id, y,
              (epoch(ts) - epoch(lag(ts) OVER p)) / ${DAY_SECONDS} AS gap,
              (coalesce(sum(y) OVER (p ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) + 1.0)
                / (count(*) OVER (p ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) + 2.0) AS prev_acc
       FROM q WINDOW p AS (PARTITION BY student_key, topic_id ORDER BY ts)
     )
     SELECT topic_id, gap, prev_acc, y FROM w WHERE gap >= $2`,
    [before.toISOString(), minGapDays],
  );
  return rows.map((r) => ({
    topic: r.topic_id,
    gapDays: Number(r.gap),
    prevAcc: Number(r.prev_acc),
    y: Number(r.y),
  }));
}

/**
 * Every (student, topic) pair's first and last quiz answer before `before` (models/anchorEase.ts), with the
 * student's half (first byte of a sha256 of the pseudonymous key, parity). Ties in time break on event_id.
 */
export async function loadPairAnswers(store: DuckStore, before: Date): Promise<PairAnswers[]> {
  const rows = await store.all<{
    student_key: string;
    topic_id: string;
    n: number;
    first: boolean;
    last: boolean;
  }>(
    `SELECT student_key, topic_id, count(*)::INTEGER AS n,
            arg_min(is_correct, strftime(ts, '%Y-%m-%d %H:%M:%S.%f') || event_id) AS first,
            arg_max(is_correct, strftime(ts, '%Y-%m-%d %H:%M:%S.%f') || event_id) AS last
     FROM raw_events WHERE type = 'quiz_attempt' AND is_correct IS NOT NULL AND ts < $1::TIMESTAMP
     GROUP BY student_key, topic_id`,
    [before.toISOString()],
  );
  const halves = new Map<string, 0 | 1>();
  return rows.map((r) => {
    let half = halves.get(r.student_key);
    if (half === undefined) {
      half = (createHash("sha256").update(r.student_key).digest()[0]! & 1) as 0 | 1;
      halves.set(r.student_key, half);
    }
    return {
      topic: r.topic_id,
      half,
      first: r.first ? 1 : 0,
      last: r.n >= 2 ? (r.last ? 1 : 0) : null,
    };
  });
}
