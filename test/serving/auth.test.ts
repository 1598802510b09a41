import { describe, expect, it } from "vitest";
import { Pseudonymizer } from "../../features/pseudonymize.ts";
import {
  AccessError,
  Authenticator,
  jwtSecretFromEnv,
  requireAction,
  signToken,
} from "../../serving/auth.ts";

const SECRET = "s".repeat(40);
const pseudo = new Pseudonymizer("p".repeat(20));

describe("jwtSecretFromEnv", () => {
  it("refuses to start without a secret outside demo/test, naming the variable", () => {
    expect(() => jwtSecretFromEnv({ env: {} })).toThrow(/MASTERY_JWT_SECRET is not set/);
    expect(() => jwtSecretFromEnv({ env: { MASTERY_JWT_SECRET: "short" } })).toThrow(/at least 32/);
    expect(jwtSecretFromEnv({ env: { MASTERY_JWT_SECRET: SECRET } })).toBe(SECRET);
    expect(jwtSecretFromEnv({ env: {}, demo: true })).toMatch(/demo/);
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
  });
});
