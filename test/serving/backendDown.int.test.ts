import request from "supertest";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AppHandle } from "../../serving/app.ts";
import { openServingBackends, type ServingBackends } from "../../serving/servingBackends.ts";
import { DuckStore } from "../../storage/duckdb.ts";
import { PgStore } from "../../storage/postgres.ts";
import { RedisStateStore } from "../../storage/stateStore.ts";
import { quiz, testApp, token } from "./appFixture.ts";
import { DEFAULT_MODELS } from "./streamHarness.ts";
import { TcpProxy } from "./tcpProxy.ts";

/**
 * 503 + Retry-After within 1 s when PostgreSQL or Redis goes away, /readyz naming the one that is
 * down, and service back by itself. Nothing shared is stopped: the server reaches the machine's
 * PostgreSQL and Redis through TCP proxies started here, and "down" is the proxy cutting every
 * connection and refusing new ones (what a crashed or restarting server looks like to a client).
 */

const PG_PORT = Number(new URL(process.env.MASTERY_PG_URL ?? "postgres://postgres@127.0.0.1:5432/test").port);
const REDIS_PORT = Number(new URL(process.env.MASTERY_REDIS_URL ?? "redis://127.0.0.1:6379").port || 6379);
const TAG = `rel503_${process.pid}`;

const pgProxy = new TcpProxy(PG_PORT);
const redisProxy = new TcpProxy(REDIS_PORT);
let duck: DuckStore;
let backends: ServingBackends;
let h: AppHandle;
let admin: { authorization: string };

beforeAll(async () => {
  await pgProxy.up();
  await redisProxy.up();
  duck = await DuckStore.open(":memory:");
  backends = await openServingBackends({
    duck,
    stores: {
      dbPath: ":memory:",
      pgUrl: `postgres://postgres@127.0.0.1:${pgProxy.port}/test`,
      pgSchema: TAG,
      redisUrl: `redis://127.0.0.1:${redisProxy.port}`,
      redisPrefix: TAG,
    },
    models: DEFAULT_MODELS,
    cacheTtlMs: 0,
  });
  h = await testApp(duck, backends.deps);
  admin = { authorization: `Bearer ${await token({ role: "admin", sub: "root" })}` };
});

afterAll(async () => {
  await pgProxy.up().catch(() => {});
  await redisProxy.up().catch(() => {});
  h?.ctx.backends.close();
  await backends?.close();
  duck?.close();
  // Clean up directly on the shared services (not through the proxies).
  const pg = await PgStore.open(`postgres://postgres@127.0.0.1:${PG_PORT}/test`, { schema: TAG });
  await pg.dropSchema();
  await pg.close();
  const r = await RedisStateStore.open(`redis://127.0.0.1:${REDIS_PORT}`, TAG);
  await r.clear();
  await r.close();
  await pgProxy.down();
  await redisProxy.down();
});

async function timed<T>(fn: () => Promise<T>): Promise<{ ms: number; res: T }> {
  const t0 = performance.now();
  const res = await fn();
  return { ms: performance.now() - t0, res };
}

async function eventually(fn: () => Promise<boolean>, tries = 150): Promise<void> {
  for (let i = 0; i < tries; i++) {
    if (await fn().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error("condition not met within 15 s");
}

describe("a needed backend goes away: 503 + Retry-After within 1 s, /readyz per backend, back by itself", () => {
  let n = 0;
  it.each([
    ["postgres", pgProxy, "redis"],
    ["redis", redisProxy, "postgres"],
  ] as const)("%s down", async (name, proxy, other) => {
    const batch = () => [quiz(`${name}-${++n}`, "s1", "T1", n % 2 === 0, n)];
    expect((await request(h.app).post("/events").set(admin).send(batch())).status).toBe(200);
    expect((await request(h.app).get("/readyz")).status).toBe(200);

    await proxy.down();
    const refused = batch();
    const post = await timed(() => request(h.app).post("/events").set(admin).send(refused));
    expect(post.res.status).toBe(503);
    expect(post.ms).toBeLessThan(1000);
    expect(Number(post.res.headers["retry-after"])).toBeGreaterThanOrEqual(1);
    expect(post.res.body.error).toBe("unavailable");

    const read = await timed(() => request(h.app).get("/mastery/s1").set(admin));
    expect(read.res.status).toBe(503);
    expect(read.ms).toBeLessThan(1000);
    expect(read.res.headers["retry-after"]).toBeDefined();

    const ready = await timed(() => request(h.app).get("/readyz"));
    expect(ready.res.status).toBe(503);
    expect(ready.ms).toBeLessThan(1000);
    expect(ready.res.body.backends[name].status).toBe("down");
    expect(ready.res.body.backends[other].status).toBe("up");
    expect(ready.res.body.backends.duckdb.status).toBe("up");

    const health = await timed(() => request(h.app).get("/healthz"));
    expect(health.res.status).toBe(200);
    expect(health.ms).toBeLessThan(100);

    await proxy.up();
    await eventually(async () => (await request(h.app).get("/readyz")).status === 200);
    // The refused batch was not acknowledged; the client's retry is applied now, not "duplicate".
    const retry = await request(h.app).post("/events").set(admin).send(refused);
    expect(retry.status).toBe(200);
    expect(retry.body.items.map((i: { status: string }) => i.status)).toEqual(["accepted"]);
    expect((await request(h.app).get("/mastery/s1").set(admin)).status).toBe(200);
  });
});

describe("a backend that stalls (accepts, never answers)", () => {
  it.each([
    ["postgres", pgProxy],
    ["redis", redisProxy],
  ] as const)(
    "%s: /readyz says down within its 1 s probe bound, then requests get 503 at once",
    async (name, proxy) => {
      expect(
        (
          await request(h.app)
            .post("/events")
            .set(admin)
            .send([quiz(`st-${name}`, "s1", "T1", true, 1)])
        ).status,
      ).toBe(200);
      proxy.stall();
      const ready = await timed(() => request(h.app).get("/readyz"));
      expect(ready.res.status).toBe(503);
      expect(ready.res.body.backends[name].status).toBe("down");
      // The probe bound, or Redis' own 1 s command timeout, whichever fires first.
      expect(ready.res.body.backends[name].error).toMatch(/no answer within 1000 ms|Command timed out/);
      // 1 s probe bound plus scheduling on a loaded machine (it was 2 s for every backend before).
      expect(ready.ms).toBeLessThan(1500);
      const post = await timed(() =>
        request(h.app)
          .post("/events")
          .set(admin)
          .send([quiz(`st2-${name}`, "s1", "T1", true, 2)]),
      );
      expect(post.res.status).toBe(503);
      expect(post.ms).toBeLessThan(1000);
      const get = await timed(() => request(h.app).get("/mastery/s1").set(admin));
      expect(get.res.status).toBe(503);
      expect(get.ms).toBeLessThan(1000);
      await proxy.down();
      await proxy.up();
      await eventually(async () => (await request(h.app).get("/readyz")).status === 200);
    },
  );
});
