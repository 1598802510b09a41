import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import { DuckStore } from "../../storage/duckdb.ts";
import { DuckRawEventStore, type RawEventRow } from "../../storage/rawEventStore.ts";
import { rawEventRow } from "./rawEventRowFixture.ts";

const dir = mkdtempSync(join(tmpdir(), "raw-append-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A raw row of event `id` on `topic`; `v` varies the payload so a second version of an id differs. */
const row = (id: number, topic: number, v: number, student: number): RawEventRow =>
  rawEventRow(
    {
      event_id: `e-${id}`,
      type: v % 2 === 0 ? "quiz_attempt" : "assignment",
      student_key: `k-${student}`,
      topic_id: `T${topic}`,
      ts_us: 1_767_000_000_000_000 + id * 1_000_123 + v,
      ingested_at_us: 1_767_000_000_000_000 + v * 1_000,
    },
    {
      school_id: v % 3 === 0 ? null : `s-${v}`,
      grade: v % 4 === 0 ? null : v,
      question_id: `q-'${v}`,
      is_correct: v % 5 === 0 ? null : v % 2 === 0,
      time_spent_sec: v % 3 === 0 ? null : v / 7,
      attempt_number: v,
      score_pct: v * 0.1,
    },
  );

const dump = (d: DuckStore) =>
  d.all("SELECT * FROM raw_events ORDER BY event_id, topic_id, ingested_at, ts, type, student_key");

describe("DuckRawEventStore.append (the server's raw copy, serving/rawMirror.ts)", () => {
  let n = 0;
  it("stores exactly what record() stores: first stored version of each event_id, over any batches", async () => {
    // Batches of (event id, topics, version, student): ids repeat within and across batches (retries,
    // second versions with other payloads, other students, other topics).
    const batchArb = fc.array(
      fc.record({
        id: fc.integer({ min: 0, max: 12 }),
        topics: fc.integer({ min: 1, max: 3 }),
        v: fc.integer({ min: 0, max: 40 }),
        student: fc.integer({ min: 0, max: 2 }),
      }),
      { minLength: 0, maxLength: 12 },
    );
    await fc.assert(
      fc.asyncProperty(fc.array(batchArb, { minLength: 1, maxLength: 5 }), async (batches) => {
        n++;
        const a = await DuckStore.open(join(dir, `a${n}.duckdb`), { encryption: null });
        const b = await DuckStore.open(join(dir, `b${n}.duckdb`), { encryption: null });
        try {
          const ra = await DuckRawEventStore.open(a);
          const rb = await DuckRawEventStore.open(b);
          for (const batch of batches) {
            const rows = batch.flatMap((e) =>
              Array.from({ length: e.topics }, (_, t) => row(e.id, t, e.v, e.student)),
            );
            await ra.append(rows);
            await rb.record(rows);
          }
          const got = await dump(a);
          expect(got).toEqual(await dump(b));
          // Each event id is stored once per topic at most (the dedupe did something on repeats).
          const ids = new Set(batches.flat().map((e) => e.id));
          const distinct = await a.all<{ n: bigint }>("SELECT count(DISTINCT event_id) AS n FROM raw_events");
          expect(Number(distinct[0]?.n)).toBe(ids.size);
        } finally {
          a.close();
          b.close();
        }
      }),
      { numRuns: 25 },
    );
  }, 300_000);

  it("appends started together store the rows of each; one rolled back with its transaction leaves none", async () => {
    const d = await DuckStore.open(join(dir, "together.duckdb"), { encryption: null });
    try {
      const r = await DuckRawEventStore.open(d);
      // The first append ever runs inside a transaction that fails: its rows (and the staging table it
      // created) go with the rollback, and the next appends still work.
      await expect(
        d.transaction(async () => {
          await r.append([row(100, 0, 2, 0)]);
          throw new Error("the group failed after its raw append");
        }),
      ).rejects.toThrow(/group failed/);
      await Promise.all([
        r.append([row(1, 0, 2, 0), row(2, 0, 2, 1)]),
        r.append([row(3, 0, 4, 0)]),
        r.append([row(1, 0, 6, 2), row(4, 1, 8, 1)]), // e-1 again: the first stored copy stays
      ]);
      const ids = await d.all<{ event_id: string; student_key: string }>(
        "SELECT event_id, student_key FROM raw_events ORDER BY event_id",
      );
      expect(ids).toEqual([
        { event_id: "e-1", student_key: "k-0" },
        { event_id: "e-2", student_key: "k-1" },
        { event_id: "e-3", student_key: "k-0" },
        { event_id: "e-4", student_key: "k-1" },
      ]);
      const staged = await d.all<{ n: bigint }>("SELECT count(*) AS n FROM temp.raw_append_stage");
      expect(Number(staged[0]?.n)).toBe(0);
    } finally {
      d.close();
    }
  });
});
