import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEFAULT_DRIFT_CONFIG } from "../../monitoring/config.ts";
import { decayVerdicts, type LivePerformance, livePerformance } from "../../monitoring/performance.ts";
import { DuckStore } from "../../storage/duckdb.ts";
import { EXPERIMENT_DDL, SERVING_DDL } from "../../storage/schema.ts";

describe("live performance", () => {
  let store: DuckStore;
  beforeAll(async () => {
    store = await DuckStore.open(":memory:");
    for (const ddl of [...EXPERIMENT_DDL, ...SERVING_DDL]) await store.run(ddl);
    const hist = (s: string, t: string, p: number, v: string, at: string) =>
      store.run(
        `INSERT INTO student_mastery_history (student_key, topic_id, mastery_score, score_source, model_version, as_of, explanation, recorded_at) VALUES ('${s}', '${t}', ${p}, 'blend', '${v}', TIMESTAMP '${at}', '{}', TIMESTAMP '${at}')`,
      );
    const quiz = (id: string, s: string, t: string, ok: boolean, at: string) =>
      store.run(
        `INSERT INTO raw_events (event_id, type, student_key, topic_id, ts, is_correct, ingested_at) VALUES ('${id}', 'quiz_attempt', '${s}', '${t}', TIMESTAMP '${at}', ${ok}, TIMESTAMP '${at}')`,
      );
    await hist("a", "t", 0.8, "m@1", "2025-03-01 00:00:00");
    await quiz("q1", "a", "t", true, "2025-03-02 00:00:00");
    await hist("a", "t", 0.3, "m@1", "2025-03-03 00:00:00");
    await quiz("q2", "a", "t", false, "2025-03-04 00:00:00");
    await quiz("q3", "a", "t", true, "2025-03-05 00:00:00"); // also after the 0.3 score (within 7 days)
    await quiz("q4", "a", "t", true, "2025-03-25 00:00:00"); // 22 days after the last score: no label
    await hist("b", "t", 0.6, "m@1", "2025-03-01 00:00:00");
    await quiz("q5", "b", "t", false, "2025-03-01 01:00:00");
    await hist("b", "t", 0.2, "m@2", "2025-03-02 00:00:00");
    await quiz("q6", "b", "t", true, "2025-03-02 01:00:00");
    await quiz("q7", "b", "u", true, "2025-03-02 02:00:00"); // no score for topic u: no label
    await store.run(
      `INSERT INTO experiment_exposures VALUES ('exp1', 'A', 'a', 'm', 1, 0.8, TIMESTAMP '2025-03-01 00:00:00'),
                                               ('exp1', 'B', 'b', 'm', 2, 0.6, TIMESTAMP '2025-03-01 00:00:00')`,
    );
    await store.run(
      `INSERT INTO teacher_labels VALUES ('l1', 'a', 't', 0.9, 'knows it', 'teacher1', 0.3, 'blend', TIMESTAMP '2025-03-03 12:00:00')`,
    );
  });
  afterAll(() => store.close());

  it("pairs each answer with the score current just before it, per model version", async () => {
    const perf = await livePerformance(
      store,
      { from: new Date("2025-03-01T00:00:00Z"), to: new Date("2025-04-01T00:00:00Z") },
      7,
    );
    const m1 = perf.versions.find((v) => v.modelVersion === "m@1" && v.labelSource === "next_answer")!;
    // pairs (p, y): (.8,1) (.3,0) (.3,1) (.6,0)
    expect(m1.n).toBe(4);
    expect(m1.positiveRate).toBe(0.5);
    // positives {.8, .3} vs negatives {.3, .6}: .8 beats both, .3 ties .3 (1/2) and loses to .6 -> 2.5 / 4
    expect(m1.auc).toBeCloseTo(2.5 / 4, 12);
    expect(m1.logloss).toBeCloseTo(-(Math.log(0.8) + Math.log(0.7) + Math.log(0.3) + Math.log(0.4)) / 4, 12);
    expect(m1.daily.map((d) => [d.day, d.n])).toEqual([
      ["2025-03-01", 1],
      ["2025-03-02", 1],
      ["2025-03-04", 1],
      ["2025-03-05", 1],
    ]);
    const m2 = perf.versions.find((v) => v.modelVersion === "m@2")!;
    expect(m2.n).toBe(1);
    expect(m2.logloss).toBeCloseTo(-Math.log(0.2), 12);
    // Teacher correction (0.9 -> label 1) paired with the 0.3 score before it.
    const teacher = perf.versions.find((v) => v.labelSource === "teacher")!;
    expect(teacher).toMatchObject({ modelVersion: "m@1", n: 1, positiveRate: 1 });
    expect(teacher.logloss).toBeCloseTo(-Math.log(0.3), 12);
    // Arms: every answer within 7 days after the student's latest exposure is scored by that exposure:
    // A (a, 0.8): q1 1, q2 0, q3 1 (q4 is 24 days later); B (b, 0.6): q5 0, q6 1, q7 1.
    expect(perf.arms.map((a) => [a.arm, a.model, a.n, a.positiveRate])).toEqual([
      ["A", "m@1", 3, 2 / 3],
      ["B", "m@2", 3, 2 / 3],
    ]);
    expect(perf.arms[0]!.logloss).toBeCloseTo(-(2 * Math.log(0.8) + Math.log(0.2)) / 3, 12);
  });

  it("decides decay against the previous window and refuses a verdict on few labels", () => {
    const mk = (n: number, auc: number, logloss: number, ece: number): LivePerformance => ({
      window: { from: "", to: "" },
      horizonDays: 7,
      versions: [
        {
          modelVersion: "m@1",
          scoreSource: "blend",
          labelSource: "next_answer",
          n,
          auc,
          logloss,
          ece,
          positiveRate: 0.5,
          daily: [],
        },
      ],
      arms: [],
    });
    const cfg = DEFAULT_DRIFT_CONFIG.performance;
    const [bad] = decayVerdicts(mk(500, 0.7, 0.6, 0.02), mk(500, 0.75, 0.55, 0.02), cfg);
    expect(bad!.decayed).toBe(true);
    expect(bad!.reasons.join(" ")).toMatch(/AUC fell 0.7500 -> 0.7000/);
    expect(bad!.reasons.join(" ")).toMatch(/log-loss rose/);
    const [fine] = decayVerdicts(mk(500, 0.74, 0.56, 0.02), mk(500, 0.75, 0.55, 0.02), cfg);
    expect(fine!.decayed).toBe(false);
    const [few] = decayVerdicts(mk(50, 0.5, 0.9, 0.3), mk(500, 0.75, 0.55, 0.02), cfg);
    expect(few!.decayed).toBe(false);
    expect(few!.reasons[0]).toMatch(/only 50 labels/);
  });
});
