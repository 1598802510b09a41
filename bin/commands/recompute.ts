import type { Command } from "commander";
import { formatReport, recompute } from "../../serving/recompute.ts";
import { openStreamStores, streamStoreConfigFromEnv } from "../../serving/streamStores.ts";
import { streamModels } from "../../serving/updater.ts";
import { defaultDbPath } from "../options.ts";
import { Progress } from "../progress.ts";

interface RecomputeCliOptions {
  db?: string;
  bktModel?: string;
  eloModel?: string;
  servedModel?: string;
  json?: boolean;
}

export function register(program: Command): void {
  program
    .command("recompute")
    .description(
      "Replay every raw event through the same BKT + Elo update functions as the stream and reconcile the result " +
        "with the streamed learner_state and student_mastery: per table, keys compared, missing/extra rows, " +
        "differences (expected 0) and the largest absolute difference. Exit code 1 on any difference.",
    )
    .option("--db <path>", "DuckDB store used when MASTERY_PG_URL / MASTERY_REDIS_URL are unset")
    .option("--bkt-model <dir>", "BKT model directory the workers use (default: default parameters)")
    .option("--elo-model <dir>", "Elo model directory the workers use (default: default parameters)")
    .option(
      "--served-model <dir>",
      "served model directory the workers use (--served-model of `mastery worker`): also compares the latent filter's state and the 'latent' / 'served' scores",
    )
    .option("--json", "print the report as JSON")
    .addHelpText(
      "after",
      `
Example:
  MASTERY_REDIS_URL=redis://127.0.0.1:6379 MASTERY_PG_URL=postgres://postgres@127.0.0.1:5432/test \\
    npx mastery recompute --elo-model out/elo
`,
    )
    .action(async (opts: RecomputeCliOptions) => {
      const models = streamModels({
        bktModelDir: opts.bktModel,
        eloModelDir: opts.eloModel,
        servedModelDir: opts.servedModel,
      });
      const stores = await openStreamStores(streamStoreConfigFromEnv(opts.db ?? defaultDbPath()));
      try {
        let progress: Progress | undefined;
        const report = await recompute(stores, models, {
          onProgress: (done, total) => {
            progress ??= new Progress("recompute", total);
            progress.set(done);
          },
        });
        progress?.finish();
        process.stdout.write(`${opts.json === true ? JSON.stringify(report) : formatReport(report)}\n`);
        if (!report.ok) process.exitCode = 1;
      } finally {
        await stores.close();
      }
    });
}
