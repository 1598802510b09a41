import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { explanationTotal } from "../../models/explanation.ts";
import {
  applyEvent,
  bktMastery,
  eloMastery,
  initialLearnerState,
  type LearnerEvent,
  type LearnerState,
  replayEvents,
  type TopicParams,
} from "../../models/learnerState.ts";

const PARAMS: TopicParams = {
  bkt: { prior: 0.3, learn: 0.2, forget: 0, guess: 0.2, slip: 0.1 },
  eloA: 1,
  eloB: 0.5,
  topicDifficulty: 0,
  itemOffsets: new Map([["q1", 0.5]]),
};

const quiz = (
  eventId: string,
  ts: number,
  isCorrect: boolean,
  questionId: string | null = "q1",
): LearnerEvent => ({
  eventId,
  type: "quiz_attempt",
  ts,
  isCorrect,
  questionId,
});

const eventArb = fc.record({
  eventId: fc.string({ minLength: 1, maxLength: 4 }),
  type: fc.constantFrom("quiz_attempt", "quiz_attempt", "quiz_attempt", "video", "practice"),
  ts: fc.integer({ min: 0, max: 1e9 }),
  isCorrect: fc.option(fc.boolean(), { freq: 8 }),
  questionId: fc.option(fc.constantFrom("q1", "q2", "q3"), { freq: 4 }),
});

const paramsArb: fc.Arbitrary<TopicParams> = fc.record({
  bkt: fc.record({
    prior: fc.double({ min: 0.01, max: 0.99, noNaN: true }),
    learn: fc.double({ min: 0, max: 0.5, noNaN: true }),
    forget: fc.double({ min: 0, max: 0.2, noNaN: true }),
    guess: fc.double({ min: 0.01, max: 0.4, noNaN: true }),
    slip: fc.double({ min: 0.01, max: 0.4, noNaN: true }),
  }),
  eloA: fc.double({ min: 0, max: 3, noNaN: true }),
  eloB: fc.double({ min: 0, max: 1, noNaN: true }),
  topicDifficulty: fc.double({ min: -3, max: 3, noNaN: true }),
  itemOffsets: fc.constant(new Map([["q2", -1]])),
});

describe("learner state", () => {
  it("one correct attempt moves BKT and Elo as computed by hand", () => {
    const s = applyEvent(initialLearnerState(PARAMS), quiz("e1", 10, true), PARAMS);
    // BKT: posterior = 0.3*0.9 / (0.3*0.9 + 0.7*0.2) = 0.27/0.41; then + (1 - posterior) * learn 0.2.
    expect(s.pMastery).toBeCloseTo(0.7268292682926829, 15);
    expect(s.bktStreakObsDelta).toBeCloseTo(0.6585365853658537 - 0.3, 15);
    expect(s.bktStreakLearnDelta).toBeCloseTo(0.7268292682926829 - 0.6585365853658537, 15);
    // Elo: difficulty 0 + offset 0.5, p = logistic(-0.5) = 0.3775406687981454, K(0) = 1.
    expect(s.eloAbility).toBeCloseTo(0.6224593312018546, 15);
    expect(eloMastery(s, PARAMS).score).toBeCloseTo(0.6507776782147005, 15);
    expect(s).toMatchObject({
      bktN: 1,
      eloN: 1,
      correctN: 1,
      correctStreak: 1,
      lastTs: 10,
      lastEventId: "e1",
    });
  });

  it("a wrong answer ends the streak and moves its contributions to correct answers / learning", () => {
    let s = replayEvents([quiz("a", 1, true), quiz("b", 2, true)], PARAMS);
    const streak = s.bktStreakObsDelta;
    s = applyEvent(s, quiz("c", 3, false), PARAMS);
    expect(s.correctStreak).toBe(0);
    expect(s.bktCorrectDelta).toBe(streak);
    expect(s.bktStreakObsDelta).toBe(0);
    expect(s.bktIncorrectDelta).toBeLessThan(0);
    expect(s.eloIncorrectDelta).toBeLessThan(0);
  });

  it("events other than quiz attempts (or without is_correct) do not move BKT or Elo", () => {
    const s0 = applyEvent(initialLearnerState(PARAMS), quiz("e1", 10, false), PARAMS);
    const video: LearnerEvent = { eventId: "v", type: "video", ts: 20, isCorrect: null, questionId: null };
    const noAnswer: LearnerEvent = { ...quiz("e2", 30, true), isCorrect: null };
    const s1 = applyEvent(applyEvent(s0, video, PARAMS), noAnswer, PARAMS);
    expect(s1).toEqual({ ...s0, lastTs: 30, lastEventId: "e2" });
  });

  it("explanations sum with their base to the score (BKT base = prior, Elo base = new student)", () => {
    fc.assert(
      fc.property(fc.array(eventArb, { maxLength: 40 }), paramsArb, (events, params) => {
        const s = replayEvents(events, params);
        const b = bktMastery(s, params);
        const e = eloMastery(s, params);
        return (
          b.explanation.base === params.bkt.prior &&
          Math.abs(explanationTotal(b.explanation) - b.score) < 1e-12 &&
          Math.abs(explanationTotal(e.explanation) - e.score) < 1e-12 &&
          b.explanation.factors.length === 3 &&
          b.score > 0 &&
          b.score < 1 &&
          e.score > 0 &&
          e.score < 1
        );
      }),
      { numRuns: 300 },
    );
  });

  it("applying events one at a time (state stored between events) equals replaying them all at once", () => {
    fc.assert(
      fc.property(fc.array(eventArb, { maxLength: 40 }), paramsArb, fc.nat(), (events, params, cut) => {
        let s: LearnerState = initialLearnerState(params);
        for (const e of events) s = JSON.parse(JSON.stringify(applyEvent(s, e, params))) as LearnerState;
        const batch = replayEvents(events, params);
        const k = events.length === 0 ? 0 : cut % events.length;
        const resumed = replayEvents(events.slice(k), params, replayEvents(events.slice(0, k), params));
        expect(s).toEqual(batch);
        expect(resumed).toEqual(batch);
      }),
      { numRuns: 300 },
    );
  });
});
