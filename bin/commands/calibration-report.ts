import type { Command } from "commander";
import { coverageWarningsForDir } from "../../training/coverage.ts";
import { loadPredictor } from "../../training/evaluate.ts";
import {
  formatCalibrationTable,
  type GroupColumn,
  groupCalibration,
  readPredictionsCsv,
} from "../../training/groupCalibration.ts";
import { loadResponses, parseResponseColumns } from "../../training/responses.ts";
import { CliError, parseIntOption, type RowOptions, rowReading, rowReadingOptions } from "../options.ts";
import { Progress } from "../progress.ts";

interface ReportOptions extends RowOptions {
  model?: string;
  data?: string;
  columns?: string;
  sep?: string;
  predictions?: string;
  label: string;
  score: string;
  group: string;
  minGroupSize: string;
  bins: string;
  json?: boolean;
  top: string;
}

export function register(program: Command): void {
  rowReadingOptions(
    program
      .command("calibration-report")
      .description(
        "Calibration per group: ECE and reliability-diagram bins for each skill/topic, school, grade ... (groups below --min-group-size are skipped), plus overall; text table or --json",
      )
      .option(
        "--model <dir>",
        "model directory (any kind `mastery evaluate` reads); predictions are online, from earlier rows",
      )
      .option("--data <file>", "with --model: CSV/TSV response log")
      .option("--columns <spec>", "with --model: user=COL,skill=COL,correct=COL[,item=COL][,order=COL]"),
  )
    .option(
      "--predictions <file>",
      "instead of --model: CSV of scored rows with label, score and group columns",
    )
    .option(
      "--label <col>",
      "with --predictions: label column (0/1, true/false, yes/no, correct/incorrect)",
      "label",
    )
    .option("--score <col>", "with --predictions: probability column", "score")
    .option(
      "--group <cols>",
      "group columns, comma-separated; with --model, skill/item/user are the log's roles and any other name is a column of --data (e.g. school_id,grade)",
      "skill",
    )
    .option("--min-group-size <n>", "report only groups with at least this many rows", "50")
    .option("--bins <n>", "equal-width probability bins", "10")
    .option("--top <n>", "text table: groups shown per column (worst ECE first)", "20")
    .option("--json", "print the full report as JSON")
    .addHelpText(
      "after",
      `
Examples:
  npx mastery calibration-report --model out/gbt --data ../shared/data/statics_gervet/preprocessed_data_test.csv \\
    --columns user=user_id,skill=skill_id,correct=correct,item=item_id --group skill --min-group-size 200
  npx mastery calibration-report --model out/bkt --data data/quiz_attempts.csv \\
    --columns user=student_id,skill=topic_id,correct=is_correct,order=timestamp --group skill,school_id,grade
  npx mastery calibration-report --predictions scored.csv --label is_correct --score p --group school_id,grade,topic_id`,
    )
    .action((opts: ReportOptions) => {
      const minGroupSize = parseIntOption(opts.minGroupSize, "--min-group-size", 1);
      const bins = parseIntOption(opts.bins, "--bins", 1);
      const top = parseIntOption(opts.top, "--top", 1);
      const groups = opts.group
        .split(",")
        .map((g) => g.trim())
        .filter((g) => g !== "");
      let y: ArrayLike<number>;
      let p: ArrayLike<number>;
      let columns: GroupColumn[];
      if (opts.predictions !== undefined) {
        if (opts.model !== undefined)
          throw new CliError("pass either --model (with --data) or --predictions, not both");
        const read = readPredictionsCsv(
          opts.predictions,
          {
            label: opts.label,
            score: opts.score,
            groups,
            ...(opts.sep === undefined ? {} : { sep: opts.sep }),
          },
          rowReading(opts),
        );
        ({ y, p, columns } = read);
      } else {
        if (opts.model === undefined || opts.data === undefined || opts.columns === undefined)
          throw new CliError("pass --model DIR --data FILE --columns SPEC, or --predictions FILE");
        const spec = parseResponseColumns(opts.columns);
        const progress = new Progress("calibration report", 2 + groups.length);
        const log = loadResponses(opts.data, spec, opts.sep, rowReading(opts));
        progress.tick();
        for (const w of coverageWarningsForDir(opts.model, log, spec))
          process.stderr.write(`warning: ${w}\n`);
        p = loadPredictor(opts.model).predictLog(log);
        y = log.correct;
        progress.tick();
        columns = groups.map((g) => {
          progress.tick();
          if (g === "skill") return { name: g, ids: log.skill, labels: log.skillNames };
          if (g === "user") return { name: g, ids: log.user, labels: log.userNames };
          if (g === "item") {
            if (log.itemNames.length === 0) throw new CliError("--group item needs item=COL in --columns");
            return { name: g, ids: log.item, labels: log.itemNames };
          }
          // Any other column: load the log again with that column in the skill role. Row order depends only on
          // the user and order columns, so the rows line up with the predictions.
          const other = loadResponses(opts.data!, { ...spec, skill: g }, opts.sep, { allowSkip: true });
          if (other.n !== log.n)
            throw new CliError(
              `--group ${g}: ${log.n - other.n} rows have no ${g}; fill the column or drop those rows`,
            );
          return { name: g, ids: other.skill, labels: other.skillNames };
        });
        progress.finish();
      }
      const report = groupCalibration(y, p, columns, { bins, minGroupSize });
      process.stdout.write(opts.json ? `${JSON.stringify(report)}\n` : formatCalibrationTable(report, top));
    });
}
