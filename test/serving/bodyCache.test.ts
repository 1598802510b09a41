import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { BodyCache } from "../../serving/bodyCache.ts";

function deferred<T>() {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((ok, fail) => {
    resolve = ok;
    reject = fail;
  });
  return { promise, resolve, reject };
}
const ticks = async (n = 5) => {
  for (let i = 0; i < n; i++) await Promise.resolve();
};

describe("BodyCache", () => {
  it("serves hits, evicts least recently used entries to stay within maxBytes", async () => {
    const c = new BodyCache({ maxBytes: 10 });
    expect(await c.get("a", async () => "aaaa")).toBe("aaaa");
    expect(await c.get("b", async () => "bbbb")).toBe("bbbb");
    expect(await c.get("a", async () => "XXXX")).toBe("aaaa"); // hit; a is now most recent
    expect(await c.get("c", async () => "cccc")).toBe("cccc"); // 12 bytes > 10: evicts b
    expect(c.size).toEqual({ entries: 2, bytes: 8 });
    expect(c.peek("b")).toBeUndefined();
    expect(c.peek("a")).toBe("aaaa");
    expect(c.stats).toMatchObject({ hits: 1, misses: 3, evicted: 1 });
    // A body larger than the bound is returned but never stored.
    expect(await c.get("d", async () => "d".repeat(11))).toBe("d".repeat(11));
    expect(c.peek("d")).toBeUndefined();
    expect(c.size.bytes).toBe(8);
  });

  it("counts UTF-8 bytes, not string length", async () => {
    const c = new BodyCache({ maxBytes: 100 });
    await c.get("k", async () => "é€"); // 2 + 3 bytes
    expect(c.size.bytes).toBe(5);
  });

  it("does not cache a body whose read overlapped an invalidation of its key", async () => {
    const c = new BodyCache({ maxBytes: 1000 });
    const d = deferred<string>();
    const p = c.get("s1", () => d.promise);
    c.invalidate(["s1"]);
    d.resolve("old");
    expect(await p).toBe("old"); // the caller still gets its answer
    expect(c.peek("s1")).toBeUndefined();
    expect(c.stats.discarded).toBe(1);
    expect(await c.get("s1", async () => "new")).toBe("new");
    expect(c.peek("s1")).toBe("new");
  });

  it("an invalidation of another key does not discard the read", async () => {
    const c = new BodyCache({ maxBytes: 1000 });
    const d = deferred<string>();
    const p = c.get("s1", () => d.promise);
    c.invalidate(["s2"]);
    d.resolve("v");
    await p;
    expect(c.peek("s1")).toBe("v");
  });

  it("clear() during a read: nothing read before it is cached", async () => {
    const c = new BodyCache({ maxBytes: 1000 });
    const d = deferred<string>();
    const p = c.get("s1", () => d.promise);
    c.clear();
    d.resolve("v");
    await p;
    expect(c.peek("s1")).toBeUndefined();
    expect(c.size).toEqual({ entries: 0, bytes: 0 });
  });

  it("concurrent misses of one key share one computation, unless an invalidation came in between", async () => {
    const c = new BodyCache({ maxBytes: 1000 });
    let calls = 0;
    const d1 = deferred<string>();
    const d2 = deferred<string>();
    const compute = () => {
      calls++;
      return calls === 1 ? d1.promise : d2.promise;
    };
    const a = c.get("s", compute);
    const b = c.get("s", compute);
    expect(calls).toBe(1);
    c.invalidate(["s"]);
    const late = c.get("s", compute); // must not join the flight that predates the invalidation
    expect(calls).toBe(2);
    d1.resolve("v1");
    d2.resolve("v2");
    expect(await a).toBe("v1");
    expect(await b).toBe("v1");
    expect(await late).toBe("v2");
    expect(c.peek("s")).toBe("v2");
    expect(c.stats.shared).toBe(1);
  });

  it("a failed computation rejects its callers and caches nothing", async () => {
    const c = new BodyCache({ maxBytes: 1000 });
    const d = deferred<string>();
    const a = c.get("s", () => d.promise);
    const b = c.get("s", () => d.promise);
    d.reject(new Error("store down"));
    await expect(a).rejects.toThrow("store down");
    await expect(b).rejects.toThrow("store down");
    expect(c.peek("s")).toBeUndefined();
    expect(await c.get("s", async () => "ok")).toBe("ok");
  });

  it("entries expire after ttlMs", async () => {
    let t = 1000;
    const c = new BodyCache({ maxBytes: 1000, ttlMs: 50, now: () => t });
    await c.get("s", async () => "v1");
    t += 50;
    expect(c.peek("s")).toBe("v1");
    t += 1;
    expect(c.peek("s")).toBeUndefined();
    expect(c.size.bytes).toBe(0);
  });

  it("setTtlMs applies to bodies already cached (their age counts from when they were stored)", async () => {
    let t = 1000;
    const c = new BodyCache({ maxBytes: 1000, ttlMs: 1000, now: () => t });
    await c.get("s", async () => "v1");
    t += 5000;
    expect(c.peek("s")).toBeUndefined(); // 5 s old > 1 s
    await c.get("s", async () => "v2");
    c.setTtlMs(30_000);
    expect(c.ttlMs).toBe(30_000);
    t += 29_999;
    expect(c.peek("s")).toBe("v2");
    c.setTtlMs(1000); // back to short: a 29.999 s old body is no longer served
    expect(c.peek("s")).toBeUndefined();
    expect(() => c.setTtlMs(-1)).toThrow(/ttlMs must be >= 0/);
  });

  it("rejects a negative bound with a message naming the setting", () => {
    expect(() => new BodyCache({ maxBytes: -1 })).toThrow(/maxBytes must be a number >= 0/);
  });

  it("property: never serves a body older than the latest invalidation, stays within maxBytes", async () => {
    const keys = ["a", "b", "c"];
    const op = fc.oneof(
      fc.record({ t: fc.constant("read" as const), k: fc.constantFrom(...keys) }),
      fc.record({ t: fc.constant("finish" as const), i: fc.nat(8) }),
      fc.record({ t: fc.constant("invalidate" as const), k: fc.constantFrom(...keys) }),
      fc.record({ t: fc.constant("clear" as const) }),
      fc.record({ t: fc.constant("peek" as const), k: fc.constantFrom(...keys) }),
    );
    await fc.assert(
      fc.asyncProperty(
        fc.array(op, { maxLength: 60 }),
        fc.integer({ min: 0, max: 40 }),
        async (ops, maxBytes) => {
          const c = new BodyCache({ maxBytes });
          await runCacheModel(c, keys, ops, maxBytes);
          expect(c.size.bytes).toBeLessThanOrEqual(maxBytes);
        },
      ),
      { numRuns: 300 },
    );
  });
});

/** An operation of the cache-model properties below. */
type CacheOp =
  | { t: "read"; k: string }
  | { t: "finish"; i: number }
  | { t: "invalidate"; k: string }
  | { t: "group"; g: string }
  | { t: "clear" }
  | { t: "peek"; k: string };

/**
 * Runs `ops` against `c` and a model of the data (each key's version, bumped by every update: invalidate, a group's
 * invalidation, clear), checking that every body served is of the key's latest version and that the cache stays
 * within `maxBytes` after each operation; then finishes every read in flight and checks every key again. A read's
 * body reflects the data as of its start. Returns the keys still cached at the end.
 */
async function runCacheModel(
  c: BodyCache,
  keys: readonly string[],
  ops: readonly CacheOp[],
  maxBytes: number,
  groupOf?: (k: string) => string,
): Promise<string[]> {
  const truth = new Map(keys.map((k) => [k, 0]));
  const bump = (k: string) => truth.set(k, (truth.get(k) ?? 0) + 1);
  const pending: { resolve: () => void }[] = [];
  const results: Promise<string>[] = [];
  const check = (k: string, body: string | undefined) => {
    if (body === undefined) return;
    const [key, v] = body.split(":");
    expect(key).toBe(k);
    expect(Number(v)).toBe(truth.get(k));
  };
  for (const o of ops) {
    if (o.t === "read") {
      const d = deferred<string>();
      const body = `${o.k}:${truth.get(o.k)}${"x".repeat(o.k.charCodeAt(o.k.length - 1) % 7)}`;
      results.push(c.get(o.k, () => d.promise));
      pending.push({ resolve: () => d.resolve(body) });
    } else if (o.t === "finish") {
      const p = pending.splice(o.i % Math.max(1, pending.length), 1)[0];
      p?.resolve();
      await ticks();
    } else if (o.t === "group") {
      if (groupOf === undefined) throw new Error("runCacheModel: a group operation needs groupOf");
      for (const k of keys) if (groupOf(k) === o.g) bump(k);
      c.invalidateGroups([o.g]);
    } else if (o.t === "invalidate") {
      bump(o.k);
      c.invalidate([o.k]);
    } else if (o.t === "clear") {
      for (const k of keys) bump(k);
      c.clear();
    } else {
      check(o.k, c.peek(o.k)?.replace(/x+$/, ""));
    }
    expect(c.size.bytes).toBeLessThanOrEqual(maxBytes);
  }
  for (const p of pending) p.resolve();
  await Promise.all(results);
  await ticks();
  const held: string[] = [];
  for (const k of keys) {
    const body = c.peek(k);
    check(k, body?.replace(/x+$/, ""));
    if (body !== undefined) held.push(k);
  }
  return held;
}

describe("BodyCache maxEntries", () => {
  it("evicts the least recently used entry beyond maxEntries", async () => {
    const c = new BodyCache({ maxBytes: 1000, maxEntries: 2 });
    await c.get("a", async () => "1");
    await c.get("b", async () => "2");
    c.peek("a");
    await c.get("c", async () => "3");
    expect(c.peek("b")).toBeUndefined();
    expect(c.peek("a")).toBe("1");
    expect(c.size).toEqual({ entries: 2, bytes: 2 });
  });
});

describe("BodyCache groups (groupOf, invalidateGroups)", () => {
  // Keys "<student>/<topic>", grouped by student, as the history cache keys (student, topic).
  const groupOf = (k: string) => k.slice(0, k.indexOf("/"));

  it("invalidateGroups drops every cached key of the group and no other", async () => {
    const c = new BodyCache({ maxBytes: 1000, groupOf });
    for (const k of ["s1/a", "s1/b", "s2/a"]) await c.get(k, async () => `${k}:0`);
    expect(c.groupsTracked).toBe(2);
    c.invalidateGroups(["s1"]);
    expect(c.peek("s1/a")).toBeUndefined();
    expect(c.peek("s1/b")).toBeUndefined();
    expect(c.peek("s2/a")).toBe("s2/a:0");
    expect(c.size).toEqual({ entries: 1, bytes: 6 });
    expect(c.groupsTracked).toBe(1);
    // A group with nothing cached or read is a no-op.
    c.invalidateGroups(["s9"]);
    expect(c.size.entries).toBe(1);
  });

  it("a read in flight of a key of the group does not cache what it computed; a later read does", async () => {
    const c = new BodyCache({ maxBytes: 1000, groupOf });
    const d = deferred<string>();
    const p = c.get("s1/b", () => d.promise);
    c.invalidateGroups(["s1"]);
    d.resolve("old");
    expect(await p).toBe("old");
    expect(c.peek("s1/b")).toBeUndefined();
    expect(c.stats.discarded).toBe(1);
    expect(c.groupsTracked).toBe(0);
    expect(await c.get("s1/b", async () => "new")).toBe("new");
    expect(c.peek("s1/b")).toBe("new");
  });

  it("a key evicted, expired or failed leaves its group (no record kept for keys no longer held)", async () => {
    let t = 0;
    const c = new BodyCache({ maxBytes: 10, groupOf, ttlMs: 5, now: () => t });
    await c.get("s1/a", async () => "12345");
    await c.get("s2/a", async () => "12345");
    expect(c.groupsTracked).toBe(2);
    await c.get("s3/a", async () => "12345"); // evicts s1/a
    expect(c.groupsTracked).toBe(2);
    t = 10; // both expire; a peek removes each
    expect(c.peek("s2/a")).toBeUndefined();
    expect(c.peek("s3/a")).toBeUndefined();
    expect(c.groupsTracked).toBe(0);
    await expect(c.get("s4/a", async () => Promise.reject(new Error("read failed")))).rejects.toThrow(
      "read failed",
    );
    expect(c.groupsTracked).toBe(0);
    // clear() keeps only the keys being read.
    const d = deferred<string>();
    await c.get("s5/a", async () => "v");
    const p = c.get("s6/a", () => d.promise);
    c.clear();
    expect(c.groupsTracked).toBe(1);
    d.resolve("w");
    await p;
    expect(c.peek("s6/a")).toBeUndefined();
    expect(c.groupsTracked).toBe(0);
  });

  it("invalidateGroups without groupOf names the option", () => {
    expect(() => new BodyCache({ maxBytes: 10 }).invalidateGroups(["s1"])).toThrow(/groupOf/);
  });

  it("property: never serves a body older than its group's latest invalidation; groups track only held keys", async () => {
    const keys = ["s1/a", "s1/b", "s2/a", "s2/b"];
    const groups = ["s1", "s2"];
    const op = fc.oneof(
      fc.record({ t: fc.constant("read" as const), k: fc.constantFrom(...keys) }),
      fc.record({ t: fc.constant("finish" as const), i: fc.nat(8) }),
      fc.record({ t: fc.constant("group" as const), g: fc.constantFrom(...groups) }),
      fc.record({ t: fc.constant("invalidate" as const), k: fc.constantFrom(...keys) }),
      fc.record({ t: fc.constant("clear" as const) }),
      fc.record({ t: fc.constant("peek" as const), k: fc.constantFrom(...keys) }),
    );
    await fc.assert(
      fc.asyncProperty(
        fc.array(op, { maxLength: 60 }),
        fc.integer({ min: 0, max: 40 }),
        async (ops, maxBytes) => {
          const c = new BodyCache({ maxBytes, groupOf });
          const held = new Set((await runCacheModel(c, keys, ops, maxBytes, groupOf)).map(groupOf));
          // Nothing in flight now: the groups tracked are exactly those with a cached key.
          expect(c.groupsTracked).toBe(held.size);
        },
      ),
      { numRuns: 300 },
    );
  });
});
