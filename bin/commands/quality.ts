import type { Command } from "commander";
import { formatQualityReport, qualityReport } from "../../features/quality.ts";
import {
  DEFAULT_QUALITY_DRIFT_OPTIONS,
  type QualityDriftOptions,
  setQualityReference,
} from "../../features/qualityDrift.ts";
import { DuckStore } from "../../storage/duckdb.ts";
import { CliError, defaultDbPath, parseIntOption } from "../options.ts";

interface QualityOptions {
  db?: string;
  json?: boolean;
  setReference?: boolean;
  profileDays: string;
  baselineDays: string;
  period: string;
  threshold: string;
  reportDays: string;
}

function driftOptions(opts: QualityOptions): QualityDriftOptions {
  const threshold = Number(opts.threshold);
  if (!(threshold > 0)) throw new CliError(`--threshold must be a positive number (got ${opts.threshold})`);
  const baselineDays = parseIntOption(opts.baselineDays, "--baseline-days", 1);
  const period = parseIntOption(opts.period, "--period", 1);
  if (period > baselineDays)
    throw new CliError(
      `--period ${period} is longer than --baseline-days ${baselineDays}; use --period 1 or more days`,
    );
  return {
    ...DEFAULT_QUALITY_DRIFT_OPTIONS,
    profileDays: parseIntOption(opts.profileDays, "--profile-days", 1),
    reportDays: parseIntOption(opts.reportDays, "--report-days", 1),
    volume: {
      baselineDays,
      period,
      threshold,
      minBaselineDays: Math.max(period, Math.ceil(baselineDays / 2)),
    },
  };
}

export function register(program: Command): void {
  const d = DEFAULT_QUALITY_DRIFT_OPTIONS;
  program
    .command("quality")
    .description(
      "Data-quality report: completeness of required fields, freshness per source and type, null rates, " +
        "dead-letter counts by field and reason, schema drift per source (new, missing, retyped fields) and daily volume anomalies",
    )
    .option("--db <path>", "DuckDB file (default: $MASTERY_DB or .mastery/mastery.duckdb)")
    .option("--json", "print the report as JSON")
    .option(
      "--set-reference",
      "store the current schema of every source (newest --profile-days of events, newest file) as the schema-drift reference, then report",
    )
    .option("--profile-days <n>", "days of events one schema profile covers", String(d.profileDays))
    .option(
      "--baseline-days <n>",
      "trailing days a day's volume is compared with",
      String(d.volume.baselineDays),
    )
    .option(
      "--period <n>",
      "seasonal period in days (7: compare with the same weekdays; 1: with every day)",
      String(d.volume.period),
    )
    .option("--threshold <z>", "flag a day whose |robust z| is at least this", String(d.volume.threshold))
    .option("--report-days <n>", "list flagged days from the last n days", String(d.reportDays))
    .addHelpText(
      "after",
      `
Example:
  npx mastery quality --db .mastery/mastery.duckdb --json
  npx mastery quality --set-reference          # accept today's fields and types as the reference
  npx mastery quality --period 1 --baseline-days 14 --threshold 4`,
    )
    .action(async (opts: QualityOptions) => {
      const drift = driftOptions(opts);
      const store = await DuckStore.open(opts.db ?? defaultDbPath());
      try {
        const now = new Date();
        if (opts.setReference) {
          const groups = await setQualityReference(store, now, drift);
          process.stderr.write(
            `schema reference set for ${groups.length} source/type groups (${groups.reduce((s, g) => s + g.fields.length, 0)} fields)\n`,
          );
        }
        const report = await qualityReport(store, now, drift);
        process.stdout.write(
          opts.json ? `${JSON.stringify(report, null, 2)}\n` : `${formatQualityReport(report)}\n`,
        );
      } finally {
        store.close();
      }
    });
}
