import { Xoshiro128 } from "../models/prng.ts";

/**
 * Fuzzed events for the chaos suite: each is a valid event with one or more fields replaced by a
 * hostile value — wrong types, out-of-range and huge numbers, long strings, deep nesting, NUL
 * bytes and lone surrogates, impossible and far dates, and xAPI statements of odd shapes. The
 * contract must reject each bad field per item (4xx / rejected), keep the valid neighbours, and
 * never answer 5xx. Deterministic for a seed.
 */

const deep = (depth: number): unknown => {
  let v: unknown = "x";
  for (let i = 0; i < depth; i++) v = i % 2 === 0 ? [v] : { a: v };
  return v;
};

const HOSTILE: readonly ((r: Xoshiro128) => unknown)[] = [
  () => null,
  () => true,
  () => [],
  () => ({}),
  () => "",
  () => 2 ** 31,
  () => 2 ** 53 + 2,
  () => -(2 ** 63),
  () => 1e308,
  () => -1,
  () => 0.5,
  () => "\u0000",
  () => "a\u0000b",
  () => "\ud800",
  () => "\udfff-lone",
  () => "🎓📚".repeat(50),
  () => "\u202eevil",
  (r) => "x".repeat(1000 + r.int(20_000)),
  () => deep(200),
  () => deep(5),
  () => "0001-01-01T00:00:00Z",
  () => "9999-12-31T23:59:59Z",
  () => "2026-13-45T99:99:99Z",
  () => "2026-01-05T10:00:00",
  () => "yesterday",
  () => 1767600000000,
  () => "1e999",
  () => "NaN",
  () => "SELECT 1; DROP TABLE raw_events;--",
];

const FIELDS = [
  "event_id",
  "type",
  "student_id",
  "timestamp",
  "topic_id",
  "topic_ids",
  "is_correct",
  "time_spent_sec",
  "attempt_number",
  "hints_used",
  "score_pct",
  "watch_pct",
  "attempts",
  "correct_count",
  "school_id",
  "class_id",
  "grade",
  "question_id",
] as const;

function xapiShape(r: Xoshiro128, id: string, student: string): unknown {
  const shapes: unknown[] = [
    { id, actor: { account: { name: student } }, verb: { id: "http://adlnet.gov/expapi/verbs/answered" } },
    {
      id,
      actor: { account: { name: student } },
      verb: { id: "http://adlnet.gov/expapi/verbs/answered" },
      object: { id: "q1" },
      result: { success: true, duration: "PT-5S" },
      timestamp: "2026-01-05T10:00:00Z",
      context: { contextActivities: { parent: { id: "topic-1" } } },
    },
    {
      id,
      actor: { mbox: `mailto:${student}@school.example` },
      verb: { id: "http://adlnet.gov/expapi/verbs/completed" },
      object: { id: "a1" },
      result: { score: { scaled: 7 } },
      timestamp: "2026-01-05T10:00:00Z",
      context: { contextActivities: { parent: [null, { id: 3 }] } },
    },
    {
      id,
      actor: { account: { name: student } },
      verb: { id: "http://adlnet.gov/expapi/verbs/experienced", display: { "en-US": 5 } },
      object: {
        id: "v1",
        definition: { extensions: { "https://mastery-engine.local/xapi/topic_id": deep(50) } },
      },
      timestamp: "9999-12-31T23:59:59Z",
    },
    { id, actor: null, verb: "answered", object: [], result: "yes", timestamp: 0 },
  ];
  return shapes[r.int(shapes.length)];
}

/**
 * A fuzzed event derived from the valid `base` (or an xAPI statement of an odd shape); `id` is its
 * event_id when the fuzz leaves the id alone (so the chaos can tell which ones were acknowledged).
 */
export function fuzzEvent(r: Xoshiro128, base: Record<string, unknown>, id: string): unknown {
  if (r.int(10) === 0) return xapiShape(r, id, String(base.student_id));
  const e: Record<string, unknown> = { ...base, event_id: id };
  const n = 1 + r.int(3);
  for (let k = 0; k < n; k++) {
    const field = FIELDS[r.int(FIELDS.length)]!;
    e[field] = HOSTILE[r.int(HOSTILE.length)]!(r);
  }
  if (r.int(20) === 0) e[`extra_${r.int(1000)}`] = deep(r.int(300));
  return e;
}

export function fuzzRng(seed: number): Xoshiro128 {
  return new Xoshiro128(seed);
}
