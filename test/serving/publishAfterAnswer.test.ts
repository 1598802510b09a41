import request from "supertest";
import { afterAll, describe, expect, it } from "vitest";
import type { SharedCacheInvalidation } from "../../serving/servingBackends.ts";
import type { DuckStore } from "../../storage/duckdb.ts";
import { quiz, storeWithTopics, testApp, token } from "./appFixture.ts";

const stores: DuckStore[] = [];
afterAll(() => {
  for (const s of stores) s.close();
});

/** A shared invalidation channel whose publishes wait for `release()`; `published` lists what went out. */
function heldChannel() {
  let release!: () => void;
  const held = new Promise<void>((r) => {
    release = r;
  });
  const published: string[][] = [];
  const acked: string[][] = [];
  const channel: SharedCacheInvalidation = {
    ttlMs: 600_000,
    publish: async (keys) => {
      published.push([...keys]);
      await held;
      acked.push([...keys]);
    },
    subscribe: async (events) => events.up(),
    owedKeys: () => 0,
  };
  return { channel, published, acked, release: () => release() };
}

describe("POST /events answers before the cross-server invalidation publish is acknowledged", () => {
  it("answers with the publish sent and held; its own next GET serves the new scores; drain waits for the publish", async () => {
    const store = await storeWithTopics();
    stores.push(store);
    const ch = heldChannel();
    const h = await testApp(store, { cacheInvalidation: ch.channel });
    const admin = `Bearer ${await token({ role: "admin", sub: "root" })}`;
    const post = (id: string, correct: boolean, minute: number) =>
      request(h.app)
        .post("/events")
        .set("authorization", admin)
        .send([quiz(id, "s1", "fractions", correct, minute)]);
    const get = () => request(h.app).get("/mastery/s1").set("authorization", admin);

    expect((await post("e1", false, 1)).status).toBe(200);
    const before = await get();
    expect(before.status).toBe(200);
    expect((await get()).text).toBe(before.text); // cached
    const res = await post("e2", true, 2);
    expect(res.status).toBe(200);
    expect(res.body.accepted).toBe(1);
    // Both publishes went out after their writes; none is acknowledged yet.
    expect(ch.published.length).toBe(2);
    expect(ch.acked).toEqual([]);
    // This server dropped its own body before answering: the next GET serves the new score.
    const after = await get();
    expect(after.text).not.toBe(before.text);
    let drained = false;
    const drain = h.drain().then(() => {
      drained = true;
    });
    await new Promise((r) => setTimeout(r, 50));
    expect(drained).toBe(false);
    ch.release();
    await drain;
    expect(ch.acked.length).toBe(2);
  });
});
