import { CENTRE_BANDS, CENTRE_SHRINK_ANSWERS, type CentreShiftBand } from "./latentCentre.ts";
import {
  emissionShape,
  groupByStudent,
  HeldOutSums,
  intervalFactor,
  KIND_PRACTICE,
  KIND_QUIZ,
  LATENT_BAND_MIN_SEQUENCES,
  LATENT_INTERVAL_DEFAULT,
  LATENT_MIN_INFLATION,
  LatentFilter,
  type LatentIntervalMode,
  type LatentSequence,
  walkHeldOut,
} from "./latentFilter.ts";
import { sigmoid } from "./logistic.ts";

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

/**
 * `mastery train served --latent-student-interval`: off (the default: the fit's factor), refit (round 21) or bands
 * (round 23: the refit, then a centre shift and a two-sided factor per evidence band from the held-out answers;
 * `applyHeldOutBands`).
 */
export type StudentIntervalMode = "off" | "refit" | "bands";
export const STUDENT_INTERVAL_MODES: readonly StudentIntervalMode[] = ["off", "refit", "bands"];
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
  /** Round 23 (`bands`): each evidence band's held-out calibration (centre shift and factor); absent otherwise. */
  bands?: HeldOutBand[];
}

/**
 * One evidence band of the held-out calibration (round 23, `heldOutBands`): the sequences that reach `from` graded
 * answers + 4, each filtered over its first `from` answers at its student's offset and carried over the next
 * HELD_OUT_BAND_HOLD answers without observing them.
 */
export interface HeldOutBand {
  from: number;
  sequences: number;
  /** Held-out graded answers. */
  answers: number;
  /** Sum over sequences of (correct - expected) in the held-out answers, and its z = sum / sqrt(sum of squares). */
  excess: number;
  z: number;
  /** The shift of K (every cell of the held-out answers' posteriors) at which the expected correct equal the observed. */
  rawShift: number;
  /** The shift served (K scale): rawShift x answers / (answers + 200) when |z| >= 2 and the band has enough sequences, else 0. */
  shift: number;
  /** The method-of-moments ratio about the shifted centre, and the band's interval factor from it. */
  ratio: number;
  scale: number;
  /** Why the band kept the one factor (too few sequences). */
  reason?: string;
}

/** Held-out answers per sequence and band (round 14's `dispersionByEvidence`). */
export const HELD_OUT_BAND_HOLD = 8;
/** |z| of a band's held-out excess below which its centre is not moved (round 23's gate, fixed before its runs). */
export const HELD_OUT_BAND_MIN_Z = 2;

const logit = (p: number): number => Math.log(p / (1 - p));

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

/**
 * The held-out calibration per evidence band on `model` as served (round 23). For each band's lower bound L
 * (CENTRE_BANDS: 0 / 1 / 5 / 15 graded answers, the served bands of the centre shift and the by-evidence factor),
 * every sequence with at least L + 4 graded answers starts from the prior at its offset in `offsets` (absent = 0,
 * the kernel with the offset's learning loading), is filtered until L answers are seen and then carried forward
 * (forgetting, learning) over the next HELD_OUT_BAND_HOLD answers without observing them, as
 * `dispersionByEvidence`. Each held-out answer keeps the posterior it was predicted from. Per band, with E_s(d) =
 * the sequence's expected number correct when every cell's K is moved by d (the emission at min(1, max(0, x + d)),
 * the topic's own emission) and r_s = correct - E_s(0):
 * - the centre: rawShift = the d at which sum E_s(d) = sum correct (bisection on [-1, 1]; the emission is
 *   monotone in K, so the shift of K that removes the band's excess, exact where a linear carry through the mean
 *   slope overshoots on the emission's flat parts); served only when |z| >= HELD_OUT_BAND_MIN_Z (z = sum r_s /
 *   sqrt(sum r_s^2), the excess against its own spread across sequences) and the band has
 *   LATENT_BAND_MIN_SEQUENCES sequences, shrunk by answers / (answers + CENTRE_SHRINK_ANSWERS);
 * - the width: the moments ratio about the shifted centre, (sum (correct - E_s(shift))^2 - binomial) / posterior
 *   with both parts at the shift (a bias is not counted as width), and the factor sqrt(max(LATENT_MIN_INFLATION,
 *   ratio)); a band with fewer sequences keeps `fallbackScale`.
 * Label-free with respect to any truth: the fit sample's own later answers are the labels. `centre` false: every
 * shift 0 (the widths about the uncorrected centre).
 */
export function heldOutBands(
  model: LatentFilter,
  sequences: readonly LatentSequence[],
  offsets: ReadonlyMap<LatentSequence, number>,
  fallbackScale: number,
  centre = true,
): HeldOutBand[] {
  const prm = model.json.params;
  // The emission at K moved by d, per grid cell, for a topic's threshold (cached per threshold and d).
  const emitAt = (x: Float64Array, threshold: number | undefined, d: number): Float64Array => {
    const out = new Float64Array(x.length);
    for (let i = 0; i < x.length; i++)
      out[i] =
        prm.guess +
        (1 - prm.guess - prm.slip) * emissionShape(prm, Math.min(1, Math.max(0, x[i]! + d)), threshold);
    return out;
  };
  return CENTRE_BANDS.map((from) => {
    // Held-out answers: the posterior each was predicted from, its answers and correct, and its sequence.
    const posts: Float64Array[] = [];
    const ns: number[] = [];
    const ks: number[] = [];
    const seqOf: number[] = [];
    const thOf: (number | undefined)[] = [];
    const xOf: Float64Array[] = [];
    let n = 0;
    let answers = 0;
    for (const s of sequences) {
      if (gradedAnswers(s) < from + 4) continue;
      const offset = offsets.get(s) ?? 0;
      const kernel = model.kernelFor(s.topic, offset);
      const prior = model.priorMean(s.topic);
      const p = kernel.prior(offset === 0 ? prior : sigmoid(logit(prior) + offset));
      const th = model.threshold(s.topic);
      const held = walkHeldOut(kernel, p, s.events, from, HELD_OUT_BAND_HOLD, (e) => {
        posts.push(p.slice());
        ns.push(e.n);
        ks.push(e.k);
        seqOf.push(n);
        thOf.push(th);
        xOf.push(kernel.x);
      });
      if (held === 0) continue;
      answers += held;
      n++;
    }
    // Per sequence at shift d: expected and observed correct, binomial part, posterior sd sum.
    const atShift = (d: number) => {
      const tables = new Map<string, Float64Array>();
      const exp = new Float64Array(n);
      const obs = new Float64Array(n);
      const bin = new Float64Array(n);
      const sd = new Float64Array(n);
      for (let j = 0; j < posts.length; j++) {
        const key = `${thOf[j]}:${xOf[j]!.length}`;
        let e = tables.get(key);
        if (e === undefined) {
          e = emitAt(xOf[j]!, thOf[j], d);
          tables.set(key, e);
        }
        const p = posts[j]!;
        let m = 0;
        let e2 = 0;
        for (let i = 0; i < p.length; i++) {
          m += p[i]! * e[i]!;
          e2 += p[i]! * e[i]! ** 2;
        }
        const v = Math.max(0, e2 - m * m);
        const s = seqOf[j]!;
        exp[s]! += ns[j]! * m;
        obs[s]! += ks[j]!;
        bin[s]! += ns[j]! * (m * (1 - m) - v);
        sd[s]! += ns[j]! * Math.sqrt(v);
      }
      return { exp, obs, bin, sd };
    };
    const at0 = atShift(0);
    let excess = 0;
    let squares = 0;
    let correct = 0;
    for (let s = 0; s < n; s++) {
      const r = at0.obs[s]! - at0.exp[s]!;
      excess += r;
      squares += r * r;
      correct += at0.obs[s]!;
    }
    const expected = (d: number) => atShift(d).exp.reduce((a, b) => a + b, 0);
    let rawShift = 0;
    if (n > 0 && excess !== 0) {
      let lo = -1;
      let hi = 1;
      if (expected(hi) <= correct) rawShift = hi;
      else if (expected(lo) >= correct) rawShift = lo;
      else {
        for (let it = 0; it < 60; it++) {
          const mid = (lo + hi) / 2;
          if (expected(mid) < correct) lo = mid;
          else hi = mid;
        }
        rawShift = (lo + hi) / 2;
      }
    }
    const z = squares > 0 ? excess / Math.sqrt(squares) : 0;
    const enough = n >= LATENT_BAND_MIN_SEQUENCES;
    const shift =
      centre && enough && Math.abs(z) >= HELD_OUT_BAND_MIN_Z
        ? (rawShift * answers) / (answers + CENTRE_SHRINK_ANSWERS)
        : 0;
    const at = shift === 0 ? at0 : atShift(shift);
    let centred = 0;
    let binomial = 0;
    let posterior = 0;
    for (let s = 0; s < n; s++) {
      centred += (at.obs[s]! - at.exp[s]!) ** 2;
      binomial += at.bin[s]!;
      posterior += at.sd[s]! ** 2;
    }
    const ratio = n > 0 && posterior > 0 ? (centred - binomial) / posterior : 1;
    const band: HeldOutBand = {
      from,
      sequences: n,
      answers,
      excess,
      z,
      rawShift,
      shift,
      ratio,
      scale: enough ? Math.sqrt(Math.max(LATENT_MIN_INFLATION, ratio)) : fallbackScale,
    };
    if (!enough)
      band.reason = `fewer than ${LATENT_BAND_MIN_SEQUENCES} sequences: the one factor, no centre shift`;
    return band;
  });
}

/**
 * Round 23 (`--latent-student-interval bands`): `applyStudentInterval` (the one factor, from the check with the
 * student part), then `heldOutBands` at the same leave-one-topic-out offsets: the copy carries each band's factor
 * (`intervalScaleByEvidence`) and centre shift (`centreShiftByEvidence`, added to the score and both interval ends
 * on the K scale at the pair's last event, before the as-of decay, by LatentFilter.estimate), and the bands in
 * fit.studentIntervalCheck. Without a student effect every sequence starts at offset 0 (the same check). Under a
 * linear emission only the factors are set (the served P(correct) follows a centre shift through the logistic
 * emission only, LatentFilter.estimate), every shift 0. Throws on a model that already has a centre shift.
 */
export function applyHeldOutBands(model: LatentFilter, sequences: readonly LatentSequence[]): LatentFilter {
  if (model.json.centreShiftByEvidence !== undefined)
    throw new Error(
      "--latent-student-interval bands sets the centre shift by evidence itself: drop --latent-centre by-evidence",
    );
  const refit = applyStudentInterval(model, sequences);
  const check = refit.json.fit.studentIntervalCheck!;
  const offsets = leaveOneTopicOutOffsets(refit, sequences);
  const logistic = refit.json.params.slope !== undefined;
  const bands = heldOutBands(refit, sequences, offsets, refit.json.intervalScale ?? 1, logistic);
  if (!logistic) for (const b of bands) b.reason ??= "linear emission: no centre shift";
  const centre: CentreShiftBand[] = bands.map((b) => ({
    from: b.from,
    shift: b.shift,
    delta: b.rawShift,
    pairs: b.sequences,
    answers: b.answers,
  }));
  return new LatentFilter({
    ...refit.json,
    intervalScaleByEvidence: bands.map((b) => ({
      from: b.from,
      scale: b.scale,
      ratio: b.ratio,
      sequences: b.sequences,
    })),
    centreShiftByEvidence: centre,
    fit: { ...refit.json.fit, studentIntervalCheck: { ...check, bands } },
  });
}

/** The model with the interval's check of `mode` applied on `sequences` (its fit sample); `off` = unchanged. */
export function applyStudentIntervalMode(
  model: LatentFilter,
  sequences: readonly LatentSequence[],
  mode: StudentIntervalMode,
): LatentFilter {
  if (mode === "refit") return applyStudentInterval(model, sequences);
  if (mode === "bands") return applyHeldOutBands(model, sequences);
  return model;
}
