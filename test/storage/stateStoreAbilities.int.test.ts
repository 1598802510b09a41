import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DuckStore } from "../../storage/duckdb.ts";
import {
  DuckStateStore,
  RedisStateStore,
  type StateStore,
  type StoredLearnerState,
} from "../../storage/stateStore.ts";

const REDIS_URL = process.env.MASTERY_REDIS_URL ?? "redis://127.0.0.1:6379";

const state = (eloAbility: number): StoredLearnerState => ({
  pMastery: 0.4,
  pUnknown: 0.6,
  bktN: 3,
  eloAbility,
  eloN: 3,
  correctN: 2,
  correctStreak: 1,
  lastTs: 1_767_600_000_000_000,
  lastEventId: "e1",
  eventN: 3,
  bktCorrectDelta: 0.1,
  bktIncorrectDelta: -0.2,
  bktLearnDelta: 0.05,
  bktStreakObsDelta: 0,
  bktStreakLearnDelta: 0,
  eloCorrectDelta: 0.3,
  eloIncorrectDelta: -0.1,
  eloStreakDelta: 0,
  bktModelVersion: "default",
  eloModelVersion: "default",
});

// A fresh pair of students for every property run (keys never reused across runs).
let runSeq = 0;

const TOPICS = ["T0", "T1", "T2", "T3", "T4", "T5"];

/**
 * eloAbilities (GET /recommendations' read) must give what load() gives for the same keys: each
 * committed key's eloAbility, keys never committed absent, other students' keys not mixed in.
 */
async function checkAgainstLoad(store: StateStore, run: string): Promise<void> {
  await fc.assert(
    fc.asyncProperty(
      fc.array(
        fc.record({
          student: fc.constantFrom("a", "b"),
          topic: fc.constantFrom(...TOPICS),
          ability: fc.double({ min: -4, max: 4, noNaN: true }),
        }),
        { maxLength: 12 },
      ),
      fc.subarray(TOPICS),
      async (writes, asked) => {
        runSeq += 1;
        const sk = (s: string) => `${run}-${runSeq}-${s}`;
        const keys = { a: sk("a"), b: sk("b") };
        for (const w of writes) {
          const studentKey = keys[w.student as "a" | "b"];
          const [loaded] = await store.load([{ studentKey, topicId: w.topic, eventIds: [] }]);
          await store.commit([
            {
              studentKey,
              topicId: w.topic,
              expectedRev: loaded?.rev ?? 0,
              state: state(w.ability),
              processed: [],
              updatedAtUs: 1,
            },
          ]);
        }
        const got = await store.eloAbilities(keys.a, asked);
        const loaded = await store.load(
          asked.map((topicId) => ({ studentKey: keys.a, topicId, eventIds: [] })),
        );
        const want = new Map<string, number>();
        for (const k of loaded) if (k.state !== null) want.set(k.topicId, k.state.eloAbility);
        expect(got).toEqual(want);
        // Known answer: the last write of each of student a's asked topics. Redis keeps a number as its decimal
        // text, which has no -0 (String(-0) is "0"): the sign of a zero ability is not kept there, so zeros
        // compare as +0 (x + 0 turns -0 into +0 and leaves every other value as it is).
        const last = new Map<string, number>();
        for (const w of writes)
          if (w.student === "a" && asked.includes(w.topic)) last.set(w.topic, w.ability + 0);
        expect(new Map([...got].map(([t, v]) => [t, v + 0]))).toEqual(last);
      },
    ),
    { numRuns: 25 },
  );
}

describe("StateStore.eloAbilities", () => {
  let redis: RedisStateStore;
  const prefix = `serve2_abil_${process.pid}`;
  beforeAll(async () => {
    redis = await RedisStateStore.open(REDIS_URL, prefix);
  });
  afterAll(async () => {
    const { Redis } = await import("ioredis");
    const r = new Redis(REDIS_URL);
    const keys = await r.keys(`${prefix}:*`);
    for (let i = 0; i < keys.length; i += 500) await r.del(...keys.slice(i, i + 500));
    r.disconnect();
    await redis.close();
  });

  it("Redis: equals the eloAbility of load() for the asked topics (absent when never committed)", async () => {
    await checkAgainstLoad(redis, "r");
  });

  it("DuckDB: equals the eloAbility of load() for the asked topics (absent when never committed)", async () => {
    const duck = await DuckStore.open(":memory:");
    try {
      await checkAgainstLoad(await DuckStateStore.open(duck), "d");
    } finally {
      await duck.close();
    }
  });
});
