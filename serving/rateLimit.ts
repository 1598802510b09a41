/**
 * Request rate limits of the HTTP API, keyed by WHO calls, not by the socket's address.
 *
 * Behind a load balancer every request arrives from the balancer's address, so a limit per client
 * IP is one limit for everybody: at 100 req/s (6,000 a minute) per server the whole district was
 * answered 429, and the balancer's own health checks (/readyz) got 429 too, marked every server
 * down and turned a throttle into an outage (bench/availability.bench.ts at 500 req/s, 2026-12-03).
 * So:
 *  - health and metrics routes are never limited (a probe must see the server as it is);
 *  - a request with a valid bearer token is counted against its principal (role + subject; the
 *    verified-token cache makes this a map lookup), users (student, parent, teacher, admin) at
 *    `limit` per window, services (LMS integrations posting events for everyone) at `serviceLimit`
 *    (0: not limited here; HAProxy's per-server maxconn and queue bound them);
 *  - anything else (no token, an invalid or expired one: it will get its 401) is counted against
 *    the client address, which honours X-Forwarded-For only from the proxies named by the
 *    `trust_proxy` setting (express's "trust proxy": false, "loopback", a list of addresses/CIDRs).
 * Counts are per server process (express-rate-limit's memory store): with N servers a caller may
 * reach N x the limit through the balancer (docs/runbook.md).
 */
import type { RequestHandler } from "express";
import { ipKeyGenerator, rateLimit } from "express-rate-limit";
import type { Principal } from "./auth.ts";

export interface RateLimitConfig {
  windowMs: number;
  /** Requests per window per user principal or per client address; 0 turns the limiter off. */
  limit: number;
  /** Requests per window per service principal; 0 or absent: services are not limited. */
  serviceLimit?: number;
}

/** Paths probes and scrapers call: never limited. */
export const UNLIMITED_PATHS: ReadonlySet<string> = new Set(["/healthz", "/readyz", "/metrics"]);

/** What the limiter needs of the authenticator: a verified principal, or a throw. */
export type PrincipalOf = (authorization: string | undefined) => Promise<Principal>;

interface Caller {
  key: string;
  service: boolean;
}

/**
 * The limiter, or undefined when `limit` is 0. The caller of a request is resolved once (the key and
 * the limit both need it) and kept on the request.
 */
export function rateLimiter(config: RateLimitConfig, principalOf: PrincipalOf): RequestHandler | undefined {
  if (config.limit <= 0) return undefined;
  const serviceLimit = config.serviceLimit ?? 0;
  const callers = new WeakMap<object, Caller>();
  const callerOf = async (req: Parameters<RequestHandler>[0]): Promise<Caller> => {
    const known = callers.get(req);
    if (known !== undefined) return known;
    let caller: Caller;
    try {
      const p = await principalOf(req.headers.authorization);
      caller = { key: `${p.role}:${p.actor}`, service: p.role === "service" };
    } catch {
      caller = { key: `ip:${ipKeyGenerator(req.ip ?? "unknown")}`, service: false };
    }
    callers.set(req, caller);
    return caller;
  };
  return rateLimit({
    windowMs: config.windowMs,
    standardHeaders: "draft-8",
    legacyHeaders: false,
    skip: async (req) =>
      UNLIMITED_PATHS.has(req.path) || (serviceLimit <= 0 && (await callerOf(req)).service),
    keyGenerator: async (req) => (await callerOf(req)).key,
    limit: async (req) => ((await callerOf(req)).service ? serviceLimit : config.limit),
    handler: (req, res) => {
      const service = callers.get(req)?.service === true;
      const limit = service ? serviceLimit : config.limit;
      res.status(429).json({
        error: "rate_limited",
        field: "(client)",
        reason:
          `more than ${limit} requests in ${config.windowMs / 1000} s from this ${service ? "service" : "caller"}; ` +
          "retry after the time in the RateLimit header",
      });
    },
  });
}

/**
 * The trust_proxy setting (YAML value or MASTERY_TRUST_PROXY text) as express takes it: booleans and
 * "true"/"false" as booleans, anything else ("loopback", "10.0.0.0/8, 127.0.0.1") as the list text.
 */
export function trustProxySetting(
  value: unknown,
  fallback: boolean | string,
  source: string,
): boolean | string {
  if (value === undefined || value === "") return fallback;
  if (typeof value === "boolean") return value;
  if (value === "true" || value === "false") return value === "true";
  if (typeof value === "string") return value;
  throw new TypeError(
    `${source}: trust_proxy must be true, false, "loopback" or a comma-separated list of proxy addresses/CIDRs, got ${JSON.stringify(value)}`,
  );
}
