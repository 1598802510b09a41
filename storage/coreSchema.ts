import type { DuckDBConnection } from "@duckdb/node-api";
import { applyDuckCoreDdl } from "./servingTables.ts";
import { ensureStudentContext } from "./studentContext.ts";

/**
 * The core schema of the embedded store on open. The migration (storage/servingTables.ts applyDuckCoreDdl,
 * then storage/studentContext.ts ensureStudentContext) is ~145 statements, most of them one
 * `ADD COLUMN IF NOT EXISTS` per column, and catalog reads: ~0.1 s of CPU per open, paid in full by a new file
 * or `:memory:` store too (the tests open hundreds). A store whose catalog is empty ends up with exactly the
 * catalog the migration leaves on an empty store, so after the first empty store of a process has been
 * migrated, that catalog (its CREATE statements, read back from DuckDB) is kept per DDL list and replayed on
 * the next empty stores in one transaction: 15 statements, ~0.33x the CPU (bench/storeOpen.bench.ts). Any
 * store with something in its catalog (a file opened again, a file of an older layout) goes through the
 * migration as before, so there is still one migration path, and the replayed statements come from it
 * (test/storage/coreSchema.test.ts compares the two catalogs column by column).
 */

/** How the schema was applied: the migration, or the replay of a migrated empty store's catalog. */
export type CoreSchemaPath = "migrated" | "replayed";

/** Per DDL list (joined), the CREATE statements the migration left on an empty store of this process. */
export type CoreSchemaRecipes = Map<string, readonly string[]>;

const PROCESS_RECIPES: CoreSchemaRecipes = new Map();

/**
 * Applies `coreDdl` (CORE_DDL + DUCK_ONLY_DDL) on `conn`: replays the recipe on an empty catalog when one is
 * known for this DDL, else migrates (and, when the catalog was empty, keeps the result as the recipe).
 * `recipes` is the process-wide cache unless a caller passes its own (tests).
 */
export async function applyCoreSchema(
  conn: DuckDBConnection,
  coreDdl: readonly string[],
  recipes: CoreSchemaRecipes = PROCESS_RECIPES,
): Promise<CoreSchemaPath> {
  const key = coreDdl.join("\n;\n");
  const empty = await catalogIsEmpty(conn);
  const recipe = empty ? recipes.get(key) : undefined;
  if (recipe !== undefined) {
    await conn.run("BEGIN TRANSACTION");
    try {
      for (const sql of recipe) await conn.run(sql);
      await conn.run("COMMIT");
    } catch (err) {
      await conn.run("ROLLBACK").catch(() => undefined);
      throw err;
    }
    // As the migration does: the DDL into the file, not only the WAL (a WAL holding a nextval default could
    // not be replayed; storage/servingTables.ts applyDuckCoreDdl).
    await conn.run("CHECKPOINT");
    return "replayed";
  }
  await applyDuckCoreDdl(conn, coreDdl);
  await ensureStudentContext(conn);
  if (empty) recipes.set(key, await catalogStatements(conn));
  return "migrated";
}

const IN_DB = "database_name = current_database()";

/** Whether the current database holds no table, view, sequence or index (in any of its schemas). */
async function catalogIsEmpty(conn: DuckDBConnection): Promise<boolean> {
  const r = await conn.runAndReadAll(
    `SELECT (SELECT count(*) FROM duckdb_tables() WHERE ${IN_DB})
          + (SELECT count(*) FROM duckdb_views() WHERE ${IN_DB} AND NOT internal)
          + (SELECT count(*) FROM duckdb_sequences() WHERE ${IN_DB})
          + (SELECT count(*) FROM duckdb_indexes() WHERE ${IN_DB}) AS n`,
  );
  return Number(r.getRows()[0]?.[0] ?? 1) === 0;
}

/**
 * The CREATE statements of the current schema's objects, in an order that replays: sequences (the delta
 * tables' defaults use one), tables, views (over the tables), indexes; each kind in creation order.
 */
export async function catalogStatements(conn: DuckDBConnection): Promise<string[]> {
  const where = `${IN_DB} AND schema_name = current_schema()`;
  const out: string[] = [];
  for (const q of [
    `SELECT sql FROM duckdb_sequences() WHERE ${where} ORDER BY sequence_oid`,
    `SELECT sql FROM duckdb_tables() WHERE ${where} ORDER BY table_oid`,
    `SELECT sql FROM duckdb_views() WHERE ${where} AND NOT internal ORDER BY view_oid`,
    `SELECT sql FROM duckdb_indexes() WHERE ${where} AND sql IS NOT NULL ORDER BY index_oid`,
  ]) {
    for (const [sql] of (await conn.runAndReadAll(q)).getRows()) if (typeof sql === "string") out.push(sql);
  }
  return out;
}
