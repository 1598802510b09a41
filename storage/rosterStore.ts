import { DuckStore } from "./duckdb.ts";
import { type PgParam, pgDialectDdl, type SqlDialect, type SqlStore } from "./postgres.ts";
import { ROSTER_DDL } from "./schema.ts";

/** One class as loaded: its students (pseudonyms only) and, optionally, its teachers (token sub). */
export interface RosterEntry {
  classId: string;
  studentKeys: readonly string[];
  teacherIds: readonly string[];
}

export interface RosterClassRow {
  classId: string;
  studentKeys: string[];
  teacherIds: string[];
  updatedAt: Date;
  updatedBy: string;
  source: string;
}

export interface RosterWriteMeta {
  /** Who changed it (admin/service token sub, or "cli"). */
  actor: string;
  /** How: "api", or the file name of `mastery roster load`. */
  source: string;
  at: Date;
}

/** Rows per multi-row INSERT (two parameters a row; well under both engines' parameter limits). */
const INSERT_CHUNK = 500;

/**
 * The class roster tables (storage/schema.ts ROSTER_DDL) on the embedded DuckDB file or PostgreSQL:
 * the same $1-style SQL runs on both. Writes replace (or merge into) whole classes in one transaction.
 */
export class RosterStore {
  private constructor(
    private readonly sql: SqlStore,
    readonly dialect: SqlDialect,
  ) {}

  static async open(sql: SqlStore, dialect: SqlDialect): Promise<RosterStore> {
    for (const ddl of ROSTER_DDL) await sql.run(dialect === "postgres" ? pgDialectDdl(ddl) : ddl);
    return new RosterStore(sql, dialect);
  }

  /**
   * Makes each entry the whole truth about its class: rows of other students and teachers of that
   * class are removed. Classes not in `entries` are left alone.
   */
  async replace(entries: readonly RosterEntry[], meta: RosterWriteMeta): Promise<void> {
    await this.sql.transaction(async () => {
      const classIds = [...new Set(entries.map((e) => e.classId))];
      for (let i = 0; i < classIds.length; i += INSERT_CHUNK) {
        const chunk = classIds.slice(i, i + INSERT_CHUNK);
        const list = chunk.map((_, j) => `$${j + 1}`).join(", ");
        await this.sql.run(`DELETE FROM roster_students WHERE class_id IN (${list})`, chunk);
        await this.sql.run(`DELETE FROM roster_teachers WHERE class_id IN (${list})`, chunk);
      }
      await this.write(entries, meta);
    });
  }

  /** Adds the entries' students and teachers to their classes, keeping the rows already there. */
  async merge(entries: readonly RosterEntry[], meta: RosterWriteMeta): Promise<void> {
    await this.sql.transaction(() => this.write(entries, meta));
  }

  /** Removes a class and its rows; false when there was none. */
  async remove(classId: string): Promise<boolean> {
    return this.sql.transaction(async () => {
      const had = await this.sql.one("SELECT class_id FROM roster_classes WHERE class_id = $1", [classId]);
      await this.sql.run("DELETE FROM roster_students WHERE class_id = $1", [classId]);
      await this.sql.run("DELETE FROM roster_teachers WHERE class_id = $1", [classId]);
      await this.sql.run("DELETE FROM roster_classes WHERE class_id = $1", [classId]);
      return had !== undefined;
    });
  }

  /** The roster classes a student is in, each with the teachers it names (sorted). */
  async classesOfStudent(studentKey: string): Promise<{ classId: string; teacherIds: string[] }[]> {
    const rows = await this.sql.all<{ class_id: string; teacher_id: string | null }>(
      `SELECT s.class_id, t.teacher_id FROM roster_students s
       LEFT JOIN roster_teachers t ON t.class_id = s.class_id
       WHERE s.student_key = $1 ORDER BY s.class_id, t.teacher_id`,
      [studentKey],
    );
    const out = new Map<string, string[]>();
    for (const r of rows) {
      const teachers = out.get(r.class_id) ?? [];
      out.set(r.class_id, teachers);
      if (r.teacher_id !== null) teachers.push(r.teacher_id);
    }
    return [...out].map(([classId, teacherIds]) => ({ classId, teacherIds }));
  }

  /** One class with its students and teachers (sorted), or undefined when it has no roster. */
  async getClass(classId: string): Promise<RosterClassRow | undefined> {
    const head = await this.sql.one<{ updated_at: Date; updated_by: string; source: string }>(
      "SELECT updated_at, updated_by, source FROM roster_classes WHERE class_id = $1",
      [classId],
    );
    if (head === undefined) return undefined;
    const students = await this.sql.all<{ student_key: string }>(
      "SELECT student_key FROM roster_students WHERE class_id = $1 ORDER BY student_key",
      [classId],
    );
    const teachers = await this.sql.all<{ teacher_id: string }>(
      "SELECT teacher_id FROM roster_teachers WHERE class_id = $1 ORDER BY teacher_id",
      [classId],
    );
    return {
      classId,
      studentKeys: students.map((r) => r.student_key),
      teacherIds: teachers.map((r) => r.teacher_id),
      updatedAt: head.updated_at,
      updatedBy: head.updated_by,
      source: head.source,
    };
  }

  /** Counts over the whole roster. */
  async summary(): Promise<{ classes: number; students: number; memberships: number }> {
    const r = await this.sql.one<{ classes: unknown; students: unknown; memberships: unknown }>(
      `SELECT (SELECT count(*) FROM roster_classes) AS classes,
              (SELECT count(DISTINCT student_key) FROM roster_students) AS students,
              (SELECT count(*) FROM roster_students) AS memberships`,
    );
    return {
      classes: Number(r?.classes ?? 0),
      students: Number(r?.students ?? 0),
      memberships: Number(r?.memberships ?? 0),
    };
  }

  private async write(entries: readonly RosterEntry[], meta: RosterWriteMeta): Promise<void> {
    const at = meta.at.toISOString();
    const students: [string, string][] = [];
    const teachers: [string, string][] = [];
    for (const e of entries) {
      for (const k of new Set(e.studentKeys)) students.push([e.classId, k]);
      for (const t of new Set(e.teacherIds)) teachers.push([e.classId, t]);
    }
    // The class rows as multi-row upserts too: one DuckDB upsert statement per class inside one
    // transaction kept ~117 KB of transaction-local table state each (40,000 classes: past a 4 GB
    // memory limit) and cost ~6 ms of CPU each.
    const classIds = [...new Set(entries.map((e) => e.classId))];
    for (let i = 0; i < classIds.length; i += INSERT_CHUNK) {
      const chunk = classIds.slice(i, i + INSERT_CHUNK);
      const values = chunk.map((_, j) => `($${j + 4}, CAST($1 AS TIMESTAMP), $2, $3)`).join(", ");
      await this.sql.run(
        `INSERT INTO roster_classes VALUES ${values} ON CONFLICT (class_id) DO UPDATE SET ` +
          "updated_at = excluded.updated_at, updated_by = excluded.updated_by, source = excluded.source",
        [at, meta.actor, meta.source, ...chunk],
      );
    }
    await this.insertPairs("roster_students", students);
    await this.insertPairs("roster_teachers", teachers);
  }

  /** Multi-row INSERTs of (class_id, value) pairs; rows already there are kept. */
  private async insertPairs(table: string, pairs: readonly [string, string][]): Promise<void> {
    if (this.sql instanceof DuckStore && pairs.length > INSERT_CHUNK) {
      await insertPairsDuck(this.sql, table, pairs);
      return;
    }
    for (let i = 0; i < pairs.length; i += INSERT_CHUNK) {
      const chunk = pairs.slice(i, i + INSERT_CHUNK);
      const values = chunk.map((_, j) => `($${2 * j + 1}, $${2 * j + 2})`).join(", ");
      const params: PgParam[] = chunk.flat();
      await this.sql.run(`INSERT INTO ${table} VALUES ${values} ON CONFLICT DO NOTHING`, params);
    }
  }
}

/**
 * DuckDB: the pairs appended to a TEMP table and inserted in ONE statement. Multi-row INSERTs of 500
 * pairs cost more per statement as the transaction's rows and index entries grow (1M students = 2,000
 * statements: over 160 CPU-s, quadratic); one INSERT ... SELECT is a single pass.
 */
async function insertPairsDuck(store: DuckStore, table: string, pairs: readonly [string, string][]) {
  const column = table === "roster_students" ? "student_key" : "teacher_id";
  await store.run("CREATE OR REPLACE TEMP TABLE __roster_pairs (class_id VARCHAR, v VARCHAR)");
  try {
    await store.appendRows(
      "__roster_pairs",
      (ap) => {
        for (const [classId, v] of pairs) {
          ap.appendVarchar(classId);
          ap.appendVarchar(v);
          ap.endRow();
        }
      },
      { schema: "main", catalog: "temp" },
    );
    await store.run(
      `INSERT INTO ${table} (class_id, ${column}) SELECT DISTINCT class_id, v FROM __roster_pairs ON CONFLICT DO NOTHING`,
    );
  } finally {
    await store.run("DROP TABLE IF EXISTS __roster_pairs");
  }
}
