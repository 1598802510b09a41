import { Ajv } from "ajv";
import { describe, expect, it } from "vitest";
import {
  EVENT_SCHEMAS,
  EVENT_TYPES,
  type EventType,
  EventValidationError,
  parseEvent,
  TOPIC_SCHEMA,
  validateEvent,
  validateTopic,
} from "../../features/contracts.ts";

const common = { student_id: "s1", timestamp: "2026-01-05T10:00:00Z" };
const VALID: Record<EventType, Record<string, unknown>> = {
  quiz_attempt: {
    ...common,
    event_id: "q1",
    type: "quiz_attempt",
    topic_id: "t1",
    question_id: "qq",
    is_correct: true,
    time_spent_sec: 12.5,
    attempt_number: 1,
    hints_used: 0,
  },
  assignment: {
    ...common,
    event_id: "a1",
    type: "assignment",
    topic_ids: ["t1", "t2"],
    assignment_id: "as",
    score_pct: 85,
  },
  video: {
    ...common,
    event_id: "v1",
    type: "video",
    topic_id: "t1",
    video_id: "vid",
    watch_pct: 50,
    watch_duration_sec: 120,
    rewind_count: 2,
  },
  practice: { ...common, event_id: "p1", type: "practice", topic_id: "t1", attempts: 5, correct_count: 3 },
  chatbot: {
    ...common,
    event_id: "c1",
    type: "chatbot",
    topic_id: "t1",
    help_requests: 2,
    resolved_count: 2,
  },
};

const DELETE = Symbol("delete");
// [type, field, bad value (or DELETE), exact message]
const BAD: [EventType, string, unknown, string][] = [
  ["quiz_attempt", "time_spent_sec", -3, "quiz_attempt.time_spent_sec must be >= 0 (got -3)"],
  [
    "quiz_attempt",
    "is_correct",
    "yes",
    'quiz_attempt.is_correct must be a boolean (true or false) (got "yes")',
  ],
  ["quiz_attempt", "attempt_number", 0, "quiz_attempt.attempt_number must be >= 1 (got 0)"],
  ["quiz_attempt", "attempt_number", 1.5, "quiz_attempt.attempt_number must be an integer (got 1.5)"],
  ["quiz_attempt", "hints_used", -1, "quiz_attempt.hints_used must be >= 0 (got -1)"],
  ["quiz_attempt", "question_id", DELETE, "quiz_attempt.question_id is required"],
  ["quiz_attempt", "topic_id", "", "quiz_attempt.topic_id must be a non-empty string"],
  ["quiz_attempt", "event_id", DELETE, "quiz_attempt.event_id is required"],
  ["quiz_attempt", "student_id", 42, "quiz_attempt.student_id must be a string (got a number)"],
  ["quiz_attempt", "grade", 13, "quiz_attempt.grade must be <= 12 (got 13)"],
  ["quiz_attempt", "grade", 0, "quiz_attempt.grade must be >= 1 (got 0)"],
  [
    "quiz_attempt",
    "timestamp",
    "2026-01-05T10:00:00",
    'quiz_attempt.timestamp must be an ISO 8601 date-time with offset, e.g. 2026-01-05T10:00:00Z (got "2026-01-05T10:00:00")',
  ],
  [
    "quiz_attempt",
    "timestamp",
    "2026-02-30T10:00:00Z",
    'quiz_attempt.timestamp must be an ISO 8601 date-time with offset, e.g. 2026-01-05T10:00:00Z (got "2026-02-30T10:00:00Z")',
  ],
  ["assignment", "score_pct", 100.5, "assignment.score_pct must be <= 100 (got 100.5)"],
  ["assignment", "score_pct", -1, "assignment.score_pct must be >= 0 (got -1)"],
  ["assignment", "topic_ids", [], "assignment.topic_ids must list at least 1 item"],
  ["assignment", "topic_ids", ["t1", ""], "assignment.topic_ids must not contain an empty id"],
  ["assignment", "topic_ids", DELETE, "assignment.topic_ids is required"],
  ["assignment", "assignment_id", DELETE, "assignment.assignment_id is required"],
  ["video", "watch_pct", 101, "video.watch_pct must be <= 100 (got 101)"],
  ["video", "watch_pct", -0.1, "video.watch_pct must be >= 0 (got -0.1)"],
  ["video", "watch_duration_sec", -5, "video.watch_duration_sec must be >= 0 (got -5)"],
  ["video", "rewind_count", 1.2, "video.rewind_count must be an integer (got 1.2)"],
  ["video", "video_id", DELETE, "video.video_id is required"],
  ["practice", "correct_count", 6, "practice.correct_count must be <= practice.attempts (got 6 > 5)"],
  ["practice", "correct_count", -1, "practice.correct_count must be >= 0 (got -1)"],
  ["chatbot", "resolved_count", 3, "chatbot.resolved_count must be <= chatbot.help_requests (got 3 > 2)"],
  ["chatbot", "help_requests", "many", 'chatbot.help_requests must be an integer (got "many")'],
];

describe("validateEvent", () => {
  it.each(EVENT_TYPES)("accepts a valid %s and returns it typed", (t) => {
    const r = validateEvent(VALID[t]);
    expect(r.ok).toBe(true);
    if (r.ok) expect(r.value.type).toBe(t);
  });

  it.each(BAD)("%s rejects %s = %j, naming the field", (type, field, value, message) => {
    const ev: Record<string, unknown> = { ...VALID[type] };
    if (value === DELETE) delete ev[field];
    else ev[field] = value;
    const r = validateEvent(ev);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.issues).toEqual([{ field, reason: message }]);
  });

  it("reports every bad field of one event, not only the first", () => {
    const r = validateEvent({
      ...VALID.quiz_attempt,
      time_spent_sec: -3,
      hints_used: -1,
      question_id: undefined,
    });
    expect(r.ok).toBe(false);
    if (!r.ok)
      expect(r.issues.map((i) => i.field).sort()).toEqual(["hints_used", "question_id", "time_spent_sec"]);
  });

  it("applies the cross-field rule next to the field's own rule", () => {
    const r = validateEvent({ ...VALID.practice, attempts: 0 });
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.issues).toEqual([
        { field: "attempts", reason: "practice.attempts must be >= 1 (got 0)" },
        { field: "correct_count", reason: "practice.correct_count must be <= practice.attempts (got 3 > 0)" },
      ]);
    }
  });

  it("accepts offsets other than Z and optional fields left out", () => {
    const { time_spent_sec: _t, attempt_number: _a, hints_used: _h, ...minimal } = VALID.quiz_attempt;
    expect(validateEvent({ ...minimal, timestamp: "2026-01-05T12:00:00.250+02:00" }).ok).toBe(true);
  });

  it("names the allowed types when the type is unknown or missing", () => {
    const r = validateEvent({ ...VALID.video, type: "essay" });
    expect(r).toEqual({
      ok: false,
      issues: [
        {
          field: "type",
          reason:
            'event.type must be one of quiz_attempt, assignment, video, practice, chatbot (got "essay")',
        },
      ],
    });
    const { type: _t, ...untyped } = VALID.video;
    const r2 = validateEvent(untyped);
    expect(r2.ok).toBe(false);
    if (!r2.ok) expect(r2.issues[0]?.field).toBe("type");
  });

  it("parseEvent throws EventValidationError with a code and the message", () => {
    expect(() => parseEvent({ ...VALID.quiz_attempt, time_spent_sec: -3 })).toThrow(
      new EventValidationError([
        { field: "time_spent_sec", reason: "quiz_attempt.time_spent_sec must be >= 0 (got -3)" },
      ]),
    );
    try {
      parseEvent(null);
    } catch (err) {
      expect((err as EventValidationError).code).toBe("EVENT_INVALID");
    }
  });
});

describe("topic metadata", () => {
  const topic = {
    topic_id: "t1",
    chapter_id: "c1",
    subject_id: "math",
    course_id: "alg1",
    difficulty_estimate: 0.4,
    prerequisites: ["t0"],
    content_length: 12,
  };
  it("accepts a complete topic (name optional) and rejects a negative content length", () => {
    expect(validateTopic(topic).ok).toBe(true);
    const r = validateTopic({ ...topic, content_length: -1 });
    expect(r).toEqual({
      ok: false,
      issues: [{ field: "content_length", reason: "topic.content_length must be >= 0 (got -1)" }],
    });
  });
});

describe("exported schemas", () => {
  it("are plain draft-07 JSON Schemas another ajv instance can compile (for HTTP/OpenAPI reuse)", () => {
    const ajv = new Ajv({ $data: true, strict: false });
    for (const t of EVENT_TYPES) expect(() => ajv.compile(structuredClone(EVENT_SCHEMAS[t]))).not.toThrow();
    expect(() => ajv.compile(structuredClone(TOPIC_SCHEMA))).not.toThrow();
  });
});

describe("the contract's own keywords (x-max-bytes, items' x-max-bytes, x-plausible-time)", () => {
  // 400 four-byte characters: within maxLength (1,024 UTF-16 units: 800), over x-max-bytes (1,024 bytes: 1,600).
  const wide = "\u{1F600}".repeat(400);
  const bounds = {
    minUs: Date.UTC(2020, 0, 1) * 1000,
    maxUs: Date.UTC(2027, 0, 1) * 1000,
    futureText: "1 day",
  };
  const fieldsOf = (r: ReturnType<typeof validateEvent>) => (r.ok ? [] : r.issues.map((i) => i.field));

  it("names the field of a string over its byte limit, of a list item over it, and of a time out of bounds", () => {
    expect(fieldsOf(validateEvent({ ...VALID.quiz_attempt, student_id: wide }, { bounds }))).toEqual([
      "student_id",
    ]);
    expect(fieldsOf(validateEvent({ ...VALID.assignment, topic_ids: ["t1", wide] }, { bounds }))).toEqual([
      "topic_ids",
    ]);
    expect(
      fieldsOf(validateEvent({ ...VALID.video, timestamp: "2019-06-01T00:00:00Z" }, { bounds })),
    ).toEqual(["timestamp"]);
    expect(fieldsOf(validateEvent({ ...VALID.assignment, topic_ids: ["t1", "t2"] }, { bounds }))).toEqual([]);
  });

  it("checks each event type's schema alike, whichever type was checked first", () => {
    for (const t of [...EVENT_TYPES].reverse())
      expect(fieldsOf(validateEvent({ ...VALID[t], event_id: wide }, { bounds }))).toEqual(["event_id"]);
  });
});
