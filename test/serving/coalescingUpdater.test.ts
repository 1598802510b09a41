import { afterAll, describe, expect, it } from "vitest";
import { validateEvent } from "../../features/contracts.ts";
import { Pseudonymizer } from "../../features/pseudonymize.ts";
import { CoalescingUpdater } from "../../serving/coalescingUpdater.ts";
import { IncrementalUpdater, rowsFromEvent } from "../../serving/updater.ts";
import { DuckStore } from "../../storage/duckdb.ts";
import { DuckMasteryStore } from "../../storage/masteryStore.ts";
import { DuckRawEventStore, type RawEventRow } from "../../storage/rawEventStore.ts";
import { DuckStateStore } from "../../storage/stateStore.ts";
import { BackendUnavailableError } from "../../storage/unavailable.ts";

const NOW_US = Date.UTC(2026, 2, 1) * 1000;
const MODELS = { bkt: undefined, bktVersion: "default", elo: undefined, eloVersion: "default" };
const pseudo = new Pseudonymizer("coalesce-test-key-0123456789");
const stores: DuckStore[] = [];
afterAll(() => {
  for (const s of stores) s.close();
});

function rows(tag: string, n: number, student = "alice", from = 0): RawEventRow[] {
  return Array.from({ length: n }, (_, i) => {
    const k = from + i;
    const v = validateEvent({
      event_id: `${tag}-${k}`,
      type: "quiz_attempt",
      student_id: student,
      topic_id: `topic-${k % 2}`,
      timestamp: new Date(Date.UTC(2026, 1, 1) + k * 60_000).toISOString(),
      question_id: `q-${k}`,
      is_correct: k % 3 !== 0,
      time_spent_sec: 10,
    });
    if (!v.ok) throw new Error(`fixture invalid: ${JSON.stringify(v.issues)}`);
    return rowsFromEvent(v.value, pseudo, { source: "test", ingestedAtUs: NOW_US })[0]!;
  });
}

/** A real updater on an in-memory DuckDB; `applies` counts the batches it received. */
async function realUpdater() {
  const store = await DuckStore.open(":memory:");
  stores.push(store);
  const raw = await DuckRawEventStore.open(store);
  const inner = new IncrementalUpdater({
    raw,
    state: await DuckStateStore.open(store),
    mastery: await DuckMasteryStore.open(store),
    models: MODELS,
    nowUs: () => NOW_US,
  });
  const applies: number[] = [];
  const counted = {
    apply: (r: readonly RawEventRow[]) => {
      applies.push(r.length);
      return inner.apply(r);
    },
  };
  return { store, inner, counted, applies };
}

/** applied or replayed (the first event of a key is folded by a replay) vs duplicate. */
const outcomes = (rs: readonly { outcome: string }[]) =>
  rs.map((r) => (r.outcome === "duplicate" ? "duplicate" : "applied"));

/** A run hook that holds the first group until `release()`, so later requests queue meanwhile. */
function heldRun() {
  let release!: () => void;
  const held = new Promise<void>((r) => {
    release = r;
  });
  let calls = 0;
  return {
    release: () => release(),
    run: async <T>(fn: () => Promise<T>): Promise<T> => {
      if (calls++ === 0) await held;
      return fn();
    },
  };
}

describe("CoalescingUpdater (group commit for POST /events)", () => {
  it("requests that arrive while a group is applied form the next group: one apply, each its own results in its row order", async () => {
    const { counted, applies, store } = await realUpdater();
    const h = heldRun();
    const afterRows: number[] = [];
    const c = new CoalescingUpdater(counted, {
      run: h.run,
      after: async (r) => void afterRows.push(r.length),
    });
    const first = c.apply(rows("a", 3));
    const later = [c.apply(rows("b", 2)), c.apply(rows("c", 4, "bob")), c.apply(rows("d", 1))];
    h.release();
    const [r1, r2, r3, r4] = await Promise.all([first, ...later]);
    expect(applies).toEqual([3, 7]);
    expect(afterRows).toEqual([3, 7]);
    expect(c.stats).toMatchObject({ groups: 2, requests: 4, rows: 10, largestGroup: 3, splits: 0 });
    expect(r1!.map((r) => r.eventId)).toEqual(["a-0", "a-1", "a-2"]);
    expect(r2!.map((r) => r.eventId)).toEqual(["b-0", "b-1"]);
    expect(r3!.map((r) => r.eventId)).toEqual(["c-0", "c-1", "c-2", "c-3"]);
    expect(r4!.map((r) => r.eventId)).toEqual(["d-0"]);
    expect([r1, r2, r3, r4].flatMap((r) => outcomes(r!))).toEqual(Array(10).fill("applied"));
    // Every acknowledged event is in the state readers use.
    const seen = await store.all<{ n: number }>("SELECT count(*)::INTEGER AS n FROM learner_state_seen");
    expect(seen[0]!.n).toBe(10);
  });

  it("an event sent by two requests of one group is applied once: accepted for the first, duplicate for the second", async () => {
    const { counted, store } = await realUpdater();
    const h = heldRun();
    const c = new CoalescingUpdater(counted, { run: h.run });
    const first = c.apply(rows("x", 1));
    const a = c.apply(rows("e", 2));
    const b = c.apply(rows("e", 3)); // e-0 and e-1 again, plus e-2
    h.release();
    await first;
    const [ra, rb] = await Promise.all([a, b]);
    expect(outcomes(ra!)).toEqual(["applied", "applied"]);
    expect(outcomes(rb!)).toEqual(["duplicate", "duplicate", "applied"]);
    const n = await store.all<{ n: number }>("SELECT count(*)::INTEGER AS n FROM raw_events");
    expect(n[0]!.n).toBe(4);
  });

  it("a value the store refuses fails only the request that carries it; the rest of its group is applied", async () => {
    const { counted, store } = await realUpdater();
    const h = heldRun();
    const c = new CoalescingUpdater(counted, { run: h.run });
    const first = c.apply(rows("y", 1));
    const bad = rows("bad", 1);
    // NULL in raw_events' NOT NULL column: DuckDB refuses it (Constraint Error, a data error).
    bad[0]!.type = null as unknown as string;
    const ok1 = c.apply(rows("f", 2));
    const refused = c.apply(bad);
    const ok2 = c.apply(rows("g", 2, "carol"));
    h.release();
    await first;
    await expect(refused).rejects.toThrow(/Constraint Error/);
    expect(outcomes(await ok1)).toEqual(["applied", "applied"]);
    expect(outcomes(await ok2)).toEqual(["applied", "applied"]);
    expect(c.stats.splits).toBe(1);
    const ids = await store.all<{ event_id: string }>("SELECT event_id FROM raw_events ORDER BY 1");
    expect(ids.map((r) => r.event_id)).toEqual(["f-0", "f-1", "g-0", "g-1", "y-0"]);
  });

  it("a store that is down fails every request of the group (nothing acknowledged), and the next group runs", async () => {
    const { counted, store } = await realUpdater();
    let down = true;
    const h = heldRun();
    const c = new CoalescingUpdater(counted, {
      run: (fn) =>
        h.run(() => (down ? Promise.reject(new BackendUnavailableError("duckdb", "test outage")) : fn())),
    });
    const first = c.apply(rows("z", 1));
    h.release();
    await expect(first).rejects.toThrow(/test outage/);
    down = false;
    const again = await c.apply(rows("z", 1));
    expect(outcomes(again)).toEqual(["applied"]);
    const n = await store.all<{ n: number }>("SELECT count(*)::INTEGER AS n FROM raw_events");
    expect(n[0]!.n).toBe(1);
  });

  it("with `atomic` a group's raw append, state and scores commit together: a failing score write leaves none of them", async () => {
    const store = await DuckStore.open(":memory:");
    stores.push(store);
    const mastery = await DuckMasteryStore.open(store);
    let failScores = true;
    const inner = new IncrementalUpdater({
      raw: await DuckRawEventStore.open(store),
      state: await DuckStateStore.open(store),
      mastery: {
        ...mastery,
        write: (w, now) =>
          failScores
            ? Promise.reject(new BackendUnavailableError("duckdb", "scores down"))
            : mastery.write(w, now),
      } as DuckMasteryStore,
      models: MODELS,
      nowUs: () => NOW_US,
    });
    const c = new CoalescingUpdater(inner, { atomic: (fn) => store.transaction(fn) });
    await expect(c.apply(rows("t", 3))).rejects.toThrow(/scores down/);
    const n = async (table: string) =>
      (await store.one<{ n: number }>(`SELECT count(*)::INTEGER AS n FROM ${table}`))!.n;
    // Raw rows and state were written before the scores failed; the rollback took them back.
    expect([await n("raw_events"), await n("learner_state"), await n("learner_state_seen")]).toEqual([
      0, 0, 0,
    ]);
    failScores = false;
    const again = await c.apply(rows("t", 3));
    expect(outcomes(again)).toEqual(["applied", "applied", "applied"]);
    expect([await n("raw_events"), await n("learner_state"), await n("student_mastery")]).toEqual([3, 2, 4]);
  });

  it("a group never exceeds maxRows (a bigger request goes alone); refuses a bad maxRows saying what to use", async () => {
    const { counted, applies } = await realUpdater();
    const h = heldRun();
    const c = new CoalescingUpdater(counted, { run: h.run, maxRows: 5 });
    const all = [
      c.apply(rows("h", 1)),
      c.apply(rows("i", 3)),
      c.apply(rows("j", 2)),
      c.apply(rows("k", 7)),
      c.apply(rows("l", 1)),
    ];
    h.release();
    await Promise.all(all);
    expect(applies).toEqual([1, 5, 7, 1]);
    expect(() => new CoalescingUpdater(counted, { maxRows: 0 })).toThrow(/maxRows must be an integer >= 1/);
  });
});

/** A real updater whose score writes wait for `release()` (the first `hold` of them), pipelined or not. */
async function heldScores(pipelineMastery: boolean) {
  const store = await DuckStore.open(":memory:");
  stores.push(store);
  const mastery = await DuckMasteryStore.open(store);
  let release!: () => void;
  const held = new Promise<void>((r) => {
    release = r;
  });
  const log: string[] = [];
  let writes = 0;
  const state = await DuckStateStore.open(store);
  const inner = new IncrementalUpdater({
    raw: await DuckRawEventStore.open(store),
    state: {
      load: (k) => state.load(k),
      commit: (c) => {
        log.push(`state ${c.length}`);
        return state.commit(c);
      },
      eloAbilities: (s, t) => state.eloAbilities(s, t),
      all: () => state.all(),
      close: () => state.close(),
    },
    mastery: {
      write: async (w, now) => {
        const n = ++writes;
        log.push(`scores ${n} start`);
        if (n === 1) await held;
        const out = await mastery.write(w, now);
        log.push(`scores ${n} written`);
        return out;
      },
      writeOverride: (o) => mastery.writeOverride(o),
      forStudent: (s) => mastery.forStudent(s),
      all: (s) => mastery.all(s),
    },
    models: MODELS,
    nowUs: () => NOW_US,
    pipelineMastery,
  });
  return { store, inner, log, release: () => release() };
}

/** Resolves once `log` holds `entry` (polled on the loop's turns). */
async function logged(log: readonly string[], entry: string): Promise<void> {
  for (let i = 0; i < 500 && !log.includes(entry); i++) await new Promise((r) => setTimeout(r, 2));
  expect(log).toContain(entry);
}

describe("CoalescingUpdater pipelined (PostgreSQL + Redis: the score write on its own connection)", () => {
  it("the next group's state update runs while this group's scores are written; each request is answered after its own scores", async () => {
    const { inner, log, release, store } = await heldScores(true);
    const c = new CoalescingUpdater(inner, { pipelined: true });
    const answered: string[] = [];
    const first = c.apply(rows("p", 2)).then((r) => {
      answered.push(`first ${log.filter((e) => e.endsWith("written")).length}`);
      return r;
    });
    await logged(log, "scores 1 start");
    const second = c.apply(rows("q", 3, "bob")).then((r) => {
      answered.push(`second ${log.filter((e) => e.endsWith("written")).length}`);
      return r;
    });
    // The second group's state is committed while the first group's scores are still held (its own
    // score write waits behind them).
    await inner.stateStageIdle();
    expect(log).toEqual(["state 2", "scores 1 start", "state 2"]);
    expect(answered).toEqual([]);
    release();
    const [r1, r2] = await Promise.all([first, second]);
    // Answers in order, each after its own group's scores were written.
    expect(answered).toEqual(["first 1", "second 2"]);
    expect(outcomes(r1)).toEqual(["applied", "applied"]);
    expect(outcomes(r2)).toEqual(["applied", "applied", "applied"]);
    const n = await store.all<{ n: number }>(
      "SELECT count(DISTINCT student_key)::INTEGER AS n FROM student_mastery",
    );
    expect(n[0]!.n).toBe(2);
  });

  it("an event sent again while its first group's scores are written is a duplicate, answered after those scores", async () => {
    const { inner, log, release } = await heldScores(true);
    const c = new CoalescingUpdater(inner, { pipelined: true });
    const order: string[] = [];
    const first = c.apply(rows("r", 2)).then((r) => {
      order.push("first");
      return r;
    });
    await logged(log, "scores 1 start");
    const again = c.apply(rows("r", 2)).then((r) => {
      order.push("again");
      return r;
    });
    await inner.stateStageIdle();
    expect(inner.stats.batches).toBe(2);
    expect(order).toEqual([]);
    release();
    const [r1, r2] = await Promise.all([first, again]);
    expect(order).toEqual(["first", "again"]);
    expect(outcomes(r1)).toEqual(["applied", "applied"]);
    expect(outcomes(r2)).toEqual(["duplicate", "duplicate"]);
  });

  it("not pipelined (the default): the next group waits for this group's scores", async () => {
    const { inner, log, release } = await heldScores(true);
    const c = new CoalescingUpdater(inner);
    const first = c.apply(rows("s", 2));
    await logged(log, "scores 1 start");
    const second = c.apply(rows("t", 1, "bob"));
    await new Promise((r) => setTimeout(r, 30));
    expect(log).toEqual(["state 2", "scores 1 start"]);
    release();
    await Promise.all([first, second]);
    expect(log).toEqual([
      "state 2",
      "scores 1 start",
      "scores 1 written",
      "state 1",
      "scores 2 start",
      "scores 2 written",
    ]);
  });

  it("refuses pipelined with a shared queue (`run`) or `atomic`, saying what to do", async () => {
    const { inner } = await heldScores(true);
    expect(() => new CoalescingUpdater(inner, { pipelined: true, run: (fn) => fn() })).toThrow(
      /pipelined needs the updater's own stages: drop `run` and `atomic`/,
    );
    expect(() => new CoalescingUpdater(inner, { pipelined: true, atomic: (fn) => fn() })).toThrow(
      /pipelined/,
    );
  });
});

describe("IncrementalUpdater masteryWriters", () => {
  it("refuses a count of score writers that is not an integer >= 1, saying what to pass", async () => {
    const store = await DuckStore.open(":memory:");
    stores.push(store);
    const base = {
      raw: await DuckRawEventStore.open(store),
      state: await DuckStateStore.open(store),
      mastery: await DuckMasteryStore.open(store),
      models: MODELS,
      pipelineMastery: true,
    };
    for (const bad of [0, -1, 1.5, Number.NaN])
      expect(() => new IncrementalUpdater({ ...base, masteryWriters: bad })).toThrow(
        /masteryWriters must be an integer >= 1 \(got .*\); e\.g\. 4/,
      );
    expect(new IncrementalUpdater({ ...base, masteryWriters: 3 }).stats.batches).toBe(0);
  });
});
