import type { Command } from "commander";
import { resolveAsOf } from "../../features/windows.ts";
import { loadDriftConfig } from "../../monitoring/config.ts";
import { defaultWindows, formatDriftCheck, saveReferenceSnapshot } from "../../monitoring/driftMonitor.ts";
import { monitorOnce } from "../../monitoring/loop.ts";
import { openMonitoring } from "../../monitoring/open.ts";
import { writeDriftReport } from "../../monitoring/report.ts";
import { CliError, commandGroup, defaultDbPath } from "../options.ts";
import { Progress } from "../progress.ts";

interface Common {
  db?: string;
  config?: string;
  artifacts?: string;
  snapshot?: string;
  asOf: string;
}

function common(cmd: Command): Command {
  return cmd
    .option("--db <path>", "DuckDB file (default: $MASTERY_DB or .mastery/mastery.duckdb)")
    .option("--config <file>", "drift configuration (default config/drift.yaml)")
    .option("--artifacts <dir>", "artifact store directory (default .mastery/artifacts or MASTERY_ARTIFACTS)")
    .option(
      "--snapshot <id>",
      "compare against this stored reference snapshot instead of the champion window",
    )
    .option(
      "--as-of <time>",
      'end of the live-performance window: "now" = newest event + 1 s (default), or an ISO time',
      "now",
    );
}

function parseTime(v: string, flag: string): Date {
  const d = new Date(/^\d{4}-\d{2}-\d{2}$/.test(v) ? `${v}T00:00:00Z` : v);
  if (Number.isNaN(d.getTime()))
    throw new CliError(`${flag}: "${v}" is not a date (e.g. 2025-03-01 or 2025-03-01T00:00:00Z)`);
  return d;
}

async function tick(opts: Common) {
  const config = loadDriftConfig(opts.config);
  const h = await openMonitoring({
    dbPath: opts.db ?? defaultDbPath(),
    artifacts: opts.artifacts ?? process.env.MASTERY_ARTIFACTS ?? ".mastery/artifacts",
  });
  const progress = new Progress("drift", 1);
  try {
    const asOf = await resolveAsOf(h.store, opts.asOf);
    const r = await monitorOnce({
      now: () => asOf,
      store: h.store,
      config,
      registry: h.registry,
      retrain: false,
      ...(opts.snapshot !== undefined ? { reference: { kind: "snapshot" as const, id: opts.snapshot } } : {}),
    });
    progress.finish();
    return { r, config };
  } finally {
    await h.close();
  }
}

export function register(program: Command): void {
  const drift = commandGroup(
    program,
    "drift",
    "Drift monitoring: feature/score distribution shift and live performance",
  );

  common(drift.command("check"))
    .description(
      "Compare the current window of features and scores with the reference (champion training window, snapshot, or the preceding window); exit code 2 when the drift rule fires",
    )
    .option("--json", "print the full check as JSON")
    .addHelpText(
      "after",
      `
Example:
  npx mastery drift check --db .mastery/mastery.duckdb
  npx mastery drift check --json --config config/drift.yaml --snapshot baseline`,
    )
    .action(async (opts: Common & { json?: boolean }) => {
      const { r } = await tick(opts);
      if (r.drift === null) throw new CliError(`drift check failed: ${r.driftError}`);
      process.stdout.write(
        opts.json ? `${JSON.stringify(r.drift, null, 2)}\n` : `${formatDriftCheck(r.drift)}\n`,
      );
      if (r.drift.decision.drift) process.exitCode = 2;
    });

  common(drift.command("report"))
    .description(
      "Write DIR/drift.json and a self-contained DIR/drift.html (inline SVG charts) with drift and live performance",
    )
    .requiredOption("--out <dir>", "output directory")
    .addHelpText(
      "after",
      `
Example:
  npx mastery drift report --out reports/drift && open reports/drift/drift.html`,
    )
    .action(async (opts: Common & { out: string }) => {
      const { r, config } = await tick(opts);
      const paths = writeDriftReport(opts.out, r, config.psi);
      process.stdout.write(
        `${r.drift ? (r.drift.decision.drift ? "DRIFT" : "no drift") : `no drift check (${r.driftError})`}; wrote ${paths.json} and ${paths.html}\n`,
      );
    });

  drift
    .command("snapshot")
    .description("Store the feature rows and scores of a window as a named reference snapshot")
    .requiredOption("--id <id>", "snapshot id (e.g. baseline-2025-03)")
    .option("--from <time>", "window start (default: the reference window of config/drift.yaml)")
    .option("--to <time>", "window end, exclusive")
    .option("--db <path>", "DuckDB file (default: $MASTERY_DB or .mastery/mastery.duckdb)")
    .option("--config <file>", "drift configuration (default config/drift.yaml)")
    .addHelpText(
      "after",
      `
Example:
  npx mastery drift snapshot --id baseline --from 2025-02-01 --to 2025-03-01`,
    )
    .action(async (opts: { id: string; from?: string; to?: string; db?: string; config?: string }) => {
      const config = loadDriftConfig(opts.config);
      const h = await openMonitoring({ dbPath: opts.db ?? defaultDbPath(), artifacts: ".mastery/artifacts" });
      try {
        const w = (await defaultWindows(h.store, config)).reference;
        const window = {
          from: opts.from !== undefined ? parseTime(opts.from, "--from") : w.from,
          to: opts.to !== undefined ? parseTime(opts.to, "--to") : w.to,
        };
        const r = await saveReferenceSnapshot(
          h.store,
          opts.id,
          window,
          "features",
          config.windows.activeDays,
        );
        process.stdout.write(
          `snapshot ${opts.id}: ${r.rows} feature rows, ${r.scoreRows} scores (${window.from.toISOString()} .. ${window.to.toISOString()})\n`,
        );
      } finally {
        await h.close();
      }
    });
}
