import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import { ingestEvents } from "../../features/ingest.ts";
import { type BktParams, bktStepPair } from "../../models/bkt.ts";
import { scoreBktElo } from "../../serving/learnerState.ts";
import { recompute } from "../../serving/recompute.ts";
import { openStreamStores } from "../../serving/streamStores.ts";
import { isoToMicros, updatedKeys } from "../../serving/updater.ts";
import { DuckStore } from "../../storage/duckdb.ts";
import { generateStreamEvents } from "./streamEvents.ts";

/** P(L) after `answers` from the prior, through the pair filter the updater uses (models/bkt.ts). */
function bktAfter(p: BktParams, answers: boolean[]): number {
  const belief = Float64Array.of(1 - p.prior, p.prior);
  for (const a of answers) bktStepPair(p.learn, p.forget, p.guess, p.slip, belief, 0, a);
  return belief[1]!;
}

import { DEFAULT_MODELS, fixtureClock, pseudonymizer, runId, serviceStores } from "./streamHarness.ts";

const NOW_US = Date.UTC(2026, 2, 1) * 1000;

const { rows, newUpdater, applyInBatches } = fixtureClock(NOW_US);

const quiz = (id: string, ts: string, correct: boolean, student = "alice", topic = "fractions") => ({
  event_id: id,
  type: "quiz_attempt",
  student_id: student,
  topic_id: topic,
  timestamp: ts,
  question_id: "q1",
  is_correct: correct,
});

describe("isoToMicros", () => {
  it("reads offsets and microseconds exactly", () => {
    expect(isoToMicros("2026-01-05T12:00:00.123456+02:00")).toBe(Date.UTC(2026, 0, 5, 10) * 1000 + 123456);
    expect(isoToMicros("2026-01-05T10:00:00Z")).toBe(Date.UTC(2026, 0, 5, 10) * 1000);
    expect(isoToMicros("2026-01-05T10:00:00.5-01:30")).toBe(Date.UTC(2026, 0, 5, 11, 30) * 1000 + 500000);
    expect(() => isoToMicros("2026-01-05 10:00:00")).toThrow(/offset/);
  });
});

describe("IncrementalUpdater (embedded DuckDB)", () => {
  it("folds two attempts forward by hand-computed BKT, then counts a re-sent event as a duplicate", async () => {
    const duck = await DuckStore.open(":memory:");
    const stores = await openStreamStores({ dbPath: ":memory:", duck });
    const u = newUpdater(stores);
    const r1 = await u.apply(rows([quiz("e1", "2026-01-05T10:00:00Z", true)]));
    const r2 = await u.apply(rows([quiz("e2", "2026-01-05T10:01:00Z", false)]));
    const r3 = await u.apply(rows([quiz("e1", "2026-01-05T10:00:00Z", true)]));
    expect(r1.map((r) => r.outcome)).toEqual(["replayed"]); // a key's first event builds it from the log
    expect(r2.map((r) => r.outcome)).toEqual(["applied"]);
    expect(r3.map((r) => r.outcome)).toEqual(["duplicate"]);
    // Default BKT parameters, two updates by hand through models/bkt.ts.
    const { topicParamsResolver } = await import("../../serving/learnerState.ts");
    const bkt = topicParamsResolver(DEFAULT_MODELS)("fractions").bkt;
    const expected = bktAfter(bkt, [true, false]);
    expect(r2[0]!.bkt).toBe(expected);
    expect(r3[0]!.bkt).toBe(expected);
    const [state] = await stores.state.all();
    expect(state!.rev).toBe(2);
    expect(state!.state.bktN).toBe(2);
    expect(state!.state.lastEventId).toBe("e2");
    const history = await duck.all("SELECT count(*)::INT AS n FROM student_mastery_history");
    expect(history[0]?.n).toBe(4); // 2 revisions x (bkt, elo); the duplicate added none
    await stores.close();
    duck.close();
  });

  it("rebuilds a key from its events when an event arrives after a later one", async () => {
    const stores = await openStreamStores({ dbPath: ":memory:" });
    const u = newUpdater(stores);
    await u.apply(rows([quiz("e2", "2026-01-05T10:01:00Z", false)]));
    const late = await u.apply(rows([quiz("e1", "2026-01-05T10:00:00Z", true)]));
    expect(late[0]!.outcome).toBe("replayed");
    const { topicParamsResolver } = await import("../../serving/learnerState.ts");
    const bkt = topicParamsResolver(DEFAULT_MODELS)("fractions").bkt;
    expect(late[0]!.bkt).toBe(bktAfter(bkt, [true, false]));
    const [state] = await stores.state.all();
    expect(state!.state.lastEventId).toBe("e2");
    expect(updatedKeys(late)).toEqual([
      { studentKey: pseudonymizer.studentKey("alice"), topicId: "fractions" },
    ]);
    await stores.close();
  });

  it("equals the batch job (score bkt-elo --full) on the same events, whatever the arrival order", async () => {
    const set = generateStreamEvents({ students: 12, topics: 5, events: 1500, seed: 7 });
    const duck = await DuckStore.open(":memory:");
    const stores = await openStreamStores({ dbPath: ":memory:", duck });
    const results = await applyInBatches(newUpdater(stores), set.publishOrder, [1, 7, 50, 200]);
    const dupPublishes = set.publishOrder.length - set.events.length;
    // Every re-published event is reported a duplicate (once per topic row).
    const dupRows = results.filter((r) => r.outcome === "duplicate").length;
    expect(dupRows).toBeGreaterThanOrEqual(dupPublishes);
    const report = await recompute(stores, DEFAULT_MODELS);
    expect(report.tables.map((t) => [t.table, t.missing, t.extra, t.differences, t.maxAbsDiff])).toEqual([
      ["learner_state", 0, 0, 0, 0],
      ["student_mastery", 0, 0, 0, 0],
    ]);
    expect(report.ok).toBe(true);
    expect(report.keys).toBe(60);

    // The batch job on a separate store, fed by features/ingest.ts.
    const batch = await DuckStore.open(":memory:");
    await ingestEvents(batch, set.events, { pseudonymizer, now: new Date(NOW_US / 1000) });
    await scoreBktElo(batch, DEFAULT_MODELS, { full: true, now: new Date(NOW_US / 1000) });
    const cols = "* EXCLUDE (updated_at)";
    const a = await duck.all(`SELECT ${cols} FROM learner_state ORDER BY student_key, topic_id`);
    const b = await batch.all(`SELECT ${cols} FROM learner_state ORDER BY student_key, topic_id`);
    expect(a.length).toBe(60);
    expect(a).toEqual(b);
    batch.close();
    await stores.close();
    duck.close();
  });

  it("property: any arrival order with any duplicates gives the state of the sorted replay", async () => {
    const set = generateStreamEvents({
      students: 2,
      topics: 2,
      events: 40,
      seed: 3,
      lateShare: 0,
      duplicateShare: 0,
    });
    const reference = await openStreamStores({ dbPath: ":memory:" });
    await newUpdater(reference).apply(rows(set.events));
    const expected = (await reference.state.all()).map((k) => k.state);
    await reference.close();
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.integer({ min: 0, max: set.events.length - 1 }), { minLength: 40, maxLength: 70 }),
        fc.integer({ min: 2, max: 12 }),
        async (picks, batch) => {
          // Every event at least once (in a shuffled order), some several times.
          const order = [...picks.map((i) => set.events[i]!), ...set.events].sort(
            (x, y) => hash(String(x.event_id) + picks.length) - hash(String(y.event_id) + picks.length),
          );
          const stores = await openStreamStores({ dbPath: ":memory:" });
          await applyInBatches(newUpdater(stores), order, [batch]);
          const got = (await stores.state.all()).map((k) => k.state);
          await stores.close();
          const byKey = (xs: typeof got) =>
            [...xs].sort((p, q) => (p.lastEventId! < q.lastEventId! ? -1 : 1));
          expect(byKey(got)).toEqual(byKey(expected));
        },
      ),
      { numRuns: 6 },
    );
  });
});

function hash(s: string): number {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  return h >>> 0;
}

describe("IncrementalUpdater (PostgreSQL + Redis)", () => {
  const id = runId("upd");
  let drop: (() => Promise<void>) | undefined;
  afterAll(async () => drop?.());

  it("equals the replay, and applying everything again changes nothing", async () => {
    const svc = await serviceStores(id);
    drop = svc.drop;
    const set = generateStreamEvents({ students: 20, topics: 6, events: 3000, seed: 11 });
    const u = newUpdater(svc.stores);
    await applyInBatches(u, set.publishOrder, [300, 13, 1, 120]);
    const report = await recompute(svc.stores, DEFAULT_MODELS);
    expect(report.tables.map((t) => [t.table, t.compared, t.differences, t.maxAbsDiff])).toEqual([
      ["learner_state", report.keys, 0, 0],
      ["student_mastery", 2 * report.keys, 0, 0],
    ]);
    expect(report.ok).toBe(true);
    const before = await svc.stores.state.all();
    const scoresBefore = await svc.stores.mastery.all(["bkt", "elo"]);
    const again = await applyInBatches(u, set.events, [500]);
    expect(again.every((r) => r.outcome === "duplicate")).toBe(true);
    const sortKey = (x: { studentKey: string; topicId: string }) => `${x.studentKey}/${x.topicId}`;
    const sorted = <T extends { studentKey: string; topicId: string }>(xs: T[]) =>
      [...xs].sort((p, q) => (sortKey(p) < sortKey(q) ? -1 : 1));
    expect(sorted(await svc.stores.state.all())).toEqual(sorted(before));
    const scoresAfter = await svc.stores.mastery.all(["bkt", "elo"]);
    expect(scoresAfter.map(({ last_updated_us: _, ...r }) => r)).toEqual(
      scoresBefore.map(({ last_updated_us: _, ...r }) => r),
    );
    // The raw zone holds each (event, topic) once.
    const events = await svc.stores.raw.allEvents();
    expect(events.length).toBe(rows(set.events).length);
  });
});

describe("learner_state written before p_unknown existed", () => {
  it("gains the columns on open: P(U) reads as 1 - p_mastery, an unknown event count as -1 (rebuilt)", async () => {
    const { rmSync, mkdtempSync } = await import("node:fs");
    const { tmpdir } = await import("node:os");
    const { join } = await import("node:path");
    const dir = mkdtempSync(join(tmpdir(), "mastery-mig-"));
    const path = join(dir, "old.duckdb");
    const old = await DuckStore.open(path);
    // A file of the plain-table layout (before storage/servingTables.ts): learner_state is a table.
    await old.run("DROP VIEW learner_state");
    await old.run("DROP TABLE learner_state_delta");
    await old.run("ALTER TABLE learner_state_base RENAME TO learner_state");
    await old.run("ALTER TABLE learner_state DROP COLUMN p_unknown");
    await old.run("ALTER TABLE learner_state DROP COLUMN event_n");
    await old.run("ALTER TABLE learner_state DROP COLUMN latent_state");
    await old.run("ALTER TABLE learner_state DROP COLUMN latent_model_version");
    await old.run("ALTER TABLE learner_state DROP COLUMN rule_state");
    await old.run("ALTER TABLE learner_state DROP COLUMN rule_model_version");
    await old.run(
      `INSERT INTO learner_state VALUES ('s1', 'T1', 0.75, 0.1, 2, 2, NULL, NULL, 1, now()::TIMESTAMP, 1,
         0,0,0,0,0,0,0,0, 'v1', 'v1')`,
    );
    old.close();
    const reopened = await DuckStore.open(path);
    const { DuckStateStore } = await import("../../storage/stateStore.ts");
    const store = await DuckStateStore.open(reopened);
    const [loaded] = await store.load([{ studentKey: "s1", topicId: "T1", eventIds: [] }]);
    expect(loaded!.state!.pMastery).toBe(0.75);
    expect(loaded!.state!.pUnknown).toBe(0.25);
    expect(loaded!.state!.eventN).toBe(-1);
    // No latent filter state either: a stream with a latent model rebuilds the key (serving/latentStream.ts).
    expect(loaded!.state!.latent).toBeNull();
    expect(loaded!.state!.latentModelVersion).toBeNull();
    // Nor a rule state: a stream with a rule model rebuilds the key (serving/ruleStream.ts).
    expect(loaded!.state!.rule).toBeNull();
    expect(loaded!.state!.ruleModelVersion).toBeNull();
    reopened.close();
    rmSync(dir, { recursive: true, force: true });
  });
});
