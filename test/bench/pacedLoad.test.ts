import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pacedLoad, steadyLatency } from "../../bench/pacedLoad.ts";

describe("pacedLoad's keep-alive sockets", () => {
  let server: Server;
  let port = 0;
  let connections = 0;
  beforeAll(async () => {
    server = createServer((_req, res) => res.end("ok"));
    server.on("connection", () => connections++);
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  // 6 requests 200 ms apart on a pool of 3: the socket each one finds idle has idled ~200 ms.
  const run = (maxIdleMs?: number) =>
    pacedLoad({
      port,
      rate: 5,
      durationS: 1.2,
      connections: 3,
      next: () => ({ method: "GET", path: "/" }),
      ...(maxIdleMs !== undefined ? { maxIdleMs } : {}),
    });

  it("reuses sockets idle for less than maxIdleMs (default 4 s): only the pool's 3 connections open", async () => {
    connections = 0;
    const r = await run();
    expect(r.completed).toBe(6);
    expect(r.errors).toBe(0);
    expect(r.retiredIdle).toBe(0);
    expect(connections).toBe(3);
  });

  it("closes sockets idle past maxIdleMs instead of writing on them, and opens new ones", async () => {
    connections = 0;
    const r = await run(100);
    expect(r.completed).toBe(6);
    expect(r.errors).toBe(0);
    // Every request after the first finds only stale sockets: they are closed (3 pre-opened, then each new
    // one after its answer) and a fresh connection is opened for it.
    expect(r.retiredIdle).toBeGreaterThanOrEqual(5);
    expect(connections).toBeGreaterThanOrEqual(3 + 5);
  });
});

describe("pacedLoad's trace", () => {
  // Answers after `delay` ms, and keeps the x-bench-id it saw with its monotonic time of arrival.
  let server: Server;
  let port = 0;
  const seen: { id: string | undefined; at: number }[] = [];
  beforeAll(async () => {
    server = createServer((req, res) => {
      seen.push({
        id: req.headers["x-bench-id"] as string | undefined,
        at: Number(process.hrtime.bigint()) / 1e6,
      });
      setTimeout(() => res.end("ok"), 30);
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  it("sends each request's index and gives its due, write and answer times on the monotonic clock", async () => {
    // 10 requests 20 ms apart, each answered after 30 ms, on 1 connection: each waits for the one before.
    const r = await pacedLoad({
      port,
      rate: 50,
      durationS: 0.2,
      connections: 1,
      next: () => ({ method: "GET", path: "/" }),
      trace: true,
    });
    expect(r.completed).toBe(10);
    const t = r.trace;
    if (t === undefined) throw new Error("no trace");
    expect(seen.map((s) => s.id)).toEqual(["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]);
    for (let i = 0; i < 10; i++) {
      expect(t.due[i]).toBeCloseTo((t.due[0] ?? 0) + 20 * i, 6);
      const at = seen[i]?.at ?? Number.NaN;
      // written at or after its due time, seen by the server after that, answered >= 30 ms after arrival.
      expect(t.write[i]).toBeGreaterThanOrEqual(t.due[i] ?? Number.NaN);
      // The same clock as the server's: its arrival less than a second after the due time.
      expect(at - (t.due[i] ?? Number.NaN)).toBeLessThan(1000);
      expect(at).toBeGreaterThanOrEqual(t.write[i] ?? Number.NaN);
      expect(t.done[i] ?? 0).toBeGreaterThanOrEqual(at + 29);
    }
    // One connection, 30 ms per answer, 20 ms between due times: the queue wait grows ~10 ms a request.
    expect((t.write[9] ?? 0) - (t.due[9] ?? 0)).toBeGreaterThanOrEqual(80);
  });
});

describe("pacedLoad's steady window (the run without its first seconds)", () => {
  it("keeps only the answers whose request was due at or after fromS, known quantiles", () => {
    // Answer order, not due order: the slow first request (due at 0) came back last.
    const lat = Float64Array.from([5, 6, 7, 100]);
    const due = Float64Array.from([4000, 5000, 6000, 0]);
    expect(steadyLatency(lat, due, 4, 5)).toEqual({ fromS: 5, n: 2, p50: 7, p90: 7, p99: 7, max: 7 });
    expect(steadyLatency(lat, due, 4, 4)).toEqual({ fromS: 4, n: 3, p50: 6, p90: 7, p99: 7, max: 7 });
    expect(steadyLatency(lat, due, 4, 0)).toMatchObject({ n: 4, p99: 100, max: 100 });
    // Only the first n answers count.
    expect(steadyLatency(lat, due, 2, 0)).toMatchObject({ n: 2, p50: 6, max: 6 });
  });

  it("measures from the due time: a server slow for its first 300 ms leaves the steady part fast", async () => {
    let slowUntil = 0;
    const server = createServer((_req, res) => {
      if (performance.now() < slowUntil) setTimeout(() => res.end("ok"), 150);
      else res.end("ok");
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    try {
      const port = (server.address() as AddressInfo).port;
      slowUntil = performance.now() + 300;
      const r = await pacedLoad({
        port,
        rate: 50,
        durationS: 1.2,
        connections: 4,
        next: () => ({ method: "GET", path: "/" }),
        steadyFromS: 0.6,
      });
      expect(r.errors).toBe(0);
      expect(r.latency.max).toBeGreaterThanOrEqual(150);
      expect(r.steady?.n).toBeGreaterThanOrEqual(25);
      expect(r.steady?.n).toBeLessThan(r.completed);
      expect(r.steady?.max).toBeLessThan(150);
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
    }
  });
});
