/**
 * The OpenAPI 3.1 document, built from the route table (serving/routes/index.ts) and the same JSON
 * Schemas ajv validates with (features/contracts.ts, serving/apiSchemas.ts), so the spec cannot
 * drift from what the server checks. ajv's `$data` cross-field rules (correct_count <= attempts)
 * are not JSON Schema; they become a sentence in the field's description.
 */
import { EVENT_SCHEMAS, EVENT_TYPES, type FieldSchema, type ObjectSchema } from "../features/contracts.ts";
import { FEEDBACK_SCHEMA, SCORE_SCHEMA } from "./apiSchemas.ts";
import { ROUTES, type RouteSpec } from "./routes/index.ts";

type Json = Record<string, unknown>;

const componentName = (type: string): string =>
  `${type
    .split("_")
    .map((w) => w[0]!.toUpperCase() + w.slice(1))
    .join("")}Event`;

function field(f: FieldSchema): Json {
  const { maximum, items, ...rest } = f;
  const out: Json = { ...rest };
  if (typeof maximum === "number") out.maximum = maximum;
  else if (maximum) {
    const other = maximum.$data.replace(/^1\//, "");
    out.description = `${f.description ?? ""} Must be <= ${other}.`.trim();
  }
  if (items) out.items = field(items);
  return out;
}

function eventComponent(s: ObjectSchema): Json {
  const properties: Json = {};
  for (const [k, v] of Object.entries(s.properties)) properties[k] = field(v);
  return { title: s.title, description: s.description, type: "object", required: s.required, properties };
}

/** Strips ajv-only keys ($id) from the API body schemas. */
function bodyComponent(s: Json): Json {
  const { $id: _id, ...rest } = s;
  return rest;
}

const str = { type: "string" };
const num = { type: "number" };
/** The evidence behind a served / latent score (GET /mastery and the history). */
const EVIDENCE_OBJECT = {
  type: "object",
  required: ["kind", "attempts", "daysSinceLast"],
  properties: {
    kind: { type: "string", enum: ["measured", "indirect", "prior"] },
    attempts: { type: "integer" },
    daysSinceLast: { type: ["number", "null"] },
  },
};
const nullable = (t: string) => ({ type: [t, "null"] });

const EXPLANATION = {
  type: "object",
  description: "base + sum(factors.contribution) + rest == score",
  required: ["base", "factors", "rest", "score"],
  properties: {
    base: num,
    rest: num,
    score: num,
    factors: {
      type: "array",
      items: {
        type: "object",
        required: ["name", "value", "contribution"],
        properties: { name: str, value: num, contribution: num },
      },
    },
  },
};

const HISTORY_LIST = {
  type: "array",
  description:
    "Oldest first (by recordedAt, then asOf, then scoreSource); the last entry may be `projected`: the latest 'served' run decayed to the request time (not a stored run)",
  items: {
    type: "object",
    properties: {
      projected: {
        type: "boolean",
        description: "true on the served score decayed to the request time (forgetting since the last run)",
      },
      score: num,
      scoreSource: str,
      modelVersion: str,
      asOf: str,
      recordedAt: str,
      explanation: EXPLANATION,
      interval: {
        description:
          "80% interval of the score, on entries of sources that carry one ('served', 'latent'; decayed with the score on the projected entry); absent otherwise",
        type: "object",
        required: ["lo", "hi", "level"],
        properties: { lo: num, hi: num, level: num },
      },
      evidence: {
        description:
          "Evidence behind the score ('served', 'latent'): kind measured | indirect | prior, attempts, days since the last event; absent otherwise",
        ...EVIDENCE_OBJECT,
      },
      pCorrect: {
        description:
          "P(correct on an average next item) behind the score ('served', 'latent'); absent otherwise",
        type: "number",
        minimum: 0,
        maximum: 1,
      },
    },
  },
};

const ROLLUP = {
  type: "array",
  items: {
    type: "object",
    required: ["id", "score", "topicsScored", "topicsTotal"],
    properties: { id: str, score: num, topicsScored: { type: "integer" }, topicsTotal: { type: "integer" } },
  },
};

function responseComponents(): Json {
  const itemErrors = {
    type: "array",
    items: { type: "object", required: ["field", "reason"], properties: { field: str, reason: str } },
  };
  return {
    Error: {
      type: "object",
      required: ["error", "field", "reason"],
      properties: { error: str, field: str, reason: str },
    },
    MasteryResponse: {
      type: "object",
      required: ["studentKey", "topics", "rollups"],
      properties: {
        studentKey: { type: "string", description: "Pseudonym of the student (HMAC-SHA256)" },
        topics: {
          type: "array",
          items: {
            type: "object",
            required: [
              "topicId",
              "score",
              "scoreSource",
              "modelVersion",
              "asOf",
              "explanation",
              "experimentArm",
            ],
            properties: {
              topicId: str,
              name: nullable("string"),
              chapterId: nullable("string"),
              subjectId: nullable("string"),
              courseId: nullable("string"),
              score: { type: "number", minimum: 0, maximum: 1 },
              scoreSource: {
                type: "string",
                description:
                  "teacher_override | served | blend | ml | bkt | rule_based | elo | latent (the order: config/serving.yaml score_sources)",
              },
              interval: {
                description:
                  "80% interval of the served score (sources 'served' and 'latent'; decayed to the request time like the score); null for sources without one",
                oneOf: [
                  { type: "null" },
                  {
                    type: "object",
                    required: ["lo", "hi", "level"],
                    properties: { lo: { type: "number" }, hi: { type: "number" }, level: { type: "number" } },
                  },
                ],
              },
              evidence: {
                description:
                  "Evidence behind the served score: kind measured (quiz attempts) | indirect (other events only) | prior (none), attempts, days since the last event; null for sources without it",
                oneOf: [{ type: "null" }, EVIDENCE_OBJECT],
              },
              pCorrect: {
                description:
                  "P(correct on an average next item) behind the served score (sources 'served' and 'latent'; the 'served' score itself is on the mastery scale); decayed to the request time like the score; null for sources without it",
                type: ["number", "null"],
                minimum: 0,
                maximum: 1,
              },
              modelVersion: str,
              asOf: {
                type: "string",
                format: "date-time",
                description:
                  "Time the score is as of: for 'served' and 'latent', the request time (the stored score decayed to it with the topic's fitted half-life, explanation.forgetting says by how much)",
              },
              lastUpdated: { type: "string", format: "date-time" },
              explanation: EXPLANATION,
              experimentArm: {
                oneOf: [
                  { type: "null" },
                  {
                    type: "object",
                    required: ["experimentId", "arm"],
                    properties: { experimentId: str, arm: str, scoreSource: str },
                  },
                ],
              },
              scores: { type: "object", additionalProperties: { type: "object" } },
              model: {
                description:
                  "The registry model's score of the topic (serving/modelScoring.ts); served unless a teacher override exists",
                oneOf: [
                  { type: "null" },
                  {
                    type: "object",
                    required: ["score", "scoreSource", "modelVersion", "explanation", "served"],
                    properties: {
                      score: { type: "number", minimum: 0, maximum: 1 },
                      scoreSource: str,
                      modelVersion: { type: "string", description: "name@version" },
                      asOf: str,
                      explanation: EXPLANATION,
                      served: { type: "boolean" },
                      detail: { type: "object" },
                    },
                  },
                ],
              },
            },
          },
        },
        servedModel: {
          type: "object",
          description:
            "Which registry model (name@version) and experiment arm produced the ML scores, or why none did",
          required: ["status", "modelName", "modelVersion", "experimentArm", "reason"],
          properties: {
            status: { enum: ["served", "none", "unavailable"] },
            modelName: str,
            modelVersion: nullable("string"),
            version: nullable("integer"),
            kind: nullable("string"),
            scoreSource: nullable("string"),
            modelRef: nullable("string"),
            experimentArm: {
              oneOf: [
                { type: "null" },
                {
                  type: "object",
                  required: ["experimentId", "arm", "modelRef"],
                  properties: { experimentId: str, arm: str, modelRef: str },
                },
              ],
            },
            reason: str,
          },
        },
        rollups: {
          type: "object",
          properties: { scoreSource: nullable("string"), chapter: ROLLUP, subject: ROLLUP, course: ROLLUP },
        },
        histories: {
          type: "array",
          description: "Only with ?include=history: each served topic's history, in the order of `topics`",
          items: {
            type: "object",
            required: ["topicId", "history"],
            properties: { topicId: str, history: HISTORY_LIST },
          },
        },
      },
    },
    HistoryResponse: {
      type: "object",
      properties: {
        studentKey: str,
        topicId: str,
        history: HISTORY_LIST,
      },
    },
    HistoriesResponse: {
      type: "object",
      required: ["studentKey", "topics"],
      properties: {
        studentKey: str,
        topics: {
          type: "array",
          items: {
            type: "object",
            required: ["topicId", "history"],
            properties: { topicId: str, history: HISTORY_LIST },
          },
        },
      },
    },
    RecommendationsResponse: {
      type: "object",
      properties: {
        studentKey: str,
        masteredAt: num,
        recommendations: {
          type: "array",
          items: {
            type: "object",
            properties: {
              topicId: str,
              score: nullable("number"),
              reason: { enum: ["weak", "prerequisite"] },
              forTopic: nullable("string"),
              unmetPrerequisites: { type: "array", items: str },
              ability: num,
              targetDifficulty: {
                type: "number",
                description: "ability - logit(targetSuccess) on the Elo scale",
              },
              targetSuccess: num,
            },
          },
        },
      },
    },
    EventsResponse: {
      type: "object",
      required: ["accepted", "duplicate", "rejected", "items"],
      properties: {
        error: str,
        field: str,
        reason: str,
        accepted: { type: "integer" },
        duplicate: { type: "integer" },
        rejected: { type: "integer" },
        updatedKeys: { type: "integer" },
        items: {
          type: "array",
          items: {
            type: "object",
            required: ["index", "eventId", "status"],
            properties: {
              index: { type: "integer" },
              eventId: nullable("string"),
              status: { enum: ["accepted", "duplicate", "rejected"] },
              errors: itemErrors,
            },
          },
        },
      },
    },
    FeedbackResponse: {
      type: "object",
      properties: {
        studentKey: str,
        topicId: str,
        scoreSource: { const: "teacher_override" },
        labelId: str,
        previousScore: nullable("number"),
        previousSource: nullable("string"),
      },
    },
    ScoreResponse: {
      type: "object",
      properties: {
        updatedKeys: { type: "integer" },
        mastery: { $ref: "#/components/schemas/MasteryResponse" },
      },
    },
  };
}

export const openApiPath = (expressPath: string): string => expressPath.replace(/:([A-Za-z_]+)/g, "{$1}");

export function buildOpenApi(routes: readonly RouteSpec[] = ROUTES): Json {
  const schemas: Json = { ...responseComponents() };
  for (const t of EVENT_TYPES) schemas[componentName(t)] = eventComponent(EVENT_SCHEMAS[t]);
  schemas.Event = {
    oneOf: EVENT_TYPES.map((t) => ({ $ref: `#/components/schemas/${componentName(t)}` })),
    discriminator: {
      propertyName: "type",
      mapping: Object.fromEntries(EVENT_TYPES.map((t) => [t, `#/components/schemas/${componentName(t)}`])),
    },
  };
  schemas.XapiStatement = {
    type: "object",
    description: "An xAPI statement; mapped to an event (features/xapi.ts).",
    required: ["actor", "verb", "object"],
    properties: { id: str, actor: { type: "object" }, verb: { type: "object" }, object: { type: "object" } },
  };
  const item = {
    anyOf: [{ $ref: "#/components/schemas/Event" }, { $ref: "#/components/schemas/XapiStatement" }],
  };
  schemas.EventBatch = {
    description: "A JSON array of events or xAPI statements (mixed), or {events: [...]}.",
    oneOf: [
      { type: "array", items: item, minItems: 1 },
      {
        type: "object",
        required: ["events"],
        properties: { events: { type: "array", items: item, minItems: 1 } },
      },
    ],
  };
  schemas.Feedback = bodyComponent(FEEDBACK_SCHEMA as unknown as Json);
  schemas.ScoreRequest = bodyComponent(SCORE_SCHEMA as unknown as Json);
  for (const r of routes) Object.assign(schemas, r.components ?? {});

  const paths: Record<string, Json> = {};
  for (const r of routes) {
    const path = openApiPath(r.path);
    const params: Json[] = [...r.path.matchAll(/:([A-Za-z_]+)/g)].map((m) => ({
      name: m[1],
      in: "path",
      required: true,
      schema: str,
      description:
        m[1] === "studentId"
          ? "Raw LMS student id (pseudonymized by the server, never stored), or key:<student_key> (32 hex, as the class view lists students)"
          : undefined,
    }));
    for (const q of r.query ?? []) {
      params.push({
        name: q.name,
        in: "query",
        required: false,
        schema: q.schema,
        description: q.description,
      });
    }
    const op: Json = {
      operationId: r.operationId,
      summary: r.summary,
      tags: [r.tag],
      security: r.scope === null ? [] : [{ bearer: [] }],
      responses: Object.fromEntries(
        Object.entries(r.responses).map(([status, [description, schema]]) => [
          status,
          schema === null
            ? { description }
            : {
                description,
                content: { "application/json": { schema: { $ref: `#/components/schemas/${schema}` } } },
              },
        ]),
      ),
    };
    if (r.scope !== null) op["x-required-scope"] = r.scope;
    if (params.length > 0) op.parameters = params.map((p) => JSON.parse(JSON.stringify(p)) as Json);
    if (r.requestBody !== undefined) {
      op.requestBody = {
        required: true,
        content: { "application/json": { schema: { $ref: `#/components/schemas/${r.requestBody}` } } },
      };
    }
    paths[path] = { ...(paths[path] ?? {}), [r.method]: op };
  }
  return {
    openapi: "3.1.0",
    info: {
      title: "Mastery Engine API",
      version: "0.1.0",
      description:
        "Calibrated, explainable mastery scores per (student, topic). Bearer JWT (HS256): role student | parent | " +
        "teacher | admin | service; sub = raw LMS id; parent: children[]; teacher: classes[]; service: scopes[]. " +
        "exp is required and exp - iat may not exceed the server's maximum (MASTERY_JWT_MAX_TTL, default 24 h). " +
        "Teachers see students through class rosters (PUT /roster/classes/{classId}), never through events' class_id.",
    },
    jsonSchemaDialect: "https://spec.openapis.org/oas/3.1/dialect/base",
    components: {
      schemas,
      securitySchemes: { bearer: { type: "http", scheme: "bearer", bearerFormat: "JWT" } },
    },
    paths,
  };
}

const esc = (s: string): string =>
  s.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;").replaceAll('"', "&quot;");

/** A self-contained HTML page listing the operations (no scripts, no CDN). */
export function docsHtml(doc: Json): string {
  const rows: string[] = [];
  for (const [path, ops] of Object.entries(doc.paths as Record<string, Record<string, Json>>)) {
    for (const [method, op] of Object.entries(ops)) {
      const responses = Object.keys(op.responses as Json).join(", ");
      const scope = (op["x-required-scope"] as string | undefined) ?? "public";
      rows.push(
        `<tr><td class="m">${method.toUpperCase()}</td><td><code>${esc(path)}</code></td><td>${esc(String(op.summary))}</td>` +
          `<td>${esc(scope)}</td><td>${esc(responses)}</td></tr>`,
      );
    }
  }
  const info = doc.info as { title: string; version: string; description: string };
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${esc(info.title)}</title>
<style>body{font:14px system-ui,sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse;width:100%}
td,th{border-bottom:1px solid #ddd;padding:6px 8px;text-align:left;vertical-align:top}.m{font-weight:bold}</style></head>
<body><h1>${esc(info.title)} ${esc(info.version)}</h1><p>${esc(info.description)}</p>
<p>Machine-readable: <a href="/openapi.json">/openapi.json</a> (OpenAPI 3.1).</p>
<table><thead><tr><th>Method</th><th>Path</th><th>Summary</th><th>Scope</th><th>Responses</th></tr></thead>
<tbody>${rows.join("\n")}</tbody></table></body></html>`;
}
