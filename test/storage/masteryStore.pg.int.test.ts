import fc from "fast-check";
import { afterAll, beforeAll, describe, it } from "vitest";
import { PgMasteryStore } from "../../storage/masteryStore.ts";
import { PgStore } from "../../storage/postgres.ts";
import { batchesArb, checkStore } from "./masteryStoreProperty.ts";

/** The same property as masteryStore.property.test.ts, on the local PostgreSQL (own schema). */
const URL = process.env.MASTERY_TEST_PG_URL ?? "postgres://postgres@127.0.0.1:5432/test";
const SCHEMA = `rel_mastery_prop_${process.pid}`;
let pg: PgStore;
let store: PgMasteryStore;

beforeAll(async () => {
  pg = await PgStore.open(URL, { schema: SCHEMA });
  store = await PgMasteryStore.open(pg);
});
afterAll(async () => {
  await pg.run(`DROP SCHEMA IF EXISTS ${SCHEMA} CASCADE`);
  await pg.close();
});

describe("PgMasteryStore: any write sequence stores and re-reads", () => {
  it("scores of exactly 0 and 1, revisions up to 2^53 - 1, unicode ids: no throw, newest revision wins", async () => {
    await fc.assert(
      fc.asyncProperty(batchesArb(), async (batches) => {
        await pg.run("TRUNCATE student_mastery, student_mastery_history, student_mastery_rev");
        await checkStore(store, batches);
      }),
      { numRuns: 40 },
    );
  });
});
