import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import request from "supertest";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseThresholds, signWebhook, thresholdFor, verifyWebhookSignature } from "../../serving/alerts.ts";
import { type AlertStore, DuckAlertStore } from "../../storage/alertStore.ts";
import { quiz, storeWithTopics, testApp, token } from "./appFixture.ts";

describe("thresholds", () => {
  const cfg = parseThresholds(
    {
      default: { at_risk: 0.35 },
      schools: { A: { at_risk: 0.4, grades: { 7: 0.45 } }, B: { grades: { 8: 0.3 } } },
    },
    {},
  );
  it("most specific wins: school+grade, school, default", () => {
    expect(thresholdFor(cfg, "A", 7)).toBe(0.45);
    expect(thresholdFor(cfg, "A", 8)).toBe(0.4);
    expect(thresholdFor(cfg, "B", 7)).toBe(0.35);
    expect(thresholdFor(cfg, "B", 8)).toBe(0.3);
    expect(thresholdFor(cfg, null, null)).toBe(0.35);
  });
  it("rejects a threshold outside [0, 1] naming the key", () => {
    expect(() => parseThresholds({ default: { at_risk: 1.5 } }, {})).toThrow(/default\.at_risk/);
  });
  it("a webhook without its secret in env is a config error", () => {
    expect(() => parseThresholds({ webhooks: [{ url: "http://x" }] }, {})).toThrow(/MASTERY_WEBHOOK_SECRET/);
  });
});

describe("signatures", () => {
  it("HMAC-SHA256 over '<t>.<body>' verifies, and fails on any change", () => {
    const h = signWebhook("k".repeat(32), '{"a":1}', 1_700_000_000);
    expect(verifyWebhookSignature("k".repeat(32), h, '{"a":1}', 1_700_000_010)).toBe(true);
    expect(verifyWebhookSignature("k".repeat(32), h, '{"a":2}', 1_700_000_010)).toBe(false);
    expect(verifyWebhookSignature("x".repeat(32), h, '{"a":1}', 1_700_000_010)).toBe(false);
    expect(verifyWebhookSignature("k".repeat(32), h, '{"a":1}', 1_700_001_000)).toBe(false); // too old
  });
});

describe("alerts end to end with a local webhook receiver", () => {
  const secret = "webhook-secret-webhook-secret-0123";
  const received: { headers: IncomingHttpHeaders; body: string; status: number }[] = [];
  let server: Server;
  let url: string;
  beforeAll(async () => {
    let calls = 0;
    server = createServer((req, res) => {
      let body = "";
      req.on("data", (c) => {
        body += c;
      });
      req.on("end", () => {
        calls++;
        const status = calls === 1 ? 500 : 200; // fail once, then OK: the first alert is retried
        received.push({ headers: req.headers, body, status });
        res.writeHead(status).end();
      });
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  });
  afterAll(() => server.close());

  it("one alert per crossing, signed, retried with the same idempotency key, re-armed above the hysteresis", async () => {
    const store = await storeWithTopics();
    const h = await testApp(store, {
      thresholds: parseThresholds(
        { default: { at_risk: 0.35 }, hysteresis: 0.05, webhooks: [{ url, secret_env: "HOOK" }] },
        { HOOK: secret },
      ),
      webhookRetry: { attempts: 4, baseMs: 10 },
    });
    const admin = { authorization: `Bearer ${await token({ role: "admin", sub: "root" })}` };
    const wrong = (from: number, n: number) =>
      Array.from({ length: n }, (_, i) => quiz(`w${from + i}`, "s1", "T1", false, from + i));
    expect((await request(h.app).post("/events").set(admin).send(wrong(0, 6))).status).toBe(200);
    await h.drain();
    const m = await request(h.app).get("/mastery/s1").set(admin);
    expect(m.body.topics[0].score).toBeLessThan(0.35);
    let alerts = await store.all("SELECT * FROM alerts");
    expect(alerts).toHaveLength(1);
    // Still below: more wrong answers raise nothing new.
    await request(h.app).post("/events").set(admin).send(wrong(10, 3));
    await h.drain();
    alerts = await store.all("SELECT * FROM alerts");
    expect(alerts).toHaveLength(1);
    expect(received).toHaveLength(2); // the failed attempt + its retry
    expect(received[0]!.status).toBe(500);
    expect(received[1]!.status).toBe(200);
    const id = alerts[0]!.alert_id as string;
    for (const r of received) {
      expect(r.headers["idempotency-key"]).toBe(id);
      expect(verifyWebhookSignature(secret, r.headers["x-mastery-signature"] as string, r.body)).toBe(true);
      expect(JSON.parse(r.body)).toMatchObject({ alertId: id, topicId: "T1", rule: "at_risk", crossing: 1 });
    }
    const deliveries = await store.all("SELECT attempt, status FROM webhook_deliveries ORDER BY attempt");
    expect(deliveries.map((d) => [d.attempt, d.status])).toEqual([
      [1, 500],
      [2, 200],
    ]);
    // 0.38 is above the threshold but below threshold + hysteresis: not re-armed, so 0.2 raises nothing.
    const fb = (mastery: number) =>
      request(h.app)
        .post("/feedback")
        .set(admin)
        .send({ studentId: "s1", topicId: "T1", mastery, reason: "check" });
    await fb(0.38);
    await fb(0.2);
    expect(await store.all("SELECT * FROM alerts")).toHaveLength(1);
    // Back to 0.9 re-arms; the next drop is a second crossing with a new id.
    await fb(0.9);
    await fb(0.1);
    await h.drain();
    const after = await store.all("SELECT alert_id, crossing FROM alerts ORDER BY crossing");
    expect(after.map((a) => a.crossing)).toEqual([1, 2]);
    expect(after[1]!.alert_id).not.toBe(id);
    expect(received).toHaveLength(3);
    store.close();
  });
});

describe("a start re-checks what a crashed process had queued after its answers", () => {
  const admin = async () => ({ authorization: `Bearer ${await token({ role: "admin", sub: "root" })}` });
  const wrong = (n: number) => Array.from({ length: n }, (_, i) => quiz(`c${i}`, "s1", "T1", false, i));

  /** A process whose checks after the answer never complete (it dies before them). */
  async function crashedProcess(store: Awaited<ReturnType<typeof storeWithTopics>>) {
    const real = await DuckAlertStore.open(store);
    const dying: AlertStore = {
      kind: real.kind,
      concurrent: real.concurrent,
      candidates: () => Promise.reject(new Error("process killed before its alert check")),
      record: (a, s, at) => real.record(a, s, at),
      logDelivery: (d, at) => real.logDelivery(d, at),
      recentlyScored: (since, limit) => real.recentlyScored(since, limit),
    };
    const h = await testApp(store, { alertStore: dying });
    expect(
      (
        await request(h.app)
          .post("/events")
          .set(await admin())
          .send(wrong(6))
      ).status,
    ).toBe(200);
    expect(h.ctx.alertChecks.pending + h.ctx.alertChecks.stats.failures).toBeGreaterThan(0);
    expect(await store.all("SELECT * FROM alerts")).toHaveLength(0);
  }

  it("the next server's start raises the alert the dead one owed, once", async () => {
    const store = await storeWithTopics();
    await crashedProcess(store);
    const restarted = await testApp(store);
    await restarted.drain();
    const alerts = await store.all("SELECT topic_id, crossing FROM alerts");
    expect(alerts).toEqual([{ topic_id: "T1", crossing: 1 }]);
    // Another start within the window checks the key again: idempotent, nothing new.
    const again = await testApp(store);
    await again.drain();
    expect(await store.all("SELECT * FROM alerts")).toHaveLength(1);
    store.close();
  });

  it("recovery_minutes: 0 turns the catch-up off (the daily pass still checks the key)", async () => {
    const store = await storeWithTopics();
    await crashedProcess(store);
    const restarted = await testApp(store, {
      thresholds: parseThresholds({ default: { at_risk: 0.35 }, recovery_minutes: 0 }, {}),
    });
    await restarted.drain();
    expect(await store.all("SELECT * FROM alerts")).toHaveLength(0);
    store.close();
  });

  it("a malformed recovery_minutes names the key and an example", () => {
    expect(() => parseThresholds({ recovery_minutes: -1 }, {})).toThrow(
      /recovery_minutes.*e\.g\. 2 \(the default\)/,
    );
    expect(() => parseThresholds({ recovery_minutes: "2" }, {})).toThrow(/recovery_minutes/);
  });
});
