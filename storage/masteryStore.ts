import type { DuckStore } from "./duckdb.ts";
import { BIGINT, DOUBLE, DuckDBTimestampValue, LIST, listValue, TIMESTAMP, VARCHAR } from "./duckdbApi.ts";
import {
  STORED_NUMBERS_SELECT,
  type StoredExplanationNumbers,
  takeExplanationNumbers,
  type WithExplanationNumberColumns,
} from "./explanationNumbers.ts";
import { pgArrayLiteral } from "./pgArrayLiteral.ts";
import { type PgStore, pgDialectDdl } from "./postgres.ts";
import { microsToSqlTimestamp } from "./rawEventStore.ts";
import { CORE_DDL, STREAM_DDL } from "./schema.ts";
import { deltaTable } from "./servingTables.ts";
import { revisionKey, transactionRevisions } from "./transactionRevisions.ts";

/**
 * student_mastery (current score per key and source) and student_mastery_history (one row per
 * change) for the incremental update path, on DuckDB or PostgreSQL. Each write carries the state
 * revision it was computed from; student_mastery_rev keeps the newest revision written per key,
 * and a write whose revision is not newer is skipped. So a redelivered event adds no history row,
 * and of two workers racing on a key the newer state always ends up in student_mastery.
 */

export interface MasteryScore {
  source: string;
  score: number;
  modelVersion: string;
  /** Explanation JSON (models/explanation.ts). */
  explanation: string;
}

export interface MasteryWrite {
  studentKey: string;
  topicId: string;
  rev: number;
  asOfUs: number;
  scores: readonly MasteryScore[];
}

export type MasteryRow = {
  student_key: string;
  topic_id: string;
  score_source: string;
  mastery_score: number;
  model_version: string;
  as_of_us: number;
  explanation: string;
  last_updated_us: number;
  /**
   * DuckDB only: the numbers of a batch-written bkt / elo / rule row, whose `explanation` is then empty (serving
   * renders the text: serving/storedExplanations.ts explanationText). Absent on rows stored with their text.
   */
  explanation_numbers?: StoredExplanationNumbers;
};

/** A score set by hand (a teacher's correction), not derived from events: no revision applies. */
export interface ScoreOverride {
  studentKey: string;
  topicId: string;
  source: string;
  score: number;
  modelVersion: string;
  /** Time of the correction: its as_of and last_updated. */
  atUs: number;
  /** Explanation JSON (models/explanation.ts). */
  explanation: string;
}

/** A score computed by a batch job (e.g. `mastery score served`): no revision; as_of is the scoring time. */
export interface BatchScore {
  studentKey: string;
  topicId: string;
  source: string;
  score: number;
  modelVersion: string;
  asOfUs: number;
  /** Explanation JSON (models/explanation.ts). */
  explanation: string;
}

export interface MasteryStore {
  /** Writes the keys whose revision is newer than the stored one; returns how many keys were written. */
  write(rows: readonly MasteryWrite[], nowUs: number): Promise<number>;
  /**
   * Upserts one hand-set score (its own score_source, so the event-derived writes never replace it) and
   * appends it to the history. The DuckDB version opens no transaction: a caller may wrap it in one.
   */
  writeOverride(o: ScoreOverride): Promise<void>;
  /** The API's read path: current scores of one student. */
  forStudent(studentKey: string): Promise<MasteryRow[]>;
  /** Every current score of the given sources (the recompute compares them). */
  all(sources: readonly string[]): Promise<MasteryRow[]>;
}

// ------------------------------------------------------------------------------------------------
// PostgreSQL

const PG_READ = `SELECT student_key, topic_id, score_source, mastery_score, model_version,
  (extract(epoch FROM as_of) * 1000000)::float8 AS as_of_us, explanation,
  (extract(epoch FROM last_updated) * 1000000)::float8 AS last_updated_us
  FROM student_mastery`;

export class PgMasteryStore implements MasteryStore {
  private constructor(private readonly pg: PgStore) {}

  static async open(pg: PgStore): Promise<PgMasteryStore> {
    for (const ddl of [...CORE_DDL, ...STREAM_DDL]) await pg.run(pgDialectDdl(ddl));
    await pg.run(
      "CREATE INDEX IF NOT EXISTS student_mastery_history_key ON student_mastery_history (student_key, topic_id)",
    );
    // A restarted server's alert recovery reads the history's newest rows (storage/alertStore.ts
    // recentlyScored). A B-tree on recorded_at finds them; the BRIN index this was before matched every
    // block appended since it was created (block ranges are summarized only by VACUUM, and the history is
    // written after the index exists), so the read scanned the whole history (docs/benchmarks.md "CPU
    // per request, round 2 (serve11, 2026-12-04)"). The history is appended (mostly) in recorded_at order,
    // so an insert lands on the B-tree's rightmost page.
    await pg.run("DROP INDEX IF EXISTS student_mastery_history_recorded");
    await pg.run(
      "CREATE INDEX IF NOT EXISTS student_mastery_history_recorded_at ON student_mastery_history (recorded_at)",
    );
    return new PgMasteryStore(pg);
  }

  async write(rows: readonly MasteryWrite[], nowUs: number): Promise<number> {
    if (rows.length === 0) return 0;
    // One row per key (the newest revision) so the upsert below never touches a row twice.
    const newest = new Map<string, MasteryWrite>();
    for (const r of rows) {
      const id = `${r.studentKey}\u0000${r.topicId}`;
      const prev = newest.get(id);
      if (prev === undefined || prev.rev < r.rev) newest.set(id, r);
    }
    const keys = [...newest.values()].sort((a, b) =>
      a.studentKey < b.studentKey
        ? -1
        : a.studentKey > b.studentKey
          ? 1
          : a.topicId < b.topicId
            ? -1
            : a.topicId > b.topicId
              ? 1
              : 0,
    );
    const cols: (string | number)[][] = [[], [], [], [], [], [], []];
    for (const k of keys)
      for (const sc of k.scores) {
        cols[0]!.push(k.studentKey);
        cols[1]!.push(k.topicId);
        cols[2]!.push(sc.score);
        cols[3]!.push(sc.source);
        cols[4]!.push(sc.modelVersion);
        cols[5]!.push(microsToSqlTimestamp(k.asOfUs));
        cols[6]!.push(sc.explanation);
      }
    // One statement (one round trip, atomic on its own). Rows are locked in key order (sorted
    // above), so two writers cannot deadlock; the row lock held until the statement commits
    // serializes writers of one key, and the WHERE skips revisions that are not newer.
    // A named prepared statement (one text): parsed and planned once per pooled connection, not per batch.
    const rows2 = await this.pg.allPrepared<{ n: string }>(
      `WITH moved AS (
         INSERT INTO student_mastery_rev AS m (student_key, topic_id, rev)
         SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[])
         ON CONFLICT (student_key, topic_id) DO UPDATE SET rev = EXCLUDED.rev WHERE m.rev < EXCLUDED.rev
         RETURNING student_key, topic_id),
       src AS (
         SELECT s.* FROM unnest($4::text[], $5::text[], $6::float8[], $7::text[], $8::text[], $9::timestamp[], $10::text[])
           AS s(student_key, topic_id, mastery_score, score_source, model_version, as_of, explanation)
         JOIN moved USING (student_key, topic_id)),
       up AS (
         INSERT INTO student_mastery
           (student_key, topic_id, mastery_score, score_source, model_version, as_of, explanation, last_updated)
         SELECT src.*, $11::timestamp FROM src
         ON CONFLICT (student_key, topic_id, score_source) DO UPDATE SET
           mastery_score = EXCLUDED.mastery_score, model_version = EXCLUDED.model_version,
           as_of = EXCLUDED.as_of, explanation = EXCLUDED.explanation, last_updated = EXCLUDED.last_updated),
       hist AS (
         INSERT INTO student_mastery_history
           (student_key, topic_id, mastery_score, score_source, model_version, as_of, explanation, recorded_at)
         SELECT src.*, $11::timestamp FROM src)
       SELECT count(*) AS n FROM moved`,
      // Array literals built by storage/pgArrayLiteral.ts (node-postgres' own text, cheaper: the
      // explanations are most of the bytes).
      [
        pgArrayLiteral(keys.map((k) => k.studentKey)),
        pgArrayLiteral(keys.map((k) => k.topicId)),
        pgArrayLiteral(keys.map((k) => k.rev)),
        ...cols.map(pgArrayLiteral),
        microsToSqlTimestamp(nowUs),
      ],
    );
    return Number(rows2[0]?.n ?? 0);
  }

  async writeOverride(o: ScoreOverride): Promise<void> {
    const at = microsToSqlTimestamp(o.atUs);
    // One statement: the upsert and its history row commit together.
    await this.pg.run(
      `WITH up AS (
         INSERT INTO student_mastery
           (student_key, topic_id, mastery_score, score_source, model_version, as_of, explanation, last_updated)
         VALUES ($1, $2, $3, $4, $5, $6::timestamp, $7, $6::timestamp)
         ON CONFLICT (student_key, topic_id, score_source) DO UPDATE SET
           mastery_score = EXCLUDED.mastery_score, model_version = EXCLUDED.model_version,
           as_of = EXCLUDED.as_of, explanation = EXCLUDED.explanation, last_updated = EXCLUDED.last_updated)
       INSERT INTO student_mastery_history
         (student_key, topic_id, mastery_score, score_source, model_version, as_of, explanation, recorded_at)
       VALUES ($1, $2, $3, $4, $5, $6::timestamp, $7, $6::timestamp)`,
      [o.studentKey, o.topicId, o.score, o.source, o.modelVersion, at, o.explanation],
    );
  }

  /**
   * Upserts batch-computed scores (each (student, topic, source) replaced; last_updated = `nowUs`) and
   * appends each to the history, in one statement per chunk of `chunk` rows (each chunk atomic). Returns
   * the rows written. The stream's revisions are not touched: a batch source is its own score_source.
   */
  async writeScores(rows: readonly BatchScore[], nowUs: number, chunk = 5000): Promise<number> {
    const now = microsToSqlTimestamp(nowUs);
    let n = 0;
    for (let i = 0; i < rows.length; i += chunk) {
      const part = rows.slice(i, i + chunk);
      await this.pg.allArrays(
        `WITH src AS (
           SELECT * FROM unnest($1::text[], $2::text[], $3::float8[], $4::text[], $5::text[], $6::timestamp[], $7::text[])
             AS s(student_key, topic_id, mastery_score, score_source, model_version, as_of, explanation)),
         up AS (
           INSERT INTO student_mastery
             (student_key, topic_id, mastery_score, score_source, model_version, as_of, explanation, last_updated)
           SELECT src.*, $8::timestamp FROM src
           ON CONFLICT (student_key, topic_id, score_source) DO UPDATE SET
             mastery_score = EXCLUDED.mastery_score, model_version = EXCLUDED.model_version,
             as_of = EXCLUDED.as_of, explanation = EXCLUDED.explanation, last_updated = EXCLUDED.last_updated)
         INSERT INTO student_mastery_history
           (student_key, topic_id, mastery_score, score_source, model_version, as_of, explanation, recorded_at)
         SELECT src.*, $8::timestamp FROM src`,
        [
          part.map((r) => r.studentKey),
          part.map((r) => r.topicId),
          part.map((r) => r.score),
          part.map((r) => r.source),
          part.map((r) => r.modelVersion),
          part.map((r) => microsToSqlTimestamp(r.asOfUs)),
          part.map((r) => r.explanation),
          now,
        ],
      );
      n += part.length;
    }
    return n;
  }

  async forStudent(studentKey: string): Promise<MasteryRow[]> {
    return this.pg.all<MasteryRow>(`${PG_READ} WHERE student_key = $1 ORDER BY topic_id, score_source`, [
      studentKey,
    ]);
  }

  async all(sources: readonly string[]): Promise<MasteryRow[]> {
    return this.pg.allArrays<MasteryRow>(
      `${PG_READ} WHERE score_source = ANY($1::text[]) ORDER BY student_key, topic_id, score_source`,
      [[...sources]],
    );
  }
}

// ------------------------------------------------------------------------------------------------
// DuckDB

const micros = (us: number): DuckDBTimestampValue => new DuckDBTimestampValue(BigInt(Math.round(us)));

const DUCK_READ = `SELECT student_key, topic_id, score_source, mastery_score, model_version,
  epoch_us(as_of)::DOUBLE AS as_of_us, explanation, epoch_us(last_updated)::DOUBLE AS last_updated_us,
  ${STORED_NUMBERS_SELECT}
  FROM student_mastery`;

/** DUCK_READ's rows as MasteryRow: the explanation's numbers (where stored) under explanation_numbers. */
function duckRows(rows: (MasteryRow & WithExplanationNumberColumns)[]): MasteryRow[] {
  for (const r of rows) {
    const n = takeExplanationNumbers(r);
    if (n !== null) r.explanation_numbers = n;
  }
  return rows;
}

export class DuckMasteryStore implements MasteryStore {
  private constructor(private readonly duck: DuckStore) {}

  static async open(duck: DuckStore): Promise<DuckMasteryStore> {
    for (const ddl of STREAM_DDL) await duck.run(ddl);
    return new DuckMasteryStore(duck);
  }

  async write(rows: readonly MasteryWrite[], nowUs: number): Promise<number> {
    if (rows.length === 0) return 0;
    const d = this.duck;
    const newest = new Map<string, MasteryWrite>();
    for (const r of rows) {
      const id = `${r.studentKey}\u0000${r.topicId}`;
      const prev = newest.get(id);
      if (prev === undefined || prev.rev < r.rev) newest.set(id, r);
    }
    const keys = [...newest.values()];
    return d.transaction(async () => {
      // A key whose state this transaction committed at exactly the write's revision is newer than its
      // stored score revision without a read (storage/transactionRevisions.ts); the others are read.
      const committed = transactionRevisions(d)?.committed;
      const unknown = keys.filter((k) => committed?.get(revisionKey(k.studentKey, k.topicId)) !== k.rev);
      const stored = new Map<string, number>();
      if (unknown.length > 0) {
        const cur = await d.allPrepared<{ student_key: string; topic_id: string; rev: bigint }>(
          `SELECT student_key, topic_id, rev FROM student_mastery_rev
           JOIN (SELECT unnest($1::VARCHAR[]) AS student_key, unnest($2::VARCHAR[]) AS topic_id) k
             USING (student_key, topic_id)`,
          [listValue(unknown.map((k) => k.studentKey)), listValue(unknown.map((k) => k.topicId))],
        );
        for (const c of cur) stored.set(revisionKey(c.student_key, c.topic_id), Number(c.rev));
      }
      const moved = keys.filter((k) => (stored.get(revisionKey(k.studentKey, k.topicId)) ?? 0) < k.rev);
      if (moved.length === 0) return 0;
      // Their score revision is now the state's: a second write at it in this transaction must read it.
      if (committed !== undefined)
        for (const k of moved) committed.delete(revisionKey(k.studentKey, k.topicId));
      await d.runPrepared(
        `INSERT OR REPLACE INTO student_mastery_rev
         SELECT unnest($1::VARCHAR[]), unnest($2::VARCHAR[]), unnest($3::BIGINT[])`,
        [
          listValue(moved.map((k) => k.studentKey)),
          listValue(moved.map((k) => k.topicId)),
          listValue(moved.map((k) => BigInt(k.rev))),
        ],
        [LIST(VARCHAR), LIST(VARCHAR), LIST(BIGINT)],
      );
      const cols: {
        sk: string[];
        tp: string[];
        sc: number[];
        src: string[];
        mv: string[];
        asOf: bigint[];
        ex: string[];
      } = { sk: [], tp: [], sc: [], src: [], mv: [], asOf: [], ex: [] };
      for (const k of moved)
        for (const s of k.scores) {
          cols.sk.push(k.studentKey);
          cols.tp.push(k.topicId);
          cols.sc.push(s.score);
          cols.src.push(s.source);
          cols.mv.push(s.modelVersion);
          cols.asOf.push(BigInt(Math.round(k.asOfUs)));
          cols.ex.push(s.explanation);
        }
      const params = [
        listValue(cols.sk),
        listValue(cols.tp),
        listValue(cols.sc),
        listValue(cols.src),
        listValue(cols.mv),
        listValue(cols.asOf),
        listValue(cols.ex),
        micros(nowUs),
      ];
      // Every list is bound with its type: an untyped list takes the type of its first value, so a
      // score of exactly 1 made the scores an INTEGER list, and the next fractional score failed.
      const types = [
        LIST(VARCHAR),
        LIST(VARCHAR),
        LIST(DOUBLE),
        LIST(VARCHAR),
        LIST(VARCHAR),
        LIST(BIGINT),
        LIST(VARCHAR),
        TIMESTAMP,
      ];
      const select = `SELECT unnest($1::VARCHAR[]), unnest($2::VARCHAR[]), unnest($3::DOUBLE[]), unnest($4::VARCHAR[]),
        unnest($5::VARCHAR[]), make_timestamp(unnest($6::BIGINT[])), unnest($7::VARCHAR[]), $8::TIMESTAMP`;
      // Appended to the delta (storage/servingTables.ts): the newest row per key is the view's row.
      await d.runPrepared(
        `INSERT INTO ${deltaTable("student_mastery")}
           (student_key, topic_id, mastery_score, score_source, model_version, as_of, explanation, last_updated)
         ${select}`,
        params,
        types,
      );
      await d.runPrepared(
        `INSERT INTO student_mastery_history
           (student_key, topic_id, mastery_score, score_source, model_version, as_of, explanation, recorded_at)
         ${select}`,
        params,
        types,
      );
      return moved.length;
    });
  }

  async writeOverride(o: ScoreOverride): Promise<void> {
    const params = [
      o.studentKey,
      o.topicId,
      o.score,
      o.source,
      o.modelVersion,
      micros(o.atUs),
      o.explanation,
    ];
    await this.duck.run(
      `INSERT INTO ${deltaTable("student_mastery")}
         (student_key, topic_id, mastery_score, score_source, model_version, as_of, explanation, last_updated)
       VALUES ($1, $2, $3::DOUBLE, $4, $5, $6, $7, $6)`,
      params,
    );
    await this.duck.run(
      `INSERT INTO student_mastery_history
         (student_key, topic_id, mastery_score, score_source, model_version, as_of, explanation, recorded_at)
       VALUES ($1, $2, $3::DOUBLE, $4, $5, $6, $7, $6)`,
      params,
    );
  }

  async forStudent(studentKey: string): Promise<MasteryRow[]> {
    return duckRows(
      await this.duck.all<MasteryRow>(`${DUCK_READ} WHERE student_key = $1 ORDER BY topic_id, score_source`, [
        studentKey,
      ]),
    );
  }

  async all(sources: readonly string[]): Promise<MasteryRow[]> {
    return duckRows(
      await this.duck.all<MasteryRow>(
        `${DUCK_READ} WHERE score_source IN (SELECT unnest($1::VARCHAR[])) ORDER BY student_key, topic_id, score_source`,
        [listValue([...sources])],
      ),
    );
  }
}
