import type { Command } from "commander";
import { pseudonymizerFromEnv } from "../../features/pseudonymize.ts";
import { loadDriftConfig } from "../../monitoring/config.ts";
import { lockFromEnv } from "../../monitoring/locks.ts";
import { openMonitoring } from "../../monitoring/open.ts";
import { loadThresholds } from "../../serving/alerts.ts";
import { type JobOutcome, runScheduledJob, startScheduler } from "../../serving/schedule.ts";
import { loadScheduleConfig, SCHEDULED_JOBS, type ScheduledJob } from "../../serving/scheduleConfig.ts";
import { BatchRunStore } from "../../storage/batchRuns.ts";
import { DuckStore } from "../../storage/duckdb.ts";
import { CliError, defaultDbPath, parseIntOption } from "../options.ts";

/** Exit code of `--once` when another process holds the schedule lock (nothing was run). */
export const EXIT_LOCKED = 3;

interface ScheduleCliOptions {
  once?: boolean;
  job: string;
  config?: string;
  driftConfig?: string;
  db?: string;
  artifacts?: string;
  runs?: string;
  full?: boolean;
  thresholds?: string;
}

function jobsOf(spec: string): ScheduledJob[] {
  if (spec === "all") return [...SCHEDULED_JOBS];
  const jobs = spec.split(",").map((s) => s.trim());
  for (const j of jobs)
    if (!(SCHEDULED_JOBS as readonly string[]).includes(j))
      throw new CliError(`--job: unknown job "${j}"; use one of ${SCHEDULED_JOBS.join(", ")} or all`);
  return jobs as ScheduledJob[];
}

const line = (o: JobOutcome): string => `${JSON.stringify({ at: new Date().toISOString(), ...o })}\n`;

export function register(program: Command): void {
  program
    .command("schedule")
    .description(
      "Run the daily batch (ingest inbox, features, rule scores, BKT/Elo) and the drift/retrain checks at the times in " +
        "config/schedule.yaml (UTC), under one lock (PostgreSQL advisory lock with MASTERY_PG_URL, Redis with " +
        "MASTERY_REDIS_URL, else a lock file), recording each run in batch_runs and alerting the configured webhooks " +
        `on failure. --once runs now and exits: 0 ok, 1 a job failed, ${EXIT_LOCKED} the lock is held (nothing run)`,
    )
    .option("--once", "run the jobs now, one after the other, and exit (for cron / systemd timers)")
    .option("--job <jobs>", `jobs to run: ${SCHEDULED_JOBS.join(", ")} (comma-separated) or all`, "all")
    .option("--config <file>", "schedule configuration (default config/schedule.yaml)")
    .option("--drift-config <file>", "drift/retrain configuration (default config/drift.yaml)")
    .option("--db <path>", "DuckDB store (default: $MASTERY_DB or .mastery/mastery.duckdb)")
    .option("--artifacts <dir>", "artifact store directory (default .mastery/artifacts or MASTERY_ARTIFACTS)")
    .option("--runs <n>", "print the newest N run records (batch_runs) as JSON and exit")
    .option(
      "--full",
      "batch: recompute every feature pair and replay every BKT/Elo key (backfills, changed definitions), as batch.full: true; " +
        "default: incremental from the last successful run's watermark",
    )
    .option(
      "--thresholds <file>",
      "batch: also check the at-risk thresholds (e.g. config/thresholds.yaml) of keys whose score crossed " +
        "with time alone (rule recency, served decay), sending the alerts to its webhooks",
    )
    .addHelpText(
      "after",
      `
Example:
  npx mastery schedule --once --job batch --db .mastery/demo/mastery.duckdb   # one daily batch now (incremental)
  npx mastery schedule --once --job batch --full   # backfill: full features and BKT/Elo replay
  npx mastery schedule                     # stay up; run each job at its configured times
  npx mastery schedule --runs 5            # the last five runs: start, end, status, counts, error
`,
    )
    .action(async (opts: ScheduleCliOptions) => {
      const dbPath = opts.db ?? defaultDbPath();
      if (opts.runs !== undefined) {
        const n = parseIntOption(opts.runs, "--runs", 1);
        const store = await DuckStore.open(dbPath);
        try {
          const runs = await (await BatchRunStore.open(store)).recent(n);
          process.stdout.write(`${JSON.stringify(runs, null, 2)}\n`);
        } finally {
          store.close();
        }
        return;
      }
      const jobs = jobsOf(opts.job);
      const loaded = loadScheduleConfig(opts.config);
      const config = opts.full ? { ...loaded, batch: { ...loaded.batch, full: true } } : loaded;
      const driftConfig = jobs.includes("checks") ? loadDriftConfig(opts.driftConfig) : undefined;
      const artifacts = opts.artifacts ?? process.env.MASTERY_ARTIFACTS ?? ".mastery/artifacts";
      const thresholds = opts.thresholds === undefined ? undefined : loadThresholds(opts.thresholds);
      const lock = lockFromEnv({ key: config.lock.key, ttlMs: config.lock.ttlMs, dbPath });
      const retrainLock =
        driftConfig === undefined
          ? undefined
          : lockFromEnv({ key: driftConfig.retrain.lockKey, ttlMs: driftConfig.retrain.lockTtlMs, dbPath });
      const run = (job: ScheduledJob) =>
        runScheduledJob({
          job,
          config,
          lock,
          open: () => openMonitoring({ dbPath, artifacts }),
          pseudonymizer: () => pseudonymizerFromEnv(),
          ...(thresholds !== undefined ? { thresholds } : {}),
          ...(driftConfig !== undefined
            ? { drift: { config: driftConfig, ...(retrainLock !== undefined ? { retrainLock } : {}) } }
            : {}),
        });
      const report = (o: JobOutcome) => {
        process.stdout.write(line(o));
        if (o.status === "failed") process.stderr.write(`error: scheduled job ${o.job} failed: ${o.error}\n`);
        if (o.status === "locked")
          process.stderr.write(
            `scheduled job ${o.job} skipped: another process holds the schedule lock (${o.lock}); it runs when that one ends\n`,
          );
      };
      try {
        if (opts.once) {
          let code = 0;
          for (const job of jobs) {
            const o = await run(job);
            report(o);
            if (o.status === "failed") code = 1;
            else if (o.status === "locked" && code === 0) code = EXIT_LOCKED;
          }
          process.exitCode = code;
          return;
        }
        const scheduler = startScheduler({ config, jobs, run, onOutcome: report });
        const next = scheduler.next();
        process.stderr.write(
          `mastery schedule: ${jobs.map((j) => `${j} next at ${next[j].toISOString()}`).join(", ")} (Ctrl-C stops)\n`,
        );
        await new Promise<void>((resolve) => {
          const stop = () => {
            process.stderr.write("mastery schedule: stopping after the running job (if any)\n");
            void scheduler.stop().then(resolve);
          };
          process.once("SIGINT", stop);
          process.once("SIGTERM", stop);
        });
      } finally {
        await lock.close();
        await retrainLock?.close();
      }
    });
}
