import type { Command } from "commander";
import { resolveAsOf } from "../../features/windows.ts";
import { loadDriftConfig } from "../../monitoring/config.ts";
import { lockFromEnv } from "../../monitoring/locks.ts";
import { monitorOnce } from "../../monitoring/loop.ts";
import { openMonitoring } from "../../monitoring/open.ts";
import { defaultDbPath } from "../options.ts";
import { Progress } from "../progress.ts";

export function register(program: Command): void {
  program
    .command("retrain")
    .description(
      "Check drift and live performance; when either crosses its threshold (or with --force), train a challenger on recent answers, register it, run the promotion gate and promote or say why not. Holds the retrain lock (PostgreSQL advisory lock with MASTERY_PG_URL, Redis with MASTERY_REDIS_URL, else a lock file)",
    )
    .option("--force", "retrain even if nothing triggered")
    .option("--db <path>", "DuckDB file (default: $MASTERY_DB or .mastery/mastery.duckdb)")
    .option("--config <file>", "drift configuration (default config/drift.yaml)")
    .option("--artifacts <dir>", "artifact store directory (default .mastery/artifacts or MASTERY_ARTIFACTS)")
    .option(
      "--as-of <time>",
      'the time the run is for: "now" = newest event + 1 s (default), or an ISO time',
      "now",
    )
    .option("--json", "print the result as JSON")
    .addHelpText(
      "after",
      `
Example:
  npx mastery retrain --force --db .mastery/mastery.duckdb`,
    )
    .action(
      async (opts: {
        force?: boolean;
        asOf: string;
        db?: string;
        config?: string;
        artifacts?: string;
        json?: boolean;
      }) => {
        const config = loadDriftConfig(opts.config);
        const dbPath = opts.db ?? defaultDbPath();
        const h = await openMonitoring({
          dbPath,
          artifacts: opts.artifacts ?? process.env.MASTERY_ARTIFACTS ?? ".mastery/artifacts",
        });
        const lock = lockFromEnv({ key: config.retrain.lockKey, ttlMs: config.retrain.lockTtlMs, dbPath });
        const progress = new Progress("retrain", 4);
        try {
          const asOf = await resolveAsOf(h.store, opts.asOf);
          const r = await monitorOnce({
            now: () => asOf,
            store: h.store,
            config,
            registry: h.registry,
            lock,
            force: opts.force === true,
          });
          progress.finish();
          if (opts.json) {
            process.stdout.write(
              `${JSON.stringify({ triggers: r.triggers, driftError: r.driftError, retrain: r.retrain }, null, 2)}\n`,
            );
          } else {
            const lines = [
              r.triggers.length
                ? `triggers:\n  ${r.triggers.join("\n  ")}`
                : "nothing triggered a retrain (use --force to retrain anyway)",
            ];
            if (r.driftError) lines.push(`drift check skipped: ${r.driftError}`);
            if (r.retrain)
              lines.push(
                `retrain ${r.retrain.status}: ${r.retrain.modelName} champion ${r.retrain.champion ?? "-"} challenger ${r.retrain.challenger ?? "-"} (${r.retrain.trainRows} train / ${r.retrain.holdoutRows} holdout answers)`,
                `  ${r.retrain.summary}`,
              );
            process.stdout.write(`${lines.join("\n")}\n`);
          }
          if (r.retrain?.status === "failed") process.exitCode = 1;
        } finally {
          await lock.close();
          await h.close();
        }
      },
    );
}
