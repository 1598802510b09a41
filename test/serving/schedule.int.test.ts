import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import request from "supertest";
import { afterAll, describe, expect, it } from "vitest";
import { Pseudonymizer } from "../../features/pseudonymize.ts";
import { generateSynthetic } from "../../features/synthetic/generate.ts";
import { buildFeatures } from "../../features/windows.ts";
import { latentOnlyServedJson } from "../../models/servedMastery.ts";
import { DEFAULT_DRIFT_CONFIG } from "../../monitoring/config.ts";
import { PgAdvisoryLock } from "../../monitoring/locks.ts";
import { verifyWebhookSignature } from "../../serving/alerts.ts";
import { type JobHandles, runScheduledJob } from "../../serving/schedule.ts";
import { parseScheduleConfig } from "../../serving/scheduleConfig.ts";
import { BatchRunStore } from "../../storage/batchRuns.ts";
import { DuckStore } from "../../storage/duckdb.ts";
import { LATENT_TEST_PARAMS } from "../models/latentFixtures.ts";
import { PSEUDO_KEY, testApp, token } from "./appFixture.ts";

const PG = process.env.MASTERY_TEST_PG_URL ?? "postgres://postgres@127.0.0.1:5432/test";
const dirs: string[] = [];
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), "sched-"));
  dirs.push(d);
  return d;
};
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** The store stays open across runs (closed by the test), like the server's own connection. */
const keep = (store: DuckStore) => async (): Promise<JobHandles> => ({ store, close: async () => {} });

async function inboxWithEvents(): Promise<string> {
  const inbox = tmp();
  await generateSynthetic({
    students: 30,
    topics: 8,
    days: 10,
    seed: 3,
    start: "2026-09-01",
    eventsPerDay: 3,
    truthEvery: 0,
    outDir: inbox,
    workers: 0,
  });
  return inbox;
}

/** Two later days of events (another seed) into the inbox: a store's next batch has new and late pairs. */
async function addLaterDays(inbox: string): Promise<void> {
  await generateSynthetic({
    students: 30,
    topics: 8,
    days: 2,
    seed: 4,
    start: "2026-09-11",
    eventsPerDay: 1,
    truthEvery: 0,
    outDir: inbox,
    workers: 0,
  });
}

/** Distinct (student, topic) pairs with an event ingested after the watermark (microseconds). */
async function pairsIngestedAfter(store: DuckStore, watermarkUs: string): Promise<number> {
  const r = await store.one<{ n: bigint }>(
    `SELECT count(*) AS n FROM (SELECT DISTINCT student_key, topic_id FROM raw_events
     WHERE epoch_us(ingested_at) > $wm::BIGINT)`,
    { wm: BigInt(watermarkUs) },
  );
  return Number(r?.n);
}

/** A served model directory: the latent filter with hand-set parameters and a student effect over t0001 .. t00nn. */
function servedModelDir(dir: string, topics: number): string {
  const topicIds = Array.from({ length: topics }, (_, i) => `t${String(i + 1).padStart(4, "0")}`);
  writeFileSync(
    join(dir, "model.json"),
    JSON.stringify(
      latentOnlyServedJson({
        version: 1,
        bins: 40,
        params: { ...LATENT_TEST_PARAMS, asOfForgetting: "decay" },
        topicPriorMean: Object.fromEntries(topicIds.map((t) => [t, 0.35])),
        fit: { logLikPerObs: 0, observations: 0, sequences: 0, evaluations: 0 },
        studentPriorSd: 0.8,
      }),
    ),
  );
  return dir;
}

/** Receives webhook POSTs (the failure alerts) on a local port. */
async function hookServer(): Promise<{ server: Server; url: string; got: { body: string; sig: string }[] }> {
  const got: { body: string; sig: string }[] = [];
  const server = createServer((req, res) => {
    let body = "";
    req.on("data", (c) => {
      body += c;
    });
    req.on("end", () => {
      got.push({ body, sig: String(req.headers["x-mastery-signature"]) });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`, got };
}

describe("mastery schedule (serving/schedule.ts)", () => {
  it("a successful batch ingests the inbox, scores, records ok with counts, and /metrics + /healthz show it", async () => {
    const inbox = await inboxWithEvents();
    const files = readdirSync(inbox).filter(
      (f) => /\.(csv|json)$/.test(f) && !/^(ground_truth|roster|manifest)\./.test(f),
    );
    expect(files).toContain("topics.json");
    const store = await DuckStore.open(":memory:");
    const lock = new PgAdvisoryLock(PG, `sched-test-${randomBytes(6).toString("hex")}`);
    try {
      // The snapshot in the batch too (batch.features), as before the checks job built it.
      // With a served model (hand-set filter with a student effect over the generated topics): the batch's last step.
      const servedModel = servedModelDir(tmp(), 8);
      const config = parseScheduleConfig({ batch: { inbox, features: true, servedModel } }, {});
      const o = await runScheduledJob({
        job: "batch",
        config,
        lock,
        open: keep(store),
        pseudonymizer: () => new Pseudonymizer(PSEUDO_KEY),
      });
      expect(o.status).toBe("ok");
      if (o.status !== "ok") return;
      const events = Number((await store.one<{ n: bigint }>("SELECT count(*) AS n FROM raw_events"))!.n);
      expect(events).toBeGreaterThan(500);
      expect(o.counts.files).toBe(files.length);
      expect(o.counts.accepted).toBeGreaterThan(0);
      // Every ingested file moved out of the inbox, under ingested/<run id>/.
      expect(readdirSync(join(inbox, "ingested", o.runId)).sort()).toEqual([...files].sort());
      for (const f of files) expect(existsSync(join(inbox, f))).toBe(false);
      const pairs = Number(
        (await store.one<{ n: bigint }>(
          "SELECT count(*) AS n FROM (SELECT DISTINCT student_key, topic_id FROM raw_events)",
        ))!.n,
      );
      const rule = Number(
        (await store.one<{ n: bigint }>(
          "SELECT count(*) AS n FROM student_mastery WHERE score_source = 'rule_based'",
        ))!.n,
      );
      const bkt = Number(
        (await store.one<{ n: bigint }>(
          "SELECT count(*) AS n FROM student_mastery WHERE score_source = 'bkt'",
        ))!.n,
      );
      expect(o.counts.featureRows).toBe(pairs);
      // The first run scores every pair (no watermark yet); the served and latent rows are stored.
      expect(o.counts.servedPairs).toBe(pairs);
      expect(o.counts.servedIncremental).toBe(null);
      const servedRows = await store.one<{ n: bigint }>(
        "SELECT count(*) AS n FROM student_mastery WHERE score_source IN ('served', 'latent')",
      );
      expect(Number(servedRows!.n)).toBe(2 * pairs);
      expect(o.counts.ruleScores).toBe(rule);
      expect(o.counts.bktEloKeys).toBe(bkt);
      expect(bkt).toBe(pairs);

      const runs = await (await BatchRunStore.open(store)).recent(5);
      expect(runs).toHaveLength(1);
      const run = runs[0]!;
      expect(run).toMatchObject({
        runId: o.runId,
        job: "batch",
        status: "ok",
        error: null,
        pid: process.pid,
      });
      expect(run.counts).toEqual(o.counts);
      expect(run.endedAt!.getTime()).toBeGreaterThanOrEqual(run.startedAt.getTime());

      // A second day with nothing new: incremental BKT/Elo touches no key, and the run is recorded too.
      const again = await runScheduledJob({ job: "batch", config, lock, open: keep(store) });
      expect(again.status).toBe("ok");
      if (again.status === "ok") {
        expect(again.counts.files).toBe(0);
        expect(again.counts.bktEloKeys).toBe(0);
        // Nothing ingested and no event time between the two as-ofs: no student is scored again.
        expect(again.counts).toMatchObject({ servedIncremental: true, servedPairs: 0 });
        // Features: the first run was full (no watermark yet), this one incremental with nothing to recompute.
        expect(o.counts.featureMode).toBe("full");
        expect(again.counts).toMatchObject({
          featureMode: "incremental",
          featurePairsRecomputed: 0,
          featurePairsCopied: pairs,
          featureRows: pairs,
          // Rule rows store decayed evidence: no new event, nothing refolded or written.
          ruleMode: "incremental",
          ruleScores: 0,
        });
        expect(o.counts.ruleMode).toBe("full");
      }
      // A later day's files in the inbox: the incremental run recomputes some pairs, and its snapshot
      // equals a full rebuild as of the same time.
      await addLaterDays(inbox);
      const day3 = await runScheduledJob({
        job: "batch",
        config,
        lock,
        open: keep(store),
        pseudonymizer: () => new Pseudonymizer(PSEUDO_KEY),
      });
      expect(day3.status).toBe("ok");
      if (day3.status === "ok") {
        expect(day3.counts.featureMode).toBe("incremental");
        expect(day3.counts.featurePairsRecomputed).toBeGreaterThan(0);
        expect(day3.counts.ruleMode).toBe("incremental");
        // Rules refold only the pairs with an event ingested since the previous run (no window edges).
        const wm = (again.status === "ok" ? again.counts.watermark : null) as { ingestedThroughUs: string };
        expect(day3.counts.ruleScores).toBe(await pairsIngestedAfter(store, wm.ingestedThroughUs));
        expect(day3.counts.ruleScores).toBeGreaterThan(0);
        expect(day3.counts.ruleScores).toBeLessThanOrEqual(day3.counts.featurePairsRecomputed as number);
        // The served step: every pair of the students with a row ingested since the previous run.
        const touched = await store.one<{ n: bigint }>(
          `SELECT count(*) AS n FROM (SELECT DISTINCT student_key, topic_id FROM student_mastery
           WHERE student_key IN (SELECT student_key FROM raw_events WHERE epoch_us(ingested_at) > $wm::BIGINT))`,
          { wm: BigInt(wm.ingestedThroughUs) },
        );
        expect(day3.counts.servedIncremental).toBe(true);
        expect(day3.counts.servedPairs).toBe(Number(touched!.n));
        expect(day3.counts.servedPairs).toBeGreaterThan(day3.counts.ruleScores as number);
        const asOf = new Date(String(day3.counts.asOf));
        await buildFeatures(store, asOf, { table: "features_full_check" });
        const mine = await store.all(
          "SELECT * EXCLUDE (as_of) FROM features WHERE as_of = $t::TIMESTAMP ORDER BY student_key, topic_id",
          { t: asOf.toISOString() },
        );
        expect(mine.length).toBe(day3.counts.featureRows);
        expect(mine).toEqual(
          await store.all("SELECT * EXCLUDE (as_of) FROM features_full_check ORDER BY student_key, topic_id"),
        );
      }
      const last = (await (await BatchRunStore.open(store)).recent(1))[0]!;

      const h = await testApp(store);
      const scrape = await request(h.app)
        .get("/metrics")
        .set("authorization", `Bearer ${await token({ role: "admin", sub: "ops" })}`);
      expect(scrape.status).toBe(200);
      const m = /mastery_batch_last_success_timestamp_seconds\{job="batch"\} (\S+)/.exec(scrape.text);
      expect(Number(m?.[1])).toBe(last.endedAt!.getTime() / 1000);
      expect(scrape.text).not.toMatch(/mastery_batch_last_success_timestamp_seconds\{job="checks"\}/);
      const health = await request(h.app).get("/healthz");
      expect(health.body).toEqual({
        status: "ok",
        lastBatchSuccess: last.endedAt!.toISOString(),
        lastChecksSuccess: null,
      });
    } finally {
      await lock.close();
      store.close();
    }
  });

  it("batch.features false: the batch scores without a features snapshot (rules still incremental); the checks job builds the snapshot incrementally, equal to a full build", async () => {
    const inbox = await inboxWithEvents();
    const store = await DuckStore.open(":memory:");
    const lock = new PgAdvisoryLock(PG, `sched-test-${randomBytes(6).toString("hex")}`);
    const pseudonymizer = () => new Pseudonymizer(PSEUDO_KEY);
    const snapshots = async () =>
      Number((await store.one<{ n: bigint }>("SELECT count(DISTINCT as_of) AS n FROM features"))!.n);
    const snapshotEqualsFull = async (asOf: Date, table: string) => {
      await buildFeatures(store, asOf, { table });
      const mine = await store.all(
        "SELECT * EXCLUDE (as_of) FROM features WHERE as_of = $t::TIMESTAMP ORDER BY student_key, topic_id",
        { t: asOf.toISOString() },
      );
      expect(mine.length).toBeGreaterThan(0);
      expect(mine).toEqual(
        await store.all(`SELECT * EXCLUDE (as_of) FROM ${table} ORDER BY student_key, topic_id`),
      );
    };
    try {
      const config = parseScheduleConfig(
        { batch: { inbox, features: false }, checks: { retrain: false } },
        {},
      );
      expect(config.batch.features).toBe(false);
      expect(parseScheduleConfig({}, {}).batch.features).toBe(false);
      const drift = { config: DEFAULT_DRIFT_CONFIG };
      const b1 = await runScheduledJob({ job: "batch", config, lock, open: keep(store), pseudonymizer });
      expect(b1.status).toBe("ok");
      if (b1.status !== "ok") return;
      expect(b1.counts.featureRows).toBeUndefined();
      expect(b1.counts.ruleMode).toBe("full");
      expect(b1.counts.ruleScores).toBeGreaterThan(0);
      expect(await snapshots()).toBe(0);

      // The checks job builds the snapshot its drift check reads: the first one in full.
      const c1 = await runScheduledJob({ job: "checks", config, lock, open: keep(store), drift });
      expect(c1.status).toBe("ok");
      if (c1.status !== "ok") return;
      expect(c1.counts.featureMode).toBe("full");
      // Its snapshot, and any reference snapshot the drift check built for itself (a fresh install).
      const afterChecks = await snapshots();
      expect(afterChecks).toBeGreaterThanOrEqual(1);

      // A later day: the batch refolds only the pairs with new events, still without features ...
      await addLaterDays(inbox);
      const b2 = await runScheduledJob({ job: "batch", config, lock, open: keep(store), pseudonymizer });
      expect(b2.status).toBe("ok");
      if (b2.status !== "ok") return;
      expect(b2.counts.featureRows).toBeUndefined();
      expect(b2.counts.ruleMode).toBe("incremental");
      const wm = b1.counts.watermark as { ingestedThroughUs: string };
      expect(b2.counts.ruleScores).toBe(await pairsIngestedAfter(store, wm.ingestedThroughUs));
      expect(b2.counts.ruleScores).toBeGreaterThan(0);
      expect(await snapshots()).toBe(afterChecks);

      // ... and the next checks run builds the new snapshot incrementally from its own previous one.
      const c2 = await runScheduledJob({ job: "checks", config, lock, open: keep(store), drift });
      expect(c2.status).toBe("ok");
      if (c2.status !== "ok") return;
      expect(c2.counts.featureMode).toBe("incremental");
      expect(c2.counts.featurePairsRecomputed).toBeGreaterThan(0);
      const asOf = new Date(String((c2.counts.featureWatermark as { asOf: string }).asOf));
      expect(asOf.getTime()).toBeGreaterThan(
        new Date(String((c1.counts.featureWatermark as { asOf: string }).asOf)).getTime(),
      );
      await snapshotEqualsFull(asOf, "features_full_check2");
    } finally {
      await lock.close();
      store.close();
    }
  });

  it("a failing batch is recorded as failed with the error, alerts the webhook (signed) and releases the lock", async () => {
    const store = await DuckStore.open(":memory:");
    const key = `sched-test-${randomBytes(6).toString("hex")}`;
    const lock = new PgAdvisoryLock(PG, key);
    const other = new PgAdvisoryLock(PG, key);
    const hook = await hookServer();
    try {
      const config = parseScheduleConfig(
        { alert: { webhooks: [{ url: hook.url, secret_env: "HOOK_SECRET" }] } },
        { HOOK_SECRET: "s3cret-for-the-test" },
      );
      // An empty raw zone: nothing to build features from.
      const o = await runScheduledJob({ job: "batch", config, lock, open: keep(store) });
      expect(o.status).toBe("failed");
      if (o.status !== "failed") return;
      expect(o.error).toMatch(/raw_events is empty/);
      const runs = await (await BatchRunStore.open(store)).recent(5);
      expect(runs).toHaveLength(1);
      expect(runs[0]).toMatchObject({ runId: o.runId, status: "failed" });
      expect(runs[0]!.error).toMatch(/raw_events is empty: ingest events first/);
      expect(runs[0]!.endedAt).not.toBeNull();
      expect(await (await BatchRunStore.open(store)).lastSuccess("batch")).toBeNull();

      expect(hook.got).toHaveLength(1);
      const { body, sig } = hook.got[0]!;
      expect(verifyWebhookSignature("s3cret-for-the-test", sig, body)).toBe(true);
      expect(verifyWebhookSignature("another-secret", sig, body)).toBe(false);
      expect(JSON.parse(body)).toMatchObject({
        rule: "scheduled_job_failed",
        job: "batch",
        runId: o.runId,
        alertId: o.runId,
      });
      expect(JSON.parse(body).error).toMatch(/raw_events is empty/);

      // The failed run released the lock.
      expect(await other.tryAcquire()).toBe(true);
    } finally {
      await lock.close();
      await other.close();
      hook.server.close();
      store.close();
    }
  });

  it("lock contention: a run that finds the lock held does nothing, and runs once it is free", async () => {
    const store = await DuckStore.open(":memory:");
    const key = `sched-test-${randomBytes(6).toString("hex")}`;
    const holder = new PgAdvisoryLock(PG, key);
    const lock = new PgAdvisoryLock(PG, key);
    let opened = 0;
    const open = async (): Promise<JobHandles> => {
      opened++;
      return { store, close: async () => {} };
    };
    try {
      const config = parseScheduleConfig({}, {});
      expect(await holder.tryAcquire()).toBe(true);
      const o = await runScheduledJob({ job: "batch", config, lock, open });
      expect(o).toMatchObject({ job: "batch", status: "locked", lock: `postgres ${key}` });
      expect(opened).toBe(0);
      expect(await (await BatchRunStore.open(store)).recent(5)).toEqual([]);

      // Two schedulers at once: exactly one of them runs (here it fails on the empty store). The one
      // that got the lock waits in open() until the other has answered, so they truly overlap.
      await holder.release();
      let openGate = (): void => {};
      const gate = new Promise<void>((r) => {
        openGate = r;
      });
      const gatedOpen = async (): Promise<JobHandles> => {
        await gate;
        return open();
      };
      const pa = runScheduledJob({ job: "batch", config, lock, open: gatedOpen });
      const pb = runScheduledJob({ job: "batch", config, lock: holder, open: gatedOpen });
      expect((await Promise.race([pa, pb])).status).toBe("locked");
      openGate();
      const [a, b] = await Promise.all([pa, pb]);
      expect([a.status, b.status].sort()).toEqual(["failed", "locked"]);
      expect(opened).toBe(1);
      expect(await (await BatchRunStore.open(store)).recent(5)).toHaveLength(1);
    } finally {
      await holder.close();
      await lock.close();
      store.close();
    }
  });

  it("the CLI: --once exits 1 and says why when the batch fails; 3 when the lock is held", async () => {
    const dir = tmp();
    const db = join(dir, "m.duckdb");
    const run = promisify(execFile);
    const env: NodeJS.ProcessEnv = {};
    for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("MASTERY_")) env[k] = v;
    const cliTs = join(import.meta.dirname, "..", "..", "bin", "cli.ts");
    const cli = ["--import", "tsx", cliTs, "schedule", "--once", "--job", "batch", "--db", db];
    const failed = await run(process.execPath, cli, { env }).then(
      () => null,
      (e: { code: number; stderr: string; stdout: string }) => e,
    );
    expect(failed?.code).toBe(1);
    expect(failed?.stderr).toMatch(/scheduled job batch failed: batch: .*raw_events is empty/);
    expect(JSON.parse(failed!.stdout.trim())).toMatchObject({ job: "batch", status: "failed" });

    // The file lock (no PostgreSQL / Redis configured) held by a live process: nothing runs.
    const { FileLock } = await import("../../monitoring/locks.ts");
    const held = new FileLock(`${db}.mastery-schedule.lock`, 60_000);
    expect(await held.tryAcquire()).toBe(true);
    try {
      const locked = await run(process.execPath, cli, { env }).then(
        () => null,
        (e: { code: number; stderr: string }) => e,
      );
      expect(locked?.code).toBe(3);
      expect(locked?.stderr).toMatch(/another process holds the schedule lock \(file /);
    } finally {
      await held.release();
    }
  });
});
