import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import { ingestWatermark } from "../../features/incrementalFeatures.ts";
import { ingestEvents } from "../../features/ingest.ts";
import {
  decodeRuleState,
  foldRuleEvents,
  RULE_STATE_COLUMNS,
  type RuleState,
  storedRuleRow,
} from "../../models/ruleScorer.ts";
import type { BktEloModels } from "../../serving/learnerState.ts";
import { RULE_RELATIVE_TOLERANCE, recompute } from "../../serving/recompute.ts";
import { scoreRules } from "../../serving/ruleScoring.ts";
import { ruleEventOf } from "../../serving/ruleStream.ts";
import { withExplanationTexts } from "../../serving/storedExplanations.ts";
import { openStreamStores, type StreamStores } from "../../serving/streamStores.ts";
import { firstIngestedRows, IncrementalUpdater, streamModels } from "../../serving/updater.ts";
import { DuckStore } from "../../storage/duckdb.ts";
import { STORED_NUMBERS_SELECT } from "../../storage/explanationNumbers.ts";
import type { LearnerRow } from "../../storage/rawEventStore.ts";
import { generateStreamEvents, shuffledWithRepeats } from "./streamEvents.ts";
import { fixtureClock, fixtureRows, pseudonymizer, runId, serviceStores } from "./streamHarness.ts";

/**
 * The rule state in the stream (serving/ruleStream.ts): the updater merges each group of new events into the
 * key's decayed sums and writes the 'rule_based' row with BKT/Elo. Whatever the arrival order, duplicates or
 * late events, the state equals one fold of the key's events within 1e-9 relative (merged sums add in another
 * order), and `mastery recompute` finds every row equal within that tolerance.
 */

const NOW_US = Date.UTC(2026, 2, 1) * 1000;
const models: BktEloModels = streamModels({});
const rule = models.rule!;
const h = rule.config.evidenceHalfLifeDays;

const { rows, newUpdater, applyInBatches } = fixtureClock(NOW_US, models);

const quiz = (id: string, ts: string, correct: boolean, hints: number) => ({
  event_id: id,
  type: "quiz_attempt",
  student_id: "alice",
  topic_id: "fractions",
  timestamp: ts,
  question_id: "q1",
  is_correct: correct,
  hints_used: hints,
});

function expectClose(got: RuleState, want: RuleState): void {
  for (const c of RULE_STATE_COLUMNS) {
    const d = Math.abs(got[c] - want[c]);
    expect(d, c).toBeLessThanOrEqual(RULE_RELATIVE_TOLERANCE * Math.max(Math.abs(got[c]), Math.abs(want[c])));
  }
}

/** Each stored key's decoded rule state. */
async function ruleStates(stores: StreamStores): Promise<Map<string, { state: RuleState; eventN: number }>> {
  const out = new Map<string, { state: RuleState; eventN: number }>();
  for (const k of await stores.state.all()) {
    const d = decodeRuleState(k.state.rule!);
    expect(k.state.ruleModelVersion).toBe(rule.modelVersion);
    out.set(`${k.studentKey}|${k.topicId}`, d!);
  }
  return out;
}

/** One fold of each key's stored events (first ingested copies), as the batch folds them. */
async function foldedStates(stores: StreamStores): Promise<Map<string, RuleState>> {
  const byKey = new Map<string, LearnerRow[]>();
  for (const e of await stores.raw.allEvents()) {
    const id = `${e.student_key}|${e.topic_id}`;
    byKey.set(id, [...(byKey.get(id) ?? []), e]);
  }
  const out = new Map<string, RuleState>();
  for (const [id, evs] of byKey) {
    const sorted = firstIngestedRows(evs).sort((a, b) =>
      a.ts_us !== b.ts_us ? a.ts_us - b.ts_us : a.event_id < b.event_id ? -1 : 1,
    );
    out.set(id, foldRuleEvents(sorted.map(ruleEventOf), h)!);
  }
  return out;
}

describe("rule state in the stream (embedded DuckDB)", () => {
  it("known answer: two quizzes a day apart give the hand-computed decayed sums; a resent event changes nothing", async () => {
    const stores = await openStreamStores({ dbPath: ":memory:" });
    const u = newUpdater(stores);
    await u.apply(rows([quiz("e1", "2026-01-05T10:00:00Z", true, 2)]));
    await u.apply(rows([quiz("e2", "2026-01-06T10:00:00Z", false, 0)]));
    const [first] = [...(await ruleStates(stores)).values()];
    // The first quiz is one day before the reference (the last event): weight c = 2^(-1/h), x = -1.
    const c = 2 ** (-1 / h);
    expect(first!.eventN).toBe(2);
    const s = first!.state;
    expect(s.ref_us).toBe(Date.UTC(2026, 0, 6, 10) * 1000);
    expect(s.last_us).toBe(s.ref_us);
    expect(s.q_n).toBeCloseTo(1 + c, 14);
    expect(s.q_correct).toBeCloseTo(c, 14);
    expect(s.q_hints).toBeCloseTo(2 * c, 14);
    expect(s.q_sx).toBeCloseTo(-c, 14);
    expect(s.q_sxx).toBeCloseTo(c, 14);
    expect(s.q_sxy).toBeCloseTo(-c, 14);
    expect(s.p_n + s.v_n + s.a_n).toBe(0);
    // The rule_based row: the score as of the last event, the rule model's version, the stored block.
    const rows2 = await stores.mastery.all(["rule_based"]);
    expect(rows2).toHaveLength(1);
    const want = storedRuleRow(s, s.last_us, rule.config);
    expect(rows2[0]!.mastery_score).toBe(want.score);
    expect(rows2[0]!.model_version).toBe(rule.modelVersion);
    expect(rows2[0]!.as_of_us).toBe(s.last_us);
    expect(JSON.parse(rows2[0]!.explanation)).toEqual(JSON.parse(JSON.stringify(want.explanation)));
    // A resent event and a late one: the duplicate is not merged; the late one rebuilds the key.
    const bytes = (await stores.state.all())[0]!.state.rule!;
    const again = await u.apply(rows([quiz("e2", "2026-01-06T10:00:00Z", false, 0)]));
    expect(again[0]!.outcome).toBe("duplicate");
    expect((await stores.state.all())[0]!.state.rule).toEqual(bytes);
    await u.apply(rows([quiz("e0", "2026-01-04T10:00:00Z", true, 1)]));
    const late = [...(await ruleStates(stores)).values()][0]!;
    expect(late.eventN).toBe(3);
    expect(late.state.q_n).toBeCloseTo(1 + c + c * c, 14);
    await stores.close();
  });

  it("equals one fold of each key's events within 1e-9 and recompute finds every row equal", async () => {
    const stores = await openStreamStores({ dbPath: ":memory:" });
    const set = generateStreamEvents({ students: 8, topics: 4, events: 900, seed: 11, lateShare: 0.05 });
    await applyInBatches(newUpdater(stores), set.publishOrder, [1, 9, 60, 250]);
    const got = await ruleStates(stores);
    const want = await foldedStates(stores);
    expect(got.size).toBe(want.size);
    for (const [id, w] of want) expectClose(got.get(id)!.state, w);
    const report = await recompute(stores, models);
    expect(report.ok).toBe(true);
    expect(report.tables[1]!.compared).toBe(3 * report.keys);
    expect(report.tables[0]!.maxRuleRelDiff).toBeLessThanOrEqual(RULE_RELATIVE_TOLERANCE);
    await stores.close();
  });

  it("property: any arrival order with duplicates and late events gives the fold of all events", async () => {
    const set = generateStreamEvents({
      students: 2,
      topics: 2,
      events: 40,
      seed: 3,
      lateShare: 0,
      duplicateShare: 0,
    });
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.integer({ min: 0, max: set.events.length - 1 }), { minLength: 10, maxLength: 50 }),
        fc.integer({ min: 1, max: 12 }),
        fc.integer(),
        async (picks, batch, seed) => {
          const order = shuffledWithRepeats(set.events, picks, seed);
          const stores = await openStreamStores({ dbPath: ":memory:" });
          await applyInBatches(newUpdater(stores), order, [batch]);
          const got = await ruleStates(stores);
          const want = await foldedStates(stores);
          await stores.close();
          expect(got.size).toBe(want.size);
          for (const [id, w] of want) expectClose(got.get(id)!.state, w);
        },
      ),
      { numRuns: 8 },
    );
  }, 180_000);
});

describe("rule state in the stream, then the daily batch (embedded DuckDB)", () => {
  it("a pair the stream updated equals the full refold after the next daily run (rule rows byte for byte)", async () => {
    const T0 = Date.UTC(2026, 1, 20);
    const at = (days: number) => new Date(T0 + days * 86_400_000).toISOString();
    const before = generateStreamEvents({ students: 6, topics: 3, events: 300, seed: 17 }).events;
    // The stream's events: new ones after the batch's as-of, and late ones before it (ingested after its
    // watermark), on pairs the batch scored and on new ones.
    const streamed = [
      quiz("n1", at(0.5), true, 1),
      quiz("n2", at(0.7), false, 0),
      { ...quiz("late1", at(-2), true, 3), student_id: "student-1", topic_id: "topic-2" },
      { ...quiz("n3", at(0.6), true, 0), student_id: "student-2", topic_id: "topic-0" },
    ];
    const daily = await DuckStore.open(":memory:");
    await ingestEvents(daily, before, { pseudonymizer, now: new Date(T0) });
    await scoreRules(daily, { asOf: new Date(T0), workers: 0 });
    const since = { asOf: new Date(T0), ingestedThroughUs: await ingestWatermark(daily) };
    const stores = await openStreamStores({ dbPath: ":memory:", duck: daily });
    let t = NOW_US;
    const u = new IncrementalUpdater({ ...stores, models, nowUs: () => (t += 1000) });
    for (const e of streamed) await u.apply(fixtureRows([e], T0 * 1000 + 3_600e6));
    // The stream wrote fresh rule rows for the pairs it touched (three pairs, as of their last events).
    const streamedRows = await stores.mastery.all(["rule_based"]);
    expect(streamedRows.filter((r) => r.as_of_us > T0 * 1000)).toHaveLength(2);
    const asOf = new Date(T0 + 86_400_000);
    const day = await scoreRules(daily, { asOf, since, workers: 0 });
    expect(day.mode).toBe("incremental");
    expect(day.scored).toBe(3);
    const whole = await DuckStore.open(":memory:");
    await ingestEvents(whole, [...before, ...streamed], { pseudonymizer, now: new Date(T0) });
    await scoreRules(whole, { asOf, workers: 0 });
    const read = async (s: DuckStore) =>
      // The stored block (a pair without new events keeps its row as of T0: read time decays it, so
      // the block, not the score as of the run, is what both must share), from the text as readers see it
      // (the batch's rows store the block as numbers, the stream's as text: serving/storedExplanations.ts).
      withExplanationTexts(
        await s.all<{ student_key: string; topic_id: string; explanation: string; mastery_score: number }>(
          `SELECT student_key, topic_id, explanation, mastery_score, ${STORED_NUMBERS_SELECT}
           FROM student_mastery WHERE score_source = 'rule_based' ORDER BY student_key, topic_id`,
        ),
      ).map((r) => ({
        student_key: r.student_key,
        topic_id: r.topic_id,
        rule: JSON.stringify((JSON.parse(r.explanation) as { rule?: unknown }).rule),
      }));
    const got = await read(daily);
    expect(got.length).toBeGreaterThan(10);
    expect(got).toEqual(await read(whole));
    await stores.close();
    daily.close();
    whole.close();
  });
});

describe("rule state in the stream (PostgreSQL + Redis)", () => {
  const id = runId("rulestream");
  let drop: (() => Promise<void>) | undefined;
  afterAll(async () => drop?.());

  it("keeps the state in Redis and the rule row in PostgreSQL, equal to the replay; a second pass changes nothing", async () => {
    const svc = await serviceStores(id);
    drop = svc.drop;
    const set = generateStreamEvents({ students: 12, topics: 5, events: 1500, seed: 13 });
    const u = newUpdater(svc.stores);
    await applyInBatches(u, set.publishOrder, [200, 7, 1, 90]);
    const report = await recompute(svc.stores, models);
    expect(report.ok).toBe(true);
    expect(report.tables[1]!.compared).toBe(3 * report.keys);
    const got = await ruleStates(svc.stores);
    const want = await foldedStates(svc.stores);
    for (const [k, w] of want) expectClose(got.get(k)!.state, w);
    const before = await svc.stores.state.all();
    const again = await applyInBatches(u, set.events, [500]);
    expect(again.every((r) => r.outcome === "duplicate")).toBe(true);
    const sortKey = (x: { studentKey: string; topicId: string }) => `${x.studentKey}/${x.topicId}`;
    const sorted = <T extends { studentKey: string; topicId: string }>(xs: T[]) =>
      [...xs].sort((p, q) => (sortKey(p) < sortKey(q) ? -1 : 1));
    expect(sorted(await svc.stores.state.all())).toEqual(sorted(before));
  });
});
