import request from "supertest";
import { afterAll, describe, expect, it } from "vitest";
import { Pseudonymizer } from "../../features/pseudonymize.ts";
import type { AppHandle } from "../../serving/app.ts";
import { recompute } from "../../serving/recompute.ts";
import { startWorker } from "../../serving/streamWorker.ts";
import { PgStore } from "../../storage/postgres.ts";
import { PSEUDO_KEY, quiz, storeWithTopics, testApp, token } from "./appFixture.ts";
import { DEFAULT_MODELS, PG_URL, pgServingBackends } from "./streamHarness.ts";

/**
 * `mastery serve` on real PostgreSQL + Redis (+ NATS JetStream): POST /events goes through the
 * IncrementalUpdater on the worker's stores, and GET /mastery / history / recommendations read them
 * back. Each run gets its own PG schema, Redis prefix and NATS stream, dropped at the end.
 */

type Mastery = {
  topics: {
    topicId: string;
    name: string | null;
    chapterId: string | null;
    score: number;
    scoreSource: string;
    scores: Record<string, { score: number }>;
  }[];
  rollups: { scoreSource: string | null; chapter: { id: string; score: number; topicsScored: number }[] };
};

const EVENTS = [
  quiz("e1", "s1", "T1", true, 1),
  quiz("e2", "s1", "T1", false, 2),
  quiz("e3", "s1", "T1", true, 3),
  quiz("e4", "s1", "T2", false, 4),
  quiz("e5", "s2", "T1", true, 5),
];

/** The topic hierarchy of appFixture.storeWithTopics, in the PostgreSQL schema. */
async function pgTopics(schema: string): Promise<void> {
  const pg = await PgStore.open(PG_URL, { schema, coreTables: true });
  const rows: [string, string, string[], number][] = [
    ["T1", "C1", [], 10],
    ["T2", "C1", ["T1"], 10],
    ["T3", "C1", ["T2"], 20],
    ["T4", "C2", [], 10],
  ];
  for (const [id, chapter, prereq, len] of rows)
    await pg.allArrays(
      "INSERT INTO topics VALUES ($1, $1, $2, 'S1', 'K1', 0, $3::varchar[], $4) ON CONFLICT DO NOTHING",
      [id, chapter, prereq, len],
    );
  await pg.close();
}

describe("mastery serve on PostgreSQL + Redis", () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterAll(async () => {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
  });

  async function serviceApp(label: string, viaStream = false) {
    const { id, duck, backends } = await pgServingBackends(label, cleanups, {
      viaStream,
      beforeOpen: pgTopics,
    });
    const h: AppHandle = await testApp(duck, backends.deps);
    // Runs before the backends' cleanup (cleanups run in reverse): the app's after-the-answer work
    // (the raw-row copy, alert checks) must finish before its DuckDB is closed under it.
    cleanups.push(() => h.drain());
    return { id, backends, h, duck };
  }

  it("POST /events is applied to PG + Redis; GET /mastery, history and recommendations read them back", async () => {
    const { backends, h, duck } = await serviceApp("srvpg");
    expect(h.ctx.read.kind).toBe("postgres");
    const admin = { authorization: `Bearer ${await token({ role: "admin", sub: "root" })}` };
    const post = await request(h.app).post("/events").set(admin).send(EVENTS);
    expect(post.status).toBe(200);
    expect(post.body.accepted).toBe(5);
    expect(post.body.updatedKeys).toBe(3);
    // The server's DuckDB holds a copy of the applied raw rows (class membership, /quality read it),
    // written after the answer (serving/rawMirror.ts): drain() waits for it.
    await h.drain();
    const mirrored = await duck.all<{ n: number }>(
      "SELECT count(DISTINCT event_id)::INTEGER AS n FROM raw_events",
    );
    expect(mirrored[0]!.n).toBe(5);

    const stores = backends.stores!;
    // The scores are in PostgreSQL and the state in Redis, and both equal a full replay of raw_events.
    const report = await recompute(stores, DEFAULT_MODELS);
    expect(report.ok).toBe(true);
    expect(report.keys).toBe(3);
    const key = new Pseudonymizer(PSEUDO_KEY).studentKey("s1");
    const stored = await stores.mastery.forStudent(key);
    expect(stored.map((r) => `${r.topic_id}/${r.score_source}`)).toEqual([
      "T1/bkt",
      "T1/elo",
      "T2/bkt",
      "T2/elo",
    ]);

    const get = await request(h.app).get("/mastery/s1").set(admin);
    expect(get.status).toBe(200);
    const body = get.body as Mastery;
    expect(body.topics.map((t) => t.topicId)).toEqual(["T1", "T2"]);
    for (const t of body.topics) {
      for (const src of ["bkt", "elo"]) {
        const row = stored.find((r) => r.topic_id === t.topicId && r.score_source === src)!;
        expect(t.scores[src]!.score).toBe(row.mastery_score);
      }
      expect(t.scoreSource).toBe("bkt"); // DEFAULT_SOURCE_ORDER: bkt before elo
      expect(t.chapterId).toBe("C1"); // topic metadata joined from PostgreSQL
    }
    // Rollup over C1 from PG topics: content_length 10 each, so the plain mean of the two bkt scores.
    const t1 = body.topics[0]!.scores.bkt!.score;
    const t2 = body.topics[1]!.scores.bkt!.score;
    expect(body.rollups.chapter).toHaveLength(1);
    expect(body.rollups.chapter[0]).toMatchObject({ id: "C1", topicsScored: 2, topicsTotal: 3 });
    expect(body.rollups.chapter[0]!.score).toBeCloseTo((t1 + t2) / 2, 12);

    // Same events through the embedded default give the same scores.
    const local = await storeWithTopics();
    const lh = await testApp(local);
    expect((await request(lh.app).post("/events").set(admin).send(EVENTS)).status).toBe(200);
    const lbody = (await request(lh.app).get("/mastery/s1").set(admin)).body as Mastery;
    expect(lbody.topics.map((t) => [t.topicId, t.scores.bkt!.score, t.scores.elo!.score])).toEqual(
      body.topics.map((t) => [t.topicId, t.scores.bkt!.score, t.scores.elo!.score]),
    );
    await lh.drain();
    local.close();

    // History from student_mastery_history in PostgreSQL: one row per source per committed batch.
    const hist = await request(h.app).get("/mastery/s1/T1/history").set(admin);
    expect(hist.status).toBe(200);
    const bktHist = (hist.body.history as { scoreSource: string; score: number }[]).filter(
      (x) => x.scoreSource === "bkt",
    );
    expect(bktHist.map((x) => x.score)).toEqual([t1]);
    // The batched route reads the same PostgreSQL table in one query.
    const many = await request(h.app).get("/mastery/s1/history").set(admin);
    expect(many.status).toBe(200);
    const manyT1 = (many.body.topics as { topicId: string; history: unknown[] }[]).find(
      (t) => t.topicId === "T1",
    );
    expect(manyT1?.history).toEqual(hist.body.history);

    // Recommendations: abilities come from learner_state in Redis.
    const [state] = await stores.state.load([{ studentKey: key, topicId: "T2", eventIds: [] }]);
    const rec = await request(h.app).get("/recommendations/s1").set(admin);
    expect(rec.status).toBe(200);
    const recs = rec.body.recommendations as { topicId: string; ability: number; reason: string }[];
    const r2 = recs.find((r) => r.topicId === "T2");
    expect(r2?.ability).toBe(state!.state!.eloAbility);
    expect(r2?.ability).toBeLessThan(0); // one wrong answer from ability 0
  });

  it("POST /feedback on PG + Redis: the teacher override is written to PostgreSQL and served at once", async () => {
    const { backends, h, duck } = await serviceApp("srvfb");
    const admin = { authorization: `Bearer ${await token({ role: "admin", sub: "root" })}` };
    expect((await request(h.app).post("/events").set(admin).send(EVENTS)).status).toBe(200);
    const before = (await request(h.app).get("/mastery/s1").set(admin)).body as Mastery;
    const served = before.topics.find((t) => t.topicId === "T1")!;
    const fb = await request(h.app)
      .post("/feedback")
      .set(admin)
      .send({ studentId: "s1", topicId: "T1", mastery: 0.9, reason: "oral exam" });
    expect(fb.status).toBe(201);
    // The replaced score is the one that was served (read from PostgreSQL, not the server's file).
    expect(fb.body.previousScore).toBe(served.score);
    expect(fb.body.previousSource).toBe(served.scoreSource);

    const key = new Pseudonymizer(PSEUDO_KEY).studentKey("s1");
    const stored = await backends.stores!.mastery.forStudent(key);
    const override = stored.find((r) => r.topic_id === "T1" && r.score_source === "teacher_override");
    expect(override?.mastery_score).toBe(0.9);
    // Its explanation keeps base + contribution = score, with the served score as the base.
    const exp = JSON.parse(override!.explanation) as { base: number; factors: { contribution: number }[] };
    expect(exp.base + exp.factors.reduce((a, f) => a + f.contribution, 0)).toBeCloseTo(0.9, 12);
    // No served score in the server's file; the label and audit rows are there.
    const local = await duck.all<{ n: number }>(
      "SELECT count(*)::INTEGER AS n FROM student_mastery WHERE score_source = 'teacher_override'",
    );
    expect(local[0]!.n).toBe(0);
    const labels = await duck.all<{ n: number }>("SELECT count(*)::INTEGER AS n FROM teacher_labels");
    expect(labels[0]!.n).toBe(1);

    const after = (await request(h.app).get("/mastery/s1").set(admin)).body as Mastery;
    const t1 = after.topics.find((t) => t.topicId === "T1")!;
    expect(t1.scoreSource).toBe("teacher_override");
    expect(t1.score).toBe(0.9);
    // A new event moves the model scores but never replaces the override.
    expect(
      (
        await request(h.app)
          .post("/events")
          .set(admin)
          .send([quiz("e9", "s1", "T1", false, 9)])
      ).status,
    ).toBe(200);
    const later = (await request(h.app).get("/mastery/s1").set(admin)).body as Mastery;
    expect(later.topics.find((t) => t.topicId === "T1")!.score).toBe(0.9);
    const hist = await request(h.app).get("/mastery/s1/T1/history").set(admin);
    expect(
      (hist.body.history as { scoreSource: string }[]).filter((x) => x.scoreSource === "teacher_override"),
    ).toHaveLength(1);
  });

  it("--via-stream: POST /events publishes to NATS, an in-process worker applies, GET /mastery shows it", async () => {
    const { backends, h } = await serviceApp("srvns", true);
    const admin = { authorization: `Bearer ${await token({ role: "admin", sub: "root" })}` };
    const post = await request(h.app).post("/events").set(admin).send(EVENTS);
    expect(post.status).toBe(200);
    expect(post.body.accepted).toBe(5);
    expect(post.body.updatedKeys).toBe(0); // published, not applied yet
    const before = (await request(h.app).get("/mastery/s1").set(admin)).body as Mastery;
    expect(before.topics).toEqual([]);

    const stores = backends.stores!;
    const worker = await startWorker({
      bus: backends.bus!,
      updater: h.ctx.updater,
      raw: stores.raw,
      pseudonymizer: new Pseudonymizer(PSEUDO_KEY),
      maxBatch: 100,
    });
    cleanups.push(() => worker.stop());
    let body: Mastery = before;
    for (let i = 0; i < 200 && body.topics.length < 2; i++) {
      await new Promise((r) => setTimeout(r, 50));
      body = (await request(h.app).get("/mastery/s1").set(admin)).body as Mastery;
    }
    expect(body.topics.map((t) => t.topicId)).toEqual(["T1", "T2"]);
    // Wait for s2's key too, then everything equals a replay.
    for (let i = 0; i < 200 && worker.stats.applied + worker.stats.replayed < 5; i++)
      await new Promise((r) => setTimeout(r, 50));
    await worker.stop();
    const report = await recompute(stores, DEFAULT_MODELS);
    expect(report.ok).toBe(true);
    expect(report.keys).toBe(3);
    const stored = await stores.mastery.forStudent(new Pseudonymizer(PSEUDO_KEY).studentKey("s1"));
    for (const t of body.topics)
      expect(t.scores.bkt!.score).toBe(
        stored.find((r) => r.topic_id === t.topicId && r.score_source === "bkt")!.mastery_score,
      );

    // A retry of the same batch is all duplicates here, re-published and dropped (msgId / processed set).
    const again = await request(h.app).post("/events").set(admin).send(EVENTS);
    expect(again.body.duplicate).toBe(5);
  });
});
