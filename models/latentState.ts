import {
  KIND_ASSIGNMENT,
  KIND_CHATBOT,
  KIND_PRACTICE,
  KIND_QUIZ,
  KIND_VIDEO,
  LATENT_FACTORS,
  type LatentBasisState,
  type LatentEvent,
  type LatentFilter,
  type LatentState,
} from "./latentFilter.ts";

/**
 * The latent filter's per-(student, topic) state as the stream carries it (issue 16 items 1-2, "fresh within
 * seconds"): the mapping of stored events to the filter's events, the fold over a key's events (the same for
 * the stream, `mastery recompute` and the batch scoring), and a compact binary form for learner_state.
 *
 * Stored form (little-endian), LATENT_STATE_BYTES(bins) bytes:
 *   u8 format (LATENT_STATE_FORMAT) | u8 factors (LATENT_FACTORS.length) | u16 bins | u32 events |
 *   f64 base | f64 observations | f64 last event time (days; NaN = none) | f64 x factors contributions |
 *   f32 x bins posterior.
 * A state whose format, factor count or grid size differs from the model's is refused (decode gives null):
 * the caller rebuilds the key from its events instead of misreading it.
 *
 * With a student effect (LatentFilter.studentGrid: J > 1 basis offsets) the state is the pair's filter from
 * each basis prior and each one's log-likelihood (LatentBasisState), LATENT_BASIS_BYTES(bins, J) bytes:
 *   u8 format (LATENT_BASIS_FORMAT) | u8 factors | u16 bins | u32 events | f64 observations |
 *   f64 last event time | u32 J | u32 0 | J x (f64 log-likelihood | f64 base | f64 x factors contributions |
 *   f32 x bins posterior).
 * Without one (J = 1) it is the single state above, unchanged.
 *
 * Pure: no I/O, no clock.
 */

export const LATENT_STATE_FORMAT = 1;
const HEADER = 8 + 3 * 8;

export const latentStateBytes = (bins: number): number => HEADER + 8 * LATENT_FACTORS.length + 4 * bins;

export const LATENT_BASIS_FORMAT = 2;
const BASIS_HEADER = 32;
const basisPartBytes = (bins: number): number => 16 + 8 * LATENT_FACTORS.length + 4 * bins;
export const latentBasisBytes = (bins: number, parts: number): number =>
  parts === 1 ? latentStateBytes(bins) : BASIS_HEADER + parts * basisPartBytes(bins);

/** Event time (epoch microseconds, as stored) in the filter's unit, days. One conversion for every path. */
export const latentDays = (us: number): number => us / 86_400_000_000;

const KIND_OF: Record<string, number> = {
  quiz_attempt: KIND_QUIZ,
  practice: KIND_PRACTICE,
  video: KIND_VIDEO,
  assignment: KIND_ASSIGNMENT,
  chatbot: KIND_CHATBOT,
};

/** The event types the filter reads (raw_events.type), in a fixed order. */
export const LATENT_EVENT_TYPES: readonly string[] = Object.freeze(Object.keys(KIND_OF));

/** What the filter reads of a stored event (raw_events columns). */
export interface LatentSourceEvent {
  type: string;
  /** Epoch microseconds. */
  ts: number;
  isCorrect: boolean | null;
  attempts?: number | null;
  correctCount?: number | null;
  scorePct?: number | null;
}

/**
 * A stored event as the filter's event (null for a type the filter does not read). A quiz answer without
 * is_correct, a practice set without attempts and an assignment without a score teach but are not graded.
 */
export function latentEventOf(r: LatentSourceEvent): LatentEvent | null {
  const kind = KIND_OF[r.type];
  if (kind === undefined) return null;
  const e: LatentEvent = { t: latentDays(r.ts), kind, n: 0, k: 0 };
  if (kind === KIND_QUIZ && r.isCorrect !== null) {
    e.n = 1;
    e.k = r.isCorrect ? 1 : 0;
  } else if (kind === KIND_PRACTICE && Number(r.attempts ?? 0) > 0) {
    e.n = Number(r.attempts);
    e.k = Math.min(e.n, Math.max(0, Number(r.correctCount ?? 0)));
  } else if (kind === KIND_ASSIGNMENT && r.scorePct !== null && r.scorePct !== undefined) {
    e.k = Math.min(1, Math.max(0, Number(r.scorePct) / 100));
    e.n = 1;
  }
  return e;
}

/**
 * Folds a key's events, already in replay order (models/learnerState.ts replayOrder: first ingested copy,
 * (ts, event_id) order), into `from` (default: the topic's prior). `from` is changed in place and returned.
 */
export function foldLatent(
  filter: LatentFilter,
  topic: string,
  events: readonly LatentSourceEvent[],
  from: LatentState = filter.init(topic),
): LatentState {
  for (const r of events) {
    const e = latentEventOf(r);
    if (e !== null) filter.step(from, e, topic);
  }
  return from;
}

/** As foldLatent, from every basis prior of the filter's student effect (LatentFilter.initBasis). */
export function foldLatentBasis(
  filter: LatentFilter,
  topic: string,
  events: readonly LatentSourceEvent[],
  from: LatentBasisState = filter.initBasis(topic),
): LatentBasisState {
  for (const r of events) {
    const e = latentEventOf(r);
    if (e !== null) filter.stepBasis(from, e, topic);
  }
  return from;
}

/** A basis state's stored form: the single state's (encodeLatentState) for one part, else the basis layout. */
export function encodeLatentBasis(b: LatentBasisState): Uint8Array {
  if (b.parts.length === 1) return encodeLatentState(b.parts[0]!);
  const first = b.parts[0]!;
  const bins = first.p.length;
  const out = new Uint8Array(latentBasisBytes(bins, b.parts.length));
  const v = new DataView(out.buffer);
  v.setUint8(0, LATENT_BASIS_FORMAT);
  v.setUint8(1, LATENT_FACTORS.length);
  v.setUint16(2, bins, true);
  v.setUint32(4, first.events, true);
  v.setFloat64(8, first.observations, true);
  v.setFloat64(16, first.lastT, true);
  v.setUint32(24, b.parts.length, true);
  v.setUint32(28, 0, true);
  let o = BASIS_HEADER;
  b.parts.forEach((s, j) => {
    v.setFloat64(o, b.ll[j]!, true);
    v.setFloat64(o + 8, s.base, true);
    o += 16;
    for (let i = 0; i < LATENT_FACTORS.length; i++, o += 8) v.setFloat64(o, s.contributions[i] ?? 0, true);
    for (let i = 0; i < bins; i++, o += 4) v.setFloat32(o, s.p[i]!, true);
  });
  return out;
}

/**
 * The basis state stored in `bytes` for a model with `parts` basis offsets on a `bins`-cell grid, or null when
 * it is not one (another format, grid, factor list or number of parts: rebuild the key from its events then).
 * A single state (parts = 1) decodes with its log-likelihood unknown (NaN): it is not needed without a
 * student effect.
 */
export function decodeLatentBasis(bytes: Uint8Array, bins: number, parts: number): LatentBasisState | null {
  if (parts === 1) {
    const s = decodeLatentState(bytes, bins);
    return s === null ? null : { parts: [s], ll: Float64Array.of(Number.NaN) };
  }
  if (bytes.length !== latentBasisBytes(bins, parts)) return null;
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (v.getUint8(0) !== LATENT_BASIS_FORMAT || v.getUint8(1) !== LATENT_FACTORS.length) return null;
  if (v.getUint16(2, true) !== bins || v.getUint32(24, true) !== parts) return null;
  const events = v.getUint32(4, true);
  const observations = v.getFloat64(8, true);
  const lastT = v.getFloat64(16, true);
  const ll = new Float64Array(parts);
  const out: LatentState[] = [];
  let o = BASIS_HEADER;
  for (let j = 0; j < parts; j++) {
    ll[j] = v.getFloat64(o, true);
    const base = v.getFloat64(o + 8, true);
    o += 16;
    const contributions = new Float64Array(LATENT_FACTORS.length);
    for (let i = 0; i < contributions.length; i++, o += 8) contributions[i] = v.getFloat64(o, true);
    const p = new Float32Array(bins);
    for (let i = 0; i < bins; i++, o += 4) p[i] = v.getFloat32(o, true);
    out.push({ p, base, contributions, observations, events, lastT });
  }
  return { parts: out, ll };
}

export function encodeLatentState(s: LatentState): Uint8Array {
  const bins = s.p.length;
  const out = new Uint8Array(latentStateBytes(bins));
  const v = new DataView(out.buffer);
  v.setUint8(0, LATENT_STATE_FORMAT);
  v.setUint8(1, LATENT_FACTORS.length);
  v.setUint16(2, bins, true);
  v.setUint32(4, s.events, true);
  v.setFloat64(8, s.base, true);
  v.setFloat64(16, s.observations, true);
  v.setFloat64(24, s.lastT, true);
  let o = HEADER;
  for (let i = 0; i < LATENT_FACTORS.length; i++, o += 8) v.setFloat64(o, s.contributions[i] ?? 0, true);
  for (let i = 0; i < bins; i++, o += 4) v.setFloat32(o, s.p[i]!, true);
  return out;
}

/**
 * The state stored in `bytes`, or null when it is not a state of a `bins`-cell grid in this format (other
 * format, factor list or grid size, or a truncated value): rebuild the key from its events then.
 */
export function decodeLatentState(bytes: Uint8Array, bins: number): LatentState | null {
  if (bytes.length !== latentStateBytes(bins)) return null;
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (v.getUint8(0) !== LATENT_STATE_FORMAT || v.getUint8(1) !== LATENT_FACTORS.length) return null;
  if (v.getUint16(2, true) !== bins) return null;
  const contributions = new Float64Array(LATENT_FACTORS.length);
  let o = HEADER;
  for (let i = 0; i < contributions.length; i++, o += 8) contributions[i] = v.getFloat64(o, true);
  const p = new Float32Array(bins);
  for (let i = 0; i < bins; i++, o += 4) p[i] = v.getFloat32(o, true);
  return {
    p,
    base: v.getFloat64(8, true),
    contributions,
    observations: v.getFloat64(16, true),
    events: v.getUint32(4, true),
    lastT: v.getFloat64(24, true),
  };
}
