/**
 * The rule scorer's per-pair state (models/ruleScorer.ts RuleState) as one GROUP BY over raw_events: once
 * L = the pair's last event before the as-of time is known, every decayed sum is a plain aggregate.
 * Columns are RULE_STATE_COLUMNS' names (student_key, topic_id first). Parameters: $t = as-of time
 * (microseconds; events at or after it are not read), $h = evidence_half_life_days. The weight and x
 * expressions are models/ruleScorer.ts decayWeight's and foldRuleEvents' (pow() is JavaScript's ** to the bit).
 *
 * Each pair's sums are exact fixed-point sums, so they do not depend on the order rows arrive in (the store's
 * physical order and DuckDB's threads): a plain sum() adds in that order, so a store that received a pair's
 * events day by day (late ones last) and one that received them at once would differ in the last bits, and a
 * daily run would not equal a full one (found by the property in test/serving/ruleScoring.int.test.ts). Each
 * term v of a column is scaled by 2^s, s = 96 - ceil(log2 M) with M the largest |v| of that pair and column
 * (an order-free max), and rounded to a HUGEINT; the HUGEINT sum is exact, and is scaled back by 2^-s. So
 * the terms keep 96 bits relative to the largest one (a double keeps 53), and a pair of up to 2^30 events
 * cannot overflow. 2^s is applied in two halves (as 2^a 2^b), as s runs from about -1000 to 1170. An ordered
 * list per pair summed in (t, event_id) order did the same at 12x the CPU of this GROUP BY
 * (docs/benchmarks.md "The stream keeps rule state (rule14)").
 *
 * `source` is raw_events or a subquery of its rows (the incremental day passes its dirty pairs' rows).
 */
export function ruleStateSql(source = "raw_events"): string {
  const cols = RULE_SUM_TERMS.map(([c]) => c);
  const scale = (c: string) => `coalesce(96 - ceil(log2(nullif(m.m_${c}, 0))), 0)`;
  return `
WITH ev AS (
  SELECT student_key, topic_id, epoch_us(ts) AS t, type, is_correct::DOUBLE AS y,
         hints_used::DOUBLE AS hints, attempts::DOUBLE AS attempts, correct_count::DOUBLE AS correct_count,
         watch_pct, score_pct
  FROM ${source}
  WHERE ts < make_timestamp($t::BIGINT)
),
last AS (
  SELECT student_key, topic_id, max(t) AS l FROM ev GROUP BY student_key, topic_id
),
w AS (
  SELECT ev.*, last.l,
         pow(2, -((last.l - ev.t) / 86400e6) / $h::DOUBLE) AS w,
         (ev.t - last.l) / 86400e6 AS x
  FROM ev JOIN last ON last.student_key = ev.student_key AND last.topic_id = ev.topic_id
),
terms AS (
  SELECT student_key, topic_id, l,
    ${RULE_SUM_TERMS.map(([c, term, where]) => `CASE WHEN ${where} THEN ${term} END AS v_${c}`).join(",\n    ")}
  FROM w
),
m AS (
  SELECT student_key, topic_id, ${cols.map((c) => `max(abs(v_${c})) AS m_${c}`).join(", ")}
  FROM terms GROUP BY student_key, topic_id
),
scaled AS (
  SELECT terms.*, ${cols.map((c) => `floor(${scale(c)} / 2) AS a_${c}, ${scale(c)} - floor(${scale(c)} / 2) AS b_${c}`).join(",\n    ")}
  FROM terms JOIN m ON m.student_key = terms.student_key AND m.topic_id = terms.topic_id
)
SELECT student_key, topic_id,
  any_value(l)::DOUBLE AS ref_us,
  any_value(l)::DOUBLE AS last_us,
  ${cols
    .map(
      (c) =>
        `coalesce(sum((v_${c} * pow(2, a_${c}) * pow(2, b_${c}))::HUGEINT)::DOUBLE * pow(2, -any_value(a_${c})) * pow(2, -any_value(b_${c})), 0) AS ${c}`,
    )
    .join(",\n  ")}
FROM scaled
GROUP BY student_key, topic_id`;
}

/**
 * Each summed column of RuleState (RULE_STATE_COLUMNS after ref_us, last_us): its term and the rows it sums
 * (a NULL term, e.g. a missing is_correct, adds nothing, as in foldRuleEvents).
 */
const RULE_SUM_TERMS: readonly (readonly [string, string, string])[] = [
  ["q_n", "w", "type = 'quiz_attempt'"],
  ["q_correct", "w * y", "type = 'quiz_attempt'"],
  ["q_hints", "w * hints", "type = 'quiz_attempt'"],
  ["q_sx", "w * x", "type = 'quiz_attempt'"],
  ["q_sxx", "w * x * x", "type = 'quiz_attempt'"],
  ["q_sxy", "w * x * y", "type = 'quiz_attempt'"],
  ["p_n", "w * attempts", "type = 'practice'"],
  ["p_correct", "w * correct_count", "type = 'practice'"],
  ["v_n", "w", "type = 'video' AND watch_pct IS NOT NULL"],
  ["v_pct", "w * watch_pct", "type = 'video'"],
  ["a_n", "w", "type = 'assignment' AND score_pct IS NOT NULL"],
  ["a_pct", "w * score_pct", "type = 'assignment'"],
];

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
