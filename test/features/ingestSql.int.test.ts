/**
 * validSql (the boolean the CSV load filters on, written as one conjunction so each cast and the
 * timestamp regex run once) keeps exactly the rows issuesSql (the dead-letter messages, compiled from
 * the same contract) finds no problem with: for a fixed type and for a mixed-type file, on rows
 * built from valid values and from values at and past every bound of the contract.
 */
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { timeBounds } from "../../features/contractConfig.ts";
import { EVENT_SCHEMAS, EVENT_TYPES, type EventType } from "../../features/contracts.ts";
import { ident, issuesSql, STAGE_COLUMNS, validSql } from "../../features/ingestSql.ts";
import { DuckStore } from "../../storage/duckdb.ts";

// Received 2026-02-01; plausible from 2000-01-01 to one day after receipt.
const bounds = timeBounds(
  { minUs: Date.UTC(2000, 0, 1) * 1000, maxFutureUs: 86_400_000_000 },
  Date.UTC(2026, 1, 1),
);

const TIMESTAMPS = [
  "2026-01-05T10:00:00Z",
  "2026-01-05T10:00:00.123456+05:30",
  "2000-01-01T00:00:00Z",
  "2026-02-02T00:00:00Z",
  "2026-02-02T00:00:00.000001Z",
  "2026-02-02T01:00:00+01:00",
  "1999-12-31T23:59:59.999999Z",
  "2026-01-05 10:00:00Z",
  "2026-02-30T10:00:00Z",
  "2026-01-05T10:00:00",
  "2026-01-05T24:00:00Z",
  "2026-01-05T10:00:60Z",
  "2026-01-05T10:00:00.1234567Z",
  "9999-12-31T23:59:59Z",
  "yesterday",
];
const STRINGS = [
  "t1",
  "x",
  "é".repeat(512),
  "é".repeat(513),
  "x".repeat(1024),
  "x".repeat(1025),
  "a\u0000b",
  "",
];
const NUMBERS = [
  "1",
  "2",
  "3",
  "0",
  "2.5",
  "-1",
  "12",
  "13",
  "1.0",
  "1e3",
  "abc",
  "1x",
  "nan",
  "inf",
  "-inf",
  "2147483647",
];
const NUMBERS2 = ["2147483648", "1000000000", "1000000001", "100", "100.5", "", "  3 ", "0x10"];
const LISTS = [
  "t1|t2",
  "t1|",
  "|t2",
  "t1",
  Array.from({ length: 101 }, (_, i) => `t${i}`).join("|"),
  "a\u0000b",
];

function values(type: EventType, field: string): string[] {
  const fs = EVENT_SCHEMAS[type].properties[field];
  if (fs === undefined) return [];
  if (field === "timestamp") return TIMESTAMPS;
  if (fs.type === "string") return STRINGS;
  if (fs.type === "boolean") return ["true", "false", "TRUE", "1", "yes"];
  if (fs.type === "array") return [...LISTS, `t1|${"é".repeat(513)}`, `t1|${"y".repeat(1025)}`];
  return [...NUMBERS, ...NUMBERS2];
}

const row = fc.constantFrom(...EVENT_TYPES, "bogus").chain((type) => {
  const t = (EVENT_TYPES as readonly string[]).includes(type) ? (type as EventType) : "quiz_attempt";
  const cells = STAGE_COLUMNS.map((c) => {
    const vs = values(t, c);
    // Mostly valid values (the first few of each list), so rows pass with one bad cell at most often.
    return vs.length === 0
      ? fc.constant(null)
      : fc.oneof(
          { weight: 12, arbitrary: fc.constantFrom(...vs.slice(0, 3)) },
          { weight: 1, arbitrary: fc.constantFrom(...vs) },
          { weight: 1, arbitrary: fc.constant(null) },
        );
  });
  return fc.tuple(fc.constant(type), ...cells);
});

let store: DuckStore;
beforeAll(async () => {
  store = await DuckStore.open(":memory:", { encryption: null });
});
afterAll(() => store.close());

async function stage(rows: (string | null)[][]): Promise<void> {
  await store.run(
    `CREATE OR REPLACE TEMP TABLE v_stage (__i INTEGER, "type" VARCHAR, ${STAGE_COLUMNS.map((c) => `${ident(c)} VARCHAR`).join(", ")})`,
  );
  const ap = await store.conn.createAppender("v_stage", "main", "temp");
  rows.forEach((r, i) => {
    ap.appendInteger(i);
    for (const v of r) v === null ? ap.appendNull() : ap.appendVarchar(v);
    ap.endRow();
  });
  ap.flushSync();
  ap.closeSync();
}

/** Rows where validSql disagrees with "issuesSql lists no problem", as (row, type, valid, issues). */
async function disagreements(fixedType?: EventType): Promise<unknown[]> {
  return store.all(
    `SELECT __i, "type", ok, issues FROM (
       SELECT __i, "type", ${validSql('"type"', bounds, fixedType)} AS ok,
              len(${issuesSql('"type"', bounds, fixedType)}) AS issues
       FROM v_stage ${fixedType === undefined ? "" : `WHERE "type" = '${fixedType}'`})
     WHERE ok <> (issues = 0)`,
  );
}

describe("validSql", () => {
  it("keeps exactly the rows with no issue, mixed types and each fixed type (property)", async () => {
    let seenValid = 0;
    let seenInvalid = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(row, { minLength: 40, maxLength: 120 }), async (rows) => {
        await stage(rows);
        expect(await disagreements()).toEqual([]);
        for (const t of EVENT_TYPES) expect(await disagreements(t)).toEqual([]);
        const n = await store.one<{ v: bigint; i: bigint }>(
          `SELECT count(*) FILTER (WHERE ok) AS v, count(*) FILTER (WHERE NOT ok) AS i
           FROM (SELECT ${validSql('"type"', bounds)} AS ok FROM v_stage)`,
        );
        seenValid += Number(n?.v ?? 0);
        seenInvalid += Number(n?.i ?? 0);
      }),
      { numRuns: 12, seed: 20261203 },
    );
    // The property saw both kinds of rows in numbers.
    expect(seenValid).toBeGreaterThan(50);
    expect(seenInvalid).toBeGreaterThan(50);
  }, 120_000);

  it("a hand-picked row: each bound of a quiz attempt at and one past its limit", async () => {
    const base: Record<string, string | null> = {
      event_id: "e1",
      student_id: "s1",
      timestamp: "2026-01-05T10:00:00Z",
      topic_id: "t1",
      question_id: "q1",
      is_correct: "true",
      time_spent_sec: "12.5",
      attempt_number: "1",
      hints_used: "0",
    };
    const cases: [Record<string, string | null>, boolean][] = [
      [{}, true],
      [{ event_id: "é".repeat(512) }, true],
      [{ event_id: "é".repeat(513) }, false],
      [{ event_id: "x".repeat(1024) }, true],
      [{ event_id: "x".repeat(1025) }, false],
      [{ timestamp: "2026-02-02T00:00:00Z" }, true],
      [{ timestamp: "2026-02-02T00:00:00.000001Z" }, false],
      [{ timestamp: "2026-02-30T10:00:00Z" }, false],
      [{ attempt_number: "1.0" }, true],
      [{ attempt_number: "1.5" }, false],
      [{ attempt_number: "0" }, false],
      [{ hints_used: null }, true],
      [{ question_id: null }, false],
    ];
    await stage(
      cases.map(([over]) => ["quiz_attempt", ...STAGE_COLUMNS.map((c) => ({ ...base, ...over })[c] ?? null)]),
    );
    const got = await store.all<{ ok: boolean }>(
      `SELECT ${validSql('"type"', bounds, "quiz_attempt")} AS ok FROM v_stage ORDER BY __i`,
    );
    expect(got.map((r) => r.ok)).toEqual(cases.map(([, ok]) => ok));
    expect(await disagreements("quiz_attempt")).toEqual([]);
  });
});
