/**
 * The rule scorer's per-pair state (models/ruleScorer.ts RuleState) as one GROUP BY over raw_events: once
 * L = the pair's last event before the as-of time is known, every decayed sum is a plain aggregate.
 * Columns are rid (a number per pair, 1..n, to join results back by), then RULE_STATE_COLUMNS' names
 * (student_key, topic_id first). Parameters: $t = as-of time
 * (microseconds; events at or after it are not read), $h = evidence_half_life_days. The weight and x
 * expressions are models/ruleScorer.ts decayWeight's and foldRuleEvents' (pow() is JavaScript's ** to the bit).
 *
 * The sums do not depend on the order rows are added in. A floating-point sum() adds in the order rows arrive
 * (the store's physical order, split across threads), so a store that received a pair's events day by day
 * (late ones last) and one that received them at once would differ in the last bits, and a daily run would
 * not equal a full one (found by the property in test/serving/ruleScoring.int.test.ts). Each term is therefore
 * added as a binary fixed-point integer (term * 2^80 rounded to a HUGEINT; integer sums are exact, hence
 * order-free), in bounded memory (an ordered list per pair ran out of memory at 10M events and 4 GB).
 *
 * So that a fixed point keeps full precision whatever the scale, each event kind's sums are taken in its own
 * frame: weights and x relative to that kind's last event F (its newest term weighs exactly 1, and
 * w * x^2 <= ~1.1 h^2 per term), then moved to L in floating point once per pair, as models/ruleScorer.ts
 * mergeRuleStates moves a state: c = 2^(-(L - F)/h), d = (F - L) in days, S = c S', Sx = c (Sx' + d S'),
 * Sxx = c (Sxx' + 2 d Sx' + d^2 S'), Sxy = c (Sxy' + d Sy'). Terms below 2^-80 of their frame's newest weight
 * (older than 80 half-lives before it; 56 for the counts) count as 0.
 *
 * `source` is raw_events or a subquery of its rows (the incremental day passes its dirty pairs' rows).
 *
 * The pair's number (rid) is given once, to the pairs' last-event rows (`last`, materialized so that both of
 * its readers see the same numbers), and the second aggregate and the final join go by it instead of by the
 * two VARCHAR keys: hashing and comparing one BIGINT instead of two strings per event.
 */
export function ruleStateSql(source = "raw_events"): string {
  // One fixed-point sum of `term` over the rows of `kind`, in units of 2^-bits. Terms bounded by ~1.1 h^2 or
  // 100 use 80 bits; the counts (hints, attempts, correct answers: up to 2^31 each by the contract) use 56,
  // so that even 10^12 maximal terms cannot overflow a HUGEINT (2^127), at 2^-56 (1.4e-17) absolute.
  const fx = (term: string, kind: string, bits = 80) =>
    `coalesce(sum(CAST((${term}) * pow(2, ${bits}) AS HUGEINT)) FILTER (WHERE k = '${kind}'), 0)::DOUBLE / pow(2, ${bits})`;
  return `
WITH ev AS (
  SELECT student_key, topic_id, epoch_us(ts) AS t,
         CASE WHEN type = 'quiz_attempt' THEN 'q'
              WHEN type = 'practice' THEN 'p'
              WHEN type = 'video' AND watch_pct IS NOT NULL THEN 'v'
              WHEN type = 'assignment' AND score_pct IS NOT NULL THEN 'a' END AS k,
         is_correct::DOUBLE AS y, hints_used::DOUBLE AS hints, attempts::DOUBLE AS attempts,
         correct_count::DOUBLE AS correct_count, watch_pct, score_pct
  FROM ${source}
  WHERE ts < make_timestamp($t::BIGINT)
),
last AS MATERIALIZED (
  SELECT row_number() OVER () AS pid, *
  FROM (
    SELECT student_key, topic_id, max(t) AS l,
           max(t) FILTER (WHERE k = 'q') AS fq, max(t) FILTER (WHERE k = 'p') AS fp,
           max(t) FILTER (WHERE k = 'v') AS fv, max(t) FILTER (WHERE k = 'a') AS fa
    FROM ev GROUP BY student_key, topic_id
  )
),
w AS (
  SELECT last.pid, ev.k, ev.y, ev.hints, ev.attempts, ev.correct_count, ev.watch_pct,
         ev.score_pct,
         pow(2, -((CASE ev.k WHEN 'q' THEN last.fq WHEN 'p' THEN last.fp WHEN 'v' THEN last.fv ELSE last.fa END
                   - ev.t) / 86400e6) / $h::DOUBLE) AS w,
         (ev.t - last.fq) / 86400e6 AS x
  FROM ev JOIN last ON last.student_key = ev.student_key AND last.topic_id = ev.topic_id
  WHERE ev.k IS NOT NULL
),
framed AS (
  SELECT w.pid,
    ${fx("w", "q")} AS q_n,
    ${fx("w * y", "q")} AS q_y,
    ${fx("w * hints", "q", 56)} AS q_hints,
    ${fx("w * x", "q")} AS q_sx,
    ${fx("w * x * x", "q")} AS q_sxx,
    ${fx("w * x * y", "q")} AS q_sxy,
    ${fx("w * attempts", "p", 56)} AS p_n,
    ${fx("w * correct_count", "p", 56)} AS p_correct,
    ${fx("w", "v")} AS v_n,
    ${fx("w * watch_pct", "v")} AS v_pct,
    ${fx("w", "a")} AS a_n,
    ${fx("w * score_pct", "a")} AS a_pct
  FROM w GROUP BY w.pid
),
moved AS (
  SELECT last.pid, last.student_key, last.topic_id, last.l,
    coalesce(pow(2, -((last.l - last.fq) / 86400e6) / $h::DOUBLE), 0) AS cq,
    coalesce((last.fq - last.l) / 86400e6, 0) AS dq,
    coalesce(pow(2, -((last.l - last.fp) / 86400e6) / $h::DOUBLE), 0) AS cp,
    coalesce(pow(2, -((last.l - last.fv) / 86400e6) / $h::DOUBLE), 0) AS cv,
    coalesce(pow(2, -((last.l - last.fa) / 86400e6) / $h::DOUBLE), 0) AS ca,
    coalesce(framed.q_n, 0) AS q_n, coalesce(framed.q_y, 0) AS q_y, coalesce(framed.q_hints, 0) AS q_hints,
    coalesce(framed.q_sx, 0) AS q_sx, coalesce(framed.q_sxx, 0) AS q_sxx, coalesce(framed.q_sxy, 0) AS q_sxy,
    coalesce(framed.p_n, 0) AS p_n, coalesce(framed.p_correct, 0) AS p_correct,
    coalesce(framed.v_n, 0) AS v_n, coalesce(framed.v_pct, 0) AS v_pct,
    coalesce(framed.a_n, 0) AS a_n, coalesce(framed.a_pct, 0) AS a_pct
  FROM last LEFT JOIN framed ON framed.pid = last.pid
)
SELECT pid AS rid, student_key, topic_id,
  l::DOUBLE AS ref_us,
  l::DOUBLE AS last_us,
  cq * q_n AS q_n,
  cq * q_y AS q_correct,
  cq * q_hints AS q_hints,
  cq * (q_sx + dq * q_n) AS q_sx,
  cq * (q_sxx + 2 * dq * q_sx + dq * dq * q_n) AS q_sxx,
  cq * (q_sxy + dq * q_y) AS q_sxy,
  cp * p_n AS p_n,
  cp * p_correct AS p_correct,
  cv * v_n AS v_n,
  cv * v_pct AS v_pct,
  ca * a_n AS a_n,
  ca * a_pct AS a_pct
FROM moved`;
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
