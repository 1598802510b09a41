import { createServer } from "node:http";
import { connect } from "node:net";
import { describe, expect, it } from "vitest";
import { trackRequests } from "../../serving/gracefulShutdown.ts";

describe("trackRequests drain", () => {
  it("a request in flight when the drain starts finishes, is answered with Connection: close, and the drain is clean", async () => {
    let release: () => void = () => undefined;
    const server = createServer((_req, res) => {
      // Answers once the test says so: the request is in flight until then.
      release = () => res.end("done");
    });
    const drainer = trackRequests(server);
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const port = (server.address() as { port: number }).port;

    const sock = connect(port, "127.0.0.1");
    let answer = "";
    sock.on("data", (d) => {
      answer += d.toString();
    });
    const closed = new Promise<void>((r) => sock.on("close", () => r()));
    sock.write("GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n");
    for (let i = 0; i < 100 && drainer.inFlight === 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(drainer.inFlight).toBe(1);

    const drained = drainer.drain(5000);
    await new Promise((r) => setTimeout(r, 50));
    release();
    const result = await drained;
    await closed;
    expect(answer).toMatch(/^HTTP\/1\.1 200 /);
    expect(answer).toMatch(/\r\nconnection: close\r\n/i);
    expect(answer.endsWith("done")).toBe(true);
    expect(result.clean).toBe(true);
    expect(result.cut).toBe(0);
    expect(drainer.inFlight).toBe(0);
  });
});
