import { baseTable, deltaTable, LAYERED_KEY, type LayeredTable } from "./servingTables.ts";

/**
 * Keyed reads of a few students from a layered serving table on the DuckDB file (storage/servingTables.ts:
 * `<t>_base` + append-only `<t>_delta`, the newest revision per key is the row served), without the view.
 *
 * The view picks the newest row per key with a window over the whole delta and an anti-join of the base
 * with the delta; a filter on student_key reaches both scans, but DuckDB still builds the window and the
 * join for each read (a cold GET /mastery of 100 topics spent most of its ~5-7 ms of CPU there). Here each
 * table is scanned with the caller's filter (UNION ALL of the two filtered scans: a point read of the base's
 * student index and a small scan of the delta), and the newest revision per key is picked in JS
 * (`newestRevisions`): a delta row beats the base row, the highest `delta_seq` beats the other delta rows,
 * as in the view. Only for reads of few students (one, or an IN list of at most a few dozen): a whole-table
 * read keeps the view.
 */

/** The column every revision row carries: the delta's sequence number, -1 for the base row. */
export const REVISION_SEQ = "revision_seq";

/** A row of `revisionsSql`: the selected columns and its sequence number. */
export type RevisionRow = { revision_seq: number };

/**
 * Every revision row (base and delta) of `t` for which `where` holds: `columns` (a select list over the
 * table's own columns, unqualified) plus `revision_seq`. `where` is applied to both scans; it must name
 * only the table's columns (e.g. `student_key = $1`).
 */
export function revisionsSql(t: LayeredTable, columns: string, where: string): string {
  return `SELECT ${columns}, -1::DOUBLE AS ${REVISION_SEQ} FROM ${baseTable(t)} WHERE ${where}
  UNION ALL
  SELECT ${columns}, delta_seq::DOUBLE AS ${REVISION_SEQ} FROM ${deltaTable(t)} WHERE ${where}`;
}

/**
 * The newest revision of each key among `rows` (rows of `revisionsSql` whose select list includes the key
 * columns of `t`): per key the row with the highest `revision_seq` (delta rows are numbered from one
 * sequence; the base row is -1). Keys in order of first appearance. `fixed`: key columns that the read's
 * filter fixed to one value (e.g. `student_key` for one student's rows), which the select list may omit.
 */
export function newestRevisions<R extends RevisionRow>(
  t: LayeredTable,
  rows: readonly R[],
  fixed: readonly string[] = [],
): R[] {
  const key = LAYERED_KEY[t].filter((c) => !fixed.includes(c));
  if (key.length === 0)
    throw new Error(`newestRevisions: every key column of ${t} is fixed; keep at least one`);
  const byKey = new Map<string, R>();
  for (const r of rows) {
    const rec = r as unknown as Record<string, unknown>;
    let id = String(rec[key[0]!]);
    for (let i = 1; i < key.length; i++) id += `\u0000${String(rec[key[i]!])}`;
    const held = byKey.get(id);
    if (held === undefined || r.revision_seq > held.revision_seq) byKey.set(id, r);
  }
  return [...byKey.values()];
}
