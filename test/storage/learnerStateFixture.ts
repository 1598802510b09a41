import type { StateCommit, StoredLearnerState } from "../../storage/stateStore.ts";

/** A learner state for storage tests: BKT P(mastery) `pMastery`, the rest fixed. */
export const storedState = (pMastery: number, lastEventId = "e1"): StoredLearnerState => ({
  pMastery,
  pUnknown: 1 - pMastery,
  bktN: 1,
  eloAbility: 0.25,
  eloN: 1,
  correctN: 1,
  correctStreak: 1,
  lastTs: 1_767_600_000_000_000,
  lastEventId,
  eventN: 1,
  bktCorrectDelta: 0.1,
  bktIncorrectDelta: 0,
  bktLearnDelta: 0.05,
  bktStreakObsDelta: 0,
  bktStreakLearnDelta: 0,
  eloCorrectDelta: 0.25,
  eloIncorrectDelta: 0,
  eloStreakDelta: 0,
  bktModelVersion: "default",
  eloModelVersion: "default",
  latent: null,
  latentModelVersion: null,
  rule: null,
  ruleModelVersion: null,
});

/** A compare-and-set commit of storedState(p) for (studentKey, topicId) at `expectedRev`, folding `processed`. */
export const stateCommit = (
  studentKey: string,
  topicId: string,
  expectedRev: number,
  p: number,
  processed: string[],
): StateCommit => ({
  studentKey,
  topicId,
  expectedRev,
  state: storedState(p, processed[0] ?? "none"),
  processed,
  updatedAtUs: 1_767_600_000_000_000,
});
