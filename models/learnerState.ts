import { type BktParams, bktPredict, bktStepPair } from "./bkt.ts";
import { eloProbability, eloRatingStep } from "./elo.ts";
import { type Explanation, explain, type Factor } from "./explanation.ts";

/**
 * Online learner state per (student, topic): BKT's P(learned) and an Elo ability, moved by each
 * quiz attempt, plus the running sums that explain both scores. One pure fold serves the stream
 * (one event at a time) and the batch recompute (all events in (ts, event_id) order), so both give
 * the same state; the fold never looks at the clock.
 *
 * Explanations decompose each score exactly. For BKT, every attempt moves P(L) by the evidence of
 * its answer (Bayes' rule: posterior - prior) and then by the learn/forget transition; for Elo, by
 * the change of P(correct on an average item of the topic). Summed per factor, these telescope to
 * score - base, with base = the topic's BKT prior (resp. a new student's Elo P(correct)).
 */

export interface LearnerEvent {
  eventId: string;
  type: string;
  /** Event time as a number (the store uses epoch microseconds); only its order matters here. */
  ts: number;
  /** quiz_attempt's is_correct; null for other types or when missing. */
  isCorrect: boolean | null;
  questionId: string | null;
}

/** What the update needs to know about the event's topic. */
export interface TopicParams {
  bkt: BktParams;
  /**
   * K(n) = eloA / (1 + eloB n) of the per-(student, topic) ability. From a hierarchical Elo model:
   * eloA = studentA + skillA (global and per-skill abilities both move with each answer, and a
   * per-topic state sees their sum), eloB = studentB.
   */
  eloA: number;
  eloB: number;
  /** Difficulty of the topic (Elo skill difficulty). */
  topicDifficulty: number;
  /** Item offsets around the topic difficulty by question id; unknown questions count as average (0). */
  itemOffsets: ReadonlyMap<string, number>;
}

export interface LearnerState {
  /** BKT P(learned). */
  pMastery: number;
  /** BKT P(not learned), carried apart: 1 - pMastery rounds to 0 after a long streak (bktStepPair). */
  pUnknown: number;
  bktN: number;
  eloAbility: number;
  eloN: number;
  correctN: number;
  correctStreak: number;
  lastTs: number | null;
  lastEventId: string | null;
  /** BKT evidence of correct answers before the current streak. */
  bktCorrectDelta: number;
  bktIncorrectDelta: number;
  /** BKT learn/forget transitions after attempts before the current streak. */
  bktLearnDelta: number;
  /** Evidence and transitions of the current streak of correct answers. */
  bktStreakObsDelta: number;
  bktStreakLearnDelta: number;
  eloCorrectDelta: number;
  eloIncorrectDelta: number;
  eloStreakDelta: number;
}

export function initialLearnerState(params: TopicParams): LearnerState {
  return {
    pMastery: params.bkt.prior,
    pUnknown: 1 - params.bkt.prior,
    bktN: 0,
    eloAbility: 0,
    eloN: 0,
    correctN: 0,
    correctStreak: 0,
    lastTs: null,
    lastEventId: null,
    bktCorrectDelta: 0,
    bktIncorrectDelta: 0,
    bktLearnDelta: 0,
    bktStreakObsDelta: 0,
    bktStreakLearnDelta: 0,
    eloCorrectDelta: 0,
    eloIncorrectDelta: 0,
    eloStreakDelta: 0,
  };
}

/** Event order of the replay: by ts, then event_id (as the SQL ORDER BY ts, event_id). */
export function compareEvents(
  a: Pick<LearnerEvent, "ts" | "eventId">,
  b: Pick<LearnerEvent, "ts" | "eventId">,
): number {
  if (a.ts !== b.ts) return a.ts < b.ts ? -1 : 1;
  return a.eventId < b.eventId ? -1 : a.eventId > b.eventId ? 1 : 0;
}

/**
 * The state after one more event. Only quiz attempts with a known is_correct move BKT and Elo;
 * every event advances last_ts / last_event_id. Returns a new object; `state` is not modified.
 */
export function applyEvent(state: LearnerState, event: LearnerEvent, params: TopicParams): LearnerState {
  const next: LearnerState = { ...state, lastTs: event.ts, lastEventId: event.eventId };
  if (event.type !== "quiz_attempt" || event.isCorrect === null) return next;
  const correct = event.isCorrect;

  // BKT: Bayes' evidence of the answer, then the learn/forget transition (models/bkt.ts bktStepPair).
  const bkt = params.bkt;
  const p = state.pMastery;
  const belief = new Float64Array([state.pUnknown, p, state.pUnknown, p]);
  bktStepPair(0, 0, bkt.guess, bkt.slip, belief, 0, correct);
  bktStepPair(bkt.learn, bkt.forget, bkt.guess, bkt.slip, belief, 2, correct);
  const posterior = belief[1]!;
  const after = belief[3]!;
  const evidence = posterior - p;
  const transition = after - posterior;
  next.pMastery = after;
  next.pUnknown = belief[2]!;
  next.bktN = state.bktN + 1;

  // Elo: the per-topic ability against this question's difficulty; the score reads an average item.
  const offset = event.questionId === null ? 0 : (params.itemOffsets.get(event.questionId) ?? 0);
  const step = eloRatingStep(
    state.eloAbility,
    state.eloN,
    params.topicDifficulty + offset,
    correct,
    params.eloA,
    params.eloB,
  );
  const eloDelta =
    eloProbability(step.ability, params.topicDifficulty) -
    eloProbability(state.eloAbility, params.topicDifficulty);
  next.eloAbility = step.ability;
  next.eloN = step.n;

  if (correct) {
    next.correctN = state.correctN + 1;
    next.correctStreak = state.correctStreak + 1;
    next.bktStreakObsDelta = state.bktStreakObsDelta + evidence;
    next.bktStreakLearnDelta = state.bktStreakLearnDelta + transition;
    next.eloStreakDelta = state.eloStreakDelta + eloDelta;
  } else {
    // The streak ends: its contributions become ordinary correct-answer evidence and transitions.
    next.correctStreak = 0;
    next.bktCorrectDelta = state.bktCorrectDelta + state.bktStreakObsDelta;
    next.bktLearnDelta = state.bktLearnDelta + state.bktStreakLearnDelta + transition;
    next.bktIncorrectDelta = state.bktIncorrectDelta + evidence;
    next.bktStreakObsDelta = 0;
    next.bktStreakLearnDelta = 0;
    next.eloCorrectDelta = state.eloCorrectDelta + state.eloStreakDelta;
    next.eloIncorrectDelta = state.eloIncorrectDelta + eloDelta;
    next.eloStreakDelta = 0;
  }
  return next;
}

/** Folds `events` (already in replay order) into `from` (default: a new learner). */
export function replayEvents(
  events: readonly LearnerEvent[],
  params: TopicParams,
  from: LearnerState = initialLearnerState(params),
): LearnerState {
  let s = from;
  for (const e of events) s = applyEvent(s, e, params);
  return s;
}

export interface ExplainedScore {
  score: number;
  explanation: Explanation;
}

/** BKT mastery = P(learned); base = the topic's prior; factors sum with the base to the score. */
export function bktMastery(state: LearnerState, params: TopicParams): ExplainedScore {
  const incorrect = state.bktN - state.correctN;
  const factors: Factor[] = [
    {
      name: "correct_answers",
      value: state.correctN - state.correctStreak,
      contribution: state.bktCorrectDelta,
    },
    { name: "incorrect_answers", value: incorrect, contribution: state.bktIncorrectDelta },
    { name: "bkt_learn", value: params.bkt.learn, contribution: state.bktLearnDelta },
    {
      name: "recent_correct_streak",
      value: state.correctStreak,
      contribution: state.bktStreakObsDelta + state.bktStreakLearnDelta,
    },
  ];
  return { score: state.pMastery, explanation: explain(params.bkt.prior, factors, state.pMastery) };
}

/** P(correct) on the next attempt under BKT (not the mastery score; for diagnostics). */
export function bktNextCorrect(state: LearnerState, params: TopicParams): number {
  return bktPredict(params.bkt, state.pMastery, state.pUnknown);
}

/**
 * Elo mastery = P(correct on an average item of the topic) = logistic(ability - topic difficulty);
 * base = the same for a new student (ability 0).
 */
export function eloMastery(state: LearnerState, params: TopicParams): ExplainedScore {
  const base = eloProbability(0, params.topicDifficulty);
  const score = eloProbability(state.eloAbility, params.topicDifficulty);
  const factors: Factor[] = [
    {
      name: "correct_answers",
      value: state.correctN - state.correctStreak,
      contribution: state.eloCorrectDelta,
    },
    { name: "incorrect_answers", value: state.eloN - state.correctN, contribution: state.eloIncorrectDelta },
    { name: "recent_correct_streak", value: state.correctStreak, contribution: state.eloStreakDelta },
  ];
  return { score, explanation: explain(base, factors, score) };
}
