import type { RequestHandler } from "express";
import type { ServingContext } from "../app.ts";
import type { Scope } from "../auth.ts";
import { getHistory, getMastery, getRecommendations } from "./mastery.ts";
import { docs, healthz, metricsRoute, openapiJson, readyz } from "./ops.ts";
import { postEvents, postFeedback, postScore } from "./writes.ts";

/** One route: how it is mounted, who may call it, and what OpenAPI says about it. */
export interface RouteSpec {
  method: "get" | "post";
  /** Express path (":param"); OpenAPI gets "{param}". */
  path: string;
  operationId: string;
  summary: string;
  tag: string;
  /** Scope (role permission) required; null = public. */
  scope: Scope | null;
  /** Component schema name of the JSON request body. */
  requestBody?: string;
  /** status -> [description, component schema name or null]. */
  responses: Record<string, [string, string | null]>;
  handler: (ctx: ServingContext) => RequestHandler;
}

const STUDENT_ERRORS: RouteSpec["responses"] = {
  "401": ["Missing, invalid or expired token", "Error"],
  "403": ["Role, scope or ownership does not allow it", "Error"],
};

export const ROUTES: readonly RouteSpec[] = [
  {
    method: "get",
    path: "/mastery/:studentId",
    operationId: "getMastery",
    summary:
      "Served mastery per topic (score, explanation, source, model version, arm) and chapter/subject/course rollups",
    tag: "mastery",
    scope: "mastery:read",
    responses: { "200": ["The student's mastery", "MasteryResponse"], ...STUDENT_ERRORS },
    handler: getMastery,
  },
  {
    method: "get",
    path: "/mastery/:studentId/:topicId/history",
    operationId: "getMasteryHistory",
    summary: "Every recorded change of one (student, topic) score, oldest first",
    tag: "mastery",
    scope: "mastery:read",
    responses: { "200": ["History", "HistoryResponse"], ...STUDENT_ERRORS },
    handler: getHistory,
  },
  {
    method: "get",
    path: "/recommendations/:studentId",
    operationId: "getRecommendations",
    summary:
      "Weak topics, each after its unmet prerequisites, with a target item difficulty for P(success) = 0.7 (difficulty = ability - logit(0.7))",
    tag: "mastery",
    scope: "mastery:read",
    responses: { "200": ["Recommendations", "RecommendationsResponse"], ...STUDENT_ERRORS },
    handler: getRecommendations,
  },
  {
    method: "post",
    path: "/events",
    operationId: "postEvents",
    summary:
      "Ingest a batch of events (JSON or xAPI); per-item accepted / duplicate / rejected with field and reason",
    tag: "events",
    scope: "events:write",
    requestBody: "EventBatch",
    responses: {
      "200": ["Every item accepted or duplicate", "EventsResponse"],
      "207": ["Some items rejected (valid ones kept)", "EventsResponse"],
      "400": ["Every item rejected, or the body is not a batch", "EventsResponse"],
      ...STUDENT_ERRORS,
    },
    handler: postEvents,
  },
  {
    method: "post",
    path: "/feedback",
    operationId: "postFeedback",
    summary:
      "Teacher correction: stored as a label + audit entry and served at once as score_source teacher_override",
    tag: "feedback",
    scope: "feedback:write",
    requestBody: "Feedback",
    responses: { "201": ["Stored", "FeedbackResponse"], "400": ["Invalid body", "Error"], ...STUDENT_ERRORS },
    handler: postFeedback,
  },
  {
    method: "post",
    path: "/score",
    operationId: "postScore",
    summary: "LMS hook: bring a student's scores up to date with the stored events now and return them",
    tag: "events",
    scope: "score:write",
    requestBody: "ScoreRequest",
    responses: {
      "200": ["Updated mastery", "ScoreResponse"],
      "400": ["Invalid body", "Error"],
      ...STUDENT_ERRORS,
    },
    handler: postScore,
  },
  {
    method: "get",
    path: "/healthz",
    operationId: "healthz",
    summary: "Liveness",
    tag: "ops",
    scope: null,
    responses: { "200": ["Alive", null] },
    handler: healthz,
  },
  {
    method: "get",
    path: "/readyz",
    operationId: "readyz",
    summary: "Readiness: the store answers",
    tag: "ops",
    scope: null,
    responses: { "200": ["Ready", null], "503": ["Store unreachable", "Error"] },
    handler: readyz,
  },
  {
    method: "get",
    path: "/metrics",
    operationId: "metrics",
    summary: "Prometheus metrics (admin, or service scope metrics:read)",
    tag: "ops",
    scope: "metrics:read",
    responses: { "200": ["Prometheus text format", null], ...STUDENT_ERRORS },
    handler: metricsRoute,
  },
  {
    method: "get",
    path: "/openapi.json",
    operationId: "openapi",
    summary: "This OpenAPI 3.1 document",
    tag: "ops",
    scope: null,
    responses: { "200": ["OpenAPI document", null] },
    handler: openapiJson,
  },
  {
    method: "get",
    path: "/docs",
    operationId: "docs",
    summary: "HTML list of the operations (no external assets)",
    tag: "ops",
    scope: null,
    responses: { "200": ["HTML page", null] },
    handler: docs,
  },
];
