import { REVISION_SEQ } from "./revisionTable.ts";
import { baseTable, deltaTable, type LayeredTable } from "./servingTables.ts";

/**
 * One student's base rows read as a few row-id ranges instead of through the student index (GET /mastery's
 * miss on the embedded file; docs/benchmarks.md "The embedded cold read, round 3 (mastery22)").
 *
 * An index lookup gives DuckDB the row ids, and it then fetches every selected column of every row on its own:
 * for each row and column it pins the column's block and decodes the compressed vector holding the row (a
 * DOUBLE's ALP vector: 1,024 values for one). A cold read of 100 topics is ~400 rows x ~40 columns, ~16,000 such
 * fetches: ~37 ms of a ~41 ms miss, quiet. A scan of a row-id range decodes each vector of each column once,
 * and with the student's filter pushed into the scan it skips the other columns of every vector holding none of
 * the student's rows. So the read first takes the student's row ids from the index (no column fetched), then,
 * when they lie in a few short runs (the batch writes a student's rows next to each other, a region per step),
 * scans those ranges; otherwise (rows spread by appends and in-place replaces) it reads through the index as
 * before. Both statements run in one transaction (one snapshot): the ids and the rows are of one state of the
 * file.
 */

/** Row ids further apart than this start a new run (one DuckDB vector: a gap of more costs whole vectors). */
export const RUN_GAP = 2048;
/** At most this many runs are read as ranges (one statement per count, 1..MAX_RUNS, prepared once each). */
export const MAX_RUNS = 4;

/** An inclusive row-id range [lo, hi]. */
export type RowIdRange = readonly [lo: number, hi: number];

/** A scan decodes a column a vector (2,048 rows, aligned to the table's start) at a time. */
export const VECTOR_ROWS = 2048;
/**
 * A range read pays when the ids hold at least MIN_ROWS + ROWS_PER_VECTOR x (vectors they touch) rows. Measured
 * (docs/benchmarks.md "The embedded cold read, round 3 (mastery22)", CPU at load ~30): through the index ~0.1 ms
 * a row of ~40 columns plus ~2 ms a statement; by ranges ~5.5 ms fixed (the transaction, the row-id read, a scan
 * per run) plus ~1 ms a vector touched. So 400 rows in 1-4 vectors: ranges (~8 ms against ~38); a student of
 * 27-60 rows in two vectors: the index (~6 ms against ~7.7 by ranges).
 */
export const MIN_ROWS = 64;
export const ROWS_PER_VECTOR = 8;

/**
 * The runs of `ids` (row ids, any order; each once) as inclusive ranges in ascending order: consecutive ids (in
 * sorted order) at most `gap` apart share a run. Null when a range read would not pay: no ids, more than
 * `maxRuns` runs, or fewer than MIN_ROWS + ROWS_PER_VECTOR x (vectors holding one) ids (few rows, or rows spread
 * over many vectors: the index then fetches for less than the scans decode).
 */
export function rowIdRuns(
  ids: readonly number[],
  gap: number = RUN_GAP,
  maxRuns: number = MAX_RUNS,
): RowIdRange[] | null {
  if (ids.length === 0) return null;
  const sorted = Float64Array.from(ids).sort();
  const runs: RowIdRange[] = [];
  let lo = sorted[0]!;
  let vectors = 1;
  for (let i = 1; i <= sorted.length; i++) {
    if (
      i < sorted.length &&
      Math.floor(sorted[i]! / VECTOR_ROWS) !== Math.floor(sorted[i - 1]! / VECTOR_ROWS)
    )
      vectors++;
    if (i < sorted.length && sorted[i]! - sorted[i - 1]! <= gap) continue;
    if (runs.length === maxRuns) return null;
    runs.push([lo, sorted[i - 1]!]);
    lo = sorted[i] ?? 0;
  }
  return sorted.length >= MIN_ROWS + ROWS_PER_VECTOR * vectors ? runs : null;
}

/** The row ids of `t`'s base rows for which `where` holds (a filter its index serves, e.g. `student_key = $1`). */
export function baseRowIdsSql(t: LayeredTable, where: string): string {
  return `SELECT rowid AS row_id FROM ${baseTable(t)} WHERE ${where}`;
}

/**
 * revisionsSql's rows (storage/revisionTable.ts: `columns` plus revision_seq, the base's and the delta's rows
 * for which `where` holds) with the base read as `runs` row-id ranges: parameters `$first`, `$first + 1`, ...
 * are the ranges' bounds in order (BIGINT), lo and hi of each. `where` must hold only on rows inside the
 * ranges (they are its rows' ids, from baseRowIdsSql in the same transaction).
 */
export function rangeRevisionsSql(
  t: LayeredTable,
  columns: string,
  where: string,
  runs: number,
  first: number,
): string {
  if (!Number.isInteger(runs) || runs < 1)
    throw new RangeError(`rangeRevisionsSql: runs must be an integer >= 1 (got ${runs})`);
  const base = Array.from(
    { length: runs },
    (_, i) =>
      `SELECT ${columns}, -1::DOUBLE AS ${REVISION_SEQ} FROM ${baseTable(t)}
  WHERE rowid BETWEEN $${first + 2 * i}::BIGINT AND $${first + 2 * i + 1}::BIGINT AND ${where}`,
  );
  return `${base.join("\n  UNION ALL\n  ")}
  UNION ALL
  SELECT ${columns}, delta_seq::DOUBLE AS ${REVISION_SEQ} FROM ${deltaTable(t)} WHERE ${where}`;
}
