import type { Command } from "commander";
import { type AttemptModelKind, trainAttemptModel } from "../../training/blendTrain.ts";
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

interface TrainMlOptions extends RowOptions {
  data: string;
  columns: string;
  sep?: string;
  seed: string;
  folds: string;
  bktModel?: string;
  eloModel?: string;
  threads?: string;
  rounds?: string;
  learningRate?: string;
  maxDepth?: string;
  hidden?: string;
  epochs?: string;
  out: string;
}

const DESCRIPTIONS: Record<AttemptModelKind, string> = {
  gbt: "Fit gradient-boosted trees (logistic loss) on next-response attempt features (counts in attempt windows, BKT, Elo, item/skill statistics), early-stopped and calibrated on held-out students",
  mlp: "Fit a small MLP (tfjs) on the same attempt features as `train gbt`, early-stopped and calibrated on held-out students",
  blend:
    "Fit GBT and MLP, then a calibrated stacked logistic regression over [BKT, Elo, GBT, MLP, rule accuracy] on held-out students",
};

function addKind(train: Command, kind: AttemptModelKind): void {
  rowReadingOptions(
    train
      .command(kind)
      .description(DESCRIPTIONS[kind])
      .requiredOption(
        "--data <file>",
        "CSV/TSV response log, one row per attempt, each student's rows in order",
      )
      .requiredOption(
        "--columns <spec>",
        "column roles: user=COL,skill=COL,correct=COL[,item=COL][,order=COL][,time=COL] (item= enables item difficulty features; time= (epoch s/ms or ISO) adds 1h/1d/7d/30d/90d window features, point in time)",
      ),
  )
    .option("--seed <s>", "seed of the student folds, BKT restarts, GBT sampling and MLP init", "42")
    .option(
      "--folds <k>",
      "student folds for out-of-fold item/Elo statistics; fold 0 is the validation set",
      "5",
    )
    .option("--bkt-model <dir>", "use this BKT model.json (from `mastery train bkt`) instead of fitting BKT")
    .option("--elo-model <dir>", "use this Elo model.json (from `mastery train elo`) instead of fitting Elo")
    .option("--threads <n>", "compute threads for BKT and GBT (default 2)")
    .option("--rounds <n>", "GBT: maximum boosting rounds (early stopping on held-out students)")
    .option("--learning-rate <x>", "GBT: shrinkage")
    .option("--max-depth <n>", "GBT: maximum tree depth")
    .option("--hidden <widths>", "MLP: hidden layer widths, e.g. 32,16")
    .option("--epochs <n>", "MLP: maximum epochs (early stopping on held-out students)")
    .requiredOption("--out <dir>", "output directory for model.json")
    .addHelpText(
      "after",
      `
Example:
  npx mastery train ${kind} --data ../shared/data/statics_gervet/preprocessed_data_train.csv \\
    --columns user=user_id,skill=skill_id,correct=correct,item=item_id --out out/${kind}-statics
  npx mastery evaluate --model out/${kind}-statics --data ../shared/data/statics_gervet/preprocessed_data_test.csv \\
    --columns user=user_id,skill=skill_id,correct=correct,item=item_id`,
    )
    .action(async (opts: TrainMlOptions) => {
      const columns = parseResponseColumns(opts.columns);
      const gbt: { nRounds?: number; learningRate?: number; maxDepth?: number } = {};
      if (opts.rounds !== undefined) gbt.nRounds = parseIntOption(opts.rounds, "--rounds", 1);
      if (opts.maxDepth !== undefined) gbt.maxDepth = parseIntOption(opts.maxDepth, "--max-depth", 1);
      if (opts.learningRate !== undefined) {
        const v = Number(opts.learningRate);
        if (!(v > 0 && v <= 1))
          throw new CliError(`--learning-rate must be a number in (0, 1] (got "${opts.learningRate}")`);
        gbt.learningRate = v;
      }
      const mlp: { hidden?: number[]; maxEpochs?: number } = {};
      if (opts.hidden !== undefined)
        mlp.hidden = opts.hidden.split(",").map((w) => parseIntOption(w.trim(), "--hidden", 1));
      if (opts.epochs !== undefined) mlp.maxEpochs = parseIntOption(opts.epochs, "--epochs", 1);
      let bar: Progress | undefined;
      let stage = "";
      const result = await trainAttemptModel({
        kind,
        data: opts.data,
        columns,
        out: opts.out,
        read: rowReading(opts),
        seed: parseIntOption(opts.seed, "--seed", 0),
        folds: parseIntOption(opts.folds, "--folds", 2),
        gbt,
        mlp,
        ...(opts.sep !== undefined ? { sep: opts.sep } : {}),
        ...(opts.bktModel !== undefined ? { bktModel: opts.bktModel } : {}),
        ...(opts.eloModel !== undefined ? { eloModel: opts.eloModel } : {}),
        ...(opts.threads !== undefined ? { threads: parseIntOption(opts.threads, "--threads", 1) } : {}),
        onProgress: (s, done, total) => {
          if (s !== stage) {
            bar?.finish();
            stage = s;
            bar = new Progress(`train ${kind}: ${s}`, total);
          }
          bar?.set(done);
        },
      });
      bar?.finish();
      process.stdout.write(`${JSON.stringify(result.summary)}\n`);
    });
}

export function register(program: Command): void {
  const train = commandGroup(program, "train", "Fit a model and write DIR/model.json");
  for (const kind of ["gbt", "mlp", "blend"] as const) addKind(train, kind);
}
