import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { bktPredict, bktUpdate } from "../../models/bkt.ts";
import {
  dispersionByEvidence,
  fitTopicEffects,
  groupByTopic,
  implausibleParams,
  intervalFactor,
  KIND_ASSIGNMENT,
  KIND_PRACTICE,
  KIND_QUIZ,
  KIND_VIDEO,
  LATENT_BAND_MIN_SEQUENCES,
  LATENT_FORGET_SPREAD_CANDIDATES,
  LATENT_INTERVAL_DEFAULT,
  LATENT_MIN_INFLATION,
  LATENT_MIN_OBSERVATIONS,
  LATENT_STUDENT_LOADING_CANDIDATES,
  LATENT_THRESHOLD_SD_CANDIDATES,
  LATENT_TOPIC_THRESHOLD_SD,
  type LatentEvent,
  LatentFilter,
  LatentKernel,
  type LatentParams,
  type LatentSequence,
  shiftedRate,
  studentHalf,
  studentLoadingCandidates,
} from "../../models/latentFilter.ts";
import { mulberry32 } from "../../models/prng.ts";
import { servedFromLatent, type TopicCalibration } from "../../models/servedMastery.ts";
import {
  latentEventArb as eventArb,
  LATENT_TEST_PARAMS,
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

  it("recovers the durable share and the half-life from data simulated with durable-share forgetting, and its likelihood beats the global-floor form there", () => {
    const truth: LatentParams = {
      ...PARAMS,
      noise: 0,
      halfLifeDays: 4,
      durableShare: 0.3,
      learn: [0.1, 0.2, 0.15, 0, 0],
    };
    const seqs = simulate(truth, 400, 13);
    const durable = LatentFilter.fit(seqs, { bins: 24, maxEvaluations: 700, forgetting: "durable" });
    const floor = LatentFilter.fit(seqs, { bins: 24, maxEvaluations: 700 });
    const p = durable.json.params;
    expect(p.durableShare).toBeDefined();
    expect(p.durableShare!).toBeGreaterThan(0.05);
    expect(p.durableShare!).toBeLessThan(0.65);
    expect(p.halfLifeDays).toBeGreaterThan(1);
    expect(p.halfLifeDays).toBeLessThan(16);
    expect(floor.json.params.durableShare).toBeUndefined();
    expect(durable.json.fit.logLikPerObs).toBeGreaterThan(floor.json.fit.logLikPerObs);
  }, 300_000);

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

/** Sequences simulated from the model itself (continuous K, the same transitions and emissions). */
function simulate(
  params: LatentParams,
  pairs: number,
  seed: number,
  redrawHalfway = false,
  allOrNone = false,
): LatentSequence[] {
  const rnd = mulberry32(seed);
  const out: LatentSequence[] = [];
  for (let s = 0; s < pairs; s++) {
    // K from the Beta(mean m, concentration c) prior, by inverse CDF on a fine grid.
    const a = params.priorMean * params.priorConcentration;
    const b = (1 - params.priorMean) * params.priorConcentration;
    const grid = 2000;
    const dens: number[] = [];
    let tot = 0;
    for (let i = 0; i < grid; i++) {
      const x = (i + 0.5) / grid;
      const d = x ** (a - 1) * (1 - x) ** (b - 1);
      dens.push(d);
      tot += d;
    }
    let u = rnd() * tot;
    let K = 0.5;
    for (let i = 0; i < grid; i++) {
      u -= dens[i]!;
      if (u <= 0) {
        K = (i + 0.5) / grid;
        break;
      }
    }
    const events: LatentEvent[] = [];
    let t = 0;
    const n = 10 + Math.floor(rnd() * 30);
    for (let j = 0; j < n; j++) {
      // An unmodelled change: K redrawn uniformly halfway through the sequence.
      if (redrawHalfway && j === Math.floor(n / 2)) K = rnd();
      const dt = rnd() < 0.5 ? 0 : rnd() * 6;
      t += dt;
      if (params.durableShare !== undefined) {
        // Round 9's form: the gain above the prior mean decays, a share of it is kept.
        const b = params.priorMean;
        const d = params.durableShare + (1 - params.durableShare) * 2 ** (-dt / params.halfLifeDays);
        if (K > b) K = b + (K - b) * d;
      } else if (K > params.floor) {
        const d = 2 ** (-dt / params.halfLifeDays);
        // Round 15's all-or-none forgetting: the gain above the floor is kept whole with probability d, else lost.
        if (allOrNone) K = rnd() < d ? K : params.floor;
        else K = params.floor + (K - params.floor) * d;
      }
      const kind = rnd() < 0.6 ? KIND_QUIZ : rnd() < 0.5 ? KIND_VIDEO : KIND_PRACTICE;
      const pc = params.guess + (1 - params.guess - params.slip) * K;
      if (kind === KIND_QUIZ) events.push({ t, kind, n: 1, k: rnd() < pc ? 1 : 0 });
      else if (kind === KIND_PRACTICE) {
        let k = 0;
        for (let q = 0; q < 5; q++) if (rnd() < pc) k++;
        events.push({ t, kind, n: 5, k });
      } else events.push({ t, kind, n: 0, k: 0 });
      K += (params.learn[kind] ?? 0) * (1 - K);
    }
    out.push({ topic: "T", events });
  }
  return out;
}

describe("latent filter fit", () => {
  it("recovers guess, slip and the learning rates from data simulated by the model", () => {
    const truth: LatentParams = { ...PARAMS, noise: 0, halfLifeDays: 30, learn: [0.06, 0.15, 0.1, 0, 0] };
    const seqs = simulate(truth, 400, 7);
    const f = LatentFilter.fit(seqs, { bins: 24, maxEvaluations: 700 });
    const p = f.json.params;
    expect(p.guess).toBeGreaterThan(0.12);
    expect(p.guess).toBeLessThan(0.28);
    expect(p.slip).toBeGreaterThan(0.03);
    expect(p.slip).toBeLessThan(0.17);
    expect(p.learn[KIND_PRACTICE]!).toBeGreaterThan(p.learn[KIND_QUIZ]!);
    expect(p.learn[KIND_QUIZ]!).toBeGreaterThan(0.02);
    expect(p.learn[KIND_QUIZ]!).toBeLessThan(0.12);
    // Kinds absent from the data keep a rate of 0.
    expect(p.learn[KIND_ASSIGNMENT]).toBe(0);
    expect(f.json.fit.logLikPerObs).toBeLessThan(0);
  }, 300_000);

  it("finds the held-out answers within the posterior's spread on the model's own data, and not after an unmodelled change", () => {
    const truth: LatentParams = { ...PARAMS, noise: 0, halfLifeDays: 30, learn: [0.06, 0.15, 0.1, 0, 0] };
    const k = new LatentKernel(truth, 40);
    const own = LatentFilter.dispersion(k, simulate(truth, 3000, 11), () => truth.priorMean);
    const changed = LatentFilter.dispersion(k, simulate(truth, 3000, 11, true), () => truth.priorMean);
    expect(own.sequences).toBeGreaterThan(2500);
    // Own data: the residuals are binomial + posterior parts. The binomial part dominates (~14x), and the
    // 40-cell grid's interpolated learning / forgetting steps spread the carried-forward posterior (numerical
    // diffusion: the part halves on 200 cells), so the moment ratio lands below 1 and the inflation is 1.
    expect((own.residual - own.binomial) / own.posterior).toBeLessThan(1.2);
    expect(own.inflation).toBeLessThan(1.2);
    // A uniform redraw (sd 0.29) against a posterior sd of ~0.1: many times the posterior variance.
    expect(changed.inflation).toBeGreaterThan(8);
  }, 60_000);

  it("by evidence (round 14): the prior band's ratio is about 1 on the model's own data, and far above 1 when the prior is too narrow", () => {
    const truth: LatentParams = { ...PARAMS, noise: 0, halfLifeDays: 30, learn: [0.06, 0.15, 0.1, 0, 0] };
    const seqs = simulate(truth, 3000, 12);
    const own = dispersionByEvidence(
      () => new LatentKernel(truth, 40),
      seqs,
      () => truth.priorMean,
    );
    expect(own.map((b) => b.from)).toEqual([0, 1, 5, 15]);
    // Every sequence has >= 10 answers, so bands 0, 1 and 5 use every one of them; 15+ only the longer ones.
    expect(own[0]!.sequences).toBe(3000);
    expect(own[3]!.sequences).toBeGreaterThan(1000);
    expect(own[3]!.sequences).toBeLessThan(3000);
    // From the prior the posterior part is large (prior sd ~0.2), so the ratio is measured well: ~1.
    expect(own[0]!.ratio).toBeGreaterThan(0.8);
    expect(own[0]!.ratio).toBeLessThan(1.25);
    // The same answers judged by a filter whose prior is 10x more concentrated (sd ~0.07): the held-out
    // answers spread several times more than that prior says.
    const tight = new LatentKernel({ ...truth, priorConcentration: 10 * truth.priorConcentration }, 40);
    const narrow = dispersionByEvidence(
      () => tight,
      seqs,
      () => truth.priorMean,
    );
    expect(narrow[0]!.ratio).toBeGreaterThan(3);
  }, 60_000);

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

  it("chooses a forgetting spread from held-out answers: > 0 on pairs that forget all-or-none, 0 on pairs that decay smoothly", () => {
    const truth: LatentParams = {
      ...PARAMS,
      noise: 0,
      floor: 0.1,
      halfLifeDays: 8,
      learn: [0.1, 0.2, 0.15, 0, 0],
    };
    const opts = { bins: 40, topicPriorMean: {}, topicThreshold: {} };
    const allOrNone = LatentFilter.chooseForgetSpread(truth, simulate(truth, 3000, 21, false, true), opts);
    const smooth = LatentFilter.chooseForgetSpread(truth, simulate(truth, 3000, 21), opts);
    expect(Object.keys(allOrNone.ratios).sort()).toEqual(LATENT_FORGET_SPREAD_CANDIDATES.map(String).sort());
    // The spread adds variance to the carried-forward posterior, so the ratio falls as the spread grows.
    const r = LATENT_FORGET_SPREAD_CANDIDATES.map((c) => allOrNone.ratios[String(c)]!);
    for (let i = 1; i < r.length; i++) expect(r[i]!).toBeLessThan(r[i - 1]!);
    expect(allOrNone.chosen).toBeGreaterThan(0);
    expect(smooth.chosen).toBe(0);
    expect(allOrNone.sequences).toBeGreaterThan(2000);
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

  it("narrows a posterior the held-out answers call too wide under two-sided, keeps it under widen-only, and widens a too-narrow one under both", () => {
    const truth: LatentParams = { ...PARAMS, noise: 0, halfLifeDays: 30, learn: [0.06, 0.15, 0.1, 0, 0] };
    // Students bunched near the prior mean (concentration 60) read by a filter whose prior is nearly flat
    // (concentration 1.2): its carried-forward posterior is wider than the held-out answers' spread.
    const bunched = simulate({ ...truth, priorConcentration: 60 }, 2000, 13);
    const wide = LatentFilter.dispersion(
      new LatentKernel({ ...truth, priorConcentration: 1.2 }, 40),
      bunched,
      () => truth.priorMean,
    );
    const matched = LatentFilter.dispersion(
      new LatentKernel({ ...truth, priorConcentration: 60 }, 40),
      bunched,
      () => truth.priorMean,
    );
    expect(wide.ratio).toBeLessThan(0.9);
    expect(wide.ratio).toBeLessThan(matched.ratio);
    expect(wide.inflation).toBe(1);
    expect(intervalFactor(wide, "two-sided")).toBeLessThan(0.9);
    expect(intervalFactor(wide, "widen-only")).toBe(1);
    // The ratio is the documented moment: (residual - binomial) / posterior; inflation = max(1, ratio).
    expect(wide.ratio).toBeCloseTo((wide.residual - wide.binomial) / wide.posterior, 12);
    // An unmodelled change (K redrawn halfway): both modes widen by the same factor.
    const changed = LatentFilter.dispersion(
      new LatentKernel(truth, 40),
      simulate(truth, 1500, 11, true),
      () => truth.priorMean,
    );
    expect(intervalFactor(changed, "two-sided")).toBe(intervalFactor(changed, "widen-only"));
    expect(changed.ratio).toBeGreaterThan(4);
  }, 60_000);

  it("by-evidence (round 14): each band's factor from its held-out check, applied by the pair's observations; score unchanged", () => {
    const truth: LatentParams = { ...PARAMS, noise: 0, halfLifeDays: 30, learn: [0.06, 0.15, 0.1, 0, 0] };
    const seqs = simulate(truth, 300, 17);
    const banded = LatentFilter.fit(seqs, { bins: 20, maxEvaluations: 40, interval: "by-evidence" });
    const wide = LatentFilter.fit(seqs, { bins: 20, maxEvaluations: 40 });
    expect(banded.json.intervalScale).toBe(wide.json.intervalScale);
    const bands = banded.json.intervalScaleByEvidence!;
    const k = banded.kernelFor("T");
    const check = dispersionByEvidence(
      () => k,
      seqs,
      (t) => banded.priorMean(t),
    );
    bands.forEach((b, i) => {
      expect(b.ratio).toBe(check[i]!.ratio);
      expect(b.scale).toBeCloseTo(
        b.sequences >= LATENT_BAND_MIN_SEQUENCES
          ? Math.sqrt(Math.max(LATENT_MIN_INFLATION, b.ratio))
          : banded.json.intervalScale!,
        12,
      );
    });
    // A pair with 6 answers takes the 5+ band's factor; one without the prior's (0+).
    const events = seqs[0]!.events.filter((e) => e.kind === KIND_QUIZ).slice(0, 6);
    const at = (m: LatentFilter, ev: LatentEvent[], scale: number) =>
      new LatentFilter({ ...m.json, intervalScale: scale, intervalScaleByEvidence: [] }).predict("T", ev, 40);
    for (const [ev, band] of [
      [events, 2],
      [[], 0],
    ] as const) {
      const got = banded.predict("T", [...ev], 40);
      const ref = at(banded, [...ev], bands[band]!.scale);
      expect(got.score).toBe(wide.predict("T", [...ev], 40).score);
      expect(got.lo).toBe(ref.lo);
      expect(got.hi).toBe(ref.hi);
    }
    expect(banded.intervalScaleAt(6)).toBe(bands[2]!.scale);
    expect(banded.intervalScaleAt(0)).toBe(bands[0]!.scale);
  }, 60_000);

  it("records the dispersion check in the fitted model and serves the same score with a two-sided or widen-only interval", () => {
    const truth: LatentParams = { ...PARAMS, noise: 0, halfLifeDays: 30, learn: [0.06, 0.15, 0.1, 0, 0] };
    const seqs = simulate(truth, 300, 17);
    const two = LatentFilter.fit(seqs, { bins: 20, maxEvaluations: 40, interval: "two-sided" });
    const wide = LatentFilter.fit(seqs, { bins: 20, maxEvaluations: 40 });
    expect(two.json.params).toEqual(wide.json.params);
    const d = two.json.fit.dispersion!;
    expect(d.mode).toBe("two-sided");
    expect(wide.json.fit.dispersion!.mode).toBe("widen-only");
    expect(wide.json.fit.dispersion!.ratio).toBe(d.ratio);
    expect(d.sequences).toBeGreaterThan(100);
    expect(two.json.intervalScale).toBeCloseTo(Math.sqrt(Math.max(LATENT_MIN_INFLATION, d.ratio)), 12);
    expect(wide.json.intervalScale).toBeCloseTo(Math.sqrt(Math.max(1, d.ratio)), 12);
    for (const q of seqs.slice(0, 20)) {
      const a = two.predict("T", q.events, 200);
      const b = wide.predict("T", q.events, 200);
      expect(a.score).toBe(b.score);
      expect(a.lo).toBeGreaterThanOrEqual(b.lo - 1e-12);
      expect(a.hi).toBeLessThanOrEqual(b.hi + 1e-12);
    }
  }, 120_000);

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

  it("shrinks a small sample's global parameters toward the defaults, and leaves a sample at the minimum size as plain maximum likelihood", () => {
    // Coin flips (p = 0.5, no learning, no forgetting): 30 students x 10 answers = 300 graded observations.
    const rnd = mulberry32(3);
    const coins = (students: number): LatentSequence[] =>
      Array.from({ length: students }, (_, s) => ({
        topic: `T${s % 3}`,
        student: `S${s}`,
        events: Array.from({ length: 10 }, (_, j) => ({
          t: j * 0.5,
          kind: KIND_QUIZ,
          n: 1,
          k: rnd() < 0.5 ? 1 : 0,
        })),
      }));
    const small = coins(30);
    const guarded = LatentFilter.fit(small, { bins: 24, maxEvaluations: 400 });
    const plain = LatentFilter.fit(small, { bins: 24, maxEvaluations: 400, minObservations: 0 });
    expect(LATENT_MIN_OBSERVATIONS).toBe(10_000);
    // Known answer: prior sd 1 * sqrt(300 / (10,000 - 300)).
    expect(guarded.json.fit.smallData).toEqual({ minObservations: 10_000, priorSd: Math.sqrt(300 / 9700) });
    expect(plain.json.fit.smallData).toBeUndefined();
    // Distance to the defaults (guess 0.2, slip 0.1, quiz rate 0.03, half-life 60 d) on the fit's own coordinates.
    const dist = (f: LatentFilter) => {
      const p = f.json.params;
      const lg = (x: number) => Math.log(x / (1 - x));
      return Math.hypot(
        lg(p.guess / 0.5) - lg(0.4),
        lg(p.slip / 0.5) - lg(0.2),
        lg(p.learn[KIND_QUIZ]!) - lg(0.03),
        Math.log(p.halfLifeDays / 60),
      );
    };
    expect(dist(guarded)).toBeLessThan(0.5);
    expect(dist(plain)).toBeGreaterThan(3 * dist(guarded));
    expect(guarded.json.params.halfLifeDays).toBeGreaterThan(40);
    expect(plain.json.params.halfLifeDays).toBeLessThan(20);
    // At the minimum size the guard is off: the same fit, bit for bit, as without it.
    const atMin = LatentFilter.fit(small, { bins: 24, maxEvaluations: 400, minObservations: 300 });
    expect(atMin.json).toEqual(plain.json);
  }, 120_000);

  it("keeps the defaults, with the reason, when a small sample's shrunk fit is still implausible", () => {
    // Every pair: one wrong answer, then nine right ones within a day: the likelihood wants a quiz learning
    // rate of 1 (one answer teaches everything); 600 observations against a minimum of 650 shrink weakly.
    const seqs: LatentSequence[] = Array.from({ length: 60 }, (_, s) => ({
      topic: `T${s % 3}`,
      student: `S${s}`,
      events: Array.from({ length: 10 }, (_, j) => ({
        t: j * 0.1,
        kind: KIND_QUIZ,
        n: 1,
        k: j === 0 ? 0 : 1,
      })),
    }));
    const plain = LatentFilter.fit(seqs, { bins: 24, maxEvaluations: 400, minObservations: 0 });
    expect(plain.json.params.learn[KIND_QUIZ]).toBeGreaterThan(0.9);
    expect(plain.json.fit.implausible).toEqual(["quiz learning rate 1.000 >= 0.5"]);
    expect(plain.json.fit.fallback).toBeUndefined();
    const f = LatentFilter.fit(seqs, { bins: 24, maxEvaluations: 400, minObservations: 650 });
    expect(f.json.fit.fallback).toMatch(
      /600 graded observations \(< 650\).*quiz learning rate .* >= 0\.5.*kept at the defaults/,
    );
    const p = f.json.params;
    expect(p.guess).toBeCloseTo(0.2, 12);
    expect(p.slip).toBeCloseTo(0.1, 12);
    expect(p.learn[KIND_QUIZ]).toBeCloseTo(0.03, 12);
    expect(p.learn[KIND_PRACTICE]).toBe(0);
    expect(p.halfLifeDays).toBeCloseTo(60, 9);
    expect(implausibleParams(p)).toEqual([]);
    // The recorded likelihood is the kept parameters' own (no penalty in it).
    expect(f.json.fit.logLikPerObs).toBeLessThan(plain.json.fit.logLikPerObs);
  }, 120_000);

  it("refuses to fit on too little data, naming what is missing", () => {
    expect(() => LatentFilter.fit([{ topic: "T", events: [{ t: 0, kind: KIND_QUIZ, n: 1, k: 1 }] }])).toThrow(
      /graded observations/,
    );
  });
});

/**
 * Sequences of `students` x `topics` simulated from the model with a logistic emission (per-topic threshold)
 * and a student offset of the prior mean (logit units, Normal(0, studentSd^2)); returns the true offsets.
 */
function simulateStudents(
  params: LatentParams,
  thresholds: Record<string, number>,
  students: number,
  studentSd: number,
  seed: number,
  learnLoading = 0,
): { seqs: LatentSequence[]; offsets: number[] } {
  const rnd = mulberry32(seed);
  const normal = () => Math.sqrt(-2 * Math.log(1 - rnd())) * Math.cos(2 * Math.PI * rnd());
  const seqs: LatentSequence[] = [];
  const offsets: number[] = [];
  const sig = (z: number) => 1 / (1 + Math.exp(-z));
  for (let s = 0; s < students; s++) {
    const off = studentSd * normal();
    offsets.push(off);
    for (const [topic, th] of Object.entries(thresholds)) {
      // K from a logit-normal around the shifted prior mean (spread 0.6 logit units).
      let K = sig(Math.log(params.priorMean / (1 - params.priorMean)) + off + 0.6 * normal());
      const events: LatentEvent[] = [];
      let t = 0;
      const n = 4 + Math.floor(rnd() * 12);
      for (let j = 0; j < n; j++) {
        t += rnd() * 2;
        const shape = params.slope === undefined ? K : sig(params.slope * (K - th));
        const pc = params.guess + (1 - params.guess - params.slip) * shape;
        events.push({ t, kind: KIND_QUIZ, n: 1, k: rnd() < pc ? 1 : 0 });
        K += shiftedRate(params.learn[KIND_QUIZ] ?? 0, learnLoading * off) * (1 - K);
      }
      seqs.push({ topic, student: `s${s}`, events });
    }
  }
  return { seqs, offsets };
}

const NO_TIME: LatentParams = {
  ...PARAMS,
  learn: [0.04, 0, 0, 0, 0],
  halfLifeDays: 3650,
  floor: 0.01,
  noise: 0,
  priorConcentration: 6,
};

/** A logistic-emission truth for the simulated samples of rounds 6 and 13 (threshold 0.5, slope 12). */
const LOGISTIC: LatentParams = {
  ...NO_TIME,
  priorMean: 0.45,
  guess: 0.15,
  slip: 0.05,
  slope: 12,
  threshold: 0.5,
};

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

  it("fits a higher threshold to the topic whose items are harder, from data simulated with a logistic emission", () => {
    const truth = LOGISTIC;
    const { seqs } = simulateStudents(truth, { A: 0.35, B: 0.65 }, 300, 0, 5);
    // Topic prior means held at the global one (sd 0.01): without labels a hard topic's lower start and its higher
    // item threshold are nearly the same likelihood; this checks that the threshold search finds the difference.
    const f = LatentFilter.fit(seqs, {
      bins: 20,
      maxEvaluations: 300,
      emission: "logistic",
      topicPriorSd: 0.01,
    });
    const th = f.json.topicThreshold!;
    expect(th.B! - th.A!).toBeGreaterThan(0.1);
    expect(f.json.params.slope).toBeGreaterThan(3);
    // Served as it is: the same answers on the harder topic mean more knowledge.
    const ev: LatentEvent[] = [0, 1, 2, 3].map((t) => ({ t, kind: KIND_QUIZ, n: 1, k: t % 2 }));
    expect(f.predict("B", ev, 4).score).toBeGreaterThan(f.predict("A", ev, 4).score);
  }, 300_000);

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
  const known = (studentPriorSd?: number) =>
    new LatentFilter({
      version: 1,
      bins: 40,
      params: { ...NO_TIME, priorMean: 0.4 },
      // The topics the student effect covers (LatentFilter.studentTopic): those with a fitted prior.
      topicPriorMean: { A: 0.4, B: 0.4, C: 0.4, D: 0.4 },
      fit: { logLikPerObs: 0, observations: 0, sequences: 0, evaluations: 0 },
      ...(studentPriorSd !== undefined ? { studentPriorSd } : {}),
    });

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

  it("chooses a student sd by leave-one-topic-out likelihood: > 0 when students differ, ~0 when they do not", () => {
    const topics = { A: 0.5, B: 0.5, C: 0.5, D: 0.5 };
    const differ = simulateStudents({ ...NO_TIME, priorMean: 0.4 }, topics, 300, 1.2, 21);
    const same = simulateStudents({ ...NO_TIME, priorMean: 0.4 }, topics, 300, 0, 21);
    const f = known();
    const a = LatentFilter.chooseStudentSd(f, differ.seqs);
    const b = LatentFilter.chooseStudentSd(f, same.seqs);
    expect(a.sd).toBeGreaterThanOrEqual(0.5);
    expect(b.sd).toBeLessThanOrEqual(0.25);
    // The fitted offsets follow the true ones.
    const g = known(a.sd);
    const est = differ.offsets.map((_, s) =>
      g.studentOffset(differ.seqs.filter((q) => q.student === `s${s}`)),
    );
    expect(spearmanOf(est, differ.offsets)).toBeGreaterThan(0.6);
  }, 60_000);

  /** Four topics whose quiz answers teach (rate 0.08) and the filter that knows it (the loading tests). */
  const learningWorld = () => {
    const truth: LatentParams = { ...NO_TIME, priorMean: 0.3, learn: [0.08, 0, 0, 0, 0] };
    const f = new LatentFilter({
      ...known().json,
      params: truth,
      topicPriorMean: { A: 0.3, B: 0.3, C: 0.3, D: 0.3 },
    });
    return { topics: { A: 0.5, B: 0.5, C: 0.5, D: 0.5 }, truth, f };
  };

  it("chooses a learning loading with the sd (round 14): > 0 when able students also learn faster, 0 when they do not", () => {
    const { topics, truth, f } = learningWorld();
    const loads = simulateStudents(truth, topics, 300, 1, 22, 1);
    const level = simulateStudents(truth, topics, 300, 1, 22, 0);
    const a = LatentFilter.chooseStudentSd(f, loads.seqs, undefined, LATENT_STUDENT_LOADING_CANDIDATES);
    const b = LatentFilter.chooseStudentSd(f, level.seqs, undefined, LATENT_STUDENT_LOADING_CANDIDATES);
    expect(a.loading).toBeGreaterThanOrEqual(0.5);
    expect(b.loading).toBe(0);
    expect(a.sd).toBeGreaterThanOrEqual(0.5);
    expect(b.sd).toBeGreaterThanOrEqual(0.5);
    // The record: every candidate's best sd and score; the winner's beats loading 0 by more than the margin.
    expect(Object.keys(a.choice.heldOut).sort()).toEqual(
      LATENT_STUDENT_LOADING_CANDIDATES.map(String).sort(),
    );
    const w = a.choice.heldOut[String(a.loading)]!;
    expect(w.logLikPerObs).toBeGreaterThan(a.choice.heldOut["0"]!.logLikPerObs + a.choice.margin);
    expect(a.choice.observations).toBeGreaterThan(0);
    // Without loading candidates the choice is round 6's, and identical to loading 0's entry.
    const c = LatentFilter.chooseStudentSd(f, loads.seqs);
    expect(c.loading).toBe(0);
    expect(c.choice.heldOut["0"]).toEqual(a.choice.heldOut["0"]);
  }, 120_000);

  it("wide (round 22): offers loadings above 1 and takes one when able students learn much faster", () => {
    expect(studentLoadingCandidates("off")).toEqual([0]);
    expect(studentLoadingCandidates("auto")).toEqual(LATENT_STUDENT_LOADING_CANDIDATES);
    expect(studentLoadingCandidates("wide")).toEqual([0, 0.25, 0.5, 1, 1.5, 2]);
    const { topics, truth, f } = learningWorld();
    const fast = simulateStudents(truth, topics, 150, 1, 23, 2);
    const wide = LatentFilter.chooseStudentSd(f, fast.seqs, undefined, studentLoadingCandidates("wide"));
    expect(wide.loading).toBeGreaterThan(1);
    expect(
      Object.keys(wide.choice.heldOut)
        .map(Number)
        .sort((a, b) => a - b),
    ).toEqual([0, 0.25, 0.5, 1, 1.5, 2]);
    // The loadings both modes offer score the same: "wide" only adds candidates.
    const auto = LatentFilter.chooseStudentSd(f, fast.seqs, undefined, studentLoadingCandidates("auto"));
    for (const l of LATENT_STUDENT_LOADING_CANDIDATES)
      expect(wide.choice.heldOut[String(l)]).toEqual(auto.choice.heldOut[String(l)]);
  }, 120_000);
});

/**
 * A fitted filter's log-likelihood per held-out answer, computed another way than the choice functions do:
 * the filter is causal, so a sequence's held-out part is run(all events) - run(events before the cut).
 */
function heldOutPerObs(
  m: LatentFilter,
  seqs: readonly { topic: string; events: LatentEvent[] }[],
  cutDay: number,
  heldOutObservations: number,
): number {
  let ll = 0;
  for (const s of seqs) {
    const k = m.kernelFor(s.topic);
    const p = new Float64Array(k.bins);
    const prior = m.json.topicPriorMean[s.topic] ?? m.json.params.priorMean;
    ll +=
      k.run(s.events, prior, p) -
      k.run(
        s.events.filter((e) => e.t < cutDay),
        prior,
        p,
      );
  }
  return ll / heldOutObservations;
}

function spearmanOf(a: number[], b: number[]): number {
  const rank = (x: number[]) => {
    const idx = x.map((v, i) => [v, i] as const).sort((p, q) => p[0] - q[0]);
    const r = new Array<number>(x.length);
    idx.forEach(([, i], j) => {
      r[i] = j;
    });
    return r;
  };
  const ra = rank(a);
  const rb = rank(b);
  const n = a.length;
  const m = (n - 1) / 2;
  let sab = 0;
  let saa = 0;
  let sbb = 0;
  for (let i = 0; i < n; i++) {
    sab += (ra[i]! - m) * (rb[i]! - m);
    saa += (ra[i]! - m) ** 2;
    sbb += (rb[i]! - m) ** 2;
  }
  return sab / Math.sqrt(saa * sbb);
}

describe("latent filter: optimiser budget and the emission chosen by held-out likelihood (round 10)", () => {
  it("runs the fit to convergence by relative change (opt-in), never below the 600-evaluation stop", () => {
    const truth: LatentParams = { ...PARAMS, noise: 0, halfLifeDays: 30, learn: [0.06, 0.15, 0.1, 0, 0] };
    const seqs = simulate(truth, 150, 11);
    const old = LatentFilter.fit(seqs, { bins: 16, maxEvaluations: 600, stallEvaluations: 1e9 });
    const now = LatentFilter.fit(seqs, { bins: 16, maxEvaluations: 4000, stallEvaluations: 300 });
    expect(old.json.fit.stop).toBe("budget");
    expect(now.json.fit.stop).not.toBe("budget");
    expect(now.json.fit.evaluations).toBeGreaterThan(600);
    expect(now.json.fit.evaluations).toBeLessThan(4000);
    // The same path continued: the likelihood can only rise.
    expect(now.json.fit.logLikPerObs).toBeGreaterThanOrEqual(old.json.fit.logLikPerObs);
  }, 300_000);

  it("scores each form by the log-likelihood of the answers after the time cut, fitted on those before it", () => {
    const { seqs } = simulateStudents({ ...NO_TIME, priorMean: 0.45 }, { A: 0.5, B: 0.5 }, 120, 0, 3);
    const opts = { bins: 16, maxEvaluations: 200 };
    const ch = LatentFilter.chooseEmission(seqs, opts);
    // Known answer, computed another way: the filter is causal, so the held-out part of a sequence's
    // log-likelihood is run(all events) - run(events before the cut).
    const before = seqs
      .map((s) => ({ ...s, events: s.events.filter((e) => e.t < ch.cutDay) }))
      .filter((s) => s.events.length > 0);
    const heldOut = (m: LatentFilter): number => heldOutPerObs(m, seqs, ch.cutDay, ch.heldOutObservations);
    const lin = LatentFilter.fit(before, { ...opts, emission: "linear" });
    const lgt = LatentFilter.fit(before, { ...opts, emission: "logistic", fixedConcentration: 4 });
    expect(ch.heldOut.linear).toBeCloseTo(heldOut(lin), 10);
    expect(ch.heldOut.logistic).toBeCloseTo(heldOut(lgt), 10);
    let after = 0;
    for (const s of seqs) for (const e of s.events) if (e.t >= ch.cutDay) after += e.n;
    expect(ch.heldOutObservations).toBe(after);
    // About a fifth of the answers are held out (the 80th percentile of the answers' times).
    expect(after / seqs.reduce((a, s) => a + s.events.length, 0)).toBeGreaterThan(0.15);
    expect(after / seqs.reduce((a, s) => a + s.events.length, 0)).toBeLessThan(0.25);
    expect(ch.chosen).toBe(ch.heldOut.logistic > ch.heldOut.linear + ch.margin ? "logistic" : "linear");
  }, 300_000);

  it("chooses the logistic form on answers from a steep item threshold and the linear one on answers linear in K", () => {
    const steep: LatentParams = {
      ...NO_TIME,
      priorMean: 0.5,
      guess: 0.1,
      slip: 0.05,
      slope: 30,
      threshold: 0.5,
    };
    const a = simulateStudents(steep, { A: 0.5, B: 0.5, C: 0.5 }, 200, 0, 21).seqs;
    const fa = LatentFilter.fit(a, { bins: 20, maxEvaluations: 300, emission: "auto" });
    expect(fa.json.fit.emissionChoice?.chosen).toBe("logistic");
    expect(fa.json.params.slope).toBeDefined();
    expect(fa.json.params.priorConcentration).toBe(4);
    const truth: LatentParams = { ...PARAMS, noise: 0, halfLifeDays: 30, learn: [0.06, 0.15, 0.1, 0, 0] };
    const b = simulate(truth, 300, 5);
    const fb = LatentFilter.fit(b, { bins: 20, maxEvaluations: 300, emission: "auto" });
    expect(fb.json.fit.emissionChoice?.chosen).toBe("linear");
    expect(fb.json.params.slope).toBeUndefined();
  }, 300_000);
});

describe("latent filter: the forgetting chosen by held-out likelihood (round 12)", () => {
  const DURABLE: LatentParams = {
    ...PARAMS,
    noise: 0,
    halfLifeDays: 4,
    durableShare: 0.3,
    learn: [0.1, 0.2, 0.15, 0, 0],
  };

  it("scores each forgetting form by the log-likelihood of the answers after the time cut, fitted on those before it", () => {
    const seqs = simulate(DURABLE, 200, 31);
    const opts = { bins: 16, maxEvaluations: 200, emission: "linear" as const };
    const ch = LatentFilter.chooseForgetting(seqs, opts);
    // Known answer, computed another way: the filter is causal, so a sequence's held-out log-likelihood is
    // run(all events) - run(events before the cut), for the forms refitted here on the events before the cut.
    const before = seqs
      .map((s) => ({ ...s, events: s.events.filter((e) => e.t < ch.cutDay) }))
      .filter((s) => s.events.length > 0);
    const heldOut = (m: LatentFilter): number => heldOutPerObs(m, seqs, ch.cutDay, ch.heldOutObservations);
    const floor = LatentFilter.fit(before, { ...opts, forgetting: "floor" });
    const durable = LatentFilter.fit(before, { ...opts, forgetting: "durable" });
    expect(durable.json.params.durableShare).toBeDefined();
    expect(ch.heldOut.floor).toBeCloseTo(heldOut(floor), 10);
    expect(ch.heldOut.durable).toBeCloseTo(heldOut(durable), 10);
    let after = 0;
    for (const s of seqs) for (const e of s.events) if (e.t >= ch.cutDay) after += e.n;
    expect(ch.heldOutObservations).toBe(after);
    expect(ch.chosen).toBe(ch.heldOut.durable > ch.heldOut.floor + ch.margin ? "durable" : "floor");
  }, 300_000);

  /**
   * Pairs practised daily for 1-14 days (so their gains differ), then idle 10-40 days, then answering ten quiz
   * items: the answers after the gap (the time split's held-out part) show what the forgetting kept.
   */
  function practiseThenGap(params: LatentParams, pairs: number, seed: number): LatentSequence[] {
    const rnd = mulberry32(seed);
    const out: LatentSequence[] = [];
    for (let s = 0; s < pairs; s++) {
      let K = params.priorMean * (0.5 + rnd());
      const b = K;
      const events: LatentEvent[] = [];
      let t = 0;
      const answer = () => {
        const pc = params.guess + (1 - params.guess - params.slip) * K;
        events.push({ t, kind: KIND_QUIZ, n: 1, k: rnd() < pc ? 1 : 0 });
        K += (params.learn[KIND_QUIZ] ?? 0) * (1 - K);
      };
      const wait = (dt: number) => {
        t += dt;
        if (params.durableShare !== undefined) {
          const d = params.durableShare + (1 - params.durableShare) * 2 ** (-dt / params.halfLifeDays);
          if (K > b) K = b + (K - b) * d;
        } else if (K > params.floor) K = params.floor + (K - params.floor) * 2 ** (-dt / params.halfLifeDays);
      };
      const days = 1 + Math.floor(14 * rnd());
      for (let j = 0; j < days; j++) {
        answer();
        answer();
        wait(1);
      }
      wait(10 + 30 * rnd());
      for (let j = 0; j < 10; j++) {
        answer();
        wait(0.01);
      }
      out.push({ topic: "T", events });
    }
    return out;
  }

  it("picks the durable share on answers simulated with it, and fits the chosen form on the whole sample", () => {
    const truth: LatentParams = { ...DURABLE, durableShare: 0.6, halfLifeDays: 3, learn: [0.06, 0, 0, 0, 0] };
    const seqs = practiseThenGap(truth, 300, 13);
    const opts = { bins: 24, maxEvaluations: 400, emission: "linear" as const };
    const f = LatentFilter.fit(seqs, { ...opts, forgetting: "auto" });
    const ch = f.json.fit.forgettingChoice;
    expect(ch?.chosen).toBe("durable");
    expect(ch!.heldOut.durable).toBeGreaterThan(ch!.heldOut.floor + ch!.margin);
    // The chosen form refitted on everything: the same model as naming it.
    const named = LatentFilter.fit(seqs, { ...opts, forgetting: "durable" });
    expect(f.json.params).toEqual(named.json.params);
    expect(f.json.params.durableShare!).toBeGreaterThan(0.3);
    expect(f.json.params.durableShare!).toBeLessThan(0.9);
  }, 300_000);

  it("keeps the global floor on answers that forget towards it", () => {
    const truth: LatentParams = {
      ...PARAMS,
      noise: 0,
      halfLifeDays: 3,
      floor: 0.05,
      learn: [0.12, 0, 0, 0, 0],
    };
    const f = LatentFilter.fit(practiseThenGap(truth, 300, 17), {
      bins: 24,
      maxEvaluations: 400,
      emission: "linear",
      forgetting: "auto",
    });
    expect(f.json.fit.forgettingChoice?.chosen).toBe("floor");
    expect(f.json.params.durableShare).toBeUndefined();
  }, 300_000);

  it("with the emission also auto, reuses the chosen emission's held-out score for the floor form (same split, same fit)", () => {
    const seqs = simulate(DURABLE, 150, 7);
    const opts = { bins: 16, maxEvaluations: 150 };
    const f = LatentFilter.fit(seqs, { ...opts, emission: "auto", forgetting: "auto" });
    const em = f.json.fit.emissionChoice!;
    const fo = f.json.fit.forgettingChoice!;
    expect(fo.cutDay).toBe(em.cutDay);
    expect(fo.heldOut.floor).toBe(em.heldOut[em.chosen]);
    // Refitting the floor form instead of reusing it gives the same score.
    const again = LatentFilter.chooseForgetting(seqs, {
      ...opts,
      emission: em.chosen,
      ...(em.chosen === "logistic" ? { fixedConcentration: 4 } : {}),
    });
    expect(again.heldOut.floor).toBeCloseTo(fo.heldOut.floor, 12);
    expect(again.heldOut.durable).toBeCloseTo(fo.heldOut.durable, 12);
    expect(() => LatentFilter.chooseForgetting(seqs, { ...opts, emission: "auto" })).toThrow(
      /emission fixed/,
    );
  }, 300_000);
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

  it("scores each candidate by the other half's log-likelihood under the topic fits of one half, both directions", () => {
    const { seqs } = simulateStudents(LOGISTIC, { A: 0.35, B: 0.6, C: 0.5 }, 120, 0.5, 23);
    const bins = 16;
    const ch = LatentFilter.chooseThresholdSd(LOGISTIC, seqs, { bins, candidates: [0, 0.1] });
    // Known answer, computed directly from the two halves: the incumbent 0.15 is scored too.
    expect(Object.keys(ch.heldOut).sort()).toEqual(["0", "0.1", "0.15"]);
    const halves: LatentSequence[][] = [[], []];
    for (const s of seqs) halves[studentHalf(s.student!)]!.push(s);
    let obs = 0;
    for (const s of seqs) for (const e of s.events) obs += e.n;
    expect(ch.observations).toBe(obs);
    const p = new Float64Array(bins);
    for (const sd of [0, 0.1, 0.15]) {
      let ll = 0;
      for (const h of [0, 1]) {
        const fitted = fitTopicEffects(LOGISTIC, bins, groupByTopic(halves[h]!), {
          topicPriorSd: 1,
          topicThresholdSd: sd,
        });
        if (sd === 0) for (const th of Object.values(fitted.topicThreshold)) expect(th).toBe(0.5);
        for (const s of halves[1 - h]!)
          ll += new LatentKernel(LOGISTIC, bins, fitted.topicThreshold[s.topic]).run(
            s.events,
            fitted.topicPriorMean[s.topic]!,
            p,
          );
      }
      expect(ch.heldOut[String(sd)]).toBeCloseTo(ll / obs, 12);
    }
    const best = [0, 0.1, 0.15].reduce((a, b) => (ch.heldOut[String(b)]! > ch.heldOut[String(a)]! ? b : a));
    expect(ch.chosen).toBe(ch.heldOut[String(best)]! > ch.heldOut["0.15"]! + ch.margin ? best : 0.15);
  }, 300_000);

  /** Quiz answers of `students` per topic: K logit-normal around the topic's prior mean, the topic's threshold. */
  function simulateTopics(
    topics: Record<string, { prior: number; threshold: number }>,
    students: number,
    seed: number,
  ) {
    const rnd = mulberry32(seed);
    const normal = () => Math.sqrt(-2 * Math.log(1 - rnd())) * Math.cos(2 * Math.PI * rnd());
    const sig = (z: number) => 1 / (1 + Math.exp(-z));
    const seqs: LatentSequence[] = [];
    for (let s = 0; s < students; s++)
      for (const [topic, { prior, threshold }] of Object.entries(topics)) {
        let K = sig(Math.log(prior / (1 - prior)) + 0.6 * normal());
        const events: LatentEvent[] = [];
        let t = 0;
        const n = 4 + Math.floor(rnd() * 12);
        for (let j = 0; j < n; j++) {
          t += rnd() * 2;
          const pc =
            LOGISTIC.guess + (1 - LOGISTIC.guess - LOGISTIC.slip) * sig(LOGISTIC.slope! * (K - threshold));
          events.push({ t, kind: KIND_QUIZ, n: 1, k: rnd() < pc ? 1 : 0 });
          K += 0.04 * (1 - K);
        }
        seqs.push({ topic, student: `s${s}`, events });
      }
    return seqs;
  }
  /** The choice around global parameters fitted on the same answers (as LatentFilter.fit does). */
  const chooseOnFit = (seqs: LatentSequence[]) => {
    const f = LatentFilter.fit(seqs, { bins: 16, maxEvaluations: 200, emission: "logistic" });
    return LatentFilter.chooseThresholdSd(f.json.params, seqs, { bins: 16 });
  };

  it("keeps per-topic thresholds when the topics' items differ in difficulty (one global threshold scores worse)", () => {
    const seqs = simulateTopics(
      {
        A: { prior: 0.45, threshold: 0.3 },
        B: { prior: 0.45, threshold: 0.7 },
        C: { prior: 0.45, threshold: 0.5 },
        D: { prior: 0.45, threshold: 0.4 },
      },
      300,
      29,
    );
    const ch = chooseOnFit(seqs);
    expect(ch.heldOut["0"]!).toBeLessThan(ch.heldOut["0.15"]! - 2 * ch.margin);
    expect(ch.chosen).toBeGreaterThanOrEqual(0.15);
  }, 300_000);

  it("shrinks to one global threshold when the topics differ only in their prior mean and each has few students", () => {
    const topics = Object.fromEntries(
      Array.from({ length: 12 }, (_, i) => [`T${i}`, { prior: 0.3 + 0.03 * i, threshold: 0.5 }]),
    );
    const ch = chooseOnFit(simulateTopics(topics, 40, 29));
    expect(ch.heldOut["0"]!).toBeGreaterThan(ch.heldOut["0.15"]! + ch.margin);
    expect(ch.heldOut["0.3"]!).toBeLessThan(ch.heldOut["0"]!);
    expect(ch.chosen).toBe(0);
  }, 300_000);

  it("fit with topicThresholdSd auto records the choice and equals the fit at the chosen sd; sd 0 is one threshold", () => {
    const { seqs } = simulateStudents(LOGISTIC, { A: 0.35, B: 0.6 }, 150, 0.5, 37);
    const opts = { bins: 16, maxEvaluations: 120, emission: "logistic" as const };
    const auto = LatentFilter.fit(seqs, { ...opts, topicThresholdSd: "auto" });
    const tc = auto.json.fit.thresholdChoice!;
    expect(tc.incumbent).toBe(LATENT_TOPIC_THRESHOLD_SD);
    expect(LATENT_THRESHOLD_SD_CANDIDATES).toContain(tc.chosen);
    const named = LatentFilter.fit(seqs, { ...opts, topicThresholdSd: tc.chosen });
    expect(named.json.fit.thresholdChoice).toBeUndefined();
    expect(auto.json.topicThreshold).toEqual(named.json.topicThreshold);
    expect(auto.json.topicPriorMean).toEqual(named.json.topicPriorMean);
    const one = LatentFilter.fit(seqs, { ...opts, topicThresholdSd: 0 });
    for (const th of Object.values(one.json.topicThreshold!)) expect(th).toBe(one.json.params.threshold);
    // The default (no sd named) is the fixed 0.15 of rounds 6-12, with no choice recorded.
    const dflt = LatentFilter.fit(seqs, opts);
    const fixed = LatentFilter.fit(seqs, { ...opts, topicThresholdSd: 0.15 });
    expect(dflt.json.topicThreshold).toEqual(fixed.json.topicThreshold);
    expect(dflt.json.fit.thresholdChoice).toBeUndefined();
    // The linear emission has no thresholds: "auto" is a no-op there, and the choice itself refuses it.
    const lin = LatentFilter.fit(seqs, { ...opts, emission: "linear", topicThresholdSd: "auto" });
    expect(lin.json.fit.thresholdChoice).toBeUndefined();
    expect(() => LatentFilter.chooseThresholdSd(PARAMS, seqs)).toThrow(/logistic emission/);
  }, 300_000);

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
