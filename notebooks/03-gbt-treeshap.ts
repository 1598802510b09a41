/**
 * Notebook 03 — gradient-boosted trees on attempt features of statics_gervet, explained with exact TreeSHAP.
 *
 *   npx tsx notebooks/03-gbt-treeshap.ts [--out DIR] [--rounds N] [--shap-rows N] [--max-users N]
 *
 * Trains with training/blendTrain.ts `trainAttemptModel({kind: "gbt"})` (the job behind `mastery train gbt`:
 * attempt features with BKT/Elo/item statistics fitted on the train file, early stopping and calibration on
 * held-out students), predicts the test file online, and explains a sample of test rows with
 * models/treeshap.ts: mean |SHAP| per feature, and one row's waterfall where base + Σ contributions equals
 * the model's margin (checked against predictRaw).
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { binaryMetrics } from "../models/metrics.ts";
import { treeShap } from "../models/treeshap.ts";
import { attemptFeatures } from "../training/attemptFeatures.ts";
import { trainAttemptModel } from "../training/blendTrain.ts";
import { GbtAttemptModel } from "../training/gbtTrain.ts";
import { loadResponses, type ResponseLog } from "../training/responses.ts";
import { selectRows } from "../training/trainingSet.ts";
import type { NotebookResult } from "./01-rule-based.ts";
import { DATASETS, DEFAULT_DATA_ROOT, firstUsers, progressBars } from "./02-bkt-assistments.ts";
import { fmt, hbarChart, intFlag, notebookArgs, Report, waterfallChart } from "./report.ts";

export interface GbtNotebookOptions {
  out: string;
  dataRoot?: string;
  rounds?: number;
  /** Test rows explained with TreeSHAP (evenly spaced over the test file). */
  shapRows?: number;
  /** Keep the first N students of train and test (quick runs). */
  maxUsers?: number;
  /** Progress of each training stage: (stage, done, total). */
  onProgress?: (stage: string, done: number, total: number) => void;
}

const sigmoid = (z: number): number => 1 / (1 + Math.exp(-z));

export async function run(o: GbtNotebookOptions): Promise<NotebookResult> {
  const ds = DATASETS.statics_gervet;
  const dir = join(o.dataRoot ?? DEFAULT_DATA_ROOT, "statics_gervet");
  const work = mkdtempSync(join(tmpdir(), "nb03-"));
  try {
    let trainPath = join(dir, ds.train);
    let test: ResponseLog = loadResponses(join(dir, ds.test), ds.columns);
    if (o.maxUsers !== undefined) {
      // trainAttemptModel reads a file: write the subset as TSV with the same header.
      const train = firstUsers(loadResponses(trainPath, ds.columns), o.maxUsers);
      trainPath = join(work, "train.tsv");
      writeFileSync(trainPath, logToTsv(train));
      test = firstUsers(test, o.maxUsers);
    }
    const rounds = o.rounds ?? 150;
    const trained = await trainAttemptModel({
      kind: "gbt",
      data: trainPath,
      columns: ds.columns,
      out: join(work, "gbt"),
      seed: 1,
      folds: 2,
      gbt: { nRounds: rounds },
      ...(o.onProgress === undefined ? {} : { onProgress: o.onProgress }),
    });
    const model = trained.model;
    if (!(model instanceof GbtAttemptModel))
      throw new Error("trainAttemptModel(kind gbt) did not return a GBT model");

    const X = attemptFeatures(test, model.context);
    const p = model.predictFeatures(X);
    const metrics = binaryMetrics(test.correct, p);

    const nShap = Math.min(o.shapRows ?? 400, X.nRows);
    const rows = Int32Array.from({ length: nShap }, (_, i) => Math.floor((i * X.nRows) / nShap));
    const Xs = selectRows(X, rows);
    const shap = treeShap(model.gbt, Xs);
    const margin = model.gbt.predictRaw(Xs);
    const nF = shap.nFeatures;
    const meanAbs = new Float64Array(nF);
    let maxGap = 0;
    for (let r = 0; r < shap.nRows; r++) {
      let s = shap.expectedValue;
      for (let f = 0; f < nF; f++) {
        const v = shap.phi[r * nF + f]!;
        meanAbs[f]! += Math.abs(v) / shap.nRows;
        s += v;
      }
      maxGap = Math.max(maxGap, Math.abs(s - margin[r]!));
    }
    const names = X.names;
    const ranked = [...meanAbs]
      .map((v, f) => ({ label: names[f]!, value: v }))
      .sort((a, b) => b.value - a.value);

    // One prediction: the sampled row with the largest |margin - base| (an interesting one).
    let pick = 0;
    for (let r = 1; r < shap.nRows; r++) {
      if (Math.abs(margin[r]! - shap.expectedValue) > Math.abs(margin[pick]! - shap.expectedValue)) pick = r;
    }
    const contrib = Array.from({ length: nF }, (_, f) => ({
      label: names[f]!,
      value: shap.phi[pick * nF + f]!,
    })).sort((a, b) => Math.abs(b.value) - Math.abs(a.value));
    const top = contrib.slice(0, 8);
    const rest = contrib.slice(8).reduce((s, c) => s + c.value, 0);
    const pickMargin = margin[pick]!;

    const r = new Report(
      "03-gbt-treeshap",
      "03 — GBT on statics_gervet attempt features, explained by TreeSHAP",
    );
    r.p(
      `Train ${trainPath === join(dir, ds.train) ? "full train file" : `first ${o.maxUsers} students`}, test ${test.n} rows; ${rounds} rounds max ` +
        `(${model.gbt.trees.length} trees after early stopping), ${nF} attempt features. ` +
        `Online test metrics: AUC ${fmt(metrics.auc, 4)}, RMSE ${fmt(metrics.rmse, 4)}, log-loss ${fmt(metrics.logloss, 4)}, ECE ${fmt(metrics.ece, 3)} ` +
        "(anchors from ../shared/data/README.md: IRT 0.7954, PFA 0.7053, Best-LR 0.8266, pyBKT BKT 0.6929).",
    );
    r.p(
      `TreeSHAP on ${shap.nRows} evenly spaced test rows: base (expected margin) ${fmt(shap.expectedValue, 5)}; ` +
        `max |base + Σφ − margin| = ${maxGap.toExponential(2)} (local accuracy).`,
    );
    r.figure(
      "mean-abs-shap",
      "Mean |SHAP| per feature (margin / log-odds units), test sample",
      hbarChart(ranked, { xLabel: "mean |SHAP value| (log-odds)" }),
    );
    r.figure(
      "waterfall",
      `One prediction (test row ${rows[pick]}): base ${fmt(shap.expectedValue, 4)} + contributions = margin ${fmt(pickMargin, 4)} (P = ${fmt(sigmoid(pickMargin), 3)} before calibration, ${fmt(p[rows[pick]!]!, 3)} calibrated)`,
      waterfallChart(shap.expectedValue, [...top, { label: "other features", value: rest }], {
        yLabel: "margin (log-odds)",
        totalLabel: "margin",
      }),
    );
    r.table(
      ["feature", "value", "SHAP"],
      top.map((c) => [c.label, Xs.data[names.indexOf(c.label) * Xs.nRows + pick]!, c.value]),
    );
    const path = r.write(o.out);
    return {
      path,
      figures: r.figureIds(),
      numbers: {
        auc: metrics.auc,
        ece: metrics.ece,
        shapRows: shap.nRows,
        maxGap,
        base: shap.expectedValue,
        margin: pickMargin,
      },
    };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** A response log back to TSV with the statics column names (user_id item_id timestamp correct skill_id). */
function logToTsv(log: ResponseLog): string {
  const out = ["user_id\titem_id\ttimestamp\tcorrect\tskill_id"];
  for (let i = 0; i < log.n; i++) {
    const item = log.item[i]!;
    out.push(
      `${log.userNames[log.user[i]!]}\t${item < 0 ? "" : log.itemNames[item]}\t0\t${log.correct[i]}\t${log.skillNames[log.skill[i]!]}`,
    );
  }
  return `${out.join("\n")}\n`;
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const a = notebookArgs();
  const progress = progressBars();
  const maxUsers = a.get("max-users");
  const dataRoot = a.get("data-root");
  const res = await run({
    out: a.out,
    rounds: intFlag(a.get("rounds"), "rounds", 150),
    shapRows: intFlag(a.get("shap-rows"), "shap-rows", 400),
    ...(maxUsers === undefined ? {} : { maxUsers: intFlag(maxUsers, "max-users", 1) }),
    ...(dataRoot === undefined ? {} : { dataRoot }),
    onProgress: (stage, done, total) => progress(`train gbt: ${stage}`, done, total),
  });
  process.stdout.write(`${JSON.stringify(res.numbers)}\nwrote ${res.path}\n`);
}
