import request from "supertest";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AppHandle } from "../../serving/app.ts";
import { runWarmUp, warmRequests, warmUpApp, warmUpStudents } from "../../serving/warmUp.ts";
import type { DuckStore } from "../../storage/duckdb.ts";
import { quiz, storeWithTopics, testApp, token } from "./appFixture.ts";

describe("runWarmUp (the plan, with a recording sender)", () => {
  it("sends rounds x students x the hot routes, at most `concurrency` at once, and counts unexpected answers", async () => {
    let inFlight = 0;
    let most = 0;
    const seen: string[] = [];
    const result = await runWarmUp(
      { students: ["a", "b", "c"], rounds: 2, concurrency: 3, budgetMs: 60_000 },
      async (r) => {
        inFlight++;
        most = Math.max(most, inFlight);
        seen.push(`${r.method} ${r.path}`);
        await new Promise((res) => setTimeout(res, 1));
        inFlight--;
        // One route answers wrongly: counted as failed, the rest go on.
        return r.path.startsWith("/recommendations/b") ? 500 : r.expect;
      },
    );
    expect(result.requests).toBe(2 * 3 * 4);
    expect(result.failed).toBe(2);
    expect(result.stoppedBy).toBe("rounds");
    expect(most).toBe(3);
    expect(seen.filter((s) => s === "GET /mastery/a")).toHaveLength(2);
    expect(seen.filter((s) => s === "POST /events")).toHaveLength(6);
    expect(Number.isFinite(result.firstRoundMedianMs)).toBe(true);
  });

  it("opens with `concurrency` requests at once, then sends one at a time (steadyConcurrency 1)", async () => {
    let inFlight = 0;
    // The number in flight as each request starts, in order.
    const atStart: number[] = [];
    const result = await runWarmUp(
      { students: ["a", "b", "c", "d", "e"], rounds: 2, concurrency: 4, budgetMs: 60_000 },
      async (r) => {
        inFlight++;
        atStart.push(inFlight);
        await new Promise((res) => setTimeout(res, 1));
        inFlight--;
        return r.expect;
      },
    );
    expect(result.requests).toBe(2 * 5 * 4);
    // The burst: 4 requests in flight together (so 4 pooled connections open) ...
    expect(atStart.slice(0, 4)).toEqual([1, 2, 3, 4]);
    // ... and once the burst's stragglers are answered, never more than one: the event loop is free
    // between requests (lane 0 goes on while the other burst lanes finish, so allow 4 more starts).
    expect(Math.max(...atStart)).toBe(4);
    expect(Math.max(...atStart.slice(8))).toBe(1);
    // With steadyConcurrency 2, two lanes after the burst.
    inFlight = 0;
    let most = 0;
    let after = 0;
    let sent = 0;
    await runWarmUp(
      { students: ["a", "b", "c"], rounds: 3, concurrency: 5, steadyConcurrency: 2, budgetMs: 60_000 },
      async (r) => {
        inFlight++;
        if (++sent > 10) after = Math.max(after, inFlight);
        most = Math.max(most, inFlight);
        await new Promise((res) => setTimeout(res, 1));
        inFlight--;
        return r.expect;
      },
    );
    expect(most).toBe(5);
    expect(after).toBe(2);
  });

  it("stops starting requests once the budget is spent", async () => {
    let clock = 0;
    const result = await runWarmUp(
      { students: ["a", "b"], rounds: 10, concurrency: 1, budgetMs: 25 },
      async (r) => {
        clock += 10; // every request takes 10 ms of the fake clock
        return r.expect;
      },
      () => clock,
    );
    // 0, 10, 20 and 30 ms: the request started at 20 ms is the last one (30 > 25).
    expect(result.requests).toBe(3);
    expect(result.stoppedBy).toBe("budget");
  });

  it("keeps making passes until minRequests were sent, then stops at the end of that pass", async () => {
    const result = await runWarmUp(
      { students: ["only"], rounds: 3, minRequests: 50, concurrency: 2, budgetMs: 60_000 },
      async (r) => r.expect,
    );
    // A pass over one student is 4 requests: 3 rounds give 12, and passes go on to 52 (13 passes).
    expect(result.requests).toBe(52);
    expect(result.stoppedBy).toBe("rounds");
    // minRequests below what the rounds send changes nothing.
    const fewer = await runWarmUp(
      { students: ["a", "b"], rounds: 3, minRequests: 5, concurrency: 2, budgetMs: 60_000 },
      async (r) => r.expect,
    );
    expect(fewer.requests).toBe(3 * 2 * 4);
  });

  it("the budget bounds the extra passes too", async () => {
    let clock = 0;
    const result = await runWarmUp(
      { students: ["a"], rounds: 1, minRequests: 1000, concurrency: 1, budgetMs: 95 },
      async (r) => {
        clock += 10;
        return r.expect;
      },
      () => clock,
    );
    // Requests start at 0, 10, ..., 90 ms: 10 of them, far short of 1,000.
    expect(result.requests).toBe(10);
    expect(result.stoppedBy).toBe("budget");
  });

  it("pads a short sample of stored students with distinct made-up ids, up to `students`", () => {
    expect(warmUpStudents(["k1", "k2"], 4)).toEqual([
      "key:k1",
      "key:k2",
      "warm-up-probe-0",
      "warm-up-probe-1",
    ]);
    expect(warmUpStudents([], 0)).toEqual(["warm-up-probe-0"]);
    expect(warmUpStudents(["k1", "k2", "k3"], 2)).toEqual(["key:k1", "key:k2", "key:k3"]);
  });

  it("student ids are path-encoded and the POST is not a batch (writes nothing)", () => {
    const rs = warmRequests("key:ab/c");
    expect(rs.map((r) => r.path)).toEqual([
      "/mastery/key%3Aab%2Fc",
      "/mastery/key%3Aab%2Fc/history",
      "/recommendations/key%3Aab%2Fc",
      "/events",
    ]);
    expect(rs[3]).toMatchObject({ method: "POST", body: "{}", expect: 400 });
  });
});

describe("warmUpApp on a real app (embedded store)", () => {
  let store: DuckStore;
  let h: AppHandle;
  beforeAll(async () => {
    store = await storeWithTopics();
    h = await testApp(store);
    const admin = await token({ role: "admin", sub: "root" });
    const events = [
      quiz("e1", "s1", "T1", true, 1),
      quiz("e2", "s2", "T2", false, 2),
      quiz("e3", "s3", "T1", true, 3),
    ];
    expect(
      (await request(h.app).post("/events").set("authorization", `Bearer ${admin}`).send(events)).status,
    ).toBe(200);
  });
  afterAll(() => store.close());

  const counts = async () =>
    Object.fromEntries(
      await Promise.all(
        ["raw_events", "dead_letter", "student_mastery", "student_mastery_history"].map(
          async (t) =>
            [t, Number((await store.all<{ n: bigint }>(`SELECT count(*) AS n FROM ${t}`))[0]?.n)] as const,
        ),
      ),
    );

  it("answers /readyz 503 warming_up while warming, reads the stored students' routes, writes nothing, then turns ready", async () => {
    h.ctx.startup.warmingUp = true;
    const during = await request(h.app).get("/readyz");
    expect(during.status).toBe(503);
    expect(during.headers["retry-after"]).toBe("1");
    expect(during.body).toMatchObject({ status: "warming_up", error: "warming_up", field: "(startup)" });
    const before = await counts();
    const result = await warmUpApp(
      h.app,
      h.ctx,
      { rounds: 2, students: 5, budgetMs: 30_000, minRequests: 100 },
      {
        token: await token({ role: "service", sub: "warm-up", scopes: ["mastery:read", "events:write"] }),
        concurrency: 2,
      },
    );
    // Three stored students + two made-up ones (no rows: read, answered, nothing written), four requests
    // each: two rounds are 40 requests, so passes (of 20) go on to the 100 asked for: five in all.
    expect(result).toMatchObject({ requests: 5 * 4 * 5, failed: 0, stoppedBy: "rounds" });
    expect(await counts()).toEqual(before);
    expect(h.ctx.startup.warmingUp).toBe(false);
    const after = await request(h.app).get("/readyz");
    expect(after.status).toBe(200);
    expect(after.body.status).toBe("ready");
  });

  it("rounds 0 turns it off (ready at once, nothing sent)", async () => {
    h.ctx.startup.warmingUp = true;
    const result = await warmUpApp(
      h.app,
      h.ctx,
      { rounds: 0, students: 10, budgetMs: 1000, minRequests: 600 },
      { token: "x", concurrency: 1 },
    );
    expect(result).toBeNull();
    expect(h.ctx.startup.warmingUp).toBe(false);
  });
});
