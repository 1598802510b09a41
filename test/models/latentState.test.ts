import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  LATENT_FACTORS,
  LatentFilter,
  LatentKernel,
  type LatentParams,
  STUDENT_GRID,
  shiftedRate,
} from "../../models/latentFilter.ts";
import {
  decodeLatentBasis,
  decodeLatentState,
  encodeLatentBasis,
  encodeLatentState,
  foldLatent,
  foldLatentBasis,
  LATENT_STATE_FORMAT,
  type LatentSourceEvent,
  latentBasisBytes,
  latentDays,
  latentEventOf,
  latentStateBytes,
} from "../../models/latentState.ts";
import { LATENT_TEST_PARAMS } from "./latentFixtures.ts";

const PARAMS: LatentParams = LATENT_TEST_PARAMS;
/** Mean of a stored posterior over the 40-cell grid's midpoints. */
const meanOf = (p: Float32Array): number => p.reduce((a, v, i) => a + v * ((i + 0.5) / p.length), 0);

const filter = (bins = 40, studentPriorSd?: number, params: LatentParams = PARAMS) =>
  new LatentFilter({
    version: 1,
    bins,
    params,
    topicPriorMean: { algebra: 0.6 },
    fit: { logLikPerObs: 0, observations: 0, sequences: 0, evaluations: 0 },
    intervalScale: 1.3,
    ...(studentPriorSd === undefined ? {} : { studentPriorSd }),
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

  for (const [label, params] of [
    ["deterministic forgetting", PARAMS],
    ["forgetting spread 0.5, round 15", { ...PARAMS, forgetSpread: 0.5 }],
    [
      "forgetting spread 0.5, decay as of, round 16",
      { ...PARAMS, forgetSpread: 0.5, asOfForgetting: "decay" },
    ],
  ] as const)
    it(`property: continuing a decoded state with the rest of the events gives the replay's bytes, at any split (${label})`, () => {
      const f = filter(40, undefined, params);
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

  it("student effect: a basis state is 7 filters in 1,768 bytes, decoded to the same bits; refused for another basis", () => {
    const f = filter(40, 1.5);
    expect(f.studentGrid()).toEqual(STUDENT_GRID);
    const b = foldLatentBasis(f, "algebra", [
      { type: "quiz_attempt", ts: T0, isCorrect: true },
      { type: "practice", ts: T0 + DAY_US, isCorrect: null, attempts: 4, correctCount: 1 },
    ]);
    const bytes = encodeLatentBasis(b);
    expect(bytes.length).toBe(latentBasisBytes(40, 7));
    expect(bytes.length).toBe(32 + 7 * (16 + 8 * LATENT_FACTORS.length + 4 * 40));
    expect(decodeLatentBasis(bytes, 40, 7)).toEqual(b);
    expect(decodeLatentBasis(bytes, 40, 5)).toBeNull();
    expect(decodeLatentBasis(bytes, 40, 1)).toBeNull();
    // The single state of a model without the effect is not read as a basis, nor the reverse.
    const single = encodeLatentBasis(foldLatentBasis(filter(), "algebra", []));
    expect(single.length).toBe(264);
    expect(decodeLatentBasis(single, 40, 7)).toBeNull();
    expect(decodeLatentState(bytes, 40)).toBeNull();
    // Each part is the filter from the prior shifted by its offset, and its log-likelihood is the run's.
    const k = new LatentKernel(PARAMS, 40);
    const p = new Float64Array(40);
    const logit = (x: number) => Math.log(x / (1 - x));
    STUDENT_GRID.forEach((o, j) => {
      const ll = k.run(
        [
          { t: T0 / DAY_US, kind: 0, n: 1, k: 1 },
          { t: (T0 + DAY_US) / DAY_US, kind: 1, n: 4, k: 1 },
        ],
        1 / (1 + Math.exp(-(logit(0.6) + o))),
        p,
      );
      expect(b.ll[j]).toBeCloseTo(ll, 5);
    });
  });

  it("learning loading (round 14): basis part j learns at the rates shifted by loading x offset; replay, decoded continuation and predictStudent agree to the bit", () => {
    const f = new LatentFilter({ ...filter(40, 1.5).json, studentLearnLoading: 0.5 });
    const events: LatentSourceEvent[] = [
      { type: "quiz_attempt", ts: T0, isCorrect: true },
      { type: "video", ts: T0 + DAY_US / 2, isCorrect: null },
      { type: "practice", ts: T0 + DAY_US, isCorrect: null, attempts: 4, correctCount: 3 },
      { type: "quiz_attempt", ts: T0 + 3 * DAY_US, isCorrect: false },
    ];
    const b = foldLatentBasis(f, "algebra", events);
    const logit = (x: number) => Math.log(x / (1 - x));
    const p = new Float64Array(40);
    const evs = events.map((r) => latentEventOf(r)!);
    STUDENT_GRID.forEach((o, j) => {
      // The reference: a float64 run of a kernel built with the shifted rates (known: 0.05 at +1 logit
      // is sigmoid(logit(0.05) + 1) = 0.1252).
      const k = new LatentKernel(PARAMS, 40, undefined, 0.5 * o);
      expect(b.ll[j]).toBeCloseTo(k.run(evs, 1 / (1 + Math.exp(-(logit(0.6) + o))), p), 5);
      expect(Math.abs(meanOf(b.parts[j]!.p) - k.mean(p))).toBeLessThan(1e-5);
    });
    expect(shiftedRate(0.05, 1)).toBeCloseTo(0.125_2, 4);
    expect(shiftedRate(0, 2)).toBe(0);
    // Parts at negative offsets learn more slowly than the level-only filter's, at positive ones faster.
    const plain = foldLatentBasis(filter(40, 1.5), "algebra", events);
    expect(meanOf(b.parts[6]!.p)).toBeGreaterThan(meanOf(plain.parts[6]!.p));
    expect(meanOf(b.parts[0]!.p)).toBeLessThan(meanOf(plain.parts[0]!.p));
    // At offset 0 the shift is 0: the level-only filter's part, to the bit.
    expect(b.parts[3]).toEqual(plain.parts[3]);
    expect(b.ll[3]).toBe(plain.ll[3]);
    // The stream's path (fold from storage, offset from the summaries, mixed state) is the batch scoring's.
    const other: LatentSourceEvent[] = [{ type: "quiz_attempt", ts: T0, isCorrect: true }];
    const seqs = [
      { topic: "algebra", student: "s", events: evs },
      { topic: "algebra", student: "s", events: other.map((r) => latentEventOf(r)!) },
    ];
    const batch = f.predictStudent(seqs, T0 / DAY_US + 5);
    const states = [foldLatentBasis(f, "algebra", events), foldLatentBasis(f, "algebra", other)];
    const offset = f.studentOffsetOf(states.map((state) => ({ topic: "algebra", state })));
    expect(offset).toBe(batch.offset);
    states.forEach((st, i) => {
      const from = decodeLatentBasis(encodeLatentBasis(st), 40, 7)!;
      expect(f.estimate(f.mixAt(from, offset), T0 / DAY_US + 5, "algebra")).toEqual(batch.estimates[i]);
    });
  });

  it("property (student effect): continuing a decoded basis state gives the replay's bytes, at any split", () => {
    const f = filter(40, 2);
    fc.assert(
      fc.property(eventsArb, fc.nat(), (events, a) => {
        const whole = encodeLatentBasis(foldLatentBasis(f, "algebra", events));
        const i = events.length === 0 ? 0 : a % (events.length + 1);
        const bytes = encodeLatentBasis(foldLatentBasis(f, "algebra", events.slice(0, i)));
        const from = decodeLatentBasis(bytes, 40, 7)!;
        expect(encodeLatentBasis(foldLatentBasis(f, "algebra", events.slice(i), from))).toEqual(whole);
      }),
      { numRuns: 40 },
    );
  });

  it("property (student effect): the state at an offset is exactly the filter run from the mixture prior (linearity)", () => {
    const f = filter(40, 2);
    const k = new LatentKernel(PARAMS, 40);
    const logit = (x: number) => Math.log(x / (1 - x));
    const prior = (o: number) => k.prior(1 / (1 + Math.exp(-(logit(0.6) + o))));
    fc.assert(
      fc.property(eventsArb, fc.double({ min: -3, max: 3, noNaN: true }), (events, off) => {
        const b = foldLatentBasis(f, "algebra", events);
        const mixed = f.mixAt(b, off);
        // The reference: one float64 forward pass from (1 - w) prior(o_j) + w prior(o_j+1).
        const j = Math.min(5, Math.floor(off + 3));
        const w = off + 3 - j;
        const a = prior(STUDENT_GRID[j]!);
        const c = prior(STUDENT_GRID[j + 1]!);
        const p = a.map((x, i) => (1 - w) * x + w * c[i]!);
        let last = Number.NaN;
        for (const r of events) {
          const e = latentEventOf(r);
          if (e === null) continue;
          if (Number.isFinite(last)) k.forget(p, e.t - last);
          last = e.t;
          k.observe(p, e);
          k.learnFrom(p, e.kind);
        }
        // Equal up to the float32 storage of each part (no re-run, no approximation beyond it).
        expect(Math.abs(f.estimate(mixed, 0).score - k.mean(p))).toBeLessThan(2e-5);
        const est = f.estimate(
          mixed,
          (latentEventOf(events.at(-1) ?? { type: "x", ts: 0, isCorrect: null })?.t ?? 0) + 3,
        );
        const sum = Object.values(est.contributions).reduce((x, y) => x + y, 0);
        expect(est.base + sum).toBeCloseTo(est.score, 9);
      }),
      { numRuns: 60 },
    );
  });

  it("student effect: the offset is the vertex of the parabola through the best basis point, and sums are exact in any order", () => {
    const f = filter(40, 1.5);
    // F_j = sum_j - o_j^2 / (2 sd^2) = -2 (o_j - 0.6)^2: a parabola with its vertex at 0.6.
    const sum = STUDENT_GRID.map((o) => -2 * (o - 0.6) ** 2 + (o * o) / (2 * 1.5 * 1.5));
    expect(f.offsetFromSummary(sum)).toBeCloseTo(0.6, 12);
    // No evidence: 0; evidence pulling past the grid: its edge.
    expect(f.offsetFromSummary(STUDENT_GRID.map(() => 0))).toBe(0);
    expect(f.offsetFromSummary(STUDENT_GRID.map((o) => 100 * o))).toBe(3);
    expect(filter().offsetFromSummary([5])).toBe(0);
    fc.assert(
      fc.property(fc.array(eventsArb, { minLength: 1, maxLength: 6 }), fc.nat(), (seqs, rot) => {
        const pairs = seqs.map((e) => ({ topic: "algebra", state: foldLatentBasis(f, "algebra", e) }));
        const turned = [...pairs.slice(rot % pairs.length), ...pairs.slice(0, rot % pairs.length)].reverse();
        expect(f.studentOffsetOf(turned)).toBe(f.studentOffsetOf(pairs));
        // A topic the effect does not cover (no fitted prior) does not count.
        expect(f.studentOffsetOf([...pairs, { topic: "geometry", state: pairs[0]!.state }])).toBe(
          f.studentOffsetOf(pairs),
        );
      }),
      { numRuns: 40 },
    );
  });
});
