import type { DuckStore } from "./duckdb.ts";
import { BIGINT, DOUBLE, DuckDBTimestampValue, LIST, listValue, TIMESTAMP, VARCHAR } from "./duckdbApi.ts";
import {
  STORED_NUMBERS_SELECT,
  type StoredExplanationNumbers,
  storedNumberNames,
  storedNumbersSelect,
  takeExplanationNumbers,
  type WithExplanationNumberColumns,
} from "./explanationNumbers.ts";
import { pgArrayLiteral } from "./pgArrayLiteral.ts";
import { type PgStore, pgDialectDdl } from "./postgres.ts";
import { newestRevisions, type RevisionRow, revisionsSql } from "./revisionTable.ts";
import { ALERT_DDL } from "./schema.ts";
import { studentFilter } from "./studentFilter.ts";

/**
 * The tables of at-risk alerts (alerts, alert_state, webhook_deliveries) next to the student_mastery
 * they are checked against: on the embedded DuckDB file, or in PostgreSQL when the updater writes the
 * scores there (`mastery serve` with MASTERY_PG_URL, `mastery worker`). serving/alerts.ts holds the
 * rule; this file holds the SQL, one statement to read a whole group and one to write it (PostgreSQL; a
 * transaction on the embedded file).
 */

/** One score row of a checked key, with the key's alert state and its student's newest school/grade. */
export interface AlertCandidate {
  student_key: string;
  topic_id: string;
  mastery_score: number;
  score_source: string;
  /** The stored row's time and explanation: the check evaluates the score as of its own time (read time). */
  as_of: Date;
  explanation: string;
  /**
   * DuckDB only: the numbers of a batch-written row, whose `explanation` is then empty (serving renders the
   * text: serving/storedExplanations.ts explanationText). Absent on rows stored with their text.
   */
  explanation_numbers?: StoredExplanationNumbers;
  below: boolean | null;
  crossings: number | null;
  school_id: string | null;
  grade: number | null;
}

export interface AlertRow {
  alertId: string;
  studentKey: string;
  topicId: string;
  rule: string;
  threshold: number;
  score: number;
  scoreSource: string;
  schoolId: string | null;
  grade: number | null;
  crossing: number;
}

export interface AlertStateRow {
  studentKey: string;
  topicId: string;
  below: boolean;
  crossings: number;
  /** The state the check read (null: no row yet); the write is a compare-and-set against it. */
  prev: { below: boolean; crossings: number } | null;
}

export interface DeliveryRow {
  alertId: string;
  url: string;
  attempt: number;
  status: number | null;
  error: string | null;
}

/**
 * Which score row of a key the check reads (serving/masteryReadStore.ts ScoreRowNeeds has this shape): the
 * served one, the row whose source ranks first (`first` before all, then `order`, then any other source), and
 * its explanation only when its source is one of `explained` (the check scores those from their text).
 */
export interface ServedRowPick {
  readonly order: readonly string[];
  readonly first: string;
  readonly explained: readonly string[];
}

export interface AlertStore {
  readonly kind: "duckdb" | "postgres";
  /** True when calls need no serialization with the server's other store work (a connection pool). */
  readonly concurrent: boolean;
  /**
   * The score rows of these keys with their alert state and context, in ONE statement: every row, or with
   * `pick` at least the row it picks of each key (a store may return that row alone, its explanation ""
   * when its source is not one of pick.explained).
   */
  candidates(
    keys: readonly { studentKey: string; topicId: string }[],
    pick?: ServedRowPick,
  ): Promise<AlertCandidate[]>;
  /**
   * Moves each key's state from `prev` to the new one (compare-and-set: a key another checker moved
   * since the read is left alone, and its alert dropped) and writes the raised alerts of the keys it
   * moved (an id already stored is skipped), in one transaction; returns the ids this call inserted:
   * only those are delivered, so two checkers of the same crossing (two workers) send one webhook.
   */
  record(alerts: readonly AlertRow[], states: readonly AlertStateRow[], at: Date): Promise<Set<string>>;
  logDelivery(d: DeliveryRow, at: Date): Promise<void>;
  /**
   * The keys whose stored score moved at or after `since` (a student_mastery_history row recorded then),
   * at most `limit` of them, newest first: what a restarted server re-checks, since the checks a stopped
   * process had queued after its answers are gone with it (serving/alerts.ts recoverAlertChecks).
   */
  recentlyScored(since: Date, limit: number): Promise<{ studentKey: string; topicId: string }[]>;
}

/**
 * PgAlertStore.recentlyScored's statement ($1 since, $2 limit).
 * student_mastery_history_recorded_at (B-tree, storage/masteryStore.ts) keeps this to the window's rows.
 * The upper bound 'infinity' excludes nothing; it is there for the planner: without statistics on the
 * table (never analyzed, autovacuum off) a one-sided `>=` is guessed to keep a third of the rows and the
 * plan is a scan of the whole history, while a two-sided range is guessed small and takes the index.
 * With statistics both bounds are estimated from them and the index is taken for a small window.
 */
export const PG_RECENTLY_SCORED = `SELECT student_key, topic_id FROM student_mastery_history
  WHERE recorded_at >= $1::timestamp AND recorded_at <= 'infinity'::timestamp
  GROUP BY student_key, topic_id ORDER BY max(recorded_at) DESC, student_key, topic_id LIMIT $2`;

const micros = (d: Date) => new DuckDBTimestampValue(BigInt(d.getTime()) * 1000n);

/** Candidate rows with a batch row's stored numbers moved under explanation_numbers. */
function candidateRows<R extends AlertCandidate & Record<string, unknown>>(rows: R[]): R[] {
  for (const r of rows) {
    const n = takeExplanationNumbers(r as WithExplanationNumberColumns);
    if (n !== null) r.explanation_numbers = n;
  }
  return rows;
}

/**
 * On the embedded file `prev` is not compared: one process holds the file and its checks run one at a
 * time (the server's StoreGate, the worker at concurrency 1 on a file), so nothing moves a state
 * between a check's read and its write.
 */
export class DuckAlertStore implements AlertStore {
  readonly kind = "duckdb";
  readonly concurrent = false;
  private constructor(private readonly store: DuckStore) {}

  static async open(store: DuckStore): Promise<DuckAlertStore> {
    for (const ddl of ALERT_DDL) await store.run(ddl);
    return new DuckAlertStore(store);
  }

  async candidates(keys: readonly { studentKey: string; topicId: string }[]): Promise<AlertCandidate[]> {
    if (keys.length === 0) return [];
    // School and grade come from student_context (storage/studentContext.ts), kept per student by the
    // raw_events writers: not an aggregate over raw_events, which has no index here and was scanned whole on
    // every check. The scores: the base and delta revisions of student_mastery filtered by the group's
    // students (up to MAX_FILTERED_STUDENTS of them), the newest per key picked here
    // (storage/revisionTable.ts); a bigger group reads the view joined with the keys.
    const f = studentFilter(
      "student_key",
      keys.map((k) => k.studentKey),
      1,
    );
    if (f.params.length > 0) {
      // Every row of the students, the keys picked here: a join with the keys' list turned the base's
      // student_key index read into a scan of the whole base (its join filter replaced the index lookup:
      // 400k rows and ~13 ms a check at 10,000 students; docs/benchmarks.md "The embedded POST /events,
      // round 1 (embpost22)"). The LEFT JOINs do not filter the scores' scan, so it stays an index read.
      // The group's topics filter both scans too (a filter on the scan, not a join: the index read stays),
      // and alert_state and student_context are read through the same student filter: joined on the key
      // alone, each was scanned whole on every check (alert_state holds a row per key ever below its threshold).
      const wanted = new Set(keys.map((k) => `${k.studentKey}\u0000${k.topicId}`));
      const topics = `list_contains($${f.params.length + 1}::VARCHAR[], topic_id)`;
      const rows = await this.store.allPrepared<AlertCandidate & RevisionRow & Record<string, unknown>>(
        `SELECT m.student_key, m.topic_id, m.mastery_score, m.score_source, m.as_of, m.explanation,
                s.below, s.crossings, ctx.school_id, ctx.grade, m.revision_seq, ${storedNumberNames("m")}
         FROM (${revisionsSql(
           "student_mastery",
           `student_key, topic_id, mastery_score, score_source, as_of, explanation, ${STORED_NUMBERS_SELECT}`,
           `${f.sql} AND ${topics}`,
         )}) m
         LEFT JOIN (SELECT student_key, topic_id, below, crossings FROM alert_state WHERE ${f.sql} AND ${topics}) s
           USING (student_key, topic_id)
         LEFT JOIN (SELECT student_key, school_id, grade FROM student_context WHERE ${f.sql}) ctx USING (student_key)`,
        [...f.params, listValue([...new Set(keys.map((k) => k.topicId))])],
        [...f.params.map(() => VARCHAR), LIST(VARCHAR)],
      );
      return candidateRows(
        newestRevisions(
          "student_mastery",
          rows.filter((r) => wanted.has(`${r.student_key}\u0000${r.topic_id}`)),
        ),
      );
    }
    const rows = await this.store.all<AlertCandidate & Record<string, unknown>>(
      `WITH k AS (SELECT DISTINCT unnest($1::VARCHAR[]) AS student_key, unnest($2::VARCHAR[]) AS topic_id),
       ctx AS (
         SELECT student_key, school_id, grade FROM student_context
         WHERE student_key IN (SELECT DISTINCT student_key FROM k))
       SELECT m.student_key, m.topic_id, m.mastery_score, m.score_source, m.as_of, m.explanation,
              s.below, s.crossings, ctx.school_id, ctx.grade, ${storedNumbersSelect("m")}
       FROM student_mastery m JOIN k USING (student_key, topic_id)
       LEFT JOIN alert_state s USING (student_key, topic_id)
       LEFT JOIN ctx USING (student_key)`,
      [listValue(keys.map((k) => k.studentKey)), listValue(keys.map((k) => k.topicId))],
    );
    return candidateRows(rows);
  }

  async record(
    alerts: readonly AlertRow[],
    states: readonly AlertStateRow[],
    at: Date,
  ): Promise<Set<string>> {
    const store = this.store;
    const writeStates = async () => {
      if (states.length === 0) return;
      // Every list cast to its column's type in SQL (an untyped list takes its first value's type).
      await store.runPrepared(
        `INSERT OR REPLACE INTO alert_state
         SELECT unnest($1::VARCHAR[]), unnest($2::VARCHAR[]), unnest($3::BOOLEAN[]),
                unnest($4::BIGINT[])::INTEGER, $5::TIMESTAMP`,
        [
          listValue(states.map((st) => st.studentKey)),
          listValue(states.map((st) => st.topicId)),
          listValue(states.map((st) => st.below)),
          listValue(states.map((st) => BigInt(st.crossings))),
          micros(at),
        ],
      );
    };
    if (alerts.length === 0) {
      await writeStates();
      return new Set();
    }
    return store.transaction(async () => {
      // One statement for the alerts, as typed column lists (no staging table to create, fill and drop).
      const inserted = await store.allPrepared<{ alert_id: string }>(
        `INSERT OR IGNORE INTO alerts
         SELECT unnest($1::VARCHAR[]), unnest($2::VARCHAR[]), unnest($3::VARCHAR[]), unnest($4::VARCHAR[]),
                unnest($5::DOUBLE[]), unnest($6::DOUBLE[]), unnest($7::VARCHAR[]), unnest($8::VARCHAR[]),
                unnest($9::BIGINT[])::INTEGER, unnest($10::BIGINT[])::INTEGER, $11::TIMESTAMP
         RETURNING alert_id`,
        [
          listValue(alerts.map((a) => a.alertId)),
          listValue(alerts.map((a) => a.studentKey)),
          listValue(alerts.map((a) => a.topicId)),
          listValue(alerts.map((a) => a.rule)),
          listValue(alerts.map((a) => a.threshold)),
          listValue(alerts.map((a) => a.score)),
          listValue(alerts.map((a) => a.scoreSource)),
          listValue(alerts.map((a) => a.schoolId)),
          listValue(alerts.map((a) => (a.grade === null ? null : BigInt(a.grade)))),
          listValue(alerts.map((a) => BigInt(a.crossing))),
          micros(at),
        ],
        [
          LIST(VARCHAR),
          LIST(VARCHAR),
          LIST(VARCHAR),
          LIST(VARCHAR),
          LIST(DOUBLE),
          LIST(DOUBLE),
          LIST(VARCHAR),
          LIST(VARCHAR),
          LIST(BIGINT),
          LIST(BIGINT),
          TIMESTAMP,
        ],
      );
      await writeStates();
      return new Set(inserted.map((r) => r.alert_id));
    });
  }

  async recentlyScored(since: Date, limit: number): Promise<{ studentKey: string; topicId: string }[]> {
    // recorded_at is appended in time order, so DuckDB's per-row-group min/max skip the older history.
    const rows = await this.store.all<{ student_key: string; topic_id: string }>(
      `SELECT student_key, topic_id FROM student_mastery_history WHERE recorded_at >= $1
       GROUP BY student_key, topic_id ORDER BY max(recorded_at) DESC, student_key, topic_id LIMIT $2`,
      [micros(since), BigInt(limit)],
    );
    return rows.map((r) => ({ studentKey: r.student_key, topicId: r.topic_id }));
  }

  async logDelivery(d: DeliveryRow, at: Date): Promise<void> {
    await this.store.run("INSERT INTO webhook_deliveries VALUES ($1, $2, $3, $4, $5, $6)", [
      d.alertId,
      d.url,
      d.attempt,
      d.status,
      d.error,
      micros(at),
    ]);
  }
}

const pgTs = (d: Date) => d.toISOString().replace("T", " ").replace("Z", "");

/**
 * PgAlertStore.candidates' keys ($1 students, $2 topics, in pairs) and their students' newest school and
 * grade; raw_events_key_ts (student_key, topic_id, ts) serves the per-student context lookup.
 */
const PG_CANDIDATE_KEYS = `WITH k AS (SELECT DISTINCT * FROM unnest($1::text[], $2::text[]) AS k(student_key, topic_id)),
       ctx AS (
         SELECT s.student_key,
                (SELECT r.school_id FROM raw_events r WHERE r.student_key = s.student_key
                   AND r.school_id IS NOT NULL ORDER BY r.ts DESC LIMIT 1) AS school_id,
                (SELECT r.grade FROM raw_events r WHERE r.student_key = s.student_key
                   AND r.grade IS NOT NULL ORDER BY r.ts DESC LIMIT 1) AS grade
         FROM (SELECT DISTINCT student_key FROM k) s)`;

/** The candidates' columns after the score row's own, and the joins that give them. */
const PG_CANDIDATE_STATE = `st.below, st.crossings, ctx.school_id, ctx.grade
       FROM student_mastery m JOIN k USING (student_key, topic_id)
       LEFT JOIN alert_state st USING (student_key, topic_id)
       LEFT JOIN ctx USING (student_key)`;

/**
 * The picked row of each key (ServedRowPick): $3 the sources by rank (pick.first, then pick.order; another
 * source ranks after them all, as serving/masteryReadStore.ts sourceRank), $4 the sources whose explanation is
 * read (any other row's comes as ""). Ties of unranked sources go to the first source by name.
 */
const PG_PICKED_CANDIDATES = `${PG_CANDIDATE_KEYS}
       SELECT DISTINCT ON (m.student_key, m.topic_id) m.student_key, m.topic_id, m.mastery_score, m.score_source,
              m.as_of, CASE WHEN m.score_source = ANY($4::text[]) THEN m.explanation ELSE '' END AS explanation,
              ${PG_CANDIDATE_STATE}
       ORDER BY m.student_key, m.topic_id, array_position($3::text[], m.score_source) NULLS LAST, m.score_source`;

/**
 * PgAlertStore.record in one statement: $1-$6 the known keys' new and read states in
 * key order (student, topic, below, crossings, prev below, prev crossings), $7 the time, $8-$11 the first states in
 * key order, $12-$21 the alerts' columns. Its data-modifying CTEs share one snapshot and commit together:
 * - `locked` takes the known keys' row locks in key order (LockRows above the Sort), so two checkers of
 *   overlapping groups queue on their first common key instead of each holding one the other waits for;
 * - `updated` moves only a locked row still in the state this check read (compare-and-set): a row another
 *   checker moved meanwhile is re-read at its newest version (READ COMMITTED's recheck) and fails the compare;
 * - `inserted` adds the first states (a key another checker inserted first is left alone); its one-time filter
 *   on `updated` runs it after the locks and the update, so its insert waits, if ever, after them, in the same
 *   order as the first-check statement's (key order) and never before a lock;
 * - the alerts are stored for the keys this statement moved only, an id stored before skipped.
 */
const PG_RECORD_ALERTS = `WITH k AS (
         SELECT * FROM unnest($1::text[], $2::text[], $3::boolean[], $4::int[], $5::boolean[], $6::int[])
           AS k(student_key, topic_id, below, crossings, prev_below, prev_crossings)),
       locked AS MATERIALIZED (
         SELECT a.student_key, a.topic_id FROM alert_state a JOIN k USING (student_key, topic_id)
         ORDER BY a.student_key, a.topic_id FOR UPDATE OF a),
       updated AS (
         UPDATE alert_state a SET below = k.below, crossings = k.crossings, updated_at = $7::timestamp
         FROM locked l JOIN k USING (student_key, topic_id)
         WHERE a.student_key = l.student_key AND a.topic_id = l.topic_id
           AND a.below = k.prev_below AND a.crossings = k.prev_crossings
         RETURNING a.student_key, a.topic_id),
       inserted AS (
         INSERT INTO alert_state
         SELECT s.*, $7::timestamp FROM unnest($8::text[], $9::text[], $10::boolean[], $11::int[]) AS s
         WHERE (SELECT count(*) FROM updated) >= 0
         ON CONFLICT (student_key, topic_id) DO NOTHING RETURNING student_key, topic_id)
     INSERT INTO alerts
     SELECT a.*, $7::timestamp FROM unnest($12::text[], $13::text[], $14::text[], $15::text[], $16::float8[],
         $17::float8[], $18::text[], $19::text[], $20::int[], $21::int[])
       AS a(alert_id, student_key, topic_id, rule, threshold, score, score_source, school_id, grade, crossing)
     WHERE (a.student_key, a.topic_id) IN (SELECT student_key, topic_id FROM updated
                                           UNION ALL SELECT student_key, topic_id FROM inserted)
     ON CONFLICT (alert_id) DO NOTHING RETURNING alert_id`;

export class PgAlertStore implements AlertStore {
  readonly kind = "postgres";
  readonly concurrent = true;
  private constructor(private readonly pg: PgStore) {}

  /** Creates the alert tables in the store's schema (idempotent). */
  static async open(pg: PgStore): Promise<PgAlertStore> {
    for (const ddl of ALERT_DDL) await pg.run(pgDialectDdl(ddl));
    await pg.run("CREATE INDEX IF NOT EXISTS alerts_by_key ON alerts (student_key, topic_id)");
    return new PgAlertStore(pg);
  }

  async candidates(
    keys: readonly { studentKey: string; topicId: string }[],
    pick?: ServedRowPick,
  ): Promise<AlertCandidate[]> {
    if (keys.length === 0) return [];
    const students = pgArrayLiteral(keys.map((k) => k.studentKey));
    const topics = pgArrayLiteral(keys.map((k) => k.topicId));
    // The picked row of each key alone, and its text only where the check reads it: a POST's keys have a
    // bkt, an elo and a rule_based row each, and the bkt one is served, so two of three rows and every
    // explanation (~1.2 kB a key) were read and parsed for nothing (docs/benchmarks.md "The app's CPU per
    // request, round 8 (req29)").
    // Both forms are sent unnamed (planned with each batch's keys): a named statement's generic plan, made while
    // student_mastery was small, joins it by a sequential scan that grows with the table (round 9, req30).
    if (pick !== undefined)
      return this.pg.allArrays<AlertCandidate & Record<string, unknown>>(PG_PICKED_CANDIDATES, [
        students,
        topics,
        pgArrayLiteral([pick.first, ...pick.order]),
        pgArrayLiteral([...pick.explained]),
      ]);
    return this.pg.allArrays<AlertCandidate & Record<string, unknown>>(
      `${PG_CANDIDATE_KEYS}
       SELECT m.student_key, m.topic_id, m.mastery_score, m.score_source, m.as_of, m.explanation,
              ${PG_CANDIDATE_STATE}`,
      [students, topics],
    );
  }

  async record(
    alerts: readonly AlertRow[],
    states: readonly AlertStateRow[],
    at: Date,
  ): Promise<Set<string>> {
    if (alerts.length === 0 && states.length === 0) return new Set();
    const ts = pgTs(at);
    const byKey = (a: AlertStateRow, b: AlertStateRow) =>
      a.studentKey < b.studentKey ? -1 : a.studentKey > b.studentKey ? 1 : a.topicId < b.topicId ? -1 : 1;
    const fresh = states.filter((st) => st.prev === null).sort(byKey);
    const known = states.filter((st) => st.prev !== null).sort(byKey);
    const alertArrays = (list: readonly AlertRow[]) => [
      list.map((a) => a.alertId),
      list.map((a) => a.studentKey),
      list.map((a) => a.topicId),
      list.map((a) => a.rule),
      list.map((a) => a.threshold),
      list.map((a) => a.score),
      list.map((a) => a.scoreSource),
      list.map((a) => a.schoolId),
      list.map((a) => a.grade),
      list.map((a) => a.crossing),
    ];
    // One statement, no explicit transaction, for a first check (a POST's new keys) and a later one alike: no
    // connection sits idle in transaction between round trips while this process's event loop is busy
    // (docs/benchmarks.md "The pool's waits at 1,000 req/s (pool33)").
    const inserted = await this.pg.allArrays<{ alert_id: string }>(PG_RECORD_ALERTS, [
      known.map((st) => st.studentKey),
      known.map((st) => st.topicId),
      known.map((st) => st.below),
      known.map((st) => st.crossings),
      known.map((st) => st.prev!.below),
      known.map((st) => st.prev!.crossings),
      ts,
      fresh.map((st) => st.studentKey),
      fresh.map((st) => st.topicId),
      fresh.map((st) => st.below),
      fresh.map((st) => st.crossings),
      ...alertArrays(alerts),
    ]);
    return new Set(inserted.map((r) => r.alert_id));
  }

  async recentlyScored(since: Date, limit: number): Promise<{ studentKey: string; topicId: string }[]> {
    const rows = await this.pg.all<{ student_key: string; topic_id: string }>(PG_RECENTLY_SCORED, [
      pgTs(since),
      limit,
    ]);
    return rows.map((r) => ({ studentKey: r.student_key, topicId: r.topic_id }));
  }

  async logDelivery(d: DeliveryRow, at: Date): Promise<void> {
    await this.pg.run("INSERT INTO webhook_deliveries VALUES ($1, $2, $3, $4, $5, $6::timestamp)", [
      d.alertId,
      d.url,
      d.attempt,
      d.status,
      d.error,
      pgTs(at),
    ]);
  }
}
