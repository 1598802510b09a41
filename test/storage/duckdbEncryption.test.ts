/**
 * Encryption at rest of the embedded DuckDB file (DuckDB's AES-256-GCM database encryption).
 * Writing an encrypted file needs DuckDB's OpenSSL module (httpfs extension); on a machine without
 * it (offline CI) the tests write with DuckDB's mbedTLS fallback, opted into explicitly, which
 * encrypts the same way but is not securely random (see docs/runbook.md "Encryption and access").
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DuckDBInstance } from "@duckdb/node-api";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type DbEncryption,
  DuckStore,
  dbEncryptionFromEnv,
  isEncryptedDuckDbFile,
  rekeyDuckDbFile,
} from "../../storage/duckdb.ts";

const KEY1 = "k1".repeat(32);
const KEY2 = "k2".repeat(32);
const STUDENT_KEY = "5f0c2b1e9d8a7c6b5a4f3e2d1c0b9a8f";
const TOPIC = "topic-photosynthesis-secret-7731";
let dir: string;
let httpfs = false;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "mastery-enc-"));
  const inst = await DuckDBInstance.create(":memory:");
  const c = await inst.connect();
  httpfs = await c.run("LOAD httpfs").then(
    () => true,
    () => false,
  );
  c.closeSync();
  inst.closeSync();
  if (!httpfs)
    console.info(
      "DuckDB httpfs (OpenSSL crypto) not installed: encrypted files are written with the mbedTLS fallback",
    );
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const enc = (key: string): DbEncryption => ({ key, crypto: httpfs ? "openssl" : "mbedtls-unsafe" });

/** Every file DuckDB keeps for a database: the file itself and its WAL. */
const bytesOf = (path: string): Buffer =>
  Buffer.concat([path, `${path}.wal`].filter(existsSync).map((f) => readFileSync(f)));

async function writeEvents(path: string, encryption: DbEncryption | null, n: number): Promise<void> {
  const store = await DuckStore.open(path, { encryption });
  await store.run(
    `INSERT INTO raw_events (event_id, type, student_key, topic_id, ts, ingested_at)
     SELECT 'e' || i, 'quiz_attempt', $1, $2, TIMESTAMP '2026-01-05 10:00:00', now() FROM range($3) t(i)`,
    [STUDENT_KEY, TOPIC, n],
  );
  store.close();
}

describe("DuckDB file encrypted at rest", () => {
  it("the file holds no known student_key or topic string, and reopens with the key", async () => {
    const path = join(dir, "enc.duckdb");
    await writeEvents(path, enc(KEY1), 2000);
    const bytes = bytesOf(path);
    expect(bytes.length).toBeGreaterThan(10_000);
    expect(bytes.includes(STUDENT_KEY)).toBe(false);
    expect(bytes.includes(TOPIC)).toBe(false);
    expect(await isEncryptedDuckDbFile(path)).toBe(true);
    const store = await DuckStore.open(path, { encryption: enc(KEY1) });
    const r = await store.one<{ n: bigint; k: string }>(
      "SELECT count(*) AS n, any_value(student_key) AS k FROM raw_events WHERE topic_id = $1",
      [TOPIC],
    );
    expect(Number(r?.n)).toBe(2000);
    expect(r?.k).toBe(STUDENT_KEY);
    expect(await store.tableNames()).toContain("raw_events");
    store.close();
  });

  it("the same data in a plain file is readable: the check above can fail", async () => {
    const path = join(dir, "plain.duckdb");
    await writeEvents(path, null, 2000);
    const bytes = bytesOf(path);
    expect(bytes.includes(STUDENT_KEY) || bytes.includes(TOPIC)).toBe(true);
    expect(await isEncryptedDuckDbFile(path)).toBe(false);
  });

  it("opening without the key, with a wrong key, or a plain file with a key fails saying what to do", async () => {
    const path = join(dir, "enc.duckdb");
    await expect(DuckStore.open(path, { encryption: null })).rejects.toThrow(
      /enc\.duckdb is encrypted: set MASTERY_DB_KEY \(or MASTERY_DB_KEY_FILE\)/,
    );
    await expect(DuckStore.open(path, { encryption: enc(KEY2) })).rejects.toThrow(
      /does not open this file \(wrong key/,
    );
    await expect(DuckStore.open(join(dir, "plain.duckdb"), { encryption: enc(KEY1) })).rejects.toThrow(
      /is not encrypted but MASTERY_DB_KEY.*mastery db rekey/,
    );
  });

  it.skipIf(httpfs)(
    "without DuckDB's OpenSSL module, a key is refused unless the mbedTLS fallback is chosen",
    async () => {
      await expect(
        DuckStore.open(join(dir, "no-crypto.duckdb"), { encryption: { key: KEY1, crypto: "openssl" } }),
      ).rejects.toThrow(
        /httpfs extension could not be loaded.*db install-httpfs.*MASTERY_DB_CRYPTO=mbedtls-unsafe/s,
      );
    },
  );

  it("rekey: plain -> key 1 -> key 2 -> plain keeps every row; the old key stops working", async () => {
    const path = join(dir, "rotate.duckdb");
    await writeEvents(path, null, 500);
    const crypto = enc(KEY1).crypto;
    const r1 = await rekeyDuckDbFile(path, { fromKey: null, toKey: KEY1, crypto });
    expect(r1.kept).toBe(`${path}.pre-rekey`);
    expect(r1.rows).toBeGreaterThanOrEqual(500);
    expect(bytesOf(path).includes(TOPIC)).toBe(false);
    expect(await isEncryptedDuckDbFile(path)).toBe(true);
    // The first run's backup (the plain file) blocks a second in-place rekey until it is dealt with.
    await expect(rekeyDuckDbFile(path, { fromKey: KEY1, toKey: KEY2, crypto })).rejects.toThrow(
      /pre-rekey exists.*delete or move it away/,
    );
    expect(bytesOf(`${path}.pre-rekey`).includes(TOPIC)).toBe(true);
    const r2 = await rekeyDuckDbFile(path, { fromKey: KEY1, toKey: KEY2, crypto, dropOld: true });
    expect(r2.kept).toBeNull();
    expect(existsSync(`${path}.rekey-old`)).toBe(false);
    await expect(DuckStore.open(path, { encryption: enc(KEY1) })).rejects.toThrow(/wrong key/);
    const s = await DuckStore.open(path, { encryption: enc(KEY2) });
    expect(Number((await s.one<{ n: bigint }>("SELECT count(*) AS n FROM raw_events"))?.n)).toBe(500);
    s.close();
    const out = join(dir, "rotate-plain.duckdb");
    const r3 = await rekeyDuckDbFile(path, { fromKey: KEY2, toKey: null, crypto, out });
    expect(r3).toMatchObject({ path: out, kept: null, rows: r2.rows });
    expect(bytesOf(out).includes(TOPIC)).toBe(true);
    await expect(rekeyDuckDbFile(path, { fromKey: KEY2, toKey: "short", crypto })).rejects.toThrow(
      /at least 32/,
    );
    await expect(
      rekeyDuckDbFile(path, { fromKey: KEY1, toKey: KEY2, crypto, out: join(dir, "x.duckdb") }),
    ).rejects.toThrow(/wrong key/);
    expect(existsSync(join(dir, "x.duckdb"))).toBe(false);
  });
});

describe("dbEncryptionFromEnv", () => {
  it("reads the key from MASTERY_DB_KEY or the first line of MASTERY_DB_KEY_FILE; refuses short keys and both", () => {
    expect(dbEncryptionFromEnv({})).toBeNull();
    expect(dbEncryptionFromEnv({ MASTERY_DB_KEY: KEY1 })).toEqual({ key: KEY1, crypto: "openssl" });
    const file = join(dir, "db.key");
    writeFileSync(file, `${KEY2}\n`);
    expect(dbEncryptionFromEnv({ MASTERY_DB_KEY_FILE: file, MASTERY_DB_CRYPTO: "mbedtls-unsafe" })).toEqual({
      key: KEY2,
      crypto: "mbedtls-unsafe",
    });
    expect(() => dbEncryptionFromEnv({ MASTERY_DB_KEY: "short" })).toThrow(
      /MASTERY_DB_KEY must be at least 32/,
    );
    expect(() => dbEncryptionFromEnv({ MASTERY_DB_KEY: KEY1, MASTERY_DB_KEY_FILE: file })).toThrow(
      /not both/,
    );
    expect(() => dbEncryptionFromEnv({ MASTERY_DB_KEY_FILE: join(dir, "missing.key") })).toThrow(
      /MASTERY_DB_KEY_FILE: cannot read key file/,
    );
    expect(() => dbEncryptionFromEnv({ MASTERY_DB_KEY: KEY1, MASTERY_DB_CRYPTO: "rot13" })).toThrow(
      /MASTERY_DB_CRYPTO/,
    );
  });
});
