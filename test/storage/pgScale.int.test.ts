/**
 * PostgreSQL under several processes and load. Own schemas "scale_ddl_*".
 * 1. Processes starting together on a new PostgreSQL schema (several `mastery worker`s, servers behind a
 * balancer) each run the same CREATE SCHEMA / TABLE / INDEX ... IF NOT EXISTS. PostgreSQL does not make
 * those safe against each other (duplicate key in pg_class / pg_namespace); PgStore.run serializes them
 * with an advisory lock.
 * 2. A saturated pool is busy, not down: ping() (the /readyz and outage probe) has its own connection.
 */
import { randomBytes } from "node:crypto";
import { afterAll, describe, expect, it } from "vitest";
import { PgMasteryStore } from "../../storage/masteryStore.ts";
import { PgStore } from "../../storage/postgres.ts";
import { PgRawEventStore } from "../../storage/rawEventStore.ts";

const PG_URL = process.env.MASTERY_PG_URL ?? "postgres://postgres@127.0.0.1:5432/test";
const schemas: string[] = [];

afterAll(async () => {
  const pg = await PgStore.open(PG_URL);
  for (const s of schemas) await pg.run(`DROP SCHEMA IF EXISTS ${s} CASCADE`);
  await pg.close();
});

describe("PgStore: concurrent opens on a new schema", () => {
  it("8 stores opened at once on 3 fresh schemas create every table without a duplicate-key error", async () => {
    for (let round = 0; round < 3; round++) {
      const schema = `scale_ddl_${process.pid}_${randomBytes(3).toString("hex")}`;
      schemas.push(schema);
      const opened = await Promise.allSettled(
        Array.from({ length: 8 }, async () => {
          const pg = await PgStore.open(PG_URL, { schema, coreTables: true, poolMax: 2 });
          try {
            await PgRawEventStore.open(pg);
            await PgMasteryStore.open(pg);
            return (await pg.tableNames()).length;
          } finally {
            await pg.close();
          }
        }),
      );
      const errors = opened.flatMap((o) => (o.status === "rejected" ? [String(o.reason)] : []));
      expect(errors).toEqual([]);
      const counts = opened.map((o) => (o.status === "fulfilled" ? o.value : 0));
      expect(new Set(counts).size).toBe(1);
      expect(counts[0]).toBeGreaterThan(5);
    }
  });
});

describe("PgStore.ping: a saturated pool is not a down server", () => {
  it("answers within 900 ms while the pool's only connection is held for 2 s", async () => {
    const pg = await PgStore.open(PG_URL, { poolMax: 1 });
    try {
      await pg.ping(); // the probe connection is open before the pool is saturated
      const busy = pg.run("SELECT pg_sleep(2)");
      await new Promise((r) => setTimeout(r, 100));
      const t0 = performance.now();
      await pg.ping();
      const ms = performance.now() - t0;
      // A pooled SELECT 1 waits for the sleep (the behaviour the probe must not have).
      const t1 = performance.now();
      await pg.one("SELECT 1");
      const pooledMs = performance.now() - t1;
      await busy;
      // The pooled query waits out the ~1.9 s left of the sleep; the probe must not wait for it. 900 ms leaves a
      // loaded machine room (the probe takes a few ms when quiet) and is still half the sleep.
      expect(ms).toBeLessThan(900);
      expect(pooledMs).toBeGreaterThan(1000);
      expect(ms).toBeLessThan(pooledMs / 2);
    } finally {
      await pg.close();
    }
  });
});
