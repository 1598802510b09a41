import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import request from "supertest";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Pseudonymizer } from "../../features/pseudonymize.ts";
import { BKT } from "../../models/bkt.ts";
import type { AppHandle } from "../../serving/app.ts";
import { loadQuizLog } from "../../serving/learnerState.ts";
import type { DuckStore } from "../../storage/duckdb.ts";
import { PSEUDO_KEY, quiz, storeWithTopics, testApp, token } from "./appFixture.ts";

let store: DuckStore;
let h: AppHandle;
const tokens: Record<string, string> = {};
const artifacts = mkdtempSync(join(tmpdir(), "registry-routes-artifacts-"));
const dirs = mkdtempSync(join(tmpdir(), "registry-routes-models-"));

beforeAll(async () => {
  store = await storeWithTopics();
  h = await testApp(store, { artifactBase: artifacts, modelCacheDir: join(dirs, "cache") });
  tokens.admin = await token({ role: "admin", sub: "root" });
  tokens.student = await token({ role: "student", sub: "s1" });
  tokens.teacher = await token({ role: "teacher", sub: "t1", classes: ["A"] });
  tokens.serviceRead = await token({ role: "service", sub: "ml", scopes: ["models:read"] });
  tokens.serviceWrite = await token({ role: "service", sub: "ml2", scopes: ["models:read", "models:write"] });
  tokens.serviceNone = await token({ role: "service", sub: "lms", scopes: ["mastery:read"] });
  const res = await request(h.app)
    .post("/events")
    .set("authorization", `Bearer ${tokens.admin}`)
    .send([
      quiz("e1", "s1", "T1", true, 1),
      quiz("e2", "s1", "T1", false, 2),
      quiz("e3", "s2", "T1", true, 3),
    ]);
  expect(res.status).toBe(200);
  // Three versions of "mastery" (BKT fits with different seeds: different model.json files).
  const log = await loadQuizLog(store);
  for (const seed of [1, 2, 3]) {
    const dir = join(dirs, `bkt${seed}`);
    mkdirSync(dir);
    writeFileSync(join(dir, "model.json"), JSON.stringify(new BKT({ restarts: 1, seed }).fit(log).toJSON()));
    await h.ctx.gate.run(() =>
      h.ctx.registry.register({ name: "mastery", dir, actor: "trainer", codeCommit: `c${seed}` }),
    );
  }
});

afterAll(() => store.close());

const auth = (role: string) => ({ authorization: `Bearer ${tokens[role]}` });

describe("registry REST: who may call what", () => {
  const reads = (role: string) => [
    () => request(h.app).get("/models").set(auth(role)),
    () => request(h.app).get("/models/mastery").set(auth(role)),
    () => request(h.app).get("/models/mastery/versions/1").set(auth(role)),
    () => request(h.app).get("/models/mastery/lineage?version=1").set(auth(role)),
  ];
  // Writes that fail harmlessly (404/409) once authorized, so the matrix does not move any alias.
  const writes = (role: string) => [
    () =>
      request(h.app)
        .post("/models/nosuch/aliases/challenger")
        .set(auth(role))
        .send({ version: 1, reason: "x" }),
    () => request(h.app).post("/models/nosuch/rollback").set(auth(role)).send({}),
    () => request(h.app).delete("/models/nosuch/versions/1").set(auth(role)),
  ];

  it("reads: admin and services with models:read get 200; students, teachers and other services 403", async () => {
    for (const role of ["admin", "serviceRead"])
      for (const call of reads(role)) expect((await call()).status).toBe(200);
    for (const role of ["student", "teacher", "serviceNone"])
      for (const call of reads(role)) {
        const res = await call();
        expect(res.status).toBe(403);
        expect(res.body.error).toBe("forbidden");
      }
    expect((await request(h.app).get("/models")).status).toBe(401);
  });

  it("writes: admin only, even for a service holding models:write", async () => {
    for (const role of ["student", "teacher", "serviceRead", "serviceNone", "serviceWrite"])
      for (const call of writes(role)) expect((await call()).status).toBe(403);
    const statuses = [];
    for (const call of writes("admin")) statuses.push((await call()).status);
    expect(statuses).toEqual([404, 404, 404]);
  });
});

describe("registry REST: alias moves, rollback, delete", () => {
  it("lists the versions with their metadata", async () => {
    const res = await request(h.app).get("/models?name=mastery").set(auth("admin"));
    expect(res.body.models).toEqual([{ name: "mastery", versions: 3, latest: 3, aliases: {} }]);
    expect(res.body.versions.map((v: { version: number }) => v.version)).toEqual([1, 2, 3]);
    expect(res.body.versions[1].codeCommit).toBe("c2");
    expect(res.body.servedModelName).toBe("mastery");
  });

  it("refuses to move champion by hand without force, and validates the body", async () => {
    const noForce = await request(h.app)
      .post("/models/mastery/aliases/champion")
      .set(auth("admin"))
      .send({ version: 1, reason: "r" });
    expect(noForce.status).toBe(409);
    expect(noForce.body.field).toBe("force");
    const bad = await request(h.app)
      .post("/models/mastery/aliases/champion")
      .set(auth("admin"))
      .send({ version: "1", reason: "r", force: true });
    expect(bad.status).toBe(400);
    expect(bad.body.field).toBe("version");
    const extra = await request(h.app)
      .post("/models/mastery/aliases/challenger")
      .set(auth("admin"))
      .send({ version: 1, reason: "r", colour: "red" });
    expect(extra.status).toBe(400);
    expect(extra.body.field).toBe("colour");
    const noVersion = await request(h.app)
      .post("/models/mastery/aliases/challenger")
      .set(auth("admin"))
      .send({ version: 9, reason: "r" });
    expect(noVersion.status).toBe(404);
  });

  it("records each alias move, serves the new champion at once, and rolls back to the previous one", async () => {
    const mastery = () => request(h.app).get("/mastery/s1").set(auth("admin"));
    expect((await mastery()).body.servedModel.status).toBe("none");
    for (const [version, reason] of [
      [1, "first"],
      [3, "retrained"],
    ] as const) {
      const res = await request(h.app)
        .post("/models/mastery/aliases/champion")
        .set(auth("admin"))
        .send({ version, reason, force: true });
      expect(res.status).toBe(201);
      expect(res.body).toMatchObject({
        alias: "champion",
        toVersion: version,
        action: "promote",
        forced: true,
      });
      expect((await mastery()).body.servedModel.modelVersion).toBe(`mastery@${version}`);
    }
    const challenger = await request(h.app)
      .post("/models/mastery/aliases/challenger")
      .set(auth("admin"))
      .send({ version: 2, reason: "shadow" });
    expect(challenger.body).toMatchObject({ fromVersion: null, toVersion: 2, action: "move", forced: false });

    const model = await request(h.app).get("/models/mastery").set(auth("serviceRead"));
    const champ = model.body.aliasHistory.filter((e: { alias: string }) => e.alias === "champion");
    expect(
      champ.map((e: { fromVersion: number | null; toVersion: number; actor: string; reason: string }) => [
        e.fromVersion,
        e.toVersion,
        e.actor,
        e.reason,
      ]),
    ).toEqual([
      [null, 1, "root", "first"],
      [1, 3, "root", "retrained"],
    ]);

    const rb = await request(h.app)
      .post("/models/mastery/rollback")
      .set(auth("admin"))
      .send({ reason: "alerts spiked" });
    expect(rb.status).toBe(201);
    expect(rb.body).toMatchObject({
      fromVersion: 3,
      toVersion: 1,
      action: "rollback",
      reason: "alerts spiked",
    });
    expect((await mastery()).body.servedModel.modelVersion).toBe("mastery@1");
    const champion = await request(h.app).get("/models/mastery/versions/champion").set(auth("admin"));
    expect(champion.body.version).toBe(1);
    expect(champion.body.aliases).toEqual(["champion"]);
    // Nothing before version 1: a second rollback is refused.
    const again = await request(h.app).post("/models/mastery/rollback").set(auth("admin")).send({});
    expect(again.status).toBe(409);
  });

  it("lineage of the version serving a student (pseudonymized id) and of a given version", async () => {
    const res = await request(h.app).get("/models/mastery/lineage?student=s1").set(auth("serviceRead"));
    expect(res.status).toBe(200);
    expect(res.body.studentKey).toBe(new Pseudonymizer(PSEUDO_KEY).studentKey("s1"));
    expect(JSON.stringify(res.body)).not.toContain('"s1"');
    expect(res.body.served.modelRef).toBe("mastery@champion");
    expect(res.body.served.lineage).toMatchObject({ name: "mastery", version: 1, codeCommit: "c1" });
    expect(res.body.scores.length).toBeGreaterThan(0);
    const v3 = await request(h.app).get("/models/mastery/lineage?version=3").set(auth("admin"));
    expect(v3.body.lineage).toMatchObject({ version: 3, codeCommit: "c3", matchedBy: "name@version" });
  });

  it("deletes an unaliased version and refuses an aliased one", async () => {
    const aliased = await request(h.app).delete("/models/mastery/versions/1").set(auth("admin"));
    expect(aliased.status).toBe(409);
    const ok = await request(h.app).delete("/models/mastery/versions/3").set(auth("admin"));
    expect(ok.status).toBe(200);
    expect(ok.body.modelVersion).toBe("mastery@3");
    expect(ok.body.removedBlobs).toHaveLength(1);
    const gone = await request(h.app).get("/models/mastery/versions/3").set(auth("admin"));
    expect(gone.status).toBe(404);
  });
});
