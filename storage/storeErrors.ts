/**
 * What kind of failure an error from a store driver is (DuckDB, PostgreSQL `pg`, Redis `ioredis`,
 * NATS), so callers can answer it right without knowing the drivers:
 *  - "unavailable": the store cannot be reached or asked to retry (connection refused or lost,
 *    server shutting down, too many clients, serialization failure or deadlock, disk I/O);
 *    retrying later can succeed, so the HTTP answer is 503 with Retry-After and a stream message
 *    is retried, never dead-lettered;
 *  - "data": the store refused a value (PostgreSQL SQLSTATE classes 22 data exception, 23 integrity,
 *    54 program limit such as an index row too large; DuckDB conversion, invalid input, constraint
 *    and out-of-range errors); the same input fails again, so it is the input's fault;
 *  - "other": anything else (a bug, a missing table): neither retried blindly nor blamed on the input.
 */
export type StoreErrorKind = "unavailable" | "data" | "other";

/** Node.js network error codes meaning the peer is unreachable or went away. */
const NETWORK_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ECONNABORTED",
  "ETIMEDOUT",
  "EPIPE",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
  "ENOTCONN",
]);

/** PostgreSQL SQLSTATEs (or classes) worth a retry: https://www.postgresql.org/docs/current/errcodes-appendix.html */
const PG_RETRY_CLASSES = new Set(["08", "53", "57"]);
const PG_RETRY_CODES = new Set(["40001", "40P01", "55P03"]);
const PG_DATA_CLASSES = new Set(["22", "23", "54"]);

/** Messages of drivers that signal a lost or closed connection without a code. */
const UNAVAILABLE_MESSAGES = [
  /connection terminated/i,
  /connection is closed/i,
  /client has encountered a connection error/i,
  /not queryable/i,
  /stream isn't writeable/i,
  /connection (?:lost|closed|refused)/i,
  /timeout exceeded when trying to connect/i,
  /^IO Error/,
];

const DUCKDB_DATA = /^(Conversion|Invalid Input|Constraint|Out of Range) Error/;

export function storeErrorKind(err: unknown): StoreErrorKind {
  if (typeof err !== "object" || err === null) return "other";
  const e = err as { code?: unknown; name?: unknown; message?: unknown; cause?: unknown };
  const code = typeof e.code === "string" ? e.code : "";
  const message = typeof e.message === "string" ? e.message : "";
  // A typed code set by an adapter (e.g. PG_UNAVAILABLE, REDIS_UNAVAILABLE, STORE_UNAVAILABLE).
  if (code.endsWith("_UNAVAILABLE")) return "unavailable";
  if (NETWORK_CODES.has(code)) return "unavailable";
  if (/^[0-9A-Z]{5}$/.test(code)) {
    if (PG_RETRY_CODES.has(code) || PG_RETRY_CLASSES.has(code.slice(0, 2))) return "unavailable";
    if (PG_DATA_CLASSES.has(code.slice(0, 2))) return "data";
  }
  if (e.name === "MaxRetriesPerRequestError") return "unavailable";
  // NATS: connection closed, request timeout, no responders.
  if (code === "CONNECTION_CLOSED" || code === "TIMEOUT" || code === "503" || code === "CONNECTION_REFUSED")
    return "unavailable";
  if (UNAVAILABLE_MESSAGES.some((re) => re.test(message))) return "unavailable";
  if (DUCKDB_DATA.test(message)) return "data";
  if (e.cause !== undefined && e.cause !== err) return storeErrorKind(e.cause);
  return "other";
}

/**
 * An error message fit for a log line: quoted parts ('...' and "...", where drivers and parsers
 * put the offending values, possibly a raw student id) replaced by '…', at most 300 characters.
 */
export function redactErrorMessage(message: string): string {
  return (
    message
      .replace(/'(?:[^'\\]|\\.)*'/g, "'…'")
      .replace(/"(?:[^"\\]|\\.)*"/g, '"…"')
      // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is removed
      .replace(/[\u0000-\u001f]/g, " ")
      .slice(0, 300)
  );
}
