import { createHash } from "node:crypto";
import type { SharedBody, SharedRead } from "../storage/sharedBodies.ts";
import type { ServedBody, ServedTopicScore } from "./servedBody.ts";

/**
 * GET /mastery bodies shared by the server processes through Redis (storage/sharedBodies.ts has the
 * protocol): on a miss of its own cache a server first asks Redis for the ready bytes (one MGET, no
 * JSON parse of the body), and builds from the database only when Redis has no current body; what it
 * builds it offers back to Redis (compare-and-set against what it read, so it never overwrites a
 * later invalidation).
 */

/** Bumped when the body or its `meta` change shape: servers of another format never use each other's bodies. */
export const SHARED_BODY_FORMAT = 1;

/** The Redis side (storage/sharedBodies.ts SharedBodyStore). */
export interface SharedBodies {
  read(studentKey: string, fingerprint: string): Promise<SharedRead>;
  store(
    studentKey: string,
    seen: { gen: string; token: string },
    fingerprint: string,
    body: SharedBody,
    ttlMs: number,
  ): Promise<boolean>;
}

/**
 * Names what a body depends on besides the student's data: the format and the serving config (score
 * source order, thresholds...). Servers with another config (a rolling change) miss each other's bodies.
 */
export function sharedFingerprint(config: unknown): string {
  return createHash("sha1")
    .update(JSON.stringify({ format: SHARED_BODY_FORMAT, config }))
    .digest("hex")
    .slice(0, 16);
}

/** A cached body as Redis keeps it: the bytes and ETag as they are, the served scores as compact JSON. */
export function toSharedBody(b: ServedBody, bornAtMs: number): SharedBody {
  return {
    etag: b.etag,
    bornAtMs,
    meta: JSON.stringify(b.topics.map((t) => [t.topicId, t.score, t.scoreSource])),
    payload: b.buf,
  };
}

/** The ServedBody of a body read from Redis (its bytes are not copied or parsed). */
export function fromSharedBody(s: SharedBody): ServedBody {
  const triples = JSON.parse(s.meta) as [string, number, string][];
  const topics: ServedTopicScore[] = triples.map(([topicId, score, scoreSource]) => ({
    topicId,
    score,
    scoreSource,
  }));
  return { buf: s.payload, etag: s.etag, topics, bornAtMs: s.bornAtMs };
}
