import express from "express";
import helmet from "helmet";
import request from "supertest";
import { describe, expect, it } from "vitest";
import { staticSecurityHeaders } from "../../serving/securityHeaders.ts";

function appWith(mw: express.RequestHandler) {
  const app = express();
  app.use((_req, res, next) => {
    res.setHeader("X-Powered-By", "test");
    next();
  });
  app.use(mw);
  app.get("/x", (_req, res) => void res.json({ ok: true }));
  return app;
}

const securityHeaders = (h: Record<string, unknown>) => {
  const { date: _d, etag: _e, ...rest } = h;
  return rest;
};

describe("staticSecurityHeaders", () => {
  it("sets exactly helmet()'s headers (and removes what helmet removes)", async () => {
    const a = await request(appWith(helmet())).get("/x");
    const b = await request(appWith(staticSecurityHeaders())).get("/x");
    expect(a.headers["content-security-policy"]).toContain("default-src 'self'");
    expect(a.headers["x-powered-by"]).toBeUndefined();
    expect(securityHeaders(b.headers)).toEqual(securityHeaders(a.headers));
  });

  it("follows helmet's options (a changed header, a disabled one)", async () => {
    const opts = { frameguard: { action: "deny" as const }, hsts: false };
    const a = await request(appWith(helmet(opts))).get("/x");
    const b = await request(appWith(staticSecurityHeaders(opts))).get("/x");
    expect(a.headers["x-frame-options"]).toBe("DENY");
    expect(a.headers["strict-transport-security"]).toBeUndefined();
    expect(securityHeaders(b.headers)).toEqual(securityHeaders(a.headers));
  });
});
