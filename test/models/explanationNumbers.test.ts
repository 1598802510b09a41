import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { eloProbability } from "../../models/elo.ts";
import { explain, type Factor } from "../../models/explanation.ts";
import {
  applyEvent,
  bktExplanationNumbers,
  bktMastery,
  eloExplanationNumbers,
  eloMastery,
  initialLearnerState,
  type LearnerEvent,
  type LearnerState,
  type TopicParams,
} from "../../models/learnerState.ts";
import { explanationText, withExplanationTexts } from "../../serving/storedExplanations.ts";
import { EXPLANATION_NUMBER_COLUMNS } from "../../storage/schema.ts";
import { topicParamsArb } from "./topicParamsArb.ts";

// The BKT / Elo explanation builders as they were before the batch job stored numbers instead of texts
// (models/learnerState.ts at main 2242ae9, copied): the served text must stay byte for byte theirs.
function oldBktExplanation(state: LearnerState, params: TopicParams): string {
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
  return JSON.stringify(explain(params.bkt.prior, factors, state.pMastery));
}
function oldEloExplanation(state: LearnerState, params: TopicParams): string {
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
  return JSON.stringify(explain(base, factors, score));
}

const eventsArb = fc.array(
  fc.record({
    correct: fc.option(fc.boolean(), { freq: 6 }),
    question: fc.constantFrom("q1", "q2"),
    type: fc.constantFrom("quiz_attempt", "quiz_attempt", "video"),
  }),
  { maxLength: 40 },
);

/** The state after `events` (in order), so the numbers are ones the fold really produces. */
function stateAfter(
  events: { correct: boolean | null; question: string; type: string }[],
  params: TopicParams,
): LearnerState {
  let s = initialLearnerState(params);
  events.forEach((e, i) => {
    const ev: LearnerEvent = {
      eventId: `e${i}`,
      type: e.type,
      ts: i,
      isCorrect: e.correct,
      questionId: e.question,
    };
    s = applyEvent(s, ev, params);
  });
  return s;
}

/** The numbers as the batch job stores them: one row of student_mastery's EXPLANATION_NUMBER_COLUMNS. */
function storedRow(n: ReturnType<typeof bktExplanationNumbers>, score: number) {
  const values = [
    n.base,
    n.correct,
    n.correctC,
    n.incorrect,
    n.incorrectC,
    n.learn,
    n.learnC,
    n.streak,
    n.streakC,
  ];
  return {
    mastery_score: score,
    explanation: "",
    ...Object.fromEntries(EXPLANATION_NUMBER_COLUMNS.map((c, i) => [c, values[i]])),
  };
}

describe("BKT / Elo explanations stored as numbers, rendered at read time", () => {
  it("stored numbers then rendered == the old builders' text, byte for byte (fast-check)", () => {
    fc.assert(
      fc.property(topicParamsArb, eventsArb, (params, events) => {
        const s = stateAfter(events, params);
        const bkt = bktMastery(s, params);
        const elo = eloMastery(s, params);
        const [b, e] = withExplanationTexts([
          storedRow(bktExplanationNumbers(s, params), bkt.score),
          storedRow(eloExplanationNumbers(s, params), elo.score),
        ]);
        expect(b!.explanation).toBe(oldBktExplanation(s, params));
        expect(e!.explanation).toBe(oldEloExplanation(s, params));
        // The models' own builders (the stream writes their text) give the same bytes.
        expect(JSON.stringify(bkt.explanation)).toBe(b!.explanation);
        expect(JSON.stringify(elo.explanation)).toBe(e!.explanation);
        // The number columns are taken off the row.
        expect(Object.keys(b!).sort()).toEqual(["explanation", "mastery_score"]);
      }),
      { numRuns: 1000 },
    );
  });

  it("a known case: right, wrong, right under the default BKT (prior 0.5, learn 0.1)", () => {
    const params: TopicParams = {
      bkt: { prior: 0.5, learn: 0.1, forget: 0, guess: 0.2, slip: 0.1 },
      eloA: 1,
      eloB: 0.5,
      topicDifficulty: 0,
      itemOffsets: new Map(),
    };
    const s = stateAfter(
      [true, false, true].map((c) => ({ correct: c, question: "q1", type: "quiz_attempt" })),
      params,
    );
    const n = bktExplanationNumbers(s, params);
    expect(n).toMatchObject({ base: 0.5, correct: 1, incorrect: 1, learn: 0.1, streak: 1 });
    const text = explanationText("", n, s.pMastery);
    const e = JSON.parse(text) as { base: number; factors: Factor[]; rest: number; score: number };
    expect(e.factors.map((f) => f.name)).toHaveLength(3);
    expect(e.base + e.rest + e.factors.reduce((a, f) => a + f.contribution, 0)).toBeCloseTo(s.pMastery, 12);
  });

  it("a row stored with its text (other sources, the stream) keeps it; a row without numbers too", () => {
    const n = bktExplanationNumbers(initialLearnerState(PARAMS0), PARAMS0);
    expect(explanationText('{"base":1}', n, 0.5)).toBe('{"base":1}');
    expect(explanationText('{"base":1}', null, 0.5)).toBe('{"base":1}');
    const [r] = withExplanationTexts([
      {
        mastery_score: 0.3,
        explanation: '{"x":1}',
        ...Object.fromEntries(EXPLANATION_NUMBER_COLUMNS.map((c) => [c, null])),
      },
    ]);
    expect(r).toEqual({ mastery_score: 0.3, explanation: '{"x":1}' });
  });
});

const PARAMS0: TopicParams = {
  bkt: { prior: 0.3, learn: 0.2, forget: 0, guess: 0.2, slip: 0.1 },
  eloA: 1,
  eloB: 0.5,
  topicDifficulty: 0,
  itemOffsets: new Map(),
};
