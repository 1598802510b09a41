import { type BKT, type BktParams, bktPredict, bktStepPair, meanParams } from "./bkt.ts";
import { DEFAULT_ELO_PARAMS, type Elo, eloProbability, eloRatingStep } from "./elo.ts";
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
  /**
   * When this copy of the event was stored (any increasing clock; the store uses epoch microseconds).
   * Dedupe keeps the first ingested copy of an event_id (firstIngestedCopies); absent counts as 0.
   */
  ingestedAt?: number;
  /** Practice attempts / correct and an assignment's score_pct (the latent filter reads them; BKT/Elo do not). */
  attempts?: number | null;
  correctCount?: number | null;
  scorePct?: number | null;
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

/**
 * Per-topic parameters from fitted models (defaults where a model or a topic is missing: BKT's
 * fallback parameters, the default Elo K, the Elo model's difficulty of an unseen skill or 0).
 * The one resolver of the stream, the batch job, model scoring and training sets.
 */
export function topicParamsResolver(models: {
  bkt?: BKT | undefined;
  elo?: Elo | undefined;
}): (topicId: string) => TopicParams {
  const { bkt, elo } = models;
  const itemOffsets = new Map<string, number>();
  const skillDifficulty = new Map<string, number>();
  if (elo !== undefined) {
    elo.itemNames.forEach((name, i) => {
      if (elo.itemCount[i]! > 0) itemOffsets.set(name, elo.itemOffset[i]!);
    });
    elo.skillNames.forEach((name, c) => {
      skillDifficulty.set(name, elo.skillDifficulty[c]!);
    });
  }
  const unseen = elo?.unseenSkillDifficulty() ?? 0;
  const k = elo?.params ?? DEFAULT_ELO_PARAMS;
  const fallback: BktParams = meanParams([]);
  const cache = new Map<string, TopicParams>();
  return (topicId) => {
    let p = cache.get(topicId);
    if (p === undefined) {
      p = {
        bkt: bkt?.paramsFor(topicId) ?? fallback,
        eloA: k.studentA + k.skillA,
        eloB: k.studentB,
        topicDifficulty: skillDifficulty.get(topicId) ?? unseen,
        itemOffsets,
      };
      cache.set(topicId, p);
    }
    return p;
  };
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
  /**
   * Events of any type folded into the state (after dedupe). -1 when unknown (a row written before
   * the count existed): such a state is never continued, only rebuilt (updatePlan, batchPlan).
   */
  eventN: number;
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
    eventN: 0,
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
  const next: LearnerState = {
    ...state,
    lastTs: event.ts,
    lastEventId: event.eventId,
    eventN: state.eventN + 1,
  };
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

/**
 * THE dedupe rule, shared by the stream, the batch job, model scoring, training sets and the
 * recompute: of the copies of one event_id (within one (student, topic) key), the first ingested
 * wins (smallest ingestedAt; then the earlier ts; then the earlier in `events`). Later copies, even
 * with other content, are ignored. Returns the winners in input order.
 */
export function firstIngestedCopies<T extends LearnerEvent>(events: readonly T[]): T[] {
  const best = new Map<string, number>();
  events.forEach((e, i) => {
    const j = best.get(e.eventId);
    if (j === undefined) {
      best.set(e.eventId, i);
      return;
    }
    const b = events[j]!;
    const ei = e.ingestedAt ?? 0;
    const bi = b.ingestedAt ?? 0;
    if (ei < bi || (ei === bi && e.ts < b.ts)) best.set(e.eventId, i);
  });
  if (best.size === events.length) return events.slice();
  const keep = new Set(best.values());
  return events.filter((_, i) => keep.has(i));
}

/** A key's events as the fold sees them: deduped (firstIngestedCopies), in (ts, event_id) order. */
export function replayOrder<T extends LearnerEvent>(events: readonly T[]): T[] {
  return firstIngestedCopies(events).sort(compareEvents);
}

/**
 * THE replay: folds a key's stored events (any order, duplicates allowed) in replay order into
 * `from` (default: a new learner). Every path that turns stored events into BKT/Elo state calls
 * this: serving/updater.ts (stream), serving/learnerState.ts (batch job), serving/modelScoring.ts,
 * serving/recompute.ts and training/trainingSetEvents.ts (through statesBefore).
 * With `from`, the events must all come after its cursor (updatePlan says when that holds).
 */
export function replayEvents(
  events: readonly LearnerEvent[],
  params: TopicParams,
  from: LearnerState = initialLearnerState(params),
): LearnerState {
  let s = from;
  for (const e of replayOrder(events)) s = applyEvent(s, e, params);
  return s;
}

/** True when `e` comes after the state's cursor (last_ts, last_event_id) in replay order. */
export function afterCursor(state: LearnerState, e: Pick<LearnerEvent, "ts" | "eventId">): boolean {
  if (state.lastTs === null) return true;
  return compareEvents(e, { ts: state.lastTs, eventId: state.lastEventId ?? "" }) > 0;
}

/**
 * THE late-event rule of the stream. `fresh` are a key's events not yet in its state (already
 * deduped). "forward": every fresh event comes after the cursor, so folding them onto the state
 * (replayEvents(fresh, params, state)) gives the same state as a replay from scratch. "replay":
 * no usable state, or a late event (older than the last applied one): the key is rebuilt by
 * replayEvents over all its stored events, so the late event takes its place in timestamp order.
 */
export function updatePlan(
  state: LearnerState | null,
  fresh: readonly Pick<LearnerEvent, "ts" | "eventId">[],
): "forward" | "replay" {
  if (state === null || state.eventN < 0) return "replay";
  for (const e of fresh) if (!afterCursor(state, e)) return "replay";
  return "forward";
}

/**
 * The same rule for the batch job, which sees the store rather than the arrivals: a key's state can
 * be continued with its events after the cursor only when it already holds every stored event at
 * or before the cursor (`storedAtOrBefore`, after dedupe); a larger count means a late event arrived.
 */
export function batchPlan(
  state: Pick<LearnerState, "eventN"> | null,
  storedAtOrBefore: number,
): "forward" | "replay" {
  if (state === null || state.eventN < 0 || state.eventN !== storedAtOrBefore) return "replay";
  return "forward";
}

/**
 * Point-in-time states of one key: for each time in `beforeTs` (ascending), the replay of the
 * key's events with ts < that time. Used for training rows (features as of t use only events before t).
 */
export function statesBefore(
  events: readonly LearnerEvent[],
  params: TopicParams,
  beforeTs: readonly number[],
): LearnerState[] {
  const ordered = replayOrder(events);
  const out: LearnerState[] = [];
  let s = initialLearnerState(params);
  let i = 0;
  for (const t of beforeTs) {
    for (; i < ordered.length && ordered[i]!.ts < t; i++) s = applyEvent(s, ordered[i]!, params);
    out.push(s);
  }
  return out;
}

export interface ExplainedScore {
  score: number;
  explanation: Explanation;
}

/**
 * The numbers a BKT or Elo explanation is made of: its base and, per factor, its value and contribution
 * (`learn` / `learnC` null for Elo, which has no learn factor). The batch job stores these (typed columns
 * of student_mastery / its history) instead of the explanation's text, and readers render the text with
 * `explanationFromNumbers` (serving/storedExplanations.ts): the same function the models build it with,
 * so the served text is the one JSON.stringify(bktMastery(...).explanation) gives.
 */
export interface BktEloExplanationNumbers {
  base: number;
  /** correct_answers: correct answers before the current streak. */
  correct: number;
  correctC: number;
  /** incorrect_answers. */
  incorrect: number;
  incorrectC: number;
  /** bkt_learn: the topic's learn rate (BKT only). */
  learn: number | null;
  learnC: number | null;
  /** recent_correct_streak. */
  streak: number;
  streakC: number;
}

/** The explanation of a BKT or Elo score from its numbers: explain() over the factors in the models' order. */
export function explanationFromNumbers(n: BktEloExplanationNumbers, score: number): Explanation {
  const factors: Factor[] = [
    { name: "correct_answers", value: n.correct, contribution: n.correctC },
    { name: "incorrect_answers", value: n.incorrect, contribution: n.incorrectC },
  ];
  if (n.learn !== null) factors.push({ name: "bkt_learn", value: n.learn, contribution: n.learnC ?? 0 });
  factors.push({ name: "recent_correct_streak", value: n.streak, contribution: n.streakC });
  return explain(n.base, factors, score);
}

/** The numbers of a BKT explanation: base = the topic's prior. */
export function bktExplanationNumbers(state: LearnerState, params: TopicParams): BktEloExplanationNumbers {
  return {
    base: params.bkt.prior,
    correct: state.correctN - state.correctStreak,
    correctC: state.bktCorrectDelta,
    incorrect: state.bktN - state.correctN,
    incorrectC: state.bktIncorrectDelta,
    learn: params.bkt.learn,
    learnC: state.bktLearnDelta,
    streak: state.correctStreak,
    streakC: state.bktStreakObsDelta + state.bktStreakLearnDelta,
  };
}

/** BKT mastery = P(learned); base = the topic's prior; factors sum with the base to the score. */
export function bktMastery(state: LearnerState, params: TopicParams): ExplainedScore {
  return {
    score: state.pMastery,
    explanation: explanationFromNumbers(bktExplanationNumbers(state, params), state.pMastery),
  };
}

/** P(correct) on the next attempt under BKT (not the mastery score; for diagnostics). */
export function bktNextCorrect(state: LearnerState, params: TopicParams): number {
  return bktPredict(params.bkt, state.pMastery, state.pUnknown);
}

/** The numbers of an Elo explanation: base = a new student's P(correct) on an average item of the topic. */
export function eloExplanationNumbers(state: LearnerState, params: TopicParams): BktEloExplanationNumbers {
  return {
    base: eloProbability(0, params.topicDifficulty),
    correct: state.correctN - state.correctStreak,
    correctC: state.eloCorrectDelta,
    incorrect: state.eloN - state.correctN,
    incorrectC: state.eloIncorrectDelta,
    learn: null,
    learnC: null,
    streak: state.correctStreak,
    streakC: state.eloStreakDelta,
  };
}

/**
 * Elo mastery = P(correct on an average item of the topic) = logistic(ability - topic difficulty);
 * base = the same for a new student (ability 0).
 */
export function eloMastery(state: LearnerState, params: TopicParams): ExplainedScore {
  const score = eloProbability(state.eloAbility, params.topicDifficulty);
  return { score, explanation: explanationFromNumbers(eloExplanationNumbers(state, params), score) };
}
