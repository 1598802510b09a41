import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type AlertStore,
  DuckAlertStore,
  PG_RECENTLY_SCORED,
  PgAlertStore,
} from "../../storage/alertStore.ts";
import { DuckStore } from "../../storage/duckdb.ts";
import { DuckMasteryStore, type MasteryStore, PgMasteryStore } from "../../storage/masteryStore.ts";
import { PgStore } from "../../storage/postgres.ts";

/**
 * recentlyScored (the alert catch-up of a starting server, serving/alerts.ts recoverAlertChecks) on both
 * stores: the keys with a history row recorded at or after `since`, once each, newest first, at most
 * `limit`. Scores are written through the stores' own write path with chosen write times.
 */
const URL = process.env.MASTERY_TEST_PG_URL ?? "postgres://postgres@127.0.0.1:5432/test";
const SCHEMA = `alert_recent_${process.pid}`;
const T0 = Date.UTC(2026, 11, 4, 12, 0, 0);
const min = 60_000;

async function writeAt(store: MasteryStore, studentKey: string, topicId: string, rev: number, atMs: number) {
  const score = { source: "bkt", score: 0.2 + rev / 100, modelVersion: "bkt@1", explanation: "{}" };
  await store.write([{ studentKey, topicId, rev, asOfUs: atMs * 1000, scores: [score] }], atMs * 1000);
}

async function scenario(mastery: MasteryStore, alerts: AlertStore) {
  await writeAt(mastery, "k-old", "T1", 1, T0 - 10 * min);
  await writeAt(mastery, "k-a", "T1", 1, T0 - 90_000);
  await writeAt(mastery, "k-b", "T2", 1, T0 - 60_000);
  await writeAt(mastery, "k-a", "T1", 2, T0 - 30_000); // moved twice in the window: listed once
  await writeAt(mastery, "k-c", "T3", 1, T0 - 10_000);
  const since = new Date(T0 - 2 * min);
  expect(await alerts.recentlyScored(since, 10)).toEqual([
    { studentKey: "k-c", topicId: "T3" },
    { studentKey: "k-a", topicId: "T1" },
    { studentKey: "k-b", topicId: "T2" },
  ]);
  expect(await alerts.recentlyScored(since, 2)).toEqual([
    { studentKey: "k-c", topicId: "T3" },
    { studentKey: "k-a", topicId: "T1" },
  ]);
  expect(await alerts.recentlyScored(new Date(T0), 10)).toEqual([]);
  expect((await alerts.recentlyScored(new Date(T0 - 11 * min), 10)).length).toBe(4);
}

describe("recentlyScored: the keys a starting server re-checks", () => {
  it("embedded DuckDB file", async () => {
    const duck = await DuckStore.open(":memory:");
    try {
      await scenario(await DuckMasteryStore.open(duck), await DuckAlertStore.open(duck));
    } finally {
      duck.close();
    }
  });

  describe("PostgreSQL", () => {
    let pg: PgStore;
    beforeAll(async () => {
      pg = await PgStore.open(URL, { schema: SCHEMA });
    });
    afterAll(async () => {
      await pg.run(`DROP SCHEMA IF EXISTS ${SCHEMA} CASCADE`);
      await pg.close();
    });
    it("same answers; on a history of thousands of older rows the window is read through the recorded_at B-tree", async () => {
      const mastery = await PgMasteryStore.open(pg);
      const alerts = await PgAlertStore.open(pg);
      await scenario(mastery, alerts);
      const idx = await pg.all<{ indexname: string; indexdef: string }>(
        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = $1 AND indexname LIKE 'student_mastery_history_recorded%'",
        [SCHEMA],
      );
      // The BRIN index of before is dropped (it matched every block written after its creation).
      expect(idx.map((r) => r.indexname)).toEqual(["student_mastery_history_recorded_at"]);
      expect(idx[0]?.indexdef).toMatch(/USING btree \(recorded_at\)/);
      // 40,000 rows recorded hours before the window (as a long-running store has), never analyzed: the
      // catch-up must not scan them. Before, the plan was a scan of the whole table.
      await pg.run(
        `INSERT INTO student_mastery_history
           (student_key, topic_id, mastery_score, score_source, model_version, as_of, explanation, recorded_at)
         SELECT 'old-' || (i % 500), 'T' || (i % 20), 0.5, 'bkt', 'bkt@1', t, '{}', t
         FROM generate_series(1, 40000) AS i,
              LATERAL (SELECT $1::timestamp + i * interval '100 milliseconds') AS x(t)`,
        [new Date(T0 - 3 * 3600_000).toISOString().replace("T", " ").replace("Z", "")],
      );
      const since = new Date(T0 - 2 * min).toISOString().replace("T", " ").replace("Z", "");
      const plan = (await pg.all<{ "QUERY PLAN": string }>(`EXPLAIN ${PG_RECENTLY_SCORED}`, [since, 200_000]))
        .map((r) => r["QUERY PLAN"])
        .join("\n");
      expect(plan).toMatch(/Index (Only )?Scan (using|on) student_mastery_history_recorded_at/);
      expect(plan).not.toMatch(/Seq Scan/);
      // The older rows change nothing in the window's answer.
      expect(await alerts.recentlyScored(new Date(T0 - 2 * min), 10)).toEqual([
        { studentKey: "k-c", topicId: "T3" },
        { studentKey: "k-a", topicId: "T1" },
        { studentKey: "k-b", topicId: "T2" },
      ]);
    });
  });
});
