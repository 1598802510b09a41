import type { IncomingMessage, ServerResponse } from "node:http";
import express from "express";
import request from "supertest";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Pseudonymizer } from "../../features/pseudonymize.ts";
import type { AppHandle } from "../../serving/app.ts";
import { Authenticator, type Principal, signToken, type TokenClaims } from "../../serving/auth.ts";
import { masteryHitListener } from "../../serving/masteryHitPath.ts";
import { securityHeaderList } from "../../serving/securityHeaders.ts";
import { type ServedBody, servedBody } from "../../serving/servedBody.ts";
import type { DuckStore } from "../../storage/duckdb.ts";
import { quiz, storeWithTopics, testApp, token } from "./appFixture.ts";

const SECRET = "h".repeat(40);
const pseudo = new Pseudonymizer("p".repeat(20));

/**
 * The hit path alone in front of an Express app standing in for the route (status 299), as serving/app.ts
 * runs it: which requests it takes, and what it answers when it does.
 */
async function harness(
  opts: {
    down?: boolean;
    limited?: (p: Principal) => boolean;
    missBody?: (key: string) => Promise<ServedBody>;
  } = {},
) {
  const auth = new Authenticator(SECRET, pseudo);
  const bodies = new Map<string, ServedBody>();
  const observed: string[] = [];
  const hits: string[] = [];
  const hit = masteryHitListener({
    route: "/mastery/:studentId",
    cachedPrincipal: (header) => auth.cachedPrincipal(header),
    studentKey: (raw) => pseudo.studentKey(raw),
    cachedBody: (key) => {
      const b = bodies.get(key);
      if (b !== undefined) hits.push(key);
      return b;
    },
    anyBackendDown: () => opts.down === true,
    rateLimited: opts.limited ?? (() => false),
    securityHeaders: securityHeaderList(),
    observe: (_req, res, route, studentKey) => {
      res.on("finish", () => observed.push(`${route} ${res.statusCode} ${studentKey}`));
    },
    ...(opts.missBody !== undefined ? { missBody: opts.missBody } : {}),
  });
  const route = express();
  /** What each request handed over by `leave` carried (the error's message and the key). */
  const left: string[] = [];
  route.use((_req, res) => void res.status(299).json({ route: true }));
  const app = (req: IncomingMessage, res: ServerResponse) => {
    const taken = hit(req, res, (err, key) => {
      left.push(`${(err as Error).message} ${key} ${res.headersSent}`);
      route(req, res);
    });
    if (!taken) route(req, res);
  };
  /** A bearer header whose token the authenticator has verified (cached), or not when `verified` is false. */
  const bearer = async (claims: TokenClaims, verified = true, exp: string | number = "1h") => {
    const header = `Bearer ${await signToken(SECRET, claims, exp)}`;
    if (verified) await auth.authenticate(header);
    return { authorization: header };
  };
  const body = servedBody(JSON.stringify({ studentKey: pseudo.studentKey("s1"), topics: [] }), []);
  bodies.set(pseudo.studentKey("s1"), body);
  return { app, bearer, body, observed, hits, left };
}

describe("GET /mastery's hit path (serving/masteryHitPath.ts)", () => {
  it("answers a cached body with the security headers, ETag, type and length, counted and observed once", async () => {
    const h = await harness();
    const admin = await h.bearer({ role: "admin", sub: "root" });
    const res = await request(h.app).get("/mastery/s1").set(admin).buffer(true);
    expect(res.status).toBe(200);
    expect(Buffer.compare(Buffer.from(res.text), h.body.buf)).toBe(0);
    expect(res.headers.etag).toBe(h.body.etag);
    expect(res.headers["content-type"]).toBe("application/json; charset=utf-8");
    expect(res.headers["content-length"]).toBe(String(h.body.buf.length));
    expect(res.headers["x-content-type-options"]).toBe("nosniff");
    expect(res.headers["content-security-policy"]).toBeDefined();
    expect(h.hits).toEqual([pseudo.studentKey("s1")]);
    expect(h.observed).toEqual([`/mastery/:studentId 200 ${pseudo.studentKey("s1")}`]);
  });

  it("takes the principals that need no roster: admin, a service with mastery:read, the student, a parent", async () => {
    const h = await harness();
    const principals: TokenClaims[] = [
      { role: "admin", sub: "root" },
      { role: "service", sub: "lms", scopes: ["mastery:read"] },
      { role: "student", sub: "s1" },
      { role: "parent", sub: "p1", children: ["s9", "s1"] },
    ];
    for (const claims of principals) {
      const res = await request(h.app)
        .get("/mastery/s1")
        .set(await h.bearer(claims));
      expect([claims.role, res.status]).toEqual([claims.role, 200]);
    }
    expect(h.hits.length).toBe(4);
  });

  it("leaves every other request to the route, unanswered and uncounted", async () => {
    const h = await harness();
    const admin = await h.bearer({ role: "admin", sub: "root" });
    const passes: [string, () => request.Test][] = [
      ["POST", () => request(h.app).post("/mastery/s1").set(admin)],
      ["HEAD", () => request(h.app).head("/mastery/s1").set(admin)],
      ["query string", () => request(h.app).get("/mastery/s1?include=history").set(admin)],
      ["escaped id", () => request(h.app).get("/mastery/s%31").set(admin)],
      ["trailing slash", () => request(h.app).get("/mastery/s1/").set(admin)],
      ["deeper path", () => request(h.app).get("/mastery/s1/T1/history").set(admin)],
      ["no id", () => request(h.app).get("/mastery/").set(admin)],
      ["other route", () => request(h.app).get("/recommendations/s1").set(admin)],
      ["upper case", () => request(h.app).get("/MASTERY/s1").set(admin)],
      ["If-None-Match", () => request(h.app).get("/mastery/s1").set(admin).set("if-none-match", h.body.etag)],
      [
        "If-Modified-Since",
        () => request(h.app).get("/mastery/s1").set(admin).set("if-modified-since", new Date().toUTCString()),
      ],
      ["no token", () => request(h.app).get("/mastery/s1")],
      ["not a bearer header", () => request(h.app).get("/mastery/s1").set("authorization", "Basic abc")],
      ["not cached (miss)", () => request(h.app).get("/mastery/s2").set(admin)],
    ];
    for (const [what, call] of passes) expect([what, (await call()).status]).toEqual([what, 299]);
    const unverified = await h.bearer({ role: "admin", sub: "root2" }, false);
    const expired = await h.bearer({ role: "admin", sub: "root3" }, true, Math.floor(Date.now() / 1000) + 2);
    const others: [string, Record<string, string>][] = [
      ["token never verified", unverified],
      ["another student", await h.bearer({ role: "student", sub: "s2" })],
      ["a parent of another child", await h.bearer({ role: "parent", sub: "p2", children: ["s2"] })],
      ["a teacher (roster)", await h.bearer({ role: "teacher", sub: "t1", classes: ["A"] })],
      [
        "a service without mastery:read",
        await h.bearer({ role: "service", sub: "x", scopes: ["events:write"] }),
      ],
    ];
    for (const [what, header] of others)
      expect([what, (await request(h.app).get("/mastery/s1").set(header)).status]).toEqual([what, 299]);
    // The cached token's exp passes: the route (authenticate) decides then.
    await new Promise((r) => setTimeout(r, 2100));
    expect((await request(h.app).get("/mastery/s1").set(expired)).status).toBe(299);
    expect(h.hits).toEqual([]);
    expect(h.observed).toEqual([]);
  });

  it("leaves requests to the route while a backend is down, and those the rate limiter counts", async () => {
    const down = await harness({ down: true });
    const admin = await down.bearer({ role: "admin", sub: "root" });
    expect((await request(down.app).get("/mastery/s1").set(admin)).status).toBe(299);
    const limited = await harness({ limited: (p) => p.role !== "service" });
    const student = await limited.bearer({ role: "student", sub: "s1" });
    const service = await limited.bearer({ role: "service", sub: "lms", scopes: ["mastery:read"] });
    expect((await request(limited.app).get("/mastery/s1").set(student)).status).toBe(299);
    expect((await request(limited.app).get("/mastery/s1").set(service)).status).toBe(200);
  });
});

describe("GET /mastery's misses on the hit path (missBody)", () => {
  it("answers a miss with missBody's body as a hit is answered, observed once; hits do not call it", async () => {
    const computed: string[] = [];
    const other = servedBody(JSON.stringify({ studentKey: pseudo.studentKey("s2"), topics: [1] }), []);
    const h = await harness({
      missBody: async (key) => {
        computed.push(key);
        return other;
      },
    });
    const admin = await h.bearer({ role: "admin", sub: "root" });
    const miss = await request(h.app).get("/mastery/s2").set(admin).buffer(true);
    const hit = await request(h.app).get("/mastery/s1").set(admin).buffer(true);
    expect(miss.status).toBe(200);
    expect(Buffer.compare(Buffer.from(miss.text), other.buf)).toBe(0);
    expect(miss.headers.etag).toBe(other.etag);
    expect(miss.headers["content-length"]).toBe(String(other.buf.length));
    const names = (r: request.Response) => Object.keys(r.headers).filter((k) => k !== "date");
    expect(names(miss)).toEqual(names(hit));
    expect(computed).toEqual([pseudo.studentKey("s2")]);
    expect(h.observed).toEqual([
      `/mastery/:studentId 200 ${pseudo.studentKey("s2")}`,
      `/mastery/:studentId 200 ${pseudo.studentKey("s1")}`,
    ]);
    // What the hit path leaves, it leaves before computing anything (a teacher needs the roster).
    const teacher = await h.bearer({ role: "teacher", sub: "t1", classes: ["A"] });
    expect((await request(h.app).get("/mastery/s3").set(teacher)).status).toBe(299);
    expect(computed.length).toBe(1);
    expect(h.left).toEqual([]);
  });

  it("hands a failed miss to the route with its error and key, nothing written; observed once", async () => {
    const h = await harness({ missBody: () => Promise.reject(new Error("read failed")) });
    const admin = await h.bearer({ role: "admin", sub: "root" });
    const res = await request(h.app).get("/mastery/s2").set(admin);
    expect(res.status).toBe(299);
    expect(res.body).toEqual({ route: true });
    expect(res.headers["content-security-policy"]).toBeUndefined();
    expect(h.left).toEqual([`read failed ${pseudo.studentKey("s2")} false`]);
    expect(h.observed).toEqual([`/mastery/:studentId 299 ${pseudo.studentKey("s2")}`]);
  });
});

describe("GET /mastery through the app with the hit path", () => {
  let store: DuckStore;
  let h: AppHandle;
  let admin: string;
  beforeAll(async () => {
    store = await storeWithTopics();
    h = await testApp(store);
    admin = `Bearer ${await token({ role: "admin", sub: "root" })}`;
    const res = await request(h.app)
      .post("/events")
      .set("authorization", admin)
      .send([quiz("h1", "s1", "T1", true, 1), quiz("h2", "s1", "T2", false, 2)]);
    expect(res.status).toBe(200);
  });
  afterAll(() => store.close());

  const counter = async (name: string, labels: string): Promise<number> => {
    const text = (await request(h.app).get("/metrics").set("authorization", admin)).text;
    const line = text.split("\n").find((l) => l.startsWith(`${name}{${labels}}`));
    return line === undefined ? 0 : Number(line.split(" ").pop());
  };
  const HIT = 'result="hit"';
  const OK = 'method="GET",route="/mastery/:studentId",status="200"';

  it("answers a hit exactly as the route answers the same body (headers and bytes), with the same metrics", async () => {
    // A miss through the route caches the body.
    const first = await request(h.app).get("/mastery/s1").set("authorization", admin).buffer(true);
    expect(first.status).toBe(200);
    const [hits0, ok0] = [
      await counter("mastery_cache_total", HIT),
      await counter("mastery_http_requests_total", OK),
    ];
    // A hit (the hit path) and the same body through the route (an If-None-Match that does not match).
    const hit = await request(h.app).get("/mastery/s1").set("authorization", admin).buffer(true);
    const routed = await request(h.app)
      .get("/mastery/s1")
      .set("authorization", admin)
      .set("if-none-match", 'W/"0-x"')
      .buffer(true);
    for (const r of [hit, routed]) {
      expect(r.status).toBe(200);
      expect(r.text).toBe(first.text);
    }
    const headers = (r: request.Response) => Object.entries(r.headers).filter(([k]) => k !== "date");
    expect(headers(hit)).toEqual(headers(routed));
    expect(Object.keys(hit.headers)).toEqual(Object.keys(routed.headers));
    expect(await counter("mastery_cache_total", HIT)).toBe(hits0 + 2);
    expect(await counter("mastery_http_requests_total", OK)).toBe(ok0 + 2);
  });

  it("still refuses what the route refuses, with the route's error bodies", async () => {
    await request(h.app).get("/mastery/s1").set("authorization", admin);
    const other = `Bearer ${await token({ role: "student", sub: "s2" })}`;
    // Verified once (cached) so only the ownership rule refuses it.
    await request(h.app).get("/mastery/s2").set("authorization", other);
    const res = await request(h.app).get("/mastery/s1").set("authorization", other);
    expect(res.status).toBe(403);
    expect(res.body).toEqual({
      error: "forbidden",
      field: "studentId",
      reason: "a student may only see their own data",
    });
    expect(JSON.stringify(res.body)).not.toContain("s1");
  });

  it("keeps the rate limit of users on cached bodies; a service without a limit is not counted", async () => {
    const limited = await testApp(store, { config: { rateLimit: { windowMs: 60_000, limit: 2 } } });
    const student = `Bearer ${await token({ role: "student", sub: "s1" })}`;
    const service = `Bearer ${await token({ role: "service", sub: "lms", scopes: ["mastery:read"] })}`;
    const statuses: number[] = [];
    for (let i = 0; i < 3; i++)
      statuses.push((await request(limited.app).get("/mastery/s1").set("authorization", student)).status);
    expect(statuses).toEqual([200, 200, 429]);
    for (let i = 0; i < 4; i++)
      expect((await request(limited.app).get("/mastery/s1").set("authorization", service)).status).toBe(200);
  });
});
