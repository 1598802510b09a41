import { createHash } from "node:crypto";
import { explain } from "../models/explanation.ts";
import {
  KIND_ASSIGNMENT,
  KIND_CHATBOT,
  KIND_PRACTICE,
  KIND_QUIZ,
  KIND_VIDEO,
  type LatentEstimate,
  type LatentEvent,
  LatentFilter,
  type LatentFitOptions,
  type LatentSequence,
} from "../models/latentFilter.ts";
import type { PairEvidence } from "../models/servedMastery.ts";
import type { DuckStore } from "../storage/duckdb.ts";

const DAY_MS = 86_400_000;
const KIND_OF: Record<string, number> = {
  quiz_attempt: KIND_QUIZ,
  practice: KIND_PRACTICE,
  video: KIND_VIDEO,
  assignment: KIND_ASSIGNMENT,
  chatbot: KIND_CHATBOT,
};

/**
 * Every (student, topic)'s events before `before` in time order (copies of one event_id once), as the latent
 * filter's sequences (models/latentFilter.ts); times in days since the epoch. `sample` = keep one pair in
 * `sample` (by a hash of the pair key: the same pairs every run), for fitting on a subset.
 */
export async function loadLatentSequences(
  store: DuckStore,
  before: Date,
  sample = 1,
): Promise<Map<string, LatentSequence>> {
  const rows = await store.all<{
    student_key: string;
    topic_id: string;
    type: string;
    t: number;
    is_correct: boolean | null;
    attempts: number | null;
    correct_count: number | null;
    score_pct: number | null;
  }>(
    `SELECT student_key, topic_id, type, epoch(ts) / 86400.0 AS t, is_correct, attempts, correct_count, score_pct
     FROM (SELECT DISTINCT ON (event_id, student_key, topic_id) * FROM raw_events WHERE ts < $1::TIMESTAMP
           ORDER BY event_id, student_key, topic_id, ts)
     ${sample > 1 ? "WHERE hash(student_key || '|' || topic_id) % $2 = 0" : ""}
     ORDER BY student_key, topic_id, ts, event_id`,
    sample > 1 ? [before.toISOString(), sample] : [before.toISOString()],
  );
  const out = new Map<string, LatentSequence>();
  let key = "";
  let seq: LatentSequence | undefined;
  for (const r of rows) {
    const kind = KIND_OF[r.type];
    if (kind === undefined) continue;
    const k = `${r.student_key}|${r.topic_id}`;
    if (k !== key || seq === undefined) {
      key = k;
      seq = { topic: r.topic_id, events: [] };
      out.set(k, seq);
    }
    const e: LatentEvent = { t: Number(r.t), kind, n: 0, k: 0 };
    if (kind === KIND_QUIZ && r.is_correct !== null) {
      e.n = 1;
      e.k = r.is_correct ? 1 : 0;
    } else if (kind === KIND_PRACTICE && Number(r.attempts ?? 0) > 0) {
      e.n = Number(r.attempts);
      e.k = Math.min(e.n, Math.max(0, Number(r.correct_count ?? 0)));
    } else if (kind === KIND_ASSIGNMENT && r.score_pct !== null) {
      e.k = Math.min(1, Math.max(0, Number(r.score_pct) / 100));
      e.n = 1;
    }
    seq.events.push(e);
  }
  return out;
}

export interface FitLatentResult {
  model: LatentFilter;
  sequences: number;
  seconds: number;
}

/**
 * Fits the latent filter by maximum likelihood on the store's events before `before` (a deterministic
 * sample of about `maxEvents` events' worth of pairs; all pairs when fewer).
 */
export async function fitLatentOnStore(
  store: DuckStore,
  before: Date,
  opts: LatentFitOptions & { maxEvents?: number } = {},
): Promise<FitLatentResult> {
  const t0 = performance.now();
  const total = await store.one<{ n: number }>(
    "SELECT count(*)::DOUBLE AS n FROM raw_events WHERE ts < $1::TIMESTAMP",
    [before.toISOString()],
  );
  const maxEvents = opts.maxEvents ?? 40_000;
  const sample = Math.max(1, Math.ceil(Number(total?.n ?? 0) / maxEvents));
  const seqs = [...(await loadLatentSequences(store, before, sample)).values()];
  const model = LatentFilter.fit(seqs, opts);
  return { model, sequences: seqs.length, seconds: (performance.now() - t0) / 1000 };
}

/** The stored explanation of a latent score: factors (sum with the base = score), interval, evidence. */
export interface LatentExplanationExtra {
  interval: { lo: number; hi: number; level: 0.8 };
  evidence: { kind: "measured" | "indirect" | "prior"; attempts: number; daysSinceLast: number | null };
  pCorrect: number;
  /** Forgetting after as_of on the filter's own scale (GET /mastery applies it at request time). */
  decay?: { halfLifeDays: number; floor: number; pFloor: number };
}

/** The filter's forgetting as GET /mastery applies it after as_of: its half-life and floor (and P(correct) there). */
export function latentDecay(p: LatentFilter["json"]["params"]): NonNullable<LatentExplanationExtra["decay"]> {
  return {
    halfLifeDays: p.halfLifeDays,
    floor: p.floor,
    pFloor: p.guess + (1 - p.guess - p.slip) * p.floor,
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
  const out = new Map<string, LatentEstimate>();
  const asOfDays = asOf.getTime() / DAY_MS;
  for (const [k, s] of await loadLatentSequences(store, asOf))
    out.set(k, model.predict(s.topic, s.events, asOfDays));
  return out;
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
): Promise<Map<string, LatentEstimate>> {
  const est = await latentEstimates(store, model, asOf);
  // Pairs with a stored score but no event before asOf: the topic's prior.
  const asOfDays = asOf.getTime() / DAY_MS;
  for (const [k, e] of evidence) {
    let x = est.get(k);
    if (x === undefined) {
      x = model.predict(e.topic, [], asOfDays);
      est.set(k, x);
    }
    e.latent = x.score;
  }
  return est;
}
