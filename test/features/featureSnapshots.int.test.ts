/**
 * The features view over stored rows (storage/featureRows.ts): a chain of incremental days stores only the
 * recomputed pairs, yet every snapshot reads as the full build as of its time did when it was built, and
 * keeps reading so after later days, a rebuild of a snapshot in the middle of the chain, and truncation.
 * A file of the plain-table layout moves to the view on open with its rows. Real DuckDB files under /tmp.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import { buildFeaturesIncremental, type FeatureWatermark } from "../../features/incrementalFeatures.ts";
import { buildFeatures } from "../../features/windows.ts";
import { DuckStore } from "../../storage/duckdb.ts";
import { DuckDBInstance } from "../../storage/duckdbApi.ts";
import { CORE_DDL } from "../../storage/schema.ts";
import { type DrawnEvent, drawnEvent, EVENT_TYPES, insertEvents } from "./eventRows.ts";

const dir = mkdtempSync("/tmp/featsnap-test-");
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const T0 = new Date("2024-03-31T10:00:00Z");
const DAY = 86400;

const drawEvent = (min: number, max: number): fc.Arbitrary<DrawnEvent> =>
  fc.record({
    type: fc.constantFrom(...EVENT_TYPES),
    student: fc.constantFrom("a", "b", "c"),
    topic: fc.constantFrom("x", "y"),
    seconds: fc.oneof(
      fc.integer({ min, max }),
      // Near the 7/30/90-day edges of the days drawn below.
      fc.integer({ min: -8 * DAY, max: -5 * DAY }),
      fc.integer({ min: -31 * DAY, max: -28 * DAY }),
      fc.integer({ min: -91 * DAY, max: -88 * DAY }),
    ),
    is_correct: fc.boolean(),
    n: fc.integer({ min: 0, max: 10 }),
    pct: fc.integer({ min: 0, max: 100 }),
  });

const read = (store: DuckStore, t: Date) =>
  store.all("SELECT * FROM features WHERE as_of = $t::TIMESTAMP ORDER BY student_key, topic_id", {
    t: t.toISOString(),
  });

/** A full build as of `t` now, into a plain check table (dropped after), read like the view. */
async function fullNow(store: DuckStore, t: Date) {
  await store.run("DROP TABLE IF EXISTS features_check");
  await buildFeatures(store, t, { table: "features_check" });
  const rows = await store.all("SELECT * FROM features_check ORDER BY student_key, topic_id");
  await store.run("DROP TABLE features_check");
  return rows;
}

let run = 0;

describe("features snapshots over stored rows", () => {
  it("property: every snapshot of an incremental chain reads as its full build, through later days, a rebuild in the middle and truncation", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(drawEvent(-100 * DAY, -1), { minLength: 1, maxLength: 20 }),
        fc.array(
          fc.tuple(
            fc.oneof(
              fc.integer({ min: 1, max: 2 }).map((d) => d * DAY),
              fc.integer({ min: 1, max: 2 * DAY }),
            ),
            fc.array(drawEvent(-100 * DAY, 2 * DAY), { maxLength: 5 }),
          ),
          { minLength: 2, maxLength: 4 },
        ),
        async (base, days) => {
          const store = await DuckStore.open(join(dir, `chain-${run++}.duckdb`));
          try {
            await insertEvents(
              store,
              base.map((e) => drawnEvent(T0, e)),
            );
            const first = await buildFeaturesIncremental(store, T0, null);
            const times = [T0];
            const seen = [await read(store, T0)];
            expect(seen[0]).toEqual(await fullNow(store, T0));
            let since: FeatureWatermark = first.watermark;
            let t = T0;
            for (const [gap, events] of days) {
              // Events of the day, and late ones (before the last run's as-of); only those before the new as-of count.
              const next = new Date(t.getTime() + gap * 1000);
              await insertEvents(
                store,
                events.map((e) => drawnEvent(t, e)).filter((e) => new Date(e.ts) < next),
              );
              const inc = await buildFeaturesIncremental(store, next, since);
              expect(inc.mode).toBe("incremental");
              const rows = await read(store, next);
              expect(rows).toEqual(await fullNow(store, next));
              expect(inc.rows).toBe(rows.length);
              expect(inc.copied + inc.recomputed).toBe(inc.rows);
              times.push(next);
              seen.push(rows);
              since = inc.watermark;
              t = next;
            }
            // Nothing a later day wrote changed an earlier snapshot.
            for (const [i, at] of times.entries()) expect(await read(store, at)).toEqual(seen[i]);
            // A full rebuild of a middle snapshot: it reads as a full build now; the others as before.
            const mid = times[1] as Date;
            await buildFeatures(store, mid);
            expect(await read(store, mid)).toEqual(await fullNow(store, mid));
            for (const [i, at] of times.entries())
              if (i !== 1) expect(await read(store, at)).toEqual(seen[i]);
            // The chain goes on from its newest snapshot; truncation keeps that snapshot's rows only.
            const last = new Date(t.getTime() + DAY * 1000);
            const inc = await buildFeaturesIncremental(store, last, since, { truncate: true });
            expect(inc.mode).toBe("incremental");
            expect(await read(store, last)).toEqual(await fullNow(store, last));
            const left = await store.one<{ rows: bigint; snaps: bigint }>(
              "SELECT (SELECT count(*) FROM features_rows) AS rows, (SELECT count(*) FROM feature_snapshots) AS snaps",
            );
            expect(Number(left?.rows)).toBe(inc.rows);
            expect(Number(left?.snaps)).toBe(1);
          } finally {
            store.close();
          }
        },
      ),
      { numRuns: 15 },
    );
  }, 600_000);

  it("an incremental build from a snapshot that is not its chain's newest runs in full, naming why", async () => {
    const store = await DuckStore.open(join(dir, "branch.duckdb"));
    try {
      const ev = (seconds: number) =>
        drawnEvent(T0, {
          type: "quiz_attempt",
          student: "a",
          topic: "x",
          seconds,
          is_correct: true,
          n: 1,
          pct: 50,
        });
      await insertEvents(store, [ev(-3 * DAY)]);
      const first = await buildFeaturesIncremental(store, T0, null);
      const T1 = new Date(T0.getTime() + DAY * 1000);
      await buildFeaturesIncremental(store, T1, first.watermark);
      const T2 = new Date(T0.getTime() + 2 * DAY * 1000);
      const again = await buildFeaturesIncremental(store, T2, first.watermark);
      expect(again.mode).toBe("full");
      expect(again.fullReason).toMatch(/not the newest of its chain/);
      expect(await read(store, T2)).toEqual(await fullNow(store, T2));
      expect((await read(store, T1)).length).toBe(1);
    } finally {
      store.close();
    }
  });

  it("moves a file of the plain-table layout to the view on open, every snapshot's rows kept", async () => {
    const path = join(dir, "plain.duckdb");
    const ddl = CORE_DDL.find((d) => /CREATE TABLE IF NOT EXISTS features\s*\(/.test(d)) as string;
    const instance = await DuckDBInstance.create(path);
    const conn = await instance.connect();
    await conn.run(ddl);
    const t1 = "2024-03-01 00:00:00";
    const t2 = "2024-03-02 00:00:00";
    await conn.run(
      `INSERT INTO features (student_key, topic_id, as_of, attempts_7d, days_since_last_activity, last_activity_at) VALUES
       ('a', 'x', TIMESTAMP '${t1}', 3, 1.5, TIMESTAMP '${t1}' - INTERVAL 36 HOUR),
       ('a', 'x', TIMESTAMP '${t2}', 4, 2.5, TIMESTAMP '${t1}' - INTERVAL 36 HOUR),
       ('b', 'y', TIMESTAMP '${t2}', 1, 0.25, TIMESTAMP '${t2}' - INTERVAL 6 HOUR)`,
    );
    conn.closeSync();
    instance.closeSync();
    const store = await DuckStore.open(path);
    try {
      expect(
        await store.all(
          `SELECT student_key, topic_id, strftime(as_of, '%Y-%m-%d') AS d, attempts_7d, days_since_last_activity
           FROM features ORDER BY as_of, student_key`,
        ),
      ).toEqual([
        { student_key: "a", topic_id: "x", d: "2024-03-01", attempts_7d: 3, days_since_last_activity: 1.5 },
        { student_key: "a", topic_id: "x", d: "2024-03-02", attempts_7d: 4, days_since_last_activity: 2.5 },
        { student_key: "b", topic_id: "y", d: "2024-03-02", attempts_7d: 1, days_since_last_activity: 0.25 },
      ]);
      const snaps = await store.one<{ n: bigint }>("SELECT count(*) AS n FROM feature_snapshots");
      expect(Number(snaps?.n)).toBe(2);
    } finally {
      store.close();
    }
  });
});
