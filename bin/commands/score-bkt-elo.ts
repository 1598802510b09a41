import type { Command } from "commander";
import { resolveModels, scoreBktElo } from "../../serving/learnerState.ts";
import { DuckStore } from "../../storage/duckdb.ts";
import { commandGroup, defaultDbPath, parseIntOption } from "../options.ts";
import { Progress } from "../progress.ts";

interface ScoreBktEloCliOptions {
  db?: string;
  bktModel?: string;
  eloModel?: string;
  full?: boolean;
  seed: string;
  threads?: string;
}

export function register(program: Command): void {
  commandGroup(program, "score", "Compute mastery scores from the events in the store")
    .command("bkt-elo")
    .description(
      "Replay raw_events per (student, topic) through BKT and Elo into learner_state, and write 'bkt' and 'elo' " +
        "scores with explanations to student_mastery (+ history). Incremental unless --full.",
    )
    .option("--db <path>", "DuckDB store (default: $MASTERY_DB or .mastery/mastery.duckdb)")
    .option(
      "--bkt-model <dir>",
      "BKT model directory (model.json from `mastery train bkt`); default: fit on the store's quiz attempts",
    )
    .option(
      "--elo-model <dir>",
      "Elo model directory (model.json from `mastery train elo`); default: fit on the store's quiz attempts",
    )
    .option(
      "--full",
      "replay every key from its first event, ignoring stored states (late events are replayed without it too)",
    )
    .option("--seed <n>", "seed of the quick fits when no model is given", "0")
    .option(
      "--threads <n>",
      "DuckDB worker threads (default: one per core); 1 spends ~40% less CPU on a busy 2-core machine (docs/benchmarks.md)",
    )
    .addHelpText(
      "after",
      `
Example:
  npx mastery score bkt-elo --db .mastery/demo/mastery.duckdb --elo-model out/elo-statics
  npx mastery score bkt-elo --full      # quick-fit both models on the store's quiz attempts, rebuild everything
`,
    )
    .action(async (opts: ScoreBktEloCliOptions) => {
      const seed = parseIntOption(opts.seed, "--seed", 0);
      const threads = opts.threads === undefined ? undefined : parseIntOption(opts.threads, "--threads", 1);
      const store = await DuckStore.open(
        opts.db ?? defaultDbPath(),
        threads === undefined ? {} : { threads },
      );
      try {
        const models = await resolveModels(store, {
          seed,
          ...(opts.bktModel !== undefined ? { bktModelDir: opts.bktModel } : {}),
          ...(opts.eloModel !== undefined ? { eloModelDir: opts.eloModel } : {}),
        });
        let progress: Progress | undefined;
        const result = await scoreBktElo(store, models, {
          full: opts.full === true,
          onProgress: (done, total) => {
            progress ??= new Progress("score bkt-elo", total);
            progress.set(done);
          },
        });
        progress?.finish();
        process.stdout.write(`${JSON.stringify(result)}\n`);
      } finally {
        store.close();
      }
    });
}
