import { createHash } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { type FeatureWatermark, ingestWatermark } from "../../features/incrementalFeatures.ts";
import { studentRangeSql } from "../../features/windows.ts";
import {
  foldRuleEvents,
  RULE_STATE_COLUMNS,
  type RuleState,
  type RuleStateColumn,
  scoreRuleState,
  storedRuleRow,
} from "../../models/ruleScorer.ts";
import { ruleRowAt } from "../../serving/masteryView.ts";
import { loadRuleConfig, scoreRules } from "../../serving/ruleScoring.ts";
import { withExplanationTexts } from "../../serving/storedExplanations.ts";
import { DuckStore } from "../../storage/duckdb.ts";
import { STORED_NUMBERS_SELECT } from "../../storage/explanationNumbers.ts";
import { ruleStateSql } from "../../storage/ruleStateSql.ts";
import { RULE_BLOCK_COLUMNS } from "../../storage/schema.ts";
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

/** Runs of the daily == full property (RULE_PROPERTY_RUNS=150 for a longer hunt; the deadline scales). */
const PROPERTY_RUNS = Number(process.env.RULE_PROPERTY_RUNS ?? 25);

const LOG: TestEvent[] = [
  ...[1, 2, 3, 4, 5, 6].map((d) => quiz("s1", "t1", d, d % 3 !== 0, d % 2)),
  ...[10, 20, 40].map((d) => quiz("s1", "t1", d, false, 2)),
  { type: "assignment", student: "s1", topic: "t1", ts: ago(8), score_pct: 72 },
  { type: "practice", student: "s1", topic: "t2", ts: ago(3), attempts: 8, correct_count: 6 },
  { type: "video", student: "s2", topic: "t1", ts: ago(50), watch_pct: 100 },
  quiz("s2", "t2", 95, true),
  // A quiz 100 half-lives (14 days) before the pair's last event, and the largest practice counts the
  // contract allows: the fixed-point sums keep the first (its kind's own frame) and do not overflow.
  quiz("s3", "t1", 1401, true),
  { type: "video", student: "s3", topic: "t1", ts: ago(1), watch_pct: 40 },
  ...[2, 3].map(
    (d): TestEvent => ({
      type: "practice",
      student: "s3",
      topic: "t1",
      ts: ago(d),
      attempts: 2147483647,
      correct_count: 2147483646,
    }),
  ),
];

describe("scoreRules job", () => {
  it("stores the pure scorer's stored form of each pair's state; the SQL state is the pure fold of its events", async () => {
    const store = await DuckStore.open(":memory:");
    await insertEvents(store, LOG);
    const res = await scoreRules(store, { asOf: T, now: new Date("2024-04-01T00:00:00Z") });
    expect(res.mode).toBe("full");
    expect(res.scored).toBe(5);
    expect(res.changed).toBe(5);
    const { config, modelVersion } = loadRuleConfig();
    expect(res.modelVersion).toBe(modelVersion);
    expect(modelVersion).toMatch(/^rule-[0-9a-f]{10}$/);

    const tUs = BigInt(T.getTime()) * 1000n;
    const states = await store.all<Record<string, unknown>>(
      `SELECT * FROM (${ruleStateSql()}) ORDER BY student_key, topic_id`,
      { t: tUs, h: config.evidenceHalfLifeDays },
    );
    // The stored rows as readers see them: the text rendered from the stored rule block (rule20).
    const mastery = withExplanationTexts(
      await store.all<{ explanation: string; mastery_score: number } & Record<string, unknown>>(
        `SELECT * EXCLUDE (${RULE_BLOCK_COLUMNS.join(", ")}), ${STORED_NUMBERS_SELECT}
         FROM student_mastery ORDER BY student_key, topic_id`,
      ),
    );
    expect(mastery).toHaveLength(5);
    // rid numbers the pairs 1..n, once each (the scores join back by it)
    expect(states.map((r) => Number(r.rid)).sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5]);
    for (const [i, row] of states.entries()) {
      const state = Object.fromEntries(RULE_STATE_COLUMNS.map((c) => [c, Number(row[c])])) as RuleState;
      const m = mastery[i] as Record<string, unknown>;
      const stored = storedRuleRow(state, T.getTime() * 1000, config);
      expect([m.student_key, m.topic_id]).toEqual([row.student_key, row.topic_id]);
      expect(m.mastery_score).toBe(stored.score);
      expect(m.explanation).toBe(JSON.stringify(stored.explanation));
      // the SQL aggregates are the pure fold of the pair's events (to rounding of the sums' order)
      const events = LOG.filter((e) => e.student === row.student_key && e.topic === row.topic_id).map(
        (e) => ({
          tUs: Date.parse(e.ts) * 1000,
          type: e.type,
          isCorrect: e.is_correct ?? null,
          hintsUsed: e.hints_used ?? null,
          attempts: e.attempts ?? null,
          correctCount: e.correct_count ?? null,
          watchPct: e.watch_pct ?? null,
          scorePct: e.score_pct ?? null,
        }),
      );
      const pure = foldRuleEvents(events, config.evidenceHalfLifeDays) as RuleState;
      for (const c of RULE_STATE_COLUMNS)
        expect(Math.abs(state[c] - pure[c])).toBeLessThanOrEqual(1e-12 * Math.max(1, Math.abs(pure[c])));
      if (row.student_key === "s3") {
        // 2^-100 of the last event's weight, yet to the pure fold's relative precision, not rounded to 0
        expect(pure.q_n).toBeGreaterThan(0);
        expect(Math.abs(state.q_n / pure.q_n - 1)).toBeLessThanOrEqual(1e-12);
        expect(Math.abs(state.q_correct / pure.q_correct - 1)).toBeLessThanOrEqual(1e-12);
        expect(Math.abs(state.p_correct / pure.p_correct - 1)).toBeLessThanOrEqual(1e-12);
      }
      // read time as of any later time: the state scored then
      for (const later of [0, 1.5, 30]) {
        const at = new Date(T.getTime() + later * DAY);
        const read = ruleRowAt(m as Parameters<typeof ruleRowAt>[0], at);
        const direct = scoreRuleState(state, at.getTime() * 1000, config);
        expect(read.mastery_score).toBe(direct.score);
        expect(read.explanation).toBe(JSON.stringify(direct.explanation));
      }
      expect(m.score_source).toBe("rule_based");
      expect(m.model_version).toBe(modelVersion);
      expect((m.as_of as Date).toISOString()).toBe(T.toISOString());
    }
    store.close();
  });

  it("keeps a pair whose evidence spans 60 half-lives (weights down to 1e-18) to 1e-12 of the pure fold, on the scale the scorer divides by", async () => {
    const store = await DuckStore.open(":memory:");
    const { config } = loadRuleConfig();
    const h = config.evidenceHalfLifeDays;
    // The only quiz with hints is the oldest: its column's sum is a term ~2^-60 times the newest ones'.
    const log: TestEvent[] = [
      quiz("old", "t", 60 * h, true, 3),
      ...[2, 1, 0.5].map((d) => quiz("old", "t", d, d > 1)),
      { type: "video", student: "old", topic: "t", ts: ago(59 * h), watch_pct: 40 },
    ];
    await insertEvents(store, log);
    const [row] = await store.all<Record<string, unknown>>(`SELECT * FROM (${ruleStateSql()})`, {
      t: BigInt(T.getTime()) * 1000n,
      h,
    });
    const pure = foldRuleEvents(
      log.map((e) => ({
        tUs: Date.parse(e.ts) * 1000,
        type: e.type,
        isCorrect: e.is_correct ?? null,
        hintsUsed: e.hints_used ?? null,
        watchPct: e.watch_pct ?? null,
      })),
      h,
    ) as RuleState;
    expect(pure.q_hints).toBeLessThan(1e-17);
    expect(pure.q_hints).toBeGreaterThan(0);
    // The scorer reads every sum as a ratio to its kind's evidence mass (q_correct / q_n, p_correct / p_n, ...),
    // which is >= 1 in the kind's own frame: a sum is exact to 1e-12 of the larger of itself and that mass.
    const mass = (c: RuleStateColumn) =>
      c.startsWith("q_")
        ? pure.q_n
        : c.startsWith("p_")
          ? pure.p_n
          : c.startsWith("v_")
            ? pure.v_n
            : c.startsWith("a_")
              ? pure.a_n
              : 0;
    for (const c of RULE_STATE_COLUMNS)
      expect(Math.abs(Number(row![c]) - pure[c]), c).toBeLessThanOrEqual(
        1e-12 * Math.max(Math.abs(pure[c]), mass(c)),
      );
    // the evidence that has mass keeps the pure fold's relative precision across 59 half-lives
    for (const c of ["q_n", "q_correct", "v_n", "v_pct"] as const)
      expect(Math.abs(Number(row![c]) / pure[c] - 1), c).toBeLessThanOrEqual(1e-12);
    store.close();
  });

  it("an incremental run refolds and writes only the pairs with new or late events; history only for changed scores", async () => {
    const store = await DuckStore.open(":memory:");
    await insertEvents(store, LOG);
    await scoreRules(store, { asOf: T });
    const again = await scoreRules(store, { asOf: T });
    expect(again.changed).toBe(0);
    const since: FeatureWatermark = { asOf: T, ingestedThroughUs: await ingestWatermark(store) };
    // one new attempt for s1/t1 half a day later, and a late one for s2/t1 (before T, ingested now)
    await insertEvents(store, [quiz("s1", "t1", -0.5, true), quiz("s2", "t1", 2, true)]);
    const later = new Date(T.getTime() + DAY);
    const res = await scoreRules(store, { asOf: later, since });
    expect(res.mode).toBe("incremental");
    expect(res.scored).toBe(2);
    expect(res.changed).toBe(2);
    const hist = await store.all<{ student_key: string; topic_id: string; n: bigint }>(
      "SELECT student_key, topic_id, count(*) AS n FROM student_mastery_history GROUP BY ALL ORDER BY 1, 2",
    );
    expect(hist.map((h) => [h.student_key, h.topic_id, Number(h.n)])).toEqual([
      ["s1", "t1", 2],
      ["s1", "t2", 1],
      ["s2", "t1", 2],
      ["s2", "t2", 1],
      ["s3", "t1", 1],
    ]);
    const cur = await store.all<{ n: bigint }>("SELECT count(*) AS n FROM student_mastery");
    expect(cur[0]?.n).toBe(5n);
    // a changed config (another model version) makes the next run full, and says why
    const other = join(tmpdir(), `rule-weights-other-${process.pid}.yaml`);
    writeFileSync(
      other,
      "prior: 0.4\nshrinkage_k: 5\nevidence_half_life_days: 14\ninactivity_half_life_days: 30\nweights: {accuracy: 1, recency: 0, trend: 0, hint_usage: 0, assignment_score: 0, practice_success: 0, video_completion: 0}\nnormalization: {hint_rate_max: 2, trend_slope_full: 0.03, trend_min_attempts: 5}\n",
    );
    const full = await scoreRules(store, {
      asOf: later,
      configPath: other,
      since: { asOf: later, ingestedThroughUs: await ingestWatermark(store) },
    });
    expect(full.mode).toBe("full");
    expect(full.fullReason).toMatch(/5 stored rule scores are of another model version/);
    rmSync(other, { force: true });
    store.close();
  });

  it(
    "property: daily incremental runs over random logs with late events == one full run (states bit for bit)",
    async () => {
      const ev = fc.record({
        type: fc.constantFrom("quiz_attempt", "quiz_attempt", "assignment", "video", "practice", "chatbot"),
        student: fc.constantFrom("a", "b", "c"),
        topic: fc.constantFrom("x", "y"),
        // event time in seconds from T, and the day (1..4) it is ingested, at or after its own day
        at: fc.integer({ min: -20 * 86_400, max: 4 * 86_400 - 1 }),
        lateBy: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 3 })),
        correct: fc.boolean(),
        n: fc.integer({ min: 0, max: 10 }),
        pct: fc.integer({ min: 0, max: 100 }),
      });
      await fc.assert(
        fc.asyncProperty(fc.array(ev, { minLength: 1, maxLength: 40 }), async (drawn) => {
          const rows = drawn.map((d) => ({
            day: Math.min(4, Math.max(0, Math.floor(d.at / 86_400) + 1) + d.lateBy),
            event: {
              type: d.type,
              student: d.student,
              topic: d.topic,
              ts: new Date(T.getTime() + d.at * 1000).toISOString(),
              is_correct: d.correct,
              hints_used: d.n % 4,
              attempts: d.n,
              correct_count: Math.min(d.n, d.pct % 11),
              score_pct: d.pct,
              watch_pct: d.pct,
            } satisfies TestEvent,
          }));
          const daily = await DuckStore.open(":memory:");
          const whole = await DuckStore.open(":memory:");
          try {
            // day 0: the events of day 0 and before, full run as of T; days 1-4: that day's arrivals, as of T + d
            let since: FeatureWatermark | null = null;
            for (let day = 0; day <= 4; day++) {
              const asOf = new Date(T.getTime() + day * DAY);
              await insertEvents(
                daily,
                rows.filter((r) => r.day === day).map((r) => r.event),
              );
              const wm = await ingestWatermark(daily);
              const res = await scoreRules(daily, { asOf, workers: 0, ...(since ? { since } : {}) });
              if (
                since !== null &&
                res.mode !== "incremental" &&
                res.fullReason !== "no stored rule scores to start from"
              )
                throw new Error(`expected an incremental day: ${res.fullReason}`);
              since = { asOf, ingestedThroughUs: wm };
            }
            await insertEvents(
              whole,
              rows.map((r) => r.event),
            );
            const end = new Date(T.getTime() + 4 * DAY);
            await scoreRules(whole, { asOf: end, workers: 0 });
            const states = (s: DuckStore) =>
              s.all(
                `SELECT student_key, topic_id, model_version, explanation, ${RULE_BLOCK_COLUMNS.join(", ")}
               FROM student_mastery WHERE score_source = 'rule_based' ORDER BY 1, 2`,
              );
            expect(await states(daily)).toEqual(await states(whole));
            const read = async (s: DuckStore, at: Date) =>
              withExplanationTexts(
                await s.all<{
                  score_source: string;
                  as_of: Date;
                  mastery_score: number;
                  explanation: string;
                }>(
                  `SELECT score_source, as_of, mastery_score, explanation, ${STORED_NUMBERS_SELECT}
                   FROM student_mastery ORDER BY student_key, topic_id`,
                ),
              ).map((r) => {
                const x = ruleRowAt(r, at);
                return [x.mastery_score, x.explanation];
              });
            for (const later of [0, 0.25, 10])
              expect(await read(daily, new Date(end.getTime() + later * DAY))).toEqual(
                await read(whole, new Date(end.getTime() + later * DAY)),
              );
          } finally {
            daily.close();
            whole.close();
          }
        }),
        { numRuns: PROPERTY_RUNS },
      );
    },
    9_600 * PROPERTY_RUNS,
  );

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
        `SELECT student_key, topic_id, mastery_score, explanation, ${RULE_BLOCK_COLUMNS.join(", ")} FROM student_mastery ORDER BY 1, 2`,
      );
      const hist = await store.all(
        `SELECT student_key, topic_id, mastery_score, explanation, ${RULE_BLOCK_COLUMNS.join(", ")} FROM student_mastery_history ORDER BY 1, 2`,
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
    // Bounded memory: the state rows read and scored in blocks of any size (blocks end inside a DuckDB
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

  it("builds the same states in student-key ranges as in one statement: same rows, history and rids 1..n", async () => {
    // Hex student keys as the pseudonymizer makes them, plus keys on and just below the range bounds.
    const hex = (s: string) => createHash("sha256").update(s).digest("hex").slice(0, 32);
    const bounds = ["80", "7fffffff", "40", "c0", "00", "ff", "3f"];
    const events = variedEvents().map((e, i) => ({
      ...e,
      student: i % 11 === 0 ? (bounds[(i / 11) % bounds.length] as string) : hex(e.student),
    }));
    const read = async (parts?: number) => {
      const store = await DuckStore.open(":memory:");
      await insertEvents(store, events);
      const res = await scoreRules(store, {
        asOf: T,
        now: new Date("2024-04-01T00:00:00Z"),
        workers: 0,
        ...(parts === undefined ? {} : { parts }),
      });
      const cols = `student_key, topic_id, mastery_score, explanation, ${RULE_BLOCK_COLUMNS.join(", ")}`;
      const rows = await store.all(`SELECT ${cols} FROM student_mastery ORDER BY 1, 2`);
      const hist = await store.all(`SELECT ${cols} FROM student_mastery_history ORDER BY 1, 2`);
      store.close();
      return { res, rows, hist };
    };
    const one = await read();
    expect(one.res.scored).toBeGreaterThan(200);
    for (const parts of [2, 3, 7, 42]) {
      const split = await read(parts);
      expect([parts, split.res.scored]).toEqual([parts, one.res.scored]);
      expect(split.rows).toEqual(one.rows);
      expect(split.hist).toEqual(one.hist);
    }
    // The rids of a build in ranges are 1..n, each once (the scores join back by them).
    const store = await DuckStore.open(":memory:");
    await insertEvents(store, events);
    const src = (i: number, of: number) => `(SELECT * FROM raw_events WHERE ${studentRangeSql(i, of)})`;
    await store.run(`CREATE TEMP TABLE rs AS ${ruleStateSql(src(0, 3))}`, {
      t: BigInt(T.getTime()) * 1000n,
      h: 14,
    });
    const sizes = [Number((await store.one<{ n: bigint }>("SELECT count(*) AS n FROM rs"))?.n)];
    for (const i of [1, 2])
      sizes.push(
        await store.runCount(
          `INSERT INTO rs SELECT * REPLACE (rid + $b::BIGINT AS rid) FROM (${ruleStateSql(src(i, 3))})`,
          {
            t: BigInt(T.getTime()) * 1000n,
            h: 14,
            b: BigInt(sizes.reduce((x, y) => x + y, 0)),
          },
        ),
      );
    expect(sizes.every((n) => n > 0)).toBe(true);
    const r = await store.one<{ n: bigint; lo: bigint; hi: bigint; d: bigint }>(
      "SELECT count(*) AS n, min(rid) AS lo, max(rid) AS hi, count(DISTINCT rid) AS d FROM rs",
    );
    store.close();
    expect([r?.n, r?.lo, r?.hi, r?.d].map(Number)).toEqual([
      one.res.scored,
      1,
      one.res.scored,
      one.res.scored,
    ]);
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
      const res = await scoreRules(rerun, { asOf: later, now: new Date("2024-04-02T00:00:00Z") });
      const fresh = await open("fresh.duckdb");
      await insertEvents(fresh, [...variedEvents(), ...extra]);
      await scoreRules(fresh, { asOf: later, now: new Date("2024-04-02T00:00:00Z") });
      const sql = "SELECT * FROM student_mastery ORDER BY student_key, topic_id, score_source";
      const rows = await rerun.all<{ student_key: string; topic_id: string; mastery_score: number }>(sql);
      expect(rows).toEqual(await fresh.all(sql));
      // Every pair again, plus new ones (s7/t3, and pairs whose only events are at T itself, not before it).
      expect(res.scored).toBeGreaterThan(first.scored);
      expect(rows).toHaveLength(res.scored);
      const old = new Map(before.map((r) => [`${r.student_key}/${r.topic_id}`, r.mastery_score]));
      const changed = rows.filter((r) => old.get(`${r.student_key}/${r.topic_id}`) !== r.mastery_score);
      // A day later every pair's evidence has decayed, so (nearly) every score moved.
      expect(changed.length).toBeGreaterThan(0);
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
