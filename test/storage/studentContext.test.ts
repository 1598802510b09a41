import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import { ingestEvents } from "../../features/ingest.ts";
import { Pseudonymizer } from "../../features/pseudonymize.ts";
import { DuckStore } from "../../storage/duckdb.ts";
import { DuckRawEventStore, type RawEventRow } from "../../storage/rawEventStore.ts";
import { rawEventRow } from "./rawEventRowFixture.ts";

const dir = mkdtempSync(join(tmpdir(), "student-context-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Raw row of event `id` on `topic`, version `v` (a second version of an id differs and must not count). */
const row = (id: number, topic: number, v: number, student: number): RawEventRow =>
  rawEventRow(
    {
      event_id: `e-${id}`,
      type: "quiz_attempt",
      student_key: `k-${student}`,
      topic_id: `T${topic}`,
      // Distinct per (id, v): rows of one student never tie on ts with different values.
      ts_us: 1_767_000_000_000_000 + id * 1_000_123 + v,
      ingested_at_us: 1_767_000_000_000_000 + v * 1_000,
    },
    { school_id: v % 3 === 0 ? null : `s-${v}`, grade: v % 4 === 0 ? null : 1 + (v % 12), is_correct: true },
  );

type Ctx = { student_key: string; school_id: string | null; grade: number | null };

/** The table, for students that have a school or a grade. */
const table = (d: DuckStore) =>
  d.all<Ctx>(
    `SELECT student_key, school_id, grade FROM student_context
     WHERE school_id IS NOT NULL OR grade IS NOT NULL ORDER BY student_key`,
  );
/** What the alert check aggregated over raw_events before student_context existed. */
const aggregate = (d: DuckStore) =>
  d.all<Ctx>(
    `SELECT * FROM (
       SELECT student_key, arg_max(school_id, ts) FILTER (WHERE school_id IS NOT NULL) AS school_id,
              arg_max(grade, ts) FILTER (WHERE grade IS NOT NULL) AS grade
       FROM raw_events GROUP BY student_key)
     WHERE school_id IS NOT NULL OR grade IS NOT NULL ORDER BY student_key`,
  );

describe("student_context (the alert check's school and grade per student)", () => {
  let n = 0;
  it("equals the newest school / grade over the stored raw events, after any batches through record and append", async () => {
    const batchArb = fc.array(
      fc.record({
        id: fc.integer({ min: 0, max: 15 }),
        topics: fc.integer({ min: 1, max: 2 }),
        v: fc.integer({ min: 0, max: 40 }),
        student: fc.integer({ min: 0, max: 3 }),
      }),
      { maxLength: 10 },
    );
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(batchArb, fc.boolean()), { minLength: 1, maxLength: 5 }),
        async (batches) => {
          n++;
          const d = await DuckStore.open(join(dir, `p${n}.duckdb`), { encryption: null });
          try {
            const raw = await DuckRawEventStore.open(d);
            for (const [batch, viaAppend] of batches) {
              const rows = batch.flatMap((e) =>
                Array.from({ length: e.topics }, (_, t) => row(e.id, t, e.v, e.student)),
              );
              if (viaAppend) await raw.append(rows);
              else await raw.record(rows);
            }
            expect(await table(d)).toEqual(await aggregate(d));
          } finally {
            d.close();
          }
        },
      ),
      { numRuns: 15 },
    );
  }, 120_000);

  it("known answer: a later event moves the school, an earlier one (arriving late) does not", async () => {
    const d = await DuckStore.open(join(dir, "known.duckdb"), { encryption: null });
    try {
      const raw = await DuckRawEventStore.open(d);
      await raw.record([{ ...row(1, 0, 1, 0), school_id: "north", grade: 5 }]);
      await raw.record([{ ...row(3, 0, 1, 0), school_id: "south", grade: null }]);
      await raw.append([{ ...row(2, 0, 1, 0), school_id: "west", grade: 6 }]);
      expect(await table(d)).toEqual([{ student_key: "k-0", school_id: "south", grade: 6 }]);
    } finally {
      d.close();
    }
  });

  it("is filled from raw_events when a file written before it is opened", async () => {
    const path = join(dir, "older.duckdb");
    const d = await DuckStore.open(path, { encryption: null });
    const raw = await DuckRawEventStore.open(d);
    await raw.record([row(1, 0, 1, 0), row(2, 0, 2, 0), row(3, 1, 5, 1), row(4, 0, 7, 2)]);
    await d.run("DROP TABLE student_context");
    d.close();
    const again = await DuckStore.open(path, { encryption: null });
    try {
      expect(await table(again)).toEqual(await aggregate(again));
      expect((await table(again)).length).toBe(3);
    } finally {
      again.close();
    }
  });

  it("is kept by file / record ingest (features/ingest.ts)", async () => {
    const d = await DuckStore.open(join(dir, "ingest.duckdb"), { encryption: null });
    try {
      const pseudonymizer = new Pseudonymizer("student-context-test-key-0123456789");
      const ev = (id: string, student: string, at: string, school?: string, grade?: number) => ({
        event_id: id,
        type: "quiz_attempt",
        student_id: student,
        topic_id: "t1",
        timestamp: at,
        question_id: "q1",
        is_correct: true,
        time_spent_sec: 10,
        ...(school !== undefined ? { school_id: school } : {}),
        ...(grade !== undefined ? { grade } : {}),
      });
      const opts = { pseudonymizer, now: new Date("2026-02-01T00:00:00Z") };
      await ingestEvents(
        d,
        [ev("a1", "A", "2026-01-05T10:00:00Z", "north", 4), ev("b1", "B", "2026-01-05T10:00:00Z")],
        opts,
      );
      await ingestEvents(
        d,
        [ev("a2", "A", "2026-01-06T10:00:00Z", "south"), ev("a0", "A", "2026-01-01T10:00:00Z", "west", 3)],
        { ...opts, now: new Date("2026-02-02T00:00:00Z") },
      );
      expect(await table(d)).toEqual(await aggregate(d));
      expect(await table(d)).toEqual([
        { student_key: pseudonymizer.studentKey("A"), school_id: "south", grade: 4 },
      ]);
    } finally {
      d.close();
    }
  });
});
