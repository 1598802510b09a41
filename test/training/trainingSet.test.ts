import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { BKT } from "../../models/bkt.ts";
import { Elo } from "../../models/elo.ts";
import {
  ATTEMPT_FEATURES,
  type AttemptContext,
  type AttemptFeatureMatrix,
  attemptFeatures,
  featureColumn,
  fitItemStats,
  type ItemStats,
  nextSkillAccuracy,
} from "../../training/attemptFeatures.ts";
import {
  buildAttemptTrainingSet,
  studentFolds,
  subsetLog,
  trainingSplit,
} from "../../training/trainingSet.ts";
import { type Attempt, makeLog, syntheticAttempts } from "./attemptLog.ts";

const row = (X: AttemptFeatureMatrix, r: number): Record<string, number> =>
  Object.fromEntries(X.names.map((name, c) => [name, X.data[c * X.nRows + r]!]));

/** Unfitted BKT (fallback prior 0.5, learn 0.1, guess 0.2, slip 0.1) and default-K Elo with no difficulties. */
function plainContext(itemStats: ItemStats): AttemptContext {
  return { bkt: new BKT(), elo: new Elo({ fitK: false }), itemStats };
}

// Student a: rows 0-8; student b: row 9.
const HAND: Attempt[] = [
  ["a", "s1", "i1", 1],
  ["a", "s1", "i2", 0],
  ["a", "s2", "i3", 1],
  ["a", "s1", "i1", 1],
  ["a", "s1", "i2", 1],
  ["a", "s2", "i3", 0],
  ["a", "s1", "i4", 1],
  ["a", "s1", "i1", 0],
  ["a", "s1", "i2", 1],
  ["b", "s1", "i1", 0],
];

describe("attemptFeatures: known answers on a hand-written log", () => {
  const stats: ItemStats = {
    smoothing: 5,
    countScale: 1,
    globalMean: 0.6,
    skills: new Map([["s1", { sum: 6, count: 10 }]]),
    items: new Map([["i2", { sum: 1, count: 5 }]]),
  };
  const X = attemptFeatures(makeLog(HAND), plainContext(stats));

  it("counts the attempt windows of row 8 (skill s1 before it: 1,0,1,1,1,0; overall: 1,0,1,1,1,0,1,0)", () => {
    expect(row(X, 8)).toMatchObject({
      skill_attempts_5: 5,
      skill_correct_5: 3, // rows 1,3,4,6,7 -> 0,1,1,1,0
      skill_accuracy_5: 0.6,
      skill_attempts_20: 6,
      skill_correct_20: 4,
      skill_attempts_all: 6,
      skill_correct_all: 4,
      skill_accuracy_all: 4 / 6,
      overall_attempts_5: 5,
      overall_correct_5: 3, // rows 3..7 -> 1,1,0,1,0
      overall_attempts_20: 8,
      overall_correct_20: 5,
      overall_accuracy_all: 5 / 8,
      skill_last_correct: 0,
      skill_streak: -1,
      overall_last_correct: 0,
      item_attempts_before: 2, // i2 at rows 1 and 4
      item_last_correct: 1,
      item_mean: 0.4, // (1 + 5 * 0.6) / (5 + 5), skill mean (6 + 5 * 0.6) / 15 = 0.6
      item_count: 5,
      skill_mean: 0.6,
      skill_count: 10,
      rule_accuracy: 0.65, // (4 + 2 * 0.6) / (6 + 2)
    });
  });

  it("row 2 is the first s2 attempt: empty skill windows, NaN accuracies, item unseen in train -> skill prior", () => {
    const r = row(X, 2);
    expect(r.skill_attempts_all).toBe(0);
    expect(r.skill_correct_5).toBe(0);
    expect(r.skill_accuracy_5).toBeNaN();
    expect(r.skill_last_correct).toBeNaN();
    expect(r.skill_streak).toBe(0);
    expect(r.overall_attempts_all).toBe(2);
    expect(r.overall_accuracy_all).toBe(0.5);
    expect(r.item_count).toBe(0);
    expect(r.skill_count).toBe(0);
    expect(r.item_mean).toBeCloseTo(0.6, 12); // unseen skill -> global mean, unseen item -> that
  });

  it("a new student starts from nothing: row 9 sees none of student a's rows", () => {
    const r = row(X, 9);
    expect(r.overall_attempts_all).toBe(0);
    expect(r.skill_attempts_all).toBe(0);
    expect(r.item_attempts_before).toBe(0);
    expect(r.elo_ability).toBe(0);
    expect(r.bkt_p_mastery).toBe(0.5);
  });

  it("BKT and Elo state: hand-computed first steps", () => {
    expect(row(X, 0)).toMatchObject({ bkt_p_mastery: 0.5, elo_p_correct: 0.5, elo_ability: 0 });
    expect(row(X, 0).bkt_p_correct).toBeCloseTo(0.5 * 0.9 + 0.5 * 0.2, 12);
    // After a correct answer: posterior 0.45 / 0.55 = 9/11, then learn 0.1 from U: 9/11 + (2/11) 0.1.
    expect(row(X, 1).bkt_p_mastery).toBeCloseTo(9.2 / 11, 12);
    // Elo: theta += 0.8 * (1 - 0.5) globally and per skill, so row 1 (same skill) has logit 0.8.
    expect(row(X, 1)).toMatchObject({ elo_ability: 0.4, elo_skill_ability: 0.4 });
    expect(row(X, 1).elo_p_correct).toBeCloseTo(1 / (1 + Math.exp(-0.8)), 12);
  });

  it("nextSkillAccuracy: the row and the next k-1 attempts on its skill", () => {
    const y = nextSkillAccuracy(makeLog(HAND), 3);
    // s1 rows of a: 0,1,3,4,6,7,8 -> 1,0,1,1,1,0,1
    expect(Array.from(y)).toEqual([2 / 3, 2 / 3, 0.5, 1, 2 / 3, 0, 2 / 3, 0.5, 1, 0]);
  });
});

describe("attemptFeatures: BKT and Elo columns equal the models' own online predictions", () => {
  it("on a fitted BKT and Elo", () => {
    const log = makeLog(syntheticAttempts(30, 40, 7));
    const bkt = new BKT({ restarts: 2, seed: 1 }).fit(log);
    const elo = new Elo({ maxEvaluations: 20 }).fit(log);
    const X = attemptFeatures(log, { bkt, elo, itemStats: fitItemStats(log) });
    const pB = bkt.predict(log);
    const pE = elo.predict(log);
    const colB = featureColumn(X, "bkt_p_correct");
    const colE = featureColumn(X, "elo_p_correct");
    for (let k = 0; k < log.n; k++) {
      expect(colB[k]).toBeCloseTo(pB[k]!, 12);
      expect(colE[k]).toBeCloseTo(pE[k]!, 12);
    }
  });
});

const attemptsArb = fc
  .array(
    fc.tuple(
      fc.integer({ min: 0, max: 3 }),
      fc.integer({ min: 0, max: 2 }),
      fc.integer({ min: 0, max: 4 }),
      fc.boolean(),
    ),
    { minLength: 2, maxLength: 60 },
  )
  .map((xs) => {
    const sorted = [...xs].sort((a, b) => a[0] - b[0]);
    return sorted.map(([u, s, i, c]) => [`u${u}`, `s${s}`, `i${i}`, c ? 1 : 0] as Attempt);
  });

const sameRows = (
  A: AttemptFeatureMatrix,
  B: AttemptFeatureMatrix,
  rowsA: number[],
  rowsB: number[],
): void => {
  for (let c = 0; c < A.nCols; c++)
    rowsA.forEach((r, q) => {
      expect(Object.is(A.data[c * A.nRows + r], B.data[c * B.nRows + rowsB[q]!])).toBe(true);
    });
};

describe("no leakage", () => {
  const ctx = (): AttemptContext => {
    const train = makeLog(syntheticAttempts(10, 20, 3, 3, 5));
    return {
      bkt: new BKT({ restarts: 1 }).fit(train),
      elo: new Elo({ fitK: false }).fit(train),
      itemStats: fitItemStats(train),
    };
  };
  const context = ctx();

  it("flipping a later label never changes an earlier row's features (nor another student's)", () => {
    fc.assert(
      fc.property(attemptsArb, fc.nat(), (rows, pick) => {
        const j = pick % rows.length;
        const flipped = rows.map((r, k) => (k === j ? ([r[0], r[1], r[2], 1 - r[3]] as Attempt) : r));
        const A = attemptFeatures(makeLog(rows), context);
        const B = attemptFeatures(makeLog(flipped), context);
        const unaffected = rows.map((_, k) => k).filter((k) => k <= j || rows[k]![0] !== rows[j]![0]);
        sameRows(A, B, unaffected, unaffected);
      }),
      { numRuns: 150 },
    );
  });

  it("planted future rows (appended to a student's history) never reach an earlier row", () => {
    fc.assert(
      fc.property(attemptsArb, attemptsArb, (rows, future) => {
        const victim = rows[rows.length - 1]![0];
        const planted = future.map(([, s, i, c]) => [victim, s, i, c] as Attempt);
        const A = attemptFeatures(makeLog(rows), context);
        const B = attemptFeatures(makeLog([...rows, ...planted]), context);
        const all = rows.map((_, k) => k);
        sameRows(A, B, all, all);
      }),
      { numRuns: 100 },
    );
  });

  it("out-of-fold statistics: a training row's item/skill/Elo-difficulty columns ignore its own student's labels", async () => {
    const rows = syntheticAttempts(40, 25, 11);
    const log = makeLog(rows);
    const opts = { folds: 4, seed: 5, bkt: new BKT(), elo: new Elo({ fitK: false }).fit(log) };
    const A = await buildAttemptTrainingSet(log, opts);
    // Flip every label of the students of fold 2.
    const flipped = makeLog(
      rows.map((r, k) => (A.fold[k] === 2 ? ([r[0], r[1], r[2], 1 - r[3]] as Attempt) : r)),
    );
    const B = await buildAttemptTrainingSet(flipped, opts);
    const inFold = rows.map((_, k) => k).filter((k) => A.fold[k] === 2);
    expect(inFold.length).toBeGreaterThan(50);
    for (const name of ["item_mean", "item_count", "skill_mean", "skill_count", "elo_difficulty"]) {
      const a = featureColumn(A.X, name);
      const b = featureColumn(B.X, name);
      for (const k of inFold) expect(b[k]).toBe(a[k]);
    }
    // ...while rows of other folds do see fold 2's labels through the statistics.
    const a = featureColumn(A.X, "item_mean");
    const b = featureColumn(B.X, "item_mean");
    expect(rows.some((_, k) => A.fold[k] !== 2 && a[k] !== b[k])).toBe(true);
  });
});

describe("student-level split", () => {
  it("studentFolds: folds differ in size by at most one and are a pure function of the seed", () => {
    const f = studentFolds(23, 5, 9);
    const sizes = [0, 0, 0, 0, 0];
    for (const x of f) sizes[x]!++;
    expect(Math.max(...sizes) - Math.min(...sizes)).toBeLessThanOrEqual(1);
    expect(Array.from(studentFolds(23, 5, 9))).toEqual(Array.from(f));
    expect(Array.from(studentFolds(23, 5, 10))).not.toEqual(Array.from(f));
    expect(() => studentFolds(3, 5, 1)).toThrow(/at least 5 students/);
  });

  it("never puts rows of one student on both sides, and covers every row once", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 10, max: 30 }),
        fc.integer({ min: 1, max: 12 }),
        fc.nat(),
        async (nS, per, seed) => {
          const log = makeLog(syntheticAttempts(nS, per, seed));
          const set = await buildAttemptTrainingSet(log, {
            folds: 3,
            seed,
            bkt: new BKT(),
            elo: new Elo({ fitK: false }).fit(log),
          });
          const split = trainingSplit(log, set, { nGroups: 2, seed });
          const trainUsers = new Set(Array.from(split.trainRows, (r) => log.user[r]!));
          for (const r of split.validRows) expect(trainUsers.has(log.user[r]!)).toBe(false);
          expect(split.trainRows.length + split.validRows.length).toBe(log.n);
          // Calibration groups inside validation are whole students too.
          const groupOf = new Map<number, number>();
          split.validRows.forEach((r, q) => {
            const u = log.user[r]!;
            const g = split.validGroup[q]!;
            expect(groupOf.get(u) ?? g).toBe(g);
            groupOf.set(u, g);
          });
        },
      ),
      { numRuns: 20 },
    );
  });

  it("subsetLog keeps whole students, rows in order, with the original row index", () => {
    const log = makeLog(HAND);
    const sub = subsetLog(log, (u) => u === 1);
    expect(sub.n).toBe(1);
    expect(Array.from(sub.rows)).toEqual([9]);
    expect(sub.correct[0]).toBe(0);
    expect(ATTEMPT_FEATURES.length).toBe(attemptFeatures(sub, plainContext(fitItemStats(log))).nCols);
  });
});
