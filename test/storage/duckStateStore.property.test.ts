import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import { DuckStore } from "../../storage/duckdb.ts";
import { DuckStateStore, type StoredLearnerState } from "../../storage/stateStore.ts";

const stores: DuckStore[] = [];
afterAll(() => {
  for (const s of stores) s.close();
});

const dbl = fc.double({ noNaN: true, noDefaultInfinity: true, min: -1e6, max: 1e6 });
const count = fc.integer({ min: 0, max: 2 ** 31 - 1 });
const state: fc.Arbitrary<StoredLearnerState> = fc.record({
  pMastery: fc.oneof(fc.constant(0), fc.constant(1), fc.double({ min: 0, max: 1, noNaN: true })),
  pUnknown: fc.oneof(fc.constant(0), fc.double({ min: 0, max: 1, noNaN: true })),
  bktN: count,
  eloAbility: dbl,
  eloN: count,
  correctN: count,
  correctStreak: count,
  // Whole microseconds 1970..2100, or none.
  lastTs: fc.option(fc.integer({ min: 0, max: 4_102_444_800_000_000 }), { nil: null }),
  lastEventId: fc.option(fc.string({ maxLength: 12 }), { nil: null }),
  eventN: fc.integer({ min: -1, max: 2 ** 31 - 1 }),
  bktCorrectDelta: dbl,
  bktIncorrectDelta: dbl,
  bktLearnDelta: dbl,
  bktStreakObsDelta: dbl,
  bktStreakLearnDelta: dbl,
  eloCorrectDelta: dbl,
  eloIncorrectDelta: dbl,
  eloStreakDelta: dbl,
  bktModelVersion: fc.string({ minLength: 1, maxLength: 8 }),
  eloModelVersion: fc.string({ minLength: 1, maxLength: 8 }),
  // The latent filter's encoded state (any bytes, the empty blob included) and its model version, or none.
  latent: fc.option(fc.uint8Array({ maxLength: 300 }), { nil: null }),
  latentModelVersion: fc.option(fc.string({ minLength: 1, maxLength: 8 }), { nil: null }),
  rule: fc.option(fc.uint8Array({ maxLength: 120 }), { nil: null }),
  ruleModelVersion: fc.option(fc.string({ minLength: 1, maxLength: 8 }), { nil: null }),
});

describe("DuckStateStore commit (one INSERT of typed column lists)", () => {
  it("property: loads back exactly the committed states (every double to the bit, -0 included; NULLs), revision + 1 each commit", async () => {
    const store = await DuckStore.open(":memory:");
    stores.push(store);
    const states = await DuckStateStore.open(store);
    let batch = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(state, { minLength: 1, maxLength: 6 }), async (ss) => {
        batch++;
        const keys = ss.map((_, i) => ({ studentKey: `s${batch}`, topicId: `t${i}` }));
        const revs = await states.commit(
          ss.map((s, i) => ({
            ...keys[i]!,
            expectedRev: 0,
            state: s,
            processed: [`e${batch}-${i}`],
            updatedAtUs: 1_700_000_000_000_000,
          })),
        );
        expect(revs).toEqual(ss.map(() => 1));
        const loaded = await states.load(
          keys.map((k, i) => ({ ...k, eventIds: [`e${batch}-${i}`, "other"] })),
        );
        for (let i = 0; i < ss.length; i++) {
          expect(loaded[i]!.state).toEqual(ss[i]);
          expect(loaded[i]!.rev).toBe(1);
          expect([...loaded[i]!.seen]).toEqual([`e${batch}-${i}`]);
        }
      }),
      { numRuns: 40 },
    );
  });
});
