import { bktStepPair } from "./bkt.ts";
import { eloProbability, eloRatingStep } from "./elo.ts";
import type { LearnerState, TopicParams } from "./learnerState.ts";

/**
 * The batch form of models/learnerState.ts applyEvent: one key's events as typed-array columns
 * (sorted by (ts, event_id)) folded with the state in local variables, so the loop allocates nothing
 * per event. It performs the same floating-point operations in the same order as applyEvent, so the
 * state is bit-for-bit the one the stream updater reaches (test/models/learnerStateFold.test.ts
 * checks every field with Object.is against replayEvents).
 */

/** Several keys' events as columns, key after key, each key's rows in replay order. */
export interface KeyRuns {
  /** Key k owns rows keyStart[k] .. keyStart[k + 1] - 1 (length: keys + 1). */
  keyStart: Int32Array;
  /** Per row: 1 correct, 0 incorrect, -1 moves nothing (not a quiz attempt, or is_correct unknown). */
  answer: Int8Array;
  /** Per row: the Elo item offset of its question (0 for none or an unknown question). */
  itemOffset: Float64Array;
  /** Per row: event time (epoch microseconds). */
  ts: Float64Array;
}

export const NO_ANSWER = -1;

// Scratch for bktStepPair: [P(U), P(L)] before the transition, then after it.
const belief = new Float64Array(4);

/**
 * Folds key `k`'s rows of `runs` onto `from` (a new learner when omitted: pass the initial state).
 * `lastEventId` is the event id of the key's last row (ids stay out of the typed arrays).
 */
export function foldKeyRun(
  runs: KeyRuns,
  k: number,
  params: TopicParams,
  from: LearnerState,
  lastEventId: string,
): LearnerState {
  const { guess, slip, learn, forget } = params.bkt;
  const { topicDifficulty, eloA, eloB } = params;
  let pMastery = from.pMastery;
  let pUnknown = from.pUnknown;
  let bktN = from.bktN;
  let eloAbility = from.eloAbility;
  let eloN = from.eloN;
  let correctN = from.correctN;
  let correctStreak = from.correctStreak;
  let bktCorrectDelta = from.bktCorrectDelta;
  let bktIncorrectDelta = from.bktIncorrectDelta;
  let bktLearnDelta = from.bktLearnDelta;
  let bktStreakObsDelta = from.bktStreakObsDelta;
  let bktStreakLearnDelta = from.bktStreakLearnDelta;
  let eloCorrectDelta = from.eloCorrectDelta;
  let eloIncorrectDelta = from.eloIncorrectDelta;
  let eloStreakDelta = from.eloStreakDelta;
  const start = runs.keyStart[k]!;
  const end = runs.keyStart[k + 1]!;
  for (let i = start; i < end; i++) {
    const a = runs.answer[i]!;
    if (a === NO_ANSWER) continue;
    const correct = a === 1;
    // BKT: Bayes' evidence of the answer, then the learn/forget transition.
    const p = pMastery;
    belief[0] = pUnknown;
    belief[1] = p;
    belief[2] = pUnknown;
    belief[3] = p;
    bktStepPair(0, 0, guess, slip, belief, 0, correct);
    bktStepPair(learn, forget, guess, slip, belief, 2, correct);
    const posterior = belief[1]!;
    const after = belief[3]!;
    const evidence = posterior - p;
    const transition = after - posterior;
    pMastery = after;
    pUnknown = belief[2]!;
    bktN = bktN + 1;
    // Elo: the per-topic ability against this question's difficulty; the score reads an average item.
    const step = eloRatingStep(eloAbility, eloN, topicDifficulty + runs.itemOffset[i]!, correct, eloA, eloB);
    const eloDelta =
      eloProbability(step.ability, topicDifficulty) - eloProbability(eloAbility, topicDifficulty);
    eloAbility = step.ability;
    eloN = step.n;
    if (correct) {
      correctN = correctN + 1;
      correctStreak = correctStreak + 1;
      bktStreakObsDelta = bktStreakObsDelta + evidence;
      bktStreakLearnDelta = bktStreakLearnDelta + transition;
      eloStreakDelta = eloStreakDelta + eloDelta;
    } else {
      correctStreak = 0;
      bktCorrectDelta = bktCorrectDelta + bktStreakObsDelta;
      bktLearnDelta = bktLearnDelta + bktStreakLearnDelta + transition;
      bktIncorrectDelta = bktIncorrectDelta + evidence;
      bktStreakObsDelta = 0;
      bktStreakLearnDelta = 0;
      eloCorrectDelta = eloCorrectDelta + eloStreakDelta;
      eloIncorrectDelta = eloIncorrectDelta + eloDelta;
      eloStreakDelta = 0;
    }
  }
  return {
    pMastery,
    pUnknown,
    bktN,
    eloAbility,
    eloN,
    correctN,
    correctStreak,
    lastTs: end > start ? runs.ts[end - 1]! : from.lastTs,
    lastEventId: end > start ? lastEventId : from.lastEventId,
    // Events folded in (every event of the run, answered or not); a state without a count stays without one.
    eventN: from.eventN < 0 ? -1 : from.eventN + (end - start),
    bktCorrectDelta,
    bktIncorrectDelta,
    bktLearnDelta,
    bktStreakObsDelta,
    bktStreakLearnDelta,
    eloCorrectDelta,
    eloIncorrectDelta,
    eloStreakDelta,
  };
}
