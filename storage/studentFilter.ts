/**
 * A redundant `student_key IN ($i, ...)` filter for a keyed read of the update path on the DuckDB file
 * (issue 15). The read joins the learner_state view (storage/servingTables.ts: base + delta, newest row per
 * key) with the batch's keys given as unnested lists. DuckDB turns a join's keys into a filter in the scan of
 * a plain table, but not through the view's anti-join, so loading ten keys built the newest-row view of every
 * key first (~100-400 ms of CPU at 10,000 students x 20 topics). An IN list of parameters is a constant
 * filter: DuckDB pushes it through the view into both scans, and the join then sees only the batch's
 * students. The join stays, so the result is the same rows as without the filter.
 *
 * Each student is one parameter, so a big group gets no filter (the join alone, as before): past a few dozen
 * students the IN list costs about a millisecond per student and the whole-view join is cheaper.
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
