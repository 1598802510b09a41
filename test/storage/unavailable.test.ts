import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { DuckStore } from "../../storage/duckdb.ts";
import { redactErrorMessage } from "../../storage/storeErrors.ts";
import {
  BackendUnavailableError,
  faultDetail,
  faultKind,
  redactSecrets,
  redactUrl,
  unavailableBackend,
} from "../../storage/unavailable.ts";

/** Errors shaped as the drivers throw them (pg's DatabaseError carries the SQLSTATE in `code`). */
const pgError = (code: string, message: string) => Object.assign(new Error(message), { code });
const netError = (code: string) => Object.assign(new Error(`connect ${code} 127.0.0.1:25432`), { code });

describe("faultKind: which store failures mean 'down, retry later'", () => {
  it.each([
    ["connection refused", netError("ECONNREFUSED")],
    ["connection reset", netError("ECONNRESET")],
    ["pg: admin shutdown (57P01)", pgError("57P01", "terminating connection due to administrator command")],
    ["pg: starting up (57P03)", pgError("57P03", "the database system is starting up")],
    ["pg: too many connections (53300)", pgError("53300", "sorry, too many clients already")],
    ["pg: connection exception class 08", pgError("08006", "connection failure")],
    ["pg: serialization failure (retry the transaction)", pgError("40001", "could not serialize access")],
    ["pg: socket closed mid-query", new Error("Connection terminated unexpectedly")],
    ["pg pool: connect timeout", new Error("timeout exceeded when trying to connect")],
    [
      "ioredis: offline queue disabled",
      new Error("Stream isn't writeable and enableOfflineQueue options is false"),
    ],
    ["ioredis: command timeout", new Error("Command timed out")],
    [
      "ioredis: in-flight command when the socket closes",
      Object.assign(new Error("Command aborted due to connection close"), { name: "AbortError" }),
    ],
    ["ioredis: connection closed", new Error("Connection is closed.")],
    [
      "ioredis: retries exhausted",
      Object.assign(new Error("Reached the max retries per request limit"), {
        name: "MaxRetriesPerRequestError",
      }),
    ],
    ["nats: connection closed", Object.assign(new Error("connection closed"), { code: "CONNECTION_CLOSED" })],
    ["pg: lock not available (55P03)", pgError("55P03", "could not obtain lock")],
    ["redis: loading dataset", new Error("LOADING Redis is loading the dataset in memory")],
    ["already classified", new BackendUnavailableError("nats", "not connected")],
    ["wrapped in a cause", new Error("apply failed", { cause: netError("ECONNREFUSED") })],
    ["IPv4 + IPv6 both refused", new AggregateError([netError("ECONNREFUSED"), netError("ECONNREFUSED")])],
  ])("%s -> unavailable", (_label, err) => {
    expect(faultKind(err)).toBe("unavailable");
  });

  it.each([
    ["NUL byte in text (22021)", pgError("22021", 'invalid byte sequence for encoding "UTF8": 0x00')],
    ["integer out of range (22003)", pgError("22003", "value out of range for type integer")],
    ["unique violation (23505)", pgError("23505", "duplicate key value violates unique constraint")],
    ["undefined column (42703)", pgError("42703", 'column "x" does not exist')],
    ["index row too large (54000)", pgError("54000", "index row size 9000 exceeds maximum 2712")],
    ["DuckDB conversion", new Error("Conversion Error: Could not convert string 'x' to INT32")],
  ])("%s -> data", (_label, err) => {
    expect(faultKind(err)).toBe("data");
  });

  it("a DuckDB appender refusing a number out of the column's range is a data error (raw and wrapped)", async () => {
    const store = await DuckStore.open(":memory:");
    try {
      await store.run("CREATE TABLE t (id VARCHAR, grade INTEGER, n BIGINT)");
      const appendOne = async (fill: (a: Awaited<ReturnType<typeof store.conn.createAppender>>) => void) => {
        const a = await store.conn.createAppender("t");
        try {
          a.appendVarchar("x");
          fill(a);
          a.endRow();
          a.closeSync();
        } catch (err) {
          return err;
        }
        return undefined;
      };
      const int32 = await appendOne((a) => {
        a.appendInteger(2 ** 31);
        a.appendBigInt(1n);
      });
      expect((int32 as Error).message).toBe("number out of int32 range");
      expect(faultKind(int32)).toBe("data");
      expect(faultKind(new Error("apply failed", { cause: int32 }))).toBe("data");
      const int64 = await appendOne((a) => {
        a.appendInteger(1);
        a.appendBigInt(2n ** 63n);
      });
      expect((int64 as Error).message).toMatch(/out of int64 range/);
      expect(faultKind(int64)).toBe("data");
      // A value in range goes in: the errors above are about the values, not the appender.
      expect(
        await appendOne((a) => {
          a.appendInteger(2 ** 31 - 1);
          a.appendBigInt(1n);
        }),
      ).toBeUndefined();
    } finally {
      store.close();
    }
  });

  it.each([
    ["a plain bug", new TypeError("cannot read properties of undefined")],
    ["a string", "boom"],
    ["null", null],
    ["AggregateError with one data error", new AggregateError([netError("ECONNREFUSED"), new Error("x")])],
  ])("%s -> other", (_label, err) => {
    expect(faultKind(err)).toBe("other");
  });

  it("names the backend of a wrapped unavailable error", () => {
    const e = new BackendUnavailableError("postgres", "connection refused");
    expect(unavailableBackend(e)).toBe("postgres");
    expect(unavailableBackend(new Error("outer", { cause: e }))).toBe("postgres");
    expect(unavailableBackend(netError("ECONNREFUSED"))).toBeUndefined();
    expect(e.message).toBe(
      "PostgreSQL is unavailable (connection refused); the call can be retried once it is back",
    );
    expect(e.code).toBe("BACKEND_UNAVAILABLE");
  });
});

describe("redaction of connection details", () => {
  it("removes URL passwords", () => {
    expect(redactUrl("postgres://app:s3cret@db:5432/x")).toBe("postgres://app:***@db:5432/x");
    expect(redactUrl("redis://127.0.0.1:6379")).toBe("redis://127.0.0.1:6379");
    expect(redactUrl("not a url")).toBe("(unparseable URL)");
  });

  it("faultDetail strips passwords embedded in driver messages and keeps the code", () => {
    const d = faultDetail(netError("ECONNREFUSED"));
    expect(d).toBe("connect ECONNREFUSED 127.0.0.1:25432");
    expect(faultDetail(new Error("failed for redis://u:hunter2@h:1/0"))).toBe(
      "failed for redis://u:***@h:1/0",
    );
    expect(faultDetail(pgError("57P01", "terminating connection"))).toBe("57P01: terminating connection");
  });
});

describe("redactSecrets: no credential of a PostgreSQL / Redis / NATS URL survives into a message", () => {
  it.each([
    ["postgres://app:s3cret@db:5432/x failed", "postgres://app:***@db:5432/x failed"],
    ["postgresql://app:s3cret@db/x", "postgresql://app:***@db/x"],
    ["redis://:hunter2@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"],
    ["rediss://default:pw@cache:6380", "rediss://default:***@cache:6380"],
    ["nats://u:p@127.0.0.1:4222, tls://u:p@n2:4222", "nats://u:***@127.0.0.1:4222, tls://u:***@n2:4222"],
    // A raw '@' in the password: everything up to the last '@' of the URL goes.
    ["connect to postgres://app:a@b@c@db:5432/x", "connect to postgres://app:***@db:5432/x"],
    ["postgres://app@db/x?sslmode=require&password=zz", "postgres://app@db/x?sslmode=require&password=***"],
    ["host=db user=app password=abc dbname=x", "host=db user=app password=*** dbname=x"],
    // Nothing secret: unchanged.
    ["postgres://postgres@127.0.0.1:5432/test", "postgres://postgres@127.0.0.1:5432/test"],
    ["connect ECONNREFUSED 127.0.0.1:6379", "connect ECONNREFUSED 127.0.0.1:6379"],
  ])("%s", (input, want) => {
    expect(redactSecrets(input)).toBe(want);
  });

  it("redactUrl and faultDetail apply the same rules (query passwords, raw '@')", () => {
    expect(redactUrl("postgres://app@db/x?password=zz&sslmode=require")).toBe(
      "postgres://app@db/x?password=***&sslmode=require",
    );
    expect(redactUrl("postgres://app:a@b@db:5432/x")).toBe("postgres://app:***@db:5432/x");
    expect(faultDetail(new Error("failed for postgres://app:a@b@db/x"))).toBe(
      "failed for postgres://app:***@db/x",
    );
    expect(faultDetail(new Error("bad dsn host=db password=abc"))).toBe("bad dsn host=db password=***");
  });

  it("redactErrorMessage (the server's 5xx log line) removes an unquoted URL's password", () => {
    expect(redactErrorMessage("Connection to redis://default:hunter2@cache:6379 lost")).toBe(
      "Connection to redis://default:***@cache:6379 lost",
    );
  });

  it("property: any password, raw or URL-encoded, in any of the three schemes, is gone", () => {
    const scheme = fc.constantFrom("postgres", "postgresql", "redis", "rediss", "nats", "tls");
    // Passwords of URL-safe characters plus '@', ':' and '/' (raw in a URL when not encoded).
    const password = fc
      .string({ unit: fc.constantFrom(..."abcXYZ0123456789-_.~!$&()*+,;@:/%"), minLength: 1, maxLength: 24 })
      .map((p) => `Pw${p}`);
    fc.assert(
      fc.property(
        scheme,
        fc.constantFrom("", "app", "default"),
        password,
        fc.boolean(),
        fc.constantFrom("", "/0", "/test?sslmode=require"),
        (sch, user, pw, encode, tail) => {
          const secret = encode ? encodeURIComponent(pw) : pw;
          const url = `${sch}://${user}:${secret}@db.internal:1234${tail}`;
          const text = `cannot reach ${url}: connect ECONNREFUSED`;
          for (const out of [redactSecrets(text), redactErrorMessage(text), faultDetail(new Error(text))]) {
            expect(out).not.toContain(secret);
            expect(out).toContain(`${sch}://${user}:***@db.internal:1234`);
          }
          expect(redactUrl(url)).not.toContain(secret);
        },
      ),
      { numRuns: 500 },
    );
  });
});
