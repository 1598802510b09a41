import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sha256File } from "../../registry/artifacts.ts";
import { dataFileWindow, featureSchemaHash } from "../../registry/provenance.ts";
import {
  formatModelVersion,
  openRegistry,
  parseMetricCondition,
  type Registry,
} from "../../registry/registry.ts";
import { RegistryError } from "../../registry/store.ts";
import { modelFileVersion } from "../../serving/learnerState.ts";
import type { OpenedStore } from "../../storage/postgres.ts";
import { PgStore } from "../../storage/postgres.ts";
import type { OnlinePredictor } from "../../training/evaluate.ts";
import { DEFAULT_GATE } from "../../training/gate.ts";
import { promoteWithGate } from "../../training/promote.ts";

/**
 * The same registry suite runs against the embedded DuckDB store and the real PostgreSQL server
 * (MASTERY_PG_URL, default postgres://postgres@127.0.0.1:5432/test), each in its own schema that
 * is dropped afterwards, so parallel test files never collide.
 */
const PG_URL = process.env.MASTERY_PG_URL ?? "postgres://postgres@127.0.0.1:5432/test";

// A predictor kind for tests: model.json carries the prediction for each holdout row, so the
// gate sees exactly the hand-made numbers.
// The gate takes it through PromoteOptions.loadModel (the kind table holds only real kinds).
function fixedLoader(dir: string): OnlinePredictor {
  const p = (JSON.parse(readFileSync(join(dir, "model.json"), "utf8")) as { p: number[] }).p;
  return { kind: "test-fixed", predictLog: () => Float64Array.from(p) };
}

function modelDir(root: string, name: string, json: object, extra: Record<string, string> = {}): string {
  const dir = join(root, name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "model.json"), JSON.stringify(json));
  for (const [f, text] of Object.entries(extra)) writeFileSync(join(dir, f), text);
  return dir;
}

for (const backend of ["duckdb", "postgres"] as const) {
  describe(`registry on ${backend}`, () => {
    let root: string;
    let registry: Registry;
    let opened: OpenedStore;
    let clock = Date.parse("2025-03-01T09:00:00Z");
    const schema = `reg_test_${process.pid}_${randomBytes(4).toString("hex")}`;

    beforeAll(async () => {
      root = mkdtempSync(join(tmpdir(), `reg-${backend}-`));
      ({ registry, opened } = await openRegistry({
        dbPath: ":memory:",
        pgUrl: backend === "postgres" ? PG_URL : undefined,
        pgSchema: backend === "postgres" ? schema : undefined,
        artifactBase: join(root, "artifacts"),
        now: () => {
          clock += 60_000;
          return new Date(clock);
        },
      }));
      expect(opened.dialect).toBe(backend);
    });

    afterAll(async () => {
      if (opened.store instanceof PgStore) await opened.store.dropSchema();
      await opened.close();
      rmSync(root, { recursive: true, force: true });
    });

    it("registers versions 1, 2, ... with params, metrics, data window, schema hash, commit and artifacts by content hash", async () => {
      const dataFile = join(root, "train.csv");
      writeFileSync(dataFile, "user,skill,correct\nu1,s1,1\nu2,s1,0\nu3,s2,1\n");
      const dir = modelDir(
        root,
        "m1",
        { kind: "test-fixed", p: [0.5], params: { k: 3 }, featureNames: ["a", "b"] },
        {
          "notes.txt": "shared bytes",
        },
      );
      const v1 = await registry.register({
        name: "mastery-elo",
        dir,
        metrics: { auc: 0.71, logloss: 0.55 },
        data: { ...dataFileWindow(dataFile), from: "2024-09-01T00:00:00Z", to: "2025-01-31T00:00:00Z" },
        codeCommit: "abc123",
        tags: ["baseline"],
        actor: "alice",
      });
      expect(v1.version).toBe(1);
      expect(v1.kind).toBe("test-fixed");
      expect(v1.params).toEqual({ k: 3 });
      expect(v1.metrics).toEqual({ auc: 0.71, logloss: 0.55 });
      expect(v1.data.rows).toBe(3);
      expect(v1.data.sha256).toBe(sha256File(dataFile));
      expect(v1.data.from).toBe("2024-09-01T00:00:00.000Z");
      expect(v1.featureSchemaHash).toBe(featureSchemaHash(["a", "b"]));
      expect(v1.codeCommit).toBe("abc123");
      expect(v1.createdBy).toBe("alice");
      expect(v1.tags).toEqual(["baseline"]);
      expect(v1.artifacts.map((a) => a.path)).toEqual(["model.json", "notes.txt"]);
      for (const a of v1.artifacts) {
        const blob = registry.artifacts.uri(a.sha256);
        expect(sha256File(blob)).toBe(a.sha256);
      }
      const dir2 = modelDir(root, "m2", { kind: "test-fixed", p: [0.6] }, { "notes.txt": "shared bytes" });
      const v2 = await registry.register({
        name: "mastery-elo",
        dir: dir2,
        metrics: { auc: 0.74 },
        actor: "bob",
        parent: "1",
      });
      expect(v2.version).toBe(2);
      expect(v2.parent).toEqual({ name: "mastery-elo", version: 1 });
      expect(v2.featureSchemaHash).toBe("none");
      // notes.txt has the same bytes in both versions: one blob, two references.
      const notes1 = v1.artifacts.find((a) => a.path === "notes.txt")!;
      const notes2 = v2.artifacts.find((a) => a.path === "notes.txt")!;
      expect(notes2.sha256).toBe(notes1.sha256);
      expect(await registry.store.artifactRefCount(notes1.sha256)).toBe(2);
    });

    it("searches by name, kind, tag and metric threshold", async () => {
      const dir = modelDir(root, "other", { kind: "other-kind" });
      await registry.register({
        name: "other",
        dir,
        metrics: { auc: 0.9 },
        actor: "carol",
        tags: ["baseline"],
      });
      const names = (vs: { name: string; version: number }[]) =>
        vs.map((v) => formatModelVersion(v.name, v.version));
      expect(names(await registry.search({ name: "mastery-elo" }))).toEqual([
        "mastery-elo@1",
        "mastery-elo@2",
      ]);
      expect(names(await registry.search({ kind: "other-kind" }))).toEqual(["other@1"]);
      expect(names(await registry.search({ tag: "baseline" }))).toEqual(["mastery-elo@1", "other@1"]);
      expect(names(await registry.search({ metrics: [parseMetricCondition("auc>=0.72")] }))).toEqual([
        "mastery-elo@2",
        "other@1",
      ]);
      expect(
        names(await registry.search({ name: "mastery-elo", metrics: [parseMetricCondition("logloss<0.6")] })),
      ).toEqual(["mastery-elo@1"]);
      await registry.tag("mastery-elo", 2, ["candidate"], []);
      await registry.tag("mastery-elo", 1, [], ["baseline"]);
      expect(names(await registry.search({ tag: "baseline" }))).toEqual(["other@1"]);
      expect(names(await registry.search({ tag: "candidate" }))).toEqual(["mastery-elo@2"]);
    });

    it("records every alias move (who, when, from, to, reason) and rolls back to the previous champion", async () => {
      const e1 = await registry.setAlias("mastery-elo", "champion", 1, { actor: "alice", reason: "first" });
      expect(e1).toMatchObject({ seq: 1, fromVersion: null, toVersion: 1, actor: "alice", reason: "first" });
      const e2 = await registry.setAlias("mastery-elo", "champion", 2, {
        actor: "bob",
        reason: "better auc",
      });
      expect(e2).toMatchObject({ seq: 2, fromVersion: 1, toVersion: 2, actor: "bob", reason: "better auc" });
      await registry.setAlias("mastery-elo", "challenger", 2, { actor: "bob", reason: "shadow" });
      const history = await registry.store.aliasHistory("mastery-elo", "champion");
      expect(history.map((h) => [h.fromVersion, h.toVersion, h.actor, h.reason])).toEqual([
        [null, 1, "alice", "first"],
        [1, 2, "bob", "better auc"],
      ]);
      expect(Date.parse(history[1]!.movedAt)).toBeGreaterThan(Date.parse(history[0]!.movedAt));

      const rb = await registry.rollback("mastery-elo", { actor: "ops" });
      expect(rb).toMatchObject({ fromVersion: 2, toVersion: 1, action: "rollback", actor: "ops" });
      expect(await registry.store.aliasTarget("mastery-elo", "champion")).toBe(1);
      // Version 1 was the first champion: a second rollback has nowhere to go.
      await expect(registry.rollback("mastery-elo", { actor: "ops" })).rejects.toThrow(/no previous version/);
      // Moving to a version that does not exist fails and leaves the alias unchanged (transaction).
      await expect(
        registry.setAlias("mastery-elo", "champion", 99, { actor: "x", reason: "typo" }),
      ).rejects.toThrow(/no such version/);
      expect(await registry.store.aliasTarget("mastery-elo", "champion")).toBe(1);
      expect((await registry.store.aliasHistory("mastery-elo", "champion")).length).toBe(3);
    });

    it("rollback after 1 -> 2 -> 3 goes to 2, then to 1", async () => {
      const a = modelDir(root, "r1", { kind: "test-fixed", p: [0.1] });
      const b = modelDir(root, "r2", { kind: "test-fixed", p: [0.2] });
      const c = modelDir(root, "r3", { kind: "test-fixed", p: [0.3] });
      for (const d of [a, b, c]) await registry.register({ name: "chain", dir: d, actor: "t" });
      for (const v of [1, 2, 3])
        await registry.setAlias("chain", "champion", v, { actor: "t", reason: `v${v}` });
      await registry.rollback("chain", { actor: "t" });
      expect(await registry.store.aliasTarget("chain", "champion")).toBe(2);
      await registry.rollback("chain", { actor: "t" });
      expect(await registry.store.aliasTarget("chain", "champion")).toBe(1);
    });

    it("refuses to delete an aliased version and deletes the others with their unshared artifacts", async () => {
      // mastery-elo@2 is the challenger.
      const err = await registry.delete("mastery-elo", 2).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(RegistryError);
      expect((err as RegistryError).code).toBe("ALIASED");
      expect((err as Error).message).toMatch(/alias challenger points at it; move the alias first/);
      expect(await registry.store.getVersion("mastery-elo", 2)).toBeDefined();

      await registry.clearAlias("mastery-elo", "challenger", { actor: "t", reason: "done" });
      const v2 = (await registry.store.getVersion("mastery-elo", 2))!;
      const model2 = v2.artifacts.find((a) => a.path === "model.json")!.sha256;
      const notes = v2.artifacts.find((a) => a.path === "notes.txt")!.sha256;
      const res = await registry.delete("mastery-elo", 2);
      expect(res.removedBlobs).toEqual([model2]);
      expect(res.keptBlobs).toEqual([notes]); // still used by version 1
      expect(existsSync(registry.artifacts.uri(model2))).toBe(false);
      expect(existsSync(registry.artifacts.uri(notes))).toBe(true);
      expect(await registry.store.getVersion("mastery-elo", 2)).toBeUndefined();
      expect(await registry.store.artifactRefCount(model2)).toBe(0);
    });

    it("answers lineage from a student_mastery row's model_version (sha256 of model.json, or name@version)", async () => {
      const dataFile = join(root, "window.csv");
      writeFileSync(dataFile, "user,skill,correct\na,s,1\n");
      const parentDir = modelDir(root, "lp", {
        kind: "test-fixed",
        p: [0.4],
        data: { columns: { user: "u" } },
      });
      const childDir = modelDir(root, "lc", {
        kind: "test-fixed",
        p: [0.45],
        data: { columns: { user: "u" } },
      });
      await registry.register({ name: "lin", dir: parentDir, actor: "t", codeCommit: "c0" });
      const child = await registry.register({
        name: "lin",
        dir: childDir,
        actor: "t",
        codeCommit: "c1",
        parent: "lin@1",
        data: { ...dataFileWindow(dataFile), from: "2025-01-01T00:00:00Z", to: "2025-02-01T00:00:00Z" },
      });
      // serving/learnerState.ts writes this string as model_version for every score it serves.
      const served = modelFileVersion(childDir).version;
      await opened.store.run(
        `INSERT INTO ${backend === "duckdb" ? "student_mastery_base" : "student_mastery"} (student_key, topic_id, mastery_score, score_source, model_version, as_of, explanation, last_updated)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $6), ($1, $8, $3, $4, $9, $6, $7, $6), ($1, $10, $3, $11, $12, $6, $7, $6)`,
        [
          "stu-1",
          "t-frac",
          0.73,
          "elo",
          served,
          "2025-02-10T00:00:00Z",
          "{}",
          "t-dec",
          formatModelVersion("lin", 1),
          "t-rule",
          "rule_based",
          "rule-0123456789",
        ],
      );
      const rows = await registry.lineageOfScores("stu-1");
      expect(rows.map((r) => [r.topicId, r.lineage?.name, r.lineage?.version, r.lineage?.matchedBy])).toEqual(
        [
          ["t-dec", "lin", 1, "name@version"],
          ["t-frac", "lin", 2, "model.json sha256"],
          ["t-rule", undefined, undefined, undefined],
        ],
      );
      expect(rows[2]!.note).toMatch(/not registered|no versions registered/);
      const lin = rows[1]!.lineage!;
      expect(lin.version).toBe(child.version);
      expect(lin.codeCommit).toBe("c1");
      expect(lin.data.sha256).toBe(sha256File(dataFile));
      expect(lin.data.rows).toBe(1);
      expect(lin.data.from).toBe("2025-01-01T00:00:00.000Z");
      expect(lin.featureSchemaHash).toBe(featureSchemaHash({ columns: { user: "u" } }));
      expect(lin.parent).toEqual({ name: "lin", version: 1 });
      expect(lin.ancestors).toEqual([{ name: "lin", version: 1, exists: true }]);
      await expect(registry.lineage("sha256:ffffffffffffffff")).rejects.toThrow(/no registered version/);
    });

    it("promotes through the gate on a holdout: refuses a worse challenger, accepts a better one, records --force", async () => {
      // Holdout: one row per student so the log order is the file order; y = 0,0,1,1.
      const holdout = join(root, "holdout.csv");
      writeFileSync(holdout, "user,skill,correct,school\nu1,s,0,A\nu2,s,0,A\nu3,s,1,B\nu4,s,1,B\n");
      const good = modelDir(root, "g-good", { kind: "test-fixed", p: [0.1, 0.3, 0.7, 0.9] });
      const bad = modelDir(root, "g-bad", { kind: "test-fixed", p: [0.1, 0.6, 0.4, 0.9] });
      const worse = modelDir(root, "g-worse", { kind: "test-fixed", p: [0.6, 0.1, 0.4, 0.9] });
      for (const d of [bad, good, worse]) await registry.register({ name: "gated", dir: d, actor: "t" });
      const columns = { user: "user", skill: "skill", correct: "correct" };
      const gate = { ...DEFAULT_GATE, minGroupSize: 1 };
      const base = {
        name: "gated",
        holdout,
        columns,
        gate,
        actor: "ml-bot",
        groupColumns: ["school"],
        loadModel: fixedLoader,
      };

      const first = await promoteWithGate(registry, { ...base, challenger: 1 });
      expect(first.promoted).toBe(true);
      expect(first.champion).toBeNull();

      const up = await promoteWithGate(registry, { ...base, challenger: 2 });
      expect(up.promoted).toBe(true);
      expect(up.decision.pass).toBe(true);
      expect(await registry.store.aliasTarget("gated", "champion")).toBe(2);

      const down = await promoteWithGate(registry, { ...base, challenger: 3 });
      expect(down.promoted).toBe(false);
      expect(down.decision.summary).toMatch(/^FAIL: auc, logloss/);
      expect(await registry.store.aliasTarget("gated", "champion")).toBe(2);

      const forced = await promoteWithGate(registry, { ...base, challenger: 3, force: true });
      expect(forced.promoted).toBe(true);
      expect(forced.forced).toBe(true);
      const last = (await registry.store.aliasHistory("gated", "champion")).at(-1)!;
      expect(last).toMatchObject({
        fromVersion: 2,
        toVersion: 3,
        action: "promote",
        forced: true,
        actor: "ml-bot",
      });
      expect(last.reason).toMatch(/^FORCED past a failing gate/);
      expect((last.gate as { pass: boolean; rows: number }).pass).toBe(false);
      expect((last.gate as { pass: boolean; rows: number }).rows).toBe(4);

      await registry.rollback("gated", { actor: "ops" });
      expect(await registry.store.aliasTarget("gated", "champion")).toBe(2);
    });

    it("materializes a version's files byte for byte", async () => {
      const out = join(root, "mat");
      await registry.materialize("gated", 2, out);
      expect(readFileSync(join(out, "model.json"), "utf8")).toBe(
        readFileSync(join(root, "g-good", "model.json"), "utf8"),
      );
    });
  });
}
