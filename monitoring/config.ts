/**
 * The drift/retrain configuration (config/drift.yaml): defaults, YAML loading and validation.
 * Every key is optional; a wrong type or an unknown key is an error naming the key and the fix.
 */
import { existsSync, readFileSync } from "node:fs";
import { parse } from "yaml";
import type { Correction } from "../models/drift.ts";

export type SegmentDimension = "topic" | "school" | "grade";
/** event_source: the mix of event `type:source` in the window's raw_events (a new source shows here). */
export type CategoricalName = "topic_id" | "school_id" | "grade" | "event_source";

export interface DriftConfig {
  features: string[];
  categoricals: CategoricalName[];
  scores: boolean;
  segments: SegmentDimension[];
  /**
   * activeDays: only (student, topic) snapshots with activity in the `activeDays` before their as_of
   * are compared (the active population; inactive pairs' windowed features are empty and their
   * share grows with the data's age, which is not drift). 0 compares every row.
   */
  windows: { currentDays: number; referenceDays: number; snapshot: string | null; activeDays: number };
  psi: { bins: number; warn: number; alert: number };
  /**
   * Effect-size floors next to PSI, in excess of their sampling noise: Wasserstein-1 / sd(reference)
   * minus sqrt(1/n + 1/m) (numeric), Jensen-Shannon divergence minus (k - 1)(1/n + 1/m) / (8 ln 2)
   * (categorical). A comparison alerts when significant AND (PSI excess >= psi.alert OR this
   * excess >= its alert floor).
   */
  effect: { wasserstein: number; js: number };
  test: { correction: Correction; alpha: number; minRows: number };
  rule: { minFeatures: number; minSegments: number; keyFeatures: string[] };
  performance: {
    windowDays: number;
    horizonDays: number;
    minLabels: number;
    maxAucDrop: number;
    maxLoglossIncrease: number;
    maxEce: number;
  };
  retrain: {
    model: string;
    trainDays: number;
    holdoutDays: number;
    onDrift: boolean;
    onDecay: boolean;
    lockKey: string;
    lockTtlMs: number;
  };
}

export const DEFAULT_DRIFT_CONFIG: DriftConfig = {
  features: [
    "accuracy_7d",
    "accuracy_30d",
    "avg_time_per_question_7d",
    "avg_time_per_question_30d",
    "hint_usage_rate_30d",
    "attempts_7d",
    "attempts_30d",
    "practice_success_rate_30d",
    "video_watch_pct_30d",
    "assignment_score_pct_30d",
    "active_days_30d",
    "trend_slope_30d",
    "days_since_last_activity",
  ],
  categoricals: ["topic_id", "school_id", "grade", "event_source"],
  scores: true,
  segments: ["topic", "school", "grade"],
  windows: { currentDays: 7, referenceDays: 28, snapshot: null, activeDays: 7 },
  psi: { bins: 10, warn: 0.1, alert: 0.25 },
  effect: { wasserstein: 0.2, js: 0.1 },
  test: { correction: "bh", alpha: 0.05, minRows: 30 },
  rule: { minFeatures: 2, minSegments: 1, keyFeatures: ["accuracy_7d", "score.blend"] },
  performance: {
    windowDays: 7,
    horizonDays: 7,
    minLabels: 200,
    maxAucDrop: 0.03,
    maxLoglossIncrease: 0.03,
    maxEce: 0.08,
  },
  retrain: {
    model: "mastery",
    trainDays: 56,
    holdoutDays: 7,
    onDrift: true,
    onDecay: true,
    lockKey: "mastery-retrain",
    lockTtlMs: 600_000,
  },
};

export class DriftConfigError extends Error {
  readonly code = "DRIFT_CONFIG";
  constructor(message: string) {
    super(message);
    this.name = "DriftConfigError";
  }
}

type Section = Record<string, unknown>;

function isRecord(x: unknown): x is Section {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

function mergeSection<T extends object>(base: T, raw: unknown, path: string): T {
  if (raw === undefined || raw === null) return { ...base };
  if (!isRecord(raw)) throw new DriftConfigError(`${path} must be a mapping (got ${JSON.stringify(raw)})`);
  const out: Section = { ...(base as Section) };
  for (const [k, v] of Object.entries(raw)) {
    if (!(k in base))
      throw new DriftConfigError(`${path}.${k} is not a known key; known: ${Object.keys(base).join(", ")}`);
    const want = (base as Section)[k];
    if (Array.isArray(want)) {
      if (!Array.isArray(v) || v.some((s) => typeof s !== "string"))
        throw new DriftConfigError(`${path}.${k} must be a list of strings (got ${JSON.stringify(v)})`);
    } else if (want === null) {
      if (v !== null && typeof v !== "string")
        throw new DriftConfigError(`${path}.${k} must be a string or null (got ${JSON.stringify(v)})`);
    } else if (typeof v !== typeof want) {
      throw new DriftConfigError(`${path}.${k} must be a ${typeof want} (got ${JSON.stringify(v)})`);
    }
    out[k] = v;
  }
  return out as T;
}

function positive(x: number, path: string, integer = false): void {
  if (!(x > 0) || (integer && !Number.isInteger(x)))
    throw new DriftConfigError(`${path} must be a positive ${integer ? "integer" : "number"} (got ${x})`);
}

/** Merges a parsed YAML document over the defaults and validates it. */
export function parseDriftConfig(doc: unknown): DriftConfig {
  const raw: Section = doc === undefined || doc === null ? {} : isRecord(doc) ? doc : {};
  if (doc !== undefined && doc !== null && !isRecord(doc))
    throw new DriftConfigError("the drift config must be a YAML mapping (see config/drift.yaml)");
  const top = mergeSection(
    {
      features: DEFAULT_DRIFT_CONFIG.features,
      categoricals: DEFAULT_DRIFT_CONFIG.categoricals as string[],
      scores: DEFAULT_DRIFT_CONFIG.scores,
      segments: DEFAULT_DRIFT_CONFIG.segments as string[],
      windows: {},
      psi: {},
      effect: {},
      test: {},
      rule: {},
      performance: {},
      retrain: {},
    },
    Object.fromEntries(
      Object.entries(raw).map(([k, v]) => [
        k,
        ["windows", "psi", "effect", "test", "rule", "performance", "retrain"].includes(k) ? {} : v,
      ]),
    ),
    "drift",
  );
  const cfg: DriftConfig = {
    features: top.features,
    categoricals: top.categoricals as CategoricalName[],
    scores: top.scores,
    segments: top.segments as SegmentDimension[],
    windows: mergeSection(DEFAULT_DRIFT_CONFIG.windows, raw.windows, "windows"),
    psi: mergeSection(DEFAULT_DRIFT_CONFIG.psi, raw.psi, "psi"),
    effect: mergeSection(DEFAULT_DRIFT_CONFIG.effect, raw.effect, "effect"),
    test: mergeSection(DEFAULT_DRIFT_CONFIG.test, raw.test, "test"),
    rule: mergeSection(DEFAULT_DRIFT_CONFIG.rule, raw.rule, "rule"),
    performance: mergeSection(DEFAULT_DRIFT_CONFIG.performance, raw.performance, "performance"),
    retrain: mergeSection(DEFAULT_DRIFT_CONFIG.retrain, raw.retrain, "retrain"),
  };
  for (const c of cfg.categoricals)
    if (!["topic_id", "school_id", "grade", "event_source"].includes(c))
      throw new DriftConfigError(
        `categoricals: "${c}" is not one of topic_id, school_id, grade, event_source`,
      );
  for (const s of cfg.segments)
    if (!["topic", "school", "grade"].includes(s))
      throw new DriftConfigError(`segments: "${s}" is not one of topic, school, grade`);
  if (!["bonferroni", "bh", "none"].includes(cfg.test.correction))
    throw new DriftConfigError(
      `test.correction must be bonferroni, bh or none (got "${cfg.test.correction}")`,
    );
  if (!(cfg.test.alpha > 0 && cfg.test.alpha < 1))
    throw new DriftConfigError(`test.alpha must be in (0, 1) (got ${cfg.test.alpha})`);
  if (!(cfg.psi.warn > 0 && cfg.psi.alert >= cfg.psi.warn))
    throw new DriftConfigError(
      `psi: need 0 < warn <= alert (got warn ${cfg.psi.warn}, alert ${cfg.psi.alert})`,
    );
  positive(cfg.psi.bins, "psi.bins", true);
  if (cfg.psi.bins < 2) throw new DriftConfigError(`psi.bins must be >= 2 (got ${cfg.psi.bins})`);
  positive(cfg.test.minRows, "test.minRows", true);
  positive(cfg.windows.currentDays, "windows.currentDays");
  positive(cfg.windows.referenceDays, "windows.referenceDays");
  if (!(cfg.windows.activeDays >= 0))
    throw new DriftConfigError(
      `windows.activeDays must be >= 0 (0 = every row; got ${cfg.windows.activeDays})`,
    );
  positive(cfg.effect.wasserstein, "effect.wasserstein");
  positive(cfg.effect.js, "effect.js");
  positive(cfg.rule.minFeatures, "rule.minFeatures", true);
  positive(cfg.rule.minSegments, "rule.minSegments", true);
  positive(cfg.performance.windowDays, "performance.windowDays");
  positive(cfg.performance.horizonDays, "performance.horizonDays");
  positive(cfg.retrain.trainDays, "retrain.trainDays");
  positive(cfg.retrain.holdoutDays, "retrain.holdoutDays");
  positive(cfg.retrain.lockTtlMs, "retrain.lockTtlMs", true);
  for (const f of cfg.features)
    if (!/^[a-z_][a-z0-9_]*$/.test(f))
      throw new DriftConfigError(`features: "${f}" is not a column name of the features table`);
  return cfg;
}

/** Reads a YAML file (default config/drift.yaml; the defaults when that file is absent). */
export function loadDriftConfig(path?: string): DriftConfig {
  const file = path ?? "config/drift.yaml";
  if (!existsSync(file)) {
    if (path !== undefined)
      throw new DriftConfigError(`--config ${path}: file not found (copy config/drift.yaml and edit it)`);
    return parseDriftConfig(undefined);
  }
  let doc: unknown;
  try {
    doc = parse(readFileSync(file, "utf8"));
  } catch (err) {
    throw new DriftConfigError(`${file} is not valid YAML: ${(err as Error).message}`);
  }
  try {
    return parseDriftConfig(doc);
  } catch (err) {
    if (err instanceof DriftConfigError) throw new DriftConfigError(`${file}: ${err.message}`);
    throw err;
  }
}
