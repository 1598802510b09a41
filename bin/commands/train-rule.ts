import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Command } from "commander";
import { kindOf } from "../../training/kinds.ts";
import { evaluateModel } from "../../training/modelKind.ts";
import { loadResponses, parseResponseColumns } from "../../training/responses.ts";
import { commandGroup, parseIntOption, type RowOptions, rowReading, rowReadingOptions } from "../options.ts";

interface TrainRuleCliOptions extends RowOptions {
  data: string;
  columns: string;
  out: string;
  sep?: string;
  seed: string;
}

/** `mastery train rule`: the rule kind of training/kinds.ts (fitted rule weights), through the kind contract. */
export function register(program: Command): void {
  rowReadingOptions(
    commandGroup(program, "train", "Fit a model on a response log and write DIR/model.json")
      .command("rule")
      .description(
        'Fit the rule weights (topic accuracy shrunk toward a prior with k pseudo-answers; prior = training accuracy, k by online log-loss) and write DIR/model.json with kind "rule"',
      )
      .requiredOption("--data <file>", "CSV/TSV response log to train on")
      .requiredOption(
        "--columns <spec>",
        "column roles: user=COL,skill=COL,correct=COL[,item=COL][,order=COL]",
      )
      .requiredOption("--out <dir>", "directory to write model.json into (created if missing)"),
  )
    .option("--seed <n>", "recorded with the model (the fit is deterministic)", "0")
    .addHelpText(
      "after",
      `
Example:
  npx mastery train rule --data train.csv --columns user=user_id,skill=skill_id,correct=correct --out out/rule
`,
    )
    .action(async (opts: TrainRuleCliOptions) => {
      const log = loadResponses(opts.data, parseResponseColumns(opts.columns), opts.sep, rowReading(opts));
      const model = await kindOf("rule")
        .create()
        .fit(log, { seed: parseIntOption(opts.seed, "--seed", 0) });
      mkdirSync(opts.out, { recursive: true });
      const path = join(opts.out, "model.json");
      const json = model.toJSON();
      writeFileSync(path, `${JSON.stringify(json, null, 1)}\n`);
      const train = evaluateModel(model, log);
      process.stdout.write(
        `${JSON.stringify({ model: path, kind: "rule", rows: log.n, weights: json.weights, trainLogloss: train.logloss })}\n`,
      );
    });
}
