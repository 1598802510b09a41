import { afterAll, describe, expect, it } from "vitest";
import { validateEvent } from "../../features/contracts.ts";
import { Pseudonymizer } from "../../features/pseudonymize.ts";
import { IncrementalUpdater, rowsFromEvent } from "../../serving/updater.ts";
import { DuckStore } from "../../storage/duckdb.ts";
import { DuckMasteryStore } from "../../storage/masteryStore.ts";
import { DuckRawEventStore, type RawEventRow, type RawEventStore } from "../../storage/rawEventStore.ts";
import { DuckStateStore, type StateStore } from "../../storage/stateStore.ts";

const NOW_US = Date.UTC(2026, 2, 1) * 1000;
const MODELS = { bkt: undefined, bktVersion: "default", elo: undefined, eloVersion: "default" };
const pseudo = new Pseudonymizer("early-load-test-key-0123456789");
const stores: DuckStore[] = [];
afterAll(() => {
  for (const s of stores) s.close();
});

function event(id: string, student: string, topic: string, minute: number, correct: boolean): RawEventRow[] {
  const v = validateEvent({
    event_id: id,
    type: "quiz_attempt",
    student_id: student,
    topic_id: topic,
    timestamp: new Date(Date.UTC(2026, 1, 1) + minute * 60_000).toISOString(),
    question_id: `q-${minute % 4}`,
    is_correct: correct,
    time_spent_sec: 10,
  });
  if (!v.ok) throw new Error(`fixture invalid: ${JSON.stringify(v.issues)}`);
  return rowsFromEvent(v.value, pseudo, { source: "test", ingestedAtUs: NOW_US + minute });
}

/** An updater on its own in-memory DuckDB; `log` records the raw appends and state loads in call order. */
async function updaterOn(early: boolean) {
  const store = await DuckStore.open(":memory:");
  stores.push(store);
  const log: string[] = [];
  const innerRaw = await DuckRawEventStore.open(store);
  const innerState = await DuckStateStore.open(store);
  // Calls in order, each "load" or "append <answered loads so far>/<sent loads so far>".
  let sent = 0;
  let answered = 0;
  const raw: RawEventStore = Object.assign(Object.create(innerRaw) as RawEventStore, {
    record: (rows: readonly RawEventRow[]) => {
      log.push(`append ${answered}/${sent}`);
      return innerRaw.record(rows);
    },
  });
  const state: StateStore = Object.assign(Object.create(innerState) as StateStore, {
    load: async (keys: Parameters<StateStore["load"]>[0]) => {
      sent++;
      log.push("load");
      const out = await innerState.load(keys);
      answered++;
      return out;
    },
  });
  const updater = new IncrementalUpdater({
    raw,
    state,
    mastery: await DuckMasteryStore.open(store),
    models: MODELS,
    nowUs: () => NOW_US,
    earlyStateLoad: early,
  });
  return { store, updater, log };
}

const snapshot = (s: DuckStore) =>
  Promise.all([
    s.all("SELECT student_key, topic_id, p_mastery, elo_ability, event_n FROM learner_state ORDER BY 1, 2"),
    s.all("SELECT count(*)::INTEGER AS n FROM learner_state_seen"),
    s.all("SELECT student_key, topic_id, score_source, mastery_score FROM student_mastery ORDER BY 1, 2, 3"),
    s.all("SELECT event_id, topic_id, student_key FROM raw_events ORDER BY 1, 2"),
  ]);

describe("IncrementalUpdater earlyStateLoad (the state load sent with the raw append)", () => {
  it("sends the load while the append is in flight, and gives the same outcomes, states and scores as without it", async () => {
    const batches: RawEventRow[][] = [
      [...event("a1", "ann", "t1", 1, true), ...event("a2", "ann", "t2", 2, false)],
      // New events of known keys (the early load is used), a duplicate in the same batch and one resent.
      [
        ...event("a3", "ann", "t1", 3, true),
        ...event("a3", "ann", "t1", 3, true),
        ...event("a1", "ann", "t1", 1, true),
        ...event("b1", "bob", "t1", 4, false),
      ],
      // An event_id stored before, sent again with another student and topic: the stored row counts, so
      // the keys to load differ from the rows received (the early load is not used; loaded again).
      [...event("b1", "cat", "t2", 5, true), ...event("c1", "cat", "t2", 6, true)],
      // A late event (older than the key's cursor): the key is rebuilt from its stored events.
      [...event("a0", "ann", "t1", 0, false)],
    ];
    const early = await updaterOn(true);
    const plain = await updaterOn(false);
    for (const b of batches) {
      const [x, y] = [await early.updater.apply(b), await plain.updater.apply(b)];
      expect(x).toEqual(y);
    }
    // Early: each batch's load is sent, not yet answered, when its append starts (batch 3's is sent
    // again after the append: its stored rows ask for other keys). Plain: each load after its append.
    expect(early.log).toEqual([
      "load",
      "append 0/1",
      "load",
      "append 1/2",
      "load",
      "append 2/3",
      "load",
      "load",
      "append 4/5",
    ]);
    expect(plain.log).toEqual([
      "append 0/0",
      "load",
      "append 1/1",
      "load",
      "append 2/2",
      "load",
      "append 3/3",
      "load",
    ]);
    const [a, b] = [await snapshot(early.store), await snapshot(plain.store)];
    expect(a[0].length).toBe(4);
    expect(a[3].length).toBe(6);
    expect(a).toEqual(b);
  });
});
