import { writeFileSync } from "node:fs";
import { userInfo } from "node:os";
import type { Command } from "commander";
import { experimentReport, renderHtml, renderText } from "../../experiments/report.ts";
import { type Arm, type ArmModel, armModelRef } from "../../experiments/router.ts";
import {
  type Experiment,
  type ExperimentConfig,
  type ExperimentStatus,
  type ExperimentStore,
  openExperimentStore,
} from "../../experiments/store.ts";
import type { SqlStore } from "../../storage/postgres.ts";
import { CliError, commandGroup, defaultDbPath } from "../options.ts";
import { Progress } from "../progress.ts";

interface StoreOptions {
  db?: string;
  json?: boolean;
}

async function withStore<T>(
  opts: StoreOptions,
  fn: (s: ExperimentStore, sql: SqlStore) => Promise<T>,
): Promise<T> {
  const { experiments, opened } = await openExperimentStore({
    pgUrl: process.env.MASTERY_PG_URL,
    pgSchema: process.env.MASTERY_PG_SCHEMA,
    dbPath: opts.db ?? defaultDbPath(),
  });
  try {
    return await fn(experiments, opened.store);
  } finally {
    await opened.close();
  }
}

function storeOptions(cmd: Command): Command {
  return cmd
    .option("--db <file>", "DuckDB file (ignored when MASTERY_PG_URL is set)")
    .option("--json", "print JSON instead of text");
}

function actorName(): string {
  try {
    return process.env.USER ?? userInfo().username;
  } catch {
    return "unknown";
  }
}

/** "NAME=MODEL@ALIAS_OR_VERSION:SHARE", e.g. control=mastery-elo@champion:0.5 */
function parseArm(spec: string): Arm {
  const m = /^([A-Za-z0-9._-]+)=([A-Za-z0-9._-]+)@([A-Za-z0-9._-]+):([0-9.]+)$/.exec(spec.trim());
  if (m === null)
    throw new CliError(
      `--arm "${spec}": expected NAME=MODEL@ALIAS_OR_VERSION:SHARE, e.g. control=mastery-elo@champion:0.5 or treatment=mastery-gbt@4:0.5`,
    );
  const sel = m[3]!;
  const model: ArmModel = /^\d+$/.test(sel)
    ? { name: m[2]!, version: Number(sel) }
    : { name: m[2]!, alias: sel };
  return { name: m[1]!, model, share: Number(m[4]) };
}

function parseNumber(value: string, flag: string, lo: number, hi: number): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n < lo || n > hi)
    throw new CliError(`${flag} must be a number in [${lo}, ${hi}] (got "${value}")`);
  return n;
}

function isoOption(value: string, flag: string): string {
  const t = Date.parse(value);
  if (Number.isNaN(t))
    throw new CliError(`${flag} must be an ISO 8601 time, e.g. 2025-03-01T00:00:00Z (got "${value}")`);
  return new Date(t).toISOString();
}

function describe(e: Experiment): string {
  return [
    `${e.id} "${e.name}" (${e.status}), unit ${e.unit}, control ${e.control}`,
    `  window ${e.startAt} .. ${e.endAt ?? "open"}`,
    ...e.arms.map(
      (a) => `  ${a.name.padEnd(14)} ${(a.share * 100).toFixed(1).padStart(5)}%  ${armModelRef(a.model)}`,
    ),
    `  mde ${e.config.mde}, baseline ${e.config.baselineAccuracy}, alpha ${e.config.alpha}, power ${e.config.power}, mastery threshold ${e.config.masteryThreshold}`,
  ].join("\n");
}

export function register(program: Command): void {
  const ex = commandGroup(
    program,
    "experiments",
    "A/B experiments: sticky assignment, share changes, outcome reports",
  );

  storeOptions(ex.command("create"))
    .description(
      "Create an experiment: arms (model alias or version) with traffic shares summing to 1; the student is the unit",
    )
    .argument("<id>", "experiment id, e.g. gbt-vs-elo-2025-03")
    .requiredOption(
      "--arm <spec...>",
      "NAME=MODEL@ALIAS_OR_VERSION:SHARE (repeat; the first arm is the control unless --control)",
    )
    .option("--name <text>", "human-readable name (default: the id)")
    .option("--control <arm>", "control arm name (default: the first --arm)")
    .option("--start <iso>", "start time (default: now)")
    .option("--end <iso>", "planned end time")
    .option("--mde <x>", "minimum detectable effect on next-week quiz accuracy (absolute)", "0.05")
    .option("--baseline <x>", "expected control accuracy for the power analysis", "0.7")
    .option("--power <x>", "power of the planned sample size", "0.8")
    .option("--mastery-threshold <x>", "score that counts as mastered", "0.8")
    .option("--salt <s>", "HMAC key of the assignment (default: random); reuse it to reproduce an assignment")
    .addHelpText(
      "after",
      `\nExample:\n  npx mastery experiments create gbt-vs-elo --arm control=mastery@champion:0.5 --arm treatment=mastery@challenger:0.5 --mde 0.03\n`,
    )
    .action(
      async (
        id: string,
        opts: StoreOptions & {
          arm: string[];
          name?: string;
          control?: string;
          start?: string;
          end?: string;
          mde: string;
          baseline: string;
          power: string;
          masteryThreshold: string;
          salt?: string;
        },
      ) => {
        const config: Partial<ExperimentConfig> = {
          mde: parseNumber(opts.mde, "--mde", 1e-6, 1),
          baselineAccuracy: parseNumber(opts.baseline, "--baseline", 0, 1),
          power: parseNumber(opts.power, "--power", 0.5, 0.9999),
          masteryThreshold: parseNumber(opts.masteryThreshold, "--mastery-threshold", 0, 1),
        };
        const e = await withStore(opts, (s) =>
          s.create({
            id,
            name: opts.name ?? id,
            arms: opts.arm.map(parseArm),
            startAt: opts.start ? isoOption(opts.start, "--start") : new Date().toISOString(),
            config,
            ...(opts.control !== undefined ? { control: opts.control } : {}),
            ...(opts.end !== undefined ? { endAt: isoOption(opts.end, "--end") } : {}),
            ...(opts.salt !== undefined ? { salt: opts.salt } : {}),
          }),
        );
        process.stdout.write(opts.json ? `${JSON.stringify(e, null, 2)}\n` : `created ${describe(e)}\n`);
      },
    );

  storeOptions(ex.command("list"))
    .description("List experiments")
    .addHelpText("after", "\nExample:\n  npx mastery experiments list --json\n")
    .action(async (opts: StoreOptions) => {
      const all = await withStore(opts, (s) => s.list());
      process.stdout.write(
        opts.json
          ? `${JSON.stringify(all, null, 2)}\n`
          : `${all.map(describe).join("\n") || "(no experiments)"}\n`,
      );
    });

  storeOptions(ex.command("show"))
    .description("Show one experiment: arms, shares, models, bucket ownership")
    .argument("<id>")
    .addHelpText("after", "\nExample:\n  npx mastery experiments show gbt-vs-elo\n")
    .action(async (id: string, opts: StoreOptions) => {
      const e = await withStore(opts, (s) => s.get(id));
      process.stdout.write(
        opts.json
          ? `${JSON.stringify(e, null, 2)}\n`
          : `${describe(e)}\n  ${e.allocation.length} bucket range(s)\n`,
      );
    });

  storeOptions(ex.command("shares"))
    .description("Change traffic shares, moving as few students as possible (only the share delta moves)")
    .argument("<id>")
    .requiredOption("--set <arm=share...>", "a share for every arm, e.g. control=0.8 treatment=0.2")
    .option(
      "--add-arm <spec...>",
      "new arm(s) NAME=MODEL@ALIAS_OR_VERSION:SHARE (their share also goes in --set)",
    )
    .addHelpText(
      "after",
      "\nExample:\n  npx mastery experiments shares gbt-vs-elo --set control=0.8 treatment=0.2\n",
    )
    .action(async (id: string, opts: StoreOptions & { set: string[]; addArm?: string[] }) => {
      const shares: Record<string, number> = {};
      for (const kv of opts.set) {
        const [k, v] = kv.split("=");
        if (!k || v === undefined) throw new CliError(`--set "${kv}": expected ARM=SHARE, e.g. control=0.8`);
        shares[k] = parseNumber(v, `--set ${k}`, 0, 1);
      }
      const newArms = (opts.addArm ?? []).map(parseArm).map((a) => ({ name: a.name, model: a.model }));
      const res = await withStore(opts, (s) => s.setShares(id, shares, { actor: actorName(), newArms }));
      process.stdout.write(
        opts.json
          ? `${JSON.stringify(res, null, 2)}\n`
          : `${describe(res.experiment)}\n  moved ${res.movedBuckets} of 10000 buckets (${(res.movedBuckets / 100).toFixed(2)}% of students)\n`,
      );
    });

  storeOptions(ex.command("assign"))
    .description(
      "Which arm (and model reference) each student key gets — the same answer on every call and server",
    )
    .argument("<id>")
    .argument("<studentKey...>")
    .addHelpText("after", "\nExample:\n  npx mastery experiments assign gbt-vs-elo 7f3a9c 11b2e0\n")
    .action(async (id: string, keys: string[], opts: StoreOptions) => {
      const out = await withStore(opts, async (s) => {
        const r = s.router(await s.get(id));
        return keys.map((k) => ({ studentKey: k, ...r.assign(k) }));
      });
      process.stdout.write(
        opts.json
          ? `${JSON.stringify(out, null, 2)}\n`
          : `${out.map((a) => `${a.studentKey}\t${a.arm}\t${a.modelRef}\tbucket ${a.bucket}`).join("\n")}\n`,
      );
    });

  storeOptions(ex.command("status"))
    .description(
      "Set an experiment's status (draft | running | stopped; stopping sets the end time if unset)",
    )
    .argument("<id>")
    .argument("<status>")
    .addHelpText("after", "\nExample:\n  npx mastery experiments status gbt-vs-elo stopped\n")
    .action(async (id: string, status: string, opts: StoreOptions) => {
      if (!["draft", "running", "stopped"].includes(status))
        throw new CliError(`status must be draft, running or stopped (got "${status}")`);
      const e = await withStore(opts, (s) => s.setStatus(id, status as ExperimentStatus));
      process.stdout.write(opts.json ? `${JSON.stringify(e, null, 2)}\n` : `${describe(e)}\n`);
    });

  storeOptions(ex.command("report"))
    .description(
      "Outcome report per arm: next-week quiz accuracy and time to mastery vs control (95% CI), sample-ratio check, planned vs current sample size",
    )
    .argument("<id>")
    .option("--html <file>", "also write a self-contained HTML page (inline SVG, no CDN)")
    .option("--as-of <iso>", "evaluate as of this time (default: now)")
    .option(
      "--score-source <src>",
      "only this student_mastery_history score_source for time to mastery (default: any)",
    )
    .option("--resamples <n>", "bootstrap resamples for the time-to-mastery interval", "1000")
    .addHelpText(
      "after",
      "\nExample:\n  npx mastery experiments report gbt-vs-elo --html out/gbt-vs-elo.html\n",
    )
    .action(
      async (
        id: string,
        opts: StoreOptions & { html?: string; asOf?: string; scoreSource?: string; resamples: string },
      ) => {
        const resamples = Math.round(parseNumber(opts.resamples, "--resamples", 10, 100_000));
        const progress = new Progress("experiment report", 2);
        const report = await withStore(opts, async (s, sql) => {
          const e = await s.get(id);
          progress.set(1);
          return experimentReport(sql, e, {
            bootstrapResamples: resamples,
            ...(opts.asOf !== undefined ? { asOf: new Date(isoOption(opts.asOf, "--as-of")) } : {}),
            ...(opts.scoreSource !== undefined ? { scoreSource: opts.scoreSource } : {}),
          });
        });
        progress.finish();
        if (opts.html) writeFileSync(opts.html, renderHtml(report));
        process.stdout.write(
          opts.json
            ? `${JSON.stringify(report, null, 2)}\n`
            : `${renderText(report)}${opts.html ? `\nHTML: ${opts.html}` : ""}\n`,
        );
      },
    );
}
