import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  CENTRE_SHRINK_ANSWERS,
  type CentreLabel,
  centreShiftAt,
  emissionLogit,
  fitCentreShift,
  fitIntercept,
  LatentCentreError,
} from "../../models/latentCentre.ts";
import { KIND_QUIZ, type LatentEvent, LatentFilter, type LatentParams } from "../../models/latentFilter.ts";
import { LATENT_TEST_PARAMS, latentEventArb, latentEvents } from "./latentFixtures.ts";

// Round 17 (docs/benchmarks.md "Round 17 (valid16)"): the latent centre calibrated by evidence band on the
// proxy labels.

const sigmoid = (z: number) => 1 / (1 + Math.exp(-z));
const EM = { guess: 0.2, slip: 0.1, slope: 4 };
/** Expected counts: a pair's P(correct) under the emission at z, its label answers correct in proportion. */
const label = (z: number, observations: number, answers: number, bias = 0): CentreLabel => {
  const p = (q: number) => EM.guess + (1 - EM.guess - EM.slip) * sigmoid(q);
  return { pCorrect: p(z), observations, answers, correct: answers * p(z + bias) };
};

describe("fitIntercept (Platt intercept on the emission's logit scale)", () => {
  it("known answer: no guess or slip, every z at 0, 70 of 100 correct -> logit(0.7)", () => {
    const d = fitIntercept([0, 0], [60, 40], [42, 28], { guess: 0, slip: 0, slope: 1 });
    expect(d).toBeCloseTo(Math.log(0.7 / 0.3), 9);
  });

  it("property: recovers the bias of labels drawn in proportion from shifted P(correct)", () => {
    fc.assert(
      fc.property(
        fc.array(fc.double({ min: -2.5, max: 2.5, noNaN: true }), { minLength: 1, maxLength: 40 }),
        fc.double({ min: -1.5, max: 1.5, noNaN: true }),
        (zs, bias) => {
          const ls = zs.map((z) => label(z, 3, 10, bias));
          const d = fitIntercept(
            ls.map((l) => emissionLogit(l.pCorrect, EM)),
            ls.map((l) => l.answers),
            ls.map((l) => l.correct),
            EM,
          );
          expect(d).toBeCloseTo(bias, 5);
        },
      ),
    );
  });
});

describe("fitCentreShift (round 17)", () => {
  it("known answer: a band biased by +0.6 on the logit scale moves by its relative bias, shrunk, over the slope", () => {
    // Bands 0 / 1-4 / 5-14 / 15+; only the 15+ band's answers run 0.6 above the filter's P(correct).
    const ls: CentreLabel[] = [];
    for (const z of [-1, 0, 1]) {
      ls.push(label(z, 0, 100));
      ls.push(label(z, 3, 100));
      ls.push(label(z, 8, 100));
      ls.push(label(z, 20, 100, 0.6));
    }
    const bands = fitCentreShift(ls, EM);
    expect(bands.map((b) => b.from)).toEqual([0, 1, 5, 15]);
    const pooled = fitIntercept(
      ls.map((l) => emissionLogit(l.pCorrect, EM)),
      ls.map((l) => l.answers),
      ls.map((l) => l.correct),
      EM,
    );
    const w = 300 / (300 + CENTRE_SHRINK_ANSWERS);
    expect(bands[3]!.delta).toBeCloseTo(0.6, 6);
    for (const b of bands.slice(0, 3)) expect(b.delta).toBeCloseTo(0, 6);
    for (const b of bands) expect(b.shift).toBeCloseTo(((b.delta - pooled) * w) / EM.slope, 9);
    expect(bands[3]!.shift).toBeGreaterThan(0);
    for (const b of bands.slice(0, 3)) expect(b.shift).toBeLessThan(0);
    expect(bands.map((b) => b.pairs)).toEqual([3, 3, 3, 3]);
    expect(centreShiftAt(bands, 0)).toBe(bands[0]!.shift);
    expect(centreShiftAt(bands, 4)).toBe(bands[1]!.shift);
    expect(centreShiftAt(bands, 14)).toBe(bands[2]!.shift);
    expect(centreShiftAt(bands, 300)).toBe(bands[3]!.shift);
    expect(centreShiftAt(undefined, 7)).toBe(0);
  });

  it("property: a bias common to every band (the label week's learning) moves no band", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            z: fc.double({ min: -2, max: 2, noNaN: true }),
            obs: fc.integer({ min: 0, max: 40 }),
            n: fc.integer({ min: 3, max: 12 }),
          }),
          { minLength: 1, maxLength: 60 },
        ),
        fc.double({ min: -1, max: 1, noNaN: true }),
        (rows, common) => {
          const bands = fitCentreShift(
            rows.map((r) => label(r.z, r.obs, r.n, common)),
            EM,
          );
          for (const b of bands) expect(Math.abs(b.shift)).toBeLessThan(1e-6);
        },
      ),
      {
        // Found by CI (seed 333829711): plain Newton stopped where the curvature was not negative.
        examples: [
          [
            [
              { z: 1.5365531851963923, obs: 0, n: 3 },
              { z: 0, obs: 1, n: 3 },
            ],
            -0.999999999999997,
          ],
        ],
        numRuns: 500,
      },
    );
  });

  it("a band without labelled answers gets no shift", () => {
    const bands = fitCentreShift([label(0.3, 2, 5, 0.4), label(-0.3, 3, 5, 0.4)], EM);
    expect(bands[0]).toEqual({ from: 0, shift: 0, delta: 0, pairs: 0, answers: 0 });
    expect(bands[2]!.shift).toBe(0);
    expect(bands[1]!.shift).toBeCloseTo(0, 9);
  });

  it("rejects a linear emission and impossible labels, naming the fix", () => {
    expect(() => fitCentreShift([], { guess: 0.2, slip: 0.1, slope: 0 })).toThrow(/logistic/);
    expect(() => fitCentreShift([{ pCorrect: 0.5, observations: 1, answers: 3, correct: 4 }], EM)).toThrow(
      LatentCentreError,
    );
  });
});

describe("LatentFilter.estimate with a centre shift (round 17)", () => {
  const PRM: LatentParams = { ...LATENT_TEST_PARAMS, slope: 4, threshold: 0.5 };
  const filter = (centreShiftByEvidence?: { from: number; shift: number }[]) =>
    new LatentFilter({
      version: 1,
      bins: 40,
      params: PRM,
      topicPriorMean: { T: 0.4 },
      intervalScale: 1.1,
      fit: { logLikPerObs: 0, observations: 0, sequences: 0, evaluations: 0 },
      ...(centreShiftByEvidence !== undefined
        ? {
            centreShiftByEvidence: centreShiftByEvidence.map((b) => ({
              ...b,
              delta: 0,
              pairs: 1,
              answers: 1,
            })),
          }
        : {}),
    });

  it("known answer: the score and both ends move by the band's shift, P(correct) rises with it", () => {
    const events: LatentEvent[] = [
      { t: 0, kind: KIND_QUIZ, n: 1, k: 1 },
      { t: 2, kind: KIND_QUIZ, n: 1, k: 0 },
      { t: 5, kind: KIND_QUIZ, n: 1, k: 1 },
    ];
    const plain = filter().predict("T", events, 5);
    const shifted = filter([
      { from: 0, shift: 0 },
      { from: 1, shift: 0.05 },
      { from: 5, shift: -0.2 },
    ]).predict("T", events, 5);
    expect(shifted.observations).toBe(3);
    expect(shifted.score).toBeCloseTo(plain.score + 0.05, 12);
    expect(shifted.lo).toBeCloseTo(plain.lo + 0.05, 12);
    expect(shifted.hi).toBeCloseTo(plain.hi + 0.05, 12);
    expect(shifted.pCorrect).toBeGreaterThan(plain.pCorrect);
    const zPlain = emissionLogit(plain.pCorrect, { guess: PRM.guess, slip: PRM.slip, slope: 4 });
    const zShift = emissionLogit(shifted.pCorrect, { guess: PRM.guess, slip: PRM.slip, slope: 4 });
    expect(zShift - zPlain).toBeCloseTo(0.05 * 4, 9);
  });

  it("property: the shift stays in [0, 1], keeps lo <= score <= hi, decays with the estimate and leaves the state alone", () => {
    fc.assert(
      fc.property(
        fc.array(latentEventArb, { minLength: 1, maxLength: 20 }),
        fc.double({ min: -0.4, max: 0.4, noNaN: true }),
        fc.double({ min: 0, max: 60, noNaN: true }),
        (raw, sh, idle) => {
          const events = latentEvents(raw);
          const last = events[events.length - 1]!.t;
          const f = filter([{ from: 0, shift: sh }]);
          const plain = filter().predict("T", events, last + idle);
          const est = f.predict("T", events, last + idle);
          for (const x of [est.score, est.lo, est.hi, est.pCorrect]) {
            expect(x).toBeGreaterThanOrEqual(0);
            expect(x).toBeLessThanOrEqual(1);
          }
          expect(est.lo).toBeLessThanOrEqual(est.score + 1e-12);
          expect(est.score).toBeLessThanOrEqual(est.hi + 1e-12);
          if (sh > 0) expect(est.score).toBeGreaterThanOrEqual(plain.score - 1e-12);
          if (sh < 0) expect(est.score).toBeLessThanOrEqual(plain.score + 1e-12);
          // The state (what the stream stores) is the same with or without the shift.
          const a = filter().init("T");
          const b = f.init("T");
          for (const e of events) {
            filter().step(a, e, "T");
            f.step(b, e, "T");
          }
          expect(Array.from(b.p)).toEqual(Array.from(a.p));
        },
      ),
      { numRuns: 60 },
    );
  });
});
