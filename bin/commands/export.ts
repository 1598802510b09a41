import { writeFileSync } from "node:fs";
import type { Command } from "commander";
import { resolveAsOf } from "../../features/windows.ts";
import { loadServedModel, servedExportCsv, servedExportRows } from "../../serving/servedScoring.ts";
import { DuckStore } from "../../storage/duckdb.ts";
import { commandGroup, defaultDbPath } from "../options.ts";

interface ExportScoresOptions {
  db?: string;
  model: string;
  asOf: string;
  out: string;
}

/** `mastery export scores`: the served estimate as of a time, for analysts (issue 16, item 6). */
export function register(program: Command): void {
  commandGroup(program, "export", "Exports for analysts (pseudonymous keys only)")
    .command("scores")
    .description(
      "Write the served mastery estimate of every (student, topic) as of a time to CSV: student_key, topic_id, " +
        "score (mastery scale), 80% interval (lo, hi), p_correct (P(correct on an average next item)), source mix (each source's contribution), evidence kind, attempts, days " +
        "since the last event, as_of. Reads only; student keys are the store's pseudonyms.",
    )
    .option("--db <path>", "DuckDB store (default: $MASTERY_DB or .mastery/mastery.duckdb)")
    .requiredOption("--model <dir>", "served model directory (model.json from `mastery train served`)")
    .option("--as-of <time>", 'scoring time: "now" (latest event + 1 s) or an ISO time with offset', "now")
    .requiredOption("--out <file>", "CSV file to write")
    .addHelpText(
      "after",
      `
Example:
  npx mastery export scores --model out/served --as-of 2026-11-03T00:00:00Z --out scores.csv
`,
    )
    .action(async (opts: ExportScoresOptions) => {
      const { model } = loadServedModel(opts.model);
      const store = await DuckStore.open(opts.db ?? defaultDbPath());
      try {
        const asOf = await resolveAsOf(store, opts.asOf);
        const rows = await servedExportRows(store, model, asOf);
        writeFileSync(opts.out, servedExportCsv(rows));
        process.stdout.write(
          `${JSON.stringify({ out: opts.out, rows: rows.length, asOf: asOf.toISOString() })}\n`,
        );
      } finally {
        store.close();
      }
    });
}
