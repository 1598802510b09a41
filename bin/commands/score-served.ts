import type { Command } from "commander";
import { resolveAsOf } from "../../features/windows.ts";
import { scoreServedBatch } from "../../serving/servedBatch.ts";
import { loadServedModel, publishServedScores } from "../../serving/servedScoring.ts";
import { DuckStore } from "../../storage/duckdb.ts";
import { PgMasteryStore } from "../../storage/masteryStore.ts";
import { PgStore } from "../../storage/postgres.ts";
import { commandGroup, defaultDbPath } from "../options.ts";
import { Progress } from "../progress.ts";

interface ScoreServedCliOptions {
  db?: string;
  model: string;
  asOf: string;
  workers?: string;
}

/** `mastery score served`: the one served mastery estimate as of a time (issue 16). */
export function register(program: Command): void {
  commandGroup(program, "score", "Compute mastery scores from the events in the store")
    .command("served")
    .description(
      "Write the served mastery estimate of every (student, topic) as of a time to student_mastery " +
        "(score_source 'served', with its 80% interval and evidence in the explanation); GET /mastery serves it first. " +
        "With MASTERY_PG_URL set (and MASTERY_PG_SCHEMA), the same rows are also written to PostgreSQL's student_mastery " +
        "(+ history), which `mastery serve` reads there",
    )
    .option("--db <path>", "DuckDB store (default: $MASTERY_DB or .mastery/mastery.duckdb)")
    .requiredOption("--model <dir>", "served model directory (model.json from `mastery train served`)")
    .option("--as-of <time>", 'scoring time: "now" (latest event + 1 s) or an ISO time with offset', "now")
    .option("--workers <n>", "scoring threads (default: up to 4, one per core, from 20,000 pairs on)")
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
        const workers = opts.workers === undefined ? undefined : Number(opts.workers);
        if (workers !== undefined && !(Number.isInteger(workers) && workers >= 0))
          throw new Error(`--workers must be a whole number >= 0 (got "${opts.workers}")`);
        let progress: Progress | undefined;
        // The batch's served step (serving/servedBatch.ts): scoreServed's rows, per student-key range, in threads.
        const res = await scoreServedBatch(store, model, version, {
          asOf,
          ...(workers !== undefined ? { workers } : {}),
          onProgress: (done, total) => {
            progress ??= new Progress("score served", total);
            progress.set(done);
          },
        });
        progress?.finish();
        const pgUrl = process.env.MASTERY_PG_URL;
        let published: number | undefined;
        if (pgUrl !== undefined && pgUrl !== "") {
          const schema = process.env.MASTERY_PG_SCHEMA;
          const pg = await PgStore.open(pgUrl, schema !== undefined && schema !== "" ? { schema } : {});
          try {
            published = await publishServedScores(store, await PgMasteryStore.open(pg), asOf);
          } finally {
            await pg.close();
          }
        }
        process.stdout.write(
          `${JSON.stringify(published === undefined ? res : { ...res, publishedToPostgres: published })}\n`,
        );
      } finally {
        store.close();
      }
    });
}
