import type { Server as HttpServer, IncomingMessage, ServerResponse } from "node:http";

/**
 * Bounded graceful shutdown of an HTTP(S) server: stop accepting connections, let requests in
 * flight finish, close keep-alive connections as soon as they are idle (and tell clients to close
 * with `Connection: close` on every response sent while draining), and after `timeoutMs` cut
 * whatever is still open. Without this a client that keeps its connection busy holds the server
 * (and the DuckDB file lock) for as long as it likes.
 */
export interface Drainer {
  /** Requests being handled now. */
  readonly inFlight: number;
  /** Starts draining; resolves when every connection is closed (clean) or the timeout cut them. */
  drain(timeoutMs: number): Promise<{ clean: boolean; cut: number; ms: number }>;
}

export function trackRequests(server: HttpServer): Drainer {
  const active = new Set<ServerResponse>();
  let draining = false;
  server.on("request", (_req: IncomingMessage, res: ServerResponse) => {
    active.add(res);
    if (draining && !res.headersSent) res.setHeader("Connection", "close");
    res.once("close", () => {
      active.delete(res);
    });
  });
  return {
    get inFlight() {
      return active.size;
    },
    drain: (timeoutMs) => {
      const t0 = Date.now();
      draining = true;
      // Requests that arrived before the drain and have not answered yet close their connection too.
      for (const res of active) if (!res.headersSent) res.setHeader("Connection", "close");
      return new Promise((resolve) => {
        let done = false;
        const finish = (clean: boolean, cut: number) => {
          if (done) return;
          done = true;
          clearInterval(sweep);
          clearTimeout(timer);
          resolve({ clean, cut, ms: Date.now() - t0 });
        };
        // close() stops accepting and calls back once every connection has ended; it also closes
        // the connections idle right now (Node >= 19).
        server.close(() => finish(true, 0));
        // Connections that were busy become idle after their response (sent with Connection: close).
        const sweep = setInterval(() => server.closeIdleConnections(), 100);
        const timer = setTimeout(() => {
          const cut = active.size;
          server.closeAllConnections();
          finish(false, cut);
        }, timeoutMs);
      });
    },
  };
}

/** MASTERY_SHUTDOWN_TIMEOUT_MS or 10 s. */
export const DEFAULT_SHUTDOWN_TIMEOUT_MS = 10_000;

/** `p`, or undefined once `ms` have passed (shutdown steps must not hang the exit). */
export function within<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  return Promise.race([
    p.catch(() => undefined),
    new Promise<undefined>((r) => setTimeout(() => r(undefined), Math.max(0, ms)).unref()),
  ]);
}
