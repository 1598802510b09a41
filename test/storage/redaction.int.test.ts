import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { NatsBus } from "../../storage/bus.ts";
import { PgStore } from "../../storage/postgres.ts";
import { RedisStateStore } from "../../storage/stateStore.ts";

/**
 * Connection URLs carry passwords; no error message or log line shows them. Real drivers, real
 * failures: a port with nothing listening (connection refused) for PostgreSQL, Redis and NATS, and
 * `mastery serve` / `mastery worker` started with such URLs (their stderr).
 */

const PASSWORD = "Hunter2@s3cret";
const MASTERY = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "bin", "mastery.js");
const dir = mkdtempSync(join(tmpdir(), "mastery-redact-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const freePort = (): Promise<number> =>
  new Promise((resolve) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });

/** The error thrown by `fn` (fails the test when nothing is thrown). */
async function thrown(fn: () => Promise<unknown>): Promise<Error> {
  try {
    await fn();
  } catch (err) {
    return err as Error;
  }
  throw new Error("expected a connection error, got none");
}

/** No form of the password (raw, URL-encoded, or its distinctive halves) in `text`. */
function expectNoPassword(text: string): void {
  for (const part of [PASSWORD, encodeURIComponent(PASSWORD), "Hunter2", "s3cret"]) {
    expect(text).not.toContain(part);
  }
}

describe("connection errors never show a URL's password", () => {
  it("PostgreSQL, Redis and NATS refused: the message names the redacted URL and the cause", async () => {
    const pw = encodeURIComponent(PASSWORD);
    const pgPort = await freePort();
    const pg = await thrown(() =>
      PgStore.open(`postgres://app:${pw}@127.0.0.1:${pgPort}/test`, { connectTimeoutMs: 2000 }),
    );
    expect(pg.message).toContain(`postgres://app:***@127.0.0.1:${pgPort}/test`);
    expect(pg.message).toMatch(/ECONNREFUSED/);
    expectNoPassword(`${pg.message}\n${pg.stack}`);

    const redisPort = await freePort();
    const redis = await thrown(() =>
      RedisStateStore.open(`redis://default:${pw}@127.0.0.1:${redisPort}/0`, "redact_test", {
        connectTimeoutMs: 2000,
      }),
    );
    expect(redis.message).toContain(`redis://default:***@127.0.0.1:${redisPort}/0`);
    expectNoPassword(`${redis.message}\n${redis.stack}`);

    const natsPort = await freePort();
    const nats = await thrown(() =>
      NatsBus.open({ url: `nats://app:${pw}@127.0.0.1:${natsPort}`, stream: "REDACT_TEST" }),
    );
    expect(nats.message).toContain(`nats://app:***@127.0.0.1:${natsPort}`);
    expectNoPassword(`${nats.message}\n${nats.stack}`);
  });

  it("`mastery serve` and `mastery worker` with password URLs to nothing: stderr has no password", async () => {
    const port = await freePort();
    // A raw (unencoded) '@' in the password too: the worst case for a URL parser.
    for (const url of [
      `postgres://app:${encodeURIComponent(PASSWORD)}@127.0.0.1:${port}/test`,
      `postgres://app:${PASSWORD}@127.0.0.1:${port}/test`,
    ]) {
      for (const args of [
        ["serve", "--no-monitor", "--port", "0", "--db", join(dir, "serve.duckdb")],
        ["worker"],
      ]) {
        const env: NodeJS.ProcessEnv = {};
        for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("MASTERY_")) env[k] = v;
        const r = spawnSync(process.execPath, [MASTERY, ...args], {
          env: {
            ...env,
            MASTERY_QUIET: "1",
            MASTERY_JWT_SECRET: "redaction-test-secret-0123456789abcdef",
            MASTERY_PSEUDONYM_KEY: "redaction-test-pseudonym-key",
            MASTERY_PG_URL: url,
            MASTERY_REDIS_URL: `redis://default:${encodeURIComponent(PASSWORD)}@127.0.0.1:${port}`,
            MASTERY_NATS_URL: `nats://app:${encodeURIComponent(PASSWORD)}@127.0.0.1:${port}`,
            MASTERY_PG_CONNECT_TIMEOUT_MS: "2000",
          },
          encoding: "utf8",
          timeout: 60_000,
        });
        expect(r.status, `${args[0]}: ${r.stderr}`).not.toBe(0);
        expect(r.stderr).toMatch(/cannot connect|ECONNREFUSED|unavailable/i);
        expectNoPassword(`${r.stdout}\n${r.stderr}`);
      }
    }
  });
});
