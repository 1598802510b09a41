import type { Command } from "commander";
import { buildFeatures, resolveAsOf } from "../../features/windows.ts";
import { DuckStore } from "../../storage/duckdb.ts";
import { commandGroup, defaultDbPath } from "../options.ts";
import { Progress } from "../progress.ts";

interface FeaturesBuildCliOptions {
  asOf: string;
  db?: string;
  truncate?: boolean;
}

export function register(program: Command): void {
  commandGroup(program, "features", "Windowed features per (student, topic)")
    .command("build")
    .description(
      "Build the 7/30/90-day window features of every (student, topic) with an event before each as-of time " +
        "into the features table (point-in-time: only events with ts < as-of). Rebuilding an as-of replaces it.",
    )
    .option(
      "--as-of <times>",
      'ISO time with offset, a date (UTC midnight), or "now" (= latest event + 1 s); several separated by commas',
      "now",
    )
    .option("--db <path>", "DuckDB store (default: $MASTERY_DB or .mastery/mastery.duckdb)")
    .option("--truncate", "delete all other as-of snapshots from the features table first")
    .addHelpText(
      "after",
      `
Example:
  npx mastery features build --as-of now
  npx mastery features build --as-of 2024-03-01T00:00:00Z,2024-04-01T00:00:00Z --db .mastery/demo/mastery.duckdb
`,
    )
    .action(async (opts: FeaturesBuildCliOptions) => {
      const store = await DuckStore.open(opts.db ?? defaultDbPath());
      try {
        const times = [];
        for (const spec of opts.asOf.split(",")) times.push(await resolveAsOf(store, spec.trim()));
        const progress = new Progress("features", times.length);
        const res = await buildFeatures(store, times, {
          truncate: opts.truncate === true,
          onProgress: (done) => progress.set(done),
        });
        progress.finish(`${res.rows} rows`);
        process.stdout.write(
          `${JSON.stringify({ asOf: res.asOf.map((d) => d.toISOString()), rows: res.rows, seconds: +(res.millis / 1000).toFixed(2) })}\n`,
        );
      } finally {
        store.close();
      }
    });
}
