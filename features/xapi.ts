/**
 * xAPI (Experience API 1.0.3) statements -> contract events.
 *
 * Verbs, recognised by ADL id or by display name (any language):
 *  - answered    -> quiz_attempt: object.id -> question_id, result.success -> is_correct,
 *                   result.duration (ISO 8601, e.g. PT1M5.5S) -> time_spent_sec.
 *  - completed   -> assignment: object.id -> assignment_id, result.score.scaled * 100 -> score_pct
 *                   (else raw / max * 100 when both are given).
 *  - experienced -> video: object.id -> video_id; watch_pct from our extension (percent), else the
 *                   xAPI Video Profile's progress extension (a fraction 0..1, times 100);
 *                   result.duration -> watch_duration_sec.
 * Common: statement id -> event_id, timestamp -> timestamp, actor.account.name (else actor.mbox,
 * else mbox_sha1sum, else openid) -> student_id.
 * Topic choice (documented): an explicit extension `${XAPI_EXTENSION}topic_id` (context or
 * object.definition extensions; for assignments `topic_ids` may be a list) wins; else the first
 * context.contextActivities.parent id; else the first grouping id. Parent first because xAPI
 * defines parent as the activity directly containing the object (the quiz/topic a question is
 * in), while grouping is any looser container (course, curriculum). Assignments take every parent
 * id (else every grouping id) as topic_ids.
 * Optional extensions: attempt_number, hints_used, rewind_count, watch_pct, school_id, class_id, grade.
 * Shapes: any JSON may arrive here, so every part is read defensively. contextActivities.parent and
 * .grouping are lists of Activity objects, each with a string id; a single Activity object is read
 * as a list of one (xAPI 1.0.3, 4.1.6.2, lets a statement send either); any other value (a string,
 * a list holding null or a non-object, an Activity without an id) rejects the statement, naming
 * the field.
 */
import { type LearningEvent, show, type ValidationIssue } from "./contracts.ts";

const ADL = "http://adlnet.gov/expapi/verbs/";
export const XAPI_EXTENSION = "https://mastery-engine.local/xapi/";
export const VIDEO_PROGRESS_EXTENSION = "https://w3id.org/xapi/video/extensions/progress";

const VERBS = {
  answered: "quiz_attempt",
  completed: "assignment",
  experienced: "video",
} as const;
type Verb = keyof typeof VERBS;

export interface XapiStatement {
  id?: string;
  actor?: {
    mbox?: string;
    mbox_sha1sum?: string;
    openid?: string;
    account?: { homePage?: string; name?: string };
  };
  verb?: { id?: string; display?: Record<string, string> };
  object?: { id?: string; definition?: { extensions?: Record<string, unknown> } };
  result?: {
    success?: boolean;
    duration?: string;
    score?: { scaled?: number; raw?: number; min?: number; max?: number };
    extensions?: Record<string, unknown>;
  };
  context?: {
    contextActivities?: { parent?: { id?: string }[]; grouping?: { id?: string }[] };
    extensions?: Record<string, unknown>;
  };
  timestamp?: string;
}

export type XapiResult = { ok: true; value: LearningEvent } | { ok: false; issues: ValidationIssue[] };

/** A statement has an actor and a verb; events have a `type`. */
export function isXapiStatement(value: unknown): value is XapiStatement {
  return (
    typeof value === "object" &&
    value !== null &&
    !Array.isArray(value) &&
    "verb" in value &&
    "actor" in value &&
    !("type" in value)
  );
}

/**
 * Seconds in an ISO 8601 duration (PnW or PnDTnHnMnS; fractions allowed on any part).
 * Years and months are refused: their length in seconds is ambiguous. Returns undefined if invalid.
 */
export function parseIsoDuration(text: string): number | undefined {
  const m =
    /^P(?:(\d+(?:\.\d+)?)W)?(?:(\d+(?:\.\d+)?)D)?(?:T(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?)?$/.exec(
      text,
    );
  if (!m || text === "P" || text.endsWith("T")) return undefined;
  const [, w, d, h, min, s] = m;
  const n = (x: string | undefined) => (x === undefined ? 0 : Number(x));
  return n(w) * 604800 + n(d) * 86400 + n(h) * 3600 + n(min) * 60 + n(s);
}

function verbOf(st: XapiStatement): Verb | undefined {
  const id = st.verb?.id;
  if (typeof id === "string" && id.startsWith(ADL)) {
    const name = id.slice(ADL.length);
    if (Object.hasOwn(VERBS, name)) return name as Verb;
  }
  for (const label of Object.values(st.verb?.display ?? {})) {
    const name = String(label).trim().toLowerCase();
    if (Object.hasOwn(VERBS, name)) return name as Verb;
  }
  return undefined;
}

function studentOf(st: XapiStatement): string | undefined {
  const a = st.actor;
  if (!a) return undefined;
  const name = a.account?.name;
  if (typeof name === "string" && name !== "") return name;
  for (const v of [a.mbox, a.mbox_sha1sum, a.openid]) if (typeof v === "string" && v !== "") return v;
  return undefined;
}

function ext(st: XapiStatement, name: string): unknown {
  const key = XAPI_EXTENSION + name;
  return (
    st.result?.extensions?.[key] ?? st.context?.extensions?.[key] ?? st.object?.definition?.extensions?.[key]
  );
}

/** The ids of contextActivities.<key> (see the file comment), or the issue with its shape. */
function activityIds(st: XapiStatement, key: "parent" | "grouping"): string[] | ValidationIssue {
  const field = `context.contextActivities.${key}`;
  const ctx = (st as { context?: unknown }).context;
  if (ctx === undefined || ctx === null) return [];
  const activities =
    typeof ctx === "object" ? (ctx as { contextActivities?: unknown }).contextActivities : undefined;
  if (activities === undefined || activities === null) return [];
  if (typeof activities !== "object" || Array.isArray(activities))
    return { field: "context.contextActivities", reason: "xapi.context.contextActivities must be an object" };
  const value = (activities as Record<string, unknown>)[key];
  if (value === undefined || value === null) return [];
  const list = Array.isArray(value) ? value : typeof value === "object" ? [value] : null;
  if (list === null)
    return {
      field,
      reason: `xapi.${field} must be a list of Activity objects with an id (got ${show(value)})`,
    };
  const ids: string[] = [];
  for (const a of list) {
    const id =
      typeof a === "object" && a !== null && !Array.isArray(a) ? (a as { id?: unknown }).id : undefined;
    if (typeof id !== "string")
      return {
        field,
        reason: `xapi.${field} must be a list of Activity objects with a string id (got an item ${show(a)})`,
      };
    if (id !== "") ids.push(id);
  }
  return ids;
}

/**
 * Maps one statement to a contract event (not yet validated against the schema: the caller runs
 * validateEvent, so range errors read the same as for native events). Returns issues for what
 * cannot be mapped at all: unknown verb, no actor id, no topic, no result for a graded verb.
 */
export function xapiToEvent(st: XapiStatement): XapiResult {
  const issues: ValidationIssue[] = [];
  const verb = verbOf(st);
  if (!verb) {
    const got = st.verb?.id ?? JSON.stringify(st.verb?.display ?? null);
    issues.push({
      field: "verb",
      reason: `xapi.verb must be answered, completed or experienced (ADL ids ${ADL}answered|completed|experienced) (got ${got})`,
    });
    return { ok: false, issues };
  }
  const type = VERBS[verb];
  const out: Record<string, unknown> = { type };
  if (typeof st.id === "string") out.event_id = st.id;
  else issues.push({ field: "id", reason: "xapi.id (the statement id) is required; it becomes event_id" });
  const student = studentOf(st);
  if (student !== undefined) out.student_id = student;
  else {
    issues.push({
      field: "actor",
      reason: "xapi.actor needs account.name, mbox, mbox_sha1sum or openid to identify the student",
    });
  }
  if (st.timestamp !== undefined) out.timestamp = st.timestamp;
  else issues.push({ field: "timestamp", reason: "xapi.timestamp is required (ISO 8601 with offset)" });

  const explicitTopic = ext(st, "topic_id");
  const parentIds = activityIds(st, "parent");
  const groupIds = activityIds(st, "grouping");
  for (const r of [parentIds, groupIds]) if (!Array.isArray(r)) issues.push(r);
  const parents = Array.isArray(parentIds) ? parentIds : [];
  const groups = Array.isArray(groupIds) ? groupIds : [];
  if (type === "assignment") {
    const explicit = ext(st, "topic_ids") ?? explicitTopic;
    const topics = Array.isArray(explicit)
      ? explicit
      : typeof explicit === "string"
        ? [explicit]
        : parents.length > 0
          ? parents
          : groups;
    if (topics.length > 0) out.topic_ids = topics;
  } else {
    const topic = typeof explicitTopic === "string" ? explicitTopic : (parents[0] ?? groups[0]);
    if (topic !== undefined) out.topic_id = topic;
  }
  if (out.topic_id === undefined && out.topic_ids === undefined) {
    issues.push({
      field: "context",
      reason:
        `xapi statement has no topic: set context.contextActivities.parent (or grouping) or the ` +
        `extension ${XAPI_EXTENSION}topic_id`,
    });
  }

  const objectId = st.object?.id;
  const duration = st.result?.duration;
  let seconds: number | undefined;
  if (duration !== undefined) {
    seconds = typeof duration === "string" ? parseIsoDuration(duration) : undefined;
    if (seconds === undefined) {
      issues.push({
        field: "result.duration",
        reason: `xapi.result.duration must be an ISO 8601 duration like PT1M5.5S (got ${JSON.stringify(duration)})`,
      });
    }
  }
  const copyExt = (name: string) => {
    const v = ext(st, name);
    if (v !== undefined) out[name] = v;
  };
  for (const n of ["school_id", "class_id", "grade"]) copyExt(n);

  if (type === "quiz_attempt") {
    if (objectId !== undefined) out.question_id = objectId;
    if (st.result?.success === undefined) {
      issues.push({
        field: "result.success",
        reason: "xapi.result.success is required for answered (is_correct)",
      });
    } else out.is_correct = st.result.success;
    if (seconds !== undefined) out.time_spent_sec = seconds;
    copyExt("attempt_number");
    copyExt("hints_used");
  } else if (type === "assignment") {
    if (objectId !== undefined) out.assignment_id = objectId;
    const score = st.result?.score;
    if (typeof score?.scaled === "number") out.score_pct = score.scaled * 100;
    else if (typeof score?.raw === "number" && typeof score.max === "number" && score.max > 0) {
      const min = typeof score.min === "number" ? score.min : 0;
      out.score_pct = ((score.raw - min) / (score.max - min)) * 100;
    } else {
      issues.push({
        field: "result.score",
        reason: "xapi.result.score.scaled (or raw and max) is required for completed (score_pct)",
      });
    }
  } else {
    if (objectId !== undefined) out.video_id = objectId;
    const pct = ext(st, "watch_pct");
    const progress = st.result?.extensions?.[VIDEO_PROGRESS_EXTENSION];
    if (pct !== undefined) out.watch_pct = pct;
    else if (typeof progress === "number") out.watch_pct = progress * 100;
    else {
      issues.push({
        field: "result.extensions",
        reason: `xapi experienced needs ${VIDEO_PROGRESS_EXTENSION} (0..1) or ${XAPI_EXTENSION}watch_pct (0..100)`,
      });
    }
    if (seconds !== undefined) out.watch_duration_sec = seconds;
    copyExt("rewind_count");
  }
  if (issues.length > 0) return { ok: false, issues };
  return { ok: true, value: out as unknown as LearningEvent };
}
