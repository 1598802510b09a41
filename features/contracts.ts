/**
 * Event contracts: one JSON Schema (draft-07 + ajv's `$data` for cross-field rules) per event type
 * and for topic metadata, the matching TypeScript types, and `validateEvent`.
 *
 * The schemas are the single source of truth for validity: ajv compiles them (once) for JSON
 * input and features/ingestSql.ts compiles the same objects into DuckDB SQL checks for bulk
 * CSV/Parquet input, so both paths accept and reject the same rows with the same messages.
 * HTTP/OpenAPI can reuse `EVENT_SCHEMAS` / `TOPIC_SCHEMA` as they are.
 *
 * Bounds (LIMITS; docs/runbook.md "Write-path contract"): every id is 1..1024 characters and at
 * most 1024 bytes of UTF-8 (so (event_id, topic_id) fits a PostgreSQL index row; Cognitive Tutor
 * KC names reach 1,011 characters), without NUL characters or unpaired UTF-16 surrogates; integer
 * counts are within int32 (the columns are
 * INTEGER); durations are finite (<= 1e9 s); topic_ids lists at most 100 ids; an event (or xAPI
 * statement) nests at most 32 levels; timestamps lie in the configured plausible range
 * (features/contractConfig.ts: not before 2000-01-01, at most 1 day after the time the event is
 * received, by default). Messages echo at most 64 characters of a value and never the value of an
 * identifying field (student_id), only its JSON type.
 *
 * Required vs optional (the contract, documented in docs/architecture.md):
 *  - every event: event_id, type, student_id, timestamp, topic_id (assignment: topic_ids[]);
 *    optional school_id, class_id, grade (integer 1..12).
 *  - quiz_attempt: question_id, is_correct required; time_spent_sec (>= 0), attempt_number
 *    (integer >= 1), hints_used (integer >= 0) optional because xAPI and tutor logs often lack them.
 *  - assignment: assignment_id, topic_ids (non-empty), score_pct (0..100) required.
 *  - video: video_id and watch_pct required; watch_pct is the share of the video's length the
 *    student has watched, in percent 0..100 (distinct positions, so rewinds do not push it past
 *    100); watch_duration_sec (>= 0, wall-clock seconds of playback, may exceed the video
 *    length when rewinding) and rewind_count (integer >= 0) optional.
 *  - practice: attempts (integer >= 1), correct_count (integer 0..attempts) required.
 *  - chatbot: help_requests (integer >= 0), resolved_count (integer 0..help_requests) required.
 */
import { Ajv, type ErrorObject, type ValidateFunction } from "ajv";
import addFormatsModule, { type FormatsPlugin } from "ajv-formats";
import { configuredTimeRange, type TimeBounds, timeBounds } from "./contractConfig.ts";

/** The bounds of the contract, in one place (the schemas below use them). */
export const LIMITS = {
  /** Characters (code points) of an id. */
  idLength: 1024,
  /** Bytes of an id in UTF-8 (PostgreSQL indexes rows of at most about 2,700 bytes). */
  idBytes: 1024,
  /** Characters of a free-text field (topic name). */
  textLength: 1000,
  /** Items of a list (topic_ids, prerequisites). */
  listItems: 100,
  /** Largest integer count: the raw_events columns are INTEGER (int32). */
  int32: 2_147_483_647,
  /** Largest duration in seconds (finite; about 31 years). */
  seconds: 1e9,
  /** Deepest JSON nesting of one event or xAPI statement. */
  depth: 32,
  /** Characters of a value echoed in a message. */
  echo: 64,
} as const;

/** Fields whose values identify a person: never echoed in messages (their JSON type is). */
export const IDENTIFYING_FIELDS: ReadonlySet<string> = new Set(["student_id"]);

export const EVENT_TYPES = ["quiz_attempt", "assignment", "video", "practice", "chatbot"] as const;
export type EventType = (typeof EVENT_TYPES)[number];

interface EventBase {
  event_id: string;
  student_id: string;
  /** ISO 8601 with offset, e.g. 2026-01-05T10:00:00Z or 2026-01-05T12:00:00+02:00. */
  timestamp: string;
  school_id?: string;
  class_id?: string;
  grade?: number;
}

export interface QuizAttemptEvent extends EventBase {
  type: "quiz_attempt";
  topic_id: string;
  question_id: string;
  is_correct: boolean;
  time_spent_sec?: number;
  attempt_number?: number;
  hints_used?: number;
}

export interface AssignmentEvent extends EventBase {
  type: "assignment";
  topic_ids: string[];
  assignment_id: string;
  score_pct: number;
}

export interface VideoEvent extends EventBase {
  type: "video";
  topic_id: string;
  video_id: string;
  /** Percent (0..100) of the video's length watched. */
  watch_pct: number;
  watch_duration_sec?: number;
  rewind_count?: number;
}

export interface PracticeEvent extends EventBase {
  type: "practice";
  topic_id: string;
  attempts: number;
  correct_count: number;
}

export interface ChatbotEvent extends EventBase {
  type: "chatbot";
  topic_id: string;
  help_requests: number;
  resolved_count: number;
}

export type LearningEvent = QuizAttemptEvent | AssignmentEvent | VideoEvent | PracticeEvent | ChatbotEvent;

export interface TopicMetadata {
  topic_id: string;
  name?: string;
  chapter_id: string;
  subject_id: string;
  course_id: string;
  difficulty_estimate: number;
  prerequisites: string[];
  content_length: number;
}

/** The subset of JSON Schema the contracts use; ingestSql.ts understands exactly these keywords. */
export interface FieldSchema {
  type: "string" | "number" | "integer" | "boolean" | "array";
  description?: string;
  const?: string;
  minLength?: number;
  maxLength?: number;
  pattern?: string;
  format?: "date-time";
  /**
   * Our own keywords (OpenAPI-style extensions, ignored by other validators), checked after ajv:
   * the date-time lies in the configured plausible range (features/contractConfig.ts); the text
   * is at most this many bytes of UTF-8.
   */
  "x-plausible-time"?: true;
  "x-max-bytes"?: number;
  minimum?: number;
  /** A number, or ajv's relative JSON pointer to a sibling field (cross-field rule). */
  maximum?: number | { $data: string };
  minItems?: number;
  maxItems?: number;
  items?: FieldSchema;
}

export interface ObjectSchema {
  $id: string;
  $schema: string;
  title: string;
  description?: string;
  type: "object";
  required: string[];
  properties: Record<string, FieldSchema>;
}

/**
 * RFC 3339 date-time with a mandatory offset. Narrower than ajv-formats' "date-time" on purpose
 * (upper-case T/Z, colon in the offset, no leap second, at most microseconds) so that exactly the
 * strings DuckDB's TIMESTAMPTZ cast accepts pass; `format` then checks the calendar (no Feb 30).
 */
export const TIMESTAMP_PATTERN =
  "^\\d{4}-\\d{2}-\\d{2}T([01]\\d|2[0-3]):[0-5]\\d:[0-5]\\d(\\.\\d{1,6})?(Z|[+-]([01]\\d|2[0-3]):[0-5]\\d)$";

/**
 * Text without NUL characters or unpaired UTF-16 surrogates (ajv compiles patterns with the "u"
 * flag, where [\uD800-\uDFFF] matches only a lone surrogate). Stores cannot hold either: PostgreSQL
 * refuses NUL in text and UTF-8 has no encoding for a lone surrogate.
 */
export const TEXT_PATTERN = "^[^\\u0000\\uD800-\\uDFFF]*$";

const nonEmpty = (description: string): FieldSchema => ({
  type: "string",
  minLength: 1,
  maxLength: LIMITS.idLength,
  "x-max-bytes": LIMITS.idBytes,
  pattern: TEXT_PATTERN,
  description,
});

const COMMON_PROPERTIES: Record<string, FieldSchema> = {
  event_id: nonEmpty("Idempotency key; a re-sent event with the same id is counted as a duplicate."),
  student_id: nonEmpty("Raw student id; pseudonymized at ingest, never stored."),
  timestamp: {
    type: "string",
    format: "date-time",
    pattern: TIMESTAMP_PATTERN,
    "x-plausible-time": true,
    description:
      "ISO 8601 date-time with offset, e.g. 2026-01-05T10:00:00Z; not before 2000-01-01T00:00:00Z and at most 1 day after the event is received (configurable: config/events.yaml, MASTERY_EVENT_TIME_MIN, MASTERY_EVENT_MAX_FUTURE).",
  },
  school_id: nonEmpty("Optional school id."),
  class_id: nonEmpty("Optional class id."),
  grade: { type: "integer", minimum: 1, maximum: 12, description: "Optional school grade 1..12." },
};
const COMMON_REQUIRED = ["event_id", "type", "student_id", "timestamp"];
const TOPIC_ID = nonEmpty("Topic the event is about.");

function eventSchema(
  type: EventType,
  description: string,
  required: string[],
  own: Record<string, FieldSchema>,
): ObjectSchema {
  return {
    $id: `https://mastery-engine.local/schemas/${type}.json`,
    $schema: "http://json-schema.org/draft-07/schema#",
    title: type,
    description,
    type: "object",
    required: [...COMMON_REQUIRED, ...required],
    properties: { type: { type: "string", const: type }, ...COMMON_PROPERTIES, ...own },
  };
}

const count = (description: string, minimum = 0): FieldSchema => ({
  type: "integer",
  minimum,
  maximum: LIMITS.int32,
  description,
});
const seconds = (description: string): FieldSchema => ({
  type: "number",
  minimum: 0,
  maximum: LIMITS.seconds,
  description,
});

export const EVENT_SCHEMAS: Readonly<Record<EventType, ObjectSchema>> = {
  quiz_attempt: eventSchema(
    "quiz_attempt",
    "One answer to one question.",
    ["topic_id", "question_id", "is_correct"],
    {
      topic_id: TOPIC_ID,
      question_id: nonEmpty("Question (item) answered."),
      is_correct: { type: "boolean" },
      time_spent_sec: seconds("Seconds from display to answer."),
      attempt_number: count("1 for the first try at this question.", 1),
      hints_used: count("Hints requested before answering."),
    },
  ),
  assignment: eventSchema(
    "assignment",
    "A graded assignment; stored as one raw row per topic.",
    ["topic_ids", "assignment_id", "score_pct"],
    {
      topic_ids: { type: "array", minItems: 1, maxItems: LIMITS.listItems, items: nonEmpty("Topic id.") },
      assignment_id: nonEmpty("Assignment id."),
      score_pct: { type: "number", minimum: 0, maximum: 100, description: "Score in percent 0..100." },
    },
  ),
  video: eventSchema("video", "A viewing session of one video.", ["topic_id", "video_id", "watch_pct"], {
    topic_id: TOPIC_ID,
    video_id: nonEmpty("Video id."),
    watch_pct: {
      type: "number",
      minimum: 0,
      maximum: 100,
      description: "Percent 0..100 of the video's length watched (distinct positions; rewinds do not add).",
    },
    watch_duration_sec: seconds("Seconds of playback, rewinds included."),
    rewind_count: count("Times the student jumped back."),
  }),
  practice: eventSchema(
    "practice",
    "A practice session on one topic.",
    ["topic_id", "attempts", "correct_count"],
    {
      topic_id: TOPIC_ID,
      attempts: count("Items attempted in the session.", 1),
      correct_count: {
        type: "integer",
        minimum: 0,
        maximum: { $data: "1/attempts" },
        description: "Items answered correctly, at most attempts.",
      },
    },
  ),
  chatbot: eventSchema(
    "chatbot",
    "A tutoring-chatbot session on one topic.",
    ["topic_id", "help_requests", "resolved_count"],
    {
      topic_id: TOPIC_ID,
      help_requests: count("Questions asked to the chatbot."),
      resolved_count: {
        type: "integer",
        minimum: 0,
        maximum: { $data: "1/help_requests" },
        description: "Requests the student marked resolved, at most help_requests.",
      },
    },
  ),
};

export const TOPIC_SCHEMA: ObjectSchema = {
  $id: "https://mastery-engine.local/schemas/topic.json",
  $schema: "http://json-schema.org/draft-07/schema#",
  title: "topic",
  description: "Topic metadata: topic -> chapter -> subject -> course.",
  type: "object",
  required: [
    "topic_id",
    "chapter_id",
    "subject_id",
    "course_id",
    "difficulty_estimate",
    "prerequisites",
    "content_length",
  ],
  properties: {
    topic_id: nonEmpty("Topic id."),
    name: {
      type: "string",
      maxLength: LIMITS.textLength,
      pattern: TEXT_PATTERN,
      description: "Display name.",
    },
    chapter_id: nonEmpty("Chapter id."),
    subject_id: nonEmpty("Subject id."),
    course_id: nonEmpty("Course id."),
    difficulty_estimate: {
      type: "number",
      minimum: -1e6,
      maximum: 1e6,
      description: "Prior difficulty (model-specific scale).",
    },
    prerequisites: { type: "array", maxItems: LIMITS.listItems, items: nonEmpty("Prerequisite topic id.") },
    content_length: {
      type: "number",
      minimum: 0,
      maximum: 1e9,
      description: "Length of the material (e.g. minutes).",
    },
  },
};

/** For OpenAPI: any event, discriminated by `type`. */
export const ANY_EVENT_SCHEMA = {
  $id: "https://mastery-engine.local/schemas/event.json",
  oneOf: EVENT_TYPES.map((t) => ({ $ref: EVENT_SCHEMAS[t].$id })),
  discriminator: { propertyName: "type" },
} as const;

/** One problem with one field. `field` is the contract field name (`topic_ids`, not a JSON pointer). */
export interface ValidationIssue {
  field: string;
  /** Human message: `quiz_attempt.time_spent_sec must be >= 0 (got -3)`. */
  reason: string;
}

export class EventValidationError extends Error {
  readonly code = "EVENT_INVALID";
  constructor(readonly issues: ValidationIssue[]) {
    super(issues.map((i) => i.reason).join("; "));
    this.name = "EventValidationError";
  }
}

export type ValidationResult<T> = { ok: true; value: T } | { ok: false; issues: ValidationIssue[] };

// ajv-formats is CJS with a default export; under NodeNext the callable sits on .default.
const addFormats: FormatsPlugin =
  (addFormatsModule as unknown as { default?: FormatsPlugin }).default ??
  (addFormatsModule as unknown as FormatsPlugin);

const PLAUSIBLE_TIME = "x-plausible-time";
const MAX_BYTES = "x-max-bytes";

let compiled: { events: Record<EventType, ValidateFunction>; topic: ValidateFunction } | undefined;

/** Compiles every schema once per process (ajv compilation is the slow part, validation is fast). */
function validators(): NonNullable<typeof compiled> {
  if (compiled) return compiled;
  const ajv = new Ajv({ allErrors: true, $data: true, strict: true, allowUnionTypes: true });
  addFormats(ajv, ["date-time"]);
  // Annotations for ajv; checkExtensions applies them (the time bounds depend on the receive time).
  ajv.addKeyword({ keyword: PLAUSIBLE_TIME, schemaType: "boolean" });
  ajv.addKeyword({ keyword: MAX_BYTES, schemaType: "number" });
  const events = {} as Record<EventType, ValidateFunction>;
  // Copies, so ajv's schema cache never holds (or mutates) the exported objects.
  for (const t of EVENT_TYPES) events[t] = ajv.compile(structuredClone(EVENT_SCHEMAS[t]));
  compiled = { events, topic: ajv.compile(structuredClone(TOPIC_SCHEMA)) };
  return compiled;
}

/**
 * Compiles the validators now rather than on the first request: a server calls it at start-up, so the first
 * POST /events does not stall the event loop (and /healthz) for the ~100-200 ms ajv compilation takes.
 */
export function warmUpValidators(): void {
  validators();
}

export function isEventType(value: unknown): value is EventType {
  return typeof value === "string" && (EVENT_TYPES as readonly string[]).includes(value);
}

/** True when `value` nests objects/arrays deeper than `max` levels (iterative: no stack to overflow). */
export function nestsDeeperThan(value: unknown, max: number): boolean {
  const stack: [unknown, number][] = [[value, 1]];
  while (stack.length > 0) {
    const [v, depth] = stack.pop()!;
    if (typeof v !== "object" || v === null) continue;
    if (depth > max) return true;
    for (const child of Array.isArray(v) ? v : Object.values(v)) {
      if (typeof child === "object" && child !== null) stack.push([child, depth + 1]);
    }
  }
  return false;
}

export interface ValidateOptions {
  /**
   * Plausible timestamp range for this event; default: the configured range
   * (features/contractConfig.ts) around the current time.
   */
  bounds?: TimeBounds;
}

/** The configured plausible range around `receivedAt` (default now). */
export function currentTimeBounds(receivedAt: Date = new Date()): TimeBounds {
  return timeBounds(configuredTimeRange(), receivedAt.getTime());
}

const tooDeep = (scope: string): ValidationIssue => ({
  field: "(event)",
  reason: `${scope} nests deeper than ${LIMITS.depth} levels; flatten it`,
});

/** Validates one event; returns the typed event or every issue found (all fields, not just the first). */
export function validateEvent(obj: unknown, opts: ValidateOptions = {}): ValidationResult<LearningEvent> {
  if (typeof obj !== "object" || obj === null || Array.isArray(obj)) {
    return {
      ok: false,
      issues: [{ field: "(event)", reason: `event must be a JSON object (got ${show(obj)})` }],
    };
  }
  if (nestsDeeperThan(obj, LIMITS.depth)) return { ok: false, issues: [tooDeep("event")] };
  const type = (obj as Record<string, unknown>).type;
  if (!isEventType(type)) {
    const reason =
      type === undefined
        ? `event.type is required; allowed types: ${EVENT_TYPES.join(", ")}`
        : `event.type must be one of ${EVENT_TYPES.join(", ")} (got ${show(type)})`;
    return { ok: false, issues: [{ field: "type", reason }] };
  }
  const validate = validators().events[type];
  const schema = EVENT_SCHEMAS[type];
  const issues = validate(obj) ? [] : issuesFromAjv(type, schema, obj, validate.errors ?? []);
  checkExtensions(type, schema, obj as Record<string, unknown>, issues, opts.bounds ?? currentTimeBounds());
  if (issues.length === 0) return { ok: true, value: obj as unknown as LearningEvent };
  return { ok: false, issues };
}

const utf8Bytes = (s: string): number => Buffer.byteLength(s, "utf8");

/** Per schema, its properties that carry an extension checkExtensions applies (the others need no visit). */
const EXTENDED_FIELDS = new WeakMap<ObjectSchema, [string, FieldSchema][]>();

/**
 * The schema's [field, property schema] pairs with x-plausible-time, x-max-bytes or items' x-max-bytes, worked
 * out once per schema: every event of every POST walked all its schema's properties (an array a property) to
 * find the few that carry one (docs/benchmarks.md "The app's CPU per request, round 8 (req29)").
 */
function extendedFields(schema: ObjectSchema): [string, FieldSchema][] {
  let fields = EXTENDED_FIELDS.get(schema);
  if (fields === undefined) {
    fields = Object.entries(schema.properties).filter(
      ([, fs]) =>
        fs[PLAUSIBLE_TIME] === true || fs[MAX_BYTES] !== undefined || fs.items?.[MAX_BYTES] !== undefined,
    );
    EXTENDED_FIELDS.set(schema, fields);
  }
  return fields;
}

/**
 * Our keywords, on fields ajv found nothing wrong with (ingestSql.ts applies the same conditions):
 * x-plausible-time (the time bounds of this batch) and x-max-bytes (on a string within maxLength,
 * or on each item of a list).
 */
function checkExtensions(
  scope: string,
  schema: ObjectSchema,
  data: Record<string, unknown>,
  issues: ValidationIssue[],
  bounds: TimeBounds | null,
): void {
  for (const [field, fs] of extendedFields(schema)) {
    if (issues.length > 0 && issues.some((i) => i.field === field)) continue;
    const v = data[field];
    if (fs[PLAUSIBLE_TIME] === true && bounds !== null && typeof v === "string") {
      const us = timestampMicros(v);
      if (us !== null && us < bounds.minUs)
        issues.push({ field, reason: messages.timeMin(scope, field, bounds, show(v)) });
      else if (us !== null && us > bounds.maxUs)
        issues.push({ field, reason: messages.timeMax(scope, field, bounds, show(v)) });
    }
    const maxBytes = fs[MAX_BYTES];
    if (maxBytes !== undefined && typeof v === "string" && utf8Bytes(v) > maxBytes)
      issues.push({ field, reason: messages.maxBytes(scope, field, maxBytes, String(utf8Bytes(v))) });
    const itemBytes = fs.items?.[MAX_BYTES];
    if (
      itemBytes !== undefined &&
      Array.isArray(v) &&
      v.some((x) => typeof x === "string" && utf8Bytes(x) > itemBytes)
    )
      issues.push({ field, reason: messages.itemTooManyBytes(scope, field, itemBytes) });
  }
}

/** Like validateEvent but throws EventValidationError. */
export function parseEvent(obj: unknown, opts: ValidateOptions = {}): LearningEvent {
  const r = validateEvent(obj, opts);
  if (!r.ok) throw new EventValidationError(r.issues);
  return r.value;
}

export function validateTopic(obj: unknown): ValidationResult<TopicMetadata> {
  if (typeof obj !== "object" || obj === null || Array.isArray(obj)) {
    return {
      ok: false,
      issues: [{ field: "(topic)", reason: `topic must be a JSON object (got ${show(obj)})` }],
    };
  }
  if (nestsDeeperThan(obj, LIMITS.depth)) return { ok: false, issues: [tooDeep("topic")] };
  const validate = validators().topic;
  const issues = validate(obj) ? [] : issuesFromAjv("topic", TOPIC_SCHEMA, obj, validate.errors ?? []);
  checkExtensions("topic", TOPIC_SCHEMA, obj as Record<string, unknown>, issues, null);
  if (issues.length === 0) return { ok: true, value: obj as unknown as TopicMetadata };
  return { ok: false, issues };
}

const TS = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?(Z|([+-])(\d{2}):(\d{2}))$/;

/**
 * A timestamp in the contract's form (TIMESTAMP_PATTERN: offset required, at most microseconds)
 * as epoch microseconds UTC, exactly (Date.parse keeps only milliseconds); null when not in that form.
 */
export function timestampMicros(ts: string): number | null {
  const m = TS.exec(ts);
  if (m === null) return null;
  const n = (i: number) => Number(m[i] ?? "0");
  // Date.UTC maps years 0..99 to 1900..1999; setUTCFullYear keeps them.
  const d = new Date(Date.UTC(2000, 0, 1, n(4), n(5), n(6)));
  d.setUTCFullYear(n(1), n(2) - 1, n(3));
  let ms = d.getTime();
  if (m[8] !== "Z") ms -= (m[9] === "-" ? -1 : 1) * (n(10) * 60 + n(11)) * 60_000;
  const frac = (m[7] ?? "").padEnd(6, "0");
  return ms * 1000 + Number(frac);
}

/**
 * How a value is quoted in messages, at most LIMITS.echo characters of it (ingestSql.ts renders
 * CSV cells the same way). Objects and arrays are described, not printed.
 */
export function show(value: unknown): string {
  if (typeof value === "string") {
    const chars = Array.from(value);
    if (chars.length <= LIMITS.echo) return JSON.stringify(value);
    return `${JSON.stringify(chars.slice(0, LIMITS.echo).join(""))}… (${chars.length} characters)`;
  }
  if (value === undefined) return "undefined";
  if (Array.isArray(value)) return `an array of ${value.length} item${value.length === 1 ? "" : "s"}`;
  if (typeof value === "object" && value !== null) return "an object";
  return JSON.stringify(value) ?? String(value);
}

/** The JSON type of a value, for messages about identifying fields (whose values are never echoed). */
export function jsonTypeOf(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  if (typeof value === "object") return "an object";
  if (typeof value === "string") return "a string";
  if (typeof value === "number") return "a number";
  if (typeof value === "boolean") return "a boolean";
  return typeof value;
}

/** show() for ordinary fields, jsonTypeOf() for IDENTIFYING_FIELDS. */
export function showField(field: string, value: unknown): string {
  return IDENTIFYING_FIELDS.has(field) ? jsonTypeOf(value) : show(value);
}

const ARTICLE: Record<FieldSchema["type"], string> = {
  string: "a string",
  number: "a number",
  integer: "an integer",
  boolean: "a boolean (true or false)",
  array: "an array",
};

const isoOfMicros = (us: number): string => new Date(Math.floor(us / 1000)).toISOString();

/** The message for one rule; shared with the SQL compiler so both paths say the same thing. */
export const messages = {
  required: (scope: string, field: string) => `${scope}.${field} is required`,
  type: (scope: string, field: string, schema: FieldSchema, got: string) =>
    `${scope}.${field} must be ${ARTICLE[schema.type]} (got ${got})`,
  minLength: (scope: string, field: string) => `${scope}.${field} must be a non-empty string`,
  maxLength: (scope: string, field: string, limit: number, length: string) =>
    `${scope}.${field} must be at most ${limit} characters (got ${length})`,
  maxBytes: (scope: string, field: string, limit: number, bytes: string) =>
    `${scope}.${field} must be at most ${limit} bytes of UTF-8 (got ${bytes})`,
  text: (scope: string, field: string) =>
    `${scope}.${field} must not contain NUL characters or unpaired UTF-16 surrogates`,
  minimum: (scope: string, field: string, limit: number, got: string) =>
    `${scope}.${field} must be >= ${limit} (got ${got})`,
  maximum: (scope: string, field: string, limit: number, got: string) =>
    `${scope}.${field} must be <= ${limit} (got ${got})`,
  maximumField: (scope: string, field: string, other: string, got: string, limit: string) =>
    `${scope}.${field} must be <= ${scope}.${other} (got ${got} > ${limit})`,
  timestamp: (scope: string, field: string, got: string) =>
    `${scope}.${field} must be an ISO 8601 date-time with offset, e.g. 2026-01-05T10:00:00Z (got ${got})`,
  timeMin: (scope: string, field: string, b: TimeBounds, got: string) =>
    `${scope}.${field} must not be before ${isoOfMicros(b.minUs)} (MASTERY_EVENT_TIME_MIN) (got ${got})`,
  timeMax: (scope: string, field: string, b: TimeBounds, got: string) =>
    `${scope}.${field} must not be more than ${b.futureText} after it is received, ${isoOfMicros(b.maxUs)} (MASTERY_EVENT_MAX_FUTURE) (got ${got})`,
  minItems: (scope: string, field: string, n: number) =>
    `${scope}.${field} must list at least ${n} item${n === 1 ? "" : "s"}`,
  maxItems: (scope: string, field: string, n: number, got: string) =>
    `${scope}.${field} must list at most ${n} items (got ${got})`,
  emptyItem: (scope: string, field: string) => `${scope}.${field} must not contain an empty id`,
  itemType: (scope: string, field: string) => `${scope}.${field} items must be strings`,
  itemTooLong: (scope: string, field: string, limit: number) =>
    `${scope}.${field} items must be at most ${limit} characters`,
  itemTooManyBytes: (scope: string, field: string, limit: number) =>
    `${scope}.${field} items must be at most ${limit} bytes of UTF-8`,
  itemText: (scope: string, field: string) =>
    `${scope}.${field} items must not contain NUL characters or unpaired UTF-16 surrogates`,
};

/** `$data: "1/attempts"` -> "attempts" (only sibling pointers are used in the contracts). */
export function dataPointerField(pointer: string): string {
  const m = /^1\/([A-Za-z_][A-Za-z0-9_]*)$/.exec(pointer);
  if (!m?.[1]) throw new Error(`unsupported $data pointer ${pointer}; use "1/<sibling field>"`);
  return m[1];
}

function issuesFromAjv(
  scope: string,
  schema: ObjectSchema,
  obj: object,
  errors: ErrorObject[],
): ValidationIssue[] {
  const data = obj as Record<string, unknown>;
  const out: ValidationIssue[] = [];
  const seen = new Set<string>();
  const push = (field: string, reason: string) => {
    if (seen.has(reason)) return;
    seen.add(reason);
    out.push({ field, reason });
  };
  for (const e of errors) {
    const parts = e.instancePath.split("/").filter((p) => p.length > 0);
    if (e.keyword === "required") {
      const missing = (e.params as { missingProperty: string }).missingProperty;
      push(missing, messages.required(scope, missing));
      continue;
    }
    const field = parts[0] ?? "(event)";
    const fs = Object.hasOwn(schema.properties, field) ? schema.properties[field] : undefined;
    if (!fs) continue;
    const value = data[field];
    const got = showField(field, value);
    const isItem = parts.length > 1;
    switch (e.keyword) {
      case "type":
        push(field, isItem ? messages.itemType(scope, field) : messages.type(scope, field, fs, got));
        break;
      case "minLength":
        push(field, isItem ? messages.emptyItem(scope, field) : messages.minLength(scope, field));
        break;
      case "maxLength": {
        const limit = (isItem ? fs.items?.maxLength : fs.maxLength) ?? 0;
        push(
          field,
          isItem
            ? messages.itemTooLong(scope, field, limit)
            : messages.maxLength(scope, field, limit, String(Array.from(String(value)).length)),
        );
        break;
      }
      case "minimum":
        push(field, messages.minimum(scope, field, fs.minimum ?? 0, got));
        break;
      case "maximum": {
        const max = fs.maximum;
        if (typeof max === "number") push(field, messages.maximum(scope, field, max, got));
        else if (max) {
          const other = dataPointerField(max.$data);
          const limit = data[other];
          // A bad referenced field carries its own error; the cross-field rule only applies to numbers.
          if (typeof limit === "number" && Number.isFinite(limit)) {
            push(field, messages.maximumField(scope, field, other, got, show(limit)));
          }
        }
        break;
      }
      case "format":
      case "pattern":
        if (fs.format === "date-time") push(field, messages.timestamp(scope, field, got));
        else push(field, isItem ? messages.itemText(scope, field) : messages.text(scope, field));
        break;
      case "minItems":
        push(field, messages.minItems(scope, field, fs.minItems ?? 1));
        break;
      case "maxItems":
        push(
          field,
          messages.maxItems(scope, field, fs.maxItems ?? 0, String(Array.isArray(value) ? value.length : 0)),
        );
        break;
      case "const":
        push(field, `${scope}.${field} must be ${show(fs.const)} (got ${got})`);
        break;
      default:
        push(field, `${scope}.${field} ${e.message ?? "is invalid"}`);
    }
  }
  return out;
}
