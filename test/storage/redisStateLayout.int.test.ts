import fc from "fast-check";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  RedisStateStore,
  redisStateLayoutFromEnv,
  type StateCommit,
  type StoredLearnerState,
} from "../../storage/stateStore.ts";

const REDIS_URL = process.env.MASTERY_REDIS_URL ?? "redis://127.0.0.1:6379";

const num = fc.oneof(
  fc.double({ noNaN: false }),
  fc.constantFrom(0, 1, -1, 0.1 + 0.2, Number.MAX_VALUE, Number.MIN_VALUE, 2 ** 53 - 1),
);
const text = fc.oneof(fc.string(), fc.constantFrom("", "a,b\nc", '"\\', "\t", "é\u2028"));

const stateArb: fc.Arbitrary<StoredLearnerState> = fc.record({
  pMastery: num,
  pUnknown: num,
  bktN: fc.integer(),
  eloAbility: num,
  eloN: fc.integer(),
  correctN: fc.integer(),
  correctStreak: fc.integer(),
  lastTs: fc.option(fc.integer({ min: 0, max: 2 ** 52 }), { nil: null }),
  lastEventId: fc.option(text, { nil: null }),
  eventN: fc.integer({ min: -1, max: 10_000 }),
  bktCorrectDelta: num,
  bktIncorrectDelta: num,
  bktLearnDelta: num,
  bktStreakObsDelta: num,
  bktStreakLearnDelta: num,
  eloCorrectDelta: num,
  eloIncorrectDelta: num,
  eloStreakDelta: num,
  bktModelVersion: text,
  eloModelVersion: text,
  latent: fc.option(fc.uint8Array({ maxLength: 40 }), { nil: null }),
  latentModelVersion: fc.option(fc.string({ minLength: 1 }), { nil: null }),
  rule: fc.option(fc.uint8Array({ maxLength: 120 }), { nil: null }),
  ruleModelVersion: fc.option(fc.string({ minLength: 1 }), { nil: null }),
});

/**
 * What either layout keeps: a double as its decimal text (String), so -0 reads back as 0; no latent bytes
 * and no latent version are both "none" (null), as are no rule bytes and no rule version.
 */
const asStored = (s: StoredLearnerState): StoredLearnerState => {
  const out = { ...s } as Record<string, unknown>;
  for (const [k, v] of Object.entries(out)) if (typeof v === "number") out[k] = Number(String(v));
  if (s.latent?.length === 0) out.latent = null;
  if (s.latentModelVersion === "") out.latentModelVersion = null;
  if (s.rule?.length === 0) out.rule = null;
  if (s.ruleModelVersion === "") out.ruleModelVersion = null;
  return out as unknown as StoredLearnerState;
};

let seq = 0;

describe("RedisStateStore layouts: packed (default) and fields (the layout of older versions)", () => {
  const prefix = `serve12_layout_${process.pid}`;
  let packed: RedisStateStore;
  let fields: RedisStateStore;
  beforeAll(async () => {
    packed = await RedisStateStore.open(REDIS_URL, prefix, { layout: "packed" });
    fields = await RedisStateStore.open(REDIS_URL, prefix, { layout: "fields" });
  });
  afterAll(async () => {
    await packed.clear();
    await packed.close();
    await fields.close();
  });

  const commit = async (store: RedisStateStore, key: string, state: StoredLearnerState, ids: string[]) => {
    const [loaded] = await store.load([{ studentKey: key, topicId: "T", eventIds: [] }]);
    const c: StateCommit = {
      studentKey: key,
      topicId: "T",
      expectedRev: loaded?.rev ?? 0,
      state,
      processed: ids,
      updatedAtUs: 7,
    };
    return (await store.commit([c]))[0];
  };

  it("property: any sequence of writes by either layout reads back the last state, revision and seen ids from both, in load() and all()", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.constantFrom("packed", "fields"), stateArb, fc.array(text, { maxLength: 3 })), {
          minLength: 1,
          maxLength: 5,
        }),
        async (writes) => {
          const key = `k${++seq}\n,"é`;
          const ids: string[] = [];
          let rev = 0;
          for (const [layout, state, processed] of writes) {
            const got = await commit(layout === "packed" ? packed : fields, key, state, processed);
            rev += 1;
            expect(got).toBe(rev);
            ids.push(...processed);
          }
          const last = asStored(writes[writes.length - 1]![1]);
          for (const store of [packed, fields]) {
            const [k] = await store.load([{ studentKey: key, topicId: "T", eventIds: [...ids, "never"] }]);
            expect(k!.rev).toBe(rev);
            expect(k!.state).toEqual(last);
            expect(k!.seen).toEqual(new Set(ids));
            expect(await store.eloAbilities(key, ["T", "U"])).toEqual(new Map([["T", last.eloAbility]]));
          }
        },
      ),
      { numRuns: 60 },
    );
    const all = await packed.all();
    expect(all.length).toBe(seq);
    for (const e of all) expect(e.topicId).toBe("T");
  });

  it("load() in one command per key: 2,500 ids (three SMISMEMBER chunks in the script) flag exactly the processed ones, in order; keys without state or ids", async () => {
    const key = `many${++seq}`;
    const s = asStored(fc.sample(stateArb, { numRuns: 1, seed: 5 })[0]!);
    const processed = Array.from({ length: 1_200 }, (_, i) => `p${i * 2}`);
    expect(await commit(packed, key, s, processed)).toBe(1);
    // Asked: every id 0..2,499 (even ones below 2,400 are processed), interleaved with unknown ones.
    const asked = Array.from({ length: 2_500 }, (_, i) => `p${i}`);
    const [k, none, noIds] = await packed.load([
      { studentKey: key, topicId: "T", eventIds: asked },
      { studentKey: `${key}-absent`, topicId: "T", eventIds: ["p0"] },
      { studentKey: key, topicId: "T", eventIds: [] },
    ]);
    expect(k!.seen).toEqual(new Set(processed));
    expect(k!.state).toEqual(s);
    expect(k!.rev).toBe(1);
    expect(none).toMatchObject({ rev: 0, state: null, seen: new Set() });
    expect(noIds!.state).toEqual(s);
    expect(noIds!.seen).toEqual(new Set());
  });

  it("a stale commit (revision moved) writes nothing in either layout", async () => {
    const key = `stale${++seq}`;
    const s = asStored(fc.sample(stateArb, { numRuns: 1, seed: 3 })[0]!);
    expect(await commit(packed, key, s, ["e1"])).toBe(1);
    for (const store of [packed, fields]) {
      const c: StateCommit = {
        studentKey: key,
        topicId: "T",
        expectedRev: 0,
        state: { ...s, pMastery: 0.123 },
        processed: ["e2"],
        updatedAtUs: 1,
      };
      expect(await store.commit([c])).toEqual([null]);
    }
    const [k] = await packed.load([{ studentKey: key, topicId: "T", eventIds: ["e1", "e2"] }]);
    expect(k!.state).toEqual(s);
    expect(k!.seen).toEqual(new Set(["e1"]));
  });

  it("known answer: a packed key has rev, s and eloAbility only; the first packed write drops an older writer's fields", async () => {
    const key = `shape${++seq}`;
    const s = asStored(fc.sample(stateArb, { numRuns: 1, seed: 5 })[0]!);
    await commit(fields, key, s, []);
    const r = new Redis(REDIS_URL);
    try {
      const hashKey = `${prefix}:ls:{${key}:T}`;
      expect((await r.hkeys(hashKey)).length).toBe(29);
      await commit(packed, key, { ...s, eloAbility: 1.5 }, []);
      expect((await r.hkeys(hashKey)).sort()).toEqual(["eloAbility", "rev", "s"]);
      expect(await r.hget(hashKey, "eloAbility")).toBe("1.5");
      expect((await r.hget(hashKey, "s"))?.startsWith("2\n")).toBe(true);
    } finally {
      r.disconnect();
    }
  });

  it("MASTERY_REDIS_STATE_LAYOUT: packed by default, fields on request, anything else named as wrong", () => {
    expect(redisStateLayoutFromEnv({})).toBe("packed");
    expect(redisStateLayoutFromEnv({ MASTERY_REDIS_STATE_LAYOUT: "fields" })).toBe("fields");
    expect(() => redisStateLayoutFromEnv({ MASTERY_REDIS_STATE_LAYOUT: "json" })).toThrow(
      /MASTERY_REDIS_STATE_LAYOUT=json must be "packed" \(default\) or "fields"/,
    );
  });
});
