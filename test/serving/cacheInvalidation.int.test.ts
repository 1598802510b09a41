import request from "supertest";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Pseudonymizer } from "../../features/pseudonymize.ts";
import type { AppHandle } from "../../serving/app.ts";
import { openServingBackends, type ServingBackends } from "../../serving/servingBackends.ts";
import { CacheInvalidationPublisher } from "../../storage/cacheInvalidation.ts";
import { DuckStore } from "../../storage/duckdb.ts";
import { PgStore } from "../../storage/postgres.ts";
import { RedisStateStore } from "../../storage/stateStore.ts";
import { PSEUDO_KEY, quiz, testApp, token } from "./appFixture.ts";
import { DEFAULT_MODELS } from "./streamHarness.ts";
import { TcpProxy } from "./tcpProxy.ts";

/**
 * Two app instances (A and B, each with its own body cache, as two server processes would be) on
 * the same PostgreSQL schema and Redis prefix, with a long cache TTL: a write through A, a key
 * published by a worker, or a bulk "all" drops B's cached bodies; B's subscription going away (its
 * Redis connection cut and restored through a TCP proxy, as a Redis restart looks to it) clears
 * its cache, so writes it could not hear are not served stale.
 */

const PG_URL = process.env.MASTERY_PG_URL ?? "postgres://postgres@127.0.0.1:5432/test";
const REDIS_URL = process.env.MASTERY_REDIS_URL ?? "redis://127.0.0.1:6379";
const REDIS_PORT = Number(new URL(REDIS_URL).port || 6379);
const TAG = `cache_inv_${process.pid}`;
/** Long enough that no body of this test expires by age: every refresh seen is an invalidation. */
const LONG_TTL_MS = 600_000;

const redisProxy = new TcpProxy(REDIS_PORT);
const pseudo = new Pseudonymizer(PSEUDO_KEY);
let duckA: DuckStore;
let duckB: DuckStore;
let backA: ServingBackends;
let backB: ServingBackends;
let a: AppHandle;
let b: AppHandle;
let publisher: CacheInvalidationPublisher;
let admin: { authorization: string };
let n = 0;

async function open(duck: DuckStore, redisUrl: string): Promise<ServingBackends> {
  return openServingBackends({
    duck,
    stores: { dbPath: ":memory:", pgUrl: PG_URL, pgSchema: TAG, redisUrl, redisPrefix: TAG },
    models: DEFAULT_MODELS,
    cacheTtlMs: LONG_TTL_MS,
    invalidatedCacheTtlMs: LONG_TTL_MS,
  });
}

beforeAll(async () => {
  await redisProxy.up();
  duckA = await DuckStore.open(":memory:");
  duckB = await DuckStore.open(":memory:");
  backA = await open(duckA, REDIS_URL);
  backB = await open(duckB, `redis://127.0.0.1:${redisProxy.port}`);
  a = await testApp(duckA, backA.deps);
  b = await testApp(duckB, backB.deps);
  publisher = await CacheInvalidationPublisher.open(REDIS_URL, TAG);
  admin = { authorization: `Bearer ${await token({ role: "admin", sub: "root" })}` };
});

afterAll(async () => {
  await redisProxy.up().catch(() => {});
  a?.ctx.backends.close();
  b?.ctx.backends.close();
  await publisher?.close();
  await backA?.close();
  await backB?.close();
  duckA?.close();
  duckB?.close();
  const pg = await PgStore.open(PG_URL, { schema: TAG });
  await pg.dropSchema();
  await pg.close();
  const r = await RedisStateStore.open(REDIS_URL, TAG);
  await r.clear();
  await r.close();
  await redisProxy.down();
});

async function post(h: AppHandle, student: string, correct: boolean): Promise<void> {
  const res = await request(h.app)
    .post("/events")
    .set(admin)
    .send([quiz(`e-${++n}`, student, "T1", correct, n)]);
  expect(res.status).toBe(200);
  expect(res.body.accepted).toBe(1);
}

async function mastery(h: AppHandle, student: string): Promise<string> {
  const res = await request(h.app).get(`/mastery/${student}`).set(admin);
  expect(res.status).toBe(200);
  return res.text;
}

/** GET /mastery lookups of `h` that were served from its body cache, so far. */
async function hits(h: AppHandle): Promise<number> {
  const m = await h.ctx.metrics.cache.get();
  return m.values.find((v) => v.labels.result === "hit")?.value ?? 0;
}

async function invalidationUp(h: AppHandle): Promise<number> {
  return (await h.ctx.metrics.cacheInvalidation.get()).values[0]?.value ?? -1;
}

async function eventually(fn: () => Promise<boolean>, tries = 150): Promise<void> {
  for (let i = 0; i < tries; i++) {
    if (await fn().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error("condition not met within 15 s");
}

/**
 * B has `student`'s body cached: a second GET is a hit and serves the same body. A POST through A
 * answers before its invalidation reaches B (the publish goes out after the answer), so a late
 * message may drop the body B has just cached: the check is repeated until the pair of reads holds.
 */
async function cachedOnB(student: string): Promise<string> {
  let body = "";
  await eventually(async () => {
    body = await mastery(b, student);
    const h0 = await hits(b);
    return (await mastery(b, student)) === body && (await hits(b)) === h0 + 1;
  });
  return body;
}

/** GET /mastery/:id/T1/history lookups of `h` served from its history cache, so far. */
async function historyHits(h: AppHandle): Promise<number> {
  const m = await h.ctx.metrics.historyCache.get();
  return m.values.find((v) => v.labels.result === "hit")?.value ?? 0;
}

async function history(h: AppHandle, student: string): Promise<string> {
  const res = await request(h.app).get(`/mastery/${student}/T1/history`).set(admin);
  expect(res.status).toBe(200);
  return res.text;
}

describe("body cache invalidation across processes (PostgreSQL + Redis)", () => {
  it("both servers are subscribed", async () => {
    expect(await invalidationUp(a)).toBe(1);
    expect(await invalidationUp(b)).toBe(1);
  });

  it("a POST /events through A drops B's cached body: B serves the new scores", async () => {
    await post(a, "s1", false);
    const before = await cachedOnB("s1");
    await post(a, "s1", true);
    const fresh = await mastery(a, "s1");
    expect(fresh).not.toBe(before);
    // Delivery to B is asynchronous (a few ms); with a 10-minute TTL only the invalidation refreshes it.
    await eventually(async () => (await mastery(b, "s1")) === fresh);
  });

  it("a POST /events through A drops B's cached histories of the student", async () => {
    await post(a, "s7", false);
    let before = "";
    // Cached on B: a second read is a hit with the same text (retried past a late invalidation, as cachedOnB).
    await eventually(async () => {
      before = await history(b, "s7");
      const h0 = await historyHits(b);
      return (await history(b, "s7")) === before && (await historyHits(b)) === h0 + 1;
    });
    await post(a, "s7", true);
    const fresh = await history(a, "s7");
    expect(JSON.parse(fresh).history.length).toBeGreaterThan(JSON.parse(before).history.length);
    await eventually(async () => (await history(b, "s7")) === fresh);
  });

  it("a POST /feedback override through A drops B's cached body", async () => {
    await post(a, "s2", true);
    const before = await cachedOnB("s2");
    const res = await request(a.app)
      .post("/feedback")
      .set(admin)
      .send({ studentId: "s2", topicId: "T1", mastery: 0.123, reason: "checked in class" });
    expect(res.status).toBe(201);
    const fresh = await mastery(a, "s2");
    expect(fresh).not.toBe(before);
    expect(fresh).toContain("teacher_override");
    await eventually(async () => (await mastery(b, "s2")) === fresh);
  });

  it("a key published by another process (a stream worker) drops only that student's body on B", async () => {
    await post(a, "s3", true);
    await post(a, "s4", true);
    await cachedOnB("s3");
    await cachedOnB("s4");
    await publisher.publishKeys([pseudo.studentKey("s3")]);
    // Delivery is asynchronous: wait until B's GET of s3 misses, then s4 must still hit.
    await eventually(async () => {
      const h0 = await hits(b);
      await mastery(b, "s3");
      return (await hits(b)) === h0;
    });
    const h1 = await hits(b);
    await mastery(b, "s4");
    expect(await hits(b)).toBe(h1 + 1);
  });

  it("the raw-row copy into A's DuckDB landing after a POST keeps A's body (no registry model reads it)", async () => {
    // Hold A's DuckDB queue so the copy lands only after the GET below (reads go to PostgreSQL).
    // (The queue may still hold earlier tests' copies: wait until this hold is the one running.)
    let release!: () => void;
    let holding!: () => void;
    const isHolding = new Promise<void>((r) => (holding = r));
    const held = a.ctx.gate.run(
      () =>
        new Promise<void>((r) => {
          release = r;
          holding();
        }),
    );
    await isHolding;
    await post(a, "s7", true);
    const body = await mastery(a, "s7"); // computed after the write, cached
    release();
    await held;
    await a.drain(); // the copy of s7's rows into A's DuckDB has landed
    const h0 = await hits(a);
    expect(await mastery(a, "s7")).toBe(body);
    expect(await hits(a)).toBe(h0 + 1);
  });

  it("a bulk bump ('all') drops every body on B", async () => {
    await cachedOnB("s3");
    await cachedOnB("s4");
    await publisher.publishAll();
    await eventually(async () => {
      const h0 = await hits(b);
      await mastery(b, "s4");
      return (await hits(b)) === h0;
    });
    const h1 = await hits(b);
    await mastery(b, "s3");
    expect(await hits(b)).toBe(h1); // s3 was dropped too
  });

  it("B's Redis connection lost and back (Redis restart): B's cache is cleared, writes it missed are served", async () => {
    await post(a, "s5", false);
    const before = await cachedOnB("s5");
    await redisProxy.down();
    await eventually(async () => (await invalidationUp(b)) === 0);
    // Written while B could not hear it: the message is lost for B.
    await post(a, "s5", true);
    const fresh = await mastery(a, "s5");
    expect(fresh).not.toBe(before);
    await redisProxy.up();
    await eventually(async () => (await invalidationUp(b)) === 1);
    await eventually(async () => (await request(b.app).get("/readyz")).status === 200);
    const h0 = await hits(b);
    expect(await mastery(b, "s5")).toBe(fresh);
    expect(await hits(b)).toBe(h0);
    // Invalidation works again after the reconnect.
    await cachedOnB("s5");
    await post(a, "s5", false);
    const last = await mastery(a, "s5");
    await eventually(async () => (await mastery(b, "s5")) === last);
  });
});
