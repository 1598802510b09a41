import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  buildFeatures,
  FEATURE_MAX_PARTS,
  FeatureBuildError,
  featureParts,
  resolveAsOf,
  studentRangeSql,
  WINDOW_DAYS,
  WINDOW_FEATURES,
} from "../../features/windows.ts";
import { DuckStore } from "../../storage/duckdb.ts";
import { insertEvents, type TestEvent } from "./eventRows.ts";

const T = new Date("2024-03-31T00:00:00Z");
const DAY = 86_400_000;
/** ISO time `days` days before T. */
const ago = (days: number): string => new Date(T.getTime() - days * DAY).toISOString();

// The hand-written log of student s1 on topic t1 (k = day bucket counted back from T).
const LOG: TestEvent[] = [
  {
    type: "quiz_attempt",
    student: "s1",
    topic: "t1",
    ts: ago(1),
    is_correct: true,
    time_spent_sec: 30,
    hints_used: 0,
  }, // k=0
  {
    type: "quiz_attempt",
    student: "s1",
    topic: "t1",
    ts: ago(2.5),
    is_correct: false,
    time_spent_sec: 60,
    hints_used: 2,
  }, // k=2
  {
    type: "quiz_attempt",
    student: "s1",
    topic: "t1",
    ts: ago(7),
    is_correct: true,
    time_spent_sec: 45,
    hints_used: 1,
  }, // exactly 7 days: k=6, inside 7d
  {
    type: "quiz_attempt",
    student: "s1",
    topic: "t1",
    ts: ago(10),
    is_correct: false,
    time_spent_sec: 90,
    hints_used: 3,
  }, // k=9
  {
    type: "quiz_attempt",
    student: "s1",
    topic: "t1",
    ts: ago(40),
    is_correct: true,
    time_spent_sec: 20,
    hints_used: 0,
  }, // k=39, 90d only
  { type: "practice", student: "s1", topic: "t1", ts: ago(3), attempts: 10, correct_count: 7 }, // k=2
  { type: "practice", student: "s1", topic: "t1", ts: ago(20), attempts: 5, correct_count: 1 }, // k=19
  { type: "video", student: "s1", topic: "t1", ts: ago(0.75), watch_pct: 80 }, // k=0, the latest event
  { type: "video", student: "s1", topic: "t1", ts: ago(15), watch_pct: 40 }, // k=14
  { type: "assignment", student: "s1", topic: "t1", ts: ago(5), score_pct: 90 }, // k=4
  { type: "assignment", student: "s1", topic: "t1", ts: ago(60), score_pct: 50 }, // k=59
  { type: "chatbot", student: "s1", topic: "t1", ts: ago(2), help_requests: 3 }, // k=1
  { type: "chatbot", student: "s1", topic: "t1", ts: ago(100), help_requests: 4 }, // older than 90 days
  // s1/t2: one quiz attempt 95 days ago -> a row with empty windows
  {
    type: "quiz_attempt",
    student: "s1",
    topic: "t2",
    ts: ago(95),
    is_correct: true,
    time_spent_sec: 10,
    hints_used: 0,
  },
  // at or after T: invisible as of T (s2 has nothing before T, so no row at all)
  {
    type: "quiz_attempt",
    student: "s1",
    topic: "t1",
    ts: ago(0),
    is_correct: false,
    time_spent_sec: 5,
    hints_used: 9,
  },
  {
    type: "quiz_attempt",
    student: "s2",
    topic: "t1",
    ts: ago(-1),
    is_correct: true,
    time_spent_sec: 5,
    hints_used: 0,
  },
];

type FeatureRow = Record<string, unknown>;

async function featureRows(store: DuckStore, table = "features"): Promise<FeatureRow[]> {
  return store.all(`SELECT * EXCLUDE (as_of) FROM ${table} ORDER BY student_key, topic_id`);
}

describe("buildFeatures on a hand-written log", () => {
  let store: DuckStore;
  let rows: FeatureRow[];
  beforeAll(async () => {
    store = await DuckStore.open(":memory:");
    await insertEvents(store, LOG);
    const res = await buildFeatures(store, T);
    expect(res.rows).toBe(2);
    rows = await featureRows(store);
  });
  afterAll(() => store.close());

  it("has one row per (student, topic) with an event before T", () => {
    expect(rows.map((r) => `${r.student_key}/${r.topic_id}`)).toEqual(["s1/t1", "s1/t2"]);
  });

  it("matches the hand-computed 7-day window (event exactly 7 days before T included)", () => {
    const r = rows[0] as FeatureRow;
    expect(r.attempts_7d).toBe(3); // k = 0, 2, 6
    expect(r.correct_7d).toBe(2);
    expect(r.accuracy_7d).toBeCloseTo(2 / 3, 12);
    expect(r.avg_time_per_question_7d).toBeCloseTo((30 + 60 + 45) / 3, 12); // 45
    expect(r.hint_usage_rate_7d).toBeCloseTo((0 + 2 + 1) / 3, 12); // 1
    expect(r.practice_attempts_7d).toBe(10);
    expect(r.practice_success_rate_7d).toBeCloseTo(0.7, 12);
    expect(r.videos_7d).toBe(1);
    expect(r.video_watch_pct_7d).toBeCloseTo(80, 12);
    expect(r.assignments_7d).toBe(1);
    expect(r.assignment_score_pct_7d).toBeCloseTo(90, 12);
    expect(r.help_requests_7d).toBe(3);
    expect(r.active_days_7d).toBe(5); // buckets {0, 1, 2, 4, 6}
    expect(r.revisit_rate_7d).toBeCloseTo(4 / 5, 12);
  });

  it("matches the hand-computed 30-day window", () => {
    const r = rows[0] as FeatureRow;
    expect(r.attempts_30d).toBe(4); // + k=9
    expect(r.correct_30d).toBe(2);
    expect(r.accuracy_30d).toBeCloseTo(0.5, 12);
    expect(r.avg_time_per_question_30d).toBeCloseTo(225 / 4, 12); // 56.25
    expect(r.hint_usage_rate_30d).toBeCloseTo(6 / 4, 12);
    expect(r.practice_attempts_30d).toBe(15);
    expect(r.practice_success_rate_30d).toBeCloseTo(8 / 15, 12);
    expect(r.videos_30d).toBe(2);
    expect(r.video_watch_pct_30d).toBeCloseTo(60, 12);
    expect(r.assignments_30d).toBe(1);
    expect(r.help_requests_30d).toBe(3);
    expect(r.active_days_30d).toBe(8); // {0, 1, 2, 4, 6, 9, 14, 19}
    expect(r.revisit_rate_30d).toBeCloseTo(7 / 8, 12);
  });

  it("matches the hand-computed 90-day window (the 100-day-old chatbot event is outside)", () => {
    const r = rows[0] as FeatureRow;
    expect(r.attempts_90d).toBe(5);
    expect(r.correct_90d).toBe(3);
    expect(r.accuracy_90d).toBeCloseTo(0.6, 12);
    expect(r.avg_time_per_question_90d).toBeCloseTo(245 / 5, 12); // 49
    expect(r.hint_usage_rate_90d).toBeCloseTo(6 / 5, 12);
    expect(r.assignments_90d).toBe(2);
    expect(r.assignment_score_pct_90d).toBeCloseTo(70, 12);
    expect(r.help_requests_90d).toBe(3);
    expect(r.active_days_90d).toBe(10); // + 39, 59
    expect(r.revisit_rate_90d).toBeCloseTo(9 / 10, 12);
  });

  it("computes the 30-day trend, recency and last activity", () => {
    const r = rows[0] as FeatureRow;
    // attempts (x = 29 - k, y): (29,1) (27,0) (23,1) (20,0); n=4 Sx=99 Sy=2 Sxy=52 Sxx=2499
    // slope = (4*52 - 99*2) / (4*2499 - 99^2) = 10 / 195
    expect(r.trend_slope_30d).toBeCloseTo(10 / 195, 12);
    expect(r.days_since_last_activity).toBeCloseTo(0.75, 9); // the video 18 h before T
    expect((r.last_activity_at as Date).toISOString()).toBe(ago(0.75));
  });

  it("keeps a row whose only event is older than 90 days, with empty windows", () => {
    const r = rows[1] as FeatureRow;
    for (const w of WINDOW_DAYS) {
      expect(r[`attempts_${w}d`]).toBe(0);
      expect(r[`accuracy_${w}d`]).toBeNull();
      expect(r[`active_days_${w}d`]).toBe(0);
      expect(r[`revisit_rate_${w}d`]).toBeNull();
    }
    expect(r.trend_slope_30d).toBeNull();
    expect(r.days_since_last_activity).toBeCloseTo(95, 9);
  });

  it("has every window column in the table", async () => {
    const cols = (
      await store.all<{ column_name: string }>(
        "SELECT column_name FROM duckdb_columns() WHERE table_name = 'features'",
      )
    ).map((c) => c.column_name);
    for (const f of WINDOW_FEATURES) for (const w of WINDOW_DAYS) expect(cols).toContain(`${f}_${w}d`);
  });
});

describe("window boundaries", () => {
  it("puts an event exactly w days before T in the w-day window and one 1 ms older outside it", async () => {
    const store = await DuckStore.open(":memory:");
    for (const w of WINDOW_DAYS) {
      await insertEvents(store, [
        {
          type: "quiz_attempt",
          student: `in${w}`,
          topic: "t",
          ts: ago(w),
          is_correct: true,
          time_spent_sec: 1,
        },
        {
          type: "quiz_attempt",
          student: `out${w}`,
          topic: "t",
          ts: new Date(T.getTime() - w * DAY - 1).toISOString(),
          is_correct: true,
          time_spent_sec: 1,
        },
      ]);
    }
    await buildFeatures(store, T);
    const rows = await store.all<Record<string, number | string>>(
      "SELECT student_key, attempts_7d, attempts_30d, attempts_90d FROM features ORDER BY 1",
    );
    const by = new Map(rows.map((r) => [r.student_key, r]));
    for (const w of WINDOW_DAYS) {
      expect(by.get(`in${w}`)?.[`attempts_${w}d`]).toBe(1);
      expect(by.get(`out${w}`)?.[`attempts_${w}d`]).toBe(0);
    }
    expect(by.get("out7")?.attempts_30d).toBe(1); // 7 days + 1 ms is inside the 30-day window
    store.close();
  });
});

describe("point-in-time correctness", () => {
  it("a future event planted at ts >= T changes no feature as of T", async () => {
    const store = await DuckStore.open(":memory:");
    await insertEvents(store, LOG);
    await buildFeatures(store, T);
    const before = await featureRows(store);
    await insertEvents(store, [
      { type: "quiz_attempt", student: "s1", topic: "t1", ts: ago(0), is_correct: true, time_spent_sec: 999 },
      { type: "assignment", student: "s1", topic: "t2", ts: ago(-3), score_pct: 0 },
      { type: "video", student: "s9", topic: "t1", ts: ago(-0.001), watch_pct: 1 },
    ]);
    await buildFeatures(store, T);
    expect(await featureRows(store)).toEqual(before);
    store.close();
  });
  // The randomized version of this (fast-check, 40 logs) is in windows.pointInTime.int.test.ts: ~25 s.
});

describe("several as-of times", () => {
  it("builds one snapshot per as-of time, each seeing only its past, and rebuilds replace", async () => {
    const store = await DuckStore.open(":memory:");
    await insertEvents(store, LOG);
    const t1 = new Date(T.getTime() - 10 * DAY);
    const res = await buildFeatures(store, [t1, T]);
    expect(res.rows).toBe(4); // s1/t1 and s1/t2 exist at both times
    const r = await store.all<{ as_of: Date; attempts_90d: number }>(
      "SELECT as_of, attempts_90d FROM features WHERE topic_id = 't1' ORDER BY as_of",
    );
    // as of T-10d: the attempts at 40 and 10 days before T (10 days before T = exactly T1, excluded)
    expect(r.map((x) => [x.as_of.toISOString(), x.attempts_90d])).toEqual([
      [t1.toISOString(), 1],
      [T.toISOString(), 5],
    ]);
    await buildFeatures(store, T);
    const n = await store.one<{ n: bigint }>("SELECT count(*) AS n FROM features");
    expect(n?.n).toBe(4n);
    store.close();
  });
});

describe("resolveAsOf", () => {
  it('reads "now" as the latest event + 1 s and rejects times without an offset', async () => {
    const store = await DuckStore.open(":memory:");
    await insertEvents(store, LOG);
    expect((await resolveAsOf(store, "now")).toISOString()).toBe(
      new Date(T.getTime() + DAY + 1000).toISOString(),
    );
    expect((await resolveAsOf(store, "2024-03-01")).toISOString()).toBe("2024-03-01T00:00:00.000Z");
    await expect(resolveAsOf(store, "2024-03-01T10:00:00")).rejects.toThrow(/offset/);
    store.close();
  });
});

describe("fractional sums are order-free", () => {
  // Values whose floating-point sum depends on the order of addition: 1e-13-scale parts of them are lost or
  // kept depending on what has been added before.
  const scores = [
    99.99999999999, 0.1, 33.333333333333336, 0.2, 66.7, 1e-9, 12.345678901234, 0.3, 87.65, 0.05,
  ];
  const events = (order: readonly number[]): TestEvent[] =>
    order.map((i, j) => ({
      type: "assignment",
      student: "s1",
      topic: "t1",
      ts: ago(1 + j / 100),
      score_pct: scores[i] as number,
    }));
  const build = async (order: readonly number[]): Promise<number> => {
    const store = await DuckStore.open(":memory:");
    try {
      await insertEvents(store, events(order));
      await buildFeatures(store, T);
      const [row] = await featureRows(store);
      return row?.assignment_score_pct_7d as number;
    } finally {
      store.close();
    }
  };

  it("gives the same average, to the bit, whatever order the rows are stored and added in", async () => {
    const forward = scores.map((_, i) => i);
    const got = await Promise.all(
      [forward, [...forward].reverse(), [3, 7, 0, 9, 1, 5, 2, 8, 4, 6]].map(build),
    );
    // Known answer: the exact sum of the inputs in units of 2^-20, rounded once.
    const fixed = scores.reduce((s, x) => s + BigInt(Math.round(x * 2 ** 20)), 0n);
    const expected = Number(fixed) / 2 ** 20 / scores.length;
    expect(got).toEqual([expected, expected, expected]);
    expect(Math.abs(expected - scores.reduce((s, x) => s + x, 0) / scores.length)).toBeLessThan(1e-6);
  });
});

describe("student-key ranges of a full build", () => {
  it("splits a build only when raw_events outgrows the memory limit (256 bytes of limit per event row)", () => {
    // The stores of docs/benchmarks.md "100M's bend, round 3": 10M rows at 4 GB, 30M at 1.6 GB, 100M at 5 GB.
    expect(featureParts(10_615_118, 4e9)).toBe(1);
    expect(featureParts(31_844_870, 1.6e9)).toBe(6);
    expect(featureParts(102_116_982, 5e9)).toBe(6);
    expect(featureParts(0, 1e9)).toBe(1);
    expect(featureParts(1_000_000, 256_000_000)).toBe(1);
    expect(featureParts(1_000_001, 256_000_000)).toBe(2);
    expect(featureParts(1e12, 1e6)).toBe(FEATURE_MAX_PARTS);
    expect(() => featureParts(10, 0)).toThrow(FeatureBuildError);
    expect(() => featureParts(10, Number.NaN)).toThrow(/memoryLimitBytes/);
    expect(() => featureParts(-1, 1e9)).toThrow(/non-negative integer/);
  });

  it("bounds the ranges at two-hex-digit prefixes, the first without a lower and the last without an upper bound", () => {
    expect(studentRangeSql(0, 1)).toBe("");
    expect(studentRangeSql(0, 2)).toBe("student_key < '80'");
    expect(studentRangeSql(1, 2)).toBe("student_key >= '80'");
    // floor(256 i / 6) = 0, 42, 85, 128, 170, 213
    expect(studentRangeSql(1, 6)).toBe("student_key >= '2a' AND student_key < '55'");
    expect(studentRangeSql(5, 6)).toBe("student_key >= 'd5'");
    expect(studentRangeSql(255, 256)).toBe("student_key >= 'ff'");
    expect(() => studentRangeSql(2, 2)).toThrow(/0\.\.1/);
    expect(() => studentRangeSql(0, 0)).toThrow(/1\.\.256/);
    expect(() => studentRangeSql(0, 257)).toThrow(FeatureBuildError);
  });

  it("reports the ranges it used, from the store's rows and memory limit unless given", async () => {
    const store = await DuckStore.open(":memory:");
    await insertEvents(store, LOG);
    expect((await buildFeatures(store, T)).parts).toBe(
      featureParts(LOG.length, await store.memoryLimitBytes()),
    );
    const split = await buildFeatures(store, T, { parts: 3 });
    expect(split.parts).toBe(3);
    expect(split.rows).toBe(2);
    await expect(buildFeatures(store, T, { parts: 0 })).rejects.toThrow(/1\.\.256/);
    store.close();
  });
});
