import type { NextFunction, Request, RequestHandler, Response } from "express";
import { isUnavailable, unavailableBackend } from "../storage/unavailable.ts";
import { type BackendMonitor, backendList } from "./backendMonitor.ts";

/**
 * The HTTP face of an outage: while a backend a route needs is down, the route answers 503 with
 * Retry-After at once (no request waits on a dead connection), and a store call that fails as
 * unavailable mid-request is answered the same way (never 500). The monitor finds out when the
 * backend is back; service resumes without a restart.
 */

/** Routes that read or write the event / score stores (PostgreSQL, Redis, NATS when configured). */
const STORE_ROUTES = /^\/(events|mastery|score|recommendations|classes|feedback)(\/|$)/;
/** Served without any backend (liveness, readiness, docs, static dashboard). */
const NO_BACKEND = /^\/(healthz|readyz|openapi\.json|docs|app)(\/|$)/;

/** Express middleware: 503 + Retry-After before the handler runs when a needed backend is down. */
export function outageGuard(monitor: BackendMonitor): RequestHandler {
  return (req: Request, res: Response, next: NextFunction) => {
    if (!monitor.anyDown() || NO_BACKEND.test(req.path)) return next();
    const down = monitor.down();
    // DuckDB holds everything else (registry, experiments, audit); the services only the store routes.
    const needed = STORE_ROUTES.test(req.path) ? down : down.filter((b) => b === "duckdb");
    if (needed.length === 0) return next();
    sendUnavailable(res, monitor, backendList(needed));
  };
}

/**
 * For the error middleware: when `err` means a backend is unavailable, reports it to the monitor,
 * answers 503 + Retry-After and returns true; otherwise returns false.
 */
export function respondUnavailable(err: unknown, res: Response, monitor: BackendMonitor): boolean {
  if (!isUnavailable(err)) return false;
  monitor.failed(err);
  const named = unavailableBackend(err);
  sendUnavailable(res, monitor, named !== undefined ? backendList([named]) : "a backend");
  return true;
}

function sendUnavailable(res: Response, monitor: BackendMonitor, what: string): void {
  const after = monitor.retryAfterSeconds();
  res
    .status(503)
    .set("Retry-After", String(after))
    .json({
      error: "unavailable",
      field: "(backend)",
      reason: `${what} is unavailable; nothing from this request was acknowledged, retry after ${after} s`,
    });
}
