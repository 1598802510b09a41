import fc from "fast-check";
import { afterAll, beforeAll, describe, it } from "vitest";
import { DuckStore } from "../../storage/duckdb.ts";
import { DuckMasteryStore } from "../../storage/masteryStore.ts";
import { batchesArb, checkStore } from "./masteryStoreProperty.ts";

let duck: DuckStore;
let store: DuckMasteryStore;
beforeAll(async () => {
  duck = await DuckStore.open(":memory:");
  store = await DuckMasteryStore.open(duck);
});
afterAll(() => duck.close());

describe("DuckMasteryStore (the embedded store): any write sequence stores and re-reads", () => {
  it("scores of exactly 0 and 1 first, revisions up to 2^53 - 1, unicode ids: no throw, newest revision wins", async () => {
    await fc.assert(
      fc.asyncProperty(batchesArb(), async (batches) => {
        for (const t of [
          "student_mastery_base",
          "student_mastery_delta",
          "student_mastery_history",
          "student_mastery_rev",
        ])
          await duck.run(`DELETE FROM ${t}`);
        await checkStore(store, batches);
      }),
      { numRuns: 20 },
    );
  });
});
