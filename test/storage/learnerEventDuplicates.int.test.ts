import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { type BktEloModels, scoreBktElo } from "../../serving/learnerState.ts";
import { DuckStore } from "../../storage/duckdb.ts";

// A full BKT/Elo run reads the event rows as stored and checks each key for a repeated event as its block is read
// (storage/learnerEventColumns.ts RepeatedEvents); a store holding one is read again, de-duplicated. These tests
// count the reads by the "read: duplicate check" phase (once per read) and compare what the run stores with a run
// over the events' first copies.

interface Ev {
  id: string;
  student: string;
  topic: string;
  /** Seconds after 2026-01-01. */
  t: number;
  correct: boolean;
  /** Days after 2026-02-01 it was ingested. */
  day: number;
}

async function insert(store: DuckStore, events: readonly Ev[]): Promise<void> {
  const rows = events.map(
    (e) =>
      `('${e.id}', 'quiz_attempt', '${e.student}', '${e.topic}', TIMESTAMP '2026-01-01' + to_seconds(${e.t}), 'q${e.t % 3}', ${e.correct}, TIMESTAMP '2026-02-01' + to_days(${e.day}))`,
  );
  if (rows.length > 0)
    await store.run(
      `INSERT INTO raw_events (event_id, type, student_key, topic_id, ts, question_id, is_correct, ingested_at)
       VALUES ${rows.join(", ")}`,
    );
}

const DEFAULTS: BktEloModels = {
  bkt: undefined,
  bktVersion: "default",
  elo: undefined,
  eloVersion: "default",
};
const NOW = new Date("2026-03-01T00:00:00Z");

/** What the run stored (clocks left out), and how many times it read the events. */
async function fullRun(
  events: readonly Ev[],
  opts: { eventBlockRows?: number; full?: boolean } = {},
): Promise<{ reads: number; events: number; state: unknown[]; scores: unknown[] }> {
  const store = await DuckStore.open(":memory:");
  try {
    await insert(store, events);
    let reads = 0;
    const r = await scoreBktElo(store, DEFAULTS, {
      now: NOW,
      full: opts.full ?? true,
      ...(opts.eventBlockRows === undefined ? {} : { eventBlockRows: opts.eventBlockRows }),
      onPhase: (p) => {
        if (p === "read: duplicate check") reads++;
      },
    });
    return {
      reads,
      events: r.events,
      state: await store.all(
        "SELECT * EXCLUDE (updated_at) FROM learner_state ORDER BY student_key, topic_id",
      ),
      scores: await store.all(
        "SELECT * EXCLUDE (last_updated) FROM student_mastery ORDER BY student_key, topic_id, score_source",
      ),
    };
  } finally {
    store.close();
  }
}

const eventArb = (i: number): fc.Arbitrary<Ev> =>
  fc.record({
    id: fc.constant(`e${i}`),
    student: fc.constantFrom("s1", "s2", "s3"),
    topic: fc.constantFrom("t1", "t2"),
    t: fc.integer({ min: 0, max: 60 }),
    correct: fc.boolean(),
    day: fc.constant(0),
  });

describe("storage/learnerEventColumns: a full run's repeated events, checked on read", () => {
  it("a full run over repeated events (one block or many) stores what a full run over their first copies stores, reading again only when a key repeats one", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc
          .integer({ min: 1, max: 16 })
          .chain((n) => fc.tuple(...Array.from({ length: n }, (_, i) => eventArb(i)))),
        fc.array(fc.record({ of: fc.nat(), t: fc.integer({ min: 0, max: 60 }) }), { maxLength: 3 }),
        fc.option(fc.integer({ min: 1, max: 12 }), { nil: undefined }),
        async (events, dups, eventBlockRows) => {
          // A repeated event: a copy of one (same id and key, another time and answer) ingested a day later; the
          // first ingested copy counts.
          const copies = dups.map((d) => {
            const e = events[d.of % events.length]!;
            return { ...e, t: d.t, correct: !e.correct, day: 1 };
          });
          const opts = eventBlockRows === undefined ? {} : { eventBlockRows };
          const firsts = await fullRun(events, opts);
          const all = await fullRun([...events, ...copies], opts);
          expect(firsts.reads).toBe(1);
          expect(all.reads).toBe(copies.length > 0 ? 2 : 1);
          expect(all.events).toBe(events.length);
          expect(all.state).toEqual(firsts.state);
          expect(all.scores).toEqual(firsts.scores);
        },
      ),
      // Two stores and two or three reads a run.
      { numRuns: 6 },
    );
  });

  it("two event ids of one key whose 32-bit hashes collide fold as two events (no second read); a real repeat in a key of more than 16 rows reads again", async () => {
    // e8913 and e185157: equal top 32 bits of DuckDB's hash(), the bits the read compares.
    const probe = await DuckStore.open(":memory:");
    const same = await probe.one<{ same: boolean }>(
      "SELECT hash('e8913') >> 32 = hash('e185157') >> 32 AND hash('e8913') <> hash('e185157') AS same",
    );
    probe.close();
    expect(same?.same, "the fixture's two ids no longer collide: find a new pair with DuckDB's hash()").toBe(
      true,
    );
    const key = (id: string, t: number, correct: boolean): Ev => ({
      id,
      student: "s1",
      topic: "t1",
      t,
      correct,
      day: 0,
    });
    const events = [
      key("e8913", 5, true),
      key("e185157", 9, false),
      ...Array.from({ length: 18 }, (_, i) => key(`x${i}`, 20 + i, i % 3 !== 0)),
      { ...key("y0", 3, true), topic: "t2" },
    ];
    // The incremental path always de-duplicates first: on a fresh store it folds every key from a new learner.
    const deduped = await fullRun(events, { full: false });
    for (const eventBlockRows of [undefined, 4]) {
      const opts = eventBlockRows === undefined ? {} : { eventBlockRows };
      const collided = await fullRun(events, opts);
      expect(collided.reads).toBe(1);
      expect(collided.events).toBe(21);
      expect(collided.state).toEqual(deduped.state);
      expect(collided.scores).toEqual(deduped.scores);
      const repeated = await fullRun([...events, { ...key("x7", 1, false), day: 1 }], opts);
      expect(repeated.reads).toBe(2);
      expect(repeated.state).toEqual(deduped.state);
      expect(repeated.scores).toEqual(deduped.scores);
    }
  });
});
