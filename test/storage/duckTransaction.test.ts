import { afterEach, describe, expect, it } from "vitest";
import { DuckStore } from "../../storage/duckdb.ts";

describe("DuckStore.transaction", () => {
  let store: DuckStore | undefined;
  afterEach(() => store?.close());

  const count = async (s: DuckStore) =>
    (await s.one<{ n: number }>("SELECT count(*)::INTEGER AS n FROM t"))!.n;

  it("a nested transaction joins the outer one: nothing is visible to another connection before the outer commit", async () => {
    store = await DuckStore.open(":memory:");
    await store.run("CREATE TABLE t (v INTEGER)");
    const pool = await store.readPool(1);
    const s = store;
    await s.transaction(async () => {
      await s.run("INSERT INTO t VALUES (1)");
      await s.transaction(async () => {
        await s.run("INSERT INTO t VALUES (2)");
      });
      // The inner call did not commit: the other connection still sees nothing.
      expect((await pool.one<{ n: number }>("SELECT count(*)::INTEGER AS n FROM t"))!.n).toBe(0);
    });
    expect((await pool.one<{ n: number }>("SELECT count(*)::INTEGER AS n FROM t"))!.n).toBe(2);
  });

  it("an error in a nested transaction rolls the outer one back as a whole, and the store stays usable", async () => {
    store = await DuckStore.open(":memory:");
    await store.run("CREATE TABLE t (v INTEGER NOT NULL)");
    const s = store;
    await expect(
      s.transaction(async () => {
        await s.run("INSERT INTO t VALUES (1)");
        await s.transaction(() => s.run("INSERT INTO t VALUES (NULL)"));
      }),
    ).rejects.toThrow(/Constraint Error/);
    expect(await count(s)).toBe(0);
    // Not left inside a transaction: a new one begins and commits.
    await s.transaction(() => s.run("INSERT INTO t VALUES (3)"));
    expect(await count(s)).toBe(1);
  });
});
