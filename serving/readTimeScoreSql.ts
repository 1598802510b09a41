/**
 * Scores as readers see them, in DuckDB SQL (issue 17 item 3), for the views and batch checks that read
 * student_mastery in SQL rather than through serving/masteryView.ts rowAtReadTime.
 */

/**
 * SQL for a student_mastery row's score as a reader sees it as of `atUs` (microseconds since the epoch,
 * a SQL expression): a rule score with a stored `rule` block (models/ruleScorer.ts StoredRuleState) is
 * computed as ruleScoreOnlyAt does: its evidence decayed to `atUs` gives λ, recency is taken as of `atUs`,
 * then the clamp; every other row is its stored score, or with `served` also a served (or 'latent') score
 * decayed to `atUs` as serving/masteryView.ts decayServedRow decays it (its formula, and the same rows left as
 * stored: no decay, a half-life not above 0, a pair without events whose evidence.daysSinceLast is null).
 * DuckDB's pow() for JavaScript's **: equal up to the last bit (tested to 1e-12).
 */
export function readTimeScoreSql(m: string, atUs: string, opts: { served?: boolean } = {}): string {
  // The batch's rule rows hold the block as columns (storage/schema.ts RULE_BLOCK_COLUMNS); rows written with
  // their text (the stream's, stores from before the columns) hold it as the explanation's `rule` key.
  const col = (field: string) => `${m}.rule_${field}`;
  const json = (field: string) => `CAST(json_extract_string(${m}.explanation, '$.rule.${field}') AS DOUBLE)`;
  const fromColumns = ruleScoreSql(
    (f) => col(RULE_FIELD_COLUMN[f]),
    `CASE WHEN ${m}.rule_centered THEN ${m}.rule_prior ELSE 0 END`,
    atUs,
  );
  const fromJson = ruleScoreSql(
    json,
    `CASE WHEN json_extract_string(${m}.explanation, '$.rule.centered') = 'true' THEN ${json("prior")} ELSE 0 END`,
    atUs,
  );
  return `CASE WHEN ${m}.score_source = 'rule_based' AND ${m}.rule_prior IS NOT NULL THEN ${fromColumns}
    WHEN ${m}.score_source = 'rule_based' AND json_exists(${m}.explanation, '$.rule') THEN ${fromJson}
    ${
      opts.served
        ? `WHEN ${m}.score_source IN ('served', 'latent') AND json_exists(${m}.explanation, '$.decay')
      AND CAST(json_extract_string(${m}.explanation, '$.decay.halfLifeDays') AS DOUBLE) > 0
      AND NOT (json_exists(${m}.explanation, '$.evidence')
        AND json_extract_string(${m}.explanation, '$.evidence.daysSinceLast') IS NULL)
      AND ${atUs} > epoch_us(${m}.as_of) THEN ${servedDecaySql(m, atUs)}`
        : ""
    }
    ELSE ${m}.mastery_score END`;
}

type RuleField =
  | "prior"
  | "refUs"
  | "lastUs"
  | "evidence"
  | "shrinkageK"
  | "evidenceHalfLifeDays"
  | "inactivityHalfLifeDays"
  | "partSum"
  | "recencyWeight";

/** The block's fields as columns (after `rule_`). */
const RULE_FIELD_COLUMN: Record<RuleField, string> = {
  prior: "prior",
  refUs: "ref_us",
  lastUs: "last_us",
  evidence: "evidence",
  shrinkageK: "shrinkage_k",
  evidenceHalfLifeDays: "evidence_half_life_days",
  inactivityHalfLifeDays: "inactivity_half_life_days",
  partSum: "part_sum",
  recencyWeight: "recency_weight",
};

/** ruleScoreOnlyAt in SQL over a block's fields (`r`) and its centering term. */
function ruleScoreSql(r: (field: RuleField) => string, centered: string, atUs: string): string {
  const days = (from: RuleField) => `greatest(0, (${atUs} - ${r(from)}) / 86400e6)`;
  const n = `(${r("evidence")} * pow(2, -${days("refUs")} / ${r("evidenceHalfLifeDays")}))`;
  const lambda = `(CASE WHEN ${n} > 0 THEN ${n} / (${n} + ${r("shrinkageK")}) ELSE 0 END)`;
  const x = `pow(2, -${days("lastUs")} / ${r("inactivityHalfLifeDays")})`;
  return `least(1, greatest(0, ${r("prior")} + ${lambda} * (${r("partSum")} + ${r("recencyWeight")} * (${x} - (${centered})))))`;
}

function servedDecaySql(m: string, atUs: string): string {
  const d = (field: string) => `CAST(json_extract_string(${m}.explanation, '$.decay.${field}') AS DOUBLE)`;
  return `${d("floor")} + (${m}.mastery_score - ${d("floor")})
    * pow(2, -((${atUs} - epoch_us(${m}.as_of)) / 86400e6) / ${d("halfLifeDays")})`;
}
