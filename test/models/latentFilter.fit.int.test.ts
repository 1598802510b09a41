/**
 * The latent filter's fits on simulated samples (models/latentFilter.ts): parameter recovery, the held-out
 * dispersion checks and every choice made by held-out likelihood (forgetting form, emission, forgetting spread,
 * student sd and loading, topic threshold sd, the small-sample guard). Each fits the model to hundreds or
 * thousands of simulated sequences, seconds apiece: too slow for the unit tier, so they live here
 * (test/models/latentFilter.test.ts keeps the kernel's properties and known answers).
 */
import { describe, expect, it } from "vitest";
import {
  dispersionByEvidence,
  fitTopicEffects,
  groupByTopic,
  implausibleParams,
  intervalFactor,
  KIND_ASSIGNMENT,
  KIND_PRACTICE,
  KIND_QUIZ,
  LATENT_BAND_MIN_SEQUENCES,
  LATENT_FORGET_SPREAD_CANDIDATES,
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
  studentHalf,
  studentLoadingCandidates,
} from "../../models/latentFilter.ts";
import { mulberry32 } from "../../models/prng.ts";
import {
  LATENT_TEST_PARAMS,
  LATENT_LOGISTIC_PARAMS as LOGISTIC,
  LATENT_NO_TIME_PARAMS as NO_TIME,
  simulateLatent as simulate,
  simulateLatentStudents as simulateStudents,
  studentEffectFilter,
} from "./latentFixtures.ts";

const PARAMS: LatentParams = LATENT_TEST_PARAMS;

describe("latent filter: durable-share forgetting fitted", () => {
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
});

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
});

describe("latent filter: logistic emission (round 6)", () => {
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
});

describe("latent filter: student effect (round 6)", () => {
  const known = studentEffectFilter;

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
});
