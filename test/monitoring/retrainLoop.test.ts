import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FileLock } from "../../monitoring/locks.ts";
import { monitorOnce, startMonitorLoop } from "../../monitoring/loop.ts";
import { exportResponses, retrain, type Trainer } from "../../monitoring/retrain.ts";
import { openRegistry, type Registry } from "../../registry/registry.ts";
import { DuckStore } from "../../storage/duckdb.ts";
import type { OpenedStore } from "../../storage/postgres.ts";
import { trainBkt } from "../../training/bktFit.ts";
import { trainElo } from "../../training/elo.ts";
import { CFG, flipLabels, generateRows, insertAnswers, insertRows, NOW } from "./driftData.ts";

/** A deliberately bad trainer: learns from flipped labels. */
const flippedTrainer: Trainer = ({ data, columns, out }) => {
  trainElo({ data: flipLabels(data, columns.correct), columns, out, maxEvaluations: 20 });
};

describe("monitor loop: drift -> retrain -> gate", () => {
  let store: DuckStore;
  let registry: Registry;
  let opened: OpenedStore;
  let root: string;

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), "retrain-"));
    store = await DuckStore.open(":memory:");
    await insertAnswers(store);
    // Features with a shifted topic in the current window, so the drift rule fires.
    await insertRows(store, generateRows(1, 1500, "r"), new Date("2025-03-01T00:00:00Z"));
    await insertRows(
      store,
      generateRows(2, 1500, "c", { feature: "avg_time_per_question_7d", topic: "t2", delta: 0.8 }),
      new Date("2025-03-20T00:00:00Z"),
    );
    ({ registry, opened } = await openRegistry({
      dbPath: ":memory:",
      artifactBase: join(root, "artifacts"),
    }));
    // A bad champion, trained on flipped labels over the reference window.
    const csv = join(root, "champ.csv");
    await exportResponses(store, new Date("2025-01-20T00:00:00Z"), new Date("2025-03-14T00:00:00Z"), csv);
    await flippedTrainer({
      kind: "elo",
      data: csv,
      columns: {
        user: "student_key",
        skill: "topic_id",
        item: "question_id",
        correct: "correct",
        order: "ts_ms",
      },
      out: join(root, "champ"),
    });
    const v = await registry.register({
      name: "elo-test",
      dir: join(root, "champ"),
      data: { from: "2025-02-13T00:00:00.000Z", to: "2025-03-13T00:00:00.000Z" },
      actor: "test",
    });
    await registry.setAlias("elo-test", "champion", v.version, {
      actor: "test",
      reason: "seed champion",
      action: "promote",
    });
  });
  afterAll(async () => {
    store.close();
    await opened.close();
    rmSync(root, { recursive: true, force: true });
  });

  it("promotes a better challenger, then refuses a worse one, logging both runs", async () => {
    const lock = new FileLock(join(root, "retrain.lock"));
    const first = await monitorOnce({ store, config: CFG, registry, lock, workDir: root, now: () => NOW });
    expect(first.driftError).toBeNull();
    expect(first.drift!.reference.label).toBe("champion elo-test@1 training window");
    expect(first.drift!.decision.alertingSegments.filter((s) => s.segment.startsWith("topic="))).toEqual([
      { segment: "topic=t2", features: ["avg_time_per_question_7d"] },
    ]);
    expect(first.triggers[0]).toMatch(/^drift: /);
    expect(first.retrain).toMatchObject({ status: "promoted", champion: 1, challenger: 2 });
    expect(first.retrain!.trainRows).toBeGreaterThan(3000);
    expect(first.retrain!.holdoutRows).toBeGreaterThan(400);
    expect(await registry.store.aliasTarget("elo-test", "champion")).toBe(2);

    const loop = startMonitorLoop({
      store,
      config: CFG,
      registry,
      lock,
      workDir: root,
      now: () => NOW,
      trainer: flippedTrainer,
      intervalMs: 3_600_000,
    });
    const second = await loop.runOnce();
    await loop.stop();
    expect(second.retrain).toMatchObject({ status: "rejected", champion: 2, challenger: 3 });
    expect(second.retrain!.summary).toMatch(/^FAIL: auc/);
    expect(second.retrain!.reasons.join(" ")).toMatch(/misses the required gain/);
    expect(await registry.store.aliasTarget("elo-test", "champion")).toBe(2);
    expect(await registry.store.aliasTarget("elo-test", "challenger")).toBe(3);

    const runs = await store.all<{ status: string; challenger_version: number }>(
      "SELECT status, challenger_version FROM retrain_runs ORDER BY started_at",
    );
    expect(runs).toEqual([
      { status: "promoted", challenger_version: 2 },
      { status: "rejected", challenger_version: 3 },
    ]);
  });

  it("skips the retrain while another holder has the lock", async () => {
    const path = join(root, "held.lock");
    const other = new FileLock(path);
    expect(await other.tryAcquire()).toBe(true);
    const r = await monitorOnce({
      store,
      config: CFG,
      registry,
      lock: new FileLock(path),
      workDir: root,
      now: () => NOW,
      force: true,
    });
    expect(r.retrain).toMatchObject({ status: "skipped" });
    expect(r.retrain!.summary).toMatch(/another process holds the retrain lock/);
    await other.release();
  });
});

describe("retrain of a BKT champion with the default trainer", () => {
  it("trains a bkt challenger and promotes it over a champion fitted on flipped labels", async () => {
    const root = mkdtempSync(join(tmpdir(), "retrain-bkt-"));
    const store = await DuckStore.open(":memory:");
    const { registry, opened } = await openRegistry({
      dbPath: ":memory:",
      artifactBase: join(root, "artifacts"),
    });
    try {
      await insertAnswers(store);
      const csv = join(root, "champ.csv");
      await exportResponses(store, new Date("2025-01-20T00:00:00Z"), new Date("2025-03-14T00:00:00Z"), csv);
      const columns = { user: "student_key", skill: "topic_id", correct: "correct", order: "ts_ms" };
      await trainBkt({
        data: flipLabels(csv, "correct"),
        columns,
        out: join(root, "champ"),
        options: { restarts: 2 },
      });
      const v = await registry.register({ name: "bkt-test", dir: join(root, "champ"), actor: "test" });
      expect(v.kind).toBe("bkt");
      await registry.setAlias("bkt-test", "champion", v.version, {
        actor: "test",
        reason: "seed",
        action: "promote",
      });

      const config = { ...CFG, retrain: { ...CFG.retrain, model: "bkt-test" } };
      const r = await retrain({ store, registry, config, workDir: root, now: NOW }, "manual");
      expect(r).toMatchObject({ status: "promoted", champion: 1, challenger: 2 });
      const challenger = await registry.store.getVersion("bkt-test", 2);
      expect(challenger?.kind).toBe("bkt");
      expect(await registry.store.aliasTarget("bkt-test", "champion")).toBe(2);
    } finally {
      store.close();
      await opened.close();
      rmSync(root, { recursive: true, force: true });
    }
  });
});
