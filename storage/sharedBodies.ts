import { randomBytes } from "node:crypto";
import { Redis } from "ioredis";
import { closeRedis, redisTimeoutsFromEnv, StateStoreError } from "./stateStore.ts";
import { redisTlsOptions } from "./tls.ts";
import { BackendUnavailableError, faultDetail, isUnavailable, redactUrl } from "./unavailable.ts";

/**
 * The GET /mastery body cache shared by every server process, in Redis (PostgreSQL + Redis mode).
 *
 * One key per student, `<prefix>:body:<student_key>`, holding either a body (the ready JSON bytes, its
 * ETag and a small `meta` string, behind a one-line header) or a tombstone. Every value starts with a
 * token of TOKEN_LEN bytes ("B" or "T" + 16 random hex digits) that no other value shares, and a
 * body names the generation (`<prefix>:bodygen`, bumped by a bulk "all") it was built under.
 *
 * The protocol (what keeps a write racing a build from leaving a stale body behind):
 * - a writer, after its write committed and before it acknowledges it, overwrites the key of every
 *   student it changed with a fresh tombstone (CacheInvalidationPublisher.publishKeys, one script that
 *   also publishes the pub/sub message); a bulk writer bumps the generation (publishAll);
 * - a reader reads the generation and the key in one MGET; a body of the current generation and
 *   fingerprint is a hit; anything else is a miss that remembers the generation and the token it saw
 *   (`""` for no key);
 * - after building the body from the database (the read of the database starts after that MGET), the
 *   reader stores it only if the generation and the key's token are still the ones it saw (compare-and-set
 *   in one script). A tombstone written after the MGET changed the token, so a body that may predate that
 *   write is never stored; a body stored before the tombstone is overwritten by it.
 * - tombstones live TOMBSTONE_TTL_MS; a reader whose build took longer than MAX_BUILD_MS does not store
 *   (so an expired tombstone, read back as "no key", cannot let a stale build in).
 */

/** Bytes of the token that starts every value. */
export const TOKEN_LEN = 17;
/** How long a tombstone lives (ms). */
export const TOMBSTONE_TTL_MS = 600_000;
/** A build that took longer than this (ms) is not stored (well inside TOMBSTONE_TTL_MS). */
export const MAX_BUILD_MS = 60_000;

const PREFIX = /^[A-Za-z0-9_.:-]{1,64}$/;
const FIELD = /^[^\s]+$/;

export const sharedBodyKey = (prefix: string, studentKey: string): string => `${prefix}:body:${studentKey}`;
export const sharedBodyGenKey = (prefix: string): string => `${prefix}:bodygen`;

/** A fresh value token: "B" (body) or "T" (tombstone) and 16 random hex digits. */
export function newToken(kind: "B" | "T"): string {
  return kind + randomBytes(8).toString("hex");
}

/** A body as stored: `payload` is the JSON bytes as served. */
export interface SharedBody {
  etag: string;
  /** When the body was built (ms since the epoch): its life is measured from here. */
  bornAtMs: number;
  /** Small text kept next to the body by the caller (e.g. the served scores per topic, JSON). */
  meta: string;
  payload: Buffer;
}

/** What a reader found: a usable body, or what to compare against when it stores the one it builds. */
export type SharedRead = { kind: "hit"; body: SharedBody } | { kind: "miss"; gen: string; token: string };

/**
 * The stored bytes of a body: `<token> <gen> <fingerprint> <bornAtMs> <etag> <meta bytes>\n<meta><payload>`.
 * Pure; the payload is copied once (Buffer.concat), never re-encoded.
 */
export function encodeSharedBody(token: string, gen: string, fingerprint: string, b: SharedBody): Buffer {
  if (token.length !== TOKEN_LEN || token[0] !== "B")
    throw new Error(`shared body: token must be "B" + 16 hex digits (got ${JSON.stringify(token)})`);
  for (const [name, v] of [
    ["gen", gen],
    ["fingerprint", fingerprint],
    ["etag", b.etag],
  ] as const)
    if (!FIELD.test(v))
      throw new Error(`shared body: ${name} must be non-empty without spaces (got ${JSON.stringify(v)})`);
  const meta = Buffer.from(b.meta, "utf8");
  const head = Buffer.from(
    `${token} ${gen} ${fingerprint} ${Math.round(b.bornAtMs)} ${b.etag} ${meta.length}\n`,
    "latin1",
  );
  return Buffer.concat([head, meta, b.payload]);
}

/**
 * Reads a stored value (pure): a hit when it is a body of generation `gen` and `fingerprint`, else a
 * miss carrying `gen` and the value's token ("" when there is no value). An unreadable value is a
 * miss with its first TOKEN_LEN bytes as the token (the store compares exactly those).
 */
export function decodeSharedValue(value: Buffer | null, gen: string, fingerprint: string): SharedRead {
  if (value === null || value.length === 0) return { kind: "miss", gen, token: "" };
  const token = value.toString("latin1", 0, Math.min(TOKEN_LEN, value.length));
  if (value[0] !== 0x42 /* B */) return { kind: "miss", gen, token };
  const nl = value.indexOf(0x0a);
  if (nl < 0 || nl > 512) return { kind: "miss", gen, token };
  const f = value.toString("latin1", 0, nl).split(" ");
  if (f.length !== 6 || f[1] !== gen || f[2] !== fingerprint) return { kind: "miss", gen, token };
  const bornAtMs = Number(f[3]);
  const metaLen = Number(f[5]);
  if (
    !Number.isFinite(bornAtMs) ||
    !Number.isInteger(metaLen) ||
    metaLen < 0 ||
    nl + 1 + metaLen > value.length
  )
    return { kind: "miss", gen, token };
  return {
    kind: "hit",
    body: {
      etag: f[4] as string,
      bornAtMs,
      meta: value.toString("utf8", nl + 1, nl + 1 + metaLen),
      payload: value.subarray(nl + 1 + metaLen),
    },
  };
}

// KEYS[1] body key, KEYS[2] generation key; ARGV: gen seen, token seen, value, ttl ms.
const STORE_LUA = `
local g = redis.call('GET', KEYS[2]) or '0'
if g ~= ARGV[1] then return 0 end
if redis.call('GETRANGE', KEYS[1], 0, ${TOKEN_LEN - 1}) ~= ARGV[2] then return 0 end
redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4])
return 1`;

// KEYS: body keys; ARGV: tombstone, its ttl ms, channel, message.
export const TOMBSTONE_PUBLISH_LUA = `
for i = 1, #KEYS do redis.call('SET', KEYS[i], ARGV[1], 'PX', ARGV[2]) end
redis.call('PUBLISH', ARGV[3], ARGV[4])
return #KEYS`;

// KEYS[1] generation key; ARGV: channel, message.
export const BUMP_PUBLISH_LUA = `
local g = redis.call('INCR', KEYS[1])
redis.call('PUBLISH', ARGV[1], ARGV[2])
return g`;

type WithStore = Redis & {
  sharedBodyStore(
    body: string,
    gen: string,
    genSeen: string,
    token: string,
    value: Buffer,
    ttl: number,
  ): Promise<number>;
};

/** Reads and stores shared bodies (each server process); invalidation is the publisher's (cacheInvalidation.ts). */
export class SharedBodyStore {
  private constructor(
    private readonly redis: WithStore,
    readonly prefix: string,
    private readonly url: string,
  ) {}

  static async open(url: string, prefix = "mastery"): Promise<SharedBodyStore> {
    if (!PREFIX.test(prefix))
      throw new StateStoreError(
        "REDIS_PREFIX",
        `Redis key prefix "${prefix}" must be 1-64 characters of letters, digits and _.:- (e.g. mastery_test_1)`,
      );
    const env = redisTimeoutsFromEnv();
    const r = new Redis(url, {
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      commandTimeout: env.commandTimeoutMs,
      connectTimeout: env.connectTimeoutMs,
      retryStrategy: (times: number) => Math.min(2000, 100 * 2 ** Math.min(times - 1, 5)),
      ...redisTlsOptions(url),
    });
    r.on("error", () => {});
    r.defineCommand("sharedBodyStore", { numberOfKeys: 2, lua: STORE_LUA });
    try {
      await r.connect();
    } catch (err) {
      r.disconnect();
      throw new StateStoreError(
        "REDIS_CONNECT",
        `cannot connect to Redis at ${redactUrl(url)} for the shared body cache: ${faultDetail(err)}. Check MASTERY_REDIS_URL (e.g. redis://127.0.0.1:6379).`,
      );
    }
    return new SharedBodyStore(r as WithStore, prefix, url);
  }

  /** One round trip: the generation and the student's value. */
  async read(studentKey: string, fingerprint: string): Promise<SharedRead> {
    const [g, v] = await this.call(() =>
      this.redis.mgetBuffer(sharedBodyGenKey(this.prefix), sharedBodyKey(this.prefix, studentKey)),
    );
    return decodeSharedValue(
      v ?? null,
      g === null || g === undefined ? "0" : g.toString("latin1"),
      fingerprint,
    );
  }

  /**
   * Stores `body` unless the generation or the student's value changed since `seen` was read
   * (true when stored). `ttlMs`: how long it may be served from now.
   */
  async store(
    studentKey: string,
    seen: { gen: string; token: string },
    fingerprint: string,
    body: SharedBody,
    ttlMs: number,
  ): Promise<boolean> {
    const ttl = Math.floor(ttlMs);
    if (!(ttl >= 1)) return false;
    const value = encodeSharedBody(newToken("B"), seen.gen, fingerprint, body);
    const n = await this.call(() =>
      this.redis.sharedBodyStore(
        sharedBodyKey(this.prefix, studentKey),
        sharedBodyGenKey(this.prefix),
        seen.gen,
        seen.token,
        value,
        ttl,
      ),
    );
    return n === 1;
  }

  private async call<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (!isUnavailable(err)) throw err;
      throw new BackendUnavailableError("redis", `${redactUrl(this.url)}: ${faultDetail(err)}`, {
        cause: err,
      });
    }
  }

  async close(): Promise<void> {
    await closeRedis(this.redis);
  }
}
