import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import { ingestFile } from "../../features/ingest.ts";
import { Pseudonymizer } from "../../features/pseudonymize.ts";
import { formatQualityReport, qualityReport } from "../../features/quality.ts";
import {
  compareProfiles,
  type FieldProfile,
  schemaDrift,
  setQualityReference,
  typeFamily,
  volumeAnomalies,
} from "../../features/qualityDrift.ts";
import { MAD_TO_SD, scoreDailyCounts, type VolumeAnomalyOptions } from "../../models/volumeAnomaly.ts";
import { DuckStore } from "../../storage/duckdb.ts";
import { insertDaily } from "./dailyEvents.ts";

const PLAIN: VolumeAnomalyOptions = { baselineDays: 14, threshold: 3.5, minBaselineDays: 7, period: 1 };
const WEEKLY: VolumeAnomalyOptions = { baselineDays: 28, threshold: 3.5, minBaselineDays: 14, period: 7 };
// 14 baseline days: sorted 97,98,98,99,99,100,100,100,100,101,101,102,102,103 -> median 100;
// |x - 100| sorted 0,0,0,0,1,1,1,1,2,2,2,2,3,3 -> MAD 1; scale max(1.4826 * 1, sqrt(100)) = 10.
const BASE = [100, 102, 98, 101, 99, 100, 103, 97, 100, 101, 99, 100, 102, 98];

describe("scoreDailyCounts (robust z vs trailing median/MAD)", () => {
  it("flags a spike and a drop, not a normal day (hand-computed z)", () => {
    const last = (x: number) => scoreDailyCounts([...BASE, x], PLAIN).at(-1)!;
    expect(last(200)).toMatchObject({ median: 100, mad: 1, scale: 10, z: 10, ratio: 2, anomaly: "spike" });
    expect(last(20)).toMatchObject({ z: -8, ratio: 0.2, anomaly: "drop" });
    expect(last(104)).toMatchObject({ z: 0.4, anomaly: null });
    // The first minBaselineDays days are not scored.
    const all = scoreDailyCounts([...BASE, 200], PLAIN);
    expect(all.slice(0, 7).every((d) => d.z === null && d.anomaly === null)).toBe(true);
    expect(all[7]!.z).not.toBeNull();
  });

  it("uses the MAD when it exceeds the Poisson floor: a noisy baseline absorbs a 3x day", () => {
    // Alternating 60/140: median 100, every deviation 40 -> MAD 40, scale 1.4826 * 40 = 59.30.
    const base = Array.from({ length: 14 }, (_, i) => (i % 2 === 0 ? 60 : 140));
    const d = scoreDailyCounts([...base, 300], PLAIN).at(-1)!;
    expect(d.mad).toBe(40);
    expect(d.z).toBeCloseTo(200 / (MAD_TO_SD * 40), 12);
    expect(d.z).toBeCloseTo(3.3724, 4);
    expect(d.anomaly).toBeNull();
  });

  it("weekly seasonality: quiet weekends are normal with period 7, flagged as drops with period 1", () => {
    const week = [100, 104, 98, 102, 100, 40, 38];
    const series = [...week, ...week, ...week, ...week, ...week];
    const weekly = scoreDailyCounts(series, WEEKLY);
    // Four identical weeks: each weekday's median is its own value, MAD 0, scale sqrt(expected).
    expect(weekly.slice(28).map((d) => d.z)).toEqual([0, 0, 0, 0, 0, 0, 0]);
    expect(weekly.every((d) => d.anomaly === null)).toBe(true);
    const plain = scoreDailyCounts(series, { ...PLAIN, baselineDays: 28, minBaselineDays: 28 });
    // 28 days: median 100, MAD 2, scale max(2.97, 10) = 10: the weekend 40 is z = -6.
    expect(plain[33]).toMatchObject({ median: 100, mad: 2, z: -6, anomaly: "drop" });
    // A real spike on a Tuesday (phase 1, expected 104): z = (164 - 104) / sqrt(104).
    const spiked = scoreDailyCounts([...series.slice(0, 29), 164], WEEKLY).at(-1)!;
    expect(spiked.median).toBe(104);
    expect(spiked.z).toBeCloseTo(60 / Math.sqrt(104), 12);
    expect(spiked.anomaly).toBe("spike");
  });

  it("rejects options that cannot score (period longer than the baseline)", () => {
    expect(() => scoreDailyCounts([1, 2, 3], { ...WEEKLY, minBaselineDays: 3 })).toThrow(/minBaselineDays/);
    expect(() => scoreDailyCounts([1], { ...WEEKLY, baselineDays: 5 })).toThrow(/baselineDays/);
  });

  it("property: z never decreases when the scored day's count grows; flags iff |z| >= threshold", () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 500 }), { minLength: 15, maxLength: 40 }),
        fc.integer({ min: 0, max: 500 }),
        (counts, extra) => {
          const a = scoreDailyCounts(counts, PLAIN).at(-1)!;
          const bumped = [...counts];
          bumped[bumped.length - 1] = counts.at(-1)! + extra;
          const b = scoreDailyCounts(bumped, PLAIN).at(-1)!;
          expect(b.z!).toBeGreaterThanOrEqual(a.z!);
          for (const d of [a, b]) expect(d.anomaly !== null).toBe(Math.abs(d.z!) >= PLAIN.threshold);
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe("compareProfiles", () => {
  const prof = (fields: [string, string][]): FieldProfile => ({
    origin: "file",
    source: "feed",
    type: "quiz_attempt",
    rows: 1,
    from: "",
    to: "",
    fields: fields.map(([field, valueType]) => ({ field, valueType, nonNullRate: null })),
  });

  it("names new, missing and retyped fields; integer -> float is a widening, not a retype", () => {
    const ref = prof([
      ["a", "BIGINT"],
      ["b", "DOUBLE"],
      ["c", "VARCHAR"],
      ["d", "BIGINT"],
    ]);
    const cur = prof([
      ["a", "DOUBLE"],
      ["b", "VARCHAR"],
      ["d", "BIGINT"],
      ["e", "BOOLEAN"],
    ]);
    expect(
      compareProfiles([ref], [cur]).map((c) => [c.change, c.field, c.referenceType, c.currentType]),
    ).toEqual([
      ["missing", "c", "VARCHAR", null],
      ["new", "e", null, "BOOLEAN"],
      ["retyped", "b", "DOUBLE", "VARCHAR"],
    ]);
    // A group without a reference is not compared.
    expect(compareProfiles([], [cur])).toEqual([]);
    expect(typeFamily("TIMESTAMP WITH TIME ZONE")).toBe("temporal");
    expect(typeFamily("VARCHAR[]")).toBe("nested");
    expect(typeFamily("DECIMAL(9,2)")).toBe("float");
  });
});

describe("volumeAnomalies over raw_events", () => {
  it("flags a spike in one source and a drop in another; a steady source stays quiet", async () => {
    const store = await DuckStore.open(":memory:");
    try {
      const steady = Array.from({ length: 21 }, () => 10);
      await insertDaily(store, "lms", "quiz_attempt", [...steady.slice(0, 20), 40]);
      await insertDaily(store, "video-cdn", "video", [...Array.from({ length: 20 }, () => 20), 0]);
      // Steady but on the last day too; its counts decide nothing else.
      await insertDaily(store, "app", "practice", steady);
      const v = await volumeAnomalies(store, {
        volume: { baselineDays: 14, threshold: 3.5, minBaselineDays: 7, period: 7 },
        reportDays: 7,
      });
      expect(v.lastDay).toBe("2026-02-21");
      // Constant baseline 10: MAD 0, scale sqrt(10); (40 - 10) / sqrt(10) = 9.487.
      // video-cdn: no events on the last day is a count of 0: (0 - 20) / sqrt(20) = -4.472.
      expect(v.anomalies.map((a) => [a.source, a.type, a.day, a.count, a.anomaly])).toEqual([
        ["lms", "(all)", "2026-02-21", 40, "spike"],
        ["lms", "quiz_attempt", "2026-02-21", 40, "spike"],
        ["video-cdn", "(all)", "2026-02-21", 0, "drop"],
        ["video-cdn", "video", "2026-02-21", 0, "drop"],
      ]);
      const z = (s: string, t: string) => v.latest.find((l) => l.source === s && l.type === t)!.z!;
      expect(z("lms", "quiz_attempt")).toBeCloseTo(30 / Math.sqrt(10), 10);
      expect(z("video-cdn", "video")).toBeCloseTo(-20 / Math.sqrt(20), 10);
      expect(z("app", "practice")).toBe(0);
    } finally {
      store.close();
    }
  });
});

describe("schema drift", () => {
  const dir = mkdtempSync(join(tmpdir(), "quality-drift-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("events: new, missing and retyped fields vs the first day, then vs a stored reference", async () => {
    const store = await DuckStore.open(":memory:");
    try {
      // Day 0: question ids numeric, hints recorded. Day 2 (newest): ids become text, hints stop,
      // a class id appears.
      await insertDaily(store, "lms", "quiz_attempt", [5, 5, 5], (d) =>
        d === 0
          ? { question_id: "CAST(i AS VARCHAR)", hints_used: "1", is_correct: "true" }
          : d === 1
            ? {
                question_id: "CAST(i AS VARCHAR)",
                hints_used: "CASE WHEN i = 0 THEN 2 END",
                is_correct: "true",
              }
            : { question_id: "'q-' || i", class_id: "'c1'", is_correct: "true" },
      );
      const r = await schemaDrift(store);
      expect(r.referenceSetAt).toBeNull();
      expect(
        r.changes.map((c) => [c.source, c.type, c.change, c.field, c.referenceType, c.currentType]),
      ).toEqual([
        ["lms", "quiz_attempt", "new", "class_id", null, "VARCHAR"],
        ["lms", "quiz_attempt", "missing", "hints_used", "INTEGER", null],
        ["lms", "quiz_attempt", "retyped", "question_id", "BIGINT", "VARCHAR"],
      ]);
      expect(r.changes[1]!.detail).toBe("hints_used was non-null in 100.0% of rows, now always null");

      // Accept today's shape as the reference: no drift; then a new field shows against it.
      const stored = await setQualityReference(store, new Date("2026-02-04T00:00:00Z"));
      expect(stored.map((p) => [p.origin, p.source, p.type])).toEqual([["events", "lms", "quiz_attempt"]]);
      const again = await schemaDrift(store);
      expect(again).toMatchObject({ referenceSetAt: "2026-02-04T00:00:00.000Z", groups: 1, storedGroups: 1 });
      expect(again.changes).toEqual([]);
      await store.run(
        `INSERT INTO raw_events (event_id, type, student_key, topic_id, ts, source, ingested_at, question_id, class_id, is_correct, time_spent_sec)
         VALUES ('x1', 'quiz_attempt', 's1', 't1', TIMESTAMP '2026-02-04 09:00:00', 'lms', TIMESTAMP '2026-03-01', 'q-9', 'c1', false, 12.5)`,
      );
      expect((await schemaDrift(store)).changes.map((c) => [c.change, c.field])).toEqual([
        ["new", "time_spent_sec"],
      ]);
    } finally {
      store.close();
    }
  });

  it("files: header and inferred types per source; text in a numeric field is also a type reject", async () => {
    const store = await DuckStore.open(":memory:");
    const opts = (day: string) => ({
      pseudonymizer: new Pseudonymizer("quality-drift-key-0123456789"),
      source: "feed",
      now: new Date(`${day}T23:00:00Z`),
    });
    try {
      const day1 = join(dir, "quiz_attempts.csv");
      writeFileSync(
        day1,
        [
          "event_id,student_id,timestamp,topic_id,question_id,is_correct,time_spent_sec,hints_used",
          "e1,s1,2026-01-05T10:00:00Z,t1,q1,true,12,0",
          "e2,s2,2026-01-05T11:00:00Z,t1,q2,false,30,1",
        ].join("\n"),
      );
      await ingestFile(store, day1, opts("2026-01-05"));
      const day2 = join(dir, "day2", "quiz_attempts.csv");
      mkdirSync(join(dir, "day2"), { recursive: true });
      writeFileSync(
        day2,
        [
          "event_id,student_id,timestamp,topic_id,question_id,is_correct,time_spent_sec,device",
          "e3,s1,2026-01-06T10:00:00Z,t1,q1,true,fast,ios",
          "e4,s2,2026-01-06T11:00:00Z,t1,q2,false,12,web",
          "e5,s3,2026-01-06T12:00:00Z,t1,q3,false,slow,web",
        ].join("\n"),
      );
      await ingestFile(store, day2, opts("2026-01-06"));
      const profiles = await store.all(
        "SELECT source, event_type, rows, columns FROM ingest_profiles ORDER BY profiled_at",
      );
      expect(profiles.map((p) => [p.source, p.event_type, Number(p.rows)])).toEqual([
        ["feed", "quiz_attempt", 2],
        ["feed", "quiz_attempt", 3],
      ]);
      expect(JSON.parse(String(profiles[1]!.columns))).toContainEqual({
        name: "time_spent_sec",
        type: "VARCHAR",
      });
      const r = await schemaDrift(store);
      expect(r.changes.map((c) => [c.origin, c.change, c.field, c.referenceType, c.currentType])).toEqual([
        ["events", "missing", "hints_used", "INTEGER", null],
        ["events", "retyped", "time_spent_sec", "DOUBLE", "VARCHAR"],
        ["file", "new", "device", null, "VARCHAR"],
        ["file", "missing", "hints_used", "BIGINT", null],
        ["file", "retyped", "time_spent_sec", "BIGINT", "VARCHAR"],
      ]);
      // 2 of the 3 rows sent on day 2 were rejected for the type of time_spent_sec.
      expect(r.changes[1]!.detail).toMatch(
        /^2 of 3 recent rows rejected: quiz_attempt\.time_spent_sec must be a number/,
      );

      const report = await qualityReport(store, new Date("2026-01-07T00:00:00Z"));
      expect(report.schemaDrift.changes).toHaveLength(5);
      const text = formatQualityReport(report);
      expect(text).toContain("retyped  file:feed");
      expect(text).toContain("time_spent_sec was BIGINT, now VARCHAR");
      expect(text).toContain("Volume anomalies");
    } finally {
      store.close();
    }
  });
});
