/**
 * Tables of the embedded store. Column names follow the data contracts in docs/architecture.md.
 * `student_key` is always the pseudonym (HMAC-SHA256 of the raw id, 128 bits as 32 hex characters);
 * raw ids never reach a table.
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
  // Windowed features per (student, topic) as of a point in time (features/windows.ts documents every
  // column). One snapshot per as_of; a row as of T uses only events with ts < T. No primary key on
  // purpose: bulk rebuilds of millions of rows are much faster without an index; windows.ts replaces
  // a whole as_of snapshot inside one transaction, so (student_key, topic_id, as_of) stays unique.
  `CREATE TABLE IF NOT EXISTS features (
     student_key VARCHAR NOT NULL,
     topic_id VARCHAR NOT NULL,
     as_of TIMESTAMP NOT NULL,
     attempts_7d INTEGER,
     correct_7d INTEGER,
     accuracy_7d DOUBLE,
     avg_time_per_question_7d DOUBLE,
     hint_usage_rate_7d DOUBLE,
     practice_attempts_7d INTEGER,
     practice_success_rate_7d DOUBLE,
     videos_7d INTEGER,
     video_watch_pct_7d DOUBLE,
     assignments_7d INTEGER,
     assignment_score_pct_7d DOUBLE,
     help_requests_7d INTEGER,
     active_days_7d INTEGER,
     revisit_rate_7d DOUBLE,
     attempts_30d INTEGER,
     correct_30d INTEGER,
     accuracy_30d DOUBLE,
     avg_time_per_question_30d DOUBLE,
     hint_usage_rate_30d DOUBLE,
     practice_attempts_30d INTEGER,
     practice_success_rate_30d DOUBLE,
     videos_30d INTEGER,
     video_watch_pct_30d DOUBLE,
     assignments_30d INTEGER,
     assignment_score_pct_30d DOUBLE,
     help_requests_30d INTEGER,
     active_days_30d INTEGER,
     revisit_rate_30d DOUBLE,
     attempts_90d INTEGER,
     correct_90d INTEGER,
     accuracy_90d DOUBLE,
     avg_time_per_question_90d DOUBLE,
     hint_usage_rate_90d DOUBLE,
     practice_attempts_90d INTEGER,
     practice_success_rate_90d DOUBLE,
     videos_90d INTEGER,
     video_watch_pct_90d DOUBLE,
     assignments_90d INTEGER,
     assignment_score_pct_90d DOUBLE,
     help_requests_90d INTEGER,
     active_days_90d INTEGER,
     revisit_rate_90d DOUBLE,
     trend_slope_30d DOUBLE,
     days_since_last_activity DOUBLE NOT NULL,
     last_activity_at TIMESTAMP NOT NULL
   )`,
  // Online BKT + Elo state per (student, topic), built by replaying raw_events in (ts, event_id)
  // order through models/learnerState.ts. The *_delta columns accumulate each factor's signed
  // contribution to the scores (for explanations); *_model_version says which parameters built it.
  `CREATE TABLE IF NOT EXISTS learner_state (
     student_key VARCHAR NOT NULL,
     topic_id VARCHAR NOT NULL,
     p_mastery DOUBLE NOT NULL,
     elo_ability DOUBLE NOT NULL,
     elo_n INTEGER NOT NULL,
     bkt_n INTEGER NOT NULL,
     last_ts TIMESTAMP,
     last_event_id VARCHAR,
     correct_streak INTEGER NOT NULL,
     updated_at TIMESTAMP NOT NULL,
     correct_n INTEGER NOT NULL,
     bkt_correct_delta DOUBLE NOT NULL,
     bkt_incorrect_delta DOUBLE NOT NULL,
     bkt_learn_delta DOUBLE NOT NULL,
     bkt_streak_obs_delta DOUBLE NOT NULL,
     bkt_streak_learn_delta DOUBLE NOT NULL,
     elo_correct_delta DOUBLE NOT NULL,
     elo_incorrect_delta DOUBLE NOT NULL,
     elo_streak_delta DOUBLE NOT NULL,
     bkt_model_version VARCHAR NOT NULL,
     elo_model_version VARCHAR NOT NULL,
     p_unknown DOUBLE,
     PRIMARY KEY (student_key, topic_id)
   )`,
  // P(not learned) carried next to p_mastery: 1 - p_mastery rounds to 0 after a long streak
  // (models/bkt.ts bktStepPair). Added after the first release; NULL in older rows means 1 - p_mastery.
  "ALTER TABLE learner_state ADD COLUMN IF NOT EXISTS p_unknown DOUBLE",
  // Events folded into the state (models/learnerState.ts eventN): the batch job compares it with the
  // stored events at or before the cursor to find late events. NULL in older rows: rebuilt on touch.
  "ALTER TABLE learner_state ADD COLUMN IF NOT EXISTS event_n INTEGER",
  // The latent filter's state (models/latentState.ts: ~260 bytes with a 40-cell grid) and the version of the
  // latent model that built it; NULL without a latent model (and in rows of the batch job): rebuilt on touch.
  "ALTER TABLE learner_state ADD COLUMN IF NOT EXISTS latent_state BLOB",
  "ALTER TABLE learner_state ADD COLUMN IF NOT EXISTS latent_model_version VARCHAR",
  // The stream's decayed rule state (models/ruleScorer.ts encodeRuleState, 120 bytes) and the rule model version
  // that built it (serving/ruleStream.ts); NULL in rows of the batch jobs (rebuilt on the stream's next touch).
  "ALTER TABLE learner_state ADD COLUMN IF NOT EXISTS rule_state BLOB",
  "ALTER TABLE learner_state ADD COLUMN IF NOT EXISTS rule_model_version VARCHAR",
];

/**
 * Model registry tables (registry/), created by the registry store on open, on DuckDB or PostgreSQL
 * (storage/postgres.ts pgDialectDdl maps DOUBLE). JSON columns hold JSON text. A version's artifact
 * files live in the content-addressed artifact store under their sha256; model_artifacts maps
 * (name, version, relative path) to that hash, so identical files are stored once.
 */
export const REGISTRY_DDL: readonly string[] = [
  `CREATE TABLE IF NOT EXISTS model_versions (
     name VARCHAR NOT NULL,
     version INTEGER NOT NULL,
     kind VARCHAR NOT NULL,
     params VARCHAR NOT NULL,
     metrics VARCHAR NOT NULL,
     data_from TIMESTAMP,
     data_to TIMESTAMP,
     data_file VARCHAR,
     data_hash VARCHAR,
     data_rows BIGINT,
     feature_schema_hash VARCHAR NOT NULL,
     code_commit VARCHAR NOT NULL,
     parent_name VARCHAR,
     parent_version INTEGER,
     description VARCHAR,
     created_by VARCHAR NOT NULL,
     created_at TIMESTAMP NOT NULL,
     PRIMARY KEY (name, version)
   )`,
  `CREATE TABLE IF NOT EXISTS model_tags (
     name VARCHAR NOT NULL,
     version INTEGER NOT NULL,
     tag VARCHAR NOT NULL,
     PRIMARY KEY (name, version, tag)
   )`,
  `CREATE TABLE IF NOT EXISTS model_artifacts (
     name VARCHAR NOT NULL,
     version INTEGER NOT NULL,
     path VARCHAR NOT NULL,
     sha256 VARCHAR NOT NULL,
     size_bytes BIGINT NOT NULL,
     PRIMARY KEY (name, version, path)
   )`,
  `CREATE TABLE IF NOT EXISTS model_aliases (
     name VARCHAR NOT NULL,
     alias VARCHAR NOT NULL,
     version INTEGER NOT NULL,
     updated_by VARCHAR NOT NULL,
     updated_at TIMESTAMP NOT NULL,
     PRIMARY KEY (name, alias)
   )`,
  // Every alias move, in order (seq per name+alias). action: move | promote | rollback | clear.
  // gate holds the promotion gate's decision (JSON) when the move went through the gate.
  `CREATE TABLE IF NOT EXISTS alias_history (
     name VARCHAR NOT NULL,
     alias VARCHAR NOT NULL,
     seq INTEGER NOT NULL,
     from_version INTEGER,
     to_version INTEGER,
     action VARCHAR NOT NULL,
     forced BOOLEAN NOT NULL,
     actor VARCHAR NOT NULL,
     reason VARCHAR NOT NULL,
     gate VARCHAR,
     moved_at TIMESTAMP NOT NULL,
     PRIMARY KEY (name, alias, seq)
   )`,
];

/**
 * A/B experiment tables (experiments/). arms: JSON [{name, model: {name, alias | version}, share}];
 * allocation: JSON list of [startBucket, endBucketExclusive, armIndex] over the 10,000 hash buckets
 * (experiments/buckets.ts), the only state assignment needs. experiment_exposures is the exposure
 * log: one row per score served to a student under an experiment.
 */
export const EXPERIMENT_DDL: readonly string[] = [
  `CREATE TABLE IF NOT EXISTS experiments (
     experiment_id VARCHAR PRIMARY KEY,
     name VARCHAR NOT NULL,
     status VARCHAR NOT NULL,
     salt VARCHAR NOT NULL,
     arms VARCHAR NOT NULL,
     control_arm VARCHAR NOT NULL,
     allocation VARCHAR NOT NULL,
     unit VARCHAR NOT NULL,
     config VARCHAR NOT NULL,
     start_at TIMESTAMP NOT NULL,
     end_at TIMESTAMP,
     created_at TIMESTAMP NOT NULL,
     updated_at TIMESTAMP NOT NULL
   )`,
  `CREATE TABLE IF NOT EXISTS experiment_share_history (
     experiment_id VARCHAR NOT NULL,
     seq INTEGER NOT NULL,
     shares VARCHAR NOT NULL,
     moved_buckets INTEGER NOT NULL,
     changed_by VARCHAR NOT NULL,
     changed_at TIMESTAMP NOT NULL,
     PRIMARY KEY (experiment_id, seq)
   )`,
  `CREATE TABLE IF NOT EXISTS experiment_exposures (
     experiment_id VARCHAR NOT NULL,
     arm VARCHAR NOT NULL,
     student_key VARCHAR NOT NULL,
     model_name VARCHAR NOT NULL,
     model_version INTEGER NOT NULL,
     score DOUBLE NOT NULL,
     served_at TIMESTAMP NOT NULL
   )`,
];

/**
 * The numbers of a BKT / Elo explanation (models/learnerState.ts BktEloExplanationNumbers), in column order:
 * the batch job (serving/learnerState.ts) writes them to student_mastery and its history with an empty
 * `explanation`, and readers render the text (serving/storedExplanations.ts). NULL on every other row.
 */
export const EXPLANATION_NUMBER_COLUMNS = [
  "ex_base",
  "ex_correct",
  "ex_correct_c",
  "ex_incorrect",
  "ex_incorrect_c",
  "ex_learn",
  "ex_learn_c",
  "ex_streak",
  "ex_streak_c",
] as const;
const EXPLANATION_NUMBER_TYPES: Record<(typeof EXPLANATION_NUMBER_COLUMNS)[number], string> = {
  ex_base: "DOUBLE",
  ex_correct: "INTEGER",
  ex_correct_c: "DOUBLE",
  ex_incorrect: "INTEGER",
  ex_incorrect_c: "DOUBLE",
  ex_learn: "DOUBLE",
  ex_learn_c: "DOUBLE",
  ex_streak: "INTEGER",
  ex_streak_c: "DOUBLE",
};

/**
 * The signals of a rule block's factors (models/ruleScorer.ts StoredRuleState.factors: every signal but
 * recency, in signal order), each stored as a value and a part column (NULL: not among the factors).
 */
export const RULE_FACTOR_SIGNALS = [
  "accuracy",
  "assignment_score",
  "practice_success",
  "video_completion",
  "hint_usage",
  "trend",
] as const;

/**
 * The rule block (models/ruleScorer.ts StoredRuleState) of the batch rule step's rows, in column order: the
 * step (serving/ruleScoring.ts) writes them to student_mastery and its history with an empty `explanation`,
 * and readers render the text (serving/storedExplanations.ts). NULL on every other row (the stream's rule
 * rows, rows without a block, and rows stored before these columns keep their text).
 */
export const RULE_BLOCK_COLUMNS = [
  "rule_prior",
  "rule_ref_us",
  "rule_last_us",
  "rule_evidence",
  "rule_shrinkage_k",
  "rule_evidence_half_life_days",
  "rule_inactivity_half_life_days",
  "rule_part_sum",
  "rule_recency_weight",
  "rule_centered",
  ...RULE_FACTOR_SIGNALS.flatMap((s) => [`rule_${s}_value`, `rule_${s}_part`] as const),
] as const;
export type RuleBlockColumn = (typeof RULE_BLOCK_COLUMNS)[number];
/** Every rule column is a DOUBLE (the block's numbers to the bit) but `rule_centered`. */
export const ruleBlockColumnType = (c: RuleBlockColumn): string =>
  c === "rule_centered" ? "BOOLEAN" : "DOUBLE";

/**
 * The embedded file's additions to CORE_DDL (storage/duckdb.ts applies both): the explanation numbers of the
 * batch jobs' rows (BKT / Elo, and the rule block). ADD COLUMN IF NOT EXISTS moves a file written before them
 * (its rows keep their text, the new columns NULL). PostgreSQL's student_mastery holds only texts (the batch
 * jobs write the DuckDB file).
 */
export const DUCK_ONLY_DDL: readonly string[] = ["student_mastery", "student_mastery_history"].flatMap(
  (t) => [
    ...EXPLANATION_NUMBER_COLUMNS.map(
      (c) => `ALTER TABLE ${t} ADD COLUMN IF NOT EXISTS ${c} ${EXPLANATION_NUMBER_TYPES[c]}`,
    ),
    ...RULE_BLOCK_COLUMNS.map(
      (c) => `ALTER TABLE ${t} ADD COLUMN IF NOT EXISTS ${c} ${ruleBlockColumnType(c)}`,
    ),
  ],
);

/**
 * At-risk alert tables (serving/alerts.ts, storage/alertStore.ts): on the embedded file with the
 * serving tables, or in PostgreSQL next to student_mastery when the scores live there.
 */
export const ALERT_DDL: readonly string[] = [
  `CREATE TABLE IF NOT EXISTS alerts (
     alert_id VARCHAR PRIMARY KEY,
     student_key VARCHAR NOT NULL,
     topic_id VARCHAR NOT NULL,
     rule VARCHAR NOT NULL,
     threshold DOUBLE NOT NULL,
     score DOUBLE NOT NULL,
     score_source VARCHAR NOT NULL,
     school_id VARCHAR,
     grade INTEGER,
     crossing INTEGER NOT NULL,
     created_at TIMESTAMP NOT NULL
   )`,
  `CREATE TABLE IF NOT EXISTS alert_state (
     student_key VARCHAR NOT NULL,
     topic_id VARCHAR NOT NULL,
     below BOOLEAN NOT NULL,
     crossings INTEGER NOT NULL,
     updated_at TIMESTAMP NOT NULL,
     PRIMARY KEY (student_key, topic_id)
   )`,
  `CREATE TABLE IF NOT EXISTS webhook_deliveries (
     alert_id VARCHAR NOT NULL,
     url VARCHAR NOT NULL,
     attempt INTEGER NOT NULL,
     status INTEGER,
     error VARCHAR,
     attempted_at TIMESTAMP NOT NULL
   )`,
];

/**
 * Serving tables (serving/), created by the HTTP app on start. teacher_labels: one row per teacher
 * correction (also a training label); audit_log: who changed what through the API (actor is the
 * token's sub for staff, the student_key for students; never a raw student id). alerts: one row per
 * threshold crossing, alert_id = idempotency key sent with the webhook; alert_state remembers whether
 * a (student, topic) is below its threshold so one crossing raises one alert (no row: never below). webhook_deliveries logs
 * every delivery attempt.
 */
export const SERVING_DDL: readonly string[] = [
  // GET /mastery and its history routes read one student: without these DuckDB scans the whole table
  // (the primary key's ART index is not used for a student_key prefix), ~20-40 ms at 600k rows.
  // On the embedded file student_mastery is a view over student_mastery_base + its delta (storage/servingTables.ts);
  // a student_key filter on the view reaches the base's scan, where this index serves it.
  "CREATE INDEX IF NOT EXISTS student_mastery_by_student ON student_mastery_base (student_key)",
  "CREATE INDEX IF NOT EXISTS student_mastery_history_by_student ON student_mastery_history (student_key)",
  `CREATE TABLE IF NOT EXISTS teacher_labels (
     label_id VARCHAR PRIMARY KEY,
     student_key VARCHAR NOT NULL,
     topic_id VARCHAR NOT NULL,
     mastery DOUBLE NOT NULL,
     reason VARCHAR NOT NULL,
     labeled_by VARCHAR NOT NULL,
     previous_score DOUBLE,
     previous_source VARCHAR,
     created_at TIMESTAMP NOT NULL
   )`,
  `CREATE TABLE IF NOT EXISTS audit_log (
     logged_at TIMESTAMP NOT NULL,
     actor_role VARCHAR NOT NULL,
     actor VARCHAR NOT NULL,
     action VARCHAR NOT NULL,
     student_key VARCHAR,
     topic_id VARCHAR,
     detail VARCHAR NOT NULL
   )`,
  ...ALERT_DDL,
];

/**
 * Tables of the incremental update path (serving/updater.ts), on DuckDB or PostgreSQL.
 * learner_state_rev / learner_state_seen are the embedded state store's revision counter and
 * processed-event set per key (the Redis state store keeps both in Redis instead).
 * student_mastery_rev is the state revision each key's student_mastery rows were written from: a
 * writer holding an older revision than the stored one skips the key, so two workers racing on one
 * key cannot leave an older score behind.
 */
export const STREAM_DDL: readonly string[] = [
  `CREATE TABLE IF NOT EXISTS learner_state_rev (
     student_key VARCHAR NOT NULL,
     topic_id VARCHAR NOT NULL,
     rev BIGINT NOT NULL,
     PRIMARY KEY (student_key, topic_id)
   )`,
  `CREATE TABLE IF NOT EXISTS learner_state_seen (
     student_key VARCHAR NOT NULL,
     topic_id VARCHAR NOT NULL,
     event_id VARCHAR NOT NULL,
     PRIMARY KEY (student_key, topic_id, event_id)
   )`,
  `CREATE TABLE IF NOT EXISTS student_mastery_rev (
     student_key VARCHAR NOT NULL,
     topic_id VARCHAR NOT NULL,
     rev BIGINT NOT NULL,
     PRIMARY KEY (student_key, topic_id)
   )`,
];

/**
 * Monitoring tables (monitoring/), created by the drift monitor on first use. drift_checks logs
 * every check (decision JSON); retrain_runs logs every retrain attempt and its outcome (status:
 * promoted | rejected | skipped | failed). The reference snapshot tables (drift_reference,
 * drift_reference_scores) copy their columns from the features table, so monitoring/ creates them.
 */
export const MONITORING_DDL: readonly string[] = [
  `CREATE TABLE IF NOT EXISTS drift_checks (
     checked_at TIMESTAMP NOT NULL,
     drift BOOLEAN NOT NULL,
     reference VARCHAR NOT NULL,
     current_from TIMESTAMP NOT NULL,
     current_to TIMESTAMP NOT NULL,
     tests INTEGER NOT NULL,
     alerts INTEGER NOT NULL,
     decision VARCHAR NOT NULL
   )`,
  `CREATE TABLE IF NOT EXISTS retrain_runs (
     started_at TIMESTAMP NOT NULL,
     finished_at TIMESTAMP NOT NULL,
     model_name VARCHAR NOT NULL,
     trigger VARCHAR NOT NULL,
     status VARCHAR NOT NULL,
     champion_version INTEGER,
     challenger_version INTEGER,
     detail VARCHAR NOT NULL
   )`,
];

/**
 * Data-quality drift (features/qualityDrift.ts). ingest_profiles: one row per ingested CSV/Parquet
 * file with its header and DuckDB-inferred column types (JSON [{name, type}]). quality_reference:
 * the schema reference `mastery quality --set-reference` stores (per origin events|file, source,
 * event type and field: the value type and, for events, the non-null rate).
 */
export const QUALITY_DDL: readonly string[] = [
  `CREATE TABLE IF NOT EXISTS ingest_profiles (
     source VARCHAR NOT NULL,
     file VARCHAR NOT NULL,
     format VARCHAR NOT NULL,
     event_type VARCHAR NOT NULL,
     rows BIGINT NOT NULL,
     columns VARCHAR NOT NULL,
     profiled_at TIMESTAMP NOT NULL
   )`,
  `CREATE TABLE IF NOT EXISTS quality_reference (
     set_at TIMESTAMP NOT NULL,
     origin VARCHAR NOT NULL,
     source VARCHAR NOT NULL,
     event_type VARCHAR NOT NULL,
     field VARCHAR NOT NULL,
     value_type VARCHAR NOT NULL,
     non_null_rate DOUBLE
   )`,
];

/**
 * Class rosters (storage/rosterStore.ts), the source of teacher access (serving/auth.ts): which
 * students (by student_key, pseudonymized when the roster is loaded) are in which class, and
 * optionally which teachers (token sub) teach it. A class with no roster_teachers rows is open to
 * any teacher whose token lists the class. Loaded by `mastery roster load` and PUT /roster/classes/{id};
 * each load replaces the class's rows (updated_by/source say who and how).
 */
export const ROSTER_DDL: readonly string[] = [
  `CREATE TABLE IF NOT EXISTS roster_classes (
     class_id VARCHAR PRIMARY KEY,
     updated_at TIMESTAMP NOT NULL,
     updated_by VARCHAR NOT NULL,
     source VARCHAR NOT NULL
   )`,
  `CREATE TABLE IF NOT EXISTS roster_students (
     class_id VARCHAR NOT NULL,
     student_key VARCHAR NOT NULL,
     PRIMARY KEY (class_id, student_key)
   )`,
  `CREATE TABLE IF NOT EXISTS roster_teachers (
     class_id VARCHAR NOT NULL,
     teacher_id VARCHAR NOT NULL,
     PRIMARY KEY (class_id, teacher_id)
   )`,
  "CREATE INDEX IF NOT EXISTS roster_students_by_student ON roster_students (student_key)",
];

/**
 * batch_runs: one row per scheduled job run (`mastery schedule`): which job, when it started and
 * ended, its status (running | ok | failed), its counts (JSON) and, on failure, the error message.
 * Created on first use (storage/batchRuns.ts). The server reads the newest successful run for GET /metrics and /healthz. A row left "running"
 * by a process that died is visible as such (ended_at NULL) and never counts as a success.
 */
export const BATCH_RUNS_DDL = `CREATE TABLE IF NOT EXISTS batch_runs (
  run_id VARCHAR PRIMARY KEY,
  job VARCHAR NOT NULL,
  started_at TIMESTAMP NOT NULL,
  ended_at TIMESTAMP,
  status VARCHAR NOT NULL,
  counts VARCHAR,
  error VARCHAR,
  host VARCHAR NOT NULL,
  pid INTEGER NOT NULL
)`;
