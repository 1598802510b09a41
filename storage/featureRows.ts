import type { DuckDBConnection } from "@duckdb/node-api";
import type { DuckStore } from "./duckdb.ts";

/**
 * The features snapshots on the embedded file (issue 17 item 3): `features` is a VIEW over two tables, so
 * an incremental day writes only the pairs it recomputes instead of copying every other row.
 *
 * - `features_rows`: stored rows, the columns of the features DDL (storage/schema.ts) without
 *   days_since_last_activity, plus `chain_id` and `valid_until`. A row is computed as of its `as_of`.
 * - `feature_snapshots (as_of, chain_id)`: one row per snapshot a reader can ask for.
 *
 * A full build as of T starts a new chain: its rows are stored with as_of T. An incremental build from the
 * chain's newest snapshot T0 to T1 (features/incrementalFeatures.ts) stores only the recomputed pairs
 * (as of T1, same chain) and closes their previous rows (valid_until = T1); an untouched pair keeps its
 * row, which is the row a full build as of T1 computes except for days_since_last_activity and as_of.
 * So snapshot S = the rows of S's chain with as_of <= S < valid_until (NULL = open), as_of set to S and
 * days_since_last_activity computed from last_activity_at as of S (the build's expression, so a row read
 * as of its own as_of is bit for bit the stored one). A row is visible in at most one snapshot per pair
 * because closing and storing happen in one transaction.
 *
 * Readers keep their SQL (the view); writers use features/windows.ts and features/incrementalFeatures.ts.
 * A rebuild of a snapshot some later snapshot of its chain still derives from leaves the old chain's rows
 * in place for that later snapshot; `dropUnreadFeatureRows` deletes rows no snapshot reads.
 * PostgreSQL has no features reader: its features table (the plain DDL) stays as it is.
 */
export const FEATURE_ROWS = "features_rows";
export const FEATURE_SNAPSHOTS = "feature_snapshots";

/** Columns of features_rows that the view does not show. */
const LAYOUT_COLUMNS = ["chain_id", "valid_until"] as const;
/** The column computed at read time instead of stored. */
const READ_TIME_COLUMN = "days_since_last_activity";

/** Whether a core DDL statement is the features table's (applyDuckCoreDdl hands it here). */
export function isFeaturesDdl(ddl: string): boolean {
  return /^\s*CREATE TABLE IF NOT EXISTS features\s*\(/.test(ddl);
}

/**
 * SQL of the rows visible in snapshot `asOf` (an SQL expression of type TIMESTAMP), as a condition on
 * features_rows aliased `r`. The snapshot's chain is `chainId` when given, else read from feature_snapshots.
 */
export function visibleAtSql(asOf: string, alias = "r", chainId?: bigint): string {
  // A known chain id goes in as a literal (our own BIGINT), so DuckDB pushes it into the scan.
  const chain =
    chainId === undefined
      ? `(SELECT s.chain_id FROM ${FEATURE_SNAPSHOTS} s WHERE s.as_of = ${asOf})`
      : `${BigInt(chainId)}`;
  return `${alias}.chain_id = ${chain}
    AND ${alias}.as_of <= ${asOf} AND (${alias}.valid_until IS NULL OR ${alias}.valid_until > ${asOf})`;
}

/** days_since_last_activity of a stored row read as of `asOf` (the build's expression, features/windows.ts). */
export function daysSinceSql(asOf: string, alias = "r"): string {
  return `(epoch_us(${asOf}) - epoch_us(${alias}.last_activity_at)) / 86400e6`;
}

/**
 * Creates features_rows, feature_snapshots and the features view from the features DDL, moving a file of
 * the plain-table layout (a `features` table holding whole snapshots) to it: each as_of becomes a snapshot
 * of its own chain.
 */
export async function applyFeatureLayout(conn: DuckDBConnection, featuresDdl: string): Promise<void> {
  const plain =
    (
      await conn.runAndReadAll(
        `SELECT 1 FROM duckdb_tables() WHERE database_name = current_database()
         AND schema_name = current_schema() AND table_name = 'features'`,
      )
    ).getRows().length > 0;
  if (plain) await conn.run(`ALTER TABLE features RENAME TO ${FEATURE_ROWS}`);
  else await conn.run(featuresDdl.replace(/\bfeatures\s*\(/, `${FEATURE_ROWS} (`));
  await conn.run(`ALTER TABLE ${FEATURE_ROWS} ADD COLUMN IF NOT EXISTS chain_id BIGINT`);
  await conn.run(`ALTER TABLE ${FEATURE_ROWS} ADD COLUMN IF NOT EXISTS valid_until TIMESTAMP`);
  await conn.run(
    `CREATE TABLE IF NOT EXISTS ${FEATURE_SNAPSHOTS} (as_of TIMESTAMP PRIMARY KEY, chain_id BIGINT NOT NULL)`,
  );
  if (plain) {
    await conn.run(
      `INSERT INTO ${FEATURE_SNAPSHOTS}
       SELECT as_of, row_number() OVER (ORDER BY as_of) FROM (SELECT DISTINCT as_of FROM ${FEATURE_ROWS})`,
    );
    await conn.run(
      `UPDATE ${FEATURE_ROWS} SET chain_id = s.chain_id FROM ${FEATURE_SNAPSHOTS} s
       WHERE s.as_of = ${FEATURE_ROWS}.as_of`,
    );
  }
  await conn.run(`ALTER TABLE ${FEATURE_ROWS} DROP COLUMN IF EXISTS ${READ_TIME_COLUMN}`);
  const cols = (await conn.runAndReadAll(`SELECT * FROM ${FEATURE_ROWS} LIMIT 0`)).columnNames();
  const shown: string[] = [];
  for (const c of cols) {
    if ((LAYOUT_COLUMNS as readonly string[]).includes(c)) continue;
    if (c === "last_activity_at") shown.push(`${daysSinceSql("s.as_of")} AS ${READ_TIME_COLUMN}`);
    shown.push(c === "as_of" ? "s.as_of" : `r.${c}`);
  }
  const want = `SELECT ${shown.join(", ")}
FROM ${FEATURE_SNAPSHOTS} s JOIN ${FEATURE_ROWS} r ON r.chain_id = s.chain_id AND r.as_of <= s.as_of
  AND (r.valid_until IS NULL OR r.valid_until > s.as_of)`;
  const current = (
    await conn.runAndReadAll(
      `SELECT sql FROM duckdb_views() WHERE database_name = current_database()
       AND schema_name = current_schema() AND view_name = 'features'`,
    )
  ).getRowObjectsJS() as { sql: string }[];
  if (!(current[0]?.sql ?? "").includes(want)) await conn.run(`CREATE OR REPLACE VIEW features AS ${want}`);
}

/** A new chain id (one more than any in use; 1 on an empty store). */
export async function nextChainId(store: DuckStore): Promise<bigint> {
  const r = await store.one<{ c: bigint | null }>(
    `SELECT greatest((SELECT max(chain_id) FROM ${FEATURE_SNAPSHOTS}), (SELECT max(chain_id) FROM ${FEATURE_ROWS})) AS c`,
  );
  return (r?.c ?? 0n) + 1n;
}

/** The snapshot as of `asOfUs` (microseconds): its chain, and whether a later snapshot of that chain exists. */
export async function featureSnapshot(
  store: DuckStore,
  asOfUs: bigint,
): Promise<{ chainId: bigint; hasLater: boolean } | null> {
  const r = await store.one<{ c: bigint; later: boolean }>(
    `SELECT s.chain_id AS c, EXISTS (SELECT 1 FROM ${FEATURE_SNAPSHOTS} l
       WHERE l.chain_id = s.chain_id AND l.as_of > s.as_of) AS later
     FROM ${FEATURE_SNAPSHOTS} s WHERE s.as_of = make_timestamp($t::BIGINT)`,
    { t: asOfUs },
  );
  return r === undefined ? null : { chainId: r.c, hasLater: r.later };
}

/**
 * Removes the snapshot as of `asOfUs` (if any) and deletes the rows of its chain that no remaining snapshot
 * reads (a later snapshot of the same chain keeps the rows it sees). Returns whether there was one.
 */
export async function dropFeatureSnapshot(store: DuckStore, asOfUs: bigint): Promise<boolean> {
  const snap = await featureSnapshot(store, asOfUs);
  if (snap === null) return false;
  await store.run(`DELETE FROM ${FEATURE_SNAPSHOTS} WHERE as_of = make_timestamp($t::BIGINT)`, { t: asOfUs });
  await dropUnreadFeatureRows(store, snap.chainId);
  return true;
}

/** Deletes the rows of chain `chainId` that no snapshot reads. */
export async function dropUnreadFeatureRows(store: DuckStore, chainId: bigint): Promise<void> {
  await store.run(
    `DELETE FROM ${FEATURE_ROWS} r WHERE r.chain_id = $c AND NOT EXISTS (SELECT 1 FROM ${FEATURE_SNAPSHOTS} s
       WHERE s.chain_id = r.chain_id AND r.as_of <= s.as_of AND (r.valid_until IS NULL OR r.valid_until > s.as_of))`,
    { c: chainId },
  );
}

/** Deletes every snapshot but the one as of `keepUs` and every row that snapshot does not read. */
export async function keepOnlyFeatureSnapshot(store: DuckStore, keepUs: bigint): Promise<void> {
  await store.run(`DELETE FROM ${FEATURE_SNAPSHOTS} WHERE as_of <> make_timestamp($t::BIGINT)`, {
    t: keepUs,
  });
  await store.run(
    `DELETE FROM ${FEATURE_ROWS} r WHERE NOT (${visibleAtSql("make_timestamp($t::BIGINT)")})
       OR r.chain_id IS NULL`,
    { t: keepUs },
  );
}

/** Deletes every snapshot and row. */
export async function dropAllFeatureSnapshots(store: DuckStore): Promise<void> {
  await store.run(`DELETE FROM ${FEATURE_SNAPSHOTS}`);
  await store.run(`DELETE FROM ${FEATURE_ROWS}`);
}

/** The chain of the snapshot as of `asOfUs`, registering a new full snapshot there when there is none (rows written by hand, e.g. test fixtures). */
export async function ensureFeatureSnapshot(store: DuckStore, asOfUs: bigint): Promise<bigint> {
  const snap = await featureSnapshot(store, asOfUs);
  if (snap !== null) return snap.chainId;
  const chain = await nextChainId(store);
  await store.run(`INSERT INTO ${FEATURE_SNAPSHOTS} VALUES (make_timestamp($t::BIGINT), $c)`, {
    t: asOfUs,
    c: chain,
  });
  return chain;
}
