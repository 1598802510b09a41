/**
 * What a dead_letter row holds, for every write path (file ingest, POST /events, the stream):
 * ONE row per rejected record, whose `field` is the first problem's field and whose `reason` lists
 * every problem (each a full sentence naming its field, joined by "; ", in the contract's field
 * order), and a payload that identifies nobody and is bounded in size:
 *  - `student_id` (at any depth) becomes `student_key`, the pseudonym; xAPI identities (actor,
 *    authority, instructor, team, and any mbox / mbox_sha1sum / openid / account / email key) are
 *    replaced by "[redacted]" (an actor by its pseudonym when it names a student);
 *  - strings are cut to PAYLOAD_LIMITS.string characters, lists to PAYLOAD_LIMITS.items items,
 *    nesting to LIMITS.depth levels; a payload still over PAYLOAD_LIMITS.bytes keeps only
 *    event_id, type and student_key;
 *  - text that is not JSON is never stored (it may hold a raw id): only its length.
 */
import { EVENT_SCHEMAS, isEventType, LIMITS, type ValidationIssue } from "./contracts.ts";
import type { Pseudonymizer } from "./pseudonymize.ts";

export const PAYLOAD_LIMITS = {
  /** Characters kept of a string value. */
  string: 256,
  /** Items kept of a list. */
  items: 100,
  /** Bytes (UTF-16 code units, about) of the whole payload JSON. */
  bytes: 16_384,
} as const;

/** Keys whose values identify a person, at any depth (xAPI agents and common LMS fields). */
const IDENTITY_KEYS = new Set([
  "actor",
  "authority",
  "instructor",
  "team",
  "mbox",
  "mbox_sha1sum",
  "openid",
  "account",
  "email",
]);

const REDACTED = "[redacted]";

/** The student an xAPI actor names (account.name, mbox, mbox_sha1sum, openid), as features/xapi.ts reads it. */
function actorId(actor: unknown): string | undefined {
  if (typeof actor !== "object" || actor === null) return undefined;
  const a = actor as Record<string, unknown>;
  const account = a.account;
  if (typeof account === "object" && account !== null) {
    const name = (account as Record<string, unknown>).name;
    if (typeof name === "string" && name !== "") return name;
  }
  for (const k of ["mbox", "mbox_sha1sum", "openid"]) {
    const v = a[k];
    if (typeof v === "string" && v !== "") return v;
  }
  return undefined;
}

function cutString(s: string): string {
  if (s.length <= PAYLOAD_LIMITS.string) return s;
  const chars = Array.from(s);
  if (chars.length <= PAYLOAD_LIMITS.string) return s;
  return `${chars.slice(0, PAYLOAD_LIMITS.string).join("")}… (${chars.length} characters)`;
}

function redactValue(v: unknown, p: Pseudonymizer, depth: number): unknown {
  if (typeof v === "string") return cutString(v);
  if (typeof v !== "object" || v === null) return v;
  if (depth >= LIMITS.depth) return "[nested too deep]";
  if (Array.isArray(v)) {
    const out = v.slice(0, PAYLOAD_LIMITS.items).map((x) => redactValue(x, p, depth + 1));
    if (v.length > PAYLOAD_LIMITS.items) out.push(`… (${v.length} items)`);
    return out;
  }
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
    if (k === "student_id") {
      if (typeof x === "string" && x !== "") out.student_key = p.studentKey(x);
      continue;
    }
    if (k === "actor") {
      const id = actorId(x);
      out.actor = id === undefined ? REDACTED : { student_key: p.studentKey(id) };
      continue;
    }
    if (IDENTITY_KEYS.has(k)) {
      out[k] = REDACTED;
      continue;
    }
    out[cutString(k)] = redactValue(x, p, depth + 1);
  }
  return out;
}

/** A copy of a record with no raw identity in it and every part bounded (see the file comment). */
export function redact(rec: unknown, pseudonymizer: Pseudonymizer): unknown {
  return redactValue(rec, pseudonymizer, 0);
}

/** The dead_letter payload of a parsed record: redacted, bounded JSON. */
export function redactedPayload(rec: unknown, pseudonymizer: Pseudonymizer): string {
  const r = redact(rec, pseudonymizer);
  const json = JSON.stringify(r) ?? "null";
  if (json.length <= PAYLOAD_LIMITS.bytes) return json;
  const o = (typeof r === "object" && r !== null && !Array.isArray(r) ? r : {}) as Record<string, unknown>;
  const keep: Record<string, unknown> = { truncated: `payload of ${json.length} characters` };
  for (const k of ["event_id", "id", "type", "student_key", "actor"]) if (k in o) keep[k] = o[k];
  return JSON.stringify(keep);
}

/** The payload kept for text that could not be parsed: its size only (the text may hold a raw id). */
export function unparsedPayload(byteLength: number): string {
  return JSON.stringify({ unparsed: `${byteLength} bytes, not JSON (not stored: it may hold a raw id)` });
}

/**
 * A JSON.parse error message without the text it quotes (Node quotes the input: `Unexpected
 * token 'b', "bob@x.org" is not valid JSON`).
 */
export function jsonErrorText(err: unknown): string {
  const msg = String((err as Error)?.message ?? err).split("\n")[0] ?? "";
  return msg.replace(/, ".*" is not valid JSON$/s, "").slice(0, 200);
}

/** Sort position of a field that is not in its type's schema (or of a record without a known type). */
export const UNKNOWN_FIELD_POSITION = 1000;

/** Position of a field in its type's schema (unknown fields and types last), for a stable order. */
function fieldPosition(type: string | null, field: string): number {
  if (type !== null && isEventType(type)) {
    const i = Object.keys(EVENT_SCHEMAS[type].properties).indexOf(field);
    if (i >= 0) return i;
  }
  return UNKNOWN_FIELD_POSITION;
}

/**
 * The one dead_letter (field, reason) of a rejected record: its problems in the contract's field
 * order (then by message), the first one's field, every message joined by "; ". ingestSql.ts
 * builds the same from SQL, so a CSV row and a JSON line with the same problems read the same.
 */
export function deadLetterEntry(
  type: string | null,
  issues: readonly ValidationIssue[],
): { field: string; reason: string } {
  if (issues.length === 0) return { field: "(event)", reason: "event is invalid" };
  const sorted = [...issues].sort(
    (a, b) =>
      fieldPosition(type, a.field) - fieldPosition(type, b.field) ||
      (a.reason < b.reason ? -1 : a.reason > b.reason ? 1 : 0),
  );
  return { field: sorted[0]!.field, reason: sorted.map((i) => i.reason).join("; ") };
}
