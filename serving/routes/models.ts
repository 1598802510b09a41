import { Ajv, type ErrorObject, type ValidateFunction } from "ajv";
import type { Request, RequestHandler } from "express";
import { show } from "../../features/contracts.ts";
import { formatModelVersion } from "../../registry/registry.ts";
import { RegistryError } from "../../registry/store.ts";
import type { ServingContext } from "../app.ts";
import { AccessError, type Principal } from "../auth.ts";
import { HttpError } from "../httpError.ts";

/**
 * REST over the model registry: the same Registry domain functions as `mastery models ...`.
 * Reads: admin, or a service token with scope models:read. Writes (alias move, rollback, delete): admin only.
 * Moving "champion" by hand skips the promotion gate, so it needs `"force": true` and is recorded as a
 * forced promote in alias_history (the gated path is `mastery models promote`, which needs a holdout file).
 */

export const ALIAS_BODY_SCHEMA = {
  $id: "https://mastery-engine.local/schemas/alias-move.json",
  title: "aliasMove",
  description: "Point an alias of the model at a version (recorded in alias_history).",
  type: "object",
  required: ["version", "reason"],
  additionalProperties: false,
  properties: {
    version: { type: "integer", minimum: 1 },
    reason: { type: "string", minLength: 1, maxLength: 2000 },
    force: {
      type: "boolean",
      description:
        'Required (true) to move "champion" by hand: skips the promotion gate; recorded as forced.',
    },
  },
} as const;

export const ROLLBACK_BODY_SCHEMA = {
  $id: "https://mastery-engine.local/schemas/rollback.json",
  title: "rollback",
  description: "Restore the previous holder of an alias (default champion) from alias_history.",
  type: "object",
  additionalProperties: false,
  properties: {
    alias: { type: "string", minLength: 1, description: "Default: champion." },
    reason: { type: "string", minLength: 1, maxLength: 2000 },
  },
} as const;

export interface AliasBody {
  version: number;
  reason: string;
  force?: boolean;
}
export interface RollbackBody {
  alias?: string;
  reason?: string;
}

const ajv = new Ajv({ allErrors: false, strict: true });
const validators = {
  alias: ajv.compile(ALIAS_BODY_SCHEMA),
  rollback: ajv.compile(ROLLBACK_BODY_SCHEMA),
};

function bodyIssue(scope: string, e: ErrorObject | undefined): HttpError {
  if (e === undefined) return new HttpError(400, "invalid_body", "(body)", `${scope} body is invalid`);
  if (e.keyword === "required") {
    const f = (e.params as { missingProperty: string }).missingProperty;
    return new HttpError(400, "invalid_body", f, `${scope}.${f} is required`);
  }
  if (e.keyword === "additionalProperties") {
    const f = (e.params as { additionalProperty: string }).additionalProperty;
    return new HttpError(400, "invalid_body", f, `${scope}.${f} is not a known field`);
  }
  const field = e.instancePath.split("/").filter(Boolean)[0] ?? "(body)";
  return new HttpError(400, "invalid_body", field, `${scope}.${field} ${e.message ?? "is invalid"}`);
}

/** Validates a JSON body with a compiled schema (an absent body counts as {}), or throws 400. */
export function parseBody<T>(validate: ValidateFunction, scope: string, body: unknown): T {
  const b = body === undefined ? {} : body;
  if (validate(b)) return b as T;
  throw bodyIssue(scope, validate.errors?.[0]);
}

/** 403 unless an admin: registry and experiment writes are never delegated to service tokens. */
export function requireAdmin(p: Principal, what: string): void {
  if (p.role !== "admin") throw new AccessError(403, "role", `only an admin may ${what}`);
}

const NOT_FOUND = new Set(["NO_MODEL", "NO_VERSION", "NO_ALIAS", "NO_LINEAGE"]);
const CONFLICT = new Set([
  "ALIASED",
  "NO_PREVIOUS",
  "PREVIOUS_DELETED",
  "ALIAS_CONFLICT",
  "ALREADY_CHAMPION",
]);

/** Registry errors as HTTP errors: unknown things 404, refused state changes 409, bad input 400. */
async function registryCall<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (!(err instanceof RegistryError)) throw err;
    const status = NOT_FOUND.has(err.code) ? 404 : CONFLICT.has(err.code) ? 409 : 400;
    throw new HttpError(status, err.code.toLowerCase(), "(registry)", err.message);
  }
}

const param = (v: string | string[] | undefined): string => (Array.isArray(v) ? (v[0] ?? "") : (v ?? ""));
const query = (req: Request, name: string): string | undefined => {
  const v = req.query[name];
  return typeof v === "string" && v !== "" ? v : undefined;
};

/** Versions are INTEGER columns: 1 .. 2^31-1. */
function versionParam(raw: string): number {
  if (!/^\d{1,10}$/.test(raw) || Number(raw) < 1 || Number(raw) > 2_147_483_647)
    throw new HttpError(
      400,
      "invalid_path",
      "version",
      `version must be an integer in [1, 2147483647] (got ${show(raw)})`,
    );
  return Number(raw);
}

/** GET /models?name=&kind=&tag= */
export const listModels =
  (ctx: ServingContext): RequestHandler =>
  async (req, res) => {
    await ctx.principal(req, "models:read");
    const name = query(req, "name");
    const kind = query(req, "kind");
    const tag = query(req, "tag");
    const versions = await ctx.gate.run(() =>
      ctx.registry.search({
        ...(name !== undefined ? { name } : {}),
        ...(kind !== undefined ? { kind } : {}),
        ...(tag !== undefined ? { tag } : {}),
      }),
    );
    const names = [...new Set(versions.map((v) => v.name))].sort();
    res.json({
      servedModelName: ctx.modelScoring.modelName,
      models: names.map((n) => {
        const vs = versions.filter((v) => v.name === n);
        const aliases: Record<string, number> = {};
        for (const v of vs) for (const a of v.aliases) aliases[a] = v.version;
        return { name: n, versions: vs.length, latest: vs.at(-1)?.version ?? null, aliases };
      }),
      versions,
    });
  };

/** GET /models/:name */
export const getModel =
  (ctx: ServingContext): RequestHandler =>
  async (req, res) => {
    await ctx.principal(req, "models:read");
    const name = param(req.params.name);
    const out = await ctx.gate.run(async () => {
      const versions = await ctx.registry.search({ name });
      if (versions.length === 0)
        throw new HttpError(404, "no_model", "name", `no versions registered under "${name}"`);
      return {
        name,
        versions,
        aliases: await ctx.registry.store.aliasesOf(name),
        aliasHistory: await ctx.registry.store.aliasHistory(name),
      };
    });
    res.json(out);
  };

/** GET /models/:name/versions/:version (a number, or an alias such as champion) */
export const getModelVersion =
  (ctx: ServingContext): RequestHandler =>
  async (req, res) => {
    await ctx.principal(req, "models:read");
    const name = param(req.params.name);
    const sel = param(req.params.version);
    const out = await ctx.gate.run(() =>
      registryCall(async () => {
        const v = await ctx.registry.resolve(`${name}@${/^\d+$/.test(sel) ? versionParam(sel) : sel}`);
        const history = (await ctx.registry.store.aliasHistory(v.name)).filter(
          (h) => h.toVersion === v.version || h.fromVersion === v.version,
        );
        return { ...v, modelVersion: formatModelVersion(v.name, v.version), aliasHistory: history };
      }),
    );
    res.json(out);
  };

/**
 * GET /models/:name/lineage?version=&student=: lineage of a version (default the champion, else the
 * latest); with ?student=RAW_ID (pseudonymized at once), the lineage of the version serving that student
 * now (arm or champion) and of every stored score of the student.
 */
export const getModelLineage =
  (ctx: ServingContext): RequestHandler =>
  async (req, res) => {
    const p = await ctx.principal(req, "models:read");
    const name = param(req.params.name);
    const rawStudent = query(req, "student");
    const sel = query(req, "version");
    const studentKey = rawStudent === undefined ? undefined : await ctx.student(p, rawStudent, res);
    const out = await ctx.gate.run(() =>
      registryCall(async () => {
        if (studentKey === undefined) {
          let ref = sel === undefined ? `${name}@champion` : `${name}@${sel}`;
          if (sel === undefined && (await ctx.registry.store.aliasTarget(name, "champion")) === undefined)
            ref = name;
          return { name, lineage: await ctx.registry.lineage(ref) };
        }
        await ctx.modelScoring.refresh();
        const arm = ctx.modelScoring.assignment(studentKey);
        const servedRef = arm?.modelRef.startsWith(`${name}@`)
          ? arm!.modelRef
          : name === ctx.modelScoring.modelName
            ? `${name}@champion`
            : null;
        let served: { modelRef: string; lineage: unknown; note?: string } | null = null;
        if (servedRef !== null) {
          try {
            served = { modelRef: servedRef, lineage: await ctx.registry.lineage(servedRef) };
          } catch (err) {
            if (!(err instanceof RegistryError)) throw err;
            served = { modelRef: servedRef, lineage: null, note: err.message };
          }
        }
        return {
          name,
          studentKey,
          experimentArm: arm === null ? null : { experimentId: arm.experimentId, arm: arm.arm },
          served,
          scores: await ctx.registry.lineageOfScores(studentKey),
        };
      }),
    );
    res.json(out);
  };

/** POST /models/:name/aliases/:alias {version, reason, force?} (admin) */
export const postAlias =
  (ctx: ServingContext): RequestHandler =>
  async (req, res) => {
    const p = await ctx.principal(req, "models:write");
    requireAdmin(p, "move model aliases");
    const name = param(req.params.name);
    const alias = param(req.params.alias);
    const body = parseBody<AliasBody>(validators.alias, "aliasMove", req.body);
    if (alias === "champion" && body.force !== true)
      throw new HttpError(
        409,
        "gated_alias",
        "force",
        'moving champion by hand skips the promotion gate: send "force": true (recorded as forced), or use `mastery models promote` with a holdout',
      );
    const entry = await ctx.gate.run(() =>
      registryCall(() =>
        ctx.registry.setAlias(name, alias, body.version, {
          actor: p.actor,
          reason: body.reason,
          ...(alias === "champion" ? { action: "promote" as const, forced: true } : {}),
        }),
      ),
    );
    await ctx.modelsChanged();
    res.status(201).json(entry);
  };

/** POST /models/:name/rollback {alias?, reason?} (admin) */
export const postRollback =
  (ctx: ServingContext): RequestHandler =>
  async (req, res) => {
    const p = await ctx.principal(req, "models:write");
    requireAdmin(p, "roll back model aliases");
    const name = param(req.params.name);
    const body = parseBody<RollbackBody>(validators.rollback, "rollback", req.body);
    const entry = await ctx.gate.run(() =>
      registryCall(() =>
        ctx.registry.rollback(name, {
          actor: p.actor,
          ...(body.alias !== undefined ? { alias: body.alias } : {}),
          ...(body.reason !== undefined ? { reason: body.reason } : {}),
        }),
      ),
    );
    await ctx.modelsChanged();
    res.status(201).json(entry);
  };

/** DELETE /models/:name/versions/:version (admin; refused with 409 while aliased) */
export const deleteModelVersion =
  (ctx: ServingContext): RequestHandler =>
  async (req, res) => {
    const p = await ctx.principal(req, "models:write");
    requireAdmin(p, "delete model versions");
    const name = param(req.params.name);
    const version = versionParam(param(req.params.version));
    const out = await ctx.gate.run(() => registryCall(() => ctx.registry.delete(name, version)));
    res.json({ name, version, modelVersion: formatModelVersion(name, version), ...out });
  };

const str = { type: "string" };
const int = { type: "integer" };
const ALIAS_ENTRY = {
  type: "object",
  required: [
    "name",
    "alias",
    "seq",
    "fromVersion",
    "toVersion",
    "action",
    "forced",
    "actor",
    "reason",
    "movedAt",
  ],
  properties: {
    name: str,
    alias: str,
    seq: int,
    fromVersion: { type: ["integer", "null"] },
    toVersion: { type: ["integer", "null"] },
    action: { enum: ["move", "promote", "rollback", "clear"] },
    forced: { type: "boolean" },
    actor: str,
    reason: str,
    gate: {},
    movedAt: { type: "string", format: "date-time" },
  },
};
const MODEL_VERSION = {
  type: "object",
  required: ["name", "version", "kind", "params", "metrics", "createdAt", "aliases", "tags", "artifacts"],
  properties: {
    name: str,
    version: int,
    kind: str,
    params: { type: "object" },
    metrics: { type: "object", additionalProperties: { type: "number" } },
    data: { type: "object" },
    featureSchemaHash: str,
    codeCommit: str,
    parent: { type: "object", properties: { name: str, version: int } },
    description: str,
    createdBy: str,
    createdAt: str,
    aliases: { type: "array", items: str },
    tags: { type: "array", items: str },
    artifacts: {
      type: "array",
      items: { type: "object", properties: { path: str, sha256: str, sizeBytes: int } },
    },
  },
};

/** Component schemas these routes add to the OpenAPI document (bodies are the ajv schemas above). */
export const MODEL_COMPONENTS: Record<string, unknown> = {
  AliasMove: (({ $id: _id, ...rest }) => rest)(ALIAS_BODY_SCHEMA),
  Rollback: (({ $id: _id, ...rest }) => rest)(ROLLBACK_BODY_SCHEMA),
  AliasHistoryEntry: ALIAS_ENTRY,
  ModelVersion: MODEL_VERSION,
  ModelList: {
    type: "object",
    required: ["models", "versions"],
    properties: {
      servedModelName: str,
      models: {
        type: "array",
        items: {
          type: "object",
          properties: {
            name: str,
            versions: int,
            latest: int,
            aliases: { type: "object", additionalProperties: int },
          },
        },
      },
      versions: { type: "array", items: { $ref: "#/components/schemas/ModelVersion" } },
    },
  },
  Model: {
    type: "object",
    required: ["name", "versions", "aliases", "aliasHistory"],
    properties: {
      name: str,
      versions: { type: "array", items: { $ref: "#/components/schemas/ModelVersion" } },
      aliases: { type: "array", items: { type: "object" } },
      aliasHistory: { type: "array", items: { $ref: "#/components/schemas/AliasHistoryEntry" } },
    },
  },
  ModelLineage: {
    type: "object",
    description:
      "Without ?student: {name, lineage}. With ?student: the version serving the student now and every stored score's lineage.",
    properties: {
      name: str,
      lineage: { type: "object" },
      studentKey: str,
      experimentArm: { type: ["object", "null"] },
      served: { type: ["object", "null"] },
      scores: { type: "array", items: { type: "object" } },
    },
  },
  ModelDeleted: {
    type: "object",
    properties: {
      name: str,
      version: int,
      modelVersion: str,
      removedBlobs: { type: "array", items: str },
      keptBlobs: { type: "array", items: str },
    },
  },
};
