import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PgStore } from "../../storage/postgres.ts";
import { PgRawEventStore, type RawEventRow } from "../../storage/rawEventStore.ts";
import { rawEventRow } from "./rawEventRowFixture.ts";

/**
 * The POST's raw append (PgRawEventStore.recordWithNewKeys) for a group of POSTs on a mid-sized raw_events that was
 * never analyzed (the local server runs with autovacuum off): its two lookups (is the event stored? did the key
 * hold a row?) must probe raw_events' indexes per event and per key, never read the whole table. Written as
 * NOT EXISTS anti-joins, PostgreSQL planned the key lookup of an 80-event group on ~8,000 rows as a hash anti-join
 * over a sequential scan of raw_events (its estimate of an unanalyzed table's rows is from its pages), a cost
 * that grows with the table on every group (docs/benchmarks.md "The POST's whole-product CPU, round 11 (post32)").
 */
const URL = process.env.MASTERY_TEST_PG_URL ?? "postgres://postgres@127.0.0.1:5432/test";
const SCHEMA = `rel_raw_group_${process.pid}`;
const T0 = Date.UTC(2026, 10, 2, 9) * 1000;

let pg: PgStore;
let raw: PgRawEventStore;

function quiz(id: string, student: string, topic: string, second: number): RawEventRow {
  return rawEventRow(
    {
      event_id: id,
      type: "quiz_attempt",
      student_key: student,
      topic_id: topic,
      ts_us: T0 + second * 1_000_000,
      ingested_at_us: T0 + second * 1_000_000 + 500,
    },
    { question_id: `q${second % 7}`, is_correct: second % 3 !== 0, school_id: "school_1", grade: 7 },
  );
}

beforeAll(async () => {
  pg = await PgStore.open(URL, { schema: SCHEMA, coreTables: true, poolMax: 1 });
  raw = await PgRawEventStore.open(pg);
  // 8,000 stored events of 800 students, student bulk<s> on topic t<s % 10> alone; never analyzed.
  await pg.run(
    `INSERT INTO raw_events (event_id, type, student_key, topic_id, ts, ingested_at, source, school_id, question_id, is_correct)
     SELECT 'bulk' || g, 'quiz_attempt', 'bulk' || (g % 800), 't' || (g % 10),
            TIMESTAMP '2026-10-01' + g * INTERVAL '1 second', TIMESTAMP '2026-10-02', 'api', 'school_1', 'q1', true
     FROM generate_series(0, 7999) g`,
  );
});
afterAll(async () => {
  await pg.run(`DROP SCHEMA IF EXISTS ${SCHEMA} CASCADE`);
  await pg.close();
});

describe("the raw append of a group of POSTs on a mid-sized, never-analyzed raw_events", () => {
  it("probes the indexes (no sequential scan) and gives the known new keys and rows", async () => {
    // Eight POSTs of 10 events: students bulk1-bulk4 (each already holding one key, bulk<s>/t<s>) and n1-n4
    // (new), each on t0-t9; and bulk5, an event stored before (student bulk5, topic t5), redelivered.
    const students = ["bulk1", "bulk2", "bulk3", "bulk4", "n1", "n2", "n3", "n4"];
    const group = students.flatMap((s, i) =>
      Array.from({ length: 10 }, (_, t) => quiz(`g_${s}_${t}`, s, `t${t}`, i * 10 + t)),
    );
    const redelivered = quiz("bulk5", "bulk5", "t5", 1000);
    // A stored event (bulk6, on t6) sent again with another topic: the first copy wins, nothing is appended.
    const otherTopic = quiz("bulk6", "bulk6", "t9", 1001);
    const counts = () =>
      pg.all<{ seq_scan: string; idx_scan: string }>(
        `SELECT seq_scan, coalesce(idx_scan, 0) AS idx_scan FROM pg_stat_xact_user_tables
         WHERE schemaname = $1 AND relname = 'raw_events'`,
        [SCHEMA],
      );
    // The statement's own scans: the difference of the backend's counters across it, in one transaction.
    const { answer, seqScans, idxScans } = await pg.transaction(async () => {
      const [before] = await counts();
      const answer = await raw.recordWithNewKeys([...group, redelivered, otherTopic]);
      const [after] = await counts();
      return {
        answer,
        seqScans: Number(after?.seq_scan) - Number(before?.seq_scan),
        idxScans: Number(after?.idx_scan) - Number(before?.idx_scan),
      };
    });
    expect(seqScans).toBe(0);
    expect(idxScans).toBeGreaterThan(0);
    // 80 keys in the group, 4 of them held rows before (bulk<s>/t<s>); bulk5/t5 is not new either; bulk6/t9
    // held no row before (and holds none after: its event's stored copy is on t6).
    const held = new Set(["bulk1\u0000t1", "bulk2\u0000t2", "bulk3\u0000t3", "bulk4\u0000t4"]);
    const expectedNew = group
      .map((r) => ({ studentKey: r.student_key, topicId: r.topic_id }))
      .filter((k) => !held.has(`${k.studentKey}\u0000${k.topicId}`))
      .concat([{ studentKey: "bulk6", topicId: "t9" }]);
    const byKey = (a: { studentKey: string; topicId: string }, b: { studentKey: string; topicId: string }) =>
      `${a.studentKey}/${a.topicId}`.localeCompare(`${b.studentKey}/${b.topicId}`);
    expect(answer.newKeys.length).toBe(77);
    expect([...answer.newKeys].sort(byKey)).toEqual(expectedNew.sort(byKey));
    // Every group event stored now, and the redelivered one's stored row (g = 5: TIMESTAMP '2026-10-01' + 5 s,
    // not the redelivery's own time).
    expect(answer.rows.map((r) => r.event_id).sort()).toEqual(
      [...group.map((r) => r.event_id), "bulk5", "bulk6"].sort(),
    );
    const stored = answer.rows.find((r) => r.event_id === "bulk5");
    expect(stored?.ts_us).toBe(Date.UTC(2026, 9, 1, 0, 0, 5) * 1000);
    expect(stored?.student_key).toBe("bulk5");
    expect(answer.rows.find((r) => r.event_id === "bulk6")?.topic_id).toBe("t6");
    const [n] = await pg.all<{ n: string }>("SELECT count(*) AS n FROM raw_events");
    expect(Number(n?.n)).toBe(8080);
  });
});
