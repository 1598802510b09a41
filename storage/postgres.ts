import { AsyncLocalStorage } from "node:async_hooks";
import { createRequire } from "node:module";
import type pg from "pg";
import { DuckStore, StorageError } from "./duckdb.ts";
import { parsePgTimestamp } from "./pgTimestamp.ts";
import { CORE_DDL } from "./schema.ts";
import { BackendUnavailableError, faultDetail, isUnavailable, redactUrl } from "./unavailable.ts";

/** A row as plain JS values (BIGINT -> string unless cast, TIMESTAMP -> Date in UTC, DOUBLE PRECISION -> number). */
export type PgRow = Record<string, unknown>;
/** Positional parameters ($1, $2, ...), the subset both DuckDB and PostgreSQL bind the same way. */
export type PgParam = string | number | boolean | bigint | null;

/**
 * The `pg` driver, loaded on first use with require(): commands on the embedded DuckDB store import this
 * module (registry, serving) but never connect to PostgreSQL, and loading pg costs ~0.1 s of start-up.
 */
let pgModule: typeof pg | undefined;
const loadPg = (): typeof pg => {
  pgModule ??= createRequire(import.meta.url)("pg") as typeof pg;
  return pgModule;
};

/** PostgreSQL OIDs of TIMESTAMP WITHOUT TIME ZONE and BIGINT (int8). */
const OID_TIMESTAMP = 1114;

/**
 * Timestamps are stored as UTC wall-clock (TIMESTAMP WITHOUT TIME ZONE), as in the DuckDB store.
 * node-postgres parses them as *local* time by default, which shifts every value on a machine
 * whose TZ is not UTC; this parser reads them as UTC instead (storage/pgTimestamp.ts). Scoped to this adapter's clients
 * (not pg.types globally) so other users of `pg` in the process are unaffected.
 */
const utcTypes = {
  getTypeParser(oid: number, format?: "text" | "binary") {
    if (oid === OID_TIMESTAMP && format !== "binary") return parsePgTimestamp;
    return loadPg().types.getTypeParser(oid, format ?? "text");
  },
} as pg.CustomTypesConfig;

/**
 * Rewrites DuckDB DDL from storage/schema.ts into PostgreSQL: DOUBLE -> DOUBLE PRECISION. The core
 * tables use only types the two share otherwise (VARCHAR, VARCHAR[], INTEGER, BIGINT, BOOLEAN, TIMESTAMP).
 */
export function pgDialectDdl(ddl: string): string {
  return ddl.replace(/\bDOUBLE\b(?!\s+PRECISION)/g, "DOUBLE PRECISION").replace(/\bBLOB\b/g, "BYTEA");
}

export interface PgOpenOptions {
  /**
   * Schema to create (if missing) and put first on the search_path, so tests and tenants can share
   * one database without colliding. Default: the server's default search_path (usually "public").
   */
  schema?: string;
  /** Also create the core tables of storage/schema.ts (raw_events, student_mastery, ...). Default false. */
  coreTables?: boolean;
  /** Pool size (default: MASTERY_PG_POOL_MAX or 10). */
  poolMax?: number;
  /**
   * Connections the pool keeps open however long they sit idle (default: MASTERY_PG_POOL_MIN, else poolMax:
   * a fixed-size pool). Above it, a connection idle for 30 s is closed. A pool that shrinks in a quiet
   * period pays for it in the first seconds of the next burst: each new connection is a PostgreSQL backend
   * to start, and its first statements run with cold catalog caches and no prepared plans
   * (docs/benchmarks.md, "The paced run's first seconds: the pool").
   */
  poolMin?: number;
  /** How long a connection above poolMin may sit idle before the pool closes it (ms; default 30000). */
  idleTimeoutMs?: number;
  /**
   * How long a query waits for a connection (a new one, or a free one from the pool) before it fails
   * as unavailable (ms; default MASTERY_PG_CONNECT_TIMEOUT_MS or 2000).
   */
  connectTimeoutMs?: number;
  /** Server-side statement_timeout (ms; default MASTERY_PG_STATEMENT_TIMEOUT_MS or none). */
  statementTimeoutMs?: number;
  /**
   * Client-side bound on a query's answer (ms; default MASTERY_PG_QUERY_TIMEOUT_MS or none): past it
   * the query fails as unavailable and its connection is dropped, so a server that stalls (accepts,
   * never answers) cannot hang a request. Set it above the longest legitimate query.
   */
  queryTimeoutMs?: number;
}

const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

/** Pool settings from the environment (documented in docs/runbook.md). */
export function pgPoolSettingsFromEnv(env: NodeJS.ProcessEnv = process.env): {
  poolMax: number;
  poolMin: number | undefined;
  connectTimeoutMs: number;
  statementTimeoutMs: number | undefined;
  queryTimeoutMs: number | undefined;
} {
  const int = (name: string, fallback: number | undefined, min: number): number | undefined => {
    const v = env[name];
    if (v === undefined || v === "") return fallback;
    const n = Number(v);
    if (!Number.isInteger(n) || n < min)
      throw new StorageError(
        "PG_CONFIG",
        `${name}=${v} must be an integer >= ${min} (e.g. ${fallback ?? 30000})`,
      );
    return n;
  };
  return {
    poolMax: int("MASTERY_PG_POOL_MAX", 10, 1) ?? 10,
    poolMin: int("MASTERY_PG_POOL_MIN", undefined, 0),
    connectTimeoutMs: int("MASTERY_PG_CONNECT_TIMEOUT_MS", 2000, 100) ?? 2000,
    statementTimeoutMs: int("MASTERY_PG_STATEMENT_TIMEOUT_MS", undefined, 1),
    queryTimeoutMs: int("MASTERY_PG_QUERY_TIMEOUT_MS", undefined, 1),
  };
}

/** pg-pool's connect callback: an error, or a client and its release. */
type AcquireCallback = (
  err: Error | undefined | null,
  client: pg.PoolClient | undefined,
  done: (release?: unknown) => void,
) => void;

/** CREATE TABLE / INDEX / SCHEMA ... IF NOT EXISTS: run one at a time across processes (see PgStore.run). */
const IDEMPOTENT_DDL = /^\s*CREATE\s+(?:UNIQUE\s+)?(?:TABLE|INDEX|SCHEMA)\s+IF\s+NOT\s+EXISTS\b/i;
/** The advisory lock key of that DDL ("mastddl" in ASCII). */
const DDL_LOCK_KEY = 0x6d617374646c;

/**
 * The PostgreSQL store: same small surface as DuckStore (run / all / one / transaction / tableNames /
 * close) over a pg.Pool. A statement takes any free connection; `transaction(fn)` holds ONE pooled
 * client for its BEGIN ... COMMIT, and every statement `fn` runs through this store goes to that
 * client (tracked with AsyncLocalStorage, so callers keep writing `store.run(...)` inside it).
 * After a server restart the pool drops the dead connections and opens new ones on the next query:
 * no process restart. Errors that mean "PostgreSQL is down" are thrown as BackendUnavailableError
 * (storage/unavailable.ts); SQL and data errors keep the driver's error (with its SQLSTATE `code`).
 */
export class PgStore {
  readonly dialect = "postgres" as const;
  private readonly tx = new AsyncLocalStorage<pg.PoolClient>();
  /**
   * Transactions in progress. `tx` is disabled whenever this drops to 0: an enabled AsyncLocalStorage keeps
   * Node 20's async hooks on, which run JavaScript at every promise's creation, await and settlement in the
   * whole process (every request's), while a transaction is rare on the serving path (alert crossings,
   * roster loads, DDL at start). `tx.run` enables it again for the next one (docs/benchmarks.md, serve22).
   */
  private openTransactions = 0;
  /** allPrepared's statement names by SQL text (the same name on every connection of the pool). */
  private readonly statementNames = new Map<string, string>();
  /**
   * When set, told how long each acquire of a pooled connection waited (ms): from the request for a connection
   * to the connection in hand (a free one, a new one, or one another caller released). Every statement outside
   * a transaction acquires once, a transaction once. For the benches' probes (bench/load.bench.ts pg-acquire);
   * unset, an acquire costs one check more. Not told of acquires that failed (a timeout, PostgreSQL down).
   */
  onAcquire: ((waitMs: number) => void) | undefined = undefined;

  private constructor(
    readonly url: string,
    readonly schema: string | undefined,
    private readonly pool: pg.Pool,
    readonly poolMax: number,
    /** One connection of its own for ping(): never queued behind the pool's busy connections. */
    private readonly probePool: pg.Pool,
  ) {
    // pool.query and pool.connect both go through the instance's connect (pg-pool calls this.connect), so
    // wrapping it here times every acquire of the pool, whichever path asked.
    const connect = pool.connect.bind(pool) as (cb?: AcquireCallback) => Promise<pg.PoolClient> | undefined;
    (pool as { connect: unknown }).connect = (cb?: AcquireCallback) => {
      const report = this.onAcquire;
      if (report === undefined) return connect(cb);
      const t0 = performance.now();
      if (cb === undefined)
        return connect()?.then((client) => {
          report(performance.now() - t0);
          return client;
        });
      return connect((err, client, done) => {
        if (err === undefined || err === null) report(performance.now() - t0);
        cb(err, client, done);
      });
    };
  }

  /** Connects to `url` (e.g. postgres://postgres@127.0.0.1:5432/test). */
  static async open(url: string, opts: PgOpenOptions = {}): Promise<PgStore> {
    if (opts.schema !== undefined && !SCHEMA_NAME.test(opts.schema))
      throw new StorageError(
        "PG_SCHEMA",
        `schema "${opts.schema}" is not a plain lower-case identifier; use letters, digits and _ (e.g. reg_test_123)`,
      );
    const env = pgPoolSettingsFromEnv();
    const poolMax = opts.poolMax ?? env.poolMax;
    const poolMin = Math.min(opts.poolMin ?? env.poolMin ?? poolMax, poolMax);
    const statementTimeout = opts.statementTimeoutMs ?? env.statementTimeoutMs;
    const queryTimeout = opts.queryTimeoutMs ?? env.queryTimeoutMs;
    // Session settings travel in the startup packet, so every pooled connection (including the
    // ones opened after a server restart) has them before its first query.
    const settings = ["-c TimeZone=UTC"];
    if (opts.schema !== undefined) settings.push(`-c search_path=${opts.schema}`);
    if (statementTimeout !== undefined) settings.push(`-c statement_timeout=${statementTimeout}`);
    const pool = new (loadPg().Pool)({
      connectionString: url,
      types: utcTypes,
      max: poolMax,
      min: poolMin,
      connectionTimeoutMillis: opts.connectTimeoutMs ?? env.connectTimeoutMs,
      idleTimeoutMillis: opts.idleTimeoutMs ?? 30_000,
      keepAlive: true,
      options: settings.join(" "),
      ...(queryTimeout !== undefined ? { query_timeout: queryTimeout } : {}),
    });
    // An idle connection killed by a server restart emits 'error' on the pool; the pool drops it
    // and the next query opens a fresh one. Without a listener it would crash the process.
    pool.on("error", () => {});
    const probePool = new (loadPg().Pool)({
      connectionString: url,
      max: 1,
      connectionTimeoutMillis: opts.connectTimeoutMs ?? env.connectTimeoutMs,
      idleTimeoutMillis: 0,
      keepAlive: true,
    });
    probePool.on("error", () => {});
    const store = new PgStore(url, opts.schema, pool, poolMax, probePool);
    try {
      await store.run("SELECT 1");
    } catch (err) {
      await pool.end().catch(() => undefined);
      await probePool.end().catch(() => undefined);
      throw new StorageError(
        "PG_CONNECT",
        `cannot connect to PostgreSQL at ${redactUrl(url)}: ${faultDetail(err)}. ` +
          "Check MASTERY_PG_URL (e.g. postgres://postgres@127.0.0.1:5432/test) and that the server is running.",
      );
    }
    if (opts.schema !== undefined) await store.run(`CREATE SCHEMA IF NOT EXISTS ${opts.schema}`);
    if (opts.coreTables) for (const ddl of CORE_DDL) await store.run(pgDialectDdl(ddl));
    return store;
  }

  async run(sql: string, params?: readonly PgParam[]): Promise<void> {
    // Idempotent DDL (every store's open) runs under one advisory lock: PostgreSQL's CREATE ... IF NOT
    // EXISTS is not safe against itself, so processes starting together on a new schema (several
    // `mastery worker`s, servers behind a balancer) failed with a duplicate key in pg_class/pg_namespace.
    if (IDEMPOTENT_DDL.test(sql) && this.tx.getStore() === undefined) {
      await this.transaction(async () => {
        await this.query(`SELECT pg_advisory_xact_lock(${DDL_LOCK_KEY})`);
        await this.query(sql, params);
      });
      return;
    }
    await this.query(sql, params);
  }

  async all<T extends PgRow = PgRow>(sql: string, params?: readonly PgParam[]): Promise<T[]> {
    const res = await this.query(sql, params);
    return res.rows as T[];
  }

  /**
   * Like `all`, as a named prepared statement: PostgreSQL parses and plans it once per pooled
   * connection, and later calls send only Bind/Execute. For the hot, fixed reads of the serving path
   * (GET /mastery's miss, history): in a sequential microbenchmark (one connection, a 180k-row table,
   * 1,500 indexed lookups) the client's CPU per query was 0.53-0.61x and the wall time 0.31-0.56x of
   * the unnamed statement's. `sql` must be a constant text (one statement per distinct text).
   */
  async allPrepared<T extends PgRow = PgRow>(sql: string, params: readonly PgParam[]): Promise<T[]> {
    return (await this.prepared(sql, params, undefined)).rows as T[];
  }

  /**
   * allPrepared with each row as an array of its column values in the SELECT's order (node-postgres
   * rowMode 'array'): no object with named keys is built per row, for a hot read that maps the
   * columns itself. Values are parsed as in `all` (TIMESTAMP -> Date in UTC, DOUBLE PRECISION -> number).
   */
  async arraysPrepared(sql: string, params: readonly PgParam[]): Promise<unknown[][]> {
    return (await this.prepared(sql, params, "array")).rows as unknown[][];
  }

  /** One named prepared statement per distinct SQL text, run in the caller's transaction if any. */
  private async prepared(sql: string, params: readonly PgParam[], rowMode: "array" | undefined) {
    let name = this.statementNames.get(sql);
    if (name === undefined) {
      name = `mastery_q${this.statementNames.size + 1}`;
      this.statementNames.set(sql, name);
    }
    const values = params.map((p) => (typeof p === "bigint" ? p.toString() : p));
    const client = this.tx.getStore();
    const config = rowMode === undefined ? { name, text: sql, values } : { name, text: sql, values, rowMode };
    try {
      return client !== undefined ? await client.query(config) : await this.pool.query(config);
    } catch (err) {
      throw this.wrap(err);
    }
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
    const res = await this.exec(sql, params as unknown[]);
    return res.rows as T[];
  }

  /**
   * Runs `fn` inside a transaction on one pooled client; rolls back and rethrows on error. Nested
   * calls join the outer transaction. A client whose connection broke is destroyed, not returned.
   */
  async transaction<T>(fn: () => Promise<T>): Promise<T> {
    if (this.tx.getStore() !== undefined) return fn();
    const client = await this.connect();
    let broken: unknown;
    // The pool listens for errors only on idle clients: a connection the server ends while this one is
    // checked out between two statements (a restart, pg_terminate_backend) emits 'error' on the client,
    // which would crash the process without a listener. The client is then destroyed, not returned.
    const onError = (err: Error) => {
      broken = err;
    };
    client.on("error", onError);
    try {
      await client.query("BEGIN");
      this.openTransactions++;
      let out: T;
      try {
        out = await this.tx.run(client, fn);
      } finally {
        // No transaction left: no statement may find a client in the context any more (getStore() is
        // undefined while disabled, as it is outside every transaction).
        if (--this.openTransactions === 0) this.tx.disable();
      }
      await client.query("COMMIT");
      return out;
    } catch (err) {
      if (isUnavailable(err)) broken = err;
      else
        await client.query("ROLLBACK").catch((e: unknown) => {
          broken = e;
        });
      throw this.wrap(err);
    } finally {
      client.removeListener("error", onError);
      client.release(broken instanceof Error ? broken : broken === undefined ? undefined : true);
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
    await this.run(`DROP SCHEMA IF EXISTS ${this.schema} CASCADE`);
  }

  /** Connections open and waiting callers (for /readyz and logs). */
  poolStats(): { total: number; idle: number; waiting: number; max: number } {
    return {
      total: this.pool.totalCount,
      idle: this.pool.idleCount,
      waiting: this.pool.waitingCount,
      max: this.poolMax,
    };
  }

  async close(): Promise<void> {
    await Promise.all([this.pool.end(), this.probePool.end()]);
  }

  /**
   * A liveness round trip (SELECT 1) on a connection of its own: answers while every pooled
   * connection is busy, so a saturated pool reads as busy, not down (/readyz, the outage monitor).
   * Throws BackendUnavailableError when PostgreSQL does not answer.
   */
  async ping(): Promise<void> {
    try {
      await this.probePool.query("SELECT 1");
    } catch (err) {
      throw this.wrap(err);
    }
  }

  private async query(sql: string, params?: readonly PgParam[]): Promise<pg.QueryResult> {
    // BIGINT parameters: pg serializes bigint via String(); pass them as text, Postgres casts.
    const values = params?.map((p) => (typeof p === "bigint" ? p.toString() : p));
    return this.exec(sql, values);
  }

  private async exec(sql: string, values: unknown[] | undefined): Promise<pg.QueryResult> {
    const client = this.tx.getStore();
    try {
      if (client !== undefined)
        return values === undefined ? await client.query(sql) : await client.query(sql, values);
      return values === undefined ? await this.pool.query(sql) : await this.pool.query(sql, values);
    } catch (err) {
      throw this.wrap(err);
    }
  }

  private async connect(): Promise<pg.PoolClient> {
    try {
      return await this.pool.connect();
    } catch (err) {
      throw this.wrap(err);
    }
  }

  /** Connection-level failures become BackendUnavailableError; SQL/data errors pass through. */
  private wrap(err: unknown): unknown {
    if (err instanceof BackendUnavailableError || !isUnavailable(err)) return err;
    return new BackendUnavailableError("postgres", `${redactUrl(this.url)}: ${faultDetail(err)}`, {
      cause: err,
    });
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
      location: `${redactUrl(url)}${opts.pgSchema !== undefined ? ` (schema ${opts.pgSchema})` : ""}`,
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
