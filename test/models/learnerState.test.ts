import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { explanationTotal } from "../../models/explanation.ts";
import {
  applyEvent,
  batchPlan,
  bktMastery,
  eloMastery,
  firstIngestedCopies,
  initialLearnerState,
  type LearnerEvent,
  type LearnerState,
  replayEvents,
  replayOrder,
  statesBefore,
  type TopicParams,
  updatePlan,
} from "../../models/learnerState.ts";
import { topicParamsArb } from "./topicParamsArb.ts";

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
    expect(s1).toEqual({ ...s0, lastTs: 30, lastEventId: "e2", eventN: 3 });
  });

  it("explanations sum with their base to the score (BKT base = prior, Elo base = new student)", () => {
    fc.assert(
      fc.property(fc.array(eventArb, { maxLength: 40 }), topicParamsArb, (events, params) => {
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
      fc.property(fc.array(eventArb, { maxLength: 40 }), topicParamsArb, fc.nat(), (events, params, cut) => {
        const ordered = replayOrder(events);
        let s: LearnerState = initialLearnerState(params);
        for (const e of ordered) s = JSON.parse(JSON.stringify(applyEvent(s, e, params))) as LearnerState;
        const batch = replayEvents(events, params);
        const k = ordered.length === 0 ? 0 : cut % ordered.length;
        const resumed = replayEvents(ordered.slice(k), params, replayEvents(ordered.slice(0, k), params));
        expect(s).toEqual(batch);
        expect(resumed).toEqual(batch);
      }),
      { numRuns: 300 },
    );
  });
});

/**
 * One arrival of an event copy: which event (its id), its content, and the batch it arrives in.
 * Copies of one id may differ in content (a reused or corrected id): the first ingested must win.
 */
const arrivalArb = fc.record({
  id: fc.integer({ min: 0, max: 11 }),
  type: fc.constantFrom("quiz_attempt", "quiz_attempt", "quiz_attempt", "video"),
  ts: fc.integer({ min: 0, max: 30 }),
  isCorrect: fc.option(fc.boolean(), { freq: 8 }),
  questionId: fc.option(fc.constantFrom("q1", "q2"), { freq: 4 }),
  batchGap: fc.integer({ min: 0, max: 2 }),
});

/** The arrivals as event copies; ingestedAt = the batch number (copies of one batch tie). */
type Arrival = typeof arrivalArb extends fc.Arbitrary<infer T> ? T : never;

function copiesOf(arrivals: readonly Arrival[]): LearnerEvent[][] {
  const batches: LearnerEvent[][] = [[]];
  for (const a of arrivals) {
    for (let g = 0; g < a.batchGap; g++) batches.push([]);
    const b = batches.length - 1;
    batches[b]!.push({
      eventId: `e${a.id}`,
      type: a.type,
      ts: a.ts,
      isCorrect: a.type === "quiz_attempt" ? a.isCorrect : null,
      questionId: a.questionId,
      ingestedAt: b,
    });
  }
  return batches;
}

/**
 * The stream (serving/updater.ts) over an in-memory raw zone: per batch, store the first ingested
 * copy of each new event_id, take the events not yet in the state, and follow updatePlan.
 */
function streamFold(batches: readonly LearnerEvent[][], params: TopicParams): LearnerState | null {
  const stored = new Map<string, LearnerEvent>();
  const seen = new Set<string>();
  let state: LearnerState | null = null;
  for (const batch of batches) {
    for (const e of firstIngestedCopies(batch)) if (!stored.has(e.eventId)) stored.set(e.eventId, e);
    const fresh = replayOrder(
      [...new Set(batch.map((e) => e.eventId))].filter((id) => !seen.has(id)).map((id) => stored.get(id)!),
    );
    if (fresh.length === 0) continue;
    if (updatePlan(state, fresh) === "forward") state = replayEvents(fresh, params, state!);
    else state = replayEvents([...stored.values()], params);
    for (const e of fresh) seen.add(e.eventId);
  }
  return state;
}

/**
 * The incremental batch job (serving/learnerState.ts scoreBktElo) run after some batches, over a
 * raw zone that keeps every copy: dedupe over all copies, then batchPlan on the count at or before
 * the cursor.
 */
function batchJobFold(
  batches: readonly LearnerEvent[][],
  params: TopicParams,
  runAfter: ReadonlySet<number>,
): LearnerState | null {
  const all: LearnerEvent[] = [];
  let state: LearnerState | null = null;
  batches.forEach((batch, b) => {
    all.push(...batch);
    if (!runAfter.has(b) && b !== batches.length - 1) return;
    const d = firstIngestedCopies(all);
    if (d.length === 0) return;
    const s = state;
    const before = s === null ? 0 : d.filter((e) => !afterCursorOf(s, e)).length;
    if (batchPlan(s, before) === "forward")
      state = replayEvents(
        d.filter((e) => afterCursorOf(s!, e)),
        params,
        s!,
      );
    else state = replayEvents(all, params);
  });
  return state;
}

const afterCursorOf = (s: LearnerState, e: LearnerEvent): boolean =>
  s.lastTs === null || e.ts > s.lastTs || (e.ts === s.lastTs && e.eventId > (s.lastEventId ?? ""));

describe("one replay path: stream == batch == full replay", () => {
  it("first ingested copy wins: earlier ingestion, then earlier ts, then the first given", () => {
    const a: LearnerEvent = { ...quiz("x", 5, true), ingestedAt: 2 };
    const b: LearnerEvent = { ...quiz("x", 9, false), ingestedAt: 1 };
    const c: LearnerEvent = { ...quiz("x", 3, false), ingestedAt: 1 };
    const d: LearnerEvent = { ...quiz("x", 3, true), ingestedAt: 1 };
    expect(firstIngestedCopies([a, b, c, d])).toEqual([c]);
    expect(firstIngestedCopies([a, d, c])).toEqual([d]);
    expect(replayEvents([a, b], PARAMS)).toEqual(replayEvents([b], PARAMS));
  });

  it("a late event (older than the last applied one) makes updatePlan replay; later events go forward", () => {
    const s = replayEvents([quiz("a", 10, true)], PARAMS);
    expect(updatePlan(s, [quiz("b", 11, false)])).toBe("forward");
    expect(updatePlan(s, [quiz("0", 10, false)])).toBe("replay");
    expect(updatePlan(s, [quiz("b", 11, false), quiz("z", 9, true)])).toBe("replay");
    expect(updatePlan(null, [quiz("b", 11, false)])).toBe("replay");
    expect(updatePlan({ ...s, eventN: -1 }, [quiz("b", 11, false)])).toBe("replay");
    expect(batchPlan(s, 1)).toBe("forward");
    expect(batchPlan(s, 2)).toBe("replay");
  });

  it("stream-incremental and the incremental batch job equal a full replay, for any arrivals (duplicates, late events)", () => {
    fc.assert(
      fc.property(
        fc.array(arrivalArb, { maxLength: 40 }),
        topicParamsArb,
        fc.array(fc.nat({ max: 40 }), { maxLength: 6 }),
        (arrivals, params, runs) => {
          const batches = copiesOf(arrivals);
          const full = arrivals.length === 0 ? null : replayEvents(batches.flat(), params);
          expect(streamFold(batches, params)).toEqual(full);
          expect(batchJobFold(batches, params, new Set(runs))).toEqual(full);
          if (full !== null) expect(full.eventN).toBe(new Set(arrivals.map((a) => a.id)).size);
        },
      ),
      { numRuns: 400 },
    );
  });

  it("statesBefore(t) equals the replay of the events with ts < t", () => {
    fc.assert(
      fc.property(
        fc.array(arrivalArb, { maxLength: 30 }),
        topicParamsArb,
        fc.array(fc.integer({ min: 0, max: 32 }), { maxLength: 5 }),
        (arrivals, params, times) => {
          const events = copiesOf(arrivals).flat();
          const ts = [...times].sort((x, y) => x - y);
          const states = statesBefore(events, params, ts);
          ts.forEach((t, i) => {
            const upTo = firstIngestedCopies(events).filter((e) => e.ts < t);
            expect(states[i]).toEqual(replayEvents(upTo, params));
          });
        },
      ),
      { numRuns: 200 },
    );
  });
});
