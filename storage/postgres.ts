import pg from "pg";
import { DuckStore, StorageError } from "./duckdb.ts";
import { CORE_DDL } from "./schema.ts";

/** A row as plain JS values (BIGINT -> string unless cast, TIMESTAMP -> Date in UTC, DOUBLE PRECISION -> number). */
export type PgRow = Record<string, unknown>;
/** Positional parameters ($1, $2, ...), the subset both DuckDB and PostgreSQL bind the same way. */
export type PgParam = string | number | boolean | bigint | null;

/** PostgreSQL OIDs of TIMESTAMP WITHOUT TIME ZONE and BIGINT (int8). */
const OID_TIMESTAMP = 1114;

/**
 * Timestamps are stored as UTC wall-clock (TIMESTAMP WITHOUT TIME ZONE), as in the DuckDB store.
 * node-postgres parses them as *local* time by default, which shifts every value on a machine
 * whose TZ is not UTC; this parser reads them as UTC instead. Scoped to this adapter's clients
 * (not pg.types globally) so other users of `pg` in the process are unaffected.
 */
const utcTypes = {
  getTypeParser(oid: number, format?: "text" | "binary") {
    if (oid === OID_TIMESTAMP && format !== "binary")
      return (value: string) => new Date(`${value.replace(" ", "T")}Z`);
    return pg.types.getTypeParser(oid, format ?? "text");
  },
} as pg.CustomTypesConfig;

/**
 * Rewrites DuckDB DDL from storage/schema.ts into PostgreSQL: DOUBLE -> DOUBLE PRECISION. The core
 * tables use only types the two share otherwise (VARCHAR, VARCHAR[], INTEGER, BIGINT, BOOLEAN, TIMESTAMP).
 */
export function pgDialectDdl(ddl: string): string {
  return ddl.replace(/\bDOUBLE\b(?!\s+PRECISION)/g, "DOUBLE PRECISION");
}

export interface PgOpenOptions {
  /**
   * Schema to create (if missing) and put first on the search_path, so tests and tenants can share
   * one database without colliding. Default: the server's default search_path (usually "public").
   */
  schema?: string;
  /** Also create the core tables of storage/schema.ts (raw_events, student_mastery, ...). Default false. */
  coreTables?: boolean;
}

const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

/**
 * The PostgreSQL store: same small surface as DuckStore (run / all / one / transaction / tableNames /
 * close), over ONE client connection, so `transaction` is a real BEGIN ... COMMIT on that
 * connection, exactly like DuckStore's single connection. SQL written with $1-style parameters runs
 * unchanged on both.
 */
export class PgStore {
  readonly dialect = "postgres" as const;

  private constructor(
    readonly url: string,
    readonly schema: string | undefined,
    private readonly client: pg.Client,
  ) {}

  /** Connects to `url` (e.g. postgres://postgres@127.0.0.1:5432/test). */
  static async open(url: string, opts: PgOpenOptions = {}): Promise<PgStore> {
    if (opts.schema !== undefined && !SCHEMA_NAME.test(opts.schema))
      throw new StorageError(
        "PG_SCHEMA",
        `schema "${opts.schema}" is not a plain lower-case identifier; use letters, digits and _ (e.g. reg_test_123)`,
      );
    const client = new pg.Client({ connectionString: url, types: utcTypes });
    try {
      await client.connect();
    } catch (err) {
      throw new StorageError(
        "PG_CONNECT",
        `cannot connect to PostgreSQL at ${redact(url)}: ${(err as Error).message}. ` +
          "Check MASTERY_PG_URL (e.g. postgres://postgres@127.0.0.1:5432/test) and that the server is running.",
      );
    }
    // Without this, an idle-connection error (server restart) would be an unhandled 'error' event.
    client.on("error", () => {});
    const store = new PgStore(url, opts.schema, client);
    await client.query("SET TIME ZONE 'UTC'");
    if (opts.schema !== undefined) {
      await client.query(`CREATE SCHEMA IF NOT EXISTS ${opts.schema}`);
      await client.query(`SET search_path TO ${opts.schema}`);
    }
    if (opts.coreTables) for (const ddl of CORE_DDL) await client.query(pgDialectDdl(ddl));
    return store;
  }

  async run(sql: string, params?: readonly PgParam[]): Promise<void> {
    await this.query(sql, params);
  }

  async all<T extends PgRow = PgRow>(sql: string, params?: readonly PgParam[]): Promise<T[]> {
    const res = await this.query(sql, params);
    return res.rows as T[];
  }

  async one<T extends PgRow = PgRow>(sql: string, params?: readonly PgParam[]): Promise<T | undefined> {
    const rows = await this.all<T>(sql, params);
    return rows[0];
  }

  /**
   * Like `all`, but parameters may also be arrays (bound as PostgreSQL arrays), for set-based
   * statements such as INSERT ... SELECT FROM unnest($1::text[], $2::float8[]) that write a whole
   * batch in one round trip. PostgreSQL only (DuckDB binds lists differently).
   */
  async allArrays<T extends PgRow = PgRow>(
    sql: string,
    params: readonly (PgParam | readonly PgParam[])[],
  ): Promise<T[]> {
    const res = await this.client.query(sql, params as unknown[]);
    return res.rows as T[];
  }

  /** Runs `fn` inside a transaction; rolls back and rethrows on error. */
  async transaction<T>(fn: () => Promise<T>): Promise<T> {
    await this.client.query("BEGIN");
    try {
      const out = await fn();
      await this.client.query("COMMIT");
      return out;
    } catch (err) {
      await this.client.query("ROLLBACK");
      throw err;
    }
  }

  /** Names of the tables in the store's schema (or in "public" when no schema was given). */
  async tableNames(): Promise<string[]> {
    const rows = await this.all<{ table_name: string }>(
      "SELECT table_name FROM information_schema.tables WHERE table_schema = $1 AND table_type = 'BASE TABLE' ORDER BY 1",
      [this.schema ?? "public"],
    );
    return rows.map((r) => r.table_name);
  }

  /** Drops the store's schema and everything in it (tests clean up with this). */
  async dropSchema(): Promise<void> {
    if (this.schema === undefined)
      throw new StorageError(
        "PG_SCHEMA",
        "dropSchema: this store was opened without a schema; refusing to drop public",
      );
    await this.client.query(`DROP SCHEMA IF EXISTS ${this.schema} CASCADE`);
  }

  async close(): Promise<void> {
    await this.client.end();
  }

  private async query(sql: string, params?: readonly PgParam[]): Promise<pg.QueryResult> {
    // BIGINT parameters: pg serializes bigint via String(); pass them as text, Postgres casts.
    const values = params?.map((p) => (typeof p === "bigint" ? p.toString() : p));
    return values === undefined ? this.client.query(sql) : this.client.query(sql, values);
  }
}

/** The URL without its password, for error messages. */
function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return u.toString();
  } catch {
    return "(unparseable URL)";
  }
}

/**
 * What the registry and experiments need from a store: the surface DuckStore and PgStore share.
 * Write SQL with $1-style positional parameters and types both engines know (VARCHAR, INTEGER,
 * BIGINT, BOOLEAN, TIMESTAMP, DOUBLE via pgDialectDdl); pass timestamps as ISO strings ending in Z;
 * read COUNT/BIGINT through Number() (DuckDB returns bigint, PostgreSQL a string).
 */
export interface SqlStore {
  run(sql: string, params?: PgParam[]): Promise<void>;
  all<T extends PgRow = PgRow>(sql: string, params?: PgParam[]): Promise<T[]>;
  one<T extends PgRow = PgRow>(sql: string, params?: PgParam[]): Promise<T | undefined>;
  transaction<T>(fn: () => Promise<T>): Promise<T>;
}

export type SqlDialect = "duckdb" | "postgres";

/** An open store with its dialect and a close that works for both engines. */
export interface OpenedStore {
  store: SqlStore;
  dialect: SqlDialect;
  /** Where the data lives, for messages (DuckDB path or redacted PostgreSQL URL + schema). */
  location: string;
  close(): Promise<void>;
}

export interface OpenSqlStoreOptions {
  /** PostgreSQL URL; when non-empty, PostgreSQL is used (the CLI passes MASTERY_PG_URL here). */
  pgUrl?: string | undefined;
  /** DuckDB file (":memory:" for tests) used when no PostgreSQL URL is configured. */
  dbPath: string;
  /** PostgreSQL schema (see PgOpenOptions.schema). */
  pgSchema?: string | undefined;
  /** DDL to apply (CREATE TABLE IF NOT EXISTS ...), written in the DuckDB dialect. */
  ddl?: readonly string[];
}

/**
 * Opens the configured store: PostgreSQL when a URL is given, else the embedded DuckDB file. Applies `ddl` in the right dialect.
 */
export async function openSqlStore(opts: OpenSqlStoreOptions): Promise<OpenedStore> {
  const url = opts.pgUrl;
  if (url !== undefined && url !== "") {
    const pgStore = await PgStore.open(
      url,
      opts.pgSchema !== undefined ? { schema: opts.pgSchema, coreTables: true } : { coreTables: true },
    );
    for (const ddl of opts.ddl ?? []) await pgStore.run(pgDialectDdl(ddl));
    return {
      store: pgStore,
      dialect: "postgres",
      location: `${redact(url)}${opts.pgSchema !== undefined ? ` (schema ${opts.pgSchema})` : ""}`,
      close: () => pgStore.close(),
    };
  }
  const duck = await DuckStore.open(opts.dbPath);
  for (const ddl of opts.ddl ?? []) await duck.run(ddl);
  return {
    store: duck,
    dialect: "duckdb",
    location: opts.dbPath,
    close: async () => duck.close(),
  };
}
