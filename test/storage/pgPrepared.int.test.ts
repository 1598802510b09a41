/**
 * PgStore.allPrepared (named prepared statements for the serving path's hot reads) against the real
 * PostgreSQL, own schema "serve2_prep_<pid>": the same rows as `all` for any key, each SQL text its own
 * statement on every pooled connection (answers never mixed up between texts), inside a transaction too.
 */
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PgStore } from "../../storage/postgres.ts";

const PG_URL = process.env.MASTERY_PG_URL ?? "postgres://postgres@127.0.0.1:5432/test";
const schema = `serve2_prep_${process.pid}`;
let pg: PgStore;

const BY_KEY = "SELECT k, v, at FROM prep_t WHERE k = $1 ORDER BY v";
const BY_KEY_AND_V = "SELECT v, k FROM prep_t WHERE k = $1 AND v >= $2 ORDER BY v DESC";

beforeAll(async () => {
  pg = await PgStore.open(PG_URL, { schema, poolMax: 3 });
  await pg.run("CREATE TABLE prep_t (k VARCHAR, v DOUBLE PRECISION, at TIMESTAMP)");
  await pg.run(
    `INSERT INTO prep_t SELECT 'k' || (i % 7), i / 4.0, TIMESTAMP '2026-01-05 10:00:00' + i * INTERVAL '1 minute'
       FROM generate_series(1, 200) i`,
  );
});
afterAll(async () => {
  await pg.run(`DROP SCHEMA ${schema} CASCADE`).catch(() => undefined);
  await pg.close();
});

describe("PgStore.allPrepared", () => {
  it("answers as `all` does, for two statements interleaved concurrently over the pool", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.integer({ min: 0, max: 8 }), fc.double({ min: 0, max: 60, noNaN: true })), {
          minLength: 1,
          maxLength: 12,
        }),
        async (asks) => {
          // Concurrent: several pooled connections each prepare both texts.
          const got = await Promise.all(
            asks.flatMap(([k, v]) => [
              pg.allPrepared(BY_KEY, [`k${k}`]),
              pg.allPrepared(BY_KEY_AND_V, [`k${k}`, v]),
            ]),
          );
          const want = await Promise.all(
            asks.flatMap(([k, v]) => [pg.all(BY_KEY, [`k${k}`]), pg.all(BY_KEY_AND_V, [`k${k}`, v])]),
          );
          expect(got).toEqual(want);
        },
      ),
      { numRuns: 20 },
    );
    // Known answer: k3 holds i = 3, 10, ..., 199 (29 rows), v = i / 4, timestamps as Dates in UTC.
    const k3 = await pg.allPrepared<{ k: string; v: number; at: Date }>(BY_KEY, ["k3"]);
    expect(k3).toHaveLength(29);
    expect(k3[0]).toEqual({ k: "k3", v: 0.75, at: new Date("2026-01-05T10:03:00Z") });
    expect(await pg.allPrepared(BY_KEY, ["nobody"])).toEqual([]);
  });

  it("inside a transaction, on the transaction's connection (sees its uncommitted rows)", async () => {
    await pg
      .transaction(async () => {
        await pg.run("INSERT INTO prep_t VALUES ('tx', 1, NULL)");
        expect(await pg.allPrepared(BY_KEY, ["tx"])).toEqual([{ k: "tx", v: 1, at: null }]);
        throw new Error("roll back");
      })
      .catch((e: Error) => expect(e.message).toBe("roll back"));
    expect(await pg.allPrepared(BY_KEY, ["tx"])).toEqual([]);
  });
});
