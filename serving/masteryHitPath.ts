import type { ServerResponse } from "node:http";
import type { NextFunction, Request, RequestHandler, Response } from "express";
import { mayDo, mayReadWithoutRoster, type Principal } from "./auth.ts";
import { endServedBody, type ServedBody } from "./servedBody.ts";

/**
 * GET /mastery/:studentId answered from the body cache as the first middleware, before the rest of the
 * chain and the router (issue 15: most of the production mix are such hits, and each went through the
 * security-header, rate-limit, JSON, metrics and outage middlewares, the router and an async handler of
 * four awaits for a map lookup and one write).
 *
 * Only a strict subset of requests is taken here; every other one goes on (`next()`) to the same route
 * as before, which then decides everything itself (refusals, error bodies, 304, misses, HEAD, ?include=).
 * Taken: GET of `/mastery/<segment>` exactly (no query string, no `%` escapes, no trailing slash), without
 * If-None-Match / If-Modified-Since, while no backend is down, with a bearer token verified before and
 * not expired whose principal may read mastery and this student without the roster (admin, service, the
 * student, a parent's child), that the rate limiter would not count, and a fresh cached body. The answer
 * is the route's: the same security headers, ETag, type and length in the same order, the same body
 * bytes, the same request metrics and log line, and the hit counted once.
 */
export interface MasteryHitPathDeps {
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
  /** Sets the security headers every answer carries (serving/securityHeaders.ts). */
  setSecurityHeaders(res: ServerResponse): void;
  /** Starts the request's metrics and log line (recorded at 'finish'), as the metrics middleware does. */
  observe(req: Request, res: Response, route: string): void;
}

const PREFIX = "/mastery/";
/** A path segment the router would decode or split, or a query string: left to the route. */
const NOT_PLAIN = /[/?%#]/;

export function masteryHitPath(deps: MasteryHitPathDeps): RequestHandler {
  return (req: Request, res: Response, next: NextFunction) => {
    const url = req.url;
    if (req.method !== "GET" || !url.startsWith(PREFIX) || url.length === PREFIX.length) return next();
    const rawId = url.slice(PREFIX.length);
    if (NOT_PLAIN.test(rawId)) return next();
    const h = req.headers;
    if (h["if-none-match"] !== undefined || h["if-modified-since"] !== undefined) return next();
    if (deps.anyBackendDown()) return next();
    const p = deps.cachedPrincipal(h.authorization);
    if (p === undefined || !mayDo(p, "mastery:read") || deps.rateLimited(p)) return next();
    const key = deps.studentKey(rawId);
    if (!mayReadWithoutRoster(p, key)) return next();
    const body = deps.cachedBody(key);
    if (body === undefined) return next();
    res.locals.studentKey = key;
    deps.observe(req, res, deps.route);
    deps.setSecurityHeaders(res);
    res.setHeader("ETag", body.etag);
    endServedBody(res, body, true);
  };
}
