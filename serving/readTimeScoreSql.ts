/**
 * Scores as readers see them, in DuckDB SQL (issue 17 item 3), for the views and batch checks that read
 * student_mastery in SQL rather than through serving/masteryView.ts rowAtReadTime.
 */

/**
 * SQL for a student_mastery row's score as a reader sees it as of `atUs` (microseconds since the epoch,
 * a SQL expression): a rule score stored without recency (models/ruleScorer.ts StoredRuleExplanation)
 * gets recency from the stored last activity, added last and clamped as ruleScoreAt does; every other row
 * is its stored score, or with `served` also a served (or 'latent') score decayed to `atUs` (decayServedRow's formula).
 * DuckDB's pow() for JavaScript's **: equal up to the last bit.
 */
export function readTimeScoreSql(m: string, atUs: string, opts: { served?: boolean } = {}): string {
  const r = (field: string) => `CAST(json_extract_string(${m}.explanation, '$.recency.${field}') AS DOUBLE)`;
  const x = `pow(2, -greatest(0, (${atUs} - ${r("lastActivityUs")}) / 86400e6) / ${r("halfLifeDays")})`;
  const centered = `CASE WHEN json_extract_string(${m}.explanation, '$.recency.centered') = 'true'
    THEN CAST(json_extract_string(${m}.explanation, '$.base') AS DOUBLE) ELSE 0 END`;
  return `CASE WHEN ${m}.score_source = 'rule_based' AND json_exists(${m}.explanation, '$.recency')
    THEN least(1, greatest(0, ${r("raw")} + ${r("weight")} * (${x} - ${centered})))
    ${
      opts.served
        ? `WHEN ${m}.score_source IN ('served', 'latent') AND json_exists(${m}.explanation, '$.decay')
      AND ${atUs} > epoch_us(${m}.as_of) THEN ${servedDecaySql(m, atUs)}`
        : ""
    }
    ELSE ${m}.mastery_score END`;
}

function servedDecaySql(m: string, atUs: string): string {
  const d = (field: string) => `CAST(json_extract_string(${m}.explanation, '$.decay.${field}') AS DOUBLE)`;
  return `${d("floor")} + (${m}.mastery_score - ${d("floor")})
    * pow(2, -((${atUs} - epoch_us(${m}.as_of)) / 86400e6) / ${d("halfLifeDays")})`;
}
