import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import { DuckStore } from "../../storage/duckdb.ts";
import { compactServingTables } from "../../storage/servingTables.ts";
import { DuckStateStore, type StoredLearnerState } from "../../storage/stateStore.ts";
import { MAX_FILTERED_STUDENTS, studentFilter } from "../../storage/studentFilter.ts";

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
    rule: null,
    ruleModelVersion: null,
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
}> | null = null;
function opened() {
  shared ??= (async () => {
    const duck = await DuckStore.open(":memory:");
    stores.push(duck);
    return {
      duck,
      states: await DuckStateStore.open(duck),
    };
  })();
  return shared;
}

describe("DuckStateStore.load: the students filter the revision scans (storage/studentFilter.ts, storage/revisionTable.ts)", () => {
  it("the filter names each distinct student once, and none past the limit", () => {
    expect(studentFilter("c", ["a", "b", "a"], 3)).toEqual({ sql: "c IN ($3, $4)", params: ["a", "b"] });
    expect(studentFilter("c", [], 1)).toEqual({ sql: "TRUE", params: [] });
    const many = Array.from({ length: MAX_FILTERED_STUDENTS + 1 }, (_, i) => `s${i}`);
    expect(studentFilter("c", many, 1)).toEqual({ sql: "TRUE", params: [] });
    expect(studentFilter("c", many.slice(1), 1).params).toHaveLength(MAX_FILTERED_STUDENTS);
  });

  it("property: state loads (state, revision, processed ids) equal the model, base and delta rows alike, few students or many", async () => {
    let run = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.array(step, { minLength: 1, maxLength: 4 }),
        fc.array(read, { minLength: 1, maxLength: 3 }),
        async (rawSteps, rawReads) => {
          run++;
          // One file for every run (opening one costs ~1 s); each run's students are its own.
          const { duck, states } = await opened();
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
            for (const c of commits) {
              const seen = model.get(c.id)?.seen ?? new Set<string>();
              seen.add(c.eventId);
              model.set(c.id, { rev: c.expectedRev + 1, state: stateOf(c.n), seen });
            }
            if (s.compact) await compactServingTables(duck);
          }
          // The view's newest row per key (SQL: window over the delta, anti-join with the base), for the
          // load's newest revision picked in JS (storage/revisionTable.ts).
          const viewed = new Map((await states.all()).map((e) => [`${e.studentKey}/${e.topicId}`, e]));
          for (const keys of reads) {
            const allIds = [...model.values()].flatMap((m) => [...m.seen]);
            // Every key twice (a group with two events of one key asks for it twice).
            const asked = [...keys, ...keys];
            const loaded = await states.load(asked.map((k) => ({ ...k, eventIds: [...allIds, "none"] })));
            expect(loaded).toHaveLength(asked.length);
            loaded.forEach((l, i) => {
              const id = `${asked[i]!.studentKey}/${asked[i]!.topicId}`;
              const m = model.get(id);
              expect([l.studentKey, l.topicId]).toEqual([asked[i]!.studentKey, asked[i]!.topicId]);
              expect(l.rev).toBe(m?.rev ?? 0);
              expect(l.state).toEqual(m?.state ?? null);
              expect(l.state).toEqual(viewed.get(id)?.state ?? null);
              expect([...l.seen].sort()).toEqual([...(m?.seen ?? [])].sort());
            });
          }
        },
      ),
      { numRuns: 15, endOnFailure: true },
    );
  }, 240_000);
});
