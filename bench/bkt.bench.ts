/**
 * BKT benchmark: fit time on assistments09_dkt (forgets, 20 restarts; pyBKT C++ build: 9.6 s on this
 * machine kind) and next-response test AUC/RMSE on every dataset and variant with a published pyBKT figure
 * (/work/shared/data/README.md). Run: npx tsx bench/bkt.bench.ts [--quick]
 */
import { existsSync } from "node:fs";
import { availableParallelism, loadavg } from "node:os";
import { join, resolve } from "node:path";
import { binaryMetrics } from "../models/metrics.ts";
import { fitBktParallel } from "../training/bktFit.ts";
import { loadResponses, type ResponseColumns } from "../training/responses.ts";

const DATA = resolve(process.env.MASTERY_DATA ?? join(import.meta.dirname, "..", "..", "shared", "data"));
const quick = process.argv.includes("--quick");

interface Case {
  dataset: string;
  train: string;
  test: string;
  columns: ResponseColumns;
  forgets: boolean;
  restarts: number;
  pyBKT: { auc: number; rmse?: number; fitSeconds?: number };
}

const dkt = {
  dataset: "assistments09_dkt",
  train: "assistments09_dkt/builder_train_preprocessed.csv",
  test: "assistments09_dkt/builder_test_preprocessed.csv",
  columns: { user: "user_id", skill: "skill_name", correct: "correct" },
};
const gervet = (name: string) => ({
  dataset: name,
  train: `${name}/preprocessed_data_train.csv`,
  test: `${name}/preprocessed_data_test.csv`,
  columns: { user: "user_id", skill: "skill_id", correct: "correct", item: "item_id" },
});
const cases: Case[] = [
  { ...dkt, forgets: false, restarts: 20, pyBKT: { auc: 0.7593, rmse: 0.4163, fitSeconds: 5.9 } },
  { ...dkt, forgets: true, restarts: 20, pyBKT: { auc: 0.8247, rmse: 0.3889, fitSeconds: 9.6 } },
  { ...gervet("assistments09_gervet"), forgets: false, restarts: 5, pyBKT: { auc: 0.7153 } },
  { ...gervet("assistments09_gervet"), forgets: true, restarts: 5, pyBKT: { auc: 0.7223 } },
  { ...gervet("statics_gervet"), forgets: false, restarts: 5, pyBKT: { auc: 0.6929 } },
  { ...gervet("statics_gervet"), forgets: true, restarts: 5, pyBKT: { auc: 0.7129 } },
];

if (!existsSync(DATA)) {
  process.stderr.write(`data folder ${DATA} not found; set MASTERY_DATA\n`);
  process.exit(1);
}
const f = (x: number, d = 4) => x.toFixed(d);
process.stdout.write(
  `BKT benchmark: ${availableParallelism()} cores, load average ${loadavg()
    .map((x) => x.toFixed(1))
    .join(" ")} at start\n\n`,
);
process.stdout.write(
  "Wall time includes grouping the log by skill and starting the worker thread; CPU s is summed over threads.\n\n",
);
process.stdout.write(
  "| dataset | variant | restarts | fit s wall (median of 3) | CPU s | pyBKT fit s | speed-up (wall) | AUC | pyBKT AUC | ΔAUC | RMSE | pyBKT RMSE |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n",
);
for (const c of cases) {
  const t0 = performance.now();
  const train = loadResponses(join(DATA, c.train), c.columns);
  const test = loadResponses(join(DATA, c.test), c.columns);
  const loadSeconds = (performance.now() - t0) / 1000;
  const timed = c.pyBKT.fitSeconds !== undefined && !quick ? 3 : 1;
  const times: number[] = [];
  const cpus: number[] = [];
  let model: Awaited<ReturnType<typeof fitBktParallel>> | undefined;
  for (let r = 0; r < timed; r++) {
    const t = performance.now();
    const cpu0 = process.cpuUsage();
    model = await fitBktParallel(train, { forgets: c.forgets, restarts: c.restarts, seed: 42 });
    const cpu = process.cpuUsage(cpu0); // whole process: this thread and the workers
    times.push((performance.now() - t) / 1000);
    cpus.push((cpu.user + cpu.system) / 1e6);
  }
  times.sort((a, b) => a - b);
  cpus.sort((a, b) => a - b);
  const fit = times[Math.floor(times.length / 2)]!;
  const cpuFit = cpus[Math.floor(cpus.length / 2)]!;
  const m = binaryMetrics(test.correct, model!.predict(test));
  const py = c.pyBKT;
  process.stdout.write(
    `| ${c.dataset} | ${c.forgets ? "BKT+forgets" : "BKT"} | ${c.restarts} | ${f(fit, 2)} (load ${f(loadSeconds, 2)}) | ${f(cpuFit, 2)} | ${
      py.fitSeconds ?? ""
    } | ${py.fitSeconds ? `${f(py.fitSeconds / fit, 2)}x` : ""} | ${f(m.auc)} | ${py.auc} | ${f(m.auc - py.auc, 4)} | ${f(m.rmse)} | ${
      py.rmse ?? ""
    } |\n`,
  );
}
