import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { type OpenedStore, openSqlStore, type SqlStore } from "../storage/postgres.ts";
import { REGISTRY_DDL } from "../storage/schema.ts";
import { type ArtifactStore, artifactStoreFor, listFiles } from "./artifacts.ts";
import { featureSchemaHash, featureSchemaOf, gitCommit } from "./provenance.ts";
import {
  type AliasHistoryEntry,
  type DataWindow,
  type Json,
  type ModelVersion,
  RegistryError,
  type RegistryStore,
  SqlRegistryStore,
  type VersionFilter,
} from "./store.ts";

/** The canonical model_version string of a registered version, for scores and exposures: "name@3". */
export function formatModelVersion(name: string, version: number): string {
  return `${name}@${version}`;
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const ALIAS = /^[A-Za-z][A-Za-z0-9._-]{0,63}$/;

export interface RegisterInput {
  name: string;
  /** Directory holding model.json (with a "kind" field) and any other artifact files. */
  dir: string;
  params?: { [key: string]: Json };
  metrics?: { [key: string]: number };
  data?: DataWindow;
  /** Overrides the hash derived from model.json (see provenance.featureSchemaOf). */
  featureSchemaHash?: string;
  /** Overrides `git rev-parse HEAD`. */
  codeCommit?: string;
  /** "name@version" or a version number of the same name. */
  parent?: string;
  tags?: string[];
  description?: string;
  actor: string;
}

export interface MetricCondition {
  metric: string;
  op: ">=" | ">" | "<=" | "<" | "=";
  value: number;
}

export interface SearchFilter extends VersionFilter {
  metrics?: MetricCondition[];
}

export interface Lineage {
  name: string;
  version: number;
  kind: string;
  /** How the reference was resolved: "name@version", "alias", or "model.json sha256". */
  matchedBy: string;
  data: DataWindow;
  featureSchemaHash: string;
  codeCommit: string;
  createdAt: string;
  createdBy: string;
  parent: { name: string; version: number } | null;
  /** Parent, grandparent, ... (stops at a deleted ancestor or a cycle). */
  ancestors: { name: string; version: number; exists: boolean }[];
}

export interface ScoreLineage {
  studentKey: string;
  topicId: string;
  scoreSource: string;
  modelVersion: string;
  lineage: Lineage | null;
  /** Why lineage is null (an unregistered model such as the rule scorer). */
  note?: string;
}

/** Parses "auc>=0.7" (also >, <=, <, =). */
export function parseMetricCondition(spec: string): MetricCondition {
  const m = /^\s*([A-Za-z_][\w.]*)\s*(>=|<=|>|<|=)\s*(-?[\d.]+(?:e-?\d+)?)\s*$/i.exec(spec);
  if (m === null)
    throw new RegistryError(
      "METRIC_FILTER",
      `--metric "${spec}": expected NAME OP NUMBER, e.g. "auc>=0.75" or "logloss<0.5"`,
    );
  return { metric: m[1]!, op: m[2] as MetricCondition["op"], value: Number(m[3]) };
}

function metricOk(v: number | undefined, c: MetricCondition): boolean {
  if (v === undefined || !Number.isFinite(v)) return false;
  switch (c.op) {
    case ">=":
      return v >= c.value;
    case ">":
      return v > c.value;
    case "<=":
      return v <= c.value;
    case "<":
      return v < c.value;
    case "=":
      return v === c.value;
  }
}

/**
 * The model registry: versions, aliases, tags, lineage and artifacts. Every public method is one
 * domain operation, so CLI commands and (later) HTTP routes stay thin.
 */
export class Registry {
  constructor(
    readonly store: RegistryStore,
    readonly artifacts: ArtifactStore,
    /** The SQL store underneath, for lineage from student_mastery rows. */
    private readonly sql: SqlStore,
    private readonly now: () => Date = () => new Date(),
  ) {}

  async register(input: RegisterInput): Promise<ModelVersion> {
    if (!NAME.test(input.name))
      throw new RegistryError(
        "NAME",
        `model name "${input.name}" must start with a letter or digit and hold only letters, digits, ".", "_", "-" (max 128)`,
      );
    const modelPath = join(input.dir, "model.json");
    if (!existsSync(modelPath))
      throw new RegistryError(
        "NO_MODEL_JSON",
        `${modelPath} not found; --dir must be a directory written by \`mastery train ...\``,
      );
    let modelJson: unknown;
    try {
      modelJson = JSON.parse(readFileSync(modelPath, "utf8"));
    } catch (err) {
      throw new RegistryError("MODEL_JSON", `${modelPath} is not valid JSON: ${(err as Error).message}`);
    }
    const m = (typeof modelJson === "object" && modelJson !== null ? modelJson : {}) as Record<
      string,
      unknown
    >;
    if (typeof m.kind !== "string")
      throw new RegistryError(
        "MODEL_KIND",
        `${modelPath} has no string "kind" field; every trained model directory must have one`,
      );
    let parent: { name: string; version: number } | undefined;
    if (input.parent !== undefined) {
      const p = await this.resolve(
        /^\d+$/.test(input.parent) ? `${input.name}@${input.parent}` : input.parent,
      );
      parent = { name: p.name, version: p.version };
    }
    const schema = featureSchemaOf(modelJson);
    const files = listFiles(input.dir);
    const refs = [];
    for (const path of files) {
      const { sha256, sizeBytes } = await this.artifacts.put(join(input.dir, path));
      refs.push({ path, sha256, sizeBytes });
    }
    const isObj = (v: unknown): v is { [key: string]: Json } =>
      typeof v === "object" && v !== null && !Array.isArray(v);
    // Kinds of training/kinds.ts write their fit parameters as "fitParams" and the seed as "seed".
    const params =
      input.params ??
      (isObj(m.fitParams)
        ? { ...m.fitParams, ...(typeof m.seed === "number" ? { seed: m.seed } : {}) }
        : isObj(m.params)
          ? m.params
          : {});
    const metrics = input.metrics ?? numericRecord(m.metrics);
    return this.store.insertVersion(
      {
        name: input.name,
        kind: m.kind,
        params,
        metrics,
        data: input.data ?? {},
        featureSchemaHash:
          input.featureSchemaHash ?? (schema === undefined ? "none" : featureSchemaHash(schema)),
        codeCommit: input.codeCommit ?? gitCommit(),
        ...(parent !== undefined ? { parent } : {}),
        ...(input.description !== undefined ? { description: input.description } : {}),
        createdBy: input.actor,
        createdAt: this.now().toISOString(),
        tags: input.tags ?? [],
      },
      refs,
    );
  }

  /** Resolves "name@3", "name@champion" (any alias) or "name" (its latest version). */
  async resolve(ref: string): Promise<ModelVersion> {
    const at = ref.lastIndexOf("@");
    const name = at < 0 ? ref : ref.slice(0, at);
    const sel = at < 0 ? undefined : ref.slice(at + 1);
    let version: number | undefined;
    if (sel === undefined) {
      const all = await this.store.listVersions({ name });
      version = all.at(-1)?.version;
      if (version === undefined)
        throw new RegistryError("NO_MODEL", `no versions registered under "${name}"`);
    } else if (/^\d+$/.test(sel)) {
      version = Number(sel);
    } else {
      version = await this.store.aliasTarget(name, sel);
      if (version === undefined)
        throw new RegistryError(
          "NO_ALIAS",
          `${name} has no alias "${sel}"; aliases: ${(await this.store.aliasesOf(name)).map((a) => a.alias).join(", ") || "(none)"}`,
        );
    }
    const v = await this.store.getVersion(name, version);
    if (v === undefined)
      throw new RegistryError(
        "NO_VERSION",
        `${name}@${version} is not registered (see \`mastery models list --name ${name}\`)`,
      );
    return v;
  }

  async search(filter: SearchFilter = {}): Promise<ModelVersion[]> {
    const { metrics, ...rest } = filter;
    const rows = await this.store.listVersions(rest);
    if (metrics === undefined || metrics.length === 0) return rows;
    return rows.filter((v) => metrics.every((c) => metricOk(v.metrics[c.metric], c)));
  }

  /** Points `alias` of `name` at `version` (atomic; recorded in alias_history). */
  async setAlias(
    name: string,
    alias: string,
    version: number,
    opts: { actor: string; reason: string; action?: "move" | "promote"; forced?: boolean; gate?: Json },
  ): Promise<AliasHistoryEntry> {
    if (!ALIAS.test(alias))
      throw new RegistryError(
        "ALIAS_NAME",
        `alias "${alias}" must start with a letter and hold letters, digits, ".", "_", "-"`,
      );
    return this.store.moveAlias({
      name,
      alias,
      toVersion: version,
      action: opts.action ?? "move",
      forced: opts.forced ?? false,
      actor: opts.actor,
      reason: opts.reason,
      ...(opts.gate !== undefined ? { gate: opts.gate } : {}),
      at: this.now().toISOString(),
    });
  }

  async clearAlias(
    name: string,
    alias: string,
    opts: { actor: string; reason: string },
  ): Promise<AliasHistoryEntry> {
    return this.store.moveAlias({
      name,
      alias,
      toVersion: null,
      action: "clear",
      forced: false,
      actor: opts.actor,
      reason: opts.reason,
      at: this.now().toISOString(),
    });
  }

  /**
   * The version `alias` pointed at before its current one, from alias_history read as a stack:
   * every move pushes the version it replaced, every rollback pops one. So after promoting 1 -> 2 -> 3,
   * rollback gives 2, a second rollback gives 1 (not back to 3).
   */
  async rollbackTarget(name: string, alias = "champion"): Promise<number | null> {
    const stack: (number | null)[] = [];
    for (const e of await this.store.aliasHistory(name, alias)) {
      if (e.action === "rollback") stack.pop();
      else stack.push(e.fromVersion);
    }
    return stack.at(-1) ?? null;
  }

  /** Restores the previous holder of `alias` (default champion) in one call. */
  async rollback(
    name: string,
    opts: { actor: string; reason?: string; alias?: string },
  ): Promise<AliasHistoryEntry> {
    const alias = opts.alias ?? "champion";
    const current = await this.store.aliasTarget(name, alias);
    if (current === undefined)
      throw new RegistryError("NO_ALIAS", `${name} has no ${alias}; nothing to roll back`);
    const target = await this.rollbackTarget(name, alias);
    if (target === null)
      throw new RegistryError(
        "NO_PREVIOUS",
        `${name}@${alias} has no previous version in alias_history (version ${current} was the first); promote another version instead`,
      );
    if ((await this.store.getVersion(name, target)) === undefined)
      throw new RegistryError(
        "PREVIOUS_DELETED",
        `the previous ${alias} of ${name}, version ${target}, has been deleted; promote an existing version instead`,
      );
    return this.store.moveAlias({
      name,
      alias,
      toVersion: target,
      action: "rollback",
      forced: false,
      actor: opts.actor,
      reason: opts.reason ?? `rollback from ${current} to ${target}`,
      at: this.now().toISOString(),
      expectFrom: current,
    });
  }

  /**
   * Deletes a version and the artifact blobs no other version references. Refuses (RegistryError
   * ALIASED) while an alias points at it.
   */
  async delete(name: string, version: number): Promise<{ removedBlobs: string[]; keptBlobs: string[] }> {
    if ((await this.store.getVersion(name, version)) === undefined)
      throw new RegistryError("NO_VERSION", `${name}@${version} is not registered`);
    const arts = await this.store.deleteVersion(name, version);
    const removedBlobs: string[] = [];
    const keptBlobs: string[] = [];
    for (const sha of new Set(arts.map((a) => a.sha256))) {
      if ((await this.store.artifactRefCount(sha)) === 0) {
        await this.artifacts.delete(sha);
        removedBlobs.push(sha);
      } else keptBlobs.push(sha);
    }
    return { removedBlobs, keptBlobs };
  }

  async tag(name: string, version: number, add: string[], remove: string[] = []): Promise<ModelVersion> {
    if ((await this.store.getVersion(name, version)) === undefined)
      throw new RegistryError("NO_VERSION", `${name}@${version} is not registered`);
    for (const t of add)
      if (t.trim() === "")
        throw new RegistryError("TAG", "tags must be non-empty (e.g. --add prod-candidate or team=ml)");
    if (add.length) await this.store.addTags(name, version, add);
    if (remove.length) await this.store.removeTags(name, version, remove);
    return (await this.store.getVersion(name, version))!;
  }

  /** Copies a version's artifact files into `destDir` (same relative paths); returns the directory. */
  async materialize(name: string, version: number, destDir: string): Promise<string> {
    const v = await this.store.getVersion(name, version);
    if (v === undefined) throw new RegistryError("NO_VERSION", `${name}@${version} is not registered`);
    for (const a of v.artifacts) await this.artifacts.get(a.sha256, join(destDir, a.path));
    return destDir;
  }

  /**
   * Lineage of a model version reference: "name@3", "name@champion", or a served score's
   * model_version ("name@3", or "sha256:<prefix>" = the hash of the model.json the scorer read, as
   * serving/learnerState.ts writes it).
   */
  async lineage(ref: string): Promise<Lineage> {
    const hashRef = /^(?:sha256:)?([0-9a-f]{8,64})$/.exec(ref);
    let v: ModelVersion;
    let matchedBy: string;
    if (hashRef !== null && !ref.includes("@")) {
      const hits = await this.store.versionsByArtifact(hashRef[1]!, "model.json");
      if (hits.length === 0)
        throw new RegistryError(
          "NO_LINEAGE",
          `no registered version has a model.json with sha256 ${hashRef[1]}…; register the model directory that produced these scores (\`mastery models register\`)`,
        );
      // Identical model.json registered twice (e.g. under two names): the oldest registration made it.
      hits.sort((a, b) => a.createdAt.localeCompare(b.createdAt));
      v = hits[0]!;
      matchedBy = "model.json sha256";
    } else {
      v = await this.resolve(ref);
      matchedBy = /@\d+$/.test(ref) ? "name@version" : ref.includes("@") ? "alias" : "latest version";
    }
    const ancestors: Lineage["ancestors"] = [];
    const seen = new Set<string>([formatModelVersion(v.name, v.version)]);
    let p = v.parent;
    while (p !== undefined) {
      const key = formatModelVersion(p.name, p.version);
      if (seen.has(key)) break;
      seen.add(key);
      const pv = await this.store.getVersion(p.name, p.version);
      ancestors.push({ name: p.name, version: p.version, exists: pv !== undefined });
      p = pv?.parent;
    }
    return {
      name: v.name,
      version: v.version,
      kind: v.kind,
      matchedBy,
      data: v.data,
      featureSchemaHash: v.featureSchemaHash,
      codeCommit: v.codeCommit,
      createdAt: v.createdAt,
      createdBy: v.createdBy,
      parent: v.parent ?? null,
      ancestors,
    };
  }

  /** Lineage of each score currently served to a student (optionally one topic) from student_mastery. */
  async lineageOfScores(studentKey: string, topicId?: string): Promise<ScoreLineage[]> {
    const rows = await this.sql.all<{
      student_key: string;
      topic_id: string;
      score_source: string;
      model_version: string;
    }>(
      `SELECT student_key, topic_id, score_source, model_version FROM student_mastery
       WHERE student_key = $1 ${topicId !== undefined ? "AND topic_id = $2" : ""} ORDER BY topic_id, score_source`,
      topicId !== undefined ? [studentKey, topicId] : [studentKey],
    );
    const out: ScoreLineage[] = [];
    for (const r of rows) {
      const base = {
        studentKey: r.student_key,
        topicId: r.topic_id,
        scoreSource: r.score_source,
        modelVersion: r.model_version,
      };
      try {
        out.push({ ...base, lineage: await this.lineage(r.model_version) });
      } catch (err) {
        if (!(err instanceof RegistryError)) throw err;
        out.push({ ...base, lineage: null, note: err.message });
      }
    }
    return out;
  }
}

function numericRecord(x: unknown): { [key: string]: number } {
  const out: { [key: string]: number } = {};
  if (typeof x !== "object" || x === null) return out;
  for (const [k, v] of Object.entries(x)) if (typeof v === "number" && Number.isFinite(v)) out[k] = v;
  return out;
}

export interface OpenRegistryOptions {
  /** PostgreSQL URL (the CLI passes MASTERY_PG_URL); empty or undefined uses DuckDB at dbPath. */
  pgUrl?: string | undefined;
  pgSchema?: string | undefined;
  dbPath: string;
  /** Artifact base directory (default .mastery/artifacts); s3:// is refused (interface only). */
  artifactBase?: string;
  now?: () => Date;
}

/** Opens the registry on the configured store (creating its tables) with its artifact store. */
export async function openRegistry(
  opts: OpenRegistryOptions,
): Promise<{ registry: Registry; opened: OpenedStore }> {
  // Resolve the artifact store first: a refused base (s3://) must not leave a store open.
  const artifacts = artifactStoreFor(opts.artifactBase ?? ".mastery/artifacts");
  const opened = await openSqlStore({
    pgUrl: opts.pgUrl,
    pgSchema: opts.pgSchema,
    dbPath: opts.dbPath,
    ddl: REGISTRY_DDL,
  });
  const registry = new Registry(
    new SqlRegistryStore(opened.store, opened.dialect),
    artifacts,
    opened.store,
    opts.now,
  );
  return { registry, opened };
}
