/**
 * Which failures of a backend mean "it is down or restarting, try again later" and which mean "this
 * statement or value is wrong, trying again changes nothing". Callers branch on the answer: the
 * stream worker pauses (and never dead-letters) on the first kind and isolates the message on the
 * second; the API server answers 503 + Retry-After on the first kind and never 500.
 */

/** The services the engine depends on, as named in /readyz and in log lines. */
export type BackendName = "postgres" | "redis" | "nats" | "duckdb";

export const BACKEND_LABEL: Record<BackendName, string> = {
  postgres: "PostgreSQL",
  redis: "Redis",
  nats: "NATS",
  duckdb: "DuckDB",
};

/**
 * unavailable: connection refused/reset/closed, server shutting down or starting, timeouts, too many
 * connections — the same call will work once the backend is back. data: the backend answered and
 * refused this statement or value (constraint, out of range, bad encoding, syntax) — retrying the same
 * input fails the same way. other: anything else (a bug, a missing table: neither blamed on the
 * input nor retried blindly; the worker retries it a bounded number of times).
 */
export type FaultKind = "unavailable" | "data" | "other";

/** Thrown (or wrapped) by the storage adapters when a backend cannot be reached. */
export class BackendUnavailableError extends Error {
  readonly code = "BACKEND_UNAVAILABLE";
  constructor(
    readonly backend: BackendName,
    readonly detail: string,
    options?: { cause?: unknown },
  ) {
    super(
      `${BACKEND_LABEL[backend]} is unavailable (${detail}); the call can be retried once it is back`,
      options,
    );
    this.name = "BackendUnavailableError";
  }
}

/** Node socket error codes that mean the peer is not there (or went away). */
const NET_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ECONNABORTED",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
  "ENOTCONN",
]);

/**
 * PostgreSQL SQLSTATEs (Appendix A of the PostgreSQL manual): class 08 connection exception, 53
 * insufficient resources (too many connections, disk full), 57P01-57P03 server shutting down /
 * crashed / starting up, 58 system (I/O) error. 40001/40P01 (serialization, deadlock) are transient
 * too: the same transaction succeeds when retried.
 */
function pgSqlStateKind(state: string): FaultKind | undefined {
  // 57: operator intervention (shutdown, crash, starting up, statement timeout cancel).
  if (/^(08|53|57|58)/.test(state)) return "unavailable";
  // Serialization failure, deadlock, lock not available: the same transaction succeeds when retried.
  if (state === "40001" || state === "40P01" || state === "55P03") return "unavailable";
  // 22 data exception, 23 integrity constraint, 42 syntax or access rule, 54 program limit exceeded
  // (e.g. an index row too large), 2200x encoding: the input itself is refused.
  if (/^(22|23|42|54)/.test(state)) return "data";
  return undefined;
}

/** Messages the drivers (pg, ioredis, nats) use for a lost or refused connection. */
const UNAVAILABLE_MESSAGES = [
  /connection terminated/i,
  /connection (?:refused|reset|closed|lost)/i,
  /timeout exceeded when trying to connect/i,
  // pg's client-side query_timeout (MASTERY_PG_QUERY_TIMEOUT_MS): the server did not answer in time.
  /query read timeout/i,
  /not queryable/i,
  /client has encountered a connection error/i,
  /terminating connection/i,
  /the database system is (?:starting up|shutting down|in recovery mode)/i,
  /stream isn't writeable/i,
  /connection is closed/i,
  /command timed out/i,
  /command aborted due to connection close/i,
  /max retries per request limit/i,
  /LOADING Redis is loading/i,
  /MISCONF/i,
  /CONNECTION_CLOSED|DISCONNECT|connection draining/i,
  /could not set lock on file/i,
  /IO Error/,
];

/** NATS client codes for a lost connection, a request without answer, no JetStream responder. */
const NATS_CODES = new Set(["CONNECTION_CLOSED", "CONNECTION_REFUSED", "TIMEOUT", "503"]);

/** DuckDB errors that refuse a value (the same input fails again). */
const DUCKDB_DATA = /^(Conversion|Invalid Input|Constraint|Out of Range) Error/;

/**
 * DuckDB Node API appender / value conversions of a JS value that does not fit the column type:
 * "number out of int32 range" (appendInteger(2 ** 31)), "bigint out of int64 range", ... The
 * value is refused before it reaches the database; the same row fails again.
 */
const DUCKDB_APPENDER_RANGE = /^(?:number|bigint|micros|millis|nanos|bits) out of u?(?:int|hugeint)\d* range/;

/**
 * Classifies any error thrown by a storage call (the adapters' own wrappers included): DuckDB,
 * PostgreSQL (`pg`), Redis (`ioredis`), NATS.
 */
export function faultKind(err: unknown): FaultKind {
  if (err instanceof BackendUnavailableError) return "unavailable";
  if (err === null || typeof err !== "object") return "other";
  const e = err as { code?: unknown; message?: unknown; cause?: unknown; name?: unknown };
  if (e.name === "MaxRetriesPerRequestError") return "unavailable";
  if (typeof e.code === "string") {
    // A typed code set by an adapter (BACKEND_UNAVAILABLE, or e.g. REDIS_UNAVAILABLE).
    if (e.code.endsWith("_UNAVAILABLE")) return "unavailable";
    if (NET_CODES.has(e.code) || NATS_CODES.has(e.code)) return "unavailable";
    if (/^[0-9A-Z]{5}$/.test(e.code)) {
      const k = pgSqlStateKind(e.code);
      if (k !== undefined) return k;
    }
  }
  const message = typeof e.message === "string" ? e.message : "";
  if (UNAVAILABLE_MESSAGES.some((re) => re.test(message))) return "unavailable";
  if (DUCKDB_DATA.test(message) || DUCKDB_APPENDER_RANGE.test(message)) return "data";
  if (e.cause !== undefined && e.cause !== err) {
    const inner = faultKind(e.cause);
    if (inner !== "other") return inner;
  }
  // AggregateError (e.g. a connect that tried IPv4 and IPv6 and was refused on both).
  const errors = (err as { errors?: unknown }).errors;
  if (Array.isArray(errors) && errors.length > 0 && errors.every((x) => faultKind(x) === "unavailable"))
    return "unavailable";
  return "other";
}

export function isUnavailable(err: unknown): boolean {
  return faultKind(err) === "unavailable";
}

/** The backend an unavailable error names, when it says (BackendUnavailableError does). */
export function unavailableBackend(err: unknown): BackendName | undefined {
  if (err instanceof BackendUnavailableError) return err.backend;
  const cause = (err as { cause?: unknown } | null)?.cause;
  return cause !== undefined && cause !== err ? unavailableBackend(cause) : undefined;
}

/** Query parameters and key=value pairs whose value is a credential. */
const SECRET_KEYS =
  /\b(password|passwd|pwd|pass|sslpassword|sslkey|secret|token|auth_token|access_token)=[^&\s'"]*/gi;

/**
 * Free text (a driver's error message, a log line) with every credential removed: the password of
 * any `scheme://user:password@host` URL (PostgreSQL, Redis, NATS, any scheme; a password holding a
 * raw '@' or '/' included) and credential key=value pairs (`?password=…`, `password=…` in a
 * libpq-style string, `token=…`). Over-redacts rather than leaks.
 */
export function redactSecrets(text: string): string {
  return (
    text
      // Greedy to the LAST '@' of the token: a password may hold an unescaped '@'.
      .replace(/([a-z][a-z0-9+.-]*:\/\/)([^\s/@:'"]*):[^\s'"]*@/gi, "$1$2:***@")
      .replace(SECRET_KEYS, (m) => `${m.slice(0, m.indexOf("=") + 1)}***`)
  );
}

/** A connection URL without its password (for logs and error messages). */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    for (const k of [...u.searchParams.keys()])
      if (/^(password|passwd|pwd|pass|sslpassword|sslkey|secret|token|auth_token|access_token)$/i.test(k))
        u.searchParams.set(k, "***");
    // Then the text rule too: a raw '@' or '/' in a password splits it differently for URL().
    return redactSecrets(u.toString().replaceAll("%2A%2A%2A", "***"));
  } catch {
    return "(unparseable URL)";
  }
}

/** A short reason for logs: the driver's message with any credential removed (redactSecrets). */
export function faultDetail(err: unknown): string {
  if (err instanceof BackendUnavailableError) return `${BACKEND_LABEL[err.backend]}: ${err.detail}`;
  const e = err as { code?: unknown; message?: unknown } | null;
  const msg = typeof e?.message === "string" && e.message !== "" ? e.message : String(err);
  const code = typeof e?.code === "string" && !msg.includes(e.code) ? `${e.code}: ` : "";
  return redactSecrets(`${code}${msg}`).slice(0, 300);
}
