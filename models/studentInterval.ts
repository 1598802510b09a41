import {
  groupByStudent,
  HeldOutSums,
  intervalFactor,
  KIND_PRACTICE,
  KIND_QUIZ,
  LATENT_INTERVAL_DEFAULT,
  LatentFilter,
  type LatentIntervalMode,
  type LatentSequence,
} from "./latentFilter.ts";

/**
 * The interval's dispersion check run again on the model with its student part (issue 16, round 21). Pure: no I/O.
 *
 * LatentFilter.fit sets the 80% interval's spread factor (`intervalScale`) by a held-out dispersion check
 * (LatentFilter.dispersion): each fit-sample sequence with >= 8 graded answers is filtered over the answers before
 * the half-way point and the number correct in the rest is predicted; the method-of-moments factor on the
 * posterior's part of its variance is what the interval is widened by. That check runs before the student effect
 * is chosen, from the topic's prior at offset 0, while the served estimates start from the prior at the student's
 * offset (reined in by models/studentScale.ts, when asked). A student part that explains some of the held-out
 * answers' spread leaves a smaller residual, so the factor the served model needs can be smaller than the one it
 * was given.
 *
 * `refit` runs the same check on the model as served: each sequence from the prior at its student's offset times
 * the model's studentOffsetScale, with the offset's learning loading, the offset taken from the student's OTHER
 * covered topics (leave one topic out: the sequence's own held-out answers never inform its offset). Sequences of
 * a topic the effect does not cover, or of a student with no other covered topic, start at offset 0. The interval
 * mode the fit recorded turns the new ratio into the factor (`intervalFactor`: at least 1 under "widen-only").
 * Label-free: the fit sample's own answers.
 */

/** `mastery train served --latent-student-interval`: off (the default: the fit's factor) or refit (round 21). */
export type StudentIntervalMode = "off" | "refit";
export const STUDENT_INTERVAL_MODES: readonly StudentIntervalMode[] = ["off", "refit"];
export const STUDENT_INTERVAL_DEFAULT: StudentIntervalMode = "off";

/** The outcome of the refit (LatentModelJson.fit.studentIntervalCheck). */
export interface StudentIntervalCheck {
  /** The fit's check (offset 0) and the factor it set. */
  ratioBefore: number;
  scaleBefore: number;
  /** The check on the model with its student part, the sequences it used and the factor now set. */
  ratio: number;
  sequences: number;
  scale: number;
  mode: LatentIntervalMode;
  /** Sequences checked at an offset other than 0. */
  withOffset: number;
  /** Why the factor was kept (no student effect). */
  reason?: string;
}

const logit = (p: number): number => Math.log(p / (1 - p));
const sigmoid = (z: number): number => 1 / (1 + Math.exp(-z));

/** Graded answers of a sequence (quiz and practice). */
function gradedAnswers(s: LatentSequence): number {
  let total = 0;
  for (const e of s.events) if (e.kind === KIND_QUIZ || e.kind === KIND_PRACTICE) total += e.n;
  return total;
}

/**
 * Each sequence's student offset, leave one topic out: the offset (LatentFilter.offsetFromSummary, which applies
 * the model's studentOffsetScale) from the summaries of the student's other covered sequences; 0 for an uncovered
 * topic, a sequence without a student, or no other covered sequence.
 */
export function leaveOneTopicOutOffsets(
  model: LatentFilter,
  sequences: readonly LatentSequence[],
): Map<LatentSequence, number> {
  const out = new Map<LatentSequence, number>();
  for (const s of sequences) out.set(s, 0);
  if (!((model.json.studentPriorSd ?? 0) > 0)) return out;
  const byStudent = groupByStudent(sequences, (s) => model.studentTopic(s.topic));
  for (const seqs of byStudent.values()) {
    if (seqs.length < 2) continue;
    const sums = seqs.map((s) => LatentFilter.summary(model.foldBasis(s.topic, s.events)));
    const total = new Float64Array(sums[0]!.length);
    for (const q of sums) for (let j = 0; j < total.length; j++) total[j]! += q[j]!;
    seqs.forEach((s, i) => {
      const rest = new Float64Array(total.length);
      for (let j = 0; j < rest.length; j++) rest[j] = total[j]! - sums[i]![j]!;
      out.set(s, model.offsetFromSummary(rest));
    });
  }
  return out;
}

/**
 * LatentFilter.dispersion on `model` as served: each sequence (>= `minAnswers` graded answers) from the prior at
 * its offset in `offsets` (absent = 0), with the offset's kernel (LatentFilter.kernelFor).
 */
export function dispersionAtOffsets(
  model: LatentFilter,
  sequences: readonly LatentSequence[],
  offsets: ReadonlyMap<LatentSequence, number>,
  minAnswers = 8,
): { ratio: number; sequences: number; withOffset: number } {
  const sums = new HeldOutSums();
  let withOffset = 0;
  for (const s of sequences) {
    const total = gradedAnswers(s);
    if (total < minAnswers) continue;
    const offset = offsets.get(s) ?? 0;
    if (offset !== 0) withOffset++;
    const kernel = model.kernelFor(s.topic, offset);
    const prior = model.priorMean(s.topic);
    const p = kernel.prior(offset === 0 ? prior : sigmoid(logit(prior) + offset));
    sums.addHalves(kernel, p, s.events, total);
  }
  return { ratio: sums.ratio(), sequences: sums.used, withOffset };
}

/**
 * `model` with its interval factor set by the dispersion check on the model with its student part (see the file's
 * comment) on `sequences` (its fit sample): a copy whose json carries the new `intervalScale` and the check
 * (fit.studentIntervalCheck). Without a student effect the factor is kept (the check would repeat the fit's).
 */
export function applyStudentInterval(
  model: LatentFilter,
  sequences: readonly LatentSequence[],
): LatentFilter {
  const mode = model.json.fit.dispersion?.mode ?? LATENT_INTERVAL_DEFAULT;
  if (mode === "by-evidence" || model.json.intervalScaleByEvidence !== undefined)
    throw new Error(
      '--latent-student-interval refit sets the one interval factor; the model has the "by-evidence" factors: fit it with --latent-interval widen-only or two-sided, or drop --latent-student-interval',
    );
  const scaleBefore = model.json.intervalScale ?? 1;
  const ratioBefore = model.json.fit.dispersion?.ratio ?? Number.NaN;
  if (!((model.json.studentPriorSd ?? 0) > 0)) {
    const check: StudentIntervalCheck = {
      ratioBefore,
      scaleBefore,
      ratio: ratioBefore,
      sequences: model.json.fit.dispersion?.sequences ?? 0,
      scale: scaleBefore,
      mode,
      withOffset: 0,
      reason: "no student effect: the fit's factor is kept",
    };
    return new LatentFilter({ ...model.json, fit: { ...model.json.fit, studentIntervalCheck: check } });
  }
  const d = dispersionAtOffsets(model, sequences, leaveOneTopicOutOffsets(model, sequences));
  const scale = Math.sqrt(intervalFactor(d, mode));
  const check: StudentIntervalCheck = {
    ratioBefore,
    scaleBefore,
    ratio: d.ratio,
    sequences: d.sequences,
    scale,
    mode,
    withOffset: d.withOffset,
  };
  return new LatentFilter({
    ...model.json,
    intervalScale: scale,
    fit: { ...model.json.fit, studentIntervalCheck: check },
  });
}
