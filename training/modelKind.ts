import type { Explanation } from "../models/explanation.ts";
import { type BinaryMetrics, binaryMetrics } from "../models/metrics.ts";
import type { ResponseLog } from "./responses.ts";

/**
 * The one contract every model kind implements (rule, bkt, elo, gbt, mlp, blend). The table of kinds is
 * training/kinds.ts (one file per kind under training/kinds/); nothing registers itself on import.
 *
 * A kind makes models: `create(params)` gives an unfitted model, `fromJSON(json)` a fitted one from its
 * model.json (validated: anything malformed throws ModelJsonError). A model
 *  - fits on a response log with a seed (same log, params and seed: the same model.json),
 *  - predicts online: for every row of a log, P(correct) from the same student's earlier rows only,
 *  - scores (student, topic) pairs from the student's attempts so far, each score with an explanation
 *    (base + top factors + rest === score, in probability space),
 *  - writes its model.json (toJSON, with "kind", "fitParams" and "seed", which the registry records).
 * Predicting, scoring or serialising before fit throws ModelNotFittedError. Metrics go through
 * evaluateModel (auc, rmse, logloss, ece, n).
 */

/** One quiz attempt of a student, in replay order (ts, event_id). */
export interface Attempt {
  topicId: string;
  questionId: string | null;
  correct: boolean;
  /** Epoch milliseconds of the attempt: required by time-aware models (trained with time=COL). */
  timeMs?: number;
}

export interface TopicScore {
  score: number;
  explanation: Explanation;
  /** Kind-specific detail (the blend: per-source logits and the GBT's top TreeSHAP features). */
  detail?: unknown;
}

export interface FitOptions {
  seed: number;
  /** Compute threads (BKT EM workers, GBT histogram threads); default 1. */
  threads?: number;
  onProgress?: (stage: string, done: number, total: number) => void;
}

/** JSON-safe training parameters of a model (what retraining reuses). */
export type KindParams = { [key: string]: unknown };

export interface KindModel {
  readonly kind: string;
  readonly fitted: boolean;
  /** The parameters this model was (or will be) fitted with, defaults filled in. */
  readonly params: KindParams;
  /** Seed of the fit (undefined before fit). */
  readonly seed: number | undefined;
  fit(log: ResponseLog, opts: FitOptions): Promise<this>;
  predictLog(log: ResponseLog): Float64Array;
  /** `nowMs`: the scoring time (time-aware models place the virtual attempt there; default: the clock). */
  scoreTopics(attempts: readonly Attempt[], topics: readonly string[], nowMs?: number): TopicScore[];
  /** model.json: { kind, fitParams, seed, ... } (fitParams: what retraining reuses; the registry records both). */
  toJSON(): { kind: string; fitParams: KindParams; seed: number; [key: string]: unknown };
}

/** How serving scores a kind: from the stored per-(student, topic) BKT/Elo state, or from the attempts. */
export type ServedFrom = "bkt-state" | "elo-state" | "attempts";

export interface ModelKind {
  readonly kind: string;
  /** One line for `--help` and error messages. */
  readonly summary: string;
  /** score_source in student_mastery / GET /mastery. */
  readonly scoreSource: "rule_based" | "bkt" | "elo" | "ml" | "blend";
  readonly servedFrom: ServedFrom;
  /** Whether `mastery onnx export` supports the kind. */
  readonly onnx: boolean;
  readonly defaults: KindParams;
  create(params?: KindParams): KindModel;
  fromJSON(json: unknown): KindModel;
}

export class ModelKindError extends Error {
  readonly code: string = "MODEL_KIND";
  constructor(message: string) {
    super(message);
    this.name = "ModelKindError";
  }
}

/** Predict / score / toJSON called on a model that was never fitted nor loaded. */
export class ModelNotFittedError extends ModelKindError {
  override readonly code = "NOT_FITTED";
  constructor(kind: string, what: string) {
    super(
      `${kind} model: ${what} needs a fitted model; call fit(log, { seed }) first or load one with fromJSON(model.json)`,
    );
    this.name = "ModelNotFittedError";
  }
}

/** model.json that is not a valid model of the kind. */
export class ModelJsonError extends ModelKindError {
  override readonly code = "MODEL_JSON";
  constructor(kind: string, problem: string) {
    super(`${kind} model.json is invalid: ${problem}; retrain it with "mastery train ${kind}"`);
    this.name = "ModelJsonError";
  }
}

/** The object form of a model.json, or ModelJsonError. */
export function jsonObject(json: unknown, kind: string): Record<string, unknown> {
  if (typeof json !== "object" || json === null || Array.isArray(json))
    throw new ModelJsonError(kind, `expected a JSON object, got ${json === null ? "null" : typeof json}`);
  const o = json as Record<string, unknown>;
  if (o.kind !== kind) throw new ModelJsonError(kind, `"kind" is ${JSON.stringify(o.kind)}, not "${kind}"`);
  return o;
}

/** Wraps a parser's own error (BktError, MlpJsonError, TypeError ...) as ModelJsonError. */
export function parseOrThrow<T>(kind: string, parse: () => T): T {
  try {
    return parse();
  } catch (err) {
    if (err instanceof ModelKindError) throw err;
    throw new ModelJsonError(kind, (err as Error).message);
  }
}

/** The seed stored in model.json (0 when absent in files written before the contract). */
export function seedOf(o: Record<string, unknown>): number {
  const s = o.seed;
  return typeof s === "number" && Number.isInteger(s) ? s : 0;
}

/** The fit parameters stored in model.json ("fitParams") merged over the kind's defaults. */
export function paramsOf(o: Record<string, unknown>, defaults: KindParams): KindParams {
  const p = o.fitParams;
  return { ...defaults, ...(typeof p === "object" && p !== null && !Array.isArray(p) ? p : {}) };
}

/** Online next-response metrics of a fitted model on `log`. */
export function evaluateModel(model: KindModel, log: ResponseLog): BinaryMetrics {
  const p = model.predictLog(log);
  if (p.length !== log.n)
    throw new ModelKindError(`${model.kind} model returned ${p.length} predictions for ${log.n} rows`);
  return binaryMetrics(log.correct, p);
}

/** The five registry metrics (auc, rmse, logloss, ece, n) as a plain record. */
export function registryMetrics(m: BinaryMetrics): { [key: string]: number } {
  return { auc: m.auc, rmse: m.rmse, logloss: m.logloss, ece: m.ece, n: m.n };
}

/**
 * An explanation in probability space from attributions in another space (GBT margin, MLP logit) that
 * sum to value - baseValue: base = the probability at the base, each factor's contribution is its
 * attribution rescaled by (score - base) / (value - baseValue), and `rest` makes the sum exact.
 */
export function rescaledExplanation(
  names: readonly string[],
  x: ArrayLike<number>,
  attributions: ArrayLike<number>,
  base: number,
  score: number,
  top = 3,
): Explanation {
  let total = 0;
  for (let i = 0; i < attributions.length; i++) total += attributions[i]!;
  const scale = Math.abs(total) > 1e-12 ? (score - base) / total : 0;
  const order = Array.from({ length: attributions.length }, (_, i) => i).sort(
    (a, b) => Math.abs(attributions[b]!) - Math.abs(attributions[a]!) || a - b,
  );
  const factors = order.slice(0, top).map((i) => ({
    name: names[i]!,
    label: readableFeature(names[i]!),
    value: Number.isFinite(x[i]!) ? x[i]! : Number.NaN,
    contribution: attributions[i]! * scale,
  }));
  let shown = 0;
  for (const f of factors) shown += f.contribution;
  return { base, factors, rest: score - base - shown, score };
}

const WINDOW_WORDS: Record<string, string> = { "5": "last 5", "20": "last 20", all: "all" };

/** A readable name for an attempt feature ("skill_accuracy_20" -> "topic accuracy (last 20)"). */
export function readableFeature(name: string): string {
  const m = /^(skill|overall)_(attempts|correct|accuracy)_(5|20|all)$/.exec(name);
  if (m !== null) return `${m[1] === "skill" ? "topic" : "overall"} ${m[2]} (${WINDOW_WORDS[m[3]!]})`;
  const fixed: Record<string, string> = {
    skill_last_correct: "last answer on the topic correct",
    skill_streak: "correct streak on the topic",
    overall_last_correct: "last answer correct",
    item_attempts_before: "tries of this question",
    item_last_correct: "last try of this question correct",
    bkt_p_mastery: "BKT P(mastered)",
    bkt_p_correct: "BKT P(correct)",
    elo_p_correct: "Elo P(correct)",
    elo_ability: "Elo ability",
    elo_skill_ability: "Elo topic ability",
    elo_difficulty: "question difficulty",
    item_mean: "question mean accuracy",
    item_count: "question answer count",
    skill_mean: "topic mean accuracy",
    skill_count: "topic answer count",
    rule_accuracy: "smoothed topic accuracy",
  };
  return fixed[name] ?? name.replaceAll("_", " ");
}
