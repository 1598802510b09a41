import type { RawEventRow } from "../../storage/rawEventStore.ts";

/** The columns every raw row names; the rest default to null (source to "api") unless `fields` sets them. */
export type RawEventCore = Pick<
  RawEventRow,
  "event_id" | "type" | "student_key" | "topic_id" | "ts_us" | "ingested_at_us"
>;

/** A raw_events row for storage tests: `core` plus `fields`, every other payload column null. */
export function rawEventRow(core: RawEventCore, fields: Partial<RawEventRow> = {}): RawEventRow {
  return {
    school_id: null,
    class_id: null,
    grade: null,
    question_id: null,
    is_correct: null,
    time_spent_sec: null,
    attempt_number: null,
    hints_used: null,
    assignment_id: null,
    score_pct: null,
    video_id: null,
    watch_pct: null,
    watch_duration_sec: null,
    rewind_count: null,
    attempts: null,
    correct_count: null,
    help_requests: null,
    resolved_count: null,
    source: "api",
    ...core,
    ...fields,
  };
}
