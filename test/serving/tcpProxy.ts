import { createServer, type Server, type Socket, connect as tcpConnect } from "node:net";

/**
 * A TCP proxy to 127.0.0.1:`target` for fault tests that must not touch the shared services: `down()`
 * cuts every connection and closes the port (a crashed or restarting server), `stall()` keeps the
 * connections but forwards nothing and accepts new ones without answering (a frozen host), `up()`
 * listens again on the same port.
 */
export class TcpProxy {
  private server: Server | null = null;
  private readonly sockets = new Set<Socket>();
  port = 0;
  constructor(private readonly target: number) {}

  async up(): Promise<void> {
    const server = createServer((client) => {
      const upstream = tcpConnect(this.target, "127.0.0.1");
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on("close", () => this.sockets.delete(s));
        s.on("error", () => {});
      }
      client.pipe(upstream).pipe(client);
      client.on("close", () => upstream.destroy());
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
    for (const sock of this.sockets) {
      sock.unpipe();
      sock.pause();
    }
    this.server?.removeAllListeners("connection");
    this.server?.on("connection", (c) => {
      this.sockets.add(c);
      c.on("error", () => {});
    });
  }

  async down(): Promise<void> {
    const s = this.server;
    this.server = null;
    for (const sock of this.sockets) sock.destroy();
    this.sockets.clear();
    if (s !== null) await new Promise<void>((r) => s.close(() => r()));
  }
}
