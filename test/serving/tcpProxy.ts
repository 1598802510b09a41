import { createServer, type Server, type Socket, connect as tcpConnect } from "node:net";

/**
 * A TCP proxy to 127.0.0.1:`target` for fault tests that must not touch the shared services: `down()`
 * cuts every connection and closes the port (a crashed or restarting server), `stall()` keeps the
 * connections but forwards nothing and accepts new ones without answering (a frozen host), `resume()`
 * forwards again on the same connections (what was sent meanwhile is delivered late), `up()` listens again
 * on the same port.
 */
export class TcpProxy {
  private server: Server | null = null;
  private readonly sockets = new Set<Socket>();
  private readonly pairs = new Set<[Socket, Socket]>();
  private stalled = false;
  port = 0;
  constructor(private readonly target: number) {}

  async up(): Promise<void> {
    this.stalled = false;
    const server = createServer((client) => {
      this.sockets.add(client);
      client.on("close", () => this.sockets.delete(client));
      client.on("error", () => {});
      if (this.stalled) return; // accepted, never answered
      const upstream = tcpConnect(this.target, "127.0.0.1");
      this.sockets.add(upstream);
      upstream.on("close", () => this.sockets.delete(upstream));
      upstream.on("error", () => {});
      const pair: [Socket, Socket] = [client, upstream];
      this.pairs.add(pair);
      client.pipe(upstream).pipe(client);
      client.on("close", () => {
        upstream.destroy();
        this.pairs.delete(pair);
      });
      upstream.on("close", () => client.destroy());
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.port, "127.0.0.1", () => resolve());
    });
    this.port = (server.address() as { port: number }).port;
    this.server = server;
  }

  /** Black hole: open connections stop forwarding, new ones are accepted and never answered. */
  stall(): void {
    this.stalled = true;
    for (const sock of this.sockets) {
      sock.unpipe();
      sock.pause();
    }
  }

  /** Forwards again on the connections open before stall() (their buffered bytes first); new ones as usual. */
  resume(): void {
    this.stalled = false;
    for (const [client, upstream] of this.pairs) {
      client.pipe(upstream);
      upstream.pipe(client);
    }
  }

  async down(): Promise<void> {
    const s = this.server;
    this.server = null;
    for (const sock of this.sockets) sock.destroy();
    this.sockets.clear();
    this.pairs.clear();
    if (s !== null) await new Promise<void>((r) => s.close(() => r()));
  }
}
