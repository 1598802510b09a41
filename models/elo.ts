import { nelderMead } from "./nelderMead.ts";
import { mulberry32 } from "./prng.ts";

/**
 * Elo rating for student responses, following Pelanek (2016), "Applications of the Elo rating
 * system in adaptive educational systems", Computers & Education 98:
 *
 *   P(correct) = logistic(theta_s + theta_sk - d)                         (hierarchical/multivariate
 *                                                                           Elo, sections 3.2-3.3)
 *   theta_s  += K(aStudent, bStudent, n_s)  * (y - p)   global ability, n_s = answers of student s
 *   theta_sk += K(aSkill,   bStudent, n_sk) * (y - p)   ability on skill k, n_sk = answers of s on k
 *   d        -= K(aItem,    bItem,    n_i)  * (y - p)   difficulty, n_i = answers to the item
 *
 * with the uncertainty function K(a, b, n) = a / (1 + b n) (section 3.1). The difficulty of a row is
 * hierarchical too: d = d_skill + d_item, where d_item is an offset of the item around its skill
 * (only when the data has an item column). An item never seen in training therefore starts at its
 * skill's difficulty, and an unseen skill at the mean skill difficulty: the priors that matter when
 * new students answer (mostly) known items.
 *
 * Item difficulties are learned on the training data and then frozen: `predict` only moves the
 * abilities of the students in the data it is given, so each prediction depends on the model and
 * on that student's earlier rows, nothing else.
 */

/** K-function parameters; `skillA` is the weight of the per-skill ability (its K amplitude). */
export interface EloParams {
  studentA: number;
  studentB: number;
  skillA: number;
  itemA: number;
  itemB: number;
}

export const DEFAULT_ELO_PARAMS: Readonly<EloParams> = Object.freeze({
  studentA: 0.8,
  studentB: 0.05,
  skillA: 0.8,
  itemA: 0.8,
  itemB: 0.05,
});

const PARAM_NAMES = ["studentA", "studentB", "skillA", "itemA", "itemB"] as const;

/** Responses in columnar form; `training/responses.ts`'s ResponseLog has this shape. */
export interface EloResponses {
  readonly n: number;
  readonly user: Int32Array;
  readonly skill: Int32Array;
  /** -1 where there is no item (the skill then plays the item). */
  readonly item: Int32Array;
  readonly correct: Uint8Array;
  readonly skillNames: readonly string[];
  readonly itemNames: readonly string[];
}

export interface EloFitProgress {
  evaluations: number;
  maxEvaluations: number;
  bestLogloss: number;
  best: EloParams;
}

export interface EloOptions {
  /** Starting (or, with fitK false, fixed) K parameters. */
  params?: Partial<EloParams>;
  /** Fit the K parameters by minimising the online log-loss on the training data. Default true. */
  fitK?: boolean;
  /** Budget of training replays for the K search. Default 150. */
  maxEvaluations?: number;
  /** Varies the initial simplex of the K search (deterministically); the same seed gives the same model. */
  seed?: number;
  onProgress?: (p: EloFitProgress) => void;
}

export class EloModelError extends Error {
  readonly code = "ELO_MODEL";
  constructor(message: string) {
    super(message);
    this.name = "EloModelError";
  }
}

/** Pelanek's uncertainty function: the K factor after n answers. */
export function kFactor(a: number, b: number, n: number): number {
  return a / (1 + b * n);
}

// Logits are clamped so probabilities stay strictly inside (0, 1) in float64.
const MAX_LOGIT = 30;

export function eloProbability(ability: number, difficulty: number): number {
  const x = Math.max(-MAX_LOGIT, Math.min(MAX_LOGIT, ability - difficulty));
  return 1 / (1 + Math.exp(-x));
}

export interface EloRatingStep {
  /** P(correct) before the answer. */
  p: number;
  ability: number;
  n: number;
}

/**
 * One answer's update of a single ability rating against a fixed difficulty (used by the per
 * (student, topic) online state): ability += K(a, b, n) * (correct - p).
 */
export function eloRatingStep(
  ability: number,
  n: number,
  difficulty: number,
  correct: boolean,
  a: number,
  b: number,
): EloRatingStep {
  const p = eloProbability(ability, difficulty);
  return { p, ability: ability + kFactor(a, b, n) * ((correct ? 1 : 0) - p), n: n + 1 };
}

/** Row indices densified once so the replay loop is pure typed-array work. */
interface Prepared {
  n: number;
  correct: Uint8Array;
  student: Int32Array;
  pair: Int32Array;
  nStudents: number;
  nPairs: number;
}

function prepare(data: EloResponses): Prepared {
  const n = data.n;
  const student = new Int32Array(n);
  const pair = new Int32Array(n);
  const studentIds = new Map<number, number>();
  const pairIds = new Map<number, number>();
  const stride = data.skillNames.length + 1;
  for (let k = 0; k < n; k++) {
    const u = data.user[k]!;
    let s = studentIds.get(u);
    if (s === undefined) {
      s = studentIds.size;
      studentIds.set(u, s);
    }
    student[k] = s;
    const key = u * stride + data.skill[k]!;
    let q = pairIds.get(key);
    if (q === undefined) {
      q = pairIds.size;
      pairIds.set(key, q);
    }
    pair[k] = q;
  }
  return {
    n,
    correct: data.correct,
    student,
    pair,
    nStudents: studentIds.size,
    nPairs: pairIds.size,
  };
}

function validateData(data: EloResponses): void {
  for (const [name, arr] of [
    ["user", data.user],
    ["skill", data.skill],
    ["item", data.item],
    ["correct", data.correct],
  ] as const) {
    if (arr.length < data.n)
      throw new EloModelError(`responses.${name} has ${arr.length} entries but n is ${data.n}`);
  }
}

const EPS = 1e-15;

/**
 * Training replay: abilities and difficulties all move online, in row order. Returns the summed
 * negative log-likelihood of the predictions made before each update.
 */
function replayTraining(
  prep: Prepared,
  data: EloResponses,
  pr: EloParams,
  skillD: Float64Array,
  skillN: Float64Array,
  itemD: Float64Array,
  itemN: Float64Array,
  out?: Float64Array,
): number {
  const theta = new Float64Array(prep.nStudents);
  const thetaN = new Float64Array(prep.nStudents);
  const pairTheta = new Float64Array(prep.nPairs);
  const pairN = new Float64Array(prep.nPairs);
  const { student, pair, correct } = prep;
  const { skill, item } = data;
  const { studentA, studentB, skillA, itemA, itemB } = pr;
  let nll = 0;
  for (let k = 0; k < prep.n; k++) {
    const s = student[k]!;
    const q = pair[k]!;
    const c = skill[k]!;
    const i = item[k]!;
    const d = i >= 0 ? skillD[c]! + itemD[i]! : skillD[c]!;
    let x = theta[s]! + pairTheta[q]! - d;
    x = Math.min(MAX_LOGIT, Math.max(-MAX_LOGIT, x));
    const p = 1 / (1 + Math.exp(-x));
    if (out !== undefined) out[k] = p;
    const y = correct[k]!;
    nll -= Math.log(y === 1 ? Math.max(p, EPS) : Math.max(1 - p, EPS));
    const r = y - p;
    theta[s]! += (studentA / (1 + studentB * thetaN[s]!)) * r;
    thetaN[s]! += 1;
    pairTheta[q]! += (skillA / (1 + studentB * pairN[q]!)) * r;
    pairN[q]! += 1;
    skillD[c]! -= (itemA / (1 + itemB * skillN[c]!)) * r;
    skillN[c]! += 1;
    if (i >= 0) {
      itemD[i]! -= (itemA / (1 + itemB * itemN[i]!)) * r;
      itemN[i]! += 1;
    }
  }
  return nll;
}

/** Prediction replay: difficulties fixed per row, only the students' abilities move. */
function replayStudents(prep: Prepared, rowD: Float64Array, pr: EloParams, out: Float64Array): void {
  const theta = new Float64Array(prep.nStudents);
  const thetaN = new Float64Array(prep.nStudents);
  const pairTheta = new Float64Array(prep.nPairs);
  const pairN = new Float64Array(prep.nPairs);
  const { student, pair, correct } = prep;
  const { studentA, studentB, skillA } = pr;
  for (let k = 0; k < prep.n; k++) {
    const s = student[k]!;
    const q = pair[k]!;
    let x = theta[s]! + pairTheta[q]! - rowD[k]!;
    x = Math.min(MAX_LOGIT, Math.max(-MAX_LOGIT, x));
    const p = 1 / (1 + Math.exp(-x));
    out[k] = p;
    const r = correct[k]! - p;
    theta[s]! += (studentA / (1 + studentB * thetaN[s]!)) * r;
    thetaN[s]! += 1;
    pairTheta[q]! += (skillA / (1 + studentB * pairN[q]!)) * r;
    pairN[q]! += 1;
  }
}

// The search runs on log-parameters so every candidate is positive; bounds keep it in a sane box.
const LOG_MIN = Math.log(1e-4);
const LOG_MAX = Math.log(20);

function paramsFromLog(x: ArrayLike<number>): EloParams {
  const v = (j: number): number => Math.exp(Math.max(LOG_MIN, Math.min(LOG_MAX, x[j]!)));
  return { studentA: v(0), studentB: v(1), skillA: v(2), itemA: v(3), itemB: v(4) };
}

export interface EloModelJson {
  kind: "elo";
  version: 1;
  params: EloParams;
  train: { logloss: number; rows: number; evaluations: number };
  /** Skill difficulty and the number of training answers on the skill. */
  skills: Record<string, { difficulty: number; n: number }>;
  /**
   * Item difficulty (= its skill's difficulty + offset; informational), the offset actually used
   * for prediction, and the number of training answers. Empty when the data has no item column.
   */
  items: Record<string, { difficulty: number; offset: number; n: number; skill?: string }>;
}

export class Elo {
  readonly kind = "elo";
  params: EloParams;
  skillNames: string[] = [];
  skillDifficulty = new Float64Array(0);
  skillCount = new Float64Array(0);
  itemNames: string[] = [];
  /** Offset of each item around its skill's difficulty. */
  itemOffset = new Float64Array(0);
  itemCount = new Float64Array(0);
  /** Skill of each item as last seen in training (-1 if unknown); only for the readable difficulty. */
  itemSkill = new Int32Array(0);
  trainLogloss = Number.NaN;
  trainRows = 0;
  evaluations = 0;

  private readonly fitK: boolean;
  private readonly maxEvaluations: number;
  private readonly seed: number;
  private readonly onProgress: ((p: EloFitProgress) => void) | undefined;

  constructor(options: EloOptions = {}) {
    this.params = { ...DEFAULT_ELO_PARAMS, ...options.params };
    checkParams(this.params, "options.params");
    this.fitK = options.fitK ?? true;
    this.maxEvaluations = options.maxEvaluations ?? 150;
    this.seed = options.seed ?? 0;
    this.onProgress = options.onProgress;
  }

  /**
   * Fits the K parameters (unless fitK is false) by Nelder-Mead on the online log-loss of a
   * replay of `data` in row order, then replays once more with the best parameters and keeps
   * the resulting skill and item difficulties.
   */
  fit(data: EloResponses): this {
    validateData(data);
    if (data.n === 0) throw new EloModelError("cannot fit Elo on 0 responses; pass a non-empty response log");
    const prep = prepare(data);
    const nSkills = data.skillNames.length;
    const nItems = data.itemNames.length;
    const skillD = new Float64Array(nSkills);
    const skillN = new Float64Array(nSkills);
    const itemD = new Float64Array(nItems);
    const itemN = new Float64Array(nItems);
    const objective = (pr: EloParams): number => {
      skillD.fill(0);
      skillN.fill(0);
      itemD.fill(0);
      itemN.fill(0);
      return replayTraining(prep, data, pr, skillD, skillN, itemD, itemN) / data.n;
    };

    let best = { ...this.params };
    this.evaluations = 0;
    if (this.fitK) {
      const rand = mulberry32(this.seed);
      const x0 = PARAM_NAMES.map((k) => Math.log(this.params[k]));
      // Seed 0 uses a plain +0.7 step on each log-parameter; other seeds vary size and sign.
      const step = PARAM_NAMES.map(() =>
        this.seed === 0 ? 0.7 : (0.4 + 0.6 * rand()) * (rand() < 0.5 ? -1 : 1),
      );
      const res = nelderMead((x) => objective(paramsFromLog(x)), x0, {
        step,
        maxEvaluations: this.maxEvaluations,
        fTolerance: 1e-7,
        xTolerance: 1e-3,
        onIteration: (evaluations, bestF, bestX) =>
          this.onProgress?.({
            evaluations,
            maxEvaluations: this.maxEvaluations,
            bestLogloss: bestF,
            best: paramsFromLog(bestX),
          }),
      });
      best = paramsFromLog(res.x);
      this.evaluations = res.evaluations;
    }
    this.params = best;
    this.trainLogloss = objective(best);
    this.evaluations++;
    this.trainRows = data.n;
    this.skillNames = [...data.skillNames];
    this.skillDifficulty = Float64Array.from(skillD);
    this.skillCount = Float64Array.from(skillN);
    this.itemNames = [...data.itemNames];
    this.itemOffset = Float64Array.from(itemD);
    this.itemCount = Float64Array.from(itemN);
    this.itemSkill = new Int32Array(nItems).fill(-1);
    for (let k = 0; k < data.n; k++) {
      const i = data.item[k]!;
      if (i >= 0) this.itemSkill[i] = data.skill[k]!;
    }
    return this;
  }

  /** Mean difficulty of the skills seen in training: the prior of a skill the model has never seen. */
  unseenSkillDifficulty(): number {
    let s = 0;
    let m = 0;
    for (let c = 0; c < this.skillNames.length; c++) {
      if (this.skillCount[c]! > 0) {
        s += this.skillDifficulty[c]!;
        m++;
      }
    }
    return m > 0 ? s / m : 0;
  }

  /**
   * Online next-response predictions for every row of `data` in row order: row k is predicted from
   * the frozen difficulties and the abilities built from the same student's rows before k only.
   * Students in `data` start new (ability 0), as test students do.
   */
  predict(data: EloResponses): Float64Array {
    validateData(data);
    const skillIndex = new Map(this.skillNames.map((name, c) => [name, c]));
    const itemIndex = new Map(this.itemNames.map((name, i) => [name, i]));
    const unseenSkill = this.unseenSkillDifficulty();
    const skillD = data.skillNames.map((name) => {
      const c = skillIndex.get(name);
      return c === undefined ? unseenSkill : this.skillDifficulty[c]!;
    });
    const itemOff = data.itemNames.map((name) => {
      const i = itemIndex.get(name);
      return i === undefined ? 0 : this.itemOffset[i]!;
    });
    const rowD = new Float64Array(data.n);
    for (let k = 0; k < data.n; k++) {
      const i = data.item[k]!;
      rowD[k] = skillD[data.skill[k]!]! + (i >= 0 ? itemOff[i]! : 0);
    }
    const out = new Float64Array(data.n);
    replayStudents(prepare(data), rowD, this.params, out);
    return out;
  }

  /** Difficulty of a named item (its skill's difficulty + its offset), or undefined if unknown. */
  itemDifficulty(name: string): number | undefined {
    const i = this.itemNames.indexOf(name);
    if (i < 0) return undefined;
    const c = this.itemSkill[i]!;
    return (c >= 0 ? this.skillDifficulty[c]! : 0) + this.itemOffset[i]!;
  }

  toJSON(): EloModelJson {
    const skills: EloModelJson["skills"] = {};
    this.skillNames.forEach((name, c) => {
      skills[name] = { difficulty: this.skillDifficulty[c]!, n: this.skillCount[c]! };
    });
    const items: EloModelJson["items"] = {};
    this.itemNames.forEach((name, i) => {
      const c = this.itemSkill[i]!;
      const offset = this.itemOffset[i]!;
      const entry: EloModelJson["items"][string] = {
        difficulty: (c >= 0 ? this.skillDifficulty[c]! : 0) + offset,
        offset,
        n: this.itemCount[i]!,
      };
      if (c >= 0) entry.skill = this.skillNames[c]!;
      items[name] = entry;
    });
    return {
      kind: "elo",
      version: 1,
      params: { ...this.params },
      train: { logloss: this.trainLogloss, rows: this.trainRows, evaluations: this.evaluations },
      skills,
      items,
    };
  }

  /** Rebuilds a fitted model from `toJSON()` output (e.g. a parsed model.json); validates every field. */
  static fromJSON(json: unknown): Elo {
    if (typeof json !== "object" || json === null)
      throw new EloModelError("Elo model JSON must be an object");
    const j = json as Partial<Record<keyof EloModelJson, unknown>>;
    if (j.kind !== "elo")
      throw new EloModelError(`Elo model JSON has kind ${JSON.stringify(j.kind)}, expected "elo"`);
    if (j.version !== 1)
      throw new EloModelError(
        `Elo model JSON has version ${JSON.stringify(j.version)}; this code reads version 1`,
      );
    const p = j.params as Record<string, unknown> | undefined;
    if (typeof p !== "object" || p === null)
      throw new EloModelError("Elo model JSON: params must be an object");
    const params = {} as EloParams;
    for (const k of PARAM_NAMES) {
      const v = p[k];
      if (typeof v !== "number") throw new EloModelError(`Elo model JSON: params.${k} must be a number`);
      params[k] = v;
    }
    checkParams(params, "params");
    const model = new Elo({ params, fitK: false });
    const skills = readRecord(j.skills, "skills");
    model.skillNames = Object.keys(skills);
    model.skillDifficulty = new Float64Array(model.skillNames.length);
    model.skillCount = new Float64Array(model.skillNames.length);
    model.skillNames.forEach((name, c) => {
      const s = skills[name]!;
      model.skillDifficulty[c] = readNumber(s, "difficulty", `skills["${name}"]`);
      model.skillCount[c] = readNumber(s, "n", `skills["${name}"]`);
    });
    const items = readRecord(j.items, "items");
    model.itemNames = Object.keys(items);
    model.itemOffset = new Float64Array(model.itemNames.length);
    model.itemCount = new Float64Array(model.itemNames.length);
    model.itemSkill = new Int32Array(model.itemNames.length).fill(-1);
    const skillIndex = new Map(model.skillNames.map((name, c) => [name, c]));
    model.itemNames.forEach((name, i) => {
      const it = items[name]!;
      if (typeof it.skill === "string") model.itemSkill[i] = skillIndex.get(it.skill) ?? -1;
      model.itemOffset[i] = readNumber(it, "offset", `items["${name}"]`);
      model.itemCount[i] = readNumber(it, "n", `items["${name}"]`);
    });
    const train = j.train as Record<string, unknown> | undefined;
    if (typeof train === "object" && train !== null) {
      if (typeof train.logloss === "number") model.trainLogloss = train.logloss;
      if (typeof train.rows === "number") model.trainRows = train.rows;
      if (typeof train.evaluations === "number") model.evaluations = train.evaluations;
    }
    return model;
  }
}

function checkParams(p: EloParams, where: string): void {
  for (const k of PARAM_NAMES) {
    const v = p[k];
    if (!Number.isFinite(v) || v < 0)
      throw new EloModelError(`${where}.${k} must be a finite number >= 0 (got ${v})`);
  }
}

function readRecord(v: unknown, field: string): Record<string, Record<string, unknown>> {
  if (typeof v !== "object" || v === null || Array.isArray(v))
    throw new EloModelError(`Elo model JSON: ${field} must be an object keyed by name`);
  return v as Record<string, Record<string, unknown>>;
}

function readNumber(obj: Record<string, unknown>, key: string, where: string): number {
  const v = typeof obj === "object" && obj !== null ? obj[key] : undefined;
  if (typeof v !== "number" || !Number.isFinite(v))
    throw new EloModelError(
      `Elo model JSON: ${where}.${key} must be a finite number (got ${JSON.stringify(v)})`,
    );
  return v;
}
