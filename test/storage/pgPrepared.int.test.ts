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

  it("arraysPrepared: the same values as `all`, as arrays in the SELECT's column order", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.integer({ min: 0, max: 8 }), { minLength: 1, maxLength: 10 }),
        async (ks) => {
          // Concurrently with allPrepared of the same text (one statement name, rows shaped per call).
          const got = await Promise.all(
            ks.flatMap((k) => [pg.arraysPrepared(BY_KEY, [`k${k}`]), pg.allPrepared(BY_KEY, [`k${k}`])]),
          );
          const want = await Promise.all(
            ks.map((k) => pg.all<{ k: string; v: number; at: Date }>(BY_KEY, [`k${k}`])),
          );
          ks.forEach((_, i) => {
            expect(got[2 * i]).toEqual(want[i]!.map((r) => [r.k, r.v, r.at]));
            expect(got[2 * i + 1]).toEqual(want[i]);
          });
        },
      ),
      { numRuns: 20 },
    );
    // Known answers: k3's v >= 48 are i = 192 and 199 (i = 3 mod 7), newest first.
    expect(await pg.arraysPrepared(BY_KEY_AND_V, ["k3", 48])).toEqual([
      [49.75, "k3"],
      [48, "k3"],
    ]);
    expect((await pg.arraysPrepared(BY_KEY, ["k3"]))[0]).toEqual([
      "k3",
      0.75,
      new Date("2026-01-05T10:03:00Z"),
    ]);
    await pg
      .transaction(async () => {
        await pg.run("INSERT INTO prep_t VALUES ('tx2', 2, NULL)");
        expect(await pg.arraysPrepared(BY_KEY, ["tx2"])).toEqual([["tx2", 2, null]]);
        throw new Error("roll back");
      })
      .catch((e: Error) => expect(e.message).toBe("roll back"));
    expect(await pg.arraysPrepared(BY_KEY, ["tx2"])).toEqual([]);
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
