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
