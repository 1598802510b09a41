import { createHash } from "node:crypto";
import request from "supertest";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AppHandle } from "../../serving/app.ts";
import { rollupMastery } from "../../serving/rollups.ts";
import type { DuckStore } from "../../storage/duckdb.ts";
import { putRosters, quiz, storeWithTopics, testApp, token } from "./appFixture.ts";

let store: DuckStore;
let h: AppHandle;
const tokens: Record<string, string> = {};
const ROLES = ["student", "parent", "teacher", "admin", "serviceAll", "serviceNone"] as const;

beforeAll(async () => {
  store = await storeWithTopics();
  h = await testApp(store);
  tokens.student = await token({ role: "student", sub: "s1" });
  tokens.parent = await token({ role: "parent", sub: "p1", children: ["s1"] });
  tokens.teacher = await token({ role: "teacher", sub: "t1", classes: ["A"] });
  tokens.admin = await token({ role: "admin", sub: "root" });
  tokens.serviceAll = await token({
    role: "service",
    sub: "lms",
    scopes: ["mastery:read", "events:write", "feedback:write", "score:write", "metrics:read"],
  });
  tokens.serviceNone = await token({ role: "service", sub: "other", scopes: [] });
  const events = [
    quiz("e1", "s1", "T1", true, 1),
    quiz("e2", "s1", "T1", false, 2),
    quiz("e3", "s1", "T2", false, 3),
    quiz("e4", "s2", "T1", true, 4),
  ];
  const res = await request(h.app)
    .post("/events")
    .set("authorization", `Bearer ${tokens.admin}`)
    .send(events);
  expect(res.status).toBe(200);
  await putRosters(h, { A: ["s1"], B: ["s2"] });
});

afterAll(() => store.close());

const auth = (role: string) => ({ authorization: `Bearer ${tokens[role]}` });

type Call = () => request.Test;
const calls = (role: string): Record<string, Call> => ({
  masteryOwn: () => request(h.app).get("/mastery/s1").set(auth(role)),
  masteryOther: () => request(h.app).get("/mastery/s2").set(auth(role)),
  history: () => request(h.app).get("/mastery/s1/T1/history").set(auth(role)),
  histories: () => request(h.app).get("/mastery/s1/history").set(auth(role)),
  historiesOther: () => request(h.app).get("/mastery/s2/history?topics=T1").set(auth(role)),
  recommendations: () => request(h.app).get("/recommendations/s1").set(auth(role)),
  events: () =>
    request(h.app)
      .post("/events")
      .set(auth(role))
      .send([quiz(`m-${role}`, "s1", "T4", true, 30)]),
  feedback: () =>
    request(h.app)
      .post("/feedback")
      .set(auth(role))
      .send({ studentId: "s1", topicId: "T4", mastery: 0.9, reason: "oral exam" }),
  score: () => request(h.app).post("/score").set(auth(role)).send({ studentId: "s1" }),
  metrics: () => request(h.app).get("/metrics").set(auth(role)),
});

// role -> expected status per resource (the access matrix of serving/auth.ts).
const MATRIX: Record<(typeof ROLES)[number], Record<string, number>> = {
  student: {
    masteryOwn: 200,
    masteryOther: 403,
    history: 200,
    histories: 200,
    historiesOther: 403,
    recommendations: 200,
    events: 403,
    feedback: 403,
    score: 403,
    metrics: 403,
  },
  parent: {
    masteryOwn: 200,
    masteryOther: 403,
    history: 200,
    histories: 200,
    historiesOther: 403,
    recommendations: 200,
    events: 403,
    feedback: 403,
    score: 403,
    metrics: 403,
  },
  teacher: {
    masteryOwn: 200,
    masteryOther: 403,
    history: 200,
    histories: 200,
    historiesOther: 403,
    recommendations: 200,
    events: 403,
    feedback: 201,
    score: 200,
    metrics: 403,
  },
  admin: {
    masteryOwn: 200,
    masteryOther: 200,
    history: 200,
    histories: 200,
    historiesOther: 200,
    recommendations: 200,
    events: 200,
    feedback: 201,
    score: 200,
    metrics: 200,
  },
  serviceAll: {
    masteryOwn: 200,
    masteryOther: 200,
    history: 200,
    histories: 200,
    historiesOther: 200,
    recommendations: 200,
    events: 200,
    feedback: 201,
    score: 200,
    metrics: 200,
  },
  serviceNone: {
    masteryOwn: 403,
    masteryOther: 403,
    history: 403,
    histories: 403,
    historiesOther: 403,
    recommendations: 403,
    events: 403,
    feedback: 403,
    score: 403,
    metrics: 403,
  },
};

describe("role x resource access matrix", () => {
  for (const role of ROLES) {
    for (const [resource, expected] of Object.entries(MATRIX[role])) {
      it(`${role} ${resource} -> ${expected}`, async () => {
        const res = await calls(role)[resource]!();
        expect(res.status).toBe(expected);
        if (expected === 403) {
          expect(res.body.error).toBe("forbidden");
          expect(typeof res.body.reason).toBe("string");
          expect(["role", "scope", "studentId"]).toContain(res.body.field);
        }
      });
    }
  }

  it("401 without a token, with a bad one, and with an expired one, saying why", async () => {
    const none = await request(h.app).get("/mastery/s1");
    expect(none.status).toBe(401);
    expect(none.body.reason).toMatch(/missing bearer token/);
    const bad = await request(h.app).get("/mastery/s1").set("authorization", "Bearer abc.def.ghi");
    expect(bad.status).toBe(401);
    expect(bad.body.reason).toMatch(/invalid token/);
    const expired = await token({ role: "admin", sub: "root" }, Math.floor(Date.now() / 1000) - 10);
    const exp = await request(h.app).get("/mastery/s1").set("authorization", `Bearer ${expired}`);
    expect(exp.status).toBe(401);
    expect(exp.body.reason).toMatch(/expired/);
  });
});

describe("routes", () => {
  it("GET /mastery serves BKT scores with explanations that sum, and rollups", async () => {
    const res = await request(h.app).get("/mastery/s1").set(auth("admin"));
    expect(res.status).toBe(200);
    const t1 = res.body.topics.find((t: { topicId: string }) => t.topicId === "T1");
    expect(t1.scoreSource).toBe("bkt");
    expect(t1.modelVersion).toBe("default");
    expect(t1.experimentArm).toBeNull();
    const e = t1.explanation;
    const total =
      e.base + e.rest + e.factors.reduce((s: number, f: { contribution: number }) => s + f.contribution, 0);
    expect(total).toBeCloseTo(t1.score, 12);
    // The events came through POST /events: the stream wrote the pair's rule score too (serving/ruleStream.ts).
    expect(Object.keys(t1.scores).sort()).toEqual(["bkt", "elo", "rule_based"]);
    expect(res.body.rollups.scoreSource).toBe("bkt");
    expect(res.body.rollups.chapter.map((r: { id: string }) => r.id)).toContain("C1");
    expect(JSON.stringify(res.body)).not.toContain('"s1"');
    // The JS rollups equal the mastery_by_* views.
    for (const level of ["chapter", "subject", "course"] as const) {
      const view = await rollupMastery(store, level, { studentKey: res.body.studentKey, scoreSource: "bkt" });
      expect(view.length).toBeGreaterThan(0);
      expect(res.body.rollups[level]).toHaveLength(view.length);
      view.forEach((v, i) => {
        const got = res.body.rollups[level][i];
        expect(got.id).toBe(v.id);
        expect(got.score).toBeCloseTo(v.masteryScore, 12);
        expect([got.topicsScored, got.topicsTotal]).toEqual([v.topicsScored, v.topicsTotal]);
      });
    }
  });

  it("POST /feedback is served at once as teacher_override, with a label and an audit row", async () => {
    const res = await request(h.app)
      .post("/feedback")
      .set(auth("teacher"))
      .send({ studentId: "s1", topicId: "T2", mastery: 0.85, reason: "passed the oral test" });
    expect(res.status).toBe(201);
    const m = await request(h.app).get("/mastery/s1").set(auth("student"));
    const t2 = m.body.topics.find((t: { topicId: string }) => t.topicId === "T2");
    expect(t2.scoreSource).toBe("teacher_override");
    expect(t2.score).toBe(0.85);
    expect(t2.explanation.base + t2.explanation.factors[0].contribution).toBeCloseTo(0.85, 12);
    const labels = await store.all("SELECT * FROM teacher_labels WHERE topic_id = 'T2'");
    expect(labels).toHaveLength(1);
    const audit = await store.all("SELECT * FROM audit_log WHERE action = 'feedback' AND topic_id = 'T2'");
    expect(audit).toHaveLength(1);
    expect(audit[0]!.actor).toBe("t1");
  });

  it("GET /mastery: ETag of the body (Express's weak format), 304 on If-None-Match, HEAD, a new ETag after a write", async () => {
    const first = await request(h.app).get("/mastery/s3").set(auth("admin"));
    expect(first.status).toBe(200);
    expect(first.headers["content-type"]).toBe("application/json; charset=utf-8");
    const etag = first.headers.etag as string;
    // W/"<byte length in hex>-<first 27 chars of the base64 SHA-1 of the body>", as res.send computes it.
    const bytes = Buffer.from(first.text, "utf8");
    const sha1 = createHash("sha1").update(bytes).digest("base64").slice(0, 27);
    expect(etag).toBe(`W/"${bytes.length.toString(16)}-${sha1}"`);
    expect(Number(first.headers["content-length"])).toBe(bytes.length);
    const again = await request(h.app).get("/mastery/s3").set(auth("admin")); // a cache hit
    expect(again.headers.etag).toBe(etag);
    expect(again.text).toBe(first.text);
    const notModified = await request(h.app).get("/mastery/s3").set(auth("admin")).set("if-none-match", etag);
    expect(notModified.status).toBe(304);
    expect(notModified.text).toBe("");
    expect(notModified.headers["content-type"]).toBeUndefined();
    const other = await request(h.app).get("/mastery/s3").set(auth("admin")).set("if-none-match", 'W/"0-x"');
    expect(other.status).toBe(200);
    const head = await request(h.app).head("/mastery/s3").set(auth("admin"));
    expect(head.status).toBe(200);
    expect(head.headers.etag).toBe(etag);
    expect(head.headers["content-length"]).toBe(String(bytes.length));
    expect(head.text ?? "").toBe("");
    const post = await request(h.app)
      .post("/events")
      .set(auth("admin"))
      .send([quiz("etag-1", "s3", "T1", true, 40)]);
    expect(post.status).toBe(200);
    const after = await request(h.app).get("/mastery/s3").set(auth("admin")).set("if-none-match", etag);
    expect(after.status).toBe(200);
    expect(after.headers.etag).not.toBe(etag);
    expect(after.body.topics.map((t: { topicId: string }) => t.topicId)).toContain("T1");
    // The cached body's topic scores (what /recommendations and the class view read) are the JSON's.
    const served = await h.ctx.masteryBody(after.body.studentKey as string);
    const topics = after.body.topics as Record<string, unknown>[];
    expect(served.topics).toEqual(
      topics.map((t) => ({ topicId: t.topicId, score: t.score, scoreSource: t.scoreSource })),
    );
    expect(served.topics.find((t) => t.topicId === "T1")?.score).toBeGreaterThan(0);
  });

  it("GET history lists every change in order", async () => {
    const res = await request(h.app).get("/mastery/s1/T1/history").set(auth("student"));
    expect(res.status).toBe(200);
    expect(res.body.history.length).toBeGreaterThanOrEqual(2);
    expect(res.body.history.map((x: { scoreSource: string }) => x.scoreSource)).toContain("bkt");
  });

  it("GET history from the history cache: a hit is the miss byte for byte (ETag, 304, HEAD); a POST drops it", async () => {
    const path = "/mastery/s4/T1/history";
    expect(
      (
        await request(h.app)
          .post("/events")
          .set(auth("admin"))
          .send([quiz("hc-1", "s4", "T1", true, 50)])
      ).status,
    ).toBe(200);
    const miss = await request(h.app).get(path).set(auth("admin"));
    expect(miss.status).toBe(200);
    expect(miss.body.history.length).toBeGreaterThanOrEqual(1);
    const hit = await request(h.app).get(path).set(auth("admin"));
    expect(hit.text).toBe(miss.text);
    for (const name of ["etag", "content-type", "content-length"])
      expect(hit.headers[name]).toBe(miss.headers[name]);
    expect(miss.headers["content-type"]).toBe("application/json; charset=utf-8");
    // Express's own ETag of the same text (the uncached route's res.send).
    const sha = createHash("sha1").update(miss.text, "utf8").digest("base64").slice(0, 27);
    expect(hit.headers.etag).toBe(`W/"${Buffer.byteLength(miss.text).toString(16)}-${sha}"`);
    const notModified = await request(h.app)
      .get(path)
      .set(auth("admin"))
      .set("if-none-match", hit.headers.etag!);
    expect(notModified.status).toBe(304);
    const head = await request(h.app).head(path).set(auth("admin"));
    expect([head.status, head.headers["content-length"]]).toEqual([200, miss.headers["content-length"]]);
    // A write of the student (another topic too) drops the student's histories: the next read sees the write.
    const before = miss.body.history.length as number;
    expect(
      (
        await request(h.app)
          .post("/events")
          .set(auth("admin"))
          .send([quiz("hc-2", "s4", "T1", false, 51)])
      ).status,
    ).toBe(200);
    const after = await request(h.app).get(path).set(auth("admin"));
    expect(after.body.history.length).toBeGreaterThan(before);
    expect(after.headers.etag).not.toBe(miss.headers.etag);
    const t2 = await request(h.app).get(path).set(auth("admin"));
    expect(
      (
        await request(h.app)
          .post("/events")
          .set(auth("admin"))
          .send([quiz("hc-3", "s4", "T2", true, 52)])
      ).status,
    ).toBe(200);
    const other = await request(h.app).get(path).set(auth("admin"));
    expect(other.text).toBe(t2.text); // T1's history itself did not change
    expect(
      (await request(h.app).get("/mastery/s4/T2/history").set(auth("admin"))).body.history.length,
    ).toBeGreaterThan(0);
  });

  it("GET /mastery/:id/history answers many topics at once, each list equal to the per-topic route's", async () => {
    const all = await request(h.app).get("/mastery/s1/history").set(auth("parent"));
    expect(all.status).toBe(200);
    const ids = all.body.topics.map((t: { topicId: string }) => t.topicId);
    // s1 has history in T1 and T2 (quizzes) and more after the routes above; sorted by id.
    expect(ids).toEqual([...ids].sort());
    expect(ids).toEqual(expect.arrayContaining(["T1", "T2"]));
    for (const topic of ["T1", "T2"]) {
      const one = await request(h.app).get(`/mastery/s1/${topic}/history`).set(auth("parent"));
      const batched = all.body.topics.find((t: { topicId: string }) => t.topicId === topic);
      expect(batched.history).toEqual(one.body.history);
      expect(batched.history.length).toBeGreaterThanOrEqual(2);
    }
    expect(all.body.studentKey).toBe(
      (await request(h.app).get("/mastery/s1").set(auth("parent"))).body.studentKey,
    );
    // ?topics= keeps the order asked, drops duplicates, and answers an unknown topic with [].
    const some = await request(h.app).get("/mastery/s1/history?topics=T2,NOPE,T1,T2").set(auth("admin"));
    expect(some.status).toBe(200);
    expect(some.body.topics.map((t: { topicId: string }) => t.topicId)).toEqual(["T2", "NOPE", "T1"]);
    expect(some.body.topics[1].history).toEqual([]);
    const bad = await request(h.app).get("/mastery/s1/history?topics=T1,,T2").set(auth("admin"));
    expect(bad.status).toBe(400);
    expect(bad.body).toMatchObject({ error: "invalid_query", field: "topics" });
    const twice = await request(h.app).get("/mastery/s1/history?topics=T1&topics=T2").set(auth("admin"));
    expect(twice.status).toBe(400);
  });

  it("GET /mastery?include=history: the same body plus each served topic's history, in one request", async () => {
    const plain = await request(h.app).get("/mastery/s1").set(auth("student"));
    const withHist = await request(h.app).get("/mastery/s1?include=history").set(auth("student"));
    expect(withHist.status).toBe(200);
    const { histories, ...rest } = withHist.body;
    expect(rest).toEqual(plain.body);
    const batched = await request(h.app).get("/mastery/s1/history").set(auth("student"));
    const served = plain.body.topics.map((t: { topicId: string }) => t.topicId);
    expect(histories.map((x: { topicId: string }) => x.topicId)).toEqual(served);
    for (const x of histories) {
      const b = batched.body.topics.find((y: { topicId: string }) => y.topicId === x.topicId);
      expect(x.history).toEqual(b?.history ?? []);
    }
    expect(histories.some((x: { history: unknown[] }) => x.history.length >= 2)).toBe(true);
    const bad = await request(h.app).get("/mastery/s1?include=everything").set(auth("student"));
    expect(bad.status).toBe(400);
    expect(bad.body).toMatchObject({ error: "invalid_query", field: "include" });
    expect(bad.body.reason).toMatch(/include may only be history/);
    // Ownership is checked before anything is read.
    expect((await request(h.app).get("/mastery/s2?include=history").set(auth("student"))).status).toBe(403);
  });

  it("a student may be named by key:<student_key> (class-view links), under the same access rules", async () => {
    const own = await request(h.app).get("/mastery/s1").set(auth("admin"));
    const ref = `key:${own.body.studentKey as string}`;
    const byKey = await request(h.app).get(`/mastery/${ref}`).set(auth("teacher"));
    expect(byKey.status).toBe(200);
    expect(byKey.body).toEqual((await request(h.app).get("/mastery/s1").set(auth("teacher"))).body);
    const hist = await request(h.app).get(`/mastery/${ref}/history`).set(auth("student"));
    expect(hist.status).toBe(200);
    // s2's key: the teacher of class A only, and s1's parent, are refused as with the raw id.
    const other = await request(h.app).get("/mastery/s2").set(auth("admin"));
    const otherRef = `key:${other.body.studentKey as string}`;
    expect((await request(h.app).get(`/mastery/${otherRef}`).set(auth("teacher"))).status).toBe(403);
    expect((await request(h.app).get(`/mastery/${otherRef}/history`).set(auth("parent"))).status).toBe(403);
    // Anything else (wrong length, upper case) is a raw id and pseudonymized as usual.
    const notKey = await request(h.app)
      .get(`/mastery/key:${"A".repeat(32)}`)
      .set(auth("admin"));
    expect(notKey.status).toBe(200);
    expect(notKey.body.studentKey).not.toBe("a".repeat(32));
    expect(notKey.body.topics).toEqual([]);
  });

  it("bodies are validated: errors are {error, field, reason}", async () => {
    const fb = await request(h.app)
      .post("/feedback")
      .set(auth("admin"))
      .send({ studentId: "s1", topicId: "T1", mastery: 2, reason: "x" });
    expect(fb.status).toBe(400);
    expect(fb.body).toMatchObject({ error: "invalid_body", field: "mastery" });
    const bad = await request(h.app)
      .post("/events")
      .set(auth("admin"))
      .set("content-type", "application/json")
      .send("{not json");
    expect(bad.status).toBe(400);
    expect(bad.body.error).toBe("invalid_json");
    const notBatch = await request(h.app).post("/events").set(auth("admin")).send({ foo: 1 });
    expect(notBatch.status).toBe(400);
    expect(notBatch.body.field).toBe("(body)");
  });

  it("POST /events reports accepted / duplicate / rejected per item (207)", async () => {
    const res = await request(h.app)
      .post("/events")
      .set(auth("admin"))
      .send([
        quiz("e1", "s1", "T1", true, 1),
        quiz("n1", "s1", "T3", true, 40),
        { ...quiz("n2", "s1", "T3", true, 41), time_spent_sec: -3 },
        quiz("n1", "s1", "T3", false, 42),
      ]);
    expect(res.status).toBe(207);
    expect(res.body.items.map((i: { status: string }) => i.status)).toEqual([
      "duplicate",
      "accepted",
      "rejected",
      "duplicate",
    ]);
    expect(res.body.items[2].errors[0]).toEqual({
      field: "time_spent_sec",
      reason: "quiz_attempt.time_spent_sec must be >= 0 (got -3)",
    });
  });

  it("health, readiness, security headers", async () => {
    expect((await request(h.app).get("/healthz")).status).toBe(200);
    const ready = await request(h.app).get("/readyz");
    expect(ready.status).toBe(200);
    expect(ready.headers["x-content-type-options"]).toBe("nosniff");
    expect(ready.headers["content-security-policy"]).toBeDefined();
    const metrics = await request(h.app).get("/metrics").set(auth("admin"));
    expect(metrics.text).toMatch(
      /mastery_http_requests_total\{method="GET",route="\/mastery\/:studentId",status="200"\}/,
    );
  });
});
