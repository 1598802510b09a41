/**
 * The rule scorer's per-pair state (models/ruleScorer.ts RuleState) as one GROUP BY over raw_events: once
 * L = the pair's last event before the as-of time is known, every decayed sum is a plain aggregate.
 * Columns are RULE_STATE_COLUMNS' names (student_key, topic_id first). Parameters: $t = as-of time
 * (microseconds; events at or after it are not read), $h = evidence_half_life_days. The weight and x
 * expressions are models/ruleScorer.ts decayWeight's and foldRuleEvents' (pow() is JavaScript's ** to the bit).
 *
 * Each pair's terms are summed in one canonical order, by event time then event id (an ordered list per pair,
 * then list_sum, which adds in list order and skips NULLs as sum() does). A plain sum() adds in the order the
 * rows arrive, which is the store's physical order: a store that received a pair's events day by day (late
 * ones last) and one that received them at once would differ in the last bits, and a daily run would not
 * equal a full one (found by the property in test/serving/ruleScoring.int.test.ts).
 *
 * `source` is raw_events or a subquery of its rows (the incremental day passes its dirty pairs' rows).
 */
export function ruleStateSql(source = "raw_events"): string {
  const sum = (term: string, types: string, where = "true") =>
    `coalesce(list_sum(list_transform(list_filter(evs, e -> e.type IN (${types}) AND ${where}), e -> ${term})), 0)`;
  return `
WITH ev AS (
  SELECT student_key, topic_id, event_id, epoch_us(ts) AS t, type, is_correct::DOUBLE AS y,
         hints_used::DOUBLE AS hints, attempts::DOUBLE AS attempts, correct_count::DOUBLE AS correct_count,
         watch_pct, score_pct
  FROM ${source}
  WHERE ts < make_timestamp($t::BIGINT)
),
last AS (
  SELECT student_key, topic_id, max(t) AS l FROM ev GROUP BY student_key, topic_id
),
w AS (
  SELECT ev.student_key, ev.topic_id, ev.event_id, ev.t, last.l, ev.type, ev.y, ev.hints, ev.attempts,
         ev.correct_count, ev.watch_pct, ev.score_pct,
         pow(2, -((last.l - ev.t) / 86400e6) / $h::DOUBLE) AS w,
         (ev.t - last.l) / 86400e6 AS x
  FROM ev JOIN last ON last.student_key = ev.student_key AND last.topic_id = ev.topic_id
),
pairs AS (
  SELECT student_key, topic_id, any_value(l) AS l,
    list({type: type, w: w, x: x, y: y, hints: hints, attempts: attempts, correct_count: correct_count,
          watch_pct: watch_pct, score_pct: score_pct} ORDER BY t, event_id) AS evs
  FROM w
  GROUP BY student_key, topic_id
)
SELECT student_key, topic_id,
  l::DOUBLE AS ref_us,
  l::DOUBLE AS last_us,
  ${sum("e.w", "'quiz_attempt'")} AS q_n,
  ${sum("e.w * e.y", "'quiz_attempt'")} AS q_correct,
  ${sum("e.w * e.hints", "'quiz_attempt'")} AS q_hints,
  ${sum("e.w * e.x", "'quiz_attempt'")} AS q_sx,
  ${sum("e.w * e.x * e.x", "'quiz_attempt'")} AS q_sxx,
  ${sum("e.w * e.x * e.y", "'quiz_attempt'")} AS q_sxy,
  ${sum("e.w * e.attempts", "'practice'")} AS p_n,
  ${sum("e.w * e.correct_count", "'practice'")} AS p_correct,
  ${sum("e.w", "'video'", "e.watch_pct IS NOT NULL")} AS v_n,
  ${sum("e.w * e.watch_pct", "'video'")} AS v_pct,
  ${sum("e.w", "'assignment'", "e.score_pct IS NOT NULL")} AS a_n,
  ${sum("e.w * e.score_pct", "'assignment'")} AS a_pct
FROM pairs`;
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
