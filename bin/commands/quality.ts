import type { Command } from "commander";
import { formatQualityReport, qualityReport } from "../../features/quality.ts";
import { DuckStore } from "../../storage/duckdb.ts";
import { defaultDbPath } from "../options.ts";

export function register(program: Command): void {
  program
    .command("quality")
    .description(
      "Data-quality report: completeness of required fields, freshness per source and type, null rates, dead-letter counts by field and reason",
    )
    .option("--db <path>", "DuckDB file (default: $MASTERY_DB or .mastery/mastery.duckdb)")
    .option("--json", "print the report as JSON")
    .addHelpText(
      "after",
      `
Example:
  npx mastery quality --db .mastery/mastery.duckdb --json`,
    )
    .action(async (opts: { db?: string; json?: boolean }) => {
      const store = await DuckStore.open(opts.db ?? defaultDbPath());
      try {
        const report = await qualityReport(store);
        process.stdout.write(
          opts.json ? `${JSON.stringify(report, null, 2)}\n` : `${formatQualityReport(report)}\n`,
        );
      } finally {
        store.close();
      }
    });
}
