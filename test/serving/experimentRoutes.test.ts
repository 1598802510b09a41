import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import request from "supertest";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ExperimentRouter } from "../../experiments/router.ts";
import { Pseudonymizer } from "../../features/pseudonymize.ts";
import { BKT } from "../../models/bkt.ts";
import type { AppHandle } from "../../serving/app.ts";
import { loadQuizLog } from "../../serving/learnerState.ts";
import type { DuckStore } from "../../storage/duckdb.ts";
import { PSEUDO_KEY, quiz, storeWithTopics, testApp, token } from "./appFixture.ts";

const pseudo = new Pseudonymizer(PSEUDO_KEY);
const STUDENTS = Array.from({ length: 16 }, (_, i) => `x${i}`);
const SALT = "fixed-salt-for-the-test";
const NOW = new Date("2026-01-06T12:00:00Z");

let store: DuckStore;
let h: AppHandle;
const tokens: Record<string, string> = {};
const artifacts = mkdtempSync(join(tmpdir(), "experiment-routes-artifacts-"));
const dirs = mkdtempSync(join(tmpdir(), "experiment-routes-models-"));
const appOpts = () => ({ artifactBase: artifacts, modelCacheDir: join(dirs, "cache"), now: () => NOW });

const auth = (role: string) => ({ authorization: `Bearer ${tokens[role]}` });

beforeAll(async () => {
  store = await storeWithTopics();
  h = await testApp(store, appOpts());
  tokens.admin = await token({ role: "admin", sub: "root" });
  tokens.student = await token({ role: "student", sub: "s1" });
  tokens.teacher = await token({ role: "teacher", sub: "t1", classes: ["A"] });
  tokens.serviceRead = await token({ role: "service", sub: "bi", scopes: ["experiments:read"] });
  tokens.serviceWrite = await token({
    role: "service",
    sub: "ml",
    scopes: ["experiments:read", "experiments:write"],
  });
  tokens.serviceNone = await token({ role: "service", sub: "lms", scopes: ["mastery:read"] });
  const events = STUDENTS.flatMap((s, i) => [
    quiz(`${s}-1`, s, "T1", i % 2 === 0, 1),
    quiz(`${s}-2`, s, "T2", i % 3 === 0, 2),
  ]);
  expect((await request(h.app).post("/events").set(auth("admin")).send(events)).status).toBe(200);
  const log = await loadQuizLog(store);
  for (const seed of [1, 2]) {
    const dir = join(dirs, `bkt${seed}`);
    mkdirSync(dir);
    writeFileSync(join(dir, "model.json"), JSON.stringify(new BKT({ restarts: 1, seed }).fit(log).toJSON()));
    await h.ctx.gate.run(() => h.ctx.registry.register({ name: "mastery", dir, actor: "trainer" }));
  }
  for (const [alias, version] of [
    ["champion", 1],
    ["challenger", 2],
  ] as const) {
    const res = await request(h.app)
      .post(`/models/mastery/aliases/${alias}`)
      .set(auth("admin"))
      .send({ version, reason: "setup", force: true });
    expect(res.status).toBe(201);
  }
});

afterAll(() => store.close());

const NEW_EXPERIMENT = {
  id: "bkt-seeds",
  name: "BKT seed 1 vs 2",
  arms: [
    { name: "control", model: { name: "mastery", alias: "champion" }, share: 0.5 },
    { name: "treatment", model: { name: "mastery", alias: "challenger" }, share: 0.5 },
  ],
  salt: SALT,
  startAt: "2026-01-01T00:00:00Z",
  config: { mde: 0.1 },
};

describe("experiments REST: who may call what", () => {
  it("only an admin creates; services with experiments:write and other roles get 403", async () => {
    for (const role of ["student", "teacher", "serviceRead", "serviceWrite", "serviceNone"]) {
      const res = await request(h.app).post("/experiments").set(auth(role)).send(NEW_EXPERIMENT);
      expect(res.status).toBe(403);
    }
    const bad = await request(h.app)
      .post("/experiments")
      .set(auth("admin"))
      .send({ ...NEW_EXPERIMENT, arms: NEW_EXPERIMENT.arms.slice(0, 1) });
    expect(bad.status).toBe(400);
    expect(bad.body.field).toBe("arms");
    const shares = await request(h.app)
      .post("/experiments")
      .set(auth("admin"))
      .send({ ...NEW_EXPERIMENT, arms: NEW_EXPERIMENT.arms.map((a) => ({ ...a, share: 0.4 })) });
    expect(shares.status).toBe(400);
    expect(shares.body.reason).toMatch(/sum to 1/);
    const created = await request(h.app).post("/experiments").set(auth("admin")).send(NEW_EXPERIMENT);
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ id: "bkt-seeds", status: "running", control: "control" });
    const dup = await request(h.app).post("/experiments").set(auth("admin")).send(NEW_EXPERIMENT);
    expect(dup.status).toBe(409);
  });

  it("reads: admin, teacher and services with experiments:read; not students or other services", async () => {
    const reads = (role: string) => [
      () => request(h.app).get("/experiments").set(auth(role)),
      () => request(h.app).get("/experiments/bkt-seeds").set(auth(role)),
      () => request(h.app).get("/experiments/bkt-seeds/report?resamples=50").set(auth(role)),
    ];
    for (const role of ["admin", "teacher", "serviceRead"])
      for (const call of reads(role)) expect((await call()).status).toBe(200);
    for (const role of ["student", "serviceNone"])
      for (const call of reads(role)) expect((await call()).status).toBe(403);
    expect((await request(h.app).get("/experiments/nosuch").set(auth("admin"))).status).toBe(404);
  });
});

describe("experiment arms serve GET /mastery", () => {
  const expectedArm = (student: string) =>
    new ExperimentRouter({
      experimentId: "bkt-seeds",
      salt: SALT,
      arms: NEW_EXPERIMENT.arms,
      allocation: [
        [0, 5000, 0],
        [5000, 10000, 1],
      ],
    }).assign(pseudo.studentKey(student)).arm;

  const exposures = () =>
    store.all<{ student_key: string; arm: string; model_name: string; model_version: number; score: number }>(
      "SELECT student_key, arm, model_name, model_version, score FROM experiment_exposures ORDER BY student_key, arm",
    );

  it("each student gets the arm of the sticky hash, the same on repeated calls and after re-creating the app", async () => {
    const first = new Map<string, string>();
    for (const s of STUDENTS) {
      const res = await request(h.app).get(`/mastery/${s}`).set(auth("admin"));
      expect(res.status).toBe(200);
      const sm = res.body.servedModel;
      expect(sm.experimentArm).toMatchObject({ experimentId: "bkt-seeds", arm: expectedArm(s) });
      expect(sm.modelVersion).toBe(sm.experimentArm.arm === "control" ? "mastery@1" : "mastery@2");
      for (const t of res.body.topics) {
        expect(t.experimentArm).toEqual({ experimentId: "bkt-seeds", arm: sm.experimentArm.arm });
        expect(t.modelVersion).toBe(sm.modelVersion);
      }
      first.set(s, sm.experimentArm.arm);
    }
    expect(new Set(first.values())).toEqual(new Set(["control", "treatment"]));
    for (const s of STUDENTS) {
      const again = await request(h.app).get(`/mastery/${s}`).set(auth("admin"));
      expect(again.body.servedModel.experimentArm.arm).toBe(first.get(s));
    }
    const h2 = await testApp(store, appOpts());
    for (const s of STUDENTS) {
      const res = await request(h2.app).get(`/mastery/${s}`).set(auth("admin"));
      expect(res.body.servedModel.experimentArm.arm).toBe(first.get(s));
    }
  });

  it("logs one exposure per served score with the arm and the version", async () => {
    await store.run("DELETE FROM experiment_exposures");
    h.ctx.invalidate(STUDENTS.map((s) => pseudo.studentKey(s)));
    const served = new Map<string, { arm: string; version: number; scores: number[] }>();
    for (const s of STUDENTS) {
      const res = await request(h.app).get(`/mastery/${s}`).set(auth("admin"));
      served.set(pseudo.studentKey(s), {
        arm: res.body.servedModel.experimentArm.arm,
        version: res.body.servedModel.version,
        scores: res.body.topics.map((t: { score: number }) => t.score).sort(),
      });
    }
    // Cached bodies re-serve already logged scores: no new rows.
    for (const s of STUDENTS) await request(h.app).get(`/mastery/${s}`).set(auth("admin"));
    const rows = await exposures();
    expect(rows).toHaveLength(STUDENTS.length * 2);
    for (const [key, x] of served) {
      const mine = rows.filter((r) => r.student_key === key);
      expect(mine.map((r) => r.arm)).toEqual([x.arm, x.arm]);
      expect(mine.map((r) => r.model_version)).toEqual([x.version, x.version]);
      expect(mine.every((r) => r.model_name === "mastery")).toBe(true);
      expect(mine.map((r) => r.score).sort()).toEqual(x.scores);
    }
    // A new event for x0 invalidates its body: the next GET serves (and logs) its scores again.
    await request(h.app)
      .post("/events")
      .set(auth("admin"))
      .send([quiz("x0-3", "x0", "T1", true, 9)]);
    await request(h.app).get("/mastery/x0").set(auth("admin"));
    expect(await exposures()).toHaveLength(STUDENTS.length * 2 + 2);
  });

  it("the report counts the exposed students per arm", async () => {
    const res = await request(h.app).get("/experiments/bkt-seeds/report?resamples=50").set(auth("teacher"));
    expect(res.status).toBe(200);
    const exposed = Object.fromEntries(
      res.body.arms.map((a: { arm: string; exposed: number }) => [a.arm, a.exposed]),
    );
    const want = { control: 0, treatment: 0 };
    for (const s of STUDENTS) want[expectedArm(s) as "control" | "treatment"]++;
    expect(exposed).toEqual(want);
  });
});
