import { describe, expect, it } from "vitest";
import { PgStore } from "../../storage/postgres.ts";
import { BackendUnavailableError } from "../../storage/unavailable.ts";

/**
 * A connection the server ends while a transaction holds it between two statements (a PostgreSQL
 * restart or pg_terminate_backend) must fail that transaction, not the process: the pool listens for
 * errors on idle clients only, and a client's unhandled 'error' event crashed `mastery serve` in the
 * chaos run (http-pg-outage, 2026-12-04). Vitest fails this file on any unhandled error.
 */
const URL_ = process.env.MASTERY_PG_URL ?? "postgres://postgres@127.0.0.1:5432/test";

describe("PgStore transaction on a terminated connection", () => {
  it("fails the transaction as unavailable, keeps the process up, and serves again", async () => {
    const pg = await PgStore.open(URL_);
    const killer = await PgStore.open(URL_);
    try {
      const err = await pg
        .transaction(async () => {
          const pid = (await pg.one<{ pid: number }>("SELECT pg_backend_pid() AS pid"))?.pid;
          expect(pid).toBeTypeOf("number");
          await killer.run("SELECT pg_terminate_backend($1)", [pid ?? -1]);
          // The server's FATAL message reaches the client while no statement of it is running.
          await new Promise((r) => setTimeout(r, 300));
          await pg.run("SELECT 1");
        })
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(BackendUnavailableError);
      // The broken client was destroyed, not returned: every following statement gets a live one.
      for (let i = 0; i < 5; i++)
        expect(await pg.transaction(() => pg.one<{ ok: number }>("SELECT 1 AS ok"))).toEqual({ ok: 1 });
    } finally {
      await pg.close();
      await killer.close();
    }
  });
});
