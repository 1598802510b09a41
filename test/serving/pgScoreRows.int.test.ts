/**
 * PgMasteryReadStore.scoreRows (GET /mastery's miss read on PostgreSQL, rows read as arrays and mapped in
 * JS) against the real PostgreSQL, own schema "serve10_rows_<pid>": for any stored rows, the same rows in
 * the same order as masteryRows (the join to topics) with the four topic columns null, every value of
 * the same type (numbers, Dates in UTC, strings byte for byte).
 */
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PgMasteryReadStore } from "../../serving/masteryReadStore.ts";
import { DuckStore } from "../../storage/duckdb.ts";
import { PgStore } from "../../storage/postgres.ts";
import { DuckStateStore } from "../../storage/stateStore.ts";

const PG_URL = process.env.MASTERY_PG_URL ?? "postgres://postgres@127.0.0.1:5432/test";
const schema = `serve10_rows_${process.pid}`;
let pg: PgStore;
let duck: DuckStore;
let read: PgMasteryReadStore;

beforeAll(async () => {
  pg = await PgStore.open(PG_URL, { schema, coreTables: true, poolMax: 3 });
  duck = await DuckStore.open(":memory:", { encryption: null });
  read = new PgMasteryReadStore(pg, await DuckStateStore.open(duck));
  await pg.run(
    "INSERT INTO topics (topic_id, name, chapter_id, subject_id, course_id) VALUES ('t1', 'One', 'c1', 's1', 'k1'), ('t2', NULL, 'c1', 's1', 'k1')",
  );
});
afterAll(async () => {
  await pg.run(`DROP SCHEMA ${schema} CASCADE`).catch(() => undefined);
  await pg.close();
  duck.close();
});

const text = fc.string({ unit: "grapheme", minLength: 1, maxLength: 6 }).filter((s) => !s.includes("\u0000"));
const row = fc.record({
  student: fc.constantFrom("a", "b", "c"),
  topic: fc.oneof(fc.constantFrom("t1", "t2", "t3"), text),
  source: fc.constantFrom("bkt", "elo", "served", "rule_based", "teacher_override"),
  score: fc.double({ min: -1, max: 2, noNaN: true, noDefaultInfinity: true }),
  version: text,
  asOf: fc.integer({ min: 0, max: 4_000_000_000 }).map((s) => new Date(s * 1000 + 123)),
  explanation: text.map((s) => JSON.stringify({ note: s })),
  updated: fc.integer({ min: 0, max: 4_000_000_000 }).map((s) => new Date(s * 1000)),
});

describe("PgMasteryReadStore.scoreRows", () => {
  it("equals masteryRows without the topic columns, for any stored rows", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.uniqueArray(row, { selector: (r) => `${r.student}|${r.topic}|${r.source}`, maxLength: 25 }),
        async (rows) => {
          await pg.run("DELETE FROM student_mastery");
          for (const r of rows)
            await pg.run(
              `INSERT INTO student_mastery (student_key, topic_id, mastery_score, score_source, model_version, as_of, explanation, last_updated)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
              [
                r.student,
                r.topic,
                r.score,
                r.source,
                r.version,
                r.asOf.toISOString().replace("T", " ").replace("Z", ""),
                r.explanation,
                r.updated.toISOString().replace("T", " ").replace("Z", ""),
              ],
            );
          for (const k of ["a", "b", "c", "nobody"]) {
            const got = await read.scoreRows(k);
            const want = (await read.masteryRows(k)).map((m) => ({
              ...m,
              name: null,
              chapter_id: null,
              subject_id: null,
              course_id: null,
            }));
            expect(got).toEqual(want);
            expect(got).toHaveLength(rows.filter((r) => r.student === k).length);
            for (const g of got) expect(Object.keys(g)).toEqual(Object.keys(want[0]!));
          }
        },
      ),
      { numRuns: 25 },
    );
  });

  it("known answer: one row's values and types", async () => {
    await pg.run("DELETE FROM student_mastery");
    await pg.run(
      `INSERT INTO student_mastery (student_key, topic_id, mastery_score, score_source, model_version, as_of, explanation, last_updated)
       VALUES ('s', 't1', 0.625, 'bkt', 'v1', TIMESTAMP '2026-01-05 10:00:00.5', '{"score":0.625}', TIMESTAMP '2026-01-06 00:00:00')`,
    );
    expect(await read.scoreRows("s")).toEqual([
      {
        topic_id: "t1",
        mastery_score: 0.625,
        score_source: "bkt",
        model_version: "v1",
        as_of: new Date("2026-01-05T10:00:00.500Z"),
        explanation: '{"score":0.625}',
        last_updated: new Date("2026-01-06T00:00:00Z"),
        name: null,
        chapter_id: null,
        subject_id: null,
        course_id: null,
      },
    ]);
  });
});
