import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { type BackendEvent, BackendMonitor, backoffMs } from "../../serving/backendMonitor.ts";
import type { BackendProbe } from "../../serving/streamStores.ts";
import { BackendUnavailableError } from "../../storage/unavailable.ts";

describe("backoffMs", () => {
  it("doubles from the base, is capped, and keeps half of it fixed (equal jitter)", () => {
    const o = { baseMs: 100, maxMs: 2000 };
    expect([0, 1, 2, 3, 4, 5, 9].map((a) => backoffMs(a, o, () => 0))).toEqual([
      50, 100, 200, 400, 800, 1000, 1000,
    ]);
    expect([0, 1, 2, 3, 4, 5, 9].map((a) => backoffMs(a, o, () => 1))).toEqual([
      100, 200, 400, 800, 1600, 2000, 2000,
    ]);
  });

  it("property: within [exp/2, exp] for every attempt and random draw", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 1000 }), fc.double({ min: 0, max: 1, noNaN: true }), (a, r) => {
        const exp = Math.min(30_000, 250 * 2 ** Math.min(a, 30));
        const d = backoffMs(a, { baseMs: 250, maxMs: 30_000 }, () => r);
        return d >= Math.floor(exp / 2) && d <= exp;
      }),
    );
  });
});

/** A probe whose answer the test switches (a backend going down and coming back). */
function switchable(backend: BackendProbe["backend"]) {
  let up = true;
  let calls = 0;
  const probe: BackendProbe = {
    backend,
    ping: async () => {
      calls++;
      if (!up) throw new Error("connect ECONNREFUSED");
    },
  };
  return {
    probe,
    set: (v: boolean) => {
      up = v;
    },
    calls: () => calls,
  };
}

describe("BackendMonitor", () => {
  it("marks the named backend down once, probes until it answers, then up once", async () => {
    const pg = switchable("postgres");
    const redis = switchable("redis");
    const events: BackendEvent[] = [];
    const m = new BackendMonitor({
      probes: [pg.probe, redis.probe],
      backoff: { baseMs: 5, maxMs: 20 },
      onChange: (e) => events.push(e),
    });
    pg.set(false);
    m.failed(new BackendUnavailableError("postgres", "connection refused"));
    m.failed(new BackendUnavailableError("postgres", "connection refused again"));
    expect(m.down()).toEqual(["postgres"]);
    let resolved = false;
    const up = m.whenUp().then(() => {
      resolved = true;
    });
    // Keeps probing with backoff, and stays down while the probes fail.
    while (pg.calls() < 3) await new Promise((r) => setTimeout(r, 5));
    expect(resolved).toBe(false);
    expect(m.down()).toEqual(["postgres"]);
    pg.set(true);
    await up;
    expect(m.down()).toEqual([]);
    // One line per change of state, not one per failure or probe.
    expect(events.map((e) => `${e.state}:${e.backend}`)).toEqual(["down:postgres", "up:postgres"]);
    expect(redis.calls()).toBe(0);
    m.close();
  });

  it("an error that names no backend probes them all and marks only the failing one", async () => {
    const pg = switchable("postgres");
    const redis = switchable("redis");
    const m = new BackendMonitor({ probes: [pg.probe, redis.probe], backoff: { baseMs: 5, maxMs: 10 } });
    redis.set(false);
    m.failed(new Error("Connection is closed."));
    await new Promise((r) => setTimeout(r, 20));
    expect(m.down()).toEqual(["redis"]);
    expect(m.retryAfterSeconds()).toBe(1);
    redis.set(true);
    await m.whenUp();
    m.close();
  });

  it("check() reports every backend with its latency and the reason it is down", async () => {
    const pg = switchable("postgres");
    const slow: BackendProbe = { backend: "duckdb", ping: () => new Promise((r) => setTimeout(r, 200)) };
    const m = new BackendMonitor({
      probes: [pg.probe, slow],
      probeTimeoutMs: 50,
      backoff: { baseMs: 5, maxMs: 10 },
    });
    pg.set(false);
    const s = await m.check();
    expect(s.map((x) => [x.backend, x.status])).toEqual([
      ["postgres", "down"],
      ["duckdb", "down"],
    ]);
    expect(s[0]!.error).toContain("ECONNREFUSED");
    expect(s[1]!.error).toBe("no answer within 50 ms");
    expect(s[1]!.latencyMs).toBeGreaterThanOrEqual(45);
    m.close();
  });

  it("a probe's own timeout wins over the monitor's: a stalled backend is down at its bound, a slow queue is not", async () => {
    const never = (): Promise<void> => new Promise(() => {});
    const stalled: BackendProbe = { backend: "redis", ping: never };
    const queued: BackendProbe = {
      backend: "duckdb",
      ping: () => new Promise((r) => setTimeout(r, 120)),
      timeoutMs: 400,
    };
    const m = new BackendMonitor({ probes: [stalled, queued], probeTimeoutMs: 60 });
    const t0 = performance.now();
    const s = await m.check();
    const ms = performance.now() - t0;
    expect(s.map((x) => [x.backend, x.status])).toEqual([
      ["redis", "down"],
      ["duckdb", "up"],
    ]);
    expect(s[0]!.error).toBe("no answer within 60 ms");
    // Bounded by the slowest answering probe (120 ms), not by any timeout of the stalled one.
    expect(ms).toBeLessThan(400);
    m.close();
  });
});
