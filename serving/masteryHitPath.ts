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
 *
 * With `missBody`, a request that passes every check but the cached body (a miss) is taken too: its body is
 * computed by `missBody` (the route's own ctx.masteryBody: the same read, rendering, cache write and counters)
 * and answered as a hit is, so a miss skips Express's dispatch and its middlewares as well. Should the body
 * fail, nothing has been written yet: the request is handed to Express with the error (`leave`), where the
 * app's error handler answers it as it answered the route's failures.
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
  /** The body of a student whose body is not cached (computed and cached as the route does); absent: misses are left. */
  missBody?: (studentKey: string) => Promise<ServedBody>;
}

/**
 * The hit path's answer: true when it took the request (a hit is answered before this returns, a miss once its
 * body is computed), false when it wrote nothing and the request goes to Express. `leave` is called for a taken
 * miss whose body failed before anything was written: the request then goes to Express with that error.
 */
export type MasteryHitListener = (
  req: IncomingMessage,
  res: ServerResponse,
  leave?: (err: unknown, studentKey: string) => void,
) => boolean;

const PREFIX = "/mastery/";
/** A path segment the router would decode or split, or a query string: left to the route. */
const NOT_PLAIN = /[/?%#]/;

/**
 * The student_key of a request the hit path may take (every check but the cache's), or undefined (left to the
 * route).
 */
function takenKey(deps: MasteryHitChecks, req: IncomingMessage): string | undefined {
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
  return mayReadWithoutRoster(p, key) ? key : undefined;
}

/**
 * The hit path on the bare Node request, for in front of Express (MasteryHitListener). The headers are the
 * route's, in its order (security headers, ETag, type, length), written with one `writeHead` of a flat list,
 * then the body.
 */
export function masteryHitListener(deps: MasteryHitListenerDeps): MasteryHitListener {
  const security = deps.securityHeaders;
  const answer = (res: ServerResponse, body: ServedBody): void => {
    const headers = security.slice();
    headers.push(
      "ETag",
      body.etag,
      "Content-Type",
      SERVED_BODY_TYPE,
      "Content-Length",
      String(body.buf.length),
    );
    res.writeHead(200, headers);
    res.end(body.buf);
  };
  const missBody = deps.missBody;
  return (req, res, leave) => {
    const key = takenKey(deps, req);
    if (key === undefined) return false;
    const body = deps.cachedBody(key);
    if (body !== undefined) {
      deps.observe(req, res, deps.route, key);
      answer(res, body);
      return true;
    }
    if (missBody === undefined || leave === undefined) return false;
    deps.observe(req, res, deps.route, key);
    missBody(key).then(
      (b) => {
        try {
          answer(res, b);
        } catch (err) {
          // Cut short: part of an answer may be out.
          res.destroy(err as Error);
        }
      },
      (err: unknown) => leave(err, key),
    );
    return true;
  };
}
