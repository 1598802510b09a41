import { createHash } from "node:crypto";
import type { ServerResponse } from "node:http";
import type { Request, Response } from "express";

/**
 * A GET /mastery body as the body cache keeps it: the JSON already encoded to UTF-8 and its ETag,
 * so a cache hit is a lookup and one write (no string encoding or hashing per request).
 */
export interface ServedBody {
  readonly buf: Buffer;
  /** Weak ETag in Express's own format (W/"<length hex>-<sha1 base64, 27 chars>"), so clients see no change. */
  readonly etag: string;
  /**
   * The body's `topics` reduced to what other routes read from it (GET /recommendations, the class
   * view): the served score per topic, in the body's order. Saves decoding and parsing the whole
   * body (15 kB at 20 topics) on each of those requests.
   */
  readonly topics: readonly ServedTopicScore[];
}

/** One served topic of a GET /mastery body: `topicId`, `score`, `scoreSource` as the body has them. */
export interface ServedTopicScore {
  readonly topicId: string;
  readonly score: number;
  readonly scoreSource: string;
}

/**
 * Encodes a JSON body once and computes its ETag; `topics`: the view's served topics (see ServedBody).
 * `json` may be the text in parts (studentMasteryJson's): each is encoded into one buffer in turn, so the
 * whole text is never made one flat string (over 128 KiB that is a large-object allocation, ~0.5 ms).
 */
export function servedBody(
  json: string | readonly string[],
  topics: readonly ServedTopicScore[],
): ServedBody {
  const buf = typeof json === "string" ? Buffer.from(json, "utf8") : encodeParts(json);
  const hash = createHash("sha1").update(buf).digest("base64").slice(0, 27);
  return {
    buf,
    etag: `W/"${buf.length.toString(16)}-${hash}"`,
    topics: topics.map((t) => ({ topicId: t.topicId, score: t.score, scoreSource: t.scoreSource })),
  };
}

/** Longest text (UTF-16 units) encodeParts joins first: one-byte strings of it stay under V8's 128 KiB. */
const JOIN_MAX_CHARS = 120_000;

/**
 * The UTF-8 bytes of the parts joined, without joining them when the text is long. A part that ends in a high surrogate could
 * make a pair with the next one's first unit (one 4-byte character joined, two replacement characters
 * apart): such parts are joined first (studentMasteryJson's never are: each ends with "[" or "}").
 */
function encodeParts(parts: readonly string[]): Buffer {
  let chars = 0;
  for (const p of parts) chars += p.length;
  // Short enough to be one flat string below 128 KiB when it is one-byte text (a 100-topic body without
  // served rows, ~68 kB): joined and encoded at once, ~5% cheaper than part by part (docs/benchmarks.md serve14).
  if (chars <= JOIN_MAX_CHARS) return Buffer.from(parts.join(""), "utf8");
  let n = 0;
  for (const p of parts) {
    const last = p.charCodeAt(p.length - 1);
    if (last >= 0xd800 && last <= 0xdbff) return Buffer.from(parts.join(""), "utf8");
    n += Buffer.byteLength(p, "utf8");
  }
  const buf = Buffer.allocUnsafe(n);
  let at = 0;
  for (const p of parts) at += buf.write(p, at, "utf8");
  return buf;
}

/** Bytes a cached body holds (the encoded JSON, its ETag and ~100 bytes a topic for the scores). */
export const servedBodyBytes = (b: ServedBody): number =>
  b.buf.length + b.etag.length + 100 * b.topics.length;

/**
 * Answers with a pre-encoded JSON body: 200 with the body, or 304 when the request's If-None-Match
 * names its ETag (Express's freshness rules, as res.send applies them); HEAD gets the headers only.
 */
export function sendServedBody(req: Request, res: Response, body: ServedBody): void {
  res.setHeader("ETag", body.etag);
  if (req.fresh) {
    res.statusCode = 304;
    res.end();
    return;
  }
  endServedBody(res, body, req.method !== "HEAD");
}

/**
 * res.json(JSON.parse(json)) for a text that is already what JSON.stringify would write (serving/masteryView.ts
 * historyJson): the same type, ETag, 304 and HEAD handling (res.send), without parsing and serializing it again.
 * An app that sets Express's "json replacer", "json spaces" or "json escape" gets res.json's own output.
 */
export function sendJsonText(res: Response, json: string): void {
  if (!jsonSentAsIs(res)) {
    res.json(JSON.parse(json));
    return;
  }
  if (!res.get("Content-Type")) res.set("Content-Type", "application/json");
  res.send(json);
}

/**
 * True when res.json writes JSON.stringify's text unchanged: none of Express's "json replacer", "json spaces"
 * or "json escape" is set (so a text JSON.stringify wrote, or its cached bytes, is res.json's answer).
 */
export function jsonSentAsIs(res: Response): boolean {
  const app = res.app;
  return !(app.get("json replacer") || app.get("json spaces") || app.get("json escape"));
}

/** The Content-Type of a served body (Express's res.json type, which clients saw before the cache). */
export const SERVED_BODY_TYPE = "application/json; charset=utf-8";

/**
 * The rest of a 200 answer with a cached body (its ETag already set): type, length, and the bytes unless
 * `withBody` is false (HEAD).
 */
function endServedBody(res: ServerResponse, body: ServedBody, withBody: boolean): void {
  res.setHeader("Content-Type", SERVED_BODY_TYPE);
  res.setHeader("Content-Length", body.buf.length);
  if (withBody) res.end(body.buf);
  else res.end();
}
