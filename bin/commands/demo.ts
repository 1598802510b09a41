import { rmSync } from "node:fs";
import { resolve } from "node:path";
import type { Command } from "commander";
import { pseudonymizerFromEnv } from "../../features/pseudonymize.ts";
import type { Explanation } from "../../models/explanation.ts";
import { ruleRowAt } from "../../serving/masteryView.ts";
import { demoPaths, PIPELINE_STEPS, type PipelineStep, runPipeline } from "../../serving/pipeline.ts";
import { readTimeScoreSql } from "../../serving/readTimeScoreSql.ts";
import { rollupMastery } from "../../serving/rollups.ts";
import { withExplanationTexts } from "../../serving/storedExplanations.ts";
import { DuckStore } from "../../storage/duckdb.ts";
import { listValue } from "../../storage/duckdbApi.ts";
import { storedNumbersSelect } from "../../storage/explanationNumbers.ts";
import { parseIntOption } from "../options.ts";
import { Progress } from "../progress.ts";

interface DemoOptions {
  students: string;
  days: string;
  seed: string;
  dir: string;
}

export function register(program: Command): void {
  program
    .command("demo")
    .description(
      "End to end on synthetic data: generate a school's events, ingest, build 7/30/90-day features, score (rules, BKT, Elo), print one student's weakest topics with explanations",
    )
    .option("--students <n>", "students to generate", "3000")
    .option("--days <n>", "days of activity", "30")
    .option("--seed <n>", "random seed", "7")
    .option("--dir <path>", "where the data and the DuckDB file go (recreated)", ".mastery/demo")
    .addHelpText("after", "\nExample:\n  npx mastery demo --students 5000 --days 30")
    .action(async (opts: DemoOptions) => {
      const students = parseIntOption(opts.students, "--students", 1);
      const days = parseIntOption(opts.days, "--days", 1);
      const seed = parseIntOption(opts.seed, "--seed", 0);
      const root = resolve(opts.dir);
      const { dataDir, dbPath } = demoPaths(root);
      rmSync(root, { recursive: true, force: true });

      const pseudonymizer = pseudonymizerFromEnv({ demo: true });
      const store = await DuckStore.open(dbPath);
      const bars = new Map<PipelineStep, Progress>();
      const started = performance.now();
      try {
        const result = await runPipeline({
          store,
          pseudonymizer,
          dataDir,
          generate: {
            students,
            topics: 120,
            days,
            seed,
            start: "2026-09-01",
            eventsPerDay: 3.4,
            truthEvery: 7,
            outDir: dataDir,
          },
          onProgress: (step, done, total) => {
            let bar = bars.get(step);
            if (!bar) {
              bar = new Progress(step, total);
              bars.set(step, bar);
            }
            bar.set(done);
          },
          onStep: (step) => bars.get(step)?.finish(),
        });
        const out: string[] = [];
        const secs = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
        out.push("", "Mastery Engine demo", "===================");
        out.push(
          `${result.events.toLocaleString("en-US")} events generated for ${students} students over ${days} days; ` +
            `ingested ${result.ingest.total.accepted.toLocaleString("en-US")} ` +
            `(duplicate ${result.ingest.total.duplicate}, rejected ${result.ingest.total.rejected})`,
        );
        if (result.roster !== null) {
          out.push(
            `roster: ${result.roster.classes} classes, ${result.roster.students} students (teacher access; mastery roster show CLASS)`,
          );
        }
        out.push(
          `features as of ${result.asOf.toISOString()}: ${result.featureRows.toLocaleString("en-US")} (student, topic) rows; ` +
            `rule scores ${result.ruleScores.toLocaleString("en-US")}; BKT/Elo states ${result.bktEloKeys.toLocaleString("en-US")}`,
        );
        out.push(`timings: ${PIPELINE_STEPS.map((s) => `${s} ${secs(result.millis[s])}`).join(", ")}`);

        // One student: of the first 100 generated ids, the one with the most scored topics, found by
        // pseudonym (the raw ids never entered the store).
        const { rawId, studentKey } = await busiestStudent(store, (id) => pseudonymizer.studentKey(id));
        const ruleRows = withExplanationTexts(
          await store.all<{
            topic_id: string;
            name: string | null;
            score_source: string;
            as_of: Date;
            mastery_score: number;
            explanation: string;
            bkt: number | null;
            elo: number | null;
          }>(
            `SELECT m.topic_id, t.name, m.score_source, m.as_of, m.mastery_score, m.explanation,
                  b.mastery_score AS bkt, e.mastery_score AS elo, ${storedNumbersSelect("m")}
           FROM student_mastery m
           LEFT JOIN topics t USING (topic_id)
           LEFT JOIN student_mastery b ON b.student_key = m.student_key AND b.topic_id = m.topic_id AND b.score_source = 'bkt'
           LEFT JOIN student_mastery e ON e.student_key = m.student_key AND e.topic_id = m.topic_id AND e.score_source = 'elo'
           WHERE m.student_key = $key AND m.score_source = 'rule_based'`,
            { key: studentKey },
          ),
        );
        // Stored rule rows hold decayed evidence: each as of its run (serving/masteryView.ts ruleRowAt).
        const weakest = ruleRows
          .map((r) => ruleRowAt(r, r.as_of))
          .sort((a, b) => a.mastery_score - b.mastery_score || (a.topic_id < b.topic_id ? -1 : 1))
          .slice(0, 3);
        out.push("", `Weakest topics of student ${rawId} (pseudonym ${studentKey.slice(0, 12)}…):`);
        for (const w of weakest) {
          const e = JSON.parse(w.explanation) as Explanation;
          const f3 = e.factors
            .map(
              (f) =>
                `${f.name}=${round(f.value)} (${f.contribution >= 0 ? "+" : ""}${round(f.contribution)})`,
            )
            .join(", ");
          out.push(
            `  ${w.topic_id} ${w.name ?? ""}: rule ${round(w.mastery_score)}, BKT ${fmt(w.bkt)}, Elo ${fmt(w.elo)}`,
            `    = base ${round(e.base)} + ${f3}${e.rest !== 0 ? ` + rest ${round(e.rest)}` : ""}`,
          );
        }
        const subjects = await rollupMastery(store, "subject", { studentKey, scoreSource: "rule_based" });
        out.push(
          "",
          `Subject rollups (rule_based): ${subjects.map((s) => `${s.id} ${round(s.masteryScore)} (${s.topicsScored}/${s.topicsTotal} topics)`).join(", ")}`,
        );
        const low = await store.one<{ n: bigint; s: bigint }>(
          `SELECT count(*) AS n, count(DISTINCT student_key) AS s FROM student_mastery m
           WHERE score_source = 'rule_based' AND ${readTimeScoreSql("m", "epoch_us(m.as_of)")} < 0.3`,
        );
        out.push(
          `Below the 0.3 intervention threshold: ${Number(low?.n ?? 0n).toLocaleString("en-US")} (student, topic) pairs across ${Number(low?.s ?? 0n)} of ${students} students`,
        );
        const bar = new Progress("register gbt", 4);
        const served = await registerDemoModel(store, root, (done) => bar.set(done));
        bar.finish();
        out.push(
          "",
          `Registered ${served.version} (gbt, trained on ${served.trainRows.toLocaleString("en-US")} answers before ${served.holdoutFrom}; ` +
            `holdout ${Object.entries(served.metrics)
              .map(([k, v]) => `${k} ${k === "n" ? v : v.toFixed(4)}`)
              .join(", ")}); ${served.decision}`,
          "  GET /mastery serves it with the top 3 TreeSHAP features of each topic (the dashboard's Why column).",
        );
        out.push(
          "",
          `DuckDB file: ${dbPath}`,
          `Try: npx mastery quality --db ${dbPath}`,
          `Done in ${secs(performance.now() - started)}.`,
          "",
          ...(await nextSteps(dbPath, rawId)),
        );
        process.stdout.write(`${out.join("\n")}\n`);
      } finally {
        store.close();
      }
    });
}

/** Days of answers held out to score the demo's GBT (its registered metrics and the gate's first-champion check). */
const DEMO_HOLDOUT_DAYS = 7;

/**
 * Trains a GBT (the kind table, training/kinds.ts) on the demo's quiz answers before the last
 * DEMO_HOLDOUT_DAYS, registers it as "mastery" with its holdout metrics, parameters, seed and data window,
 * and promotes it through the gate, so `mastery serve` on the demo serves ML scores with explanations.
 */
async function registerDemoModel(
  store: DuckStore,
  root: string,
  onStep: (done: number) => void,
): Promise<{
  version: string;
  trainRows: number;
  holdoutFrom: string;
  metrics: Record<string, number>;
  decision: string;
}> {
  const { mkdirSync, writeFileSync } = await import("node:fs");
  const { join } = await import("node:path");
  const { EXPORT_COLUMNS, exportResponses } = await import("../../monitoring/retrain.ts");
  const { servingRegistry } = await import("../../serving/modelScoring.ts");
  const { promoteWithGate } = await import("../../training/promote.ts");
  const { formatModelVersion } = await import("../../registry/registry.ts");
  const { kindOf } = await import("../../training/kinds.ts");
  const { evaluateModel, registryMetrics } = await import("../../training/modelKind.ts");
  const { loadResponses } = await import("../../training/responses.ts");
  const span = await store.one<{ lo: number; hi: number }>(
    "SELECT epoch_us(min(ts))::DOUBLE AS lo, epoch_us(max(ts))::DOUBLE AS hi FROM raw_events WHERE type = 'quiz_attempt'",
  );
  const to = new Date(Math.floor((span?.hi ?? 0) / 1000) + 1000);
  const holdoutFrom = new Date(to.getTime() - DEMO_HOLDOUT_DAYS * 86_400_000);
  const from = new Date(Math.floor((span?.lo ?? 0) / 1000));
  const work = join(root, "model");
  mkdirSync(work, { recursive: true });
  const trainCsv = join(work, "train.csv");
  const holdoutCsv = join(work, "holdout.csv");
  const trainRows = await exportResponses(store, from, holdoutFrom, trainCsv);
  await exportResponses(store, holdoutFrom, to, holdoutCsv);
  onStep(1);
  const train = loadResponses(trainCsv, EXPORT_COLUMNS);
  const holdout = loadResponses(holdoutCsv, EXPORT_COLUMNS);
  const model = await kindOf("gbt")
    .create({ gbt: { nRounds: 80, maxDepth: 4, maxBins: 64 } })
    .fit(train, { seed: 7, threads: 1 });
  const dir = join(work, "gbt");
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "model.json"), JSON.stringify(model.toJSON()));
  const metrics = registryMetrics(evaluateModel(model, holdout));
  onStep(2);
  const { registry } = await servingRegistry(store, process.env.MASTERY_ARTIFACTS ?? ".mastery/artifacts");
  const v = await registry.register({
    name: "mastery",
    dir,
    data: { from: from.toISOString(), to: holdoutFrom.toISOString(), rows: trainRows },
    metrics,
    tags: ["demo"],
    description: "the demo's GBT on its generated quiz answers",
    actor: "demo",
  });
  onStep(3);
  const promoted = await promoteWithGate(registry, {
    name: "mastery",
    challenger: v.version,
    holdout: holdoutCsv,
    columns: EXPORT_COLUMNS,
    actor: "demo",
    reason: "demo: first champion",
  });
  onStep(4);
  return {
    version: formatModelVersion(v.name, v.version),
    trainRows,
    holdoutFrom: holdoutFrom.toISOString(),
    metrics,
    decision: promoted.promoted
      ? `promoted to champion (${promoted.decision.summary})`
      : `not promoted: ${promoted.decision.summary}`,
  };
}

async function busiestStudent(
  store: DuckStore,
  keyOf: (rawId: string) => string,
): Promise<{ rawId: string; studentKey: string }> {
  const candidates = Array.from({ length: 100 }, (_, i) => `stu-${String(i).padStart(6, "0")}`);
  const byKey = new Map(candidates.map((id) => [keyOf(id), id]));
  const rows = await store.all<{ student_key: string; n: bigint }>(
    `SELECT student_key, count(*) AS n FROM student_mastery
     WHERE score_source = 'rule_based' AND list_contains($keys::VARCHAR[], student_key)
     GROUP BY student_key ORDER BY n DESC, student_key LIMIT 1`,
    { keys: listValue([...byKey.keys()]) },
  );
  const key = rows[0]?.student_key ?? keyOf(candidates[0]!);
  return { rawId: byKey.get(key) ?? candidates[0]!, studentKey: key };
}

function round(x: number): string {
  return x.toFixed(2);
}

function fmt(x: number | null): string {
  return x === null ? "-" : x.toFixed(2);
}

/**
 * The three commands to run after the demo: serve it, open the dashboard with a token, query it from a
 * shell. The token is signed with the secret `serve --demo` verifies with (MASTERY_JWT_SECRET if set,
 * else the public demo secret), so it works against that server for up to 12 hours.
 */
async function nextSteps(dbPath: string, rawId: string): Promise<string[]> {
  const { formatDuration, jwtSecretFromEnv, maxTtlFromEnv, mintToken } = await import(
    "../../serving/auth.ts"
  );
  const secret = jwtSecretFromEnv({ demo: true, warn: () => {} });
  const ttlSec = Math.min(12 * 3600, maxTtlFromEnv());
  const { token } = await mintToken(secret, { role: "admin", sub: "demo-admin", ttlSec }, ttlSec);
  const base = "http://127.0.0.1:8080";
  return [
    `Next (the token: admin, ${formatDuration(ttlSec)}, for development only; signed with the PUBLIC demo secret unless MASTERY_JWT_SECRET is set):`,
    `  1. serve it:            npx mastery serve --demo --db ${dbPath}`,
    `  2. open the dashboard:  ${base}/app  and paste the token:`,
    `       ${token}`,
    `  3. query it:            curl -s -H "Authorization: Bearer ${token}" ${base}/mastery/${rawId}`,
  ];
}
