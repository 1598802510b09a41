import type { DuckDBConnection } from "@duckdb/node-api";
import { type DuckStore, type Params, StorageError } from "./duckdb.ts";
import { applyFeatureLayout, isFeaturesDdl } from "./featureRows.ts";

/**
 * student_mastery and learner_state on the embedded file are append-only for the daily writes (issue 17
 * item 3): each is a VIEW, the newest row per key over a base table (`<name>_base`, primary key, rewritten
 * only by full runs and the compaction) and a delta table (`<name>_delta`, no index, rows appended at the
 * tail with a `delta_seq` from one sequence; the newest delta row of a key hides the base row). A DuckDB
 * checkpoint rewrites every updated column of every row group an UPDATE touches (the explanation JSON
 * dominates), so a day that updated 1% of the keys in place rewrote nearly the whole table; rows appended at
 * the tail cost almost nothing (docs/benchmarks.md "The 1% day (day2)"). Readers keep their SQL (the view);
 * writers write `deltaTable(...)` (incremental) or fold the delta and write `baseTable(...)` (full runs).
 * `compactServingTables` folds the delta rows into the base tables (`mastery compact`, or the daily run
 * when the delta passes a share of the base or its oldest row passes an age; docs/runbook.md).
 * PostgreSQL keeps plain tables (storage/masteryStore.ts PgMasteryStore): this layout is DuckDB-only.
 */
export const LAYERED_TABLES = ["student_mastery", "learner_state"] as const;
export type LayeredTable = (typeof LAYERED_TABLES)[number];

export const LAYERED_KEY: Record<LayeredTable, readonly string[]> = {
  student_mastery: ["student_key", "topic_id", "score_source"],
  learner_state: ["student_key", "topic_id"],
};
/** The write-time column of each table (the age of the oldest delta row decides a compaction). */
const STAMP: Record<LayeredTable, string> = { student_mastery: "last_updated", learner_state: "updated_at" };
const SEQUENCE = "serving_delta_seq";

/**
 * Whether a layered table's base keeps the table's PRIMARY KEY. student_mastery's does not: DuckDB keeps a
 * primary key as an in-memory ART (~200 bytes a key), and the full runs' base rewrite (replaceBaseRows) builds
 * it whole inside one transaction, ~55M keys at 100M events (5 rows a pair), ~11 GB: the served step's write
 * ran out of a 5 GB limit there (docs/benchmarks.md "100M with the real served step: scored, then out of DuckDB
 * memory at the write"). Its writers keep the keys unique instead (a full run's rewrite drops the rows it
 * replaces; foldDelta updates the keys it finds and inserts only the others; `baseDuplicateKeys` checks it),
 * and its reads go by student through student_mastery_by_student, one ART key a student. A base written
 * with the key (a file from before) loses it at its next rewrite. learner_state's base keeps its key (one
 * row a pair; the batch's state writes and the embedded POST's state reads go through it).
 */
export const BASE_PRIMARY_KEY: Record<LayeredTable, boolean> = {
  student_mastery: false,
  learner_state: true,
};

/** `ddl` (a CREATE TABLE statement) without its PRIMARY KEY clause. */
export const withoutPrimaryKey = (ddl: string): string => ddl.replace(/,\s*PRIMARY KEY\s*\([^)]*\)/, "");

export const baseTable = (t: LayeredTable): string => `${t}_base`;
export const deltaTable = (t: LayeredTable): string => `${t}_delta`;

/** The layered table a DDL statement creates or alters, or null. */
function layeredIn(ddl: string): LayeredTable | null {
  for (const t of LAYERED_TABLES)
    if (new RegExp(`^\\s*(CREATE TABLE IF NOT EXISTS|ALTER TABLE) ${t}\\b(?!_)`).test(ddl)) return t;
  return null;
}

const renamed = (ddl: string, t: LayeredTable, to: string) => ddl.replace(new RegExp(`\\b${t}\\b(?!_)`), to);

/**
 * Applies the core DDL on a DuckDB connection with the layered tables split into base + delta + view,
 * moving a file written before this layout (a plain table under the view's name, with its indexes) to it.
 */
export async function applyDuckCoreDdl(conn: DuckDBConnection, coreDdl: readonly string[]): Promise<void> {
  // One catalog read for the layout in place: which names are tables, and their columns (views' too).
  // The catalog is read through duckdb_views() and duckdb_tables() only: duckdb_columns() binds every view
  // of the file (~200 ms on a reopen under load).
  const names = LAYERED_TABLES.map((t) => `'${t}'`).join(", ");
  const catalog = async (fn: string, col: string) =>
    (
      await conn.runAndReadAll(
        `SELECT ${col} AS name${fn === "duckdb_views" ? ", sql" : ""} FROM ${fn}() WHERE database_name = current_database()
         AND schema_name = current_schema() AND ${col} IN (${names})`,
      )
    ).getRowObjectsJS() as { name: string; sql?: string }[];
  const plainTables = new Set((await catalog("duckdb_tables", "table_name")).map((r) => r.name));
  for (const t of LAYERED_TABLES) {
    if (!plainTables.has(t)) continue;
    // A file of the plain-table layout: its indexes block a rename, so they move with it.
    const idx = (
      await conn.runAndReadAll(
        `SELECT index_name, sql FROM duckdb_indexes()
         WHERE database_name = current_database() AND schema_name = current_schema() AND table_name = $1`,
        [t],
      )
    ).getRowObjectsJS() as { index_name: string; sql: string | null }[];
    for (const i of idx) await conn.run(`DROP INDEX ${i.index_name}`);
    await conn.run(`ALTER TABLE ${t} RENAME TO ${baseTable(t)}`);
    for (const i of idx)
      if (i.sql !== null) await conn.run(i.sql.replace(new RegExp(`ON ${t}\\b(?!_)`), `ON ${baseTable(t)}`));
  }
  await conn.run(`CREATE SEQUENCE IF NOT EXISTS ${SEQUENCE}`);
  const run = ddlRunner(conn);
  for (const ddl of coreDdl) {
    if (isFeaturesDdl(ddl)) {
      // features: a view over stored rows and snapshots (storage/featureRows.ts).
      await applyFeatureLayout(conn, ddl);
      continue;
    }
    const t = layeredIn(ddl);
    if (t === null) {
      await run(ddl);
      continue;
    }
    const base = renamed(ddl, t, baseTable(t));
    await run(BASE_PRIMARY_KEY[t] ? base : withoutPrimaryKey(base));
    // The delta has no primary key: an append never probes or deletes from an index.
    await run(withoutPrimaryKey(renamed(ddl, t, deltaTable(t))));
  }
  const views = new Map((await catalog("duckdb_views", "view_name")).map((r) => [r.name, r.sql ?? ""]));
  for (const t of LAYERED_TABLES) {
    await run(
      `ALTER TABLE ${deltaTable(t)} ADD COLUMN IF NOT EXISTS delta_seq BIGINT DEFAULT nextval('${SEQUENCE}')`,
    );
    // The view is replaced only when it is missing or the base's columns changed (a column added since).
    const want = newestRowSql(t, await baseColumns(conn, t));
    if (!(views.get(t) ?? "").includes(want)) await conn.run(`CREATE OR REPLACE VIEW ${t} AS ${want}`);
  }
  // The layout's DDL goes into the file now, not only into the WAL: DuckDB cannot replay a WAL holding
  // `ADD COLUMN ... DEFAULT nextval(...)` ("GetDefaultDatabase with no default database set"), so a
  // process killed before its first checkpoint left a file nothing could open (found by
  // test/serving/serveWorkers.int.test.ts: a SIGKILLed worker's replacement could not open its file).
  await conn.run("CHECKPOINT");
}

/** `ALTER TABLE <table> ADD COLUMN IF NOT EXISTS <column> ...`: the table and the column. */
const ADD_COLUMN = /^\s*ALTER TABLE (\w+) ADD COLUMN IF NOT EXISTS (\w+)\s/i;

/**
 * Runs DDL on `conn`, skipping an `ADD COLUMN IF NOT EXISTS` whose column the table already has: the statement
 * is a no-op then, but DuckDB still spends ~1 ms of catalog work on it, and a file opened again runs ~100 of
 * them. A table's columns are read once (its first such statement) and kept up to date as columns are added.
 */
function ddlRunner(conn: DuckDBConnection): (ddl: string) => Promise<void> {
  const columns = new Map<string, Set<string>>();
  return async (ddl) => {
    const m = ADD_COLUMN.exec(ddl);
    if (m === null) {
      await conn.run(ddl);
      return;
    }
    const table = (m[1] as string).toLowerCase();
    const column = (m[2] as string).toLowerCase();
    let has = columns.get(table);
    if (has === undefined) {
      const names = (await conn.runAndReadAll(`SELECT * FROM ${table} LIMIT 0`)).columnNames();
      has = new Set(names.map((n) => n.toLowerCase()));
      columns.set(table, has);
    }
    if (has.has(column)) return;
    await conn.run(ddl);
    has.add(column);
  };
}

async function baseColumns(conn: DuckDBConnection, t: LayeredTable): Promise<string[]> {
  return (await conn.runAndReadAll(`SELECT * FROM ${baseTable(t)} LIMIT 0`)).columnNames();
}

/**
 * The newest row per key: the delta's newest (highest delta_seq), else the base row. The anti-join is a LEFT
 * JOIN ... IS NULL (not NOT EXISTS) so a filter on student_key reaches both tables' scans (a point read of
 * one student stays a filtered scan / index lookup of the base, measured against NOT EXISTS: ~9x faster).
 */
function newestRowSql(t: LayeredTable, cols: readonly string[]): string {
  const key = LAYERED_KEY[t];
  return `SELECT ${cols.join(", ")} FROM ${deltaTable(t)}
    QUALIFY row_number() OVER (PARTITION BY ${key.join(", ")} ORDER BY delta_seq DESC) = 1
  UNION ALL
  SELECT ${cols.map((c) => `b.${c}`).join(", ")} FROM ${baseTable(t)} b
    LEFT JOIN ${deltaTable(t)} d ON ${key.map((k) => `d.${k} = b.${k}`).join(" AND ")}
    WHERE d.${key[0]} IS NULL`;
}

/**
 * Keys of `t`'s base held by more than one row (with their row counts, at most `limit`, in key order): none when
 * its writers kept their promise (BASE_PRIMARY_KEY). A check for tests and for an operator, one aggregate over the
 * base.
 */
export async function baseDuplicateKeys(
  store: DuckStore,
  t: LayeredTable,
  limit = 10,
): Promise<{ key: string[]; rows: number }[]> {
  const key = LAYERED_KEY[t];
  const found = await store.all<Record<string, unknown> & { n: bigint }>(
    `SELECT ${key.join(", ")}, count(*) AS n FROM ${baseTable(t)} GROUP BY ALL HAVING count(*) > 1
     ORDER BY ${key.join(", ")} LIMIT ${Math.max(0, Math.floor(limit))}`,
  );
  return found.map((r) => ({ key: key.map((k) => String(r[k])), rows: Number(r.n) }));
}

export interface DeltaShare {
  table: LayeredTable;
  baseRows: number;
  deltaRows: number;
  /** Age of the oldest delta row in days (by its write time), null when the delta is empty. */
  oldestDays: number | null;
}

/** How large each delta is next to its base, and how old its oldest row is (as of `nowUs`). */
export async function deltaShares(store: DuckStore, nowUs: number): Promise<DeltaShare[]> {
  const out: DeltaShare[] = [];
  for (const t of LAYERED_TABLES) {
    const r = await store.one<{ b: bigint; d: bigint; oldest: number | null }>(
      `SELECT (SELECT count(*) FROM ${baseTable(t)}) AS b, (SELECT count(*) FROM ${deltaTable(t)}) AS d,
              (SELECT min(epoch_us(${STAMP[t]}))::DOUBLE FROM ${deltaTable(t)}) AS oldest`,
    );
    const oldest = r?.oldest ?? null;
    out.push({
      table: t,
      baseRows: Number(r?.b ?? 0n),
      deltaRows: Number(r?.d ?? 0n),
      oldestDays: oldest === null ? null : (nowUs - oldest) / 86_400e6,
    });
  }
  return out;
}

export interface CompactionPolicy {
  /** Compact when a delta holds at least this share of its base's rows (default 0.25). */
  maxShare: number;
  /** Compact when a delta's oldest row is at least this many days old (default 7). */
  maxAgeDays: number;
}
export const DEFAULT_COMPACTION: CompactionPolicy = { maxShare: 0.25, maxAgeDays: 7 };

/** Why the policy asks for a compaction now (null: it does not). */
export function compactionReason(shares: readonly DeltaShare[], policy: CompactionPolicy): string | null {
  for (const s of shares) {
    if (s.deltaRows === 0) continue;
    if (s.deltaRows >= policy.maxShare * Math.max(1, s.baseRows))
      return `${s.table}: ${s.deltaRows} delta rows >= ${policy.maxShare} x ${s.baseRows} base rows`;
    if (s.oldestDays !== null && s.oldestDays >= policy.maxAgeDays)
      return `${s.table}: oldest delta row ${s.oldestDays.toFixed(1)} days old >= ${policy.maxAgeDays}`;
  }
  return null;
}

/**
 * Folds the delta rows (of `where`, a filter on the delta's columns, e.g. one score_source; default all)
 * into the base table: the newest delta row per key replaces or adds the base row, then those delta rows
 * are deleted. Inside the caller's transaction if any. Returns the keys folded.
 */
export async function foldDelta(store: DuckStore, t: LayeredTable, where = "TRUE"): Promise<number> {
  const cols = await store.withConnection((conn) => baseColumns(conn, t));
  const n = await store.one<{ n: bigint }>(
    `SELECT count(DISTINCT (${LAYERED_KEY[t].join(", ")})) AS n FROM ${deltaTable(t)} WHERE ${where}`,
  );
  if (Number(n?.n ?? 0n) === 0) return 0;
  const newest = `SELECT ${cols.join(", ")} FROM ${deltaTable(t)} WHERE ${where}
    QUALIFY row_number() OVER (PARTITION BY ${LAYERED_KEY[t].join(", ")} ORDER BY delta_seq DESC) = 1`;
  // UPDATE of the keys in the base, then INSERT of the others: no primary-key deletes (an INSERT OR REPLACE
  // deletes from the index, which makes the commit checkpoint every index of the file).
  await store.run(`CREATE OR REPLACE TEMP TABLE serving_fold AS ${newest}`);
  const set = cols
    .filter((c) => !LAYERED_KEY[t].includes(c))
    .map((c) => `${c} = x.${c}`)
    .join(", ");
  const match = LAYERED_KEY[t].map((k) => `${baseTable(t)}.${k} = x.${k}`).join(" AND ");
  await store.run(`UPDATE ${baseTable(t)} SET ${set} FROM temp.serving_fold x WHERE ${match}`);
  await store.run(
    `INSERT INTO ${baseTable(t)} (${cols.join(", ")}) SELECT ${cols.join(", ")} FROM temp.serving_fold x
     WHERE NOT EXISTS (SELECT 1 FROM ${baseTable(t)} b WHERE ${LAYERED_KEY[t].map((k) => `b.${k} = x.${k}`).join(" AND ")})`,
  );
  await store.run(`DELETE FROM ${deltaTable(t)} WHERE ${where}`);
  await store.run("DROP TABLE temp.serving_fold");
  return Number(n?.n ?? 0n);
}

/**
 * Replaces a set of rows of `<t>_base` by writing a new base table and swapping it in under the base's name,
 * inside the caller's transaction: the old base's rows that `keep` (a filter on the base's columns, alias b)
 * keeps, then `rows` (a SELECT whose columns are named as the base's, inserted BY NAME: a column it does not name is
 * NULL; $parameters from `params`). The caller keeps the keys unique: `keep` drops every base row of a key `rows`
 * writes, and `rows` holds each key once (a base without its primary key, BASE_PRIMARY_KEY, checks nothing). The new
 * table is created from the old one's own DDL (duckdb_tables(): columns, types; its primary key only where
 * BASE_PRIMARY_KEY keeps one, so an older file's key goes at its first rewrite) and gets the old one's indexes again. A full rule run replaces a third of student_mastery's rows: as DELETE + INSERT, the
 * commit removes every deleted key from the primary key's ART, fetching each deleted row's key strings from
 * their compressed segments one row at a time (most of the commit's CPU at 1M); a new table's index is built
 * from the appended rows only, and the old table's blocks are freed whole (docs/benchmarks.md "The full rule
 * step's CPU (rules15)"). Returns the number of rows `rows` inserted.
 */
export async function replaceBaseRows(
  store: DuckStore,
  t: LayeredTable,
  keep: string,
  rows: string,
  params?: Params,
): Promise<number> {
  const base = baseTable(t);
  const next = `${base}_next`;
  const where = "database_name = current_database() AND schema_name = current_schema() AND table_name = $t";
  const ddl = await store.one<{ sql: string | null }>(`SELECT sql FROM duckdb_tables() WHERE ${where}`, {
    t: base,
  });
  const create = ddl?.sql ?? null;
  const head = new RegExp(`^CREATE TABLE ${base}\\(`);
  if (create === null || !head.test(create))
    throw new StorageError(
      "SERVING_LAYOUT",
      `cannot rewrite ${base}: its DDL in duckdb_tables() is ${JSON.stringify(create)}, expected "CREATE TABLE ${base}(...)": open the file with this version (DuckStore.open moves it to the base + delta layout) and rerun`,
    );
  const indexes = await store.all<{ sql: string | null }>(`SELECT sql FROM duckdb_indexes() WHERE ${where}`, {
    t: base,
  });
  await store.run(`DROP TABLE IF EXISTS ${next}`);
  const nextDdl = create.replace(head, `CREATE TABLE ${next}(`);
  await store.run(BASE_PRIMARY_KEY[t] ? nextDdl : withoutPrimaryKey(nextDdl));
  await store.run(`INSERT INTO ${next} SELECT * FROM ${base} b WHERE ${keep}`);
  const inserted = await store.runCount(`INSERT INTO ${next} BY NAME ${rows}`, params);
  await store.run(`DROP TABLE ${base}`);
  await store.run(`ALTER TABLE ${next} RENAME TO ${base}`);
  for (const i of indexes) if (i.sql !== null) await store.run(i.sql);
  return inserted;
}

export interface CompactionResult {
  folded: Record<LayeredTable, number>;
  millis: number;
}

/** Folds every delta row into the base tables in one transaction, then CHECKPOINTs the file. */
export async function compactServingTables(
  store: DuckStore,
  opts: { onPhase?: (name: string) => void } = {},
): Promise<CompactionResult> {
  const t0 = performance.now();
  const folded = { student_mastery: 0, learner_state: 0 };
  await store.transaction(async () => {
    for (const t of LAYERED_TABLES) {
      folded[t] = await foldDelta(store, t);
      opts.onPhase?.(`fold ${t}`);
    }
  });
  await store.run("CHECKPOINT");
  opts.onPhase?.("checkpoint");
  return { folded, millis: performance.now() - t0 };
}
