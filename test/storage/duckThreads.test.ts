import fc from "fast-check";
import { afterEach, describe, expect, it } from "vitest";
import { DuckStore, StorageError } from "../../storage/duckdb.ts";

describe("DuckStore.withThreads", () => {
  let store: DuckStore | undefined;
  afterEach(() => store?.close());

  const open = async (threads: number): Promise<DuckStore> => {
    store = await DuckStore.open(":memory:", { threads });
    return store;
  };

  it("runs fn on the given thread count and restores the previous one", async () => {
    const s = await open(3);
    expect(await s.threadCount()).toBe(3);
    const seen = await s.withThreads(1, () => s.threadCount());
    expect(seen).toBe(1);
    expect(await s.threadCount()).toBe(3);
  });

  it("restores the previous thread count when fn throws, and rethrows fn's error", async () => {
    const s = await open(2);
    await expect(
      s.withThreads(1, async () => {
        expect(await s.threadCount()).toBe(1);
        throw new Error("write failed");
      }),
    ).rejects.toThrow("write failed");
    expect(await s.threadCount()).toBe(2);
  });

  it("inside a transaction keeps the thread count through the COMMIT and restores it after", async () => {
    const s = await open(2);
    await s.run("CREATE TABLE t (v INTEGER)");
    let afterFn = 0;
    await s.transaction(async () => {
      await s.withThreads(1, () => s.run("INSERT INTO t VALUES (1), (2)"));
      afterFn = await s.threadCount();
    });
    expect(afterFn).toBe(1);
    expect(await s.threadCount()).toBe(2);
    expect((await s.one<{ n: number }>("SELECT sum(v)::INTEGER AS n FROM t"))!.n).toBe(3);
  });

  it("inside a transaction that fails restores the thread count after the ROLLBACK", async () => {
    const s = await open(2);
    await s.run("CREATE TABLE t (v INTEGER NOT NULL)");
    await expect(
      s.transaction(async () => {
        await s.withThreads(1, () => s.run("INSERT INTO t VALUES (1)"));
        await s.run("INSERT INTO t VALUES (NULL)");
      }),
    ).rejects.toThrow(/NOT NULL constraint/);
    expect(await s.threadCount()).toBe(2);
    expect((await s.one<{ n: number }>("SELECT count(*)::INTEGER AS n FROM t"))!.n).toBe(0);
    // The store is usable and a later switch works as before.
    await s.withThreads(1, () => s.run("INSERT INTO t VALUES (5)"));
    expect(await s.threadCount()).toBe(2);
  });

  it("refuses a thread count that is not an integer >= 1, naming the value", async () => {
    const s = await open(2);
    for (const bad of [0, -1, 1.5, Number.NaN]) {
      const err = await s.withThreads(bad, async () => 0).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(StorageError);
      expect((err as StorageError).code).toBe("DB_CONFIG");
      expect((err as StorageError).message).toContain(`(got ${bad})`);
    }
    expect(await s.threadCount()).toBe(2);
  });

  it("any nesting of switches, inside or outside a transaction, failing or not, ends on the setting it started from", async () => {
    const s = await open(2);
    type Op = { threads: number; inTx: boolean; fail: boolean };
    const op = fc.record({ threads: fc.integer({ min: 1, max: 4 }), inTx: fc.boolean(), fail: fc.boolean() });
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 4 }), fc.array(op, { maxLength: 4 }), async (start, ops) => {
        await s.run(`SET threads = ${start}`);
        const nest = async (i: number): Promise<void> => {
          const o: Op | undefined = ops[i];
          if (o === undefined) return;
          const body = async (): Promise<void> => {
            await s.withThreads(o.threads, async () => {
              expect(await s.threadCount()).toBe(o.threads);
              await nest(i + 1);
              if (o.fail) throw new Error(`op ${i} failed`);
            });
          };
          await (o.inTx ? s.transaction(body) : body()).catch((e: Error) => {
            if (!e.message.startsWith("op ")) throw e;
          });
        };
        await nest(0);
        expect(await s.threadCount()).toBe(start);
      }),
      { numRuns: 60 },
    );
  });
});
