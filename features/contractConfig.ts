/**
 * Settings of the event contract that cannot be constants of the JSON Schema: the plausible range
 * of event timestamps. Read once per process from config/events.yaml, with environment variables
 * over it:
 *   MASTERY_EVENT_TIME_MIN     earliest accepted timestamp (ISO 8601 with offset; default 2000-01-01T00:00:00Z)
 *   MASTERY_EVENT_MAX_FUTURE   how far after the time an event is received its timestamp may be
 *                              (30s, 15m, 12h, 1d or a number of seconds; default 1d)
 */
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parse as parseYaml } from "yaml";

/** The plausible range of event timestamps, in epoch microseconds (UTC). */
export interface TimeRange {
  /** Timestamps before this are rejected. */
  minUs: number;
  /** Timestamps later than the receive time plus this are rejected. */
  maxFutureUs: number;
}

/** The range applied to one batch or file: fixed bounds computed from a TimeRange and a receive time. */
export interface TimeBounds {
  minUs: number;
  maxUs: number;
  /** How the maximum was derived, for messages ("1 day"). */
  futureText: string;
}

export const DEFAULT_TIME_RANGE: TimeRange = {
  minUs: Date.UTC(2000, 0, 1) * 1000,
  maxFutureUs: 86_400 * 1e6,
};

export const DEFAULT_EVENTS_CONFIG_PATH = join(
  dirname(fileURLToPath(import.meta.url)),
  "..",
  "config",
  "events.yaml",
);

export class ContractConfigError extends Error {
  readonly code = "CONTRACT_CONFIG";
  constructor(message: string) {
    super(message);
    this.name = "ContractConfigError";
  }
}

const UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400 };

/** "1d" / "12h" / "30m" / "45s" / "3600" (seconds) -> microseconds; undefined when not a duration. */
export function parseDurationUs(text: string | number): number | undefined {
  if (typeof text === "number") return Number.isFinite(text) && text >= 0 ? text * 1e6 : undefined;
  const m = /^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$/.exec(text);
  if (!m) return undefined;
  return Number(m[1]) * (UNITS[m[2] || "s"] ?? 1) * 1e6;
}

/** "1 day", "12 hours", "90 seconds": how a duration reads in a message. */
export function durationText(us: number): string {
  const s = us / 1e6;
  const unit = (n: number, name: string) => `${n} ${name}${n === 1 ? "" : "s"}`;
  if (s % 86_400 === 0) return unit(s / 86_400, "day");
  if (s % 3600 === 0) return unit(s / 3600, "hour");
  if (s % 60 === 0) return unit(s / 60, "minute");
  return unit(s, "second");
}

const ISO_WITH_OFFSET = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

function parseMin(value: unknown, where: string): number {
  const text = value instanceof Date ? value.toISOString() : String(value);
  const ms = Date.parse(text);
  if (!ISO_WITH_OFFSET.test(text) || !Number.isFinite(ms))
    throw new ContractConfigError(
      `${where} must be an ISO 8601 date-time with offset, e.g. 2000-01-01T00:00:00Z (got ${JSON.stringify(text)})`,
    );
  return ms * 1000;
}

function parseFuture(value: unknown, where: string): number {
  const us = typeof value === "number" || typeof value === "string" ? parseDurationUs(value) : undefined;
  if (us === undefined)
    throw new ContractConfigError(
      `${where} must be a duration such as 1d, 12h, 30m, 45s or a number of seconds (got ${JSON.stringify(value)})`,
    );
  return us;
}

/** The range from config/events.yaml (if present) and the environment, over the defaults. */
export function loadTimeRange(
  env: NodeJS.ProcessEnv = process.env,
  path: string = DEFAULT_EVENTS_CONFIG_PATH,
): TimeRange {
  let file: Record<string, unknown> = {};
  let text: string | undefined;
  try {
    text = readFileSync(path, "utf8");
  } catch {
    text = undefined; // no file: defaults and environment only
  }
  if (text !== undefined) {
    try {
      file = (parseYaml(text) ?? {}) as Record<string, unknown>;
    } catch (err) {
      throw new ContractConfigError(`${path}: not valid YAML (${(err as Error).message.split("\n")[0]})`);
    }
  }
  const range = { ...DEFAULT_TIME_RANGE };
  if (file.timestamp_min !== undefined) range.minUs = parseMin(file.timestamp_min, `${path}: timestamp_min`);
  if (file.timestamp_max_future !== undefined)
    range.maxFutureUs = parseFuture(file.timestamp_max_future, `${path}: timestamp_max_future`);
  const envMin = env.MASTERY_EVENT_TIME_MIN;
  if (envMin !== undefined && envMin !== "") range.minUs = parseMin(envMin, "MASTERY_EVENT_TIME_MIN");
  const envFuture = env.MASTERY_EVENT_MAX_FUTURE;
  if (envFuture !== undefined && envFuture !== "")
    range.maxFutureUs = parseFuture(envFuture, "MASTERY_EVENT_MAX_FUTURE");
  return range;
}

let configured: TimeRange | undefined;

/** loadTimeRange() once per process. */
export function configuredTimeRange(): TimeRange {
  configured ??= loadTimeRange();
  return configured;
}

/** The bounds for events received at `receivedAtMs` (epoch ms). */
export function timeBounds(range: TimeRange, receivedAtMs: number): TimeBounds {
  return {
    minUs: range.minUs,
    maxUs: Math.floor(receivedAtMs) * 1000 + range.maxFutureUs,
    futureText: durationText(range.maxFutureUs),
  };
}
