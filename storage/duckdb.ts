import { existsSync, mkdirSync, readFileSync, renameSync, rmSync } from "node:fs";
import { dirname } from "node:path";
import type {
  DuckDBAppender,
  DuckDBConnection,
  DuckDBDataChunk,
  DuckDBMaterializedResult,
  DuckDBPreparedStatement,
  DuckDBType,
  DuckDBValue,
} from "@duckdb/node-api";
import { applyCoreSchema } from "./coreSchema.ts";
import { DuckDBInstance, JSDuckDBValueConverter } from "./duckdbApi.ts";
import { CORE_DDL, DUCK_ONLY_DDL } from "./schema.ts";

/** The DuckDB file's encryption key (>= 32 characters), or a file holding it (first line). */
export const DB_KEY_ENV = "MASTERY_DB_KEY";
export const DB_KEY_FILE_ENV = "MASTERY_DB_KEY_FILE";
/**
 * Which crypto module writes the encrypted file. Default: DuckDB's OpenSSL module from its httpfs
 * extension (secure). "mbedtls-unsafe": DuckDB's built-in mbedTLS module, whose nonces do not come
 * from a cryptographically secure generator (DuckDB calls it NOT securely encrypted); only where
 * httpfs cannot be installed, e.g. offline test machines.
 */
export const DB_CRYPTO_ENV = "MASTERY_DB_CRYPTO";
export const MIN_DB_KEY_LENGTH = 32;
/** Catalog name the encrypted file is attached under (queries use it as the default database). */
const ENCRYPTED_CATALOG = "mastery";

export type DbCrypto = "openssl" | "mbedtls-unsafe";

export interface DbEncryption {
  key: string;
  crypto: DbCrypto;
}

/** The schema every embedded file gets on open: the core tables and the file's own columns. */
const CORE_DDL_OF_FILE: readonly string[] = [...CORE_DDL, ...DUCK_ONLY_DDL];

/** A row as plain JS values (BIGINT -> bigint, TIMESTAMP -> Date, DECIMAL -> number, LIST -> array). */
export type Row = Record<string, unknown>;
export type Params = DuckDBValue[] | Record<string, DuckDBValue>;
/** The parameters' types where DuckDB cannot infer them (typed lists: `LIST(VARCHAR)` for `$1::VARCHAR[]`). */
export type ParamTypes = DuckDBType[] | Record<string, DuckDBType>;

/**
 * The embedded store: one DuckDB file holding the raw zone, features, scores and state.
 * Small surface on purpose: run a statement, read rows, bulk-load through an appender.
 */
export class DuckStore {
  private readonly pools: DuckReadPool[] = [];
  /** Statements started through run/all/one and not yet finished (close() waits for them). */
  private inFlight = 0;
  private closeState: "open" | "closing" | "closed" = "open";

  private constructor(
    readonly path: string,
    private readonly instance: DuckDBInstance,
    readonly conn: DuckDBConnection,
    /** The attached catalog every connection must USE (the encrypted file), if any. */
    private readonly catalog: string | null = null,
    /** The store this one is a session of (see session()); null for a store opened with open(). */
    private readonly owner: DuckStore | null = null,
  ) {}

  /** Sessions opened on this store and not yet released. */
  private readonly sessions: DuckStore[] = [];

  /**
   * Another store on this same DuckDB instance with a connection of its own: its own transactions, temp
   * tables, appenders and thread-count changes, so two jobs can run side by side on one database (DuckDB is
   * MVCC: appends to one table from two transactions do not conflict; updates or deletes of the same rows do,
   * so callers order such writes). Its statements are counted in this store too: this store's close() waits
   * for them and then releases the session's connection with its own. Closing the session releases only its
   * connection. Refused once close() was called.
   */
  async session(): Promise<DuckStore> {
    this.refuseIfClosed();
    const conn = await this.tracked(() => this.instance.connect());
    try {
      if (this.catalog !== null) await conn.run(`USE ${this.catalog}`);
    } catch (err) {
      conn.closeSync();
      throw err;
    }
    const s = new DuckStore(this.path, this.instance, conn, this.catalog, this.owner ?? this);
    (this.owner ?? this).sessions.push(s);
    return s;
  }

  /**
   * `size` more connections on this same DuckDB instance, for reads that must not queue behind the
   * main connection (its transactions, appenders and temp tables stay serialized by the caller).
   * DuckDB is MVCC: a read on a pool connection sees the last committed data and does not wait for a
   * transaction open on another connection. Closed with the store.
   */
  async readPool(size: number): Promise<DuckReadPool> {
    if (!Number.isInteger(size) || size < 1)
      throw new StorageError("DB_CONFIG", `read pool size must be an integer >= 1 (got ${size}); e.g. 4`);
    const conns: DuckDBConnection[] = [];
    for (let i = 0; i < size; i++) {
      const c = await this.instance.connect();
      if (this.catalog !== null) await c.run(`USE ${this.catalog}`);
      conns.push(c);
    }
    const pool = new DuckReadPool(conns, (read) => this.tracked(read));
    this.pools.push(pool);
    return pool;
  }

  /**
   * Opens (creating if needed) the DuckDB file at `path` (":memory:" for tests) and applies the core
   * schema. With an encryption key (default: MASTERY_DB_KEY / MASTERY_DB_KEY_FILE, see
   * dbEncryptionFromEnv; `encryption: null` forces a plain file) the file is DuckDB-encrypted
   * (AES-256-GCM: database file, WAL and spill files), attached to an in-memory instance and made the
   * default database, so every query runs unchanged.
   */
  static async open(
    path: string,
    opts: { threads?: number; memoryLimit?: string; encryption?: DbEncryption | null } = {},
  ): Promise<DuckStore> {
    if (path !== ":memory:") mkdirSync(dirname(path), { recursive: true });
    const config: Record<string, string> = {};
    if (opts.threads) config.threads = String(opts.threads);
    if (opts.memoryLimit) config.memory_limit = opts.memoryLimit;
    const encryption =
      path === ":memory:" ? null : opts.encryption === undefined ? dbEncryptionFromEnv() : opts.encryption;
    let instance: DuckDBInstance;
    let conn: DuckDBConnection;
    if (encryption === null) {
      try {
        instance = await DuckDBInstance.create(path, config);
      } catch (err) {
        throw openError(path, err as Error, false);
      }
      conn = await instance.connect();
    } else {
      // Spill files next to the database file, as for a plain file (an in-memory instance would use ./.tmp).
      instance = await DuckDBInstance.create(":memory:", { ...config, temp_directory: `${path}.tmp` });
      conn = await instance.connect();
      try {
        await enableCrypto(conn, encryption.crypto, true);
        await conn.run(
          `ATTACH ${sqlString(path)} AS ${ENCRYPTED_CATALOG}${attachOptions(encryption.key, false)}`,
        );
        await conn.run(`USE ${ENCRYPTED_CATALOG}`);
      } catch (err) {
        conn.closeSync();
        instance.closeSync();
        throw err instanceof StorageError ? err : openError(path, err as Error, true);
      }
    }
    const store = new DuckStore(path, instance, conn, encryption === null ? null : ENCRYPTED_CATALOG);
    // A new (empty) store replays the catalog the migration left on this process's first one (storage/coreSchema.ts).
    await applyCoreSchema(conn, CORE_DDL_OF_FILE);
    return store;
  }

  async run(sql: string, params?: Params, types?: ParamTypes): Promise<void> {
    await this.tracked(() => this.conn.run(sql, params, types));
  }

  /** Runs one statement and returns the number of rows it inserted, updated or deleted. */
  async runCount(sql: string, params?: Params, types?: ParamTypes): Promise<number> {
    const result = await this.tracked(() => this.conn.run(sql, params, types));
    return result.rowsChanged;
  }

  async all<T extends Row = Row>(sql: string, params?: Params, types?: ParamTypes): Promise<T[]> {
    const reader = await this.tracked(() => this.conn.runAndReadAll(sql, params, types));
    return reader.getRowObjectsJS() as T[];
  }

  /**
   * `run` of one parameterized statement through a statement prepared once per SQL text on this store's
   * connection (kept for the last PREPARED_PER_CONNECTION texts), so a repeated statement is bound and run
   * without being parsed and planned again: for the fixed statements of the write path (POST /events runs
   * ~17 per group; DuckDB's parse + plan of one is 0.2-1.9 ms of CPU, docs/benchmarks.md "The embedded
   * POST /events, round 1 (embpost22)"). DuckDB re-plans a prepared statement itself when the catalog
   * changed since. Returns the number of rows the statement inserted, updated or deleted.
   */
  async runPrepared(sql: string, params: Params, types?: ParamTypes): Promise<number> {
    return this.tracked(
      async () => (await this.bound(sql, params, types).then((ps) => ps.run())).rowsChanged,
    );
  }

  /** `all` through a prepared statement kept per SQL text (runPrepared). */
  async allPrepared<T extends Row = Row>(sql: string, params: Params, types?: ParamTypes): Promise<T[]> {
    return this.tracked(
      async () => (await (await this.bound(sql, params, types)).runAndReadAll()).getRowObjectsJS() as T[],
    );
  }

  /** Prepared statements of this store's connection by SQL text, most recently used last. */
  private readonly prepared = new Map<string, DuckDBPreparedStatement>();

  /** `sql` prepared on this store's connection (from the cache, or newly) with `params` bound. */
  private async bound(sql: string, params: Params, types?: ParamTypes): Promise<DuckDBPreparedStatement> {
    let ps = this.prepared.get(sql);
    if (ps !== undefined) this.prepared.delete(sql);
    else {
      ps = await this.conn.prepare(sql);
      if (this.prepared.size >= PREPARED_PER_CONNECTION) {
        const [oldestSql, oldest] = this.prepared.entries().next().value as [string, DuckDBPreparedStatement];
        this.prepared.delete(oldestSql);
        oldest.destroySync();
      }
    }
    this.prepared.set(sql, ps);
    ps.bind(params, types);
    return ps;
  }

  /** Frees the prepared statements (before the connection is closed). */
  private dropPrepared(): void {
    for (const ps of this.prepared.values()) ps.destroySync();
    this.prepared.clear();
  }

  /** `sql`'s result read column by column by `read` (DuckColumns), which returns what is kept of it. */
  async columns<T>(sql: string, params: Params | undefined, read: (result: DuckColumns) => T): Promise<T> {
    return this.tracked(async () => read(new DuckColumns(await this.conn.run(sql, params))));
  }

  /**
   * Runs `read` inside one transaction on this store's connection (the caller's, if one is open), so its
   * statements see one snapshot of the file (DuckReadPool.snapshot is the same on a pooled connection).
   */
  snapshot<T>(read: (q: DuckSnapshotReader) => Promise<T>): Promise<T> {
    return this.transaction(() => read(this));
  }

  /**
   * Runs `fn` with the native connection, counted like run/all/one: close() waits for it to end. For work
   * that spans several awaits on the connection (an appender, a streamed read chunk by chunk); refused once
   * close() was called.
   */
  withConnection<T>(fn: (conn: DuckDBConnection) => Promise<T>): Promise<T> {
    return this.tracked(() => fn(this.conn));
  }

  /**
   * Appends rows to `table` (in `catalog`.`schema`; "temp", "main" for a temp table) through a DuckDB
   * appender: `fill` appends, then the rows are flushed and the appender closed. Counted like run/all/one.
   */
  appendRows(
    table: string,
    fill: (appender: DuckDBAppender) => void | Promise<void>,
    where: { schema?: string; catalog?: string } = {},
  ): Promise<void> {
    return this.withConnection(async (conn) => {
      const appender = await conn.createAppender(table, where.schema, where.catalog);
      await fill(appender);
      appender.flushSync();
      appender.closeSync();
    });
  }

  /**
   * The result of `sql` chunk by chunk (columnar reads without materializing every row). Counted like
   * run/all/one from the first chunk until the loop over it ends (break and throw included), so close()
   * waits for it; no other statement may run on the store while a chunk is held.
   */
  async *chunks(sql: string, params?: Params): AsyncGenerator<DuckDBDataChunk, void, undefined> {
    this.enter();
    try {
      const result = await this.conn.stream(sql, params);
      for (;;) {
        const chunk = await result.fetchChunk();
        if (chunk === null || chunk.rowCount === 0) return;
        yield chunk;
      }
    } finally {
      this.leave();
    }
  }

  /**
   * Runs one statement on the main connection, counted so that close() never frees the native
   * connection under it (a background read still running when its owner closes the store, e.g. a
   * /metrics refresh, crashed the process in DuckDB's native code). Refused once close() was called.
   */
  private refuseIfClosed(): void {
    if (this.closeState !== "open")
      throw new StorageError(
        "DB_CLOSED",
        `the DuckDB store ${this.path} is closed: a statement was started after close() (stop background work before closing the store)`,
      );
  }

  private async tracked<T>(statement: () => Promise<T>): Promise<T> {
    this.enter();
    try {
      return await statement();
    } finally {
      this.leave();
    }
  }

  /** Counts a statement as running here and, for a session, in its owner too (refused once either is closing). */
  private enter(): void {
    this.refuseIfClosed();
    this.owner?.refuseIfClosed();
    this.inFlight++;
    if (this.owner !== null) this.owner.inFlight++;
  }

  private leave(): void {
    this.inFlight--;
    this.releaseIfDrained();
    if (this.owner !== null) {
      this.owner.inFlight--;
      this.owner.releaseIfDrained();
    }
  }

  async one<T extends Row = Row>(sql: string, params?: Params): Promise<T | undefined> {
    const rows = await this.all<T>(sql, params);
    return rows[0];
  }

  /**
   * Runs `fn` inside a transaction; rolls back and rethrows on error. Nested calls (a store's
   * transaction inside a caller's, e.g. one POST /events group of raw append, state and scores) join
   * the outer transaction: one commit for all, and an error anywhere rolls all of it back. DuckDB
   * has no savepoints, so an inner error cannot be caught and the rest committed.
   */
  async transaction<T>(fn: () => Promise<T>): Promise<T> {
    if (this.inTransaction) return fn();
    await this.run("BEGIN TRANSACTION");
    this.inTransaction = true;
    this.transactions++;
    let out: T;
    try {
      out = await fn();
      this.inTransaction = false;
      await this.run("COMMIT");
    } catch (err) {
      try {
        if (this.inTransaction) {
          this.inTransaction = false;
          // After close() the ROLLBACK is refused: the connection's release discards the open transaction.
          await this.run("ROLLBACK").catch((e: Error) => {
            if (!(e instanceof StorageError && e.code === "DB_CLOSED")) throw e;
          });
        } else {
          // COMMIT itself failed: DuckDB has rolled back already; a ROLLBACK now would fail on "no transaction".
          await this.run("ROLLBACK").catch(() => undefined);
        }
      } finally {
        // The transaction's error is the one to report, whether or not the setting can still be restored.
        await this.restoreThreadsAfterTransaction().catch(() => undefined);
      }
      throw err;
    }
    await this.restoreThreadsAfterTransaction();
    return out;
  }

  private inTransaction = false;
  /** Transactions begun through transaction() so far (numbers the open one: openTransaction). */
  private transactions = 0;

  /**
   * The number of the transaction open through transaction() on this store's connection, or null outside
   * one. Every statement inside it reads one snapshot (plus the transaction's own writes), so a store may
   * keep what it read inside the transaction for the rest of it (storage/stateStore.ts DuckStateStore
   * keeps the revisions its load read for its commit's compare-and-set).
   */
  get openTransaction(): number | null {
    return this.inTransaction ? this.transactions : null;
  }
  /** Thread counts to restore when the open transaction ends (withThreads inside a transaction), innermost last. */
  private threadsAfterTransaction: number[] = [];

  /** DuckDB's worker thread count (`threads`, a database-wide setting). */
  async threadCount(): Promise<number> {
    const r = await this.one<{ t: bigint | number }>("SELECT current_setting('threads') AS t");
    return Number(r?.t ?? 1);
  }

  /**
   * Runs `fn` with DuckDB on `threads` threads and restores the previous setting afterwards, also when `fn`
   * throws. For serial write phases of batch steps (index appends, inserts of a few columns, COMMIT): with
   * more threads DuckDB's calling thread busy-waits for the one worker that has work (its PendingQueryResult
   * loop spins on NO_TASKS_AVAILABLE, duckdb/duckdb issue 22178), burning the second core that parallel work
   * (other DuckDB statements, worker threads) could use (docs/benchmarks.md "The batch's serial write phases
   * on one DuckDB thread (duck16)"). Keep scans and large aggregates on every thread: they run in parallel.
   *
   * Inside a transaction the previous setting is restored when the transaction ends (after its COMMIT or
   * ROLLBACK), not when `fn` returns: the commit is usually the largest serial part of a write phase, and a
   * SET inside a failed transaction would fail. `threads` is database-wide: statements of the store's other
   * connections (read pools) run on `threads` threads meanwhile. A no-op when the setting is already `threads`.
   */
  async withThreads<T>(threads: number, fn: () => Promise<T>): Promise<T> {
    if (!Number.isInteger(threads) || threads < 1)
      throw new StorageError(
        "DB_CONFIG",
        `withThreads needs an integer thread count >= 1 (got ${threads}); e.g. 1 for a serial write phase`,
      );
    const before = await this.threadCount();
    if (before === threads) return fn();
    await this.run(`SET threads = ${threads}`);
    if (this.inTransaction) {
      this.threadsAfterTransaction.push(before);
      return fn();
    }
    let out: T;
    try {
      out = await fn();
    } catch (err) {
      // fn's error is the one to report, whether or not the setting can still be restored.
      await this.run(`SET threads = ${before}`).catch(() => undefined);
      throw err;
    }
    await this.run(`SET threads = ${before}`);
    return out;
  }

  private async restoreThreadsAfterTransaction(): Promise<void> {
    // The outermost switch holds the setting from before the transaction; restoring it alone is enough.
    const first = this.threadsAfterTransaction[0];
    this.threadsAfterTransaction = [];
    if (first !== undefined) await this.run(`SET threads = ${first}`);
  }

  /**
   * DuckDB's effective memory_limit in bytes (the configured value, or DuckDB's default of 80% of RAM),
   * so a step can size the blocks it keeps outside DuckDB's buffer pool from it.
   */
  async memoryLimitBytes(): Promise<number> {
    const row = await this.one<{ v: string }>("SELECT current_setting('memory_limit') AS v");
    return parseDuckBytes(row?.v ?? "");
  }

  /** Names of the persistent (non-temporary) tables in the main schema. */
  async tableNames(): Promise<string[]> {
    const rows = await this.all<{ table_name: string }>(
      "SELECT table_name FROM duckdb_tables() WHERE NOT temporary AND schema_name = 'main' AND database_name = current_database() ORDER BY 1",
    );
    return rows.map((r) => r.table_name);
  }

  /**
   * Closes the store: new statements are refused at once; the native connection and instance are
   * released now, or, when statements started through run/all/one are still running, as soon as the
   * last of them ends (closing under a running statement crashes DuckDB). Idempotent.
   * `whenClosed()` resolves once they are released (the file lock is free then).
   */
  close(): void {
    if (this.closeState !== "open") return;
    this.closeState = "closing";
    for (const p of this.pools) p.refuse();
    this.releaseIfDrained();
  }

  /** Releases the native handles once close() was called and no tracked statement is running. */
  private releaseIfDrained(): void {
    if (this.inFlight === 0 && this.closeState === "closing") this.release();
  }

  /** Resolves once close() has released the native handles (at once when nothing was running). */
  whenClosed(): Promise<void> {
    if (this.closeState === "closed") return Promise.resolve();
    return new Promise((ok) => this.closedWaiters.push(ok));
  }

  private readonly closedWaiters: (() => void)[] = [];

  private release(): void {
    this.closeState = "closed";
    for (const p of this.pools.splice(0)) p.close();
    if (this.owner !== null) {
      const at = this.owner.sessions.indexOf(this);
      if (at >= 0) this.owner.sessions.splice(at, 1);
      this.dropPrepared();
      this.conn.closeSync();
      for (const ok of this.closedWaiters.splice(0)) ok();
      return;
    }
    // Every session's statements were counted here too, so none is running now.
    for (const s of this.sessions.splice(0)) {
      s.closeState = "closed";
      for (const p of s.pools.splice(0)) p.close();
      s.dropPrepared();
      s.conn.closeSync();
      for (const ok of s.closedWaiters.splice(0)) ok();
    }
    this.dropPrepared();
    this.conn.closeSync();
    this.instance.closeSync();
    for (const ok of this.closedWaiters.splice(0)) ok();
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

const BYTE_UNITS: Record<string, number> = {
  b: 1,
  byte: 1,
  bytes: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  tb: 1e12,
  kib: 2 ** 10,
  mib: 2 ** 20,
  gib: 2 ** 30,
  tib: 2 ** 40,
};

/**
 * Bytes of a size as DuckDB prints and accepts it: "800.0 MiB", "2.4 GiB" (binary units, how
 * current_setting('memory_limit') reports it), "4GB", "500 MB" (decimal units), "512 bytes".
 */
export function parseDuckBytes(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(text);
  const unit = BYTE_UNITS[(m?.[2] ?? "").toLowerCase() || "b"];
  if (!m || unit === undefined)
    throw new StorageError(
      "DB_CONFIG",
      `cannot read "${text}" as a size in bytes: expected a number and a unit (bytes, KB, MB, GB, TB, KiB, MiB, GiB, TiB), e.g. "800.0 MiB" or "4GB"`,
    );
  return Math.round(Number(m[1]) * unit);
}

/** Quotes a SQL string literal (for file paths handed to read_csv/read_parquet, which cannot be parameters). */
export function sqlString(value: string): string {
  return `'${value.replaceAll("'", "''")}'`;
}

/**
 * The encryption configured in the environment: MASTERY_DB_KEY, or MASTERY_DB_KEY_FILE (its first
 * line), and MASTERY_DB_CRYPTO; null when no key is set (a plain file).
 */
export function dbEncryptionFromEnv(env: NodeJS.ProcessEnv = process.env): DbEncryption | null {
  const direct = env[DB_KEY_ENV];
  const file = env[DB_KEY_FILE_ENV];
  if (direct && file) throw new StorageError("DB_KEY", `set ${DB_KEY_ENV} or ${DB_KEY_FILE_ENV}, not both`);
  let key: string | undefined = direct || undefined;
  if (file) key = readKeyFile(file, DB_KEY_FILE_ENV);
  if (key === undefined) return null;
  checkDbKey(key, direct ? DB_KEY_ENV : DB_KEY_FILE_ENV);
  return { key, crypto: dbCryptoFromEnv(env) };
}

function dbCryptoFromEnv(env: NodeJS.ProcessEnv): DbCrypto {
  const v = env[DB_CRYPTO_ENV];
  if (v === undefined || v === "" || v === "openssl") return "openssl";
  if (v === "mbedtls-unsafe") return "mbedtls-unsafe";
  throw new StorageError(
    "DB_CRYPTO",
    `${DB_CRYPTO_ENV} must be openssl (default) or mbedtls-unsafe (got "${v}")`,
  );
}

/** The first line of a key file (trailing whitespace dropped); errors name the file and the variable. */
export function readKeyFile(path: string, what: string): string {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new StorageError("DB_KEY", `${what}: cannot read key file ${path}: ${(err as Error).message}`);
  }
  return (text.split(/\r?\n/)[0] ?? "").trim();
}

export function checkDbKey(key: string, what: string): void {
  if (key.length < MIN_DB_KEY_LENGTH)
    throw new StorageError(
      "DB_KEY",
      `${what} must be at least ${MIN_DB_KEY_LENGTH} characters (got ${key.length}); generate one with: openssl rand -hex 32`,
    );
}

let warnedUnsafe = false;

/**
 * Makes DuckDB able to write encrypted files: its OpenSSL module (httpfs extension, installed once
 * with `INSTALL httpfs` while online), or, when asked explicitly, the built-in mbedTLS module.
 * Reading needs neither (DuckDB's read-only module), so `forWrite` false skips this.
 */
async function enableCrypto(conn: DuckDBConnection, crypto: DbCrypto, forWrite: boolean): Promise<void> {
  if (!forWrite) return;
  if (crypto === "mbedtls-unsafe") {
    await conn.run("SET force_mbedtls_unsafe = true");
    if (!warnedUnsafe) {
      warnedUnsafe = true;
      process.stderr.write(
        `warning: ${DB_CRYPTO_ENV}=mbedtls-unsafe: the DuckDB file is encrypted with DuckDB's mbedTLS fallback, ` +
          "whose nonces are not from a secure random generator; install DuckDB's httpfs extension and drop this setting in production\n",
      );
    }
    return;
  }
  try {
    await conn.run("LOAD httpfs");
  } catch (err) {
    throw new StorageError(
      "DUCKDB_CRYPTO",
      `an encryption key is set (${DB_KEY_ENV}/${DB_KEY_FILE_ENV}) but DuckDB's OpenSSL crypto module is not available: ` +
        `the httpfs extension could not be loaded (${firstLine((err as Error).message)}). Install it once on a machine with ` +
        "network access (`npx mastery db install-httpfs`, which runs DuckDB's INSTALL httpfs into ~/.duckdb/extensions), " +
        `or, on a test machine only, set ${DB_CRYPTO_ENV}=mbedtls-unsafe (DuckDB's fallback is not securely encrypted).`,
    );
  }
}

/** Installs DuckDB's httpfs extension (its OpenSSL crypto module) for this DuckDB version; needs network. */
export async function installHttpfs(): Promise<string> {
  const instance = await DuckDBInstance.create(":memory:");
  const conn = await instance.connect();
  try {
    await conn.run("INSTALL httpfs");
    await conn.run("LOAD httpfs");
    const r = await conn.runAndReadAll(
      "SELECT install_path FROM duckdb_extensions() WHERE extension_name = 'httpfs'",
    );
    return String(r.getRowObjectsJS()[0]?.install_path ?? "");
  } catch (err) {
    throw new StorageError("DUCKDB_CRYPTO", `INSTALL httpfs failed: ${firstLine((err as Error).message)}`);
  } finally {
    conn.closeSync();
    instance.closeSync();
  }
}

const firstLine = (m: string): string => m.split("\n")[0] ?? m;

/** " (ENCRYPTION_KEY '...', READ_ONLY)" as needed; the key is a quoted literal (ATTACH takes no parameters). */
function attachOptions(key: string | null, readOnly: boolean): string {
  const o: string[] = [];
  if (key !== null) o.push(`ENCRYPTION_KEY ${sqlString(key)}`);
  if (readOnly) o.push("READ_ONLY");
  return o.length > 0 ? ` (${o.join(", ")})` : "";
}

/** Turns DuckDB's open/attach errors into messages that say what to do. */
function openError(path: string, err: Error, withKey: boolean): StorageError {
  const m = err.message;
  if (/without a key/i.test(m))
    return new StorageError(
      "DUCKDB_ENCRYPTED",
      `${path} is encrypted: set ${DB_KEY_ENV} (or ${DB_KEY_FILE_ENV}) to its key to open it`,
    );
  if (/wrong encryption key/i.test(m))
    return new StorageError(
      "DUCKDB_KEY",
      `${path}: the key in ${DB_KEY_ENV}/${DB_KEY_FILE_ENV} does not open this file (wrong key, or the file was re-keyed)`,
    );
  if (/is not encrypted/i.test(m))
    return new StorageError(
      "DUCKDB_PLAIN",
      `${path} is not encrypted but ${DB_KEY_ENV}/${DB_KEY_FILE_ENV} is set: encrypt it once with \`mastery db rekey --new-key-file FILE\` ` +
        "(stop the server first), or unset the key",
    );
  return new StorageError(
    "DUCKDB_OPEN",
    `cannot open DuckDB file ${path}: ${firstLine(m)}. ` +
      (/lock/i.test(m) || !withKey
        ? "Is another mastery process holding it? Stop it or pass a different --db path."
        : ""),
  );
}

/** Whether a DuckDB file is encrypted (false for a missing or plain file); needs no key. */
export async function isEncryptedDuckDbFile(path: string): Promise<boolean> {
  if (!existsSync(path)) return false;
  const instance = await DuckDBInstance.create(":memory:");
  const conn = await instance.connect();
  try {
    await conn.run(`ATTACH ${sqlString(path)} AS probe (READ_ONLY)`);
    return false;
  } catch (err) {
    if (/without a key/i.test((err as Error).message)) return true;
    throw openError(path, err as Error, false);
  } finally {
    conn.closeSync();
    instance.closeSync();
  }
}

export interface RekeyOptions {
  /** Key of the file now (null: a plain file). */
  fromKey: string | null;
  /** Key of the copy (null: write a plain file). */
  toKey: string | null;
  crypto: DbCrypto;
  /** Write the copy here and leave `path` alone; default: replace `path`, keeping the old file as `<path>.pre-rekey`. */
  out?: string;
  /** With in-place replacement: delete the old file instead of keeping it. */
  dropOld?: boolean;
}

export interface RekeyReport {
  path: string;
  tables: number;
  rows: number;
  /** The old file kept beside the new one (in-place rekey without dropOld). */
  kept: string | null;
}

/**
 * Copies a DuckDB file into a new file under another key (or none), table by table with DuckDB's
 * COPY FROM DATABASE, checks every table's row count, then swaps it in. This is how a key is
 * rotated, a plain file encrypted or an encrypted one decrypted. The file must not be open elsewhere.
 */
export async function rekeyDuckDbFile(path: string, opts: RekeyOptions): Promise<RekeyReport> {
  if (!existsSync(path)) throw new StorageError("DUCKDB_OPEN", `${path}: no such DuckDB file`);
  if (opts.toKey !== null) checkDbKey(opts.toKey, "the new key");
  const target = opts.out ?? path;
  const tmp = `${target}.rekey-tmp`;
  for (const f of [tmp, `${tmp}.wal`]) rmSync(f, { force: true });
  if (opts.out !== undefined && existsSync(opts.out))
    throw new StorageError("DUCKDB_OPEN", `${opts.out} exists; choose a new --out file`);
  const backup = `${path}.pre-rekey`;
  if (opts.out === undefined && opts.dropOld !== true && existsSync(backup))
    throw new StorageError(
      "DUCKDB_REKEY",
      `${backup} exists (left by an earlier rekey; it holds the data under the old key, or in plain text): ` +
        "check the current file, then delete or move it away and rerun",
    );
  const instance = await DuckDBInstance.create(":memory:", { temp_directory: `${tmp}.tmp` });
  const conn = await instance.connect();
  let tables = 0;
  let rows = 0;
  try {
    await enableCrypto(conn, opts.crypto, opts.toKey !== null);
    try {
      await conn.run(`ATTACH ${sqlString(path)} AS src${attachOptions(opts.fromKey, true)}`);
    } catch (err) {
      throw openError(path, err as Error, opts.fromKey !== null);
    }
    await conn.run(`ATTACH ${sqlString(tmp)} AS dst${attachOptions(opts.toKey, false)}`);
    await conn.run("COPY FROM DATABASE src TO dst");
    const names = await conn.runAndReadAll(
      "SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = 'src' AND NOT temporary ORDER BY 1, 2",
    );
    for (const t of names.getRowObjectsJS() as { schema_name: string; table_name: string }[]) {
      const q = (db: string) =>
        `SELECT count(*) AS n FROM ${db}."${t.schema_name}"."${t.table_name.replaceAll('"', '""')}"`;
      const a = Number((await conn.runAndReadAll(q("src"))).getRowObjectsJS()[0]?.n);
      const b = Number((await conn.runAndReadAll(q("dst"))).getRowObjectsJS()[0]?.n);
      if (a !== b)
        throw new StorageError(
          "DUCKDB_REKEY",
          `rekey: table ${t.table_name} has ${a} rows in ${path} but ${b} in the copy; nothing replaced`,
        );
      tables++;
      rows += a;
    }
    await conn.run("CHECKPOINT dst");
    await conn.run("DETACH dst");
    await conn.run("DETACH src");
  } catch (err) {
    conn.closeSync();
    instance.closeSync();
    for (const f of [tmp, `${tmp}.wal`]) rmSync(f, { force: true });
    throw err;
  }
  conn.closeSync();
  instance.closeSync();
  rmSync(`${tmp}.tmp`, { recursive: true, force: true });
  let kept: string | null = null;
  if (opts.out === undefined) {
    kept = opts.dropOld === true ? `${path}.rekey-old` : backup;
    renameSync(path, kept);
    if (existsSync(`${path}.wal`)) renameSync(`${path}.wal`, `${kept}.wal`);
    if (opts.dropOld === true) {
      rmSync(kept, { force: true });
      rmSync(`${kept}.wal`, { force: true });
      kept = null;
    }
  }
  renameSync(tmp, target);
  return { path: target, tables, rows, kept };
}

/**
 * Read-only connections of one DuckDB instance (DuckStore.readPool). A connection runs one query at
 * a time; a query takes any idle connection or waits for the first to come back. Each connection
 * keeps its last PREPARED_PER_CONNECTION statements prepared (the served reads are a handful of
 * fixed SQL texts), so a repeated read is bound and run without being parsed and planned again;
 * DuckDB re-plans a prepared statement itself when the catalog changed since.
 */
export class DuckReadPool {
  private readonly idle: DuckDBConnection[];
  private readonly waiters: ((c: DuckDBConnection) => void)[] = [];
  private readonly prepared = new Map<DuckDBConnection, Map<string, DuckDBPreparedStatement>>();
  private closed = false;

  constructor(
    private readonly conns: DuckDBConnection[],
    /** The store's in-flight counter: a read running here holds off the store's release of the instance. */
    private readonly tracked: <T>(read: () => Promise<T>) => Promise<T> = (read) => read(),
  ) {
    this.idle = [...conns];
    for (const c of conns) this.prepared.set(c, new Map());
  }

  get size(): number {
    return this.conns.length;
  }

  /** Queries waiting for a connection now. */
  get waiting(): number {
    return this.waiters.length;
  }

  async all<T extends Row = Row>(sql: string, params?: Params): Promise<T[]> {
    return this.onConnection(sql, params, async (ps) => (await ps.runAndReadAll()).getRowObjectsJS() as T[]);
  }

  /**
   * `sql` prepared (from the connection's cache) and bound on an idle connection, or on the first one to come
   * back, for `run`, which runs it and reads its result before the connection goes to the next query.
   */
  private onConnection<T>(
    sql: string,
    params: Params | undefined,
    run: (ps: DuckDBPreparedStatement) => Promise<T>,
  ): Promise<T> {
    return this.held(async (c) => run(await this.bound(c, sql, params)));
  }

  /** An idle connection (or the first to come back) held for `fn`, then handed to the next waiter. */
  private async held<T>(fn: (c: DuckDBConnection) => Promise<T>): Promise<T> {
    if (this.closed)
      throw new StorageError("DB_CLOSED", "the DuckDB read pool is closed (the store was closed)");
    const c = this.idle.pop() ?? (await new Promise<DuckDBConnection>((ok) => this.waiters.push(ok)));
    try {
      return await this.tracked(() => fn(c));
    } finally {
      const next = this.waiters.shift();
      if (next !== undefined) next(c);
      else this.idle.push(c);
    }
  }

  /** `sql` prepared on `c` (its cache) with `params` bound (none: bindings cleared). */
  private async bound(
    c: DuckDBConnection,
    sql: string,
    params: Params | undefined,
  ): Promise<DuckDBPreparedStatement> {
    const ps = await this.statement(c, sql);
    if (params === undefined) ps.clearBindings();
    else ps.bind(params);
    return ps;
  }

  /**
   * Runs `read` on one connection inside one read transaction: its statements (prepared from the connection's
   * cache) see one snapshot of the file, whatever other connections commit meanwhile. The transaction ends
   * (COMMIT, or ROLLBACK when `read` throws) before the connection goes to the next query.
   */
  snapshot<T>(read: (q: DuckSnapshotReader) => Promise<T>): Promise<T> {
    return this.held(async (c) => {
      await (await this.bound(c, "BEGIN TRANSACTION", undefined)).run();
      let out: T;
      try {
        out = await read({
          columns: async (sql, params, fn) =>
            fn(new DuckColumns(await (await this.bound(c, sql, params)).run())),
        });
      } catch (err) {
        await c.run("ROLLBACK").catch(() => undefined);
        throw err;
      }
      await (await this.bound(c, "COMMIT", undefined)).run();
      return out;
    });
  }

  /** `sql`'s result read column by column by `read` (DuckColumns) while the connection is held. */
  async columns<T>(sql: string, params: Params | undefined, read: (result: DuckColumns) => T): Promise<T> {
    return this.onConnection(sql, params, async (ps) => read(new DuckColumns(await ps.run())));
  }

  /** Refuses new reads from now on (the store is closing); the connections close with the store. */
  refuse(): void {
    this.closed = true;
  }

  /** `sql` prepared on connection `c`, from its cache (most recently used last) or newly. */
  private async statement(c: DuckDBConnection, sql: string): Promise<DuckDBPreparedStatement> {
    const cache = this.prepared.get(c)!;
    const hit = cache.get(sql);
    if (hit !== undefined) {
      cache.delete(sql);
      cache.set(sql, hit);
      return hit;
    }
    const ps = await c.prepare(sql);
    cache.set(sql, ps);
    if (cache.size > PREPARED_PER_CONNECTION) {
      const [oldestSql, oldest] = cache.entries().next().value as [string, DuckDBPreparedStatement];
      cache.delete(oldestSql);
      oldest.destroySync();
    }
    return ps;
  }

  async one<T extends Row = Row>(sql: string, params?: Params): Promise<T | undefined> {
    return (await this.all<T>(sql, params))[0];
  }

  close(): void {
    if (this.conns.length === 0) return;
    this.closed = true;
    for (const cache of this.prepared.values()) for (const ps of cache.values()) ps.destroySync();
    this.prepared.clear();
    for (const c of this.conns.splice(0)) c.closeSync();
  }
}

/** Statements of one snapshot (DuckStore.snapshot, DuckReadPool.snapshot): results read by column. */
export interface DuckSnapshotReader {
  columns<T>(sql: string, params: Params | undefined, read: (result: DuckColumns) => T): Promise<T>;
}

/**
 * A query's result read column by column (DuckStore.columns, DuckReadPool.columns): a cell is converted only
 * when it is read, as getRowObjectsJS converts it (JSDuckDBValueConverter: the same JS values). For a reader
 * that builds rows of one shape itself and reads some columns only on the rows that use them, where
 * getRowObjectsJS builds an object per row with every column converted (GET /mastery's miss read on the
 * embedded file: ~40 columns, most of them NULL, on a few hundred rows; serving/masteryReadStore.ts). Valid
 * only inside the `read` callback it is given to.
 */
export class DuckColumns {
  readonly rowCount: number;
  private readonly chunks: DuckDBDataChunk[] = [];
  /** The first row of each chunk. */
  private readonly starts: number[] = [];
  private readonly at: Map<string, number>;
  private readonly getters = new Map<string, (row: number) => unknown>();

  constructor(result: DuckDBMaterializedResult) {
    let rows = 0;
    for (let i = 0; i < result.chunkCount; i++) {
      const chunk = result.getChunk(i);
      this.chunks.push(chunk);
      this.starts.push(rows);
      rows += chunk.rowCount;
    }
    this.rowCount = rows;
    this.at = new Map(result.deduplicatedColumnNames().map((name, i) => [name, i]));
  }

  /** Column `name`'s cell at a row (0 .. rowCount - 1), as a plain JS value (NULL: null). */
  column(name: string): (row: number) => unknown {
    const known = this.getters.get(name);
    if (known !== undefined) return known;
    const at = this.at.get(name);
    if (at === undefined)
      throw new StorageError(
        "DB_COLUMN",
        `the result has no column "${name}" (its columns: ${[...this.at.keys()].join(", ")}); select it in the query`,
      );
    const vectors = this.chunks.map((c) => c.getColumnVector(at));
    const convert = JSDuckDBValueConverter;
    let get: (row: number) => unknown;
    if (vectors.length === 1) {
      const v = vectors[0]!;
      const type = v.type;
      get = (row) => convert(v.getItem(row), type, convert);
    } else
      get = (row) => {
        let k = this.starts.length - 1;
        while (this.starts[k]! > row) k--;
        const v = vectors[k]!;
        return convert(v.getItem(row - this.starts[k]!), v.type, convert);
      };
    this.getters.set(name, get);
    return get;
  }
}

/** Prepared statements kept per read-pool connection. */
const PREPARED_PER_CONNECTION = 32;
