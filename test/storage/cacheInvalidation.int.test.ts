import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  CacheInvalidationPublisher,
  CacheInvalidationSubscriber,
  OWED_KEYS_MAX,
} from "../../storage/cacheInvalidation.ts";
import { TcpProxy } from "../serving/tcpProxy.ts";

/**
 * A subscriber given its own process's publisher origin skips that publisher's key messages (the
 * server dropped those bodies before publishing) and still hears every other publisher, and every
 * "all" (real Redis, own prefix).
 */
const REDIS_URL = process.env.MASTERY_REDIS_URL ?? "redis://127.0.0.1:6379";
const PREFIX = `serve_inv_${process.pid}`;

let own: CacheInvalidationPublisher;
let other: CacheInvalidationPublisher;
let sub: CacheInvalidationSubscriber;
const heard: (string[] | "all")[] = [];

beforeAll(async () => {
  own = await CacheInvalidationPublisher.open(REDIS_URL, PREFIX);
  other = await CacheInvalidationPublisher.open(REDIS_URL, PREFIX);
  sub = await CacheInvalidationSubscriber.open(
    REDIS_URL,
    PREFIX,
    { keys: (k) => heard.push(k), all: () => heard.push("all"), up: () => {}, down: () => {} },
    own.origin,
  );
});

afterAll(async () => {
  await sub?.close();
  await own?.close();
  await other?.close();
});

async function until(n: number): Promise<void> {
  for (let i = 0; i < 200 && heard.length < n; i++) await new Promise((r) => setTimeout(r, 10));
}

describe("cache invalidation origin", () => {
  it("skips its own publisher's key messages, hears the others' and every 'all', in order", async () => {
    expect(own.origin).not.toBe(other.origin);
    await own.publishKeys(["own-1"]);
    await other.publishKeys(["other-1", "other-2"]);
    await own.publishKeys(["own-2"]);
    await own.publishAll();
    await other.publishKeys(["other-3"]);
    // One channel, delivered in publish order: once other-3 is in, everything before it was delivered.
    await until(3);
    expect(heard).toEqual([["other-1", "other-2"], "all", ["other-3"]]);
  });
});

describe("cache invalidation publishes of one turn share a message", () => {
  it("calls of one turn go out as ONE message with the union of their keys; a call made while it is in flight goes in the next; all resolve", async () => {
    heard.length = 0;
    // Ten requests of one group answered in one turn, two of them naming the same student.
    const first = Array.from({ length: 10 }, (_, i) => other.publishKeys([`g-${i % 9}`]));
    // Once the first message is on its way (after this turn), a call joins the next message.
    await new Promise((r) => setImmediate(r));
    const late = [other.publishKeys(["late-1"]), other.publishKeys(["late-2", "g-0"])];
    await Promise.all([...first, ...late]);
    await other.publishKeys([]);
    await until(2);
    expect(heard.length).toBe(2);
    expect([...(heard[0] as string[])].sort()).toEqual(Array.from({ length: 9 }, (_, i) => `g-${i}`));
    expect(heard[1]).toEqual(["late-1", "late-2", "g-0"]);
    // "all" after queued keys: the keys first, in one message, then "all".
    const keysThenAll = [other.publishKeys(["k-1"]), other.publishAll(), other.publishKeys(["k-2"])];
    await Promise.all(keysThenAll);
    await until(4);
    expect(heard.slice(2)).toEqual([["k-1", "k-2"], "all"]);
  });

  it("a failed publish fails every call it carried", async () => {
    const broken = await CacheInvalidationPublisher.open(REDIS_URL, PREFIX);
    await broken.close();
    const calls = [broken.publishKeys(["x"]), broken.publishKeys(["y"])];
    for (const c of calls) await expect(c).rejects.toThrow();
  });
});

describe("cache invalidation through faults (a TCP proxy in front of the real Redis)", () => {
  const REDIS_PORT = Number(new URL(REDIS_URL).port || 6379);
  const wait = async (cond: () => boolean, what: string, ms = 15_000): Promise<void> => {
    const end = Date.now() + ms;
    while (!cond()) {
      if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };

  /** A subscriber whose connection goes through its own proxy; what it hears in `got`, up/down in `log`. */
  const subscribedThroughProxy = async (heartbeatMs: number) => {
    const proxy = new TcpProxy(REDIS_PORT);
    await proxy.up();
    const log: string[] = [];
    const got: (string[] | "all")[] = [];
    const sub = await CacheInvalidationSubscriber.open(
      `redis://127.0.0.1:${proxy.port}`,
      PREFIX,
      {
        keys: (k) => got.push(k),
        all: () => got.push("all"),
        up: () => log.push("up"),
        down: (d) => log.push(`down: ${d}`),
      },
      undefined,
      { heartbeatMs },
    );
    return { proxy, log, got, sub };
  };

  it("a publish that failed is owed and re-published once the writer reaches Redis again; a subscriber connected all along hears it", async () => {
    const proxy = new TcpProxy(REDIS_PORT);
    await proxy.up();
    const delivered: { keys: number; all: boolean; failedAttempts: number }[] = [];
    const writer = await CacheInvalidationPublisher.open(`redis://127.0.0.1:${proxy.port}`, PREFIX, {
      retryBaseMs: 50,
      retryMaxMs: 200,
      onOwedDelivered: (d) => delivered.push(d),
    });
    try {
      heard.length = 0;
      // The writer's own connection breaks; the subscriber's (direct) does not.
      await proxy.down();
      await expect(writer.publishKeys(["owed-1", "owed-2"])).rejects.toThrow();
      await expect(writer.publishAll()).rejects.toThrow();
      expect(writer.owed).toEqual({ keys: 0, all: true }); // an owed "all" covers the keys
      await expect(writer.publishKeys(["owed-3"])).rejects.toThrow();
      expect(writer.owed).toEqual({ keys: 0, all: true }); // and any key after it
      await new Promise((r) => setTimeout(r, 300)); // retries fail meanwhile
      expect(heard).toEqual([]);
      await proxy.up();
      await wait(() => heard.length >= 1, "the owed 'all'");
      await new Promise((r) => setTimeout(r, 100));
      expect(heard).toEqual(["all"]);
      expect(writer.owed).toEqual({ keys: 0, all: false });
      expect(delivered).toHaveLength(1);
      expect(delivered[0]).toMatchObject({ keys: 0, all: true });
      expect(delivered[0]!.failedAttempts).toBeGreaterThanOrEqual(3);
      // Keys only (no "all") are re-published as keys.
      heard.length = 0;
      await proxy.down();
      await expect(writer.publishKeys(["late-a", "late-b"])).rejects.toThrow();
      expect(writer.owed).toEqual({ keys: 2, all: false });
      await proxy.up();
      await wait(() => heard.length >= 1, "the owed keys");
      expect(heard).toEqual([["late-a", "late-b"]]);
    } finally {
      await writer.close();
      await proxy.down();
    }
  });

  it("past OWED_KEYS_MAX owed keys, one 'all' is owed instead", async () => {
    const proxy = new TcpProxy(REDIS_PORT);
    await proxy.up();
    const writer = await CacheInvalidationPublisher.open(`redis://127.0.0.1:${proxy.port}`, PREFIX, {
      retryBaseMs: 60_000,
    });
    try {
      await proxy.down();
      const many = Array.from({ length: OWED_KEYS_MAX }, (_, i) => `m-${i}`);
      await expect(writer.publishKeys(many)).rejects.toThrow();
      expect(writer.owed).toEqual({ keys: OWED_KEYS_MAX, all: false });
      await expect(writer.publishKeys(["one-more"])).rejects.toThrow();
      expect(writer.owed).toEqual({ keys: 0, all: true });
    } finally {
      await writer.close();
      await proxy.down();
    }
  });

  it("one missed heartbeat is forgiven: a connection frozen for about one command timeout stays up and delivers what was sent meanwhile", async () => {
    const { proxy, log, got, sub: slow } = await subscribedThroughProxy(300);
    try {
      proxy.stall();
      await other.publishKeys(["sent-while-frozen"]);
      // A beat times out after the command timeout (1 s); the next one is sent before the connection thaws.
      await new Promise((r) => setTimeout(r, 1400));
      proxy.resume();
      await wait(() => got.length >= 1, "the message sent while frozen");
      await new Promise((r) => setTimeout(r, 700)); // later beats answered
      expect(got).toEqual([["sent-while-frozen"]]);
      expect(log).toEqual(["up"]);
    } finally {
      await slow.close();
      await proxy.down();
    }
  });

  it("a subscribed connection that stops answering (frozen, never closed) is reported down by the heartbeat, then up again", async () => {
    const { proxy, log, got, sub: frozen } = await subscribedThroughProxy(100);
    try {
      expect(log).toEqual(["up"]);
      proxy.stall();
      await other.publishKeys(["unheard"]);
      // Two beats, each failing after the command timeout (MASTERY_REDIS_COMMAND_TIMEOUT_MS, 1 s by default).
      await wait(() => log.length >= 2, "the heartbeat's down");
      expect(log[1]).toMatch(/^down: heartbeat failed twice/);
      expect(got).toEqual([]);
      await proxy.down();
      await proxy.up();
      await wait(() => log.length >= 3, "up again");
      expect(log[2]).toBe("up");
      await other.publishKeys(["heard"]);
      await wait(() => got.length >= 1, "a message after the reconnect");
      expect(got).toEqual([["heard"]]);
    } finally {
      await frozen.close();
      await proxy.down();
    }
  });
});
