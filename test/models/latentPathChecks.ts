import fc from "fast-check";
import { expect } from "vitest";
import {
  LATENT_FACTORS,
  type LatentEstimate,
  type LatentFilter,
  LatentKernel,
  type LatentSequence,
  type LatentState,
} from "../../models/latentFilter.ts";
import { latentEventArb, latentEvents, PROPERTY_TOPICS, studentSequencesArb } from "./latentFixtures.ts";
import { latentStudentNumbers } from "./latentStudentCases.ts";

/**
 * The filter's lean paths against its full folds, as properties over random students (fold26, lean28; round 29's
 * consolidating models reuse them): one place for the checks every model variant must pass.
 */

/** A float64's bits (hex), so that -0, NaN and 1-ulp differences show in a failure. */
export const bits = (x: number): string => Buffer.from(Float64Array.of(x).buffer).toString("hex");

/** predictScore (the batch's lean fold) is predict's score, bit for bit, at any offset and idle time. */
export function checkPredictScore(model: LatentFilter, numRuns: number, name = "", maxIdle = 60): void {
  fc.assert(
    fc.property(
      fc.array(latentEventArb, { maxLength: 30 }),
      fc.constantFrom(...PROPERTY_TOPICS),
      fc.double({ min: -4, max: 4, noNaN: true }),
      fc.double({ min: 0, max: maxIdle, noNaN: true }),
      (raw, topic, offset, idle) => {
        const events = latentEvents(raw);
        const asOf = (events[events.length - 1]?.t ?? 0) + idle;
        expect(
          Object.is(
            model.predictScore(topic, events, asOf, offset),
            model.predict(topic, events, asOf, offset).score,
          ),
          name,
        ).toBe(true);
      },
    ),
    { numRuns },
  );
}

/** predictStudent is the full fold of every basis part (`step`) mixed at the student's offset, bit for bit. */
export function checkPredictStudent(model: LatentFilter, numRuns: number, name = "", maxIdle = 30): void {
  const estimateBits = (e: LatentEstimate) =>
    latentStudentNumbers({ offset: 0, offsetSd: 0, estimates: [e], priors: [] }).map(bits);
  fc.assert(
    fc.property(studentSequencesArb(PROPERTY_TOPICS, 20, maxIdle), ({ seqs, asOf }) => {
      const states = seqs.map((s) => ({ topic: s.topic, state: model.foldBasis(s.topic, s.events) }));
      const offset = model.studentOffsetOf(states);
      const want = states.map(({ topic, state }) =>
        model.estimate(model.mixAt(state, model.offsetFor(topic, offset)), asOf, topic),
      );
      const got = model.predictStudent(seqs, asOf);
      expect(Object.is(got.offset, offset), name).toBe(true);
      expect(got.estimates.map(estimateBits), name).toEqual(want.map(estimateBits));
    }),
    { numRuns },
  );
}

/**
 * LatentKernel.foldWide of one sequence's basis parts gives every part the bits of its own `step` fold: posterior,
 * log-likelihood, factor contributions and last mean.
 */
export function expectWideFoldEqualsSteps(model: LatentFilter, s: LatentSequence, name: string): void {
  const grid = model.studentGrid();
  const W = grid.length;
  const G = model.json.bins;
  const F = LATENT_FACTORS.length;
  const ks = grid.map((g) => model.kernelFor(s.topic, g));
  const wk = LatentKernel.wide(ks);
  expect(wk, name).not.toBeNull();
  // Each part alone: `step` per event from its basis prior (the stream's and predict's fold).
  const states: LatentState[] = grid.map((g) => model.init(s.topic, g));
  const p = new Float64Array(W * G);
  states.forEach((st, r) => {
    for (let i = 0; i < G; i++) p[r * G + i] = st.p[i]!;
  });
  const means = new Float64Array(W);
  ks[0]!.wideMeans(p, W, means);
  const contributions = new Float64Array(W * F);
  const ll = new Float64Array(W);
  const res = LatentKernel.foldWide(wk!, s.events, p, new Float64Array(W * G), ll, { contributions, means });
  states.forEach((st, r) => {
    let l = 0;
    for (const e of s.events) l += model.step(st, e, s.topic, grid[r]!);
    const col = Array.from({ length: G }, (_, i) => bits(res[r * G + i]!));
    expect(col, `${name}: part ${r}'s posterior`).toEqual(Array.from(st.p, bits));
    expect(bits(ll[r]!), `${name}: part ${r}'s log-likelihood`).toBe(bits(l));
    expect(
      Array.from(contributions.subarray(r * F, (r + 1) * F), bits),
      `${name}: part ${r}'s contributions`,
    ).toEqual(Array.from(st.contributions, bits));
    // The last mean is the stored posterior's (base + contributions = score rests on it).
    let m = 0;
    for (let i = 0; i < G; i++) m += st.p[i]! * ks[0]!.x[i]!;
    expect(bits(means[r]!), `${name}: part ${r}'s mean`).toBe(bits(m));
  });
}
