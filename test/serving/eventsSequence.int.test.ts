import fc from "fast-check";
import request from "supertest";
import { describe, expect, it } from "vitest";
import type { AppHandle } from "../../serving/app.ts";
import { quiz, storeWithTopics, testApp, token } from "./appFixture.ts";

/**
 * POST /events on the embedded store, end to end: 1,000 correct answers on one topic (the score
 * reaches 1.0; that pair once could never be written again, and every batch holding it failed)
 * and any sequence of answers, however it is split into batches, is accepted item by item and
 * served back with the same scores as one batch of the same events.
 */

type Item = { status: string };
const admin = async () => `Bearer ${await token({ role: "admin", sub: "root" })}`;

async function post(h: AppHandle, auth: string, events: unknown[]): Promise<Item[]> {
  const res = await request(h.app).post("/events").set("authorization", auth).send(events);
  expect(res.status, JSON.stringify(res.body).slice(0, 300)).toBeLessThan(500);
  return res.body.items as Item[];
}

async function scores(h: AppHandle, auth: string, student: string): Promise<Record<string, unknown>> {
  const res = await request(h.app)
    .get(`/mastery/${encodeURIComponent(student)}`)
    .set("authorization", auth);
  expect(res.status).toBe(200);
  const out: Record<string, unknown> = {};
  for (const t of res.body.topics as { topicId: string; scores: Record<string, { score: number }> }[])
    out[t.topicId] = Object.fromEntries(Object.entries(t.scores).map(([k, v]) => [k, v.score]));
  return out;
}

describe("POST /events: long runs on one key and any batching", () => {
  it("1,000 correct answers on one topic in one batch, then more: all accepted, score stays in [0, 1]", async () => {
    const store = await storeWithTopics();
    try {
      const h = await testApp(store);
      const auth = await admin();
      const run = Array.from({ length: 1000 }, (_, i) => quiz(`run-${i}`, "s1", "T1", true, i));
      const items = await post(h, auth, run);
      expect(items.filter((i) => i.status === "accepted")).toHaveLength(1000);
      const after = (await scores(h, auth, "s1")).T1 as Record<string, number>;
      expect(after.bkt).toBeGreaterThan(0.99);
      expect(after.bkt).toBeLessThanOrEqual(1);
      const history = async () =>
        Number(
          (
            await store.one<{ n: bigint }>(
              "SELECT count(*) AS n FROM student_mastery_history WHERE topic_id = 'T1'",
            )
          )?.n,
        );
      const before = await history();
      // The same pair again, one event at a time and in a mixed batch: still written.
      for (let i = 0; i < 3; i++)
        expect((await post(h, auth, [quiz(`more-${i}`, "s1", "T1", i !== 1, 1000 + i)]))[0]!.status).toBe(
          "accepted",
        );
      const mixed = await post(h, auth, [
        quiz("mix-1", "s1", "T1", false, 1010),
        quiz("mix-2", "s2", "T2", true, 1011),
        quiz("run-0", "s1", "T1", true, 0),
      ]);
      expect(mixed.map((i) => i.status)).toEqual(["accepted", "accepted", "duplicate"]);
      const last = (await scores(h, auth, "s1")).T1 as Record<string, number>;
      expect(last.bkt).toBeGreaterThanOrEqual(0);
      expect(last.bkt).toBeLessThanOrEqual(1);
      // Each of the 4 later T1 answers wrote the pair again (a history row per score source).
      expect(await history()).toBeGreaterThanOrEqual(before + 4);
      const rows = await store.one<{ n: bigint }>("SELECT count(*) AS n FROM raw_events");
      expect(Number(rows?.n)).toBe(1005);
    } finally {
      store.close();
    }
  });

  it("property: any answer sequence (unicode ids), split into any batches, serves the scores of one batch", async () => {
    const student = fc.constantFrom("s1", "élève-ß", "学生-7", "s😀");
    const answer = fc.record({ student, topic: fc.constantFrom("T1", "T2", "T4"), correct: fc.boolean() });
    await fc.assert(
      fc.asyncProperty(
        fc.array(answer, { minLength: 1, maxLength: 40 }),
        fc.array(fc.integer({ min: 1, max: 15 }), { minLength: 1, maxLength: 10 }),
        async (answers, cuts) => {
          const events = answers.map((a, i) => quiz(`e${i}`, a.student, a.topic, a.correct, i));
          const students = [...new Set(answers.map((a) => a.student))];
          const once = await storeWithTopics();
          const split = await storeWithTopics();
          try {
            const auth = await admin();
            const h1 = await testApp(once);
            expect((await post(h1, auth, events)).every((i) => i.status === "accepted")).toBe(true);
            const h2 = await testApp(split);
            let at = 0;
            for (let c = 0; at < events.length; c++) {
              const n = cuts[c % cuts.length]!;
              const items = await post(h2, auth, events.slice(at, at + n));
              expect(items.every((i) => i.status === "accepted")).toBe(true);
              at += n;
            }
            for (const s of students) {
              const a = await scores(h1, auth, s);
              const b = await scores(h2, auth, s);
              expect(Object.keys(b).sort()).toEqual(Object.keys(a).sort());
              for (const [topic, byModel] of Object.entries(a))
                for (const [m, v] of Object.entries(byModel as Record<string, number>))
                  expect((b[topic] as Record<string, number>)[m]).toBeCloseTo(v, 9);
            }
          } finally {
            once.close();
            split.close();
          }
        },
      ),
      { numRuns: 8 },
    );
  });
});
