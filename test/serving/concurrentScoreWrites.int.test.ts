import { afterAll, describe, expect, it } from "vitest";
import { recompute } from "../../serving/recompute.ts";
import { IncrementalUpdater } from "../../serving/updater.ts";
import type { MasteryStore } from "../../storage/masteryStore.ts";
import { DEFAULT_MODELS, fixtureClock, runId, serviceStores } from "./streamHarness.ts";

/**
 * The score write on real PostgreSQL + Redis: with several batches' writes in flight (IncrementalUpdater
 * `masteryWriters`, serving/updater.ts) a batch's write does not wait for the previous batch's and the revision
 * guard keeps the newest state's scores whatever order the writes land in; and (as the server runs it, one
 * writer) a score write PostgreSQL rejects leaves the batch unanswered (nothing acknowledged), its events stored
 * and folded, and the client's retry writes the scores, after which the stores equal the full replay.
 */

const NOW_US = Date.UTC(2026, 2, 1) * 1000;
const { rows } = fixtureClock(NOW_US);

const quiz = (id: string, student: string, topic: string, minute: number, correct: boolean) => ({
  event_id: id,
  type: "quiz_attempt",
  student_id: student,
  topic_id: topic,
  timestamp: new Date(Date.UTC(2026, 0, 5, 10, minute)).toISOString(),
  question_id: "q1",
  is_correct: correct,
});

/** `mastery` whose first `write` call waits for the returned `release` (the others go straight through). */
function holdFirstWrite(mastery: MasteryStore): { store: MasteryStore; log: string[]; release(): void } {
  let release!: () => void;
  const held = new Promise<void>((r) => {
    release = r;
  });
  const log: string[] = [];
  let n = 0;
  const store: MasteryStore = {
    write: async (w, now) => {
      const i = ++n;
      log.push(`write ${i} start`);
      if (i === 1) await held;
      const out = await mastery.write(w, now);
      log.push(`write ${i} done (${out} keys)`);
      return out;
    },
    writeOverride: (o) => mastery.writeOverride(o),
    forStudent: (s) => mastery.forStudent(s),
    all: (s) => mastery.all(s),
  };
  return { store, log, release: () => release() };
}

describe("IncrementalUpdater masteryWriters (PostgreSQL + Redis)", () => {
  const drops: (() => Promise<void>)[] = [];
  afterAll(async () => {
    for (const d of drops) await d();
  });

  it("a batch's score write does not wait for the previous batch's; the newest revision's scores win", async () => {
    const svc = await serviceStores(runId("scorewriters"));
    drops.push(svc.drop);
    const { stores } = svc;
    const held = holdFirstWrite(stores.mastery);
    let t = NOW_US;
    const updater = new IncrementalUpdater({
      ...stores,
      mastery: held.store,
      models: DEFAULT_MODELS,
      nowUs: () => (t += 1000),
      pipelineMastery: true,
      masteryWriters: 2,
    });
    // Both batches carry alice/fractions (the second one newer); the second also bob/decimals.
    const first = updater.apply(
      rows([quiz("c1", "alice", "fractions", 0, true), quiz("c2", "alice", "algebra", 1, false)]),
    );
    const second = updater.apply(
      rows([quiz("c3", "alice", "fractions", 2, false), quiz("c4", "bob", "decimals", 3, true)]),
    );
    // With one writer (the default) the second write would wait behind the held first one: fail, not hang.
    const r2 = await Promise.race([
      second,
      new Promise<never>((_, reject) =>
        setTimeout(
          () => reject(new Error("the second batch waited for the first one's score write")),
          10_000,
        ),
      ),
    ]);
    // The second batch was answered while the first one's write was still held.
    expect(held.log).toEqual(["write 1 start", "write 2 start", "write 2 done (2 keys)"]);
    expect(r2.map((r) => r.outcome)).toEqual(["applied", "replayed"]);
    held.release();
    const r1 = await first;
    expect(r1.map((r) => r.outcome)).toEqual(["replayed", "replayed"]);
    // The first write landed last: alice/fractions keeps revision 2's scores (it skipped that key), and
    // wrote only alice/algebra.
    expect(held.log[3]).toBe("write 1 done (1 keys)");
    const states = await stores.state.all();
    const fractions = states.find((s) => s.topicId === "fractions")!;
    expect(fractions.rev).toBe(2);
    const bkt = (await stores.mastery.all(["bkt"])).find((m) => m.topic_id === "fractions")!;
    expect(bkt.mastery_score).toBe(r2[0]!.bkt);
    expect(bkt.mastery_score).not.toBe(r1[0]!.bkt);
    const report = await recompute(stores, DEFAULT_MODELS);
    expect(report.tables.map((x) => [x.table, x.missing, x.extra, x.differences])).toEqual([
      ["learner_state", 0, 0, 0],
      ["student_mastery", 0, 0, 0],
    ]);
    expect(report.ok).toBe(true);
  });

  it("a score write PostgreSQL rejects answers nothing; the retry writes the scores and the stores equal the replay", async () => {
    const svc = await serviceStores(runId("scorereject"));
    drops.push(svc.drop);
    const { stores } = svc;
    const pg = stores.pg!;
    // PostgreSQL itself refuses the score write while the flag table holds a row (a trigger on the history).
    await pg.run("CREATE TABLE reject_scores (on_ boolean)");
    await pg.run(`CREATE FUNCTION reject_scores() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF EXISTS (SELECT 1 FROM reject_scores) THEN RAISE EXCEPTION 'score write rejected by the test'; END IF;
        RETURN NEW;
      END $$`);
    await pg.run(
      "CREATE TRIGGER reject_scores BEFORE INSERT ON student_mastery_history FOR EACH ROW EXECUTE FUNCTION reject_scores()",
    );
    let t = NOW_US;
    const updater = new IncrementalUpdater({
      ...stores,
      models: DEFAULT_MODELS,
      nowUs: () => (t += 1000),
      pipelineMastery: true,
      masteryWriters: 1, // the server's and the worker's setting
    });
    const before = await updater.apply(rows([quiz("d1", "carol", "fractions", 0, true)]));
    expect(before.map((r) => r.outcome)).toEqual(["replayed"]);
    await pg.run("INSERT INTO reject_scores VALUES (true)");
    const batch = rows([quiz("d2", "carol", "fractions", 1, false), quiz("d3", "dave", "algebra", 2, true)]);
    await expect(updater.apply(batch)).rejects.toThrow(/score write rejected by the test/);
    // Between the steps: the events are stored and folded (state revision 2), the scores are not.
    const stored = await pg.all<{ event_id: string }>("SELECT event_id FROM raw_events ORDER BY event_id");
    expect(stored.map((r) => r.event_id)).toEqual(["d1", "d2", "d3"]);
    const carol = (await stores.state.all()).find((s) => s.topicId === "fractions")!;
    expect(carol.rev).toBe(2);
    expect(carol.state.lastEventId).toBe("d2");
    const behind = await recompute(stores, DEFAULT_MODELS);
    expect(behind.ok).toBe(false);
    expect(behind.tables.find((x) => x.table === "learner_state")!.differences).toBe(0);
    // The client was not answered, so it retries: every event is a duplicate, and the scores are written.
    await pg.run("DELETE FROM reject_scores");
    const retry = await updater.apply(batch);
    expect(retry.map((r) => r.outcome)).toEqual(["duplicate", "duplicate"]);
    const report = await recompute(stores, DEFAULT_MODELS);
    expect(report.tables.map((x) => [x.table, x.missing, x.extra, x.differences])).toEqual([
      ["learner_state", 0, 0, 0],
      ["student_mastery", 0, 0, 0],
    ]);
    const bkt = (await stores.mastery.all(["bkt"])).find((m) => m.topic_id === "fractions")!;
    expect(bkt.mastery_score).toBe(retry[0]!.bkt);
  });
});
