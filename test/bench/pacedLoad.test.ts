import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pacedLoad } from "../../bench/pacedLoad.ts";

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
