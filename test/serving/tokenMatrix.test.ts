/**
 * Every protected route x every kind of bad token -> 401 with a reason (the "bad-token cells" of
 * issue 12 that must keep holding), including the lifetime rules: no exp, exp beyond the maximum.
 */
import { base64url, SignJWT } from "jose";
import request from "supertest";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AppHandle } from "../../serving/app.ts";
import { ROUTES } from "../../serving/routes/index.ts";
import type { DuckStore } from "../../storage/duckdb.ts";
import { SECRET, storeWithTopics, testApp, token } from "./appFixture.ts";

let store: DuckStore;
let h: AppHandle;
const bad: Record<string, string> = {};
const now = () => Math.floor(Date.now() / 1000);
const enc = (o: object) => base64url.encode(JSON.stringify(o));
const sign = (claims: Record<string, unknown>, opts: { secret?: string; alg?: string } = {}) =>
  new SignJWT(claims)
    .setProtectedHeader({ alg: opts.alg ?? "HS256" })
    .sign(new TextEncoder().encode(opts.secret ?? SECRET));

beforeAll(async () => {
  store = await storeWithTopics();
  h = await testApp(store);
  const good = await token({ role: "admin", sub: "root" });
  const [head, body, sig] = good.split(".") as [string, string, string];
  const t = now();
  bad.noExp = await sign({ role: "admin", sub: "root", iat: t });
  bad.tooLong = await sign({ role: "admin", sub: "root", iat: t, exp: t + 25 * 3600 });
  bad.tooLongNoIat = await sign({ role: "admin", sub: "root", exp: t + 48 * 3600 });
  bad.expired = await sign({ role: "admin", sub: "root", iat: t - 7200, exp: t - 3600 });
  bad.notYet = await sign({ role: "admin", sub: "root", iat: t, nbf: t + 600, exp: t + 3600 });
  bad.wrongSecret = await sign({ role: "admin", sub: "root", exp: t + 600 }, { secret: "x".repeat(40) });
  bad.hs512 = await sign({ role: "admin", sub: "root", exp: t + 600 }, { alg: "HS512" });
  bad.algNone = `${enc({ alg: "none", typ: "JWT" })}.${enc({ role: "admin", sub: "root", exp: t + 600 })}.`;
  bad.tampered = `${head}.${enc({ role: "admin", sub: "someone-else", exp: t + 600 })}.${sig}`;
  bad.noSignature = `${head}.${body}.`;
  bad.garbage = "abc.def.ghi";
  bad.noRole = await sign({ sub: "root", exp: t + 600 });
  bad.badRole = await sign({ role: "root", sub: "root", exp: t + 600 });
  bad.noSub = await sign({ role: "admin", exp: t + 600 });
  bad.expString = await sign({ role: "admin", sub: "root", exp: String(t + 600) });
});
afterAll(() => store.close());

const concrete = (path: string) =>
  path
    .replace(":studentId", "s1")
    .replace(":topicId", "T1")
    .replace(":classId", "A")
    .replace(":name", "m")
    .replace(":version", "1")
    .replace(":alias", "champion")
    .replace(":id", "e1");

describe("bad tokens on every protected route", () => {
  const protectedRoutes = ROUTES.filter((r) => r.scope !== null);
  it("covers the routes and the token kinds", () => {
    expect(protectedRoutes.length).toBeGreaterThanOrEqual(24);
    expect(Object.keys(bad).length).toBe(15);
  });
  for (const r of protectedRoutes) {
    it(`${r.method.toUpperCase()} ${r.path}: 401 for each bad token, with a reason`, async () => {
      for (const [kind, tok] of Object.entries(bad)) {
        const res = await request(h.app)
          [r.method](concrete(r.path))
          .set("authorization", `Bearer ${tok}`)
          .send({});
        expect(res.status, `${kind} on ${r.method} ${r.path}`).toBe(401);
        expect(res.body.error).toBe("unauthorized");
        expect(res.body.reason.length, kind).toBeGreaterThan(10);
      }
    });
  }
});
