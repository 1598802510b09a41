import { randomBytes } from "node:crypto";
import { type OpenedStore, openSqlStore, type SqlStore } from "../storage/postgres.ts";
import { EXPERIMENT_DDL } from "../storage/schema.ts";
import { fromRanges, initialAllocation, reallocate, toRanges, validateShares } from "./buckets.ts";
import { type Arm, type ArmModel, ExperimentRouter } from "./router.ts";

export type ExperimentStatus = "draft" | "running" | "stopped";

/** Analysis settings fixed when the experiment is created (so the planned sample size cannot drift with peeking). */
export interface ExperimentConfig {
  /** Minimum detectable effect on next-week quiz accuracy (absolute, e.g. 0.05 = 5 points). */
  mde: number;
  /** Expected control accuracy; the planned SD is sqrt(b (1 - b)), the largest SD a [0,1] metric with mean b can have. */
  baselineAccuracy: number;
  alpha: number;
  power: number;
  masteryThreshold: number;
  /** Horizon (days) of the restricted mean time to mastery. */
  rmstHorizonDays: number;
  /** Flag a sample-ratio mismatch when the chi-square p-value is below this. */
  srmAlpha: number;
}

export const DEFAULT_EXPERIMENT_CONFIG: ExperimentConfig = {
  mde: 0.05,
  baselineAccuracy: 0.7,
  alpha: 0.05,
  power: 0.8,
  masteryThreshold: 0.8,
  rmstHorizonDays: 28,
  srmAlpha: 0.001,
};

export interface Experiment {
  id: string;
  name: string;
  status: ExperimentStatus;
  salt: string;
  arms: Arm[];
  control: string;
  allocation: [number, number, number][];
  unit: "student";
  config: ExperimentConfig;
  startAt: string;
  endAt: string | null;
  createdAt: string;
  updatedAt: string;
}

export interface NewExperiment {
  id: string;
  name: string;
  arms: Arm[];
  /** Control arm name (default: the first arm). */
  control?: string;
  startAt: string;
  endAt?: string;
  salt?: string;
  status?: ExperimentStatus;
  config?: Partial<ExperimentConfig>;
}

export interface Exposure {
  experimentId: string;
  arm: string;
  studentKey: string;
  modelName: string;
  modelVersion: number;
  score: number;
  servedAt: string;
}

export class ExperimentError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = "ExperimentError";
  }
}

const ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

interface ExperimentRow {
  experiment_id: string;
  name: string;
  status: string;
  salt: string;
  arms: string;
  control_arm: string;
  allocation: string;
  unit: string;
  config: string;
  start_at: Date;
  end_at: Date | null;
  created_at: Date;
  updated_at: Date;
  [key: string]: unknown;
}

function fromRow(r: ExperimentRow): Experiment {
  return {
    id: r.experiment_id,
    name: r.name,
    status: r.status as ExperimentStatus,
    salt: r.salt,
    arms: JSON.parse(r.arms) as Arm[],
    control: r.control_arm,
    allocation: JSON.parse(r.allocation) as [number, number, number][],
    unit: "student",
    config: { ...DEFAULT_EXPERIMENT_CONFIG, ...(JSON.parse(r.config) as Partial<ExperimentConfig>) },
    startAt: r.start_at.toISOString(),
    endAt: r.end_at === null ? null : r.end_at.toISOString(),
    createdAt: r.created_at.toISOString(),
    updatedAt: r.updated_at.toISOString(),
  };
}

/** Experiments and their exposure log, on DuckDB or PostgreSQL (same SQL). */
export class ExperimentStore {
  constructor(
    readonly sql: SqlStore,
    private readonly now: () => Date = () => new Date(),
  ) {}

  async create(e: NewExperiment): Promise<Experiment> {
    if (!ID.test(e.id))
      throw new ExperimentError(
        "EXPERIMENT_ID",
        `experiment id "${e.id}" must be letters, digits, ".", "_", "-" (max 64)`,
      );
    if (e.arms.length < 2)
      throw new ExperimentError("ARMS", "an experiment needs at least two arms (control and a treatment)");
    const names = new Set(e.arms.map((a) => a.name));
    if (names.size !== e.arms.length) throw new ExperimentError("ARMS", "arm names must be unique");
    const control = e.control ?? e.arms[0]!.name;
    if (!names.has(control))
      throw new ExperimentError(
        "CONTROL",
        `control arm "${control}" is not one of: ${[...names].join(", ")}`,
      );
    validateShares(e.arms.map((a) => a.share));
    if (Number.isNaN(Date.parse(e.startAt)))
      throw new ExperimentError("START", `start "${e.startAt}" is not an ISO 8601 time`);
    if (e.endAt !== undefined && !(Date.parse(e.endAt) > Date.parse(e.startAt)))
      throw new ExperimentError(
        "END",
        `end "${e.endAt}" must be an ISO 8601 time after the start ${e.startAt}`,
      );
    const config = { ...DEFAULT_EXPERIMENT_CONFIG, ...(e.config ?? {}) };
    if (!(config.mde > 0)) throw new ExperimentError("MDE", `mde must be > 0 (got ${config.mde})`);
    const at = this.now().toISOString();
    const allocation = toRanges(initialAllocation(e.arms.map((a) => a.share)));
    if ((await this.find(e.id)) !== undefined)
      throw new ExperimentError("EXISTS", `experiment "${e.id}" already exists`);
    await this.sql.transaction(async () => {
      await this.sql.run(
        `INSERT INTO experiments (experiment_id, name, status, salt, arms, control_arm, allocation, unit, config,
           start_at, end_at, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'student', $8, $9, $10, $11, $11)`,
        [
          e.id,
          e.name,
          e.status ?? "running",
          e.salt ?? randomBytes(16).toString("hex"),
          JSON.stringify(e.arms),
          control,
          JSON.stringify(allocation),
          JSON.stringify(config),
          new Date(e.startAt).toISOString(),
          e.endAt === undefined ? null : new Date(e.endAt).toISOString(),
          at,
        ],
      );
      await this.sql.run(
        "INSERT INTO experiment_share_history (experiment_id, seq, shares, moved_buckets, changed_by, changed_at) VALUES ($1, 1, $2, 0, 'create', $3)",
        [e.id, JSON.stringify(Object.fromEntries(e.arms.map((a) => [a.name, a.share]))), at],
      );
    });
    return this.get(e.id);
  }

  async find(id: string): Promise<Experiment | undefined> {
    const r = await this.sql.one<ExperimentRow>("SELECT * FROM experiments WHERE experiment_id = $1", [id]);
    return r === undefined ? undefined : fromRow(r);
  }

  async get(id: string): Promise<Experiment> {
    const e = await this.find(id);
    if (e === undefined)
      throw new ExperimentError("NO_EXPERIMENT", `no experiment "${id}" (see \`mastery experiments list\`)`);
    return e;
  }

  async list(): Promise<Experiment[]> {
    return (
      await this.sql.all<ExperimentRow>("SELECT * FROM experiments ORDER BY created_at, experiment_id")
    ).map(fromRow);
  }

  router(e: Experiment): ExperimentRouter {
    return new ExperimentRouter({ experimentId: e.id, salt: e.salt, arms: e.arms, allocation: e.allocation });
  }

  /**
   * Changes traffic shares (a share for every arm, by name; 0 stops an arm's traffic), moving the
   * fewest buckets (experiments/buckets.ts reallocate); `newArms` are appended first with share 0.
   * Recorded in experiment_share_history. Returns the number of buckets that changed arm.
   */
  async setShares(
    id: string,
    shares: Record<string, number>,
    opts: { actor: string; newArms?: { name: string; model: ArmModel }[] },
  ): Promise<{ experiment: Experiment; movedBuckets: number }> {
    return this.sql.transaction(async () => {
      const e = await this.get(id);
      const arms: Arm[] = e.arms.map((a) => ({ ...a }));
      for (const n of opts.newArms ?? []) {
        if (arms.some((a) => a.name === n.name))
          throw new ExperimentError("ARMS", `arm "${n.name}" already exists`);
        arms.push({ name: n.name, model: n.model, share: 0 });
      }
      for (const name of Object.keys(shares))
        if (!arms.some((a) => a.name === name))
          throw new ExperimentError(
            "ARMS",
            `unknown arm "${name}"; arms: ${arms.map((a) => a.name).join(", ")} (add new arms with their model)`,
          );
      for (const a of arms) {
        const s = shares[a.name];
        if (s === undefined)
          throw new ExperimentError(
            "SHARES",
            `give a share for every arm (missing "${a.name}"; use 0 to stop sending traffic to it)`,
          );
        a.share = s;
      }
      const { owner, moved } = reallocate(
        fromRanges(e.allocation),
        arms.map((a) => a.share),
      );
      const at = this.now().toISOString();
      await this.sql.run(
        "UPDATE experiments SET arms = $2, allocation = $3, updated_at = $4 WHERE experiment_id = $1",
        [id, JSON.stringify(arms), JSON.stringify(toRanges(owner)), at],
      );
      const seq = await this.sql.one<{ s: unknown }>(
        "SELECT MAX(seq) AS s FROM experiment_share_history WHERE experiment_id = $1",
        [id],
      );
      await this.sql.run(
        "INSERT INTO experiment_share_history (experiment_id, seq, shares, moved_buckets, changed_by, changed_at) VALUES ($1, $2, $3, $4, $5, $6)",
        [id, Number(seq?.s ?? 0) + 1, JSON.stringify(shares), moved, opts.actor, at],
      );
      return { experiment: await this.get(id), movedBuckets: moved };
    });
  }

  async setStatus(id: string, status: ExperimentStatus): Promise<Experiment> {
    await this.get(id);
    const at = this.now().toISOString();
    await this.sql.run(
      `UPDATE experiments SET status = $2, updated_at = $3 ${status === "stopped" ? ", end_at = COALESCE(end_at, $3)" : ""} WHERE experiment_id = $1`,
      [id, status, at],
    );
    return this.get(id);
  }

  /** Records one served score (the server calls this each time it serves a score under an experiment). */
  async logExposure(x: Exposure): Promise<void> {
    if (!Number.isFinite(x.score) || x.score < 0 || x.score > 1)
      throw new ExperimentError("EXPOSURE_SCORE", `exposure score must be in [0, 1] (got ${x.score})`);
    await this.sql.run(
      `INSERT INTO experiment_exposures (experiment_id, arm, student_key, model_name, model_version, score, served_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7)`,
      [
        x.experimentId,
        x.arm,
        x.studentKey,
        x.modelName,
        x.modelVersion,
        x.score,
        new Date(x.servedAt).toISOString(),
      ],
    );
  }

  /** Bulk form of logExposure, in one transaction. */
  async logExposures(xs: readonly Exposure[]): Promise<void> {
    await this.sql.transaction(async () => {
      for (const x of xs) await this.logExposure(x);
    });
  }
}

/** Opens the experiment store (PostgreSQL when pgUrl is non-empty, else DuckDB at dbPath). */
export async function openExperimentStore(opts: {
  pgUrl?: string | undefined;
  pgSchema?: string | undefined;
  dbPath: string;
  now?: () => Date;
}): Promise<{ experiments: ExperimentStore; opened: OpenedStore }> {
  const opened = await openSqlStore({
    pgUrl: opts.pgUrl,
    pgSchema: opts.pgSchema,
    dbPath: opts.dbPath,
    ddl: EXPERIMENT_DDL,
  });
  return { experiments: new ExperimentStore(opened.store, opts.now), opened };
}
