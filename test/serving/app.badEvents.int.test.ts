import fc from "fast-check";
import request from "supertest";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AppHandle } from "../../serving/app.ts";
import type { DuckStore } from "../../storage/duckdb.ts";
import { quiz, storeWithTopics, testApp, token } from "./appFixture.ts";

let store: DuckStore;
let h: AppHandle;
let admin: string;

beforeAll(async () => {
  store = await storeWithTopics();
  h = await testApp(store);
  admin = await token({ role: "admin", sub: "root" });
});
// Stop the app's work after the answers (deferred alert checks, webhooks) before the store closes, as a
// graceful shutdown does: a native DuckDB call on a released connection crashes the test worker.
afterAll(async () => {
  await h.drain();
  store.close();
  await store.whenClosed();
});

// One broken field per event: [field, bad value]. Each must be rejected naming that field.
const BREAKERS: [string, unknown][] = [
  ["time_spent_sec", -1],
  ["time_spent_sec", "fast"],
  ["is_correct", "yes"],
  ["timestamp", "2026-01-05 10:00"],
  ["timestamp", "2026-02-30T10:00:00Z"],
  ["attempt_number", 0],
  ["hints_used", 1.5],
  ["grade", 13],
  ["topic_id", ""],
  ["question_id", 7],
  ["event_id", ""],
  ["student_id", null],
  ["type", "quizz"],
];

describe("POST /events under 10,000 generated bad events", () => {
  it("rejects each naming its field, keeps the valid neighbours, and stays up", async () => {
    const batches = 20;
    const perBatch = 500;
    const bad = fc.sample(
      fc.record({
        breaker: fc.integer({ min: 0, max: BREAKERS.length - 1 }),
        student: fc.integer({ min: 0, max: 50 }),
        minute: fc.integer({ min: 0, max: 59 }),
      }),
      { numRuns: batches * perBatch, seed: 7 },
    );
    let keptValid = 0;
    const deadIds = new Set<string>();
    for (let b = 0; b < batches; b++) {
      const body: Record<string, unknown>[] = [];
      const expectField: (string | null)[] = [];
      for (let i = 0; i < perBatch; i++) {
        const g = bad[b * perBatch + i]!;
        const [field, value] = BREAKERS[g.breaker]!;
        const ev = quiz(`bad-${b}-${i}`, `s${g.student}`, "T1", true, g.minute);
        ev[field] = value;
        body.push(ev);
        expectField.push(field);
        deadIds.add(String(ev.event_id));
        if (i % 50 === 0) {
          body.push(quiz(`ok-${b}-${i}`, `s${g.student}`, "T2", i % 100 === 0, g.minute));
          expectField.push(null);
        }
      }
      const res = await request(h.app).post("/events").set("authorization", `Bearer ${admin}`).send(body);
      expect(res.status).toBe(207);
      expect(res.body.items).toHaveLength(body.length);
      res.body.items.forEach((item: { status: string; errors?: { field: string }[] }, i: number) => {
        const f = expectField[i];
        if (f === null) expect(item.status).toBe("accepted");
        else {
          expect(item.status).toBe("rejected");
          expect(item.errors!.map((e) => e.field)).toContain(f);
        }
      });
      keptValid += res.body.accepted;
    }
    const stored = await store.one<{ n: bigint }>("SELECT count(*) AS n FROM raw_events");
    expect(Number(stored!.n)).toBe(keptValid);
    expect(keptValid).toBe(batches * (perBatch / 50));
    const dead = await store.one<{ n: bigint }>("SELECT count(DISTINCT event_id) AS n FROM dead_letter");
    // Every bad event is dead-lettered (those with event_id "" share one id).
    expect(Number(dead!.n)).toBe(deadIds.size);
    expect((await request(h.app).get("/healthz")).status).toBe(200);
  }, 120_000);
});
