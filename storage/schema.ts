/**
 * Tables of the embedded store. Column names follow the data contracts in docs/architecture.md.
 * `student_key` is always the pseudonym (HMAC-SHA256 of the raw id); raw ids never reach a table.
 * Timestamps are TIMESTAMP in UTC.
 */
export const CORE_DDL: readonly string[] = [
  `CREATE TABLE IF NOT EXISTS topics (
     topic_id VARCHAR PRIMARY KEY,
     name VARCHAR,
     chapter_id VARCHAR NOT NULL,
     subject_id VARCHAR NOT NULL,
     course_id VARCHAR,
     difficulty_estimate DOUBLE,
     prerequisites VARCHAR[],
     content_length DOUBLE
   )`,
  // One row per (event, topic): an assignment covering three topics fans out into three rows
  // sharing its event_id. Deduplication is by event_id.
  `CREATE TABLE IF NOT EXISTS raw_events (
     event_id VARCHAR NOT NULL,
     type VARCHAR NOT NULL,
     student_key VARCHAR NOT NULL,
     topic_id VARCHAR NOT NULL,
     ts TIMESTAMP NOT NULL,
     school_id VARCHAR,
     class_id VARCHAR,
     grade INTEGER,
     question_id VARCHAR,
     is_correct BOOLEAN,
     time_spent_sec DOUBLE,
     attempt_number INTEGER,
     hints_used INTEGER,
     assignment_id VARCHAR,
     score_pct DOUBLE,
     video_id VARCHAR,
     watch_pct DOUBLE,
     watch_duration_sec DOUBLE,
     rewind_count INTEGER,
     attempts INTEGER,
     correct_count INTEGER,
     help_requests INTEGER,
     resolved_count INTEGER,
     source VARCHAR,
     ingested_at TIMESTAMP NOT NULL
   )`,
  `CREATE TABLE IF NOT EXISTS dead_letter (
     source VARCHAR,
     row_number BIGINT,
     event_id VARCHAR,
     type VARCHAR,
     field VARCHAR NOT NULL,
     reason VARCHAR NOT NULL,
     payload VARCHAR,
     rejected_at TIMESTAMP NOT NULL
   )`,
  `CREATE TABLE IF NOT EXISTS student_mastery (
     student_key VARCHAR NOT NULL,
     topic_id VARCHAR NOT NULL,
     mastery_score DOUBLE NOT NULL,
     score_source VARCHAR NOT NULL,
     model_version VARCHAR NOT NULL,
     as_of TIMESTAMP NOT NULL,
     explanation VARCHAR NOT NULL,
     last_updated TIMESTAMP NOT NULL,
     PRIMARY KEY (student_key, topic_id, score_source)
   )`,
  `CREATE TABLE IF NOT EXISTS student_mastery_history (
     student_key VARCHAR NOT NULL,
     topic_id VARCHAR NOT NULL,
     mastery_score DOUBLE NOT NULL,
     score_source VARCHAR NOT NULL,
     model_version VARCHAR NOT NULL,
     as_of TIMESTAMP NOT NULL,
     explanation VARCHAR NOT NULL,
     recorded_at TIMESTAMP NOT NULL
   )`,
];
