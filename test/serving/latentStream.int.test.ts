import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import { ingestEvents } from "../../features/ingest.ts";
import { LatentFilter, type LatentModelJson, type LatentParams } from "../../models/latentFilter.ts";
import { decodeLatentBasis, decodeLatentState, latentDays } from "../../models/latentState.ts";
import { latentOnlyServedJson, type ServedMasteryJson } from "../../models/servedMastery.ts";
import { latentEstimates, latentEstimatesWithOffsets } from "../../serving/latentScoring.ts";
import { studentOffsetOfStates } from "../../serving/latentStream.ts";
import { decayServedRow } from "../../serving/masteryView.ts";
import { recompute } from "../../serving/recompute.ts";
import { openStreamStores, type StreamStores } from "../../serving/streamStores.ts";
import { streamModels } from "../../serving/updater.ts";
import { DuckStore } from "../../storage/duckdb.ts";
import { LATENT_TEST_PARAMS } from "../models/latentFixtures.ts";
import { generateStreamEvents, shuffledWithRepeats } from "./streamEvents.ts";
import { fixtureClock, pseudonymizer, runId, serviceStores } from "./streamHarness.ts";

/**
 * The latent filter in the stream (serving/latentStream.ts): the updater carries each key's filter state,
 * and whatever the arrival order, duplicates or late events, it is byte for byte the replay's
 * (`mastery recompute`) and gives the batch scoring's estimate (serving/latentScoring.ts).
 */

const NOW_US = Date.UTC(2026, 2, 1) * 1000;
const DAY_MS = 86_400_000;
const DIR = `/tmp/latstream/${runId("latstream")}`;
afterAll(() => rmSync(DIR, { recursive: true, force: true }));

const PARAMS: LatentParams = LATENT_TEST_PARAMS;

/** A served model directory whose score is the latent filter's (as `mastery train served` writes one). */
function servedModelDir(
  name: string,
  params: LatentParams = PARAMS,
  studentPriorSd?: number,
  studentLearnLoading?: number,
  extra: Partial<LatentModelJson> = {},
): string {
  const latent: LatentModelJson = {
    ...extra,
    ...(studentPriorSd === undefined ? {} : { studentPriorSd }),
    ...(studentLearnLoading === undefined ? {} : { studentLearnLoading }),
    version: 1,
    bins: 40,
    params,
    // With a student effect, the topics it covers (LatentFilter.studentTopic): topic-4 is left out.
    topicPriorMean:
      studentPriorSd === undefined
        ? { "topic-1": 0.55 }
        : { "topic-0": 0.35, "topic-1": 0.55, "topic-2": 0.4, "topic-3": 0.3 },
    fit: { logLikPerObs: -0.6, observations: 1000, sequences: 50, evaluations: 100 },
    intervalScale: 1.2,
  };
  const json: ServedMasteryJson = latentOnlyServedJson(latent, {
    trainPairs: 100,
    topics: { "topic-0": { guess: 0.25, slip: 0.1, halfLifeDays: 15, base: 0.55 } },
  });
  const dir = join(DIR, name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "model.json"), JSON.stringify(json));
  return dir;
}

/**
 * Applies the events through the stream updater in batches of several sizes (late events replay keys),
 * then checks `recompute` finds every learner_state and student_mastery row equal (bkt, elo, latent and
 * served per key).
 */
async function streamEqualsRecompute(
  models: ReturnType<typeof streamModels>,
  set: { publishOrder: readonly Record<string, unknown>[] },
) {
  const duck = await DuckStore.open(":memory:");
  const stores = await openStreamStores({ dbPath: ":memory:", duck });
  const results = await applyInBatches(newUpdater(stores, models), set.publishOrder, [1, 9, 60, 250]);
  expect(results.some((r) => r.outcome === "replayed")).toBe(true);
  const report = await recompute(stores, models);
  expect(clean(report)).toEqual([
    ["learner_state", 0, 0, 0, 0],
    ["student_mastery", 0, 0, 0, 0],
  ]);
  expect(report.tables[1]!.compared).toBe(4 * report.keys);
  return { duck, stores, report };
}

const { rows, newUpdater, applyInBatches } = fixtureClock(NOW_US);

const quiz = (id: string, ts: string, correct: boolean) => ({
  event_id: id,
  type: "quiz_attempt",
  student_id: "alice",
  topic_id: "topic-0",
  timestamp: ts,
  question_id: "q1",
  is_correct: correct,
});

const clean = (report: Awaited<ReturnType<typeof recompute>>) =>
  report.tables.map((t) => [t.table, t.missing, t.extra, t.differences, t.maxAbsDiff]);

describe("latent filter in the stream (embedded DuckDB)", () => {
  it("moves the served score with each answer, as of the event, with interval, P(correct) and factors", async () => {
    const models = streamModels({ servedModelDir: servedModelDir("a"), ruleConfigPath: null });
    expect(models.latent?.served).not.toBeNull();
    const duck = await DuckStore.open(":memory:");
    const stores = await openStreamStores({ dbPath: ":memory:", duck });
    const u = newUpdater(stores, models);
    const served = async () => {
      const r = await stores.mastery.forStudent(pseudonymizer.studentKey("alice"));
      return {
        served: r.find((x) => x.score_source === "served")!,
        latent: r.find((x) => x.score_source === "latent")!,
      };
    };
    await u.apply(rows([quiz("e1", "2026-01-05T10:00:00Z", true)]));
    const a = await served();
    await u.apply(rows([quiz("e2", "2026-01-05T10:05:00Z", true)]));
    const b = await served();
    await u.apply(rows([quiz("e3", "2026-01-06T10:00:00Z", false)]));
    const c = await served();
    // Two right answers move it up, a wrong one down; as_of is the last event's time.
    expect(b.served.mastery_score).toBeGreaterThan(a.served.mastery_score);
    expect(c.served.mastery_score).toBeLessThan(b.served.mastery_score);
    expect(b.latent.mastery_score).toBeGreaterThan(a.latent.mastery_score);
    expect(c.served.as_of_us).toBe(Date.UTC(2026, 0, 6, 10) * 1000);
    const ex = JSON.parse(c.served.explanation) as {
      interval: { lo: number; hi: number };
      pCorrect: number;
      evidence: { kind: string; attempts: number; daysSinceLast: number };
      decay: { halfLifeDays: number };
    };
    expect(ex.interval.lo).toBeLessThan(c.served.mastery_score);
    expect(ex.interval.hi).toBeGreaterThan(c.served.mastery_score);
    expect(ex.evidence).toEqual({ kind: "measured", attempts: 3, daysSinceLast: 0 });
    expect(ex.pCorrect).toBeGreaterThan(PARAMS.guess);
    expect(ex.decay.halfLifeDays).toBe(PARAMS.halfLifeDays);
    expect(c.served.model_version).toMatch(/^served-[0-9a-f]{12}$/);
    await stores.close();
    duck.close();
  });

  it("equals the replay (recompute) byte for byte and the batch scoring, whatever the arrival order", async () => {
    const models = streamModels({ servedModelDir: servedModelDir("b"), ruleConfigPath: null });
    const set = generateStreamEvents({ students: 10, topics: 4, events: 1200, seed: 5, lateShare: 0.05 });
    const { duck, stores } = await streamEqualsRecompute(models, set);
    const states = await stores.state.all();
    expect(states.every((k) => k.state.latent?.length === 264)).toBe(true);

    // The batch scoring (`mastery score served`'s filter) on a separate store fed by features/ingest.ts.
    const batch = await DuckStore.open(":memory:");
    await ingestEvents(batch, set.events, { pseudonymizer, now: new Date(NOW_US / 1000) });
    const asOf = new Date(NOW_US / 1000);
    const est = await latentEstimates(batch, models.latent!.filter, asOf);
    expect(est.size).toBe(states.length);
    for (const k of states) {
      const s = decodeLatentState(k.state.latent!, 40)!;
      expect(models.latent!.filter.estimate(s, latentDays(NOW_US))).toEqual(
        est.get(`${k.studentKey}|${k.topicId}`),
      );
    }
    batch.close();
    await stores.close();
    duck.close();
  });

  it("property: any arrival order with duplicates and late events gives the sorted replay's filter bytes", async () => {
    const models = streamModels({ servedModelDir: servedModelDir("c"), ruleConfigPath: null });
    const set = generateStreamEvents({
      students: 2,
      topics: 2,
      events: 40,
      seed: 3,
      lateShare: 0,
      duplicateShare: 0,
    });
    const reference = await openStreamStores({ dbPath: ":memory:" });
    await newUpdater(reference, models).apply(rows(set.events));
    const byKey = (xs: { studentKey: string; topicId: string; state: { latent?: Uint8Array | null } }[]) =>
      Object.fromEntries(xs.map((k) => [`${k.studentKey}|${k.topicId}`, k.state.latent]));
    const expected = byKey(await reference.state.all());
    await reference.close();
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.integer({ min: 0, max: set.events.length - 1 }), { minLength: 40, maxLength: 70 }),
        fc.integer({ min: 1, max: 12 }),
        fc.integer(),
        async (picks, batch, seed) => {
          // Every event at least once, some several times, in a shuffled order (so some arrive late).
          const order = shuffledWithRepeats(set.events, picks, seed);
          const stores = await openStreamStores({ dbPath: ":memory:" });
          await applyInBatches(newUpdater(stores, models), order, [batch]);
          const got = byKey(await stores.state.all());
          await stores.close();
          expect(got).toEqual(expected);
        },
      ),
      { numRuns: 6 },
    );
  }, 180_000);

  it("with a student effect: one answer moves the student's other topics' scores, in the same batch", async () => {
    const models = streamModels({
      servedModelDir: servedModelDir("student-a", PARAMS, 1.5),
      ruleConfigPath: null,
    });
    expect(models.latent!.parts).toBe(7);
    const stores = await openStreamStores({ dbPath: ":memory:" });
    const u = newUpdater(stores, models);
    const latentOf = async (topic: string) =>
      (await stores.mastery.forStudent(pseudonymizer.studentKey("alice"))).find(
        (x) => x.score_source === "latent" && x.topic_id === topic,
      )!;
    await u.apply(rows([{ ...quiz("e1", "2026-01-05T10:00:00Z", true), topic_id: "topic-1" }]));
    const before = await latentOf("topic-1");
    // Right answers on topic-0 raise the student's offset: topic-1's score rises without a new topic-1 event.
    await u.apply(
      rows([
        quiz("e2", "2026-01-06T10:00:00Z", true),
        quiz("e3", "2026-01-06T10:01:00Z", true),
        quiz("e4", "2026-01-06T10:02:00Z", true),
      ]),
    );
    const after = await latentOf("topic-1");
    expect(after.mastery_score).toBeGreaterThan(before.mastery_score);
    expect(after.as_of_us).toBe(before.as_of_us);
    const states = await stores.state.all();
    expect(states.map((k) => k.state.latent?.length)).toEqual([1768, 1768]);
    expect((await recompute(stores, models)).ok).toBe(true);
    await stores.close();
  });

  // Both forgetting forms (round 9's durable share decays towards each basis part's own prior mean), round
  // 14's learning loading (each basis part learns at its offset's rates), and round 15's forgetting spread (a
  // share of each cell's mass kept whole or lost to the floor).
  for (const [label, params, loading, extra] of [
    ["global floor", PARAMS, undefined, undefined],
    ["durable share", { ...PARAMS, durableShare: 0.4, floor: 0 }, undefined, undefined],
    ["learning loading", PARAMS, 1, undefined],
    ["forgetting spread", { ...PARAMS, forgetSpread: 0.5 }, undefined, undefined],
    // Round 16: the spread between events, the deterministic decay from the last event to the scoring time.
    [
      "forgetting spread, decay as of",
      { ...PARAMS, forgetSpread: 0.5, asOfForgetting: "decay" },
      undefined,
      undefined,
    ],
    // Round 18: round 14's learning loading and round 16's spread with the decay as-of step, together (each
    // basis part learns at its offset's rates and forgets with the spread).
    [
      "learning loading, forgetting spread, decay as of",
      { ...PARAMS, forgetSpread: 0.5, asOfForgetting: "decay" },
      1,
      undefined,
    ],
    // Round 17: the centre shifted by evidence band (applied in `estimate`, after the state).
    [
      "centre shift by evidence, decay as of",
      { ...PARAMS, forgetSpread: 0.5, asOfForgetting: "decay" },
      undefined,
      {
        centreShiftByEvidence: [
          { from: 0, shift: -0.02, delta: 0, pairs: 1, answers: 1 },
          { from: 5, shift: 0.03, delta: 0, pairs: 1, answers: 1 },
        ],
      },
    ],
    // Round 19: round 18's three with the student part reined in (every offset times 0.6, offsetFromSummary).
    [
      "learning loading, forgetting spread, decay as of, student scale 0.6",
      { ...PARAMS, forgetSpread: 0.5, asOfForgetting: "decay" },
      1,
      { studentOffsetScale: 0.6 },
    ],
  ] as const)
    it(`with a student effect: equals the replay byte for byte and the batch scoring, whatever the arrival order (${label})`, async () => {
      const models = streamModels({
        servedModelDir: servedModelDir(
          `student-b-${label.replace(" ", "-")}`,
          params,
          1.5,
          loading,
          extra === undefined
            ? {}
            : {
                ...("centreShiftByEvidence" in extra
                  ? { centreShiftByEvidence: [...extra.centreShiftByEvidence] }
                  : {}),
                ...("studentOffsetScale" in extra ? { studentOffsetScale: extra.studentOffsetScale } : {}),
              },
        ),
        ruleConfigPath: null,
      });
      const set = generateStreamEvents({ students: 8, topics: 5, events: 900, seed: 7, lateShare: 0.05 });
      const { duck, stores } = await streamEqualsRecompute(models, set);
      const states = await stores.state.all();
      expect(states.every((k) => k.state.latent?.length === 1768)).toBe(true);

      // The batch scoring (`mastery score served`'s filter, serving/latentScoring.ts) on its own store.
      const batch = await DuckStore.open(":memory:");
      await ingestEvents(batch, set.events, { pseudonymizer, now: new Date(NOW_US / 1000) });
      const f = models.latent!.filter;
      // Round 7's widening by the offset's uncertainty is batch only: compared without it.
      const { estimates, offsets } = await latentEstimatesWithOffsets(batch, f, new Date(NOW_US / 1000), {
        offsetSd: false,
      });
      expect(estimates.size).toBe(states.length);
      const students = new Set(states.map((k) => k.studentKey));
      let moved = 0;
      for (const st of students) {
        const mine = states.filter((k) => k.studentKey === st);
        const off = studentOffsetOfStates(models.latent, mine);
        expect(off).toBe(offsets.get(st));
        if (Math.abs(off) > 0.05) moved++;
        for (const k of mine) {
          const b = decodeLatentBasis(k.state.latent!, 40, 7)!;
          expect(f.estimate(f.mixAt(b, f.offsetFor(k.topicId, off)), latentDays(NOW_US), k.topicId)).toEqual(
            estimates.get(`${k.studentKey}|${k.topicId}`),
          );
        }
      }
      expect(moved).toBeGreaterThan(0);
      if (extra !== undefined && "studentOffsetScale" in extra) {
        // The reined-in offset is the scale times the plain model's, on the same stored states.
        const { studentOffsetScale: _scale, ...plainJson } = f.json;
        const plain = new LatentFilter(plainJson);
        for (const st of students) {
          const parts = states
            .filter((k) => k.studentKey === st)
            .map((k) => ({ topic: k.topicId, state: decodeLatentBasis(k.state.latent!, 40, 7)! }));
          expect(f.studentOffsetOf(parts)).toBe(extra.studentOffsetScale * plain.studentOffsetOf(parts));
        }
      }
      if ("asOfForgetting" in params) {
        // The stream stores each latent row as of the pair's last event; GET /mastery's decay of it to the
        // batch's scoring time equals the batch's estimate there (stored times are whole microseconds, the
        // request-time decay reads milliseconds: equal to ~1e-10).
        let checked = 0;
        for (const r of await stores.mastery.all(["latent"])) {
          const want = estimates.get(`${r.student_key}|${r.topic_id}`)!;
          const got = decayServedRow(
            {
              score_source: r.score_source,
              as_of: new Date(r.as_of_us / 1000),
              mastery_score: r.mastery_score,
              explanation: r.explanation,
            },
            new Date(NOW_US / 1000),
          );
          const e = JSON.parse(got.explanation) as { interval: { lo: number; hi: number }; pCorrect: number };
          expect(got.mastery_score).toBeCloseTo(want.score, 8);
          expect(e.interval.lo).toBeCloseTo(want.lo, 8);
          expect(e.interval.hi).toBeCloseTo(want.hi, 8);
          expect(e.pCorrect).toBeCloseTo(want.pCorrect, 8);
          if (NOW_US / 1000 - r.as_of_us / 1000 > DAY_MS) checked++;
        }
        expect(checked).toBeGreaterThan(0);
      }
      batch.close();
      await stores.close();
      duck.close();
    });

  it("property: with a student effect, any arrival order with duplicates and late events gives the replay's states and scores", async () => {
    const models = streamModels({
      servedModelDir: servedModelDir("student-c", PARAMS, 1.5),
      ruleConfigPath: null,
    });
    const set = generateStreamEvents({
      students: 2,
      topics: 3,
      events: 40,
      seed: 4,
      lateShare: 0,
      duplicateShare: 0,
    });
    const reference = await openStreamStores({ dbPath: ":memory:" });
    await newUpdater(reference, models).apply(rows(set.events));
    const scoresOf = async (st: StreamStores) =>
      Object.fromEntries(
        (await st.mastery.all(["latent", "served"])).map((r) => [
          `${r.student_key}|${r.topic_id}|${r.score_source}`,
          [r.mastery_score, r.as_of_us, r.explanation],
        ]),
      );
    const expected = await scoresOf(reference);
    expect((await recompute(reference, models)).ok).toBe(true);
    await reference.close();
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.integer({ min: 0, max: set.events.length - 1 }), { minLength: 40, maxLength: 70 }),
        fc.integer({ min: 1, max: 12 }),
        fc.integer(),
        async (picks, batch, seed) => {
          const order = shuffledWithRepeats(set.events, picks, seed);
          const stores = await openStreamStores({ dbPath: ":memory:" });
          await applyInBatches(newUpdater(stores, models), order, [batch]);
          const report = await recompute(stores, models);
          const got = await scoresOf(stores);
          await stores.close();
          expect(clean(report)).toEqual([
            ["learner_state", 0, 0, 0, 0],
            ["student_mastery", 0, 0, 0, 0],
          ]);
          expect(got).toEqual(expected);
        },
      ),
      { numRuns: 6 },
    );
  }, 180_000);

  it("a state built by another latent model (or none) is rebuilt, not continued", async () => {
    const a = streamModels({ servedModelDir: servedModelDir("d1"), ruleConfigPath: null });
    const b = streamModels({
      servedModelDir: servedModelDir("d2", { ...PARAMS, learn: [0.2, 0.1, 0.1, 0.1, 0.1] }),
      ruleConfigPath: null,
    });
    expect(a.latent!.latentVersion).not.toBe(b.latent!.latentVersion);
    const stores = await openStreamStores({ dbPath: ":memory:" });
    await newUpdater(stores, { ...a, latent: undefined }).apply(
      rows([quiz("e1", "2026-01-05T10:00:00Z", true)]),
    );
    expect((await stores.state.all())[0]!.state.latent).toBeNull();
    const r1 = await newUpdater(stores, a).apply(rows([quiz("e2", "2026-01-05T11:00:00Z", true)]));
    expect(r1[0]!.outcome).toBe("replayed");
    const r2 = await newUpdater(stores, a).apply(rows([quiz("e3", "2026-01-05T12:00:00Z", false)]));
    expect(r2[0]!.outcome).toBe("applied");
    const r3 = await newUpdater(stores, b).apply(rows([quiz("e4", "2026-01-05T13:00:00Z", true)]));
    expect(r3[0]!.outcome).toBe("replayed");
    expect((await recompute(stores, b)).ok).toBe(true);
    expect((await recompute(stores, a)).ok).toBe(false);
    await stores.close();
  });
});

describe("latent filter in the stream (PostgreSQL + Redis)", () => {
  const id = runId("latstream");
  let drop: (() => Promise<void>) | undefined;
  afterAll(async () => drop?.());

  it("stores the state in Redis and equals the replay byte for byte; a second pass changes nothing", async () => {
    const models = streamModels({ servedModelDir: servedModelDir("pg"), ruleConfigPath: null });
    const svc = await serviceStores(id);
    drop = svc.drop;
    const set = generateStreamEvents({ students: 12, topics: 5, events: 2000, seed: 13 });
    const u = newUpdater(svc.stores, models);
    await applyInBatches(u, set.publishOrder, [200, 7, 1, 90]);
    const report = await recompute(svc.stores, models);
    expect(report.tables.map((t) => [t.table, t.compared, t.differences, t.maxAbsDiff])).toEqual([
      ["learner_state", report.keys, 0, 0],
      ["student_mastery", 4 * report.keys, 0, 0],
    ]);
    const before = await svc.stores.state.all();
    expect(before.every((k) => k.state.latent?.length === 264)).toBe(true);
    const again = await applyInBatches(u, set.events, [500]);
    expect(again.every((r) => r.outcome === "duplicate")).toBe(true);
    const sortKey = (x: { studentKey: string; topicId: string }) => `${x.studentKey}/${x.topicId}`;
    const sorted = <T extends { studentKey: string; topicId: string }>(xs: T[]) =>
      [...xs].sort((p, q) => (sortKey(p) < sortKey(q) ? -1 : 1));
    expect(sorted(await svc.stores.state.all())).toEqual(sorted(before));
  });

  it("with a student effect: equals the replay byte for byte (states, scores)", async () => {
    const models = streamModels({
      servedModelDir: servedModelDir("pg-student", PARAMS, 1.5),
      ruleConfigPath: null,
    });
    const svc = await serviceStores(`${id}s`);
    const prev = drop;
    drop = async () => {
      await prev?.();
      await svc.drop();
    };
    const set = generateStreamEvents({ students: 8, topics: 5, events: 900, seed: 17 });
    await applyInBatches(newUpdater(svc.stores, models), set.publishOrder, [200, 7, 1, 90]);
    const report = await recompute(svc.stores, models);
    expect(report.tables.map((t) => [t.table, t.compared, t.differences, t.maxAbsDiff])).toEqual([
      ["learner_state", report.keys, 0, 0],
      ["student_mastery", 4 * report.keys, 0, 0],
    ]);
    expect((await svc.stores.state.all()).every((k) => k.state.latent?.length === 1768)).toBe(true);
  });
});
