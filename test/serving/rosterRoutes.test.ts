import request from "supertest";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Pseudonymizer } from "../../features/pseudonymize.ts";
import type { AppHandle } from "../../serving/app.ts";
import type { TokenClaims } from "../../serving/auth.ts";
import type { DuckStore } from "../../storage/duckdb.ts";
import { PSEUDO_KEY, quiz, storeWithTopics, testApp, token } from "./appFixture.ts";

let store: DuckStore;
let h: AppHandle;
const key = (raw: string) => new Pseudonymizer(PSEUDO_KEY).studentKey(raw);
const as = async (claims: TokenClaims) => ({ authorization: `Bearer ${await token(claims)}` });
const admin = () => as({ role: "admin", sub: "root" });
const teacherA = () => as({ role: "teacher", sub: "t1", classes: ["A"] });

beforeAll(async () => {
  store = await storeWithTopics();
  h = await testApp(store);
});
afterAll(() => store.close());

describe("teacher access comes from the roster, not from events", () => {
  it("an events:write service cannot enrol a student in a class by posting an event with its class_id", async () => {
    const lms = await as({ role: "service", sub: "lms", scopes: ["events:write"] });
    const posted = await request(h.app)
      .post("/events")
      .set(lms)
      .send([quiz("x1", "s9", "T1", true, 1, { class_id: "A" })]);
    expect(posted.status).toBe(200);
    const res = await request(h.app)
      .get("/mastery/s9")
      .set(await teacherA());
    expect(res.status).toBe(403);
    expect(res.body.reason).toMatch(/roster/);
    // Nor does the event put s9 on the class page.
    const put = await request(h.app)
      .put("/roster/classes/A")
      .set(await admin())
      .send({ students: ["s1"] });
    expect(put.status).toBe(200);
    const cls = await request(h.app)
      .get("/classes/A/mastery")
      .set(await teacherA());
    expect(cls.status).toBe(200);
    expect(cls.body.students.map((s: { studentKey: string }) => s.studentKey)).toEqual([key("s1")]);
  });

  it("PUT grants, a second PUT without the student revokes, DELETE removes the class", async () => {
    const a = await admin();
    expect(
      (
        await request(h.app)
          .put("/roster/classes/A")
          .set(a)
          .send({ students: ["s1", "s9"] })
      ).body,
    ).toEqual({
      classId: "A",
      students: 2,
      teachers: [],
    });
    expect(
      (
        await request(h.app)
          .get("/mastery/s9")
          .set(await teacherA())
      ).status,
    ).toBe(200);
    await request(h.app)
      .put("/roster/classes/A")
      .set(a)
      .send({ students: ["s1"] });
    expect(
      (
        await request(h.app)
          .get("/mastery/s9")
          .set(await teacherA())
      ).status,
    ).toBe(403);
    expect(
      (
        await request(h.app)
          .get("/mastery/s1")
          .set(await teacherA())
      ).status,
    ).toBe(200);
    expect((await request(h.app).delete("/roster/classes/A").set(a)).body).toEqual({
      classId: "A",
      deleted: true,
    });
    expect(
      (
        await request(h.app)
          .get("/mastery/s1")
          .set(await teacherA())
      ).status,
    ).toBe(403);
    expect((await request(h.app).delete("/roster/classes/A").set(a)).status).toBe(404);
  });

  it("a roster naming teachers overrides the token's classes claim", async () => {
    await request(h.app)
      .put("/roster/classes/B")
      .set(await admin())
      .send({ students: ["s2"], teachers: ["t2"] });
    const claimsB = await as({ role: "teacher", sub: "t1", classes: ["B"] });
    const named = await as({ role: "teacher", sub: "t2", classes: [] });
    expect((await request(h.app).get("/mastery/s2").set(claimsB)).status).toBe(403);
    expect((await request(h.app).get("/classes/B/mastery").set(claimsB)).status).toBe(403);
    expect((await request(h.app).get("/mastery/s2").set(named)).status).toBe(200);
    expect((await request(h.app).get("/classes/B/mastery").set(named)).status).toBe(200);
  });

  it("GET returns pseudonyms only; the class view says how to load a missing roster", async () => {
    await request(h.app)
      .put("/roster/classes/C")
      .set(await admin())
      .send({ students: ["raw-student-77", "raw-student-78"] });
    const res = await request(h.app)
      .get("/roster/classes/C")
      .set(await admin());
    expect(res.status).toBe(200);
    expect(res.body.studentKeys).toEqual([key("raw-student-77"), key("raw-student-78")].sort());
    expect(res.body).toMatchObject({ classId: "C", teacherIds: [], updatedBy: "root", source: "api" });
    expect(res.text).not.toContain("raw-student-7");
    const missing = await request(h.app)
      .get("/classes/Z/mastery")
      .set(await admin());
    expect(missing.status).toBe(404);
    expect(missing.body.reason).toMatch(/mastery roster load.*PUT \/roster\/classes\/Z/);
    // A teacher claiming Z learns it has no roster; one who does not claim it gets 403.
    const claimsZ = await as({ role: "teacher", sub: "t5", classes: ["Z"] });
    expect((await request(h.app).get("/classes/Z/mastery").set(claimsZ)).status).toBe(404);
    expect(
      (
        await request(h.app)
          .get("/classes/Z/mastery")
          .set(await teacherA())
      ).status,
    ).toBe(403);
  });
});

describe("/roster scopes and bodies", () => {
  it("admin and services with roster:write / roster:read; nobody else", async () => {
    const cases: [TokenClaims, number, number][] = [
      [{ role: "service", sub: "sis", scopes: ["roster:write", "roster:read"] }, 200, 200],
      [{ role: "service", sub: "sis", scopes: ["roster:write"] }, 200, 403],
      [{ role: "service", sub: "lms", scopes: ["events:write", "mastery:read"] }, 403, 403],
      [{ role: "teacher", sub: "t1", classes: ["D"] }, 403, 403],
      [{ role: "student", sub: "s1" }, 403, 403],
      [{ role: "parent", sub: "p1", children: ["s1"] }, 403, 403],
    ];
    for (const [claims, put, get] of cases) {
      const auth = await as(claims);
      expect(
        (
          await request(h.app)
            .put("/roster/classes/D")
            .set(auth)
            .send({ students: ["s1"] })
        ).status,
      ).toBe(put);
      expect((await request(h.app).get("/roster/classes/D").set(auth)).status).toBe(get);
    }
    expect((await request(h.app).put("/roster/classes/D").send({ students: [] })).status).toBe(401);
  });

  it("400 with the field for malformed bodies, never echoing an id", async () => {
    const a = await admin();
    const bad: [unknown, RegExp][] = [
      [{}, /students is required/],
      [{ students: "s1" }, /students/],
      [{ students: ["ok", ""] }, /students/],
      [{ students: ["ok"], extra: 1 }, /extra is not a known field/],
      [{ students: [`secret-id\u0000`] }, /students\[0\] contains a control character/],
      [{ students: ["x".repeat(300)] }, /students/],
      [{ students: Array.from({ length: 10_001 }, (_, i) => `s${i}`) }, /students/],
      [{ students: [], teachers: ["t\u0007"] }, /teachers\[0\]/],
    ];
    for (const [body, reason] of bad) {
      const res = await request(h.app)
        .put("/roster/classes/E")
        .set(a)
        .send(body as object);
      expect(res.status).toBe(400);
      expect(res.body.reason).toMatch(reason);
      expect(res.text).not.toContain("secret-id");
    }
    expect(
      (
        await request(h.app)
          .put(`/roster/classes/${"c".repeat(300)}`)
          .set(a)
          .send({ students: [] })
      ).status,
    ).toBe(400);
  });
});
