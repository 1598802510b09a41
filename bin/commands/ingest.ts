import type { Command } from "commander";
import { loadMapping } from "../../features/columnMappings.ts";
import { formatRowCounts } from "../../features/fileRows.ts";
import { expandPaths, type FileReport, ingestPaths, mappingHintFor, PHASES } from "../../features/ingest.ts";
import { pseudonymizerFromEnv } from "../../features/pseudonymize.ts";
import { DuckStore } from "../../storage/duckdb.ts";
import {
  ALLOW_SKIP_HELP,
  CliError,
  defaultDbPath,
  MAX_SKIP_HELP,
  type RowOptions,
  rowReading,
} from "../options.ts";
import { Progress } from "../progress.ts";

interface IngestCliOptions extends RowOptions {
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
    .option("--allow-skip", `${ALLOW_SKIP_HELP}; rejected rows go to dead_letter either way`)
    .option("--max-skip <fraction>", MAX_SKIP_HELP, "0.01")
    .addHelpText(
      "after",
      `
Prints each file's rows read / used / rejected with the most common reasons and their first lines; rejected
rows go to dead_letter (one row each) and the valid rows are kept. Exit code 3 when every row was rejected,
1 when more than --max-skip of the rows were (unless --allow-skip).

Student ids are replaced by HMAC-SHA256 pseudonyms keyed by MASTERY_PSEUDONYM_KEY
(generate one with: export MASTERY_PSEUDONYM_KEY=$(openssl rand -hex 32)).

Examples:
  npx mastery ingest out/synthetic --demo
  npx mastery ingest ../shared/data/assistments_raw/as.csv --mapping assistments
  npx mastery ingest ../shared/data/cognitive_tutor/ct.tsv --mapping cognitive_tutor --db /tmp/ct.duckdb`,
    )
    .action(async (paths: string[], opts: IngestCliOptions) => {
      const policy = rowReading(opts);
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
        } else {
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
          for (const f of report.files) {
            if (f.rows !== undefined && f.rows.skipped > 0)
              process.stdout.write(`${formatRowCounts(f.rows)}\n`);
          }
          if (report.total.rejected > 0) {
            process.stdout.write("see `mastery quality` for dead-letter reasons (table dead_letter)\n");
          }
        }
        const { accepted, duplicate, rejected } = report.total;
        const read = accepted + duplicate + rejected;
        if (rejected > 0 && accepted + duplicate === 0) {
          const events = report.files.filter((f) => f.rows !== undefined && f.rows.read > 0);
          const top = events.flatMap((f) => f.rows!.reasons).sort((a, b) => b.count - a.count)[0];
          const hints = opts.mapping
            ? []
            : events.flatMap((f) => {
                const m = mappingHintFor(f.file);
                return m === undefined
                  ? []
                  : [`${f.file} has the columns of a known export: pass --mapping ${m}`];
              });
          process.stderr.write(
            `error: every row was rejected (${rejected.toLocaleString("en-US")} rows)${top ? `; most common reason: ${top.reason} (${top.count.toLocaleString("en-US")} rows)` : ""}\n` +
              hints.map((h) => `hint: ${h}\n`).join(""),
          );
          process.exitCode = 3;
        } else if (read > 0 && rejected / read > policy.maxSkipFraction && !policy.allowSkip) {
          throw new CliError(
            `${((100 * rejected) / read).toFixed(2)}% of the rows were rejected (more than --max-skip ${policy.maxSkipFraction}); ` +
              "the valid rows were ingested and the rejected ones are in dead_letter: fix the reasons above, " +
              "or pass --allow-skip when that share is expected",
          );
        }
      } finally {
        store.close();
      }
    });
}
