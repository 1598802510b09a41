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
