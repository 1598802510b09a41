import type { Command } from "commander";
import { resolveAsOf } from "../../features/windows.ts";
import { scoreRules } from "../../serving/ruleScoring.ts";
import { DuckStore } from "../../storage/duckdb.ts";
import { commandGroup, defaultDbPath } from "../options.ts";
import { Progress } from "../progress.ts";

interface ScoreRulesCliOptions {
  asOf?: string;
  db?: string;
  config?: string;
}

export function register(program: Command): void {
  commandGroup(program, "score", "Compute mastery scores from the events in the store")
    .command("rules")
    .description(
      "Score every (student, topic) with the rule-based scorer (config/rule-weights.yaml) from its events' decayed " +
        "sums as of a time; upsert student_mastery (score_source 'rule_based'), append changed scores to " +
        "student_mastery_history, refresh the chapter/subject/course rollup views. Needs no features snapshot.",
    )
    .option(
      "--as-of <time>",
      'scores as of: ISO time with offset or "now" (the newest event + 1 s); default: now',
    )
    .option("--db <path>", "DuckDB store (default: $MASTERY_DB or .mastery/mastery.duckdb)")
    .option("--config <file>", "rule weights YAML (default: config/rule-weights.yaml)")
    .addHelpText(
      "after",
      `
Example:
  npx mastery score rules
  npx mastery score rules --as-of 2024-04-01T00:00:00Z --config config/rule-weights.yaml
`,
    )
    .action(async (opts: ScoreRulesCliOptions) => {
      const store = await DuckStore.open(opts.db ?? defaultDbPath());
      try {
        const asOf = opts.asOf !== undefined ? await resolveAsOf(store, opts.asOf) : undefined;
        const progress = new Progress("rule scoring", 1);
        const res = await scoreRules(store, {
          ...(asOf ? { asOf } : {}),
          ...(opts.config !== undefined ? { configPath: opts.config } : {}),
          onProgress: (done, total) => progress.set(total > 0 ? done / total : 1),
        });
        progress.finish(`${res.scored} rows`);
        process.stdout.write(
          `${JSON.stringify({ asOf: res.asOf.toISOString(), modelVersion: res.modelVersion, scored: res.scored, changed: res.changed, seconds: +(res.millis / 1000).toFixed(2) })}\n`,
        );
      } finally {
        store.close();
      }
    });
}
