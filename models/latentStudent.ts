import {
  type LatentEstimate,
  type LatentFilter,
  type LatentSequence,
  STUDENT_WIDENING_DEFAULT,
  type StudentWidening,
} from "./latentFilter.ts";
import {
  studentOffsetSd,
  studentOffsetSdFromBasis,
  widenByScores,
  widenFromBasis,
} from "./studentOffsetSd.ts";

/**
 * One student's latent estimates as the batch serves them (issue 16 / issue 17 item 1): every pair of the
 * student scored at the student's offset (LatentFilter.predictStudent), each interval of a covered topic
 * widened by the offset's uncertainty (models/studentOffsetSd.ts, round 7) unless `offsetSd` is false, and the
 * student's pairs without events (a stored score but nothing before as-of) at the topic's prior shifted by the
 * offset. The one per-student computation of `mastery score served`, the daily batch and the validity benches:
 * pure, so it runs the same in a worker thread.
 */
export interface StudentLatentResult {
  offset: number;
  /** Laplace sd of the offset (0 without a student effect or with `offsetSd: false`). */
  offsetSd: number;
  /** One per sequence, in order (widened). */
  estimates: LatentEstimate[];
  /** Before the widening, one per sequence (only with `raw: true`). */
  raw?: LatentEstimate[];
  /** One per topic of `priorTopics`, in order (widened). */
  priors: LatentEstimate[];
  /** Before the widening, one per prior topic (only with `raw: true`). */
  rawPriors?: LatentEstimate[];
}

export interface StudentLatentOptions {
  /** Widen by the offset's uncertainty (default true; a model without a student effect never widens). */
  offsetSd?: boolean;
  /** Also return the estimates before the widening. */
  raw?: boolean;
  /**
   * fold27: how the offset's sd and the widening are computed (LatentModelJson.studentWidening; default the
   * model's, else STUDENT_WIDENING_DEFAULT, "basis"): "basis" takes them from the basis folds the score runs
   * anyway, "refold" folds each pair again at off-grid offsets. The scores are the same; only lo / hi and
   * offsetSd differ.
   */
  widening?: StudentWidening;
}

export function scoreStudentLatent(
  model: LatentFilter,
  sequences: readonly LatentSequence[],
  priorTopics: readonly string[],
  asOfDays: number,
  opts: StudentLatentOptions = {},
): StudentLatentResult {
  const withSd = opts.offsetSd !== false && (model.json.studentPriorSd ?? 0) > 0;
  const fromBasis =
    withSd && (opts.widening ?? model.json.studentWidening ?? STUDENT_WIDENING_DEFAULT) === "basis";
  let offset = 0;
  let rawEst: LatentEstimate[] = [];
  let basisLL: Float64Array[] = [];
  let basisScores: Float64Array[] = [];
  if (sequences.length > 0) {
    // One (lean) fold per sequence from each basis prior; the offset in closed form from the pairs'
    // summaries (LatentFilter.predictStudent: the stream's computation on its stored states). fold27: with
    // "basis", those folds also give each part's score, and the offset's sd and widening come from them.
    if (fromBasis) {
      const r = model.predictStudentBasis(sequences, asOfDays);
      offset = r.offset;
      rawEst = r.estimates;
      basisLL = r.ll;
      basisScores = r.scores;
    } else {
      const r = model.predictStudent(sequences, asOfDays);
      offset = r.offset;
      rawEst = r.estimates;
    }
  }
  const sd =
    withSd && sequences.length > 0
      ? fromBasis
        ? studentOffsetSdFromBasis(model, basisLL, offset)
        : studentOffsetSd(model, sequences, offset)
      : 0;
  const estimates = rawEst.map((est, i) => {
    const s = sequences[i]!;
    if (!(sd > 0 && model.studentTopic(s.topic))) return est;
    if (fromBasis) return widenFromBasis(model, est, basisScores[i]!, offset, sd);
    // The widening needs only the two predictions' scores (predictScore: predict's score without its explanation).
    return widenByScores(
      est,
      model.predictScore(s.topic, s.events, asOfDays, offset - sd),
      model.predictScore(s.topic, s.events, asOfDays, offset + sd),
    );
  });
  // Pairs without an event: the topic's prior shifted by the student's offset; the interval carries the
  // offset's uncertainty, the prior sd for a student without events (round 19: a reined-in student part
  // scales the prior's sd as it scales the offsets).
  const priorSd = withSd ? (model.json.studentPriorSd ?? 0) * (model.json.studentOffsetScale ?? 1) : 0;
  const rawPriors: LatentEstimate[] = [];
  const priors = priorTopics.map((topic) => {
    const off = model.offsetFor(topic, offset);
    const psd = model.studentTopic(topic) ? (sequences.length > 0 ? sd : priorSd) : 0;
    const x = model.priorEstimate(topic, off, asOfDays);
    rawPriors.push(x);
    if (!(psd > 0)) return x;
    if (fromBasis) {
      // The basis priors' scores (predictScore without events at a basis offset: no off-grid kernel; lean28: kept
      // per topic and as-of).
      return widenFromBasis(model, x, model.basisPriorScores(topic, asOfDays), off, psd);
    }
    return widenByScores(
      x,
      model.predictScore(topic, [], asOfDays, off - psd),
      model.predictScore(topic, [], asOfDays, off + psd),
    );
  });
  return {
    offset,
    offsetSd: sd,
    estimates,
    priors,
    ...(opts.raw === true ? { raw: rawEst, rawPriors } : {}),
  };
}
