import { describe, expect, it } from "vitest";
import { PgStore, pgPoolSettingsFromEnv } from "../../storage/postgres.ts";

/**
 * The pool's floor (PgOpenOptions.poolMin, MASTERY_PG_POOL_MIN; default poolMax): connections opened under
 * load stay open through a quiet period longer than the idle timeout, so the next burst finds the same
 * PostgreSQL backends (no backend start, warm catalog caches, prepared statements still there). Below the
 * floor nothing is closed; above it, idle connections go as before.
 */
const URL = process.env.MASTERY_TEST_PG_URL ?? "postgres://postgres@127.0.0.1:5432/test";

/** Opens `n` connections at once (each statement holds its connection ~60 ms) and returns their backend pids. */
async function burst(pg: PgStore, n: number): Promise<number[]> {
  const rows = await Promise.all(
    Array.from({ length: n }, () =>
      pg.all<{ pid: number }>("SELECT pg_backend_pid() AS pid, pg_sleep(0.06) IS NULL AS slept"),
    ),
  );
  return rows.map((r) => Number(r[0]?.pid)).sort((a, b) => a - b);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("PgStore pool floor", () => {
  it("keeps every connection of a fixed-size pool (the default) through an idle period", async () => {
    const pg = await PgStore.open(URL, { poolMax: 3, idleTimeoutMs: 100 });
    try {
      const before = await burst(pg, 3);
      expect(new Set(before).size).toBe(3);
      await sleep(400);
      expect(pg.poolStats().total).toBe(3);
      // The same three backends answer the next burst: none was closed and reopened.
      expect(await burst(pg, 3)).toEqual(before);
    } finally {
      await pg.close();
    }
  });

  // Above the floor idle connections close as before; a floor of 0 lets an idle pool empty (the pool before it).
  it.each([
    { floor: "1", poolMin: 1, kept: 1 },
    { floor: "0", poolMin: 0, kept: 0 },
  ])("with a floor of $floor, 3 busy connections idle down to the floor", async ({ poolMin, kept }) => {
    const pg = await PgStore.open(URL, { poolMax: 3, poolMin, idleTimeoutMs: 100 });
    try {
      await burst(pg, 3);
      expect(pg.poolStats().total).toBe(3);
      await sleep(400);
      expect(pg.poolStats().total).toBe(kept);
    } finally {
      await pg.close();
    }
  });

  it("reads MASTERY_PG_POOL_MIN, and names a bad value", () => {
    expect(pgPoolSettingsFromEnv({}).poolMin).toBeUndefined();
    expect(pgPoolSettingsFromEnv({ MASTERY_PG_POOL_MIN: "0" }).poolMin).toBe(0);
    expect(pgPoolSettingsFromEnv({ MASTERY_PG_POOL_MIN: "4" }).poolMin).toBe(4);
    expect(() => pgPoolSettingsFromEnv({ MASTERY_PG_POOL_MIN: "-1" })).toThrow(
      /MASTERY_PG_POOL_MIN=-1 must be an integer >= 0/,
    );
  });
});
