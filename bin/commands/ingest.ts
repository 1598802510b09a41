import type { Command } from "commander";
import { loadMapping } from "../../features/columnMappings.ts";
import { expandPaths, type FileReport, ingestPaths, PHASES } from "../../features/ingest.ts";
import { pseudonymizerFromEnv } from "../../features/pseudonymize.ts";
import { DuckStore } from "../../storage/duckdb.ts";
import { defaultDbPath } from "../options.ts";
import { Progress } from "../progress.ts";

interface IngestCliOptions {
  db?: string;
  mapping?: string;
  source?: string;
  demo?: boolean;
  json?: boolean;
}

export function register(program: Command): void {
  program
    .command("ingest")
    .description(
      "Validate, pseudonymize and de-duplicate learning events (CSV/TSV, Parquet, JSONL, JSON, xAPI; topics.json/csv load topic metadata) into raw_events; invalid rows go to dead_letter",
    )
    .argument("<paths...>", "files or directories (a directory ingests every file in it)")
    .option("--db <path>", "DuckDB file (default: $MASTERY_DB or .mastery/mastery.duckdb)")
    .option(
      "--mapping <name|file>",
      "column mapping: assistments, cognitive_tutor, or a .json/.yaml mapping file",
    )
    .option("--source <name>", "source label stored with each row (default: the file name)")
    .option(
      "--demo",
      "synthetic data only: use the public demo pseudonym key if MASTERY_PSEUDONYM_KEY is unset",
    )
    .option("--json", "print the report as JSON")
    .addHelpText(
      "after",
      `
Student ids are replaced by HMAC-SHA256 pseudonyms keyed by MASTERY_PSEUDONYM_KEY
(generate one with: export MASTERY_PSEUDONYM_KEY=$(openssl rand -hex 32)).

Examples:
  npx mastery ingest out/synthetic --demo
  npx mastery ingest ../shared/data/assistments_raw/as.csv --mapping assistments
  npx mastery ingest ../shared/data/cognitive_tutor/ct.tsv --mapping cognitive_tutor --db /tmp/ct.duckdb`,
    )
    .action(async (paths: string[], opts: IngestCliOptions) => {
      const pseudonymizer = pseudonymizerFromEnv({ demo: opts.demo === true });
      const mapping = opts.mapping ? loadMapping(opts.mapping) : undefined;
      const files = expandPaths(paths);
      const store = await DuckStore.open(opts.db ?? defaultDbPath());
      const progress = new Progress("ingest", files.length * PHASES.length);
      try {
        const report = await ingestPaths(store, files, {
          pseudonymizer,
          ...(mapping ? { mapping } : {}),
          ...(opts.source ? { source: opts.source } : {}),
          onPhase: () => progress.tick(),
        });
        progress.finish();
        if (opts.json) {
          process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
          return;
        }
        const line = (name: string, r: Pick<FileReport, "accepted" | "duplicate" | "rejected">) =>
          `${name.padEnd(28)} accepted ${String(r.accepted).padStart(9)}  duplicate ${String(r.duplicate).padStart(8)}  rejected ${String(r.rejected).padStart(8)}`;
        for (const f of report.files) {
          process.stdout.write(
            f.format === "topics"
              ? `${f.source.padEnd(28)} topics   ${String(f.accepted).padStart(9)}  rejected ${f.rejected}\n`
              : `${line(f.source, f)}\n`,
          );
        }
        process.stdout.write(`${line("total", report.total)}\n`);
        if (report.total.rejected > 0) {
          process.stdout.write("see `mastery quality` for dead-letter reasons (table dead_letter)\n");
        }
      } finally {
        store.close();
      }
    });
}
