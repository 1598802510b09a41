import fc from "fast-check";
import {
  KIND_ASSIGNMENT,
  KIND_PRACTICE,
  KIND_QUIZ,
  KIND_VIDEO,
  type LatentEstimate,
  type LatentEvent,
  LatentFilter,
  type LatentParams,
  type LatentSequence,
  shiftedRate,
} from "../../models/latentFilter.ts";
import { mulberry32 } from "../../models/prng.ts";

/** Latent filter parameters of a plausible fitted model, shared by the filter, state and stream tests. */
export const LATENT_TEST_PARAMS: LatentParams = {
  priorMean: 0.35,
  priorConcentration: 4,
  guess: 0.2,
  slip: 0.1,
  learn: [0.05, 0.1, 0.08, 0.04, 0.02],
  halfLifeDays: 20,
  floor: 0.1,
  noise: 0.02,
  assignmentConcentration: 8,
};

/**
 * No learning, no forgetting, no noise: the filter is a Bayes update of a fixed K (the student-part tests:
 * studentScale, studentInterval).
 */
export const LATENT_STILL_PARAMS: LatentParams = {
  ...LATENT_TEST_PARAMS,
  priorMean: 0.4,
  priorConcentration: 6,
  learn: [0, 0, 0, 0, 0],
  halfLifeDays: 3650,
  floor: 0.01,
  noise: 0,
};
/** The topics of the student-part tests' models. */
export const STUDENT_TEST_TOPICS = ["A", "B", "C", "D", "E", "F"];

/** A random event of any kind for the filter's property tests: days since the previous one, kind, size, share. */
export const latentEventArb = fc.record({
  dt: fc.double({ min: 0, max: 30, noNaN: true }),
  kind: fc.integer({ min: 0, max: 4 }),
  n: fc.integer({ min: 1, max: 12 }),
  frac: fc.double({ min: 0, max: 1, noNaN: true }),
});

/** The arbitrary's records as a time-ordered event sequence (quiz 0/1, practice k of n, assignment a share). */
export function latentEvents(raw: { dt: number; kind: number; n: number; frac: number }[]): LatentEvent[] {
  let t = 0;
  return raw.map((r) => {
    t += r.dt;
    if (r.kind === KIND_QUIZ) return { t, kind: r.kind, n: 1, k: r.frac >= 0.5 ? 1 : 0 };
    if (r.kind === KIND_PRACTICE) return { t, kind: r.kind, n: r.n, k: Math.round(r.frac * r.n) };
    if (r.kind === KIND_ASSIGNMENT) return { t, kind: r.kind, n: 1, k: r.frac };
    return { t, kind: r.kind, n: 0, k: 0 };
  });
}

/**
 * Students answering every topic of STUDENT_TEST_TOPICS from LATENT_STILL_PARAMS' linear emission: K ~ logit-normal
 * around the prior mean 0.4 shifted by the student's true offset (Normal(0, trueSd^2)) with a topic spread
 * `topicSd`, `answers` answers a topic (the student-part tests: studentScale, studentInterval).
 */
export function stillStudents(
  n: number,
  trueSd: number,
  seed: number,
  topicSd: number,
  answers: number,
): LatentSequence[] {
  const rnd = mulberry32(seed);
  const normal = () => Math.sqrt(-2 * Math.log(1 - rnd())) * Math.cos(2 * Math.PI * rnd());
  const sig = (z: number) => 1 / (1 + Math.exp(-z));
  const still = LATENT_STILL_PARAMS;
  const seqs: LatentSequence[] = [];
  for (let s = 0; s < n; s++) {
    const off = trueSd * normal();
    for (const topic of STUDENT_TEST_TOPICS) {
      const K = sig(Math.log(0.4 / 0.6) + off + topicSd * normal());
      const pc = still.guess + (1 - still.guess - still.slip) * K;
      const events: LatentEvent[] = [];
      for (let j = 0; j < answers; j++) events.push({ t: j, kind: KIND_QUIZ, n: 1, k: rnd() < pc ? 1 : 0 });
      seqs.push({ topic, student: `s${s}`, events });
    }
  }
  return seqs;
}

/**
 * Sequences simulated from the model itself (continuous K, the same transitions and emissions), one topic "T"
 * (the filter's unit and fit tests).
 */
export function simulateLatent(
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

/**
 * Sequences of `students` x `topics` simulated from the model with a logistic emission (per-topic threshold)
 * and a student offset of the prior mean (logit units, Normal(0, studentSd^2)); returns the true offsets.
 */
export function simulateLatentStudents(
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

/** Quiz learning only, no forgetting, no noise (the filter's logistic-emission and student-effect tests). */
export const LATENT_NO_TIME_PARAMS: LatentParams = {
  ...LATENT_TEST_PARAMS,
  learn: [0.04, 0, 0, 0, 0],
  halfLifeDays: 3650,
  floor: 0.01,
  noise: 0,
  priorConcentration: 6,
};

/** A logistic-emission truth for the simulated samples of rounds 6 and 13 (threshold 0.5, slope 12). */
export const LATENT_LOGISTIC_PARAMS: LatentParams = {
  ...LATENT_NO_TIME_PARAMS,
  priorMean: 0.45,
  guess: 0.15,
  slip: 0.05,
  slope: 12,
  threshold: 0.5,
};

/**
 * A filter with a known model (LATENT_NO_TIME_PARAMS at prior mean 0.4) over topics A-D, with the student effect's
 * prior sd if given (the filter's student-effect tests).
 */
export function studentEffectFilter(studentPriorSd?: number): LatentFilter {
  return new LatentFilter({
    version: 1,
    bins: 40,
    params: { ...LATENT_NO_TIME_PARAMS, priorMean: 0.4 },
    // The topics the student effect covers (LatentFilter.studentTopic): those with a fitted prior.
    topicPriorMean: { A: 0.4, B: 0.4, C: 0.4, D: 0.4 },
    fit: { logLikPerObs: 0, observations: 0, sequences: 0, evaluations: 0 },
    ...(studentPriorSd !== undefined ? { studentPriorSd } : {}),
  });
}

/** The topics of the per-student property tests' sequences ("Z": a topic the models do not know). */
export const PROPERTY_TOPICS: readonly string[] = ["A", "B", "C", "D", "Z"];

/**
 * One student's sequences for the per-student property tests: 1-4 pairs on `topics` (a topic may repeat), each
 * of 1-`maxEvents` events, and an as-of up to `maxIdle` days after the student's last event.
 */
export function studentSequencesArb(topics: readonly string[], maxEvents: number, maxIdle: number) {
  return fc
    .tuple(
      fc.array(
        fc.tuple(
          fc.constantFrom(...topics),
          fc.array(latentEventArb, { minLength: 1, maxLength: maxEvents }),
        ),
        { minLength: 1, maxLength: 4 },
      ),
      fc.double({ min: 0, max: maxIdle, noNaN: true }),
    )
    .map(([pairs, idle]) => {
      const seqs = pairs.map(([topic, raw]) => ({ topic, events: latentEvents(raw) }));
      const asOf = Math.max(...seqs.map((s) => s.events[s.events.length - 1]!.t)) + idle;
      return { seqs, asOf };
    });
}

/** A LatentEstimate for the interval arithmetic's known-answer tests (score 0.5 in [0.4, 0.65], 3 observations). */
export function estimateFixture(): LatentEstimate {
  return {
    score: 0.5,
    lo: 0.4,
    hi: 0.65,
    pCorrect: 0.5,
    base: 0.4,
    contributions: {} as never,
    observations: 3,
    events: 3,
    daysSinceLast: 0,
  };
}
