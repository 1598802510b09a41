import type { DuckDBAppender } from "@duckdb/node-api";
import type { DuckStore } from "./duckdb.ts";
import { BIGINT, BOOLEAN, DOUBLE, DuckDBTimestampValue, LIST, listValue, VARCHAR } from "./duckdbApi.ts";
import { pgArrayLiteral } from "./pgArrayLiteral.ts";
import { type PgStore, pgDialectDdl } from "./postgres.ts";
import { CORE_DDL, STREAM_DDL } from "./schema.ts";
import { newestContextOf, upsertNewestSql } from "./studentContext.ts";

/**
 * The raw zone as seen by the incremental update path: append (event, topic) rows with first-wins
 * de-duplication by event_id (as features/ingest.ts does), read back the events of given keys in
 * replay order, and write dead letters. Two implementations over the same raw_events table: the
 * embedded DuckDB file and PostgreSQL (shared by several worker processes).
 */

/** One raw_events row (pseudonymized, fanned out per topic). Times are epoch microseconds (UTC). */
export interface RawEventRow {
  event_id: string;
  type: string;
  student_key: string;
  topic_id: string;
  ts_us: number;
  school_id: string | null;
  class_id: string | null;
  grade: number | null;
  question_id: string | null;
  is_correct: boolean | null;
  time_spent_sec: number | null;
  attempt_number: number | null;
  hints_used: number | null;
  assignment_id: string | null;
  score_pct: number | null;
  video_id: string | null;
  watch_pct: number | null;
  watch_duration_sec: number | null;
  rewind_count: number | null;
  attempts: number | null;
  correct_count: number | null;
  help_requests: number | null;
  resolved_count: number | null;
  source: string | null;
  ingested_at_us: number;
}

/** What the learner-state fold reads of a raw row. */
export type LearnerRow = {
  event_id: string;
  type: string;
  student_key: string;
  topic_id: string;
  ts_us: number;
  is_correct: boolean | null;
  question_id: string | null;
  /** When this copy was stored: the fold's dedupe keeps the first ingested copy of an event_id. */
  ingested_at_us: number;
  /** Practice attempts / correct and the assignment score: the latent filter's evidence (models/latentState.ts). */
  attempts: number | null;
  correct_count: number | null;
  score_pct: number | null;
  /** Quiz hints and a video's watch_pct: the rule scorer's evidence (serving/ruleStream.ts). */
  hints_used: number | null;
  watch_pct: number | null;
};

export interface DeadLetterRow {
  source: string;
  event_id: string | null;
  type: string | null;
  field: string;
  reason: string;
  payload: string;
  rejected_at_us: number;
}

export interface StudentTopic {
  studentKey: string;
  topicId: string;
}

/** What recordWithNewKeys returns. */
export interface RecordedRows {
  /** record's answer: the stored version of every given event_id's rows. */
  rows: LearnerRow[];
  /** Keys of the given rows that held no stored event before the append. */
  newKeys: StudentTopic[];
}

export interface RawEventStore {
  /**
   * Appends the rows of every event_id not stored yet (the first stored version of an event wins)
   * and returns the stored version of every given event_id's rows: what the fold must use.
   */
  record(rows: readonly RawEventRow[]): Promise<LearnerRow[]>;
  /**
   * Optional: `record`, plus the keys of `rows` of which no event was stored before this append (read in
   * the append's own snapshot, so in the same round trip). The updater rebuilds such a key from the
   * batch's own rows instead of reading its stored events back (serving/updater.ts).
   */
  recordWithNewKeys?(rows: readonly RawEventRow[]): Promise<RecordedRows>;
  /**
   * All stored events of `keys`, ordered by (student_key, topic_id, ts, event_id). A key may hold
   * more than one copy of an event_id only in stores filled outside record(); the fold
   * (models/learnerState.ts replayEvents) then keeps the first ingested copy.
   */
  keyEvents(keys: readonly StudentTopic[]): Promise<LearnerRow[]>;
  /** Every stored event, in the same order (the recompute reads this). */
  allEvents(): Promise<LearnerRow[]>;
  deadLetter(rows: readonly DeadLetterRow[]): Promise<void>;
}

type ColumnKind = "text" | "int" | "double" | "bool" | "ts";

/** raw_events columns with their kinds, in table order; `ts` and `ingested_at` come from *_us. */
const RAW_COLUMNS: readonly (readonly [keyof RawEventRow, string, ColumnKind])[] = [
  ["event_id", "event_id", "text"],
  ["type", "type", "text"],
  ["student_key", "student_key", "text"],
  ["topic_id", "topic_id", "text"],
  ["ts_us", "ts", "ts"],
  ["school_id", "school_id", "text"],
  ["class_id", "class_id", "text"],
  ["grade", "grade", "int"],
  ["question_id", "question_id", "text"],
  ["is_correct", "is_correct", "bool"],
  ["time_spent_sec", "time_spent_sec", "double"],
  ["attempt_number", "attempt_number", "int"],
  ["hints_used", "hints_used", "int"],
  ["assignment_id", "assignment_id", "text"],
  ["score_pct", "score_pct", "double"],
  ["video_id", "video_id", "text"],
  ["watch_pct", "watch_pct", "double"],
  ["watch_duration_sec", "watch_duration_sec", "double"],
  ["rewind_count", "rewind_count", "int"],
  ["attempts", "attempts", "int"],
  ["correct_count", "correct_count", "int"],
  ["help_requests", "help_requests", "int"],
  ["resolved_count", "resolved_count", "int"],
  ["source", "source", "text"],
  ["ingested_at_us", "ingested_at", "ts"],
];

const COLUMN_LIST = RAW_COLUMNS.map(([, c]) => c).join(", ");

// raw_events rows as one typed list per column (DuckRawEventStore.record): timestamps as epoch
// microseconds, integer columns as DOUBLE (DuckDB casts them and refuses a fraction or overflow with
// a Conversion Error, as it refuses a NULL in a NOT NULL column with a Constraint Error).
const LIST_SQL_TYPE: Record<ColumnKind, string> = {
  text: "VARCHAR",
  ts: "BIGINT",
  int: "DOUBLE",
  double: "DOUBLE",
  bool: "BOOLEAN",
};
const RAW_LIST_SELECT = `SELECT ${RAW_COLUMNS.map(([, , kind], i) => {
  const u = `unnest($${i + 1}::${LIST_SQL_TYPE[kind]}[])`;
  return kind === "ts" ? `make_timestamp(${u})` : kind === "int" ? `${u}::INTEGER` : u;
}).join(", ")}`;
const RAW_LIST_TYPES = RAW_COLUMNS.map(([, , kind]) =>
  LIST(kind === "text" ? VARCHAR : kind === "ts" ? BIGINT : kind === "bool" ? BOOLEAN : DOUBLE),
);

let lastMicros = Number.NaN;
let lastSqlTimestamp = "";

/**
 * Epoch microseconds -> "YYYY-MM-DD HH:MM:SS.ffffff" (UTC), exact (Date alone keeps milliseconds).
 */
export function microsToSqlTimestamp(us: number): string {
  // A batch repeats instants (every row of a request shares its ingest time, a group its scoring time).
  if (us === lastMicros) return lastSqlTimestamp;
  const ms = Math.floor(us / 1000);
  const rest = us - ms * 1000;
  const iso = new Date(ms).toISOString(); // 2026-01-05T10:00:00.123Z
  const text = `${iso.slice(0, 10)} ${iso.slice(11, 23)}${String(rest).padStart(3, "0")}`;
  lastMicros = us;
  lastSqlTimestamp = text;
  return text;
}

/**
 * Only the first row set of each event_id in `rows` (a message delivered twice in one batch): the
 * first ingested, then the earliest ts, then the first given (models/learnerState.ts
 * firstIngestedCopies, the fold's dedupe rule).
 */
function firstPerEvent(rows: readonly RawEventRow[]): RawEventRow[] {
  const owner = new Map<string, RawEventRow>();
  const out: RawEventRow[] = [];
  const ordered = rows.slice().sort((a, b) => a.ingested_at_us - b.ingested_at_us || a.ts_us - b.ts_us);
  for (const r of ordered) {
    const first = owner.get(r.event_id);
    if (first === undefined) owner.set(r.event_id, r);
    // Rows of one event share its student and ingest time; anything else is a second event with a reused id.
    else if (
      first.student_key !== r.student_key ||
      first.ingested_at_us !== r.ingested_at_us ||
      out.some((o) => o.event_id === r.event_id && o.topic_id === r.topic_id)
    )
      continue;
    out.push(r);
  }
  return out;
}

// ------------------------------------------------------------------------------------------------
// PostgreSQL

const PG_TYPES: Record<ColumnKind, string> = {
  text: "text[]",
  int: "int[]",
  double: "float8[]",
  bool: "boolean[]",
  ts: "timestamp[]",
};

/**
 * PgRawEventStore.recordWithNewKeys' statement: the append, and which of the batch's keys held no row before
 * it. Every part of a statement reads the same snapshot, so `fresh` sees raw_events as it was before this
 * INSERT (rows of transactions committed meanwhile are not seen either; their writers fold them, under
 * compare-and-set). Sent unnamed, so planned with each batch's parameters and the tables' current sizes: as a
 * named statement, PostgreSQL's plan cache (plan_cache_mode auto) may keep a generic plan made while raw_events
 * was small, a hash anti-join over a sequential scan of the whole table, whose cost then grows with the table
 * (docs/benchmarks.md "The app's CPU per request, round 9 (req30)"; test/storage/postStatementsGrownTables.int.test.ts).
 * Its two lookups (is the event stored? did the key hold a row?) are LATERAL subqueries with LIMIT 1, which the
 * planner cannot turn into a join: each is an index probe per event or key. As NOT EXISTS anti-joins, a group's
 * key lookup on a never-analyzed raw_events of a few thousand rows was planned as a hash anti-join over a
 * sequential scan of the table, ~4x the statement's CPU (round 11, post32; test/storage/rawAppendGroupScans.int.test.ts).
 */
const PG_RECORD_SQL = `WITH s AS (SELECT * FROM unnest(${RAW_COLUMNS.map(([, , kind], i) => `$${i + 1}::${PG_TYPES[kind]}`).join(", ")}) AS s(${COLUMN_LIST})),
       ins AS (
         INSERT INTO raw_events (${COLUMN_LIST})
         SELECT s.* FROM s
         LEFT JOIN LATERAL (SELECT true AS stored FROM raw_events r WHERE r.event_id = s.event_id LIMIT 1) e ON true
         WHERE e.stored IS NULL
         ON CONFLICT (event_id, topic_id) DO NOTHING
         RETURNING event_id, topic_id),
       fresh AS (
         SELECT k.student_key, k.topic_id FROM (SELECT DISTINCT student_key, topic_id FROM s) k
         LEFT JOIN LATERAL (
           SELECT true AS stored FROM raw_events r
           WHERE r.student_key = k.student_key AND r.topic_id = k.topic_id LIMIT 1) e ON true
         WHERE e.stored IS NULL)
       SELECT true AS inserted, event_id AS a, topic_id FROM ins
       UNION ALL
       SELECT false, student_key, topic_id FROM fresh`;

const PG_LEARNER_COLUMNS = `event_id, type, student_key, topic_id,
  (extract(epoch FROM ts) * 1000000)::float8 AS ts_us, is_correct, question_id,
  (extract(epoch FROM ingested_at) * 1000000)::float8 AS ingested_at_us, attempts, correct_count, score_pct,
  hints_used, watch_pct`;

export class PgRawEventStore implements RawEventStore {
  private constructor(private readonly pg: PgStore) {}

  /**
   * Creates the core and stream tables if missing, plus the two indexes the update path needs: a
   * unique (event_id, topic_id) so concurrent workers cannot store one event twice, and
   * (student_key, topic_id, ts) for replaying a key.
   */
  static async open(pg: PgStore): Promise<PgRawEventStore> {
    for (const ddl of [...CORE_DDL, ...STREAM_DDL]) await pg.run(pgDialectDdl(ddl));
    await pg.run(
      "CREATE UNIQUE INDEX IF NOT EXISTS raw_events_event_topic ON raw_events (event_id, topic_id)",
    );
    await pg.run("CREATE INDEX IF NOT EXISTS raw_events_key_ts ON raw_events (student_key, topic_id, ts)");
    return new PgRawEventStore(pg);
  }

  async record(rows: readonly RawEventRow[]): Promise<LearnerRow[]> {
    return (await this.recordWithNewKeys(rows)).rows;
  }

  async recordWithNewKeys(rows: readonly RawEventRow[]): Promise<RecordedRows> {
    if (rows.length === 0) return { rows: [], newKeys: [] };
    const batch = firstPerEvent(rows);
    // Each column as its array literal (storage/pgArrayLiteral.ts: node-postgres' own text, built cheaper).
    const arrays = RAW_COLUMNS.map(([field, , kind]) =>
      pgArrayLiteral(
        batch.map((r) => {
          const v = r[field];
          return kind === "ts" ? microsToSqlTimestamp(v as number) : (v as string | number | boolean | null);
        }),
      ),
    );
    // One statement (PG_RECORD_SQL): the append, and which of the batch's keys held no row before it.
    const answer = await this.pg.allArrays<{ inserted: boolean; a: string; topic_id: string }>(
      PG_RECORD_SQL,
      arrays,
    );
    const done = new Set<string>();
    const newKeys: StudentTopic[] = [];
    for (const r of answer)
      if (r.inserted) done.add(`${r.a}\u0000${r.topic_id}`);
      else newKeys.push({ studentKey: r.a, topicId: r.topic_id });
    const out: LearnerRow[] = [];
    const missing = new Set<string>();
    for (const r of batch) {
      if (done.has(`${r.event_id}\u0000${r.topic_id}`)) out.push(learnerRow(r));
      else missing.add(r.event_id);
    }
    if (missing.size > 0) {
      // Already stored (a redelivery, or another worker got there first): the stored version counts.
      const stored = await this.pg.allArrays<LearnerRow>(
        `SELECT ${PG_LEARNER_COLUMNS} FROM raw_events WHERE event_id = ANY($1::text[])`,
        [[...missing]],
      );
      out.push(...stored);
    }
    return { rows: out, newKeys };
  }

  async keyEvents(keys: readonly StudentTopic[]): Promise<LearnerRow[]> {
    if (keys.length === 0) return [];
    return this.pg.allArrays<LearnerRow>(
      `SELECT ${PG_LEARNER_COLUMNS}
       FROM raw_events
       WHERE (student_key, topic_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))
       ORDER BY student_key, topic_id, ts, event_id, ingested_at`,
      [keys.map((k) => k.studentKey), keys.map((k) => k.topicId)],
    );
  }

  async allEvents(): Promise<LearnerRow[]> {
    // The unique (event_id, topic_id) index means no key holds an event twice.
    return this.pg.all<LearnerRow>(
      `SELECT ${PG_LEARNER_COLUMNS} FROM raw_events ORDER BY student_key, topic_id, ts, event_id`,
    );
  }

  async deadLetter(rows: readonly DeadLetterRow[]): Promise<void> {
    if (rows.length === 0) return;
    await this.pg.allArrays(
      `INSERT INTO dead_letter (source, row_number, event_id, type, field, reason, payload, rejected_at)
       SELECT s.source, NULL, s.event_id, s.type, s.field, s.reason, s.payload, s.rejected_at
       FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::timestamp[])
         AS s(source, event_id, type, field, reason, payload, rejected_at)`,
      [
        rows.map((r) => r.source),
        rows.map((r) => r.event_id),
        rows.map((r) => r.type),
        rows.map((r) => r.field),
        rows.map((r) => r.reason),
        rows.map((r) => r.payload),
        rows.map((r) => microsToSqlTimestamp(r.rejected_at_us)),
      ],
    );
  }
}

// ------------------------------------------------------------------------------------------------
// DuckDB (embedded; one process holds the file, so no concurrent writers)

const DUCK_LEARNER_COLUMNS =
  "event_id, type, student_key, topic_id, epoch_us(ts)::DOUBLE AS ts_us, is_correct, question_id, epoch_us(ingested_at)::DOUBLE AS ingested_at_us, attempts, correct_count, score_pct, hints_used, watch_pct";

// models/learnerState.ts firstIngestedCopies in SQL (fewer rows to ship): a key's copies of one
// event count once, the first ingested (then the earlier ts). The fold applies the same rule again.
const DUCK_DEDUPED = `QUALIFY row_number() OVER (PARTITION BY student_key, topic_id, event_id ORDER BY ingested_at, ts) = 1`;

const micros = (us: number): DuckDBTimestampValue => new DuckDBTimestampValue(BigInt(Math.round(us)));

/** Appends one raw row (columns in raw_events order) to a DuckDB appender. */
function appendRow(ap: DuckDBAppender, r: RawEventRow): void {
  for (const [field, , kind] of RAW_COLUMNS) {
    const v = r[field];
    if (v === null) ap.appendNull();
    else if (kind === "ts") ap.appendTimestamp(micros(v as number));
    else if (kind === "text") ap.appendVarchar(v as string);
    else if (kind === "int") ap.appendInteger(v as number);
    else if (kind === "double") ap.appendDouble(v as number);
    else ap.appendBoolean(v as boolean);
  }
  ap.endRow();
}

const CONTEXT_SQL = upsertNewestSql(
  `SELECT unnest($1::VARCHAR[]), unnest($2::VARCHAR[]), make_timestamp(unnest($3::BIGINT[])),
          unnest($4::BIGINT[])::INTEGER, make_timestamp(unnest($5::BIGINT[]))`,
);
const us = (v: number | null) => (v === null ? null : BigInt(Math.round(v)));

/**
 * Folds the school / grade of rows just stored into student_context (storage/studentContext.ts), reduced
 * to one row per student here first; rows carrying neither cannot change it, so a batch without any costs
 * no statement.
 */
async function upsertContext(duck: DuckStore, rows: readonly RawEventRow[]): Promise<void> {
  const ctx = newestContextOf(rows);
  if (ctx.length === 0) return;
  await duck.runPrepared(
    CONTEXT_SQL,
    [
      listValue(ctx.map((c) => c.studentKey)),
      listValue(ctx.map((c) => c.schoolId)),
      listValue(ctx.map((c) => us(c.schoolUs))),
      listValue(ctx.map((c) => (c.grade === null ? null : BigInt(c.grade)))),
      listValue(ctx.map((c) => us(c.gradeUs))),
    ],
    [LIST(VARCHAR), LIST(VARCHAR), LIST(BIGINT), LIST(BIGINT), LIST(BIGINT)],
  );
}

export class DuckRawEventStore implements RawEventStore {
  /** The staging table may hold rows (an append started and its clean-up has not succeeded). */
  private stageDirty = false;
  /** Appends run one at a time (append). */
  private appending: Promise<unknown> = Promise.resolve();
  private constructor(private readonly duck: DuckStore) {}

  static async open(duck: DuckStore): Promise<DuckRawEventStore> {
    for (const ddl of STREAM_DDL) await duck.run(ddl);
    return new DuckRawEventStore(duck);
  }

  /**
   * Two statements: the stored rows of the batch's event ids (a filter on the ids), then one INSERT of
   * the events not stored yet, the rows bound as typed column lists (the first stored version of an
   * event_id wins). The caller serializes writes to this file (the updater's queue, the server's
   * StoreGate), so no row lands between the two; inside a transaction (DuckStore.transaction) the
   * insert is part of it. A value the table refuses fails the INSERT as a whole (a DuckDB Constraint
   * or Conversion Error, storeErrorKind "data").
   */
  async record(rows: readonly RawEventRow[]): Promise<LearnerRow[]> {
    if (rows.length === 0) return [];
    const batch = firstPerEvent(rows);
    const ids = [...new Set(batch.map((r) => r.event_id))];
    const stored = await this.duck.allPrepared<LearnerRow>(
      `SELECT ${DUCK_LEARNER_COLUMNS} FROM raw_events WHERE event_id IN (SELECT unnest($1::VARCHAR[]))
       ${DUCK_DEDUPED}`,
      [listValue(ids)],
    );
    const seen = new Set(stored.map((r) => r.event_id));
    const fresh = seen.size === 0 ? batch : batch.filter((r) => !seen.has(r.event_id));
    if (fresh.length > 0)
      await this.duck.runPrepared(
        `INSERT INTO raw_events (${COLUMN_LIST}) ${RAW_LIST_SELECT}`,
        RAW_COLUMNS.map(([field, , kind]) =>
          listValue(
            fresh.map((r) => {
              const v = r[field];
              return v === null ? null : kind === "ts" ? BigInt(Math.round(v as number)) : v;
            }),
          ),
        ),
        RAW_LIST_TYPES,
      );
    await upsertContext(this.duck, fresh);
    const out = fresh.map(learnerRow);
    out.push(...stored);
    return out;
  }

  /**
   * record() without its answer, for a copy of raw rows whose record is elsewhere
   * (serving/rawMirror.ts): appends the rows of every event_id not stored yet (the first stored
   * version wins, as in record()): the batch's ids already stored, then an appender straight into
   * raw_events. The caller serializes writes to this file (the server's StoreGate), so no row lands
   * between the two.
   */
  async append(rows: readonly RawEventRow[]): Promise<void> {
    if (rows.length === 0) return;
    // One append at a time (they share the staging table, and a second copy of an id checked before the
    // first one is stored would pass the check).
    const run = this.appending.then(() => this.appendOnce(rows));
    this.appending = run.catch(() => undefined);
    await run;
  }

  private async appendOnce(rows: readonly RawEventRow[]): Promise<void> {
    const batch = firstPerEvent(rows);
    const ids = [...new Set(batch.map((r) => r.event_id))];
    const stored = await this.duck.all<{ event_id: string }>(
      "SELECT DISTINCT event_id FROM raw_events WHERE event_id IN (SELECT unnest($1::VARCHAR[]))",
      [listValue(ids)],
    );
    const seen = new Set(stored.map((r) => r.event_id));
    const fresh = seen.size === 0 ? batch : batch.filter((r) => !seen.has(r.event_id));
    if (fresh.length === 0) return;
    await this.appendFresh(fresh);
    await upsertContext(this.duck, fresh);
  }

  /**
   * The appender fills an in-memory temp table (no WAL, nothing to sync), and the rows reach raw_events in
   * one asynchronous INSERT ... SELECT. The appender's flush is synchronous: flushed into raw_events itself,
   * its commit (the WAL's fsync, and the automatic checkpoint when the WAL is full) ran on the event loop,
   * which stopped a server answering for 100-800 ms at a time under disk load (docs/benchmarks.md
   * "Rerun 2026-12-04 21:23-22:03 UTC" under Availability). The INSERT's commit runs on DuckDB's side of the binding, off the event loop.
   */
  private async appendFresh(fresh: readonly RawEventRow[]): Promise<void> {
    // Every time: a staging table created inside a transaction that rolled back is gone again.
    await this.duck.run(
      "CREATE TEMP TABLE IF NOT EXISTS raw_append_stage AS SELECT * FROM raw_events LIMIT 0",
    );
    // Rows left by a failed append (its clean-up failed too) must not reach raw_events with these.
    if (this.stageDirty) await this.duck.run("DELETE FROM temp.raw_append_stage");
    this.stageDirty = true;
    try {
      await this.duck.appendRows(
        "raw_append_stage",
        (ap) => {
          for (const r of fresh) appendRow(ap, r);
        },
        { schema: "main", catalog: "temp" },
      );
      await this.duck.run("INSERT INTO raw_events SELECT * FROM temp.raw_append_stage");
    } finally {
      // Inside a failed transaction this fails too (and the rollback empties the stage); the next append
      // empties it first then.
      await this.duck.run("DELETE FROM temp.raw_append_stage").then(
        () => {
          this.stageDirty = false;
        },
        () => undefined,
      );
    }
  }

  async keyEvents(keys: readonly StudentTopic[]): Promise<LearnerRow[]> {
    if (keys.length === 0) return [];
    return this.duck.allPrepared<LearnerRow>(
      `SELECT ${DUCK_LEARNER_COLUMNS} FROM raw_events
       JOIN (SELECT DISTINCT unnest($1::VARCHAR[]) AS student_key, unnest($2::VARCHAR[]) AS topic_id) k
         USING (student_key, topic_id)
       ${DUCK_DEDUPED}
       ORDER BY student_key, topic_id, ts, event_id`,
      [listValue(keys.map((k) => k.studentKey)), listValue(keys.map((k) => k.topicId))],
    );
  }

  async allEvents(): Promise<LearnerRow[]> {
    return this.duck.all<LearnerRow>(
      `SELECT ${DUCK_LEARNER_COLUMNS} FROM raw_events ${DUCK_DEDUPED} ORDER BY student_key, topic_id, ts, event_id`,
    );
  }

  async deadLetter(rows: readonly DeadLetterRow[]): Promise<void> {
    if (rows.length === 0) return;
    // One statement for the batch; every list typed (an untyped list takes its first value's type).
    const text = (f: (r: DeadLetterRow) => string | null) => listValue(rows.map(f));
    await this.duck.run(
      `INSERT INTO dead_letter (source, row_number, event_id, type, field, reason, payload, rejected_at)
       SELECT unnest($1::VARCHAR[]), NULL, unnest($2::VARCHAR[]), unnest($3::VARCHAR[]), unnest($4::VARCHAR[]),
              unnest($5::VARCHAR[]), unnest($6::VARCHAR[]), make_timestamp(unnest($7::BIGINT[]))`,
      [
        text((r) => r.source),
        text((r) => r.event_id),
        text((r) => r.type),
        text((r) => r.field),
        text((r) => r.reason),
        text((r) => r.payload),
        listValue(rows.map((r) => BigInt(Math.round(r.rejected_at_us)))),
      ],
      [
        LIST(VARCHAR),
        LIST(VARCHAR),
        LIST(VARCHAR),
        LIST(VARCHAR),
        LIST(VARCHAR),
        LIST(VARCHAR),
        LIST(BIGINT),
      ],
    );
  }
}

function learnerRow(r: RawEventRow): LearnerRow {
  return {
    event_id: r.event_id,
    type: r.type,
    student_key: r.student_key,
    topic_id: r.topic_id,
    ts_us: r.ts_us,
    is_correct: r.is_correct,
    question_id: r.question_id,
    ingested_at_us: r.ingested_at_us,
    attempts: r.attempts,
    correct_count: r.correct_count,
    score_pct: r.score_pct,
    hints_used: r.hints_used,
    watch_pct: r.watch_pct,
  };
}
