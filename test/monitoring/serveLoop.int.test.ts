import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import request from "supertest";
import { afterAll, describe, expect, it } from "vitest";
import { DEFAULT_DRIFT_CONFIG, type DriftConfig } from "../../monitoring/config.ts";
import { FileLock, PgAdvisoryLock, type RetrainLock } from "../../monitoring/locks.ts";
import type { Trainer } from "../../monitoring/retrain.ts";
import type { AppHandle } from "../../serving/app.ts";
import { DuckStore } from "../../storage/duckdb.ts";
import { testApp, token } from "../serving/appFixture.ts";

const PG_URL = process.env.MASTERY_PG_URL ?? "postgres://postgres@127.0.0.1:5432/test";
const NOW = new Date("2026-03-01T00:00:00Z");
const CFG: DriftConfig = {
  ...DEFAULT_DRIFT_CONFIG,
  retrain: { ...DEFAULT_DRIFT_CONFIG.retrain, model: "serve-loop-test", trainDays: 28, holdoutDays: 7 },
};
const root = mkdtempSync(join(tmpdir(), "serve-loop-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** 300 quiz answers over the 35 days before NOW: enough for the job to reach the trainer. */
async function storeWithAnswers(): Promise<DuckStore> {
  const store = await DuckStore.open(":memory:");
  await store.run(
    `INSERT INTO raw_events (event_id, type, student_key, topic_id, ts, question_id, is_correct, school_id, grade, ingested_at)
     SELECT 'q' || i, 'quiz_attempt', 's' || (i % 17), 't' || (i % 3),
            TIMESTAMP '2026-01-25 00:00:00' + INTERVAL (i * 10000) SECOND, 'item' || (i % 11), i % 3 <> 0,
            'sch1', 7, TIMESTAMP '2026-03-01 00:00:00'
     FROM range(300) r(i)`,
  );
  return store;
}

/**
 * The retrain step both servers may enter: counts how many run at once, yields to the event loop
 * (and a timer) several times so a broken lock would let the other server in, then fails on
 * purpose (registering a model is not what this test is about).
 */
function probe() {
  const s = { running: 0, maxConcurrent: 0, entered: 0 };
  const trainer: Trainer = async () => {
    s.running++;
    s.entered++;
    s.maxConcurrent = Math.max(s.maxConcurrent, s.running);
    for (let i = 0; i < 4; i++) await new Promise((r) => setTimeout(r, 1));
    s.running--;
    throw new Error("probe trainer: stop after the concurrency check");
  };
  return { s, trainer };
}

describe.each([
  ["file lock", () => new FileLock(join(root, "retrain.lock"))],
  [
    "postgres advisory lock",
    () => new PgAdvisoryLock(PG_URL, `serve-loop-${randomBytes(4).toString("hex")}`),
  ],
] as const)("two servers with monitor loops sharing a %s", (_name, makeLock) => {
  it("never run the retrain step at the same time; outcomes are on /metrics", async () => {
    const { s, trainer } = probe();
    // Two server instances = two stores, two apps, two lock holders on one key (the PG variant's
    // key is fixed per run by closing over the first lock's key).
    const lockA: RetrainLock = makeLock();
    const lockB: RetrainLock =
      lockA.kind === "postgres" ? new PgAdvisoryLock(PG_URL, lockA.key) : new FileLock(lockA.key);
    const apps: AppHandle[] = [];
    const stores: DuckStore[] = [];
    try {
      for (const lock of [lockA, lockB]) {
        const store = await storeWithAnswers();
        stores.push(store);
        apps.push(
          await testApp(store, {
            now: () => NOW,
            artifactBase: join(root, `artifacts-${stores.length}`),
            monitor: {
              config: CFG,
              lock,
              intervalMs: 15,
              workDir: join(root, `work-${stores.length}`),
              trainer,
              now: () => NOW,
              force: true,
            },
          }),
        );
      }
      const [a, b] = apps as [AppHandle, AppHandle];
      // Timer ticks run on their own; these rounds add ticks that start together.
      for (let round = 0; round < 12; round++)
        await Promise.all([a.monitor!.runOnce(), b.monitor!.runOnce()]);
      await a.monitor!.stop();
      await b.monitor!.stop();

      expect(s.maxConcurrent).toBe(1);
      const count = async (h: AppHandle, status: string) =>
        (await h.monitorMetrics.retrains.get()).values.find((v) => v.labels.status === status)?.value ?? 0;
      const failed = (await count(a, "failed")) + (await count(b, "failed"));
      const skipped = (await count(a, "skipped")) + (await count(b, "skipped"));
      // Every run that got the lock reached the trainer; the servers really contended.
      expect(failed).toBe(s.entered);
      expect(s.entered).toBeGreaterThanOrEqual(12);
      expect(skipped).toBeGreaterThan(0);
      // Each server logs only its own runs (skips are not logged).
      const logged =
        Number((await stores[0]!.one("SELECT count(*) AS n FROM retrain_runs"))!.n) +
        Number((await stores[1]!.one("SELECT count(*) AS n FROM retrain_runs"))!.n);
      expect(logged).toBe(s.entered);
      expect(a.monitorMetrics.last!.retrain!.summary).toMatch(/probe trainer|another process holds/);

      const admin = await token({ role: "admin", sub: "root" });
      const text = (await request(a.app).get("/metrics").set("authorization", `Bearer ${admin}`)).text;
      expect(text).toMatch(/^mastery_monitor_runs_total\{outcome="drift_error"\} \d+/m);
      expect(text).toContain(`mastery_monitor_last_run_timestamp_seconds ${NOW.getTime() / 1000}`);
      expect(text).toContain(`mastery_monitor_retrains_total{status="failed"} ${await count(a, "failed")}`);
      expect(text).toContain("mastery_monitor_retrain_triggers 1");
      // No features table rows: the drift check cannot run.
      expect(text).toContain("mastery_monitor_drift -1");
    } finally {
      for (const h of apps) await h.monitor?.stop();
      await lockA.close();
      await lockB.close();
      for (const st of stores) st.close();
    }
  });
});
