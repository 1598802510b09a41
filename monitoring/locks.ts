/**
 * Mutual exclusion for the retrain job, so two processes (two servers, a server and the CLI) never
 * retrain at once. Three implementations behind one interface:
 *  - PostgreSQL session advisory lock (pg_try_advisory_lock) on its own connection: released by
 *    pg_advisory_unlock or, if the process dies, by PostgreSQL when the connection drops.
 *  - Redis SET key token NX PX ttl, renewed every ttl/3 while held; released by a compare-and-delete
 *    Lua script so a holder whose lease expired cannot delete a newer holder's key.
 *  - A lock file created with O_EXCL holding {pid, host, token, expiresAt}; a file whose expiry has
 *    passed, or whose pid is gone on this host, is stale and taken over.
 * lockFromEnv picks PostgreSQL when MASTERY_PG_URL is set, else Redis when MASTERY_REDIS_URL is set,
 * else the file next to the DuckDB store.
 */
import { createHash, randomBytes } from "node:crypto";
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeSync } from "node:fs";
import { hostname } from "node:os";
import { dirname } from "node:path";
import { Redis } from "ioredis";
import pg from "pg";
import { redisTlsOptions } from "../storage/tls.ts";

export interface RetrainLock {
  readonly kind: "postgres" | "redis" | "file";
  readonly key: string;
  /** True when this holder now owns the lock; false when someone else does. Never waits. */
  tryAcquire(): Promise<boolean>;
  release(): Promise<void>;
  /** Releases if held and closes connections. */
  close(): Promise<void>;
}

export class LockError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = "LockError";
  }
}

/** 64-bit signed advisory-lock key from a string (first 8 bytes of its sha256). */
export function advisoryKey(key: string): bigint {
  return createHash("sha256").update(key).digest().readBigInt64BE(0);
}

export class PgAdvisoryLock implements RetrainLock {
  readonly kind = "postgres";
  private client: pg.Client | null = null;
  private held = false;

  constructor(
    private readonly url: string,
    readonly key: string,
  ) {}

  private async connection(): Promise<pg.Client> {
    if (this.client === null) {
      const c = new pg.Client({ connectionString: this.url });
      c.on("error", () => {});
      try {
        await c.connect();
      } catch (err) {
        throw new LockError(
          "PG_CONNECT",
          `retrain lock: cannot connect to PostgreSQL (${(err as Error).message}); check MASTERY_PG_URL`,
        );
      }
      this.client = c;
    }
    return this.client;
  }

  async tryAcquire(): Promise<boolean> {
    if (this.held) return true;
    const c = await this.connection();
    const r = await c.query<{ ok: boolean }>("SELECT pg_try_advisory_lock($1::bigint) AS ok", [
      advisoryKey(this.key).toString(),
    ]);
    this.held = r.rows[0]?.ok === true;
    return this.held;
  }

  async release(): Promise<void> {
    if (!this.held || this.client === null) return;
    await this.client.query("SELECT pg_advisory_unlock($1::bigint)", [advisoryKey(this.key).toString()]);
    this.held = false;
  }

  async close(): Promise<void> {
    await this.release();
    await this.client?.end();
    this.client = null;
  }
}

// Deletes / extends the key only while it still holds our token.
const RELEASE_LUA = `if redis.call("get", KEYS[1]) == ARGV[1] then return redis.call("del", KEYS[1]) else return 0 end`;
const EXTEND_LUA = `if redis.call("get", KEYS[1]) == ARGV[1] then return redis.call("pexpire", KEYS[1], ARGV[2]) else return 0 end`;

export class RedisLock implements RetrainLock {
  readonly kind = "redis";
  private readonly redis: Redis;
  private readonly token = randomBytes(16).toString("hex");
  private held = false;
  private renew: NodeJS.Timeout | null = null;

  constructor(
    url: string,
    readonly key: string,
    private readonly ttlMs = 600_000,
  ) {
    this.redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 2, ...redisTlsOptions(url) });
    this.redis.on("error", () => {});
  }

  async tryAcquire(): Promise<boolean> {
    if (this.held) return true;
    if (this.redis.status === "wait") await this.redis.connect();
    const ok = await this.redis.set(this.key, this.token, "PX", this.ttlMs, "NX");
    this.held = ok === "OK";
    if (this.held) {
      this.renew = setInterval(
        () => {
          this.redis.eval(EXTEND_LUA, 1, this.key, this.token, String(this.ttlMs)).catch(() => {});
        },
        Math.max(1000, Math.floor(this.ttlMs / 3)),
      );
      this.renew.unref();
    }
    return this.held;
  }

  async release(): Promise<void> {
    if (this.renew !== null) clearInterval(this.renew);
    this.renew = null;
    if (!this.held) return;
    await this.redis.eval(RELEASE_LUA, 1, this.key, this.token);
    this.held = false;
  }

  async close(): Promise<void> {
    await this.release();
    this.redis.disconnect();
  }
}

interface LockFileBody {
  pid: number;
  host: string;
  token: string;
  expiresAt: number;
}

export class FileLock implements RetrainLock {
  readonly kind = "file";
  private readonly token = randomBytes(16).toString("hex");
  private held = false;

  constructor(
    readonly key: string,
    private readonly ttlMs = 600_000,
    private readonly now: () => number = Date.now,
  ) {}

  private stale(body: LockFileBody): boolean {
    if (body.expiresAt < this.now()) return true;
    if (body.host !== hostname()) return false;
    try {
      process.kill(body.pid, 0);
      return false;
    } catch (err) {
      return (err as NodeJS.ErrnoException).code === "ESRCH";
    }
  }

  async tryAcquire(): Promise<boolean> {
    if (this.held) return true;
    mkdirSync(dirname(this.key), { recursive: true });
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const fd = openSync(this.key, "wx");
        const body: LockFileBody = {
          pid: process.pid,
          host: hostname(),
          token: this.token,
          expiresAt: this.now() + this.ttlMs,
        };
        writeSync(fd, JSON.stringify(body));
        closeSync(fd);
        this.held = true;
        return true;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      }
      let body: LockFileBody | null = null;
      try {
        body = JSON.parse(readFileSync(this.key, "utf8")) as LockFileBody;
      } catch {
        // Half-written by a holder that is writing right now: treat as held.
        return false;
      }
      if (!this.stale(body)) return false;
      rmSync(this.key, { force: true });
    }
    return false;
  }

  async release(): Promise<void> {
    if (!this.held) return;
    try {
      const body = JSON.parse(readFileSync(this.key, "utf8")) as LockFileBody;
      if (body.token === this.token) rmSync(this.key, { force: true });
    } catch {
      // Already gone (taken over as stale): nothing to release.
    }
    this.held = false;
  }

  async close(): Promise<void> {
    await this.release();
  }
}

/** The lock the environment configures (see the module comment). */
export function lockFromEnv(opts: { key: string; ttlMs: number; dbPath: string }): RetrainLock {
  const pgUrl = process.env.MASTERY_PG_URL;
  if (pgUrl) return new PgAdvisoryLock(pgUrl, opts.key);
  const redisUrl = process.env.MASTERY_REDIS_URL;
  if (redisUrl) return new RedisLock(redisUrl, `mastery:lock:${opts.key}`, opts.ttlMs);
  return new FileLock(`${opts.dbPath}.${opts.key}.lock`, opts.ttlMs);
}

export type LockedResult<T> = { acquired: true; value: T } | { acquired: false };

/** Runs fn only if the lock is free; releases it afterwards even when fn throws. */
export async function withLock<T>(lock: RetrainLock, fn: () => Promise<T>): Promise<LockedResult<T>> {
  if (!(await lock.tryAcquire())) return { acquired: false };
  try {
    return { acquired: true, value: await fn() };
  } finally {
    await lock.release();
  }
}
