import type { IncomingMessage, ServerResponse } from "node:http";
import { mayDo, mayReadWithoutRoster, type Principal } from "./auth.ts";
import { SERVED_BODY_TYPE, type ServedBody } from "./servedBody.ts";

/**
 * GET /mastery/:studentId answered from the body cache before the rest of the chain and the router (issue
 * 15: most of the production mix are such hits, and each went through the security-header, rate-limit,
 * JSON, metrics and outage middlewares, the router and an async handler of four awaits for a map lookup and
 * one write). `masteryHitListener` runs in front of Express itself (serving/app.ts: Express's dispatch, its
 * prototype swaps and final handler are skipped too, and the headers go out in one writeHead).
 *
 * Only a strict subset of requests is taken here; every other one goes on to the same route as before,
 * which then decides everything itself (refusals, error bodies, 304, misses, HEAD, ?include=).
 * Taken: GET of `/mastery/<segment>` exactly (no query string, no `%` escapes, no trailing slash), without
 * If-None-Match / If-Modified-Since, while no backend is down, with a bearer token verified before and
 * not expired whose principal may read mastery and this student without the roster (admin, service, the
 * student, a parent's child), that the rate limiter would not count, and a fresh cached body. The answer
 * is the route's: the same security headers, ETag, type and length in the same order, the same body
 * bytes, the same request metrics and log line, and the hit counted once.
 */
export interface MasteryHitChecks {
  /** The route's pattern, for the request metrics (`/mastery/:studentId`). */
  route: string;
  /** A cached, unexpired principal of the Authorization header, or undefined (serving/auth.ts). */
  cachedPrincipal(authorization: string | undefined): Principal | undefined;
  /** The student_key of a raw id from the URL (serving/app.ts studentKeyOf). */
  studentKey(rawStudentId: string): string;
  /** The fresh cached body (counted as a hit), or undefined (nothing counted). */
  cachedBody(studentKey: string): ServedBody | undefined;
  anyBackendDown(): boolean;
  /** Whether the rate limiter counts this principal's requests (then the request goes the whole way). */
  rateLimited(p: Principal): boolean;
}

export interface MasteryHitListenerDeps extends MasteryHitChecks {
  /** The security headers every answer carries, flat (name, value, ...): securityHeaderList(). */
  securityHeaders: readonly string[];
  /** Starts the request's metrics and log line (recorded at 'finish') with the answer's student_key. */
  observe(req: IncomingMessage, res: ServerResponse, route: string, studentKey: string): void;
}

const PREFIX = "/mastery/";
/** A path segment the router would decode or split, or a query string: left to the route. */
const NOT_PLAIN = /[/?%#]/;

/** The student_key and cached body of a request the hit path takes, or undefined (left to the route). */
function takenHit(
  deps: MasteryHitChecks,
  req: IncomingMessage,
): { key: string; body: ServedBody } | undefined {
  const url = req.url ?? "";
  if (req.method !== "GET" || !url.startsWith(PREFIX) || url.length === PREFIX.length) return undefined;
  const rawId = url.slice(PREFIX.length);
  if (NOT_PLAIN.test(rawId)) return undefined;
  const h = req.headers;
  if (h["if-none-match"] !== undefined || h["if-modified-since"] !== undefined) return undefined;
  if (deps.anyBackendDown()) return undefined;
  const p = deps.cachedPrincipal(h.authorization);
  if (p === undefined || !mayDo(p, "mastery:read") || deps.rateLimited(p)) return undefined;
  const key = deps.studentKey(rawId);
  if (!mayReadWithoutRoster(p, key)) return undefined;
  const body = deps.cachedBody(key);
  return body === undefined ? undefined : { key, body };
}

/**
 * The hit path on the bare Node request, for in front of Express: answers and returns true, or returns false
 * having written nothing (the request then goes to Express). The headers are the route's, in its order (security
 * headers, ETag, type, length), written with one `writeHead` of a flat list, then the body.
 */
export function masteryHitListener(
  deps: MasteryHitListenerDeps,
): (req: IncomingMessage, res: ServerResponse) => boolean {
  const security = deps.securityHeaders;
  return (req, res) => {
    const hit = takenHit(deps, req);
    if (hit === undefined) return false;
    deps.observe(req, res, deps.route, hit.key);
    const headers = security.slice();
    headers.push(
      "ETag",
      hit.body.etag,
      "Content-Type",
      SERVED_BODY_TYPE,
      "Content-Length",
      String(hit.body.buf.length),
    );
    res.writeHead(200, headers);
    res.end(hit.body.buf);
    return true;
  };
}
