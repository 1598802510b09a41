import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { LearningEvent } from "../../features/contracts.ts";
import { Pseudonymizer } from "../../features/pseudonymize.ts";
import { firstIngestedCopies } from "../../models/learnerState.ts";
import { firstIngestedRows, learnerEvent, rowsFromEvent } from "../../serving/updater.ts";
import type { LearnerRow } from "../../storage/rawEventStore.ts";

/**
 * The update path's row builders (serving/updater.ts), written without spreads that add fields: an event's
 * raw rows (one per distinct topic, every other field the same, the student pseudonymized) and a key's rows
 * as the fold counts them (the first ingested copy of each event, the stored row objects themselves).
 */
const pseudo = new Pseudonymizer("updater-rows-key-0123456789");
const opts = { source: "api", ingestedAtUs: 1_767_607_200_000_000 };

describe("rowsFromEvent", () => {
  it("an assignment: one row per distinct topic in first-seen order, the same fields otherwise", () => {
    const event = {
      event_id: "a-1",
      type: "assignment",
      student_id: "student-7",
      timestamp: "2026-01-05T10:00:00.000001Z",
      assignment_id: "asg-1",
      topic_ids: ["T2", "T1", "T2"],
      score_pct: 80,
      school_id: "sch",
    } as unknown as LearningEvent;
    const rows = rowsFromEvent(event, pseudo, opts);
    expect(rows.map((r) => r.topic_id)).toEqual(["T2", "T1"]);
    const { topic_id: _a, ...first } = rows[0]!;
    const { topic_id: _b, ...second } = rows[1]!;
    expect(second).toEqual(first);
    expect(first).toMatchObject({
      event_id: "a-1",
      type: "assignment",
      student_key: pseudo.studentKey("student-7"),
      ts_us: 1_767_607_200_000_001,
      assignment_id: "asg-1",
      score_pct: 80,
      school_id: "sch",
      question_id: null,
      is_correct: null,
      source: "api",
      ingested_at_us: opts.ingestedAtUs,
    });
    expect(JSON.stringify(rows)).not.toContain("student-7");
  });

  it("a quiz attempt: one row on its topic, every raw_events column present", () => {
    const event = {
      event_id: "q-1",
      type: "quiz_attempt",
      student_id: "student-8",
      timestamp: "2026-01-05T10:00:00Z",
      topic_id: "T3",
      question_id: "q9",
      is_correct: false,
      time_spent_sec: 12,
      hints_used: 1,
    } as unknown as LearningEvent;
    const rows = rowsFromEvent(event, pseudo, opts);
    expect(rows).toHaveLength(1);
    expect(Object.keys(rows[0]!)).toHaveLength(25);
    expect(rows[0]).toMatchObject({ topic_id: "T3", question_id: "q9", is_correct: false, hints_used: 1 });
  });
});

describe("firstIngestedRows", () => {
  const rowArb = fc.record({
    event_id: fc.constantFrom("e1", "e2", "e3", "e4"),
    ingested_at_us: fc.integer({ min: 0, max: 3 }),
    ts_us: fc.integer({ min: 0, max: 3 }),
  });
  it("property: the stored rows that firstIngestedCopies keeps of their events, in its order, as the same objects", () => {
    fc.assert(
      fc.property(fc.array(rowArb, { maxLength: 12 }), (parts) => {
        const rows: LearnerRow[] = parts.map((p) => ({
          ...p,
          type: "quiz_attempt",
          student_key: "k",
          topic_id: "T1",
          is_correct: true,
          question_id: null,
          attempts: null,
          correct_count: null,
          score_pct: null,
          hints_used: null,
          watch_pct: null,
        }));
        const kept = firstIngestedRows(rows);
        const want = firstIngestedCopies(rows.map((row, i) => ({ ...learnerEvent(row), i }))).map(
          (e) => rows[e.i]!,
        );
        expect(kept).toHaveLength(want.length);
        for (const [i, r] of kept.entries()) expect(r).toBe(want[i]);
        expect(new Set(kept.map((r) => r.event_id)).size).toBe(kept.length);
      }),
      { numRuns: 300 },
    );
  });
});
