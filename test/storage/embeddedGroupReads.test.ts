import fc from "fast-check";
import { afterEach, describe, expect, it } from "vitest";
import { DuckAlertStore } from "../../storage/alertStore.ts";
import { DuckStore } from "../../storage/duckdb.ts";
import { DuckMasteryStore, type MasteryWrite } from "../../storage/masteryStore.ts";
import { baseTable } from "../../storage/servingTables.ts";
import { DuckStateStore, type KeyLoad } from "../../storage/stateStore.ts";
import { MAX_FILTERED_STUDENTS } from "../../storage/studentFilter.ts";
import { stateCommit } from "./learnerStateFixture.ts";

// The embedded POST /events group's reads (emb25): DuckStateStore.load reads states, revisions and seen ids in
// one statement filtered by the group's students; DuckMasteryStore.write skips its revision read for keys the
// same transaction's state commit moved; DuckAlertStore.candidates reads alert_state and student_context
// through the student filter. These pin that the answers are the ones of the reads they replace.

const score = (studentKey: string, topicId: string, rev: number, s: number): MasteryWrite => ({
  studentKey,
  topicId,
  rev,
  asOfUs: 1_767_600_000_000_000,
  scores: [{ source: "bkt", score: s, modelVersion: "default", explanation: "{}" }],
});

describe("the embedded group's reads", () => {
  let store: DuckStore | undefined;
  afterEach(() => store?.close());

  it("load: per key its state, revision and only its own asked event ids that its seen set holds", async () => {
    store = await DuckStore.open(":memory:");
    const states = await DuckStateStore.open(store);
    // e1 is an assignment's event id on two topics: only t1's state holds it.
    await states.commit([
      stateCommit("s1", "t1", 0, 0.3, ["e1", "e2"]),
      stateCommit("s2", "t1", 0, 0.6, ["e9"]),
    ]);
    await states.commit([stateCommit("s1", "t1", 1, 0.4, ["e3"])]);
    const loaded = await states.load([
      { studentKey: "s1", topicId: "t1", eventIds: ["e1", "e3", "e4"] },
      { studentKey: "s1", topicId: "t2", eventIds: ["e1"] },
      { studentKey: "s2", topicId: "t1", eventIds: [] },
    ]);
    expect(
      loaded.map((l) => [l.studentKey, l.topicId, l.rev, l.state?.pMastery ?? null, [...l.seen].sort()]),
    ).toEqual([
      ["s1", "t1", 2, 0.4, ["e1", "e3"]],
      ["s1", "t2", 0, null, []],
      ["s2", "t1", 1, 0.6, []],
    ]);
  });

  it("property: the filtered one-statement load equals the load of a group too big for the filter", async () => {
    store = await DuckStore.open(":memory:");
    const duck = store;
    const states = await DuckStateStore.open(duck);
    // Students beyond the filter's limit, each with one key: a load naming them reads without the student filter.
    const crowd: KeyLoad[] = Array.from({ length: MAX_FILTERED_STUDENTS + 1 }, (_, i) => ({
      studentKey: `crowd${i}`,
      topicId: "t0",
      eventIds: [],
    }));
    let run = 0;
    const student = fc.integer({ min: 0, max: 2 });
    const topic = fc.constantFrom("t0", "t1", "t2");
    const event = fc.constantFrom("a", "b", "c", "d");
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.record({ s: student, t: topic, events: fc.uniqueArray(event, { maxLength: 3 }) }), {
          maxLength: 6,
        }),
        fc.array(fc.record({ s: student, t: topic, events: fc.uniqueArray(event, { maxLength: 4 }) }), {
          minLength: 1,
          maxLength: 6,
        }),
        async (commits, asked) => {
          run++;
          const sk = (s: number) => `r${run}-s${s}`;
          // Commit in order, each from the key's current revision (a key may be committed several times).
          for (const c of commits) {
            const [cur] = await states.load([{ studentKey: sk(c.s), topicId: c.t, eventIds: [] }]);
            const ids = c.events.map((e) => `${run}-${e}`);
            await states.commit([stateCommit(sk(c.s), c.t, cur!.rev, 0.1 + cur!.rev / 10, ids)]);
          }
          const keys = new Map<string, KeyLoad>();
          for (const a of asked)
            keys.set(`${a.s}/${a.t}`, {
              studentKey: sk(a.s),
              topicId: a.t,
              eventIds: a.events.map((e) => `${run}-${e}`),
            });
          const group = [...keys.values()];
          const view = (l: Awaited<ReturnType<DuckStateStore["load"]>>[number]) => [
            l.studentKey,
            l.topicId,
            l.rev,
            l.state,
            [...l.seen].sort(),
          ];
          const filtered = (await states.load(group)).map(view);
          const whole = (await states.load([...group, ...crowd])).slice(0, group.length).map(view);
          expect(filtered).toEqual(whole);
        },
      ),
      { numRuns: 40, endOnFailure: true },
    );
  }, 120_000);

  it("mastery write after the transaction's state commit: written without a read, once; other revisions still compared", async () => {
    store = await DuckStore.open(":memory:");
    const duck = store;
    const states = await DuckStateStore.open(duck);
    const mastery = await DuckMasteryStore.open(duck);
    await duck.transaction(async () => {
      await states.load([{ studentKey: "s1", topicId: "t1", eventIds: ["e1"] }]);
      const [rev] = await states.commit([stateCommit("s1", "t1", 0, 0.3, ["e1"])]);
      expect(rev).toBe(1);
      expect(await mastery.write([score("s1", "t1", 1, 0.3)], 1_767_600_000_000_000)).toBe(1);
      // The same revision again in the same transaction: its score revision is 1 now, so nothing is written.
      expect(await mastery.write([score("s1", "t1", 1, 0.9)], 1_767_600_000_000_000)).toBe(0);
    });
    // A key this transaction did not commit is compared with its stored score revision (2 > 1: written; 1: not).
    await duck.transaction(async () => {
      expect(await mastery.write([score("s1", "t1", 1, 0.5)], 1_767_600_000_000_000)).toBe(0);
      expect(await mastery.write([score("s1", "t1", 2, 0.6)], 1_767_600_000_000_000)).toBe(1);
    });
    const history = await duck.all<{ mastery_score: number }>(
      "SELECT mastery_score FROM student_mastery_history ORDER BY mastery_score",
    );
    expect(history.map((h) => h.mastery_score)).toEqual([0.3, 0.6]);
    const served = await duck.all<{ mastery_score: number }>(
      "SELECT mastery_score FROM student_mastery WHERE student_key = 's1' AND topic_id = 't1'",
    );
    expect(served.map((s) => s.mastery_score)).toEqual([0.6]);
  });

  it("alert candidates: the checked keys' rows with their own alert state and their student's school and grade", async () => {
    store = await DuckStore.open(":memory:");
    const duck = store;
    const alerts = await DuckAlertStore.open(duck);
    await duck.run(
      `INSERT INTO ${baseTable("student_mastery")} (student_key, topic_id, mastery_score, score_source, model_version, as_of, explanation, last_updated)
       SELECT s, t, 0.5, 'bkt', 'default', TIMESTAMP '2026-01-05 10:00:00', '{}', TIMESTAMP '2026-01-05 10:00:00'
       FROM (VALUES ('s1'), ('s2')) a(s), (VALUES ('t1'), ('t2'), ('t3')) b(t)`,
    );
    await duck.run(
      `INSERT INTO alert_state VALUES ('s1', 't1', true, 2, TIMESTAMP '2026-01-05 10:00:00'),
         ('s1', 't3', false, 1, TIMESTAMP '2026-01-05 10:00:00'), ('s2', 't2', true, 5, TIMESTAMP '2026-01-05 10:00:00')`,
    );
    await duck.run(
      `INSERT INTO student_context VALUES ('s1', 'school-a', TIMESTAMP '2026-01-05 10:00:00', 7, TIMESTAMP '2026-01-05 10:00:00'),
         ('s2', 'school-b', TIMESTAMP '2026-01-05 10:00:00', 9, TIMESTAMP '2026-01-05 10:00:00')`,
    );
    const got = await alerts.candidates([
      { studentKey: "s1", topicId: "t1" },
      { studentKey: "s1", topicId: "t2" },
      { studentKey: "s2", topicId: "t1" },
    ]);
    expect(
      got
        .map((c) => [c.student_key, c.topic_id, c.below, c.crossings, c.school_id, c.grade])
        .sort((a, b) => String(a).localeCompare(String(b))),
    ).toEqual([
      ["s1", "t1", true, 2, "school-a", 7],
      ["s1", "t2", null, null, "school-a", 7],
      ["s2", "t1", null, null, "school-b", 9],
    ]);
  });
});
