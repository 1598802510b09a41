import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  KIND_PRACTICE,
  KIND_QUIZ,
  type LatentEvent,
  LatentFilter,
  type LatentParams,
} from "../../models/latentFilter.ts";
import { servedFromLatent, type TopicCalibration } from "../../models/servedMastery.ts";
import { latentDecay, latentExplanation } from "../../serving/latentScoring.ts";
import type { MasteryViewRow } from "../../serving/masteryReadStore.ts";
import { decayServedRow } from "../../serving/masteryView.ts";
import { servedExplanation } from "../../serving/servedScoring.ts";
import {
  latentEventArb as eventArb,
  LATENT_TEST_PARAMS,
  latentEvents as toEvents,
} from "../models/latentFixtures.ts";

// Round 16 (docs/benchmarks.md "Round 16 (valid12)"): with a forgetting spread, the estimate is carried from the
// pair's last event to the scoring time by the deterministic decay GET /mastery applies to a stored row.

const DAY_MS = 86_400_000;
const PARAMS: LatentParams = LATENT_TEST_PARAMS;

const filter = (params: LatentParams) =>
  new LatentFilter({
    version: 1,
    bins: 40,
    params,
    topicPriorMean: { T: 0.4 },
    intervalScale: 1.1,
    fit: { logLikPerObs: 0, observations: 0, sequences: 0, evaluations: 0 },
  });

/** The explanation's numbers GET /mastery reads (score, interval, P(correct), days since the last event). */
function readBack(row: Pick<MasteryViewRow, "mastery_score" | "explanation">) {
  const e = JSON.parse(row.explanation) as {
    interval: { lo: number; hi: number };
    pCorrect: number;
    evidence: { daysSinceLast: number | null };
  };
  return {
    score: row.mastery_score,
    lo: e.interval.lo,
    hi: e.interval.hi,
    pCorrect: e.pCorrect,
    daysSinceLast: e.evidence.daysSinceLast,
  };
}

const close = (a: ReturnType<typeof readBack>, b: ReturnType<typeof readBack>) => {
  expect(a.score).toBeCloseTo(b.score, 12);
  expect(a.lo).toBeCloseTo(b.lo, 12);
  expect(a.hi).toBeCloseTo(b.hi, 12);
  expect(a.pCorrect).toBeCloseTo(b.pCorrect, 12);
  expect(a.daysSinceLast).toBeCloseTo(b.daysSinceLast ?? Number.NaN, 9);
};

const row = (
  source: "latent" | "served",
  asOfMs: number,
  score: number,
  explanation: unknown,
): MasteryViewRow => ({
  topic_id: "T",
  mastery_score: score,
  score_source: source,
  model_version: "latent-test",
  as_of: new Date(asOfMs),
  explanation: JSON.stringify(explanation),
  last_updated: new Date(asOfMs),
  name: null,
  chapter_id: null,
  subject_id: null,
  course_id: null,
});

const cal: TopicCalibration = { guess: 0.2, slip: 0.1, halfLifeDays: 30, base: 0.5 };

describe("the latent filter's as-of step (round 16: asOfForgetting decay)", () => {
  it("known answer: the estimate at the scoring time is the last event's, decayed towards the floor by 2^(-t / h)", () => {
    const prm: LatentParams = { ...PARAMS, forgetSpread: 0.75, asOfForgetting: "decay" };
    const f = filter(prm);
    const events: LatentEvent[] = [
      { t: 0, kind: KIND_QUIZ, n: 1, k: 1 },
      { t: 3, kind: KIND_QUIZ, n: 1, k: 1 },
      { t: 9, kind: KIND_PRACTICE, n: 6, k: 5 },
    ];
    const atLast = f.predict("T", events, 9);
    const later = f.predict("T", events, 49);
    // 40 idle days at a 20-day half-life: a quarter of the distance to the floor 0.1 is left.
    expect(later.score).toBeCloseTo(0.1 + (atLast.score - 0.1) / 4, 12);
    expect(later.lo).toBeCloseTo(0.1 + (atLast.lo - 0.1) / 4, 12);
    expect(later.hi).toBeCloseTo(0.1 + (atLast.hi - 0.1) / 4, 12);
    // Linear emission: P(correct) decays towards guess + (1 - guess - slip) floor = 0.27.
    expect(later.pCorrect).toBeCloseTo(0.27 + (atLast.pCorrect - 0.27) / 4, 12);
    expect(later.daysSinceLast).toBe(40);
    // The interval narrows with idle time (round 15's as-of step widened it), the factors still sum.
    expect(later.hi - later.lo).toBeLessThan(atLast.hi - atLast.lo);
    const sum = later.base + Object.values(later.contributions).reduce((s, v) => s + v, 0);
    expect(sum).toBeCloseTo(later.score, 12);
    // The score is round 15's (the spread keeps every forgetting step's mean; round 15's grid step keeps it
    // to ~1e-9, the linear placement's rounding), its interval is not.
    const r15 = filter({ ...PARAMS, forgetSpread: 0.75 }).predict("T", events, 49);
    expect(later.score).toBeCloseTo(r15.score, 8);
    expect(r15.hi - r15.lo).toBeGreaterThan(later.hi - later.lo + 0.05);
    // Between events the filter is round 15's: at the last event the two models agree to the bit.
    expect(atLast).toEqual(filter({ ...PARAMS, forgetSpread: 0.75 }).predict("T", events, 9));
  });

  for (const [label, params, scale] of [
    ["linear emission, global floor", { ...PARAMS, forgetSpread: 0.5 }, "identity"],
    ["logistic emission", { ...PARAMS, forgetSpread: 1, slope: 4, threshold: 0.5 }, "identity"],
    ["durable share", { ...PARAMS, forgetSpread: 0.25, durableShare: 0.3, floor: 0 }, "identity"],
  ] as const)
    it(`property: GET /mastery's decay of a row stored at any as-of equals the scoring at the request time (${label})`, () => {
      const f = filter({ ...params, asOfForgetting: "decay" });
      fc.assert(
        fc.property(
          fc.array(eventArb, { minLength: 1, maxLength: 25 }),
          fc.integer({ min: 0, max: 60 * DAY_MS }),
          fc.integer({ min: 0, max: 400 * DAY_MS }),
          (raw, storedMs, elapsedMs) => {
            const events = toEvents(raw);
            const last = events[events.length - 1]!.t;
            // The stream stores a row as of the pair's last event, the batch as of its scoring time; stored
            // times are whole milliseconds.
            const aMs = Math.ceil(last * DAY_MS) + storedMs;
            const tMs = aMs + elapsedMs;
            const a = aMs / DAY_MS;
            const t = tMs / DAY_MS;
            const estA = f.predict("T", events, a);
            const estT = f.predict("T", events, t);
            const latentA = latentExplanation(estA, latentDecay(f.json.params, estA));
            const latentT = latentExplanation(estT, latentDecay(f.json.params, estT));
            const now = new Date(tMs);
            close(
              readBack(decayServedRow(row("latent", aMs, estA.score, latentA), now)),
              readBack(row("latent", tMs, estT.score, latentT)),
            );
            // The served row on a scale linear in K (identity) decays the same way.
            const sA = servedFromLatent(estA, f.json.params, cal, scale, cal);
            const sT = servedFromLatent(estT, f.json.params, cal, scale, cal);
            close(
              readBack(decayServedRow(row("served", aMs, sA.score, servedExplanation(sA)), now)),
              readBack(row("served", tMs, sT.score, servedExplanation(sT))),
            );
          },
        ),
      );
    });

  it("leaves a model without a spread as it was: the fit sets the as-of step only with a spread", () => {
    const seqs = Array.from({ length: 60 }, (_, i) => ({
      student: `s${i}`,
      topic: "T",
      events: toEvents(
        Array.from({ length: 10 }, (_, j) => ({
          dt: 2 + ((i * j) % 5),
          kind: KIND_QUIZ,
          n: 1,
          frac: (i + j) % 3 ? 1 : 0,
        })),
      ),
    }));
    const opts = { maxEvaluations: 40, studentEffect: false } as const;
    const plain = LatentFilter.fit(seqs, opts);
    const decay = LatentFilter.fit(seqs, { ...opts, asOfForgetting: "decay" });
    expect(decay.toJSON()).toEqual(plain.toJSON());
    const spread = LatentFilter.fit(seqs, { ...opts, forgetSpread: 0.5, asOfForgetting: "decay" });
    expect(spread.json.params.asOfForgetting).toBe("decay");
    expect(spread.json.params.forgetSpread).toBe(0.5);
    const r15 = LatentFilter.fit(seqs, { ...opts, forgetSpread: 0.5, asOfForgetting: "spread" });
    expect(r15.json.params.asOfForgetting).toBeUndefined();
    expect({ ...spread.json.params, asOfForgetting: undefined }).toEqual({
      ...r15.json.params,
      asOfForgetting: undefined,
    });
  });
});
