import fc from "fast-check";
import type { TopicParams } from "../../models/learnerState.ts";

/** Plausible per-topic BKT/Elo parameters for property tests (one item offset, on "q2"). */
export const topicParamsArb: fc.Arbitrary<TopicParams> = fc.record({
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
