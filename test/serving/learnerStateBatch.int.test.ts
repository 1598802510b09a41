import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import { ingestPaths } from "../../features/ingest.ts";
import { Pseudonymizer } from "../../features/pseudonymize.ts";
import { generateSynthetic } from "../../features/synthetic/generate.ts";
import { type BktEloModels, resolveModels, scoreBktElo } from "../../serving/learnerState.ts";
import { scoreBktEloColumnar } from "../../serving/learnerStateBatch.ts";
import { IncrementalUpdater } from "../../serving/updater.ts";
import { DuckStore } from "../../storage/duckdb.ts";
import { DuckMasteryStore } from "../../storage/masteryStore.ts";
import { DuckRawEventStore, type RawEventRow } from "../../storage/rawEventStore.ts";
import { DuckStateStore } from "../../storage/stateStore.ts";

const NOW = new Date("2026-11-01T00:00:00Z");
const DEFAULTS: BktEloModels = {
  bkt: undefined,
  bktVersion: "default",
  elo: undefined,
  eloVersion: "default",
};
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

interface Ev {
  id: string;
  type: string;
  student: string;
  topic: string;
  t: number;
  correct: boolean | null;
  question: string | null;
}

async function insert(store: DuckStore, events: readonly Ev[]): Promise<void> {
  for (const e of events)
    await store.run(
      `INSERT INTO raw_events (event_id, type, student_key, topic_id, ts, question_id, is_correct, ingested_at)
       VALUES ($1, $2, $3, $4, TIMESTAMP '2026-01-01' + to_seconds($5::BIGINT), $6, $7, TIMESTAMP '2026-02-01')`,
      [e.id, e.type, e.student, e.topic, e.t, e.question, e.correct],
    );
}

/** Every table the job writes, minus nothing: the columnar job must write the very same rows. */
async function tables(store: DuckStore) {
  return {
    state: await store.all("SELECT * FROM learner_state ORDER BY student_key, topic_id"),
    mastery: await store.all("SELECT * FROM student_mastery ORDER BY ALL"),
    history: await store.all("SELECT * FROM student_mastery_history ORDER BY ALL"),
  };
}

/** The state columns the stream updater also writes (it stamps its own updated_at). */
const STATE = `SELECT * EXCLUDE (updated_at) FROM learner_state ORDER BY student_key, topic_id`;

const evArb = (i: number): fc.Arbitrary<Ev> =>
  fc
    .record({
      id: fc.constant(`e${String(i).padStart(3, "0")}`),
      type: fc.constantFrom("quiz_attempt", "quiz_attempt", "video"),
      student: fc.constantFrom("s1", "s2", "s3"),
      topic: fc.constantFrom("t1", "t2"),
      t: fc.integer({ min: 0, max: 40 }),
      correct: fc.option(fc.boolean(), { freq: 8 }),
      question: fc.constantFrom("q1", "q2"),
    })
    .map((e) => (e.type === "quiz_attempt" ? e : { ...e, correct: null, question: null }));

describe("serving/learnerStateBatch (columnar BKT/Elo batch)", () => {
  it("writes exactly the rows of the row-by-row job: full runs, incremental batches, late events", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc
          .integer({ min: 1, max: 30 })
          .chain((n) => fc.tuple(...Array.from({ length: n }, (_, i) => evArb(i)))),
        fc.integer({ min: 1, max: 3 }),
        fc.boolean(),
        fc.array(fc.record({ of: fc.nat(), t: fc.integer({ min: 0, max: 40 }) }), { maxLength: 4 }),
        async (original, batches, fullEach, dups) => {
          // Re-deliveries: a copy of an earlier event (same id and key, another time and answer); the
          // first stored copy counts (same ingested_at here, so the earlier ts).
          const events = [...original];
          for (const d of dups) {
            const e = original[d.of % original.length]!;
            events.push({ ...e, t: d.t, correct: e.correct === null ? null : !e.correct });
          }
          const rowJob = await DuckStore.open(":memory:");
          const colJob = await DuckStore.open(":memory:");
          try {
            const size = Math.ceil(events.length / batches);
            // Batches in arrival (not time) order: late events are skipped by incremental runs in both jobs.
            for (let b = 0; b < events.length; b += size) {
              for (const s of [rowJob, colJob]) await insert(s, events.slice(b, b + size));
              const a = await scoreBktElo(rowJob, DEFAULTS, { now: NOW, full: fullEach });
              const c = await scoreBktEloColumnar(colJob, DEFAULTS, { now: NOW, full: fullEach });
              expect(c).toEqual(a);
            }
            expect(await tables(colJob)).toEqual(await tables(rowJob));
          } finally {
            rowJob.close();
            colJob.close();
          }
        },
      ),
      { numRuns: 15 },
    );
  });

  it("on generated data with fitted BKT and Elo (item offsets): same rows as the row job and the stream updater's state", async () => {
    const dir = mkdtempSync(join(tmpdir(), "bkt-col-"));
    dirs.push(dir);
    await generateSynthetic({
      students: 25,
      topics: 6,
      days: 12,
      seed: 5,
      start: "2026-09-01",
      eventsPerDay: 4,
      truthEvery: 0,
      outDir: dir,
      workers: 0,
    });
    const pseudonymizer = new Pseudonymizer("columnar-test-key-0123456789");
    const rowJob = await DuckStore.open(":memory:");
    const colJob = await DuckStore.open(":memory:");
    const stream = await DuckStore.open(":memory:");
    try {
      for (const s of [rowJob, colJob]) await ingestPaths(s, [dir], { pseudonymizer, now: NOW });
      const models = await resolveModels(rowJob, { seed: 1 });
      expect(models.elo?.itemNames.length).toBeGreaterThan(5);
      const a = await scoreBktElo(rowJob, models, { now: NOW, full: true });
      const c = await scoreBktEloColumnar(colJob, models, { now: NOW, full: true });
      expect(a.events).toBeGreaterThan(1000);
      expect(c).toEqual(a);
      expect(await tables(colJob)).toEqual(await tables(rowJob));

      // The stream updater, fed the same rows in batches, reaches the same states (bit for bit).
      const rows = (await colJob.all(
        `SELECT * EXCLUDE (ts, ingested_at), epoch_us(ts)::DOUBLE AS ts_us, epoch_us(ingested_at)::DOUBLE AS ingested_at_us
         FROM raw_events ORDER BY ts, event_id`,
      )) as unknown as RawEventRow[];
      const updater = new IncrementalUpdater({
        raw: await DuckRawEventStore.open(stream),
        state: await DuckStateStore.open(stream),
        mastery: await DuckMasteryStore.open(stream),
        models,
        nowUs: () => NOW.getTime() * 1000,
      });
      for (let i = 0; i < rows.length; i += 300) await updater.apply(rows.slice(i, i + 300));
      expect(await stream.all(STATE)).toEqual(await colJob.all(STATE));
    } finally {
      rowJob.close();
      colJob.close();
      stream.close();
    }
  });
});
