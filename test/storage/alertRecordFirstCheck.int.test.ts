import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AlertRow, type AlertStore, PgAlertStore } from "../../storage/alertStore.ts";
import { PgStore } from "../../storage/postgres.ts";
import { atRiskAlert } from "./alertRowFixture.ts";

/**
 * AlertStore.record for keys checked for the first time (every state's `prev` null: a POST's new keys) and the
 * mixed call (a known key too), each one statement on PostgreSQL (the states' compare-and-set update and insert
 * and the alerts of the keys they moved; the embedded store does not compare-and-set first states: one process
 * writes them). A key whose state another
 * checker inserted first is not moved, and its alert is neither stored nor returned; an alert whose key has no
 * state in the call is not stored; an alert id stored before is not returned again.
 */
const URL = process.env.MASTERY_TEST_PG_URL ?? "postgres://postgres@127.0.0.1:5432/test";
const SCHEMA = `alert_first_${process.pid}`;
const AT = new Date(Date.UTC(2026, 11, 7, 8, 30));

const alert = (id: string, studentKey: string, topicId: string, crossing = 1): AlertRow =>
  atRiskAlert(id, studentKey, topicId, {
    crossing,
    ...(studentKey === "k1" ? { schoolId: "school_1", grade: 7 } : {}),
  });
const first = (studentKey: string, topicId: string, below: boolean) => ({
  studentKey,
  topicId,
  below,
  crossings: below ? 1 : 0,
  prev: null,
});

async function scenario(
  alerts: AlertStore,
  rows: (sql: string) => Promise<Record<string, unknown>[]>,
): Promise<void> {
  // Another checker stored k3/T1's state first.
  expect(await alerts.record([], [first("k3", "T1", false)], AT)).toEqual(new Set());
  const ids = await alerts.record(
    [alert("a1", "k1", "T1"), alert("a2", "k2", "T1"), alert("a3", "k3", "T1"), alert("a4", "k4", "T1")],
    [first("k1", "T1", true), first("k2", "T1", true), first("k3", "T1", true), first("k5", "T2", false)],
    AT,
  );
  // k1 and k2 moved (their alerts stored); k3 lost the race; k4 has no state in the call.
  expect([...ids].sort()).toEqual(["a1", "a2"]);
  expect(
    await rows(
      "SELECT alert_id, student_key, topic_id, school_id, grade, crossing FROM alerts ORDER BY alert_id",
    ),
  ).toEqual([
    { alert_id: "a1", student_key: "k1", topic_id: "T1", school_id: "school_1", grade: 7, crossing: 1 },
    { alert_id: "a2", student_key: "k2", topic_id: "T1", school_id: null, grade: null, crossing: 1 },
  ]);
  expect(
    await rows(
      "SELECT student_key, topic_id, below, crossings FROM alert_state ORDER BY student_key, topic_id",
    ),
  ).toEqual([
    { student_key: "k1", topic_id: "T1", below: true, crossings: 1 },
    { student_key: "k2", topic_id: "T1", below: true, crossings: 1 },
    { student_key: "k3", topic_id: "T1", below: false, crossings: 0 },
    { student_key: "k5", topic_id: "T2", below: false, crossings: 0 },
  ]);
  // The same first check again (a redelivery): every state is there already, nothing moves.
  expect(await alerts.record([alert("a1", "k1", "T1")], [first("k1", "T1", true)], AT)).toEqual(new Set());
  // A mixed call: k2 moves from its stored state, k6 is new; a stored id is not returned.
  const mixed = await alerts.record(
    [alert("a2", "k2", "T1"), alert("a6", "k6", "T1")],
    [
      { studentKey: "k2", topicId: "T1", below: true, crossings: 2, prev: { below: true, crossings: 1 } },
      first("k6", "T1", true),
    ],
    AT,
  );
  expect([...mixed].sort()).toEqual(["a6"]);
  expect(await rows("SELECT crossings FROM alert_state WHERE student_key = 'k2'")).toEqual([
    { crossings: 2 },
  ]);
  expect((await rows("SELECT alert_id FROM alerts ORDER BY alert_id")).map((r) => r.alert_id)).toEqual([
    "a1",
    "a2",
    "a6",
  ]);
}

describe("AlertStore.record of keys checked for the first time", () => {
  describe("PostgreSQL", () => {
    let pg: PgStore;
    beforeAll(async () => {
      pg = await PgStore.open(URL, { schema: SCHEMA });
    });
    afterAll(async () => {
      await pg.run(`DROP SCHEMA IF EXISTS ${SCHEMA} CASCADE`);
      await pg.close();
    });
    it("the same answers (the first check and the mixed call, one statement each)", async () => {
      const alerts = await PgAlertStore.open(pg);
      await scenario(alerts, (sql) => pg.all(sql));
    });
  });
});
