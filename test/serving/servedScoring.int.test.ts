import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Pseudonymizer } from "../../features/pseudonymize.ts";
import { easeShare } from "../../models/anchorEase.ts";
import { explanationTotal } from "../../models/explanation.ts";
import { LATENT_FACTORS } from "../../models/latentFilter.ts";
import { ServedMastery } from "../../models/servedMastery.ts";
import { loadServingConfig } from "../../serving/app.ts";
import { PgMasteryReadStore } from "../../serving/masteryReadStore.ts";
import { readHistory, readStudentMastery } from "../../serving/masteryView.ts";
import { runPipeline } from "../../serving/pipeline.ts";
import { loadPairAnswers } from "../../serving/servedInputs.ts";
import {
  loadServedModel,
  publishServedScores,
  SERVED_EXPORT_COLUMNS,
  SERVED_SOURCE,
  scoreServed,
  servedExportCsv,
  servedExportRows,
} from "../../serving/servedScoring.ts";
import { trainServed } from "../../serving/servedTraining.ts";
import { DuckStore } from "../../storage/duckdb.ts";
import { PgMasteryStore } from "../../storage/masteryStore.ts";
import { PgStore } from "../../storage/postgres.ts";
import { DuckStateStore } from "../../storage/stateStore.ts";

const PG_URL = process.env.MASTERY_TEST_PG_URL ?? "postgres://postgres@127.0.0.1:5432/test";
const PG_SCHEMA = `valid5_served_${process.pid}`;

// A small generated school through the real pipeline (DuckDB file), then `train served` + `score served`.
let work: string;
let dbPath: string;
let asOf: Date;

const ingestProgress: [number, number][] = [];

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
      onProgress: (step, done, total) => {
        if (step === "ingest") ingestProgress.push([done, total]);
      },
    });
    asOf = res.asOf;
  } finally {
    store.close();
  }
}, 120_000);

afterAll(() => rmSync(work, { recursive: true, force: true }));

describe("served mastery estimate on a generated store", () => {
  it("the pipeline's ingest progress counts 4 phases per event file and the roster, and ends at its total", () => {
    // 5 event files (topics.json reports no phases) x 4 + roster.csv.
    expect(ingestProgress.map(([, total]) => total)).toEqual(Array(21).fill(21));
    expect(ingestProgress.map(([done]) => done)).toEqual(Array.from({ length: 21 }, (_, i) => i + 1));
  });

  it("trains point in time, scores every pair with an interval and evidence, and GET /mastery serves it", {
    timeout: 240_000,
  }, async () => {
    const out = join(work, "served-model");
    // A short latent-filter fit (the test checks the plumbing; bench/validity.bench.ts measures the fit).
    const trained = await trainServed({
      dbPath,
      out,
      labelDays: 7,
      // The linear emission named: the P(correct) check below is its closed form (auto, the default, is tested in test/models/latentFilter.fit.int.test.ts).
      latentFit: { maxEvents: 6000, maxEvaluations: 120, emission: "linear" },
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
      // Round 7: the pair-centred anchor is stored and fitted on the snapshot's pairs, so the typical pair
      // (mean logit of the served scores as of the cut, one week later) lands near 0.5.
      const anchor = model.json.anchor!;
      expect(anchor.method).toBe("pair-centred");
      expect(anchor.base).toBeGreaterThan(0);
      expect(anchor.base).toBeLessThan(1);
      expect(anchor.sd).toBeGreaterThanOrEqual(0);
      // Round 8: the interval carries the ease share of the between-topic sd, estimated on the answers
      // before the snapshot (models/anchorEase.ts); the same estimate recomputed from the store.
      const ease = easeShare(await loadPairAnswers(store, trained.snapshot));
      expect(anchor.easeShare).toBe(ease.share);
      expect(anchor.easeTopics).toBe(ease.topics);
      expect(anchor.sd).toBeCloseTo(anchor.betweenSd! * Math.sqrt(ease.share), 12);
      const m = await store.one<{ z: number }>(
        "SELECT avg(ln(greatest(mastery_score, 1e-3) / greatest(1 - mastery_score, 1e-3))) AS z FROM student_mastery WHERE score_source = $1",
        [SERVED_SOURCE],
      );
      expect(Math.abs(Number(m?.z))).toBeLessThan(0.25);
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

  it("every served score carries interval, P(correct) and evidence: 'served' and 'latent', GET /mastery with the shipped config, history, on the embedded store and on PostgreSQL", {
    timeout: 120_000,
  }, async () => {
    // Runs after the test above (same file, in order): the store holds its served and latent runs.
    const { model } = loadServedModel(join(work, "served-model"));
    const params = model.json.latent!.params;
    const store = await DuckStore.open(dbPath);
    const pg = await PgStore.open(PG_URL, { schema: PG_SCHEMA });
    try {
      const last = await store.one<{ ms: number }>(
        "SELECT epoch_ms(max(as_of))::DOUBLE AS ms FROM student_mastery WHERE score_source = 'served'",
      );
      const runAsOf = new Date(Number(last!.ms));
      const row = await store.one<{ student_key: string }>(
        "SELECT student_key FROM student_mastery WHERE score_source = 'served' ORDER BY student_key LIMIT 1",
      );
      const key = row!.student_key;
      // The order `mastery serve` uses (config/serving.yaml), not the code's default.
      const order = loadServingConfig().scoreSources;
      const served = await readStudentMastery(store, key, { sourceOrder: order });
      const latent = await readStudentMastery(store, key, { sourceOrder: ["latent"] });
      // Evidence counted from the raw events themselves: graded observations before the run's as_of.
      const counted = new Map(
        (
          await store.all<{ topic_id: string; n: number; last: number }>(
            `SELECT topic_id, sum(CASE WHEN type = 'quiz_attempt' AND is_correct IS NOT NULL THEN 1
                                       WHEN type = 'practice' AND attempts > 0 THEN attempts
                                       WHEN type = 'assignment' AND score_pct IS NOT NULL THEN 1 ELSE 0 END)::DOUBLE AS n,
                    max(epoch(ts))::DOUBLE AS last
             FROM (SELECT DISTINCT ON (event_id, student_key, topic_id) * FROM raw_events
                   WHERE student_key = $1 AND ts < $2::TIMESTAMP ORDER BY event_id, student_key, topic_id, ts)
             GROUP BY topic_id`,
            [key, runAsOf.toISOString()],
          )
        ).map((r) => [r.topic_id, { n: Number(r.n), last: Number(r.last) }]),
      );
      expect(served.topics.length).toBeGreaterThan(3);
      for (const t of served.topics) {
        expect(t.scoreSource).toBe(SERVED_SOURCE);
        const l = latent.topics.find((x) => x.topicId === t.topicId)!;
        expect(l.scoreSource).toBe("latent");
        for (const x of [t, l]) {
          expect(x.interval!.lo).toBeLessThanOrEqual(x.score + 1e-12);
          expect(x.interval!.hi).toBeGreaterThanOrEqual(x.score - 1e-12);
          expect(x.interval!.hi - x.interval!.lo).toBeGreaterThan(0);
          expect(x.interval!.level).toBe(0.8);
        }
        // P(correct) is the filter's emission averaged over the posterior: with the linear emission, the emission at
        // the posterior mean (up to the float32 state's rounding), on both sources.
        expect(l.pCorrect!).toBeCloseTo(params.guess + (1 - params.guess - params.slip) * l.score, 6);
        expect(t.pCorrect!).toBeCloseTo(l.pCorrect!, 12);
        const c = counted.get(t.topicId);
        const days = c === undefined ? null : (runAsOf.getTime() / 1000 - c.last) / 86_400;
        for (const x of [t, l]) {
          expect(x.evidence!.attempts).toBe(c?.n ?? 0);
          expect(x.evidence!.kind).toBe(
            (c?.n ?? 0) > 0 ? "measured" : c === undefined ? "prior" : "indirect",
          );
          if (days === null) expect(x.evidence!.daysSinceLast).toBeNull();
          else expect(x.evidence!.daysSinceLast!).toBeCloseTo(days, 6);
        }
      }
      // The latent source forgets at read time too, with the filter's own half-life and floor: the global one
      // (the default fit), or with the durable-share forgetting (opt-in) each row's own (the filter's mean after
      // a long gap, between the durable share of the score and the score; exact against the filter in
      // test/models/latentFilter.test.ts).
      const later = new Date(runAsOf.getTime() + 30 * 86_400_000);
      const latentLater = await readStudentMastery(store, key, { sourceOrder: ["latent"], now: later });
      for (const t of latentLater.topics) {
        const before = latent.topics.find((x) => x.topicId === t.topicId)!;
        const stored = JSON.parse(
          (await store.one<{ explanation: string }>(
            `SELECT explanation FROM student_mastery WHERE student_key = $1 AND topic_id = $2
               AND score_source = 'latent' AND as_of = $3::TIMESTAMP`,
            [key, t.topicId, runAsOf.toISOString()],
          ))!.explanation,
        ) as { decay: { floor: number; halfLifeDays: number } };
        const floor = stored.decay.floor;
        expect(stored.decay.halfLifeDays).toBe(params.halfLifeDays);
        if (params.durableShare === undefined) expect(floor).toBe(params.floor);
        else {
          expect(floor).toBeLessThanOrEqual(before.score + 1e-12);
          expect(floor).toBeGreaterThanOrEqual(params.durableShare * before.score - 1e-12);
        }
        const f = floor + (before.score - floor) * 2 ** (-30 / params.halfLifeDays);
        expect(t.score).toBeCloseTo(f, 9);
        expect(t.asOf).toBe(later.toISOString());
        expect(explanationTotal(t.explanation)).toBeCloseTo(t.score, 9);
        if (before.evidence!.daysSinceLast !== null)
          expect(t.evidence!.daysSinceLast! - before.evidence!.daysSinceLast!).toBeCloseTo(30, 6);
      }
      // The history lifts the same fields out of each served / latent entry.
      const topic = served.topics[0]!.topicId;
      const hist = await readHistory(store, key, topic);
      const lastServed = hist.filter((h) => h.scoreSource === SERVED_SOURCE).at(-1)!;
      expect(lastServed.interval).toEqual(served.topics[0]!.interval);
      expect(lastServed.pCorrect).toBe(served.topics[0]!.pCorrect);
      expect(lastServed.evidence).toEqual(served.topics[0]!.evidence);
      expect(hist.filter((h) => h.scoreSource === "latent").every((h) => h.pCorrect !== undefined)).toBe(
        true,
      );
      expect(hist.filter((h) => h.scoreSource === "bkt").every((h) => h.interval === undefined)).toBe(true);

      // PostgreSQL: `mastery score served` with MASTERY_PG_URL publishes the run; the PG read path serves it alike.
      const published = await publishServedScores(store, await PgMasteryStore.open(pg), runAsOf);
      const inRun = await store.one<{ n: bigint }>(
        "SELECT count(*) AS n FROM student_mastery WHERE score_source IN ('served', 'latent') AND as_of = $1::TIMESTAMP",
        [runAsOf.toISOString()],
      );
      expect(published).toBe(Number(inRun!.n));
      const pgRead = new PgMasteryReadStore(pg, await DuckStateStore.open(store));
      const keysInPg = await pg.one<{ n: string }>(
        "SELECT count(DISTINCT student_key)::text AS n FROM student_mastery",
      );
      const fromPg = await readStudentMastery(pgRead, key, { sourceOrder: order });
      expect(fromPg.topics.map((t) => t.topicId).sort()).toEqual(served.topics.map((t) => t.topicId).sort());
      for (const t of fromPg.topics) {
        const d = served.topics.find((x) => x.topicId === t.topicId)!;
        expect(t.scoreSource).toBe(SERVED_SOURCE);
        expect(t.score).toBeCloseTo(d.score, 12);
        expect(t.interval).toEqual(d.interval);
        expect(t.pCorrect).toBe(d.pCorrect);
        expect(t.evidence).toEqual(d.evidence);
        expect(t.asOf).toBe(runAsOf.toISOString());
      }
      // The start-up warm-up's sample: distinct stored keys, at most the limit, the same on both stores.
      const sample = await pgRead.sampleStudentKeys(3);
      expect(new Set(sample).size).toBe(sample.length);
      expect(sample.length).toBe(Math.min(3, Number(keysInPg!.n)));
      for (const k of sample) expect((await pgRead.scoreRows(k)).length).toBeGreaterThan(0);
      const pgHist = await readHistory(pgRead, key, topic);
      expect(pgHist.filter((h) => h.scoreSource === SERVED_SOURCE).at(-1)!.interval).toEqual(
        lastServed.interval,
      );
      // Publishing the same run again replaces the rows (one per key and source) and adds history.
      expect(await publishServedScores(store, await PgMasteryStore.open(pg), runAsOf)).toBe(published);
      const pgRows = await pg.all<{ n: string }>(
        "SELECT count(*)::text AS n FROM student_mastery WHERE score_source IN ('served', 'latent')",
      );
      expect(Number(pgRows[0]!.n)).toBe(published);
    } finally {
      await pg.run(`DROP SCHEMA IF EXISTS ${PG_SCHEMA} CASCADE`).catch(() => undefined);
      await pg.close();
      store.close();
    }
  });

  it("round 32: --served-as-of-half-life labels records its choice and changes only the as-of half-life", {
    timeout: 300_000,
  }, async () => {
    const latentFit = { maxEvents: 6000, maxEvaluations: 120, emission: "linear" } as const;
    const plain = await trainServed({ dbPath, labelDays: 7, latentFit });
    const labels = await trainServed({ dbPath, labelDays: 7, latentFit, asOfHalfLife: "labels" });
    const p0 = plain.model.json.latent!.params;
    const lj = labels.model.json.latent!;
    const c = lj.fit.asOfHalfLifeLabels!;
    expect(plain.model.json.latent!.fit.asOfHalfLifeLabels).toBeUndefined();
    expect(c.filterHalfLifeDays).toBe(p0.halfLifeDays);
    expect(c.logLik).toHaveLength(c.multipliers.length);
    const own = c.logLik[c.multipliers.indexOf(1)]!;
    if (c.kept === undefined) {
      // A grid multiple of the filter's half-life, better than it by the test's bar, stored for the as-of step.
      const i = c.multipliers.findIndex((m) => Math.abs(m * p0.halfLifeDays - c.halfLifeDays) < 1e-9);
      expect(i).toBeGreaterThanOrEqual(0);
      expect(c.gainNats).toBeCloseTo(c.logLik[i]! - own, 9);
      expect(c.gainNats).toBeGreaterThan(3.841 / 2);
      expect(lj.params.asOfHalfLifeDays).toBe(c.halfLifeDays);
    } else {
      expect(lj.params.asOfHalfLifeDays).toBeUndefined();
      expect(c.halfLifeDays).toBe(p0.halfLifeDays);
    }
    // Everything the filter fitted is the default's, bit for bit: the option only sets the as-of half-life.
    const { asOfHalfLifeDays: _, ...rest } = lj.params;
    expect(rest).toEqual(p0);
    expect(lj.topicPriorMean).toEqual(plain.model.json.latent!.topicPriorMean);
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
