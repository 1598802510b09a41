import type { RequestHandler } from "express";
import type { ServingContext } from "../app.ts";
import type { Scope } from "../auth.ts";
import { CLASS_COMPONENTS, getClassMastery } from "./classes.ts";
import {
  EXPERIMENT_COMPONENTS,
  getExperiment,
  getExperimentReport,
  listExperiments,
  postExperiment,
} from "./experiments.ts";
import { getHistories, getHistory, getMastery, getRecommendations, MASTERY_ROUTE } from "./mastery.ts";
import {
  deleteModelVersion,
  getModel,
  getModelLineage,
  getModelVersion,
  listModels,
  MODEL_COMPONENTS,
  postAlias,
  postRollback,
} from "./models.ts";
import { docs, healthz, metricsRoute, openapiJson, readyz } from "./ops.ts";
import { getDriftChecks, getQuality, QUALITY_COMPONENTS } from "./quality.ts";
import { deleteRosterClass, getRosterClass, putRosterClass, ROSTER_COMPONENTS } from "./roster.ts";
import { postEvents, postFeedback, postScore } from "./writes.ts";

/** One route: how it is mounted, who may call it, and what OpenAPI says about it. */
export interface RouteSpec {
  method: "get" | "post" | "put" | "delete";
  /** Express path (":param"); OpenAPI gets "{param}". */
  path: string;
  operationId: string;
  summary: string;
  tag: string;
  /** Scope (role permission) required; null = public. */
  scope: Scope | null;
  /** Query parameters, for the OpenAPI document (the handler parses and checks them). */
  query?: readonly { name: string; description: string; schema: Record<string, unknown> }[];
  /** Component schema name of the JSON request body. */
  requestBody?: string;
  /** status -> [description, component schema name or null]. */
  responses: Record<string, [string, string | null]>;
  handler: (ctx: ServingContext) => RequestHandler;
  /** Extra OpenAPI component schemas the route's bodies and responses refer to. */
  components?: Record<string, unknown>;
}

const STUDENT_ERRORS: RouteSpec["responses"] = {
  "401": ["Missing, invalid or expired token", "Error"],
  "403": ["Role, scope or ownership does not allow it", "Error"],
};

const NOT_FOUND: RouteSpec["responses"] = { "404": ["No such model, version, alias or experiment", "Error"] };

/** The model registry (serving/routes/models.ts): reads admin or scope models:read; writes admin only. */
const MODEL_ROUTES: readonly RouteSpec[] = [
  {
    method: "get",
    path: "/models",
    operationId: "listModels",
    summary: "Registered model versions (filters ?name=&kind=&tag=) and each model's aliases",
    tag: "models",
    scope: "models:read",
    responses: { "200": ["Models and versions", "ModelList"], ...STUDENT_ERRORS },
    handler: listModels,
    components: MODEL_COMPONENTS,
  },
  {
    method: "get",
    path: "/models/:name",
    operationId: "getModel",
    summary: "One model: its versions, aliases and alias history",
    tag: "models",
    scope: "models:read",
    responses: { "200": ["The model", "Model"], ...STUDENT_ERRORS, ...NOT_FOUND },
    handler: getModel,
  },
  {
    method: "get",
    path: "/models/:name/versions/:version",
    operationId: "getModelVersion",
    summary:
      "One version (a number, or an alias such as champion) with artifacts and the alias moves touching it",
    tag: "models",
    scope: "models:read",
    responses: { "200": ["The version", "ModelVersion"], ...STUDENT_ERRORS, ...NOT_FOUND },
    handler: getModelVersion,
  },
  {
    method: "get",
    path: "/models/:name/lineage",
    operationId: "getModelLineage",
    summary:
      "Data window, feature-schema hash, code commit and ancestors of a version (?version=, default champion); with ?student=RAW_ID (pseudonymized), of the version serving that student and of their stored scores",
    tag: "models",
    scope: "models:read",
    responses: { "200": ["Lineage", "ModelLineage"], ...STUDENT_ERRORS, ...NOT_FOUND },
    handler: getModelLineage,
  },
  {
    method: "post",
    path: "/models/:name/aliases/:alias",
    operationId: "moveModelAlias",
    summary:
      'Admin: point an alias at a version, recorded in alias_history; "champion" needs force: true (skips the promotion gate, recorded as forced)',
    tag: "models",
    scope: "models:write",
    requestBody: "AliasMove",
    responses: {
      "201": ["Moved", "AliasHistoryEntry"],
      "400": ["Invalid body", "Error"],
      ...STUDENT_ERRORS,
      ...NOT_FOUND,
      "409": ["champion without force", "Error"],
    },
    handler: postAlias,
  },
  {
    method: "post",
    path: "/models/:name/rollback",
    operationId: "rollbackModel",
    summary: "Admin: restore the previous holder of an alias (default champion) from alias_history",
    tag: "models",
    scope: "models:write",
    requestBody: "Rollback",
    responses: {
      "201": ["Rolled back", "AliasHistoryEntry"],
      "400": ["Invalid body", "Error"],
      ...STUDENT_ERRORS,
      ...NOT_FOUND,
      "409": ["No previous version to roll back to", "Error"],
    },
    handler: postRollback,
  },
  {
    method: "delete",
    path: "/models/:name/versions/:version",
    operationId: "deleteModelVersion",
    summary: "Admin: delete a version and its unshared artifact blobs; refused while an alias points at it",
    tag: "models",
    scope: "models:write",
    responses: {
      "200": ["Deleted", "ModelDeleted"],
      ...STUDENT_ERRORS,
      ...NOT_FOUND,
      "409": ["An alias points at the version", "Error"],
    },
    handler: deleteModelVersion,
  },
];

/** A/B experiments (serving/routes/experiments.ts): reads admin, teacher or scope experiments:read; create admin. */
const EXPERIMENT_ROUTES: readonly RouteSpec[] = [
  {
    method: "get",
    path: "/experiments",
    operationId: "listExperiments",
    summary: "Every experiment with arms, shares, allocation and status",
    tag: "experiments",
    scope: "experiments:read",
    responses: { "200": ["Experiments", "ExperimentList"], ...STUDENT_ERRORS },
    handler: listExperiments,
    components: EXPERIMENT_COMPONENTS,
  },
  {
    method: "get",
    path: "/experiments/:id",
    operationId: "getExperiment",
    summary: "One experiment",
    tag: "experiments",
    scope: "experiments:read",
    responses: { "200": ["The experiment", "Experiment"], ...STUDENT_ERRORS, ...NOT_FOUND },
    handler: getExperiment,
  },
  {
    method: "get",
    path: "/experiments/:id/report",
    operationId: "getExperimentReport",
    summary:
      "Outcome report (JSON): next-week quiz accuracy and time to mastery per arm vs control with 95% CIs, SRM check, planned sample size (?as_of=&score_source=&resamples=)",
    tag: "experiments",
    scope: "experiments:read",
    responses: { "200": ["Report", "ExperimentReport"], ...STUDENT_ERRORS, ...NOT_FOUND },
    handler: getExperimentReport,
  },
  {
    method: "post",
    path: "/experiments",
    operationId: "createExperiment",
    summary: "Admin: create an experiment (running by default: students are routed to its arms at once)",
    tag: "experiments",
    scope: "experiments:write",
    requestBody: "NewExperiment",
    responses: {
      "201": ["Created", "Experiment"],
      "400": ["Invalid body", "Error"],
      ...STUDENT_ERRORS,
      "409": ["An experiment with that id exists", "Error"],
    },
    handler: postExperiment,
  },
];

/** Class rosters (serving/routes/roster.ts): the only source of teacher access to students. */
const ROSTER_ROUTES: readonly RouteSpec[] = [
  {
    method: "put",
    path: "/roster/classes/:classId",
    operationId: "putRosterClass",
    summary:
      "Admin or service (roster:write): replace a class's roster: students (raw ids, pseudonymized at once) and optional teachers (token sub); teachers see a student only through a roster class",
    tag: "roster",
    scope: "roster:write",
    requestBody: "RosterClassBody",
    responses: {
      "200": ["Replaced", "RosterClassPut"],
      "400": ["Invalid body", "Error"],
      ...STUDENT_ERRORS,
    },
    handler: putRosterClass,
    components: ROSTER_COMPONENTS,
  },
  {
    method: "get",
    path: "/roster/classes/:classId",
    operationId: "getRosterClass",
    summary:
      "Admin or service (roster:read): a class's roster (student keys, teachers, who loaded it and when)",
    tag: "roster",
    scope: "roster:read",
    responses: {
      "200": ["The roster", "RosterClass"],
      ...STUDENT_ERRORS,
      "404": ["The class has no roster", "Error"],
    },
    handler: getRosterClass,
  },
  {
    method: "delete",
    path: "/roster/classes/:classId",
    operationId: "deleteRosterClass",
    summary: "Admin or service (roster:write): remove a class's roster (its teachers lose access through it)",
    tag: "roster",
    scope: "roster:write",
    responses: {
      "200": ["Removed", "RosterClassDeleted"],
      ...STUDENT_ERRORS,
      "404": ["The class has no roster", "Error"],
    },
    handler: deleteRosterClass,
  },
];

export const ROUTES: readonly RouteSpec[] = [
  {
    method: "get",
    path: MASTERY_ROUTE,
    operationId: "getMastery",
    summary:
      "Served mastery per topic (score, explanation, source, model version, arm) and chapter/subject/course rollups; with ?include=history also every served topic's history",
    tag: "mastery",
    scope: "mastery:read",
    query: [
      {
        name: "include",
        description:
          "history: add `histories`, each served topic's recorded changes oldest first (as GET /mastery/{studentId}/history), in the same response",
        schema: { type: "string", enum: ["history"] },
      },
    ],
    responses: {
      "200": ["The student's mastery", "MasteryResponse"],
      "400": ["Invalid ?include=", "Error"],
      ...STUDENT_ERRORS,
    },
    handler: getMastery,
  },
  {
    method: "get",
    path: "/mastery/:studentId/history",
    operationId: "getMasteryHistories",
    summary:
      "Every recorded change of many topics of one student in one request (the dashboard's student page), each topic's list oldest first",
    tag: "mastery",
    scope: "mastery:read",
    query: [
      {
        name: "topics",
        description:
          "Comma-separated topic ids, answered in that order (a topic without history gets an empty list); default every topic with history, sorted by id. At most 1000.",
        schema: { type: "string" },
      },
    ],
    responses: {
      "200": ["Histories by topic", "HistoriesResponse"],
      "400": ["Invalid ?topics=", "Error"],
      ...STUDENT_ERRORS,
    },
    handler: getHistories,
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
    method: "get",
    path: "/classes/:classId/mastery",
    operationId: "getClassMastery",
    summary:
      "Teachers of the class and admin: every student on the class's roster with their served score per topic and the topics below ?threshold= (default mastered_at)",
    tag: "mastery",
    scope: "mastery:read",
    responses: {
      "200": ["Class mastery", "ClassMastery"],
      "400": ["Invalid threshold", "Error"],
      ...STUDENT_ERRORS,
      "404": ["The class has no roster", "Error"],
    },
    handler: getClassMastery,
    components: CLASS_COMPONENTS,
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
  ...ROSTER_ROUTES,
  ...MODEL_ROUTES,
  ...EXPERIMENT_ROUTES,
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
    summary:
      "Readiness: every backend (DuckDB, PostgreSQL, Redis, NATS as configured) answers; per-backend status and latency",
    tag: "ops",
    scope: null,
    responses: { "200": ["Ready", null], "503": ["A backend is down (Retry-After set)", "Error"] },
    handler: readyz,
  },
  {
    method: "get",
    path: "/quality",
    operationId: "getQuality",
    summary:
      "Admin or service (metrics:read): data-quality report (completeness, freshness, null rates, dead letters, schema drift, volume) within a time budget; status partial past it",
    tag: "ops",
    scope: "metrics:read",
    query: [
      {
        name: "budget_ms",
        description:
          "time budget in ms (default quality_budget_ms, at most 120000): past it the answer is status partial with `missing` sections",
        schema: { type: "integer", minimum: 1, maximum: 120000 },
      },
    ],
    responses: {
      "200": ["Quality report (complete or partial)", "QualityReport"],
      "400": ["Invalid budget_ms", "Error"],
      ...STUDENT_ERRORS,
    },
    handler: getQuality,
    components: QUALITY_COMPONENTS,
  },
  {
    method: "get",
    path: "/drift/checks",
    operationId: "getDriftChecks",
    summary:
      "Admin or service (metrics:read): the latest drift checks of the monitor, newest first (?limit=)",
    tag: "ops",
    scope: "metrics:read",
    responses: {
      "200": ["Drift checks", "DriftChecks"],
      "400": ["Invalid limit", "Error"],
      ...STUDENT_ERRORS,
    },
    handler: getDriftChecks,
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
