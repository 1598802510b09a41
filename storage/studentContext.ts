import type { DuckDBConnection } from "@duckdb/node-api";

/**
 * student_context on the embedded file: per student, the school and grade of their newest raw event that
 * has one (and that event's time), i.e. what `arg_max(school_id, ts) FILTER (WHERE school_id IS NOT NULL)`
 * over the student's raw_events gives. The alert check reads it for the students of a POST instead of
 * aggregating raw_events, which it had to scan whole (DuckDB has no index on raw_events) on every POST:
 * O(store) per request. Every writer of raw_events on the file upserts the students it wrote
 * (upsertStudentContextSql), in the same transaction; a file written before this table gets it filled from
 * raw_events on its first open (ensureStudentContext). PostgreSQL reads the context from raw_events through
 * its (student_key, topic_id, ts) index (storage/alertStore.ts) and has no such table.
 */
export const STUDENT_CONTEXT_DDL = `CREATE TABLE IF NOT EXISTS student_context (
   student_key VARCHAR PRIMARY KEY,
   school_id VARCHAR,
   school_ts TIMESTAMP,
   grade INTEGER,
   grade_ts TIMESTAMP
 )`;

/**
 * One statement that folds raw rows into student_context: `rows` is a query (or table) with columns
 * student_key, ts, school_id, grade. A student's school (grade) moves only to a value of a strictly newer
 * event, so folding rows in any order and any grouping gives the aggregate over all of them (ties on ts
 * keep the first folded; arg_max over tied rows picks any of them too).
 */
export function upsertStudentContextSql(rows: string): string {
  return upsertNewestSql(newestContextSql(rows));
}

/**
 * The per-student reduction upsertStudentContextSql folds in (columns student_key, school_id, school_ts,
 * grade, grade_ts), as a query. A bulk writer can materialize it into a TEMP table and upsert that with
 * upsertNewestSql: DuckDB runs the aggregate inside the INSERT ... ON CONFLICT about 5x slower than alone
 * (0.38 against 0.07 CPU-s for 608k rows of one file, features/ingest.ts).
 */
export function newestContextSql(rows: string): string {
  return `SELECT student_key,
         arg_max(school_id, ts) FILTER (WHERE school_id IS NOT NULL) AS school_id,
         max(ts) FILTER (WHERE school_id IS NOT NULL) AS school_ts,
         arg_max(grade, ts) FILTER (WHERE grade IS NOT NULL) AS grade,
         max(ts) FILTER (WHERE grade IS NOT NULL) AS grade_ts
  FROM (${rows}) GROUP BY student_key`;
}

/**
 * The same fold from rows already reduced to one per student (columns student_key, school_id, school_ts,
 * grade, grade_ts: the student's newest school and grade among the rows, each with its event time), e.g.
 * by the caller in JS (newestContextOf): one statement without the GROUP BY.
 */
export function upsertNewestSql(perStudent: string): string {
  return `INSERT INTO student_context
  ${perStudent}
  ON CONFLICT (student_key) DO UPDATE SET
    school_id = CASE WHEN school_ts IS NULL OR excluded.school_ts > school_ts
                     THEN coalesce(excluded.school_id, school_id) ELSE school_id END,
    school_ts = greatest(school_ts, excluded.school_ts),
    grade = CASE WHEN grade_ts IS NULL OR excluded.grade_ts > grade_ts
                 THEN coalesce(excluded.grade, grade) ELSE grade END,
    grade_ts = greatest(grade_ts, excluded.grade_ts)`;
}

/** One student's newest school and grade among some rows (times in epoch microseconds). */
export interface NewestContext {
  studentKey: string;
  schoolId: string | null;
  schoolUs: number | null;
  grade: number | null;
  gradeUs: number | null;
}

/** Per student, the newest school and grade of `rows` (first row wins a tie); students with neither left out. */
export function newestContextOf(
  rows: readonly { student_key: string; ts_us: number; school_id: string | null; grade: number | null }[],
): NewestContext[] {
  const by = new Map<string, NewestContext>();
  for (const r of rows) {
    if (r.school_id === null && r.grade === null) continue;
    let c = by.get(r.student_key);
    if (c === undefined) {
      c = { studentKey: r.student_key, schoolId: null, schoolUs: null, grade: null, gradeUs: null };
      by.set(r.student_key, c);
    }
    if (r.school_id !== null && (c.schoolUs === null || r.ts_us > c.schoolUs)) {
      c.schoolId = r.school_id;
      c.schoolUs = r.ts_us;
    }
    if (r.grade !== null && (c.gradeUs === null || r.ts_us > c.gradeUs)) {
      c.grade = r.grade;
      c.gradeUs = r.ts_us;
    }
  }
  return [...by.values()];
}

/** Creates student_context; when it did not exist yet, fills it from the file's raw_events (one scan). */
export async function ensureStudentContext(conn: DuckDBConnection): Promise<void> {
  const existed = await conn.runAndReadAll(
    `SELECT 1 FROM duckdb_tables() WHERE database_name = current_database() AND schema_name = current_schema()
       AND table_name = 'student_context'`,
  );
  if (existed.currentRowCount > 0) return;
  // One transaction: a process stopped between the two never leaves an empty table that reads as filled.
  await conn.run("BEGIN TRANSACTION");
  try {
    await conn.run(STUDENT_CONTEXT_DDL);
    await conn.run(upsertStudentContextSql("SELECT student_key, ts, school_id, grade FROM raw_events"));
    await conn.run("COMMIT");
  } catch (err) {
    await conn.run("ROLLBACK").catch(() => undefined);
    throw err;
  }
}
