import fc from "fast-check";
import {
  KIND_ASSIGNMENT,
  KIND_PRACTICE,
  KIND_QUIZ,
  type LatentEvent,
  type LatentParams,
  type LatentSequence,
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
