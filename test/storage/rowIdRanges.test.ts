/**
 * GET /mastery's miss read on the embedded file as row-id ranges (storage/rowIdRanges.ts): the runs of a set
 * of row ids (known answers and a property), and DuckMasteryReadStore.scoreRows reading the base by ranges
 * returns the rows the index read returns, on a checkpointed file whose students' rows lie contiguous, in two
 * regions (a region per batch step) or spread (the index read then), with delta revisions; and a snapshot's two
 * statements see one state of the file while another connection commits.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { DuckMasteryReadStore } from "../../serving/masteryReadStore.ts";
import { scoreRowNeeds } from "../../serving/masteryView.ts";
import {
  MAX_RUNS,
  MIN_ROWS,
  ROWS_PER_VECTOR,
  RUN_GAP,
  rowIdRuns,
  VECTOR_ROWS,
} from "../../storage/rowIdRanges.ts";
import { baseTable, deltaTable } from "../../storage/servingTables.ts";
import { SOURCES, STUDENTS, seed, seedFile, TOPICS } from "./rowIdSeed.ts";

describe("rowIdRuns: the runs of a student's row ids", () => {
  it("known answers", () => {
    expect(rowIdRuns([])).toBeNull();
    // One row, or 40 in a row: the index fetches them for less than the range read's fixed cost.
    expect(rowIdRuns([7])).toBeNull();
    expect(rowIdRuns(Array.from({ length: 40 }, (_, i) => 500 + i))).toBeNull();
    // 400 rows in a row, given in any order: one run.
    const block = Array.from({ length: 400 }, (_, i) => 1000 + ((i * 37) % 400));
    expect(rowIdRuns(block)).toEqual([[1000, 1399]]);
    // Two regions (a batch step each), 3 million rows apart: two runs.
    const two = [
      ...Array.from({ length: 300 }, (_, i) => 10 + i),
      ...Array.from({ length: 100 }, (_, i) => 3e6 + 2 * i),
    ];
    expect(rowIdRuns(two)).toEqual([
      [10, 309],
      [3e6, 3e6 + 198],
    ]);
    // A gap of exactly RUN_GAP stays in the run; one more starts a new one.
    const sixty = (from: number) => Array.from({ length: 60 }, (_, i) => from + i);
    expect(rowIdRuns([...sixty(0), ...sixty(59 + RUN_GAP)])).toEqual([[0, 118 + RUN_GAP]]);
    expect(rowIdRuns([...sixty(0), ...sixty(60 + RUN_GAP)])).toEqual([
      [0, 59],
      [60 + RUN_GAP, 119 + RUN_GAP],
    ]);
    // MAX_RUNS runs are read as ranges, one more is not.
    const runsOf = (k: number) =>
      Array.from({ length: 40 * k }, (_, i) => Math.floor(i / 40) * 1e6 + (i % 40));
    expect(rowIdRuns(runsOf(MAX_RUNS))).toHaveLength(MAX_RUNS);
    expect(rowIdRuns(runsOf(MAX_RUNS + 1))).toBeNull();
    // 400 rows 2,000 apart: one run over ~390 vectors, a row each: the index read.
    expect(rowIdRuns(Array.from({ length: 400 }, (_, i) => i * 2000))).toBeNull();
    // 400 rows 250 apart (49 vectors): the index read; 100 apart (20 vectors): one range.
    expect(rowIdRuns(Array.from({ length: 400 }, (_, i) => i * 250))).toBeNull();
    expect(rowIdRuns(Array.from({ length: 400 }, (_, i) => i * 100))).toEqual([[0, 39_900]]);
  });

  it("property: the runs cover every id, start and end on ids, are ascending and apart by more than the gap", () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.integer({ min: 0, max: 40_000 }), { maxLength: 300 }),
        fc.integer({ min: 1, max: 5000 }),
        fc.integer({ min: 1, max: 6 }),
        (ids, gap, maxRuns) => {
          const runs = rowIdRuns(ids, gap, maxRuns);
          const sorted = [...ids].sort((a, b) => a - b);
          // The reference: split the sorted ids where consecutive ones are more than `gap` apart.
          const ref: [number, number][] = [];
          for (const id of sorted) {
            const last = ref[ref.length - 1];
            if (last !== undefined && id - last[1] <= gap) last[1] = id;
            else ref.push([id, id]);
          }
          const vectors = new Set(ids.map((id) => Math.floor(id / VECTOR_ROWS))).size;
          const pays =
            ids.length > 0 && ref.length <= maxRuns && ids.length >= MIN_ROWS + ROWS_PER_VECTOR * vectors;
          if (!pays) {
            expect(runs).toBeNull();
            return;
          }
          expect(runs).toEqual(ref);
          const set = new Set(ids);
          for (const [lo, hi] of runs!) expect(set.has(lo) && set.has(hi)).toBe(true);
          for (const id of ids) expect(runs!.filter(([lo, hi]) => lo <= id && id <= hi)).toHaveLength(1);
          for (let i = 1; i < runs!.length; i++) expect(runs![i]![0] - runs![i - 1]![1]).toBeGreaterThan(gap);
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe("DuckMasteryReadStore.scoreRows by row-id ranges", () => {
  const file = seedFile("row-id-ranges-");

  it("a snapshot's statements see one state of the file while another connection commits", async () => {
    await seed(file.duck, "student_key, topic_id, score_source");
    const pool = await file.duck.readPool(1);
    const count = "SELECT count(*)::DOUBLE AS n FROM student_mastery WHERE student_key = 'student-1'";
    const n = (r: { column(c: string): (i: number) => unknown }) => r.column("n")(0) as number;
    const seen = await pool.snapshot(async (q) => {
      const before = await q.columns(count, undefined, n);
      await file.duck.run(
        `INSERT INTO ${deltaTable("student_mastery")} (student_key, topic_id, mastery_score, score_source,
           model_version, as_of, explanation, last_updated)
         VALUES ('student-1', 'new-topic', 0.5, 'bkt', 'v', TIMESTAMP '2026-12-02', '{}', TIMESTAMP '2026-12-02')`,
      );
      return [before, await q.columns(count, undefined, n)];
    });
    expect(seen).toEqual([240, 240]);
    expect(await pool.snapshot((q) => q.columns(count, undefined, n))).toBe(241);
    // A failing read rolls its transaction back and leaves the connection usable.
    await expect(
      pool.snapshot((q) => q.columns("SELECT * FROM no_such_table", undefined, n)),
    ).rejects.toThrow(/no_such_table/);
    expect(await pool.snapshot((q) => q.columns(count, undefined, n))).toBe(241);
  });

  const layouts = {
    // A student's rows next to each other: one run.
    contiguous: { order: "student_key, topic_id, score_source", ranged: true },
    // A region per batch step (the rule step's rows after the others'): two runs.
    "two regions": {
      order: "score_source = 'rule_based', student_key, topic_id, score_source",
      ranged: true,
    },
    // Spread over a table of ~127,000 rows (a few rows a vector): the index read.
    spread: { order: "hash(student_key || topic_id || score_source)", ranged: false, filler: 120_000 },
  };
  for (const [name, layout] of Object.entries(layouts))
    it(`${name}: the same rows as the index read, on the store's connection and on a read pool`, async () => {
      await seed(file.duck, layout.order, "filler" in layout ? layout.filler : 0);
      const pool = await file.duck.readPool(2);
      const byIndex = new DuckMasteryReadStore(file.duck, undefined, { rangeReads: false });
      const stores = [new DuckMasteryReadStore(file.duck), new DuckMasteryReadStore(pool)];
      const needs = scoreRowNeeds({});
      let ranged = 0;
      for (let s = 0; s <= STUDENTS; s++) {
        const key = `student-${s}`;
        const ids = (
          await file.duck.all<{ r: bigint }>(
            `SELECT rowid AS r FROM ${baseTable("student_mastery")} WHERE student_key = $1`,
            [key],
          )
        ).map((x) => Number(x.r));
        if (rowIdRuns(ids) !== null) ranged++;
        const want = await byIndex.scoreRows(key, needs);
        expect(want.length).toBe(s < STUDENTS ? TOPICS * SOURCES.length : 4);
        for (const read of stores) expect(await read.scoreRows(key, needs)).toEqual(want);
        // Without needs (every text rendered from its numbers), on a few students.
        if (s % 10 === 0) {
          const wantAll = await byIndex.scoreRows(key);
          for (const read of stores) expect(await read.scoreRows(key)).toEqual(wantAll);
        }
      }
      // The layout takes the path it is meant to (the last student has no base rows: the index read).
      expect(ranged).toBe(layout.ranged ? STUDENTS : 0);
    });
});
