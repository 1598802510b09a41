import type { PgParam, SqlDialect, SqlStore } from "../storage/postgres.ts";

/** JSON values as stored in params/metrics. */
export type Json = string | number | boolean | null | Json[] | { [key: string]: Json };

/** Which data trained a version: a time window and/or the data file's content hash and row count. */
export interface DataWindow {
  from?: string;
  to?: string;
  file?: string;
  sha256?: string;
  rows?: number;
}

export interface ArtifactRef {
  /** Path relative to the model directory, "/"-separated (e.g. "model.json"). */
  path: string;
  sha256: string;
  sizeBytes: number;
}

export interface NewModelVersion {
  name: string;
  kind: string;
  params: { [key: string]: Json };
  metrics: { [key: string]: number };
  data: DataWindow;
  featureSchemaHash: string;
  codeCommit: string;
  parent?: { name: string; version: number };
  description?: string;
  createdBy: string;
  createdAt: string;
  tags: string[];
}

export interface ModelVersion extends NewModelVersion {
  version: number;
  artifacts: ArtifactRef[];
  /** Aliases currently pointing at this version. */
  aliases: string[];
}

export interface AliasMoveInput {
  name: string;
  alias: string;
  /** null clears the alias. */
  toVersion: number | null;
  action: "move" | "promote" | "rollback" | "clear";
  forced: boolean;
  actor: string;
  reason: string;
  gate?: Json;
  at: string;
  /** When set, the move fails unless the alias currently points at this version (null: unset). */
  expectFrom?: number | null;
}

export interface AliasHistoryEntry {
  name: string;
  alias: string;
  seq: number;
  fromVersion: number | null;
  toVersion: number | null;
  action: string;
  forced: boolean;
  actor: string;
  reason: string;
  gate: Json | null;
  movedAt: string;
}

export interface VersionFilter {
  name?: string;
  kind?: string;
  tag?: string;
}

/**
 * Persistence of the registry. One interface; SqlRegistryStore implements it over either adapter
 * (storage/duckdb.ts DuckStore, storage/postgres.ts PgStore) with the same SQL.
 */
export interface RegistryStore {
  readonly dialect: SqlDialect;
  /** Inserts a version with the next version number for its name (1, 2, ...), atomically. */
  insertVersion(v: NewModelVersion, artifacts: ArtifactRef[]): Promise<ModelVersion>;
  getVersion(name: string, version: number): Promise<ModelVersion | undefined>;
  listVersions(filter: VersionFilter): Promise<ModelVersion[]>;
  /** Versions owning an artifact whose sha256 starts with `prefix` at `path` (any path when undefined). */
  versionsByArtifact(prefix: string, path?: string): Promise<ModelVersion[]>;
  /** How many (name, version, path) rows reference the blob. */
  artifactRefCount(sha256: string): Promise<number>;
  aliasTarget(name: string, alias: string): Promise<number | undefined>;
  aliasesOf(
    name: string,
  ): Promise<{ alias: string; version: number; updatedBy: string; updatedAt: string }[]>;
  /** Moves (or clears) an alias and appends to alias_history in ONE transaction; returns the entry. */
  moveAlias(m: AliasMoveInput): Promise<AliasHistoryEntry>;
  aliasHistory(name: string, alias?: string): Promise<AliasHistoryEntry[]>;
  addTags(name: string, version: number, tags: string[]): Promise<void>;
  removeTags(name: string, version: number, tags: string[]): Promise<void>;
  /**
   * Deletes a version's rows (tags, artifacts, version) in one transaction and returns its artifacts.
   * Throws RegistryError ALIASED (naming the aliases) if any alias points at it.
   */
  deleteVersion(name: string, version: number): Promise<ArtifactRef[]>;
}

export class RegistryError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = "RegistryError";
  }
}

interface VersionRow {
  name: string;
  version: number;
  kind: string;
  params: string;
  metrics: string;
  data_from: Date | null;
  data_to: Date | null;
  data_file: string | null;
  data_hash: string | null;
  data_rows: bigint | string | number | null;
  feature_schema_hash: string;
  code_commit: string;
  parent_name: string | null;
  parent_version: number | null;
  description: string | null;
  created_by: string;
  created_at: Date;
  [key: string]: unknown;
}

const iso = (d: Date | null): string | undefined => (d === null ? undefined : d.toISOString());

export class SqlRegistryStore implements RegistryStore {
  constructor(
    private readonly sql: SqlStore,
    readonly dialect: SqlDialect,
  ) {}

  async insertVersion(v: NewModelVersion, artifacts: ArtifactRef[]): Promise<ModelVersion> {
    // Two writers may compute the same next version; the primary key rejects the loser, who retries.
    for (let attempt = 0; ; attempt++) {
      try {
        const version = await this.sql.transaction(async () => {
          const row = await this.sql.one<{ v: number | null }>(
            "SELECT MAX(version) AS v FROM model_versions WHERE name = $1",
            [v.name],
          );
          const next = Number(row?.v ?? 0) + 1;
          await this.sql.run(
            `INSERT INTO model_versions (name, version, kind, params, metrics, data_from, data_to, data_file,
               data_hash, data_rows, feature_schema_hash, code_commit, parent_name, parent_version, description,
               created_by, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)`,
            [
              v.name,
              next,
              v.kind,
              JSON.stringify(v.params),
              JSON.stringify(v.metrics),
              v.data.from ?? null,
              v.data.to ?? null,
              v.data.file ?? null,
              v.data.sha256 ?? null,
              v.data.rows ?? null,
              v.featureSchemaHash,
              v.codeCommit,
              v.parent?.name ?? null,
              v.parent?.version ?? null,
              v.description ?? null,
              v.createdBy,
              v.createdAt,
            ],
          );
          for (const a of artifacts)
            await this.sql.run(
              "INSERT INTO model_artifacts (name, version, path, sha256, size_bytes) VALUES ($1, $2, $3, $4, $5)",
              [v.name, next, a.path, a.sha256, a.sizeBytes],
            );
          for (const tag of new Set(v.tags))
            await this.sql.run("INSERT INTO model_tags (name, version, tag) VALUES ($1, $2, $3)", [
              v.name,
              next,
              tag,
            ]);
          return next;
        });
        const out = await this.getVersion(v.name, version);
        if (out === undefined)
          throw new RegistryError("INTERNAL", `version ${v.name}@${version} vanished after insert`);
        return out;
      } catch (err) {
        if (attempt < 5 && /duplicate|unique|primary key|constraint/i.test((err as Error).message)) continue;
        throw err;
      }
    }
  }

  async getVersion(name: string, version: number): Promise<ModelVersion | undefined> {
    const rows = await this.sql.all<VersionRow>(
      "SELECT * FROM model_versions WHERE name = $1 AND version = $2",
      [name, version],
    );
    return (await this.hydrate(rows))[0];
  }

  async listVersions(filter: VersionFilter): Promise<ModelVersion[]> {
    const where: string[] = [];
    const params: PgParam[] = [];
    if (filter.name !== undefined) {
      params.push(filter.name);
      where.push(`v.name = $${params.length}`);
    }
    if (filter.kind !== undefined) {
      params.push(filter.kind);
      where.push(`v.kind = $${params.length}`);
    }
    if (filter.tag !== undefined) {
      params.push(filter.tag);
      where.push(
        `EXISTS (SELECT 1 FROM model_tags t WHERE t.name = v.name AND t.version = v.version AND t.tag = $${params.length})`,
      );
    }
    const rows = await this.sql.all<VersionRow>(
      `SELECT v.* FROM model_versions v ${where.length ? `WHERE ${where.join(" AND ")}` : ""} ORDER BY v.name, v.version`,
      params,
    );
    return this.hydrate(rows);
  }

  async versionsByArtifact(prefix: string, path?: string): Promise<ModelVersion[]> {
    const params: PgParam[] = [`${prefix}%`];
    if (path !== undefined) params.push(path);
    const rows = await this.sql.all<VersionRow>(
      `SELECT v.* FROM model_versions v WHERE EXISTS (
         SELECT 1 FROM model_artifacts a WHERE a.name = v.name AND a.version = v.version AND a.sha256 LIKE $1
         ${path !== undefined ? "AND a.path = $2" : ""})
       ORDER BY v.name, v.version`,
      params,
    );
    return this.hydrate(rows);
  }

  async artifactRefCount(sha256: string): Promise<number> {
    const row = await this.sql.one<{ n: unknown }>(
      "SELECT COUNT(*) AS n FROM model_artifacts WHERE sha256 = $1",
      [sha256],
    );
    return Number(row?.n ?? 0);
  }

  async aliasTarget(name: string, alias: string): Promise<number | undefined> {
    const row = await this.sql.one<{ version: number }>(
      "SELECT version FROM model_aliases WHERE name = $1 AND alias = $2",
      [name, alias],
    );
    return row === undefined ? undefined : Number(row.version);
  }

  async aliasesOf(
    name: string,
  ): Promise<{ alias: string; version: number; updatedBy: string; updatedAt: string }[]> {
    const rows = await this.sql.all<{ alias: string; version: number; updated_by: string; updated_at: Date }>(
      "SELECT alias, version, updated_by, updated_at FROM model_aliases WHERE name = $1 ORDER BY alias",
      [name],
    );
    return rows.map((r) => ({
      alias: r.alias,
      version: Number(r.version),
      updatedBy: r.updated_by,
      updatedAt: r.updated_at.toISOString(),
    }));
  }

  async moveAlias(m: AliasMoveInput): Promise<AliasHistoryEntry> {
    return this.sql.transaction(async () => {
      const current = await this.aliasTarget(m.name, m.alias);
      const from = current ?? null;
      if (m.expectFrom !== undefined && m.expectFrom !== from)
        throw new RegistryError(
          "ALIAS_CONFLICT",
          `${m.name}@${m.alias} points at ${from ?? "nothing"}, not ${m.expectFrom ?? "nothing"}: someone moved it meanwhile; re-read and retry`,
        );
      if (m.toVersion !== null) {
        const exists = await this.sql.one(
          "SELECT 1 AS x FROM model_versions WHERE name = $1 AND version = $2",
          [m.name, m.toVersion],
        );
        if (exists === undefined)
          throw new RegistryError(
            "NO_VERSION",
            `cannot point ${m.name}@${m.alias} at version ${m.toVersion}: no such version (see \`mastery models list --name ${m.name}\`)`,
          );
        if (current === undefined)
          await this.sql.run(
            "INSERT INTO model_aliases (name, alias, version, updated_by, updated_at) VALUES ($1, $2, $3, $4, $5)",
            [m.name, m.alias, m.toVersion, m.actor, m.at],
          );
        else
          await this.sql.run(
            "UPDATE model_aliases SET version = $3, updated_by = $4, updated_at = $5 WHERE name = $1 AND alias = $2",
            [m.name, m.alias, m.toVersion, m.actor, m.at],
          );
      } else if (current !== undefined) {
        await this.sql.run("DELETE FROM model_aliases WHERE name = $1 AND alias = $2", [m.name, m.alias]);
      }
      const seqRow = await this.sql.one<{ s: number | null }>(
        "SELECT MAX(seq) AS s FROM alias_history WHERE name = $1 AND alias = $2",
        [m.name, m.alias],
      );
      const seq = Number(seqRow?.s ?? 0) + 1;
      await this.sql.run(
        `INSERT INTO alias_history (name, alias, seq, from_version, to_version, action, forced, actor, reason, gate, moved_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
        [
          m.name,
          m.alias,
          seq,
          from,
          m.toVersion,
          m.action,
          m.forced,
          m.actor,
          m.reason,
          m.gate === undefined ? null : JSON.stringify(m.gate),
          m.at,
        ],
      );
      return {
        name: m.name,
        alias: m.alias,
        seq,
        fromVersion: from,
        toVersion: m.toVersion,
        action: m.action,
        forced: m.forced,
        actor: m.actor,
        reason: m.reason,
        gate: m.gate ?? null,
        movedAt: new Date(m.at).toISOString(),
      };
    });
  }

  async aliasHistory(name: string, alias?: string): Promise<AliasHistoryEntry[]> {
    const rows = await this.sql.all<{
      name: string;
      alias: string;
      seq: number;
      from_version: number | null;
      to_version: number | null;
      action: string;
      forced: boolean;
      actor: string;
      reason: string;
      gate: string | null;
      moved_at: Date;
    }>(
      `SELECT * FROM alias_history WHERE name = $1 ${alias !== undefined ? "AND alias = $2" : ""} ORDER BY alias, seq`,
      alias !== undefined ? [name, alias] : [name],
    );
    return rows.map((r) => ({
      name: r.name,
      alias: r.alias,
      seq: Number(r.seq),
      fromVersion: r.from_version === null ? null : Number(r.from_version),
      toVersion: r.to_version === null ? null : Number(r.to_version),
      action: r.action,
      forced: r.forced,
      actor: r.actor,
      reason: r.reason,
      gate: r.gate === null ? null : (JSON.parse(r.gate) as Json),
      movedAt: r.moved_at.toISOString(),
    }));
  }

  async addTags(name: string, version: number, tags: string[]): Promise<void> {
    await this.sql.transaction(async () => {
      for (const tag of new Set(tags)) {
        const exists = await this.sql.one(
          "SELECT 1 AS x FROM model_tags WHERE name = $1 AND version = $2 AND tag = $3",
          [name, version, tag],
        );
        if (exists === undefined)
          await this.sql.run("INSERT INTO model_tags (name, version, tag) VALUES ($1, $2, $3)", [
            name,
            version,
            tag,
          ]);
      }
    });
  }

  async removeTags(name: string, version: number, tags: string[]): Promise<void> {
    await this.sql.transaction(async () => {
      for (const tag of tags)
        await this.sql.run("DELETE FROM model_tags WHERE name = $1 AND version = $2 AND tag = $3", [
          name,
          version,
          tag,
        ]);
    });
  }

  async deleteVersion(name: string, version: number): Promise<ArtifactRef[]> {
    return this.sql.transaction(async () => {
      const aliases = await this.sql.all<{ alias: string }>(
        "SELECT alias FROM model_aliases WHERE name = $1 AND version = $2 ORDER BY alias",
        [name, version],
      );
      if (aliases.length > 0) {
        const list = aliases.map((a) => a.alias).join(", ");
        throw new RegistryError(
          "ALIASED",
          `cannot delete ${name}@${version}: alias ${list} points at it; move the alias first ` +
            `(e.g. \`mastery models promote ${name} --challenger OTHER_VERSION\` or \`mastery models rollback ${name}\`)`,
        );
      }
      const arts = await this.artifactsOf(name, version);
      await this.sql.run("DELETE FROM model_tags WHERE name = $1 AND version = $2", [name, version]);
      await this.sql.run("DELETE FROM model_artifacts WHERE name = $1 AND version = $2", [name, version]);
      await this.sql.run("DELETE FROM model_versions WHERE name = $1 AND version = $2", [name, version]);
      return arts;
    });
  }

  private async artifactsOf(name: string, version: number): Promise<ArtifactRef[]> {
    const rows = await this.sql.all<{ path: string; sha256: string; size_bytes: unknown }>(
      "SELECT path, sha256, size_bytes FROM model_artifacts WHERE name = $1 AND version = $2 ORDER BY path",
      [name, version],
    );
    return rows.map((r) => ({ path: r.path, sha256: r.sha256, sizeBytes: Number(r.size_bytes) }));
  }

  private async hydrate(rows: VersionRow[]): Promise<ModelVersion[]> {
    const out: ModelVersion[] = [];
    for (const r of rows) {
      const version = Number(r.version);
      const tags = await this.sql.all<{ tag: string }>(
        "SELECT tag FROM model_tags WHERE name = $1 AND version = $2 ORDER BY tag",
        [r.name, version],
      );
      const aliases = await this.sql.all<{ alias: string }>(
        "SELECT alias FROM model_aliases WHERE name = $1 AND version = $2 ORDER BY alias",
        [r.name, version],
      );
      const data: DataWindow = {};
      const from = iso(r.data_from);
      const to = iso(r.data_to);
      if (from !== undefined) data.from = from;
      if (to !== undefined) data.to = to;
      if (r.data_file !== null) data.file = r.data_file;
      if (r.data_hash !== null) data.sha256 = r.data_hash;
      if (r.data_rows !== null) data.rows = Number(r.data_rows);
      const mv: ModelVersion = {
        name: r.name,
        version,
        kind: r.kind,
        params: JSON.parse(r.params) as { [key: string]: Json },
        metrics: JSON.parse(r.metrics) as { [key: string]: number },
        data,
        featureSchemaHash: r.feature_schema_hash,
        codeCommit: r.code_commit,
        createdBy: r.created_by,
        createdAt: r.created_at.toISOString(),
        tags: tags.map((t) => t.tag),
        artifacts: await this.artifactsOf(r.name, version),
        aliases: aliases.map((a) => a.alias),
      };
      if (r.parent_name !== null && r.parent_version !== null)
        mv.parent = { name: r.parent_name, version: Number(r.parent_version) };
      if (r.description !== null) mv.description = r.description;
      out.push(mv);
    }
    return out;
  }
}
