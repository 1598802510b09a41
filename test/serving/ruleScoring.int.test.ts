import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { buildFeatures } from "../../features/windows.ts";
import {
  RULE_FEATURE_COLUMNS,
  type RuleFeatureRow,
  scoreRuleRow,
  storedRuleRow,
} from "../../models/ruleScorer.ts";
import { ruleRowAt } from "../../serving/masteryView.ts";
import { loadRuleConfig, scoreRules } from "../../serving/ruleScoring.ts";
import { DuckStore } from "../../storage/duckdb.ts";
import { insertEvents, type TestEvent } from "../features/eventRows.ts";

const T = new Date("2024-03-31T00:00:00Z");
const DAY = 86_400_000;
const ago = (days: number): string => new Date(T.getTime() - days * DAY).toISOString();

function quiz(student: string, topic: string, days: number, correct: boolean, hints = 0): TestEvent {
  return {
    type: "quiz_attempt",
    student,
    topic,
    ts: ago(days),
    is_correct: correct,
    time_spent_sec: 30,
    hints_used: hints,
  };
}

const LOG: TestEvent[] = [
  ...[1, 2, 3, 4, 5, 6].map((d) => quiz("s1", "t1", d, d % 3 !== 0, d % 2)),
  ...[10, 20, 40].map((d) => quiz("s1", "t1", d, false, 2)),
  { type: "assignment", student: "s1", topic: "t1", ts: ago(8), score_pct: 72 },
  { type: "practice", student: "s1", topic: "t2", ts: ago(3), attempts: 8, correct_count: 6 },
  { type: "video", student: "s2", topic: "t1", ts: ago(50), watch_pct: 100 },
  quiz("s2", "t2", 95, true),
];

describe("scoreRules job", () => {
  it("stores the pure scorer's stored form (no recency), which read as of the snapshot is exactly scoreRuleRow", async () => {
    const store = await DuckStore.open(":memory:");
    await insertEvents(store, LOG);
    const res = await scoreRules(store, { asOf: T, now: new Date("2024-04-01T00:00:00Z") });
    expect(res.builtFeatures).toBe(true);
    expect(res.scored).toBe(4);
    expect(res.changed).toBe(4);
    const { config, modelVersion } = loadRuleConfig();
    expect(res.modelVersion).toBe(modelVersion);
    expect(modelVersion).toMatch(/^rule-[0-9a-f]{10}$/);

    const features = await store.all<Record<string, unknown>>(
      `SELECT student_key, topic_id, epoch_us(last_activity_at)::DOUBLE AS last_us, ${RULE_FEATURE_COLUMNS.join(", ")}
       FROM features ORDER BY 1, 2`,
    );
    const mastery = await store.all<Record<string, unknown>>(
      "SELECT * FROM student_mastery ORDER BY student_key, topic_id",
    );
    expect(mastery).toHaveLength(4);
    features.forEach((f, i) => {
      const m = mastery[i] as Record<string, unknown>;
      const stored = storedRuleRow(f as RuleFeatureRow, f.last_us as number, config);
      expect([m.student_key, m.topic_id]).toEqual([f.student_key, f.topic_id]);
      expect(m.mastery_score).toBe(stored.score);
      expect(m.explanation).toBe(JSON.stringify(stored.explanation));
      // read time as of the snapshot: the score and top-3 explanation scoring the features row gives
      const pure = scoreRuleRow(f as RuleFeatureRow, config);
      const read = ruleRowAt(m as Parameters<typeof ruleRowAt>[0], T);
      expect(read.mastery_score).toBe(pure.score);
      expect(read.explanation).toBe(JSON.stringify(pure.explanation));
      expect(m.score_source).toBe("rule_based");
      expect(m.model_version).toBe(modelVersion);
      expect((m.as_of as Date).toISOString()).toBe(T.toISOString());
    });
    store.close();
  });

  it("appends history only for new or changed scores", async () => {
    const store = await DuckStore.open(":memory:");
    await insertEvents(store, LOG);
    await scoreRules(store, { asOf: T });
    const again = await scoreRules(store, { asOf: T });
    expect(again.changed).toBe(0);
    // one new attempt for s1/t1 changes only that score
    await insertEvents(store, [quiz("s1", "t1", -0.5, true)]);
    const later = new Date(T.getTime() + DAY);
    await buildFeatures(store, later);
    const res = await scoreRules(store); // the latest snapshot
    expect(res.asOf.toISOString()).toBe(later.toISOString());
    expect(res.builtFeatures).toBe(false);
    // Stored scores leave recency out (read time adds it), so only s1/t1's score changes: the other pairs'
    // evidence stays in the same bands a day later (s1/t2 3 -> 4 days, s2/t1 50 -> 51, s2/t2 outside all)
    const hist = await store.all<{ student_key: string; topic_id: string; n: bigint }>(
      "SELECT student_key, topic_id, count(*) AS n FROM student_mastery_history GROUP BY ALL ORDER BY 1, 2",
    );
    expect(hist.map((h) => [h.student_key, h.topic_id, Number(h.n)])).toEqual([
      ["s1", "t1", 2],
      ["s1", "t2", 1],
      ["s2", "t1", 1],
      ["s2", "t2", 1],
    ]);
    expect(res.changed).toBe(1);
    const cur = await store.all<{ n: bigint }>("SELECT count(*) AS n FROM student_mastery");
    expect(cur[0]?.n).toBe(4n);
    store.close();
  });

  it("writes the same rows when scoring in worker threads as on the calling thread", async () => {
    const events = variedEvents();
    const read = async (workers: number, blockRows?: number) => {
      const store = await DuckStore.open(":memory:");
      await insertEvents(store, events);
      const res = await scoreRules(store, {
        asOf: T,
        now: new Date("2024-04-01T00:00:00Z"),
        workers,
        ...(blockRows === undefined ? {} : { blockRows }),
      });
      const rows = await store.all(
        "SELECT student_key, topic_id, mastery_score, explanation FROM student_mastery ORDER BY 1, 2",
      );
      const hist = await store.all(
        "SELECT student_key, topic_id, mastery_score, explanation FROM student_mastery_history ORDER BY 1, 2",
      );
      store.close();
      return { res, rows, hist };
    };
    const inThread = await read(0);
    const threaded = await read(3);
    expect(inThread.res.scored).toBeGreaterThan(200);
    expect(threaded.res.scored).toBe(inThread.res.scored);
    expect(threaded.rows).toEqual(inThread.rows);
    expect(threaded.hist).toEqual(inThread.hist);
    // Bounded memory: the feature rows read and scored in blocks of any size (blocks end inside a DuckDB
    // chunk, the last one is short, two block buffers alternate): every row is scored exactly once.
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: inThread.res.scored + 5 }),
        fc.integer({ min: 1, max: 3 }),
        async (blockRows, workers) => {
          const blocked = await read(workers, blockRows);
          expect(blocked.res.scored).toBe(inThread.res.scored);
          expect(blocked.rows).toEqual(inThread.rows);
          expect(blocked.hist).toEqual(inThread.hist);
        },
      ),
      {
        numRuns: 3,
        examples: [
          [50, 2],
          [1, 3],
        ],
      },
    );
  }, 240_000);

  it("a full rerun over stored scores replaces them: the rows a first run stores, history for the changed ones", async () => {
    const dir = mkdtempSync(join(tmpdir(), "rule-rerun-"));
    const open = (name: string) => DuckStore.open(join(dir, name), { encryption: null });
    const later = new Date(T.getTime() + DAY);
    const extra = [quiz("s1", "t1", -0.5, true), quiz("s7", "t3", -0.25, false)];
    try {
      const rerun = await open("rerun.duckdb");
      await insertEvents(rerun, variedEvents());
      const first = await scoreRules(rerun, { asOf: T, now: new Date("2024-04-01T00:00:00Z") });
      const before = await rerun.all<{ student_key: string; topic_id: string; mastery_score: number }>(
        "SELECT student_key, topic_id, mastery_score FROM student_mastery",
      );
      await insertEvents(rerun, extra);
      await buildFeatures(rerun, later);
      const res = await scoreRules(rerun, { asOf: later, now: new Date("2024-04-02T00:00:00Z") });
      const fresh = await open("fresh.duckdb");
      await insertEvents(fresh, [...variedEvents(), ...extra]);
      await buildFeatures(fresh, later);
      await scoreRules(fresh, { asOf: later, now: new Date("2024-04-02T00:00:00Z") });
      const sql = "SELECT * FROM student_mastery ORDER BY student_key, topic_id, score_source";
      const rows = await rerun.all<{ student_key: string; topic_id: string; mastery_score: number }>(sql);
      expect(rows).toEqual(await fresh.all(sql));
      // The later snapshot keeps every pair and adds the ones whose first evidence entered its window.
      expect(res.scored).toBeGreaterThanOrEqual(first.scored);
      expect(rows).toHaveLength(res.scored);
      const old = new Map(before.map((r) => [`${r.student_key}/${r.topic_id}`, r.mastery_score]));
      const changed = rows.filter((r) => old.get(`${r.student_key}/${r.topic_id}`) !== r.mastery_score);
      expect(changed.length).toBeGreaterThan(0);
      expect(changed.length).toBeLessThan(res.scored);
      expect(res.changed).toBe(changed.length);
      const hist = await rerun.one<{ n: bigint }>("SELECT count(*) AS n FROM student_mastery_history");
      expect(Number(hist?.n)).toBe(first.scored + changed.length);
      rerun.close();
      fresh.close();
      await Promise.all([rerun.whenClosed(), fresh.whenClosed()]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);

  it("uses the config it is given and rejects a bad one naming the key", async () => {
    const store = await DuckStore.open(":memory:");
    await insertEvents(store, LOG);
    const bad = join(tmpdir(), `rule-weights-bad-${process.pid}.yaml`);
    writeFileSync(
      bad,
      "prior: 0.5\nshrinkage_k: 5\nevidence_half_life_days: 14\ninactivity_half_life_days: 30\nweights: {accuracy: 1, recency: 0, trend: 0, hint_usage: 0, assignment_score: 0, practice_success: 0, video_completio: 0}\nnormalization: {hint_rate_max: 2, trend_slope_full: 0.03, trend_min_attempts: 5}\n",
    );
    await expect(scoreRules(store, { asOf: T, configPath: bad })).rejects.toThrow(
      /weights: unknown key "video_completio"/,
    );
    store.close();
  });
});

/** 40 students x 6 topics with varied evidence (every signal, empty windows, clamps). */
function variedEvents(): TestEvent[] {
  const events: TestEvent[] = [];
  for (let s = 0; s < 40; s++) {
    for (let t = 0; t < 6; t++) {
      const k = s * 6 + t;
      for (let a = 0; a < k % 9; a++)
        events.push(quiz(`s${s}`, `t${t}`, (k * 7 + a * 5) % 100, (k + a) % 3 !== 0, a % 3));
      if (k % 4 === 0)
        events.push({
          type: "assignment",
          student: `s${s}`,
          topic: `t${t}`,
          ts: ago(k % 40),
          score_pct: k % 101,
        });
      if (k % 5 === 1)
        events.push({
          type: "practice",
          student: `s${s}`,
          topic: `t${t}`,
          ts: ago(k % 20),
          attempts: 5,
          correct_count: k % 6,
        });
      if (k % 3 === 2)
        events.push({
          type: "video",
          student: `s${s}`,
          topic: `t${t}`,
          ts: ago(k % 60),
          watch_pct: k % 100,
        });
    }
  }
  return events;
}
