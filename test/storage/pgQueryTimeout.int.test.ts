import { afterAll, describe, expect, it } from "vitest";
import { PgStore } from "../../storage/postgres.ts";
import { BackendUnavailableError } from "../../storage/unavailable.ts";
import { TcpProxy } from "../serving/tcpProxy.ts";

/**
 * MASTERY_PG_QUERY_TIMEOUT_MS / queryTimeoutMs: a PostgreSQL server that stalls (accepts, never
 * answers; here a proxy to the local server that stops forwarding) fails a query as unavailable at
 * the bound instead of hanging it, and the pool serves again once the server answers.
 */
const PG_PORT = Number(new URL(process.env.MASTERY_PG_URL ?? "postgres://postgres@127.0.0.1:5432/test").port);
const proxy = new TcpProxy(PG_PORT);
afterAll(() => proxy.down());

describe("PgStore query timeout", () => {
  it("a stalled server: the query fails as unavailable at the bound; service resumes after", async () => {
    await proxy.up();
    const pg = await PgStore.open(`postgres://postgres@127.0.0.1:${proxy.port}/test`, {
      queryTimeoutMs: 500,
      connectTimeoutMs: 500,
    });
    try {
      expect(await pg.one<{ ok: number }>("SELECT 1 AS ok")).toEqual({ ok: 1 });
      proxy.stall();
      const t0 = performance.now();
      const err = await pg.one("SELECT 1 AS ok").catch((e: unknown) => e);
      const ms = performance.now() - t0;
      expect(err).toBeInstanceOf(BackendUnavailableError);
      expect((err as Error).message).toMatch(/PostgreSQL is unavailable.*Query read timeout/);
      expect(ms).toBeGreaterThanOrEqual(450);
      expect(ms).toBeLessThan(1500);
      // A transaction too: its client is dropped, not returned to the pool.
      const tx = await pg.transaction(() => pg.run("SELECT 1")).catch((e: unknown) => e);
      expect(tx).toBeInstanceOf(BackendUnavailableError);
      await proxy.down();
      await proxy.up();
      expect(await pg.one<{ ok: number }>("SELECT 2 AS ok")).toEqual({ ok: 2 });
    } finally {
      await pg.close();
    }
  });

  it("MASTERY_PG_QUERY_TIMEOUT_MS is read and checked", async () => {
    const { pgPoolSettingsFromEnv } = await import("../../storage/postgres.ts");
    expect(pgPoolSettingsFromEnv({ MASTERY_PG_QUERY_TIMEOUT_MS: "5000" }).queryTimeoutMs).toBe(5000);
    expect(pgPoolSettingsFromEnv({}).queryTimeoutMs).toBeUndefined();
    expect(() => pgPoolSettingsFromEnv({ MASTERY_PG_QUERY_TIMEOUT_MS: "soon" })).toThrow(
      /MASTERY_PG_QUERY_TIMEOUT_MS=soon must be an integer >= 1/,
    );
  });
});
