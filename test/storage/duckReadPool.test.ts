import { afterEach, describe, expect, it } from "vitest";
import { DuckStore } from "../../storage/duckdb.ts";

describe("DuckStore.readPool", () => {
  let store: DuckStore | undefined;
  afterEach(() => store?.close());

  it("reads committed data while a write transaction is open on the main connection", async () => {
    store = await DuckStore.open(":memory:");
    await store.run("CREATE TABLE t (k VARCHAR, v INTEGER)");
    await store.run("INSERT INTO t VALUES ('a', 1)");
    const pool = await store.readPool(2);
    await store.run("BEGIN TRANSACTION");
    await store.run("UPDATE t SET v = 2 WHERE k = 'a'");
    // The pool does not see (or wait for) the uncommitted update.
    expect(await pool.all("SELECT v FROM t WHERE k = $1", ["a"])).toEqual([{ v: 1 }]);
    await store.run("COMMIT");
    expect(await pool.all("SELECT v FROM t WHERE k = $1", ["a"])).toEqual([{ v: 2 }]);
  });

  it("runs more queries than connections, each answered once, in any order of completion", async () => {
    store = await DuckStore.open(":memory:");
    const pool = await store.readPool(2);
    const out = await Promise.all(
      Array.from({ length: 25 }, (_, i) => pool.one<{ x: number }>("SELECT $1::INTEGER * 2 AS x", [i])),
    );
    expect(out.map((r) => r?.x)).toEqual(Array.from({ length: 25 }, (_, i) => i * 2));
    expect(pool.waiting).toBe(0);
  });

  it("rejects a size below 1 and queries after close, naming the fix", async () => {
    store = await DuckStore.open(":memory:");
    await expect(store.readPool(0)).rejects.toThrow(/read pool size must be an integer >= 1/);
    const pool = await store.readPool(1);
    pool.close();
    await expect(pool.all("SELECT 1")).rejects.toThrow(/read pool is closed/);
  });

  it("a repeated (prepared, cached) read sees new rows and a table replaced with other columns; more SQL texts than the cache holds", async () => {
    store = await DuckStore.open(":memory:");
    await store.run("CREATE TABLE t (k VARCHAR, v INTEGER)");
    await store.run("INSERT INTO t VALUES ('a', 1)");
    const pool = await store.readPool(1);
    const read = (k: string) => pool.all("SELECT * FROM t WHERE k = $1 ORDER BY ALL", [k]);
    expect(await read("a")).toEqual([{ k: "a", v: 1 }]);
    await store.run("INSERT INTO t VALUES ('a', 2), ('b', 3)");
    expect(await read("a")).toEqual([
      { k: "a", v: 1 },
      { k: "a", v: 2 },
    ]);
    expect(await read("b")).toEqual([{ k: "b", v: 3 }]);
    await store.run("DROP TABLE t");
    await store.run("CREATE TABLE t (k VARCHAR, w VARCHAR, v DOUBLE)");
    await store.run("INSERT INTO t VALUES ('a', 'x', 0.5)");
    expect(await read("a")).toEqual([{ k: "a", w: "x", v: 0.5 }]);
    // 40 distinct texts through a cache of 32, twice: each answers its own query.
    for (let round = 0; round < 2; round++)
      for (let i = 0; i < 40; i++)
        expect(await pool.one<{ x: number }>(`SELECT $1::INTEGER + ${i} AS x`, [round])).toEqual({
          x: round + i,
        });
    pool.close();
  });
});
