import { BKT, type BktParams, bktStepPair } from "../models/bkt.ts";
import { Elo } from "../models/elo.ts";
import type { ResponseLog } from "./responses.ts";

/**
 * Next-response features for response logs WITHOUT timestamps (one row per attempt, each student's rows in
 * order). Row k's features come ONLY from the same student's rows before k, plus statistics learned on
 * training data (item/skill means and counts, BKT and Elo parameters) that never include row k.
 *
 * The count features follow "Best-LR" of Gervet et al. 2020 ("When is deep learning the best approach to
 * knowledge tracing?", JEDM 12(3)): prior attempts and correct answers per skill and overall, here in attempt
 * windows (the last 5, the last 20, all earlier attempts), plus item and skill difficulty (their item/skill
 * one-hot, here as smoothed mean correctness learned on train) and the BKT and Elo outputs before the row.
 */

/** Attempt windows: the last 5 and last 20 earlier attempts, and all of them. */
export const ATTEMPT_WINDOWS = [5, 20, 0] as const;
const RING = 20;

const windowName = (w: number): string => (w === 0 ? "all" : String(w));

/** Column names of the feature matrix, in order. */
export const ATTEMPT_FEATURES: readonly string[] = Object.freeze([
  ...["skill", "overall"].flatMap((scope) =>
    ATTEMPT_WINDOWS.flatMap((w) => [
      `${scope}_attempts_${windowName(w)}`,
      `${scope}_correct_${windowName(w)}`,
      `${scope}_accuracy_${windowName(w)}`,
    ]),
  ),
  "skill_last_correct",
  "skill_streak",
  "overall_last_correct",
  "item_attempts_before",
  "item_last_correct",
  "bkt_p_mastery",
  "bkt_p_correct",
  "bkt_learn",
  "bkt_guess",
  "bkt_slip",
  "elo_p_correct",
  "elo_ability",
  "elo_skill_ability",
  "elo_difficulty",
  "item_mean",
  "item_count",
  "skill_mean",
  "skill_count",
  "rule_accuracy",
]);

/**
 * Day windows of the time-aware features (the `time=COL` role): 1 hour, 1 day, 7, 30 and 90 days
 * before the row's time.
 */
export const TIME_WINDOWS: readonly { name: string; ms: number }[] = Object.freeze([
  { name: "1h", ms: 3_600_000 },
  { name: "1d", ms: 86_400_000 },
  { name: "7d", ms: 7 * 86_400_000 },
  { name: "30d", ms: 30 * 86_400_000 },
  { name: "90d", ms: 90 * 86_400_000 },
]);

/**
 * Time-aware columns, appended after ATTEMPT_FEATURES when the context has `time: true`: attempts and
 * accuracy per skill and overall in each day window (only earlier rows of the student whose time is
 * within the window before this row's time: point in time), and hours since the previous attempt on
 * the skill and overall (NaN for the first).
 */
export const TIME_FEATURES: readonly string[] = Object.freeze([
  ...["skill", "overall"].flatMap((scope) =>
    TIME_WINDOWS.flatMap((w) => [`${scope}_attempts_${w.name}`, `${scope}_accuracy_${w.name}`]),
  ),
  "skill_hours_since_last",
  "overall_hours_since_last",
]);

const WITH_TIME: readonly string[] = Object.freeze([...ATTEMPT_FEATURES, ...TIME_FEATURES]);

/** The feature columns a context produces: ATTEMPT_FEATURES, plus TIME_FEATURES when `ctx.time`. */
export function attemptFeatureNames(ctx: { time?: boolean }): readonly string[] {
  return ctx.time === true ? WITH_TIME : ATTEMPT_FEATURES;
}

/** Index of a feature column by name (throws on an unknown name, a programming error). */
export function featureIndex(name: string): number {
  const i = WITH_TIME.indexOf(name);
  if (i < 0) throw new RangeError(`unknown attempt feature "${name}"`);
  return i;
}

export class AttemptTimeError extends Error {
  readonly code = "ATTEMPT_TIME";
  constructor(message: string) {
    super(message);
    this.name = "AttemptTimeError";
  }
}

/**
 * Item and skill correctness learned on training rows, keyed by name so they apply to any log.
 * item_mean = (item correct + m * skill_mean) / (item answers + m), skill_mean likewise shrunk to the global
 * mean: the additive smoothing of target encoding (Micci-Barreca 2001), so a rare item sits near its skill.
 */
export interface ItemStats {
  smoothing: number;
  /**
   * Multiplier of the item_count / skill_count features. Training rows get statistics from (K-1)/K of the
   * training students (out of fold) while new students get them from all, so the full-data context reports
   * counts times (K-1)/K: both then see counts on the same scale (a tree threshold or an MLP's standardised
   * input learned on out-of-fold counts would otherwise meet counts 25% larger at prediction time).
   */
  countScale: number;
  globalMean: number;
  skills: Map<string, { sum: number; count: number }>;
  items: Map<string, { sum: number; count: number }>;
}

export interface ItemStatsJson {
  smoothing: number;
  countScale: number;
  globalMean: number;
  /** name -> [correct, answers] */
  skills: Record<string, [number, number]>;
  items: Record<string, [number, number]>;
}

/** Counts correct answers and answers per skill and item over the rows of `log` with rowMask[k] = 1 (all if omitted). */
export function fitItemStats(
  log: ResponseLog,
  smoothing = 5,
  rowMask?: Uint8Array,
  countScale = 1,
): ItemStats {
  const sSum = new Float64Array(log.skillNames.length);
  const sCnt = new Float64Array(log.skillNames.length);
  const iSum = new Float64Array(log.itemNames.length);
  const iCnt = new Float64Array(log.itemNames.length);
  let tot = 0;
  let cnt = 0;
  for (let k = 0; k < log.n; k++) {
    if (rowMask !== undefined && rowMask[k] !== 1) continue;
    const c = log.correct[k]!;
    const s = log.skill[k]!;
    sSum[s]! += c;
    sCnt[s]! += 1;
    const i = log.item[k]!;
    if (i >= 0) {
      iSum[i]! += c;
      iCnt[i]! += 1;
    }
    tot += c;
    cnt++;
  }
  const skills = new Map<string, { sum: number; count: number }>();
  log.skillNames.forEach((name, s) => {
    if (sCnt[s]! > 0) skills.set(name, { sum: sSum[s]!, count: sCnt[s]! });
  });
  const items = new Map<string, { sum: number; count: number }>();
  log.itemNames.forEach((name, i) => {
    if (iCnt[i]! > 0) items.set(name, { sum: iSum[i]!, count: iCnt[i]! });
  });
  return { smoothing, countScale, globalMean: cnt > 0 ? tot / cnt : 0.5, skills, items };
}

export function itemStatsToJson(st: ItemStats): ItemStatsJson {
  const skills: Record<string, [number, number]> = {};
  for (const [k, v] of st.skills) skills[k] = [v.sum, v.count];
  const items: Record<string, [number, number]> = {};
  for (const [k, v] of st.items) items[k] = [v.sum, v.count];
  return { smoothing: st.smoothing, countScale: st.countScale, globalMean: st.globalMean, skills, items };
}

export function itemStatsFromJson(j: ItemStatsJson): ItemStats {
  const toMap = (r: Record<string, [number, number]>) =>
    new Map(Object.entries(r).map(([k, [sum, count]]) => [k, { sum, count }]));
  return {
    smoothing: j.smoothing,
    countScale: j.countScale,
    globalMean: j.globalMean,
    skills: toMap(j.skills),
    items: toMap(j.items),
  };
}

/** Everything learned on training data that the features read. */
export interface AttemptContext {
  bkt: BKT;
  elo: Elo;
  itemStats: ItemStats;
  /** Append TIME_FEATURES (needs ResponseLog.time on every log the model sees). */
  time?: boolean;
}

export interface AttemptContextJson {
  bkt: ReturnType<BKT["toJSON"]>;
  elo: ReturnType<Elo["toJSON"]>;
  itemStats: ItemStatsJson;
  time?: boolean;
}

export function contextToJson(ctx: AttemptContext): AttemptContextJson {
  return {
    bkt: ctx.bkt.toJSON(),
    elo: ctx.elo.toJSON(),
    itemStats: itemStatsToJson(ctx.itemStats),
    ...(ctx.time === true ? { time: true } : {}),
  };
}

export function contextFromJson(j: AttemptContextJson): AttemptContext {
  return {
    bkt: BKT.fromJSON(j.bkt),
    elo: Elo.fromJSON(j.elo),
    itemStats: itemStatsFromJson(j.itemStats),
    ...(j.time === true ? { time: true } : {}),
  };
}

/** Lower bound: first index in [lo, hi) of `list` (indices into t, times non-decreasing) with t > x. */
function firstAfter(t: Float64Array, list: ArrayLike<number>, lo: number, hi: number, x: number): number {
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (t[list[mid]!]! > x) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

/**
 * Fills the TIME_FEATURES columns (from column `first` on) of the column-major X with n rows.
 * Point in time: row k reads only rows before it in the student's order.
 */
function fillTimeFeatures(log: ResponseLog, X: Float64Array, first: number): void {
  const t = log.time;
  if (t === undefined || t.length !== log.n)
    throw new AttemptTimeError(
      "this model uses time-aware features but the response log has no times: pass the time column (--columns ...,time=COL) or, when serving, the event timestamps",
    );
  const n = log.n;
  const nW = TIME_WINDOWS.length;
  const nUsers = log.userStart.length - 1;
  const bySkill = new Map<number, number[]>();
  const rows: number[] = [];
  for (let u = 0; u < nUsers; u++) {
    const a = log.userStart[u]!;
    const b = log.userStart[u + 1]!;
    rows.length = 0;
    for (let k = a; k < b; k++) {
      if (!Number.isFinite(t[k]!))
        throw new AttemptTimeError(
          `row ${k} of user "${log.userNames[u]}" has no valid time; every row needs one`,
        );
      if (k > a && t[k]! < t[k - 1]!)
        throw new AttemptTimeError(
          `the rows of user "${log.userNames[u]}" are not in time order (row ${k}); drop the order= role so rows are ordered by time=, or sort the file`,
        );
      rows.push(k);
    }
    // Overall: prefix sums of correctness over the user's rows.
    const pre = new Float64Array(b - a + 1);
    for (let k = a; k < b; k++) pre[k - a + 1] = pre[k - a]! + log.correct[k]!;
    bySkill.clear();
    for (let k = a; k < b; k++) {
      const s = log.skill[k]!;
      let l = bySkill.get(s);
      if (l === undefined) {
        l = [];
        bySkill.set(s, l);
      }
      l.push(k);
    }
    const skillPos = new Map<number, number>();
    const skillPre = new Map<number, Float64Array>();
    for (const [s, l] of bySkill) {
      const p = new Float64Array(l.length + 1);
      for (let j = 0; j < l.length; j++) p[j + 1] = p[j]! + log.correct[l[j]!]!;
      skillPre.set(s, p);
      skillPos.set(s, 0);
    }
    for (let k = a; k < b; k++) {
      const s = log.skill[k]!;
      const l = bySkill.get(s)!;
      const j = skillPos.get(s)!;
      skillPos.set(s, j + 1);
      const sp = skillPre.get(s)!;
      const tk = t[k]!;
      for (let w = 0; w < nW; w++) {
        const from = tk - TIME_WINDOWS[w]!.ms;
        const js = firstAfter(t, l, 0, j, from);
        const cs = j - js;
        X[(first + 2 * w) * n + k] = cs;
        X[(first + 2 * w + 1) * n + k] = cs > 0 ? (sp[j]! - sp[js]!) / cs : Number.NaN;
        const io = firstAfter(t, rows, 0, k - a, from);
        const co = k - a - io;
        X[(first + 2 * nW + 2 * w) * n + k] = co;
        X[(first + 2 * nW + 2 * w + 1) * n + k] = co > 0 ? (pre[k - a]! - pre[io]!) / co : Number.NaN;
      }
      X[(first + 4 * nW) * n + k] = j > 0 ? (tk - t[l[j - 1]!]!) / 3_600_000 : Number.NaN;
      X[(first + 4 * nW + 1) * n + k] = k > a ? (tk - t[k - 1]!) / 3_600_000 : Number.NaN;
    }
  }
}

/** A column-major feature matrix (x[r][c] at c * nRows + r), NaN = missing; the Matrix shape of models/. */
export interface AttemptFeatureMatrix {
  data: Float64Array;
  nRows: number;
  nCols: number;
  layout: "col";
  names: readonly string[];
}

/** Shrinkage of the rule-like accuracy toward the skill mean, in pseudo-answers. */
const RULE_PRIOR = 2;
const MAX_LOGIT = 30;

/**
 * Features of every row of `log` (row order kept). Online: state is per student and reset at each student's
 * first row; a row's own label is read only after its features are written.
 */
export function attemptFeatures(log: ResponseLog, ctx: AttemptContext): AttemptFeatureMatrix {
  const n = log.n;
  const names = attemptFeatureNames(ctx);
  const d = names.length;
  const X = new Float64Array(n * d);
  if (ctx.time === true) fillTimeFeatures(log, X, ATTEMPT_FEATURES.length);
  const nSkills = log.skillNames.length;
  const nItems = log.itemNames.length;
  const { itemStats: st, elo, bkt } = ctx;
  const m = st.smoothing;
  const countScale = st.countScale;

  // Per-skill constants of this log, resolved by name once.
  const bktTable = new Float64Array(nSkills * 5);
  const skillMean = new Float64Array(nSkills);
  const skillCount = new Float64Array(nSkills);
  const eloSkillIndex = new Map(elo.skillNames.map((name, c) => [name, c]));
  const unseenSkillD = elo.unseenSkillDifficulty();
  const skillD = new Float64Array(nSkills);
  for (let s = 0; s < nSkills; s++) {
    const name = log.skillNames[s]!;
    const p: BktParams = bkt.paramsFor(name);
    bktTable.set([p.prior, p.learn, p.forget, p.guess, p.slip], s * 5);
    const ss = st.skills.get(name);
    skillMean[s] = ((ss?.sum ?? 0) + m * st.globalMean) / ((ss?.count ?? 0) + m);
    skillCount[s] = ss?.count ?? 0;
    const c = eloSkillIndex.get(name);
    skillD[s] = c === undefined ? unseenSkillD : elo.skillDifficulty[c]!;
  }
  const itemSum = new Float64Array(nItems);
  const itemCount = new Float64Array(nItems);
  const itemOffset = new Float64Array(nItems);
  const eloItemIndex = new Map(elo.itemNames.map((name, i) => [name, i]));
  for (let i = 0; i < nItems; i++) {
    const name = log.itemNames[i]!;
    const is = st.items.get(name);
    itemSum[i] = is?.sum ?? 0;
    itemCount[i] = is?.count ?? 0;
    const e = eloItemIndex.get(name);
    itemOffset[i] = e === undefined ? 0 : elo.itemOffset[e]!;
  }
  const { studentA, studentB, skillA } = elo.params;

  // Per-student state; per-skill and per-item arrays carry an owner mark instead of being cleared.
  const skillOwner = new Int32Array(nSkills).fill(-1);
  const skillN = new Int32Array(nSkills);
  const skillC = new Int32Array(nSkills);
  const skillRing = new Uint8Array(nSkills * RING);
  const skillLast = new Int8Array(nSkills);
  const skillStreak = new Int32Array(nSkills);
  // BKT belief per skill as the pair (P(U), P(L)) (models/bkt.ts bktStepPair).
  const belief = new Float64Array(2 * nSkills);
  const pairTheta = new Float64Array(nSkills);
  const itemOwner = new Int32Array(nItems).fill(-1);
  const itemN = new Int32Array(nItems);
  const itemLast = new Int8Array(nItems);
  const ring = new Uint8Array(RING);
  let owner = -1;
  let allN = 0;
  let allC = 0;
  let allLast = -1;
  let theta = 0;

  // Window sums over a ring holding the most recent outcomes at positions (n-1) % RING backwards.
  const windowCorrect = (buf: Uint8Array, off: number, count: number, w: number): number => {
    const take = Math.min(count, w);
    let c = 0;
    for (let j = 1; j <= take; j++) c += buf[off + ((count - j) % RING)]!;
    return c;
  };

  for (let k = 0; k < n; k++) {
    const u = log.user[k]!;
    const s = log.skill[k]!;
    const i = log.item[k]!;
    if (u !== owner) {
      owner = u;
      allN = 0;
      allC = 0;
      allLast = -1;
      theta = 0;
    }
    if (skillOwner[s] !== u) {
      skillOwner[s] = u;
      skillN[s] = 0;
      skillC[s] = 0;
      skillLast[s] = -1;
      skillStreak[s] = 0;
      belief[2 * s] = 1 - bktTable[s * 5]!;
      belief[2 * s + 1] = bktTable[s * 5]!;
      pairTheta[s] = 0;
    }
    if (i >= 0 && itemOwner[i] !== u) {
      itemOwner[i] = u;
      itemN[i] = 0;
      itemLast[i] = -1;
    }
    let col = 0;
    const put = (v: number): void => {
      X[col * n + k] = v;
      col++;
    };
    const sn = skillN[s]!;
    for (const w of ATTEMPT_WINDOWS) {
      const a = w === 0 ? sn : Math.min(w, sn);
      const c = w === 0 ? skillC[s]! : windowCorrect(skillRing, s * RING, sn, w);
      put(a);
      put(c);
      put(a > 0 ? c / a : Number.NaN);
    }
    for (const w of ATTEMPT_WINDOWS) {
      const a = w === 0 ? allN : Math.min(w, allN);
      const c = w === 0 ? allC : windowCorrect(ring, 0, allN, w);
      put(a);
      put(c);
      put(a > 0 ? c / a : Number.NaN);
    }
    put(skillLast[s]! < 0 ? Number.NaN : skillLast[s]!);
    put(skillStreak[s]!);
    put(allLast < 0 ? Number.NaN : allLast);
    put(i >= 0 ? itemN[i]! : 0);
    put(i >= 0 && itemLast[i]! >= 0 ? itemLast[i]! : Number.NaN);

    // BKT filtering on the table row (models/bkt.ts bktStepPair).
    const o = s * 5;
    const learn = bktTable[o + 1]!;
    const forget = bktTable[o + 2]!;
    const guess = bktTable[o + 3]!;
    const slip = bktTable[o + 4]!;
    const p = belief[2 * s + 1]!;
    put(p);
    put(p * (1 - slip) + belief[2 * s]! * guess);
    put(learn);
    put(guess);
    put(slip);

    // Elo as in models/elo.ts predict(): frozen difficulty, the student's global + per-skill ability move.
    const diff = skillD[s]! + (i >= 0 ? itemOffset[i]! : 0);
    const x = Math.max(-MAX_LOGIT, Math.min(MAX_LOGIT, theta + pairTheta[s]! - diff));
    const pElo = 1 / (1 + Math.exp(-x));
    put(pElo);
    put(theta);
    put(pairTheta[s]!);
    put(diff);

    const sm = skillMean[s]!;
    put(i >= 0 ? (itemSum[i]! + m * sm) / (itemCount[i]! + m) : sm);
    put(i >= 0 ? itemCount[i]! * countScale : 0);
    put(sm);
    put(skillCount[s]! * countScale);
    put((skillC[s]! + RULE_PRIOR * sm) / (sn + RULE_PRIOR));

    // Only now read the label and move the state.
    const y = log.correct[k]!;
    bktStepPair(learn, forget, guess, slip, belief, 2 * s, y === 1);
    const r = y - pElo;
    theta += (studentA / (1 + studentB * allN)) * r;
    pairTheta[s]! += (skillA / (1 + studentB * sn)) * r;
    skillRing[s * RING + (sn % RING)] = y;
    skillN[s] = sn + 1;
    skillC[s]! += y;
    skillLast[s] = y;
    skillStreak[s] = y === 1 ? Math.max(0, skillStreak[s]!) + 1 : Math.min(0, skillStreak[s]!) - 1;
    ring[allN % RING] = y;
    allN++;
    allC += y;
    allLast = y;
    if (i >= 0) {
      itemN[i]! += 1;
      itemLast[i] = y;
    }
  }
  return { data: X, nRows: n, nCols: d, layout: "col", names };
}

/** One column of a feature matrix as a view (column-major, so no copy). */
export function featureColumn(X: AttemptFeatureMatrix, name: string): Float64Array {
  const c = featureIndex(name);
  return X.data.subarray(c * X.nRows, (c + 1) * X.nRows);
}

/**
 * Proxy label for regression ("mastery" as later performance): the accuracy of the student on the row's skill
 * over the next `k` attempts on that skill starting with this row (fewer at the end of the student's
 * sequence; always at least the row itself). Labels look forward by design; they are never features.
 */
export function nextSkillAccuracy(log: ResponseLog, k: number): Float64Array {
  if (!Number.isInteger(k) || k < 1) throw new RangeError(`k must be an integer >= 1 (got ${k})`);
  const out = new Float64Array(log.n);
  const nUsers = log.userStart.length - 1;
  const bySkill = new Map<number, number[]>();
  for (let u = 0; u < nUsers; u++) {
    bySkill.clear();
    for (let r = log.userStart[u]!; r < log.userStart[u + 1]!; r++) {
      const s = log.skill[r]!;
      let list = bySkill.get(s);
      if (list === undefined) {
        list = [];
        bySkill.set(s, list);
      }
      list.push(r);
    }
    for (const rows of bySkill.values()) {
      // Prefix sums of correctness along the skill's rows.
      const pre = new Float64Array(rows.length + 1);
      for (let j = 0; j < rows.length; j++) pre[j + 1] = pre[j]! + log.correct[rows[j]!]!;
      for (let j = 0; j < rows.length; j++) {
        const end = Math.min(rows.length, j + k);
        out[rows[j]!] = (pre[end]! - pre[j]!) / (end - j);
      }
    }
  }
  return out;
}
