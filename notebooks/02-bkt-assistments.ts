/**
 * Notebook 02 — BKT (EM, plain and with forgets) on a real log, against pyBKT's published numbers.
 *
 *   npx tsx notebooks/02-bkt-assistments.ts [--out DIR] [--dataset assistments09_dkt|statics_gervet]
 *                                           [--restarts N] [--max-users N] [--threads N]
 *
 * Train on the dataset's train file, predict the test file online (each row from earlier rows of the same
 * student and skill only: training/evaluate.ts), and compare test AUC / RMSE with the pyBKT figures in
 * ../shared/data/README.md (same files, same split). `--max-users` keeps the first N students of each
 * file for a quick run; the pyBKT anchors are then NOT comparable (the report says so).
 */
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { Progress } from "../bin/progress.ts";
import { DEFAULT_BKT_OPTIONS } from "../models/bkt.ts";
import { auc, binaryMetrics, reliability } from "../models/metrics.ts";
import { fitBktParallel } from "../training/bktFit.ts";
import { predictorFromJson } from "../training/evaluate.ts";
import { loadResponses, type ResponseColumns, type ResponseLog } from "../training/responses.ts";
import type { NotebookResult } from "./01-rule-based.ts";
import { barChart, intFlag, notebookArgs, Report, reliabilityDiagram } from "./report.ts";

/** Published anchors: ../shared/data/README.md, "What published tools reach on these files". */
export const DATASETS = {
  assistments09_dkt: {
    train: "builder_train_preprocessed.csv",
    test: "builder_test_preprocessed.csv",
    columns: { user: "user_id", skill: "skill_name", correct: "correct" } as ResponseColumns,
    pybkt: { bkt: { auc: 0.7593, rmse: 0.4163 }, forgets: { auc: 0.8247, rmse: 0.3889 }, restarts: 20 },
  },
  statics_gervet: {
    train: "preprocessed_data_train.csv",
    test: "preprocessed_data_test.csv",
    columns: { user: "user_id", skill: "skill_id", correct: "correct", item: "item_id" } as ResponseColumns,
    pybkt: {
      bkt: { auc: 0.6929, rmse: Number.NaN },
      forgets: { auc: 0.7129, rmse: Number.NaN },
      restarts: 5,
    },
  },
} as const;
export type DatasetName = keyof typeof DATASETS;

export const DEFAULT_DATA_ROOT = resolve(fileURLToPath(import.meta.url), "..", "..", "..", "shared", "data");

export interface BktNotebookOptions {
  out: string;
  dataset?: DatasetName;
  dataRoot?: string;
  restarts?: number;
  /** Keep only the first N students of train and test (quick runs; anchors then not comparable). */
  maxUsers?: number;
  threads?: number;
  /** Progress of each fit: (label, done, total). */
  onProgress?: (label: string, done: number, total: number) => void;
}

/** The first `maxUsers` users' rows of a log (rows are grouped by user). */
export function firstUsers(log: ResponseLog, maxUsers: number): ResponseLog {
  const users = Math.min(maxUsers, log.userNames.length);
  const n = log.userStart[users]!;
  return {
    ...log,
    n,
    user: log.user.slice(0, n),
    skill: log.skill.slice(0, n),
    item: log.item.slice(0, n),
    correct: log.correct.slice(0, n),
    userNames: log.userNames.slice(0, users),
    userStart: log.userStart.slice(0, users + 1),
  };
}

export async function run(o: BktNotebookOptions): Promise<NotebookResult> {
  const name: DatasetName = o.dataset ?? "assistments09_dkt";
  const ds = DATASETS[name];
  const dir = join(o.dataRoot ?? DEFAULT_DATA_ROOT, name);
  if (!existsSync(join(dir, ds.train))) {
    throw new Error(
      `dataset ${name} not found at ${dir}; pass --data-root DIR (the folder holding ${name}/)`,
    );
  }
  const restarts = o.restarts ?? ds.pybkt.restarts;
  let train: ResponseLog = loadResponses(join(dir, ds.train), ds.columns);
  // The test file must share the train file's skill ids: load it, then map skills by name.
  let test: ResponseLog = loadResponses(join(dir, ds.test), ds.columns);
  if (o.maxUsers !== undefined) {
    train = firstUsers(train, o.maxUsers);
    test = firstUsers(test, o.maxUsers);
  }

  const variants = [
    { key: "bkt" as const, label: "BKT", forgets: false },
    { key: "forgets" as const, label: "BKT + forgets", forgets: true },
  ];
  const results: {
    label: string;
    auc: number;
    rmse: number;
    logloss: number;
    ece: number;
    fitSeconds: number;
    p: Float64Array;
  }[] = [];
  for (const v of variants) {
    const t0 = performance.now();
    const model = await fitBktParallel(
      train,
      { forgets: v.forgets, restarts, seed: 1, bounds: { ...DEFAULT_BKT_OPTIONS.bounds } },
      {
        ...(o.threads === undefined ? {} : { threads: o.threads }),
        onProgress: (done, total) => o.onProgress?.(`fit ${v.label}`, done, total),
      },
    );
    const fitSeconds = (performance.now() - t0) / 1000;
    const predictor = predictorFromJson(model.toJSON());
    const p = predictor.predictLog(test);
    const m = binaryMetrics(test.correct, p);
    results.push({ label: v.label, auc: m.auc, rmse: m.rmse, logloss: m.logloss, ece: m.ece, fitSeconds, p });
  }
  const comparable = o.maxUsers === undefined && restarts === ds.pybkt.restarts;

  const r = new Report("02-bkt-assistments", `02 — BKT on ${name} vs pyBKT`);
  r.p(
    `Train ${train.n} rows / ${train.userNames.length} students, test ${test.n} rows / ${test.userNames.length} students, ` +
      `${train.skillNames.length} skills; EM with ${restarts} restarts (seed 1). ` +
      (comparable
        ? `Same files and split as the pyBKT figures in ../shared/data/README.md (${ds.pybkt.restarts} restarts).`
        : "Quick run (subset of students or other restarts): the pyBKT anchors are for the full files and are NOT directly comparable."),
  );
  r.table(
    [
      "model",
      "test AUC (ours)",
      "pyBKT AUC",
      "Δ AUC",
      "RMSE (ours)",
      "pyBKT RMSE",
      "log-loss",
      "ECE",
      "fit s",
    ],
    results.map((x, i) => {
      const anchor = ds.pybkt[variants[i]!.key];
      return [
        x.label,
        x.auc,
        anchor.auc,
        x.auc - anchor.auc,
        x.rmse,
        Number.isNaN(anchor.rmse) ? null : anchor.rmse,
        x.logloss,
        x.ece,
        x.fitSeconds,
      ];
    }),
  );
  r.figure(
    "auc-bars",
    "Test AUC: ours vs pyBKT (published on the same files)",
    barChart(
      results.map((x, i) => ({ label: x.label, values: [x.auc, ds.pybkt[variants[i]!.key].auc] })),
      { yLabel: "test AUC", groups: ["ours", "pyBKT"], yRange: [0.5, 0.9] },
    ),
  );
  r.figure(
    "reliability",
    "Reliability diagram of the online test predictions (10 bins; dot area ~ rows)",
    reliabilityDiagram(
      results.map((x) => ({
        name: x.label,
        bins: reliability(test.correct, x.p, 10).map((b) => ({
          meanPredicted: b.meanPredicted,
          observed: b.observedRate,
          count: b.count,
        })),
      })),
    ),
  );
  const path = r.write(o.out);
  return {
    path,
    figures: r.figureIds(),
    numbers: {
      testRows: test.n,
      aucBkt: results[0]!.auc,
      aucForgets: results[1]!.auc,
      // Sanity: the AUC function agrees with binaryMetrics.
      aucCheck: auc(test.correct, results[0]!.p),
    },
  };
}

/** One stderr progress bar per label (bin/progress.ts), for the command-line runs. */
export function progressBars(): (label: string, done: number, total: number) => void {
  const bars = new Map<string, Progress>();
  return (label, done, total) => {
    let bar = bars.get(label);
    if (bar === undefined) {
      for (const b of bars.values()) b.finish();
      bars.clear();
      bar = new Progress(label, total);
      bars.set(label, bar);
    }
    if (done >= total) bar.finish();
    else bar.set(done);
  };
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const a = notebookArgs();
  const dataset = (a.get("dataset") ?? "assistments09_dkt") as DatasetName;
  if (!(dataset in DATASETS)) {
    throw new Error(`--dataset must be one of ${Object.keys(DATASETS).join(", ")} (got ${dataset})`);
  }
  const maxUsers = a.get("max-users");
  const threads = a.get("threads");
  const dataRoot = a.get("data-root");
  const res = await run({
    out: a.out,
    dataset,
    restarts: intFlag(a.get("restarts"), "restarts", DATASETS[dataset].pybkt.restarts),
    ...(maxUsers === undefined ? {} : { maxUsers: intFlag(maxUsers, "max-users", 1) }),
    ...(threads === undefined ? {} : { threads: intFlag(threads, "threads", 1) }),
    ...(dataRoot === undefined ? {} : { dataRoot }),
    onProgress: progressBars(),
  });
  process.stdout.write(`${JSON.stringify(res.numbers)}\nwrote ${res.path}\n`);
}
