/**
 * Scores as readers see them, in DuckDB SQL (issue 17 item 3), for the views and batch checks that read
 * student_mastery in SQL rather than through serving/masteryView.ts rowAtReadTime.
 */

/**
 * SQL for a student_mastery row's score as a reader sees it as of `atUs` (microseconds since the epoch,
 * a SQL expression): a rule score with a stored `rule` block (models/ruleScorer.ts StoredRuleState) is
 * computed as ruleScoreOnlyAt does: its evidence decayed to `atUs` gives λ, recency is taken as of `atUs`,
 * then the clamp; every other row is its stored score, or with `served` also a served (or 'latent') score
 * decayed to `atUs` (decayServedRow's formula). DuckDB's pow() for JavaScript's **: equal up to the last
 * bit (tested to 1e-12).
 */
export function readTimeScoreSql(m: string, atUs: string, opts: { served?: boolean } = {}): string {
  const r = (field: string) => `CAST(json_extract_string(${m}.explanation, '$.rule.${field}') AS DOUBLE)`;
  const days = (from: string) => `greatest(0, (${atUs} - ${r(from)}) / 86400e6)`;
  const n = `(${r("evidence")} * pow(2, -${days("refUs")} / ${r("evidenceHalfLifeDays")}))`;
  const lambda = `(CASE WHEN ${n} > 0 THEN ${n} / (${n} + ${r("shrinkageK")}) ELSE 0 END)`;
  const x = `pow(2, -${days("lastUs")} / ${r("inactivityHalfLifeDays")})`;
  const centered = `CASE WHEN json_extract_string(${m}.explanation, '$.rule.centered') = 'true'
    THEN ${r("prior")} ELSE 0 END`;
  return `CASE WHEN ${m}.score_source = 'rule_based' AND json_exists(${m}.explanation, '$.rule')
    THEN least(1, greatest(0, ${r("prior")} + ${lambda} * (${r("partSum")} + ${r("recencyWeight")} * (${x} - ${centered}))))
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
