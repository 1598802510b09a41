import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CacheInvalidationPublisher, CacheInvalidationSubscriber } from "../../storage/cacheInvalidation.ts";

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
