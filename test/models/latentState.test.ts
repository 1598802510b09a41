import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { LATENT_FACTORS, LatentFilter, type LatentParams } from "../../models/latentFilter.ts";
import {
  decodeLatentState,
  encodeLatentState,
  foldLatent,
  LATENT_STATE_FORMAT,
  type LatentSourceEvent,
  latentDays,
  latentEventOf,
  latentStateBytes,
} from "../../models/latentState.ts";
import { LATENT_TEST_PARAMS } from "./latentFixtures.ts";

const PARAMS: LatentParams = LATENT_TEST_PARAMS;

const filter = (bins = 40) =>
  new LatentFilter({
    version: 1,
    bins,
    params: PARAMS,
    topicPriorMean: { algebra: 0.6 },
    fit: { logLikPerObs: 0, observations: 0, sequences: 0, evaluations: 0 },
    intervalScale: 1.3,
  });

const DAY_US = 86_400_000_000;
const T0 = Date.UTC(2026, 0, 5) * 1000;

/** Stored events in time order: every type, graded or not, gaps from 0 to 20 days. */
const eventsArb = fc
  .array(
    fc.record({
      gapUs: fc.integer({ min: 0, max: 20 * DAY_US }),
      type: fc.constantFrom(
        "quiz_attempt",
        "quiz_attempt",
        "practice",
        "video",
        "assignment",
        "chatbot",
        "other",
      ),
      correct: fc.option(fc.boolean(), { freq: 6 }),
      attempts: fc.integer({ min: 1, max: 10 }),
      frac: fc.double({ min: 0, max: 1, noNaN: true }),
    }),
    { maxLength: 40 },
  )
  .map((raw) => {
    let ts = T0;
    return raw.map((r): LatentSourceEvent => {
      ts += r.gapUs;
      return {
        type: r.type,
        ts,
        isCorrect: r.type === "quiz_attempt" ? r.correct : null,
        attempts: r.type === "practice" ? r.attempts : null,
        correctCount: r.type === "practice" ? Math.round(r.frac * r.attempts) : null,
        scorePct: r.type === "assignment" ? 100 * r.frac : null,
      };
    });
  });

describe("models/latentState", () => {
  it("maps stored events to the filter's: graded quiz / practice / assignment, ungraded others, unknown types skipped", () => {
    const ts = T0 + 3 * DAY_US;
    expect(latentEventOf({ type: "quiz_attempt", ts, isCorrect: true })).toEqual({
      t: ts / DAY_US,
      kind: 0,
      n: 1,
      k: 1,
    });
    expect(latentEventOf({ type: "quiz_attempt", ts, isCorrect: null })).toEqual({
      t: ts / DAY_US,
      kind: 0,
      n: 0,
      k: 0,
    });
    expect(
      latentEventOf({ type: "practice", ts, isCorrect: null, attempts: 5, correctCount: 7 }),
    ).toMatchObject({
      kind: 1,
      n: 5,
      k: 5,
    });
    expect(latentEventOf({ type: "assignment", ts, isCorrect: null, scorePct: 80 })).toMatchObject({
      kind: 3,
      n: 1,
      k: 0.8,
    });
    expect(latentEventOf({ type: "video", ts, isCorrect: null })).toMatchObject({ kind: 2, n: 0, k: 0 });
    expect(latentEventOf({ type: "other", ts, isCorrect: null })).toBeNull();
    expect(latentDays(DAY_US * 2)).toBe(2);
  });

  it("encodes a state in 264 bytes (40 cells) and decodes the same bits; refuses another grid or format", () => {
    const f = filter();
    const s = foldLatent(f, "algebra", [
      { type: "quiz_attempt", ts: T0, isCorrect: true },
      { type: "video", ts: T0 + DAY_US, isCorrect: null },
      { type: "quiz_attempt", ts: T0 + 2 * DAY_US, isCorrect: false },
    ]);
    const bytes = encodeLatentState(s);
    expect(bytes.length).toBe(latentStateBytes(40));
    expect(bytes.length).toBe(8 + 24 + 8 * LATENT_FACTORS.length + 4 * 40);
    expect(bytes.length).toBe(264);
    const back = decodeLatentState(bytes, 40)!;
    expect(back).toEqual(s);
    expect(encodeLatentState(back)).toEqual(bytes);
    expect(back.events).toBe(3);
    expect(back.observations).toBe(2);
    expect(back.lastT).toBe((T0 + 2 * DAY_US) / DAY_US);
    // Another grid size, another format, a truncated value: refused (the key is rebuilt), not misread.
    expect(decodeLatentState(bytes, 41)).toBeNull();
    const other = Uint8Array.from(bytes);
    other[0] = LATENT_STATE_FORMAT + 1;
    expect(decodeLatentState(other, 40)).toBeNull();
    expect(decodeLatentState(bytes.subarray(0, 200), 40)).toBeNull();
    const s24 = foldLatent(filter(24), "algebra", [{ type: "quiz_attempt", ts: T0, isCorrect: true }]);
    expect(decodeLatentState(encodeLatentState(s24), 40)).toBeNull();
    expect(decodeLatentState(encodeLatentState(s24), 24)).toEqual(s24);
  });

  it("a new pair's state is the topic's prior: estimate = predict without events", () => {
    const f = filter();
    const s = f.init("algebra");
    expect(s.events).toBe(0);
    expect(Number.isNaN(s.lastT)).toBe(true);
    const e = f.estimate(s, 100);
    expect(e).toEqual(f.predict("algebra", [], 100));
    expect(e.score).toBeCloseTo(0.6, 1);
    expect(e.daysSinceLast).toBeNull();
    // Unknown topics start from the global prior mean.
    expect(f.estimate(f.init("geometry"), 0).score).toBeCloseTo(PARAMS.priorMean, 1);
  });

  it("property: continuing a decoded state with the rest of the events gives the replay's bytes, at any split", () => {
    const f = filter();
    fc.assert(
      fc.property(eventsArb, fc.nat(), fc.nat(), (events, a, b) => {
        const whole = encodeLatentState(foldLatent(f, "algebra", events));
        // Stop after i events, store, decode, go on to j, store again, then finish: same bytes.
        const i = events.length === 0 ? 0 : a % (events.length + 1);
        const j = i + (events.length - i === 0 ? 0 : b % (events.length - i + 1));
        let bytes = encodeLatentState(foldLatent(f, "algebra", events.slice(0, i)));
        bytes = encodeLatentState(
          foldLatent(f, "algebra", events.slice(i, j), decodeLatentState(bytes, 40)!),
        );
        bytes = encodeLatentState(foldLatent(f, "algebra", events.slice(j), decodeLatentState(bytes, 40)!));
        expect(bytes).toEqual(whole);
      }),
    );
  });

  it("property: the estimate is predict's, and its factors sum with the base to the score", () => {
    const f = filter();
    fc.assert(
      fc.property(eventsArb, fc.double({ min: 0, max: 30, noNaN: true }), (events, later) => {
        const s = foldLatent(f, "algebra", events);
        const evs = events.map(latentEventOf).filter((e) => e !== null);
        const asOf = (evs.at(-1)?.t ?? 0) + later;
        const est = f.estimate(s, asOf);
        expect(est).toEqual(f.predict("algebra", evs, asOf));
        const sum = Object.values(est.contributions).reduce((x, y) => x + y, 0);
        expect(est.base + sum).toBeCloseTo(est.score, 9);
        expect(est.lo).toBeLessThanOrEqual(est.score);
        expect(est.hi).toBeGreaterThanOrEqual(est.score);
        expect(est.events).toBe(evs.length);
        // Stored as float32: the posterior still sums to 1 (to float32 precision) with no negative mass.
        let total = 0;
        for (const v of s.p) {
          expect(v).toBeGreaterThanOrEqual(0);
          total += v;
        }
        expect(total).toBeCloseTo(1, 5);
      }),
    );
  });

  it("a correct answer moves the stored state's score up and a wrong one down, by known directions", () => {
    const f = filter();
    const s0 = f.init("algebra");
    const up = foldLatent(
      f,
      "algebra",
      [{ type: "quiz_attempt", ts: T0, isCorrect: true }],
      f.init("algebra"),
    );
    const down = foldLatent(
      f,
      "algebra",
      [{ type: "quiz_attempt", ts: T0, isCorrect: false }],
      f.init("algebra"),
    );
    const at = T0 / DAY_US;
    const m0 = f.estimate(s0, at).score;
    expect(f.estimate(up, at).score).toBeGreaterThan(m0);
    expect(f.estimate(down, at).score).toBeLessThan(m0);
    // Forgetting after the answer: 20 days (one half-life) later the score is lower, towards the floor.
    expect(f.estimate(up, at + 20).score).toBeLessThan(f.estimate(up, at).score);
    expect(f.estimate(up, at + 20).contributions.forgetting).toBeLessThan(0);
  });
});
