import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import {
  advisoryKey,
  FileLock,
  PgAdvisoryLock,
  RedisLock,
  type RetrainLock,
  withLock,
} from "../../monitoring/locks.ts";

const PG_URL = process.env.MASTERY_PG_URL ?? "postgres://postgres@127.0.0.1:5432/test";
const REDIS_URL = process.env.MASTERY_REDIS_URL ?? "redis://127.0.0.1:6379";
const run = `${process.pid}-${randomBytes(4).toString("hex")}`;
const dir = mkdtempSync(join(tmpdir(), "locks-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/**
 * Two holders race for one key many times; the "job" yields to the event loop several times while
 * it runs, so a broken lock would let the other holder in. Counts how many ran at once.
 */
async function race(
  a: RetrainLock,
  b: RetrainLock,
): Promise<{ maxConcurrent: number; runs: number; skips: number }> {
  let running = 0;
  let maxConcurrent = 0;
  let runs = 0;
  let skips = 0;
  const job = async () => {
    running++;
    maxConcurrent = Math.max(maxConcurrent, running);
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
    running--;
    runs++;
  };
  for (let round = 0; round < 20; round++) {
    const out = await Promise.all([withLock(a, job), withLock(b, job)]);
    skips += out.filter((o) => !o.acquired).length;
  }
  return { maxConcurrent, runs, skips };
}

describe.each([
  [
    "postgres advisory lock",
    () => [new PgAdvisoryLock(PG_URL, `retrain-${run}`), new PgAdvisoryLock(PG_URL, `retrain-${run}`)],
  ],
  [
    "redis SET NX PX lock",
    () => [
      new RedisLock(REDIS_URL, `test:lock:${run}`, 5000),
      new RedisLock(REDIS_URL, `test:lock:${run}`, 5000),
    ],
  ],
  ["file lock", () => [new FileLock(join(dir, "a.lock")), new FileLock(join(dir, "a.lock"))]],
] as const)("%s", (_name, make) => {
  it("never lets two holders run the job at once, and frees the lock after each run", async () => {
    const [a, b] = make() as unknown as [RetrainLock, RetrainLock];
    try {
      const r = await race(a, b);
      expect(r.maxConcurrent).toBe(1);
      expect(r.runs + r.skips).toBe(40);
      expect(r.runs).toBeGreaterThanOrEqual(20);
      // The two really contended (otherwise the test would prove nothing).
      expect(r.skips).toBeGreaterThan(0);
      // Held by a: b is refused until a releases.
      expect(await a.tryAcquire()).toBe(true);
      expect(await b.tryAcquire()).toBe(false);
      await a.release();
      expect(await b.tryAcquire()).toBe(true);
      await b.release();
    } finally {
      await a.close();
      await b.close();
    }
  });
});

describe("lock details", () => {
  it("PostgreSQL frees the advisory lock when the holder's connection closes", async () => {
    const a = new PgAdvisoryLock(PG_URL, `close-${run}`);
    const b = new PgAdvisoryLock(PG_URL, `close-${run}`);
    expect(await a.tryAcquire()).toBe(true);
    expect(await b.tryAcquire()).toBe(false);
    await a.close();
    expect(await b.tryAcquire()).toBe(true);
    await b.close();
  });

  it("advisory key is a stable signed 64-bit hash", () => {
    expect(advisoryKey("mastery-retrain")).toBe(advisoryKey("mastery-retrain"));
    expect(advisoryKey("a")).not.toBe(advisoryKey("b"));
  });

  it("a file lock left by a dead process or past its expiry is taken over", async () => {
    const path = join(dir, "stale.lock");
    writeFileSync(
      path,
      JSON.stringify({ pid: 2 ** 22 + 12345, host: hostname(), token: "x", expiresAt: Date.now() + 1e9 }),
    );
    const l = new FileLock(path);
    expect(await l.tryAcquire()).toBe(true);
    await l.release();
    writeFileSync(
      path,
      JSON.stringify({ pid: process.pid, host: "other-host", token: "x", expiresAt: Date.now() - 1 }),
    );
    expect(await l.tryAcquire()).toBe(true);
    await l.release();
    // Live holder on this host, not expired: refused.
    writeFileSync(
      path,
      JSON.stringify({ pid: process.pid, host: hostname(), token: "y", expiresAt: Date.now() + 1e9 }),
    );
    expect(await new FileLock(path).tryAcquire()).toBe(false);
  });
});
