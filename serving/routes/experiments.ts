import { Ajv } from "ajv";
import type { Request, RequestHandler } from "express";
import { AllocationError } from "../../experiments/buckets.ts";
import { experimentReport } from "../../experiments/report.ts";
import type { Arm } from "../../experiments/router.ts";
import { type ExperimentConfig, ExperimentError, type NewExperiment } from "../../experiments/store.ts";
import type { ServingContext } from "../app.ts";
import { HttpError } from "../httpError.ts";
import { parseBody, requireAdmin } from "./models.ts";

/**
 * REST over experiments/ (the same store and report as `mastery experiments ...`).
 * Reads: admin, teacher, or a service token with scope experiments:read. Create: admin only.
 * A new running experiment routes students at once (the server re-reads the active experiment).
 */

const MODEL_REF = {
  description: "Registry model by alias or by version.",
  oneOf: [
    {
      type: "object",
      required: ["name", "alias"],
      additionalProperties: false,
      properties: { name: { type: "string", minLength: 1 }, alias: { type: "string", minLength: 1 } },
    },
    {
      type: "object",
      required: ["name", "version"],
      additionalProperties: false,
      properties: { name: { type: "string", minLength: 1 }, version: { type: "integer", minimum: 1 } },
    },
  ],
} as const;

export const EXPERIMENT_BODY_SCHEMA = {
  $id: "https://mastery-engine.local/schemas/experiment.json",
  title: "experiment",
  description:
    "A new A/B experiment; the student is the unit, assignment is a sticky hash of the student key.",
  type: "object",
  required: ["id", "arms"],
  additionalProperties: false,
  properties: {
    id: { type: "string", pattern: "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$" },
    name: { type: "string", minLength: 1, maxLength: 200, description: "Default: the id." },
    arms: {
      type: "array",
      minItems: 2,
      items: {
        type: "object",
        required: ["name", "model", "share"],
        additionalProperties: false,
        properties: {
          name: { type: "string", pattern: "^[A-Za-z0-9._-]+$" },
          model: MODEL_REF,
          share: { type: "number", minimum: 0, maximum: 1 },
        },
      },
      description: "Traffic shares must sum to 1; the first arm is the control unless `control` names one.",
    },
    control: { type: "string", minLength: 1 },
    startAt: { type: "string", format: "date-time", description: "Default: now." },
    endAt: { type: "string", format: "date-time" },
    salt: { type: "string", minLength: 1, description: "HMAC key of the assignment (default: random)." },
    status: { enum: ["draft", "running"], description: "Default: running." },
    config: {
      type: "object",
      additionalProperties: false,
      properties: {
        mde: { type: "number", exclusiveMinimum: 0, maximum: 1 },
        baselineAccuracy: { type: "number", minimum: 0, maximum: 1 },
        alpha: { type: "number", exclusiveMinimum: 0, exclusiveMaximum: 1 },
        power: { type: "number", minimum: 0.5, exclusiveMaximum: 1 },
        masteryThreshold: { type: "number", minimum: 0, maximum: 1 },
        rmstHorizonDays: { type: "number", exclusiveMinimum: 0 },
        srmAlpha: { type: "number", exclusiveMinimum: 0, exclusiveMaximum: 1 },
      },
    },
  },
} as const;

interface ExperimentBody {
  id: string;
  name?: string;
  arms: Arm[];
  control?: string;
  startAt?: string;
  endAt?: string;
  salt?: string;
  status?: "draft" | "running";
  config?: Partial<ExperimentConfig>;
}

// "format" needs ajv-formats; dates are checked with Date.parse below instead, so keep strict off formats.
const ajv = new Ajv({ allErrors: false, strict: true, validateFormats: false });
const validateExperiment = ajv.compile(EXPERIMENT_BODY_SCHEMA);

async function experimentCall<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof ExperimentError) {
      const status = err.code === "NO_EXPERIMENT" ? 404 : err.code === "EXISTS" ? 409 : 400;
      throw new HttpError(status, err.code.toLowerCase(), "(experiment)", err.message);
    }
    if (err instanceof AllocationError) throw new HttpError(400, "invalid_body", "arms", err.message);
    throw err;
  }
}

const param = (v: string | string[] | undefined): string => (Array.isArray(v) ? (v[0] ?? "") : (v ?? ""));
const query = (req: Request, name: string): string | undefined => {
  const v = req.query[name];
  return typeof v === "string" && v !== "" ? v : undefined;
};

function isoField(v: string | undefined, field: string): string | undefined {
  if (v === undefined) return undefined;
  const t = Date.parse(v);
  if (Number.isNaN(t))
    throw new HttpError(
      400,
      "invalid_body",
      field,
      `experiment.${field} must be an ISO 8601 time (got "${v}")`,
    );
  return new Date(t).toISOString();
}

/** GET /experiments */
export const listExperiments =
  (ctx: ServingContext): RequestHandler =>
  async (req, res) => {
    await ctx.principal(req, "experiments:read");
    res.json({ experiments: await ctx.gate.run(() => ctx.experiments.list()) });
  };

/** GET /experiments/:id */
export const getExperiment =
  (ctx: ServingContext): RequestHandler =>
  async (req, res) => {
    await ctx.principal(req, "experiments:read");
    const id = param(req.params.id);
    res.json(await ctx.gate.run(() => experimentCall(() => ctx.experiments.get(id))));
  };

/** GET /experiments/:id/report?as_of=&score_source=&resamples= */
export const getExperimentReport =
  (ctx: ServingContext): RequestHandler =>
  async (req, res) => {
    await ctx.principal(req, "experiments:read");
    const id = param(req.params.id);
    const asOf = isoField(query(req, "as_of"), "as_of");
    const scoreSource = query(req, "score_source");
    const resamplesRaw = query(req, "resamples");
    const resamples = resamplesRaw === undefined ? 1000 : Number(resamplesRaw);
    if (!Number.isInteger(resamples) || resamples < 10 || resamples > 100_000)
      throw new HttpError(400, "invalid_query", "resamples", `resamples must be an integer in [10, 100000]`);
    const report = await ctx.gate.run(() =>
      experimentCall(async () =>
        experimentReport(ctx.store, await ctx.experiments.get(id), {
          bootstrapResamples: resamples,
          asOf: asOf === undefined ? ctx.now() : new Date(asOf),
          ...(scoreSource !== undefined ? { scoreSource } : {}),
        }),
      ),
    );
    res.json(report);
  };

/** POST /experiments (admin) */
export const postExperiment =
  (ctx: ServingContext): RequestHandler =>
  async (req, res) => {
    const p = await ctx.principal(req, "experiments:write");
    requireAdmin(p, "create experiments");
    const b = parseBody<ExperimentBody>(validateExperiment, "experiment", req.body);
    const startAt = isoField(b.startAt, "startAt") ?? ctx.now().toISOString();
    const endAt = isoField(b.endAt, "endAt");
    const input: NewExperiment = {
      id: b.id,
      name: b.name ?? b.id,
      arms: b.arms,
      startAt,
      ...(b.control !== undefined ? { control: b.control } : {}),
      ...(endAt !== undefined ? { endAt } : {}),
      ...(b.salt !== undefined ? { salt: b.salt } : {}),
      ...(b.status !== undefined ? { status: b.status } : {}),
      ...(b.config !== undefined ? { config: b.config } : {}),
    };
    const e = await ctx.gate.run(() => experimentCall(() => ctx.experiments.create(input)));
    await ctx.modelsChanged();
    res.status(201).json(e);
  };

const str = { type: "string" };
const EXPERIMENT = {
  type: "object",
  required: ["id", "name", "status", "arms", "control", "allocation", "unit", "config", "startAt", "endAt"],
  properties: {
    id: str,
    name: str,
    status: { enum: ["draft", "running", "stopped"] },
    salt: str,
    arms: {
      type: "array",
      items: {
        type: "object",
        properties: { name: str, model: { type: "object" }, share: { type: "number" } },
      },
    },
    control: str,
    allocation: {
      type: "array",
      description: "[startBucket, endBucketExclusive, armIndex] runs over 10,000 hash buckets",
      items: { type: "array", items: { type: "integer" } },
    },
    unit: { const: "student" },
    config: { type: "object" },
    startAt: str,
    endAt: { type: ["string", "null"] },
    createdAt: str,
    updatedAt: str,
  },
};

export const EXPERIMENT_COMPONENTS: Record<string, unknown> = {
  NewExperiment: (({ $id: _id, ...rest }) => rest)(EXPERIMENT_BODY_SCHEMA),
  Experiment: EXPERIMENT,
  ExperimentList: {
    type: "object",
    required: ["experiments"],
    properties: { experiments: { type: "array", items: { $ref: "#/components/schemas/Experiment" } } },
  },
  ExperimentReport: {
    type: "object",
    description:
      "Per arm: next-week quiz accuracy and time to mastery vs control with 95% CIs, sample-ratio check, planned sample size (experiments/analysis.ts).",
    required: ["experiment", "asOf", "arms", "srm", "conclusive", "summary"],
    properties: {
      experiment: { type: "object" },
      asOf: str,
      config: { type: "object" },
      arms: { type: "array", items: { type: "object" } },
      srm: { type: "object" },
      conclusive: { type: "boolean" },
      summary: str,
      methods: { type: "array", items: str },
    },
  },
};
