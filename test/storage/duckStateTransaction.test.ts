import { afterEach, describe, expect, it } from "vitest";
import { DuckStore } from "../../storage/duckdb.ts";
import { DuckStateStore, type StateCommit } from "../../storage/stateStore.ts";
import { stateCommit } from "./learnerStateFixture.ts";

// DuckStateStore.commit inside a transaction whose load read the keys' revisions compares against those
// (storage/transactionRevisions.ts) instead of reading learner_state_rev again. These tests pin what
// that must keep: the compare-and-set answers of a read, no reuse across transactions, and a concurrent
// writer's revision never overwritten.

const commit = (topicId: string, expectedRev: number, p: number, event: string): StateCommit =>
  stateCommit("s1", topicId, expectedRev, p, [event]);

const load = (states: DuckStateStore, topics: string[]) =>
  states.load(topics.map((topicId) => ({ studentKey: "s1", topicId, eventIds: [] })));

describe("DuckStateStore commit after a load in the same transaction", () => {
  let store: DuckStore | undefined;
  afterEach(() => store?.close());

  it("answers the compare-and-set as a read would: new keys from 0, the transaction's own commits, stale revisions refused", async () => {
    store = await DuckStore.open(":memory:");
    const states = await DuckStateStore.open(store);
    await states.commit([commit("t2", 0, 0.3, "e0")]);
    const s = store;
    const answers = await s.transaction(async () => {
      expect((await load(states, ["t1", "t2"])).map((l) => l.rev)).toEqual([0, 1]);
      const first = await states.commit([commit("t1", 0, 0.4, "e1"), commit("t2", 1, 0.5, "e2")]);
      // The revisions this transaction wrote count: t1 is at 1 now, so expecting 0 again is stale.
      const second = await states.commit([commit("t1", 1, 0.6, "e3"), commit("t2", 1, 0.7, "e4")]);
      const third = await states.commit([commit("t1", 0, 0.8, "e5")]);
      return [first, second, third];
    });
    expect(answers).toEqual([[1, 2], [2, null], [null]]);
    const after = await load(states, ["t1", "t2"]);
    expect(after.map((l) => [l.rev, l.state?.pMastery])).toEqual([
      [2, 0.6],
      [2, 0.5],
    ]);
  });

  it("a rolled-back transaction's revisions are not used by the next one", async () => {
    store = await DuckStore.open(":memory:");
    const states = await DuckStateStore.open(store);
    await states.commit([commit("t1", 0, 0.3, "e0")]);
    const s = store;
    await expect(
      s.transaction(async () => {
        await load(states, ["t1"]);
        expect(await states.commit([commit("t1", 1, 0.4, "e1")])).toEqual([2]);
        throw new Error("group failed after its state commit");
      }),
    ).rejects.toThrow(/group failed/);
    // The rollback left rev 1: a commit expecting the rolled-back 2 is refused, one expecting 1 applies.
    const answers = await s.transaction(async () => [
      await states.commit([commit("t1", 2, 0.5, "e2")]),
      await states.commit([commit("t1", 1, 0.6, "e3")]),
    ]);
    expect(answers).toEqual([[null], [2]]);
  });

  it("a writer on another connection that moved the key after the load makes the transaction fail, never overwritten", async () => {
    store = await DuckStore.open(":memory:");
    const states = await DuckStateStore.open(store);
    const other = await DuckStateStore.open(await store.session());
    await states.commit([commit("t1", 0, 0.3, "e0")]);
    const s = store;
    await expect(
      s.transaction(async () => {
        expect((await load(states, ["t1"]))[0]!.rev).toBe(1);
        // Committed by the other connection while this transaction is open (its snapshot still says 1).
        expect(await other.commit([commit("t1", 1, 0.9, "e-other")])).toEqual([2]);
        await states.commit([commit("t1", 1, 0.4, "e1")]);
      }),
    ).rejects.toThrow(/conflict/i);
    const after = await load(states, ["t1"]);
    expect([after[0]!.rev, after[0]!.state?.pMastery]).toEqual([2, 0.9]);
  });
});
