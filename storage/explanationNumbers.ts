import type { BktEloExplanationNumbers } from "../models/learnerState.ts";
import type { StoredRuleFactor, StoredRuleState } from "../models/ruleScorer.ts";
import {
  EXPLANATION_NUMBER_COLUMNS,
  RULE_BLOCK_COLUMNS,
  RULE_FACTOR_SIGNALS,
  type RuleBlockColumn,
} from "./schema.ts";

/**
 * The stored forms of the batch jobs' explanations on the DuckDB file: the BKT / Elo job writes its numbers
 * (storage/schema.ts EXPLANATION_NUMBER_COLUMNS) and the rule step its rows' `rule` block (RULE_BLOCK_COLUMNS),
 * with an empty `explanation`; a reader selects them with `STORED_NUMBERS_SELECT` and takes them off the row
 * with `takeExplanationNumbers`, and serving renders the text (serving/storedExplanations.ts). Rows written
 * with their text (every other source, the stream's rows, rows stored before the columns) have NULL numbers
 * and keep their text.
 */

/** The BKT / Elo numbers' select list (unqualified, or qualified by `alias`); also their column list. */
export function explanationNumbersSelect(alias?: string): string {
  return EXPLANATION_NUMBER_COLUMNS.map((c) => (alias === undefined ? c : `${alias}.${c}`)).join(", ");
}
export const EXPLANATION_NUMBERS_SELECT = explanationNumbersSelect();

/** The as-of time a rule block is rendered at (the row's as_of in microseconds), as a select list column. */
export const RULE_AS_OF_US = "rule_as_of_us";

/** Every column of storedNumbersSelect, in its order. */
export const STORED_NUMBER_COLUMNS = [
  ...EXPLANATION_NUMBER_COLUMNS,
  ...RULE_BLOCK_COLUMNS,
  RULE_AS_OF_US,
] as const;
export type StoredNumberColumn = (typeof STORED_NUMBER_COLUMNS)[number];

/**
 * Every stored number a reader renders from, selected from student_mastery / its history (or their base and
 * delta tables), unqualified or qualified by `alias`: the BKT / Elo numbers, the rule block and, as
 * `rule_as_of_us`, the row's as_of in microseconds (exact, where a JS Date has milliseconds).
 */
export function storedNumbersSelect(alias?: string): string {
  const q = (c: string) => (alias === undefined ? c : `${alias}.${c}`);
  return [
    ...EXPLANATION_NUMBER_COLUMNS.map(q),
    ...RULE_BLOCK_COLUMNS.map(q),
    `epoch_us(${q("as_of")})::DOUBLE AS ${RULE_AS_OF_US}`,
  ].join(", ");
}
export const STORED_NUMBERS_SELECT = storedNumbersSelect();

/** The columns of storedNumbersSelect by name, from a subquery (alias) that selected them. */
export function storedNumberNames(alias: string): string {
  return STORED_NUMBER_COLUMNS.map((c) => `${alias}.${c}`).join(", ");
}

/** A row as read with STORED_NUMBERS_SELECT (or EXPLANATION_NUMBERS_SELECT). */
export type WithExplanationNumberColumns = {
  [K in (typeof EXPLANATION_NUMBER_COLUMNS)[number]]?: number | null;
} & { [K in (typeof RULE_BLOCK_COLUMNS)[number]]?: number | boolean | null } & {
  rule_as_of_us?: number | null;
};

/** A rule row's stored numbers: its block and the time its text is as of (microseconds since the epoch). */
export interface RuleExplanationNumbers {
  rule: StoredRuleState;
  asOfUs: number;
}

/** The numbers a stored row's explanation is rendered from. */
export type StoredExplanationNumbers = BktEloExplanationNumbers | RuleExplanationNumbers;

/**
 * Removes the number columns from `row` (in place) and returns them as an explanation's numbers, or null when
 * the row has none (its `explanation` holds the text).
 */
export function takeExplanationNumbers(row: WithExplanationNumberColumns): StoredExplanationNumbers | null {
  const r = row as Record<string, unknown>;
  const numbers = storedNumbersOf((c) => r[c]);
  for (const c of STORED_NUMBER_COLUMNS) delete r[c];
  return numbers;
}

/**
 * The numbers of a row read with STORED_NUMBERS_SELECT, its cells read through `get` (a row object's, or a
 * result's columns: storage/duckdb.ts DuckColumns, which reads only the cells asked for): the rule block when
 * the row has one (rule_prior and rule_as_of_us not NULL), else the BKT / Elo numbers when it has them, else null.
 */
export function storedNumbersOf(
  get: (column: StoredNumberColumn) => unknown,
): StoredExplanationNumbers | null {
  const prior = get("rule_prior");
  if (prior !== null && prior !== undefined) {
    const asOfUs = get(RULE_AS_OF_US);
    if (asOfUs !== null && asOfUs !== undefined) return { rule: ruleBlockOf(get), asOfUs: Number(asOfUs) };
  }
  const v = (c: (typeof EXPLANATION_NUMBER_COLUMNS)[number]): number | null => {
    const x = get(c);
    return x === null || x === undefined ? null : Number(x);
  };
  const base = v("ex_base");
  if (base === null) return null;
  const correct = v("ex_correct");
  const correctC = v("ex_correct_c");
  const incorrect = v("ex_incorrect");
  const incorrectC = v("ex_incorrect_c");
  const streak = v("ex_streak");
  const streakC = v("ex_streak_c");
  if (
    correct === null ||
    correctC === null ||
    incorrect === null ||
    incorrectC === null ||
    streak === null ||
    streakC === null
  )
    return null;
  return {
    base,
    correct,
    correctC,
    incorrect,
    incorrectC,
    learn: v("ex_learn"),
    learnC: v("ex_learn_c"),
    streak,
    streakC,
  };
}

/** The rule block of a row whose rule_prior is not NULL (storedNumbersOf). */
function ruleBlockOf(get: (column: StoredNumberColumn) => unknown): StoredRuleState {
  const n = (c: RuleBlockColumn): number => Number(get(c));
  const factors: StoredRuleFactor[] = [];
  for (const name of RULE_FACTOR_SIGNALS) {
    const value = get(`rule_${name}_value`);
    if (value === null || value === undefined) continue;
    factors.push({ name, value: Number(value), part: n(`rule_${name}_part`) });
  }
  // The key order of models/ruleScorer.ts StoredRuleState (the text is JSON.stringify of it).
  return {
    prior: n("rule_prior"),
    refUs: n("rule_ref_us"),
    lastUs: n("rule_last_us"),
    evidence: n("rule_evidence"),
    shrinkageK: n("rule_shrinkage_k"),
    evidenceHalfLifeDays: n("rule_evidence_half_life_days"),
    inactivityHalfLifeDays: n("rule_inactivity_half_life_days"),
    partSum: n("rule_part_sum"),
    recencyWeight: n("rule_recency_weight"),
    centered: get("rule_centered") === true,
    factors,
  };
}

/**
 * A block's values in RULE_BLOCK_COLUMNS order (the writer's side of takeExplanationNumbers): NULL for a
 * signal that is not among its factors.
 */
export function ruleBlockValues(
  block: StoredRuleState,
  out: (number | boolean | null)[] = [],
): (number | boolean | null)[] {
  out[0] = block.prior;
  out[1] = block.refUs;
  out[2] = block.lastUs;
  out[3] = block.evidence;
  out[4] = block.shrinkageK;
  out[5] = block.evidenceHalfLifeDays;
  out[6] = block.inactivityHalfLifeDays;
  out[7] = block.partSum;
  out[8] = block.recencyWeight;
  out[9] = block.centered;
  for (let k = 0; k < RULE_FACTOR_SIGNALS.length; k++) {
    out[10 + 2 * k] = null;
    out[11 + 2 * k] = null;
  }
  for (const f of block.factors) {
    const k = RULE_FACTOR_SIGNALS.indexOf(f.name as (typeof RULE_FACTOR_SIGNALS)[number]);
    if (k < 0) throw new RangeError(`rule block: factor "${f.name}" has no column (RULE_FACTOR_SIGNALS)`);
    out[10 + 2 * k] = f.value;
    out[11 + 2 * k] = f.part;
  }
  return out;
}
