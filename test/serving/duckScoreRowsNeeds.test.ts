/**
 * DuckMasteryReadStore.scoreRows with ScoreRowNeeds (GET /mastery's miss read on the embedded file): for any
 * stored rows, text or the batch jobs' explanation numbers (BKT / Elo, the rule block), the rows without needs
 * where neededRows keeps them (a row stored as numbers with them, MasteryViewRow.stored, its text not rendered:
 * rendered, the text the read without needs gives), explanation "" and last_updated = as_of elsewhere; and the
 * body built from them is the body built from every row.
 */
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DuckMasteryReadStore, neededRows, type ScoreRowNeeds } from "../../serving/masteryReadStore.ts";
import { scoreRowNeeds, studentMasteryJson } from "../../serving/masteryView.ts";
import { DuckStore } from "../../storage/duckdb.ts";
import { ruleBlockValues } from "../../storage/explanationNumbers.ts";
import { RULE_BLOCK_COLUMNS } from "../../storage/schema.ts";
import { baseTable } from "../../storage/servingTables.ts";
import { renderedRows } from "./renderedRows.ts";

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
  // A bkt / elo / rule row stored as the batch jobs store it: its explanation's numbers, an empty text.
  numbers: fc.boolean(),
  day: fc.integer({ min: 1, max: 20 }),
  evidence: fc.double({ min: 0.5, max: 30, noNaN: true }),
});

/** A rule block as the rule step stores it (models/ruleScorer.ts StoredRuleState), days before the row's as_of. */
const block = (day: number, evidence: number) => ({
  prior: 0.4,
  refUs: Date.UTC(2026, 0, day) * 1000,
  lastUs: Date.UTC(2026, 0, day) * 1000 - 3_600e6,
  evidence,
  shrinkageK: 5,
  evidenceHalfLifeDays: 30,
  inactivityHalfLifeDays: 14,
  partSum: 0.21,
  recencyWeight: 0.1,
  centered: true,
  factors: [
    { name: "accuracy" as const, value: 0.75, part: 0.18 },
    { name: "hint_usage" as const, value: 0.1, part: 0.03 },
  ],
});

describe("DuckMasteryReadStore.scoreRows with needs", () => {
  it("property: rows elided as neededRows says, texts of the kept ones rendered; the same body", async () => {
    let elided = 0;
    let asNumbers = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.uniqueArray(row, { selector: (r) => `${r.topic}|${r.source}`, maxLength: 14 }),
        fc.record({ order: fc.option(fc.shuffledSubarray(SOURCES), { nil: undefined }) }),
        async (rows, o) => {
          await duck.run(`DELETE FROM ${baseTable("student_mastery")}`);
          for (const r of rows) {
            const exNumbers = r.numbers && (r.source === "bkt" || r.source === "elo");
            const ruleNumbers = r.numbers && r.source === "rule_based";
            const explanation =
              r.source === "served"
                ? served(r.score)
                : exNumbers || ruleNumbers
                  ? ""
                  : JSON.stringify({ note: r.source });
            const ruleValues = ruleNumbers
              ? ruleBlockValues(block(r.day, r.evidence))
              : RULE_BLOCK_COLUMNS.map(() => null);
            await duck.run(
              `INSERT INTO ${baseTable("student_mastery")} (student_key, topic_id, mastery_score, score_source, model_version, as_of, explanation, last_updated,
                 ex_base, ex_correct, ex_correct_c, ex_incorrect, ex_incorrect_c, ex_learn, ex_learn_c, ex_streak, ex_streak_c,
                 ${RULE_BLOCK_COLUMNS.join(", ")})
               VALUES ('s', $1, $2, $3, 'v1', TIMESTAMP '2026-01-01 00:00:00' + INTERVAL (${r.day}) DAY, $4,
                 TIMESTAMP '2026-01-01 00:00:00' + INTERVAL (${r.day + 1}) DAY, ${exNumbers ? "0.3, 4, 0.2, 1, -0.1, 0.05, 0.01, 2, 0.02" : "NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL"},
                 ${RULE_BLOCK_COLUMNS.map((_, i) => `$${5 + i}`).join(", ")})`,
              [r.topic, r.score, r.source, explanation, ...ruleValues],
            );
          }
          const opts = o.order === undefined ? {} : { sourceOrder: o.order };
          const needs: ScoreRowNeeds = scoreRowNeeds(opts);
          const all = await read.scoreRows("s");
          const needed = neededRows(all, needs);
          const want = all.map((r, i) => (needed[i] ? r : { ...r, explanation: "", last_updated: r.as_of }));
          const got = await read.scoreRows("s", needs);
          asNumbers += got.filter((r) => r.stored !== undefined).length;
          expect(got.filter((r) => r.stored !== undefined).every((r) => r.explanation === "")).toBe(true);
          expect(renderedRows(got)).toEqual(want);
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
    // ~25-40 over the 40 runs: enough to know the rows stored as numbers were read through both paths.
    expect(asNumbers).toBeGreaterThan(5);
  });
});
