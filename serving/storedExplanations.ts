import { explanationFromNumbers } from "../models/learnerState.ts";
import { storedRuleScore } from "../models/ruleScorer.ts";
import {
  type StoredExplanationNumbers,
  takeExplanationNumbers,
  type WithExplanationNumberColumns,
} from "../storage/explanationNumbers.ts";

/**
 * Read-time explanations of the batch jobs' rows (docs/architecture.md "BKT/Elo explanations rendered at read
 * time", "Rule explanations rendered at read time"): the jobs store the numbers an explanation is made of,
 * not its text, and every reader of student_mastery / its history on the DuckDB file renders the text here
 * with the models' own code, so it is byte for byte what the job stored before: for BKT / Elo rows
 * JSON.stringify(bktMastery(...) / eloMastery(...).explanation) (models/learnerState.ts
 * explanationFromNumbers), for rule rows JSON.stringify(storedRuleRow(...).explanation) (models/ruleScorer.ts
 * storedRuleScore of the stored block as of the row's as_of).
 */

/** The explanation text of a stored row: its text, or the text rendered from its numbers. */
export function explanationText(
  explanation: string,
  numbers: StoredExplanationNumbers | null | undefined,
  score: number,
): string {
  if (numbers === null || numbers === undefined || explanation !== "") return explanation;
  if ("rule" in numbers) return JSON.stringify(storedRuleScore(numbers.rule, numbers.asOfUs).explanation);
  return JSON.stringify(explanationFromNumbers(numbers, score));
}

/**
 * Rows read with STORED_NUMBERS_SELECT (storage/explanationNumbers.ts), with the number columns taken off and
 * `explanation` holding the text (rendered where the row stored numbers). Modifies the rows in place.
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
