/**
 * A full features build split into student-key ranges (features/windows.ts featureParts, studentRangeSql) stores
 * exactly the rows of the one-statement build: fast-check over random stores whose keys are hex pseudonyms (many
 * on the range bounds), odd strings and the empty string, with repeated copies of events, late events (ingested
 * after the others, ts in the past), events at and after T, and events on the 7/30/90-day edges; both the
 * stored snapshot (the features view) and a plain table, several as-of times. And the ranges cover every string
 * exactly once for any number of ranges (1..256). In-memory DuckDB; integration tier for its ~80 builds.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { buildFeatures, FEATURE_MAX_PARTS, studentRangeSql } from "../../features/windows.ts";
import { DuckStore } from "../../storage/duckdb.ts";
import { scaledTimeout } from "../deadline.ts";
import { type DrawnEvent, drawnEvent, EVENT_TYPES, insertEvents } from "./eventRows.ts";

const T = new Date("2024-03-31T10:00:00Z");
const DAY = 86400;
const hex = "0123456789abcdef";

/** Student keys: 32-hex pseudonyms (random, or starting at a range bound or one below it), and odd strings. */
const studentKey: fc.Arbitrary<string> = fc.oneof(
  fc.array(fc.constantFrom(...hex), { minLength: 32, maxLength: 32 }).map((c) => c.join("")),
  fc
    .tuple(fc.integer({ min: 1, max: 40 }), fc.integer({ min: 0, max: 39 }), fc.boolean())
    .map(([of, i, below]) => {
      const b = Math.floor((256 * (i % of)) / of) - (below ? 1 : 0);
      return `${Math.max(0, b).toString(16).padStart(2, "0")}${"0".repeat(30)}`;
    }),
  fc.constantFrom("", "a", "b", "Z", "g0", "ff", "fff", "\u00e9t\u00e9", "0", "80"),
);

const drawEvent = (students: string[]): fc.Arbitrary<DrawnEvent> =>
  fc.record({
    type: fc.constantFrom(...EVENT_TYPES),
    student: fc.constantFrom(...students),
    topic: fc.constantFrom("x", "y", "z"),
    seconds: fc.oneof(
      fc.integer({ min: -120 * DAY, max: -1 }),
      // On and next to the window edges, at T and after it (excluded from every window).
      fc.constantFrom(...[-90, -30, -7, -1].flatMap((d) => [d * DAY, d * DAY - 1, d * DAY + 1]), 0, 1, DAY),
    ),
    is_correct: fc.boolean(),
    n: fc.integer({ min: 0, max: 10 }),
    pct: fc.integer({ min: 0, max: 100 }),
  });

const rowsOf = (store: DuckStore, sql: string) => store.all(`${sql} ORDER BY student_key, topic_id, as_of`);

describe("features built in student-key ranges", () => {
  it(
    "property: any number of ranges stores the rows of the one-statement build",
    async () => {
      const store = await DuckStore.open(":memory:");
      const earlier = new Date(T.getTime() - 8 * DAY * 1000);
      await fc.assert(
        fc.asyncProperty(
          fc.uniqueArray(studentKey, { minLength: 1, maxLength: 8 }).chain((students) =>
            fc.record({
              events: fc.array(drawEvent(students), { minLength: 1, maxLength: 40 }),
              late: fc.array(drawEvent(students), { maxLength: 8 }),
              repeats: fc.array(fc.nat(), { maxLength: 6 }),
              parts: fc.oneof(fc.integer({ min: 2, max: 8 }), fc.constantFrom(42)),
            }),
          ),
          async ({ events, late, repeats, parts }) => {
            await store.run("DELETE FROM raw_events");
            await insertEvents(
              store,
              events.map((e) => drawnEvent(T, e)),
            );
            // Repeated copies of stored events (same event_id, same row), as a bulk load without the
            // duplicate check would store them: each copy counts in both builds.
            const ids = await store.all<{ event_id: string }>(
              "SELECT event_id FROM raw_events ORDER BY event_id",
            );
            for (const r of repeats) {
              const id = ids[r % ids.length]?.event_id ?? "";
              await store.run("INSERT INTO raw_events SELECT * FROM raw_events WHERE event_id = $id", { id });
            }
            // Late events: ingested a day after the others, with times in the past.
            await store.run(
              "CREATE OR REPLACE TEMP TABLE on_time AS SELECT DISTINCT event_id FROM raw_events",
            );
            await insertEvents(
              store,
              late.map((e) => drawnEvent(T, { ...e, seconds: -Math.abs(e.seconds) - 1 })),
            );
            await store.run(
              "UPDATE raw_events SET ingested_at = ingested_at + INTERVAL 1 DAY WHERE event_id NOT IN (SELECT event_id FROM temp.on_time)",
            );

            // The stored snapshots (features view), one statement vs `parts` ranges.
            await buildFeatures(store, [earlier, T], { truncate: true, parts: 1 });
            const one = await rowsOf(store, "SELECT * FROM features");
            const split = await buildFeatures(store, [earlier, T], { truncate: true, parts });
            expect(split.parts).toBe(parts);
            expect(await rowsOf(store, "SELECT * FROM features")).toEqual(one);
            expect(split.rows).toBe(one.length);

            // A plain table (the drift monitor's and the training set's path).
            await store.run("DROP TABLE IF EXISTS features_split");
            await buildFeatures(store, [earlier, T], { table: "features_split", parts });
            expect(await rowsOf(store, "SELECT * FROM features_split")).toEqual(one);
          },
        ),
        { numRuns: 15 },
      );
      store.close();
    },
    scaledTimeout(60_000),
  );

  it(
    "property: the ranges of any split hold every string exactly once",
    async () => {
      const store = await DuckStore.open(":memory:");
      await store.run("CREATE TABLE keys (student_key VARCHAR)");
      await fc.assert(
        fc.asyncProperty(
          fc.array(fc.oneof(studentKey, fc.string(), fc.string({ unit: "binary" })), {
            minLength: 1,
            maxLength: 30,
          }),
          fc.oneof(fc.integer({ min: 1, max: 40 }), fc.constantFrom(100, 255, FEATURE_MAX_PARTS)),
          async (keys, of) => {
            await store.run("DELETE FROM keys");
            for (const k of keys) await store.run("INSERT INTO keys VALUES ($k)", { k });
            const hits = Array.from({ length: of }, (_, i) => {
              const cond = studentRangeSql(i, of);
              return `(CASE WHEN ${cond === "" ? "true" : cond} THEN 1 ELSE 0 END)`;
            }).join(" + ");
            const rows = await store.all<{ hits: number }>(`SELECT ${hits} AS hits FROM keys`);
            expect(rows.map((r) => Number(r.hits))).toEqual(keys.map(() => 1));
          },
        ),
        { numRuns: 60 },
      );
      store.close();
    },
    scaledTimeout(30_000),
  );
});
