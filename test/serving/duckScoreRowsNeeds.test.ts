/**
 * DuckMasteryReadStore.scoreRows with ScoreRowNeeds (GET /mastery's miss read on the embedded file): for any
 * stored rows, text or the batch job's explanation numbers, the rows without needs where neededRows keeps
 * them (their texts rendered), explanation "" and last_updated = as_of elsewhere; and the body built from
 * them is the body built from every row.
 */
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DuckMasteryReadStore, neededRows, type ScoreRowNeeds } from "../../serving/masteryReadStore.ts";
import { scoreRowNeeds, studentMasteryJson } from "../../serving/masteryView.ts";
import { DuckStore } from "../../storage/duckdb.ts";
import { baseTable } from "../../storage/servingTables.ts";

let duck: DuckStore;
let read: DuckMasteryReadStore;
beforeAll(async () => {
  duck = await DuckStore.open(":memory:", { encryption: null });
  read = new DuckMasteryReadStore(duck);
});
afterAll(() => duck.close());

const SOURCES = ["bkt", "elo", "served", "rule_based", "teacher_override", "ml", "Alpha"];
const served = (s: number) =>
  JSON.stringify({
    base: 0.3,
    factors: [],
    rest: s - 0.3,
    score: s,
    interval: { lo: s / 2, hi: s, level: 0.8 },
    evidence: { kind: "measured", attempts: 3, daysSinceLast: 1.5 },
    pCorrect: 0.6,
    decay: { halfLifeDays: 30, floor: 0.2, pFloor: 0.3 },
  });
const row = fc.record({
  topic: fc.constantFrom("t1", "t2", "t3"),
  source: fc.constantFrom(...SOURCES),
  score: fc.double({ min: 0, max: 1, noNaN: true }),
  // A bkt / elo row stored as the batch job stores it: its explanation's numbers, an empty text.
  numbers: fc.boolean(),
  day: fc.integer({ min: 1, max: 20 }),
});

describe("DuckMasteryReadStore.scoreRows with needs", () => {
  it("property: rows elided as neededRows says, texts of the kept ones rendered; the same body", async () => {
    let elided = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.uniqueArray(row, { selector: (r) => `${r.topic}|${r.source}`, maxLength: 14 }),
        fc.record({ order: fc.option(fc.shuffledSubarray(SOURCES), { nil: undefined }) }),
        async (rows, o) => {
          await duck.run(`DELETE FROM ${baseTable("student_mastery")}`);
          for (const r of rows) {
            const asNumbers = r.numbers && (r.source === "bkt" || r.source === "elo");
            const explanation =
              r.source === "served" ? served(r.score) : asNumbers ? "" : JSON.stringify({ note: r.source });
            await duck.run(
              `INSERT INTO ${baseTable("student_mastery")} (student_key, topic_id, mastery_score, score_source, model_version, as_of, explanation, last_updated,
                 ex_base, ex_correct, ex_correct_c, ex_incorrect, ex_incorrect_c, ex_learn, ex_learn_c, ex_streak, ex_streak_c)
               VALUES ('s', $1, $2, $3, 'v1', TIMESTAMP '2026-01-01 00:00:00' + INTERVAL (${r.day}) DAY, $4,
                 TIMESTAMP '2026-01-01 00:00:00' + INTERVAL (${r.day + 1}) DAY, ${asNumbers ? "0.3, 4, 0.2, 1, -0.1, 0.05, 0.01, 2, 0.02" : "NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL"})`,
              [r.topic, r.score, r.source, explanation],
            );
          }
          const opts = o.order === undefined ? {} : { sourceOrder: o.order };
          const needs: ScoreRowNeeds = scoreRowNeeds(opts);
          const all = await read.scoreRows("s");
          const needed = neededRows(all, needs);
          const want = all.map((r, i) => (needed[i] ? r : { ...r, explanation: "", last_updated: r.as_of }));
          const got = await read.scoreRows("s", needs);
          expect(got).toEqual(want);
          elided += needed.filter((x) => !x).length;
          const now = new Date(Date.UTC(2026, 2, 1));
          const topics = async () => ({
            level: { chapter: new Map(), subject: new Map(), course: new Map() },
            weight: new Map(),
            totals: { chapter: new Map(), subject: new Map(), course: new Map() },
          });
          const full = await studentMasteryJson(read, "s", { ...opts, rows: all, now, topics });
          const part = await studentMasteryJson(read, "s", { ...opts, rows: got, now, topics });
          expect(part.json).toBe(full.json);
        },
      ),
      { numRuns: 40 },
    );
    expect(elided).toBeGreaterThan(20);
  });
});
