import {
  groupByStudent,
  KIND_PRACTICE,
  KIND_QUIZ,
  LatentFilter,
  type LatentKernel,
  type LatentSequence,
} from "./latentFilter.ts";
import { sigmoid } from "./logistic.ts";

/**
 * The student part's scale, reined in by a label-free moments check (issue 16, round 19). Pure: no I/O.
 *
 * The law of total variance bounds the spread of posterior means: for any quantity rho and data D,
 * Var(E[rho | D]) <= Var(rho). Take rho_s = a student's mean excess of correct answers over what the filter
 * predicts for them without a student effect (offset 0), over their graded answers. Both sides can be measured on
 * the fit sample's own answers, no label and no truth:
 *  - the truth's side by the method of moments: the students' observed excesses r_s = sum(k - n p0) / N_s vary
 *    by Var(rho) plus their binomial noise, whose size each student's own predictions give (sum n p0 (1 - p0) /
 *    N_s^2); so Var(rho) = Var_w(r) - mean_w(noise) (weights N_s, the students' graded answers);
 *  - the model's side: d_s = sum n (p_o - p0) / N_s, the change of the same predictions at the student's
 *    offset o (what the student part adds, in answers), and its spread Var_w(d).
 * When the model's spread exceeds the moments estimate, the student part claims more between-student spread than
 * the answers hold: every student's offset is multiplied by one factor c < 1 (LatentModelJson.studentOffsetScale)
 * chosen so that Var_w(d) at c equals the estimate (a few multiplicative steps on the recomputed d). One factor for
 * all students keeps their order. When the bound holds, c = 1 (nothing changes). The predictions are the filter's
 * one-step-ahead P(correct) of each graded quiz / practice answer (`LatentKernel.predictive` before the answer),
 * at a continuous offset with its learning loading (LatentFilter.kernelFor), as the loading's choice runs them.
 *
 * Round 20, "mastery": the same bound on the mastery (K) scale, where the served score lives. In answers, a student
 * whose K sits where the emission is flat (far above an item's threshold: P(correct) ~ 1 - slip) adds little to
 * either side, so the answers' check cannot see how far the student part lifts able students. Per graded answer
 * the filter gives, besides p0, the local slope of the emission under its posterior, b = sum_j post_j
 * dP(correct | K)/dK at cell j (central differences on the grid). A shift D of a student's K moves the expected
 * correct count of an answer by about n b D, so the least-squares inverse of the student's excess through those
 * slopes, delta_s = sum b (k - n p0) / I_s with I_s = sum n b^2, estimates the student's true shift of K (its
 * binomial noise sum n b^2 p0 (1 - p0) / I_s^2), and the moments estimate of its spread is Var_w(delta) less the
 * mean noise (weights N_s). The part's side is the same projection of what the offset does to K itself:
 * d_s = sum n b^2 (K_o - K_0) / I_s, with K_o the posterior mean before each answer at the offset. A student on
 * the flat top counts in full on both sides (the weights within a student normalise), so c is chosen on the scale
 * the truth is compared on.
 */

/**
 * `mastery train served --latent-student-scale`: off (rounds 6-23's default), the moments check in answers
 * (round 19) or on the mastery scale (round 20; the default since round 24, docs/benchmarks.md "Round 24 (valid24)").
 */
export type StudentScaleMode = "off" | "moments" | "mastery";
export const STUDENT_SCALE_MODES: readonly StudentScaleMode[] = ["off", "moments", "mastery"];
export const STUDENT_SCALE_DEFAULT: StudentScaleMode = "mastery";

/** The outcome of the moments check (LatentModelJson.fit.studentScaleCheck). */
export interface StudentScaleCheck {
  /** The factor on every student's offset (LatentModelJson.studentOffsetScale): in [0, 1]. */
  scale: number;
  /** Students checked (>= STUDENT_SCALE_MIN_ANSWERS graded answers on covered topics) and their answers. */
  students: number;
  answers: number;
  /** The moments estimate of the spread (variance) of the students' true excess of correct answers. */
  trueVariance: number;
  /** The spread (variance) of what the student part adds to the predictions, at c = 1 and at the chosen c. */
  partVariance: number;
  partVarianceAfter?: number;
  /** Why c stayed 1 without a comparison (no student effect, too few students), or was set to 0. */
  reason?: string;
  /** "mastery" when the spreads are compared on the K scale (round 20); absent = in answers (round 19). */
  on?: "mastery";
}

/** Students with fewer graded answers than this are left out of the check (their excess is mostly noise). */
export const STUDENT_SCALE_MIN_ANSWERS = 5;
/** Fewer checked students than this and the check keeps c = 1 (recorded with its reason). */
export const STUDENT_SCALE_MIN_STUDENTS = 30;
/** Multiplicative steps of c (each on recomputed predictions). */
const STEPS = 4;

const logit = (p: number): number => Math.log(p / (1 - p));

/** Per grid cell of `kernel`, the emission's slope dP(correct | K)/dK (central differences; one-sided at the ends). */
export function emissionSlopes(kernel: LatentKernel): Float64Array {
  const G = kernel.bins;
  const e = kernel.emit;
  const x = kernel.x;
  const out = new Float64Array(G);
  for (let i = 0; i < G; i++) {
    const lo = Math.max(0, i - 1);
    const hi = Math.min(G - 1, i + 1);
    out[i] = (e[hi]! - e[lo]!) / (x[hi]! - x[lo]!);
  }
  return out;
}

/** Each graded answer of one sequence: answers n, correct k, P(correct) p, mean K m and emission slope b before it. */
export interface AnswerPredictions {
  n: number[];
  k: number[];
  p: number[];
  m: number[];
  b: number[];
}

/**
 * Each graded answer's one-step-ahead P(correct) of one sequence at student offset `offset` (0 = none): the
 * filter's own fold (forgetting, answer, learning), recording `predictive` before each quiz / practice answer,
 * with the posterior's mean K and its mean emission slope (emissionSlopes) at the same point.
 */
export function answerPredictions(model: LatentFilter, seq: LatentSequence, offset = 0): AnswerPredictions {
  const kernel = model.kernelFor(seq.topic, offset);
  const slopes = emissionSlopes(kernel);
  const prior = model.priorMean(seq.topic);
  const post = kernel.prior(offset === 0 ? prior : sigmoid(logit(prior) + offset));
  const base = kernel.mean(post);
  const out: AnswerPredictions = { n: [], k: [], p: [], m: [], b: [] };
  let last = Number.NaN;
  for (let n = 0; n < seq.events.length; n++) {
    const e = seq.events[n]!;
    if (Number.isFinite(last)) kernel.forget(post, e.t - last, base, n);
    last = e.t;
    if ((e.kind === KIND_QUIZ || e.kind === KIND_PRACTICE) && e.n > 0) {
      out.n.push(e.n);
      out.k.push(e.k);
      out.p.push(kernel.predictive(post));
      out.m.push(kernel.mean(post));
      let b = 0;
      for (let j = 0; j < kernel.bins; j++) b += post[j]! * slopes[j]!;
      out.b.push(b);
    }
    kernel.observe(post, e);
    kernel.learnFrom(post, e.kind);
  }
  return out;
}

/**
 * The moments estimate of the variance of the students' true excess: the weighted variance of the observed
 * excesses `r` less the weighted mean of their binomial noise variances `noise` (weights `w`). Can be <= 0.
 */
export function excessVariance(r: readonly number[], noise: readonly number[], w: readonly number[]): number {
  return weightedMoments(r, w).variance - weightedMoments(noise, w).mean;
}

/** Weighted mean and variance (population form) of xs with weights ws. */
function weightedMoments(xs: readonly number[], ws: readonly number[]): { mean: number; variance: number } {
  let sw = 0;
  let sx = 0;
  for (let i = 0; i < xs.length; i++) {
    sw += ws[i]!;
    sx += ws[i]! * xs[i]!;
  }
  const mean = sx / sw;
  let sv = 0;
  for (let i = 0; i < xs.length; i++) sv += ws[i]! * (xs[i]! - mean) ** 2;
  return { mean, variance: sv / sw };
}

/**
 * The moments check and its factor c for `model` (with a student effect, its `studentOffsetScale` unset or 1)
 * on the fit sample `sequences` (grouped by `student`; only topics the effect covers count), in answers
 * ("moments", round 19) or on the mastery scale ("mastery", round 20; see the file's comment). Without a student
 * effect, or with too few students, c = 1 and `reason` says why.
 */
export function chooseStudentScale(
  model: LatentFilter,
  sequences: readonly LatentSequence[],
  on: "moments" | "mastery" = "moments",
): StudentScaleCheck {
  const tag = on === "mastery" ? { on } : {};
  const keep = (reason: string, students = 0, answers = 0): StudentScaleCheck => ({
    scale: 1,
    students,
    answers,
    trueVariance: Number.NaN,
    partVariance: Number.NaN,
    reason,
    ...tag,
  });
  if (!((model.json.studentPriorSd ?? 0) > 0)) return keep("no student effect");
  if ((model.json.studentOffsetScale ?? 1) !== 1)
    throw new Error(
      `chooseStudentScale needs the fitted model before its rein-in (studentOffsetScale ${model.json.studentOffsetScale}); pass the model as LatentFilter.fit left it`,
    );
  const byStudent = groupByStudent(sequences, (s) => model.studentTopic(s.topic));
  // Per student: offset, the offset-0 run's values per answer (p0, or K0 and the weight n b^2 on the mastery
  // scale) and their normaliser, the excess r and its noise.
  const checked: {
    seqs: LatentSequence[];
    offset: number;
    norm: number;
    base: number[][];
    wt: number[][];
  }[] = [];
  const r: number[] = [];
  const noise: number[] = [];
  const w: number[] = [];
  let answers = 0;
  for (const seqs of byStudent.values()) {
    let n = 0;
    let excess = 0;
    let v = 0;
    let info = 0;
    let excessK = 0;
    let vK = 0;
    const base: number[][] = [];
    const wt: number[][] = [];
    for (const q of seqs) {
      const a = answerPredictions(model, q, 0);
      base.push(on === "mastery" ? a.m : a.p);
      const row: number[] = [];
      for (let i = 0; i < a.n.length; i++) {
        const ni = a.n[i]!;
        const pi = a.p[i]!;
        const bi = a.b[i]!;
        n += ni;
        excess += a.k[i]! - ni * pi;
        v += ni * pi * (1 - pi);
        info += ni * bi * bi;
        excessK += bi * (a.k[i]! - ni * pi);
        vK += ni * bi * bi * pi * (1 - pi);
        row.push(on === "mastery" ? ni * bi * bi : ni);
      }
      wt.push(row);
    }
    if (n < STUDENT_SCALE_MIN_ANSWERS) continue;
    if (on === "mastery" && !(info > 0)) continue;
    answers += n;
    const norm = on === "mastery" ? info : n;
    checked.push({ seqs, offset: model.studentOffset(seqs), norm, base, wt });
    r.push(on === "mastery" ? excessK / info : excess / n);
    noise.push(on === "mastery" ? vK / (info * info) : v / (n * n));
    w.push(n);
  }
  if (checked.length < STUDENT_SCALE_MIN_STUDENTS)
    return keep(
      `${checked.length} students with >= ${STUDENT_SCALE_MIN_ANSWERS} graded answers (< ${STUDENT_SCALE_MIN_STUDENTS})`,
      checked.length,
      answers,
    );
  const trueVariance = excessVariance(r, noise, w);
  // d_s at c: sum over answers of weight x (value at c x offset - value at 0) / norm; the value is P(correct)
  // with weight n (in answers) or the mean K with weight n b^2 (on the mastery scale).
  const partAt = (c: number): number => {
    const d = checked.map((x) => {
      let s = 0;
      x.seqs.forEach((q, j) => {
        const a = answerPredictions(model, q, c * x.offset);
        const now = on === "mastery" ? a.m : a.p;
        const base = x.base[j]!;
        const wt = x.wt[j]!;
        for (let i = 0; i < now.length; i++) s += wt[i]! * (now[i]! - base[i]!);
      });
      return s / x.norm;
    });
    return weightedMoments(d, w).variance;
  };
  const partVariance = partAt(1);
  if (!(partVariance > Math.max(0, trueVariance)))
    return { scale: 1, students: checked.length, answers, trueVariance, partVariance, ...tag };
  if (!(trueVariance > 0))
    return {
      scale: 0,
      students: checked.length,
      answers,
      trueVariance,
      partVariance,
      reason: "the moments estimate of the students' spread is <= 0: the student part is switched off",
      ...tag,
    };
  // The part's spread grows about as c^2 (linear in the offset to first order): c <- c sqrt(target / part(c)).
  let c = 1;
  let part = partVariance;
  for (let i = 0; i < STEPS; i++) {
    c = Math.min(1, c * Math.sqrt(trueVariance / part));
    part = partAt(c);
  }
  return {
    scale: c,
    students: checked.length,
    answers,
    trueVariance,
    partVariance,
    partVarianceAfter: part,
    ...tag,
  };
}

/**
 * `model` with the student part reined in by the check `on` ("moments": in answers; "mastery": on the K scale) on
 * `sequences` (its fit sample): a copy whose json carries the factor (studentOffsetScale, only when below 1) and
 * the check (fit.studentScaleCheck).
 */
export function applyStudentScale(
  model: LatentFilter,
  sequences: readonly LatentSequence[],
  on: "moments" | "mastery" = "moments",
): LatentFilter {
  const check = chooseStudentScale(model, sequences, on);
  const json = { ...model.json, fit: { ...model.json.fit, studentScaleCheck: check } };
  if (check.scale < 1) json.studentOffsetScale = check.scale;
  return new LatentFilter(json);
}
