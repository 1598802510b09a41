import express from "express";
import request from "supertest";
import { describe, expect, it } from "vitest";
import { Pseudonymizer } from "../../features/pseudonymize.ts";
import { Authenticator, signToken } from "../../serving/auth.ts";
import { type RateLimitConfig, rateLimiter, trustProxySetting } from "../../serving/rateLimit.ts";

const SECRET = "r".repeat(40);
const auth = new Authenticator(SECRET, new Pseudonymizer("k".repeat(20)));

/** An app behind the limiter that answers 200 on every path (the limiter is the only thing tested). */
function appWith(config: RateLimitConfig, trustProxy: boolean | string = false): express.Express {
  const app = express();
  app.set("trust proxy", trustProxy);
  const limiter = rateLimiter(config, (h) => auth.authenticate(h));
  if (limiter !== undefined) app.use(limiter);
  app.use((_req, res) => {
    res.json({ ok: true });
  });
  return app;
}

async function statuses(app: express.Express, path: string, n: number, headers: Record<string, string> = {}) {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    let r = request(app).get(path);
    for (const [k, v] of Object.entries(headers)) r = r.set(k, v);
    out.push((await r).status);
  }
  return out;
}

const bearer = async (claims: Parameters<typeof signToken>[1]) => ({
  authorization: `Bearer ${await signToken(SECRET, claims)}`,
});

describe("rate limits per caller (serving/rateLimit.ts)", () => {
  it("never limits the health, readiness and metrics routes", async () => {
    const app = appWith({ windowMs: 60_000, limit: 2 });
    for (const path of ["/healthz", "/readyz", "/metrics"]) {
      expect(await statuses(app, path, 5)).toEqual([200, 200, 200, 200, 200]);
    }
    // The same address on an API path is limited after 2.
    expect(await statuses(app, "/mastery/s1", 3)).toEqual([200, 200, 429]);
  });

  it("counts each user principal on its own, not the shared address", async () => {
    const app = appWith({ windowMs: 60_000, limit: 2 });
    const t1 = await bearer({ role: "teacher", sub: "teacher-1" });
    const t2 = await bearer({ role: "teacher", sub: "teacher-2" });
    const s1 = await bearer({ role: "student", sub: "student-raw-id-77" });
    expect(await statuses(app, "/mastery/x", 3, t1)).toEqual([200, 200, 429]);
    expect(await statuses(app, "/mastery/x", 2, t2)).toEqual([200, 200]);
    expect(await statuses(app, "/mastery/x", 2, s1)).toEqual([200, 200]);
    const third = await request(app).get("/mastery/x").set(s1);
    expect(third.status).toBe(429);
    expect(third.body).toMatchObject({ error: "rate_limited", field: "(client)" });
    expect(third.body.reason).toContain("more than 2 requests in 60 s from this caller");
    // No raw id in the answer or its headers.
    expect(JSON.stringify(third.body) + JSON.stringify(third.headers)).not.toContain("student-raw-id-77");
    expect(third.headers.ratelimit).toBeDefined();
  });

  it("does not limit services unless service_limit is set, then limits them at it", async () => {
    const svc = await bearer({ role: "service", sub: "lms", scopes: ["events:write", "mastery:read"] });
    expect(await statuses(appWith({ windowMs: 60_000, limit: 2 }), "/events", 6, svc)).toEqual(
      Array(6).fill(200),
    );
    const capped = appWith({ windowMs: 60_000, limit: 2, serviceLimit: 4 });
    expect(await statuses(capped, "/events", 5, svc)).toEqual([200, 200, 200, 200, 429]);
    const last = await request(capped).get("/events").set(svc);
    expect(last.body.reason).toContain("more than 4 requests in 60 s from this service");
  });

  it("counts invalid tokens by address, and reads the address through trusted proxies only", async () => {
    const bad = { authorization: "Bearer not-a-jwt" };
    const direct = appWith({ windowMs: 60_000, limit: 2 });
    // Without trust, a forged X-Forwarded-For does not buy a new budget.
    expect(await statuses(direct, "/x", 2, { ...bad, "x-forwarded-for": "10.0.0.1" })).toEqual([200, 200]);
    expect(await statuses(direct, "/x", 1, { ...bad, "x-forwarded-for": "10.0.0.2" })).toEqual([429]);
    // Behind a trusted (loopback) proxy each forwarded client has its own budget.
    const proxied = appWith({ windowMs: 60_000, limit: 2 }, "loopback");
    expect(await statuses(proxied, "/x", 3, { ...bad, "x-forwarded-for": "10.0.0.1" })).toEqual([
      200, 200, 429,
    ]);
    expect(await statuses(proxied, "/x", 2, { ...bad, "x-forwarded-for": "10.0.0.2" })).toEqual([200, 200]);
  });

  it("is off with limit 0", async () => {
    expect(rateLimiter({ windowMs: 1000, limit: 0 }, (h) => auth.authenticate(h))).toBeUndefined();
  });

  it("parses trust_proxy from YAML values and environment text", () => {
    expect(trustProxySetting(undefined, false, "f")).toBe(false);
    expect(trustProxySetting("true", false, "f")).toBe(true);
    expect(trustProxySetting(false, true, "f")).toBe(false);
    expect(trustProxySetting("loopback", false, "f")).toBe("loopback");
    expect(() => trustProxySetting(3, false, "serving.yaml")).toThrow(/serving.yaml: trust_proxy must be/);
  });
});
