import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { analyzeExperiment, type StudentOutcome } from "../../experiments/analysis.ts";
import { experimentReport, renderHtml, renderText } from "../../experiments/report.ts";
import { type Experiment, type ExperimentStore, openExperimentStore } from "../../experiments/store.ts";
import { type OpenedStore, PgStore } from "../../storage/postgres.ts";

const PG_URL = process.env.MASTERY_PG_URL ?? "postgres://postgres@127.0.0.1:5432/test";
const DAY = 86_400_000;
const T0 = Date.parse("2025-03-01T00:00:00Z");
const at = (days: number): string => new Date(T0 + days * DAY).toISOString();

for (const backend of ["duckdb", "postgres"] as const) {
  describe(`experiments on ${backend}`, () => {
    let opened: OpenedStore;
    let store: ExperimentStore;
    let exp: Experiment;
    const schema = `exp_test_${process.pid}_${randomBytes(4).toString("hex")}`;

    beforeAll(async () => {
      ({ experiments: store, opened } = await openExperimentStore({
        dbPath: ":memory:",
        pgUrl: backend === "postgres" ? PG_URL : undefined,
        pgSchema: backend === "postgres" ? schema : undefined,
        now: () => new Date(T0),
      }));
      exp = await store.create({
        id: "exp1",
        name: "elo vs gbt",
        arms: [
          { name: "control", model: { name: "mastery", alias: "champion" }, share: 0.5 },
          { name: "treatment", model: { name: "mastery", version: 3 }, share: 0.5 },
        ],
        startAt: at(-1),
        salt: "fixed-salt",
      });
      const ex = (arm: string, student: string, days: number) => ({
        experimentId: "exp1",
        arm,
        studentKey: student,
        modelName: "mastery",
        modelVersion: arm === "control" ? 2 : 3,
        score: 0.6,
        servedAt: at(days),
      });
      await store.logExposures([
        ex("control", "c1", 0),
        ex("control", "c2", 0),
        ex("control", "c3", 0),
        ex("treatment", "t1", 0),
        ex("treatment", "t2", 0),
        ex("treatment", "t3", 0),
        ex("control", "c1", 4), // a later exposure does not move c1's first exposure
      ]);
      // Quiz attempts: [student, days after T0, correct]. Out-of-window rows must be ignored.
      const quiz: [string, number, boolean][] = [
        ["c1", -0.5, true], // before exposure
        ["c1", 1, true],
        ["c1", 2, false],
        ["c1", 8, true], // after the 7-day window
        ["c2", 1, true],
        ["c2", 2, true],
        ["c2", 3, true],
        ["c2", 6.9, false],
        ["t1", 1, true],
        ["t2", 1, false],
        ["t2", 2, true],
        ["t3", 1, true],
        ["t3", 2, true],
        ["t3", 3, true],
      ];
      let k = 0;
      for (const [s, d, ok] of quiz)
        await opened.store.run(
          `INSERT INTO raw_events (event_id, type, student_key, topic_id, ts, is_correct, ingested_at)
           VALUES ($1, 'quiz_attempt', $2, 'frac', $3, $4, $3)`,
          [`e${k++}`, s, at(d), ok],
        );
      // Mastery history: [student, topic, days, score].
      const hist: [string, string, number, number][] = [
        ["c1", "frac", -1, 0.5],
        ["c1", "frac", 3, 0.85], // crossing at day 3
        ["c2", "frac", -2, 0.9],
        ["c2", "frac", 1, 0.95], // already above before: not a crossing
        ["t1", "frac", 1, 0.85], // first score above: crossing at day 1
        ["t2", "frac", 2, 0.7],
        ["t2", "frac", 5, 0.82], // crossing at day 5
      ];
      for (const [s, topic, d, score] of hist)
        await opened.store.run(
          `INSERT INTO student_mastery_history (student_key, topic_id, mastery_score, score_source, model_version, as_of, explanation, recorded_at)
           VALUES ($1, $2, $3, 'bkt', 'mastery@2', $4, '{}', $4)`,
          [s, topic, score, at(d)],
        );
    });

    afterAll(async () => {
      if (opened.store instanceof PgStore) await opened.store.dropSchema();
      await opened.close();
    });

    it("stores the experiment with a sticky router and records share changes with the moved bucket count", async () => {
      const r1 = store.router(exp);
      const arm = r1.assign("student-42").arm;
      expect(store.router(await store.get("exp1")).assign("student-42").arm).toBe(arm);
      const { movedBuckets, experiment } = await store.setShares(
        "exp1",
        { control: 0.8, treatment: 0.2 },
        { actor: "alice" },
      );
      expect(movedBuckets).toBe(3000);
      expect(store.router(experiment).bucketsPerArm()).toEqual([8000, 2000]);
      const { movedBuckets: back } = await store.setShares(
        "exp1",
        { control: 0.5, treatment: 0.5 },
        { actor: "alice" },
      );
      expect(back).toBe(3000);
      // Shares restored: the original assignment again (buckets return to their first owners).
      expect(store.router(await store.get("exp1")).assign("student-42").arm).toBe(arm);
      const rows = await opened.store.all<{ seq: number; moved_buckets: number; changed_by: string }>(
        "SELECT seq, moved_buckets, changed_by FROM experiment_share_history WHERE experiment_id = 'exp1' ORDER BY seq",
      );
      expect(rows.map((r) => [Number(r.seq), Number(r.moved_buckets), r.changed_by])).toEqual([
        [1, 0, "create"],
        [2, 3000, "alice"],
        [3, 3000, "alice"],
      ]);
    });

    it("reports next-week accuracy, time to mastery with censoring, SRM and the planned size (hand-computed)", async () => {
      const r = await experimentReport(opened.store, await store.get("exp1"), {
        asOf: new Date(T0 + 10 * DAY),
        bootstrapResamples: 200,
      });
      const [c, t] = r.arms;
      // control: c1 1/2, c2 3/4, c3 no quiz; treatment: t1 1/1, t2 1/2, t3 3/3
      expect(c!.exposed).toBe(3);
      expect(c!.accuracy).toMatchObject({ students: 2, noQuiz: 1, pending: 0, mean: 0.625 });
      expect(t!.accuracy.mean).toBeCloseTo(5 / 6, 12);
      expect(t!.accuracyVsControl!.diff).toBeCloseTo(5 / 6 - 0.625, 12);
      expect(t!.accuracyVsControl!.se).toBeCloseTo(Math.sqrt(1 / 36 + 1 / 64), 12);
      // mastery: control crossed at 3 (c1), c2 and c3 censored at 10; treatment 1, 5, censored 10
      expect(c!.mastery).toMatchObject({ students: 3, mastered: 1, censored: 2, medianDays: null });
      expect(c!.mastery.rmstDays).toBeCloseTo(3 + 25 * (2 / 3), 9);
      expect(t!.mastery).toMatchObject({ mastered: 2, censored: 1, medianDays: 5 });
      expect(t!.mastery.rmstDays).toBeCloseTo(1 + 4 * (2 / 3) + 23 / 3, 9);
      expect(t!.masteryVsControl!.diff).toBeCloseTo(1 + 4 * (2 / 3) + 23 / 3 - (3 + 25 * (2 / 3)), 9);
      expect(r.srm).toMatchObject({ chi2: 0, df: 1, flagged: false, observed: [3, 3] });
      expect(t!.plannedStudents).toBe(1319);
      expect(r.conclusive).toBe(false);
      expect(t!.verdict).toBe("not yet conclusive: 3 of 1319 planned students (control 2 of 1319)");

      const text = renderText(r);
      expect(text).toMatch(/treatment: not yet conclusive: 3 of 1319/);
      expect(text).toMatch(/sample-ratio check: chi2 = 0\.000, df = 1, p = 1\.00/);
      const html = renderHtml(r);
      expect(html.startsWith("<!doctype html>")).toBe(true);
      expect(html).toContain("<svg");
      expect(html).toContain("Not yet conclusive");
      expect(html).not.toMatch(/not yet conclusive: not yet conclusive/i);
      // Self-contained: no scripts, no external stylesheets, images or fonts.
      expect(html).not.toMatch(/<script|<link|src=|@import|https?:\/\/(?!www\.w3\.org\/2000\/svg)/);
    });

    it("an experiment nobody was exposed to yet: no empty charts, no df = -1, the verdict said once", async () => {
      const none = await store.create({
        id: "exp-empty",
        name: "nobody yet",
        arms: [
          { name: "control", model: { name: "mastery", alias: "champion" }, share: 0.5 },
          { name: "treatment", model: { name: "mastery", version: 3 }, share: 0.5 },
        ],
        startAt: at(-1),
        salt: "fixed-salt",
      });
      const r = await experimentReport(opened.store, none, { asOf: new Date(T0 + 10 * DAY) });
      expect(r.arms.map((a) => a.exposed)).toEqual([0, 0]);
      expect(r.srm.df).toBe(1);
      expect(r.srm.p).toBeNaN();
      expect(r.srm.flagged).toBe(false);
      const text = renderText(r);
      expect(text).toContain("sample-ratio check: no student exposed yet");
      expect(text).not.toMatch(/df = -1/);
      const html = renderHtml(r);
      expect(html).not.toContain("<svg");
      expect(html).not.toMatch(/df = -1/);
      expect(html).toContain("No charts yet: no student of this experiment has been exposed");
      expect(html).toContain(
        "<strong>Not yet conclusive</strong>: keep the experiment running until every arm reaches its planned sample size",
      );
      expect(html).not.toMatch(/not yet conclusive: not yet conclusive/i);
    });

    it("before the week closes, students are pending rather than counted", async () => {
      const r = await experimentReport(opened.store, await store.get("exp1"), {
        asOf: new Date(T0 + 3 * DAY),
      });
      expect(r.arms.map((a) => [a.accuracy.students, a.accuracy.pending])).toEqual([
        [0, 3],
        [0, 3],
      ]);
      // At day 3 the control crossing at day 3 counts; t2's day-5 crossing is in the future: censored.
      expect(r.arms[1]!.mastery).toMatchObject({ mastered: 1, censored: 2 });
    });
  });
}

describe("analysis verdicts (pure)", () => {
  const exp: Experiment = {
    id: "x",
    name: "x",
    status: "running",
    salt: "s",
    arms: [
      { name: "control", model: { name: "m", alias: "champion" }, share: 0.5 },
      { name: "treatment", model: { name: "m", alias: "challenger" }, share: 0.5 },
    ],
    control: "control",
    allocation: [
      [0, 5000, 0],
      [5000, 10000, 1],
    ],
    unit: "student",
    config: {
      mde: 0.05,
      baselineAccuracy: 0.7,
      alpha: 0.05,
      power: 0.8,
      masteryThreshold: 0.8,
      rmstHorizonDays: 28,
      srmAlpha: 0.001,
    },
    startAt: new Date(T0).toISOString(),
    endAt: null,
    createdAt: new Date(T0).toISOString(),
    updatedAt: new Date(T0).toISOString(),
  };
  const student = (arm: string, correct: number, attempts: number): StudentOutcome => ({
    arm,
    firstExposure: T0,
    quizAttempts: attempts,
    quizCorrect: correct,
    masteredAt: null,
  });

  it("declares a significant difference once both arms reach the planned size", () => {
    const rows: StudentOutcome[] = [];
    // control accuracies alternate 0.6 / 0.8 (mean 0.7), treatment 0.7 / 0.9 (mean 0.8): +10 points.
    for (let i = 0; i < 1400; i++) {
      rows.push(student("control", i % 2 ? 6 : 8, 10));
      rows.push(student("treatment", i % 2 ? 7 : 9, 10));
    }
    const r = analyzeExperiment(exp, rows, T0 + 30 * DAY, { bootstrapResamples: 50 });
    expect(r.conclusive).toBe(true);
    expect(r.arms[1]!.accuracyVsControl!.diff).toBeCloseTo(0.1, 12);
    expect(r.arms[1]!.verdict).toMatch(
      /^accuracy higher than control: \+10\.0 pts \[\+9\.\d pts, \+10\.\d pts\]$/,
    );
    expect(r.summary).toMatch(/^treatment: accuracy higher than control/);
  });

  it("flags a sample-ratio mismatch (600 vs 400 at 50/50) above any verdict", () => {
    const rows: StudentOutcome[] = [];
    for (let i = 0; i < 600; i++) rows.push(student("control", 7, 10));
    for (let i = 0; i < 400; i++) rows.push(student("treatment", 7, 10));
    const r = analyzeExperiment(exp, rows, T0 + 30 * DAY, { bootstrapResamples: 50 });
    expect(r.srm.chi2).toBeCloseTo(40, 12);
    expect(r.srm.flagged).toBe(true);
    expect(r.summary).toMatch(/^SAMPLE RATIO MISMATCH \(p = /);
  });
});
