import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import request from "supertest";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { Pseudonymizer } from "../../features/pseudonymize.ts";
import {
  AlertEngine,
  alertsAfterApply,
  parseThresholds,
  type ThresholdConfig,
  verifyWebhookSignature,
} from "../../serving/alerts.ts";
import { startWorker } from "../../serving/streamWorker.ts";
import { IncrementalUpdater } from "../../serving/updater.ts";
import type { AlertStore } from "../../storage/alertStore.ts";
import { PgStore } from "../../storage/postgres.ts";
import { PSEUDO_KEY, quiz, storeWithTopics, testApp, token } from "./appFixture.ts";
import { DEFAULT_MODELS, PG_URL, pgServingBackends, publishAll } from "./streamHarness.ts";

/**
 * At-risk alerts in each deployment mode, against a real local webhook receiver (a node http server)
 * and the real PostgreSQL / Redis / NATS: a score crossing below the threshold raises exactly one
 * alert and one webhook call, read from the store the scores live in; a failing check never fails
 * or repeats the event write. Each run has its own PG schema, Redis prefix and NATS stream ("alerts_*").
 */

const SECRET = "alerts-modes-webhook-secret-0123456789";
const admin = async () => ({ authorization: `Bearer ${await token({ role: "admin", sub: "root" })}` });
const wrong = (from: number, n: number, student = "s1") =>
  Array.from({ length: n }, (_, i) => quiz(`${student}w${from + i}`, student, "T1", false, from + i));
const right = (from: number, n: number, student = "s1") =>
  Array.from({ length: n }, (_, i) => quiz(`${student}r${from + i}`, student, "T1", true, from + i));

interface Hook {
  alertId: string;
  crossing: number;
  topicId: string;
  studentKey: string;
  signed: boolean;
}

describe("at-risk alerts in every deployment mode", () => {
  const received: Hook[] = [];
  let server: Server;
  let thresholds: ThresholdConfig;
  const cleanups: (() => Promise<void>)[] = [];

  beforeAll(async () => {
    server = createServer((req, res) => {
      let body = "";
      req.on("data", (c) => {
        body += c;
      });
      req.on("end", () => {
        const a = JSON.parse(body) as Hook;
        received.push({
          ...a,
          signed:
            verifyWebhookSignature(SECRET, req.headers["x-mastery-signature"] as string, body) &&
            req.headers["idempotency-key"] === a.alertId,
        });
        res.writeHead(200).end();
      });
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
    thresholds = parseThresholds(
      { default: { at_risk: 0.35 }, hysteresis: 0.05, webhooks: [{ url, secret_env: "HOOK" }] },
      { HOOK: SECRET },
    );
  });
  beforeEach(() => {
    received.length = 0;
  });
  afterAll(async () => {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
    server.close();
  });

  async function pgApp(label: string, viaStream = false) {
    const { schema, duck, backends } = await pgServingBackends(label, cleanups, {
      viaStream,
      durable: "alerts-workers",
    });
    const h = await testApp(duck, {
      ...backends.deps,
      thresholds,
      webhookRetry: { attempts: 3, baseMs: 10 },
    });
    const pg = await PgStore.open(PG_URL, { schema });
    cleanups.push(() => pg.close());
    return { h, duck, pg, backends };
  }

  /** A stream worker as `mastery worker` builds it, on the backends' stores and bus. */
  type Backends = Awaited<ReturnType<typeof pgApp>>["backends"];
  function streamWorker(
    backends: Backends,
    extra: Pick<Parameters<typeof startWorker>[0], "afterApply" | "onError"> = {},
  ) {
    const stores = backends.stores!;
    return startWorker({
      bus: backends.bus!,
      updater: new IncrementalUpdater({
        raw: stores.raw,
        state: stores.state,
        mastery: stores.mastery,
        models: DEFAULT_MODELS,
      }),
      raw: stores.raw,
      pseudonymizer: new Pseudonymizer(PSEUDO_KEY),
      maxBatch: 100,
      ...extra,
    });
  }

  it("embedded: one crossing raises one alert and one signed webhook call", async () => {
    const store = await storeWithTopics();
    const h = await testApp(store, { thresholds });
    const auth = await admin();
    expect((await request(h.app).post("/events").set(auth).send(wrong(0, 6))).status).toBe(200);
    expect((await request(h.app).post("/events").set(auth).send(wrong(10, 3))).status).toBe(200);
    await h.drain();
    const rows = await store.all<{ alert_id: string }>("SELECT alert_id FROM alerts");
    expect(rows).toHaveLength(1);
    expect(received).toHaveLength(1);
    expect(received[0]).toMatchObject({
      alertId: rows[0]!.alert_id,
      crossing: 1,
      topicId: "T1",
      signed: true,
    });
    store.close();
  });

  it("PostgreSQL + Redis: the alert is raised from the PostgreSQL scores, state kept in PostgreSQL", async () => {
    const { h, duck, pg } = await pgApp("alerts_pg");
    const auth = await admin();
    expect((await request(h.app).post("/events").set(auth).send(wrong(0, 6))).status).toBe(200);
    const served = await request(h.app).get("/mastery/s1").set(auth);
    expect(served.body.topics[0].score).toBeLessThan(0.35);
    expect((await request(h.app).post("/events").set(auth).send(wrong(10, 3))).status).toBe(200);
    await h.drain();
    expect(received).toHaveLength(1);
    expect(received[0]).toMatchObject({ crossing: 1, topicId: "T1", signed: true });
    const rows = await pg.all<{ alert_id: string; school_id: string; grade: number }>(
      "SELECT alert_id, school_id, grade FROM alerts",
    );
    expect(rows).toEqual([{ alert_id: received[0]!.alertId, school_id: "SCH", grade: 7 }]);
    const deliveries = await pg.all<{ status: number }>("SELECT status FROM webhook_deliveries");
    expect(deliveries).toEqual([{ status: 200 }]);
    // Nothing in the server's DuckDB: the scores (and so the alerts) are not there.
    expect(await duck.all("SELECT * FROM alerts")).toEqual([]);

    // Hysteresis as on the embedded store: right answers lift the score back over 0.35 + 0.05 (re-arm),
    // the next drop is crossing 2 with a new id.
    for (let i = 0; i < 6; i++)
      expect(
        (
          await request(h.app)
            .post("/events")
            .set(auth)
            .send(right(20 + 3 * i, 3))
        ).status,
      ).toBe(200);
    await h.drain(); // the checks run after the answers (serving/deferredAlertChecks.ts)
    const st = await pg.all<{ below: boolean; crossings: number }>(
      "SELECT below, crossings FROM alert_state",
    );
    expect(st).toEqual([{ below: false, crossings: 1 }]);
    // Default BKT has no forgetting: once learned, wrong answers hardly move it, so the next drop is a
    // lower score written straight into PostgreSQL (as a recompute or another writer could), then checked.
    await pg.run("UPDATE student_mastery SET mastery_score = 0.1");
    const key = new Pseudonymizer(PSEUDO_KEY).studentKey("s1");
    expect(await h.ctx.alerts.check([{ studentKey: key, topicId: "T1" }])).toHaveLength(1);
    expect(await h.ctx.alerts.check([{ studentKey: key, topicId: "T1" }])).toHaveLength(0);
    await h.drain();
    expect(received.map((r) => r.crossing)).toEqual([1, 2]);
    expect(new Set(received.map((r) => r.alertId)).size).toBe(2);
  });

  it("PostgreSQL: two checkers of the same crossing (two workers) send one webhook", async () => {
    const { h, backends } = await pgApp("alerts_race");
    const auth = await admin();
    // Scores written, alert raised by the server's check...
    expect(
      (
        await request(h.app)
          .post("/events")
          .set(auth)
          .send(wrong(0, 6, "s2"))
      ).status,
    ).toBe(200);
    await h.drain();
    expect(received).toHaveLength(1);
    // ...then, with the alert and its state removed, two engines on the same store check the key at
    // once: both see a new crossing, both try to store it, one webhook call goes out.
    const stores = backends.stores!;
    await stores.pg!.run("DELETE FROM alert_state");
    await stores.pg!.run("DELETE FROM alerts");
    const key = new Pseudonymizer(PSEUDO_KEY).studentKey("s2");
    const a = new AlertEngine(stores.alerts, thresholds);
    const b = new AlertEngine(stores.alerts, thresholds);
    const [ra, rb] = await Promise.all([
      a.check([{ studentKey: key, topicId: "T1" }]),
      b.check([{ studentKey: key, topicId: "T1" }]),
    ]);
    await Promise.all([a.drain(), b.drain()]);
    expect(ra.length + rb.length).toBe(1);
    expect(received).toHaveLength(2);
    expect(received[1]!.alertId).toBe(received[0]!.alertId); // the same crossing, the same id
    // A state another checker moved since this one read it is left alone, and its alert is not stored.
    const stale = await stores.alerts.record(
      [
        {
          alertId: "stale-check-alert",
          studentKey: key,
          topicId: "T1",
          rule: "at_risk",
          threshold: 0.35,
          score: 0.1,
          scoreSource: "bkt",
          schoolId: null,
          grade: null,
          crossing: 2,
        },
      ],
      [{ studentKey: key, topicId: "T1", below: true, crossings: 2, prev: { below: false, crossings: 1 } }],
      new Date(),
    );
    expect(stale.size).toBe(0);
    expect(await stores.pg!.all("SELECT below, crossings FROM alert_state")).toEqual([
      { below: true, crossings: 1 },
    ]);
    expect(await stores.pg!.all("SELECT alert_id FROM alerts WHERE alert_id = 'stale-check-alert'")).toEqual(
      [],
    );
    // A crossing already stored is never re-sent.
    await stores.pg!.run("DELETE FROM alert_state");
    expect(await a.check([{ studentKey: key, topicId: "T1" }])).toEqual([]);
    await a.drain();
    expect(received).toHaveLength(2);
  });

  it("PostgreSQL: a first check above the threshold stores no state, so a concurrent first crossing keeps its alert", async () => {
    const { h, backends } = await pgApp("alerts_first");
    const auth = await admin();
    const stores = backends.stores!;
    const key = new Pseudonymizer(PSEUDO_KEY).studentKey("s3");
    // Right answers: the served score is above 0.35, and the server's check stores nothing for the key.
    expect(
      (
        await request(h.app)
          .post("/events")
          .set(auth)
          .send(right(0, 6, "s3"))
      ).status,
    ).toBe(200);
    await h.drain();
    expect(received).toEqual([]);
    expect(await stores.pg!.all("SELECT below, crossings FROM alert_state")).toEqual([]);

    // Two checkers race on the key's first check: A reads the score above the threshold; the score then drops
    // (another writer); B reads it below; A writes its result, then B. B's crossing must be stored and sent.
    const signal = () => {
      let open!: () => void;
      const opened = new Promise<void>((r) => {
        open = r;
      });
      return { open, opened };
    };
    const aRead = signal();
    const bRead = signal();
    const aGo = signal();
    const base = stores.alerts;
    const storeA = Object.create(base) as AlertStore;
    storeA.candidates = async (...args) => {
      const rows = await base.candidates(...args);
      aRead.open();
      return rows;
    };
    storeA.record = async (...args) => {
      await aGo.opened;
      return base.record(...args);
    };
    const a = new AlertEngine(storeA, thresholds);
    const checkA = a.check([{ studentKey: key, topicId: "T1" }]);
    await aRead.opened;
    await stores.pg!.run(`UPDATE student_mastery SET mastery_score = 0.1 WHERE student_key = '${key}'`);
    const storeB = Object.create(base) as AlertStore;
    storeB.candidates = async (...args) => {
      const rows = await base.candidates(...args);
      bRead.open();
      return rows;
    };
    storeB.record = async (...args) => {
      await checkA; // B's write lands after A's
      return base.record(...args);
    };
    const b = new AlertEngine(storeB, thresholds);
    const checkB = b.check([{ studentKey: key, topicId: "T1" }]);
    await bRead.opened;
    aGo.open();
    expect(await checkA).toEqual([]);
    const raised = await checkB;
    await Promise.all([a.drain(), b.drain()]);
    expect(raised.map((r) => [r.crossing, r.topicId])).toEqual([[1, "T1"]]);
    expect(await stores.pg!.all("SELECT below, crossings FROM alert_state")).toEqual([
      { below: true, crossings: 1 },
    ]);
    expect(await stores.pg!.all("SELECT alert_id FROM alerts")).toEqual([{ alert_id: raised[0]!.alertId }]);
    expect(received.map((r) => [r.alertId, r.crossing, r.signed])).toEqual([[raised[0]!.alertId, 1, true]]);
  });

  it("PostgreSQL: a failing alert check keeps the events, answers 200, does not apply them twice, and is retried", async () => {
    const { h, pg } = await pgApp("alerts_fail");
    const auth = await admin();
    await pg.run("ALTER TABLE alert_state RENAME TO alert_state_away");
    const post = await request(h.app).post("/events").set(auth).send(wrong(0, 6));
    expect(post.status).toBe(200);
    expect(post.body.accepted).toBe(6);
    const n = await pg.one<{ n: string }>("SELECT count(*) AS n FROM raw_events");
    expect(Number(n!.n)).toBe(6);
    const hist = await pg.one<{ n: string }>(
      "SELECT count(*) AS n FROM student_mastery_history WHERE score_source = 'bkt'",
    );
    expect(Number(hist!.n)).toBe(1);
    // The check after the answer fails while the table is away; its key stays queued for the retry.
    await h.drain();
    expect(received).toHaveLength(0);
    expect(h.ctx.alertChecks.pending).toBe(1);
    expect(h.ctx.alertChecks.stats.failures).toBeGreaterThanOrEqual(1);
    // Table restored: the retry raises the crossing, exactly one webhook call.
    await pg.run("ALTER TABLE alert_state_away RENAME TO alert_state");
    await h.drain();
    expect(h.ctx.alertChecks.pending).toBe(0);
    expect(received).toHaveLength(1);
    expect(received[0]).toMatchObject({ crossing: 1, topicId: "T1", signed: true });
    await h.drain();
    expect(received).toHaveLength(1);
    expect(await pg.all("SELECT below, crossings FROM alert_state")).toEqual([{ below: true, crossings: 1 }]);
  });

  it("--via-stream: the worker checks alerts after applying, one webhook per crossing", async () => {
    const { h, pg, backends } = await pgApp("alerts_ns", true);
    const auth = await admin();
    const stores = backends.stores!;
    // The worker process's own updater and engine on the same stores (as `mastery worker` builds them).
    const engine = new AlertEngine(stores.alerts, thresholds, { retry: { attempts: 3, baseMs: 10 } });
    const errors: string[] = [];
    const worker = await streamWorker(backends, {
      afterApply: alertsAfterApply(engine),
      onError: (e) => errors.push(String(e)),
    });
    cleanups.push(() => worker.stop());
    const waitApplied = async (n: number) => {
      // "replayed": applied by this worker's other lane first (two batches in progress at once).
      const done = () => worker.stats.applied + worker.stats.replayed;
      for (let i = 0; i < 400 && done() < n; i++) await new Promise((r) => setTimeout(r, 25));
      expect(done(), JSON.stringify({ stats: worker.stats, errors })).toBe(n);
    };
    const post = await request(h.app).post("/events").set(auth).send(wrong(0, 6));
    expect(post.body.updatedKeys).toBe(0); // published, not applied by the server
    await waitApplied(6);
    await request(h.app).post("/events").set(auth).send(wrong(10, 3));
    await waitApplied(9);
    await engine.drain();
    await h.drain();
    expect(received).toHaveLength(1);
    expect(received[0]).toMatchObject({ crossing: 1, topicId: "T1", signed: true });
    expect(await pg.all("SELECT alert_id FROM alerts")).toEqual([{ alert_id: received[0]!.alertId }]);

    // A failing check in the worker: the events are applied and acknowledged once, nothing dead-lettered.
    await pg.run("DROP TABLE alert_state");
    await request(h.app)
      .post("/events")
      .set(auth)
      .send(wrong(0, 4, "s2"));
    await waitApplied(13);
    for (let i = 0; i < 200 && worker.stats.afterApplyFailures === 0; i++)
      await new Promise((r) => setTimeout(r, 25));
    expect(worker.stats.afterApplyFailures).toBeGreaterThan(0);
    expect(errors.some((e) => /after-apply step failed/.test(e))).toBe(true);
    await worker.stop();
    expect(worker.stats.deadLettered).toBe(0);
    expect(worker.stats.retried).toBe(0);
    const n = await pg.one<{ n: string }>("SELECT count(DISTINCT event_id) AS n FROM raw_events");
    expect(Number(n!.n)).toBe(13);
    expect(received).toHaveLength(1);
  });
  it("--via-stream: a batch applied but never checked (worker killed in between) is checked on redelivery", async () => {
    const { backends } = await pgApp("alerts_redeliver", true);
    const stores = backends.stores!;
    const bus = backends.bus!;
    const worker = (afterApply?: ReturnType<typeof alertsAfterApply>) =>
      streamWorker(backends, afterApply === undefined ? {} : { afterApply });
    const settled = async (w: Awaited<ReturnType<typeof worker>>, n: number) => {
      const done = () => w.stats.applied + w.stats.replayed + w.stats.duplicates;
      for (let i = 0; i < 400 && done() < n; i++) await new Promise((r) => setTimeout(r, 25));
      expect(done(), JSON.stringify(w.stats)).toBe(n);
    };
    // The first worker writes the scores and "dies" before its check: it has no check at all.
    const first = await worker();
    await publishAll(bus, wrong(0, 6, "s9"));
    await settled(first, 6);
    await first.stop();
    expect(received).toHaveLength(0);
    // The batch comes again (a redelivery: same event ids). Every event is a duplicate now, and the
    // check still runs on their keys: one webhook for the crossing the first worker never reported.
    const engine = new AlertEngine(stores.alerts, thresholds, { retry: { attempts: 3, baseMs: 10 } });
    const second = await worker(alertsAfterApply(engine));
    cleanups.push(() => second.stop());
    await publishAll(bus, wrong(0, 6, "s9"));
    await settled(second, 6);
    expect(second.stats.duplicates).toBe(6);
    await engine.drain();
    expect(received).toHaveLength(1);
    expect(received[0]).toMatchObject({ crossing: 1, topicId: "T1", signed: true });
    // A third delivery raises nothing more: the check is idempotent.
    await publishAll(bus, wrong(0, 6, "s9"));
    await settled(second, 12);
    await engine.drain();
    expect(received).toHaveLength(1);
  });
});
