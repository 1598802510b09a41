import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  initialLearnerState,
  type LearnerEvent,
  type LearnerState,
  replayEvents,
  type TopicParams,
} from "../../models/learnerState.ts";
import { foldKeyRun, type KeyRuns, NO_ANSWER } from "../../models/learnerStateFold.ts";

const prob = (min: number, max: number) => fc.double({ min, max, noNaN: true });

const paramsArb: fc.Arbitrary<TopicParams> = fc
  .record({
    prior: prob(0.01, 0.99),
    learn: prob(0, 0.5),
    forget: prob(0, 0.2),
    guess: prob(0.01, 0.45),
    slip: prob(0.01, 0.45),
    eloA: prob(0.05, 2),
    eloB: prob(0, 0.5),
    topicDifficulty: prob(-3, 3),
    q1: prob(-2, 2),
    q2: prob(-2, 2),
  })
  .map((r) => ({
    bkt: { prior: r.prior, learn: r.learn, forget: r.forget, guess: r.guess, slip: r.slip },
    eloA: r.eloA,
    eloB: r.eloB,
    topicDifficulty: r.topicDifficulty,
    itemOffsets: new Map([
      ["q1", r.q1],
      ["q2", r.q2],
    ]),
  }));

const eventArb = fc.record({
  type: fc.constantFrom("quiz_attempt", "quiz_attempt", "quiz_attempt", "video", "practice"),
  isCorrect: fc.option(fc.boolean(), { freq: 6 }),
  questionId: fc.option(fc.constantFrom("q1", "q2", "q-unknown"), { freq: 5 }),
});

/** The columns of one key's events, as storage/learnerEventColumns.ts reads them. */
function columns(events: readonly LearnerEvent[], params: TopicParams): KeyRuns {
  const n = events.length;
  const runs: KeyRuns = {
    keyStart: Int32Array.from([0, n]),
    answer: new Int8Array(n),
    itemOffset: new Float64Array(n),
    ts: new Float64Array(n),
  };
  events.forEach((e, i) => {
    runs.answer[i] = e.type !== "quiz_attempt" || e.isCorrect === null ? NO_ANSWER : e.isCorrect ? 1 : 0;
    runs.itemOffset[i] = e.questionId === null ? 0 : (params.itemOffsets.get(e.questionId) ?? 0);
    runs.ts[i] = e.ts;
  });
  return runs;
}

function expectSameBits(a: LearnerState, b: LearnerState): void {
  for (const k of Object.keys(a) as (keyof LearnerState)[]) {
    if (!Object.is(a[k], b[k])) expect({ field: k, value: a[k] }).toEqual({ field: k, value: b[k] });
  }
  expect(Object.keys(a).sort()).toEqual(Object.keys(b).sort());
}

describe("models/learnerStateFold", () => {
  it("folds a key's columns to exactly applyEvent's state (every field, bit for bit), from new or stored", () => {
    fc.assert(
      fc.property(
        paramsArb,
        fc.array(eventArb, { maxLength: 60 }),
        fc.integer({ min: 0, max: 60 }),
        (params, raw, cut) => {
          const events: LearnerEvent[] = raw.map((e, i) => ({
            eventId: `e${String(i).padStart(3, "0")}`,
            type: e.type,
            ts: 1_000_000 + i * 1000,
            isCorrect: e.type === "quiz_attempt" ? e.isCorrect : null,
            questionId: e.questionId,
          }));
          const expected = replayEvents(events, params);
          const init = initialLearnerState(params);
          const last = events.at(-1)?.eventId ?? "";
          expectSameBits(foldKeyRun(columns(events, params), 0, params, init, last), expected);
          // Continuing from a stored state (the incremental run) reaches the same state.
          const c = Math.min(cut, events.length);
          const stored = replayEvents(events.slice(0, c), params);
          const rest = events.slice(c);
          expectSameBits(
            foldKeyRun(columns(rest, params), 0, params, stored, rest.at(-1)?.eventId ?? ""),
            expected,
          );
        },
      ),
      { numRuns: 300 },
    );
  });

  it("known answer: one correct attempt with the default-like parameters", () => {
    const params: TopicParams = {
      bkt: { prior: 0.3, learn: 0.1, forget: 0, guess: 0.2, slip: 0.1 },
      eloA: 0.4,
      eloB: 0.05,
      topicDifficulty: 0,
      itemOffsets: new Map(),
    };
    const runs: KeyRuns = {
      keyStart: Int32Array.from([0, 1]),
      answer: Int8Array.from([1]),
      itemOffset: new Float64Array(1),
      ts: Float64Array.from([5]),
    };
    const s = foldKeyRun(runs, 0, params, initialLearnerState(params), "e1");
    // Bayes: 0.3*0.9 / (0.3*0.9 + 0.7*0.2) = 0.27/0.41; then learn: + (0.14/0.41)*0.1.
    expect(s.pMastery).toBeCloseTo(0.27 / 0.41 + (0.14 / 0.41) * 0.1, 12);
    // Elo: K(0) = 0.4, p = 0.5 -> ability 0.2.
    expect(s.eloAbility).toBeCloseTo(0.2, 12);
    expect(s).toMatchObject({
      bktN: 1,
      eloN: 1,
      correctN: 1,
      correctStreak: 1,
      lastTs: 5,
      lastEventId: "e1",
    });
  });
});
