import { afterAll, describe, expect, it } from "vitest";
import { Pseudonymizer } from "../../features/pseudonymize.ts";
import { type IntakeDeps, intakeEvents } from "../../serving/eventIntake.ts";
import { EventLoopBudget } from "../../serving/eventLoopBudget.ts";
import { IncrementalUpdater } from "../../serving/updater.ts";
import { DuckStore } from "../../storage/duckdb.ts";
import { DuckMasteryStore } from "../../storage/masteryStore.ts";
import { DuckRawEventStore } from "../../storage/rawEventStore.ts";
import { DuckStateStore, type StateStore } from "../../storage/stateStore.ts";

const NOW = new Date(Date.UTC(2026, 2, 1));
const MODELS = { bkt: undefined, bktVersion: "default", elo: undefined, eloVersion: "default" };

describe("EventLoopBudget", () => {
  it("is due once sliceMs has passed, and a yield starts a new slice", async () => {
    let t = 100;
    const b = new EventLoopBudget(5, () => t);
    expect(b.due).toBe(false);
    t = 104.9;
    expect(b.due).toBe(false);
    t = 105;
    expect(b.due).toBe(true);
    await b.yield();
    expect(b.yields).toBe(1);
    expect(b.due).toBe(false);
    t = 110;
    expect(b.due).toBe(true);
  });

  it("a yield lets callbacks queued on the event loop run before the work goes on", async () => {
    const b = new EventLoopBudget(5, () => 0);
    const log: string[] = [];
    setImmediate(() => log.push("other request"));
    log.push("slice 1");
    await b.yield();
    log.push("slice 2");
    expect(log).toEqual(["slice 1", "other request", "slice 2"]);
  });

  it("resume starts a new slice without a turn (after an await of I/O)", () => {
    let t = 100;
    const b = new EventLoopBudget(5, () => t);
    t = 130; // an await of 30 ms
    expect(b.due).toBe(true);
    b.resume();
    expect(b.due).toBe(false);
    expect(b.yields).toBe(0);
    t = 135;
    expect(b.due).toBe(true);
  });

  it("refuses a slice that is not a positive number of milliseconds, saying what to use", () => {
    expect(() => new EventLoopBudget(0)).toThrow(/sliceMs must be > 0 milliseconds \(got 0\); e\.g\. 5/);
    expect(() => new EventLoopBudget(Number.NaN)).toThrow(/got NaN/);
  });
});

/** A server-like intake on an in-memory DuckDB file; `log` records each pseudonymization. */
async function intakeOn(sliceMs: number, log: string[]) {
  const store = await DuckStore.open(":memory:");
  const raw = await DuckRawEventStore.open(store);
  const inner = new Pseudonymizer("slice-test-key-0123456789");
  const pseudonymizer = {
    studentKey(id: string) {
      log.push("check");
      return inner.studentKey(id);
    },
  } as Pseudonymizer;
  const updater = new IncrementalUpdater({
    raw,
    state: await DuckStateStore.open(store),
    mastery: await DuckMasteryStore.open(store),
    models: MODELS,
    nowUs: () => NOW.getTime() * 1000,
    sliceMs,
  });
  const deps: IntakeDeps = { updater, deadLetters: raw, mirror: null, pseudonymizer, sliceMs };
  return { store, deps, updater };
}

const batch = (n: number, tag: string) =>
  Array.from({ length: n }, (_, i) => ({
    event_id: `${tag}-${i}`,
    type: "quiz_attempt",
    student_id: `student-${i % 7}`,
    topic_id: `topic-${i % 3}`,
    timestamp: new Date(Date.UTC(2026, 1, 1) + i * 60_000).toISOString(),
    question_id: `q-${i % 5}`,
    is_correct: i % 4 !== 0,
    time_spent_sec: 12,
  }));

describe("POST /events batches in slices (serving/eventIntake.ts, serving/updater.ts)", () => {
  const stores: DuckStore[] = [];
  afterAll(() => {
    for (const s of stores) s.close();
  });

  it("other work runs between the items of one batch's check, not only after the whole batch", async () => {
    const log: string[] = [];
    const { store, deps } = await intakeOn(1e-6, log);
    stores.push(store);
    let ticking = true;
    const tick = () => {
      if (!ticking) return;
      log.push("tick");
      setImmediate(tick);
    };
    setImmediate(tick);
    const r = await intakeEvents(deps, batch(40, "a"), NOW);
    ticking = false;
    expect(r.accepted).toBe(40);
    // The first 40 "check"s are the contract check of the batch (before any store call): with a
    // tiny slice each is followed by a turn of the loop, so ticks interleave them.
    const checks = log.flatMap((e, i) => (e === "check" ? [i] : [])).slice(0, 40);
    const ticksBetween = log.slice(checks[0], checks[39]).filter((e) => e === "tick").length;
    expect(ticksBetween).toBeGreaterThanOrEqual(39);
  });

  it("slicing changes no result: same statuses, states and scores as one unsliced batch, also for concurrent batches on one key", async () => {
    const sliced = await intakeOn(1e-6, []);
    const whole = await intakeOn(60_000, []);
    stores.push(sliced.store, whole.store);
    const events = batch(300, "b");
    // Two overlapping requests (the second repeats 100 events of the first) against one batch.
    const [r1, r2] = await Promise.all([
      intakeEvents(sliced.deps, events.slice(0, 200), NOW),
      intakeEvents(sliced.deps, events.slice(100), NOW),
    ]);
    const w = await intakeEvents(whole.deps, events, NOW);
    expect(r1.accepted + r2.accepted).toBe(300);
    expect(r1.duplicate + r2.duplicate).toBe(100);
    expect(w.accepted).toBe(300);
    const read = (s: DuckStore) =>
      Promise.all([
        s.all(
          "SELECT student_key, topic_id, p_mastery, elo_ability, event_n FROM learner_state ORDER BY 1, 2",
        ),
        s.all(
          "SELECT student_key, topic_id, score_source, mastery_score FROM student_mastery ORDER BY 1, 2, 3",
        ),
        s.all("SELECT count(*)::INTEGER AS n FROM learner_state_seen"),
      ]);
    const [a, b] = [await read(sliced.store), await read(whole.store)];
    expect(a[0].length).toBe(21);
    expect(a).toEqual(b);
    expect(sliced.updater.stats.rows).toBe(400);
  });
});

describe("the fold after a slow state load (serving/updater.ts)", () => {
  it("does not give the loop a turn before the commit when the fold itself is short", async () => {
    const store = await DuckStore.open(":memory:");
    try {
      const inner = await DuckStateStore.open(store);
      const log: string[] = [];
      // A load that takes 4 slices of wall time; when it resolves, a turn of the loop is queued.
      let slow = false;
      const state: StateStore = {
        load: async (keys) => {
          const out = await inner.load(keys);
          if (!slow) return out;
          await new Promise((r) => setTimeout(r, 20));
          setImmediate(() => log.push("turn"));
          return out;
        },
        commit: (commits) => {
          if (slow) log.push("commit");
          return inner.commit(commits);
        },
        eloAbilities: (s, t) => inner.eloAbilities(s, t),
        all: () => inner.all(),
        close: () => inner.close(),
      };
      const pseudo = new Pseudonymizer("slice-test-key-0123456789");
      const updater = new IncrementalUpdater({
        raw: await DuckRawEventStore.open(store),
        state,
        mastery: await DuckMasteryStore.open(store),
        models: MODELS,
        nowUs: () => NOW.getTime() * 1000,
        sliceMs: 5,
      });
      const deps: IntakeDeps = {
        updater,
        deadLetters: { deadLetter: async () => {} },
        mirror: null,
        pseudonymizer: pseudo,
      };
      // The keys' first events are folded from their stored events (a replay, another await): the
      // second batch of the same keys is the incremental fold measured here.
      expect((await intakeEvents(deps, batch(3, "first"), NOW)).accepted).toBe(3);
      slow = true;
      const later = batch(3, "slow").map((e, i) => ({
        ...e,
        timestamp: new Date(Date.UTC(2026, 1, 2) + i * 60_000).toISOString(),
      }));
      const r = await intakeEvents(deps, later, NOW);
      expect(r.accepted).toBe(3);
      // The fold of 3 events takes well under 5 ms: the commit is sent before the queued turn runs.
      // (Before EventLoopBudget.resume the slice counted the load's 20 ms and yielded first: "turn" led.)
      expect(log.slice(0, 2)).toEqual(["commit", "turn"]);
    } finally {
      store.close();
    }
  });
});
