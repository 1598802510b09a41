/**
 * DuckMasteryReadStore.scoreRows with its RowIdRunMemory (storage/rowIdRanges.ts) on a checkpointed DuckDB file:
 * which read each miss makes (the row ids first, a remembered student's ranges in one checked statement, or the
 * index with the row ids read along) in student order, spread, and as the base is rewritten under a memory that
 * learned the old layout; every read returns the index read's rows.
 */
import { describe, expect, it, vi } from "vitest";
import { DuckMasteryReadStore, type MasteryViewRow } from "../../serving/masteryReadStore.ts";
import { scoreRowNeeds } from "../../serving/masteryView.ts";
import type { DuckReadPool } from "../../storage/duckdb.ts";
import { BASE_ROWS, ROW_ID, RowIdRunMemory, rowIdRuns } from "../../storage/rowIdRanges.ts";
import { baseTable } from "../../storage/servingTables.ts";
import { STUDENTS, seed, seedFile } from "./rowIdSeed.ts";

describe("DuckMasteryReadStore.scoreRows with its RowIdRunMemory", () => {
  const file = seedFile("row-id-memory-");

  const needs = scoreRowNeeds({});
  /** Every student's rows as the index read gives them, after the last reseed. */
  let want: MasteryViewRow[][] = [];
  /** seed, then the index read of every student (what every read must return until the next reseed). */
  async function reseed(order: string, filler = 0): Promise<void> {
    await seed(file.duck, order, filler);
    const byIndex = new DuckMasteryReadStore(file.duck, undefined, { rangeReads: false });
    want = [];
    for (let s = 0; s <= STUDENTS; s++) want.push(await byIndex.scoreRows(`student-${s}`, needs));
  }

  /** Reads every student through `read`, compares with the index read, and counts the reads of each kind. */
  async function readAll(read: DuckMasteryReadStore, pool: DuckReadPool) {
    const snapshot = vi.spyOn(pool, "snapshot");
    const columns = vi.spyOn(pool, "columns");
    for (let s = 0; s <= STUDENTS; s++) expect(await read.scoreRows(`student-${s}`, needs)).toEqual(want[s]);
    const sqls = columns.mock.calls.map((c) => c[0]);
    const kinds = {
      probe: snapshot.mock.calls.length,
      ranges: sqls.filter((q) => q.includes(BASE_ROWS)).length,
      index: sqls.filter((q) => q.includes(ROW_ID) && !q.includes(BASE_ROWS)).length,
    };
    snapshot.mockRestore();
    columns.mockRestore();
    return kinds;
  }

  it("in student order: probes each new student, then reads it by its runs in one checked statement", async () => {
    await reseed("student_key, topic_id, score_source");
    const pool = await file.duck.readPool(1);
    const read = new DuckMasteryReadStore(pool);
    // student-12 has no base rows: its probe finds no runs, so it is read through the index next time.
    expect(await readAll(read, pool)).toEqual({ probe: STUDENTS + 1, ranges: 0, index: 0 });
    expect(await readAll(read, pool)).toEqual({ probe: 0, ranges: STUDENTS, index: 1 });
  });

  it("spread: no probe once recent reads found no runs, and none for a student read before", async () => {
    // ~53,000 rows (26 vectors): a student's 240 rows touch ~26 vectors, fewer than a range read needs.
    await reseed("hash(student_key || topic_id || score_source)", 50_000);
    const pool = await file.duck.readPool(1);
    // Weight 1/2 a read, threshold 1/16: the fifth read finds the share at 1/16, the sixth at 1/32.
    const read = new DuckMasteryReadStore(pool, undefined, {
      memory: new RowIdRunMemory({ rate: 0.5, minShare: 1 / 16 }),
    });
    expect(await readAll(read, pool)).toEqual({ probe: 5, ranges: 0, index: STUDENTS + 1 - 5 });
    expect(await readAll(read, pool)).toEqual({ probe: 0, ranges: 0, index: STUDENTS + 1 });
  });

  it("a row added outside the remembered runs, or the base rewritten: the same rows, the runs learned again", async () => {
    await reseed("student_key, topic_id, score_source");
    const pool = await file.duck.readPool(1);
    const memory = new RowIdRunMemory();
    const read = new DuckMasteryReadStore(pool, undefined, { memory });
    await readAll(read, pool);
    // A fold's INSERT puts a new key of student-3 at the base's tail, outside its run: the checked read sees
    // one base row more by the index than in the ranges and reads again (a probe), whose runs hold the new row.
    await file.duck.run(
      `INSERT INTO ${baseTable("student_mastery")} (student_key, topic_id, mastery_score, score_source, model_version,
         as_of, explanation, last_updated)
       VALUES ('student-3', 'T999', 0.5, 'bkt', 'v3', TIMESTAMP '2026-12-03', '{"tail":1}', TIMESTAMP '2026-12-03')`,
    );
    want[3] = await new DuckMasteryReadStore(file.duck, undefined, { rangeReads: false }).scoreRows(
      "student-3",
      needs,
    );
    expect(want[3]!.some((r) => r.topic_id === "T999")).toBe(true);
    const before = memory.plan("student-3");
    expect(before.kind).toBe("ranges");
    expect(await readAll(read, pool)).toEqual({ probe: 1, ranges: STUDENTS, index: 1 });
    const tail = Number(
      (
        await file.duck.one<{ r: bigint }>(
          `SELECT rowid AS r FROM ${baseTable("student_mastery")} WHERE student_key = 'student-3' AND topic_id = 'T999'`,
        )
      )?.r,
    );
    const after = memory.plan("student-3");
    if (before.kind !== "ranges" || after.kind !== "ranges") throw new Error("expected remembered runs");
    expect(before.runs.some(([lo, hi]) => lo <= tail && tail <= hi)).toBe(false);
    expect(after.runs.some(([lo, hi]) => lo <= tail && tail <= hi)).toBe(true);
    // The base rewritten with the rule rows in a region of their own (a full rule run after the BKT/Elo step):
    // every remembered run now holds only part of its student's rows, fails its check and is read again, with
    // the same rows; the next read is by the two runs found.
    await reseed("score_source = 'rule_based', student_key, topic_id, score_source");
    expect(await readAll(read, pool)).toEqual({ probe: STUDENTS, ranges: STUDENTS, index: 1 });
    const ids = (
      await file.duck.all<{ r: bigint }>(
        `SELECT rowid AS r FROM ${baseTable("student_mastery")} WHERE student_key = 'student-3'`,
      )
    ).map((x) => Number(x.r));
    expect(memory.plan("student-3")).toEqual({ kind: "ranges", runs: rowIdRuns(ids) });
    expect(await readAll(read, pool)).toEqual({ probe: 0, ranges: STUDENTS, index: 1 });
  });

  it("students remembered as spread are read through the index, which learns the runs once the base is in order", async () => {
    await reseed("student_key, topic_id, score_source");
    const pool = await file.duck.readPool(1);
    const memory = new RowIdRunMemory();
    for (let s = 0; s <= STUDENTS; s++) memory.learn(`student-${s}`, null);
    const read = new DuckMasteryReadStore(pool, undefined, { memory });
    expect(await readAll(read, pool)).toEqual({ probe: 0, ranges: 0, index: STUDENTS + 1 });
    expect(await readAll(read, pool)).toEqual({ probe: 0, ranges: STUDENTS, index: 1 });
  });
});
