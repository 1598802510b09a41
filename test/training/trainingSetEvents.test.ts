import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { DuckStore } from "../../storage/duckdb.ts";
import {
  buildEventTrainingSet,
  EVENT_FEATURES,
  type EventTrainingSet,
  SPLIT_PURGED,
  SPLIT_TEST,
  SPLIT_TRAIN,
  SPLIT_VALID,
} from "../../training/trainingSetEvents.ts";
import { insertEvents, type TestEvent } from "../features/eventRows.ts";

const day = (d: number, h = 12): string => new Date(Date.UTC(2024, 0, 1 + d, h)).toISOString();
const at = (d: number): Date => new Date(Date.UTC(2024, 0, 1 + d));
const quiz = (student: string, topic: string, d: number, ok: boolean, h = 12): TestEvent => ({
  type: "quiz_attempt",
  student,
  topic,
  ts: day(d, h),
  is_correct: ok,
  time_spent_sec: 30,
  hints_used: 0,
});

/** Two students, two topics, a quiz attempt most days over 40 days plus some videos. */
function history(): TestEvent[] {
  const ev: TestEvent[] = [];
  for (let d = 0; d < 40; d++) {
    ev.push(quiz("s1", "t1", d, (d * 7) % 3 !== 0));
    if (d % 2 === 0) ev.push(quiz("s1", "t2", d, d % 4 === 0, 15));
    if (d % 3 !== 1) ev.push(quiz("s2", "t1", d, (d * 5) % 4 !== 1, 9));
    if (d % 5 === 0) ev.push({ type: "video", student: "s2", topic: "t2", ts: day(d, 18), watch_pct: 80 });
  }
  return ev;
}

const ASOF = [5, 10, 15, 20, 25, 30, 35].map(at);

function rowOf(set: EventTrainingSet, student: string, topic: string, asOf: Date): number {
  const k = set.student.findIndex(
    (s, i) => s === student && set.topic[i] === topic && set.asOfMs[i] === asOf.getTime(),
  );
  if (k < 0) throw new Error(`no row ${student}/${topic}@${asOf.toISOString()}`);
  return k;
}

const featureRow = (set: EventTrainingSet, k: number): number[] =>
  EVENT_FEATURES.map((_, c) => set.X.data[c * set.X.nRows + k]!);

describe("buildEventTrainingSet (timestamped events)", () => {
  let store: DuckStore;
  beforeEach(async () => {
    store = await DuckStore.open(":memory:");
    await insertEvents(store, history());
  });
  afterEach(() => store.close());

  it("labels come from events at or after as_of: hand-computed next-7-day accuracy and next answer", async () => {
    const set = await buildEventTrainingSet(store, { asOf: ASOF });
    const k = rowOf(set, "s1", "t1", at(10));
    // s1/t1 answers days 10..16 at noon: correct unless d*7 % 3 == 0 -> d = 12, 15 wrong.
    expect(set.attemptsNext[k]).toBe(7);
    expect(set.accuracyNext[k]).toBeCloseTo(5 / 7, 12);
    expect(set.nextCorrect[k]).toBe(1); // day 10: 70 % 3 = 1 -> correct
    const k2 = rowOf(set, "s1", "t1", at(15));
    expect(set.nextCorrect[k2]).toBe(0); // day 15: 105 % 3 = 0 -> wrong
    // Features as of day 10 count days 3..9 for the 7-day window (7 attempts; days 3, 6, 9 wrong).
    const c = (name: string) => set.X.data[EVENT_FEATURES.indexOf(name) * set.X.nRows + k];
    expect(c("attempts_7d")).toBe(7);
    expect(c("correct_7d")).toBe(4);
    expect(c("quiz_attempts_total")).toBe(10);
    // s2/t2 has only videos: no quiz label.
    const kv = rowOf(set, "s2", "t2", at(10));
    expect(set.attemptsNext[kv]).toBe(0);
    expect(set.accuracyNext[kv]).toBeNaN();
    expect(set.nextCorrect[kv]).toBeNaN();
  });

  it("planted future events never reach a feature; labels change only where their window covers them", async () => {
    const before = await buildEventTrainingSet(store, { asOf: ASOF });
    // Plant events on day 22 (between as-of 20 and 25) and after the last as-of, including a new topic.
    await insertEvents(store, [
      quiz("s1", "t1", 22, false, 1),
      quiz("s1", "t1", 22, false, 2),
      quiz("s2", "t1", 22, true, 3),
      { type: "practice", student: "s1", topic: "t1", ts: day(22, 4), attempts: 5, correct_count: 0 },
      quiz("s1", "t1", 39, false, 23),
      quiz("s1", "t9", 38, true),
    ]);
    const after = await buildEventTrainingSet(store, { asOf: ASOF });
    // t9's only event is after the last as-of: no new row.
    expect(after.X.nRows).toBe(before.X.nRows);
    let changedLater = false;
    for (let k = 0; k < before.X.nRows; k++) {
      const j = rowOf(after, before.student[k]!, before.topic[k]!, new Date(before.asOfMs[k]!));
      const same = featureRow(before, k).every((v, c) => Object.is(v, featureRow(after, j)[c]));
      if (before.asOfMs[k]! <= at(20).getTime()) expect(same).toBe(true);
      else if (before.student[k] === "s1" && before.topic[k] === "t1") changedLater ||= !same;
    }
    expect(changedLater).toBe(true); // as of day 25 the planted day-22 events are in the windows
    const label = (set: EventTrainingSet, d: number) => {
      const k = rowOf(set, "s1", "t1", at(d));
      return [set.accuracyNext[k], set.attemptsNext[k], set.nextCorrect[k]];
    };
    // [day 15, day 22 00:00) ends before the day-22 plants: unchanged. Day 20's window holds them.
    expect(label(after, 15)).toEqual(label(before, 15));
    expect(label(after, 20)[1]).toBe(label(before, 20)[1]! + 2);
    expect(label(after, 20)[2]).toBe(label(before, 20)[2]); // the next answer is still day 20's
    expect(label(after, 35)[1]).toBe(label(before, 35)[1]! + 1); // the day-39 plant
  });

  it("splits in time with purged label windows: every train label ends before validation starts", async () => {
    const set = await buildEventTrainingSet(store, {
      asOf: ASOF,
      horizonDays: 7,
      validFraction: 0.3,
      testFraction: 0.3,
    });
    const h = 7 * 86_400_000;
    const counts = [0, 0, 0, 0];
    for (let k = 0; k < set.X.nRows; k++) {
      const t = set.asOfMs[k]!;
      counts[set.split[k]!]!++;
      if (set.split[k] === SPLIT_TRAIN) expect(t + h).toBeLessThanOrEqual(set.validStart);
      if (set.split[k] === SPLIT_VALID) {
        expect(t).toBeGreaterThanOrEqual(set.validStart);
        expect(t + h).toBeLessThanOrEqual(set.testStart);
      }
      if (set.split[k] === SPLIT_TEST) expect(t).toBeGreaterThanOrEqual(set.testStart);
    }
    // Grid of 7 as-of times: validation starts at index floor(7 * 0.4) = 2 (day 15), test at floor(7 * 0.7) = 4 (day 25).
    expect(set.validStart).toBe(at(15).getTime());
    expect(set.testStart).toBe(at(25).getTime());
    expect(counts[SPLIT_TRAIN]).toBeGreaterThan(0);
    expect(counts[SPLIT_VALID]).toBeGreaterThan(0);
    expect(counts[SPLIT_TEST]).toBeGreaterThan(0);
    expect(counts[SPLIT_PURGED]).toBeGreaterThan(0); // as of day 10 (10 + 7 > 15) and day 20
  });
});
