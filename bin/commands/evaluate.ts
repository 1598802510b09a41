import type { Command } from "commander";
import { coverageWarningsForDir } from "../../training/coverage.ts";
import { evaluateOnline, loadPredictor } from "../../training/evaluate.ts";
import { loadResponses, parseResponseColumns } from "../../training/responses.ts";
import { type RowOptions, rowReading, rowReadingOptions } from "../options.ts";

interface EvaluateOptions extends RowOptions {
  model: string;
  data: string;
  columns: string;
  sep?: string;
}

export function register(program: Command): void {
  rowReadingOptions(
    program
      .command("evaluate")
      .description(
        "Online next-response evaluation of a trained model: each row is predicted from that student's earlier rows only; prints one JSON line {auc, rmse, logloss, ece, n}",
      )
      .requiredOption("--model <dir>", "directory holding model.json (written by `mastery train ...`)")
      .requiredOption("--data <file>", "CSV/TSV response log to evaluate on")
      .requiredOption(
        "--columns <spec>",
        "column roles: user=COL,skill=COL,correct=COL[,item=COL][,order=COL][,time=COL] (time: epoch s/ms or ISO; adds day-window features to gbt/mlp/blend)",
      ),
  )
    .addHelpText(
      "after",
      `
Example:
  npx mastery evaluate --model out/bkt --data ../shared/data/assistments09_dkt/builder_test_preprocessed.csv \\
    --columns user=user_id,skill=skill_name,correct=correct`,
    )
    .action((opts: EvaluateOptions) => {
      const columns = parseResponseColumns(opts.columns);
      const predictor = loadPredictor(opts.model);
      const log = loadResponses(opts.data, columns, opts.sep, rowReading(opts));
      for (const w of coverageWarningsForDir(opts.model, log, columns))
        process.stderr.write(`warning: ${w}\n`);
      const m = evaluateOnline(predictor, log);
      process.stdout.write(
        `${JSON.stringify({ auc: m.auc, rmse: m.rmse, logloss: m.logloss, ece: m.ece, n: m.n })}\n`,
      );
    });
}
