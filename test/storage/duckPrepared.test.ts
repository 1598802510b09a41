import { afterEach, describe, expect, it } from "vitest";
import { DuckStore } from "../../storage/duckdb.ts";
import { BIGINT, LIST, listValue, VARCHAR } from "../../storage/duckdbApi.ts";

describe("DuckStore.runPrepared / allPrepared (statements prepared once per SQL text)", () => {
  let store: DuckStore | undefined;
  afterEach(() => store?.close());

  it("a kept statement is bound anew each call and answers as run / all do", async () => {
    store = await DuckStore.open(":memory:");
    await store.run("CREATE TABLE t (k INTEGER, v VARCHAR)");
    const insert = "INSERT INTO t SELECT unnest($1::BIGINT[])::INTEGER, $2";
    expect(await store.runPrepared(insert, [listValue([1n, 2n, 3n]), "a"], [LIST(BIGINT), VARCHAR])).toBe(3);
    expect(await store.runPrepared(insert, [listValue([4n]), "b"])).toBe(1);
    const read = "SELECT k, v FROM t WHERE k >= $1 ORDER BY k";
    for (const from of [1, 3, 5]) {
      const want = await store.all(read, [from]);
      expect(await store.allPrepared(read, [from])).toEqual(want);
    }
    expect((await store.allPrepared(read, [3])).map((r) => [r.k, r.v])).toEqual([
      [3, "a"],
      [4, "b"],
    ]);
  });

  it("a kept statement follows a table replaced since it was prepared, and survives eviction of others", async () => {
    store = await DuckStore.open(":memory:");
    await store.run("CREATE TABLE t (k INTEGER)");
    await store.run("INSERT INTO t VALUES (1), (2)");
    const read = "SELECT * FROM t WHERE k <= $1 ORDER BY k";
    expect(await store.allPrepared(read, [5])).toEqual([{ k: 1 }, { k: 2 }]);
    await store.run("CREATE OR REPLACE TABLE t (k INTEGER, note VARCHAR)");
    await store.run("INSERT INTO t VALUES (3, 'new')");
    expect(await store.allPrepared(read, [5])).toEqual([{ k: 3, note: "new" }]);
    // More texts than the cache keeps: the oldest are freed and prepared again when asked.
    for (let i = 0; i < 40; i++)
      expect(await store.allPrepared(`SELECT $1::INTEGER + ${i} AS x`, [1])).toEqual([{ x: 1 + i }]);
    expect(await store.allPrepared(read, [5])).toEqual([{ k: 3, note: "new" }]);
    const s = store;
    store = undefined;
    s.close();
    await s.whenClosed();
    await expect(s.allPrepared(read, [5])).rejects.toThrow(/closed/);
  });
});
