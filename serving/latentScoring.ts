import { createHash } from "node:crypto";
import { explain } from "../models/explanation.ts";
import {
  asOfHalfLife,
  type LatentEstimate,
  type LatentEvent,
  LatentFilter,
  type LatentFitOptions,
  type LatentSequence,
  type StudentWidening,
} from "../models/latentFilter.ts";
import { latentEventOf } from "../models/latentState.ts";
import { scoreStudentLatent } from "../models/latentStudent.ts";
import { type LearnerEvent, replayOrder } from "../models/learnerState.ts";
import type { PairEvidence } from "../models/servedMastery.ts";
import { applyStudentIntervalMode, type StudentIntervalMode } from "../models/studentInterval.ts";
import { applyStudentScale, type StudentScaleMode } from "../models/studentScale.ts";
import type { DuckStore } from "../storage/duckdb.ts";

const DAY_MS = 86_400_000;

/**
 * Every (student, topic)'s events before `before` as the latent filter's sequences (models/latentFilter.ts),
 * read as the stream reads them (models/latentState.ts): a key's copies of one event_id count once, the
 * first ingested (models/learnerState.ts firstIngestedCopies, applied before the time cut), in (ts, event_id)
 * order (replayOrder), times latentDays(epoch microseconds). So the batch's fold is the stream's, bit for bit.
 * `sample` = keep one student in `sample` with all of their pairs (by a hash of the student key: the same
 * students every run), for fitting on a subset (whole students, so that the student effect's
 * leave-one-topic-out check sees their other topics).
 */
export async function loadLatentSequences(
  store: DuckStore,
  before: Date,
  sample = 1,
): Promise<Map<string, LatentSequence>> {
  const rows = await store.all<{
    student_key: string;
    topic_id: string;
    event_id: string;
    type: string;
    ts_us: number;
    is_correct: boolean | null;
    attempts: number | null;
    correct_count: number | null;
    score_pct: number | null;
  }>(
    `SELECT student_key, topic_id, event_id, type, ts_us, is_correct, attempts, correct_count, score_pct
     FROM (SELECT student_key, topic_id, event_id, type, ts, epoch_us(ts)::DOUBLE AS ts_us, is_correct, attempts,
                  correct_count, score_pct
           FROM raw_events
           ${sample > 1 ? "WHERE hash(student_key) % $2 = 0" : ""}
           QUALIFY row_number() OVER (PARTITION BY student_key, topic_id, event_id ORDER BY ingested_at, ts) = 1)
     WHERE ts < $1::TIMESTAMP
     ORDER BY student_key, topic_id, ts, event_id`,
    sample > 1 ? [before.toISOString(), sample] : [before.toISOString()],
  );
  const out = new Map<string, LatentSequence>();
  let i = 0;
  while (i < rows.length) {
    const first = rows[i]!;
    const key: LearnerEvent[] = [];
    for (; i < rows.length; i++) {
      const r = rows[i]!;
      if (r.student_key !== first.student_key || r.topic_id !== first.topic_id) break;
      key.push({
        eventId: r.event_id,
        type: r.type,
        ts: Number(r.ts_us),
        isCorrect: r.is_correct,
        questionId: null,
        attempts: r.attempts,
        correctCount: r.correct_count,
        scorePct: r.score_pct,
      });
    }
    // The fold's own order (a collation difference between engines cannot change it).
    const events: LatentEvent[] = [];
    for (const r of replayOrder(key)) {
      const e = latentEventOf(r);
      if (e !== null) events.push(e);
    }
    if (events.length > 0)
      out.set(`${first.student_key}|${first.topic_id}`, {
        topic: first.topic_id,
        student: first.student_key,
        events,
      });
  }
  return out;
}

export interface FitLatentResult {
  model: LatentFilter;
  sequences: number;
  seconds: number;
  /** The fit's sample of sequences (round 26: the anchor's threshold uncertainty reads the same sample). */
  sample: readonly LatentSequence[];
}

/** The options of fitLatentOnStore: the filter's fit, the sample's size and the student part's rein-in. */
export type LatentStoreFitOptions = LatentFitOptions & {
  maxEvents?: number;
  /**
   * Rounds 19/20: "moments" (in answers) or "mastery" (on the K scale) reins the student part in on the same
   * sample (models/studentScale.ts); default off.
   */
  studentScale?: StudentScaleMode;
  /**
   * Round 21: "refit" runs the interval's held-out dispersion check again on the model with its student part
   * (after the rein-in; models/studentInterval.ts); round 23: "bands" adds a centre shift and a factor per evidence
   * band from the held-out answers; default off (the fit's factor, from offset 0).
   */
  studentInterval?: StudentIntervalMode;
  /**
   * fold27: how scoring carries the offset's uncertainty into an interval (LatentModelJson.studentWidening);
   * absent: the field is left out and the scoring's default applies (STUDENT_WIDENING_DEFAULT).
   */
  studentWidening?: StudentWidening;
};

/**
 * Fits the latent filter by maximum likelihood on the store's events before `before` (a deterministic
 * sample of about `maxEvents` events' worth of students; all of them when fewer). The student effect is on
 * unless `studentEffect: false`.
 */
export async function fitLatentOnStore(
  store: DuckStore,
  before: Date,
  opts: LatentStoreFitOptions = {},
): Promise<FitLatentResult> {
  const t0 = performance.now();
  const total = await store.one<{ n: number }>(
    "SELECT count(*)::DOUBLE AS n FROM raw_events WHERE ts < $1::TIMESTAMP",
    [before.toISOString()],
  );
  const maxEvents = opts.maxEvents ?? 40_000;
  const sample = Math.max(1, Math.ceil(Number(total?.n ?? 0) / maxEvents));
  const seqs = [...(await loadLatentSequences(store, before, sample)).values()];
  const { studentScale, studentInterval, studentWidening, ...fitOpts } = opts;
  const fitted = LatentFilter.fit(seqs, { studentEffect: true, ...fitOpts });
  const scaled =
    studentScale === "moments" || studentScale === "mastery"
      ? applyStudentScale(fitted, seqs, studentScale)
      : fitted;
  const checked = applyStudentIntervalMode(scaled, seqs, studentInterval ?? "off");
  const model =
    studentWidening === undefined ? checked : new LatentFilter({ ...checked.json, studentWidening });
  return { model, sequences: seqs.length, seconds: (performance.now() - t0) / 1000, sample: seqs };
}

/** The stored explanation of a latent score: factors (sum with the base = score), interval, evidence. */
export interface LatentExplanationExtra {
  interval: { lo: number; hi: number; level: 0.8 };
  evidence: { kind: "measured" | "indirect" | "prior"; attempts: number; daysSinceLast: number | null };
  pCorrect: number;
  /** Forgetting after as_of on the filter's own scale (GET /mastery applies it at request time). */
  decay?: { halfLifeDays: number; floor: number; pFloor: number };
}

/**
 * The filter's forgetting as GET /mastery applies it after as_of to one stored estimate: its half-life and the
 * level it decays to (the estimate's own with the durable-share forgetting, else the global floor), and
 * P(correct) there.
 */
export function latentDecay(
  p: LatentFilter["json"]["params"],
  est?: Pick<LatentEstimate, "floor" | "pFloor">,
): NonNullable<LatentExplanationExtra["decay"]> {
  const floor = est?.floor ?? p.floor;
  return {
    halfLifeDays: asOfHalfLife(p),
    floor,
    pFloor: est?.pFloor ?? p.guess + (1 - p.guess - p.slip) * floor,
  };
}

export function latentExplanation(est: LatentEstimate, decay?: LatentExplanationExtra["decay"]) {
  const e = explain(
    est.base,
    Object.entries(est.contributions).map(([name, contribution]) => ({
      name,
      value: contribution,
      contribution,
    })),
    est.score,
  );
  const extra: LatentExplanationExtra = {
    interval: { lo: est.lo, hi: est.hi, level: 0.8 },
    evidence: {
      kind: est.observations > 0 ? "measured" : est.events > 0 ? "indirect" : "prior",
      attempts: est.observations,
      daysSinceLast: est.daysSinceLast,
    },
    pCorrect: est.pCorrect,
    ...(decay !== undefined ? { decay } : {}),
  };
  return { ...e, ...extra };
}

export const LATENT_SOURCE = "latent";

export function latentModelVersion(model: LatentFilter): string {
  return `latent-${createHash("sha256").update(JSON.stringify(model.toJSON())).digest("hex").slice(0, 12)}`;
}

/** The latent estimate of every (student, topic) with events before `asOf`, keyed "studentKey|topic". */
export async function latentEstimates(
  store: DuckStore,
  model: LatentFilter,
  asOf: Date,
): Promise<Map<string, LatentEstimate>> {
  return (await latentEstimatesWithOffsets(store, model, asOf)).estimates;
}

/**
 * As latentEstimates, with each student's prior offset (the student effect; 0 without one). With a student
 * effect each interval also carries the offset's uncertainty (models/studentOffsetSd.ts; round 7) unless
 * `offsetSd: false` (round 6's intervals); `raw` (optional) receives the estimates before that widening.
 */
export async function latentEstimatesWithOffsets(
  store: DuckStore,
  model: LatentFilter,
  asOf: Date,
  opts: { offsetSd?: boolean; raw?: Map<string, LatentEstimate> } = {},
): Promise<{
  estimates: Map<string, LatentEstimate>;
  offsets: Map<string, number>;
  offsetSds: Map<string, number>;
}> {
  return latentByStudent(await loadLatentSequences(store, asOf), new Map(), model, asOf, opts);
}

/**
 * Every student's pairs scored together (models/latentStudent.ts scoreStudentLatent): the sequences' pairs and
 * `priorPairs` (student -> topics without events before `asOf`), keyed "studentKey|topic".
 */
function latentByStudent(
  seqs: Map<string, LatentSequence>,
  priorPairs: Map<string, string[]>,
  model: LatentFilter,
  asOf: Date,
  opts: { offsetSd?: boolean; raw?: Map<string, LatentEstimate> },
): {
  estimates: Map<string, LatentEstimate>;
  offsets: Map<string, number>;
  offsetSds: Map<string, number>;
} {
  const out = new Map<string, LatentEstimate>();
  const asOfDays = asOf.getTime() / DAY_MS;
  const byStudent = new Map<string, [string, LatentSequence][]>();
  for (const [k, s] of seqs) {
    const st = s.student ?? "";
    const l = byStudent.get(st) ?? [];
    l.push([k, s]);
    byStudent.set(st, l);
  }
  for (const st of priorPairs.keys()) if (!byStudent.has(st)) byStudent.set(st, []);
  const offsets = new Map<string, number>();
  const offsetSds = new Map<string, number>();
  const studentOpts = {
    raw: opts.raw !== undefined,
    ...(opts.offsetSd === false ? { offsetSd: false } : {}),
  };
  for (const [st, list] of byStudent) {
    const topics = priorPairs.get(st) ?? [];
    const r = scoreStudentLatent(
      model,
      list.map(([, s]) => s),
      topics,
      asOfDays,
      studentOpts,
    );
    if (list.length > 0) {
      offsets.set(st, r.offset);
      offsetSds.set(st, r.offsetSd);
    }
    list.forEach(([k], i) => {
      opts.raw?.set(k, r.raw![i]!);
      out.set(k, r.estimates[i]!);
    });
    topics.forEach((t, i) => {
      const k = `${st}|${t}`;
      opts.raw?.set(k, r.rawPriors![i]!);
      out.set(k, r.priors[i]!);
    });
  }
  return { estimates: out, offsets, offsetSds };
}

/**
 * Sets `latent` of every pair of `evidence` to the filter's estimate as of `asOf` (pairs without events:
 * the topic's prior) and returns the estimates (every pair of `evidence`, plus pairs with events only).
 */
export async function attachLatent(
  store: DuckStore,
  evidence: Map<string, PairEvidence>,
  model: LatentFilter,
  asOf: Date,
  opts: { offsetSd?: boolean; raw?: Map<string, LatentEstimate> } = {},
): Promise<Map<string, LatentEstimate>> {
  const seqs = await loadLatentSequences(store, asOf);
  // Pairs with a stored score but no event before asOf: the topic's prior (shifted by the student's offset).
  const priorPairs = new Map<string, string[]>();
  for (const [k, e] of evidence) {
    if (seqs.has(k)) continue;
    const st = k.slice(0, k.indexOf("|"));
    const l = priorPairs.get(st) ?? [];
    l.push(e.topic);
    priorPairs.set(st, l);
  }
  const { estimates: est } = latentByStudent(seqs, priorPairs, model, asOf, opts);
  for (const [k, e] of evidence) e.latent = est.get(k)!.score;
  return est;
}
