import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AlertRow, type AlertStateRow, PgAlertStore } from "../../storage/alertStore.ts";
import { PgStore } from "../../storage/postgres.ts";
import { atRiskAlert } from "./alertRowFixture.ts";

/**
 * PgAlertStore.record's one statement (no explicit transaction) under a race on the real PostgreSQL: two checkers
 * of overlapping groups, both having read the same stored states, record at once (two pooled connections). Each
 * key is moved by one of them only (compare-and-set on the state read), so exactly one alert per moved key is
 * stored and returned, though the checkers' alert ids differ; the first states both insert count once too; the
 * groups, listed in opposite orders, never deadlock (PostgreSQL would fail one statement with 40P01).
 */
const URL = process.env.MASTERY_TEST_PG_URL ?? "postgres://postgres@127.0.0.1:5432/test";
const SCHEMA = `alert_race_${process.pid}`;
const AT = new Date(Date.UTC(2026, 11, 7, 11, 0));
const ROUNDS = 12;

const alert = (checker: string, studentKey: string, topicId: string): AlertRow =>
  atRiskAlert(`${checker}:${studentKey}:${topicId}`, studentKey, topicId);
/** The check of a key from the state it read (null: none stored) to below with one crossing. */
const crossed = (studentKey: string, topicId: string, read: boolean): AlertStateRow => ({
  studentKey,
  topicId,
  below: true,
  crossings: 1,
  prev: read ? { below: false, crossings: 0 } : null,
});

describe("PgAlertStore.record: two checkers of overlapping keys at once", () => {
  let pg: PgStore;
  let alerts: PgAlertStore;
  beforeAll(async () => {
    pg = await PgStore.open(URL, { schema: SCHEMA, poolMax: 4 });
    alerts = await PgAlertStore.open(pg);
  });
  afterAll(async () => {
    await pg.run(`DROP SCHEMA IF EXISTS ${SCHEMA} CASCADE`);
    await pg.close();
  });

  it("moves each key once and stores exactly one alert per moved key", async () => {
    for (let round = 0; round < ROUNDS; round++) {
      // Stored states (not below, no crossing) of s<round>-0..5 on T1 and T2; s<round>-6 and -7 have none.
      const students = Array.from({ length: 8 }, (_, i) => `s${round}-${i}`);
      await pg.allArrays(
        `INSERT INTO alert_state SELECT s, t, false, 0, $2::timestamp
         FROM unnest($1::text[]) AS s, (VALUES ('T1'), ('T2')) AS x(t)`,
        [students.slice(0, 6), "2026-12-07 10:00:00"],
      );
      // Checker A: students 0-4 and 6; checker B: students 2-5 and 6-7 (overlap: 2, 3, 4 and the new 6).
      const group = (ids: number[]) =>
        ids.flatMap((i) =>
          ["T1", "T2"].map((t) => ({ studentKey: students[i] as string, topicId: t, read: i < 6 })),
        );
      const a = group([0, 1, 2, 3, 4, 6]);
      const b = group([7, 6, 5, 4, 3, 2]);
      const [ra, rb] = await Promise.all([
        alerts.record(
          a.map((k) => alert("A", k.studentKey, k.topicId)),
          a.map((k) => crossed(k.studentKey, k.topicId, k.read)),
          AT,
        ),
        alerts.record(
          b.map((k) => alert("B", k.studentKey, k.topicId)),
          b.map((k) => crossed(k.studentKey, k.topicId, k.read)),
          AT,
        ),
      ]);
      const stored = await pg.all<{ alert_id: string; student_key: string; topic_id: string }>(
        "SELECT alert_id, student_key, topic_id FROM alerts WHERE student_key LIKE $1 ORDER BY alert_id",
        [`s${round}-%`],
      );
      // 8 students x 2 topics, every one moved by exactly one checker: 16 alerts, one per key.
      expect(stored).toHaveLength(16);
      expect(new Set(stored.map((r) => `${r.student_key}/${r.topic_id}`)).size).toBe(16);
      // What each call returned is exactly what it stored, and nothing twice.
      expect([...ra, ...rb].sort()).toEqual(stored.map((r) => r.alert_id));
      // Keys in one group only went to that checker.
      for (const r of stored) {
        const i = Number(r.student_key.split("-")[1]);
        if (i <= 1) expect(r.alert_id.startsWith("A:")).toBe(true);
        if (i === 5 || i === 7) expect(r.alert_id.startsWith("B:")).toBe(true);
      }
      const states = await pg.all<{ below: boolean; crossings: number; n: string }>(
        `SELECT below, crossings, count(*) AS n FROM alert_state WHERE student_key LIKE $1
         GROUP BY below, crossings`,
        [`s${round}-%`],
      );
      expect(states).toEqual([{ below: true, crossings: 1, n: "16" }]);
    }
  });

  it("leaves a state another checker moved since the read, and does not store its alert", async () => {
    await pg.run(
      "INSERT INTO alert_state VALUES ('late', 'T1', true, 2, '2026-12-07 10:00:00'), ('late', 'T2', false, 0, '2026-12-07 10:00:00')",
    );
    const ids = await alerts.record(
      [alert("C", "late", "T1"), alert("C", "late", "T2")],
      [crossed("late", "T1", true), crossed("late", "T2", true)],
      AT,
    );
    expect([...ids]).toEqual(["C:late:T2"]);
    expect(
      await pg.all(
        "SELECT topic_id, below, crossings FROM alert_state WHERE student_key = 'late' ORDER BY 1",
      ),
    ).toEqual([
      { topic_id: "T1", below: true, crossings: 2 },
      { topic_id: "T2", below: true, crossings: 1 },
    ]);
  });
});
