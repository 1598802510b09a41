import type { BKT } from "../models/bkt.ts";
import { Elo } from "../models/elo.ts";
import { mulberry32 } from "../models/prng.ts";
import {
  type AttemptContext,
  type AttemptFeatureMatrix,
  attemptFeatureNames,
  attemptFeatures,
  fitItemStats,
} from "./attemptFeatures.ts";
import { fitBktParallel } from "./bktFit.ts";
import { fitElo } from "./elo.ts";
import type { ResponseLog } from "./responses.ts";

/**
 * Next-response training sets for timestamp-free response logs (training/attemptFeatures.ts for the features).
 *
 * Everything a feature learns from labels (item/skill means, Elo difficulties) is computed OUT OF FOLD by
 * student: the training students are split into K folds and the rows of fold f get statistics learned on the
 * other folds only. A training row's features therefore never contain its own label or any label of its
 * student, exactly as for a new test student, whose features use statistics of all training students.
 * BKT is fitted once on all training rows (4 parameters per skill over thousands of rows; its in-sample
 * optimism is negligible next to the per-item statistics).
 */

export class TrainingSetError extends Error {
  readonly code = "TRAINING_SET";
  constructor(message: string) {
    super(message);
    this.name = "TrainingSetError";
  }
}

/**
 * Fold of every user (index into log.userNames) in [0, k): a seeded shuffle of the users dealt round-robin,
 * so folds differ in size by at most one user and all rows of a user share one fold.
 */
export function studentFolds(nUsers: number, k: number, seed: number): Int32Array {
  if (!Number.isInteger(k) || k < 2) throw new TrainingSetError(`folds must be an integer >= 2 (got ${k})`);
  if (nUsers < k) throw new TrainingSetError(`need at least ${k} students for ${k} folds (got ${nUsers})`);
  const perm = Int32Array.from({ length: nUsers }, (_, i) => i);
  const rnd = mulberry32(seed ^ 0x5bd1e995);
  for (let i = nUsers - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    const t = perm[i]!;
    perm[i] = perm[j]!;
    perm[j] = t;
  }
  const fold = new Int32Array(nUsers);
  for (let r = 0; r < nUsers; r++) fold[perm[r]!] = r % k;
  return fold;
}

/** Fold of each row, from the fold of its user. */
export function rowFolds(log: ResponseLog, userFold: Int32Array): Int32Array {
  const out = new Int32Array(log.n);
  for (let k = 0; k < log.n; k++) out[k] = userFold[log.user[k]!]!;
  return out;
}

/**
 * The rows of `log` whose user is kept, as a log of its own (name arrays shared, user ids unchanged, so
 * models keyed by names apply as they are). `rows` maps each new row to its row in `log`.
 */
export function subsetLog(
  log: ResponseLog,
  keepUser: (u: number) => boolean,
): ResponseLog & { rows: Int32Array } {
  let n = 0;
  const nUsers = log.userStart.length - 1;
  for (let u = 0; u < nUsers; u++) if (keepUser(u)) n += log.userStart[u + 1]! - log.userStart[u]!;
  const rows = new Int32Array(n);
  const userStart = new Int32Array(nUsers + 1);
  let j = 0;
  for (let u = 0; u < nUsers; u++) {
    userStart[u] = j;
    if (!keepUser(u)) continue;
    for (let r = log.userStart[u]!; r < log.userStart[u + 1]!; r++) rows[j++] = r;
  }
  userStart[nUsers] = j;
  const pick = <T extends Int32Array | Uint8Array>(a: T, make: (n: number) => T): T => {
    const out = make(n);
    for (let q = 0; q < n; q++) out[q] = a[rows[q]!]!;
    return out;
  };
  return {
    n,
    user: pick(log.user, (m) => new Int32Array(m)),
    skill: pick(log.skill, (m) => new Int32Array(m)),
    item: pick(log.item, (m) => new Int32Array(m)),
    correct: pick(log.correct, (m) => new Uint8Array(m)),
    userNames: log.userNames,
    skillNames: log.skillNames,
    itemNames: log.itemNames,
    userStart,
    rows,
    ...(log.time !== undefined ? { time: Float64Array.from(rows, (r) => log.time![r]!) } : {}),
  };
}

export interface AttemptTrainingSetOptions {
  /** Student folds for the out-of-fold statistics (default 5). */
  folds?: number;
  seed?: number;
  /** Pseudo-answers of the item/skill mean smoothing (default 5). */
  smoothing?: number;
  /** Use this BKT model instead of fitting one. */
  bkt?: BKT;
  /** Use this Elo model (its K parameters for the per-fold refits, itself for test) instead of fitting one. */
  elo?: Elo;
  bktRestarts?: number;
  threads?: number;
  /** Time-aware features (TIME_FEATURES); default: when the log has times (the time=COL role). */
  time?: boolean;
  onStage?: (stage: string, done: number, total: number) => void;
}

export interface AttemptTrainingSet {
  X: AttemptFeatureMatrix;
  /** Next-response correctness of each row. */
  y: Uint8Array;
  /** Student fold of each row (the fold whose statistics were NOT used for it). */
  fold: Int32Array;
  userFold: Int32Array;
  /** Models and statistics learned on ALL training rows: the context for new (test) students. */
  context: AttemptContext;
  folds: number;
}

/** Builds the out-of-fold training set of `log` and the full-data context used at prediction time. */
export async function buildAttemptTrainingSet(
  log: ResponseLog,
  opts: AttemptTrainingSetOptions = {},
): Promise<AttemptTrainingSet> {
  const K = opts.folds ?? 5;
  const seed = opts.seed ?? 42;
  const smoothing = opts.smoothing ?? 5;
  if (log.n === 0) throw new TrainingSetError("the training log has no rows");
  const nUsers = log.userStart.length - 1;
  const userFold = studentFolds(nUsers, K, seed);
  const fold = rowFolds(log, userFold);
  const stage = opts.onStage ?? (() => {});

  stage("bkt", 0, 1);
  const bkt =
    opts.bkt ??
    (await fitBktParallel(
      log,
      { restarts: opts.bktRestarts ?? 5, seed },
      {
        ...(opts.threads !== undefined ? { threads: opts.threads } : {}),
        onProgress: (d, t) => stage("bkt", d, t),
      },
    ));
  stage("elo", 0, 1);
  const elo = opts.elo ?? fitElo(log, { seed: 0 }).model;
  stage("elo", 1, 1);

  const n = log.n;
  const time = opts.time ?? log.time !== undefined;
  const names = attemptFeatureNames({ time });
  const d = names.length;
  const data = new Float64Array(n * d);
  for (let f = 0; f < K; f++) {
    stage("out-of-fold features", f, K);
    const inFold = subsetLog(log, (u) => userFold[u] === f);
    const outMask = new Uint8Array(n);
    for (let k = 0; k < n; k++) outMask[k] = fold[k] === f ? 0 : 1;
    const others = subsetLog(log, (u) => userFold[u] !== f);
    // Difficulties relearned on the other folds with the K function of the full fit (one replay).
    const foldElo = new Elo({ params: elo.params, fitK: false }).fit(others);
    const ctx: AttemptContext = {
      bkt,
      elo: foldElo,
      itemStats: fitItemStats(log, smoothing, outMask),
      ...(time ? { time } : {}),
    };
    const Xf = attemptFeatures(inFold, ctx);
    for (let c = 0; c < d; c++) {
      const src = Xf.data.subarray(c * inFold.n, (c + 1) * inFold.n);
      const off = c * n;
      for (let q = 0; q < inFold.n; q++) data[off + inFold.rows[q]!] = src[q]!;
    }
  }
  stage("out-of-fold features", K, K);
  return {
    X: { data, nRows: n, nCols: d, layout: "col", names },
    y: log.correct,
    fold,
    userFold,
    context: {
      bkt,
      elo,
      itemStats: fitItemStats(log, smoothing, undefined, (K - 1) / K),
      ...(time ? { time } : {}),
    },
    folds: K,
  };
}

/** Rows of a column-major matrix selected by `rows`, as a new column-major matrix. */
export function selectRows(X: AttemptFeatureMatrix, rows: ArrayLike<number>): AttemptFeatureMatrix {
  const m = rows.length;
  const out = new Float64Array(m * X.nCols);
  for (let c = 0; c < X.nCols; c++) {
    const src = c * X.nRows;
    const dst = c * m;
    for (let q = 0; q < m; q++) out[dst + q] = X.data[src + rows[q]!]!;
  }
  return { data: out, nRows: m, nCols: X.nCols, layout: "col", names: X.names };
}

/** Row indices whose fold is (or is not) `f`. */
export function foldRows(fold: Int32Array, f: number, inFold: boolean): Int32Array {
  let m = 0;
  for (let k = 0; k < fold.length; k++) if ((fold[k] === f) === inFold) m++;
  const out = new Int32Array(m);
  let j = 0;
  for (let k = 0; k < fold.length; k++) if ((fold[k] === f) === inFold) out[j++] = k;
  return out;
}

/** Training rows, validation rows (whole students of one fold) and calibration groups inside validation. */
export interface TrainingSplit {
  trainRows: Int32Array;
  validRows: Int32Array;
  /** Group (a set of whole students) of each validation row, for cross-validated calibration and stacking. */
  validGroup: Int32Array;
  nGroups: number;
}

/**
 * Holds out the students of fold `validFold` for early stopping, calibration and stacking; no student has
 * rows on both sides. Validation students are dealt into `nGroups` groups by a second seeded shuffle.
 */
export function trainingSplit(
  log: ResponseLog,
  set: Pick<AttemptTrainingSet, "fold">,
  opts: { validFold?: number; nGroups?: number; seed?: number } = {},
): TrainingSplit {
  const validFold = opts.validFold ?? 0;
  const nGroups = opts.nGroups ?? 5;
  const trainRows = foldRows(set.fold, validFold, false);
  const validRows = foldRows(set.fold, validFold, true);
  const validUsers = new Set<number>();
  for (const r of validRows) validUsers.add(log.user[r]!);
  if (validUsers.size < nGroups)
    throw new TrainingSetError(
      `the validation fold has ${validUsers.size} students; at least ${nGroups} are needed (use a larger training file or fewer folds)`,
    );
  const users = [...validUsers].sort((a, b) => a - b);
  const g = studentFolds(users.length, nGroups, (opts.seed ?? 42) + 1);
  const groupOf = new Map(users.map((u, i) => [u, g[i]!]));
  const validGroup = new Int32Array(validRows.length);
  for (let q = 0; q < validRows.length; q++) validGroup[q] = groupOf.get(log.user[validRows[q]!]!)!;
  return { trainRows, validRows, validGroup, nGroups };
}
