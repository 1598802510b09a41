import { describe, expect, it } from "vitest";
import { DuckStore } from "../../storage/duckdb.ts";

/** A statement that runs long enough (tens to hundreds of ms) for close() to land while it runs. */
const SLOW = "SELECT count(*) AS n FROM range(60000000) r(i) WHERE i % 7 = 3";
const SLOW_N = 8_571_429n; // i = 3, 10, ..., 59,999,998

describe("DuckStore.session: a connection of its own on the same database", () => {
  it("has its own temp tables and transactions, and sees what the store commits", async () => {
    const store = await DuckStore.open(":memory:");
    const s = await store.session();
    await store.run("CREATE TABLE t (v INTEGER)");
    await s.run("CREATE TEMP TABLE only_here AS SELECT 42 AS v");
    await expect(store.one("SELECT * FROM temp.only_here")).rejects.toThrow(/only_here/);
    expect((await s.one<{ v: number }>("SELECT v FROM temp.only_here"))?.v).toBe(42);
    // An open transaction on the store is invisible to the session until it commits (MVCC).
    await store.transaction(async () => {
      await store.run("INSERT INTO t VALUES (1), (2)");
      expect(Number((await s.one<{ n: bigint }>("SELECT count(*) AS n FROM t"))?.n)).toBe(0);
    });
    expect(Number((await s.one<{ n: bigint }>("SELECT sum(v) AS n FROM t"))?.n)).toBe(3);
    // Two transactions at once, one per connection, appending to the same table, both commit.
    await Promise.all([
      store.transaction(() => store.run("INSERT INTO t SELECT range FROM range(10, 20)")),
      s.transaction(() => s.run("INSERT INTO t SELECT range FROM range(20, 30)")),
    ]);
    expect(Number((await store.one<{ n: bigint }>("SELECT count(*) AS n FROM t"))?.n)).toBe(22);
    s.close();
    await s.whenClosed();
    await expect(s.run("SELECT 1")).rejects.toThrow(/is closed/);
    // Closing the session leaves the store open.
    expect(Number((await store.one<{ n: bigint }>("SELECT count(*) AS n FROM t"))?.n)).toBe(22);
    store.close();
    await store.whenClosed();
  });

  it("the store's close() waits for a session's running statement, then refuses the session too", async () => {
    const store = await DuckStore.open(":memory:");
    const s = await store.session();
    const running = s.one<{ n: bigint }>(SLOW);
    store.close();
    let closed = false;
    const released = store.whenClosed().then(() => {
      closed = true;
    });
    await expect(s.run("SELECT 1")).rejects.toThrow(/is closed: a statement was started after close\(\)/);
    await expect(store.session()).rejects.toThrow(/is closed/);
    expect((await running)?.n).toBe(SLOW_N);
    await released;
    expect(closed).toBe(true);
    await s.whenClosed();
  });
});
