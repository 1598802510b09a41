/**
 * Processes starting together on a new PostgreSQL schema (several `mastery worker`s, servers behind a
 * balancer) each run the same CREATE SCHEMA / TABLE / INDEX ... IF NOT EXISTS. PostgreSQL does not make
 * those safe against each other (duplicate key in pg_class / pg_namespace); PgStore.run serializes them
 * with an advisory lock. Real PostgreSQL, own schema "scale_ddl_*".
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
