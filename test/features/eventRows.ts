import type { DuckStore } from "../../storage/duckdb.ts";

/** A hand-written raw_events row for tests (student_key already pseudonymized). */
export interface TestEvent {
  type: "quiz_attempt" | "assignment" | "video" | "practice" | "chatbot";
  student: string;
  topic: string;
  /** ISO time with Z. */
  ts: string;
  is_correct?: boolean;
  time_spent_sec?: number;
  hints_used?: number;
  score_pct?: number;
  watch_pct?: number;
  attempts?: number;
  correct_count?: number;
  help_requests?: number;
}

let seq = 0;

/** Inserts rows into raw_events with one parameterized multi-row INSERT. */
export async function insertEvents(store: DuckStore, events: readonly TestEvent[]): Promise<void> {
  if (events.length === 0) return;
  const params: (string | number | boolean | null)[] = [];
  const tuples: string[] = [];
  for (const e of events) {
    const base = params.length;
    params.push(
      `ev${seq++}`,
      e.type,
      e.student,
      e.topic,
      e.ts,
      e.is_correct ?? null,
      e.time_spent_sec ?? null,
      e.hints_used ?? null,
      e.score_pct ?? null,
      e.watch_pct ?? null,
      e.attempts ?? null,
      e.correct_count ?? null,
      e.help_requests ?? null,
    );
    const p = (k: number) => `$${base + k}`;
    tuples.push(
      `(${p(1)}, ${p(2)}, ${p(3)}, ${p(4)}, ${p(5)}::TIMESTAMP, ${p(6)}::BOOLEAN, ${p(7)}::DOUBLE, ` +
        `${p(8)}::INTEGER, ${p(9)}::DOUBLE, ${p(10)}::DOUBLE, ${p(11)}::INTEGER, ${p(12)}::INTEGER, ${p(13)}::INTEGER, now())`,
    );
  }
  await store.run(
    `INSERT INTO raw_events (event_id, type, student_key, topic_id, ts, is_correct, time_spent_sec, hints_used,
       score_pct, watch_pct, attempts, correct_count, help_requests, ingested_at)
     VALUES ${tuples.join(", ")}`,
    params,
  );
}

/** Every VARCHAR (or list) cell of every persistent table containing `needle`. */
export async function leaks(store: DuckStore, needles: string[]): Promise<string[]> {
  const found: string[] = [];
  for (const table of await store.tableNames()) {
    const cols = await store.all<{ column_name: string }>(
      `SELECT column_name FROM information_schema.columns
       WHERE table_schema = 'main' AND table_name = $t AND data_type LIKE 'VARCHAR%'`,
      { t: table },
    );
    for (const { column_name } of cols) {
      for (const needle of needles) {
        const r = await store.one<{ n: bigint }>(
          `SELECT count(*) AS n FROM "${table}" WHERE contains(CAST("${column_name}" AS VARCHAR), $needle)`,
          { needle },
        );
        if (Number(r?.n) > 0) found.push(`${table}.${column_name} contains ${needle}`);
      }
    }
  }
  return found;
}

export const EVENT_TYPES = ["quiz_attempt", "assignment", "video", "practice", "chatbot"] as const;

/** An event drawn by a property test: offset in seconds from a reference time, and small counts. */
export type DrawnEvent = {
  type: (typeof EVENT_TYPES)[number];
  student: string;
  topic: string;
  seconds: number;
  is_correct: boolean;
  n: number;
  pct: number;
};

/** The raw_events row of a drawn event, `e.seconds` after `at`; every type's columns derive from n and pct. */
export const drawnEvent = (at: Date, e: DrawnEvent): TestEvent => ({
  type: e.type,
  student: e.student,
  topic: e.topic,
  ts: new Date(at.getTime() + e.seconds * 1000).toISOString(),
  is_correct: e.is_correct,
  time_spent_sec: e.n * 7,
  hints_used: e.n % 3,
  score_pct: e.pct,
  watch_pct: e.pct,
  attempts: e.n,
  correct_count: Math.floor(e.n / 2),
  help_requests: e.n,
});
