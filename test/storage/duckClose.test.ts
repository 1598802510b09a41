import { describe, expect, it } from "vitest";
import { DuckStore } from "../../storage/duckdb.ts";

/** A statement that runs long enough (tens to hundreds of ms) for close() to land while it runs. */
const SLOW = "SELECT count(*) AS n FROM range(60000000) r(i) WHERE i % 7 = 3";
const SLOW_N = 8_571_429n; // i = 3, 10, ..., 59,999,998

describe("DuckStore.close with statements in flight", () => {
  it("lets a running statement finish, refuses new ones naming the cause, then releases the handles", async () => {
    const store = await DuckStore.open(":memory:");
    const running = store.one<{ n: bigint }>(SLOW);
    store.close();
    let closed = false;
    const released = store.whenClosed().then(() => {
      closed = true;
    });
    await expect(store.run("SELECT 1")).rejects.toThrow(/is closed: a statement was started after close\(\)/);
    // Closing under the running statement used to free the native connection beneath it (a crash).
    expect((await running)?.n).toBe(SLOW_N);
    await released;
    expect(closed).toBe(true);
    store.close(); // idempotent
  });

  it("a read on the read pool holds off the release too; the pool refuses new reads", async () => {
    const store = await DuckStore.open(":memory:");
    const pool = await store.readPool(2);
    const running = pool.one<{ n: bigint }>(SLOW);
    store.close();
    await expect(pool.all("SELECT 1")).rejects.toThrow(/read pool is closed/);
    expect((await running)?.n).toBe(SLOW_N);
    await store.whenClosed();
    expect(pool.size).toBe(0);
  });

  it("a chunked read and an appender hold off the release until they end; both are refused after close()", async () => {
    const store = await DuckStore.open(":memory:");
    await store.run("CREATE TABLE t (v INTEGER)");
    let closed = false;
    let sum = 0n;
    let chunks = 0;
    for await (const chunk of store.chunks("SELECT i::BIGINT AS i FROM range(100000) r(i)")) {
      if (chunks++ === 0) {
        store.close();
        void store.whenClosed().then(() => {
          closed = true;
        });
      }
      // The loop reads on after close(): the native result stays valid because the release waits for it.
      for (let r = 0; r < chunk.rowCount; r++) sum += chunk.getColumnVector(0).getItem(r) as bigint;
      await new Promise((ok) => setImmediate(ok));
      expect(closed).toBe(false);
    }
    expect(sum).toBe(4_999_950_000n);
    await store.whenClosed();
    expect(closed).toBe(true);
    await expect(store.appendRows("t", () => {})).rejects.toMatchObject({ code: "DB_CLOSED" });
    await expect(store.chunks("SELECT 1").next()).rejects.toMatchObject({ code: "DB_CLOSED" });

    const other = await DuckStore.open(":memory:");
    await other.run("CREATE TABLE t (v INTEGER)");
    const appending = other.appendRows("t", async (ap) => {
      other.close();
      await new Promise((ok) => setTimeout(ok, 20));
      for (let v = 0; v < 3; v++) {
        ap.appendInteger(v);
        ap.endRow();
      }
    });
    await appending; // the appender flushed and closed on a live connection
    await other.whenClosed();
  });

  it("a transaction cut by close() rejects with DB_CLOSED and commits nothing", async () => {
    const path = `${process.env.TMPDIR ?? "/tmp"}/duck-close-${process.pid}-${Date.now()}.duckdb`;
    const store = await DuckStore.open(path, { encryption: null });
    await store.run("CREATE TABLE t (v INTEGER)");
    const tx = store.transaction(async () => {
      await store.run("INSERT INTO t VALUES (1)");
      store.close();
      await store.run("INSERT INTO t VALUES (2)");
    });
    await expect(tx).rejects.toMatchObject({ code: "DB_CLOSED" });
    await store.whenClosed();
    const again = await DuckStore.open(path, { encryption: null });
    try {
      expect(await again.all("SELECT * FROM t")).toEqual([]);
    } finally {
      again.close();
    }
  });
});
