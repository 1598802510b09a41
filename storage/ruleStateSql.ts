/**
 * The rule scorer's per-pair state (models/ruleScorer.ts RuleState) as one GROUP BY over raw_events: once
 * L = the pair's last event before the as-of time is known, every decayed sum is a plain aggregate.
 * Columns are RULE_STATE_COLUMNS' names (student_key, topic_id first). Parameters: $t = as-of time
 * (microseconds; events at or after it are not read), $h = evidence_half_life_days. The weight and x
 * expressions are models/ruleScorer.ts decayWeight's and foldRuleEvents' (pow() is JavaScript's ** to the bit).
 *
 * `source` is raw_events or a subquery of its rows (the incremental day passes its dirty pairs' rows).
 */
export function ruleStateSql(source = "raw_events"): string {
  return `
WITH ev AS (
  SELECT student_key, topic_id, epoch_us(ts) AS t, type, is_correct::DOUBLE AS y, hints_used::DOUBLE AS hints,
         attempts::DOUBLE AS attempts, correct_count::DOUBLE AS correct_count, watch_pct, score_pct
  FROM ${source}
  WHERE ts < make_timestamp($t::BIGINT)
),
last AS (
  SELECT student_key, topic_id, max(t) AS l FROM ev GROUP BY student_key, topic_id
),
w AS (
  SELECT ev.student_key, ev.topic_id, last.l, ev.type, ev.y, ev.hints, ev.attempts, ev.correct_count,
         ev.watch_pct, ev.score_pct,
         pow(2, -((last.l - ev.t) / 86400e6) / $h::DOUBLE) AS w,
         (ev.t - last.l) / 86400e6 AS x
  FROM ev JOIN last ON last.student_key = ev.student_key AND last.topic_id = ev.topic_id
)
SELECT student_key, topic_id,
  any_value(l)::DOUBLE AS ref_us,
  any_value(l)::DOUBLE AS last_us,
  coalesce(sum(w) FILTER (WHERE type = 'quiz_attempt'), 0) AS q_n,
  coalesce(sum(w * y) FILTER (WHERE type = 'quiz_attempt'), 0) AS q_correct,
  coalesce(sum(w * hints) FILTER (WHERE type = 'quiz_attempt'), 0) AS q_hints,
  coalesce(sum(w * x) FILTER (WHERE type = 'quiz_attempt'), 0) AS q_sx,
  coalesce(sum(w * x * x) FILTER (WHERE type = 'quiz_attempt'), 0) AS q_sxx,
  coalesce(sum(w * x * y) FILTER (WHERE type = 'quiz_attempt'), 0) AS q_sxy,
  coalesce(sum(w * attempts) FILTER (WHERE type = 'practice'), 0) AS p_n,
  coalesce(sum(w * correct_count) FILTER (WHERE type = 'practice'), 0) AS p_correct,
  coalesce(sum(w) FILTER (WHERE type = 'video' AND watch_pct IS NOT NULL), 0) AS v_n,
  coalesce(sum(w * watch_pct) FILTER (WHERE type = 'video'), 0) AS v_pct,
  coalesce(sum(w) FILTER (WHERE type = 'assignment' AND score_pct IS NOT NULL), 0) AS a_n,
  coalesce(sum(w * score_pct) FILTER (WHERE type = 'assignment'), 0) AS a_pct
FROM w
GROUP BY student_key, topic_id`;
}

/**
 * The pairs a day must refold (temp.rule_dirty): every pair with an event before $t1 that was ingested
 * after the previous run's watermark $wm (late or new) or whose time is at or after the previous as-of
 * $t0 (it was not in the previous run's states). Every other pair's state, hence its stored row, is
 * unchanged: only time passed, which read time applies.
 */
export const RULE_DIRTY_SQL = `
CREATE OR REPLACE TEMP TABLE rule_dirty AS
SELECT DISTINCT student_key, topic_id FROM raw_events
WHERE ts < make_timestamp($t1::BIGINT)
  AND (epoch_us(ingested_at) > $wm::BIGINT OR ts >= make_timestamp($t0::BIGINT))`;
