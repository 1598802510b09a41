/**
 * Encryption in transit: the same stores the worker and server use, selected by URL, talk TLS to
 * PRIVATE TLS-only PostgreSQL / Redis / NATS (free ports from 15432 / 16379 / 14222, self-signed CA made by
 * openssl), and refuse a server whose certificate their CA did not sign.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { validateEvent } from "../../features/contracts.ts";
import { Pseudonymizer } from "../../features/pseudonymize.ts";
import { openStreamStores } from "../../serving/streamStores.ts";
import { IncrementalUpdater, rowsFromEvent, streamModels } from "../../serving/updater.ts";
import { type BusMessage, NatsBus } from "../../storage/bus.ts";
import { PgStore } from "../../storage/postgres.ts";
import { RedisStateStore } from "../../storage/stateStore.ts";
import { natsTlsOptions, redisTlsOptions } from "../../storage/tls.ts";
import {
  choosePorts,
  makePki,
  missingTools,
  type Pki,
  type Ports,
  type Running,
  removePki,
  startNats,
  startPostgres,
  startRedis,
} from "./tlsServices.ts";

const missing = missingTools();
if (missing !== null) console.warn(`skipping TLS tests: ${missing}`);

let pki: Pki;
const running: Running[] = [];
let ports: Ports;
const pgUrl = (ca: string, mode = "verify-full") =>
  `postgres://postgres@127.0.0.1:${ports.pg}/postgres?sslmode=${mode}&sslrootcert=${encodeURIComponent(ca)}`;
const redisUrl = () => `rediss://127.0.0.1:${ports.redis}`;
const natsUrl = () => `tls://127.0.0.1:${ports.nats}`;
const saved = { ...process.env };

/** Runs fn with these variables set (the stores read their TLS files from the environment). */
async function withEnv<T>(vars: Record<string, string>, fn: () => Promise<T>): Promise<T> {
  Object.assign(process.env, vars);
  try {
    return await fn();
  } finally {
    for (const k of Object.keys(vars)) {
      if (saved[k] === undefined) delete process.env[k];
      else process.env[k] = saved[k];
    }
  }
}

describe.skipIf(missing !== null)("TLS to PostgreSQL, Redis and NATS, selected by URL", () => {
  beforeAll(async () => {
    ports = await choosePorts();
    pki = makePki();
    running.push(
      await startPostgres(pki, ports.pg),
      await startRedis(pki, ports.redis),
      await startNats(pki, ports.nats),
    );
  }, 120_000);
  afterAll(async () => {
    for (const r of running.reverse()) await r.stop();
    if (pki) removePki(pki);
  });

  it("PostgreSQL: sslmode=verify-full with our CA connects over TLS; plain and a foreign CA are refused", async () => {
    const store = await PgStore.open(pgUrl(pki.ca));
    const r = await store.one<{ ssl: boolean; version: string }>(
      "SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
    );
    expect(r).toMatchObject({ ssl: true, version: expect.stringMatching(/^TLSv1\.[23]$/) });
    await store.close();
    await expect(PgStore.open(`postgres://postgres@127.0.0.1:${ports.pg}/postgres`)).rejects.toThrow(
      /no encryption/,
    );
    await expect(PgStore.open(pgUrl(pki.otherCa))).rejects.toThrow(/certificate/);
  });

  it("Redis: rediss:// with MASTERY_REDIS_CA; without our CA, or plain redis://, it cannot connect", async () => {
    await withEnv({ MASTERY_REDIS_CA: pki.ca }, async () => {
      const s = await RedisStateStore.open(redisUrl(), "tls_test");
      await s.close();
    });
    await withEnv({ MASTERY_REDIS_CA: pki.otherCa }, async () => {
      await expect(RedisStateStore.open(redisUrl(), "tls_test")).rejects.toThrow(
        /MASTERY_REDIS_CA names the CA/,
      );
    });
    await expect(RedisStateStore.open(`redis://127.0.0.1:${ports.redis}`, "tls_test")).rejects.toThrow(
      /cannot connect/,
    );
    // A CA set for a plain URL is refused rather than silently unused.
    expect(() => redisTlsOptions("redis://h:6379", { MASTERY_REDIS_CA: pki.ca })).toThrow(/use rediss:\/\//);
  });

  it("NATS: tls:// with MASTERY_NATS_CA publishes and consumes; a foreign CA is refused", async () => {
    const bus = await withEnv({ MASTERY_NATS_CA: pki.ca }, () =>
      NatsBus.open({ url: natsUrl(), stream: "TLS_TEST", subjectPrefix: "tlstest.events", durable: "tls" }),
    );
    await bus.publish(bus.subjectFor("quiz_attempt"), new TextEncoder().encode('{"hello":"tls"}'), "m1");
    const got: string[] = [];
    const done = new Promise<void>((resolve) => {
      void bus
        .consume({
          handler: async (batch: BusMessage[]) => {
            for (const m of batch) {
              got.push(new TextDecoder().decode(m.data));
              m.ack();
            }
            resolve();
          },
        })
        .then((sub) => done.then(() => sub.stop()));
    });
    await done;
    expect(got).toEqual(['{"hello":"tls"}']);
    await bus.close();
    await withEnv({ MASTERY_NATS_CA: pki.otherCa }, async () => {
      await expect(NatsBus.open({ url: natsUrl(), stream: "TLS_TEST2" })).rejects.toThrow(
        /cannot connect to NATS/,
      );
    });
    expect(natsTlsOptions("nats://h:4222", {})).toEqual({});
    expect(natsTlsOptions("tls://h:4222", { MASTERY_NATS_CA: pki.ca })).toEqual({ tls: { caFile: pki.ca } });
    expect(() => natsTlsOptions("tls://h:4222", { MASTERY_NATS_CA: "/missing/ca.crt" })).toThrow(
      /MASTERY_NATS_CA: cannot read/,
    );
  });

  it("the incremental update path runs end to end on TLS PostgreSQL + TLS Redis", async () => {
    await withEnv({ MASTERY_REDIS_CA: pki.ca }, async () => {
      const stores = await openStreamStores({
        dbPath: ":memory:",
        pgUrl: pgUrl(pki.ca),
        pgSchema: "tls_int",
        redisUrl: redisUrl(),
        redisPrefix: "tls_int",
      });
      try {
        const updater = new IncrementalUpdater({ ...stores, models: streamModels({}) });
        const pseudo = new Pseudonymizer("tls-test-pseudonym-key-0123");
        const rows = [1, 2, 3].flatMap((m) => {
          const v = validateEvent({
            event_id: `tls-${m}`,
            type: "quiz_attempt",
            student_id: "s1",
            topic_id: "T1",
            timestamp: `2026-01-05T10:0${m}:00Z`,
            question_id: "q1",
            is_correct: m !== 2,
          });
          if (!v.ok) throw new Error(JSON.stringify(v.issues));
          return rowsFromEvent(v.value, pseudo, { source: "tls-test", ingestedAtUs: Date.now() * 1000 });
        });
        const out = await updater.apply(rows);
        expect(out.map((r) => r.outcome).filter((o) => o !== "duplicate")).toHaveLength(3);
        const again = await updater.apply(rows);
        expect(again.every((r) => r.outcome === "duplicate")).toBe(true);
      } finally {
        await stores.close();
      }
    });
  });
});
