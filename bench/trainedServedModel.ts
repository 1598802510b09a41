import { existsSync, rmSync } from "node:fs";
import { join } from "node:path";
import { Pseudonymizer } from "../features/pseudonymize.ts";
import type { ServedMastery } from "../models/servedMastery.ts";
import { resolveModels } from "../serving/learnerState.ts";
import { runPipeline } from "../serving/pipeline.ts";
import { loadServedModel } from "../serving/servedScoring.ts";
import { trainServed } from "../serving/servedTraining.ts";
import { DuckStore } from "../storage/duckdb.ts";
import { seedSchool } from "./seedSchool.ts";

/**
 * The served model the batch benches score with (issue 17 item 1: the batch ends with issue 16's served score):
 * SERVED_MODEL=dir (a `mastery train served` output, e.g. bench/servedBatch.bench.ts's at 1M), else one trained
 * with `mastery train served`'s defaults on a generated school of `students` students (the benches' generator),
 * kept in `cacheDir`/served-model-<students> and reused by later runs. Training is not part of the batch (it runs
 * on its own schedule) and is not timed here; the scoring's cost does not depend on the fitted values, only on the
 * model's shape (student effect, learning loading, topic thresholds), which the defaults give.
 */
export async function trainedServedModel(
  cacheDir: string,
  students = 2_000,
  log: (s: string) => void = (s) => process.stderr.write(`${s}\n`),
): Promise<{ model: ServedMastery; version: string; dir: string }> {
  const given = process.env.SERVED_MODEL;
  if (given !== undefined && given !== "") return { ...loadServedModel(given), dir: given };
  const dir = join(cacheDir, `served-model-${students}`);
  if (!existsSync(join(dir, "model.json"))) {
    const work = join(cacheDir, `served-model-${students}-store`);
    rmSync(work, { recursive: true, force: true });
    const dbPath = join(work, "mastery.duckdb");
    const t0 = performance.now();
    log(
      `served model: training one on ${students} generated students (not timed; SERVED_MODEL=dir skips it)`,
    );
    const store = await DuckStore.open(dbPath);
    try {
      await runPipeline({
        store,
        pseudonymizer: new Pseudonymizer("bench-key-0123456789abcdef"),
        dataDir: join(work, "data"),
        generate: seedSchool(students, join(work, "data"), { days: 30 }),
        models: (s) => resolveModels(s, { seed: 0 }),
        bktEloFull: true,
      });
    } finally {
      store.close();
    }
    await trainServed({ dbPath, out: dir });
    rmSync(work, { recursive: true, force: true });
    log(`served model: trained in ${((performance.now() - t0) / 1000).toFixed(1)} s -> ${dir}`);
  }
  return { ...loadServedModel(dir), dir };
}
