/**
 * The blend on the Gervet splits of ../shared/data (assistments09_gervet, statics_gervet): `mastery train blend`
 * on the train file (BKT + Elo fitted inside, out-of-fold attempt features, GBT and MLP early-stopped on held-out
 * students, stacked logistic regression + calibrator on those students), then online next-response evaluation
 * on the test file (new students; each row predicted from that student's earlier test rows only), exactly what
 * `mastery evaluate` does. Prints each source's test metrics next to the blend's, and the time of each stage.
 *
 *   npx tsx bench/blend.bench.ts                     # both datasets
 *   npx tsx bench/blend.bench.ts statics_gervet      # one
 *   MODEL_DIR=out/bench npx tsx bench/blend.bench.ts # keep the model.json files
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { sigmoid } from "../models/blend.ts";
import { type BinaryMetrics, binaryMetrics } from "../models/metrics.ts";
import { attemptFeatures, featureColumn } from "../training/attemptFeatures.ts";
import { type BlendAttemptModel, trainAttemptModel } from "../training/blendTrain.ts";
import { loadPredictor } from "../training/evaluate.ts";
import { loadResponses, type ResponseColumns } from "../training/responses.ts";

const DATA = process.env.MASTERY_DATA ?? join(dirname(fileURLToPath(import.meta.url)), "../../shared/data");
const OUT = process.env.MODEL_DIR ?? mkdtempSync(join(tmpdir(), "blend-bench-"));
const columns: ResponseColumns = { user: "user_id", skill: "skill_id", correct: "correct", item: "item_id" };
const datasets = ["assistments09_gervet", "statics_gervet"];
const only = process.argv.slice(2);
const f4 = (x: number): string => x.toFixed(4);
const line = (ds: string, name: string, m: BinaryMetrics, note = ""): void =>
  console.log(
    `${ds.padEnd(21)} ${name.padEnd(16)} ${f4(m.auc)}  ${f4(m.rmse)}  ${f4(m.logloss)}  ${f4(m.ece)}  ${note}`,
  );

console.log(`blend bench: data ${DATA}, models in ${OUT}`);
console.log("dataset               source           AUC     RMSE    logloss ECE");
for (const ds of datasets) {
  if (only.length > 0 && !only.includes(ds)) continue;
  const train = join(DATA, ds, "preprocessed_data_train.csv");
  const testPath = join(DATA, ds, "preprocessed_data_test.csv");
  const out = join(OUT, ds);
  const stages = new Map<string, number>();
  let stage = "";
  let t0 = performance.now();
  const started = t0;
  const res = await trainAttemptModel({
    kind: "blend",
    data: train,
    columns,
    out,
    onProgress: (s) => {
      if (s === stage) return;
      const now = performance.now();
      if (stage !== "") stages.set(stage, (now - t0) / 1000);
      stage = s;
      t0 = now;
    },
  });
  stages.set(stage, (performance.now() - t0) / 1000);
  const trainSeconds = (performance.now() - started) / 1000;
  const model = res.model as BlendAttemptModel;
  const test = loadResponses(testPath, columns);
  const tEval = performance.now();
  // What `mastery evaluate` runs: the registered predictor read back from model.json.
  const pBlend = loadPredictor(out).predictLog(test);
  const evalSeconds = (performance.now() - tEval) / 1000;
  const X = attemptFeatures(test, model.context);
  const y = test.correct;
  line(ds, "BKT", binaryMetrics(y, featureColumn(X, "bkt_p_correct")));
  line(ds, "Elo", binaryMetrics(y, featureColumn(X, "elo_p_correct")));
  line(ds, "rule accuracy", binaryMetrics(y, featureColumn(X, "rule_accuracy")));
  line(ds, "GBT (calibrated)", binaryMetrics(y, model.gbt.predictFeatures(X)));
  line(ds, "MLP (calibrated)", binaryMetrics(y, model.mlp.predictFeatures(X)));
  const w = model.blend.stacking;
  line(ds, "blend", binaryMetrics(y, pBlend), `calibrator ${model.blend.calibrator.kind}`);
  // The stacking logit before calibration, to show what calibration adds.
  const inputs = model.inputs(X);
  const raw = new Float64Array(test.n);
  for (let i = 0; i < test.n; i++) raw[i] = sigmoid(w.logit(inputs.subarray(i * 5, i * 5 + 5)));
  line(ds, "blend, uncalib.", binaryMetrics(y, raw));
  console.log(
    `${ds.padEnd(21)} weights ${w.names.map((n, j) => `${n}=${w.weights[j]!.toFixed(3)}`).join(" ")} intercept=${w.intercept.toFixed(3)}`,
  );
  console.log(
    `${ds.padEnd(21)} train ${trainSeconds.toFixed(1)} s (${[...stages].map(([s, t]) => `${s} ${t.toFixed(1)}`).join(", ")}); evaluate ${evalSeconds.toFixed(1)} s for ${test.n} rows; ${JSON.stringify(res.summary.validAuc)}`,
  );
}
