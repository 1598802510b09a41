/**
 * config/schedule.yaml: when `mastery schedule` runs the daily batch and the drift/retrain checks,
 * the lock they share and where failures are reported. Every key is optional; a wrong type or an
 * unknown key is an error naming the key and the fix. `nextRunAt` is the pure clock arithmetic.
 */
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parse as parseYaml } from "yaml";
import { DEFAULT_COMPACTION } from "../storage/servingTables.ts";

export const DEFAULT_SCHEDULE = join(
  dirname(fileURLToPath(import.meta.url)),
  "..",
  "config",
  "schedule.yaml",
);

export const SCHEDULED_JOBS = ["batch", "checks"] as const;
export type ScheduledJob = (typeof SCHEDULED_JOBS)[number];

/** A time of day in UTC. */
export interface TimeOfDay {
  hour: number;
  minute: number;
}

export interface ScheduleConfig {
  batch: {
    at: TimeOfDay[];
    inbox: string | null;
    bktModel: string | null;
    eloModel: string | null;
    /**
     * The served model directory (`mastery train served --out DIR`): the batch ends with its served score
     * (serving/servedBatch.ts; a daily run scores only the students with new rows). null: no served step.
     */
    servedModel: string | null;
    full: boolean;
    /**
     * Build the 7/30/90-day features snapshot in the daily batch (true), or leave it to the checks job, its
     * only reader on the schedule (false, the default: the drift check builds it incrementally before
     * comparing). No score reads it: rule scores come from decayed evidence, BKT/Elo from the events.
     */
    features: boolean;
    /** Fold the serving tables' deltas into their bases (storage/servingTables.ts) after a run when a
     * delta holds this share of its base's rows ... */
    compactShare: number;
    /** ... or its oldest row is this many days old. */
    compactAfterDays: number;
  };
  checks: { at: TimeOfDay[]; retrain: boolean };
  lock: { key: string; ttlMs: number };
  alert: { webhooks: { url: string; secret: string }[] };
}

export class ScheduleConfigError extends Error {
  readonly code = "SCHEDULE_CONFIG";
  constructor(message: string) {
    super(message);
    this.name = "ScheduleConfigError";
  }
}

/** "HH:MM" (24 h, UTC) -> TimeOfDay. */
export function parseTimeOfDay(v: unknown, where: string): TimeOfDay {
  const m = typeof v === "string" ? /^(\d{1,2}):(\d{2})$/.exec(v) : null;
  const hour = m ? Number(m[1]) : Number.NaN;
  const minute = m ? Number(m[2]) : Number.NaN;
  if (!(hour >= 0 && hour <= 23 && minute >= 0 && minute <= 59))
    throw new ScheduleConfigError(
      `${where} must be a time "HH:MM" in UTC, 00:00 to 23:59 (got ${JSON.stringify(v)}); quote it in YAML`,
    );
  return { hour, minute };
}

function section(doc: Record<string, unknown>, key: string, allowed: string[], source: string) {
  const v = doc[key] ?? {};
  if (typeof v !== "object" || v === null || Array.isArray(v))
    throw new ScheduleConfigError(`${source}: ${key} must be a mapping (got ${JSON.stringify(v)})`);
  const s = v as Record<string, unknown>;
  for (const k of Object.keys(s))
    if (!allowed.includes(k))
      throw new ScheduleConfigError(`${source}: unknown key ${key}.${k}; allowed: ${allowed.join(", ")}`);
  return s;
}

function times(v: unknown, fallback: string[], where: string): TimeOfDay[] {
  const list = v === undefined ? fallback : Array.isArray(v) ? v : [v];
  if (list.length === 0) throw new ScheduleConfigError(`${where} needs at least one time, e.g. ["02:00"]`);
  return list.map((t, i) => parseTimeOfDay(t, `${where}[${i}]`));
}

function optString(v: unknown, where: string): string | null {
  if (v === undefined || v === null) return null;
  if (typeof v !== "string" || v === "")
    throw new ScheduleConfigError(`${where} must be a path or null (got ${JSON.stringify(v)})`);
  return v;
}

function positive(v: unknown, fallback: number, where: string): number {
  if (v === undefined || v === null) return fallback;
  if (typeof v !== "number" || !(v > 0))
    throw new ScheduleConfigError(
      `${where} must be a number > 0 (got ${JSON.stringify(v)}), e.g. ${fallback}`,
    );
  return v;
}

function bool(v: unknown, fallback: boolean, where: string): boolean {
  if (v === undefined) return fallback;
  if (typeof v !== "boolean")
    throw new ScheduleConfigError(`${where} must be true or false (got ${JSON.stringify(v)})`);
  return v;
}

/** Validates a parsed schedule.yaml; `env` supplies the webhook secrets. */
export function parseScheduleConfig(
  doc: unknown,
  env: NodeJS.ProcessEnv = process.env,
  source = "schedule",
): ScheduleConfig {
  if (doc !== null && doc !== undefined && (typeof doc !== "object" || Array.isArray(doc)))
    throw new ScheduleConfigError(`${source}: expected a mapping with batch, checks, lock, alert`);
  const d = (doc ?? {}) as Record<string, unknown>;
  for (const k of Object.keys(d))
    if (!["batch", "checks", "lock", "alert"].includes(k))
      throw new ScheduleConfigError(`${source}: unknown key ${k}; allowed: batch, checks, lock, alert`);
  const b = section(
    d,
    "batch",
    [
      "at",
      "inbox",
      "bktModel",
      "eloModel",
      "servedModel",
      "full",
      "features",
      "compactShare",
      "compactAfterDays",
    ],
    source,
  );
  const c = section(d, "checks", ["at", "retrain"], source);
  const l = section(d, "lock", ["key", "ttlMs"], source);
  const a = section(d, "alert", ["webhooks"], source);
  const key = l.key ?? "mastery-schedule";
  if (typeof key !== "string" || !/^[A-Za-z0-9_.-]+$/.test(key))
    throw new ScheduleConfigError(
      `${source}: lock.key must be letters, digits, _ . - (got ${JSON.stringify(key)})`,
    );
  const ttlMs = l.ttlMs ?? 21_600_000;
  if (typeof ttlMs !== "number" || !Number.isInteger(ttlMs) || ttlMs < 1000)
    throw new ScheduleConfigError(
      `${source}: lock.ttlMs must be an integer >= 1000 (got ${JSON.stringify(ttlMs)})`,
    );
  const hooks = a.webhooks ?? [];
  if (!Array.isArray(hooks)) throw new ScheduleConfigError(`${source}: alert.webhooks must be a list`);
  const webhooks = hooks.map((w: unknown, i) => {
    const h = (w ?? {}) as Record<string, unknown>;
    if (typeof h.url !== "string" || !/^https?:\/\//.test(h.url))
      throw new ScheduleConfigError(`${source}: alert.webhooks[${i}].url must be an http(s) URL`);
    const secretEnv = typeof h.secret_env === "string" ? h.secret_env : "MASTERY_WEBHOOK_SECRET";
    const secret = env[secretEnv];
    if (secret === undefined || secret === "")
      throw new ScheduleConfigError(
        `${source}: alert.webhooks[${i}] needs its signing secret in the environment variable ${secretEnv}`,
      );
    return { url: h.url, secret };
  });
  return {
    batch: {
      at: times(b.at, ["02:00"], `${source}: batch.at`),
      inbox: optString(b.inbox, `${source}: batch.inbox`),
      bktModel: optString(b.bktModel, `${source}: batch.bktModel`),
      eloModel: optString(b.eloModel, `${source}: batch.eloModel`),
      servedModel: optString(b.servedModel, `${source}: batch.servedModel`),
      full: bool(b.full, false, `${source}: batch.full`),
      features: bool(b.features, false, `${source}: batch.features`),
      compactShare: positive(b.compactShare, DEFAULT_COMPACTION.maxShare, `${source}: batch.compactShare`),
      compactAfterDays: positive(
        b.compactAfterDays,
        DEFAULT_COMPACTION.maxAgeDays,
        `${source}: batch.compactAfterDays`,
      ),
    },
    checks: {
      at: times(c.at, ["03:00"], `${source}: checks.at`),
      retrain: bool(c.retrain, true, `${source}: checks.retrain`),
    },
    lock: { key, ttlMs },
    alert: { webhooks },
  };
}

export function loadScheduleConfig(
  path = DEFAULT_SCHEDULE,
  env: NodeJS.ProcessEnv = process.env,
): ScheduleConfig {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new ScheduleConfigError(
      `cannot read the schedule ${path} (${(err as Error).message}); pass --config FILE or restore config/schedule.yaml`,
    );
  }
  return parseScheduleConfig(parseYaml(text), env, path);
}

/** The first of `at` (UTC times of day) strictly after `after`. */
export function nextRunAt(at: readonly TimeOfDay[], after: Date): Date {
  if (at.length === 0) throw new ScheduleConfigError("nextRunAt: give at least one time of day");
  const t = after.getTime();
  const day0 = Date.UTC(after.getUTCFullYear(), after.getUTCMonth(), after.getUTCDate());
  let best = Number.POSITIVE_INFINITY;
  for (const { hour, minute } of at) {
    let c = day0 + (hour * 60 + minute) * 60_000;
    if (c <= t) c += 86_400_000;
    if (c < best) best = c;
  }
  return new Date(best);
}
