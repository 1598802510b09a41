import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  KIND_QUIZ,
  LATENT_MIN_INFLATION,
  LatentFilter,
  type LatentIntervalMode,
  type LatentModelJson,
  type LatentParams,
  type LatentSequence,
} from "../../models/latentFilter.ts";
import {
  applyHeldOutBands,
  applyStudentInterval,
  applyStudentIntervalMode,
  dispersionAtOffsets,
  HELD_OUT_BAND_MIN_Z,
  heldOutBands,
  leaveOneTopicOutOffsets,
} from "../../models/studentInterval.ts";
import {
  LATENT_LOGISTIC_PARAMS,
  LATENT_TEST_PARAMS,
  LATENT_STILL_PARAMS as STILL,
  simulateLatentStudents,
  stillStudents,
  STUDENT_TEST_TOPICS as TOPICS,
} from "./latentFixtures.ts";

const model = (
  params: LatentParams,
  studentPriorSd: number,
  bins = 40,
  extra: Partial<LatentModelJson> = {},
) =>
  new LatentFilter({
    version: 1,
    bins,
    params,
    topicPriorMean: Object.fromEntries(TOPICS.map((t) => [t, params.priorMean])),
    fit: { logLikPerObs: 0, observations: 0, sequences: 0, evaluations: 0 },
    ...(studentPriorSd > 0 ? { studentPriorSd } : {}),
    ...extra,
  });

/** The still model at 12 bins whose fit-time dispersion check widened the interval by 1.25 (ratio 1.5625). */
const widenedModel = (studentPriorSd: number, mode: LatentIntervalMode) =>
  model(STILL, studentPriorSd, 12, {
    intervalScale: 1.25,
    fit: {
      logLikPerObs: 0,
      observations: 0,
      sequences: 0,
      evaluations: 0,
      dispersion: { ratio: 1.5625, sequences: 8, mode },
    },
  });

const students = (n: number, trueSd: number, seed: number, answers = 8): LatentSequence[] =>
  stillStudents(n, trueSd, seed, 0.3, answers);

describe("the interval's dispersion check on the model with its student part (round 21)", () => {
  it("held-out ratio by hand: two cells, uniform prior, one answer seen, one held out", () => {
    // Cells 0.25 / 0.75, P(correct) 0.375 / 0.725 (guess 0.2, slip 0.1). A right answer is seen: weights
    // 0.1875 / 0.3625 of 0.55. The held-out (wrong) answer: m = 0.60568..., E[e^2] = (0.1875 0.375^2 + 0.3625
    // 0.725^2) / 0.55, v = E[e^2] - m^2; residual m^2, binomial m (1 - m) - v, posterior v.
    const f = model({ ...STILL, priorMean: 0.5, priorConcentration: 2 }, 0, 2);
    const seq: LatentSequence = {
      topic: "A",
      events: [
        { t: 0, kind: KIND_QUIZ, n: 1, k: 1 },
        { t: 0, kind: KIND_QUIZ, n: 1, k: 0 },
      ],
    };
    const m = (0.1875 * 0.375 + 0.3625 * 0.725) / 0.55;
    const v = (0.1875 * 0.375 ** 2 + 0.3625 * 0.725 ** 2) / 0.55 - m * m;
    const want = (m * m - (m * (1 - m) - v)) / v;
    const d = dispersionAtOffsets(f, [seq], new Map(), 2);
    expect(d.sequences).toBe(1);
    expect(d.withOffset).toBe(0);
    expect(d.ratio).toBeCloseTo(want, 10);
    expect(want).toBeCloseTo(5.6512, 3);
  });

  it("at offset 0 it is the fit's check (LatentFilter.dispersion), for any answers", () => {
    const f = model(LATENT_TEST_PARAMS, 1, 20);
    fc.assert(
      fc.property(
        fc.array(
          fc.array(
            fc.record({ dt: fc.double({ min: 0, max: 5, noNaN: true }), k: fc.integer({ min: 0, max: 3 }) }),
            {
              minLength: 1,
              maxLength: 12,
            },
          ),
          { minLength: 1, maxLength: 6 },
        ),
        (raw) => {
          const seqs: LatentSequence[] = raw.map((evs, i) => {
            let t = 0;
            return {
              topic: TOPICS[i % TOPICS.length]!,
              events: evs.map((e) => {
                t += e.dt;
                return { t, kind: KIND_QUIZ, n: 3, k: e.k };
              }),
            };
          });
          const a = dispersionAtOffsets(f, seqs, new Map());
          const b = LatentFilter.dispersion(
            (t) => f.kernelFor(t),
            seqs,
            (t) => f.priorMean(t),
          );
          expect(a.sequences).toBe(b.sequences);
          if (Number.isNaN(b.ratio)) expect(a.ratio).toBeNaN();
          else expect(a.ratio).toBeCloseTo(b.ratio, 9);
        },
      ),
      { numRuns: 60 },
    );
  });

  it("takes each sequence's offset from the student's other topics only (leave one topic out)", () => {
    const f = model(STILL, 1, 20);
    const seqs = students(3, 1, 11);
    const offsets = leaveOneTopicOutOffsets(f, seqs);
    for (const s of seqs.slice(0, 8)) {
      const others = seqs.filter((q) => q.student === s.student && q !== s);
      expect(offsets.get(s)).toBeCloseTo(f.studentOffset(others), 12);
    }
    // A student with one topic, and a model without a student effect: offset 0.
    const lone: LatentSequence = { topic: "A", student: "lone", events: seqs[0]!.events };
    expect(leaveOneTopicOutOffsets(f, [lone]).get(lone)).toBe(0);
    for (const o of leaveOneTopicOutOffsets(model(STILL, 0, 20), seqs).values()) expect(o).toBe(0);
  });

  it("students who differ (sd 1.8): the student part explains part of the held-out spread, the factor falls (1.70 -> 0.67)", () => {
    const seqs = students(120, 1.8, 5, 10);
    const plain = LatentFilter.dispersion(
      (t) => model(STILL, 1.8, 30).kernelFor(t),
      seqs,
      () => STILL.priorMean,
    );
    const f = model(STILL, 1.8, 30, {
      fit: {
        logLikPerObs: 0,
        observations: 0,
        sequences: 0,
        evaluations: 0,
        dispersion: { ratio: plain.ratio, sequences: plain.sequences, mode: "widen-only" },
      },
      intervalScale: Math.sqrt(Math.max(1, plain.ratio)),
    });
    expect(plain.ratio).toBeGreaterThan(1.4);
    const refit = applyStudentInterval(f, seqs);
    const c = refit.json.fit.studentIntervalCheck!;
    expect(c.ratioBefore).toBe(plain.ratio);
    expect(c.scaleBefore).toBe(f.json.intervalScale);
    expect(c.sequences).toBe(plain.sequences);
    expect(c.withOffset).toBe(seqs.length);
    expect(c.ratio).toBeLessThan(plain.ratio - 0.2);
    expect(refit.json.intervalScale).toBe(Math.sqrt(Math.max(1, c.ratio)));
    expect(refit.json.intervalScale!).toBeLessThan(f.json.intervalScale!);
    // Only the interval's factor changes: the same point estimate, a narrower interval around it.
    const s0 = seqs.filter((q) => q.student === "s0");
    const a = f.predictStudent(s0, 20).estimates[0]!;
    const b = refit.predictStudent(s0, 20).estimates[0]!;
    expect(b.score).toBe(a.score);
    expect(b.hi - b.lo).toBeLessThan(a.hi - a.lo);
  }, 60_000);

  it("keeps the factor without a student effect, and refuses the by-evidence factors with the fix named", () => {
    const seqs = students(10, 0, 3);
    const f = model(STILL, 0, 20, { intervalScale: 1.3 });
    const kept = applyStudentInterval(f, seqs);
    expect(kept.json.intervalScale).toBe(1.3);
    expect(kept.json.fit.studentIntervalCheck?.reason).toMatch(/no student effect/);
    const byEv = model(STILL, 1, 20, {
      intervalScaleByEvidence: [{ from: 0, scale: 1.1, ratio: 1.21, sequences: 300 }],
    });
    expect(() => applyStudentInterval(byEv, seqs)).toThrow(/--latent-interval widen-only or two-sided/);
  });

  it("property: the factor is sqrt(max(1, ratio)) under widen-only, sqrt(max(0.25, ratio)) under two-sided, and only intervalScale and the check change", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 1000 }),
        fc.double({ min: 0, max: 1.5, noNaN: true }),
        fc.double({ min: 0.2, max: 2, noNaN: true }),
        fc.constantFrom("widen-only" as const, "two-sided" as const),
        (seed, trueSd, sd, mode) => {
          const seqs = students(8, trueSd, seed);
          const f = widenedModel(sd, mode);
          const r = applyStudentInterval(f, seqs);
          const c = r.json.fit.studentIntervalCheck!;
          expect(c.mode).toBe(mode);
          const floor = mode === "two-sided" ? LATENT_MIN_INFLATION : 1;
          expect(r.json.intervalScale).toBe(Math.sqrt(Math.max(floor, c.ratio)));
          expect(r.json.intervalScale!).toBeGreaterThanOrEqual(Math.sqrt(floor));
          const { intervalScale: _a, fit: fa, ...restA } = f.json;
          const { intervalScale: _b, fit: fb, ...restB } = r.json;
          expect(restB).toEqual(restA);
          const { studentIntervalCheck: _c, ...fbRest } = fb;
          expect(fbRest).toEqual(fa);
        },
      ),
      { numRuns: 15 },
    );
  }, 60_000);
});

describe("the held-out calibration by evidence band (round 23, --latent-student-interval bands)", () => {
  it("by hand: 200 sequences of right, right, wrong, wrong from a two-cell uniform prior", () => {
    // Cells 0.25 / 0.75, P(correct) = 0.2 + 0.7 K, nothing learnt or forgotten: band 0 holds out all four answers
    // from the prior. Per sequence: expected 4 x 0.55 = 2.2, excess -0.2, z = -40 / sqrt(200 x 0.04). The raw
    // shift d solves 4 (0.55 + 0.7 d) = 2: d = -1/14; served x 800 / (800 + 200). At that shift P(correct) is
    // 0.335 / 0.685 (mean 0.51, sd 0.175): residual 200 x (2 - 2.04)^2 = 0.32, binomial 200 x 4 (0.51 x 0.49 -
    // 0.175^2) = 175.42, posterior 200 x (4 x 0.175)^2 = 98: ratio (0.32 - 175.42) / 98, factor floored at 0.5.
    const f = model({ ...STILL, priorMean: 0.5, priorConcentration: 2 }, 0, 2);
    const seq = (i: number): LatentSequence => ({
      topic: "A",
      student: `s${i}`,
      events: [1, 1, 0, 0].map((k) => ({ t: 0, kind: KIND_QUIZ, n: 1, k })),
    });
    const seqs = Array.from({ length: 200 }, (_, i) => seq(i));
    const [b0, b1, b5, b15] = heldOutBands(f, seqs, new Map(), 1.3);
    expect(b0!.sequences).toBe(200);
    expect(b0!.answers).toBe(800);
    expect(b0!.excess).toBeCloseTo(-40, 9);
    expect(b0!.z).toBeCloseTo(-Math.sqrt(200), 9);
    expect(b0!.rawShift).toBeCloseTo(-1 / 14, 9);
    expect(b0!.shift).toBeCloseTo(-0.8 / 14, 9);
    expect(b0!.ratio).toBeCloseTo((0.32 - 175.42) / 98, 9);
    expect(b0!.scale).toBe(Math.sqrt(LATENT_MIN_INFLATION));
    // Bands 1, 5, 15 need 5, 9, 19 answers: none qualifies, the one factor and no shift.
    for (const b of [b1!, b5!, b15!]) {
      expect(b.sequences).toBe(0);
      expect(b.shift).toBe(0);
      expect(b.scale).toBe(1.3);
      expect(b.reason).toMatch(/fewer than 200 sequences/);
    }
    // Fewer than 200 sequences: no shift, the one factor, even with |z| far above the gate.
    const few = heldOutBands(f, seqs.slice(0, 199), new Map(), 1.3)[0]!;
    expect(Math.abs(few.z)).toBeGreaterThan(HELD_OUT_BAND_MIN_Z);
    expect(few.shift).toBe(0);
    expect(few.scale).toBe(1.3);
    // Without the centre (the linear emission's case): the ratio about the uncorrected centre: residual 200 x 0.04
    // = 8, binomial 200 x 4 (0.55 x 0.45 - 0.175^2) = 173.5.
    const flat = heldOutBands(f, seqs, new Map(), 1.3, false)[0]!;
    expect(flat.shift).toBe(0);
    expect(flat.ratio).toBeCloseTo((8 - 173.5) / 98, 9);
  });

  // Students simulated with the logistic emission around prior mean 0.45; a model whose topic prior is too low or
  // too high: the held-out answers after no evidence say which way, the shift moves the no-evidence score towards
  // the students' level, and after 5 answers the posterior has mostly caught up (a smaller raw shift).
  const thresholds = { A: 0.5, B: 0.5, C: 0.5, D: 0.5 };
  const logisticModel = (priorMean: number) =>
    new LatentFilter({
      version: 1,
      bins: 40,
      params: { ...LATENT_LOGISTIC_PARAMS, priorMean },
      topicPriorMean: Object.fromEntries(Object.keys(thresholds).map((t) => [t, priorMean])),
      topicThreshold: thresholds,
      fit: {
        logLikPerObs: 0,
        observations: 0,
        sequences: 0,
        evaluations: 0,
        dispersion: { ratio: 1, sequences: 0, mode: "widen-only" },
      },
      intervalScale: 1,
    });
  const { seqs: sim } = simulateLatentStudents(LATENT_LOGISTIC_PARAMS, thresholds, 150, 0, 23);

  it.each([
    [0.25, 1],
    [0.7, -1],
  ])(
    "a topic prior of %s against students at 0.45: band 0's shift has sign %s and moves the score towards them",
    (prior, sign) => {
      const f = logisticModel(prior);
      const g = applyHeldOutBands(f, sim);
      const bands = g.json.fit.studentIntervalCheck!.bands!;
      expect(bands.map((b) => b.from)).toEqual([0, 1, 5, 15]);
      const [b0, , b5, b15] = bands;
      expect(b0!.sequences).toBe(sim.length);
      expect(Math.sign(b0!.z)).toBe(sign);
      expect(Math.abs(b0!.z)).toBeGreaterThan(HELD_OUT_BAND_MIN_Z);
      expect(Math.sign(b0!.shift)).toBe(sign);
      expect(b0!.shift).toBeCloseTo((b0!.rawShift * b0!.answers) / (b0!.answers + 200), 12);
      expect(b5!.sequences).toBeGreaterThanOrEqual(200);
      expect(Math.abs(b5!.rawShift)).toBeLessThan(Math.abs(b0!.rawShift));
      // 4-15 answers a sequence: none reaches band 15's 19.
      expect(b15!.sequences).toBe(0);
      expect(b15!.shift).toBe(0);
      // The model served: a pair without answers moves by band 0's shift, towards the students' starting level
      // (the simulation's K ~ sigmoid(logit 0.45 + 0.6 Z): its mean by quadrature on a fine grid of Z).
      const before = f.predict("A", [], 0);
      const after = g.predict("A", [], 0);
      expect(after.score).toBeCloseTo(before.score + b0!.shift, 12);
      let mass = 0;
      let kLevel = 0;
      for (let z = -8; z <= 8; z += 0.001) {
        const w = Math.exp((-z * z) / 2);
        mass += w;
        kLevel += w / (1 + Math.exp(-(Math.log(0.45 / 0.55) + 0.6 * z)));
      }
      kLevel /= mass;
      expect(Math.abs(after.score - kLevel)).toBeLessThan(Math.abs(before.score - kLevel) / 2);
      expect(Math.sign(after.pCorrect - before.pCorrect)).toBe(sign);
      // Each band's factor is the one the pair's evidence reaches.
      expect(g.json.intervalScaleByEvidence!.map((b) => b.scale)).toEqual(bands.map((b) => b.scale));
    },
    60_000,
  );

  it("property: only the interval's factors, the centre shift and the check change; factors >= 0.5; shifts gated; linear emission: no shift", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 1000 }),
        fc.double({ min: 0, max: 1.5, noNaN: true }),
        fc.double({ min: 0.2, max: 2, noNaN: true }),
        fc.boolean(),
        (seed, trueSd, sd, logistic) => {
          const seqs = logistic
            ? simulateLatentStudents(LATENT_LOGISTIC_PARAMS, thresholds, 60, trueSd, seed).seqs
            : students(40, trueSd, seed, 10);
          const f = logistic
            ? new LatentFilter({ ...logisticModel(0.45).json, studentPriorSd: sd })
            : widenedModel(sd, "widen-only");
          const g = applyStudentIntervalMode(f, seqs, "bands");
          const refit = applyStudentInterval(f, seqs);
          expect(g.json.intervalScale).toBe(refit.json.intervalScale);
          const bands = g.json.fit.studentIntervalCheck!.bands!;
          for (const [i, b] of bands.entries()) {
            expect(b.scale).toBeGreaterThanOrEqual(Math.sqrt(LATENT_MIN_INFLATION));
            if (b.sequences < 200) expect(b.scale).toBe(refit.json.intervalScale);
            const gated = Math.abs(b.z) >= HELD_OUT_BAND_MIN_Z && b.sequences >= 200 && logistic;
            expect(b.shift === 0).toBe(!gated || b.rawShift === 0);
            expect(g.json.centreShiftByEvidence![i]!.shift).toBe(b.shift);
            expect(g.json.intervalScaleByEvidence![i]!.scale).toBe(b.scale);
          }
          const {
            intervalScale: _a,
            intervalScaleByEvidence: _b,
            centreShiftByEvidence: _c,
            fit: fa,
            ...restA
          } = f.json;
          const {
            intervalScale: _d,
            intervalScaleByEvidence: _e,
            centreShiftByEvidence: _f,
            fit: fb,
            ...restB
          } = g.json;
          expect(restB).toEqual(restA);
          const { studentIntervalCheck: _g, ...fbRest } = fb;
          expect(fbRest).toEqual(fa);
          expect(applyStudentIntervalMode(f, seqs, "off")).toBe(f);
        },
      ),
      { numRuns: 12 },
    );
  }, 240_000);

  it("refuses a model that already has a centre shift, naming the fix", () => {
    const f = new LatentFilter({
      ...logisticModel(0.45).json,
      centreShiftByEvidence: [{ from: 0, shift: 0.01, delta: 0.1, pairs: 300, answers: 900 }],
    });
    expect(() => applyHeldOutBands(f, sim)).toThrow(/drop --latent-centre by-evidence/);
  });
});
