import type { MasteryViewRow } from "../../serving/masteryReadStore.ts";
import { explanationText } from "../../serving/storedExplanations.ts";

/**
 * Rows read with their stored numbers (MasteryViewRow.stored, explanation "") as the read store gave them before
 * it left the text unrendered: the numbers dropped, the text they stand for (explanationText) in `explanation`.
 */
export const renderedRows = (rows: readonly MasteryViewRow[]): MasteryViewRow[] =>
  rows.map(({ stored, ...r }) =>
    stored === undefined ? r : { ...r, explanation: explanationText(r.explanation, stored, r.mastery_score) },
  );
