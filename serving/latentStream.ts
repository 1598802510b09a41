import { type LatentBasisState, LatentFilter } from "../models/latentFilter.ts";
import { decodeLatentBasis, encodeLatentBasis, foldLatentBasis, latentDays } from "../models/latentState.ts";
import type { LearnerEvent } from "../models/learnerState.ts";
import { type ServedMastery, servedFromLatent } from "../models/servedMastery.ts";
import type { MasteryScore } from "../storage/masteryStore.ts";
import type { StoredLearnerState } from "../storage/stateStore.ts";
import { LATENT_SOURCE, latentDecay, latentExplanation, latentModelVersion } from "./latentScoring.ts";
import { loadServedModel, SERVED_SOURCE, ServedModelError, servedExplanation } from "./servedScoring.ts";

/**
 * The latent filter in the stream ("fresh within seconds", issue 16 items 1-2): the updater carries each
 * (student, topic)'s filter state (models/latentState.ts) in learner_state next to BKT/Elo, folds each new
 * event into it with the served model's fitted filter, and writes the 'latent' and (when the served model
 * serves from the filter) 'served' scores with the key's BKT/Elo scores, as of the key's last event. GET
 * /mastery then decays them to the request time like the batch's (serving/masteryView.ts).
 *
 * The late-event rule is BKT's (models/learnerState.ts updatePlan): events after the key's cursor are folded
 * forward from the stored state; a late event, a missing state or a state of another latent model (version
 * or grid size) rebuilds the key from its stored events. Either way the state is the fold of the key's
 * events in replay order, the same bits as `mastery recompute` and the batch scoring's replay.
 *
 * Student effect (a model with studentPriorSd > 0): the state is the pair's filter from each basis prior
 * (models/latentState.ts format 2); a student's offset comes from the exact sum of their pairs' summaries
 * (`studentOffsetOfStates`), and each pair is scored at it (LatentFilter.mixAt). The updater carries every key
 * of the model's topics of a student it moves and rewrites their scores in the same batch (serving/updater.ts).
 */

export interface StreamLatent {
  filter: LatentFilter;
  /** Basis parts of a pair's state: 1, or the student effect's grid (LatentFilter.studentGrid). */
  parts: number;
  /** latent-<hash> of the filter: learner_state's latent_model_version. */
  latentVersion: string;
  /** The served model's calibration and scale (servedFromLatent); null: write only the 'latent' score. */
  served: { model: ServedMastery; version: string } | null;
  /** model_version of the scores written (the served model's, as `mastery score served` writes). */
  scoreVersion: string;
}

/** The latent filter of a served model directory (`mastery train served --out DIR`). */
export function loadStreamLatent(dir: string): StreamLatent {
  const { model, version } = loadServedModel(dir);
  const lj = model.json.latent;
  if (lj === undefined)
    throw new ServedModelError(
      `the served model in ${dir} has no latent filter (trained with --latent off): retrain it with \`mastery train served --latent on\` to carry the filter in the stream`,
    );
  const filter = LatentFilter.fromJSON(lj);
  return {
    filter,
    parts: filter.studentGrid().length,
    latentVersion: latentModelVersion(filter),
    served: model.json.servedFrom === "latent" ? { model, version } : null,
    scoreVersion: version,
  };
}

export type LatentColumns = Pick<StoredLearnerState, "latent" | "latentModelVersion">;

const NONE: LatentColumns = { latent: null, latentModelVersion: null };

/** Whether a stored state's latent part can be continued by `latent` (same model, same grid, decodable). */
export function latentUsable(latent: StreamLatent | undefined, s: StoredLearnerState): boolean {
  const stored = s.latent ?? null;
  if (latent === undefined) return stored === null;
  if (stored === null || s.latentModelVersion !== latent.latentVersion) return false;
  return decodeLatentBasis(stored, latent.filter.json.bins, latent.parts) !== null;
}

/** Whether the stream's latent filter has a student effect (a pair's scores depend on the student's other pairs). */
export function hasStudentEffect(latent: StreamLatent | undefined): latent is StreamLatent {
  return latent !== undefined && latent.parts > 1;
}

/**
 * The student offset (models/latentFilter.ts studentOffsetOf) from the stored states of a student's pairs: the
 * exact sum of the summaries of those with a usable latent state (this model's) in a covered topic. 0 without
 * a student effect.
 */
export function studentOffsetOfStates(
  latent: StreamLatent | undefined,
  pairs: readonly { topicId: string; state: StoredLearnerState }[],
): number {
  if (!hasStudentEffect(latent)) return 0;
  const bins = latent.filter.json.bins;
  const basis: { topic: string; state: LatentBasisState }[] = [];
  for (const x of pairs) {
    if (x.state.latent == null || x.state.latentModelVersion !== latent.latentVersion) continue;
    const b = decodeLatentBasis(x.state.latent, bins, latent.parts);
    if (b !== null) basis.push({ topic: x.topicId, state: b });
  }
  return latent.filter.studentOffsetOf(basis);
}

/**
 * The latent columns after folding `ordered` (a key's events in replay order) into `from` (a usable stored
 * state, or null for a replay from the prior).
 */
export function foldLatentColumns(
  latent: StreamLatent | undefined,
  topic: string,
  ordered: readonly LearnerEvent[],
  from: StoredLearnerState | null,
): LatentColumns {
  if (latent === undefined) return NONE;
  const bins = latent.filter.json.bins;
  const start =
    from?.latent == null ? undefined : (decodeLatentBasis(from.latent, bins, latent.parts) ?? undefined);
  const s = foldLatentBasis(latent.filter, topic, ordered, start);
  return { latent: encodeLatentBasis(s), latentModelVersion: latent.latentVersion };
}

/**
 * The 'latent' (and 'served') scores of a stored state, as of its last event, at the student's offset
 * (`studentOffsetOfStates`; ignored without a student effect); none without a latent state.
 */
export function latentScores(
  latent: StreamLatent | undefined,
  topic: string,
  columns: LatentColumns,
  lastTsUs: number | null,
  studentOffset = 0,
): MasteryScore[] {
  if (latent === undefined || columns.latent == null || lastTsUs === null) return [];
  if (columns.latentModelVersion !== latent.latentVersion) return [];
  const b = decodeLatentBasis(columns.latent, latent.filter.json.bins, latent.parts);
  if (b === null) return [];
  const f = latent.filter;
  const est = f.estimate(f.mixAt(b, f.offsetFor(topic, studentOffset)), latentDays(lastTsUs), topic);
  const out: MasteryScore[] = [
    {
      source: LATENT_SOURCE,
      score: est.score,
      modelVersion: latent.scoreVersion,
      explanation: JSON.stringify(latentExplanation(est, latentDecay(latent.filter.json.params, est))),
    },
  ];
  const served = latent.served;
  if (served !== null) {
    const m = served.model;
    const lj = latent.filter.json;
    const e = servedFromLatent(
      est,
      lj.params,
      m.calibration(topic),
      m.json.scale,
      m.anchorCalibration(),
      m.anchorSd(),
    );
    out.unshift({
      source: SERVED_SOURCE,
      score: e.score,
      modelVersion: served.version,
      explanation: JSON.stringify(servedExplanation(e)),
    });
  }
  return out;
}
