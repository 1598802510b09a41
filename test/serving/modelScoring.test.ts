import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import request from "supertest";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Pseudonymizer } from "../../features/pseudonymize.ts";
import { BKT } from "../../models/bkt.ts";
import { explanationTotal } from "../../models/explanation.ts";
import { applyEvent, bktMastery, initialLearnerState } from "../../models/learnerState.ts";
import type { AppHandle } from "../../serving/app.ts";
import { loadQuizLog, topicParamsResolver } from "../../serving/learnerState.ts";
import type { DuckStore } from "../../storage/duckdb.ts";
import { type BlendAttemptModel, trainAttemptModel } from "../../training/blendTrain.ts";
import { virtualAttemptLog } from "../../training/kinds/attemptScoring.ts";
import type { ResponseLog } from "../../training/responses.ts";
import { syntheticAttempts } from "../training/attemptLog.ts";
import { PSEUDO_KEY, quiz, registryApp } from "./appFixture.ts";

const pseudo = new Pseudonymizer(PSEUDO_KEY);

describe("virtualAttemptLog", () => {
  it("gives each target topic its own copy of the attempts followed by one virtual attempt on it", () => {
    const attempts = [
      { topicId: "T1", questionId: "a", correct: true },
      { topicId: "T2", questionId: null, correct: false },
    ];
    const { log, virtualRows } = virtualAttemptLog(attempts, ["T2", "T3"]);
    expect(log.n).toBe(6);
    expect([...log.userStart]).toEqual([0, 3, 6]);
    expect([...virtualRows]).toEqual([2, 5]);
    expect([...log.user]).toEqual([0, 0, 0, 1, 1, 1]);
    expect(log.skillNames).toEqual(["T1", "T2", "T3"]);
    expect([...log.skill]).toEqual([0, 1, 1, 0, 1, 2]);
    expect([...log.item]).toEqual([0, -1, -1, 0, -1, -1]);
    expect([...log.correct]).toEqual([1, 0, 0, 1, 0, 0]);
  });
});

describe("GET /mastery with the model registry", () => {
  let store: DuckStore;
  let h: AppHandle;
  let admin: string;
  let modelDir: string;
  const events = [
    quiz("e1", "s1", "T1", true, 1),
    quiz("e2", "s1", "T1", false, 2),
    quiz("e3", "s1", "T1", true, 3),
    quiz("e4", "s1", "T2", false, 4),
    quiz("e5", "s2", "T1", true, 5),
    quiz("e6", "s2", "T2", true, 6),
  ];

  beforeAll(async () => {
    ({ store, h, admin, modelDir } = await registryApp("serving", events));
  });
  afterAll(() => store.close());

  const get = (student: string) =>
    request(h.app).get(`/mastery/${student}`).set("authorization", `Bearer ${admin}`);

  it("with no champion, still serves the stored scores and says no ML model is served", async () => {
    const res = await get("s1");
    expect(res.status).toBe(200);
    expect(res.body.servedModel.status).toBe("none");
    expect(res.body.servedModel.modelVersion).toBeNull();
    expect(res.body.servedModel.reason).toMatch(/no ML model is served/);
    expect(res.body.topics.map((t: { topicId: string }) => t.topicId)).toEqual(["T1", "T2"]);
    for (const t of res.body.topics) {
      expect(t.model).toBeNull();
      expect(t.scoreSource).toBe("bkt");
    }
  });

  it("a bkt champion scores each topic by replaying the attempts with its parameters (known answer)", async () => {
    const log = await loadQuizLog(store);
    const bkt = new BKT({ restarts: 1, seed: 7 }).fit(log);
    const dir = join(modelDir, "bkt");
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, "model.json"), JSON.stringify(bkt.toJSON()));
    const v = await h.ctx.gate.run(() =>
      h.ctx.registry.register({ name: "mastery", dir, actor: "test", codeCommit: "abc" }),
    );
    const moved = await request(h.app)
      .post("/models/mastery/aliases/champion")
      .set("authorization", `Bearer ${admin}`)
      .send({ version: v.version, reason: "first champion", force: true });
    expect(moved.status).toBe(201);

    const res = await get("s1");
    expect(res.body.servedModel).toMatchObject({
      status: "served",
      modelName: "mastery",
      modelVersion: "mastery@1",
      kind: "bkt",
      scoreSource: "bkt",
      experimentArm: null,
    });
    // Expected: the fold of models/learnerState.ts with the champion's T1 parameters over s1's T1 attempts.
    const params = topicParamsResolver({ bkt, elo: undefined })("T1");
    let s = initialLearnerState(params);
    for (const [i, c] of [
      ["e1", true],
      ["e2", false],
      ["e3", true],
    ] as const)
      s = applyEvent(s, { eventId: i, type: "quiz_attempt", ts: 0, isCorrect: c, questionId: null }, params);
    const expected = bktMastery(s, params).score;
    const t1 = res.body.topics.find((t: { topicId: string }) => t.topicId === "T1");
    expect(t1.model.score).toBeCloseTo(expected, 12);
    expect(t1.model.served).toBe(true);
    expect(t1.score).toBeCloseTo(expected, 12);
    expect(t1.modelVersion).toBe("mastery@1");
    expect(explanationTotal(t1.explanation)).toBeCloseTo(t1.score, 12);
  });

  it("a teacher override still wins over the registry score", async () => {
    const fb = await request(h.app)
      .post("/feedback")
      .set("authorization", `Bearer ${admin}`)
      .send({ studentId: "s2", topicId: "T2", mastery: 0.25, reason: "oral exam" });
    expect(fb.status).toBe(201);
    const res = await get("s2");
    const t2 = res.body.topics.find((t: { topicId: string }) => t.topicId === "T2");
    expect(t2.scoreSource).toBe("teacher_override");
    expect(t2.score).toBe(0.25);
    expect(t2.model.served).toBe(false);
  });

  it("a blend champion scores P(correct) on a new item of the topic after all attempts, with its explanation", async () => {
    // Train a small blend on synthetic attempts whose skills are the store's topics.
    // Skill k<d> becomes topic T<d+1>; item q<m> (5 per skill) becomes T<m/5+1>-q<m%5>, as the fixture names them.
    const rows = syntheticAttempts(40, 25, 3, 4, 5).map(([u, sk, it, c]) => {
      const m = Number(it.slice(1));
      return `${u}\tT${Math.floor(m / 5) + 1}-q${m % 5}\t${c}\tT${Number(sk.slice(1)) + 1}`;
    });
    const data = join(modelDir, "blend.tsv");
    writeFileSync(data, `student\tq\tok\tkc\n${rows.join("\n")}\n`);
    const trained = await trainAttemptModel({
      kind: "blend",
      data,
      columns: { user: "student", skill: "kc", correct: "ok", item: "q" },
      out: join(modelDir, "blend"),
      folds: 3,
      threads: 1,
      gbt: { nRounds: 8 },
      mlp: { maxEpochs: 3, hidden: [8] },
    });
    const v = await h.ctx.gate.run(() =>
      h.ctx.registry.register({
        name: "mastery",
        dir: join(modelDir, "blend"),
        actor: "test",
        codeCommit: "abc",
      }),
    );
    expect(v.version).toBe(2);
    const moved = await request(h.app)
      .post("/models/mastery/aliases/champion")
      .set("authorization", `Bearer ${admin}`)
      .send({ version: 2, reason: "blend", force: true });
    expect(moved.status).toBe(201);

    const res = await get("s1");
    expect(res.body.servedModel).toMatchObject({
      modelVersion: "mastery@2",
      kind: "blend",
      scoreSource: "blend",
    });
    // Independent construction: s1's attempts (all topics, in time order) plus one attempt on the topic
    // with an unknown item, as one user; the prediction of that last row.
    const model = trained.model as BlendAttemptModel;
    const s1 = events.filter((e) => e.student_id === "s1");
    for (const topic of ["T1", "T2"]) {
      const skills = [...new Set([...s1.map((e) => e.topic_id as string), topic])];
      const items = [...new Set(s1.map((e) => e.question_id as string))];
      const n = s1.length + 1;
      const log: ResponseLog = {
        n,
        user: new Int32Array(n),
        skill: Int32Array.from([
          ...s1.map((e) => skills.indexOf(e.topic_id as string)),
          skills.indexOf(topic),
        ]),
        item: Int32Array.from([...s1.map((e) => items.indexOf(e.question_id as string)), -1]),
        correct: Uint8Array.from([...s1.map((e) => (e.is_correct ? 1 : 0)), 0]),
        userNames: ["s1"],
        skillNames: skills,
        itemNames: items,
        userStart: Int32Array.from([0, n]),
      };
      const expected = model.predictLog(log)[n - 1]!;
      const t = res.body.topics.find((x: { topicId: string }) => x.topicId === topic);
      expect(t.model.score).toBeCloseTo(expected, 10);
      expect(t.score).toBeCloseTo(expected, 10);
      expect(t.scoreSource).toBe("blend");
      expect(t.modelVersion).toBe("mastery@2");
      expect(explanationTotal(t.explanation)).toBeCloseTo(t.score, 10);
      expect(t.model.detail.gbtTopFeatures).toHaveLength(3);
    }
    // Rollups follow the served (blend) scores.
    expect(res.body.rollups.scoreSource).toBe("blend");
    expect(pseudo.studentKey("s1")).toBe(res.body.studentKey);
  });
});
