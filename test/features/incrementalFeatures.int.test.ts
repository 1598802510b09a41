/**
 * Incremental daily runs equal full recomputes (fast-check over random small stores, real DuckDB files
 * under /tmp/incr-*): store A runs full at T0 then incremental at T1, store B (the same raw_events rows,
 * ingested_at included) runs full at T0 then full at T1; the features snapshot as of T1 is equal row for
 * row; A's rule run refolds only the pairs with new or late events (serving/ruleScoring.ts `since`), and
 * the stored rule states (each row's `rule` block) and the scores readers see as of T1 and later request
 * times are equal bit for bit. Events are drawn at and
 * around the window edges of both T0 and T1, late events (ts before T0, ingested after the first run)
 * are drawn often, and T1 - T0 is either whole days or any number of seconds (the day-bucket case).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import { buildFeaturesIncremental, type FeatureWatermark } from "../../features/incrementalFeatures.ts";
import { buildFeatures } from "../../features/windows.ts";
import { ruleRowAt } from "../../serving/masteryView.ts";
import { scoreRules } from "../../serving/ruleScoring.ts";
import { withExplanationTexts } from "../../serving/storedExplanations.ts";
import { DuckStore, sqlString } from "../../storage/duckdb.ts";
import { STORED_NUMBERS_SELECT } from "../../storage/explanationNumbers.ts";
import { RULE_BLOCK_COLUMNS } from "../../storage/schema.ts";
import { scaledTimeout } from "../deadline.ts";
import { type DrawnEvent, drawnEvent, EVENT_TYPES, insertEvents, type TestEvent } from "./eventRows.ts";

const dir = mkdtempSync("/tmp/incr-test-");
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const T0 = new Date("2024-03-31T10:00:00Z");
const DAY = 86400;

function drawEvent(edgeSeconds: number[], min: number, max: number): fc.Arbitrary<DrawnEvent> {
  return fc.record({
    type: fc.constantFrom(...EVENT_TYPES),
    student: fc.constantFrom("a", "b"),
    topic: fc.constantFrom("x", "y"),
    seconds: fc.oneof(
      fc.integer({ min, max }),
      fc.constantFrom(...edgeSeconds.filter((s) => s >= min && s <= max), min, max),
      // Dense recent days: several events of a pair on neighbouring days at different times of day,
      // where a move by a fraction of a day merges or splits active days and bends the trend.
      { arbitrary: fc.integer({ min: Math.max(min, max - 4 * DAY), max }), weight: 3 },
    ),
    is_correct: fc.boolean(),
    n: fc.integer({ min: 0, max: 10 }),
    pct: fc.integer({ min: 0, max: 100 }),
  });
}

async function snapshot(store: DuckStore, t: Date) {
  return store.all(
    "SELECT * EXCLUDE (as_of) FROM features WHERE as_of = $t::TIMESTAMP ORDER BY student_key, topic_id",
    { t: t.toISOString() },
  );
}
/**
 * The stored rule states (the explanation's `rule` block, models/ruleScorer.ts StoredRuleState): an
 * incremental run leaves an untouched pair's row as it is (its score and top 3 are stamped as of the earlier
 * run; the state is what a full run stores).
 */
async function scores(store: DuckStore) {
  // The batch stores the block as numbers (rule20): its columns, and the text of rows that have one.
  return store.all(
    `SELECT student_key, topic_id, model_version, explanation, ${RULE_BLOCK_COLUMNS.join(", ")}
     FROM student_mastery WHERE score_source = 'rule_based' ORDER BY student_key, topic_id`,
  );
}
/** Every rule row as a reader sees it at `at` (serving/masteryView.ts ruleRowAt): score, explanation. */
async function readTime(store: DuckStore, at: Date) {
  const rows = withExplanationTexts(
    await store.all<{
      student_key: string;
      topic_id: string;
      score_source: string;
      mastery_score: number;
      as_of: Date;
      explanation: string;
    }>(
      `SELECT student_key, topic_id, score_source, mastery_score, as_of, explanation, ${STORED_NUMBERS_SELECT}
     FROM student_mastery WHERE score_source = 'rule_based' ORDER BY student_key, topic_id`,
    ),
  );
  return rows.map((r) => {
    const x = ruleRowAt(r, at);
    return [r.student_key, r.topic_id, x.mastery_score, x.explanation];
  });
}
let run = 0;

describe("incremental daily features and rule scores", () => {
  it(
    "property: full at T0 then incremental at T1 == full at T0 then full at T1 (features, rule states, read-time scores)",
    async () => {
      await fc.assert(
        fc.asyncProperty(
          fc
            .oneof(
              fc.integer({ min: 1, max: 3 }).map((d) => d * DAY),
              { arbitrary: fc.integer({ min: 1, max: 3 * DAY }), weight: 3 },
              fc.constant(0),
            )
            .chain((gap) => {
              // Seconds relative to T0 at both runs' window edges (and one second either side).
              const edges = [-90, -30, -7, -1].flatMap((d) =>
                [d * DAY, d * DAY + gap].flatMap((x) => [x - 1, x, x + 1]),
              );
              return fc.tuple(
                fc.constant(gap),
                fc.array(drawEvent(edges, -100 * DAY, -1), { minLength: 1, maxLength: 30 }),
                fc.array(drawEvent(edges, -100 * DAY, -1), { maxLength: 3 }),
                gap === 0
                  ? fc.constant([] as DrawnEvent[])
                  : fc.array(drawEvent(edges, 0, gap - 1), { maxLength: 6 }),
              );
            }),
          async ([gap, base, late, fresh]) => {
            const T1 = new Date(T0.getTime() + gap * 1000);
            const pa = join(dir, `a-${run}.duckdb`);
            const pb = join(dir, `b-${run++}.duckdb`);
            (await DuckStore.open(pb)).close();
            const a = await DuckStore.open(pa);
            let b: DuckStore | undefined;
            try {
              const mirror = async () => {
                await a.run(`ATTACH ${sqlString(pb)} AS mirror`);
                await a.run(
                  "INSERT INTO mirror.raw_events SELECT * FROM raw_events WHERE event_id NOT IN (SELECT event_id FROM mirror.raw_events)",
                );
                await a.run("DETACH mirror");
              };
              await insertEvents(
                a,
                base.map((e) => drawnEvent(T0, e)),
              );
              await mirror();
              const now0 = new Date("2024-04-01T00:00:00Z");
              const now1 = new Date("2024-04-02T00:00:00Z");
              // Run 1 (both stores): full at T0.
              const first = await buildFeaturesIncremental(a, T0, null);
              expect(first.mode).toBe("full");
              await scoreRules(a, { asOf: T0, now: now0, workers: 0 });
              b = await DuckStore.open(pb);
              await buildFeatures(b, T0);
              await scoreRules(b, { asOf: T0, now: now0, workers: 0 });
              b.close();
              b = undefined;
              // New events on the new day and late ones for the old days, ingested after run 1.
              await insertEvents(a, [
                ...late.map((e) => drawnEvent(T0, e)),
                ...fresh.map((e) => drawnEvent(T0, e)),
              ]);
              await mirror();
              // Run 2: incremental on A, full on B.
              // Rule scores on A refold only the pairs with new or late events (as `mastery schedule` does).
              const since: FeatureWatermark = first.watermark;
              const inc = await buildFeaturesIncremental(a, T1, since);
              expect(inc.mode).toBe("incremental");
              expect(inc.copied + inc.recomputed).toBeGreaterThanOrEqual(inc.rows);
              const ruleRun = await scoreRules(a, { asOf: T1, now: now1, workers: 0, since });
              expect(ruleRun.mode).toBe("incremental");
              // the pairs of the late and fresh events, no more
              const touched = new Set([...late, ...fresh].map((e) => `${e.student}/${e.topic}`));
              expect(ruleRun.scored).toBe(touched.size);
              b = await DuckStore.open(pb);
              await buildFeatures(b, T1);
              await scoreRules(b, { asOf: T1, now: now1, workers: 0 });
              expect(await snapshot(a, T1)).toEqual(await snapshot(b, T1));
              expect(await snapshot(a, T0)).toEqual(await snapshot(b, T0));
              expect(await scores(a)).toEqual(await scores(b));
              // What readers show: equal as of the run and as of later request times (evidence decayed and
              // recency at read time). History differs by design: A records only the refolded pairs.
              for (const later of [0, 0.5, 3, 40])
                expect(await readTime(a, new Date(T1.getTime() + later * DAY * 1000))).toEqual(
                  await readTime(b, new Date(T1.getTime() + later * DAY * 1000)),
                );
            } finally {
              a.close();
              b?.close();
              rmSync(pa, { force: true });
              rmSync(pb, { force: true });
            }
          },
        ),
        { numRuns: 40 },
      );
    },
    scaledTimeout(240_000),
  );

  it("copies untouched pairs and recomputes only new, late, window-crossing and bucket-shifted ones", async () => {
    const store = await DuckStore.open(join(dir, "cases.duckdb"));
    try {
      const ev = (student: string, seconds: number): TestEvent =>
        drawnEvent(T0, {
          type: "quiz_attempt",
          student,
          topic: "x",
          seconds,
          is_correct: true,
          n: 1,
          pct: 50,
        });
      await insertEvents(store, [
        ev("quiet", -3 * DAY), // stays inside 7 d after a 1-day move: copied
        ev("quiet", -40 * DAY), // beyond 30 d, inside 90 d: copied
        ev("crosses", -6 * DAY - 60), // age goes from 6 d to 7 d + : leaves the 7-day window
        ev("late", -2 * DAY),
        ev("fresh", -5 * DAY),
      ]);
      const first = await buildFeaturesIncremental(store, T0, null);
      await insertEvents(store, [ev("late", -10 * DAY), ev("fresh", 3600)]);
      const T1 = new Date(T0.getTime() + DAY * 1000);
      const inc = await buildFeaturesIncremental(store, T1, first.watermark);
      expect(inc).toMatchObject({ mode: "incremental", rows: 4, copied: 1, recomputed: 3 });
      // A move of 1.5 days: "quiet"'s events sit at the same time of day, so they move alike...
      const T2 = new Date(T1.getTime() + 1.5 * DAY * 1000);
      const inc2 = await buildFeaturesIncremental(store, T2, inc.watermark);
      expect(inc2.copied).toBeGreaterThanOrEqual(1);
      // ...while a pair with events 12 hours apart in time of day moves unevenly and is recomputed.
      await insertEvents(store, [ev("uneven", -3 * DAY), ev("uneven", -3 * DAY + 0.3 * DAY)]);
      const T3 = new Date(T2.getTime() + 1000);
      const inc3 = await buildFeaturesIncremental(store, T3, inc2.watermark);
      const T4 = new Date(T3.getTime() + 0.5 * DAY * 1000);
      const inc4 = await buildFeaturesIncremental(store, T4, inc3.watermark);
      const dirty = await store.all(
        "SELECT student_key FROM features WHERE as_of = $t::TIMESTAMP ORDER BY 1",
        { t: T4.toISOString() },
      );
      expect(dirty.length).toBe(inc4.rows);
      expect(inc4.recomputed).toBeGreaterThanOrEqual(1);
      const full = await buildFeatures(store, T4, { table: "features_check" });
      expect(full.rows).toBe(inc4.rows);
      expect(
        await store.all(
          "SELECT * EXCLUDE (as_of) FROM features WHERE as_of = $t::TIMESTAMP ORDER BY student_key, topic_id",
          { t: T4.toISOString() },
        ),
      ).toEqual(
        await store.all("SELECT * EXCLUDE (as_of) FROM features_check ORDER BY student_key, topic_id"),
      );
    } finally {
      store.close();
    }
  });

  it("falls back to a full build without a usable previous snapshot", async () => {
    const store = await DuckStore.open(join(dir, "fallback.duckdb"));
    try {
      await insertEvents(store, [
        drawnEvent(T0, {
          type: "video",
          student: "a",
          topic: "x",
          seconds: -DAY,
          is_correct: true,
          n: 1,
          pct: 40,
        }),
      ]);
      const r = await buildFeaturesIncremental(store, T0, {
        asOf: new Date(T0.getTime() - DAY * 1000),
        ingestedThroughUs: "0",
      });
      expect(r.mode).toBe("full");
      expect(r.fullReason).toMatch(/no snapshot as of/);
      const back = await buildFeaturesIncremental(store, new Date(T0.getTime() - 1000), r.watermark);
      expect(back.fullReason).toMatch(/before the previous run/);
    } finally {
      store.close();
    }
  });
});
