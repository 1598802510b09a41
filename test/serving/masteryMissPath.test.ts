import fc from "fast-check";
import request from "supertest";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AppHandle } from "../../serving/app.ts";
import { DuckMasteryReadStore, type MasteryReadStore } from "../../serving/masteryReadStore.ts";
import type { DuckStore } from "../../storage/duckdb.ts";
import { BackendUnavailableError } from "../../storage/unavailable.ts";
import { quiz, storeWithTopics, testApp, token } from "./appFixture.ts";

/**
 * GET /mastery's misses answered by the hit path in front of Express (serving/masteryHitPath.ts `missBody`,
 * wired in serving/app.ts): the same answer as the route's, byte for byte, and the route's error answers when
 * the body fails. The route's own answer is had from a second app on the same store with an If-None-Match that
 * matches nothing (the hit path leaves conditional requests to the route, which misses in its own cache too).
 */

/** Counts the requests that enter Express's router (the hit path's answers never do). */
function countRouter(h: AppHandle): { entered: number } {
  const seen = { entered: 0 };
  const router = (h.app as unknown as { router: { handle: (...a: unknown[]) => unknown } }).router;
  const handle = router.handle.bind(router);
  router.handle = (...a: unknown[]) => {
    seen.entered++;
    return handle(...a);
  };
  return seen;
}

const withoutDate = (r: request.Response) => Object.entries(r.headers).filter(([k]) => k !== "date");
const NO_MATCH = 'W/"0-x"';
/** One clock for both apps: a body's read-time scores and as_of depend on it. */
const NOW = new Date("2026-02-01T12:00:00.000Z");
const now = () => NOW;

async function counter(h: AppHandle, admin: string, name: string, labels: string): Promise<number> {
  const text = (await request(h.app).get("/metrics").set("authorization", admin)).text;
  const line = text.split("\n").find((l) => l.startsWith(`${name}{${labels}}`));
  return line === undefined ? 0 : Number(line.split(" ").pop());
}

/** Quiz attempts of students s0..s11 on T1-T4 drawn by fast-check (fixed seed): 0 to 9 each, any outcome. */
function variedEvents(): Record<string, unknown>[] {
  const attempt = fc.record({
    topic: fc.constantFrom("T1", "T2", "T3", "T4"),
    correct: fc.boolean(),
    minute: fc.integer({ min: 0, max: 59 }),
    hints: fc.integer({ min: 0, max: 3 }),
  });
  const perStudent = fc.sample(fc.array(attempt, { maxLength: 9 }), { seed: 31, numRuns: 12 });
  return perStudent.flatMap((attempts, s) =>
    attempts.map((a, i) =>
      quiz(`m${s}-${i}`, `s${s}`, a.topic, a.correct, a.minute, {
        hints_used: a.hints,
        attempt_number: i + 1,
      }),
    ),
  );
}

describe("GET /mastery's misses in front of Express", () => {
  let store: DuckStore;
  let front: AppHandle;
  let routed: AppHandle;
  let admin: string;
  let events: Record<string, unknown>[];
  beforeAll(async () => {
    store = await storeWithTopics();
    front = await testApp(store, { now });
    routed = await testApp(store, { now });
    admin = `Bearer ${await token({ role: "admin", sub: "root" })}`;
    events = variedEvents();
    const res = await request(front.app).post("/events").set("authorization", admin).send(events);
    expect(res.status).toBe(200);
    expect(res.body.accepted).toBe(events.length);
  });
  afterAll(() => store.close());

  it("answers each student's miss as the route does (status, headers in order, bytes), without Express", async () => {
    // The token verified (cached) in the front app: the hit path takes only cached principals.
    await request(front.app).get("/mastery/nobody?include=history").set("authorization", admin);
    const entered = countRouter(front);
    const miss = 'result="miss"';
    const misses0 = await counter(front, admin, "mastery_cache_total", miss);
    const ok0 = await counter(
      front,
      admin,
      "mastery_http_requests_total",
      'method="GET",route="/mastery/:studentId",status="200"',
    );
    const before = entered.entered;
    // s12 has no events; the rest have 0-9 attempts each.
    const students = Array.from({ length: 13 }, (_, i) => `s${i}`);
    let served = 0;
    for (const s of students) {
      const a = await request(front.app).get(`/mastery/${s}`).set("authorization", admin).buffer(true);
      const b = await request(routed.app)
        .get(`/mastery/${s}`)
        .set("authorization", admin)
        .set("if-none-match", NO_MATCH)
        .buffer(true);
      expect([s, a.status]).toEqual([s, b.status]);
      expect(a.text).toBe(b.text);
      expect(withoutDate(a)).toEqual(withoutDate(b));
      expect(Object.keys(a.headers)).toEqual(Object.keys(b.headers));
      if (a.status === 200) served++;
    }
    // None of the misses entered Express; each counted once as a miss and once as a request.
    expect(entered.entered - before).toBe(0);
    expect(served).toBeGreaterThanOrEqual(10);
    expect(await counter(front, admin, "mastery_cache_total", miss)).toBe(misses0 + students.length);
    expect(
      await counter(
        front,
        admin,
        "mastery_http_requests_total",
        'method="GET",route="/mastery/:studentId",status="200"',
      ),
    ).toBe(ok0 + served);
    // The miss cached its body: the next read is a hit with the same bytes.
    const again = await request(front.app).get("/mastery/s1").set("authorization", admin).buffer(true);
    const routedAgain = await request(routed.app).get("/mastery/s1").set("authorization", admin).buffer(true);
    expect(again.text).toBe(routedAgain.text);
  });

  it("a student reads their own body on the hit path; another student's is refused by the route", async () => {
    const own = `Bearer ${await token({ role: "student", sub: "s3" })}`;
    await request(front.app).get("/mastery/s3?include=history").set("authorization", own);
    // A write of s3 drops its body: the next read is a miss.
    const post = await request(front.app)
      .post("/events")
      .set("authorization", admin)
      .send([quiz("own-1", "s3", "T2", true, 7)]);
    expect(post.status).toBe(200);
    const entered = countRouter(front);
    const a = await request(front.app).get("/mastery/s3").set("authorization", own).buffer(true);
    expect(entered.entered).toBe(0);
    // A fresh app for the route's answer: the other one's cached s3 body predates the write (no channel here).
    const fresh = await testApp(store, { now });
    const b = await request(fresh.app)
      .get("/mastery/s3")
      .set("authorization", admin)
      .set("if-none-match", NO_MATCH)
      .buffer(true);
    expect(a.status).toBe(200);
    expect(a.text).toBe(b.text);
    const other = await request(front.app).get("/mastery/s4").set("authorization", own);
    expect(other.status).toBe(403);
    expect(entered.entered).toBe(1);
  });
});

/** A read store whose score read fails with `failure` while it is set. */
function failingRead(store: DuckStore): { read: MasteryReadStore; fail: (e: Error | null) => void } {
  const inner = new DuckMasteryReadStore(store);
  let failure: Error | null = null;
  const read = Object.create(inner) as DuckMasteryReadStore;
  read.scoreRows = (key, needs) => (failure !== null ? Promise.reject(failure) : inner.scoreRows(key, needs));
  const fail = (e: Error | null): void => {
    failure = e;
  };
  return { read, fail };
}

describe("a miss whose body fails, in front of Express", () => {
  let store: DuckStore;
  let admin: string;
  beforeAll(async () => {
    store = await storeWithTopics();
    admin = `Bearer ${await token({ role: "admin", sub: "root" })}`;
    const h = await testApp(store);
    await request(h.app)
      .post("/events")
      .set("authorization", admin)
      .send([quiz("f1", "s1", "T1", true, 1), quiz("f2", "s2", "T3", false, 2)]);
  });
  afterAll(() => store.close());

  const failures: [string, () => Error, number][] = [
    ["a bug (500)", () => new Error("boom at s1"), 500],
    [
      "PostgreSQL unavailable (503)",
      () => new BackendUnavailableError("postgres", "connection refused"),
      503,
    ],
  ];
  for (const [what, error, status] of failures) {
    it(`answers ${what} as the route does, observed once with the route's pattern`, async () => {
      const answers: request.Response[] = [];
      const counts: number[] = [];
      for (const conditional of [false, true]) {
        const f = failingRead(store);
        const h = await testApp(store, { read: f.read, now });
        await request(h.app).get("/mastery/s2").set("authorization", admin);
        const entered = countRouter(h);
        f.fail(error());
        const req = request(h.app).get("/mastery/s1").set("authorization", admin);
        const res = await (conditional ? req.set("if-none-match", NO_MATCH) : req);
        // Both went through Express in the end (the hit path hands the failed miss over).
        expect(entered.entered).toBe(1);
        f.fail(null);
        answers.push(res);
        // Counted once, under the route's pattern: no other line of that status (e.g. "(unmatched)").
        const text = (await request(h.app).get("/metrics").set("authorization", admin)).text;
        const lines = text
          .split("\n")
          .filter((l) => l.startsWith("mastery_http_requests_total{") && l.includes(`status="${status}"`));
        expect(lines.map((l) => l.slice(0, l.lastIndexOf(" ")))).toEqual([
          `mastery_http_requests_total{method="GET",route="/mastery/:studentId",status="${status}"}`,
        ]);
        counts.push(Number(lines[0]?.split(" ").pop()));
      }
      const [front, routed] = answers as [request.Response, request.Response];
      expect(front.status).toBe(status);
      expect(front.text).toBe(routed.text);
      expect(front.text).not.toContain("s1");
      expect(withoutDate(front)).toEqual(withoutDate(routed));
      expect(counts).toEqual([1, 1]);
    });
  }
});
