/**
 * Benches that score with "registered" BKT/Elo models fit them quickly on the store once and save
 * them as model directories (model.json), so later runs load the same models instead of refitting.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { resolveModels } from "../serving/learnerState.ts";
import type { DuckStore } from "../storage/duckdb.ts";

/** Quick-fits BKT and Elo on the store's quiz log and writes each to `<dir>/model.json`. */
export async function saveQuickModels(store: DuckStore, bktDir: string, eloDir: string): Promise<void> {
  const models = await resolveModels(store, { seed: 0 });
  for (const [dir, m] of [
    [bktDir, models.bkt],
    [eloDir, models.elo],
  ] as const) {
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, "model.json"), JSON.stringify(m?.toJSON()));
  }
}
