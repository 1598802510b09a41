/**
 * PgStore.transaction's context (storage/postgres.ts) against the real PostgreSQL, own schema
 * "serve22_txctx_<pid>": the AsyncLocalStorage that routes a transaction's statements to its client is
 * disabled whenever no transaction is open (Node's async hooks off for the rest of the process) and enabled
 * again by the next one. Overlapping transactions keep their own clients until the last one ends; nothing
 * outside a transaction, before, between or after them, ever runs on a transaction's client.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PgStore } from "../../storage/postgres.ts";

const PG_URL = process.env.MASTERY_PG_URL ?? "postgres://postgres@127.0.0.1:5432/test";
const schema = `serve22_txctx_${process.pid}`;
let pg: PgStore;

beforeAll(async () => {
  pg = await PgStore.open(PG_URL, { schema, poolMax: 4 });
  await pg.run("CREATE TABLE tx_t (tag VARCHAR, n INTEGER)");
});
afterAll(async () => {
  await pg.run(`DROP SCHEMA ${schema} CASCADE`).catch(() => undefined);
  await pg.close();
});

/** Rows of `tag` as this statement's connection sees them (uncommitted rows only on their own connection). */
const count = async (tag: string): Promise<number> =>
  Number((await pg.one<{ n: string }>("SELECT count(*) AS n FROM tx_t WHERE tag = $1", [tag]))?.n);
const txid = async (): Promise<string> =>
  String((await pg.one<{ x: string }>("SELECT txid_current()::text AS x"))?.x);

/** A promise and its resolver, to interleave two transactions step by step. */
function latch(): { wait: Promise<void>; open: () => void } {
  let open = () => {};
  const wait = new Promise<void>((r) => {
    open = r;
  });
  return { wait, open };
}

describe("PgStore.transaction's client context", () => {
  it("a transaction that outlives an overlapping one keeps its client; outside statements never get one", async () => {
    const firstDone = latch();
    const secondStarted = latch();
    const seen: Record<string, number> = {};
    const first = pg.transaction(async () => {
      await pg.run("INSERT INTO tx_t VALUES ('first', 1)");
      await secondStarted.wait;
      seen.firstOwn = await count("first");
    });
    const second = pg.transaction(async () => {
      const id = await txid();
      await pg.run("INSERT INTO tx_t VALUES ('second', 1)");
      secondStarted.open();
      await firstDone.wait;
      // The first transaction has committed and left: this one still runs on its own client.
      seen.secondOwn = await count("second");
      seen.sameTransaction = Number((await txid()) === id);
      // Nested: joins this transaction.
      await pg.transaction(async () => {
        seen.nestedSame = Number((await txid()) === id);
      });
    });
    await first;
    // Outside every transaction (the second is still open): the pool, which cannot see its row.
    seen.outsideFirst = await count("first");
    seen.outsideSecond = await count("second");
    firstDone.open();
    await second;
    seen.afterSecond = await count("second");
    expect(seen).toEqual({
      firstOwn: 1,
      outsideFirst: 1,
      outsideSecond: 0,
      secondOwn: 1,
      sameTransaction: 1,
      nestedSame: 1,
      afterSecond: 1,
    });
  });

  it("after the last transaction, statements are on the pool; the next transaction has a context again, and rolls back alone", async () => {
    await pg.transaction(async () => {
      await pg.run("INSERT INTO tx_t VALUES ('a', 1)");
    });
    // Two statements outside any transaction are two transactions of their own.
    expect(await txid()).not.toBe(await txid());
    await expect(
      pg.transaction(async () => {
        const id = await txid();
        await pg.run("INSERT INTO tx_t VALUES ('b', 1)");
        expect(await count("b")).toBe(1);
        expect(await txid()).toBe(id);
        throw new Error("roll back");
      }),
    ).rejects.toThrow("roll back");
    expect(await count("b")).toBe(0);
    expect(await count("a")).toBe(1);
  });
});
