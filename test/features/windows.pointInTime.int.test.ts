/**
 * Point-in-time correctness of the windowed features, randomized (fast-check over 40 logs with window edges
 * drawn often): adding any events at or after T never changes the feature rows as of T. Integration tier only
 * because it rebuilds the features 80 times (~25 s on a loaded 2-core machine); the hand-written cases are in
 * windows.test.ts.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { buildFeatures } from "../../features/windows.ts";
import { DuckStore } from "../../storage/duckdb.ts";
import { type DrawnEvent, drawnEvent, EVENT_TYPES, insertEvents } from "./eventRows.ts";

const T = new Date("2024-03-31T00:00:00Z");

async function featureRows(store: DuckStore, table: string): Promise<Record<string, unknown>[]> {
  return store.all(`SELECT * EXCLUDE (as_of) FROM ${table} ORDER BY student_key, topic_id`);
}

describe("point-in-time correctness (randomized)", () => {
  it("property: adding any events at or after T never changes the rows as of T", async () => {
    const store = await DuckStore.open(":memory:");
    // Offsets in seconds relative to T (negative = before T), with window edges drawn often.
    const edges = [-90, -30, -7, -1].flatMap((d) => [d * 86400, d * 86400 - 1, d * 86400 + 1]);
    const event = (minSec: number, maxSec: number) =>
      fc.record({
        type: fc.constantFrom(...EVENT_TYPES),
        student: fc.constantFrom("a", "b", "c"),
        topic: fc.constantFrom("x", "y"),
        seconds: fc.oneof(
          fc.integer({ min: minSec, max: maxSec }),
          fc.constantFrom(...edges.filter((x) => x >= minSec && x <= maxSec), minSec, maxSec),
        ),
        is_correct: fc.boolean(),
        n: fc.integer({ min: 0, max: 10 }),
        pct: fc.integer({ min: 0, max: 100 }),
      });
    const toEvent = (e: DrawnEvent) => drawnEvent(T, e);
    await fc.assert(
      fc.asyncProperty(
        fc.array(event(-120 * 86400, -1), { minLength: 1, maxLength: 25 }),
        fc.array(event(0, 30 * 86400), { minLength: 1, maxLength: 10 }),
        async (past, future) => {
          await store.run("DELETE FROM raw_events");
          await insertEvents(store, past.map(toEvent));
          await buildFeatures(store, T, { table: "features_a", truncate: true });
          await insertEvents(store, future.map(toEvent));
          await buildFeatures(store, T, { table: "features_b", truncate: true });
          expect(await featureRows(store, "features_b")).toEqual(await featureRows(store, "features_a"));
        },
      ),
      { numRuns: 40 },
    );
    store.close();
  });
});
