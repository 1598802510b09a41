import { type Explanation, explain, type Factor } from "./explanation.ts";

/**
 * Rule-based mastery score from decayed sufficient statistics of a (student, topic) pair's events
 * (issue 17 item 3; docs/architecture.md "Rule evidence as decayed sufficient statistics").
 *
 * 1. Decay. Evidence of age t days weighs 2^(-t/h), h = evidence_half_life_days, with no cut-off. A pair's
 *    state holds, for every quantity the score uses, its decayed sum at a reference time R (the pair's last
 *    event L in the batch): S(R) = Σ_i 2^(-(R - t_i)/h) v_i over quiz attempts (count, correct, hints),
 *    practice (attempts, correct_count), videos (count, watch_pct) and assignments (count, score_pct).
 *    As of any T >= R every sum is the same factor c(T) = 2^(-(T - R)/h) times S(R).
 * 2. Signals, ratios of two of those sums (so the same at every T >= R, as c cancels), normalized to
 *    [0,1]: accuracy (correct / quiz attempts), assignment_score (score_pct sum / assignments / 100),
 *    practice_success (correct_count / attempts), video_completion (watch_pct sum / videos / 100),
 *    hint_usage (min(1, hints per attempt / hint_rate_max)), trend (0.5 + slope / (2 · trend_slope_full),
 *    clamped), recency (2^(-days since the last event / inactivity_half_life_days), the only signal that
 *    moves with T). A signal without evidence (a zero denominator) is missing and drops out.
 * 3. Trend: the slope of quiz correctness (0/1) on event time in days by exponentially weighted least
 *    squares (weights 2^(-(R - t_i)/h)): slope = (Sxy/W - mx Sy/W) / (Sxx/W - mx^2), mx = Sx/W, x_i = (t_i - R) / 1 day,
 *    so x <= 0 and near 0 for the evidence that counts (well conditioned whatever the epoch). Scaling every
 *    weight by c and shifting x by a constant leave the slope unchanged, so it too is decided at R. It
 *    replaces "only with >= trend_min_attempts attempts in 30 days" by: the decayed quiz attempt count at the
 *    last event is >= trend_min_attempts AND the weighted variance of the attempt times is >= 0.25 day^2 (a spread of
 *    about half a day or more; one session's answers minutes apart carry no day-scale trend, as before when
 *    all attempts on one day had no slope).
 * 4. Combination. With W+ = sum of the positive weights of the present signals and a_s = w_s / W+, a
 *    positive signal's part is a_s (x_s - prior), a penalty's (negative weight) a_s x_s.
 * 5. Shrinkage: n(T) = c(T) · n(R), n = decayed (quiz attempts + practice attempts + videos + assignments),
 *    λ(T) = n(T) / (n(T) + shrinkage_k) (0 with no evidence), raw(T) = prior + λ(T) (Σ parts + recency's part(T)),
 *    score = clamp(raw, 0, 1). As T grows the evidence fades and the score returns to the prior.
 *
 * Explanation (additive up to float rounding): base = prior; each factor contributes λ(T) times its part;
 * a clamp that acts is a factor "clamp" with value raw and contribution score - raw.
 *
 * What is stored per pair (StoredRuleState, the explanation's `rule` block) is everything above that does
 * not depend on T: prior, R, L, n(R), the parts and their sum, recency's coefficient. The score as of T is
 * computed from it (ruleScoreAt, ruleScoreOnlyAt, serving/readTimeScoreSql.ts), so a pair without new
 * events needs no write while its score moves with time. States merge (mergeRuleStates): new events after
 * R rescale the old sums, late events before R add with their own weight; fold(a ++ b) = merge(fold a, fold b).
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

/**
 * The scorer's form, hashed into the rule model version with its config (serving/ruleScoring.ts): scores of
 * another form are never mixed with these. "decayed-1" replaced the banded 7/30/90-day form; "decayed-2" has the
 * same arithmetic with the batch's sums exact and order-free (storage/ruleStateSql.ts fixed point), so the first
 * run after it is full and rows summed another way (last bits) are not mixed with a day's refolds.
 */
export const RULE_MODEL_FORM = "decayed-2";

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

/** The weighted variance of the attempt times (day^2) from which a trend is taken (module comment, 3). */
export const TREND_MIN_VARIANCE_DAYS2 = 0.25;

/**
 * A pair's state: decayed sums at ref_us (module comment). Names are the batch's SQL columns
 * (storage/ruleStateSql.ts). Times are microseconds since the epoch (exact in a double until 2255).
 */
export const RULE_STATE_COLUMNS = [
  "ref_us",
  "last_us",
  "q_n",
  "q_correct",
  "q_hints",
  "q_sx",
  "q_sxx",
  "q_sxy",
  "p_n",
  "p_correct",
  "v_n",
  "v_pct",
  "a_n",
  "a_pct",
] as const;
export type RuleStateColumn = (typeof RULE_STATE_COLUMNS)[number];
export type RuleState = Record<RuleStateColumn, number>;
/** Columnar states: one Float64Array per column. */
export type RuleStateColumns = Record<RuleStateColumn, Float64Array>;

/** One event of a pair as the scorer reads it (raw_events' columns; null or missing = no value). */
export interface RuleEvent {
  /** Event time, microseconds since the epoch. */
  tUs: number;
  type: string;
  isCorrect?: boolean | null;
  hintsUsed?: number | null;
  attempts?: number | null;
  correctCount?: number | null;
  watchPct?: number | null;
  scorePct?: number | null;
}

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

const DAY_US = 86_400e6;

/**
 * Weight of evidence at `fromUs` as of `toUs`: 2^(-((to - from) / 1 day) / h). The batch's SQL writes the
 * same expression (storage/ruleStateSql.ts), so both give the same bits.
 */
export function decayWeight(fromUs: number, toUs: number, halfLifeDays: number): number {
  return 2 ** (-((toUs - fromUs) / DAY_US) / halfLifeDays);
}

/**
 * The state of a pair's events (any order) with sums decayed to `refUs` (default: the last event), or null
 * for no events. Sums are added in the given order (floating point: another order may differ in the last bits).
 */
export function foldRuleEvents(
  events: readonly RuleEvent[],
  halfLifeDays: number,
  refUs?: number,
): RuleState | null {
  if (events.length === 0) return null;
  let last = Number.NEGATIVE_INFINITY;
  for (const e of events) if (e.tUs > last) last = e.tUs;
  const ref = refUs ?? last;
  if (ref < last)
    throw new RangeError(`rule state: the reference time (${ref}) is before the last event (${last})`);
  const s = emptyState(ref, last);
  for (const e of events) {
    const w = decayWeight(e.tUs, ref, halfLifeDays);
    switch (e.type) {
      case "quiz_attempt": {
        const x = (e.tUs - ref) / DAY_US;
        s.q_n += w;
        s.q_sx += w * x;
        s.q_sxx += w * x * x;
        if (e.isCorrect !== null && e.isCorrect !== undefined) {
          const y = e.isCorrect ? 1 : 0;
          s.q_correct += w * y;
          s.q_sxy += w * x * y;
        }
        if (e.hintsUsed !== null && e.hintsUsed !== undefined) s.q_hints += w * e.hintsUsed;
        break;
      }
      case "practice":
        if (e.attempts !== null && e.attempts !== undefined) s.p_n += w * e.attempts;
        if (e.correctCount !== null && e.correctCount !== undefined) s.p_correct += w * e.correctCount;
        break;
      case "video":
        if (e.watchPct !== null && e.watchPct !== undefined) {
          s.v_n += w;
          s.v_pct += w * e.watchPct;
        }
        break;
      case "assignment":
        if (e.scorePct !== null && e.scorePct !== undefined) {
          s.a_n += w;
          s.a_pct += w * e.scorePct;
        }
        break;
    }
  }
  return s;
}

function emptyState(refUs: number, lastUs: number): RuleState {
  return {
    ref_us: refUs,
    last_us: lastUs,
    q_n: 0,
    q_correct: 0,
    q_hints: 0,
    q_sx: 0,
    q_sxx: 0,
    q_sxy: 0,
    p_n: 0,
    p_correct: 0,
    v_n: 0,
    v_pct: 0,
    a_n: 0,
    a_pct: 0,
  };
}

/** `s` with its sums decayed to `refUs` >= s.ref_us (x shifted by the elapsed days). */
export function rebaseRuleState(s: RuleState, refUs: number, halfLifeDays: number): RuleState {
  if (refUs < s.ref_us)
    throw new RangeError(
      `rule state: cannot move back from ${s.ref_us} to ${refUs} (sums only decay forward)`,
    );
  if (refUs === s.ref_us) return { ...s };
  const c = decayWeight(s.ref_us, refUs, halfLifeDays);
  // x' = x + d: every event is d days further in the past of the new reference.
  const d = (s.ref_us - refUs) / DAY_US;
  return {
    ref_us: refUs,
    last_us: s.last_us,
    q_n: c * s.q_n,
    q_correct: c * s.q_correct,
    q_hints: c * s.q_hints,
    q_sx: c * (s.q_sx + d * s.q_n),
    q_sxx: c * (s.q_sxx + 2 * d * s.q_sx + d * d * s.q_n),
    q_sxy: c * (s.q_sxy + d * s.q_correct),
    p_n: c * s.p_n,
    p_correct: c * s.p_correct,
    v_n: c * s.v_n,
    v_pct: c * s.v_pct,
    a_n: c * s.a_n,
    a_pct: c * s.a_pct,
  };
}

/**
 * The state of the union of two pairs' event sets: both decayed to the later reference time and added.
 * New events after a's reference rescale a's sums; late events (before it) add with their own weight.
 * Equal to folding the concatenated events up to float rounding (tested to 1e-9 relative).
 */
export function mergeRuleStates(
  a: RuleState | null,
  b: RuleState | null,
  halfLifeDays: number,
): RuleState | null {
  if (a === null) return b === null ? null : { ...b };
  if (b === null) return { ...a };
  const ref = Math.max(a.ref_us, b.ref_us);
  const x = rebaseRuleState(a, ref, halfLifeDays);
  const y = rebaseRuleState(b, ref, halfLifeDays);
  const out = emptyState(ref, Math.max(a.last_us, b.last_us));
  for (const c of RULE_STATE_COLUMNS) {
    if (c === "ref_us" || c === "last_us") continue;
    out[c] = x[c] + y[c];
  }
  return out;
}

/** Bytes of an encoded state (encodeRuleState): the event count, then RULE_STATE_COLUMNS, as doubles. */
export const RULE_STATE_BYTES = (1 + RULE_STATE_COLUMNS.length) * 8;

/**
 * A state as bytes for a key-value store (the stream's learner state carries it: serving/ruleStream.ts), with
 * the number of the key's events it folds (`eventN`, so a reader can tell a state that missed events). Every
 * double is kept to the bit (little-endian IEEE 754).
 */
export function encodeRuleState(s: RuleState, eventN: number): Uint8Array {
  const out = new Uint8Array(RULE_STATE_BYTES);
  const v = new DataView(out.buffer);
  v.setFloat64(0, eventN, true);
  RULE_STATE_COLUMNS.forEach((c, i) => {
    v.setFloat64(8 * (i + 1), s[c], true);
  });
  return out;
}

/** encodeRuleState's bytes back, or null when they are not of that length (another layout). */
export function decodeRuleState(bytes: Uint8Array): { state: RuleState; eventN: number } | null {
  if (bytes.length !== RULE_STATE_BYTES) return null;
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const state = emptyState(0, 0);
  RULE_STATE_COLUMNS.forEach((c, i) => {
    state[c] = v.getFloat64(8 * (i + 1), true);
  });
  return { state, eventN: v.getFloat64(0, true) };
}

/** One factor of a stored state: its value (natural units) and its part (contribution = λ(T) · part). */
export interface StoredRuleFactor {
  name: RuleSignal;
  value: number;
  part: number;
}

/**
 * What read time needs of a pair (the stored explanation's `rule` block): the score as of any T is
 * clamp(prior + λ(T) (partSum + recencyWeight (2^(-days since lastUs / inactivityHalfLifeDays) - c0))),
 * λ(T) = n / (n + shrinkageK), n = evidence · 2^(-((T - refUs) / 1 day) / evidenceHalfLifeDays), c0 = prior
 * when `centered`, else 0.
 */
export interface StoredRuleState {
  prior: number;
  refUs: number;
  lastUs: number;
  /** n(refUs): decayed quiz attempts + practice attempts + videos + assignments. */
  evidence: number;
  shrinkageK: number;
  evidenceHalfLifeDays: number;
  inactivityHalfLifeDays: number;
  /** Σ parts of `factors`, added in signal order. */
  partSum: number;
  /** a_recency (0: recency does not count). */
  recencyWeight: number;
  /** True when recency is a positive signal (its part is a (x - prior)), else a x. */
  centered: boolean;
  /** The factors other than recency, in signal order. */
  factors: StoredRuleFactor[];
}

/** A stored rule explanation: the top 3 factors as of the run's as_of, and the `rule` block (last key). */
export interface StoredRuleExplanation extends Explanation {
  rule?: StoredRuleState;
}

function clamp01(v: number): number {
  return v < 0 ? 0 : Math.min(v, 1);
}

/** Scratch for the present signals, reused across rows of a batch. */
interface Scratch {
  x: Float64Array;
  value: Float64Array;
  present: Uint8Array;
}

function scratch(): Scratch {
  return {
    x: new Float64Array(RULE_SIGNALS.length),
    value: new Float64Array(RULE_SIGNALS.length),
    present: new Uint8Array(RULE_SIGNALS.length),
  };
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

function setSignal(p: Scratch, sig: number, value: number, x: number): void {
  p.value[sig] = value;
  p.x[sig] = x;
  p.present[sig] = 1;
}

/**
 * The T-independent part of a state's score (module comment): the stored block, or null when no signal
 * with a positive weight is present (the score is the prior at every T). Reads the state's fields through
 * `get` so the batch's columns and a single state share it.
 */
function stateBlock(
  get: (c: RuleStateColumn) => number,
  cfg: RuleConfig,
  p: Scratch,
): StoredRuleState | null {
  p.present.fill(0);
  const qN = get("q_n");
  const pN = get("p_n");
  const vN = get("v_n");
  const aN = get("a_n");
  if (qN > 0) {
    const acc = get("q_correct") / qN;
    setSignal(p, SIG.accuracy, acc, clamp01(acc));
    const hints = get("q_hints") / qN;
    setSignal(p, SIG.hint_usage, hints, clamp01(hints / cfg.hintRateMax));
  }
  if (aN > 0) {
    const pct = get("a_pct") / aN;
    setSignal(p, SIG.assignment_score, pct, clamp01(pct / 100));
  }
  if (pN > 0) {
    const rate = get("p_correct") / pN;
    setSignal(p, SIG.practice_success, rate, clamp01(rate));
  }
  if (vN > 0) {
    const pct = get("v_pct") / vN;
    setSignal(p, SIG.video_completion, pct, clamp01(pct / 100));
  }
  // The attempt count of the trend rule is the one at the last event (a state decayed further, ref > last,
  // decides as the state at its last event would; with ref = last the factor is exactly 1).
  const qNAtLast = qN / decayWeight(get("last_us"), get("ref_us"), cfg.evidenceHalfLifeDays);
  if (qN > 0 && qNAtLast >= cfg.trendMinAttempts) {
    // Weighted means, so the test and the slope do not depend on the sums' common scale c(T).
    const mx = get("q_sx") / qN;
    const varX = get("q_sxx") / qN - mx * mx;
    if (varX >= TREND_MIN_VARIANCE_DAYS2) {
      const slope = (get("q_sxy") / qN - mx * (get("q_correct") / qN)) / varX;
      setSignal(p, SIG.trend, slope, clamp01(0.5 + slope / (2 * cfg.trendSlopeFull)));
    }
  }
  const lastUs = get("last_us");
  if (Number.isFinite(lastUs)) p.present[SIG.recency] = 1;

  let wPos = 0;
  for (let k = 0; k < RULE_SIGNALS.length; k++) {
    const w = cfg.weights[RULE_SIGNALS[k] as RuleSignal];
    if (p.present[k] && w > 0) wPos += w;
  }
  if (wPos === 0) return null;
  const prior = cfg.prior;
  const factors: StoredRuleFactor[] = [];
  let partSum = 0;
  let recencyWeight = 0;
  let centered = true;
  for (let k = 0; k < RULE_SIGNALS.length; k++) {
    if (!p.present[k]) continue;
    const name = RULE_SIGNALS[k] as RuleSignal;
    const w = cfg.weights[name];
    if (w === 0) continue;
    const a = w / wPos;
    if (k === SIG.recency) {
      recencyWeight = a;
      centered = w > 0;
      continue;
    }
    const x = p.x[k] as number;
    const part = w > 0 ? a * (x - prior) : a * x;
    partSum += part;
    factors.push({ name, value: p.value[k] as number, part });
  }
  return {
    prior,
    refUs: get("ref_us"),
    lastUs,
    evidence: qN + pN + vN + aN,
    shrinkageK: cfg.shrinkageK,
    evidenceHalfLifeDays: cfg.evidenceHalfLifeDays,
    inactivityHalfLifeDays: cfg.inactivityHalfLifeDays,
    partSum,
    recencyWeight,
    centered,
    factors,
  };
}

/** λ(T) of a stored block (0 with no evidence left). */
function lambdaAt(r: StoredRuleState, atUs: number): number {
  const n = r.evidence * 2 ** (-Math.max(0, (atUs - r.refUs) / DAY_US) / r.evidenceHalfLifeDays);
  return n > 0 ? n / (n + r.shrinkageK) : 0;
}

/** Recency's part at atUs and the days since the last event. */
function recencyPart(r: StoredRuleState, atUs: number): number {
  const x = 2 ** (-Math.max(0, (atUs - r.lastUs) / DAY_US) / r.inactivityHalfLifeDays);
  return r.recencyWeight * (x - (r.centered ? r.prior : 0));
}

/**
 * The score alone as of `atUs` (microseconds since the epoch) of a stored block: the operations of
 * ruleScoreAt, so the same bits. Without a block (no signal) the score is the stored one, the prior.
 */
export function ruleScoreOnlyAt(r: StoredRuleState | undefined, storedScore: number, atUs: number): number {
  if (r === undefined) return storedScore;
  return clamp01(r.prior + lambdaAt(r, atUs) * (r.partSum + recencyPart(r, atUs)));
}

/**
 * The score and its explanation (top 3 factors) as of `atUs` of a stored block: ruleScoreAt of an explanation
 * whose `rule` is the block (serving/masteryView.ts reads a block stored as numbers without its text).
 */
export function scoreOfBlock(r: StoredRuleState, atUs: number): RuleScore {
  const lambda = lambdaAt(r, atUs);
  const rec = recencyPart(r, atUs);
  const factors: Factor[] = r.factors.map((f) => ({
    name: f.name,
    value: f.value,
    contribution: lambda * f.part,
  }));
  if (r.recencyWeight !== 0)
    factors.push({ name: "recency", value: (atUs - r.lastUs) / DAY_US, contribution: lambda * rec });
  const raw = r.prior + lambda * (r.partSum + rec);
  const score = clamp01(raw);
  if (score !== raw) factors.push({ name: "clamp", value: raw, contribution: score - raw });
  return { score, explanation: explain(r.prior, factors, score) };
}

/**
 * The rule score of a stored explanation as of `atUs` (microseconds since the epoch): from its `rule`
 * block; without one (no signal present) the stored score and explanation, which do not move.
 */
export function ruleScoreAt(stored: StoredRuleExplanation, atUs: number): RuleScore {
  const r = stored.rule;
  if (r === undefined)
    return { score: stored.score, explanation: explain(stored.base, stored.factors, stored.score) };
  return scoreOfBlock(r, atUs);
}

/**
 * What the rule-scoring job stores for a state as of `asOfUs`: the score then, its top 3 factors, and the
 * `rule` block (last key, so readers of the score alone parse only the tail: serving/masteryView.ts).
 */
function storedOf(block: StoredRuleState | null, asOfUs: number, cfg: RuleConfig): RuleScore {
  if (block === null) return { score: cfg.prior, explanation: priorRuleExplanation(cfg) };
  return storedRuleScore(block, asOfUs);
}

/**
 * The stored row of a block as of `asOfUs`: the score then, its top 3 factors and the block (last key). The
 * batch stores the block's numbers and readers render the text with this (serving/storedExplanations.ts), so
 * JSON.stringify of its explanation is byte for byte what storedRuleRow gives for the state.
 */
export function storedRuleScore(block: StoredRuleState, asOfUs: number): RuleScore {
  const at = scoreOfBlock(block, asOfUs);
  const e = at.explanation;
  // Field by field, in the explanation's order (the stored text's bytes): a spread that adds `rule` would leave
  // V8's fast path (~4-7 µs a row on every POST's rule rows).
  const explanation: StoredRuleExplanation = {
    base: e.base,
    factors: e.factors,
    rest: e.rest,
    score: e.score,
    rule: block,
  };
  return { score: at.score, explanation };
}

/** The stored form of one state as of `asOfUs`. */
export function storedRuleRow(state: RuleState, asOfUs: number, cfg: RuleConfig): RuleScore {
  return storedOf(
    stateBlock((c) => state[c], cfg, scratch()),
    asOfUs,
    cfg,
  );
}

/** A state's score and explanation as of `atUs` >= its reference time. */
export function scoreRuleState(state: RuleState, atUs: number, cfg: RuleConfig): RuleScore {
  const block = stateBlock((c) => state[c], cfg, scratch());
  if (block === null) return { score: cfg.prior, explanation: explain(cfg.prior, [], cfg.prior) };
  return scoreOfBlock(block, atUs);
}

/**
 * The stored form of rows [from, to) of columnar states as of `asOfUs` (the batch and its worker threads);
 * the same arithmetic as storedRuleRow.
 */
export function storedRuleRange(
  cols: RuleStateColumns,
  asOfUs: number,
  from: number,
  to: number,
  cfg: RuleConfig,
  onRow: (i: number, r: RuleScore) => void,
): void {
  const p = scratch();
  let i = from;
  const get = (c: RuleStateColumn): number => cols[c][i] as number;
  for (; i < to; i++) onRow(i, storedOf(stateBlock(get, cfg, p), asOfUs, cfg));
}

/**
 * What the batch stores for rows [from, to) of columnar states as of `asOfUs`: each row's block (null when no
 * signal counts: the row's score is the prior and its explanation `priorRuleExplanation`) and its score as of
 * `asOfUs` (ruleScoreOnlyAt: the bits of storedRuleRow's score). No explanation object is built: readers
 * render it from the block (storedRuleScore).
 */
export function ruleBlockRange(
  cols: RuleStateColumns,
  asOfUs: number,
  from: number,
  to: number,
  cfg: RuleConfig,
  onRow: (i: number, score: number, block: StoredRuleState | null) => void,
): void {
  const p = scratch();
  let i = from;
  const get = (c: RuleStateColumn): number => cols[c][i] as number;
  for (; i < to; i++) {
    const block = stateBlock(get, cfg, p);
    onRow(i, block === null ? cfg.prior : ruleScoreOnlyAt(block, cfg.prior, asOfUs), block);
  }
}

/** The stored explanation of a state without a block (no signal counts): the prior, at every time. */
export function priorRuleExplanation(cfg: RuleConfig): Explanation {
  return explain(cfg.prior, [], cfg.prior);
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
