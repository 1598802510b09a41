import { writeFileSync } from "node:fs";
import { join } from "node:path";
import request from "supertest";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AppHandle } from "../../serving/app.ts";
import type { DuckStore } from "../../storage/duckdb.ts";
import { trainAttemptModel } from "../../training/blendTrain.ts";
import type { GbtAttemptModel } from "../../training/gbtTrain.ts";
import type { ResponseLog } from "../../training/responses.ts";
import { syntheticAttempts } from "../training/attemptLog.ts";
import { quiz, registryApp } from "./appFixture.ts";

describe("serving a time-aware model (trained with time=COL)", () => {
  let store: DuckStore;
  let h: AppHandle;
  let admin: string;
  let modelDir: string;
  const events = [
    quiz("e1", "s1", "T1", true, 1),
    quiz("e2", "s1", "T1", false, 2),
    quiz("e3", "s1", "T1", true, 3),
    quiz("e4", "s1", "T2", false, 4),
  ];

  beforeAll(async () => {
    ({ store, h, admin, modelDir } = await registryApp("serving-time", events));
  });
  afterAll(() => store.close());

  it("passes the stored event times to the feature builder and scores the virtual attempt now", async () => {
    // Synthetic attempts an hour apart (epoch seconds); skills/items named like the fixture's topics.
    const rows = syntheticAttempts(40, 25, 3, 4, 5).map(([u, sk, it, c], k) => {
      const m = Number(it.slice(1));
      return `${u}\tT${Math.floor(m / 5) + 1}-q${m % 5}\t${c}\tT${Number(sk.slice(1)) + 1}\t${1_760_000_000 + k * 3600}`;
    });
    const data = join(modelDir, "gbt.tsv");
    writeFileSync(data, `student\tq\tok\tkc\tt\n${rows.join("\n")}\n`);
    const trained = await trainAttemptModel({
      kind: "gbt",
      data,
      columns: { user: "student", skill: "kc", correct: "ok", item: "q", time: "t" },
      out: join(modelDir, "gbt"),
      folds: 3,
      threads: 1,
      gbt: { nRounds: 8 },
    });
    const model = trained.model as GbtAttemptModel;
    expect(model.context.time).toBe(true);
    const v = await h.ctx.gate.run(() =>
      h.ctx.registry.register({
        name: "mastery",
        dir: join(modelDir, "gbt"),
        actor: "test",
        codeCommit: "abc",
      }),
    );
    const moved = await request(h.app)
      .post("/models/mastery/aliases/champion")
      .set("authorization", `Bearer ${admin}`)
      .send({ version: v.version, reason: "time-aware gbt", force: true });
    expect(moved.status).toBe(201);

    const before = Date.now();
    const res = await request(h.app).get("/mastery/s1").set("authorization", `Bearer ${admin}`);
    expect(res.status).toBe(200);
    expect(res.body.servedModel).toMatchObject({ kind: "gbt" });
    // Independent construction: s1's attempts with their times, then the virtual attempt "now".
    const times = events.map((e) => Date.parse(e.timestamp as string));
    for (const topic of ["T1", "T2"]) {
      const skills = [...new Set([...events.map((e) => e.topic_id as string), topic])];
      const items = [...new Set(events.map((e) => e.question_id as string))];
      const n = events.length + 1;
      const log: ResponseLog = {
        n,
        user: new Int32Array(n),
        skill: Int32Array.from([
          ...events.map((e) => skills.indexOf(e.topic_id as string)),
          skills.indexOf(topic),
        ]),
        item: Int32Array.from([...events.map((e) => items.indexOf(e.question_id as string)), -1]),
        correct: Uint8Array.from([...events.map((e) => (e.is_correct ? 1 : 0)), 0]),
        userNames: ["s1"],
        skillNames: skills,
        itemNames: items,
        userStart: Int32Array.from([0, n]),
        time: Float64Array.from([...times, before]),
      };
      const expected = model.predictLog(log)[n - 1]!;
      const t = res.body.topics.find((x: { topicId: string }) => x.topicId === topic);
      // The served row's "now" is a few ms after `before`: hours since the last attempt differ by < 1e-5.
      expect(t.model.score).toBeCloseTo(expected, 6);
      // Without the times the model refuses (the serving path must pass them).
      const { time: _drop, ...plain } = log;
      expect(() => model.predictLog(plain)).toThrow(/time=COL/);
    }
  }, 60_000);
});
