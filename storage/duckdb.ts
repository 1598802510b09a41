import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { type DuckDBConnection, DuckDBInstance, type DuckDBValue } from "@duckdb/node-api";
import { CORE_DDL } from "./schema.ts";

/** A row as plain JS values (BIGINT -> bigint, TIMESTAMP -> Date, DECIMAL -> number, LIST -> array). */
export type Row = Record<string, unknown>;
export type Params = DuckDBValue[] | Record<string, DuckDBValue>;

/**
 * The embedded store: one DuckDB file holding the raw zone, features, scores and state.
 * Small surface on purpose: run a statement, read rows, bulk-load through an appender.
 */
export class DuckStore {
  private constructor(
    readonly path: string,
    private readonly instance: DuckDBInstance,
    readonly conn: DuckDBConnection,
  ) {}

  /** Opens (creating if needed) the DuckDB file at `path` (":memory:" for tests) and applies the core schema. */
  static async open(path: string, opts: { threads?: number; memoryLimit?: string } = {}): Promise<DuckStore> {
    if (path !== ":memory:") mkdirSync(dirname(path), { recursive: true });
    const config: Record<string, string> = {};
    if (opts.threads) config.threads = String(opts.threads);
    if (opts.memoryLimit) config.memory_limit = opts.memoryLimit;
    let instance: DuckDBInstance;
    try {
      instance = await DuckDBInstance.create(path, config);
    } catch (err) {
      throw new StorageError(
        "DUCKDB_OPEN",
        `cannot open DuckDB file ${path}: ${(err as Error).message}. ` +
          "Is another mastery process holding it? Stop it or pass a different --db path.",
      );
    }
    const conn = await instance.connect();
    const store = new DuckStore(path, instance, conn);
    for (const ddl of CORE_DDL) await conn.run(ddl);
    return store;
  }

  async run(sql: string, params?: Params): Promise<void> {
    await this.conn.run(sql, params);
  }

  async all<T extends Row = Row>(sql: string, params?: Params): Promise<T[]> {
    const reader = await this.conn.runAndReadAll(sql, params);
    return reader.getRowObjectsJS() as T[];
  }

  async one<T extends Row = Row>(sql: string, params?: Params): Promise<T | undefined> {
    const rows = await this.all<T>(sql, params);
    return rows[0];
  }

  /** Runs `fn` inside a transaction; rolls back and rethrows on error. */
  async transaction<T>(fn: () => Promise<T>): Promise<T> {
    await this.conn.run("BEGIN TRANSACTION");
    try {
      const out = await fn();
      await this.conn.run("COMMIT");
      return out;
    } catch (err) {
      await this.conn.run("ROLLBACK");
      throw err;
    }
  }

  /** Names of the persistent (non-temporary) tables in the main schema. */
  async tableNames(): Promise<string[]> {
    const rows = await this.all<{ table_name: string }>(
      "SELECT table_name FROM duckdb_tables() WHERE NOT temporary AND schema_name = 'main' ORDER BY 1",
    );
    return rows.map((r) => r.table_name);
  }

  close(): void {
    this.conn.closeSync();
    this.instance.closeSync();
  }
}

export class StorageError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = "StorageError";
  }
}

/** Quotes a SQL string literal (for file paths handed to read_csv/read_parquet, which cannot be parameters). */
export function sqlString(value: string): string {
  return `'${value.replaceAll("'", "''")}'`;
}
