import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { BKT } from "../../models/bkt.ts";
import { Elo } from "../../models/elo.ts";
import {
  ATTEMPT_FEATURES,
  type AttemptContext,
  AttemptTimeError,
  attemptFeatures,
  fitItemStats,
  TIME_FEATURES,
} from "../../training/attemptFeatures.ts";
import { trainAttemptModel } from "../../training/blendTrain.ts";
import { loadPredictor } from "../../training/evaluate.ts";
import { virtualAttemptLog } from "../../training/kinds/attemptScoring.ts";
import type { ResponseLog } from "../../training/responses.ts";
import { loadResponses, parseResponseColumns } from "../../training/responses.ts";
import { type Attempt, makeLog } from "./attemptLog.ts";

const H = 3_600_000;
const D = 24 * H;

function timed(rows: readonly Attempt[], times: readonly number[]): ResponseLog {
  const log = makeLog(rows);
  log.time = Float64Array.from(times);
  return log;
}

function ctxFor(log: ResponseLog): AttemptContext {
  return { bkt: new BKT(), elo: new Elo({ fitK: false }), itemStats: fitItemStats(log), time: true };
}

const get = (log: ResponseLog, r: number, name: string): number => {
  const X = attemptFeatures(log, ctxFor(log));
  const c = X.names.indexOf(name);
  return X.data[c * X.nRows + r]!;
};

// One student: s1 at t0, t0+30 min, t0+2 d, t0+40 d; s2 at t0+2 d + 10 min; then s1 at t0+40 d + 1 min.
const T0 = Date.parse("2024-01-01T00:00:00Z");
const ROWS: Attempt[] = [
  ["a", "s1", "i1", 1],
  ["a", "s1", "i1", 0],
  ["a", "s1", "i2", 1],
  ["a", "s2", "i3", 1],
  ["a", "s1", "i2", 0],
  ["a", "s1", "i1", 1],
];
const TIMES = [T0, T0 + 0.5 * H, T0 + 2 * D, T0 + 2 * D + 10 * 60_000, T0 + 40 * D, T0 + 40 * D + 60_000];

describe("time-aware attempt features", () => {
  const log = timed(ROWS, TIMES);
  const X = attemptFeatures(log, ctxFor(log));

  it("appends TIME_FEATURES after ATTEMPT_FEATURES", () => {
    expect(X.names).toEqual([...ATTEMPT_FEATURES, ...TIME_FEATURES]);
    expect(X.nCols).toBe(ATTEMPT_FEATURES.length + 22);
  });

  it("counts day windows on known answers", () => {
    // Row 1 (t0+30 min): one s1 attempt 30 min before, correct.
    expect(get(log, 1, "skill_attempts_1h")).toBe(1);
    expect(get(log, 1, "skill_accuracy_1h")).toBe(1);
    expect(get(log, 1, "skill_hours_since_last")).toBeCloseTo(0.5, 12);
    // Row 2 (t0+2 d): nothing in 1 h / 1 d; both s1 attempts in 7 d, accuracy 1/2.
    expect(get(log, 2, "skill_attempts_1d")).toBe(0);
    expect(Number.isNaN(get(log, 2, "skill_accuracy_1d"))).toBe(true);
    expect(get(log, 2, "skill_attempts_7d")).toBe(2);
    expect(get(log, 2, "skill_accuracy_7d")).toBe(0.5);
    expect(get(log, 2, "skill_hours_since_last")).toBeCloseTo(47.5, 12);
    // Row 3 (s2, t0+2 d+10 min): first s2 attempt; overall 1 h holds row 2.
    expect(get(log, 3, "skill_attempts_90d")).toBe(0);
    expect(Number.isNaN(get(log, 3, "skill_hours_since_last"))).toBe(true);
    expect(get(log, 3, "overall_attempts_1h")).toBe(1);
    expect(get(log, 3, "overall_hours_since_last")).toBeCloseTo(10 / 60, 12);
    // Row 4 (t0+40 d): 30 d window empty, 90 d holds rows 0-3 (s1: rows 0-2, 2 of 3 correct).
    expect(get(log, 4, "overall_attempts_30d")).toBe(0);
    expect(get(log, 4, "overall_attempts_90d")).toBe(4);
    expect(get(log, 4, "skill_attempts_90d")).toBe(3);
    expect(get(log, 4, "skill_accuracy_90d")).toBeCloseTo(2 / 3, 12);
    // Row 5: row 4 (incorrect) one minute before.
    expect(get(log, 5, "skill_attempts_1h")).toBe(1);
    expect(get(log, 5, "skill_accuracy_1h")).toBe(0);
  });

  it("is point in time: later rows and their labels never change earlier rows' features", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.tuple(
            fc.integer({ min: 0, max: 2 }),
            fc.integer({ min: 0, max: 1 }),
            fc.integer({ min: 1, max: 5 * D }),
          ),
          {
            minLength: 2,
            maxLength: 40,
          },
        ),
        fc.integer({ min: 1, max: 39 }),
        (steps, cutRaw) => {
          const cut = Math.min(cutRaw, steps.length - 1);
          let t = T0;
          const rows: Attempt[] = [];
          const times: number[] = [];
          for (const [s, y, dt] of steps) {
            t += dt;
            rows.push(["u", `s${s}`, `i${s}`, y]);
            times.push(t);
          }
          const full = timed(rows, times);
          const prefix = timed(rows.slice(0, cut), times.slice(0, cut));
          // Flip every label from `cut` on: earlier rows must not notice.
          const flipped = timed(
            rows.map((r, i) => (i >= cut ? ([r[0], r[1], r[2], 1 - r[3]] as Attempt) : r)),
            times,
          );
          const ctx = ctxFor(full);
          const A = attemptFeatures(full, ctx);
          const B = attemptFeatures(prefix, ctx);
          const C = attemptFeatures(flipped, ctx);
          const base = ATTEMPT_FEATURES.length;
          for (let c = base; c < A.nCols; c++)
            for (let r = 0; r < cut; r++) {
              expect(Object.is(A.data[c * A.nRows + r], B.data[c * B.nRows + r])).toBe(true);
              expect(Object.is(A.data[c * A.nRows + r], C.data[c * C.nRows + r])).toBe(true);
            }
          // And row `cut` (its own label flipped) does not change either.
          for (let c = base; c < A.nCols; c++)
            expect(Object.is(A.data[c * A.nRows + cut], C.data[c * C.nRows + cut])).toBe(true);
        },
      ),
      { numRuns: 100 },
    );
  });

  it("throws a typed error naming the fix when a time-aware model gets a log without times", () => {
    const plain = makeLog(ROWS);
    expect(() => attemptFeatures(plain, ctxFor(plain))).toThrow(AttemptTimeError);
    expect(() => attemptFeatures(plain, ctxFor(plain))).toThrow(/time=COL/);
    const back = timed(ROWS, [...TIMES].reverse());
    expect(() => attemptFeatures(back, ctxFor(back))).toThrow(/not in time order/);
  });

  it("reads time=COL (epoch seconds or ISO) and orders a user's rows by it", () => {
    const dir = mkdtempSync(join(tmpdir(), "time-col-"));
    const f = join(dir, "log.csv");
    writeFileSync(f, "u,s,y,t\na,s1,1,1704067300\na,s1,0,2024-01-01T00:00:00Z\nb,s1,1,1704067200\n");
    const cols = parseResponseColumns("user=u,skill=s,correct=y,time=t");
    expect(cols.time).toBe("t");
    const l = loadResponses(f, cols);
    expect(Array.from(l.time!)).toEqual([1704067200000, 1704067300000, 1704067200000]);
    expect(Array.from(l.correct)).toEqual([0, 1, 1]);
  });

  it("the serving log carries event times and puts the virtual attempt at the scoring time", () => {
    const { log: v, virtualRows } = virtualAttemptLog(
      [
        { topicId: "s1", questionId: "q1", correct: true, timeMs: T0 },
        { topicId: "s1", questionId: "q2", correct: false, timeMs: T0 + H },
      ],
      ["s1"],
      T0 + 1.5 * H,
    );
    expect(Array.from(v.time!)).toEqual([T0, T0 + H, T0 + 1.5 * H]);
    const r = virtualRows[0]!;
    expect(get(v, r, "skill_attempts_1h")).toBe(1);
    expect(get(v, r, "skill_attempts_1d")).toBe(2);
    expect(get(v, r, "skill_accuracy_1d")).toBe(0.5);
  });
});

describe("a time-aware model round trip", () => {
  it("train gbt with time=COL, read back from model.json: same predictions; a log without times is refused", async () => {
    const dir = mkdtempSync(join(tmpdir(), "time-model-"));
    const f = join(dir, "log.tsv");
    const lines = ["user\tskill\titem\ty\tt"];
    let h = 12345;
    const rnd = () => {
      h = (h * 1103515245 + 12345) % 2147483648;
      return h / 2147483648;
    };
    for (let u = 0; u < 60; u++) {
      let t = 1_700_000_000 + u * 1000;
      const ability = rnd();
      for (let k = 0; k < 25; k++) {
        t += Math.floor(rnd() * 3 * 86400);
        const s = Math.floor(rnd() * 3);
        lines.push(
          `u${u}\ts${s}\ti${s}-${Math.floor(rnd() * 4)}\t${rnd() < 0.3 + 0.5 * ability ? 1 : 0}\t${t}`,
        );
      }
    }
    writeFileSync(f, `${lines.join("\n")}\n`);
    const columns = parseResponseColumns("user=user,skill=skill,item=item,correct=y,time=t");
    const out = join(dir, "model");
    const res = await trainAttemptModel({
      kind: "gbt",
      data: f,
      columns,
      out,
      seed: 1,
      gbt: { nThreads: 1 },
    });
    expect(res.model.context.time).toBe(true);
    const log = loadResponses(f, columns);
    const again = loadPredictor(out).predictLog(log);
    expect(Array.from(again)).toEqual(Array.from(res.model.predictLog(log)));
    for (const p of again) expect(p >= 0 && p <= 1).toBe(true);
    const plain = loadResponses(f, parseResponseColumns("user=user,skill=skill,item=item,correct=y"));
    expect(() => loadPredictor(out).predictLog(plain)).toThrow(AttemptTimeError);
  }, 60_000);
});
