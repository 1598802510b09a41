import { Ajv, type ErrorObject } from "ajv";
import {
  ROSTER_ID_MAX_LENGTH,
  ROSTER_MAX_STUDENTS,
  ROSTER_MAX_TEACHERS,
  rosterIdProblem,
} from "../features/rosterFile.ts";

/**
 * JSON Schemas of the API's own request bodies (events use features/contracts.ts). The same
 * objects are compiled by ajv here and embedded in the OpenAPI document (serving/openapi.ts).
 */
export const FEEDBACK_SCHEMA = {
  $id: "https://mastery-engine.local/schemas/feedback.json",
  title: "feedback",
  description: "A teacher's correction of a student's mastery of one topic.",
  type: "object",
  required: ["studentId", "topicId", "mastery", "reason"],
  additionalProperties: false,
  properties: {
    studentId: {
      type: "string",
      minLength: 1,
      description: "Raw LMS student id (pseudonymized by the server), or key:<student_key> (32 hex).",
    },
    topicId: { type: "string", minLength: 1 },
    mastery: { type: "number", minimum: 0, maximum: 1, description: "The mastery the teacher asserts." },
    reason: { type: "string", minLength: 1, maxLength: 2000 },
  },
} as const;

export const SCORE_SCHEMA = {
  $id: "https://mastery-engine.local/schemas/score-request.json",
  title: "scoreRequest",
  description: "LMS hook: bring a student's scores up to date with the stored events now.",
  type: "object",
  required: ["studentId"],
  additionalProperties: false,
  properties: {
    studentId: { type: "string", minLength: 1 },
    topicIds: {
      type: "array",
      items: { type: "string", minLength: 1 },
      description: "Default: every topic with events.",
    },
  },
} as const;

const rosterId = { type: "string", minLength: 1, maxLength: ROSTER_ID_MAX_LENGTH } as const;

export const ROSTER_CLASS_SCHEMA = {
  $id: "https://mastery-engine.local/schemas/roster-class.json",
  title: "rosterClass",
  description:
    "The whole roster of one class: replaces its students and teachers. Teachers see a student only through a roster class (never through events' class_id).",
  type: "object",
  required: ["students"],
  additionalProperties: false,
  properties: {
    students: {
      type: "array",
      maxItems: ROSTER_MAX_STUDENTS,
      items: rosterId,
      description:
        "Raw LMS student ids, pseudonymized at once (never stored); an empty list empties the class.",
    },
    teachers: {
      type: "array",
      maxItems: ROSTER_MAX_TEACHERS,
      items: rosterId,
      description:
        "Teacher ids (their token's sub) who may see the class. Absent or empty: any teacher whose token's classes[] lists the class.",
    },
  },
} as const;

export const EVENT_BATCH_SCHEMA = {
  $id: "https://mastery-engine.local/schemas/event-batch.json",
  title: "eventBatch",
  description:
    "A batch of learning events (see the event schemas) or xAPI statements, mixed freely: a JSON array, or {events: [...]}.",
  oneOf: [
    { type: "array", items: { type: "object" } },
    {
      type: "object",
      required: ["events"],
      properties: { events: { type: "array", items: { type: "object" } } },
    },
  ],
} as const;

export interface BodyIssue {
  field: string;
  reason: string;
}

const ajv = new Ajv({ allErrors: false, strict: true });
const compiled = {
  feedback: ajv.compile(FEEDBACK_SCHEMA),
  score: ajv.compile(SCORE_SCHEMA),
  roster: ajv.compile(ROSTER_CLASS_SCHEMA),
};

function issue(scope: string, e: ErrorObject | undefined): BodyIssue {
  if (e === undefined) return { field: "(body)", reason: `${scope} body is invalid` };
  if (e.keyword === "required") {
    const f = (e.params as { missingProperty: string }).missingProperty;
    return { field: f, reason: `${scope}.${f} is required` };
  }
  if (e.keyword === "additionalProperties") {
    const f = (e.params as { additionalProperty: string }).additionalProperty;
    return { field: f, reason: `${scope}.${f} is not a known field` };
  }
  const field = e.instancePath.split("/").filter(Boolean)[0] ?? "(body)";
  return { field, reason: `${scope}.${field} ${e.message ?? "is invalid"}` };
}

export interface FeedbackBody {
  studentId: string;
  topicId: string;
  mastery: number;
  reason: string;
}
export interface ScoreBody {
  studentId: string;
  topicIds?: string[];
}

export type Parsed<T> = { ok: true; value: T } | { ok: false; issue: BodyIssue };

export function parseFeedback(body: unknown): Parsed<FeedbackBody> {
  if (compiled.feedback(body)) return { ok: true, value: body as FeedbackBody };
  return { ok: false, issue: issue("feedback", compiled.feedback.errors?.[0]) };
}

export function parseScore(body: unknown): Parsed<ScoreBody> {
  if (compiled.score(body)) return { ok: true, value: body as ScoreBody };
  return { ok: false, issue: issue("score", compiled.score.errors?.[0]) };
}

export interface RosterClassBody {
  students: string[];
  teachers?: string[];
}

/** A roster body; ids with control characters or lone surrogates are refused without echoing them. */
export function parseRosterClass(body: unknown): Parsed<RosterClassBody> {
  if (!compiled.roster(body)) return { ok: false, issue: issue("roster", compiled.roster.errors?.[0]) };
  const value = body as RosterClassBody;
  for (const list of ["students", "teachers"] as const) {
    for (const [i, id] of (value[list] ?? []).entries()) {
      const problem = rosterIdProblem(id, `${list}[${i}]`);
      if (problem !== null)
        return { ok: false, issue: { field: `${list}[${i}]`, reason: `roster.${problem}` } };
    }
  }
  return { ok: true, value };
}

/** The records of an event batch, or the problem with its shape. */
export function parseEventBatch(body: unknown, maxBatch: number): Parsed<unknown[]> {
  const list = Array.isArray(body)
    ? body
    : typeof body === "object" && body !== null && Array.isArray((body as { events?: unknown }).events)
      ? (body as { events: unknown[] }).events
      : undefined;
  if (list === undefined) {
    return {
      ok: false,
      issue: { field: "(body)", reason: 'body must be a JSON array of events or {"events": [...]}' },
    };
  }
  if (list.length === 0)
    return { ok: false, issue: { field: "events", reason: "events must list at least 1 event" } };
  if (list.length > maxBatch) {
    return {
      ok: false,
      issue: {
        field: "events",
        reason: `events must list at most ${maxBatch} events (got ${list.length}); split the batch`,
      },
    };
  }
  return { ok: true, value: list };
}
