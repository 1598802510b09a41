/**
 * A redundant `student_key IN ($i, ...)` filter for the update path's keyed reads on the DuckDB file
 * (issue 15). Those reads join a table or view with the batch's keys given as unnested lists; DuckDB does not
 * push such a join into the scans below it, so a read of ten keys joined the whole table, and through the
 * base + delta views (storage/servingTables.ts) built the whole newest-row anti-join first (learner_state at
 * 10,000 students: ~100-150 ms of CPU per load). An IN list of parameters is a constant filter: DuckDB pushes
 * it through the view into both scans (an index scan where the column has one), so the join sees only the
 * batch's students. The join stays, so the result is the same rows as without the filter.
 *
 * Each student is one parameter, so a big group gets no filter (the join alone, as before): past a few dozen
 * students the IN list costs about a millisecond per student and the whole-table join is cheaper.
 */
export const MAX_FILTERED_STUDENTS = 64;

export interface StudentFilter {
  /** `<column> IN ($first, ...)`, or `TRUE` when there are too many students (or none). */
  sql: string;
  /** The parameters to append after the statement's own (`$first` is the first of them). */
  params: string[];
}

/** The filter on `column` for the distinct students of `studentKeys`, its parameters numbered from `first`. */
export function studentFilter(column: string, studentKeys: Iterable<string>, first: number): StudentFilter {
  const students = [...new Set(studentKeys)];
  if (students.length === 0 || students.length > MAX_FILTERED_STUDENTS) return { sql: "TRUE", params: [] };
  return {
    sql: `${column} IN (${students.map((_, i) => `$${first + i}`).join(", ")})`,
    params: students,
  };
}
