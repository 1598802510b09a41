import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import { DuckAlertStore } from "../../storage/alertStore.ts";
import { DuckStore } from "../../storage/duckdb.ts";
import { listValue } from "../../storage/duckdbApi.ts";
import { DuckMasteryStore } from "../../storage/masteryStore.ts";
import { DuckRawEventStore } from "../../storage/rawEventStore.ts";
import { compactServingTables } from "../../storage/servingTables.ts";
import { DuckStateStore, type StoredLearnerState } from "../../storage/stateStore.ts";
import { MAX_FILTERED_STUDENTS, studentFilter } from "../../storage/studentFilter.ts";
import { rawEventRow } from "./rawEventRowFixture.ts";

const stores: DuckStore[] = [];
afterAll(() => {
  for (const s of stores) s.close();
});

function stateOf(n: number): StoredLearnerState {
  return {
    pMastery: (n % 97) / 97,
    pUnknown: 1 - (n % 97) / 97,
    bktN: n,
    eloAbility: n / 7,
    eloN: n,
    correctN: n,
    correctStreak: n % 5,
    lastTs: 1_700_000_000_000_000 + n,
    lastEventId: `e${n}`,
    eventN: n,
    bktCorrectDelta: 0,
    bktIncorrectDelta: 0,
    bktLearnDelta: 0,
    bktStreakObsDelta: 0,
    bktStreakLearnDelta: 0,
    eloCorrectDelta: 0,
    eloIncorrectDelta: 0,
    eloStreakDelta: 0,
    bktModelVersion: "b",
    eloModelVersion: "e",
    latent: null,
    latentModelVersion: null,
  };
}

const student = fc.integer({ min: 0, max: 79 }).map((i) => `s${i}`);
const topic = fc.integer({ min: 0, max: 3 }).map((i) => `t${i}`);
const key = fc.record({ studentKey: student, topicId: topic });
/** One write step: commit these keys (their states, scores and raw events), then maybe fold the deltas into the bases. */
const step = fc.record({
  keys: fc.uniqueArray(key, { selector: (k) => `${k.studentKey}/${k.topicId}`, maxLength: 8 }),
  compact: fc.boolean(),
});
/** A read: a few keys (students of few or, past MAX_FILTERED_STUDENTS, of many). */
const read = fc.oneof(
  fc.array(key, { minLength: 1, maxLength: 12 }),
  fc.array(key, { minLength: MAX_FILTERED_STUDENTS + 1, maxLength: 120 }),
);

let shared: Promise<{
  duck: DuckStore;
  states: DuckStateStore;
  raw: DuckRawEventStore;
  mastery: DuckMasteryStore;
  alerts: DuckAlertStore;
}> | null = null;
function opened() {
  shared ??= (async () => {
    const duck = await DuckStore.open(":memory:");
    stores.push(duck);
    return {
      duck,
      states: await DuckStateStore.open(duck),
      raw: await DuckRawEventStore.open(duck),
      mastery: await DuckMasteryStore.open(duck),
      alerts: await DuckAlertStore.open(duck),
    };
  })();
  return shared;
}

describe("keyed reads with the redundant student filter (storage/studentFilter.ts)", () => {
  it("the filter names each distinct student once, and none past the limit", () => {
    expect(studentFilter("c", ["a", "b", "a"], 3)).toEqual({ sql: "c IN ($3, $4)", params: ["a", "b"] });
    expect(studentFilter("c", [], 1)).toEqual({ sql: "TRUE", params: [] });
    const many = Array.from({ length: MAX_FILTERED_STUDENTS + 1 }, (_, i) => `s${i}`);
    expect(studentFilter("c", many, 1)).toEqual({ sql: "TRUE", params: [] });
    expect(studentFilter("c", many.slice(1), 1).params).toHaveLength(MAX_FILTERED_STUDENTS);
  });

  it("property: state loads, key events and alert candidates equal the model / the unfiltered SQL, base and delta rows alike", async () => {
    let run = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.array(step, { minLength: 1, maxLength: 4 }),
        fc.array(read, { minLength: 1, maxLength: 3 }),
        async (rawSteps, rawReads) => {
          run++;
          // One file for every run (opening one costs ~1 s); each run's students are its own.
          const { duck, states, raw, mastery, alerts } = await opened();
          const steps = rawSteps.map((st) => ({
            ...st,
            keys: st.keys.map((k) => ({ ...k, studentKey: `${run}-${k.studentKey}` })),
          }));
          const reads = rawReads.map((ks) => ks.map((k) => ({ ...k, studentKey: `${run}-${k.studentKey}` })));
          // The model: per key its newest state, revision and processed ids.
          const model = new Map<string, { rev: number; state: StoredLearnerState; seen: Set<string> }>();
          let n = 0;
          for (const s of steps) {
            const commits = s.keys.map((k) => {
              const id = `${k.studentKey}/${k.topicId}`;
              n++;
              return { ...k, id, n, eventId: `r${run}-${n}`, expectedRev: model.get(id)?.rev ?? 0 };
            });
            await raw.record(
              commits.map((c) =>
                rawEventRow({
                  event_id: c.eventId,
                  type: "quiz_attempt",
                  student_key: c.studentKey,
                  topic_id: c.topicId,
                  ts_us: 1_700_000_000_000_000 + c.n,
                  ingested_at_us: 1_700_000_000_000_000,
                }),
              ),
            );
            const revs = await states.commit(
              commits.map((c) => ({
                studentKey: c.studentKey,
                topicId: c.topicId,
                expectedRev: c.expectedRev,
                state: stateOf(c.n),
                processed: [c.eventId],
                updatedAtUs: 1_700_000_000_000_000,
              })),
            );
            expect(revs).toEqual(commits.map((c) => c.expectedRev + 1));
            await mastery.write(
              commits.map((c) => ({
                studentKey: c.studentKey,
                topicId: c.topicId,
                rev: c.expectedRev + 1,
                asOfUs: 1_700_000_000_000_000 + c.n,
                scores: [{ source: "bkt", score: (c.n % 10) / 10, modelVersion: "b", explanation: "{}" }],
              })),
              1_700_000_000_000_000,
            );
            for (const c of commits) {
              const seen = model.get(c.id)?.seen ?? new Set<string>();
              seen.add(c.eventId);
              model.set(c.id, { rev: c.expectedRev + 1, state: stateOf(c.n), seen });
            }
            if (s.compact) await compactServingTables(duck);
          }
          for (const keys of reads) {
            const allIds = [...model.values()].flatMap((m) => [...m.seen]);
            const loaded = await states.load(keys.map((k) => ({ ...k, eventIds: [...allIds, "none"] })));
            loaded.forEach((l, i) => {
              const m = model.get(`${keys[i]!.studentKey}/${keys[i]!.topicId}`);
              expect(l.rev).toBe(m?.rev ?? 0);
              expect(l.state).toEqual(m?.state ?? null);
              expect([...l.seen].sort()).toEqual([...(m?.seen ?? [])].sort());
            });
            const lists = [listValue(keys.map((k) => k.studentKey)), listValue(keys.map((k) => k.topicId))];
            const keyJoin =
              "JOIN (SELECT DISTINCT unnest($1::VARCHAR[]) AS student_key, unnest($2::VARCHAR[]) AS topic_id) k USING (student_key, topic_id)";
            const events = await raw.keyEvents(keys);
            const wantEvents = await duck.all(
              `SELECT event_id, student_key, topic_id FROM raw_events ${keyJoin} ORDER BY student_key, topic_id, ts, event_id`,
              lists,
            );
            expect(
              events.map((e) => ({ event_id: e.event_id, student_key: e.student_key, topic_id: e.topic_id })),
            ).toEqual(wantEvents);
            const cands = await alerts.candidates(keys);
            const wantCands = await duck.all<{
              student_key: string;
              topic_id: string;
              mastery_score: number;
            }>(`SELECT student_key, topic_id, mastery_score FROM student_mastery ${keyJoin}`, lists);
            const order = (r: { student_key: string; topic_id: string }) => `${r.student_key}/${r.topic_id}`;
            const pick = (rs: { student_key: string; topic_id: string; mastery_score: number }[]) =>
              rs
                .map((r) => ({
                  student_key: r.student_key,
                  topic_id: r.topic_id,
                  mastery_score: r.mastery_score,
                }))
                .sort((a, b) => (order(a) < order(b) ? -1 : 1));
            expect(pick(cands)).toEqual(pick(wantCands));
            expect(cands.length).toBe(
              new Set(
                keys
                  .filter((k) => model.has(`${k.studentKey}/${k.topicId}`))
                  .map((k) => `${k.studentKey}/${k.topicId}`),
              ).size,
            );
          }
        },
      ),
      { numRuns: 15, endOnFailure: true },
    );
  });
});
