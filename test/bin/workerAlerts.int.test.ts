/**
 * `mastery worker` as an operator runs it (the real CLI, real PostgreSQL + Redis + NATS): events whose
 * scores drop below the threshold raise one alert, stored in PostgreSQL, and call the webhook of the
 * thresholds file once, signed with the secret from the worker's environment.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Pseudonymizer } from "../../features/pseudonymize.ts";
import { verifyWebhookSignature } from "../../serving/alerts.ts";
import { NatsBus } from "../../storage/bus.ts";
import { PgStore } from "../../storage/postgres.ts";
import { quiz } from "../serving/appFixture.ts";
import { dropServices, NATS_URL, PG_URL, publishAll, REDIS_URL, runId } from "../serving/streamHarness.ts";

const MASTERY = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "bin", "mastery.js");
const SECRET = "worker-alerts-webhook-secret-0123456789";
const PSEUDO = "worker-alerts-pseudonym-key-0123456789";

describe("mastery worker: at-risk alerts", () => {
  const id = runId("alerts_cli");
  const dir = mkdtempSync(join(tmpdir(), "alerts-cli-"));
  const received: { alertId: string; crossing: number; studentKey: string; signed: boolean }[] = [];
  let server: Server;
  let bus: NatsBus | undefined;
  beforeAll(async () => {
    server = createServer((req, res) => {
      let body = "";
      req.on("data", (c) => {
        body += c;
      });
      req.on("end", () => {
        const a = JSON.parse(body) as { alertId: string; crossing: number; studentKey: string };
        received.push({
          ...a,
          signed: verifyWebhookSignature(SECRET, req.headers["x-mastery-signature"] as string, body),
        });
        res.writeHead(200).end();
      });
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  });
  afterAll(async () => {
    server.close();
    await bus?.destroy().catch(() => undefined);
    await bus?.close().catch(() => undefined);
    await dropServices(id);
    rmSync(dir, { recursive: true, force: true });
  });

  it("one crossing -> one alert row in PostgreSQL and one signed webhook call", {
    timeout: 180_000,
  }, async () => {
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
    const thresholds = join(dir, "thresholds.yaml");
    writeFileSync(thresholds, `default:\n  at_risk: 0.35\nhysteresis: 0.05\nwebhooks:\n  - url: ${url}\n`);
    bus = await NatsBus.open({ url: NATS_URL, stream: id, subjectPrefix: `test.${id}`, durable: "workers" });
    // Six wrong answers of s1 on T1 (BKT falls below 0.35), then three more (still below: no new alert).
    const events = Array.from({ length: 9 }, (_, i) => quiz(`cw${i}`, "s1", "T1", false, i));
    await publishAll(bus, events.slice(0, 6));
    await publishAll(bus, events.slice(6));
    const child = spawn(
      process.execPath,
      [
        MASTERY,
        "worker",
        "--stream",
        id,
        "--subject-prefix",
        `test.${id}`,
        "--durable",
        "workers",
        "--batch",
        "3",
        "--thresholds",
        thresholds,
        "--idle-exit",
        "2",
      ],
      {
        env: {
          ...process.env,
          MASTERY_FROM_SOURCE: "1",
          MASTERY_NATS_URL: NATS_URL,
          MASTERY_PG_URL: PG_URL,
          MASTERY_PG_SCHEMA: id.toLowerCase(),
          MASTERY_REDIS_URL: REDIS_URL,
          MASTERY_REDIS_PREFIX: id,
          MASTERY_PSEUDONYM_KEY: PSEUDO,
          MASTERY_WEBHOOK_SECRET: SECRET,
        },
        stdio: ["ignore", "ignore", "pipe"],
      },
    );
    let err = "";
    child.stderr?.on("data", (d: Buffer) => {
      err += d.toString();
    });
    const code = await new Promise<number | null>((r) => child.on("exit", r));
    expect(code, err).toBe(0);
    const key = new Pseudonymizer(PSEUDO).studentKey("s1");
    expect(received).toHaveLength(1);
    expect(received[0]).toMatchObject({ crossing: 1, studentKey: key, signed: true });
    const pg = await PgStore.open(PG_URL, { schema: id.toLowerCase() });
    try {
      const alerts = await pg.all<{ alert_id: string }>("SELECT alert_id FROM alerts");
      expect(alerts).toEqual([{ alert_id: received[0]!.alertId }]);
      const events = await pg.one<{ n: string }>("SELECT count(DISTINCT event_id) AS n FROM raw_events");
      expect(Number(events!.n)).toBe(9);
    } finally {
      await pg.close();
    }
  });
});
