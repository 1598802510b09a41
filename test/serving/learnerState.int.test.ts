import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import { ingestPaths } from "../../features/ingest.ts";
import { Pseudonymizer } from "../../features/pseudonymize.ts";
import { generateSynthetic } from "../../features/synthetic/generate.ts";
import { type Explanation, explanationTotal } from "../../models/explanation.ts";
import { bktMastery, eloMastery, replayEvents } from "../../models/learnerState.ts";
import {
  type BktEloModels,
  loadQuizLog,
  resolveModels,
  scoreBktElo,
  topicParamsResolver,
} from "../../serving/learnerState.ts";
import { DuckMasteryReadStore } from "../../serving/masteryReadStore.ts";
import { recompute } from "../../serving/recompute.ts";
import { withExplanationTexts } from "../../serving/storedExplanations.ts";
import { IncrementalUpdater } from "../../serving/updater.ts";
import { DuckStore } from "../../storage/duckdb.ts";
import { listValue } from "../../storage/duckdbApi.ts";
import { EXPLANATION_NUMBERS_SELECT } from "../../storage/explanationNumbers.ts";
import { DuckMasteryStore } from "../../storage/masteryStore.ts";
import { DuckRawEventStore, type RawEventRow } from "../../storage/rawEventStore.ts";
import { compactServingTables } from "../../storage/servingTables.ts";
import { DuckStateStore, type LearnerStateRow, learnerStateFromRow } from "../../storage/stateStore.ts";

interface Ev {
  id: string;
  type: string;
  student: string;
  topic: string;
  /** Seconds after 2026-01-01. */
  t: number;
  correct: boolean | null;
  question: string | null;
  /** Days after 2026-02-01 it was ingested (default 0). */
  ingestedDay?: number;
}

async function insert(store: DuckStore, events: readonly Ev[]): Promise<void> {
  for (const e of events) {
    await store.run(
      `INSERT INTO raw_events (event_id, type, student_key, topic_id, ts, question_id, is_correct, ingested_at)
       VALUES ($1, $2, $3, $4, TIMESTAMP '2026-01-01' + to_seconds($5::BIGINT), $6, $7,
               TIMESTAMP '2026-02-01' + to_days($8::INTEGER))`,
      [e.id, e.type, e.student, e.topic, e.t, e.question, e.correct, e.ingestedDay ?? 0],
    );
  }
}

const DEFAULTS: BktEloModels = {
  bkt: undefined,
  bktVersion: "default",
  elo: undefined,
  eloVersion: "default",
};
const NOW = new Date("2026-03-01T00:00:00Z");
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** The state columns the stream updater also writes (it stamps its own updated_at). */
const STATE = `SELECT * EXCLUDE (updated_at) FROM learner_state ORDER BY student_key, topic_id`;

async function snapshot(store: DuckStore): Promise<{ state: unknown[]; mastery: unknown[] }> {
  const state = await store.all(STATE);
  const mastery = await readScores(
    store,
    `SELECT student_key, topic_id, score_source, mastery_score, model_version, as_of, explanation,
            ${EXPLANATION_NUMBERS_SELECT}
     FROM student_mastery ORDER BY ALL`,
  );
  return { state, mastery };
}

/**
 * Score rows as readers see them: the batch job stores a bkt/elo explanation as its numbers, rendered on read
 * (serving/storedExplanations.ts); the stream stores the text. `sql` selects EXPLANATION_NUMBERS_SELECT last.
 */
async function readScores(store: DuckStore, sql: string) {
  return withExplanationTexts(await store.all<{ mastery_score: number; explanation: string }>(sql));
}

/** Per (key, source), the newest history point (rowid: the append order) equals the current student_mastery row. */
async function expectNewestHistoryIsCurrent(store: DuckStore): Promise<void> {
  const stale = await store.all(
    `SELECT m.student_key, m.topic_id, m.score_source FROM student_mastery m
     LEFT JOIN (SELECT * FROM student_mastery_history
                QUALIFY row_number() OVER (PARTITION BY student_key, topic_id, score_source ORDER BY rowid DESC) = 1) h
       USING (student_key, topic_id, score_source)
     WHERE h.student_key IS NULL OR h.mastery_score <> m.mastery_score OR h.explanation <> m.explanation
        OR h.model_version <> m.model_version
        OR (${EXPLANATION_NUMBERS_SELECT.split(", ")
          .map((c) => `h.${c} IS DISTINCT FROM m.${c}`)
          .join(" OR ")})`,
  );
  expect(stale).toEqual([]);
}

/**
 * The bkt and elo rows of student_mastery as models/learnerState.ts bktMastery / eloMastery compute them
 * in JavaScript from the stored states (score, and the explanation as JSON.stringify writes it), beside
 * the rows the job wrote as readers see them (the explanation rendered from its stored numbers).
 */
async function jsScores(store: DuckStore, models: BktEloModels) {
  const paramsFor = topicParamsResolver(models);
  const states = await store.all<LearnerStateRow>(
    `SELECT *, epoch_us(last_ts)::DOUBLE AS last_ts_us FROM learner_state ORDER BY student_key, topic_id`,
  );
  const expected = states.flatMap((r) => {
    const s = learnerStateFromRow(r);
    const p = paramsFor(r.topic_id);
    return [
      ["bkt", bktMastery(s, p)],
      ["elo", eloMastery(s, p)],
    ].map(([source, m]) => {
      const e = m as ReturnType<typeof bktMastery>;
      return [r.student_key, r.topic_id, source, e.score, JSON.stringify(e.explanation)];
    });
  });
  const written = (
    (await readScores(
      store,
      `SELECT student_key, topic_id, score_source, mastery_score, explanation, ${EXPLANATION_NUMBERS_SELECT}
       FROM student_mastery WHERE score_source IN ('bkt', 'elo') ORDER BY student_key, topic_id, score_source`,
    )) as {
      student_key: string;
      topic_id: string;
      score_source: string;
      mastery_score: number;
      explanation: string;
    }[]
  ).map((r) => [r.student_key, r.topic_id, r.score_source, r.mastery_score, r.explanation]);
  return { expected, written };
}

const evArb = (i: number): fc.Arbitrary<Ev> =>
  fc
    .record({
      id: fc.constant(`e${String(i).padStart(3, "0")}`),
      type: fc.constantFrom("quiz_attempt", "quiz_attempt", "video"),
      student: fc.constantFrom("s1", "s2", "s3"),
      topic: fc.constantFrom("t1", "t2"),
      t: fc.integer({ min: 0, max: 50 }),
      correct: fc.option(fc.boolean(), { freq: 8 }),
      question: fc.constantFrom("q1", "q2"),
    })
    .map((e) => (e.type === "quiz_attempt" ? e : { ...e, correct: null, question: null }));

/** min..30 events, the i-th drawn by evArb(i). */
const eventsArb = (min: number) =>
  fc.integer({ min, max: 30 }).chain((n) => fc.tuple(...Array.from({ length: n }, (_, i) => evArb(i))));

describe("serving/learnerState (score bkt-elo job)", () => {
  it("incremental runs over batches in any arrival order (late events, re-deliveries) equal one full replay", async () => {
    await fc.assert(
      fc.asyncProperty(
        eventsArb(1),
        fc.integer({ min: 1, max: 3 }),
        fc.array(fc.record({ of: fc.nat(), t: fc.integer({ min: 0, max: 50 }) }), { maxLength: 4 }),
        async (original, batches, dups) => {
          // Re-deliveries: a copy of an earlier event (same id and key, another time and answer),
          // ingested later; the first ingested copy counts.
          const events = [...original];
          for (const d of dups) {
            const e = original[d.of % original.length]!;
            events.push({ ...e, t: d.t, correct: e.correct === null ? null : !e.correct, ingestedDay: 1 });
          }
          // Batches arrive in generation order, not time order: later batches hold late events.
          const inc = await DuckStore.open(":memory:");
          const full = await DuckStore.open(":memory:");
          try {
            const size = Math.ceil(events.length / batches);
            for (let b = 0; b < events.length; b += size) {
              await insert(inc, events.slice(b, b + size));
              await scoreBktElo(inc, DEFAULTS, { now: NOW });
            }
            await insert(full, events);
            const r = await scoreBktElo(full, DEFAULTS, { now: NOW, full: true });
            expect(r.events).toBe(new Set(events.map((e) => `${e.student}/${e.topic}/${e.id}`)).size);
            expect(await snapshot(inc)).toEqual(await snapshot(full));
            const js = await jsScores(full, DEFAULTS);
            expect(js.written).toEqual(js.expected);
            // Nothing new: the next incremental run touches no key.
            expect((await scoreBktElo(inc, DEFAULTS, { now: NOW })).keys).toBe(0);
            // The newest history point of each (key, source) is its current score, and a full rerun over the
            // same events adds none, after incremental days or a full run.
            for (const db of [inc, full]) {
              await expectNewestHistoryIsCurrent(db);
              expect((await scoreBktElo(db, DEFAULTS, { now: NOW, full: true })).historyRows).toBe(0);
              await expectNewestHistoryIsCurrent(db);
            }
          } finally {
            inc.close();
            full.close();
          }
        },
      ),
      { numRuns: 15 },
    );
  }, 300_000);

  it("history: a day adds a point per moved key and source as the stream does; a full rerun adds one only where a score changed", async () => {
    const batch = await DuckStore.open(":memory:");
    const stream = await DuckStore.open(":memory:");
    try {
      const updater = new IncrementalUpdater({
        raw: await DuckRawEventStore.open(stream),
        state: await DuckStateStore.open(stream),
        mastery: await DuckMasteryStore.open(stream),
        models: DEFAULTS,
        nowUs: () => NOW.getTime() * 1000,
      });
      // Three days: a quiz attempt, a video (moves the state's cursor and event count, not the scores), and a
      // wrong answer. Each day is one incremental batch run and one stream batch.
      const days: Ev[][] = [
        [{ id: "a", type: "quiz_attempt", student: "s1", topic: "t1", t: 10, correct: true, question: "q1" }],
        [{ id: "b", type: "video", student: "s1", topic: "t1", t: 20, correct: null, question: null }],
        [
          {
            id: "c",
            type: "quiz_attempt",
            student: "s1",
            topic: "t1",
            t: 30,
            correct: false,
            question: "q1",
          },
        ],
      ];
      const historyRows: number[] = [];
      for (const day of days) {
        await insert(batch, day);
        historyRows.push((await scoreBktElo(batch, DEFAULTS, { now: NOW })).historyRows);
        const rows = (await batch.all(
          `SELECT * EXCLUDE (ts, ingested_at), epoch_us(ts)::DOUBLE AS ts_us, epoch_us(ingested_at)::DOUBLE AS ingested_at_us
           FROM raw_events WHERE event_id IN (SELECT unnest($1::VARCHAR[]))`,
          [listValue(day.map((e) => e.id))],
        )) as unknown as RawEventRow[];
        await updater.apply(rows);
      }
      expect(historyRows).toEqual([2, 2, 2]);
      const history = `SELECT student_key, topic_id, score_source, mastery_score, model_version, as_of, explanation,
          ${EXPLANATION_NUMBERS_SELECT}
        FROM student_mastery_history ORDER BY as_of, score_source`;
      const points = await readScores(batch, history);
      expect(points.length).toBe(6);
      // The video day's points repeat day 1's scores (only as_of moved).
      expect(points[2]!.mastery_score).toBe(points[0]!.mastery_score);
      expect(await readScores(stream, history)).toEqual(points);
      expect(await snapshot(stream)).toEqual(await snapshot(batch));
      // What the server reads (GET /mastery, the history routes): the batch's rows store explanation numbers,
      // the stream's their text; both read back as the same texts.
      const reads = async (store: DuckStore) => {
        const r = new DuckMasteryReadStore(store);
        return {
          mastery: (await r.masteryRows("s1")).map(({ last_updated: _, ...row }) => row),
          scores: (await r.scoreRows("s1")).map(({ last_updated: _, ...row }) => row),
          history: await r.history("s1", "t1"),
          studentHistory: await r.studentHistory("s1"),
        };
      };
      const batchReads = await reads(batch);
      expect(batchReads.mastery.map((m) => JSON.parse(m.explanation).score)).toEqual(
        batchReads.mastery.map((m) => m.mastery_score),
      );
      expect(batchReads.history).toHaveLength(6);
      expect(await reads(stream)).toEqual(batchReads);
      // The recompute's reconciliation (mastery recompute) reads the batch's rows as equal to a replay.
      const stores = {
        raw: await DuckRawEventStore.open(batch),
        state: await DuckStateStore.open(batch),
        mastery: await DuckMasteryStore.open(batch),
      };
      const report = await recompute(stores, DEFAULTS);
      expect(report.tables.map((t) => [t.table, t.compared, t.differences])).toEqual([
        ["learner_state", 1, 0],
        ["student_mastery", 2, 0],
      ]);
      // A full rerun over the same events adds no point; one with another model version adds one per key
      // and source, and the newest point is then the current score.
      expect((await scoreBktElo(batch, DEFAULTS, { now: NOW, full: true })).historyRows).toBe(0);
      const other = { ...DEFAULTS, bktVersion: "other" };
      expect((await scoreBktElo(batch, other, { now: NOW, full: true })).historyRows).toBe(1);
      expect((await scoreBktElo(batch, other, { now: NOW, full: true })).historyRows).toBe(0);
      await expectNewestHistoryIsCurrent(batch);
      expect((await batch.one<{ n: bigint }>("SELECT count(*) AS n FROM student_mastery_history"))?.n).toBe(
        7n,
      );
    } finally {
      batch.close();
      stream.close();
    }
  });

  it("daily runs narrowed by the ingest watermark (late events, re-deliveries, a batch ingested below it) equal one full replay", async () => {
    await fc.assert(
      fc.asyncProperty(
        eventsArb(2),
        fc.integer({ min: 2, max: 4 }),
        fc.array(fc.record({ of: fc.nat(), t: fc.integer({ min: 0, max: 50 }) }), { maxLength: 4 }),
        fc.boolean(),
        async (original, batches, dups, oneBelow) => {
          // Batch b is ingested on day b (after the previous run's watermark); re-deliveries of earlier
          // events come with it. With oneBelow, the last batch's first copies are stamped with the
          // previous batch's day: rows committed after a run with an ingested_at at its watermark (a
          // concurrent ingest), which the next run must not miss.
          const size = Math.ceil(original.length / batches);
          const days: Ev[][] = [];
          for (let b = 0, day = 0; b < original.length; b += size, day++)
            days.push(original.slice(b, b + size).map((e) => ({ ...e, ingestedDay: day })));
          const last = days.length - 1;
          if (oneBelow) for (const e of days[last]!) e.ingestedDay = last - 1;
          // Re-deliveries are stamped after every copy in the store (with oneBelow: on the last day), as
          // ingest stamps arrivals: a tie with an earlier arrival would make "first ingested" ambiguous.
          dups.forEach((d, i) => {
            const e = original[d.of % original.length]!;
            const day = oneBelow ? last : 1 + (i % last);
            days[day]!.push({
              ...e,
              t: d.t,
              correct: e.correct === null ? null : !e.correct,
              ingestedDay: day,
            });
          });
          const inc = await DuckStore.open(":memory:");
          const full = await DuckStore.open(":memory:");
          try {
            const narrowing: string[] = [];
            for (const day of days) {
              await insert(inc, day);
              narrowing.push((await scoreBktElo(inc, DEFAULTS, { now: NOW })).narrowing);
            }
            expect(narrowing[0]).toBe("no watermark recorded");
            expect(narrowing.slice(1, -1).every((n) => n === "watermark")).toBe(true);
            expect(narrowing.at(-1)).toBe(oneBelow ? "raw_events changed below the watermark" : "watermark");
            await insert(full, days.flat());
            await scoreBktElo(full, DEFAULTS, { now: NOW, full: true });
            expect(await snapshot(inc)).toEqual(await snapshot(full));
            const next = await scoreBktElo(inc, DEFAULTS, { now: NOW });
            expect(next.narrowing).toBe("watermark");
            expect(next.keys).toBe(0);
          } finally {
            inc.close();
            full.close();
          }
        },
      ),
      { numRuns: 15 },
    );
  }, 180_000);

  it("a day's run reads each candidate's newest state revision (base and delta, compacted or not): the same plan as without compaction, and one full replay", async () => {
    // The watermark path reads only the candidates' states from learner_state's base and delta tables: a
    // base row hidden by a delta row, or an older delta revision, read as well would count the key's events
    // twice or start it from an older cursor (more replays here, or a wrong state).
    await fc.assert(
      fc.asyncProperty(
        eventsArb(3),
        fc.integer({ min: 2, max: 4 }),
        fc.array(fc.boolean(), { minLength: 4, maxLength: 4 }),
        async (original, batches, compactAfter) => {
          const size = Math.ceil(original.length / batches);
          const days: Ev[][] = [];
          for (let b = 0, day = 0; b < original.length; b += size, day++)
            days.push(original.slice(b, b + size).map((e) => ({ ...e, ingestedDay: day })));
          const compacted = await DuckStore.open(":memory:");
          const layered = await DuckStore.open(":memory:");
          const full = await DuckStore.open(":memory:");
          try {
            for (const [d, day] of days.entries()) {
              await insert(compacted, day);
              await insert(layered, day);
              const c = await scoreBktElo(compacted, DEFAULTS, { now: NOW });
              const l = await scoreBktElo(layered, DEFAULTS, { now: NOW });
              expect(c.narrowing).toBe(d === 0 ? "no watermark recorded" : "watermark");
              expect([c.keys, c.replayedKeys, c.events]).toEqual([l.keys, l.replayedKeys, l.events]);
              if (compactAfter[d] === true) await compactServingTables(compacted);
            }
            await insert(full, days.flat());
            await scoreBktElo(full, DEFAULTS, { now: NOW, full: true });
            const want = await snapshot(full);
            expect(await snapshot(compacted)).toEqual(want);
            expect(await snapshot(layered)).toEqual(want);
          } finally {
            compacted.close();
            layered.close();
            full.close();
          }
        },
      ),
      { numRuns: 12 },
    );
  }, 180_000);

  it("on generated data with fitted BKT and Elo (item offsets): the stream updater's state, bit for bit; two incremental days equal the full run", async () => {
    const GEN_NOW = new Date("2026-11-01T00:00:00Z");
    const dir = mkdtempSync(join(tmpdir(), "bkt-elo-gen-"));
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
    const batch = await DuckStore.open(":memory:");
    const daily = await DuckStore.open(":memory:");
    const stream = await DuckStore.open(":memory:");
    try {
      await ingestPaths(batch, [dir], { pseudonymizer, now: GEN_NOW });
      const models = await resolveModels(batch, { seed: 1 });
      expect(models.elo?.itemNames.length).toBeGreaterThan(5);
      const full = await scoreBktElo(batch, models, { now: GEN_NOW, full: true });
      expect(full.events).toBeGreaterThan(1000);
      expect(full.replayedKeys).toBe(full.keys);

      const rows = (await batch.all(
        `SELECT * EXCLUDE (ts, ingested_at), epoch_us(ts)::DOUBLE AS ts_us, epoch_us(ingested_at)::DOUBLE AS ingested_at_us
         FROM raw_events ORDER BY ts, event_id`,
      )) as unknown as RawEventRow[];
      // The stream updater, fed the same rows in batches, reaches the same states (bit for bit).
      const updater = new IncrementalUpdater({
        raw: await DuckRawEventStore.open(stream),
        state: await DuckStateStore.open(stream),
        mastery: await DuckMasteryStore.open(stream),
        models,
        nowUs: () => GEN_NOW.getTime() * 1000,
      });
      for (let i = 0; i < rows.length; i += 300) await updater.apply(rows.slice(i, i + 300));
      expect(await stream.all(STATE)).toEqual(await batch.all(STATE));
      // Scores and explanation texts (rendered from the stored numbers) equal what the JavaScript models write.
      const js = await jsScores(batch, models);
      expect(js.written.length).toBe(2 * full.keys);
      expect(js.written).toEqual(js.expected);
      // A full rerun over the same events (the daily --full over unchanged data): the same tables, no history.
      expect(full.historyRows).toBe(2 * full.keys);
      const before = await snapshot(batch);
      expect((await scoreBktElo(batch, models, { now: GEN_NOW, full: true })).historyRows).toBe(0);
      expect(await snapshot(batch)).toEqual(before);
      expect(await stream.all(STATE)).toEqual(await batch.all(STATE));

      // The same events as two daily runs (the second continues the stored states): same tables.
      await batch.run(`COPY raw_events TO '${join(dir, "raw.parquet")}' (FORMAT parquet)`);
      await daily.run(
        `INSERT INTO raw_events SELECT * FROM read_parquet('${join(dir, "raw.parquet")}') WHERE ts < TIMESTAMP '2026-09-07'`,
      );
      await scoreBktElo(daily, models, { now: GEN_NOW });
      await daily.run(
        `INSERT INTO raw_events SELECT * FROM read_parquet('${join(dir, "raw.parquet")}') WHERE ts >= TIMESTAMP '2026-09-07'`,
      );
      const second = await scoreBktElo(daily, models, { now: GEN_NOW });
      expect(second.replayedKeys).toBeLessThan(second.keys);
      expect(await snapshot(daily)).toEqual(await snapshot(batch));
      // The second day appended its rows to the serving tables' deltas (storage/servingTables.ts); folded
      // into the bases, the tables read the same, and the deltas are empty.
      const deltaRows = async () =>
        (await daily.one<{ n: bigint }>(
          "SELECT (SELECT count(*) FROM learner_state_delta) + (SELECT count(*) FROM student_mastery_delta) AS n",
        ))!.n;
      expect(await deltaRows()).toBeGreaterThan(0n);
      const compaction = await compactServingTables(daily);
      expect(compaction.folded.learner_state).toBeGreaterThan(0);
      expect(await deltaRows()).toBe(0n);
      expect(await snapshot(daily)).toEqual(await snapshot(batch));

      // Fold results staged 7 keys at a time and event rows read 37 at a time, by key range (bounded memory at
      // 100M events; keys with more than 37 rows get a block of their own): the same tables, full and daily.
      const staged = await DuckStore.open(":memory:");
      const stagedDaily = await DuckStore.open(":memory:");
      try {
        await staged.run(`INSERT INTO raw_events SELECT * FROM read_parquet('${join(dir, "raw.parquet")}')`);
        const r = await scoreBktElo(staged, models, {
          now: GEN_NOW,
          full: true,
          stageKeys: 7,
          eventBlockRows: 37,
        });
        expect(r.keys).toBe(full.keys);
        expect(r.keys % 7).not.toBe(0);
        expect(full.eventBlocks).toBe(1);
        expect(r.eventBlocks).toBeGreaterThan(1);
        expect(await snapshot(staged)).toEqual(await snapshot(batch));
        for (const when of ["ts < TIMESTAMP '2026-09-07'", "ts >= TIMESTAMP '2026-09-07'"]) {
          await stagedDaily.run(
            `INSERT INTO raw_events SELECT * FROM read_parquet('${join(dir, "raw.parquet")}') WHERE ${when}`,
          );
          expect(
            (await scoreBktElo(stagedDaily, models, { now: GEN_NOW, eventBlockRows: 37 })).eventBlocks,
          ).toBeGreaterThan(1);
        }
        expect(await snapshot(stagedDaily)).toEqual(await snapshot(batch));
      } finally {
        staged.close();
        stagedDaily.close();
      }
    } finally {
      batch.close();
      daily.close();
      stream.close();
    }
  });

  it("event rows read in blocks of any size (sorted by key alone, placed per key range; ties read again sorted) store what one block stores", async () => {
    // forEachEventBlock: more rows than a block are joined to their keys once into a table sorted by key index and read one key
    // range at a time; a range with two rows of a key at one ts is read again sorted by (key, ts, event_id). Any block
    // size, full run or two days' runs (their rows from the planned copy, bkt_col_new), stores the same rows.
    await fc.assert(
      fc.asyncProperty(
        eventsArb(1),
        fc.integer({ min: 1, max: 40 }),
        fc.integer({ min: 1, max: 30 }),
        async (events, blockRows, split) => {
          const one = await DuckStore.open(":memory:");
          const blocked = await DuckStore.open(":memory:");
          const days = await DuckStore.open(":memory:");
          try {
            await insert(one, events);
            const whole = await scoreBktElo(one, DEFAULTS, { now: NOW, full: true });
            expect(whole.eventBlocks).toBe(1);
            await insert(blocked, events);
            const r = await scoreBktElo(blocked, DEFAULTS, {
              now: NOW,
              full: true,
              eventBlockRows: blockRows,
            });
            if (whole.events > blockRows) expect(r.eventBlocks).toBeGreaterThan(1);
            expect(await snapshot(blocked)).toEqual(await snapshot(one));
            await insert(days, events.slice(0, split));
            await scoreBktElo(days, DEFAULTS, { now: NOW, eventBlockRows: blockRows });
            await insert(
              days,
              events.slice(split).map((e) => ({ ...e, ingestedDay: 1 })),
            );
            await scoreBktElo(days, DEFAULTS, { now: NOW, eventBlockRows: blockRows });
            expect(await snapshot(days)).toEqual(await snapshot(one));
          } finally {
            one.close();
            blocked.close();
            days.close();
          }
        },
      ),
      // 10 runs (~1.2 s each: three stores, four scoring runs): the CI's budget; block sizes 1-40 against 1-60 events.
      { numRuns: 10 },
    );
  });

  it("writes bkt and elo rows with explanations that sum to the score, and history rows", async () => {
    const store = await DuckStore.open(":memory:");
    await insert(store, [
      { id: "a", type: "quiz_attempt", student: "s1", topic: "t1", t: 1, correct: true, question: "q1" },
      { id: "b", type: "quiz_attempt", student: "s1", topic: "t1", t: 2, correct: false, question: "q1" },
      { id: "c", type: "video", student: "s1", topic: "t1", t: 3, correct: null, question: null },
      { id: "d", type: "quiz_attempt", student: "s1", topic: "t1", t: 4, correct: true, question: "q2" },
    ]);
    const res = await scoreBktElo(store, DEFAULTS, { now: NOW });
    expect(res).toMatchObject({ keys: 1, replayedKeys: 1, events: 4, quizAttempts: 3 });
    const state = await store.one<{
      bkt_n: number;
      elo_n: number;
      correct_streak: number;
      last_event_id: string;
    }>("SELECT * FROM learner_state");
    expect(state).toMatchObject({ bkt_n: 3, elo_n: 3, correct_streak: 1, last_event_id: "d" });
    const rows = withExplanationTexts(
      await store.all<{
        score_source: string;
        mastery_score: number;
        explanation: string;
        model_version: string;
      }>("SELECT * FROM student_mastery ORDER BY score_source"),
    );
    expect(rows.map((r) => r.score_source)).toEqual(["bkt", "elo"]);
    for (const r of rows) {
      const e = JSON.parse(r.explanation) as Explanation;
      expect(explanationTotal(e)).toBeCloseTo(r.mastery_score, 12);
      expect(r.model_version).toBe("default");
    }
    // Default BKT (prior 0.5, learn 0.1, guess 0.2, slip 0.1): right, wrong, right.
    let p = 0.5;
    for (const c of [true, false, true]) {
      const post = c ? (p * 0.9) / (p * 0.9 + (1 - p) * 0.2) : (p * 0.1) / (p * 0.1 + (1 - p) * 0.8);
      p = post + (1 - post) * 0.1;
    }
    expect(rows[0]!.mastery_score).toBeCloseTo(p, 12);
    const hist = await store.one<{ n: bigint }>("SELECT count(*) AS n FROM student_mastery_history");
    expect(hist?.n).toBe(2n);
    // Nothing new: a second run touches no key and writes no history.
    expect((await scoreBktElo(store, DEFAULTS, { now: NOW })).keys).toBe(0);
    expect((await store.one<{ n: bigint }>("SELECT count(*) AS n FROM student_mastery_history"))?.n).toBe(2n);
    store.close();
  });

  it("a full rerun after a video event moves only as_of / last_updated of the unmoved rows, and equals one full run", async () => {
    const a = await DuckStore.open(":memory:");
    const b = await DuckStore.open(":memory:");
    try {
      const quiz: Ev = {
        id: "a",
        type: "quiz_attempt",
        student: "s1",
        topic: "t1",
        t: 10,
        correct: true,
        question: "q1",
      };
      const video: Ev = {
        id: "v",
        type: "video",
        student: "s1",
        topic: "t1",
        t: 20,
        correct: null,
        question: null,
      };
      await insert(a, [quiz]);
      await scoreBktElo(a, DEFAULTS, { now: NOW, full: true });
      await insert(a, [video]);
      const later = new Date(NOW.getTime() + 3_600_000);
      // The scores and explanations did not move: no history point, only as_of and last_updated change.
      expect((await scoreBktElo(a, DEFAULTS, { now: later, full: true })).historyRows).toBe(0);
      const stamps = await a.all<{ as_of: Date; last_updated: Date }>(
        "SELECT as_of, last_updated FROM student_mastery ORDER BY score_source",
      );
      expect(stamps.map((r) => r.as_of.toISOString())).toEqual(Array(2).fill("2026-01-01T00:00:20.000Z"));
      expect(stamps.map((r) => r.last_updated.toISOString())).toEqual(Array(2).fill(later.toISOString()));
      await insert(b, [quiz, video]);
      await scoreBktElo(b, DEFAULTS, { now: later, full: true });
      expect(await snapshot(a)).toEqual(await snapshot(b));
    } finally {
      a.close();
      b.close();
    }
  });

  it("a full rerun over stored states writes exactly what a full run on a fresh store writes (moved rows, stale values, latent states, vanished keys)", async () => {
    const all = `SELECT *, signbit(elo_streak_delta) AS sign_elo_streak, signbit(bkt_learn_delta) AS sign_bkt_learn
      FROM learner_state ORDER BY student_key, topic_id`;
    await fc.assert(
      fc.asyncProperty(
        fc.tuple(...Array.from({ length: 14 }, (_, i) => evArb(i))),
        fc.integer({ min: 1, max: 13 }),
        async (events, cut) => {
          const rerun = await DuckStore.open(":memory:");
          const fresh = await DuckStore.open(":memory:");
          try {
            // Stored states from a day's run over the first events, folded into the base (a rerun's case).
            await insert(rerun, events.slice(0, cut));
            await scoreBktElo(rerun, DEFAULTS, { now: NOW });
            await compactServingTables(rerun);
            // Stored values a full run must overwrite: a signed zero where the run computes +0 (video-only
            // keys), a latent state (the stream's), and a key with no events at all.
            await rerun.run(
              // (an UPDATE does not store -0.0 over 0.0: the rows are deleted and inserted again)
              `CREATE TEMP TABLE signed AS SELECT * REPLACE (
                 CASE WHEN elo_streak_delta = 0 THEN '-0.0'::DOUBLE ELSE elo_streak_delta END AS elo_streak_delta)
               FROM learner_state_base;
               DELETE FROM learner_state_base;
               INSERT INTO learner_state_base SELECT * FROM signed;
               UPDATE learner_state_base SET latent_state = '\\x01'::BLOB, latent_model_version = 'lat'
                 WHERE student_key = 's1'`,
            );
            await rerun.run(
              `INSERT INTO learner_state_base SELECT * REPLACE ('gone' AS student_key) FROM learner_state_base LIMIT 1`,
            );
            const signed = await rerun.one<{ n: bigint }>(
              "SELECT count(*) FILTER (WHERE signbit(elo_streak_delta)) AS n FROM learner_state_base",
            );
            const zeros = await rerun.one<{ n: bigint }>(
              "SELECT count(*) FILTER (WHERE elo_streak_delta = 0) AS n FROM learner_state_base",
            );
            expect(signed?.n).toBe(zeros?.n);
            await insert(rerun, events.slice(cut));
            const later = new Date(NOW.getTime() + 60_000);
            await scoreBktElo(rerun, DEFAULTS, { now: later, full: true });
            await insert(fresh, events);
            await scoreBktElo(fresh, DEFAULTS, { now: later, full: true });
            const got = await rerun.all(all);
            expect(got).toEqual(await fresh.all(all));
            expect(got.some((r) => r.student_key === "gone")).toBe(false);
            expect(await snapshot(rerun)).toEqual(await snapshot(fresh));
            // A second rerun over unchanged events moves no state: only updated_at changes.
            const after = new Date(later.getTime() + 60_000);
            await scoreBktElo(rerun, DEFAULTS, { now: after, full: true });
            await scoreBktElo(fresh, DEFAULTS, { now: after, full: true });
            expect(await rerun.all(all)).toEqual(await fresh.all(all));
          } finally {
            rerun.close();
            fresh.close();
          }
        },
      ),
      { numRuns: 8 },
    );
  });

  it("writes in blocks of keys store what one transaction stores; a run stopped between blocks, then rerun, stores the same", async () => {
    const history = `SELECT * FROM student_mastery_history ORDER BY ALL`;
    const watermark = "SELECT * FROM bkt_elo_watermark";
    await fc.assert(
      fc.asyncProperty(
        fc.tuple(...Array.from({ length: 24 }, (_, i) => evArb(i))),
        fc.integer({ min: 1, max: 23 }),
        fc.integer({ min: 1, max: 4 }),
        fc.constantFrom("full", "incremental"),
        async (events, cut, writeKeys, rerunAs) => {
          const one = await DuckStore.open(":memory:");
          const blocks = await DuckStore.open(":memory:");
          const stopped = await DuckStore.open(":memory:");
          try {
            const later = new Date(NOW.getTime() + 60_000);
            // A day's run over the first events (appended to the deltas), then a full run over all of them (a
            // rerun over stored states and scores), in one transaction each and in blocks of `writeKeys` keys.
            for (const [db, opts] of [
              [one, {}],
              [blocks, { writeKeys }],
              [stopped, { writeKeys }],
            ] as const) {
              await insert(db, events.slice(0, cut));
              await scoreBktElo(db, DEFAULTS, { now: NOW, ...opts });
              await insert(db, events.slice(cut));
            }
            expect(await snapshot(blocks)).toEqual(await snapshot(one));
            expect(await blocks.all(history)).toEqual(await one.all(history));
            const r1 = await scoreBktElo(one, DEFAULTS, { now: later, full: true });
            const written: number[] = [];
            const r2 = await scoreBktElo(blocks, DEFAULTS, {
              now: later,
              full: true,
              writeKeys,
              onWriteBlock: (n) => written.push(n),
            });
            expect(r2.historyRows).toBe(r1.historyRows);
            expect(written.at(-1)).toBe(r1.keys);
            expect(written.length).toBe(Math.max(1, Math.ceil(r1.keys / writeKeys)));
            expect(await snapshot(blocks)).toEqual(await snapshot(one));
            expect(await blocks.all(`${STATE.replace("EXCLUDE (updated_at)", "")}`)).toEqual(
              await one.all(`${STATE.replace("EXCLUDE (updated_at)", "")}`),
            );
            expect(await blocks.all(history)).toEqual(await one.all(history));
            expect(await blocks.all(watermark)).toEqual(await one.all(watermark));
            // The same full run stopped after its first block: that block is committed, the watermark is still
            // the day's; the next run (full, or a day's) then stores what the uninterrupted run stored.
            const before = await stopped.all(watermark);
            const stop = new Error("stopped after the first block");
            await expect(
              scoreBktElo(stopped, DEFAULTS, {
                now: later,
                full: true,
                writeKeys,
                onWriteBlock: () => {
                  throw stop;
                },
              }),
            ).rejects.toBe(stop);
            if (r1.keys > writeKeys) expect(await stopped.all(watermark)).toEqual(before);
            await scoreBktElo(stopped, DEFAULTS, { now: later, writeKeys, full: rerunAs === "full" });
            expect(await snapshot(stopped)).toEqual(await snapshot(one));
            // A full rerun writes history where a score moved; a day's run one point per key with new events.
            if (rerunAs === "full") expect(await stopped.all(history)).toEqual(await one.all(history));
            await expectNewestHistoryIsCurrent(stopped);
            expect(await stopped.all(watermark)).toEqual(await one.all(watermark));
          } finally {
            one.close();
            blocks.close();
            stopped.close();
          }
        },
      ),
      { numRuns: 6 },
    );
  }, 300_000);

  it("events of one key at the same ts fold in event_id order (the read ordered by ts alone reads again)", async () => {
    const store = await DuckStore.open(":memory:");
    // Stored in the other order: "b" (wrong) first, then "a" (right), both at t = 5; another key has no tie.
    await insert(store, [
      { id: "b", type: "quiz_attempt", student: "s1", topic: "t1", t: 5, correct: false, question: "q1" },
      { id: "a", type: "quiz_attempt", student: "s1", topic: "t1", t: 5, correct: true, question: "q1" },
      { id: "c", type: "quiz_attempt", student: "s2", topic: "t1", t: 7, correct: true, question: "q1" },
    ]);
    await scoreBktElo(store, DEFAULTS, { now: NOW, full: true });
    const params = topicParamsResolver(DEFAULTS)("t1");
    const at5 = (eventId: string, isCorrect: boolean) => ({
      eventId,
      type: "quiz_attempt",
      ts: 5,
      isCorrect,
      questionId: "q1",
    });
    // In (ts, event_id) order: "a" then "b", so the streak is 0 and the last event is "b".
    const expected = replayEvents([at5("b", false), at5("a", true)], params);
    const row = await store.one<{ p_mastery: number; last_event_id: string; correct_streak: number }>(
      "SELECT p_mastery, last_event_id, correct_streak FROM learner_state WHERE student_key = 's1'",
    );
    expect(row).toEqual({ p_mastery: expected.pMastery, last_event_id: "b", correct_streak: 0 });
    store.close();
  });

  it("a key's events stored in any order fold in (ts, event_id) order, also past the read's insertion-sort length", async () => {
    // The read places each row at its key's slots and orders a key's rows by ts itself: insertion sort for short
    // or nearly ordered runs, an index sort for a long shuffled one (over 64 rows); a tie reads again sorted.
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 2, max: 160 }).chain((n) =>
          fc.record({
            order: fc.shuffledSubarray(
              Array.from({ length: n }, (_, i) => i),
              { minLength: n, maxLength: n },
            ),
            correct: fc.array(fc.boolean(), { minLength: n, maxLength: n }),
            tie: fc.boolean(),
          }),
        ),
        async ({ order, correct, tie }) => {
          const store = await DuckStore.open(":memory:");
          // Event i at t = 3 i (with `tie`, the last two share a t); stored in the drawn order, next to a short key.
          const t = (i: number) => (tie && i === order.length - 1 ? 3 * (i - 1) : 3 * i);
          const events: Ev[] = order.map((i) => ({
            id: `e${String(1000 - i)}`,
            type: "quiz_attempt",
            student: "s1",
            topic: "t1",
            t: t(i),
            correct: correct[i]!,
            question: i % 3 === 0 ? "q1" : "q2",
          }));
          await insert(store, [
            {
              id: "x",
              type: "quiz_attempt",
              student: "s2",
              topic: "t1",
              t: 1,
              correct: true,
              question: "q1",
            },
            ...events,
          ]);
          await scoreBktElo(store, DEFAULTS, { now: NOW, full: true });
          const expected = replayEvents(
            events.map((e) => ({
              eventId: e.id,
              type: e.type,
              ts: e.t,
              isCorrect: e.correct,
              questionId: e.question,
            })),
            topicParamsResolver(DEFAULTS)("t1"),
          );
          const row = await store.one<{
            p_mastery: number;
            elo_ability: number;
            last_event_id: string;
            correct_streak: number;
          }>(
            "SELECT p_mastery, elo_ability, last_event_id, correct_streak FROM learner_state WHERE student_key = 's1'",
          );
          store.close();
          expect(row).toEqual({
            p_mastery: expected.pMastery,
            elo_ability: expected.eloAbility,
            last_event_id: expected.lastEventId,
            correct_streak: expected.correctStreak,
          });
        },
      ),
      { numRuns: 12 },
    );
  });

  it("replays a key from scratch on a late event (as the stream does) or when the model version changes", async () => {
    const store = await DuckStore.open(":memory:");
    await insert(store, [
      { id: "a", type: "quiz_attempt", student: "s1", topic: "t1", t: 10, correct: true, question: "q1" },
    ]);
    await scoreBktElo(store, DEFAULTS, { now: NOW });
    // A late event (before the cursor) is picked up incrementally: the key is replayed with it...
    await insert(store, [
      { id: "z", type: "quiz_attempt", student: "s1", topic: "t1", t: 5, correct: false, question: "q1" },
    ]);
    expect(await scoreBktElo(store, DEFAULTS, { now: NOW })).toMatchObject({
      keys: 1,
      replayedKeys: 1,
      events: 2,
    });
    expect(await store.one("SELECT bkt_n, event_n, last_event_id FROM learner_state")).toEqual({
      bkt_n: 2,
      event_n: 2,
      last_event_id: "a",
    });
    // ... after which nothing is left to do.
    expect((await scoreBktElo(store, DEFAULTS, { now: NOW })).keys).toBe(0);
    // A new model version replays the key.
    const other = { ...DEFAULTS, eloVersion: "other" };
    const r = await scoreBktElo(store, other, { now: NOW });
    expect(r).toMatchObject({ keys: 1, replayedKeys: 1, events: 2 });
    const s = await store.one<{ bkt_n: number; last_event_id: string; elo_model_version: string }>(
      "SELECT * FROM learner_state",
    );
    expect(s).toMatchObject({ bkt_n: 2, last_event_id: "a", elo_model_version: "other" });
    // A full run over existing states rebuilds them (delete + insert of the same keys in one transaction).
    await insert(store, [
      { id: "y", type: "quiz_attempt", student: "s1", topic: "t1", t: 1, correct: true, question: "q1" },
    ]);
    expect((await scoreBktElo(store, other, { now: NOW, full: true })).events).toBe(3);
    expect(await store.one("SELECT bkt_n, last_event_id FROM learner_state")).toEqual({
      bkt_n: 3,
      last_event_id: "a",
    });
    store.close();
  });

  it("fits BKT and Elo on the store's quiz attempts when no model is given", async () => {
    const store = await DuckStore.open(":memory:");
    const events: Ev[] = [];
    for (let u = 0; u < 20; u++)
      for (let k = 0; k < 6; k++)
        events.push({
          id: `e${u}-${k}`,
          type: "quiz_attempt",
          student: `s${u}`,
          topic: k % 2 === 0 ? "t1" : "t2",
          t: k,
          correct: (u * 7 + k * 3) % 5 < 3,
          question: `q${k}`,
        });
    await insert(store, events);
    const models = await resolveModels(store, {});
    expect(models.bktVersion).toMatch(/^store-fit:[0-9a-f]{16}$/);
    expect(models.eloVersion).toMatch(/^store-fit:[0-9a-f]{16}$/);
    expect(models.elo?.skillNames.sort()).toEqual(["t1", "t2"]);
    const r = await scoreBktElo(store, models, { now: NOW });
    expect(r.keys).toBe(40);
    const versions = await store.all<{ model_version: string }>(
      "SELECT DISTINCT model_version FROM student_mastery ORDER BY 1",
    );
    expect(versions.map((v) => v.model_version).sort()).toEqual(
      [models.bktVersion, models.eloVersion].sort(),
    );
    store.close();
  });

  const dir = mkdtempSync(join(tmpdir(), "bkt-elo-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("the quick fit's log: every quiz attempt in (student, ts, event_id) order, or a hash sample of students above maxAttempts", async () => {
    const store = await DuckStore.open(":memory:");
    const events: Ev[] = [];
    for (let u = 0; u < 60; u++)
      for (let k = 0; k < 5; k++)
        events.push({
          id: `e${u}-${k}`,
          type: k === 4 ? "video" : "quiz_attempt",
          student: `s${u}`,
          topic: `t${k % 3}`,
          t: 100 - k,
          correct: k === 4 ? null : k === 2 && u % 4 === 0 ? null : (u + k) % 3 === 0,
          question: k === 4 ? null : k === 1 ? null : `q${k}`,
        });
    // A re-delivered copy counts once.
    events.push({ ...events[0]!, ingestedDay: 3 });
    await insert(store, events);
    const expected = await store.all<{ s: string; t: string; q: string | null; c: boolean }>(
      `SELECT DISTINCT ON (event_id) student_key AS s, topic_id AS t, question_id AS q, is_correct AS c, ts, event_id
       FROM raw_events WHERE type = 'quiz_attempt' AND is_correct IS NOT NULL ORDER BY event_id`,
    );
    expected.sort((a, b) => {
      const x = a as unknown as { s: string; ts: Date; event_id: string };
      const y = b as unknown as { s: string; ts: Date; event_id: string };
      return x.s < y.s ? -1 : x.s > y.s ? 1 : +x.ts - +y.ts || (x.event_id < y.event_id ? -1 : 1);
    });
    const decode = (log: Awaited<ReturnType<typeof loadQuizLog>>) =>
      Array.from({ length: log.n }, (_, i) => ({
        s: log.userNames[log.user[i]!],
        t: log.skillNames[log.skill[i]!],
        q: log.item[i]! < 0 ? null : log.itemNames[log.item[i]!],
        c: log.correct[i] === 1,
      }));
    const all = await loadQuizLog(store);
    expect(all.sampledEvery).toBe(1);
    expect(all.n).toBe(60 * 4 - 15);
    expect(decode(all)).toEqual(expected.map(({ s, t, q, c }) => ({ s, t, q, c })));

    // 225 attempts above a cap of 50: every 5th student by hash, all of each sampled student's attempts.
    const sample = await loadQuizLog(store, { maxAttempts: 50 });
    expect(sample.sampledEvery).toBe(5);
    const picked = new Set(
      (
        await store.all<{ s: string }>(
          "SELECT DISTINCT student_key AS s FROM raw_events WHERE hash(student_key) % 5 = 0",
        )
      ).map((r) => r.s),
    );
    expect(picked.size).toBeGreaterThan(3);
    expect(picked.size).toBeLessThan(30);
    expect(decode(sample)).toEqual(
      expected.filter((r) => picked.has(r.s)).map(({ s, t, q, c }) => ({ s, t, q, c })),
    );
    store.close();
  });

  it("CLI: score bkt-elo on a DuckDB file", async () => {
    const db = join(dir, "m.duckdb");
    const store = await DuckStore.open(db);
    await insert(store, [
      { id: "a", type: "quiz_attempt", student: "s1", topic: "t1", t: 1, correct: true, question: "q1" },
      { id: "b", type: "quiz_attempt", student: "s2", topic: "t1", t: 2, correct: false, question: "q1" },
    ]);
    store.close();
    // The `mastery` bin as installed (dist/ after `npm ci`'s build; the TypeScript through tsx without one).
    const out = execFileSync(
      process.execPath,
      [join(import.meta.dirname, "../../bin/mastery.js"), "score", "bkt-elo", "--db", db],
      {
        env: { ...process.env, MASTERY_QUIET: "1" },
        encoding: "utf8",
      },
    );
    expect(JSON.parse(out)).toMatchObject({ keys: 2, events: 2, quizAttempts: 2 });
    const again = await DuckStore.open(db);
    const n = await again.one<{ n: bigint }>(
      "SELECT count(*) AS n FROM student_mastery WHERE score_source IN ('bkt', 'elo')",
    );
    expect(n?.n).toBe(4n);
    again.close();
  });
});
