import { type Explanation, explain, type Factor } from "./explanation.ts";

/**
 * Rule-based mastery score from the windowed features (features/windows.ts).
 *
 * 1. Evidence bands. The nested windows 7d ⊂ 30d ⊂ 90d are split into disjoint bands of age
 *    [0,7), [7,30), [30,90) days (band sums are window differences, e.g. attempts_30d - attempts_7d).
 * 2. Decay. Evidence of age t days weighs 2^(-t/h), h = evidence_half_life_days. A band's weight is
 *    that curve's mean over the band: ω_b = h / (ln2 · (b - a)) · (2^(-a/h) - 2^(-b/h)), so the
 *    7-day band always weighs more than the 30-day one, which weighs more than the 90-day one.
 *    (h = 14: ω = 0.845, 0.422, 0.072.) Events older than 90 days carry no evidence.
 * 3. Signals, each a decay-weighted ratio Σ_b ω_b num_b / Σ_b ω_b den_b normalized to [0,1]:
 *    accuracy (correct / quiz attempts), assignment_score (mean score_pct / 100), practice_success
 *    (correct_count / attempts), video_completion (mean watch_pct / 100), hint_usage
 *    (min(1, hints per attempt / hint_rate_max)), trend (0.5 + slope / (2 · trend_slope_full),
 *    clamped; only with >= trend_min_attempts attempts in 30 days), recency
 *    (2^(-days_since_last_activity / inactivity_half_life_days)). A signal without evidence is
 *    missing and drops out.
 * 4. Combination. With W+ = sum of the positive weights of the present signals and a_s = w_s / W+
 *    (so missing signals' weight is renormalized away), the evidence score is
 *    E = Σ a_s x_s: the weighted mean of the positive signals minus the penalties (negative weights,
 *    e.g. hint_usage). E can fall below 0, never above 1.
 * 5. Shrinkage toward the prior with little evidence: λ = n / (n + shrinkage_k), n = Σ_b ω_b ·
 *    (quiz attempts + practice attempts + videos + assignments)_b, raw = prior + λ (E - prior).
 * 6. score = clamp(raw, 0, 1).
 *
 * Explanation (additive, exact): base = prior; a positive signal contributes λ a_s (x_s - prior),
 * a negative one λ a_s x_s (these sum to λ (E - prior) because the positive a_s sum to 1); when
 * the clamp acts it is a factor "clamp" with value raw and contribution score - raw.
 * Factor values are in natural units: ratios, percent (0-100), hints per attempt, slope per day,
 * days since last activity.
 */
export const RULE_SIGNALS = [
  "accuracy",
  "assignment_score",
  "practice_success",
  "video_completion",
  "hint_usage",
  "trend",
  "recency",
] as const;
export type RuleSignal = (typeof RULE_SIGNALS)[number];

export interface RuleConfig {
  prior: number;
  shrinkageK: number;
  evidenceHalfLifeDays: number;
  inactivityHalfLifeDays: number;
  weights: Record<RuleSignal, number>;
  hintRateMax: number;
  trendSlopeFull: number;
  trendMinAttempts: number;
}

/** Age bands in days; their union is the 90-day window. */
export const EVIDENCE_BANDS: readonly (readonly [number, number])[] = [
  [0, 7],
  [7, 30],
  [30, 90],
];

/**
 * Feature columns the scorer reads (names as in the features table). NULL is NaN in the batch form.
 * Per window: counts and rates; band sums are rebuilt as rate × count.
 */
export const RULE_FEATURE_COLUMNS = [
  "attempts_7d",
  "correct_7d",
  "hint_usage_rate_7d",
  "practice_attempts_7d",
  "practice_success_rate_7d",
  "videos_7d",
  "video_watch_pct_7d",
  "assignments_7d",
  "assignment_score_pct_7d",
  "attempts_30d",
  "correct_30d",
  "hint_usage_rate_30d",
  "practice_attempts_30d",
  "practice_success_rate_30d",
  "videos_30d",
  "video_watch_pct_30d",
  "assignments_30d",
  "assignment_score_pct_30d",
  "attempts_90d",
  "correct_90d",
  "hint_usage_rate_90d",
  "practice_attempts_90d",
  "practice_success_rate_90d",
  "videos_90d",
  "video_watch_pct_90d",
  "assignments_90d",
  "assignment_score_pct_90d",
  "trend_slope_30d",
  "days_since_last_activity",
] as const;
export type RuleFeatureColumn = (typeof RULE_FEATURE_COLUMNS)[number];

/** One features row (extra keys ignored; NULL or missing = no value). */
export type RuleFeatureRow = Partial<Record<RuleFeatureColumn, number | null>>;
/** Columnar features: one Float64Array per column, NaN for NULL. */
export type RuleFeatureColumns = Record<RuleFeatureColumn, Float64Array>;

export interface RuleScore {
  score: number;
  explanation: Explanation;
}

export class RuleConfigError extends Error {
  readonly code = "RULE_CONFIG";
  constructor(message: string) {
    super(message);
    this.name = "RuleConfigError";
  }
}

/** Mean of 2^(-t/h) over each band [a, b): the weight of one unit of evidence in that band. */
export function bandDecayWeights(halfLifeDays: number): Float64Array {
  const out = new Float64Array(EVIDENCE_BANDS.length);
  for (const [i, [a, b]] of EVIDENCE_BANDS.entries()) {
    out[i] = (halfLifeDays / (Math.LN2 * (b - a))) * (2 ** (-a / halfLifeDays) - 2 ** (-b / halfLifeDays));
  }
  return out;
}

const NUM_BANDS = 3;

/** The three window columns (7d, 30d, 90d) of one feature. */
type WindowCols = readonly [Float64Array, Float64Array, Float64Array];

function windowCols(cols: RuleFeatureColumns, name: string): WindowCols {
  const get = (w: string): Float64Array => {
    const c = cols[`${name}_${w}` as RuleFeatureColumn];
    if (!c) throw new RangeError(`rule scorer: missing feature column ${name}_${w}`);
    return c;
  };
  return [get("7d"), get("30d"), get("90d")];
}

/** Column references resolved once per batch plus scratch buffers reused across rows. */
interface Prepared {
  attempts: WindowCols;
  correct: WindowCols;
  hintRate: WindowCols;
  practice: WindowCols;
  practiceRate: WindowCols;
  videos: WindowCols;
  videoPct: WindowCols;
  assignments: WindowCols;
  assignmentPct: WindowCols;
  trend: Float64Array;
  days: Float64Array;
  omega: Float64Array;
  num: Float64Array;
  den: Float64Array;
  x: Float64Array;
  value: Float64Array;
  present: Uint8Array;
  /** Outputs of decayedRatio. */
  ratio: number;
  evidence: number;
  /** Outputs of partsAt. */
  factors: Factor[];
  raw: number;
  scored: boolean;
  recency: boolean;
  recencyWeight: number;
  recencyCentered: boolean;
}

function prepare(cols: RuleFeatureColumns, cfg: RuleConfig): Prepared {
  return {
    attempts: windowCols(cols, "attempts"),
    correct: windowCols(cols, "correct"),
    hintRate: windowCols(cols, "hint_usage_rate"),
    practice: windowCols(cols, "practice_attempts"),
    practiceRate: windowCols(cols, "practice_success_rate"),
    videos: windowCols(cols, "videos"),
    videoPct: windowCols(cols, "video_watch_pct"),
    assignments: windowCols(cols, "assignments"),
    assignmentPct: windowCols(cols, "assignment_score_pct"),
    trend: cols.trend_slope_30d,
    days: cols.days_since_last_activity,
    omega: bandDecayWeights(cfg.evidenceHalfLifeDays),
    num: new Float64Array(NUM_BANDS),
    den: new Float64Array(NUM_BANDS),
    x: new Float64Array(RULE_SIGNALS.length),
    value: new Float64Array(RULE_SIGNALS.length),
    present: new Uint8Array(RULE_SIGNALS.length),
    ratio: 0,
    evidence: 0,
    factors: [],
    raw: 0,
    scored: false,
    recency: false,
    recencyWeight: 0,
    recencyCentered: true,
  };
}

/**
 * Band sums from cumulative window values: band b = window b - window b-1, where a window's
 * total is count (rate === null) or count × rate (rebuilding a sum from a mean).
 */
function bandSums(count: WindowCols, rate: WindowCols | null, i: number, out: Float64Array): void {
  let prev = 0;
  for (let b = 0; b < NUM_BANDS; b++) {
    const n = nz(count[b]?.[i] as number);
    const total = rate === null ? n : n * nz(rate[b]?.[i] as number);
    // Windows are nested, so differences are >= 0; max() only absorbs float rounding of rate × count.
    out[b] = Math.max(0, total - prev);
    prev = total;
  }
}

function nz(v: number): number {
  return Number.isNaN(v) ? 0 : v;
}

function clamp01(v: number): number {
  return v < 0 ? 0 : Math.min(v, 1);
}

/** p.ratio = Σ ω num / Σ ω den (NaN when no evidence), p.evidence = Σ ω den. */
function decayedRatio(p: Prepared): void {
  let num = 0;
  let den = 0;
  for (let b = 0; b < NUM_BANDS; b++) {
    num += (p.omega[b] as number) * (p.num[b] as number);
    den += (p.omega[b] as number) * (p.den[b] as number);
  }
  p.ratio = den > 0 ? num / den : Number.NaN;
  p.evidence = den;
}

const SIG = {
  accuracy: 0,
  assignment_score: 1,
  practice_success: 2,
  video_completion: 3,
  hint_usage: 4,
  trend: 5,
  recency: 6,
} as const satisfies Record<RuleSignal, number>;

function setSignal(p: Prepared, sig: number, value: number, x: number): void {
  p.value[sig] = value;
  p.x[sig] = x;
  p.present[sig] = 1;
}

/**
 * Everything of row i's score except the recency term, into p: the present non-recency factors (in
 * signal order), the raw sum before recency (`raw`), and recency's coefficient. Recency is the last
 * signal added, so the full raw score is `raw` + the recency contribution with the same float operations.
 */
function partsAt(p: Prepared, i: number, cfg: RuleConfig): void {
  p.present.fill(0);
  p.factors = [];
  p.recency = false;
  let evidence = 0;

  // accuracy and hint usage share the attempts denominator
  bandSums(p.attempts, null, i, p.den);
  bandSums(p.correct, null, i, p.num);
  decayedRatio(p);
  evidence += p.evidence;
  if (!Number.isNaN(p.ratio)) setSignal(p, SIG.accuracy, p.ratio, clamp01(p.ratio));
  bandSums(p.attempts, p.hintRate, i, p.num);
  decayedRatio(p);
  if (!Number.isNaN(p.ratio)) setSignal(p, SIG.hint_usage, p.ratio, clamp01(p.ratio / cfg.hintRateMax));

  bandSums(p.assignments, null, i, p.den);
  bandSums(p.assignments, p.assignmentPct, i, p.num);
  decayedRatio(p);
  evidence += p.evidence;
  if (!Number.isNaN(p.ratio)) setSignal(p, SIG.assignment_score, p.ratio, clamp01(p.ratio / 100));

  bandSums(p.practice, null, i, p.den);
  bandSums(p.practice, p.practiceRate, i, p.num);
  decayedRatio(p);
  evidence += p.evidence;
  if (!Number.isNaN(p.ratio)) setSignal(p, SIG.practice_success, p.ratio, clamp01(p.ratio));

  bandSums(p.videos, null, i, p.den);
  bandSums(p.videos, p.videoPct, i, p.num);
  decayedRatio(p);
  evidence += p.evidence;
  if (!Number.isNaN(p.ratio)) setSignal(p, SIG.video_completion, p.ratio, clamp01(p.ratio / 100));

  const slope = p.trend[i] as number;
  if (!Number.isNaN(slope) && nz(p.attempts[1][i] as number) >= cfg.trendMinAttempts) {
    setSignal(p, SIG.trend, slope, clamp01(0.5 + slope / (2 * cfg.trendSlopeFull)));
  }
  const days = p.days[i] as number;
  if (!Number.isNaN(days))
    setSignal(p, SIG.recency, days, 2 ** (-Math.max(0, days) / cfg.inactivityHalfLifeDays));

  let wPos = 0;
  for (let k = 0; k < RULE_SIGNALS.length; k++) {
    const w = cfg.weights[RULE_SIGNALS[k] as RuleSignal];
    if (p.present[k] && w > 0) wPos += w;
  }
  const prior = cfg.prior;
  p.raw = prior;
  p.scored = wPos !== 0;
  if (!p.scored) return;

  const lambda = evidence / (evidence + cfg.shrinkageK);
  for (let k = 0; k < RULE_SIGNALS.length; k++) {
    if (!p.present[k]) continue;
    const name = RULE_SIGNALS[k] as RuleSignal;
    const w = cfg.weights[name];
    if (w === 0) continue;
    const a = w / wPos;
    if (k === SIG.recency) {
      p.recency = true;
      p.recencyWeight = lambda * a;
      p.recencyCentered = w > 0;
      continue;
    }
    const x = p.x[k] as number;
    const contribution = w > 0 ? lambda * a * (x - prior) : lambda * a * x;
    p.raw += contribution;
    p.factors.push({ name, value: p.value[k] as number, contribution });
  }
}

/** Recency's term of the raw score at `days` since the last activity (the last signal of scoreAt). */
function recencyTerm(
  weight: number,
  centered: boolean,
  prior: number,
  days: number,
  halfLifeDays: number,
): number {
  const x = 2 ** (-Math.max(0, days) / halfLifeDays);
  return centered ? weight * (x - prior) : weight * x;
}

/** Appends the clamp factor when the clamp acts; returns the score. */
function clamped(raw: number, factors: Factor[]): number {
  const score = clamp01(raw);
  if (score !== raw) factors.push({ name: "clamp", value: raw, contribution: score - raw });
  return score;
}

function scoreAt(p: Prepared, i: number, cfg: RuleConfig): RuleScore {
  partsAt(p, i, cfg);
  const prior = cfg.prior;
  const factors = p.factors;
  if (!p.scored) return { score: prior, explanation: explain(prior, factors, prior) };
  let raw = p.raw;
  if (p.recency) {
    const days = p.days[i] as number;
    const contribution = recencyTerm(
      p.recencyWeight,
      p.recencyCentered,
      prior,
      days,
      cfg.inactivityHalfLifeDays,
    );
    raw += contribution;
    factors.push({ name: "recency", value: days, contribution });
  }
  const score = clamped(raw, factors);
  return { score, explanation: explain(prior, factors, score) };
}

/**
 * What the rule-scoring job stores for a pair (issue 17 item 3): the score WITHOUT the recency term, every
 * other factor (not only the top 3), and, when recency counts, what applying it at read time needs: the
 * pair's last activity (microseconds since the epoch, exact in a double), the half-life, recency's
 * coefficient (lambda * a_recency) and the raw sum before it. `ruleScoreAt` turns it into the score as of
 * any time; as of the features snapshot's own time that is bit for bit the score scoreRuleRow gives.
 * So a pair whose features did not change needs no write when only time passes.
 */
export interface StoredRuleExplanation extends Explanation {
  recency?: StoredRecency;
}

export interface StoredRecency {
  /** The prior (the explanation's base), repeated so the score alone needs only this object. */
  prior: number;
  lastActivityUs: number;
  halfLifeDays: number;
  weight: number;
  /** True when recency is a positive signal (contribution weight * (x - prior)), else weight * x. */
  centered: boolean;
  /** The raw score (before the clamp) without the recency term. */
  raw: number;
}

function storedAt(p: Prepared, i: number, cfg: RuleConfig, lastActivityUs: Float64Array): RuleScore {
  partsAt(p, i, cfg);
  const prior = cfg.prior;
  const factors = p.factors;
  if (!p.scored) return { score: prior, explanation: explain(prior, factors, prior, ALL_FACTORS) };
  const raw = p.raw;
  const score = clamped(raw, factors);
  const explanation: StoredRuleExplanation = explain(prior, factors, score, ALL_FACTORS);
  const last = lastActivityUs[i] as number;
  if (p.recency) {
    if (Number.isNaN(last))
      throw new RangeError("rule scorer: days_since_last_activity is set but last_activity_at is NULL");
    explanation.recency = {
      prior,
      lastActivityUs: last,
      halfLifeDays: cfg.inactivityHalfLifeDays,
      weight: p.recencyWeight,
      centered: p.recencyCentered,
      raw,
    };
  }
  return { score, explanation };
}

/**
 * The score alone of ruleScoreAt (the same operations, so the same bits) from the stored recency block:
 * readers that list scores without their explanations skip building one. Without a block the score does
 * not move with time: `storedScore`.
 */
export function ruleScoreOnlyAt(
  recency: StoredRecency | undefined,
  storedScore: number,
  atUs: number,
): number {
  if (recency === undefined) return storedScore;
  const days = (atUs - recency.lastActivityUs) / DAY_US;
  const contribution = recencyTerm(
    recency.weight,
    recency.centered,
    recency.prior,
    days,
    recency.halfLifeDays,
  );
  return clamp01(recency.raw + contribution);
}

/** Every factor kept in a stored explanation (read time picks the top 3 once recency is known). */
const ALL_FACTORS = RULE_SIGNALS.length + 1;

const DAY_US = 86_400e6;

/**
 * The rule score of a stored explanation (storedAt) as of `atUs` (microseconds since the epoch): recency
 * from the stored last activity, added last as scoreAt adds it, the clamp, and the top 3 factors. The
 * days since the last activity are (atUs - lastActivityUs) / 1 day, the expression of features/windows.ts,
 * so at the snapshot's as_of this equals scoring the features row (tested bit for bit).
 */
export function ruleScoreAt(stored: StoredRuleExplanation, atUs: number): RuleScore {
  const prior = stored.base;
  const factors: Factor[] = [];
  for (const f of stored.factors) if (f.name !== "clamp") factors.push(f);
  const r = stored.recency;
  if (r === undefined)
    return { score: stored.score, explanation: explain(prior, stored.factors, stored.score) };
  const days = (atUs - r.lastActivityUs) / DAY_US;
  const contribution = recencyTerm(r.weight, r.centered, prior, days, r.halfLifeDays);
  factors.push({ name: "recency", value: days, contribution });
  const score = clamped(r.raw + contribution, factors);
  return { score, explanation: explain(prior, factors, score) };
}

/** Scores one features row. */
export function scoreRuleRow(row: RuleFeatureRow, cfg: RuleConfig): RuleScore {
  const cols = {} as RuleFeatureColumns;
  for (const c of RULE_FEATURE_COLUMNS) {
    const v = row[c];
    cols[c] = Float64Array.of(v === null || v === undefined ? Number.NaN : v);
  }
  return scoreAt(prepare(cols, cfg), 0, cfg);
}

/**
 * Scores `n` rows given column-wise. Same arithmetic as scoreRuleRow (one shared function), so
 * batch and single-row results are identical. `onRow` receives each result (e.g. to serialize it)
 * so the caller need not keep a million explanation objects alive.
 */
export function scoreRuleColumns(
  cols: RuleFeatureColumns,
  n: number,
  cfg: RuleConfig,
  onRow: (i: number, r: RuleScore) => void,
): Float64Array {
  const scores = new Float64Array(n);
  const p = prepare(cols, cfg);
  for (let i = 0; i < n; i++) {
    const r = scoreAt(p, i, cfg);
    scores[i] = r.score;
    onRow(i, r);
  }
  return scores;
}

/**
 * Scores rows [from, to) of the columns (a worker thread's share of a batch); same arithmetic as
 * scoreRuleColumns. `onRow` receives the row index into the columns.
 */
export function scoreRuleRange(
  cols: RuleFeatureColumns,
  from: number,
  to: number,
  cfg: RuleConfig,
  onRow: (i: number, r: RuleScore) => void,
): void {
  const p = prepare(cols, cfg);
  for (let i = from; i < to; i++) onRow(i, scoreAt(p, i, cfg));
}

/**
 * The stored form (StoredRuleExplanation: the score without recency, every factor, what read time needs)
 * of rows [from, to); `lastActivityUs` holds each row's last_activity_at in microseconds (NaN for NULL).
 */
export function storedRuleRange(
  cols: RuleFeatureColumns,
  lastActivityUs: Float64Array,
  from: number,
  to: number,
  cfg: RuleConfig,
  onRow: (i: number, r: RuleScore) => void,
): void {
  const p = prepare(cols, cfg);
  for (let i = from; i < to; i++) onRow(i, storedAt(p, i, cfg, lastActivityUs));
}

/** The stored form of one features row with its last activity (microseconds since the epoch; NaN = none). */
export function storedRuleRow(row: RuleFeatureRow, lastActivityUs: number, cfg: RuleConfig): RuleScore {
  const cols = {} as RuleFeatureColumns;
  for (const c of RULE_FEATURE_COLUMNS) {
    const v = row[c];
    cols[c] = Float64Array.of(v === null || v === undefined ? Number.NaN : v);
  }
  return storedAt(prepare(cols, cfg), 0, cfg, Float64Array.of(lastActivityUs));
}

/**
 * Validates a parsed rule-weights document (snake_case keys as in config/rule-weights.yaml) and
 * returns the typed config. Unknown keys are errors so a typo never silently falls back to a default.
 */
export function parseRuleConfig(doc: unknown, source = "rule-weights"): RuleConfig {
  const at = (path: string): string => `${source}: ${path}`;
  const obj = record(doc, at("(top level)"));
  unknownKeys(
    obj,
    [
      "prior",
      "shrinkage_k",
      "evidence_half_life_days",
      "inactivity_half_life_days",
      "weights",
      "normalization",
    ],
    at("(top level)"),
  );
  const weightsDoc = record(obj.weights, at("weights"));
  unknownKeys(weightsDoc, RULE_SIGNALS, at("weights"));
  const weights = {} as Record<RuleSignal, number>;
  for (const sig of RULE_SIGNALS) weights[sig] = num(weightsDoc[sig], at(`weights.${sig}`));
  if (!RULE_SIGNALS.some((sig) => weights[sig] > 0)) {
    throw new RuleConfigError(`${at("weights")}: at least one weight must be > 0 (all are <= 0)`);
  }
  const norm = record(obj.normalization, at("normalization"));
  unknownKeys(norm, ["hint_rate_max", "trend_slope_full", "trend_min_attempts"], at("normalization"));
  return {
    prior: num(obj.prior, at("prior"), 0, 1),
    shrinkageK: num(obj.shrinkage_k, at("shrinkage_k"), 0),
    evidenceHalfLifeDays: num(obj.evidence_half_life_days, at("evidence_half_life_days"), 0, Infinity, true),
    inactivityHalfLifeDays: num(
      obj.inactivity_half_life_days,
      at("inactivity_half_life_days"),
      0,
      Infinity,
      true,
    ),
    weights,
    hintRateMax: num(norm.hint_rate_max, at("normalization.hint_rate_max"), 0, Infinity, true),
    trendSlopeFull: num(norm.trend_slope_full, at("normalization.trend_slope_full"), 0, Infinity, true),
    trendMinAttempts: num(norm.trend_min_attempts, at("normalization.trend_min_attempts"), 0),
  };
}

function record(v: unknown, where: string): Record<string, unknown> {
  if (typeof v !== "object" || v === null || Array.isArray(v)) {
    throw new RuleConfigError(`${where} must be a mapping of keys to values (got ${JSON.stringify(v)})`);
  }
  return v as Record<string, unknown>;
}

function unknownKeys(obj: Record<string, unknown>, allowed: readonly string[], where: string): void {
  for (const k of Object.keys(obj)) {
    if (!allowed.includes(k)) {
      throw new RuleConfigError(`${where}: unknown key "${k}"; allowed keys are ${allowed.join(", ")}`);
    }
  }
}

/** A finite number in [min, max] (or (min, max] when exclusiveMin). */
function num(v: unknown, where: string, min = -Infinity, max = Infinity, exclusiveMin = false): number {
  if (v === undefined) throw new RuleConfigError(`${where} is missing; add it (a number)`);
  const tooLow = typeof v === "number" && (exclusiveMin ? v <= min : v < min);
  if (typeof v !== "number" || !Number.isFinite(v) || tooLow || v > max) {
    const bounds: string[] = [];
    if (Number.isFinite(min)) bounds.push(`${exclusiveMin ? ">" : ">="} ${min}`);
    if (Number.isFinite(max)) bounds.push(`<= ${max}`);
    throw new RuleConfigError(
      `${where} must be a finite number${bounds.length ? ` ${bounds.join(" and ")}` : ""} (got ${JSON.stringify(v)})`,
    );
  }
  return v;
}
