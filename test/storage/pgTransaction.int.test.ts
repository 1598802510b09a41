import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PgStore } from "../../storage/postgres.ts";

/**
 * PgStore's two transaction forms against the real PostgreSQL: `transaction` (statements through the
 * store join it via AsyncLocalStorage, which is disabled whenever no transaction runs) and
 * `transactionOn` (the client passed explicitly). A statement that left its transaction's client would
 * not see that transaction's uncommitted rows, which is what these tests read back.
 */
const URL_ = process.env.MASTERY_PG_URL ?? "postgres://postgres@127.0.0.1:5432/test";
const SCHEMA = `pgtx_${process.pid}_${Date.now() % 1_000_000}`;

let pg: PgStore;
beforeAll(async () => {
  pg = await PgStore.open(URL_, { schema: SCHEMA });
  await pg.run("CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER)");
});
afterAll(async () => {
  await pg.dropSchema();
  await pg.close();
});

const count = async (k: string): Promise<number> =>
  Number((await pg.one<{ n: string }>("SELECT count(*) AS n FROM t WHERE k = $1", [k]))?.n ?? -1);

describe("PgStore.transaction", () => {
  it("keeps a transaction on its client after an overlapping one ended, and again after none ran", async () => {
    let endFirst!: () => void;
    const firstMayEnd = new Promise<void>((r) => {
      endFirst = r;
    });
    let firstEnded!: () => void;
    const firstDone = new Promise<void>((r) => {
      firstEnded = r;
    });
    const first = pg.transaction(async () => {
      await pg.run("INSERT INTO t VALUES ('a1', 1)");
      await firstMayEnd;
    });
    const second = pg.transaction(async () => {
      await pg.run("INSERT INTO t VALUES ('b1', 1)");
      endFirst();
      await firstDone;
      // The first transaction has committed and released its client; this one still runs on its own.
      const seen = await pg.one<{ n: string }>("SELECT count(*) AS n FROM t WHERE k = 'b1'");
      const other = await pg.one<{ n: string }>("SELECT count(*) AS n FROM t WHERE k = 'a1'");
      return [Number(seen?.n), Number(other?.n)];
    });
    await first;
    firstEnded();
    expect(await second).toEqual([1, 1]);
    // Outside any transaction the uncommitted row of a new one is not visible, inside it is.
    const inner = await pg
      .transaction(async () => {
        await pg.run("INSERT INTO t VALUES ('c1', 1)");
        const n = Number((await pg.one<{ n: string }>("SELECT count(*) AS n FROM t WHERE k = 'c1'"))?.n);
        throw Object.assign(new Error("roll back"), { seen: n });
      })
      .catch((e: { seen?: number }) => e.seen);
    expect(inner).toBe(1);
    expect(await count("c1")).toBe(0);
  });
});

describe("PgStore.transactionOn", () => {
  it("commits its statements together and rolls them back on an error", async () => {
    const out = await pg.transactionOn(async (tx) => {
      await tx.run("INSERT INTO t VALUES ($1, $2)", ["d1", 4]);
      await tx.allArrays("INSERT INTO t SELECT * FROM unnest($1::text[], $2::int[])", [
        ["d2", "d3"],
        [5, 6],
      ]);
      return tx.all<{ k: string; v: number }>("SELECT k, v FROM t WHERE k LIKE 'd%' ORDER BY k");
    });
    expect(out).toEqual([
      { k: "d1", v: 4 },
      { k: "d2", v: 5 },
      { k: "d3", v: 6 },
    ]);
    const err = await pg
      .transactionOn(async (tx) => {
        await tx.run("INSERT INTO t VALUES ('e1', 1)");
        expect(
          Number((await tx.all<{ n: string }>("SELECT count(*) AS n FROM t WHERE k = 'e1'"))[0]?.n),
        ).toBe(1);
        // Not on the transaction's client: the row is not visible there.
        expect(await count("e1")).toBe(0);
        await tx.run("INSERT INTO t VALUES ('d1', 9)");
      })
      .catch((e: unknown) => e as { code?: string });
    expect(err).toMatchObject({ code: "23505" });
    expect(await count("e1")).toBe(0);
  });

  it("joins an enclosing transaction: its writes roll back with it", async () => {
    const seen = await pg
      .transaction(async () => {
        await pg.run("INSERT INTO t VALUES ('f1', 1)");
        const n = await pg.transactionOn(async (tx) => {
          await tx.run("INSERT INTO t VALUES ('f2', 2)");
          return Number(
            (await tx.all<{ n: string }>("SELECT count(*) AS n FROM t WHERE k IN ('f1', 'f2')"))[0]?.n,
          );
        });
        throw Object.assign(new Error("roll back"), { n });
      })
      .catch((e: { n?: number }) => e.n);
    expect(seen).toBe(2);
    expect((await count("f1")) + (await count("f2"))).toBe(0);
  });
});
