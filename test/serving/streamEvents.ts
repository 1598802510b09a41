import { Xoshiro128 } from "../../models/prng.ts";

/**
 * A deterministic event set for the stream tests and bench: contract-valid JSON events (mostly
 * quiz attempts, plus video, practice and two-topic assignments), in a publish order that is the
 * time order disturbed on purpose: a share of events arrives late (after later events of the same
 * key), and a share is published twice.
 */
export interface StreamEventSet {
  /** Distinct events in time order. */
  events: Record<string, unknown>[];
  /** What to publish, in order (late arrivals moved, duplicates included). */
  publishOrder: Record<string, unknown>[];
}

export interface StreamEventOptions {
  students: number;
  topics: number;
  events: number;
  seed?: number;
  /** Share of events moved later in the publish order (default 0.02). */
  lateShare?: number;
  /** Share of events published a second time (default 0.01). */
  duplicateShare?: number;
  /** Prefix of event ids (default "ev"). */
  idPrefix?: string;
}

const BASE_MS = Date.UTC(2026, 0, 5, 8, 0, 0);

function iso(ms: number, micros: number, offsetMinutes: number): string {
  const local = new Date(ms + offsetMinutes * 60_000).toISOString().slice(0, 19);
  const frac = `${String(ms % 1000).padStart(3, "0")}${String(micros).padStart(3, "0")}`;
  if (offsetMinutes === 0) return `${local}.${frac}Z`;
  const sign = offsetMinutes > 0 ? "+" : "-";
  const a = Math.abs(offsetMinutes);
  return `${local}.${frac}${sign}${String(Math.floor(a / 60)).padStart(2, "0")}:${String(a % 60).padStart(2, "0")}`;
}

export function generateStreamEvents(opts: StreamEventOptions): StreamEventSet {
  const rng = new Xoshiro128(opts.seed ?? 1);
  const prefix = opts.idPrefix ?? "ev";
  const events: Record<string, unknown>[] = [];
  const ability = Array.from({ length: opts.students }, () => rng.normal());
  for (let i = 0; i < opts.events; i++) {
    const s = rng.int(opts.students);
    const t = rng.int(opts.topics);
    const ms = BASE_MS + i * 997 + rng.int(900);
    const base = {
      event_id: `${prefix}-${String(i).padStart(7, "0")}`,
      student_id: `student-${s}`,
      timestamp: iso(ms, rng.int(1000), rng.int(10) === 0 ? 120 : 0),
    };
    const u = rng.next();
    if (u < 0.75) {
      const p = 1 / (1 + Math.exp(-(ability[s]! + 0.2 * (i / opts.events) * 10 - 0.3 * (t % 3))));
      events.push({
        ...base,
        type: "quiz_attempt",
        topic_id: `topic-${t}`,
        question_id: `q-${t}-${rng.int(8)}`,
        is_correct: rng.next() < p,
        time_spent_sec: 5 + rng.int(60),
      });
    } else if (u < 0.85) {
      events.push({
        ...base,
        type: "video",
        topic_id: `topic-${t}`,
        video_id: `v-${t}`,
        watch_pct: rng.int(101),
      });
    } else if (u < 0.95) {
      const attempts = 1 + rng.int(5);
      events.push({
        ...base,
        type: "practice",
        topic_id: `topic-${t}`,
        attempts,
        correct_count: rng.int(attempts + 1),
      });
    } else {
      const t2 = (t + 1 + rng.int(Math.max(1, opts.topics - 1))) % opts.topics;
      events.push({
        ...base,
        type: "assignment",
        assignment_id: `a-${i}`,
        topic_ids: t2 === t ? [`topic-${t}`] : [`topic-${t}`, `topic-${t2}`],
        score_pct: rng.int(101),
      });
    }
  }
  const order = [...events];
  const late = Math.round(opts.events * (opts.lateShare ?? 0.02));
  for (let k = 0; k < late; k++) {
    const i = rng.int(order.length);
    const j = Math.min(order.length - 1, i + 1 + rng.int(200));
    const [e] = order.splice(i, 1);
    order.splice(j, 0, e!);
  }
  const dups = Math.round(opts.events * (opts.duplicateShare ?? 0.01));
  for (let k = 0; k < dups; k++) {
    const i = rng.int(events.length);
    order.splice(rng.int(order.length + 1), 0, events[i]!);
  }
  return { events, publishOrder: order };
}

/**
 * Every event of `events` at least once, plus `events[i]` again for each i of `repeats`, in an order that
 * shuffles them by `seed` (FNV-1a of event id, position and seed): duplicates and late arrivals for
 * arrival-order properties.
 */
export function shuffledWithRepeats<E extends Record<string, unknown>>(
  events: readonly E[],
  repeats: readonly number[],
  seed: number,
): E[] {
  return [...repeats.map((i) => events[i] as E), ...events]
    .map((e, i) => ({ e, k: fnv1a(`${String(e.event_id)}/${i}/${seed}`) }))
    .sort((x, y) => x.k - y.k)
    .map((x) => x.e);
}

function fnv1a(s: string): number {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  return h >>> 0;
}
