import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import request from "supertest";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { explanationTotal, type Factor } from "../../models/explanation.ts";
import type { AppHandle } from "../../serving/app.ts";
import type { DuckStore } from "../../storage/duckdb.ts";
import { kindOf } from "../../training/kinds.ts";
import type { KindParams } from "../../training/modelKind.ts";
import { makeLog, syntheticAttempts } from "../training/attemptLog.ts";
import { quiz, storeWithTopics, testApp, token } from "./appFixture.ts";

/**
 * Every served score carries its explanation (issue 13 item 2): a champion of each kind is trained,
 * registered and promoted over REST, and GET /mastery must give every topic of the student a non-empty
 * top-3 explanation that sums to the served score — for gbt the TreeSHAP features of the served row
 * (with readable labels), for mlp integrated gradients, for the blend its sources. The dashboard's Why
 * column renders `label ?? name` of each factor (serving/dashboard/public/student.js), so it is never
 * empty when the factors are not.
 */
const SMALL: Record<string, KindParams> = {
  rule: {},
  gbt: { gbt: { nRounds: 20, maxDepth: 3, maxBins: 16 } },
  mlp: { mlp: { hidden: [8], maxEpochs: 3 } },
  blend: { gbt: { nRounds: 10, maxDepth: 3, maxBins: 16 }, mlp: { hidden: [6], maxEpochs: 2 } },
};

describe("served explanations for every ML kind", () => {
  let store: DuckStore;
  let h: AppHandle;
  let admin: string;
  const root = mkdtempSync(join(tmpdir(), "served-expl-"));
  const events = [
    quiz("e1", "s1", "T1", true, 1),
    quiz("e2", "s1", "T1", false, 2),
    quiz("e3", "s1", "T1", true, 3),
    quiz("e4", "s1", "T2", false, 4),
    quiz("e5", "s1", "T2", true, 5),
  ];
  // Training data whose skills and items are the fixture's topics and questions.
  const log = makeLog(
    syntheticAttempts(60, 25, 3, 4, 5).map(([u, sk, it, c]) => {
      const m = Number(it.slice(1));
      return [u, `T${Number(sk.slice(1)) + 1}`, `T${Math.floor(m / 5) + 1}-q${m % 5}`, c] as const;
    }),
  );

  beforeAll(async () => {
    store = await storeWithTopics();
    h = await testApp(store, { artifactBase: join(root, "a"), modelCacheDir: join(root, "cache") });
    admin = await token({ role: "admin", sub: "root" });
    const res = await request(h.app).post("/events").set("authorization", `Bearer ${admin}`).send(events);
    expect(res.status).toBe(200);
  });
  afterAll(() => store.close());

  let version = 0;
  for (const kind of ["gbt", "mlp", "blend", "rule"]) {
    it(`${kind} champion: every served topic has factors that sum to its score`, async () => {
      const model = await kindOf(kind).create(SMALL[kind]).fit(log, { seed: 3 });
      const dir = join(root, kind);
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, "model.json"), JSON.stringify(model.toJSON()));
      const v = await h.ctx.gate.run(() =>
        h.ctx.registry.register({ name: "mastery", dir, actor: "test", codeCommit: "abc" }),
      );
      version += 1;
      expect(v.version).toBe(version);
      const moved = await request(h.app)
        .post("/models/mastery/aliases/champion")
        .set("authorization", `Bearer ${admin}`)
        .send({ version: v.version, reason: kind, force: true });
      expect(moved.status).toBe(201);

      const res = await request(h.app).get("/mastery/s1").set("authorization", `Bearer ${admin}`);
      expect(res.status).toBe(200);
      expect(res.body.servedModel).toMatchObject({
        status: "served",
        kind,
        scoreSource: kindOf(kind).scoreSource,
      });
      const served = (res.body.topics as { topicId: string; model?: { score: number; explanation: never } }[])
        .map((t) => ({ topicId: t.topicId, m: t.model }))
        .filter((t) => t.m !== undefined);
      expect(served.map((t) => t.topicId).sort()).toEqual(expect.arrayContaining(["T1", "T2"]));
      for (const { m } of served) {
        const e = m!.explanation as { base: number; factors: Factor[]; rest: number; score: number };
        expect(e.factors.length).toBeGreaterThan(0);
        expect(e.factors.length).toBeLessThanOrEqual(3);
        expect(Math.abs(explanationTotal(e) - m!.score)).toBeLessThan(1e-9);
        const why = e.factors.map((f) => f.label ?? f.name).join("; ");
        expect(why.length).toBeGreaterThan(0);
        if (kind === "gbt" || kind === "mlp")
          for (const f of e.factors) expect(f.label, f.name).toMatch(/[a-z]+ [a-z(]/i);
      }
      // Same scores as the model itself on the student's attempts (the contract's scoreTopics).
      const attempts = events.map((e) => ({
        topicId: e.topic_id as string,
        questionId: e.question_id as string,
        correct: e.is_correct as boolean,
      }));
      const t1 = served.find((t) => t.topicId === "T1")!.m!;
      expect(t1.score).toBeCloseTo(model.scoreTopics(attempts, ["T1"])[0]!.score, 10);
    });
  }
});
