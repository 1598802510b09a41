import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PgAlertStore } from "../../storage/alertStore.ts";
import { type MasteryWrite, PgMasteryStore } from "../../storage/masteryStore.ts";
import { PgStore } from "../../storage/postgres.ts";
import { PgRawEventStore, type RawEventRow } from "../../storage/rawEventStore.ts";
import { rawEventRow } from "./rawEventRowFixture.ts";

/**
 * The POST's statements on PostgreSQL when the plan cache keeps generic plans (the local server runs with
 * autovacuum off, so a schema's tables are never analyzed and nothing replaces a cached plan): the raw append
 * (PgRawEventStore.recordWithNewKeys) and the alert check's candidates (PgAlertStore.candidates with a pick)
 * are planned on an empty schema, the tables are then grown ~250x without ANALYZE, and the next append and
 * check must still reach raw_events and student_mastery through their indexes: no sequential scan of either
 * (pg_stat_xact_user_tables' counts before and after them, in the transaction they run in). As named prepared statements their generic plans
 * were hash joins over sequential scans made while the tables were tiny (docs/benchmarks.md "The app's CPU per
 * request, round 9 (req30)"), so this fails if either statement is sent named again.
 */
const URL = process.env.MASTERY_TEST_PG_URL ?? "postgres://postgres@127.0.0.1:5432/test";
const SCHEMA = `rel_post_plans_${process.pid}`;
const T0 = Date.UTC(2026, 10, 2, 9) * 1000;
const PICK = { first: "bkt", order: ["elo", "rule_based"], explained: [] as string[] };

let pg: PgStore;
let raw: PgRawEventStore;
let mastery: PgMasteryStore;
let alerts: PgAlertStore;

function quiz(post: number, i: number, student: string, topic: string): RawEventRow {
  return rawEventRow(
    {
      event_id: `e${post}_${i}`,
      type: "quiz_attempt",
      student_key: student,
      topic_id: topic,
      ts_us: T0 + (post * 10 + i) * 1_000_000,
      ingested_at_us: T0 + (post * 10 + i) * 1_000_000 + 500,
    },
    { question_id: `q${i}`, is_correct: i % 3 !== 0, school_id: `school_${student.length % 2}`, grade: 7 },
  );
}

function scores(student: string, topic: string, rev: number): MasteryWrite {
  const s = (source: string, score: number) => ({ source, score, modelVersion: "v1", explanation: "{}" });
  return {
    studentKey: student,
    topicId: topic,
    rev,
    asOfUs: T0 + rev,
    scores: [s("bkt", 0.6), s("elo", 0.4), s("rule_based", 0.5)],
  };
}

beforeAll(async () => {
  // One pooled connection, so the session setting and every statement's cached plan live on it.
  pg = await PgStore.open(URL, { schema: SCHEMA, coreTables: true, poolMax: 1 });
  raw = await PgRawEventStore.open(pg);
  mastery = await PgMasteryStore.open(pg);
  alerts = await PgAlertStore.open(pg);
  await pg.run("SET plan_cache_mode = force_generic_plan");
});
afterAll(async () => {
  await pg.run(`DROP SCHEMA IF EXISTS ${SCHEMA} CASCADE`);
  await pg.close();
});

describe("the POST's append and alert check on grown, never-analyzed tables", () => {
  it("keep index plans: no sequential scan of raw_events or student_mastery, and the known answers", async () => {
    // Eight POSTs of 10 events while the tables are nearly empty (each statement planned, and cached if named).
    for (let post = 0; post < 8; post++) {
      const rows = Array.from({ length: 10 }, (_, i) => quiz(post, i, `s${post}`, `t${i}`));
      await raw.recordWithNewKeys(rows);
      await mastery.write(
        rows.map((r) => scores(r.student_key, r.topic_id, post + 1)),
        T0,
      );
      await alerts.candidates(
        rows.map((r) => ({ studentKey: r.student_key, topicId: r.topic_id })),
        PICK,
      );
    }
    // Grow both tables ~250x behind the statements' backs, without ANALYZE.
    await pg.run(
      `INSERT INTO raw_events (event_id, type, student_key, topic_id, ts, ingested_at, source)
       SELECT 'bulk' || g, 'quiz_attempt', 'bulk' || (g % 2000), 't' || (g % 10),
              TIMESTAMP '2026-10-01' + g * INTERVAL '1 second', TIMESTAMP '2026-10-02', 'api'
       FROM generate_series(1, 20000) g`,
    );
    await pg.run(
      `INSERT INTO student_mastery
       SELECT 'bulk' || (g / 30), 't' || (g % 10), 0.5, (ARRAY['bkt', 'elo', 'rule_based'])[1 + (g / 10) % 3],
              'v1', TIMESTAMP '2026-10-02', '{}', TIMESTAMP '2026-10-02'
       FROM generate_series(0, 59999) g`,
    );
    // The counters of pg_stat_xact_user_tables are the backend's not yet flushed ones (PostgreSQL 15 flushes them
    // when the connection is idle, at most once a second), so earlier statements' scans may still be in them:
    // the statements' own scans are the difference across them, inside one transaction (nothing is flushed
    // within it).
    const counts = () =>
      pg.all<{ relname: string; seq_scan: string; idx_scan: string }>(
        `SELECT relname, seq_scan, coalesce(idx_scan, 0) AS idx_scan FROM pg_stat_xact_user_tables
         WHERE schemaname = $1 AND relname IN ('raw_events', 'student_mastery') ORDER BY relname`,
        [SCHEMA],
      );
    const { answer, candidates, scans } = await pg.transaction(async () => {
      const before = await counts();
      // One new key (bulk42/t10: the topic no bulk row has) and one event stored before (e0_1, redelivered).
      const answer = await raw.recordWithNewKeys([
        quiz(0, 1, "s0", "t1"),
        rawEventRow({
          event_id: "fresh1",
          type: "quiz_attempt",
          student_key: "bulk42",
          topic_id: "t10",
          ts_us: T0 + 9_000_000_000,
          ingested_at_us: T0 + 9_000_000_500,
        }),
      ]);
      const candidates = await alerts.candidates(
        [
          { studentKey: "s3", topicId: "t4" },
          { studentKey: "bulk42", topicId: "t2" },
        ],
        PICK,
      );
      const after = await counts();
      const scans = after.map((t) => {
        const b0 = before.find((b) => b.relname === t.relname);
        return {
          relname: t.relname,
          seq_scan: Number(t.seq_scan) - Number(b0?.seq_scan ?? 0),
          idx_scan: Number(t.idx_scan) - Number(b0?.idx_scan ?? 0),
        };
      });
      return { answer, candidates, scans };
    });
    expect(scans.map((s) => [s.relname, s.seq_scan])).toEqual([
      ["raw_events", 0],
      ["student_mastery", 0],
    ]);
    expect(scans.every((s) => s.idx_scan > 0)).toBe(true);
    // The append's known answers: only bulk42/t10 is a new key; fresh1 is stored, e0_1 was already.
    expect(answer.newKeys).toEqual([{ studentKey: "bulk42", topicId: "t10" }]);
    expect(answer.rows.map((r) => r.event_id).sort()).toEqual(["e0_1", "fresh1"]);
    // The check's: each key's bkt row (the pick's first), its text not read, the student's newest school.
    const byKey = candidates
      .map((c) => [c.student_key, c.topic_id, c.score_source, c.mastery_score, c.explanation, c.school_id])
      .sort((a, b) => String(a[0]).localeCompare(String(b[0])));
    expect(byKey).toEqual([
      ["bulk42", "t2", "bkt", 0.5, "", null],
      ["s3", "t4", "bkt", 0.6, "", "school_0"],
    ]);
  });
});
