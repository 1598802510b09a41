import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { checkMapping, MappingError } from "../../features/columnMappings.ts";
import { ingestEvents, ingestFile, ingestPaths } from "../../features/ingest.ts";
import { Pseudonymizer } from "../../features/pseudonymize.ts";
import { DuckStore } from "../../storage/duckdb.ts";
import { leaks } from "./eventRows.ts";

const KEY = "test-key-0123456789abcdef";
const pseudonymizer = new Pseudonymizer(KEY);
const NOW = new Date("2026-02-01T00:00:00Z");
const opts = { pseudonymizer, now: NOW };
let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "mastery-ingest-"));
});

function write(name: string, text: string): string {
  const path = join(dir, name);
  mkdirSync(join(path, ".."), { recursive: true });
  writeFileSync(path, text);
  return path;
}

const QUIZ_HEADER =
  "event_id,student_id,timestamp,topic_id,question_id,is_correct,time_spent_sec,attempt_number,hints_used,school_id,class_id,grade";

describe("CSV ingest", () => {
  let store: DuckStore;
  beforeAll(async () => {
    store = await DuckStore.open(":memory:");
  });
  afterAll(() => store.close());

  it("keeps valid neighbours of bad rows, dead-letters each bad row once with every problem and its row number", async () => {
    const path = write(
      "a/quiz_attempts.csv",
      [
        QUIZ_HEADER,
        "e1,RAWSTUDENT-ALPHA,2026-01-05T10:00:00Z,t1,q1,true,12.5,1,0,sch,c1,7",
        "e2,RAWSTUDENT-BETA,2026-01-05T10:00:00+02:00,t1,q2,false,-3,1,0,,,",
        "e3,RAWSTUDENT-ALPHA,2026-01-05 10:00,t1,q2,maybe,3,0,1.5,,,13",
        "e1,RAWSTUDENT-ALPHA,2026-01-05T10:00:00Z,t1,q1,true,12.5,1,0,sch,c1,7",
        "e4,RAWSTUDENT-GAMMA,2026-01-05T11:00:00Z,,q2,true,3,2,0,,,",
        "e5,RAWSTUDENT-BETA,2026-01-05T12:30:00-05:00,t2,q3,false,,,,,,",
      ].join("\n"),
    );
    const r = await ingestFile(store, path, opts);
    expect(r).toMatchObject({ source: "quiz_attempts.csv", accepted: 2, duplicate: 1, rejected: 3 });
    const dead = await store.all(
      "SELECT row_number, event_id, field, reason FROM dead_letter ORDER BY row_number, field",
    );
    // One row per rejected row: the first problem's field (in the contract's field order) and
    // every problem's message, in that order.
    expect(dead.map((d) => [Number(d.row_number), d.event_id, d.field])).toEqual([
      [2, "e2", "time_spent_sec"],
      [3, "e3", "timestamp"],
      [5, "e4", "topic_id"],
    ]);
    expect(dead[0]?.reason).toBe("quiz_attempt.time_spent_sec must be >= 0 (got -3)");
    expect(String(dead[1]?.reason).split("; ")).toEqual([
      'quiz_attempt.timestamp must be an ISO 8601 date-time with offset, e.g. 2026-01-05T10:00:00Z (got "2026-01-05 10:00")',
      "quiz_attempt.grade must be <= 12 (got 13)",
      'quiz_attempt.is_correct must be a boolean (true or false) (got "maybe")',
      "quiz_attempt.attempt_number must be >= 1 (got 0)",
      "quiz_attempt.hints_used must be an integer (got 1.5)",
    ]);
    const rows = await store.all(
      "SELECT event_id, student_key, strftime(ts, '%Y-%m-%d %H:%M:%S') AS ts, is_correct, time_spent_sec, grade, source FROM raw_events ORDER BY event_id",
    );
    expect(rows).toEqual([
      {
        event_id: "e1",
        student_key: pseudonymizer.studentKey("RAWSTUDENT-ALPHA"),
        ts: "2026-01-05 10:00:00",
        is_correct: true,
        time_spent_sec: 12.5,
        grade: 7,
        source: "quiz_attempts.csv",
      },
      {
        event_id: "e5",
        student_key: pseudonymizer.studentKey("RAWSTUDENT-BETA"),
        ts: "2026-01-05 17:30:00", // -05:00 stored in UTC
        is_correct: false,
        time_spent_sec: null,
        grade: null,
        source: "quiz_attempts.csv",
      },
    ]);
  });

  it("counts re-ingested events as duplicates against the store", async () => {
    const r = await ingestFile(store, join(dir, "a/quiz_attempts.csv"), opts);
    expect(r).toMatchObject({ accepted: 0, duplicate: 3, rejected: 3 });
    const n = await store.one<{ n: bigint }>("SELECT count(*) AS n FROM raw_events");
    expect(Number(n?.n)).toBe(2);
  });

  it("fans an assignment out to one row per topic with the same event_id", async () => {
    const path = write(
      "b/assignments.csv",
      [
        "event_id,student_id,timestamp,topic_ids,assignment_id,score_pct",
        "as1,RAWSTUDENT-ALPHA,2026-01-06T10:00:00Z,t1|t2|t3,A,85",
        "as2,RAWSTUDENT-BETA,2026-01-06T10:00:00Z,t1||t2,A,101",
      ].join("\n"),
    );
    const r = await ingestFile(store, path, opts);
    expect(r).toMatchObject({ accepted: 1, duplicate: 0, rejected: 1 });
    const rows = await store.all(
      "SELECT topic_id, score_pct FROM raw_events WHERE event_id = 'as1' ORDER BY topic_id",
    );
    expect(rows).toEqual([
      { topic_id: "t1", score_pct: 85 },
      { topic_id: "t2", score_pct: 85 },
      { topic_id: "t3", score_pct: 85 },
    ]);
    const again = await ingestFile(store, path, opts);
    expect(again).toMatchObject({ accepted: 0, duplicate: 1, rejected: 1 });
  });

  it("skips stored events whether the file is small or large next to the store (both anti-join plans)", async () => {
    const quizRow = (id: string) => `${id},RAWSTUDENT-${id},2026-01-05T10:00:00Z,t1,q1,true,4,1,0,,,`;
    const asgRow = (id: string) => `${id},RAWSTUDENT-${id},2026-01-06T10:00:00Z,t1|t2,A,80`;
    const asgHeader = "event_id,student_id,timestamp,topic_ids,assignment_id,score_pct";
    const s = await DuckStore.open(":memory:");
    const ids = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}${i}`);
    // 40 events stored first (into an empty store: no anti join at all).
    await ingestFile(
      s,
      write("d/quiz_attempts.csv", [QUIZ_HEADER, ...ids("q", 40).map(quizRow)].join("\n")),
      opts,
    );
    // 3 rows against 40 stored: the NOT EXISTS plan. One stored, one new, the new one twice.
    const small = [QUIZ_HEADER, quizRow("q5"), quizRow("n1"), quizRow("n1")].join("\n");
    expect(await ingestFile(s, write("e/quiz_attempts.csv", small), opts)).toMatchObject({
      accepted: 1,
      duplicate: 2,
      rejected: 0,
    });
    // 30 rows against 41 stored: the ANTI JOIN plan. 20 stored + 10 new.
    const large = [QUIZ_HEADER, ...ids("q", 20).map(quizRow), ...ids("m", 10).map(quizRow)].join("\n");
    expect(await ingestFile(s, write("f/quiz_attempts.csv", large), opts)).toMatchObject({
      accepted: 10,
      duplicate: 20,
    });
    // Assignments (counted before fan-out) through both plans.
    const asgLarge = [asgHeader, ...ids("a", 10).map(asgRow)].join("\n");
    expect(await ingestFile(s, write("g/assignments.csv", asgLarge), opts)).toMatchObject({ accepted: 10 });
    const asgSmall = [asgHeader, asgRow("a3"), asgRow("b1")].join("\n");
    expect(await ingestFile(s, write("h/assignments.csv", asgSmall), opts)).toMatchObject({
      accepted: 1,
      duplicate: 1,
    });
    const asgAgain = [asgHeader, ...ids("a", 12).map(asgRow)].join("\n");
    expect(await ingestFile(s, write("i/assignments.csv", asgAgain), opts)).toMatchObject({
      accepted: 2,
      duplicate: 10,
    });
    const counts = await s.one<{ events: bigint; rows: bigint }>(
      "SELECT count(DISTINCT event_id) AS events, count(*) AS rows FROM raw_events",
    );
    expect([Number(counts?.events), Number(counts?.rows)]).toEqual([40 + 1 + 10 + 13, 40 + 1 + 10 + 26]);
    // FSST is turned off only for the inserts (features/ingest.ts withoutFsst) and restored after.
    const setting = await s.one<{ v: string }>("SELECT current_setting('disabled_compression_methods') AS v");
    expect(setting?.v).toBe("");
    s.close();
  });

  it("skips stored events at the edges of the file's event_id range (first code points, combined across types)", async () => {
    const quizRow = (id: string) => `${id},RAWSTUDENT-1,2026-01-05T10:00:00Z,t1,q1,true,4,1,0,,,`;
    const s = await DuckStore.open(":memory:");
    const stored = ["m0", "m5", "q0", "q9", "\u{1F600}x"];
    await ingestFile(
      s,
      write("r1/quiz_attempts.csv", [QUIZ_HEADER, ...stored.map(quizRow)].join("\n")),
      opts,
    );
    // Ids wholly below the store's (no stored id in range: no join) and ones whose min and max are stored.
    const a = ["a0", "a1", "a2", "a3", "a4", "a5", "a6", "a7"];
    expect(
      await ingestFile(s, write("r2/quiz_attempts.csv", [QUIZ_HEADER, ...a.map(quizRow)].join("\n")), opts),
    ).toMatchObject({ accepted: 8, duplicate: 0 });
    const edges = ["m0", "n1", "n2", "n3", "n4", "n5", "n6", "n7", "n8", "q9"];
    expect(
      await ingestFile(
        s,
        write("r3/quiz_attempts.csv", [QUIZ_HEADER, ...edges.map(quizRow)].join("\n")),
        opts,
      ),
    ).toMatchObject({ accepted: 8, duplicate: 2 });
    // Two types in one file: the range is combined over the types' ranges in DuckDB's (UTF-8) order, where
    // U+FF01 sorts before U+1F600 (in JS's UTF-16 order it is the other way round).
    const header =
      "event_id,type,student_id,timestamp,topic_id,question_id,is_correct,attempts,correct_count";
    const mixed = [
      header,
      "\uFF01x,practice,RAWSTUDENT-2,2026-01-05T10:00:00Z,t1,,,3,1",
      "\u{1F600}x,quiz_attempt,RAWSTUDENT-2,2026-01-05T10:00:00Z,t1,q1,true,,",
      ...Array.from(
        { length: 8 },
        (_, i) => `\uFF01${i},practice,RAWSTUDENT-2,2026-01-05T10:00:00Z,t1,,,3,1`,
      ),
    ].join("\n");
    expect(await ingestFile(s, write("r4/mixed.csv", mixed), opts)).toMatchObject({
      accepted: 9,
      duplicate: 1,
    });
    const n = await s.one<{ rows: bigint; ids: bigint }>(
      "SELECT count(*) AS rows, count(DISTINCT event_id) AS ids FROM raw_events",
    );
    expect([Number(n?.rows), Number(n?.ids)]).toEqual([5 + 8 + 8 + 9, 5 + 8 + 8 + 9]);
    s.close();
  });

  it("keeps row numbers in file order on a file large enough to be read in parallel", async () => {
    const lines = [QUIZ_HEADER];
    const bad = new Set([7, 30001, 59999]);
    for (let i = 1; i <= 60000; i++) {
      const spent = bad.has(i) ? "-1" : "4";
      lines.push(
        `big${i},RAWSTUDENT-${i % 97},2026-01-05T10:00:00Z,t${i % 13},q${i % 101},true,${spent},1,0,,,`,
      );
    }
    const big = await DuckStore.open(":memory:");
    const r = await ingestFile(big, write("c/quiz_attempts.csv", lines.join("\n")), opts);
    expect(r).toMatchObject({ accepted: 59997, duplicate: 0, rejected: 3 });
    const dead = await big.all("SELECT row_number, event_id FROM dead_letter ORDER BY row_number");
    expect(dead.map((d) => [Number(d.row_number), d.event_id])).toEqual([
      [7, "big7"],
      [30001, "big30001"],
      [59999, "big59999"],
    ]);
    big.close();
  });
});

describe("ingestPaths over a directory of every format", () => {
  it("loads topics, CSV, Parquet, JSONL and xAPI; no raw student id reaches any table", async () => {
    const d = join(dir, "all");
    const raw = ["RAWSTUDENT-ONE", "RAWSTUDENT-TWO", "raw.three@example.org", "RAWSTUDENT-FOUR"];
    write(
      "all/topics.json",
      JSON.stringify([
        {
          topic_id: "t1",
          name: "Fractions",
          chapter_id: "c1",
          subject_id: "math",
          course_id: "m6",
          difficulty_estimate: 0.3,
          prerequisites: [],
          content_length: 10,
        },
        { topic_id: "t2", chapter_id: "c1" },
      ]),
    );
    write(
      "all/videos.csv",
      [
        "event_id,student_id,timestamp,topic_id,video_id,watch_pct,watch_duration_sec,rewind_count",
        `v1,${raw[0]},2026-01-05T10:00:00Z,t1,vid1,50,120,1`,
        `v2,${raw[1]},2026-01-05T10:00:00Z,t1,vid1,150,120,1`,
      ].join("\n"),
    );
    write(
      "all/practice.jsonl",
      [
        JSON.stringify({
          event_id: "p1",
          type: "practice",
          student_id: raw[0],
          timestamp: "2026-01-05T10:00:00Z",
          topic_id: "t1",
          attempts: 4,
          correct_count: 3,
        }),
        "",
        "{not json",
        JSON.stringify({
          event_id: "p2",
          type: "practice",
          student_id: raw[3],
          timestamp: "2026-01-05T10:00:00Z",
          topic_id: "t1",
          attempts: 2,
          correct_count: 3,
        }),
      ].join("\n"),
    );
    write(
      "all/statements.json",
      JSON.stringify([
        {
          id: "x1",
          actor: { mbox: `mailto:${raw[2]}` },
          verb: { id: "http://adlnet.gov/expapi/verbs/answered" },
          object: { id: "q1" },
          result: { success: true, duration: "PT30S" },
          context: { contextActivities: { parent: [{ id: "t1" }] } },
          timestamp: "2026-01-05T10:00:00Z",
        },
        {
          id: "x2",
          actor: { account: { homePage: "https://lms", name: raw[1] } },
          verb: { id: "http://adlnet.gov/expapi/verbs/answered" },
          object: { id: "q1" },
          result: { duration: "PT30S" },
          context: { contextActivities: { parent: [{ id: "t1" }] } },
          timestamp: "2026-01-05T10:00:00Z",
        },
      ]),
    );
    const store = await DuckStore.open(":memory:");
    await store.run(
      `COPY (SELECT 'c1' AS event_id, ${`'${raw[3]}'`} AS student_id, TIMESTAMPTZ '2026-01-05 10:00:00+00' AS timestamp,
              't1' AS topic_id, 3 AS help_requests, 2 AS resolved_count) TO '${join(d, "chatbot.parquet")}' (FORMAT parquet)`,
    );
    const report = await ingestPaths(store, [d], opts);
    const byFile = Object.fromEntries(
      report.files.map((f) => [f.source, [f.format, f.accepted, f.duplicate, f.rejected]]),
    );
    expect(byFile).toEqual({
      "topics.json": ["topics", 1, 0, 1],
      "chatbot.parquet": ["parquet", 1, 0, 0],
      "practice.jsonl": ["jsonl", 1, 0, 2],
      "statements.json": ["xapi", 1, 0, 1],
      "videos.csv": ["csv", 1, 0, 1],
    });
    expect(report.total).toEqual({ accepted: 4, duplicate: 0, rejected: 4 });
    expect(report.files[0]?.source).toBe("topics.json"); // topics load before the events that use them

    const jsonlDead = await store.all(
      "SELECT row_number, field, reason FROM dead_letter WHERE source = 'practice.jsonl' ORDER BY row_number",
    );
    expect(jsonlDead.map((x) => [Number(x.row_number), x.field])).toEqual([
      [3, "(row)"],
      [4, "correct_count"],
    ]);
    const chat = await store.one(
      "SELECT student_key, help_requests, strftime(ts, '%H:%M') AS t FROM raw_events WHERE event_id = 'c1'",
    );
    expect(chat).toEqual({ student_key: pseudonymizer.studentKey(raw[3]!), help_requests: 3, t: "10:00" });
    const topic = await store.one("SELECT name, prerequisites FROM topics WHERE topic_id = 't1'");
    expect(topic).toEqual({ name: "Fractions", prerequisites: [] });

    expect(await leaks(store, raw)).toEqual([]);
    store.close();
  });
});

describe("ingestEvents (HTTP path)", () => {
  it("stores valid events, returns the problems of invalid ones, and dedupes by event_id", async () => {
    const store = await DuckStore.open(":memory:");
    const ev = {
      event_id: "h1",
      type: "chatbot",
      student_id: "RAWSTUDENT-H",
      timestamp: "2026-01-05T10:00:00Z",
      topic_id: "t1",
      help_requests: 2,
      resolved_count: 1,
    };
    const r = await ingestEvents(store, [ev, { ...ev, event_id: "h2", resolved_count: 5 }, ev], opts);
    expect(r.accepted).toBe(1);
    expect(r.duplicate).toBe(1);
    expect(r.rejected).toBe(1);
    expect(r.problems).toEqual([
      {
        index: 1,
        eventId: "h2",
        issues: [
          {
            field: "resolved_count",
            reason: "chatbot.resolved_count must be <= chatbot.help_requests (got 5 > 2)",
          },
        ],
      },
    ]);
    const dl = await store.one<{ source: string; payload: string }>(
      "SELECT source, payload FROM dead_letter",
    );
    expect(dl?.source).toBe("api");
    expect(JSON.parse(dl!.payload)).toMatchObject({ student_key: pseudonymizer.studentKey("RAWSTUDENT-H") });
    expect(await leaks(store, ["RAWSTUDENT-H"])).toEqual([]);
    store.close();
  });
});

describe("mapping files", () => {
  it("loads a JSON/YAML mapping through the same path and names a bad key", async () => {
    expect(() => checkMapping({ fields: { event_id: { colum: "id" } } }, "m.json")).toThrow(
      new MappingError("mapping m.json: fields.event_id.colum is not a known option"),
    );
    expect(() => checkMapping({ fields: { user: { column: "id" } } }, "m.json")).toThrow(
      /fields.user is not a contract field/,
    );
    const mapping = checkMapping(
      {
        name: "lms",
        type: "video",
        fields: {
          event_id: { column: "id" },
          student_id: { column: "learner" },
          timestamp: { column: "when", timestamp: "naive-utc" },
          topic_id: { column: "topic" },
          video_id: { column: "clip" },
          watch_pct: { column: "share", divide: 0.01 },
        },
      },
      "inline",
    );
    const store = await DuckStore.open(":memory:");
    const path = write(
      "m/export.csv",
      "id,learner,when,topic,clip,share\nv9,RAWSTUDENT-M,2026-01-05 10:00:00,t1,c,0.25\n",
    );
    const r = await ingestFile(store, path, { ...opts, mapping });
    expect(r).toMatchObject({ accepted: 1, rejected: 0 });
    expect(await store.one("SELECT type, watch_pct FROM raw_events")).toEqual({
      type: "video",
      watch_pct: 25,
    });
    store.close();
  });
});

describe("topic metadata files", () => {
  it("upserts every topic of a file in one statement: the last copy of a topic listed twice wins, a re-sent file replaces", async () => {
    const store = await DuckStore.open(":memory:");
    const topic = (id: string, over: Record<string, unknown>) => ({
      topic_id: id,
      chapter_id: "c1",
      subject_id: "math",
      course_id: "m6",
      difficulty_estimate: 0.25,
      prerequisites: [],
      content_length: 10,
      ...over,
    });
    const first = write(
      "topics-twice/topics.json",
      JSON.stringify([
        topic("t1", { name: "Fractions", prerequisites: ["t0"] }),
        topic("t2", { difficulty_estimate: 0.1 + 0.2, content_length: 12.5 }),
        topic("t1", { name: "Fractions II", prerequisites: ["t0", "t2"], difficulty_estimate: 0.7 }),
        { topic_id: "t3" },
      ]),
    );
    const r = await ingestFile(store, first, opts);
    expect(r).toMatchObject({ format: "topics", accepted: 3, rejected: 1 });
    const rows = async () =>
      (
        await store.all<{ topic_id: string; name: string | null; d: number; p: string[]; n: number }>(
          "SELECT topic_id, name, difficulty_estimate AS d, prerequisites AS p, content_length AS n FROM topics ORDER BY topic_id",
        )
      ).map((x) => [x.topic_id, x.name, x.d, [...x.p], x.n]);
    expect(await rows()).toEqual([
      ["t1", "Fractions II", 0.7, ["t0", "t2"], 10],
      ["t2", null, 0.30000000000000004, [], 12.5],
    ]);
    const dead = await store.all<{ row_number: bigint; type: string }>(
      "SELECT row_number, type FROM dead_letter WHERE source = 'topics.json'",
    );
    expect(dead.map((x) => [Number(x.row_number), x.type])).toEqual([[4, "topic"]]);
    const again = write("topics-again/topics.json", JSON.stringify([topic("t2", { name: "Decimals" })]));
    await ingestFile(store, again, opts);
    expect(await rows()).toEqual([
      ["t1", "Fractions II", 0.7, ["t0", "t2"], 10],
      ["t2", "Decimals", 0.25, [], 10],
    ]);
    store.close();
  });
});
