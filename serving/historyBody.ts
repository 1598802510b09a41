import { type HistoryJsonParts, historyJsonAt } from "./masteryView.ts";
import { type ServedBody, servedBody } from "./servedBody.ts";

/**
 * A GET /mastery/:studentId/:topicId/history answer as the history cache keeps it (serving/app.ts historyBody).
 * A history without a served row reads the same at any time: its whole body, encoded once with its ETag, as
 * GET /mastery's cache keeps its bodies. One with a served row gets a projected entry as of each request's time
 * (masteryView.ts withProjection), so only its stored entries' text is kept and the body is made per request.
 */
export type HistoryBody =
  | { readonly kind: "fixed"; readonly body: ServedBody }
  | { readonly kind: "timed"; readonly parts: HistoryJsonParts };

/** The route's JSON text around a history's entries (`history`: historyJson's array). */
export function historyResponseJson(studentKey: string, topicId: string, history: string): string {
  return `{"studentKey":${JSON.stringify(studentKey)},"topicId":${JSON.stringify(topicId)},"history":${history}}`;
}

/** The cache's form of one (student, topic) history from its parts (historyJsonParts of its rows). */
export function historyBodyOf(studentKey: string, topicId: string, parts: HistoryJsonParts): HistoryBody {
  if (parts.latestServed !== undefined) return { kind: "timed", parts };
  return {
    kind: "fixed",
    body: servedBody(historyResponseJson(studentKey, topicId, historyJsonAt(parts, undefined)), []),
  };
}

/** The answer's JSON text as of `now` (what the route sends when it does not send the fixed body's bytes). */
export function historyBodyJson(studentKey: string, topicId: string, h: HistoryBody, now: Date): string {
  return h.kind === "fixed"
    ? h.body.buf.toString("utf8")
    : historyResponseJson(studentKey, topicId, historyJsonAt(h.parts, now));
}

/**
 * Bytes a cached history holds, for the cache's bound: the encoded body and its ETag, or the entries' text and
 * the served row's explanation at two bytes a character (V8 may keep them one-byte; this errs high), plus ~200
 * bytes of fixed overhead.
 */
export function historyBodyBytes(h: HistoryBody): number {
  if (h.kind === "fixed") return h.body.buf.length + h.body.etag.length + 200;
  return 2 * (h.parts.entries.length + (h.parts.latestServed?.explanation.length ?? 0)) + 400;
}

/**
 * The history cache's key of a (student, topic): the student key's length first, so no topic id can make two
 * pairs share a key; historyCacheGroup reads the student back (the cache drops a student's histories together).
 */
export const historyCacheKey = (studentKey: string, topicId: string): string =>
  `${studentKey.length}:${studentKey}${topicId}`;

/** The student key of a historyCacheKey. */
export function historyCacheGroup(key: string): string {
  const colon = key.indexOf(":");
  const n = Number(key.slice(0, colon));
  return key.slice(colon + 1, colon + 1 + n);
}
