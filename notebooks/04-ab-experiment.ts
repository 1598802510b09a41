/**
 * Notebook 04 — an A/B experiment end to end, with a known injected effect.
 *
 *   npx tsx notebooks/04-ab-experiment.ts [--out DIR] [--students N] [--effect P] [--seed S]
 *
 * 1. Generate a school (features/synthetic) and create an experiment (experiments/store.ts): control serves
 *    mastery@champion, treatment mastery@challenger, 50/50, exposure from day 7.
 * 2. Assign every generated student with the sticky router (experiments/router.ts) on their pseudonym.
 * 3. Simulate the treatment: in the treatment arm, each wrong quiz answer on or after day 7 becomes right
 *    with probability P (default 0.15, seeded). This is the only simulated part; the generator has no
 *    notion of arms. The expected lift in next-week accuracy is about P × (1 - control accuracy).
 * 4. The real path from there: ingest -> weekly feature snapshots -> rule scores (student_mastery_history)
 *    -> exposures logged as the server does -> experiments/report.ts (Welch CI on accuracy, KM/RMST with a
 *    bootstrap CI on time to mastery, SRM check).
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { experimentReport, renderHtml } from "../experiments/report.ts";
import { ExperimentRouter } from "../experiments/router.ts";
import { ExperimentStore, type Exposure } from "../experiments/store.ts";
import { expandPaths, ingestPaths } from "../features/ingest.ts";
import { DEMO_PSEUDONYM_KEY, Pseudonymizer } from "../features/pseudonymize.ts";
import { generateSynthetic } from "../features/synthetic/generate.ts";
import { buildFeatures } from "../features/windows.ts";
import { Xoshiro128 } from "../models/prng.ts";
import { scoreRules } from "../serving/ruleScoring.ts";
import { DuckStore } from "../storage/duckdb.ts";
import { EXPERIMENT_DDL } from "../storage/schema.ts";
import type { NotebookResult } from "./01-rule-based.ts";
import { barChart, fmt, intFlag, notebookArgs, Report } from "./report.ts";

export interface AbNotebookOptions {
  out: string;
  students?: number;
  /** Probability that a treatment student's wrong answer (day >= 7) is flipped to right. */
  effect?: number;
  seed?: number;
  bootstrapResamples?: number;
}

const START = "2026-09-01";
const DAYS = 28;
const EXPOSE_DAY = 7;
const DAY_MS = 86_400_000;

export async function run(o: AbNotebookOptions): Promise<NotebookResult> {
  const students = o.students ?? 600;
  const effect = o.effect ?? 0.15;
  const seed = o.seed ?? 11;
  const work = mkdtempSync(join(tmpdir(), "nb04-"));
  const dataDir = join(work, "data");
  const store = await DuckStore.open(join(work, "mastery.duckdb"));
  const pseudonymizer = new Pseudonymizer(DEMO_PSEUDONYM_KEY);
  try {
    await generateSynthetic({
      students,
      topics: 16,
      days: DAYS,
      seed,
      start: START,
      eventsPerDay: 3.4,
      truthEvery: 0,
      outDir: dataDir,
      workers: 0,
    });
    const start = Date.parse(`${START}T00:00:00Z`);
    const exposeAt = new Date(start + EXPOSE_DAY * DAY_MS);

    for (const ddl of EXPERIMENT_DDL) await store.run(ddl);
    // Fixed clock so the experiment's timestamps do not depend on when the notebook runs.
    const experiments = new ExperimentStore(store, () => new Date(start));
    const exp = await experiments.create({
      id: "nb04-challenger",
      name: "Notebook 04: challenger vs champion",
      arms: [
        { name: "control", model: { name: "mastery", alias: "champion" }, share: 0.5 },
        { name: "treatment", model: { name: "mastery", alias: "challenger" }, share: 0.5 },
      ],
      startAt: exposeAt.toISOString(),
      salt: `nb04-${seed}`,
      config: { masteryThreshold: 0.7, baselineAccuracy: 0.6, mde: 0.05 },
    });
    const router = new ExperimentRouter({
      experimentId: exp.id,
      salt: exp.salt,
      arms: exp.arms,
      allocation: exp.allocation,
    });

    // Assign on the pseudonym (what the server sees), then inject the effect into the raw file.
    const armOf = new Map<string, string>();
    const quizPath = join(dataDir, "quiz_attempts.csv");
    const lines = readFileSync(quizPath, "utf8").split("\n");
    const header = lines[0]!.split(",");
    const iStudent = header.indexOf("student_id");
    const iTs = header.indexOf("timestamp");
    const iCorrect = header.indexOf("is_correct");
    const rng = new Xoshiro128(seed, 404);
    let flipped = 0;
    for (let i = 1; i < lines.length; i++) {
      const line = lines[i]!;
      if (line === "") continue;
      const cols = line.split(",");
      const raw = cols[iStudent]!;
      let arm = armOf.get(raw);
      if (arm === undefined) {
        arm = router.assign(pseudonymizer.studentKey(raw)).arm;
        armOf.set(raw, arm);
      }
      if (arm === "treatment" && cols[iCorrect] === "false" && Date.parse(cols[iTs]!) >= exposeAt.getTime()) {
        if (rng.next() < effect) {
          cols[iCorrect] = "true";
          lines[i] = cols.join(",");
          flipped++;
        }
      }
    }
    writeFileSync(quizPath, lines.join("\n"));

    const files = expandPaths([dataDir]).filter((f) => !/ground_truth|manifest/.test(f));
    const ingest = await ingestPaths(store, files, { pseudonymizer });
    const asOfs = [7, 14, 21, 28].map((d) => new Date(start + d * DAY_MS));
    await buildFeatures(store, asOfs);
    for (const asOf of asOfs) await scoreRules(store, { asOf, now: asOf });

    // Exposures as the server logs them: one per student served on day 7 (their rule score then).
    const served = await store.all<{ student_key: string; score: number }>(
      `SELECT student_key, avg(mastery_score) AS score FROM student_mastery_history
       WHERE score_source = 'rule_based' AND as_of = $asOf GROUP BY student_key`,
      { asOf: exposeAt.toISOString() },
    );
    const exposures: Exposure[] = served.map((s) => {
      const a = router.assign(s.student_key);
      return {
        experimentId: exp.id,
        arm: a.arm,
        studentKey: s.student_key,
        modelName: "mastery",
        modelVersion: a.arm === "control" ? 1 : 2,
        score: s.score,
        servedAt: exposeAt.toISOString(),
      };
    });
    await experiments.logExposures(exposures);

    const report = await experimentReport(store, exp, {
      asOf: new Date(start + DAYS * DAY_MS),
      scoreSource: "rule_based",
      bootstrapResamples: o.bootstrapResamples ?? 400,
    });

    const r = new Report(
      "04-ab-experiment",
      "04 — A/B experiment: assignment, simulated effect, outcome report",
    );
    r.p(
      `${students} generated students over ${DAYS} days (seed ${seed}); experiment ${exp.id} (control ${armModelText(exp.arms[0]!.model)}, treatment ${armModelText(exp.arms[1]!.model)}, 50/50), exposure on day ${EXPOSE_DAY}. ` +
        `Injected effect: ${flipped} wrong treatment answers after exposure flipped to right (p = ${effect}). Ingested ${ingest.total.accepted} events; ${exposures.length} students exposed.`,
    );
    r.table(
      [
        "arm",
        "exposed",
        "students with a quiz week",
        "accuracy",
        "diff vs control",
        "95% CI",
        "p",
        "mastered",
        "median days",
        "RMST days",
        "Δ RMST 95% CI",
      ],
      report.arms.map((a) => [
        a.arm,
        a.exposed,
        a.accuracy.students,
        a.accuracy.mean,
        a.accuracyVsControl?.diff ?? null,
        a.accuracyVsControl ? `[${fmt(a.accuracyVsControl.lo)}, ${fmt(a.accuracyVsControl.hi)}]` : null,
        a.accuracyVsControl?.p ?? null,
        a.mastery.mastered,
        a.mastery.medianDays,
        a.mastery.rmstDays,
        a.masteryVsControl
          ? `${fmt(a.masteryVsControl.diff)} [${fmt(a.masteryVsControl.lo)}, ${fmt(a.masteryVsControl.hi)}]`
          : null,
      ]),
    );
    r.p(
      `SRM: chi² = ${fmt(report.srm.chi2)}, p = ${fmt(report.srm.p)}${report.srm.flagged ? " (FLAGGED)" : ""}. ${report.summary}`,
    );
    r.figure(
      "accuracy-by-arm",
      "Next-week quiz accuracy per arm (mean, lower and upper 95% bounds of each arm's mean)",
      barChart(
        report.arms.map((a) => {
          const se = a.accuracy.sd / Math.sqrt(Math.max(1, a.accuracy.students));
          return {
            label: a.arm,
            values: [a.accuracy.mean - 1.96 * se, a.accuracy.mean, a.accuracy.mean + 1.96 * se],
          };
        }),
        { yLabel: "accuracy", groups: ["lower 95%", "mean", "upper 95%"], yRange: [0, 1] },
      ),
    );
    r.h2("experiments/report.ts output");
    const html = renderHtml(report);
    const body = /<body[^>]*>([\s\S]*)<\/body>/.exec(html)?.[1] ?? html;
    r.raw(`<section data-figure="experiment-report">${body}</section>`);
    const path = r.write(o.out);
    const treat = report.arms.find((a) => !a.isControl);
    return {
      path,
      figures: [...r.figureIds(), "experiment-report"],
      numbers: {
        exposed: exposures.length,
        flipped,
        accuracyDiff: treat?.accuracyVsControl?.diff ?? Number.NaN,
        accuracyLo: treat?.accuracyVsControl?.lo ?? Number.NaN,
        accuracyHi: treat?.accuracyVsControl?.hi ?? Number.NaN,
        srmP: report.srm.p,
      },
    };
  } finally {
    store.close();
    rmSync(work, { recursive: true, force: true });
  }
}

function armModelText(m: { name: string } & ({ alias: string } | { version: number })): string {
  return "alias" in m ? `${m.name}@${m.alias}` : `${m.name}@${m.version}`;
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const a = notebookArgs();
  const effectArg = a.get("effect");
  const effect = effectArg === undefined ? 0.15 : Number(effectArg);
  if (!(effect >= 0 && effect <= 1))
    throw new Error(`--effect must be a probability in [0, 1] (got ${effectArg})`);
  const res = await run({
    out: a.out,
    students: intFlag(a.get("students"), "students", 600),
    effect,
    seed: intFlag(a.get("seed"), "seed", 11),
  });
  process.stdout.write(`${JSON.stringify(res.numbers)}\nwrote ${res.path}\n`);
}
