/**
 * Effect of the serving BKT bounds (models/bktMasteryOptions.ts, issue 16 item 4) on next-response accuracy:
 * fits BKT with pyBKT-style defaults and with the bounds on a Gervet split's train file, reports test AUC/RMSE
 * and the share of test predictions of P(learned) above 0.95 / 0.99 (filtered, before each answer).
 *
 *   npx tsx bench/bktBounds.bench.ts [dataset ...]     # default: statics_gervet assistments09_gervet
 */
import { join, resolve } from "node:path";
import type { BKT } from "../models/bkt.ts";
import { MASTERY_BKT_OPTIONS } from "../models/bktMasteryOptions.ts";
import { binaryMetrics } from "../models/metrics.ts";
import { fitBktParallel } from "../training/bktFit.ts";
import { loadResponses, type ResponseColumns } from "../training/responses.ts";

const DATA = resolve(process.env.MASTERY_DATA ?? join(import.meta.dirname, "..", "..", "shared", "data"));
const columns: ResponseColumns = { user: "user_id", skill: "skill_id", correct: "correct", item: "item_id" };
const datasets =
  process.argv.slice(2).length > 0 ? process.argv.slice(2) : ["statics_gervet", "assistments09_gervet"];
console.log("dataset               fit          AUC     RMSE    fit s   forget(mean) P(correct)>0.95");
for (const ds of datasets) {
  const train = loadResponses(join(DATA, ds, "preprocessed_data_train.csv"), columns);
  const test = loadResponses(join(DATA, ds, "preprocessed_data_test.csv"), columns);
  for (const [name, opts] of [
    ["pyBKT-like", { restarts: 3, seed: 42 }],
    ["bounded", { ...MASTERY_BKT_OPTIONS, restarts: 3, seed: 42 }],
  ] as const) {
    const t0 = performance.now();
    const model: BKT = await fitBktParallel(train, opts, { threads: 1 });
    const s = (performance.now() - t0) / 1000;
    const p = model.predict(test);
    const m = binaryMetrics(test.correct, p);
    const fits = model.toJSON().skills;
    const forgets = Object.values(fits).map((f) => f.forget);
    const meanForget = forgets.length > 0 ? forgets.reduce((a, b) => a + b, 0) / forgets.length : Number.NaN;
    let hi = 0;
    for (const x of p) if (x > 0.95) hi++;
    console.log(
      `${ds.padEnd(21)} ${name.padEnd(12)} ${m.auc.toFixed(4)}  ${m.rmse.toFixed(4)}  ${s.toFixed(1).padStart(5)}   ${meanForget.toFixed(3)}        ${(hi / p.length).toFixed(3)}`,
    );
  }
}
