import type { AlertRow } from "../../storage/alertStore.ts";

/** An at-risk alert row of the alert store tests: a bkt score of 0.2 under 0.35, first crossing, no school or grade. */
export const atRiskAlert = (
  alertId: string,
  studentKey: string,
  topicId: string,
  more: Partial<AlertRow> = {},
): AlertRow => ({
  alertId,
  studentKey,
  topicId,
  rule: "at_risk",
  threshold: 0.35,
  score: 0.2,
  scoreSource: "bkt",
  schoolId: null,
  grade: null,
  crossing: 1,
  ...more,
});
