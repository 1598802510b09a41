import { readFileSync } from "node:fs";
import type { Command } from "commander";
import { type Matrix, rowMajor } from "../../models/treeEnsemble.ts";
import { checkOnnx, exportToFile, importOnnxFile } from "../../training/onnxExport.ts";
import { loadResponses, parseResponseColumns } from "../../training/responses.ts";
import { CliError, commandGroup, type RowOptions, rowReading, rowReadingOptions } from "../options.ts";
import { Progress } from "../progress.ts";

/** Numeric CSV with a header row; empty cells and NA/NaN are missing. */
function readNumericCsv(path: string): Matrix {
  const lines = readFileSync(path, "utf8")
    .split(/\r?\n/)
    .filter((l) => l.trim() !== "");
  const sep = (lines[0] ?? "").includes("\t") ? "\t" : ",";
  const nCols = (lines[0] ?? "").split(sep).length;
  const rows = lines.slice(1);
  const data = new Float64Array(rows.length * nCols);
  rows.forEach((line, r) => {
    const cells = line.split(sep);
    if (cells.length !== nCols)
      throw new CliError(
        `--background ${path}: line ${r + 2} has ${cells.length} cells, the header has ${nCols}`,
      );
    cells.forEach((cell, c) => {
      const t = cell.trim();
      const v = t === "" || t === "NA" || t === "NaN" ? Number.NaN : Number(t);
      if (Number.isNaN(v) && !(t === "" || t === "NA" || t === "NaN"))
        throw new CliError(`--background ${path}: line ${r + 2}, column ${c + 1} is not a number ("${t}")`);
      data[r * nCols + c] = v;
    });
  });
  return rowMajor(data, rows.length, nCols);
}

export function register(program: Command): void {
  const onnx = commandGroup(
    program,
    "onnx",
    "Export models to ONNX, import ONNX tree ensembles, check ONNX vs TypeScript",
  );

  onnx
    .command("export")
    .description(
      "Write a gbt, mlp or tree-ensemble model directory as one .onnx file (input: raw feature rows [N, F]; outputs: margin, score, calibrated)",
    )
    .requiredOption(
      "--model <dir>",
      "directory holding model.json (from `mastery train gbt|mlp` or `mastery onnx import`)",
    )
    .requiredOption("--out <file>", "the .onnx file to write")
    .option(
      "--precision <p>",
      "trees: float32 (float input, thresholds rounded up to float32) or float64 (double input, exact)",
      "float32",
    )
    .addHelpText(
      "after",
      `
Example:
  npx mastery onnx export --model out/gbt --out out/gbt.onnx`,
    )
    .action((opts: { model: string; out: string; precision: string }) => {
      if (opts.precision !== "float32" && opts.precision !== "float64")
        throw new CliError(`--precision must be float32 or float64 (got "${opts.precision}")`);
      const bytes = exportToFile(opts.model, opts.out, { precision: opts.precision });
      process.stdout.write(`${JSON.stringify({ out: opts.out, bytes })}\n`);
    });

  onnx
    .command("import")
    .description(
      "Read an ai.onnx.ml TreeEnsembleRegressor (e.g. an XGBoost/LightGBM model converted elsewhere) into a tree-ensemble model directory that TreeSHAP can explain",
    )
    .argument("<file>", "the .onnx file")
    .requiredOption("--out <dir>", "output directory for model.json")
    .option(
      "--background <csv>",
      "numeric CSV (header row, one column per model feature) used to count covers when the file has no nodes_hitrates",
    )
    .addHelpText(
      "after",
      `
Example:
  npx mastery onnx import test/models/fixtures/xgboost-squared.onnx --out out/xgb \\
    --background train-features.csv`,
    )
    .action((file: string, opts: { out: string; background?: string }) => {
      const bg = opts.background === undefined ? undefined : readNumericCsv(opts.background);
      const a = importOnnxFile(file, opts.out, bg);
      process.stdout.write(
        `${JSON.stringify({ out: opts.out, trees: a.trees.length, nFeatures: a.nFeatures, objective: a.objective, coverSource: a.coverSource })}\n`,
      );
    });

  rowReadingOptions(
    onnx
      .command("check")
      .description(
        "Score a response log with a gbt/mlp model directory and with its .onnx export (onnxruntime-node); prints the largest difference per output",
      )
      .requiredOption("--model <dir>", "directory holding model.json")
      .requiredOption("--onnx <file>", "the .onnx file exported from it")
      .requiredOption("--data <file>", "CSV/TSV response log")
      .requiredOption(
        "--columns <spec>",
        "column roles: user=COL,skill=COL,correct=COL[,item=COL][,order=COL][,time=COL] (time: epoch s/ms or ISO; adds day-window features to gbt/mlp/blend)",
      ),
  )
    .option("--tolerance <x>", "exit with an error when an output differs by more than this", "1e-5")
    .addHelpText(
      "after",
      `
Example:
  npx mastery onnx check --model out/gbt --onnx out/gbt.onnx \\
    --data ../shared/data/assistments09_gervet/preprocessed_data_test.csv \\
    --columns user=user_id,skill=skill_id,correct=correct,item=item_id`,
    )
    .action(
      async (
        opts: {
          model: string;
          onnx: string;
          data: string;
          columns: string;
          sep?: string;
          tolerance: string;
        } & RowOptions,
      ) => {
        const tol = Number(opts.tolerance);
        if (!(tol > 0)) throw new CliError(`--tolerance must be a positive number (got "${opts.tolerance}")`);
        const progress = new Progress("onnx check", 3);
        const log = loadResponses(opts.data, parseResponseColumns(opts.columns), opts.sep, rowReading(opts));
        progress.tick();
        const report = await checkOnnx(opts.model, opts.onnx, log);
        progress.finish();
        process.stdout.write(`${JSON.stringify(report)}\n`);
        const worst = report.outputs.find((o) => o.maxAbsDiff > tol);
        if (worst !== undefined)
          throw new CliError(
            `ONNX output "${worst.output}" differs from the TypeScript model by ${worst.maxAbsDiff} (> --tolerance ${tol})`,
          );
      },
    );
}
