import fc from "fast-check";
import request from "supertest";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AppHandle } from "../../serving/app.ts";
import type { DuckStore } from "../../storage/duckdb.ts";
import { quiz, storeWithTopics, testApp, token } from "./appFixture.ts";

/**
 * The HTTP contract under fuzzed input: no request, however malformed, gets a 5xx; no answer
 * echoes a raw student id; every POST /events item gets accepted / duplicate / rejected with the
 * field and reason. Raw ids here all carry the marker RAWID, so an echo anywhere is caught.
 */

let store: DuckStore;
let h: AppHandle;
let admin: string;

beforeAll(async () => {
  store = await storeWithTopics();
  h = await testApp(store);
  admin = `Bearer ${await token({ role: "admin", sub: "root" })}`;
  const seed = await request(h.app)
    .post("/events")
    .set("authorization", admin)
    .send([quiz("seed-1", "RAWID-known", "T1", true, 1)]);
  expect(seed.status).toBe(200);
});
// Stop the app's work after the answers (deferred alert checks, webhooks) before the store closes, as a
// graceful shutdown does: a native DuckDB call on a released connection crashes the test worker.
afterAll(async () => {
  await h.drain();
  store.close();
  await store.whenClosed();
});

const rawId = fc.oneof(
  fc.string({ maxLength: 12 }).map((s) => `RAWID-${s}`),
  fc.string({ unit: "grapheme", maxLength: 8 }).map((s) => `RAWID-${s}-élève`),
  fc.constant("RAWID-student@school.example"),
);

/** Any JSON value, deep and wide, with unicode strings and numbers of every size. */
const junk = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: "small" },
    fc.string({ unit: "grapheme", maxLength: 30 }),
    fc.string({ unit: "binary", maxLength: 30 }),
    fc.double(),
    fc.integer(),
    fc.constantFrom(2 ** 31, 2 ** 53 + 1, -1, 0, 1e308, -0, "\u0000", "\ud800", "x".repeat(5000)),
    fc.boolean(),
    fc.constant(null),
    fc.array(tie("value"), { maxLength: 4 }),
    fc.dictionary(fc.string({ maxLength: 8 }), tie("value"), { maxKeys: 4 }),
  ),
})).value;

const FIELDS = [
  "event_id",
  "type",
  "student_id",
  "timestamp",
  "topic_id",
  "question_id",
  "is_correct",
  "time_spent_sec",
  "attempt_number",
  "hints_used",
  "class_id",
  "school_id",
  "grade",
  "extra_field",
];

function expectNoRawId(text: string): void {
  expect(text).not.toMatch(/RAWID/);
}

describe("POST /events with fuzzed items", () => {
  it("never 5xx, never echoes a raw id, one accepted/duplicate/rejected(field, reason) per item", async () => {
    let n = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.record({
            student: rawId,
            field: fc.constantFrom(...FIELDS),
            value: junk,
            valid: fc.boolean(),
          }),
          { minLength: 1, maxLength: 12 },
        ),
        async (specs) => {
          const body = specs.map((s, i) => {
            const ev = quiz(`fz-${n}-${i}`, s.student, "T1", true, (n + i) % 60);
            if (!s.valid) ev[s.field] = s.value;
            return ev;
          });
          n++;
          const res = await request(h.app).post("/events").set("authorization", admin).send(body);
          expect(res.status, res.text.slice(0, 300)).toBeLessThan(500);
          expectNoRawId(res.text);
          expect([200, 207, 400]).toContain(res.status);
          if (res.status === 400) return;
          expect(res.body.items).toHaveLength(body.length);
          for (const item of res.body.items as {
            status: string;
            errors?: { field: string; reason: string }[];
          }[]) {
            expect(["accepted", "duplicate", "rejected"]).toContain(item.status);
            if (item.status === "rejected") {
              expect(item.errors!.length).toBeGreaterThan(0);
              for (const e of item.errors!) {
                expect(typeof e.field).toBe("string");
                expect(e.reason.length).toBeGreaterThan(0);
              }
            }
          }
          // The untouched events are kept whatever their neighbours hold.
          specs.forEach((s, i) => {
            if (s.valid) expect(res.body.items[i].status).toBe("accepted");
          });
        },
      ),
      { numRuns: 60, seed: 12 },
    );
  }, 120_000);

  it("whole bodies of any shape and malformed requests: 4xx with a reason, never 5xx", async () => {
    await fc.assert(
      fc.asyncProperty(junk, async (body) => {
        const res = await request(h.app)
          .post("/events")
          .set("authorization", admin)
          .set("content-type", "application/json")
          .send(JSON.stringify(body) ?? "null");
        expect(res.status).toBeLessThan(500);
        if (res.status >= 400) expect(typeof res.body.reason).toBe("string");
      }),
      { numRuns: 100, seed: 5 },
    );
    const raw: [string, Record<string, string>][] = [
      ['[{"event_id": "x",', { "content-type": "application/json" }],
      ["[".repeat(20_000) + "]".repeat(20_000), { "content-type": "application/json" }],
      ['[{"student_id":"RAWID-in-bad-json" "x":1}]', { "content-type": "application/json" }],
      ["not json at all", { "content-type": "text/plain" }],
      ["[]", { "content-type": "application/json", "content-encoding": "br-nonsense" }],
      ["\u0000\u0001", { "content-type": "application/json", "content-encoding": "gzip" }],
    ];
    for (const [text, headers] of raw) {
      const res = await request(h.app).post("/events").set("authorization", admin).set(headers).send(text);
      expect(res.status, `${text.slice(0, 30)}: ${res.text.slice(0, 200)}`).toBeGreaterThanOrEqual(400);
      expect(res.status).toBeLessThan(500);
      expectNoRawId(res.text);
    }
  }, 120_000);
});

describe("GET routes with malformed paths and parameters", () => {
  // [path, whether the fuzzed segment is a student id (then it must never come back)].
  const GET_PATHS: [(x: string) => string, boolean][] = [
    [(x) => `/mastery/${x}`, true],
    [(x) => `/mastery/${x}/history`, true],
    [(x) => `/mastery/${x}/T1/history`, true],
    [(x) => `/mastery/RAWID-known/${x}/history`, false],
    [(x) => `/recommendations/${x}`, true],
    [(x) => `/classes/${x}/mastery`, false],
    [(x) => `/roster/classes/${x}`, false],
    [(x) => `/models/${x}`, false],
    [(x) => `/models/mastery/versions/${x}`, false],
    [(x) => `/experiments/${x}`, false],
    [(x) => `/experiments/${x}/report`, false],
    [(x) => `/mastery/RAWID-known?include=${x}`, false],
    [(x) => `/drift/checks?limit=${x}`, false],
    [(x) => `/quality?budget_ms=${x}`, false],
    [(x) => `/mastery/RAWID-known/history?limit=${x}&before=${x}`, false],
  ];
  const segment = fc.oneof(
    rawId.map((s) => encodeURIComponent(s)),
    fc.constantFrom(
      "%",
      "%zz",
      "%E0%A4%A",
      "%C0%AF",
      "%00",
      "%FF%FE",
      "RAWID-%E0%A4%A",
      "99999999999999999999999",
      "-1",
      "1e400",
      "NaN",
      "..%2F..%2Fetc%2Fpasswd",
      "key:zz",
      `key:${"a".repeat(32)}`,
      "x".repeat(3000),
    ),
    fc.string({ unit: "binary", maxLength: 20 }).map((s) => encodeURIComponent(s)),
  );

  it("never 5xx and never echo a raw id, for admin, teacher and no token", async () => {
    const teacher = `Bearer ${await token({ role: "teacher", sub: "t1", classes: ["A"] })}`;
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...GET_PATHS),
        segment,
        fc.constantFrom(admin, teacher, ""),
        async ([path, isStudent], seg, auth) => {
          const url = path(seg);
          const req = request(h.app).get(url);
          const res = await (auth === "" ? req : req.set("authorization", auth));
          expect(res.status, `${url}: ${res.text.slice(0, 200)}`).toBeLessThan(500);
          if (isStudent) expectNoRawId(res.text);
          // The known student's id in the other paths is never echoed either.
          expect(res.text).not.toContain("RAWID-known");
        },
      ),
      { numRuns: 400, seed: 3 },
    );
  }, 120_000);
});
