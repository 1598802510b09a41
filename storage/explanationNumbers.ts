import type { BktEloExplanationNumbers } from "../models/learnerState.ts";
import { EXPLANATION_NUMBER_COLUMNS } from "./schema.ts";

/**
 * The stored form of a BKT / Elo explanation on the DuckDB file: the batch job writes its numbers
 * (storage/schema.ts EXPLANATION_NUMBER_COLUMNS) with an empty `explanation`; a reader selects them with
 * `EXPLANATION_NUMBERS_SELECT` and takes them off the row with `takeExplanationNumbers`, and serving renders
 * the text (serving/storedExplanations.ts). Rows written with their text (every other source, and the
 * stream's bkt / elo rows) have NULL numbers and keep their text.
 */

/** The numbers' select list (unqualified, or qualified by `alias`). */
export function explanationNumbersSelect(alias?: string): string {
  return EXPLANATION_NUMBER_COLUMNS.map((c) => (alias === undefined ? c : `${alias}.${c}`)).join(", ");
}
export const EXPLANATION_NUMBERS_SELECT = explanationNumbersSelect();

/** A row as read with EXPLANATION_NUMBERS_SELECT. */
export type WithExplanationNumberColumns = {
  [K in (typeof EXPLANATION_NUMBER_COLUMNS)[number]]?: number | null;
};

/**
 * Removes the number columns from `row` (in place) and returns them as an explanation's numbers, or null when
 * the row has none (its `explanation` holds the text).
 */
export function takeExplanationNumbers(row: WithExplanationNumberColumns): BktEloExplanationNumbers | null {
  const r = row as Record<string, unknown>;
  const v = (c: (typeof EXPLANATION_NUMBER_COLUMNS)[number]): number | null => {
    const x = r[c];
    delete r[c];
    return x === null || x === undefined ? null : Number(x);
  };
  const base = v("ex_base");
  const correct = v("ex_correct");
  const correctC = v("ex_correct_c");
  const incorrect = v("ex_incorrect");
  const incorrectC = v("ex_incorrect_c");
  const learn = v("ex_learn");
  const learnC = v("ex_learn_c");
  const streak = v("ex_streak");
  const streakC = v("ex_streak_c");
  if (
    base === null ||
    correct === null ||
    correctC === null ||
    incorrect === null ||
    incorrectC === null ||
    streak === null ||
    streakC === null
  )
    return null;
  return { base, correct, correctC, incorrect, incorrectC, learn, learnC, streak, streakC };
}
