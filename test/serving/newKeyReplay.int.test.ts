import { afterAll, describe, expect, it } from "vitest";
import { recompute } from "../../serving/recompute.ts";
import type { StreamStores } from "../../serving/streamStores.ts";
import type { RawEventStore } from "../../storage/rawEventStore.ts";
import { generateStreamEvents } from "./streamEvents.ts";
import { DEFAULT_MODELS, fixtureClock, runId, serviceStores } from "./streamHarness.ts";

/**
 * A key new to the raw zone is rebuilt from the batch's own rows (serving/updater.ts): the raw append
 * (PgRawEventStore.recordWithNewKeys) says which keys held no stored event before it, and those keys'
 * stored events are not read back. These tests run on real PostgreSQL + Redis.
 */

const NOW_US = Date.UTC(2026, 2, 1) * 1000;
const { rows, newUpdater, applyInBatches } = fixtureClock(NOW_US);

const quiz = (id: string, student: string, topic: string, minute: number) => ({
  event_id: id,
  type: "quiz_attempt",
  student_id: student,
  topic_id: topic,
  timestamp: new Date(Date.UTC(2026, 0, 5, 10, minute)).toISOString(),
  question_id: "q1",
  is_correct: minute % 2 === 0,
});

/** The same PostgreSQL raw store without recordWithNewKeys: every replay reads its key's events back. */
function readingBack(raw: RawEventStore): RawEventStore {
  return {
    record: (r) => raw.record(r),
    keyEvents: (k) => raw.keyEvents(k),
    allEvents: () => raw.allEvents(),
    deadLetter: (r) => raw.deadLetter(r),
  };
}

const byKey = (x: { studentKey: string; topicId: string }) => `${x.studentKey}/${x.topicId}`;
const sorted = <T extends { studentKey: string; topicId: string }>(xs: T[]) =>
  [...xs].sort((p, q) => (byKey(p) < byKey(q) ? -1 : 1));

describe("recordWithNewKeys (PostgreSQL)", () => {
  const drops: (() => Promise<void>)[] = [];
  afterAll(async () => {
    for (const d of drops) await d();
  });

  it("names the keys that held no stored event before the append, in the same statement", async () => {
    const svc = await serviceStores(runId("newkeys"));
    drops.push(svc.drop);
    const raw = svc.stores.raw;
    const keysOf = (r: { newKeys: { studentKey: string; topicId: string }[] }) =>
      r.newKeys.map((k) => `${k.studentKey.slice(0, 6)}/${k.topicId}`).sort();
    const first = await raw.recordWithNewKeys!(
      rows([quiz("a1", "s1", "t1", 0), quiz("a2", "s1", "t1", 1), quiz("b1", "s1", "t2", 2)]),
    );
    expect(first.rows.length).toBe(3);
    expect(first.newKeys.length).toBe(2);
    const s1 = first.newKeys[0]!.studentKey.slice(0, 6);
    expect(keysOf(first)).toEqual([`${s1}/t1`, `${s1}/t2`]);
    // t1 has rows now; t3 is new; a resent event of t2 makes t2 not new either.
    const second = await raw.recordWithNewKeys!(
      rows([quiz("a3", "s1", "t1", 3), quiz("c1", "s1", "t3", 4), quiz("b1", "s1", "t2", 2)]),
    );
    expect(keysOf(second)).toEqual([`${s1}/t3`]);
    expect(second.rows.map((r) => r.event_id).sort()).toEqual(["a3", "b1", "c1"]);
    // An event_id stored before under another student: its stored row is returned; the new key has no row.
    const third = await raw.recordWithNewKeys!(rows([quiz("a1", "s2", "t1", 5)]));
    expect(third.rows.map((r) => [r.event_id, r.student_key.slice(0, 6)])).toEqual([["a1", s1]]);
    expect(third.newKeys.length).toBe(1);
    expect(await raw.recordWithNewKeys!([])).toEqual({ rows: [], newKeys: [] });
  });

  it("gives the states and scores of reading every replayed key back, with fewer reads", async () => {
    const set = generateStreamEvents({ students: 25, topics: 6, events: 2000, seed: 23 });
    const sizes = [200, 17, 1, 90];
    const runs: { stores: StreamStores; replayed: number; storedReads: number }[] = [];
    for (const label of ["nkown", "nkback"]) {
      const svc = await serviceStores(runId(label));
      drops.push(svc.drop);
      const stores = label === "nkown" ? svc.stores : { ...svc.stores, raw: readingBack(svc.stores.raw) };
      const u = newUpdater(stores);
      await applyInBatches(u, set.publishOrder, sizes);
      runs.push({ stores: svc.stores, replayed: u.stats.replayedKeys, storedReads: u.stats.storedReads });
    }
    const [own, back] = runs as [(typeof runs)[0], (typeof runs)[0]];
    expect(own.replayed).toBe(back.replayed);
    expect(back.storedReads).toBe(back.replayed);
    // Every key's first batch rebuilt it from that batch's rows; late events still read back.
    expect(own.storedReads).toBeGreaterThan(0);
    expect(own.storedReads).toBeLessThan(back.storedReads);
    const states = async (s: StreamStores) => sorted(await s.state.all());
    expect(await states(own.stores)).toEqual(await states(back.stores));
    const scores = async (s: StreamStores) =>
      (await s.mastery.all(["bkt", "elo"])).map(({ last_updated_us: _, ...r }) => r);
    expect(await scores(own.stores)).toEqual(await scores(back.stores));
    const report = await recompute(own.stores, DEFAULT_MODELS);
    expect(report.ok).toBe(true);
  });

  it("two updaters appending to the same new keys at once, each with events older than the other's", async () => {
    // Both appends may see a key as new; the second commit then finds the first's state and must rebuild
    // from the stored events (the first's too), not from its own rows.
    const svc = await serviceStores(runId("nklate"));
    drops.push(svc.drop);
    const u1 = newUpdater(svc.stores);
    const u2 = newUpdater(svc.stores);
    for (let round = 0; round < 12; round++) {
      const student = `racer-${round}`;
      const batch = (parity: number) =>
        rows(
          Array.from({ length: 8 }, (_, topic) =>
            [0, 2, 4].map((m) => quiz(`r${round}-t${topic}-${m + parity}`, student, `t${topic}`, m + parity)),
          ).flat(),
        );
      await Promise.all([u1.apply(batch(1)), u2.apply(batch(0))]);
    }
    const report = await recompute(svc.stores, DEFAULT_MODELS);
    expect(report.tables.map((t) => [t.table, t.compared, t.differences])).toEqual([
      ["learner_state", 96, 0],
      ["student_mastery", 192, 0],
    ]);
    const states = await svc.stores.state.all();
    expect(states.every((s) => s.state.bktN === 6)).toBe(true);
  });

  it("two updaters writing the same new keys at once end at the full replay", async () => {
    const svc = await serviceStores(runId("nkrace"));
    drops.push(svc.drop);
    const set = generateStreamEvents({ students: 6, topics: 4, events: 1200, seed: 5 });
    const u1 = newUpdater(svc.stores);
    const u2 = newUpdater(svc.stores);
    const odd = set.publishOrder.filter((_, i) => i % 2 === 1);
    const even = set.publishOrder.filter((_, i) => i % 2 === 0);
    await Promise.all([applyInBatches(u1, odd, [7, 30]), applyInBatches(u2, even, [11, 25])]);
    // Every event in a state, and each state the replay of its stored events.
    const report = await recompute(svc.stores, DEFAULT_MODELS);
    expect(report.tables.map((t) => [t.table, t.differences])).toEqual([
      ["learner_state", 0],
      ["student_mastery", 0],
    ]);
    expect(report.ok).toBe(true);
  });
});
