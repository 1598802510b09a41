import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { Agent, request as httpRequest } from "node:http";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import request from "supertest";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type ChaosServices,
  missingTools,
  sleep,
  startChaosServices,
  waitForPort,
} from "../../chaos/services.ts";
import type { AppHandle } from "../../serving/app.ts";
import { openServingBackends, type ServingBackends } from "../../serving/servingBackends.ts";
import { DuckStore } from "../../storage/duckdb.ts";
import { PgStore } from "../../storage/postgres.ts";
import { RedisStateStore } from "../../storage/stateStore.ts";
import { BackendUnavailableError, faultKind } from "../../storage/unavailable.ts";
import { PSEUDO_KEY, quiz, SECRET, testApp, token } from "./appFixture.ts";
import { DEFAULT_MODELS } from "./streamHarness.ts";

/**
 * Restart and outage behaviour against PRIVATE PostgreSQL / Redis / NATS instances started here
 * (ports 25433 / 26380 / 24223, so the chaos suite's 2543x ones can run at the same time): the
 * pool reconnects after a PostgreSQL restart, Redis fails fast and reconnects, the server answers
 * 503 + Retry-After during the outage and serves again by itself, /readyz reports each backend,
 * and SIGTERM drains a server under keep-alive load and releases its DuckDB file.
 */

const missing = missingTools();
if (missing.length > 0) console.warn(`outage tests skipped: missing ${missing.join(", ")}`);
const MASTERY = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "bin", "mastery.js");

/** Polls `fn` until it returns true; fails after `tries` polls 100 ms apart. */
async function eventually(fn: () => Promise<boolean>, tries = 300): Promise<void> {
  for (let i = 0; i < tries; i++) {
    if (await fn().catch(() => false)) return;
    await sleep(100);
  }
  throw new Error(`condition not met after ${tries} polls`);
}

describe.skipIf(missing.length > 0)("outages against private PostgreSQL / Redis", () => {
  let svc: ChaosServices;
  beforeAll(async () => {
    svc = await startChaosServices(() => {}, { pg: 25433, redis: 26380, nats: 24223 });
  }, 120_000);
  afterAll(async () => {
    await svc?.close();
  });

  it("PgStore: a query during the outage throws BackendUnavailableError; after the restart the same store works", {
    timeout: 120_000,
  }, async () => {
    const pg = await PgStore.open(svc.pgUrl, { schema: "outage_pool", poolMax: 3 });
    expect(await pg.one<{ n: number }>("SELECT 1 AS n")).toEqual({ n: 1 });
    // A transaction holds ONE pooled client: every statement in it sees the same backend pid.
    const pids = await pg.transaction(async () => {
      const a = await pg.one<{ p: number }>("SELECT pg_backend_pid() AS p");
      const b = await pg.one<{ p: number }>("SELECT pg_backend_pid() AS p");
      return [a!.p, b!.p];
    });
    expect(pids[0]).toBe(pids[1]);
    await svc.get("postgres").stop();
    const err = await pg.one("SELECT 1").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BackendUnavailableError);
    expect((err as BackendUnavailableError).backend).toBe("postgres");
    expect((err as Error).message).toMatch(
      /^PostgreSQL is unavailable \(postgres:\/\/postgres@127\.0\.0\.1:25433/,
    );
    await svc.get("postgres").start();
    expect(await pg.one<{ n: number }>("SELECT 2 AS n")).toEqual({ n: 2 });
    // A SQL error is NOT an outage: it keeps the driver's SQLSTATE and classifies as data.
    const bad = await pg.one("SELECT 1/0").catch((e: unknown) => e);
    expect(faultKind(bad)).toBe("data");
    await pg.dropSchema();
    await pg.close();
  });

  it("RedisStateStore: refuses at once while Redis is down, reconnects by itself", {
    timeout: 120_000,
  }, async () => {
    const r = await RedisStateStore.open(svc.redisUrl, "outage");
    await r.ping();
    await svc.get("redis").stop();
    const err = await r.load([{ studentKey: "k", topicId: "t", eventIds: ["e"] }]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BackendUnavailableError);
    expect((err as BackendUnavailableError).backend).toBe("redis");
    await svc.get("redis").start();
    await eventually(async () => {
      await r.ping();
      return true;
    });
    expect(await r.load([{ studentKey: "k", topicId: "t", eventIds: ["e"] }])).toEqual([
      { studentKey: "k", topicId: "t", rev: 0, state: null, seen: new Set() },
    ]);
    await r.clear();
    await r.close();
  });

  it("serve on PG + Redis: 503 + Retry-After during a PostgreSQL outage, /readyz per backend, then serves again", {
    timeout: 180_000,
  }, async () => {
    const duck = await DuckStore.open(":memory:");
    const backends: ServingBackends = await openServingBackends({
      duck,
      stores: {
        dbPath: ":memory:",
        pgUrl: svc.pgUrl,
        pgSchema: "outage_srv",
        redisUrl: svc.redisUrl,
        redisPrefix: "outage_srv",
      },
      models: DEFAULT_MODELS,
      cacheTtlMs: 0,
    });
    const h: AppHandle = await testApp(duck, backends.deps);
    const admin = { authorization: `Bearer ${await token({ role: "admin", sub: "root" })}` };
    try {
      const ready = await request(h.app).get("/readyz");
      expect(ready.status).toBe(200);
      expect(Object.keys(ready.body.backends)).toEqual(["duckdb", "postgres", "redis"]);
      for (const b of Object.values(ready.body.backends) as { status: string; latencyMs: number }[]) {
        expect(b.status).toBe("up");
        expect(b.latencyMs).toBeGreaterThanOrEqual(0);
      }
      expect(
        (
          await request(h.app)
            .post("/events")
            .set(admin)
            .send([quiz("o1", "s1", "T1", true, 1)])
        ).status,
      ).toBe(200);

      await svc.get("postgres").stop();
      const during = [quiz("o2", "s1", "T1", false, 2), quiz("o3", "s2", "T1", true, 3)];
      const res = await request(h.app).post("/events").set(admin).send(during);
      expect(res.status).toBe(503);
      expect(Number(res.headers["retry-after"])).toBeGreaterThanOrEqual(1);
      expect(res.body.error).toBe("unavailable");
      // Once known down, a score read is refused before it touches the store.
      const get = await request(h.app).get("/mastery/s1").set(admin);
      expect(get.status).toBe(503);
      expect(get.body.reason).toMatch(/^PostgreSQL is unavailable/);
      expect((await request(h.app).get("/healthz")).status).toBe(200);
      const notReady = await request(h.app).get("/readyz");
      expect(notReady.status).toBe(503);
      expect(notReady.body.backends.postgres.status).toBe("down");
      expect(notReady.body.backends.redis.status).toBe("up");

      await svc.get("postgres").start();
      await eventually(async () => (await request(h.app).get("/readyz")).status === 200);
      // The client's retry of the refused batch: applied now (nothing was acknowledged before).
      const retry = await request(h.app).post("/events").set(admin).send(during);
      expect(retry.status).toBe(200);
      const pg = await PgStore.open(svc.pgUrl, { schema: "outage_srv" });
      const ids = await pg.all<{ event_id: string }>("SELECT DISTINCT event_id FROM raw_events ORDER BY 1");
      expect(ids.map((r) => r.event_id)).toEqual(["o1", "o2", "o3"]);
      expect((await request(h.app).get("/mastery/s1").set(admin)).status).toBe(200);
      await pg.dropSchema();
      await pg.close();
    } finally {
      h.ctx.backends.close();
      const r = await RedisStateStore.open(svc.redisUrl, "outage_srv");
      await r.clear();
      await r.close();
      await backends.close();
      duck.close();
    }
  });
});

describe("graceful shutdown of `mastery serve`", () => {
  it("SIGTERM under keep-alive load drains and exits, and the DuckDB file opens again at once", {
    timeout: 180_000,
  }, async () => {
    const dir = mkdtempSync(join(tmpdir(), "mastery-shutdown-"));
    const db = join(dir, "serve.duckdb");
    const port = 28091;
    const env = {
      ...process.env,
      MASTERY_JWT_SECRET: SECRET,
      MASTERY_PSEUDONYM_KEY: PSEUDO_KEY,
      LOG_LEVEL: "warn",
    };
    const serve = (): { proc: ChildProcess; exited: Promise<number | null> } => {
      const proc = spawn(
        process.execPath,
        [MASTERY, "serve", "--port", String(port), "--db", db, "--no-monitor", "--shutdown-timeout", "3000"],
        { env, stdio: "ignore" },
      );
      return { proc, exited: new Promise((r) => proc.once("exit", (c) => r(c))) };
    };
    const first = serve();
    try {
      await waitForPort(port, 90_000);
      // Keep-alive clients that never stop sending: without the drain they hold the server open.
      const agent = new Agent({ keepAlive: true, maxSockets: 4 });
      let stop = false;
      let answered = 0;
      const clients = Array.from({ length: 4 }, async () => {
        while (!stop) {
          await new Promise<void>((resolve) => {
            const req = httpRequest({ host: "127.0.0.1", port, path: "/healthz", agent }, (res) => {
              res.resume();
              res.on("end", () => {
                answered++;
                resolve();
              });
            });
            req.on("error", () => resolve());
            req.end();
          });
          await sleep(5);
        }
      });
      await eventually(async () => answered > 20);
      first.proc.kill("SIGTERM");
      const code = await first.exited;
      stop = true;
      await Promise.all(clients);
      agent.destroy();
      expect(code).toBe(0);
      // The lock is released: a new server opens the same file.
      const second = serve();
      await waitForPort(port, 90_000);
      second.proc.kill("SIGTERM");
      expect(await second.exited).toBe(0);
    } finally {
      if (first.proc.exitCode === null) first.proc.kill("SIGKILL");
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
