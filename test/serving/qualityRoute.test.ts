import request from "supertest";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AppHandle } from "../../serving/app.ts";
import type { DuckStore } from "../../storage/duckdb.ts";
import { MONITORING_DDL } from "../../storage/schema.ts";
import { quiz, storeWithTopics, testApp, token } from "./appFixture.ts";

let store: DuckStore;
let h: AppHandle;
let admin: { authorization: string };

beforeAll(async () => {
  store = await storeWithTopics();
  h = await testApp(store, { now: () => new Date("2026-01-06T00:00:00Z") });
  admin = { authorization: `Bearer ${await token({ role: "admin", sub: "root" })}` };
  const events = [
    quiz("e1", "s1", "T1", true, 1),
    quiz("e2", "s1", "T2", false, 2),
    quiz("e3", "s2", "T1", true, 3),
  ];
  expect((await request(h.app).post("/events").set(admin).send(events)).status).toBe(200);
});

afterAll(() => store.close());

describe("GET /quality and /drift/checks", () => {
  it("serve the quality report and the logged drift checks to admins only", async () => {
    const q = await request(h.app).get("/quality").set(admin);
    expect(q.status).toBe(200);
    expect(q.body.totals.events).toBe(3);
    expect(q.body.asOf).toBe("2026-01-06T00:00:00.000Z");

    expect((await request(h.app).get("/drift/checks").set(admin)).body).toEqual({ checks: [] });
    for (const ddl of MONITORING_DDL) await store.run(ddl);
    await store.run(
      `INSERT INTO drift_checks VALUES ('2026-01-05 00:00:00', true, 'snap-1', '2025-12-29 00:00:00', '2026-01-05 00:00:00', 7, 2, '{"retrain":true}')`,
    );
    const d = await request(h.app).get("/drift/checks?limit=5").set(admin);
    expect(d.body.checks).toEqual([
      {
        checkedAt: "2026-01-05T00:00:00.000Z",
        drift: true,
        reference: "snap-1",
        currentFrom: "2025-12-29T00:00:00.000Z",
        currentTo: "2026-01-05T00:00:00.000Z",
        tests: 7,
        alerts: 2,
        decision: { retrain: true },
      },
    ]);
    expect((await request(h.app).get("/drift/checks?limit=0").set(admin)).status).toBe(400);

    const teacher = { authorization: `Bearer ${await token({ role: "teacher", sub: "t", classes: ["A"] })}` };
    expect((await request(h.app).get("/quality").set(teacher)).status).toBe(403);
    expect((await request(h.app).get("/drift/checks").set(teacher)).status).toBe(403);
    expect((await request(h.app).get("/quality")).status).toBe(401);
  });
});
