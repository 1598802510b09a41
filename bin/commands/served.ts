import type { Command } from "commander";
import { resolveAsOf } from "../../features/windows.ts";
import { loadServedModel, scoreServed } from "../../serving/servedScoring.ts";
import { trainServed } from "../../serving/servedTraining.ts";
import { DuckStore } from "../../storage/duckdb.ts";
import { commandGroup, defaultDbPath, parseIntOption } from "../options.ts";

interface TrainServedCliOptions {
  db?: string;
  out: string;
  labelDays: string;
  minLabelAttempts: string;
}

interface ScoreServedCliOptions {
  db?: string;
  model: string;
  asOf: string;
}

/** `mastery train served` and `mastery score served`: the one served mastery estimate (issue 16). */
export function register(program: Command): void {
  commandGroup(program, "train", "Fit a model and write DIR/model.json")
    .command("served")
    .description(
      "Fit the served mastery estimate on a store's own history: a stack of rule/BKT/Elo scores and evidence " +
        "(attempts, days since last evidence) as of T0 = latest event - label days, on the accuracy of each " +
        "(student, topic) after T0; writes DIR/model.json with 80% residual intervals per evidence band",
    )
    .option(
      "--db <path>",
      "DuckDB store to learn from, read only (default: $MASTERY_DB or .mastery/mastery.duckdb)",
    )
    .requiredOption("--out <dir>", "directory for model.json")
    .option("--label-days <n>", "days of the label window after the training snapshot", "7")
    .option("--min-label-attempts <n>", "quiz attempts a pair needs in the label window to be a label", "3")
    .addHelpText(
      "after",
      `
Example:
  npx mastery train served --db .mastery/demo/mastery.duckdb --out out/served
  npx mastery score served --db .mastery/demo/mastery.duckdb --model out/served
`,
    )
    .action(async (opts: TrainServedCliOptions) => {
      const res = await trainServed({
        dbPath: opts.db ?? defaultDbPath(),
        out: opts.out,
        labelDays: parseIntOption(opts.labelDays, "--label-days", 1),
        minLabelAttempts: parseIntOption(opts.minLabelAttempts, "--min-label-attempts", 1),
      });
      const j = res.model.toJSON();
      process.stdout.write(
        `${JSON.stringify({
          modelPath: res.modelPath,
          snapshot: res.snapshot.toISOString(),
          labelEnd: res.labelEnd.toISOString(),
          labelledPairs: res.labelledPairs,
          weights: Object.fromEntries(j.inputs.map((n, i) => [n, j.weights[i]])),
          intercept: j.intercept,
        })}\n`,
      );
    });

  commandGroup(program, "score", "Compute mastery scores from the events in the store")
    .command("served")
    .description(
      "Write the served mastery estimate of every (student, topic) as of a time to student_mastery " +
        "(score_source 'served', with its 80% interval and evidence in the explanation); GET /mastery serves it first",
    )
    .option("--db <path>", "DuckDB store (default: $MASTERY_DB or .mastery/mastery.duckdb)")
    .requiredOption("--model <dir>", "served model directory (model.json from `mastery train served`)")
    .option("--as-of <time>", 'scoring time: "now" (latest event + 1 s) or an ISO time with offset', "now")
    .addHelpText(
      "after",
      `
Example:
  npx mastery score served --model out/served --as-of 2026-11-03T00:00:00Z
`,
    )
    .action(async (opts: ScoreServedCliOptions) => {
      const { model, version } = loadServedModel(opts.model);
      const store = await DuckStore.open(opts.db ?? defaultDbPath());
      try {
        const asOf = await resolveAsOf(store, opts.asOf);
        const res = await scoreServed(store, model, version, { asOf });
        process.stdout.write(`${JSON.stringify(res)}\n`);
      } finally {
        store.close();
      }
    });
}
