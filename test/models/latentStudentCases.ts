import { createHash } from "node:crypto";
import {
  KIND_ASSIGNMENT,
  KIND_CHATBOT,
  KIND_PRACTICE,
  KIND_QUIZ,
  KIND_VIDEO,
  LATENT_FACTORS,
  type LatentEstimate,
  type LatentEvent,
  LatentFilter,
  type LatentModelJson,
  type LatentParams,
  type LatentSequence,
} from "../../models/latentFilter.ts";
import type { StudentLatentOptions, StudentLatentResult } from "../../models/latentStudent.ts";
import { mulberry32 } from "../../models/prng.ts";
import {
  LATENT_LOGISTIC_PARAMS,
  LATENT_NO_TIME_PARAMS,
  LATENT_STILL_PARAMS,
  LATENT_TEST_PARAMS,
} from "./latentFixtures.ts";

/**
 * The model variants and students of the per-student scoring's bit-for-bit test (models/latentStudent.ts
 * scoreStudentLatent; fold26): every configuration the filter's tests exercise (student effect on / off, learning
 * loading, topic thresholds, durable share, forget spread, as-of decay, centre shifts, interval bands, rein-in),
 * over students with every event kind, same-time events, a topic outside the student effect and prior-only pairs.
 * test/models/fixtures/latentStudentDigests.json holds each case's digest as computed by the code before fold26's
 * optimisations (main 56ebe82): regenerate it only from that code (test/models/latentStudentDigests.gen.ts).
 */

const TOPICS = ["A", "B", "C", "D"];
const FIT = { logLikPerObs: 0, observations: 0, sequences: 0, evaluations: 0 };
const band = (from: number, shift: number) => ({ from, shift, delta: 0, pairs: 0, answers: 0 });

function filter(params: LatentParams, extra: Partial<LatentModelJson> = {}): LatentFilter {
  return new LatentFilter({
    version: 1,
    bins: 40,
    params,
    // Topics A-D are covered by the student effect; "Z" (in the students' sequences) is not.
    topicPriorMean: { A: 0.35, B: 0.5, C: 0.22, D: 0.61 },
    fit: FIT,
    ...extra,
  });
}

export const LATENT_STUDENT_VARIANTS: readonly { name: string; model: LatentFilter }[] = [
  { name: "no student effect (linear)", model: filter(LATENT_TEST_PARAMS) },
  { name: "student effect, level only", model: filter(LATENT_TEST_PARAMS, { studentPriorSd: 0.8 }) },
  {
    name: "student effect + learning loading",
    model: filter(LATENT_TEST_PARAMS, { studentPriorSd: 1.1, studentLearnLoading: 0.5 }),
  },
  {
    name: "logistic, topic thresholds, loading, forget spread",
    model: filter(
      {
        ...LATENT_LOGISTIC_PARAMS,
        learn: [0.05, 0.1, 0.08, 0.04, 0.02],
        halfLifeDays: 15,
        noise: 0.01,
        forgetSpread: 0.3,
      },
      { studentPriorSd: 0.9, studentLearnLoading: 1, topicThreshold: { A: 0.42, B: 0.55, C: 0.5 } },
    ),
  },
  {
    name: "durable share, loading, rein-in",
    model: filter(
      { ...LATENT_TEST_PARAMS, durableShare: 0.4, floor: 0, halfLifeDays: 10 },
      { studentPriorSd: 0.7, studentLearnLoading: 0.25, studentOffsetScale: 0.6 },
    ),
  },
  {
    name: "as-of decay, spread, centre shifts, interval bands",
    model: filter(
      {
        ...LATENT_LOGISTIC_PARAMS,
        learn: [0.05, 0.1, 0.08, 0.04, 0.02],
        halfLifeDays: 25,
        noise: 0.02,
        forgetSpread: 0.5,
        asOfForgetting: "decay",
      },
      {
        studentPriorSd: 1,
        studentLearnLoading: 1,
        topicThreshold: { A: 0.45, D: 0.52 },
        intervalScale: 1.2,
        intervalScaleByEvidence: [
          { from: 0, scale: 1.3, ratio: 1.69, sequences: 40 },
          { from: 5, scale: 0.9, ratio: 0.81, sequences: 40 },
        ],
        centreShiftByEvidence: [band(0, 0.02), band(1, -0.03), band(5, 0.01), band(15, -0.015)],
      },
    ),
  },
  {
    name: "durable share, decay, linear, centre shifts",
    model: filter(
      { ...LATENT_TEST_PARAMS, durableShare: 0.5, floor: 0, asOfForgetting: "decay", forgetSpread: 0.2 },
      { studentPriorSd: 0.6, centreShiftByEvidence: [band(0, -0.01), band(5, 0.02)] },
    ),
  },
  {
    // A floor between two midpoints (its cells share the spread's loss unevenly) with the spread.
    name: "floor between cells, spread, loading, rein-in",
    model: filter(
      { ...LATENT_TEST_PARAMS, floor: 0.042, forgetSpread: 0.5 },
      { studentPriorSd: 0.75, studentLearnLoading: 1, studentOffsetScale: 0.72 },
    ),
  },
  {
    // The shape `mastery train served` fits by default (logistic, spread, as-of decay, loading, rein-in).
    name: "served defaults' shape",
    model: filter(
      {
        ...LATENT_LOGISTIC_PARAMS,
        learn: [0.053, 0.107, 0.066, 0.0066, 0.018],
        halfLifeDays: 33.8,
        floor: 0.042,
        noise: 0.0107,
        forgetSpread: 0.5,
        asOfForgetting: "decay",
      },
      {
        studentPriorSd: 0.75,
        studentLearnLoading: 1,
        studentOffsetScale: 0.716,
        topicThreshold: { A: 0.41, B: 0.38, C: 0.47, D: 0.44 },
      },
    ),
  },
  {
    name: "still (no time, no noise), student effect",
    model: filter(LATENT_STILL_PARAMS, { studentPriorSd: 1.5 }),
  },
  {
    name: "no time, loading, two-sided interval",
    model: filter(LATENT_NO_TIME_PARAMS, { studentPriorSd: 0.5, studentLearnLoading: 1, intervalScale: 0.8 }),
  },
];

/** One event of a random kind `dt` days after the previous one (0 half of the time: same-time events). */
function event(rnd: () => number, t: number, bias: number): LatentEvent {
  const u = rnd();
  const pc = Math.min(0.95, Math.max(0.05, 0.55 + bias));
  if (u < 0.45) return { t, kind: KIND_QUIZ, n: 1, k: rnd() < pc ? 1 : 0 };
  if (u < 0.6) {
    const n = 1 + Math.floor(rnd() * 8);
    let k = 0;
    for (let j = 0; j < n; j++) if (rnd() < pc) k++;
    return { t, kind: KIND_PRACTICE, n, k };
  }
  if (u < 0.72) return { t, kind: KIND_ASSIGNMENT, n: 1, k: Math.round(rnd() * 100) / 100 };
  if (u < 0.75) return { t, kind: KIND_QUIZ, n: 0, k: 0 };
  if (u < 0.9) return { t, kind: KIND_VIDEO, n: 0, k: 0 };
  return { t, kind: KIND_CHATBOT, n: 0, k: 0 };
}

export interface LatentStudentCase {
  sequences: LatentSequence[];
  priorTopics: string[];
  asOfDays: number;
}

/** `count` students (seeded): 0-4 topics of A-D and sometimes "Z", 1-25 events each, some prior-only topics. */
export function latentStudentCases(count: number, seed: number): LatentStudentCase[] {
  const rnd = mulberry32(seed);
  const out: LatentStudentCase[] = [];
  for (let s = 0; s < count; s++) {
    const bias = (rnd() - 0.5) * 0.8;
    const topics = [...TOPICS, "Z"].filter(() => rnd() < 0.55);
    const sequences: LatentSequence[] = [];
    const priorTopics: string[] = [];
    let end = 0;
    for (const topic of topics) {
      if (rnd() < 0.15) {
        priorTopics.push(topic);
        continue;
      }
      const n = 1 + Math.floor(rnd() * 25);
      const events: LatentEvent[] = [];
      let t = 100 + rnd() * 10;
      for (let j = 0; j < n; j++) {
        if (j > 0 && rnd() < 0.5) t += rnd() < 0.2 ? rnd() * 30 : rnd() * 3;
        events.push(event(rnd, t, bias));
      }
      end = Math.max(end, t);
      sequences.push({ topic, student: `s${s}`, events });
    }
    out.push({ sequences, priorTopics, asOfDays: end + (rnd() < 0.3 ? 0 : rnd() * 40) });
  }
  return out;
}

/** The float64 bits of every number of `r` (presence flags for optional fields), in a fixed order. */
export function latentStudentNumbers(r: StudentLatentResult): number[] {
  const out: number[] = [r.offset, r.offsetSd];
  const est = (e: LatentEstimate) => {
    out.push(e.score, e.lo, e.hi, e.pCorrect);
    out.push(
      e.pFloor === undefined ? 0 : 1,
      e.pFloor ?? 0,
      e.floor === undefined ? 0 : 1,
      e.floor ?? 0,
      e.base,
    );
    out.push(Object.keys(e.contributions).length);
    for (const f of LATENT_FACTORS) out.push(e.contributions[f]);
    out.push(e.observations, e.events, e.daysSinceLast === null ? 0 : 1, e.daysSinceLast ?? 0);
  };
  for (const list of [r.estimates, r.priors, r.raw ?? [], r.rawPriors ?? []]) {
    out.push(list.length);
    for (const e of list) est(e);
  }
  return out;
}

/** sha256 of the numbers' float64 bits. */
export function digestNumbers(xs: readonly number[]): string {
  return createHash("sha256")
    .update(new Uint8Array(Float64Array.from(xs).buffer))
    .digest("hex");
}

/** The options each variant is scored with (the batch's default, with the raw estimates, without the widening). */
export const LATENT_STUDENT_OPTIONS: Readonly<Record<string, StudentLatentOptions>> = {
  default: {},
  raw: { raw: true },
  "no widening": { offsetSd: false, raw: true },
};
