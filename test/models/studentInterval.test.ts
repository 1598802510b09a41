import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  KIND_QUIZ,
  LATENT_MIN_INFLATION,
  LatentFilter,
  type LatentModelJson,
  type LatentParams,
  type LatentSequence,
} from "../../models/latentFilter.ts";
import {
  applyStudentInterval,
  dispersionAtOffsets,
  leaveOneTopicOutOffsets,
} from "../../models/studentInterval.ts";
import {
  LATENT_TEST_PARAMS,
  LATENT_STILL_PARAMS as STILL,
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
          const f = model(STILL, sd, 12, {
            intervalScale: 1.25,
            fit: {
              logLikPerObs: 0,
              observations: 0,
              sequences: 0,
              evaluations: 0,
              dispersion: { ratio: 1.5625, sequences: 8, mode },
            },
          });
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
