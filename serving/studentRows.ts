import type { DuckStore } from "../storage/duckdb.ts";
import { listValue } from "../storage/duckdbApi.ts";
import type { RawEventRow } from "../storage/rawEventStore.ts";

/** The stored raw_events rows of one student (optionally some topics), as the updater takes them. */
export async function studentRawRows(
  store: DuckStore,
  studentKey: string,
  topicIds?: readonly string[],
): Promise<RawEventRow[]> {
  const rows = await store.all(
    `SELECT event_id, type, student_key, topic_id, epoch_us(ts)::DOUBLE AS ts_us, school_id, class_id, grade,
            question_id, is_correct, time_spent_sec, attempt_number, hints_used, assignment_id, score_pct,
            video_id, watch_pct, watch_duration_sec, rewind_count, attempts, correct_count, help_requests,
            resolved_count, source, epoch_us(ingested_at)::DOUBLE AS ingested_at_us
     FROM raw_events
     WHERE student_key = $1 AND ($2::VARCHAR[] IS NULL OR list_contains($2::VARCHAR[], topic_id))
     ORDER BY topic_id, ts, event_id`,
    [studentKey, topicIds === undefined ? null : listValue([...topicIds])],
  );
  return rows as unknown as RawEventRow[];
}
