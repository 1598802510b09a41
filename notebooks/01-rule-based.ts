/**
 * Notebook 01 — the rule-based scorer on a generated school.
 *
 *   npx tsx notebooks/01-rule-based.ts [--out DIR] [--students N] [--days D] [--topics T] [--seed S]
 *
 * generate (features/synthetic, known latent mastery) -> ingest with the public demo key -> 7/30/90-day
 * features -> rule scores (the same serving/pipeline.ts the demo runs), then compares each rule score with
 * the generator's latent mastery of that (student, topic) on the last day, and shows one explanation.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { sampleCorrelation, sampleRankCorrelation } from "simple-statistics";
import { DEMO_PSEUDONYM_KEY, Pseudonymizer } from "../features/pseudonymize.ts";
import { type Explanation, explanationTotal } from "../models/explanation.ts";
import { runPipeline } from "../serving/pipeline.ts";
import { withExplanationTexts } from "../serving/storedExplanations.ts";
import { DuckStore, sqlString } from "../storage/duckdb.ts";
import { storedNumbersSelect, type WithExplanationNumberColumns } from "../storage/explanationNumbers.ts";
import {
  barChart,
  fmt,
  heatmap,
  histogram,
  intFlag,
  notebookArgs,
  Report,
  scatterChart,
  waterfallChart,
} from "./report.ts";

export interface RuleNotebookOptions {
  out: string;
  students?: number;
  days?: number;
  topics?: number;
  seed?: number;
}

export interface NotebookResult {
  path: string;
  figures: readonly string[];
  numbers: Record<string, number>;
}

export async function run(o: RuleNotebookOptions): Promise<NotebookResult> {
  const students = o.students ?? 300;
  const days = o.days ?? 30;
  const topics = o.topics ?? 24;
  const seed = o.seed ?? 7;
  const work = mkdtempSync(join(tmpdir(), "nb01-"));
  const dataDir = join(work, "data");
  const store = await DuckStore.open(join(work, "mastery.duckdb"));
  // The public demo key: synthetic data only (features/pseudonymize.ts).
  const pseudonymizer = new Pseudonymizer(DEMO_PSEUDONYM_KEY);
  try {
    const result = await runPipeline({
      store,
      pseudonymizer,
      dataDir,
      generate: {
        students,
        topics,
        days,
        seed,
        start: "2026-09-01",
        eventsPerDay: 3.4,
        truthEvery: 7,
        outDir: dataDir,
        workers: 0,
      },
      skip: ["score bkt-elo"],
    });

    const scores = await store.all<{ student_key: string; topic_id: string; mastery_score: number }>(
      "SELECT student_key, topic_id, mastery_score FROM student_mastery WHERE score_source = 'rule_based'",
    );

    // Ground truth is keyed by raw id; pseudonymize the (few) distinct ids in JS, as ingest does.
    const truth = await store.all<{ student_id: string; topic_id: string; latent_mastery: number }>(
      `SELECT student_id, topic_id, latent_mastery FROM read_csv(${sqlString(join(dataDir, "ground_truth.csv"))}, header = true)
       QUALIFY row_number() OVER (PARTITION BY student_id, topic_id ORDER BY day DESC) = 1`,
    );
    const latent = new Map<string, number>();
    for (const t of truth)
      latent.set(`${pseudonymizer.studentKey(t.student_id)}|${t.topic_id}`, Number(t.latent_mastery));
    const pairs: [number, number][] = [];
    for (const s of scores) {
      const l = latent.get(`${s.student_key}|${s.topic_id}`);
      if (l !== undefined) pairs.push([l, s.mastery_score]);
    }
    const pearson =
      pairs.length > 2
        ? sampleCorrelation(
            pairs.map((p) => p[0]),
            pairs.map((p) => p[1]),
          )
        : Number.NaN;
    const spearman =
      pairs.length > 2
        ? sampleRankCorrelation(
            pairs.map((p) => p[0]),
            pairs.map((p) => p[1]),
          )
        : Number.NaN;

    // Mean rule score per decile of latent mastery: is the score monotone in the truth?
    const deciles = Array.from({ length: 10 }, () => ({ n: 0, s: 0 }));
    for (const [l, s] of pairs) {
      const d = deciles[Math.min(9, Math.floor(l * 10))]!;
      d.n += 1;
      d.s += s;
    }

    // Mean rule score per class (the student's latest class in raw_events) and chapter: where are the weak spots?
    const cells = await store.all<{ class_id: string; chapter_id: string; score: number }>(
      `WITH cls AS (
         SELECT student_key, arg_max(class_id, ts) AS class_id FROM raw_events WHERE class_id IS NOT NULL GROUP BY student_key
       )
       SELECT c.class_id, t.chapter_id, avg(m.mastery_score) AS score
       FROM student_mastery m JOIN cls c USING (student_key) JOIN topics t USING (topic_id)
       WHERE m.score_source = 'rule_based'
       GROUP BY ALL ORDER BY c.class_id, t.chapter_id`,
    );
    const classes = [...new Set(cells.map((c) => c.class_id))];
    const chapters = [...new Set(cells.map((c) => c.chapter_id))].sort();
    const grid = classes.map((cl) =>
      chapters.map((ch) => cells.find((c) => c.class_id === cl && c.chapter_id === ch)?.score ?? Number.NaN),
    );

    // One student: the pair with the most factors' worth of evidence — the busiest (student, topic).
    // The batch stores a rule row's explanation as numbers (the rule_* columns); withExplanationTexts renders
    // the text as every reader does (serving/storedExplanations.ts).
    const [one] = withExplanationTexts(
      await store.all<
        {
          student_key: string;
          topic_id: string;
          mastery_score: number;
          explanation: string;
        } & WithExplanationNumberColumns
      >(
        `SELECT m.student_key, m.topic_id, m.mastery_score, m.explanation, ${storedNumbersSelect("m")}
         FROM student_mastery m JOIN features f USING (student_key, topic_id)
         WHERE m.score_source = 'rule_based'
         ORDER BY f.attempts_30d DESC NULLS LAST, m.student_key, m.topic_id LIMIT 1`,
      ),
    );

    const hist = histogram(
      Float64Array.from(scores, (s) => s.mastery_score),
      0,
      1,
      20,
    );
    const r = new Report("01-rule-based", "01 — Rule-based mastery scores on a generated school");
    r.p(
      `Generated ${students} students × ${topics} topics over ${days} days (seed ${seed}): ${result.events} events; ingested ${result.ingest.total.accepted} (rejected ${result.ingest.total.rejected}); ` +
        `${result.featureRows} feature rows as of ${result.asOf.toISOString()}; ${result.ruleScores} rule scores.`,
    );
    r.h2("Score distribution");
    r.figure(
      "score-distribution",
      "Rule-based mastery scores, 20 bins over [0, 1]",
      barChart(
        hist.counts.map((c, i) => ({ label: fmt(hist.edges[i]!, 2), values: [c] })),
        { yLabel: "(student, topic) pairs" },
      ),
    );
    r.h2("Rule score vs the generator's latent mastery");
    r.p(
      `${pairs.length} scored pairs have a latent mastery on the last ground-truth day. Pearson r = ${fmt(pearson)}, Spearman ρ = ${fmt(spearman)}.`,
    );
    r.figure(
      "score-vs-latent",
      `Rule score against latent mastery (Pearson r = ${fmt(pearson)})`,
      scatterChart(pairs, {
        xLabel: "latent mastery (generator)",
        yLabel: "rule score",
        xRange: [0, 1],
        yRange: [0, 1],
        diagonal: true,
      }),
    );
    r.table(
      ["latent decile", "pairs", "mean rule score"],
      deciles.map((d, i) => [`${i / 10}–${(i + 1) / 10}`, d.n, d.n > 0 ? d.s / d.n : null]),
    );
    r.h2("Mean rule score by class and chapter");
    r.figure(
      "class-chapter-heatmap",
      `Mean rule score per class (${classes.length}) and chapter (${chapters.length})`,
      heatmap(classes, chapters, grid, { title: "mean rule score" }),
    );
    let explanationSum = Number.NaN;
    let explainedScore = Number.NaN;
    if (one) {
      const e = JSON.parse(one.explanation) as Explanation;
      explanationSum = explanationTotal(e);
      explainedScore = one.mastery_score;
      r.h2("One explanation");
      r.p(
        `Student ${one.student_key.slice(0, 12)}… on ${one.topic_id}: score ${fmt(one.mastery_score, 4)} = base ${fmt(e.base, 4)} + ` +
          `${e.factors.map((f) => `${f.name} (value ${fmt(f.value)}) ${f.contribution >= 0 ? "+" : ""}${fmt(f.contribution, 4)}`).join(" + ")} + rest ${fmt(e.rest, 4)}; ` +
          `base + contributions + rest = ${fmt(explanationSum, 6)}.`,
      );
      r.figure(
        "explanation",
        "Explanation waterfall: base, top-3 factors, rest, score",
        waterfallChart(
          e.base,
          [
            ...e.factors.map((f) => ({ label: f.name, value: f.contribution })),
            { label: "rest", value: e.rest },
          ],
          { yLabel: "mastery score", totalLabel: "score" },
        ),
      );
    }
    const path = r.write(o.out);
    return {
      path,
      figures: r.figureIds(),
      numbers: {
        events: result.events,
        scores: scores.length,
        pairs: pairs.length,
        pearson,
        spearman,
        explanationSum,
        explainedScore,
      },
    };
  } finally {
    store.close();
    rmSync(work, { recursive: true, force: true });
  }
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const a = notebookArgs();
  const res = await run({
    out: a.out,
    students: intFlag(a.get("students"), "students", 300),
    days: intFlag(a.get("days"), "days", 30),
    topics: intFlag(a.get("topics"), "topics", 24),
    seed: intFlag(a.get("seed"), "seed", 7),
  });
  process.stdout.write(`${JSON.stringify(res.numbers)}\nwrote ${res.path}\n`);
}
