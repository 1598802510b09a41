import fc from "fast-check";
import { SignJWT } from "jose";
import { describe, expect, it } from "vitest";
import { Pseudonymizer } from "../../features/pseudonymize.ts";
import {
  AccessError,
  Authenticator,
  DEFAULT_MAX_TTL_SEC,
  jwtSecretFromEnv,
  maxTtlFromEnv,
  type Principal,
  parseDuration,
  type RosterClass,
  requireAction,
  requireStudent,
  signToken,
  teacherMayUseClass,
} from "../../serving/auth.ts";

const SECRET = "s".repeat(40);
const pseudo = new Pseudonymizer("p".repeat(20));
const key = new TextEncoder().encode(SECRET);

/** A token with exactly these time claims (undefined = claim absent). */
async function timed(claims: { iat?: number; exp?: number; nbf?: number }, role = "admin"): Promise<string> {
  const jwt = new SignJWT({ role }).setProtectedHeader({ alg: "HS256" }).setSubject("a");
  if (claims.iat !== undefined) jwt.setIssuedAt(claims.iat);
  if (claims.exp !== undefined) jwt.setExpirationTime(claims.exp);
  if (claims.nbf !== undefined) jwt.setNotBefore(claims.nbf);
  return jwt.sign(key);
}

describe("jwtSecretFromEnv", () => {
  it("refuses to start without a secret, naming the variable", () => {
    expect(() => jwtSecretFromEnv({ env: {} })).toThrow(/MASTERY_JWT_SECRET is not set/);
    expect(() => jwtSecretFromEnv({ env: { MASTERY_JWT_SECRET: "short" } })).toThrow(/at least 32/);
    expect(jwtSecretFromEnv({ env: { MASTERY_JWT_SECRET: SECRET } })).toBe(SECRET);
  });
  it("NODE_ENV=test and MASTERY_DEMO=1 no longer switch to the public demo secret", () => {
    expect(() => jwtSecretFromEnv({ env: { NODE_ENV: "test" } })).toThrow(/MASTERY_JWT_SECRET is not set/);
    expect(() => jwtSecretFromEnv({ env: { MASTERY_DEMO: "1" } })).toThrow(/MASTERY_JWT_SECRET is not set/);
  });
  it("the demo secret only with demo: true, and with a loud warning", () => {
    const warnings: string[] = [];
    expect(jwtSecretFromEnv({ env: {}, demo: true, warn: (m) => warnings.push(m) })).toMatch(/demo/);
    expect(warnings.join("\n")).toMatch(/WARNING.*PUBLIC demo secret/s);
    expect(warnings.join("\n")).toMatch(/Anyone can mint an admin token/);
    // A configured secret wins over --demo, silently.
    const none: string[] = [];
    expect(
      jwtSecretFromEnv({ env: { MASTERY_JWT_SECRET: SECRET }, demo: true, warn: (m) => none.push(m) }),
    ).toBe(SECRET);
    expect(none).toEqual([]);
  });
});

describe("token lifetimes", () => {
  it("parseDuration: known answers and refusals", () => {
    expect(parseDuration("3600", "x")).toBe(3600);
    expect(parseDuration("45s", "x")).toBe(45);
    expect(parseDuration("90m", "x")).toBe(5400);
    expect(parseDuration("8h", "x")).toBe(28_800);
    expect(parseDuration("2d", "x")).toBe(172_800);
    for (const bad of ["", "0", "-5m", "1.5h", "8 hours", "h"]) {
      expect(() => parseDuration(bad, "--ttl")).toThrow(/--ttl must be a positive duration/);
    }
  });
  it("MASTERY_JWT_MAX_TTL: default 24 h, configurable, refused when malformed", () => {
    expect(maxTtlFromEnv({})).toBe(DEFAULT_MAX_TTL_SEC);
    expect(DEFAULT_MAX_TTL_SEC).toBe(86_400);
    expect(maxTtlFromEnv({ MASTERY_JWT_MAX_TTL: "1h" })).toBe(3600);
    expect(() => maxTtlFromEnv({ MASTERY_JWT_MAX_TTL: "forever" })).toThrow(/MASTERY_JWT_MAX_TTL/);
  });

  const now = 1_800_000_000;
  const auth = () => new Authenticator(SECRET, pseudo, { maxTtlSec: 3600 });
  it("401 for a token without exp, saying so", async () => {
    const err = await auth()
      .authenticate(`Bearer ${await timed({ iat: now })}`, now)
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AccessError);
    expect(err).toMatchObject({ status: 401, reason: expect.stringMatching(/no exp claim.*at most 1h/) });
  });
  it("401 when exp - iat or exp - now exceeds the maximum; the maximum itself is accepted", async () => {
    const a = auth();
    await expect(
      a.authenticate(`Bearer ${await timed({ iat: now, exp: now + 3601 })}`, now),
    ).rejects.toMatchObject({
      status: 401,
      reason: expect.stringMatching(/exp - iat.*exceeds the maximum 1h/),
    });
    await expect(a.authenticate(`Bearer ${await timed({ exp: now + 7200 })}`, now)).rejects.toMatchObject({
      status: 401,
      reason: expect.stringMatching(/beyond the maximum lifetime 1h/),
    });
    // Back-dated iat does not launder a long lifetime.
    await expect(
      a.authenticate(`Bearer ${await timed({ iat: now - 3000, exp: now + 3000 })}`, now),
    ).rejects.toMatchObject({ status: 401 });
    const ok = await a.authenticate(`Bearer ${await timed({ iat: now, exp: now + 3600 })}`, now);
    expect(ok.exp).toBe(now + 3600);
  });
  it("property: a token is accepted iff 0 < exp - now and its lifetime <= the maximum", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 60, max: 7 * 86_400 }),
        fc.integer({ min: -600, max: 8 * 86_400 }),
        fc.integer({ min: 0, max: 600 }),
        async (maxTtl, lifetime, age) => {
          const a = new Authenticator(SECRET, pseudo, { maxTtlSec: maxTtl });
          const iat = now - age;
          const exp = iat + lifetime;
          const accepted = await a.authenticate(`Bearer ${await timed({ iat, exp })}`, now).then(
            () => true,
            (e: unknown) => {
              expect(e).toMatchObject({ status: 401 });
              return false;
            },
          );
          expect(accepted).toBe(exp > now && lifetime <= maxTtl);
        },
      ),
      { numRuns: 150 },
    );
  });
  it("a cached token is refused once its exp has passed (the cache never outlives exp)", async () => {
    const a = auth();
    const t = `Bearer ${await timed({ iat: now, exp: now + 60 })}`;
    expect((await a.authenticate(t, now)).role).toBe("admin");
    expect((await a.authenticate(t, now + 59)).role).toBe("admin"); // cache hit
    await expect(a.authenticate(t, now + 60)).rejects.toMatchObject({ status: 401, reason: /expired/ });
    await expect(a.authenticate(t, now + 61)).rejects.toMatchObject({ status: 401, reason: /expired/ });
  });
  it("nbf in the future is refused", async () => {
    await expect(
      auth().authenticate(`Bearer ${await timed({ iat: now, nbf: now + 100, exp: now + 600 })}`, now),
    ).rejects.toMatchObject({ status: 401 });
  });
});

describe("Authenticator", () => {
  const auth = new Authenticator(SECRET, pseudo);
  it("pseudonymizes a student's sub and a parent's children; keeps no raw id", async () => {
    const p = await auth.authenticate(
      `Bearer ${await signToken(SECRET, { role: "parent", sub: "p1", children: ["s1", "s2"] })}`,
    );
    expect([...p.studentKeys]).toEqual([pseudo.studentKey("s1"), pseudo.studentKey("s2")]);
    const s = await auth.authenticate(`Bearer ${await signToken(SECRET, { role: "student", sub: "s1" })}`);
    expect(s.actor).toBe(pseudo.studentKey("s1"));
    expect(JSON.stringify([...s.studentKeys])).not.toContain('"s1"');
  });
  it("401 for a wrong secret, an unknown role, a malformed claim", async () => {
    const wrong = await signToken("w".repeat(40), { role: "admin", sub: "a" });
    await expect(auth.authenticate(`Bearer ${wrong}`)).rejects.toMatchObject({ status: 401 });
    const role = await signToken(SECRET, { role: "root" as "admin", sub: "a" });
    await expect(auth.authenticate(`Bearer ${role}`)).rejects.toThrow(/role/);
    const kids = await signToken(SECRET, { role: "parent", sub: "p", children: "s1" as unknown as string[] });
    await expect(auth.authenticate(`Bearer ${kids}`)).rejects.toThrow(/children/);
    await expect(auth.authenticate("Basic abc")).rejects.toThrow(/Bearer/);
  });
  it("a service may do exactly what its scopes say", async () => {
    const p = await auth.authenticate(
      `Bearer ${await signToken(SECRET, { role: "service", sub: "lms", scopes: ["events:write"] })}`,
    );
    expect(() => requireAction(p, "events:write")).not.toThrow();
    expect(() => requireAction(p, "mastery:read")).toThrow(AccessError);
    expect(() => requireAction(p, "roster:write")).toThrow(/roster:write/);
  });
});

describe("roster-based teacher access", () => {
  const teacher = (sub: string, classes: string[]): Principal => ({
    role: "teacher",
    actor: sub,
    studentKeys: new Set(),
    classes: new Set(classes),
    scopes: new Set(),
    exp: Number.POSITIVE_INFINITY,
  });
  const open: RosterClass = { classId: "A", teacherIds: new Set() };
  const named: RosterClass = { classId: "B", teacherIds: new Set(["t1"]) };
  it("an open class follows the token's claim; a class naming teachers follows the roster alone", () => {
    expect(teacherMayUseClass(teacher("t9", ["A"]), open)).toBe(true);
    expect(teacherMayUseClass(teacher("t9", ["B"]), open)).toBe(false);
    expect(teacherMayUseClass(teacher("t1", []), named)).toBe(true);
    expect(teacherMayUseClass(teacher("t2", ["B"]), named)).toBe(false);
  });
  it("requireStudent: a teacher sees a student only through a roster class they may use", async () => {
    const rosterOf = async (k: string) => (k === "k-in-A" ? [open] : k === "k-in-B" ? [named] : []);
    await expect(requireStudent(teacher("t9", ["A"]), "k-in-A", rosterOf)).resolves.toBeUndefined();
    await expect(requireStudent(teacher("t9", ["A"]), "k-nowhere", rosterOf)).rejects.toMatchObject({
      status: 403,
      reason: /roster/,
    });
    await expect(requireStudent(teacher("t2", ["B"]), "k-in-B", rosterOf)).rejects.toMatchObject({
      status: 403,
    });
    await expect(requireStudent(teacher("t1", []), "k-in-B", rosterOf)).resolves.toBeUndefined();
  });
});
