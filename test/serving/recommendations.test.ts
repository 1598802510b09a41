import fc from "fast-check";
import request from "supertest";
import { describe, expect, it } from "vitest";
import { Pseudonymizer } from "../../features/pseudonymize.ts";
import { eloProbability } from "../../models/elo.ts";
import { logit, recommend, targetDifficulty } from "../../serving/recommendations.ts";
import { PSEUDO_KEY, storeWithTopics, testApp, token } from "./appFixture.ts";

describe("targetDifficulty", () => {
  it("logit(0.7) = ln(7/3) = 0.8472978603872037", () => {
    expect(logit(0.7)).toBeCloseTo(0.8472978603872037, 15);
    expect(targetDifficulty(1.2)).toBeCloseTo(1.2 - 0.8472978603872037, 15);
  });
  it("an item of the target difficulty has P(success) = p under the Elo model", () => {
    fc.assert(
      fc.property(
        fc.double({ min: -5, max: 5, noNaN: true }),
        fc.double({ min: 0.05, max: 0.95, noNaN: true }),
        (a, p) => {
          expect(eloProbability(a, targetDifficulty(a, p))).toBeCloseTo(p, 10);
        },
      ),
    );
  });
});

describe("recommend (hand-built graph)", () => {
  // A <- B <- C (C needs B needs A); D alone. Scores: A 0.5, B 0.3, C 0.2, D 0.9; E unscored, E <- C.
  const prerequisites = new Map<string, string[]>([
    ["A", []],
    ["B", ["A"]],
    ["C", ["B", "E"]],
    ["D", []],
    ["E", []],
  ]);
  const scores = new Map([
    ["A", 0.5],
    ["B", 0.3],
    ["C", 0.2],
    ["D", 0.9],
  ]);
  const abilities = new Map([["C", 1.0]]);

  it("puts unmet prerequisites (deepest first) before each weak topic", () => {
    const r = recommend({ prerequisites, scores, abilities });
    // Weakest is C (0.2): its unmet prereqs sorted by score: E (unscored = 0) then B (0.3);
    // B needs A (0.5 < 0.7) first. Then B and A are already listed; D is mastered.
    expect(r.map((x) => [x.topicId, x.reason, x.forTopic])).toEqual([
      ["E", "prerequisite", "C"],
      ["A", "prerequisite", "B"],
      ["B", "prerequisite", "C"],
      ["C", "weak", null],
    ]);
    const c = r[3]!;
    expect(c.unmetPrerequisites).toEqual(["E", "B"]);
    expect(c.targetDifficulty).toBeCloseTo(1 - 0.8472978603872037, 15);
    expect(r[0]!.targetDifficulty).toBeCloseTo(-0.8472978603872037, 15);
  });

  it("survives a prerequisite cycle", () => {
    const cyc = new Map([
      ["X", ["Y"]],
      ["Y", ["X"]],
    ]);
    const r = recommend({
      prerequisites: cyc,
      scores: new Map([
        ["X", 0.1],
        ["Y", 0.2],
      ]),
      abilities: new Map(),
    });
    expect(r.map((x) => x.topicId).sort()).toEqual(["X", "Y"]);
  });
});

describe("GET /recommendations on a hand-built store", () => {
  it("returns the known order with target difficulties from learner_state", async () => {
    const store = await storeWithTopics();
    const h = await testApp(store);
    const key = new Pseudonymizer(PSEUDO_KEY).studentKey("s9");
    // Served scores via teacher overrides: T1 0.5, T2 0.3, T3 0.2, T4 0.95 (T3 needs T2 needs T1).
    const teacher = await token({ role: "admin", sub: "root" });
    for (const [t, m] of [
      ["T1", 0.5],
      ["T2", 0.3],
      ["T3", 0.2],
      ["T4", 0.95],
    ] as const) {
      const r = await request(h.app)
        .post("/feedback")
        .set("authorization", `Bearer ${teacher}`)
        .send({ studentId: "s9", topicId: t, mastery: m, reason: "test" });
      expect(r.status).toBe(201);
    }
    await store.run(
      `INSERT INTO learner_state_base VALUES ($1, 'T3', 0.2, 0.5, 3, 3, NULL, NULL, 0, now()::TIMESTAMP, 1, 0,0,0,0,0,0,0,0, 'default', 'default', 0.8, 3, NULL, NULL, NULL, NULL)`,
      [key],
    );
    const res = await request(h.app).get("/recommendations/s9").set("authorization", `Bearer ${teacher}`);
    expect(res.status).toBe(200);
    expect(res.body.recommendations.map((x: { topicId: string }) => x.topicId)).toEqual(["T1", "T2", "T3"]);
    expect(res.body.recommendations[2].targetDifficulty).toBeCloseTo(0.5 - 0.8472978603872037, 12);
    store.close();
  });
});
