/**
 * One contract, two validators: the SQL checks compiled from the JSON Schemas (CSV path) and ajv
 * (JSON path) must reject the same rows, on the same fields, with the same messages.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { EVENT_SCHEMAS, EVENT_TYPES, type EventType } from "../../features/contracts.ts";
import { ingestFile } from "../../features/ingest.ts";
import { STAGE_COLUMNS } from "../../features/ingestSql.ts";
import { Pseudonymizer } from "../../features/pseudonymize.ts";
import { DuckStore } from "../../storage/duckdb.ts";

const opts = {
  pseudonymizer: new Pseudonymizer("agreement-key-0123456789"),
  now: new Date("2026-02-01T00:00:00Z"),
};

const VALID: Record<EventType, Record<string, unknown>> = {
  quiz_attempt: {
    topic_id: "t1",
    question_id: "q1",
    is_correct: true,
    time_spent_sec: 12.5,
    attempt_number: 1,
    hints_used: 0,
  },
  assignment: { topic_ids: ["t1", "t2"], assignment_id: "as", score_pct: 85 },
  video: { topic_id: "t1", video_id: "v", watch_pct: 50, watch_duration_sec: 120, rewind_count: 2 },
  practice: { topic_id: "t1", attempts: 5, correct_count: 3 },
  chatbot: { topic_id: "t1", help_requests: 2, resolved_count: 1 },
};

const BAD_TIMESTAMPS = [
  "2026-01-05 10:00:00Z",
  "2026-02-30T10:00:00Z",
  "2026-01-05T10:00:00",
  "2026-01-05T24:00:00Z",
  "2026-01-05T10:00:60Z",
  "2026-01-05T10:00:00+2:00",
  "2026-01-05T10:00:00.1234567Z",
  "yesterday",
  // Outside the plausible range (opts.now is 2026-02-01, so the latest accepted is 2026-02-02T00:00:00Z).
  "1999-12-31T23:59:59.999999Z",
  "0001-01-01T00:00:00Z",
  "2026-02-02T00:00:00.000001Z",
  "2026-02-02T01:00:00+01:00",
  "9999-12-31T23:59:59Z",
];

/** Ids at and past the bounds: 1024 characters / 1024 bytes of UTF-8, NUL characters. */
const BAD_IDS = ["x".repeat(1025), "é".repeat(513), "a\u0000b", "x".repeat(1024), "é".repeat(512)];

/** A mutation that CSV can express exactly like JSON (no empty strings: an empty CSV cell is null). */
const mutation = (type: EventType): fc.Arbitrary<[string, unknown]> => {
  const schema = EVENT_SCHEMAS[type];
  const fields = Object.keys(schema.properties).filter((f) => f !== "type");
  return fc.constantFrom(...fields).chain((field): fc.Arbitrary<[string, unknown]> => {
    const fs = schema.properties[field]!;
    const options: fc.Arbitrary<unknown>[] = [fc.constant(undefined)];
    if (fs.type === "number" || fs.type === "integer") {
      options.push(fc.integer({ min: -50, max: 150 }).map((n) => n / 2));
      options.push(fc.constantFrom("abc", "1x", 2147483647, 2147483648, 1e9, 1000000001));
    }
    if (fs.type === "boolean") options.push(fc.constantFrom("yes", "1", "TRUE"));
    if (field === "timestamp") options.push(fc.constantFrom(...BAD_TIMESTAMPS));
    else if (fs.type === "string") options.push(fc.constantFrom(...BAD_IDS));
    if (fs.type === "array")
      options.push(
        fc.constantFrom(
          ["t1", ""],
          ["", "t2"],
          Array.from({ length: 101 }, (_, i) => `t${i}`),
          ["t1", "é".repeat(513)],
          ["t1", "y".repeat(1025)],
          ["a\u0000b"],
        ),
      );
    return fc.oneof(...options).map((v) => [field, v] as [string, unknown]);
  });
};

const event = fc
  .record({
    type: fc.constantFrom(...EVENT_TYPES),
    grade: fc.option(fc.integer({ min: -1, max: 14 }), { nil: undefined }),
  })
  .chain(({ type, grade }) =>
    fc.tuple(fc.constant(type), fc.constant(grade), fc.array(mutation(type), { minLength: 0, maxLength: 3 })),
  )
  .map(([type, grade, muts]) => {
    const e: Record<string, unknown> = {
      type,
      student_id: "s1",
      timestamp: "2026-01-05T10:00:00Z",
      ...VALID[type],
    };
    if (grade !== undefined) e.grade = grade;
    for (const [f, v] of muts) {
      if (v === undefined) delete e[f];
      else e[f] = v;
    }
    return e;
  });

function csvCell(v: unknown): string {
  if (v === undefined || v === null) return "";
  const s = Array.isArray(v) ? v.join("|") : String(v);
  return /[",\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
}

async function deadLetters(path: string): Promise<{ accepted: number; rows: string[] }> {
  const store = await DuckStore.open(":memory:");
  const r = await ingestFile(store, path, opts);
  const rows = await store.all("SELECT row_number, field, reason FROM dead_letter ORDER BY ALL");
  store.close();
  return { accepted: r.accepted, rows: rows.map((x) => `${x.row_number} ${x.field}: ${x.reason}`) };
}

describe("SQL validator vs ajv", () => {
  it("reject the same rows with the same field and message (property)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "mastery-agree-"));
    let run = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(event, { minLength: 1, maxLength: 60 }), async (events) => {
        run++;
        events.forEach((e, i) => {
          e.event_id = `e${i}`;
        });
        const header = ["event_id", "type", ...STAGE_COLUMNS.filter((c) => c !== "event_id")];
        const csv = [header.join(","), ...events.map((e) => header.map((h) => csvCell(e[h])).join(","))].join(
          "\n",
        );
        const csvPath = join(dir, `events${run}.csv`);
        const jsonlPath = join(dir, `events${run}.jsonl`);
        writeFileSync(csvPath, `${csv}\n`);
        writeFileSync(jsonlPath, `${events.map((e) => JSON.stringify(e)).join("\n")}\n`);
        const [fromSql, fromAjv] = await Promise.all([deadLetters(csvPath), deadLetters(jsonlPath)]);
        expect(fromSql).toEqual(fromAjv);
      }),
      // Few runs of many events: each run pays a fixed cost (DuckDB plans the compiled contract).
      { numRuns: 10, seed: 20260105 },
    );
  }, 240_000);

  it("agree on a hand-picked row (sanity check that the property sees rejections)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "mastery-agree-"));
    const e = {
      event_id: "x",
      type: "practice",
      student_id: "s",
      timestamp: "2026-01-05T10:00:00Z",
      topic_id: "t",
      attempts: "abc",
      correct_count: 2.5,
    };
    writeFileSync(join(dir, "p.jsonl"), `${JSON.stringify(e)}\n`);
    writeFileSync(
      join(dir, "p.csv"),
      "event_id,type,student_id,timestamp,topic_id,attempts,correct_count\nx,practice,s,2026-01-05T10:00:00Z,t,abc,2.5\n",
    );
    const a = await deadLetters(join(dir, "p.jsonl"));
    expect(a).toEqual({
      accepted: 0,
      rows: [
        '1 attempts: practice.attempts must be an integer (got "abc"); practice.correct_count must be an integer (got 2.5)',
      ],
    });
    expect(await deadLetters(join(dir, "p.csv"))).toEqual(a);
  });
});
