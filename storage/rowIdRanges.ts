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

/** The column of indexRevisionsSql holding a base row's row id (a DOUBLE; NULL on delta rows). */
export const ROW_ID = "row_id";
/** The column of rangeRevisionsSql with `verify` holding the count of the student's base rows by the index. */
export const BASE_ROWS = "base_rows";

/**
 * revisionsSql's rows (storage/revisionTable.ts) with each base row's row id as ROW_ID (a DOUBLE: exact below
 * 2^53; rows a still open transaction of the connection added have ids from 2^62), NULL on delta rows: the index
 * read, which tells the reader where the student's rows lie at no statement more.
 */
export function indexRevisionsSql(t: LayeredTable, columns: string, where: string): string {
  return `SELECT ${columns}, -1::DOUBLE AS ${REVISION_SEQ}, rowid::DOUBLE AS ${ROW_ID} FROM ${baseTable(t)} WHERE ${where}
  UNION ALL
  SELECT ${columns}, delta_seq::DOUBLE AS ${REVISION_SEQ}, NULL::DOUBLE AS ${ROW_ID} FROM ${deltaTable(t)} WHERE ${where}`;
}

/**
 * revisionsSql's rows (storage/revisionTable.ts: `columns` plus revision_seq, the base's and the delta's rows
 * for which `where` holds) with the base read as `runs` row-id ranges: parameters `$first`, `$first + 1`, ...
 * are the ranges' bounds in order (BIGINT), lo and hi of each. Without `verify`, `where` must hold only on rows
 * inside the ranges (they are its rows' ids, from baseRowIdsSql in the same transaction). With it, every row also
 * carries BASE_ROWS, the number of base rows for which `where` holds, counted through the index in the same
 * statement (so of the same snapshot): the ranges held them all when they gave that many base rows. (No row at
 * all when the ranges and the delta hold none.)
 */
export function rangeRevisionsSql(
  t: LayeredTable,
  columns: string,
  where: string,
  runs: number,
  first: number,
  opts: { verify?: boolean } = {},
): string {
  if (!Number.isInteger(runs) || runs < 1)
    throw new RangeError(`rangeRevisionsSql: runs must be an integer >= 1 (got ${runs})`);
  const base = Array.from(
    { length: runs },
    (_, i) =>
      `SELECT ${columns}, -1::DOUBLE AS ${REVISION_SEQ} FROM ${baseTable(t)}
  WHERE rowid BETWEEN $${first + 2 * i}::BIGINT AND $${first + 2 * i + 1}::BIGINT AND ${where}`,
  );
  const rows = `${base.join("\n  UNION ALL\n  ")}
  UNION ALL
  SELECT ${columns}, delta_seq::DOUBLE AS ${REVISION_SEQ} FROM ${deltaTable(t)} WHERE ${where}`;
  if (opts.verify !== true) return rows;
  return `SELECT x.*, n.${BASE_ROWS} FROM (${rows}) x,
  (SELECT count(*)::DOUBLE AS ${BASE_ROWS} FROM ${baseTable(t)} WHERE ${where}) n`;
}

/**
 * How scoreRows reads a student's base rows this time (RowIdRunMemory.plan):
 * - "ranges": by the `runs` a read of this student found before, in one statement that also counts the student's
 *   base rows through the index (rangeRevisionsSql with `verify`): the rows are whole when the ranges hold as many
 *   base rows as the count (the rows are the student's, so equal counts are equal sets), else the layout moved
 *   and the read is made again with "probe".
 * - "probe": the row ids from the index first, then ranges or the index (mastery22's two statements in one
 *   snapshot), for a student not seen yet while recent reads found ranges that pay.
 * - "index": through the index in one statement, its row ids read along: a student whose rows did not lie in
 *   runs that pay when last read, or one not seen yet while recent reads found none that pay (a spread base).
 */
export type RunPlan = { kind: "ranges"; runs: readonly RowIdRange[] } | { kind: "probe" } | { kind: "index" };

/**
 * Decides the read of scoreRows' next miss from what earlier reads found, so that a base whose rows are not in
 * student order pays no statement more than the plain index read (the probe of mastery22 costs one there:
 * docs/benchmarks.md "The embedded cold read, round 4 (emb24)"). Every read learns the student's runs (the index
 * read selects the row ids too), so the choice follows the layout as the batch rewrites it, without a statement
 * of its own. Only cost depends on the choice: every plan reads the same rows (a "ranges" plan checks itself).
 *
 * Per student: the runs (or "no runs that pay") of its last read, for at most `capacity` students (least recently
 * read dropped first). For a student not in it: "probe" while the share of recent reads whose rows lay in runs
 * that pay (an exponentially weighted mean, weight `rate` for the newest read, starting at 1: a batch-written
 * file is in student order) is at least `minShare`, else "index".
 */
export class RowIdRunMemory {
  private readonly runs = new Map<string, readonly RowIdRange[] | null>();
  private share = 1;
  readonly capacity: number;
  readonly rate: number;
  readonly minShare: number;

  constructor(opts: { capacity?: number; rate?: number; minShare?: number } = {}) {
    this.capacity = opts.capacity ?? 20_000;
    this.rate = opts.rate ?? 0.25;
    this.minShare = opts.minShare ?? 1 / 16;
    if (!Number.isInteger(this.capacity) || this.capacity < 0)
      throw new RangeError(`RowIdRunMemory: capacity must be an integer >= 0 (got ${this.capacity})`);
    if (!(this.rate > 0 && this.rate <= 1))
      throw new RangeError(`RowIdRunMemory: rate must be in (0, 1] (got ${this.rate})`);
  }

  /** The read to make for `key`'s next miss. */
  plan(key: string): RunPlan {
    const known = this.runs.get(key);
    if (known === undefined) return this.share >= this.minShare ? { kind: "probe" } : { kind: "index" };
    return known === null ? { kind: "index" } : { kind: "ranges", runs: known };
  }

  /** What a read of `key` found: its base rows' runs when a range read pays (rowIdRuns), else null. */
  learn(key: string, runs: readonly RowIdRange[] | null): void {
    this.share += this.rate * ((runs === null ? 0 : 1) - this.share);
    this.runs.delete(key);
    if (this.capacity === 0) return;
    if (this.runs.size >= this.capacity) this.runs.delete(this.runs.keys().next().value as string);
    this.runs.set(key, runs);
  }

  /** The weighted share of recent reads whose rows lay in runs that pay (1 before any read). */
  get recentShare(): number {
    return this.share;
  }

  /** Students remembered. */
  get size(): number {
    return this.runs.size;
  }
}
