import { type BktEloExplanationNumbers, explanationFromNumbers } from "../models/learnerState.ts";
import { takeExplanationNumbers, type WithExplanationNumberColumns } from "../storage/explanationNumbers.ts";

/**
 * Read-time explanations of the batch job's BKT / Elo rows (docs/architecture.md "BKT/Elo explanations
 * rendered at read time"): the job stores the numbers an explanation is made of, not its ~300-byte text, and
 * every reader of student_mastery / its history on the DuckDB file renders the text here with the models' own
 * builder (models/learnerState.ts explanationFromNumbers), so it is byte for byte what
 * JSON.stringify(bktMastery(...) / eloMastery(...).explanation) gives.
 */

/** The explanation text of a stored row: its text, or the text rendered from its numbers. */
export function explanationText(
  explanation: string,
  numbers: BktEloExplanationNumbers | null | undefined,
  score: number,
): string {
  if (numbers === null || numbers === undefined || explanation !== "") return explanation;
  return JSON.stringify(explanationFromNumbers(numbers, score));
}

/**
 * Rows read with EXPLANATION_NUMBERS_SELECT (storage/explanationNumbers.ts), with the number columns taken
 * off and `explanation` holding the text (rendered where the row stored numbers). Modifies the rows in place.
 */
export function withExplanationTexts<R extends { explanation: string; mastery_score: number }>(
  rows: (R & WithExplanationNumberColumns)[],
): R[] {
  for (const r of rows) {
    const numbers = takeExplanationNumbers(r);
    r.explanation = explanationText(r.explanation, numbers, Number(r.mastery_score));
  }
  return rows;
}
