import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { bktPredict, bktUpdate } from "../../models/bkt.ts";
import {
  intervalFactor,
  KIND_QUIZ,
  KIND_VIDEO,
  LATENT_INTERVAL_DEFAULT,
  LATENT_MIN_INFLATION,
  LATENT_OFF_GRID_KERNEL_OFFSETS,
  type LatentEvent,
  LatentFilter,
  LatentKernel,
  type LatentParams,
  type LatentSequence,
  STUDENT_GRID,
  studentHalf,
} from "../../models/latentFilter.ts";
import { servedFromLatent, type TopicCalibration } from "../../models/servedMastery.ts";
import {
  latentEventArb as eventArb,
  LATENT_TEST_PARAMS,
  LATENT_LOGISTIC_PARAMS as LOGISTIC,
  simulateLatent as simulate,
  simulateLatentStudents as simulateStudents,
  studentEffectFilter,
  latentEvents as toEvents,
} from "./latentFixtures.ts";

const PARAMS: LatentParams = LATENT_TEST_PARAMS;

const filter = (params: LatentParams = PARAMS, bins = 40) =>
  new LatentFilter({
    version: 1,
    bins,
    params,
    topicPriorMean: {},
    fit: { logLikPerObs: 0, observations: 0, sequences: 0, evaluations: 0 },
  });

describe("latent filter kernel", () => {
  it("keeps the posterior a distribution (sums to 1, no negative mass) after any sequence", () => {
    fc.assert(
      fc.property(fc.array(eventArb, { maxLength: 40 }), fc.integer({ min: 2, max: 60 }), (raw, bins) => {
        const k = new LatentKernel(PARAMS, bins);
        const p = new Float64Array(bins);
        const ll = k.run(toEvents(raw), PARAMS.priorMean, p);
        let s = 0;
        for (const v of p) {
          expect(v).toBeGreaterThanOrEqual(0);
          s += v;
        }
        expect(s).toBeCloseTo(1, 10);
        expect(Number.isFinite(ll)).toBe(true);
      }),
    );
  });

  it("with 2 cells equals BKT's forward pass (Corbett & Anderson) with the matching guess, slip, learn", () => {
    // Cells at K = 1/4 and 3/4: P(correct) there is BKT's guess and 1 - slip; K + r (1 - K) from 1/4 lands
    // at 1/4 + 3r/4, i.e. a share 1.5 r of the low cell's mass moves up (BKT learn), none moves down.
    const params: LatentParams = { ...PARAMS, learn: [0.2, 0, 0, 0, 0], noise: 0, halfLifeDays: 3650 };
    const k = new LatentKernel(params, 2);
    const e = (c: number) => params.guess + (1 - params.guess - params.slip) * c;
    const bkt = { prior: 0, learn: 1.5 * 0.2, forget: 0, guess: e(0.25), slip: 1 - e(0.75) };
    const p = k.prior(0.5);
    let pL = p[1]!;
    const answers = [1, 0, 0, 1, 1, 1, 0, 1];
    let llBkt = 0;
    let ll = 0;
    for (const a of answers) {
      const pred = bktPredict(bkt, pL);
      llBkt += Math.log(a === 1 ? pred : 1 - pred);
      pL = bktUpdate(bkt, pL, a === 1);
      ll += k.observe(p, { t: 0, kind: KIND_QUIZ, n: 1, k: a });
      k.learnFrom(p, KIND_QUIZ);
      expect(p[1]!).toBeCloseTo(pL, 12);
    }
    expect(ll).toBeCloseTo(llBkt, 12);
  });

  it("is monotone in the evidence: turning a wrong answer into a right one never lowers the estimate", () => {
    const f = filter();
    fc.assert(
      fc.property(fc.array(eventArb, { minLength: 1, maxLength: 30 }), fc.nat(), (raw, at) => {
        const events = toEvents(raw);
        const quiz = events.map((e, i) => (e.kind === KIND_QUIZ ? i : -1)).filter((i) => i >= 0);
        if (quiz.length === 0) return;
        const i = quiz[at % quiz.length]!;
        const wrong = events.map((e, j) => (j === i ? { ...e, k: 0 } : e));
        const right = events.map((e, j) => (j === i ? { ...e, k: 1 } : e));
        const end = events[events.length - 1]!.t + 3;
        const a = f.predict("T", wrong, end);
        const b = f.predict("T", right, end);
        expect(b.score).toBeGreaterThanOrEqual(a.score - 1e-12);
        expect(b.pCorrect).toBeGreaterThanOrEqual(a.pCorrect - 1e-12);
      }),
    );
  });

  it("forgets towards the floor with the half-life and leaves mass below the floor alone", () => {
    const params: LatentParams = { ...PARAMS, floor: 0.2, halfLifeDays: 10, noise: 0 };
    const k = new LatentKernel(params, 200);
    const p = new Float64Array(200);
    p[159] = 1; // K = 0.7975
    k.forget(p, 10);
    // 0.2 + (0.7975 - 0.2) / 2 = 0.49875, split between the neighbouring cells: the mean is exact.
    expect(k.mean(p)).toBeCloseTo(0.49875, 10);
    const q = new Float64Array(200);
    q[10] = 1; // K = 0.0525 < floor
    k.forget(q, 100);
    expect(q[10]).toBe(1);
  });

  it("durable-share forgetting: the gain above the pair's prior mean decays to its kept share (known answer)", () => {
    const params: LatentParams = { ...PARAMS, durableShare: 0.4, halfLifeDays: 10, noise: 0 };
    const k = new LatentKernel(params, 200);
    const p = new Float64Array(200);
    p[159] = 1; // K = 0.7975
    k.forget(p, 10, 0.3);
    // 0.3 + (0.7975 - 0.3) (0.4 + 0.6 / 2) = 0.64825; after ever longer gaps 0.3 + 0.4 x 0.4975 = 0.499.
    expect(k.mean(p)).toBeCloseTo(0.64825, 10);
    const far = new Float64Array(200);
    far[159] = 1;
    k.forget(far, 10_000, 0.3);
    expect(k.mean(far)).toBeCloseTo(0.499, 10);
    const q = new Float64Array(200);
    q[40] = 1; // K = 0.2025, below the pair's prior mean: left alone
    k.forget(q, 100, 0.3);
    expect(q[40]).toBe(1);
    expect(() => k.forget(new Float64Array(200).fill(1 / 200), 1)).toThrow(/prior mean/);
  });

  it("durable-share forgetting: a stored estimate's floor reproduces the filter's own later decay (request-time decay)", () => {
    const params: LatentParams = { ...PARAMS, durableShare: 0.3, halfLifeDays: 12, noise: 0 };
    const f = filter(params, 200);
    fc.assert(
      fc.property(
        fc.array(fc.boolean(), { minLength: 1, maxLength: 25 }),
        fc.double({ min: 0, max: 60, noNaN: true }),
        (answers, later) => {
          const events = answers.map((c, i) => ({ t: i * 0.5, kind: KIND_QUIZ, n: 1, k: c ? 1 : 0 }));
          const end = events[events.length - 1]!.t;
          const now = f.predict("T", events, end);
          const then = f.predict("T", events, end + later);
          const floor = now.floor ?? Number.NaN;
          expect(floor).toBeLessThanOrEqual(now.score + 1e-12);
          expect(then.score).toBeLessThanOrEqual(now.score + 1e-12);
          // Request-time decay of the stored score (floor + (score - floor) 2^(-t / h)) is the filter's own
          // mean t days later, exactly (up to the float32 state's mass rounding).
          const decayed = floor + (now.score - floor) * 2 ** (-later / params.halfLifeDays);
          expect(then.score).toBeCloseTo(decayed, 7);
          // A long gap keeps at least the durable share of the score (E[(K - b)+] <= E[K]).
          expect(floor).toBeGreaterThanOrEqual(0.3 * now.score - 1e-12);
        },
      ),
      { numRuns: 60 },
    );
  });

  it("explains every estimate: base + factor contributions = score, interval around it", () => {
    const f = filter();
    fc.assert(
      fc.property(fc.array(eventArb, { maxLength: 30 }), (raw) => {
        const events = toEvents(raw);
        const end = (events[events.length - 1]?.t ?? 0) + 5;
        const est = f.predict("T", events, end);
        const sum = Object.values(est.contributions).reduce((s, v) => s + v, est.base);
        expect(sum).toBeCloseTo(est.score, 10);
        expect(est.lo).toBeLessThanOrEqual(est.score + 1e-9);
        expect(est.hi).toBeGreaterThanOrEqual(est.score - 1e-9);
        expect(est.lo).toBeGreaterThanOrEqual(0);
        expect(est.hi).toBeLessThanOrEqual(1);
      }),
    );
  });

  it("learning from a video raises the estimate, the more so the lower the knowledge", () => {
    const f = filter();
    const before = f.predict("T", [{ t: 0, kind: KIND_QUIZ, n: 1, k: 0 }], 0);
    const after = f.predict(
      "T",
      [
        { t: 0, kind: KIND_QUIZ, n: 1, k: 0 },
        { t: 0, kind: KIND_VIDEO, n: 0, k: 0 },
      ],
      0,
    );
    expect(after.score).toBeGreaterThan(before.score);
    expect(after.contributions.learning_video).toBeGreaterThan(0);
  });
});

describe("served score from the latent filter", () => {
  it("maps the posterior through the scale: explanation sums, interval around the score, order kept", () => {
    const f = filter();
    const cal: TopicCalibration = { guess: 0.2, slip: 0.1, halfLifeDays: 30, base: 0.7 };
    fc.assert(
      fc.property(fc.array(eventArb, { maxLength: 25 }), fc.array(eventArb, { maxLength: 25 }), (ra, rb) => {
        const [a, b] = [toEvents(ra), toEvents(rb)].map((ev) =>
          f.predict("T", ev, (ev[ev.length - 1]?.t ?? 0) + 2),
        );
        const [sa, sb] = [a!, b!].map((est) => servedFromLatent(est, PARAMS, cal, "centred-logit", cal));
        for (const s of [sa!, sb!]) {
          const sum = s.contributions.reduce((x, c) => x + c.contribution, s.base + s.rest);
          expect(sum).toBeCloseTo(s.score, 10);
          expect(Math.abs(s.rest)).toBeLessThan(1e-9);
          expect(s.lo).toBeLessThanOrEqual(s.score + 1e-12);
          expect(s.hi).toBeGreaterThanOrEqual(s.score - 1e-12);
        }
        // An increasing map: the served scores rank like the posterior means.
        if (a!.score < b!.score - 1e-12) expect(sa!.score).toBeLessThan(sb!.score);
        // P(correct) is the emission at the posterior mean (the posterior is stored as float32, so its mass sums
        // to 1 within ~1e-7 and P(correct) = guess * mass + ...: the two agree to ~1e-8).
        expect(sa!.pCorrect).toBeCloseTo(PARAMS.guess + (1 - PARAMS.guess - PARAMS.slip) * a!.score, 6);
      }),
    );
  });
});

describe("latent filter: forgetting spread, interval factor and scale, too little data", () => {
  it("forgets with a spread (round 15) keeping the posterior's mean and mass, never narrower than the deterministic step, and bit-identical at spread 0", () => {
    fc.assert(
      fc.property(
        fc.array(eventArb, { minLength: 1, maxLength: 20 }),
        fc.double({ min: 0.1, max: 120, noNaN: true }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        (raw, gap, spread) => {
          const det = new LatentKernel(PARAMS, 40);
          const zero = new LatentKernel({ ...PARAMS, forgetSpread: 0 }, 40);
          const spr = new LatentKernel({ ...PARAMS, forgetSpread: spread }, 40);
          const p = new Float64Array(40);
          det.run(toEvents(raw), PARAMS.priorMean, p);
          const a = Float64Array.from(p);
          const b = Float64Array.from(p);
          const c = Float64Array.from(p);
          det.forget(a, gap);
          zero.forget(b, gap);
          spr.forget(c, gap);
          expect(Buffer.from(b.buffer).equals(Buffer.from(a.buffer))).toBe(true);
          const m = det.mean(a);
          expect(spr.mean(c)).toBeCloseTo(m, 12);
          expect(c.reduce((x, y) => x + y, 0)).toBeCloseTo(1, 12);
          const v = (q: Float64Array) => q.reduce((acc, w, i) => acc + w * (det.x[i]! - m) ** 2, 0);
          expect(v(c)).toBeGreaterThanOrEqual(v(a) - 1e-12);
        },
      ),
    );
  });

  it("widens an idle pair's interval with time under an all-or-none forgetting spread, where the deterministic decay narrows it", () => {
    const prm: LatentParams = { ...PARAMS, floor: 0.1, halfLifeDays: 60 };
    // One session (no gap inside it), then idle days: only the idle forgetting differs between the spreads.
    const events: LatentEvent[] = Array.from({ length: 12 }, () => ({ t: 0, kind: KIND_QUIZ, n: 1, k: 1 }));
    const at = (spread: number, idle: number) => {
      const f = filter(spread > 0 ? { ...prm, forgetSpread: spread } : prm);
      const s = f.init("");
      for (const e of events) f.step(s, e);
      const est = f.estimate(s, idle);
      return { w: est.hi - est.lo, lo: est.lo, score: est.score };
    };
    // Deterministic: idle days contract the spread above the floor by 2^(-t / 60).
    expect(at(0, 20).w).toBeLessThan(at(0, 2).w);
    // All-or-none: after 20 days (2^(-1/3) = 0.79 kept) over 10% of the mass is at the floor, so the 10th
    // percentile is there and the interval reaches from near the floor to the kept level.
    expect(at(1, 20).w).toBeGreaterThan(at(1, 2).w + 0.2);
    expect(at(1, 20).lo).toBeLessThan(0.15);
    expect(at(1, 20).w).toBeGreaterThan(at(0, 20).w + 0.2);
    // The score (posterior mean) is the same either way.
    expect(at(1, 20).score).toBeCloseTo(at(0, 20).score, 10);
  });

  it("turns the held-out dispersion ratio into the interval's variance factor: two-sided as measured above the floor, widen-only at least 1", () => {
    // Known answers.
    expect(LATENT_MIN_INFLATION).toBe(0.25);
    expect(LATENT_INTERVAL_DEFAULT).toBe("widen-only");
    expect(intervalFactor({ ratio: 0.64, sequences: 100 }, "two-sided")).toBe(0.64);
    expect(intervalFactor({ ratio: 0.64, sequences: 100 }, "widen-only")).toBe(1);
    expect(intervalFactor({ ratio: 1.44, sequences: 100 }, "two-sided")).toBe(1.44);
    expect(intervalFactor({ ratio: 1.44, sequences: 100 }, "widen-only")).toBe(1.44);
    expect(intervalFactor({ ratio: 0.1, sequences: 100 }, "two-sided")).toBe(0.25);
    expect(intervalFactor({ ratio: -3, sequences: 100 }, "two-sided")).toBe(0.25);
    // No qualifying sequence, or no finite ratio: the posterior as it is.
    expect(intervalFactor({ ratio: 0.3, sequences: 0 }, "two-sided")).toBe(1);
    expect(intervalFactor({ ratio: Number.NaN, sequences: 5 }, "two-sided")).toBe(1);
    // Properties: floors hold, the modes agree from 1 up, two-sided never wider than widen-only, monotone.
    fc.assert(
      fc.property(
        fc.double({ min: -10, max: 50, noNaN: true }),
        fc.double({ min: 0, max: 5, noNaN: true }),
        fc.integer({ min: 1, max: 10_000 }),
        (r, dr, n) => {
          const two = intervalFactor({ ratio: r, sequences: n }, "two-sided");
          const wide = intervalFactor({ ratio: r, sequences: n }, "widen-only");
          expect(two).toBeGreaterThanOrEqual(LATENT_MIN_INFLATION);
          expect(wide).toBeGreaterThanOrEqual(1);
          expect(two).toBeLessThanOrEqual(wide);
          if (r >= 1) expect(two).toBe(wide);
          expect(intervalFactor({ ratio: r + dr, sequences: n }, "two-sided")).toBeGreaterThanOrEqual(two);
        },
      ),
    );
  });

  it("widens the 80% interval by the interval scale around the same score", () => {
    const seqs = simulate(PARAMS, 1, 3);
    const json = {
      version: 1 as const,
      bins: 40,
      params: PARAMS,
      topicPriorMean: {},
      fit: { logLikPerObs: -0.5, observations: 1, sequences: 1, evaluations: 0 },
    };
    const a = new LatentFilter(json).predict("T", seqs[0]!.events, 100);
    const b = new LatentFilter({ ...json, intervalScale: 2 }).predict("T", seqs[0]!.events, 100);
    expect(b.score).toBe(a.score);
    expect(b.lo).toBeCloseTo(Math.max(0, a.score - 2 * (a.score - a.lo)), 12);
    expect(b.hi).toBeCloseTo(Math.min(1, a.score + 2 * (a.hi - a.score)), 12);
  });

  it("refuses to fit on too little data, naming what is missing", () => {
    expect(() => LatentFilter.fit([{ topic: "T", events: [{ t: 0, kind: KIND_QUIZ, n: 1, k: 1 }] }])).toThrow(
      /graded observations/,
    );
  });
});

describe("latent filter: logistic emission (round 6)", () => {
  it("emits guess + (1 - guess - slip) sigmoid(slope (K - threshold)) per cell; without a slope the linear emission", () => {
    const params: LatentParams = { ...PARAMS, slope: 10, threshold: 0.4 };
    const k = new LatentKernel(params, 20, 0.6);
    const lin = new LatentKernel(PARAMS, 20);
    for (let i = 0; i < 20; i++) {
      const x = (i + 0.5) / 20;
      expect(k.emit[i]).toBeCloseTo(0.2 + 0.7 / (1 + Math.exp(-10 * (x - 0.6))), 12);
      expect(lin.emit[i]).toBeCloseTo(0.2 + 0.7 * x, 12);
    }
    // The model's global threshold when the kernel has no topic threshold.
    expect(new LatentKernel(params, 20).emit[7]).toBeCloseTo(
      0.2 + 0.7 / (1 + Math.exp(-10 * (0.375 - 0.4))),
      12,
    );
  });

  it("P(correct) is the posterior expectation of the emission (the emission at the mean when it is linear)", () => {
    fc.assert(
      fc.property(fc.array(eventArb, { maxLength: 30 }), (raw) => {
        const ev = toEvents(raw);
        const lin = filter().predict("T", ev, 50);
        // (float32 posterior: its mass sums to 1 within ~1e-7)
        expect(lin.pCorrect).toBeCloseTo(PARAMS.guess + (1 - PARAMS.guess - PARAMS.slip) * lin.score, 6);
        const f = new LatentFilter({
          version: 1,
          bins: 40,
          params: { ...PARAMS, slope: 12, threshold: 0.5 },
          topicPriorMean: {},
          topicThreshold: { T: 0.55 },
          fit: { logLikPerObs: 0, observations: 0, sequences: 0, evaluations: 0 },
        });
        const est = f.predict("T", ev, 50);
        expect(est.pCorrect).toBeGreaterThanOrEqual(PARAMS.guess - 1e-12);
        expect(est.pCorrect).toBeLessThanOrEqual(1 - PARAMS.slip + 1e-12);
        // Floor emission with the topic's threshold.
        expect(est.pFloor).toBeCloseTo(0.2 + 0.7 / (1 + Math.exp(-12 * (PARAMS.floor - 0.55))), 12);
        const sum = Object.values(est.contributions).reduce((a, b) => a + b, est.base);
        expect(sum).toBeCloseTo(est.score, 10);
      }),
      { numRuns: 50 },
    );
  });

  it("serves K through the anchor on centred-logit (round 8) and as it is on identity, with the filter's P(correct) and floor emission", () => {
    const f = new LatentFilter({
      version: 1,
      bins: 40,
      params: { ...PARAMS, slope: 12, threshold: 0.5 },
      topicPriorMean: {},
      fit: { logLikPerObs: 0, observations: 0, sequences: 0, evaluations: 0 },
    });
    const cal: TopicCalibration = { guess: 0.2, slip: 0.1, halfLifeDays: 30, base: 0.7 };
    const est = f.predict("T", toEvents([{ dt: 1, kind: 0, n: 1, frac: 1 }]), 3);
    const asIs = servedFromLatent(est, f.json.params, cal, "identity", cal);
    expect(asIs.score).toBe(est.score);
    expect([asIs.lo, asIs.hi]).toEqual([est.lo, est.hi]);
    // centred-logit: K against the anchor (cal.base), increasing, so the interval maps with it.
    const s = servedFromLatent(est, f.json.params, cal, "centred-logit", cal);
    const lg = (p: number) => Math.log(p / (1 - p));
    expect(s.score).toBeCloseTo(1 / (1 + Math.exp(-(lg(est.score) - lg(0.7)))), 12);
    expect(s.lo).toBeCloseTo(1 / (1 + Math.exp(-(lg(est.lo) - lg(0.7)))), 12);
    expect(s.hi).toBeCloseTo(1 / (1 + Math.exp(-(lg(est.hi) - lg(0.7)))), 12);
    expect(s.pCorrect).toBe(est.pCorrect);
    expect(s.decay.pFloor).toBe(est.pFloor);
    expect(s.contributions.reduce((x, c) => x + c.contribution, s.base + s.rest)).toBeCloseTo(s.score, 12);
  });
});

describe("latent filter: student effect (round 6)", () => {
  const known = studentEffectFilter;

  it("has no offset without a student effect; with one, right answers everywhere raise it and wrong ones lower it", () => {
    const seq = (k: number): LatentSequence[] =>
      ["A", "B", "C"].map((topic) => ({
        topic,
        events: [0, 1, 2, 3].map((t) => ({ t, kind: KIND_QUIZ, n: 1, k })),
      }));
    expect(known().studentOffset(seq(1))).toBe(0);
    const f = known(0.8);
    const up = f.studentOffset(seq(1));
    const down = f.studentOffset(seq(0));
    expect(up).toBeGreaterThan(0.2);
    expect(down).toBeLessThan(-0.2);
    // A bigger sd lets the same evidence move the offset further.
    expect(known(1.5).studentOffset(seq(1))).toBeGreaterThan(up);
    // The offset shifts the prior (the explanation's base) on the logit scale; the sums still hold.
    const est = f.predict("D", [], 0, up);
    expect(est.base).toBeCloseTo(1 / (1 + Math.exp(-(Math.log(0.4 / 0.6) + up))), 2);
    expect(est.score).toBeGreaterThan(f.predict("D", [], 0).score);
  });
});

describe("latent filter: the topic threshold's shrinkage chosen by held-out likelihood (round 13)", () => {
  it("splits students by the low bit of their key's FNV-1a hash (published values: '' 0x811c9dc5, 'a' 0xe40c292c)", () => {
    expect(studentHalf("")).toBe(1);
    expect(studentHalf("a")).toBe(0);
    // Every key lands in one half, and a few hundred keys fill both about evenly.
    const n = [0, 0];
    for (let i = 0; i < 400; i++) n[studentHalf(`s${i}`)]!++;
    expect(n[0]! + n[1]!).toBe(400);
    expect(Math.min(n[0]!, n[1]!)).toBeGreaterThan(160);
  });

  it("refuses halves with fewer than 50 graded observations, naming the fix; the fit then keeps the fixed sd", () => {
    const { seqs } = simulateStudents(LOGISTIC, { A: 0.5 }, 4, 0, 41);
    expect(() => LatentFilter.chooseThresholdSd(LOGISTIC, seqs)).toThrow(/pass a number as topicThresholdSd/);
    // Every sequence of one student ("a", half 0): the other half is empty, so "auto" keeps the fixed sd.
    const few = simulateStudents(LOGISTIC, { A: 0.4, B: 0.6 }, 30, 0, 43).seqs.map((s) => ({
      ...s,
      student: "a",
    }));
    const f = LatentFilter.fit(few, {
      bins: 12,
      maxEvaluations: 60,
      emission: "logistic",
      topicThresholdSd: "auto",
    });
    const fixed = LatentFilter.fit(few, { bins: 12, maxEvaluations: 60, emission: "logistic" });
    expect(f.json.fit.thresholdChoice).toBeUndefined();
    expect(f.json.topicThreshold).toEqual(fixed.json.topicThreshold);
  });
});

describe("latent filter kernels at student offsets (round 25: bounded memory)", () => {
  // A logistic model with a threshold per topic and a learning loading: every off-basis offset and topic
  // needs its own kernel (learning rates shifted by loading x offset).
  const loaded = (): LatentFilter =>
    new LatentFilter({
      version: 1,
      bins: 40,
      params: { ...LOGISTIC, priorMean: 0.4 },
      topicPriorMean: { A: 0.4, B: 0.5 },
      topicThreshold: { A: 0.55, B: 0.65 },
      fit: { logLikPerObs: 0, observations: 0, sequences: 0, evaluations: 0 },
      studentPriorSd: 1,
      studentLearnLoading: 1,
    });
  const events = toEvents([
    { kind: KIND_QUIZ, n: 1, frac: 1, dt: 0 },
    { kind: KIND_VIDEO, n: 1, frac: 0, dt: 1 },
    { kind: KIND_QUIZ, n: 1, frac: 0, dt: 2 },
    { kind: KIND_QUIZ, n: 1, frac: 1, dt: 1 },
  ]);

  it("keeps only the newest LATENT_OFF_GRID_KERNEL_OFFSETS off-basis offsets' kernels, the basis' for good", () => {
    const m = loaded();
    const onGrid = m.kernelFor("A", STUDENT_GRID[1]!);
    const first = m.kernelFor("A", 0.123);
    // Within the cap: the same kernel again (a student's passes reuse their offsets' kernels).
    for (let i = 1; i < LATENT_OFF_GRID_KERNEL_OFFSETS; i++) m.kernelFor("A", 0.123 + i / 1000);
    expect(m.kernelFor("A", 0.123)).toBe(first);
    // 8 newer offsets push it out: a new kernel, with the same tables (a pure function of its inputs).
    for (let i = 1; i <= LATENT_OFF_GRID_KERNEL_OFFSETS; i++) m.kernelFor("A", 1 + i / 1000);
    const again = m.kernelFor("A", 0.123);
    expect(again).not.toBe(first);
    expect(again.learnShift).toBe(first.learnShift);
    expect(Array.from(again.emit)).toEqual(Array.from(first.emit));
    // The basis offsets' kernels are never dropped, however many students pass through.
    for (let i = 0; i < 100; i++) m.kernelFor("A", -2 + i / 100 + 0.001);
    expect(m.kernelFor("A", STUDENT_GRID[1]!)).toBe(onGrid);
    expect(m.kernelFor("A", 0)).toBe(m.kernelFor("A"));
  });

  it("builds an offset's kernel on the topic kernel's emission tables: the same bits as a kernel built alone", () => {
    const m = loaded();
    const shared = m.kernelFor("B", 0.37);
    const params = m.json.params;
    const alone = new LatentKernel(params, 40, 0.65, 0.37);
    expect(shared.emit).toBe(m.kernelFor("B").emit);
    expect(shared.x).toBe(m.kernelFor("B").x);
    expect(Array.from(shared.emit)).toEqual(Array.from(alone.emit));
    expect(shared.learnShift).toBe(0.37);
    fc.assert(
      fc.property(fc.array(eventArb, { maxLength: 30 }), (raw) => {
        const ev = toEvents(raw);
        const p1 = new Float64Array(40);
        const p2 = new Float64Array(40);
        expect(shared.run(ev, 0.45, p1)).toBe(alone.run(ev, 0.45, p2));
        expect(Array.from(p1)).toEqual(Array.from(p2));
      }),
      { numRuns: 50 },
    );
    // Tables of another parameter set or grid are refused, with the fix named.
    expect(() => new LatentKernel({ ...params }, 40, 0.65, 0.37, shared)).toThrow(/without `tablesOf`/);
    expect(() => new LatentKernel(params, 30, 0.65, 0.37, shared)).toThrow(/same parameters and bins/);
  });

  it("predicts the same bits at an offset whether its kernel was kept or rebuilt", () => {
    fc.assert(
      fc.property(
        fc.array(fc.double({ min: -3, max: 3, noNaN: true }), { minLength: 1, maxLength: 30 }),
        (offsets) => {
          const m = loaded();
          const fresh = offsets.map((o) => loaded().predict("B", events, 10, o));
          // One model through all offsets twice: the second pass meets both kept and evicted kernels.
          const seen = [...offsets, ...offsets].map((o) => m.predict("B", events, 10, o));
          offsets.forEach((_, i) => {
            expect(seen[i]).toEqual(fresh[i]);
            expect(seen[i + offsets.length]).toEqual(fresh[i]);
          });
        },
      ),
      { numRuns: 30 },
    );
  });
});
