import { randomUUID } from "node:crypto";
import { Redis } from "ioredis";
import { closeRedis, redisTimeoutsFromEnv, StateStoreError } from "./stateStore.ts";
import { redisTlsOptions } from "./tls.ts";
import { BackendUnavailableError, faultDetail, isUnavailable, redactUrl } from "./unavailable.ts";

/**
 * Cross-process invalidation of the GET /mastery body cache over Redis pub/sub.
 *
 * Every process that writes scores or learner state in shared mode (PostgreSQL + Redis) publishes the
 * pseudonymous student keys it changed, after the write committed, on `<prefix>:bodycache`; a bulk
 * writer publishes "all" (a generation bump). Every server subscribes and drops those bodies.
 *
 * Pub/sub is at most once: a message sent while a subscriber is disconnected is lost. So the
 * subscriber reports `down` as soon as its connection closes, or when two heartbeat PINGs in a row on it go
 * unanswered (a connection that died without closing: a frozen host, a dropped route), and the server then
 * clears its cache and falls back to a short TTL; it reports `up` only once SUBSCRIBE is confirmed again
 * (the server clears once more, since writes in between were not heard, and goes back to the long TTL).
 *
 * On the publishing side a failed PUBLISH is not forgotten: its keys are owed and re-published in the
 * background with a capped backoff until Redis acknowledges them (past OWED_KEYS_MAX owed keys, one "all"
 * instead). So a body outlives a write on another server only while the writer cannot reach Redis at all,
 * or when the writer dies between its commit and its publish (then up to the long TTL).
 */

export interface InvalidationEvents {
  /** These students' bodies changed. */
  keys(studentKeys: string[]): void;
  /** Every body may have changed (bulk job). */
  all(): void;
  /** The subscription is confirmed (first time or after a reconnect): nothing published from now on is missed. */
  up(): void;
  /** The connection closed: messages may be missed until the next `up`. */
  down(detail: string): void;
}

const PREFIX = /^[A-Za-z0-9_.:-]{1,64}$/;
/** Keys per message (a POST group of 1,000 events touches at most 1,000 students). */
const KEYS_PER_MESSAGE = 500;
/** Owed keys (failed publishes not yet re-published) kept one by one; past this, one "all" instead. */
export const OWED_KEYS_MAX = 50_000;

export interface PublisherOptions {
  /** Re-publish backoff for owed keys: base, doubling per failed attempt, capped (ms; default 100 and 5,000). */
  retryBaseMs?: number;
  retryMaxMs?: number;
  /** Called when owed keys were delivered (how many keys, whether an "all", after how many failed attempts). */
  onOwedDelivered?: (delivered: { keys: number; all: boolean; failedAttempts: number }) => void;
}

export interface SubscriberOptions {
  /** The subscribed connection's heartbeat (PING) period, ms; default 5,000; 0 turns it off. Two missed: down. */
  heartbeatMs?: number;
}

export function invalidationChannel(prefix: string): string {
  return `${prefix}:bodycache`;
}

/** The message's keys, or "all" for a bulk bump and for anything this version does not understand. */
export function parseInvalidation(message: string): string[] | "all" {
  return readInvalidation(message).keys;
}

/**
 * The message's keys ("all" as in parseInvalidation) and the publisher it names (`o`), if any: a
 * server skips the key messages it published itself, having dropped those bodies before publishing.
 */
export function readInvalidation(message: string): { keys: string[] | "all"; origin: string | null } {
  try {
    const m = JSON.parse(message) as { k?: unknown; all?: unknown; o?: unknown };
    const origin = typeof m.o === "string" ? m.o : null;
    if (Array.isArray(m.k) && m.k.every((k) => typeof k === "string"))
      return { keys: m.k as string[], origin };
    return { keys: "all", origin };
  } catch {
    // an unreadable message drops everything rather than risk a stale body
    return { keys: "all", origin: null };
  }
}

function client(url: string): Redis {
  const env = redisTimeoutsFromEnv();
  const r = new Redis(url, {
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    commandTimeout: env.commandTimeoutMs,
    connectTimeout: env.connectTimeoutMs,
    retryStrategy: (times: number) => Math.min(2000, 100 * 2 ** Math.min(times - 1, 5)),
    // Re-subscribing is done by hand so that `up` is reported only once SUBSCRIBE is confirmed.
    autoResubscribe: false,
    ...redisTlsOptions(url),
  });
  r.on("error", () => {});
  return r;
}

async function connect(r: Redis, url: string): Promise<void> {
  try {
    await r.connect();
  } catch (err) {
    r.disconnect();
    throw new StateStoreError(
      "REDIS_CONNECT",
      `cannot connect to Redis at ${redactUrl(url)} for cache invalidation: ${faultDetail(err)}. Check MASTERY_REDIS_URL (e.g. redis://127.0.0.1:6379).`,
    );
  }
}

/** Publishes invalidations (any writer process). */
export class CacheInvalidationPublisher {
  /** Named in each key message, so a subscriber in the same process can skip its own (ignoreOrigin). */
  readonly origin = randomUUID();

  private constructor(
    private readonly redis: Redis,
    readonly channel: string,
    private readonly url: string,
    private readonly opts: PublisherOptions,
  ) {}

  static async open(
    url: string,
    prefix = "mastery",
    opts: PublisherOptions = {},
  ): Promise<CacheInvalidationPublisher> {
    if (!PREFIX.test(prefix))
      throw new StateStoreError(
        "REDIS_PREFIX",
        `Redis key prefix "${prefix}" must be 1-64 characters of letters, digits and _.:- (e.g. mastery_test_1)`,
      );
    const r = client(url);
    await connect(r, url);
    return new CacheInvalidationPublisher(r, invalidationChannel(prefix), url, opts);
  }

  /**
   * Publishes the changed student keys (deduplicated, in messages of at most 500 keys). Resolves once a
   * PUBLISH naming them was acknowledged by Redis, as before; but the calls of one event-loop turn (the
   * POST /events requests of one group commit answer together) and those made while a publish is in flight
   * share ONE message (the union of their keys) instead of a PUBLISH each: one command's client CPU and
   * write per group, not per request (docs/benchmarks.md "The POST's CPU, round 4 (post16, 2026-12-05)").
   * A failed publish fails every call it carried, and its keys are owed: re-published in the background
   * (with whatever is queued by then) until Redis acknowledges them, or until close.
   */
  publishKeys(studentKeys: Iterable<string>): Promise<void> {
    let given = 0;
    for (const k of studentKeys) {
      this.pendingKeys.add(k);
      given++;
    }
    if (given === 0) return Promise.resolve();
    return this.enqueue();
  }

  /** Tells every server to drop its whole cache (a bulk job rewrote many students); after any queued keys. */
  publishAll(): Promise<void> {
    this.pendingAll = true;
    return this.enqueue();
  }

  private pendingKeys = new Set<string>();
  private pendingAll = false;
  private waiters: { resolve: () => void; reject: (err: unknown) => void }[] = [];
  private scheduled = false;
  private inFlight: Promise<void> | null = null;

  /** Keys of failed publishes not yet delivered (`all`: an "all" is owed, or the keys overflowed into one). */
  private owedKeys = new Set<string>();
  private owedAll = false;
  private failedAttempts = 0;
  private retryTimer: NodeJS.Timeout | null = null;
  private closed = false;

  /** What is owed now: keys of failed publishes, and whether an "all" is (for /metrics and tests). */
  get owed(): { keys: number; all: boolean } {
    return { keys: this.owedKeys.size, all: this.owedAll };
  }

  private enqueue(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.waiters.push({ resolve, reject });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => void this.drain());
  }

  /** Keeps what a failed publish carried, and arms the next attempt. */
  private owe(keys: readonly string[], all: boolean): void {
    if (this.closed) return;
    // An owed "all" covers any key.
    if (!this.owedAll) for (const k of keys) this.owedKeys.add(k);
    if (all || this.owedKeys.size > OWED_KEYS_MAX) {
      // Past the cap, one "all" covers every owed key.
      this.owedAll = true;
      this.owedKeys.clear();
    }
    this.failedAttempts++;
    if (this.retryTimer !== null) return;
    const base = this.opts.retryBaseMs ?? 100;
    const delay = Math.min(this.opts.retryMaxMs ?? 5000, base * 2 ** Math.min(this.failedAttempts - 1, 16));
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      if (this.closed) return;
      this.schedule(); // drain takes the owed keys
    }, delay);
    this.retryTimer.unref();
  }

  /** Moves the owed keys into the next message. */
  private takeOwed(): { keys: number; all: boolean } {
    const taken = { keys: this.owedKeys.size, all: this.owedAll };
    for (const k of this.owedKeys) this.pendingKeys.add(k);
    this.pendingAll ||= this.owedAll;
    this.owedKeys = new Set();
    this.owedAll = false;
    return taken;
  }

  /** Publishes what is queued, after the publish in flight (calls queued meanwhile join this one). */
  private async drain(): Promise<void> {
    while (this.inFlight !== null) await this.inFlight.catch(() => undefined);
    this.scheduled = false;
    // Owed keys ride along with any publish (the connection may be back before the retry timer fires).
    const retried = this.owedKeys.size > 0 || this.owedAll ? this.takeOwed() : null;
    const failedBefore = this.failedAttempts;
    const keys = [...this.pendingKeys];
    const all = this.pendingAll;
    const waiters = this.waiters;
    this.pendingKeys = new Set();
    this.pendingAll = false;
    this.waiters = [];
    let sent = 0;
    const run = (async () => {
      for (; sent < keys.length; sent += KEYS_PER_MESSAGE)
        await this.publish(JSON.stringify({ k: keys.slice(sent, sent + KEYS_PER_MESSAGE), o: this.origin }));
      if (all) await this.publish(JSON.stringify({ all: 1 }));
    })();
    this.inFlight = run;
    try {
      await run;
      if (failedBefore > 0) {
        this.failedAttempts = 0;
        if (retried !== null) this.opts.onOwedDelivered?.({ ...retried, failedAttempts: failedBefore });
      }
      for (const w of waiters) w.resolve();
    } catch (err) {
      // The messages from the failed one on are owed (those before it were acknowledged).
      this.owe(keys.slice(sent), all);
      for (const w of waiters) w.reject(err);
    } finally {
      this.inFlight = null;
    }
  }

  private async publish(message: string): Promise<void> {
    try {
      await this.redis.publish(this.channel, message);
    } catch (err) {
      if (!isUnavailable(err)) throw err;
      throw new BackendUnavailableError("redis", `${redactUrl(this.url)}: ${faultDetail(err)}`, {
        cause: err,
      });
    }
  }

  /**
   * Closes the connection after the publish in flight. Owed keys get one last attempt (a graceful stop
   * after Redis came back); if it fails they are given up (the caller may log `owed` first).
   */
  async close(): Promise<void> {
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    if (!this.closed && (this.owedKeys.size > 0 || this.owedAll) && this.redis.status === "ready") {
      // The drain takes the owed keys, as it does for any publish.
      await new Promise<void>((resolve) => {
        this.waiters.push({ resolve, reject: () => resolve() });
        this.schedule();
      });
    }
    this.closed = true;
    while (this.inFlight !== null) await this.inFlight.catch(() => undefined);
    await closeRedis(this.redis);
  }
}

/** Listens for invalidations (each server process). Reconnects by itself, forever. */
export class CacheInvalidationSubscriber {
  private closed = false;
  private isUp = false;

  private heartbeat: NodeJS.Timeout | null = null;

  private constructor(
    private readonly redis: Redis,
    readonly channel: string,
    private readonly events: InvalidationEvents,
  ) {}

  /**
   * Connects and subscribes; resolves once the first subscription is confirmed (`up` has been
   * called). Throws when Redis does not answer at startup. `ignoreOrigin`: the `origin` of this
   * process's own publisher, whose key messages are skipped (the server dropped those bodies itself,
   * after its write and before publishing; dropping them again on the echo would only cost a miss
   * of a body computed after the write). "all" messages are never skipped.
   */
  static async open(
    url: string,
    prefix: string,
    events: InvalidationEvents,
    ignoreOrigin?: string,
    opts: SubscriberOptions = {},
  ): Promise<CacheInvalidationSubscriber> {
    if (!PREFIX.test(prefix))
      throw new StateStoreError(
        "REDIS_PREFIX",
        `Redis key prefix "${prefix}" must be 1-64 characters of letters, digits and _.:- (e.g. mastery_test_1)`,
      );
    const r = client(url);
    const s = new CacheInvalidationSubscriber(r, invalidationChannel(prefix), events);
    r.on("message", (channel: string, message: string) => {
      if (channel !== s.channel) return;
      const m = readInvalidation(message);
      if (m.keys === "all") events.all();
      else if (ignoreOrigin === undefined || m.origin !== ignoreOrigin) events.keys(m.keys);
    });
    r.on("close", () => s.lost("connection closed"));
    r.on("ready", () => {
      // Each (re)connection: subscribe, and only then say up.
      void s.subscribe();
    });
    await connect(r, url);
    await s.subscribe();
    if (!s.isUp) {
      r.disconnect();
      throw new StateStoreError("REDIS_CONNECT", "could not subscribe to the cache invalidation channel");
    }
    const every = opts.heartbeatMs ?? 5000;
    if (every > 0) {
      s.heartbeat = setInterval(() => void s.beat(), every);
      s.heartbeat.unref();
    }
    return s;
  }

  /**
   * A PING on the subscribed connection (allowed in subscriber mode). Two in a row unanswered within the
   * command timeout, the connection is taken as dead though it never closed (messages were not arriving
   * either): `down`, and the connection is dropped so that the client reconnects and subscribes again. One
   * miss is forgiven: an event loop stalled past the timeout (a long GC) would otherwise clear the cache.
   */
  private beating = false;
  private missedBeats = 0;
  private async beat(): Promise<void> {
    if (this.closed || !this.isUp || this.beating) return;
    this.beating = true;
    try {
      await this.redis.ping();
      this.missedBeats = 0;
    } catch (err) {
      if (this.closed || ++this.missedBeats < 2) return;
      this.missedBeats = 0;
      this.lost(`heartbeat failed twice: ${faultDetail(err)}`);
      this.redis.disconnect(true);
    } finally {
      this.beating = false;
    }
  }

  /** Whether the subscription is confirmed now. */
  get subscribed(): boolean {
    return this.isUp;
  }

  private async subscribe(): Promise<void> {
    if (this.closed || this.isUp) return;
    try {
      await this.redis.subscribe(this.channel);
    } catch (err) {
      this.lost(`subscribe failed: ${faultDetail(err)}`);
      // The connection may still be up (e.g. a timeout): drop it so the reconnect loop tries again.
      if (!this.closed) this.redis.disconnect(true);
      return;
    }
    if (this.closed || this.isUp) return;
    this.isUp = true;
    this.events.up();
  }

  private lost(detail: string): void {
    if (!this.isUp) {
      // Never up since the last loss: still tell the first time (startup) nothing; down is sticky.
      return;
    }
    this.isUp = false;
    this.events.down(detail);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.isUp = false;
    if (this.heartbeat !== null) clearInterval(this.heartbeat);
    this.redis.disconnect();
  }
}
