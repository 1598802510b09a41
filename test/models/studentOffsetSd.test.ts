import { describe, expect, it } from "vitest";
import {
  KIND_QUIZ,
  type LatentEvent,
  LatentFilter,
  type LatentParams,
  type LatentSequence,
} from "../../models/latentFilter.ts";
import { mulberry32 } from "../../models/prng.ts";
import { studentOffsetSd, studentOffsetSdFromBasis, widenForOffset } from "../../models/studentOffsetSd.ts";
import { estimateFixture, LATENT_TEST_PARAMS } from "./latentFixtures.ts";

const PARAMS: LatentParams = {
  ...LATENT_TEST_PARAMS,
  priorMean: 0.4,
  priorConcentration: 6,
  learn: [0.04, 0, 0, 0, 0],
  halfLifeDays: 3650,
  floor: 0.01,
  noise: 0,
};

const model = (studentPriorSd?: number) =>
  new LatentFilter({
    version: 1,
    bins: 40,
    params: PARAMS,
    // The topics the student effect covers (LatentFilter.studentTopic), at the global prior mean.
    topicPriorMean: Object.fromEntries(
      ["A", "B", "C", ...Array.from({ length: 10 }, (_, t) => `t${t}`)].map((t) => [t, PARAMS.priorMean]),
    ),
    fit: { logLikPerObs: 0, observations: 0, sequences: 0, evaluations: 0 },
    ...(studentPriorSd !== undefined ? { studentPriorSd } : {}),
  });

const logit = (p: number) => Math.log(p / (1 - p));
const sigmoid = (z: number) => 1 / (1 + Math.exp(-z));

/**
 * Students simulated from the filter's own model: offset ~ Normal(0, sd^2), each topic's K drawn from the
 * filter's (discretised) prior at the shifted mean, quiz answers by the linear emission, learning per answer.
 */
function simulate(
  f: LatentFilter,
  students: number,
  topics: number,
  answers: number,
  sd: number,
  seed: number,
) {
  const rnd = mulberry32(seed);
  const normal = () => Math.sqrt(-2 * Math.log(1 - rnd())) * Math.cos(2 * Math.PI * rnd());
  const p = new Float64Array(f.json.bins);
  const k = f.kernelFor("T");
  const out: { offset: number; seqs: LatentSequence[] }[] = [];
  for (let s = 0; s < students; s++) {
    const offset = sd * normal();
    const seqs: LatentSequence[] = [];
    for (let t = 0; t < topics; t++) {
      k.prior(sigmoid(logit(PARAMS.priorMean) + offset), p);
      let u = rnd();
      let cell = 0;
      while (cell < p.length - 1 && u > p[cell]!) u -= p[cell++]!;
      let K = k.x[cell]!;
      const events: LatentEvent[] = [];
      for (let j = 0; j < answers; j++) {
        const pc = PARAMS.guess + (1 - PARAMS.guess - PARAMS.slip) * K;
        events.push({ t: j, kind: KIND_QUIZ, n: 1, k: rnd() < pc ? 1 : 0 });
        K += PARAMS.learn[KIND_QUIZ]! * (1 - K);
      }
      seqs.push({ topic: `t${t}`, student: `s${s}`, events });
    }
    out.push({ offset, seqs });
  }
  return out;
}

describe("student offset uncertainty (round 7)", () => {
  it("is 0 without a student effect, the prior sd without graded evidence, and shrinks with evidence", () => {
    const seq = (n: number): LatentSequence[] =>
      ["A", "B", "C"].map((topic) => ({
        topic,
        events: Array.from({ length: n }, (_, t) => ({ t, kind: KIND_QUIZ, n: 1, k: t % 2 })),
      }));
    expect(studentOffsetSd(model(), seq(4), 0)).toBe(0);
    const f = model(1);
    expect(studentOffsetSd(f, [], 0)).toBe(1);
    const few = studentOffsetSd(f, seq(2), f.studentOffset(seq(2)));
    const many = studentOffsetSd(f, seq(30), f.studentOffset(seq(30)));
    expect(few).toBeLessThan(1);
    expect(many).toBeLessThan(few);
  });

  it("is calibrated on data simulated from the model: about 80% of true offsets inside offset -+ 1.28 sd", () => {
    const f = model(1);
    const sim = simulate(f, 300, 4, 6, 1, 5);
    let inside = 0;
    for (const { offset, seqs } of sim) {
      const o = f.studentOffset(seqs);
      const sd = studentOffsetSd(f, seqs, o);
      if (Math.abs(offset - o) <= 1.2815515655446004 * sd) inside++;
    }
    // Binomial sd of the share at n = 300 is 0.023; the golden-section mode and the Laplace
    // approximation add a little.
    expect(inside / sim.length).toBeGreaterThan(0.72);
    expect(inside / sim.length).toBeLessThan(0.9);
  }, 60_000);

  it("fold27: the sd from the basis folds is calibrated on the same simulated data, and near the refold's", () => {
    const f = model(1);
    const sim = simulate(f, 300, 4, 6, 1, 5);
    let inside = 0;
    let sumRefold = 0;
    let sumBasis = 0;
    for (const { offset, seqs } of sim) {
      const r = f.predictStudentBasis(seqs, 6);
      const sd = studentOffsetSdFromBasis(f, r.ll, r.offset);
      sumBasis += sd;
      sumRefold += studentOffsetSd(f, seqs, r.offset);
      if (Math.abs(offset - r.offset) <= 1.2815515655446004 * sd) inside++;
    }
    expect(inside / sim.length).toBeGreaterThan(0.72);
    expect(inside / sim.length).toBeLessThan(0.9);
    // Seen: mean sd 0.616 (refold) / 0.639 (basis) on 400 such students.
    expect(Math.abs(sumBasis / sumRefold - 1)).toBeLessThan(0.06);
  }, 60_000);

  it("widenForOffset adds the offset's spread in variance around the same score (known answer)", () => {
    const base = estimateFixture();
    const w = widenForOffset(base, { ...base, score: 0.45 }, { ...base, score: 0.61 });
    const e = (1.2815515655446004 * 0.08) ** 2;
    expect(w.score).toBe(0.5);
    expect(w.lo).toBeCloseTo(0.5 - Math.sqrt(0.01 + e), 12);
    expect(w.hi).toBeCloseTo(0.5 + Math.sqrt(0.0225 + e), 12);
    expect(widenForOffset(base, base, base)).toBe(base);
  });
});
