import { Worker } from "node:worker_threads";
import { afterEach, describe, expect, it } from "vitest";
import { poolHeapMb, watchPoolThread } from "../../serving/poolThread.ts";

type Reply = { id: number } | { closed: true; n: number };

const watch = (worker: Worker, seen: Reply[], failures: Error[]) =>
  watchPoolThread<Reply>(worker, {
    name: "test thread 0",
    heapMb: 64,
    heapEnv: "TEST_POOL_HEAP",
    makeError: (m) => new Error(m),
    closedCount: (m) => ("closed" in m ? m.n : undefined),
    onMessage: (m) => seen.push(m),
    onFailure: (e) => failures.push(e),
  });

describe("a batch pool's thread (serving/poolThread.ts)", () => {
  afterEach(() => {
    delete process.env.TEST_POOL_HEAP;
  });

  it("routes replies and resolves with the close reply's count", async () => {
    const worker = new Worker(
      `const { parentPort } = require("node:worker_threads");
       parentPort.postMessage({ id: 1 }); parentPort.postMessage({ id: 2 });
       parentPort.postMessage({ closed: true, n: 7 }); parentPort.close();`,
      { eval: true },
    );
    const seen: Reply[] = [];
    const failures: Error[] = [];
    await expect(watch(worker, seen, failures)).resolves.toBe(7);
    expect(seen).toEqual([{ id: 1 }, { id: 2 }]);
    expect(failures).toEqual([]);
  });

  it("a thread that exits before its close fails with an error naming it", async () => {
    const worker = new Worker("process.exit(3)", { eval: true });
    const failures: Error[] = [];
    await expect(watch(worker, [], failures)).rejects.toThrow(
      "test thread 0 failed: exited with code 3 before it was closed",
    );
    expect(failures.map((e) => e.message)).toEqual([
      "test thread 0 failed: exited with code 3 before it was closed",
    ]);
  });

  it("the heap cap comes from its variable, checked, else the default", () => {
    const err = (m: string) => new Error(m);
    expect(poolHeapMb("TEST_POOL_HEAP", 64, 16, err)).toBe(64);
    process.env.TEST_POOL_HEAP = "256";
    expect(poolHeapMb("TEST_POOL_HEAP", 64, 16, err)).toBe(256);
    process.env.TEST_POOL_HEAP = "8";
    expect(() => poolHeapMb("TEST_POOL_HEAP", 64, 16, err)).toThrow(
      'TEST_POOL_HEAP must be a whole number of MB >= 16 (got "8"); e.g. 64',
    );
  });
});
