import { storeErrorKind } from "../storage/storeErrors.ts";
import { AccessError } from "./auth.ts";

/** An error answered as JSON {error, field, reason} with `status` (serving/app.ts error handler). */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    readonly field: string,
    readonly reason: string,
    /** Seconds for a Retry-After header (503, 429). */
    readonly retryAfterS?: number,
  ) {
    super(reason);
    this.name = "HttpError";
  }
}

export interface ErrorAnswer {
  status: number;
  body: { error: string; field: string; reason: string };
  retryAfterS?: number;
}

/** Seconds a client should wait before retrying while a store is unavailable. */
export const STORE_RETRY_AFTER_S = 2;

/**
 * The client errors of Express and body-parser (http-errors with a 4xx status), by their `type`:
 * answered with a reason that never quotes the request (a URL or body may hold a raw student id).
 */
const CLIENT_ERRORS: Record<string, { code: string; field: string; reason: (limit: string) => string }> = {
  "entity.parse.failed": {
    code: "invalid_json",
    field: "(body)",
    reason: () => 'body is not valid JSON; send a JSON array of events or {"events": [...]}',
  },
  "entity.too.large": {
    code: "too_large",
    field: "(body)",
    reason: (limit) => `body exceeds ${limit}; split it into smaller batches`,
  },
  "encoding.unsupported": {
    code: "unsupported_encoding",
    field: "(content-encoding)",
    reason: () => "Content-Encoding must be identity, gzip, deflate or br",
  },
  "charset.unsupported": {
    code: "unsupported_charset",
    field: "(content-type)",
    reason: () => "the body's charset must be utf-8",
  },
  "request.aborted": {
    code: "aborted",
    field: "(body)",
    reason: () => "the request was aborted by the client",
  },
  "request.size.invalid": {
    code: "invalid_length",
    field: "(content-length)",
    reason: () => "the body's length does not match Content-Length",
  },
  "stream.encoding.set": {
    code: "invalid_body",
    field: "(body)",
    reason: () => "the body could not be read",
  },
};

/**
 * The one table from an error to an HTTP answer (serving/app.ts): access and HTTP errors as they
 * say; client errors of Express/body-parser (bad JSON, size, Content-Encoding, malformed
 * percent-encoding in the URL) as 4xx; a store that is unreachable as 503 with Retry-After; a value
 * the store refuses as 400; anything else 500 (a bug: never caused by input alone).
 */
export function errorAnswer(err: unknown, bodyLimit: string): ErrorAnswer {
  if (err instanceof AccessError)
    return {
      status: err.status,
      body: { error: err.code.toLowerCase(), field: err.field, reason: err.reason },
    };
  if (err instanceof HttpError)
    return {
      status: err.status,
      body: { error: err.code, field: err.field, reason: err.reason },
      ...(err.retryAfterS !== undefined ? { retryAfterS: err.retryAfterS } : {}),
    };
  const e = (typeof err === "object" && err !== null ? err : {}) as {
    type?: unknown;
    status?: unknown;
    statusCode?: unknown;
    name?: unknown;
  };
  const status =
    typeof e.status === "number" ? e.status : typeof e.statusCode === "number" ? e.statusCode : 0;
  if (status >= 400 && status < 500) {
    const known = typeof e.type === "string" ? CLIENT_ERRORS[e.type] : undefined;
    if (known)
      return { status, body: { error: known.code, field: known.field, reason: known.reason(bodyLimit) } };
    // Express's router: a path parameter that is not valid percent-encoding.
    if (err instanceof URIError || /decode param/i.test(String((err as Error).message)))
      return {
        status: 400,
        body: {
          error: "invalid_path",
          field: "(path)",
          reason: "the URL has malformed percent-encoding; encode path parts with encodeURIComponent",
        },
      };
    // zlib: a gzip/deflate/br body that does not decompress.
    if (
      typeof (err as { code?: unknown }).code === "string" &&
      /^Z_|^ERR_/.test((err as { code: string }).code)
    )
      return {
        status,
        body: {
          error: "invalid_encoding",
          field: "(body)",
          reason: "the body is not valid data for its Content-Encoding",
        },
      };
    return { status, body: { error: "bad_request", field: "(request)", reason: "the request is malformed" } };
  }
  const kind = storeErrorKind(err);
  if (kind === "unavailable")
    return {
      status: 503,
      body: {
        error: "store_unavailable",
        field: "(store)",
        reason: `a store this request needs is unavailable; retry in ${STORE_RETRY_AFTER_S} s (nothing of this request was acknowledged)`,
      },
      retryAfterS: STORE_RETRY_AFTER_S,
    };
  if (kind === "data")
    return {
      status: 400,
      body: {
        error: "invalid_input",
        field: "(request)",
        reason: "the store refused a value of this request (out of range or malformed); check its fields",
      },
    };
  return {
    status: 500,
    body: { error: "internal", field: "(server)", reason: "internal error; see the server log" },
  };
}
