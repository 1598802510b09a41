import fc from "fast-check";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CacheInvalidationPublisher } from "../../storage/cacheInvalidation.ts";
import { PgStore } from "../../storage/postgres.ts";
import {
  encodeSharedBody,
  newToken,
  SharedBodyStore,
  type SharedRead,
  sharedBodyKey,
} from "../../storage/sharedBodies.ts";

/**
 * The shared body cache's protocol against real Redis and PostgreSQL: writers commit a new version of a
 * student's row in PostgreSQL and then tombstone (CacheInvalidationPublisher.publishKeys) before they
 * acknowledge; readers read Redis (MGET), on a miss read PostgreSQL, then store what they built with the
 * compare-and-set. fast-check chooses the interleaving of every step of 2-3 readers and 1-2 writers;
 * after every step no body older than the newest acknowledged write may be readable from Redis.
 * The same schedules with a plain SET instead of the compare-and-set find a stale body: the property
 * can fail.
 */

const PG_URL = process.env.MASTERY_PG_URL ?? "postgres://postgres@127.0.0.1:5432/test";
const REDIS_URL = process.env.MASTERY_REDIS_URL ?? "redis://127.0.0.1:6379";
const TAG = `shared_bodies_${process.pid}`;
const FP = "fp1";
const TTL_MS = 60_000;

let pg: PgStore;
let store: SharedBodyStore;
let publisher: CacheInvalidationPublisher;
let raw: Redis;
let run = 0;

beforeAll(async () => {
  pg = await PgStore.open(PG_URL, { schema: TAG });
  await pg.run(
    "CREATE TABLE IF NOT EXISTS body_version (student_key VARCHAR PRIMARY KEY, v INTEGER NOT NULL)",
  );
  store = await SharedBodyStore.open(REDIS_URL, TAG);
  publisher = await CacheInvalidationPublisher.open(REDIS_URL, TAG);
  raw = new Redis(REDIS_URL);
});

afterAll(async () => {
  await pg?.dropSchema();
  await pg?.close();
  await store?.close();
  await publisher?.close();
  if (raw !== undefined) {
    let cursor = "0";
    do {
      const [next, keys] = await raw.scan(cursor, "MATCH", `${TAG}:*`, "COUNT", 1000);
      cursor = next;
      if (keys.length > 0) await raw.del(...keys);
    } while (cursor !== "0");
    raw.disconnect();
  }
});

const bodyOf = (v: number) => ({
  etag: `W/"v${v}"`,
  bornAtMs: Date.now(),
  meta: "[]",
  payload: Buffer.from(JSON.stringify({ version: v }), "utf8"),
});
const versionOf = (r: SharedRead): number | null =>
  r.kind === "hit" ? (JSON.parse(r.body.payload.toString("utf8")) as { version: number }).version : null;

interface World {
  sk: string;
  /** Newest version whose writer has acknowledged (its tombstone is in). */
  acked: number;
}

async function* writer(w: World): AsyncGenerator<void, void, void> {
  const row = await pg.one<{ v: number }>(
    "UPDATE body_version SET v = v + 1 WHERE student_key = $1 RETURNING v",
    [w.sk],
  );
  const v = Number(row?.v);
  yield; // committed, not yet invalidated
  await publisher.publishKeys([w.sk]);
  w.acked = Math.max(w.acked, v);
}

async function* reader(w: World, cas: boolean): AsyncGenerator<void, void, void> {
  const seen = await store.read(w.sk, FP);
  if (seen.kind === "hit") return;
  yield; // the MGET is done; now the database
  const row = await pg.one<{ v: number }>("SELECT v FROM body_version WHERE student_key = $1", [w.sk]);
  const v = Number(row?.v);
  yield; // built; now the store
  if (cas) await store.store(w.sk, seen, FP, bodyOf(v), TTL_MS);
  else
    await raw.set(
      sharedBodyKey(TAG, w.sk),
      encodeSharedBody(newToken("B"), seen.gen, FP, bodyOf(v)),
      "PX",
      TTL_MS,
    );
}

/** Runs the actors in the schedule's order; returns the first stale version found after a step (or null). */
async function play(roles: ("r" | "w")[], schedule: number[], cas: boolean): Promise<string | null> {
  const w: World = { sk: `s${++run}`, acked: 0 };
  await pg.run("INSERT INTO body_version VALUES ($1, 0)", [w.sk]);
  const actors: (AsyncGenerator<void, void, void> | null)[] = roles.map((r) =>
    r === "w" ? writer(w) : reader(w, cas),
  );
  const check = async (): Promise<string | null> => {
    const v = versionOf(await store.read(w.sk, FP));
    return v !== null && v < w.acked
      ? `Redis serves version ${v} after version ${w.acked} was acknowledged`
      : null;
  };
  let i = 0;
  while (actors.some((a) => a !== null)) {
    const live = actors.flatMap((a, k) => (a === null ? [] : [k]));
    const k = live[(schedule[i++ % schedule.length] ?? 0) % live.length] as number;
    const step = await (actors[k] as AsyncGenerator<void, void, void>).next();
    if (step.done) actors[k] = null;
    const stale = await check();
    if (stale !== null) return stale;
  }
  // And once everything is done: readers that come now see the newest version or build it.
  const last = await check();
  return last;
}

const rolesArb = fc.tuple(fc.integer({ min: 2, max: 3 }), fc.integer({ min: 1, max: 2 })).chain(([r, w]) =>
  fc.shuffledSubarray([...Array(r).fill("r"), ...Array(w).fill("w")] as ("r" | "w")[], {
    minLength: r + w,
    maxLength: r + w,
  }),
);

describe("shared body cache: a write racing a build (real Redis + PostgreSQL)", () => {
  it("never leaves a body older than an acknowledged write readable", async () => {
    await fc.assert(
      fc.asyncProperty(
        rolesArb,
        fc.array(fc.nat(7), { minLength: 1, maxLength: 24 }),
        async (roles, schedule) => {
          expect(await play(roles, schedule, true)).toBeNull();
        },
      ),
      { numRuns: 120 },
    );
  });

  it("the same schedules with a plain SET instead of the compare-and-set do leave one (the check can fail)", async () => {
    // Reader reads (miss), reads version 0, writer commits 1 and tombstones, reader stores 0.
    expect(await play(["r", "w"], [0, 0, 1, 1, 0], false)).toMatch(/serves version 0 after version 1/);
    expect(await play(["r", "w"], [0, 0, 1, 1, 0], true)).toBeNull();
    let found = 0;
    await fc.assert(
      fc.asyncProperty(
        rolesArb,
        fc.array(fc.nat(7), { minLength: 1, maxLength: 24 }),
        async (roles, schedule) => {
          if ((await play(roles, schedule, false)) !== null) found++;
        },
      ),
      { numRuns: 60 },
    );
    expect(found).toBeGreaterThan(0);
  });

  it("a bulk flush (publishAll) makes every earlier body a miss, and a build that read before it is not stored", async () => {
    const sk = `s${++run}`;
    const seen = await store.read(sk, FP);
    expect(seen.kind).toBe("miss");
    if (seen.kind !== "miss") return;
    expect(await store.store(sk, seen, FP, bodyOf(1), TTL_MS)).toBe(true);
    expect(versionOf(await store.read(sk, FP))).toBe(1);
    const sk2 = `s${++run}`;
    const seen2 = await store.read(sk2, FP);
    await publisher.publishAll();
    expect((await store.read(sk, FP)).kind).toBe("miss");
    if (seen2.kind !== "miss") throw new Error("expected a miss");
    expect(await store.store(sk2, seen2, FP, bodyOf(1), TTL_MS)).toBe(false);
    // A body of another fingerprint (another config) is a miss too.
    const again = await store.read(sk, FP);
    if (again.kind !== "miss") throw new Error("expected a miss");
    expect(await store.store(sk, again, FP, bodyOf(2), TTL_MS)).toBe(true);
    expect(versionOf(await store.read(sk, FP))).toBe(2);
    expect((await store.read(sk, "other-config")).kind).toBe("miss");
  });

  it("bodies expire with their TTL", async () => {
    const sk = `s${++run}`;
    const seen = await store.read(sk, FP);
    if (seen.kind !== "miss") throw new Error("expected a miss");
    expect(await store.store(sk, seen, FP, bodyOf(1), 50)).toBe(true);
    await new Promise((r) => setTimeout(r, 120));
    expect((await store.read(sk, FP)).kind).toBe("miss");
  });
});
