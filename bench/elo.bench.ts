/**
 * Elo on the three public response logs (see ../shared/data/README.md): fit on the train file
 * (K function by Nelder-Mead + item difficulties), online next-response evaluation on the test
 * file (test students are new; each row predicted from that student's earlier rows only).
 * Prints one line per dataset: AUC / RMSE / log-loss / ECE, the fitted K, and the median fit time
 * of REPEAT runs (default 3). A second line per dataset shows Elo with the default K (no fit).
 *
 *   npx tsx bench/elo.bench.ts            # all three datasets
 *   REPEAT=1 npx tsx bench/elo.bench.ts statics_gervet
 */
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Elo } from "../models/elo.ts";
import { binaryMetrics } from "../models/metrics.ts";
import { fitElo } from "../training/elo.ts";
import { loadResponses, type ResponseColumns } from "../training/responses.ts";

const DATA = process.env.MASTERY_DATA ?? join(dirname(fileURLToPath(import.meta.url)), "../../shared/data");
const REPEAT = Number(process.env.REPEAT ?? 3);

const gervet: ResponseColumns = { user: "user_id", skill: "skill_id", correct: "correct", item: "item_id" };
const datasets: { name: string; train: string; test: string; columns: ResponseColumns }[] = [
  {
    name: "assistments09_dkt",
    train: "builder_train_preprocessed.csv",
    test: "builder_test_preprocessed.csv",
    columns: { user: "user_id", skill: "skill_name", correct: "correct" },
  },
  {
    name: "assistments09_gervet",
    train: "preprocessed_data_train.csv",
    test: "preprocessed_data_test.csv",
    columns: gervet,
  },
  {
    name: "statics_gervet",
    train: "preprocessed_data_train.csv",
    test: "preprocessed_data_test.csv",
    columns: gervet,
  },
];

const only = process.argv.slice(2);
const f4 = (x: number): string => x.toFixed(4);
console.log(`Elo bench: data ${DATA}, fit time = median of ${REPEAT} runs`);
console.log(
  "dataset               variant     AUC     RMSE    logloss ECE     fit_s  evals  train_ll  K params",
);
for (const ds of datasets) {
  if (only.length > 0 && !only.includes(ds.name)) continue;
  const trainPath = join(DATA, ds.name, ds.train);
  if (!existsSync(trainPath)) {
    console.log(`${ds.name}: ${trainPath} missing, skipped`);
    continue;
  }
  const train = loadResponses(trainPath, ds.columns);
  const test = loadResponses(join(DATA, ds.name, ds.test), ds.columns);
  const times: number[] = [];
  let model: Elo | undefined;
  for (let r = 0; r < REPEAT; r++) {
    const res = fitElo(train, {});
    times.push(res.fitSeconds);
    model = res.model;
  }
  times.sort((a, b) => a - b);
  const fitted = model!;
  const m = binaryMetrics(test.correct, fitted.predict(test));
  const k = fitted.params;
  console.log(
    `${ds.name.padEnd(21)} fitted-K    ${f4(m.auc)}  ${f4(m.rmse)}  ${f4(m.logloss)}  ${f4(m.ece)}  ${times[Math.floor(times.length / 2)]!.toFixed(2).padStart(5)}  ${String(fitted.evaluations).padStart(5)}  ${f4(fitted.trainLogloss)}    ` +
      `student a=${k.studentA.toFixed(3)} b=${k.studentB.toFixed(4)} skill a=${k.skillA.toFixed(3)} item a=${k.itemA.toFixed(3)} b=${k.itemB.toFixed(4)}`,
  );
  const t0 = performance.now();
  const plain = new Elo({ fitK: false }).fit(train);
  const plainSecs = (performance.now() - t0) / 1000;
  const mp = binaryMetrics(test.correct, plain.predict(test));
  console.log(
    `${ds.name.padEnd(21)} default-K   ${f4(mp.auc)}  ${f4(mp.rmse)}  ${f4(mp.logloss)}  ${f4(mp.ece)}  ${plainSecs.toFixed(2).padStart(5)}  ${String(1).padStart(5)}  ${f4(plain.trainLogloss)}`,
  );
}
