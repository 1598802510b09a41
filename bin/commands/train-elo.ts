import type { Command } from "commander";
import { trainElo } from "../../training/elo.ts";
import { parseResponseColumns } from "../../training/responses.ts";
import {
  CliError,
  commandGroup,
  parseIntOption,
  type RowOptions,
  rowReading,
  rowReadingOptions,
} from "../options.ts";
import { Progress } from "../progress.ts";

interface TrainEloCliOptions extends RowOptions {
  data: string;
  columns: string;
  out: string;
  sep?: string;
  seed: string;
  maxEvaluations: string;
}

export function register(program: Command): void {
  rowReadingOptions(
    commandGroup(program, "train", "Fit a model on a response log and write DIR/model.json")
      .command("elo")
      .description(
        "Fit an Elo model (global + per-skill student ability, item difficulty, K(n) = a/(1+b n) fitted by " +
          'Nelder-Mead on the online training log-loss) and write DIR/model.json with kind "elo"',
      )
      .requiredOption("--data <file>", "CSV/TSV response log to train on")
      .requiredOption(
        "--columns <spec>",
        "column roles: user=COL,skill=COL,correct=COL[,item=COL][,order=COL]",
      )
      .requiredOption("--out <dir>", "directory to write model.json into (created if missing)"),
  )
    .option("--seed <n>", "varies the K search's initial simplex; the same seed gives the same model", "0")
    .option("--max-evaluations <n>", "budget of training replays for the K search", "150")
    .addHelpText(
      "after",
      `
Example:
  npx mastery train elo --data ../shared/data/statics_gervet/preprocessed_data_train.csv \\
    --columns user=user_id,skill=skill_id,correct=correct,item=item_id --out out/elo-statics
  npx mastery evaluate --model out/elo-statics --data ../shared/data/statics_gervet/preprocessed_data_test.csv \\
    --columns user=user_id,skill=skill_id,correct=correct,item=item_id
`,
    )
    .action((opts: TrainEloCliOptions) => {
      const columns = parseResponseColumns(opts.columns);
      const seed = parseIntOption(opts.seed, "--seed", 0);
      const maxEvaluations = parseIntOption(opts.maxEvaluations, "--max-evaluations", 1);
      const progress = new Progress("elo: fit K", maxEvaluations);
      let result: ReturnType<typeof trainElo>;
      try {
        result = trainElo({
          data: opts.data,
          columns,
          out: opts.out,
          read: rowReading(opts),
          seed,
          maxEvaluations,
          ...(opts.sep !== undefined ? { sep: opts.sep } : {}),
          onProgress: (p) => progress.set(p.evaluations),
        });
      } catch (err) {
        if (err instanceof Error && err.message.includes("0 responses"))
          throw new CliError(`--data ${opts.data}: no usable rows to train on (${err.message})`);
        throw err;
      }
      const { artifact, modelPath } = result;
      progress.finish(`train logloss ${artifact.train.logloss.toFixed(4)}`);
      process.stdout.write(
        `${JSON.stringify({
          model: modelPath,
          kind: "elo",
          rows: artifact.data.rows,
          skills: Object.keys(artifact.skills).length,
          items: Object.keys(artifact.items).length,
          params: artifact.params,
          trainLogloss: artifact.train.logloss,
          fitSeconds: Number(artifact.fitSeconds.toFixed(3)),
        })}\n`,
      );
    });
}
