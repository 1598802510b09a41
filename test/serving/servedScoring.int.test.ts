import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Pseudonymizer } from "../../features/pseudonymize.ts";
import { explanationTotal } from "../../models/explanation.ts";
import { LATENT_FACTORS } from "../../models/latentFilter.ts";
import { ServedMastery } from "../../models/servedMastery.ts";
import { readHistory, readStudentMastery } from "../../serving/masteryView.ts";
import { runPipeline } from "../../serving/pipeline.ts";
import {
  loadServedModel,
  SERVED_EXPORT_COLUMNS,
  SERVED_SOURCE,
  scoreServed,
  servedExportCsv,
  servedExportRows,
} from "../../serving/servedScoring.ts";
import { trainServed } from "../../serving/servedTraining.ts";
import { DuckStore } from "../../storage/duckdb.ts";

// A small generated school through the real pipeline (DuckDB file), then `train served` + `score served`.
let work: string;
let dbPath: string;
let asOf: Date;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "served-int-"));
  dbPath = join(work, "mastery.duckdb");
  const store = await DuckStore.open(dbPath);
  try {
    const res = await runPipeline({
      store,
      pseudonymizer: new Pseudonymizer("served-int-test-key-0123456789"),
      dataDir: join(work, "data"),
      generate: {
        students: 150,
        topics: 16,
        days: 28,
        seed: 5,
        start: "2026-09-01",
        eventsPerDay: 3.4,
        truthEvery: 7,
        outDir: join(work, "data"),
        workers: 0,
      },
    });
    asOf = res.asOf;
  } finally {
    store.close();
  }
}, 120_000);

afterAll(() => rmSync(work, { recursive: true, force: true }));

describe("served mastery estimate on a generated store", () => {
  it("trains point in time, scores every pair with an interval and evidence, and GET /mastery serves it", {
    timeout: 240_000,
  }, async () => {
    const out = join(work, "served-model");
    // A short latent-filter fit (the test checks the plumbing; bench/validity.bench.ts measures the fit).
    const trained = await trainServed({
      dbPath,
      out,
      labelDays: 7,
      latentFit: { maxEvents: 6000, maxEvaluations: 120 },
    });
    expect(trained.latentFit).not.toBeNull();
    expect(trained.model.json.servedFrom).toBe("latent");
    expect(trained.labelledPairs).toBeGreaterThanOrEqual(50);
    expect(trained.snapshot.getTime()).toBe(trained.labelEnd.getTime() - 7 * 86_400_000);
    // The stack leans on the rule score: the strongest single source on this generator.
    const j = trained.model.toJSON();
    expect(j.weights[j.inputs.indexOf("rule_score")]!).toBeGreaterThan(0);
    const { model, version } = loadServedModel(out);
    expect(model.toJSON().weights).toEqual(j.weights);
    expect(model.toJSON().residualQuantiles).toEqual(j.residualQuantiles);

    const store = await DuckStore.open(dbPath);
    try {
      const res = await scoreServed(store, model, version, { asOf });
      const pairs = await store.one<{ n: bigint }>(
        "SELECT count(*) AS n FROM (SELECT DISTINCT student_key, topic_id FROM student_mastery WHERE score_source <> 'served')",
      );
      expect(res.scored).toBeGreaterThanOrEqual(Number(pairs?.n ?? 0n));
      const row = await store.one<{ student_key: string }>(
        `SELECT student_key FROM student_mastery WHERE score_source = $1 ORDER BY student_key LIMIT 1`,
        [SERVED_SOURCE],
      );
      const view = await readStudentMastery(store, row!.student_key);
      expect(view.topics.length).toBeGreaterThan(0);
      for (const t of view.topics) {
        expect(t.scoreSource).toBe(SERVED_SOURCE);
        expect(t.interval).not.toBeNull();
        expect(t.interval!.lo).toBeLessThanOrEqual(t.score + 1e-12);
        expect(t.interval!.hi).toBeGreaterThanOrEqual(t.score - 1e-12);
        expect(["measured", "indirect", "prior"]).toContain(t.evidence!.kind);
        expect(explanationTotal(t.explanation)).toBeCloseTo(t.score, 9);
        // P(correct on an average next item) next to the mastery-scale score.
        expect(t.pCorrect).not.toBeNull();
        expect(t.pCorrect!).toBeGreaterThanOrEqual(0);
        expect(t.pCorrect!).toBeLessThanOrEqual(1);
      }
      // GET /mastery as of a later request time, with no new scoring run: the stored served scores forget.
      const floorOf = async (tid: string) =>
        (
          JSON.parse(
            (await store.one<{ explanation: string }>(
              "SELECT explanation FROM student_mastery WHERE student_key = $1 AND topic_id = $2 AND score_source = 'served'",
              [row!.student_key, tid],
            ))!.explanation,
          ) as { decay: { floor: number; halfLifeDays: number } }
        ).decay;
      const inAMonth = new Date(asOf.getTime() + 30 * 86_400_000);
      const decayed = await readStudentMastery(store, row!.student_key, { now: inAMonth });
      for (const t of decayed.topics) {
        const before = view.topics.find((x) => x.topicId === t.topicId)!;
        const d = await floorOf(t.topicId);
        expect(t.asOf).toBe(inAMonth.toISOString());
        expect(t.score).toBeCloseTo(d.floor + (before.score - d.floor) * 2 ** (-30 / d.halfLifeDays), 9);
        if (before.evidence!.daysSinceLast !== null)
          expect(t.evidence!.daysSinceLast! - before.evidence!.daysSinceLast!).toBeCloseTo(30, 6);
        expect(explanationTotal(t.explanation)).toBeCloseTo(t.score, 9);
      }
      // The history as of the same request time ends with that decayed score, marked as projected.
      const first = decayed.topics[0]!;
      const hist = await readHistory(store, row!.student_key, first.topicId, inAMonth);
      const tail = hist.at(-1)!;
      expect(tail.projected).toBe(true);
      expect(tail.score).toBeCloseTo(first.score, 12);
      expect(tail.asOf).toBe(inAMonth.toISOString());
      expect(hist.slice(0, -1).every((h) => h.projected === undefined)).toBe(true);
      expect((await readHistory(store, row!.student_key, first.topicId)).length).toBe(hist.length - 1);
      // The analysts' export as of the same time: one row per scored pair, the same scores, pseudonymous keys.
      const exported = await servedExportRows(store, model, asOf);
      expect(exported.length).toBe(res.scored);
      const one = exported.find(
        (r) => r.student_key === row!.student_key && r.topic_id === view.topics[0]!.topicId,
      )!;
      expect(one.score).toBeCloseTo(view.topics[0]!.score, 12);
      expect(one.lo).toBeCloseTo(view.topics[0]!.interval!.lo, 12);
      expect(one.p_correct).toBeCloseTo(view.topics[0]!.pCorrect!, 12);
      // Served from the latent filter: the mix is its factors, and they sum with the prior to the score.
      expect(Object.keys(JSON.parse(one.source_mix) as object).sort()).toEqual([...LATENT_FACTORS].sort());
      // The filter's own estimate is stored next to it (score_source 'latent'), its explanation summing too.
      const latentRows = await store.all<{ mastery_score: number; explanation: string }>(
        "SELECT mastery_score, explanation FROM student_mastery WHERE score_source = 'latent'",
      );
      expect(latentRows.length).toBeGreaterThanOrEqual(res.scored);
      for (const r of latentRows.slice(0, 200)) {
        const x = JSON.parse(r.explanation) as Parameters<typeof explanationTotal>[0] & {
          interval: { lo: number; hi: number };
        };
        expect(explanationTotal(x)).toBeCloseTo(r.mastery_score, 9);
        expect(x.interval.lo).toBeLessThanOrEqual(r.mastery_score + 1e-9);
        expect(x.interval.hi).toBeGreaterThanOrEqual(r.mastery_score - 1e-9);
      }
      const csv = servedExportCsv(exported).trimEnd().split("\n");
      expect(csv[0]).toBe(SERVED_EXPORT_COLUMNS.join(","));
      expect(csv.length).toBe(exported.length + 1);
      expect(csv.join("\n")).not.toMatch(/stu-\d/);
      // Scoring later with no new events: days since last evidence grow by exactly the gap.
      const later = new Date(asOf.getTime() + 10 * 86_400_000);
      await scoreServed(store, model, version, { asOf: later });
      const view2 = await readStudentMastery(store, row!.student_key);
      for (const t of view2.topics) {
        const before = view.topics.find((x) => x.topicId === t.topicId)!;
        if (before.evidence!.daysSinceLast !== null)
          expect(t.evidence!.daysSinceLast! - before.evidence!.daysSinceLast!).toBeCloseTo(10, 6);
        expect(t.asOf).toBe(later.toISOString());
      }
    } finally {
      store.close();
    }
  });

  it("refuses a model of another kind with a message saying to refit", () => {
    const bad = { ...trainedShape(), inputs: ["x"] };
    expect(() => ServedMastery.fromJSON(bad as never)).toThrow(/refit/);
  });
});

function trainedShape() {
  return {
    kind: "served-mastery",
    version: 1,
    inputs: [],
    means: [],
    weights: [],
    intercept: 0,
    residualQuantiles: [],
    ridge: 0,
    trainPairs: 0,
  };
}
