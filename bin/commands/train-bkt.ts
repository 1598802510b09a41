import type { Command } from "commander";
import { DEFAULT_BKT_OPTIONS } from "../../models/bkt.ts";
import { trainBkt } from "../../training/bktFit.ts";
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

interface TrainBktOptions extends RowOptions {
  data: string;
  columns: string;
  sep?: string;
  forgets?: boolean;
  restarts: string;
  seed: string;
  maxIter: string;
  tol: string;
  maxGuess?: string;
  maxSlip?: string;
  threads?: string;
  out: string;
}

function parseProbability(value: string, flag: string): number {
  const v = Number(value);
  if (!(v > 0 && v <= 1)) throw new CliError(`${flag} must be a number in (0, 1] (got "${value}")`);
  return v;
}

export function register(program: Command): void {
  rowReadingOptions(
    commandGroup(program, "train", "Fit a model and write DIR/model.json")
      .command("bkt")
      .description(
        "Fit Bayesian Knowledge Tracing per skill (Baum-Welch EM, random restarts, both cores) and write DIR/model.json",
      )
      .requiredOption("--data <file>", "CSV/TSV response log, one row per attempt")
      .requiredOption(
        "--columns <spec>",
        "column roles: user=COL,skill=COL,correct=COL[,order=COL] (rows keep file order within a user unless order= is given)",
      ),
  )
    .option("--forgets", "also fit the forgetting transition (pyBKT's forgets=True)")
    .option("--restarts <n>", "random restarts per skill; the best log-likelihood is kept", "5")
    .option(
      "--seed <s>",
      "seed of the restart initialisations (same seed -> same model, any thread count)",
      "42",
    )
    .option("--max-iter <n>", "maximum EM iterations per restart", String(DEFAULT_BKT_OPTIONS.maxIter))
    .option(
      "--tol <x>",
      "stop when a skill's log-likelihood changes by less than this",
      String(DEFAULT_BKT_OPTIONS.tol),
    )
    .option(
      "--max-guess <p>",
      "upper bound on guess (e.g. 0.3 to avoid degenerate fits); default: unbounded like pyBKT",
    )
    .option("--max-slip <p>", "upper bound on slip (e.g. 0.3); default: unbounded like pyBKT")
    .option("--threads <n>", "compute threads (default: all cores)")
    .requiredOption("--out <dir>", "output directory for model.json")
    .addHelpText(
      "after",
      `
Example:
  npx mastery train bkt --data ../shared/data/assistments09_dkt/builder_train_preprocessed.csv \\
    --columns user=user_id,skill=skill_name,correct=correct --forgets --restarts 20 --seed 1 --out out/bkt`,
    )
    .action(async (opts: TrainBktOptions) => {
      const columns = parseResponseColumns(opts.columns);
      const restarts = parseIntOption(opts.restarts, "--restarts", 1);
      const seed = parseIntOption(opts.seed, "--seed", 0);
      const maxIter = parseIntOption(opts.maxIter, "--max-iter", 1);
      const tol = Number(opts.tol);
      if (!(tol >= 0)) throw new CliError(`--tol must be a number >= 0 (got "${opts.tol}")`);
      const bounds: { maxGuess?: number; maxSlip?: number } = {};
      if (opts.maxGuess !== undefined) bounds.maxGuess = parseProbability(opts.maxGuess, "--max-guess");
      if (opts.maxSlip !== undefined) bounds.maxSlip = parseProbability(opts.maxSlip, "--max-slip");
      const threads = opts.threads === undefined ? undefined : parseIntOption(opts.threads, "--threads", 1);

      const progress = new Progress("train bkt", 1);
      const { model, modelPath } = await trainBkt({
        data: opts.data,
        columns,
        ...(opts.sep === undefined ? {} : { sep: opts.sep }),
        out: opts.out,
        read: rowReading(opts),
        options: {
          forgets: opts.forgets === true,
          restarts,
          seed,
          maxIter,
          tol,
          bounds: { ...DEFAULT_BKT_OPTIONS.bounds, ...bounds },
        },
        ...(threads === undefined ? {} : { threads }),
        onProgress: (done, total) => progress.set(done / total),
      });
      progress.finish(`${model.skills.size} skills, log-likelihood ${model.logLikelihood.toFixed(1)}`);
      process.stdout.write(
        `${JSON.stringify({ model: modelPath, kind: "bkt", skills: model.skills.size, nRows: model.nRows, logLikelihood: model.logLikelihood, fitSeconds: model.fitSeconds })}\n`,
      );
    });
}
