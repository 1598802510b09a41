/**
 * GET /mastery bodies of a student whose rows the daily batch wrote on the embedded file (bkt / elo stored as
 * their explanation's numbers, rule_based as its block, both with an empty text; next to a served text row, a
 * rule row without a block and a teacher's correction), golden: test/golden/mastery-body-batch-rows.json was
 * written by main e1807c7's code, before the miss read used the numbers without rendering their texts, so the
 * bodies stay byte for byte what they were. Read as the server's miss reads (scoreRows with needs) and as every
 * row's text (masteryRows), at a request time and as stored.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { StoredRuleState } from "../../models/ruleScorer.ts";
import { DuckMasteryReadStore } from "../../serving/masteryReadStore.ts";
import { scoreRowNeeds, studentMasteryJson, type TopicMeta } from "../../serving/masteryView.ts";
import { DuckStore } from "../../storage/duckdb.ts";
import { ruleBlockValues } from "../../storage/explanationNumbers.ts";
import { EXPLANATION_NUMBER_COLUMNS, RULE_BLOCK_COLUMNS } from "../../storage/schema.ts";
import { baseTable } from "../../storage/servingTables.ts";

const here = dirname(fileURLToPath(import.meta.url));
const GOLDEN = join(here, "../golden/mastery-body-batch-rows.json");
const DAY_US = 86_400e6;
/** The batch run's as-of, 2026-11-30T06:00:00.000123Z (microseconds, as DuckDB stores it). */
const AS_OF_US = Date.UTC(2026, 10, 30, 6) * 1000 + 123;

const rule = (over: Partial<StoredRuleState>): StoredRuleState => ({
  prior: 0.4,
  refUs: AS_OF_US - DAY_US,
  lastUs: AS_OF_US - 2.5 * DAY_US,
  evidence: 7.318181818181818,
  shrinkageK: 5,
  evidenceHalfLifeDays: 30,
  inactivityHalfLifeDays: 14,
  partSum: 0.1937499999999999,
  recencyWeight: 0.0625,
  centered: true,
  factors: [
    { name: "accuracy", value: 0.7142857142857143, part: 0.12946428571428573 },
    { name: "practice_success", value: 0.6, part: 0.03125 },
    { name: "hint_usage", value: 0.14285714285714285, part: 0.033035714285714286 },
  ],
  ...over,
});

/** [topic, source, score, text, BKT / Elo numbers, rule block] as the batch (or the stream, for text) stored them. */
type Stored = [string, string, number, string, (number | null)[] | null, StoredRuleState | null];
const ROWS: Stored[] = [
  ["W0", "bkt", 0.8123456789012345, "", [0.3, 6, 0.31, 2, -0.12, 0.08, 0.04, 3, 0.1923456789012345], null],
  ["W0", "elo", 0.6612, "", [0.5, 6, 0.2, 2, -0.07, null, null, 3, 0.0312], null],
  ["W0", "rule_based", 0.5, "", null, rule({})],
  [
    "W0",
    "served",
    0.7345,
    JSON.stringify({
      base: 0.3,
      factors: [{ name: "recent_accuracy", value: 0.8, contribution: 0.4345 }],
      rest: 0,
      score: 0.7345,
      interval: { lo: 0.61, hi: 0.83, level: 0.8 },
      evidence: { kind: "measured", attempts: 9, daysSinceLast: 2.5 },
      pCorrect: 0.66,
      decay: { halfLifeDays: 41.5, floor: 0.2, pFloor: 0.3 },
    }),
    null,
    null,
  ],
  // bkt served (its text rendered from its numbers), the rule row listed
  ["W1", "bkt", 0.25, "", [0.3, 1, -0.02, 3, -0.09, 0.08, 0.01, 0, 0.05], null],
  ["W1", "elo", 0.4, "", [0.5, 1, 0.03, 3, -0.13, null, null, 0, 0], null],
  ["W1", "rule_based", 0.3, "", null, rule({ evidence: 3, partSum: -0.2, lastUs: AS_OF_US - 20 * DAY_US })],
  // a rule row alone: served from its block (recency not a signal; a clamp)
  [
    "W2",
    "rule_based",
    1,
    "",
    null,
    rule({
      evidence: 400,
      partSum: 0.9,
      recencyWeight: 0,
      centered: false,
      factors: [{ name: "assignment_score", value: 98, part: 0.9 }],
    }),
  ],
  // a rule row without a block (no signal: the prior, its text) before elo
  ["W3", "elo", 0.55, "", [0.5, 0, 0, 0, 0, null, null, 1, 0.05], null],
  ["W3", "rule_based", 0.4, '{"base":0.4,"factors":[],"rest":0,"score":0.4}', null, null],
  // a teacher's correction wins over the rule row
  ["W4", "rule_based", 0.45, "", null, rule({ lastUs: AS_OF_US - 0.5 * DAY_US })],
  [
    "W4",
    "teacher_override",
    0.9,
    '{"base":0.9,"factors":[],"rest":0,"score":0.9,"note":"checked"}',
    null,
    null,
  ],
];

let duck: DuckStore;
let read: DuckMasteryReadStore;
beforeAll(async () => {
  duck = await DuckStore.open(":memory:", { encryption: null });
  read = new DuckMasteryReadStore(duck);
  for (const [topic, source, score, text, ex, block] of ROWS) {
    const values = [
      ...(ex ?? EXPLANATION_NUMBER_COLUMNS.map(() => null)),
      ...(block === null ? RULE_BLOCK_COLUMNS.map(() => null) : ruleBlockValues(block)),
    ];
    await duck.run(
      `INSERT INTO ${baseTable("student_mastery")} (student_key, topic_id, mastery_score, score_source, model_version,
         as_of, explanation, last_updated, ${[...EXPLANATION_NUMBER_COLUMNS, ...RULE_BLOCK_COLUMNS].join(", ")})
       VALUES ('s', $1, $2, $3, 'default', make_timestamp(${AS_OF_US}::BIGINT), $4,
         make_timestamp(${AS_OF_US + 1000}::BIGINT), ${values.map((_, i) => `$${5 + i}::${i < EXPLANATION_NUMBER_COLUMNS.length ? "DOUBLE" : RULE_BLOCK_COLUMNS[i - EXPLANATION_NUMBER_COLUMNS.length] === "rule_centered" ? "BOOLEAN" : "DOUBLE"}`).join(", ")})`,
      [topic, score, source, text, ...values],
    );
  }
});
afterAll(() => duck.close());

const META: TopicMeta = {
  level: { chapter: new Map([["W0", "C0"]]), subject: new Map(), course: new Map() },
  weight: new Map(),
  totals: { chapter: new Map([["C0", 2]]), subject: new Map(), course: new Map() },
};

describe("GET /mastery of the batch's rows on the embedded file (golden)", () => {
  it("matches test/golden/mastery-body-batch-rows.json, read as the miss reads and from every row's text (UPDATE_GOLDEN=1 rewrites)", async () => {
    const now = new Date(Date.UTC(2026, 11, 2, 9, 30));
    const bodies: Record<string, string> = {};
    for (const [name, at] of [
      ["atRequestTime", now],
      ["asStored", undefined],
    ] as const) {
      const opts = { topics: async () => META, ...(at === undefined ? {} : { now: at }) };
      const miss = await studentMasteryJson(read, "s", {
        ...opts,
        rows: await read.scoreRows("s", scoreRowNeeds({})),
      });
      const texts = await studentMasteryJson(read, "s", { ...opts, rows: await read.masteryRows("s") });
      expect(miss.json).toBe(texts.json);
      bodies[name] = miss.json;
    }
    const got = `${JSON.stringify(bodies, null, 2)}\n`;
    if (process.env.UPDATE_GOLDEN === "1") writeFileSync(GOLDEN, got);
    expect(got).toBe(readFileSync(GOLDEN, "utf8"));
  });
});
