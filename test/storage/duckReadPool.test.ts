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

describe("DuckStore.columns / DuckReadPool.columns (DuckColumns)", () => {
  let store: DuckStore | undefined;
  afterEach(() => store?.close());

  /** Rows of every type the serving reads use, NULLs among them, over two chunks (DuckDB's chunks hold 2,048). */
  const SQL = `SELECT i, i::DOUBLE / 7 AS d, CASE WHEN i % 3 = 0 THEN NULL ELSE 'k' || i END AS s,
      i % 2 = 0 AS b, make_timestamp(1764547200000000 + i * 1000123) AS t, (i * 1000)::BIGINT AS big,
      CASE WHEN i % 5 = 0 THEN NULL ELSE i::DOUBLE END AS maybe, [i, i + 1] AS l
    FROM range($1::BIGINT) r(i) ORDER BY i`;

  it("every cell of a result of 2,500 rows is the value getRowObjectsJS gives (all), on the store and on its read pool", async () => {
    store = await DuckStore.open(":memory:");
    const pool = await store.readPool(1);
    const want = await store.all(SQL, [2500]);
    for (const source of [store, pool]) {
      const got = await source.columns(SQL, [2500], (c) => {
        const names = Object.keys(want[0]!);
        const cells = names.map((n) => c.column(n));
        return Array.from({ length: c.rowCount }, (_, i) =>
          Object.fromEntries(names.map((n, k) => [n, cells[k]!(i)])),
        );
      });
      expect(got).toEqual(want);
    }
    expect(want.filter((r) => r.s === null).length).toBe(834);
  });

  it("an empty result has no rows; a column the query did not select is an error naming the ones it did", async () => {
    store = await DuckStore.open(":memory:");
    expect(await store.columns(SQL, [0], (c) => c.rowCount)).toBe(0);
    await expect(store.columns(SQL, [3], (c) => c.column("nope"))).rejects.toThrow(
      /the result has no column "nope" \(its columns: i, d, s, b, t, big, maybe, l\)/,
    );
  });
});
