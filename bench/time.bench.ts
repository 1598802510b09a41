/**
 * Time-aware training on ASSISTments 2017 first attempts with real timestamps (../shared/data/
 * assistments17_gervet/split, split by student; see shared/data/README.md): the blend trained without
 * and with the `time=COL` role (day-window attempt features: 1 h / 1 d / 7 / 30 / 90 days, counts and
 * accuracy per skill and overall, hours since the last attempt), each evaluated online on the test
 * students exactly as `mastery evaluate` does (the predictor read back from model.json), next to
 * Best-LR-style logistic baselines on the same split (logistic regression on item and skill difficulty
 * plus log1p counts of earlier attempts and correct answers per skill and overall, Gervet et al. 2020;
 * "+ time" adds log1p of the day-window counts, like their Best-LR+ time windows).
 *
 *   npx tsx bench/time.bench.ts                    # every training student (~275; a few minutes on 2 cores)
 *   TIME_USERS=120 npx tsx bench/time.bench.ts     # the first 120 training students (quicker)
 */
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { logit, StackedLogistic, sigmoid } from "../models/blend.ts";
import { type BinaryMetrics, binaryMetrics } from "../models/metrics.ts";
import {
  type AttemptFeatureMatrix,
  attemptFeatures,
  featureColumn,
  TIME_WINDOWS,
} from "../training/attemptFeatures.ts";
import { type BlendAttemptModel, trainAttemptModel } from "../training/blendTrain.ts";
import { loadPredictor } from "../training/evaluate.ts";
import { loadResponses, type ResponseColumns } from "../training/responses.ts";
import { buildAttemptTrainingSet } from "../training/trainingSet.ts";

const DATA = process.env.MASTERY_DATA ?? join(dirname(fileURLToPath(import.meta.url)), "../../shared/data");
const DIR = join(DATA, "assistments17_gervet", "split");
const OUT = process.env.MODEL_DIR ?? mkdtempSync(join(tmpdir(), "time-bench-"));
const USERS = Number(process.env.TIME_USERS ?? 0);
const base: ResponseColumns = { user: "user_id", skill: "skill_id", correct: "correct", item: "item_id" };
const timed: ResponseColumns = { ...base, time: "timestamp" };

/** The training file, or its first USERS students (file order) in a temp copy. */
function trainFile(): string {
  const path = join(DIR, "preprocessed_data_train.csv");
  if (!(USERS > 0)) return path;
  const lines = readFileSync(path, "utf8").split("\n");
  const keep = new Set<string>();
  const out = [lines[0]!];
  for (const l of lines.slice(1)) {
    if (l === "") continue;
    const u = l.split("\t")[0]!;
    if (!keep.has(u)) {
      if (keep.size >= USERS) continue;
      keep.add(u);
    }
    out.push(l);
  }
  const p = join(OUT, "train-sample.tsv");
  writeFileSync(p, `${out.join("\n")}\n`);
  return p;
}

const f4 = (x: number): string => x.toFixed(4);
const line = (name: string, m: BinaryMetrics, note = ""): void =>
  console.log(`${name.padEnd(30)} ${f4(m.auc)}  ${f4(m.rmse)}  ${f4(m.logloss)}  ${f4(m.ece)}  ${note}`);

/** Best-LR-style design matrix (row-major) from attempt features. */
function bestLrRows(X: AttemptFeatureMatrix, withTime: boolean): { rows: Float64Array; names: string[] } {
  const clampLogit = (p: number) => logit(Math.min(1 - 1e-4, Math.max(1e-4, p)));
  const cols: { name: string; f: (r: number) => number }[] = [];
  const col = (name: string) => featureColumn(X, name);
  const item = col("item_mean");
  const skill = col("skill_mean");
  cols.push({ name: "logit item_mean", f: (r) => clampLogit(item[r]!) });
  cols.push({ name: "logit skill_mean", f: (r) => clampLogit(skill[r]!) });
  for (const scope of ["skill", "overall"]) {
    for (const what of ["attempts", "correct"]) {
      const c = col(`${scope}_${what}_all`);
      cols.push({ name: `log1p ${scope}_${what}_all`, f: (r) => Math.log1p(c[r]!) });
    }
    if (withTime)
      for (const w of TIME_WINDOWS) {
        const a = col(`${scope}_attempts_${w.name}`);
        const acc = col(`${scope}_accuracy_${w.name}`);
        cols.push({ name: `log1p ${scope}_attempts_${w.name}`, f: (r) => Math.log1p(a[r]!) });
        // correct count in the window = attempts * accuracy (0 when no attempt).
        cols.push({
          name: `log1p ${scope}_correct_${w.name}`,
          f: (r) => Math.log1p(a[r]! > 0 ? a[r]! * acc[r]! : 0),
        });
      }
  }
  const d = cols.length;
  const rows = new Float64Array(X.nRows * d);
  for (let r = 0; r < X.nRows; r++) for (let j = 0; j < d; j++) rows[r * d + j] = cols[j]!.f(r);
  return { rows, names: cols.map((c) => c.name) };
}

const train = trainFile();
const test = loadResponses(join(DIR, "preprocessed_data_test.csv"), timed);
const trainLog = loadResponses(train, timed);
console.log(
  `time bench: train ${trainLog.n} rows / ${trainLog.userNames.length} students${USERS > 0 ? ` (TIME_USERS=${USERS})` : ""}, test ${test.n} rows / ${test.userNames.length} students; models in ${OUT}`,
);
console.log("model                          AUC     RMSE    logloss ECE");

// Best-LR-style baselines on the out-of-fold training features (the same BKT/Elo/item statistics path).
{
  const t = performance.now();
  const set = await buildAttemptTrainingSet(trainLog, { seed: 42, time: true });
  const Xte = attemptFeatures(test, set.context);
  for (const withTime of [false, true]) {
    const tr = bestLrRows(set.X, withTime);
    const te = bestLrRows(Xte, withTime);
    const lr = StackedLogistic.fit(tr.rows, set.y, tr.names, { l2: 1e-4 });
    const d = tr.names.length;
    const p = new Float64Array(test.n);
    for (let r = 0; r < test.n; r++) p[r] = sigmoid(lr.logit(te.rows.subarray(r * d, r * d + d)));
    line(
      withTime ? "Best-LR-style + time windows" : "Best-LR-style",
      binaryMetrics(test.correct, p),
      `${d} inputs`,
    );
  }
  console.log(`  (baselines ${((performance.now() - t) / 1000).toFixed(1)} s)`);
}

const results: Record<string, BinaryMetrics> = {};
for (const [label, columns] of [
  ["blend (no time)", base],
  ["blend + time=timestamp", timed],
] as const) {
  const t = performance.now();
  const out = join(OUT, label.startsWith("blend (") ? "blend" : "blend-time");
  const res = await trainAttemptModel({ kind: "blend", data: train, columns, out, seed: 42 });
  const trainSeconds = (performance.now() - t) / 1000;
  // What `mastery evaluate` runs: the registered predictor read back from model.json.
  const p = loadPredictor(out).predictLog(test);
  const m = binaryMetrics(test.correct, p);
  results[label] = m;
  const model = res.model as BlendAttemptModel;
  line(
    label,
    m,
    `${model.context.time === true ? "time features on" : "no time features"}; train ${trainSeconds.toFixed(0)} s`,
  );
}
const a = results["blend (no time)"]!;
const b = results["blend + time=timestamp"]!;
console.log(
  `\nblend with time vs without: AUC ${f4(b.auc)} vs ${f4(a.auc)} (${b.auc >= a.auc ? "+" : ""}${f4(b.auc - a.auc)}), ECE ${f4(b.ece)} vs ${f4(a.ece)}`,
);
