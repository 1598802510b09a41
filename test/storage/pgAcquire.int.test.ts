import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PgStore } from "../../storage/postgres.ts";

/**
 * PgStore.onAcquire (the load bench's pg-acquire probe) on the real PostgreSQL: one report per acquire of the
 * pool, whichever path asked (a plain statement, a prepared one, a transaction), and the wait it reports is the
 * time spent queued for a connection another caller held.
 */
const URL = process.env.MASTERY_TEST_PG_URL ?? "postgres://postgres@127.0.0.1:5432/test";

describe("PgStore.onAcquire", () => {
  let pg: PgStore;
  beforeAll(async () => {
    pg = await PgStore.open(URL, { poolMax: 1 });
  });
  afterAll(async () => {
    await pg.close();
  });

  it("reports each acquire once, with the wait behind a held connection", async () => {
    const waits: number[] = [];
    pg.onAcquire = (ms) => waits.push(ms);
    await pg.run("SELECT 1");
    await pg.allPrepared("SELECT $1::int AS x", [1]);
    await pg.transaction(async () => {
      await pg.run("SELECT 1");
      await pg.run("SELECT 2");
    });
    // Three acquires: the statement, the prepared statement, the transaction (its statements use its client).
    expect(waits).toHaveLength(3);
    waits.length = 0;
    // The only connection held by a transaction for ~150 ms: a statement sent meanwhile waits for it.
    let queuedAt = 0;
    const held = pg.transaction(async () => {
      await pg.run("SELECT pg_sleep(0.15)");
    });
    await new Promise((r) => setTimeout(r, 20));
    queuedAt = performance.now();
    await pg.run("SELECT 1");
    const queuedFor = performance.now() - queuedAt;
    await held;
    expect(waits).toHaveLength(2);
    const [tx, statement] = waits as [number, number];
    expect(tx).toBeLessThan(100);
    expect(statement).toBeGreaterThanOrEqual(100);
    expect(statement).toBeLessThanOrEqual(queuedFor);
    // Unset: no more reports.
    pg.onAcquire = undefined;
    await pg.run("SELECT 1");
    expect(waits).toHaveLength(2);
  });
});
