import request from "supertest";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Pseudonymizer } from "../../features/pseudonymize.ts";
import type { AppHandle } from "../../serving/app.ts";
import type { DuckStore } from "../../storage/duckdb.ts";
import { PSEUDO_KEY, putRosters, quiz, storeWithTopics, testApp, token } from "./appFixture.ts";

let store: DuckStore;
let h: AppHandle;
const key = (raw: string) => new Pseudonymizer(PSEUDO_KEY).studentKey(raw);
const bearer = async (claims: Parameters<typeof token>[0]) => ({
  authorization: `Bearer ${await token(claims)}`,
});

beforeAll(async () => {
  store = await storeWithTopics();
  h = await testApp(store);
  // s1 and s3 in class A (fixture: every student but s2), s2 in class B.
  const events = [
    quiz("e1", "s1", "T1", true, 1),
    quiz("e2", "s1", "T2", false, 2),
    quiz("e3", "s3", "T1", true, 3),
    quiz("e4", "s2", "T1", true, 4),
  ];
  const res = await request(h.app)
    .post("/events")
    .set(await bearer({ role: "admin", sub: "root" }))
    .send(events);
  expect(res.status).toBe(200);
  await putRosters(h, { A: ["s1", "s3"], B: ["s2"] });
});

afterAll(() => store.close());

describe("GET /classes/:classId/mastery", () => {
  it("lists the class's students with the same scores GET /mastery serves, and who is below the threshold", async () => {
    const teacher = await bearer({ role: "teacher", sub: "t1", classes: ["A"] });
    const res = await request(h.app).get("/classes/A/mastery?threshold=0.6").set(teacher);
    expect(res.status).toBe(200);
    expect(res.body.threshold).toBe(0.6);
    expect(res.body.topics).toEqual(["T1", "T2"]);
    const keys = res.body.students.map((s: { studentKey: string }) => s.studentKey);
    expect(keys).toEqual([key("s1"), key("s3")].sort());
    const s1 = res.body.students.find((s: { studentKey: string }) => s.studentKey === key("s1"));
    const m = await request(h.app).get("/mastery/s1").set(teacher);
    for (const t of m.body.topics as { topicId: string; score: number }[]) {
      expect(s1.scores[t.topicId].score).toBe(t.score);
    }
    const expectedBelow = (m.body.topics as { topicId: string; score: number }[])
      .filter((t) => t.score < 0.6)
      .map((t) => t.topicId);
    expect(s1.below).toEqual(expectedBelow);
  });

  it("refuses students, parents, teachers of other classes and a bad threshold", async () => {
    const student = await bearer({ role: "student", sub: "s1" });
    const parent = await bearer({ role: "parent", sub: "p1", children: ["s1"] });
    const other = await bearer({ role: "teacher", sub: "t2", classes: ["B"] });
    const admin = await bearer({ role: "admin", sub: "root" });
    expect((await request(h.app).get("/classes/A/mastery").set(student)).status).toBe(403);
    expect((await request(h.app).get("/classes/A/mastery").set(parent)).status).toBe(403);
    const r = await request(h.app).get("/classes/A/mastery").set(other);
    expect(r.status).toBe(403);
    expect(r.body.reason).toMatch(/own classes/);
    expect((await request(h.app).get("/classes/A/mastery?threshold=2").set(admin)).status).toBe(400);
    expect((await request(h.app).get("/classes/A/mastery")).status).toBe(401);
    const b = await request(h.app).get("/classes/B/mastery").set(admin);
    expect(b.body.students.map((s: { studentKey: string }) => s.studentKey)).toEqual([key("s2")]);
  });
});
