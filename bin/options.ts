import { resolve } from "node:path";
import { formatRowCounts, type RowCounts } from "../features/fileRows.ts";

/** Default location of the embedded store; override with --db or MASTERY_DB. */
export function defaultDbPath(): string {
  return resolve(process.env.MASTERY_DB ?? ".mastery/mastery.duckdb");
}

/** A user-facing CLI error: the message says what was wrong and how to fix it. */
export class CliError extends Error {
  readonly code = "CLI";
  constructor(message: string) {
    super(message);
    this.name = "CliError";
  }
}

/** Parses "a=x,b=y" into a map; used by --columns. */
export function parseKeyValues(spec: string, flag: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of spec.split(",")) {
    const eq = part.indexOf("=");
    if (eq <= 0 || eq === part.length - 1) {
      throw new CliError(
        `${flag}: expected name=COLUMN pairs separated by commas, got "${part}" in "${spec}"`,
      );
    }
    out.set(part.slice(0, eq).trim(), part.slice(eq + 1).trim());
  }
  return out;
}

export function parseIntOption(value: string, flag: string, min = Number.MIN_SAFE_INTEGER): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min)
    throw new CliError(`${flag} must be an integer >= ${min} (got "${value}")`);
  return n;
}

/** Returns the group command `name` (e.g. "train"), creating it once, so several files can add subcommands to it. */
export function commandGroup(
  program: import("commander").Command,
  name: string,
  description: string,
): import("commander").Command {
  const existing = program.commands.find((c) => c.name() === name);
  if (existing) return existing;
  return program.command(name).description(description);
}

/** The options of every command that reads a data file: how many unusable rows it tolerates. */
export interface RowOptions {
  allowSkip?: boolean;
  maxSkip?: string;
}

export const ALLOW_SKIP_HELP =
  "use the usable rows even when more than --max-skip of the file is unusable (the report still lists them)";
export const MAX_SKIP_HELP = "largest share of unusable rows accepted without --allow-skip";

/** Adds the options of a command that reads a CSV/TSV data file: --sep, --allow-skip and --max-skip. */
export function rowReadingOptions(cmd: import("commander").Command): import("commander").Command {
  return cmd
    .option("--sep <sep>", "field separator (',' or '\\t'); default: tab if the header has one, else comma")
    .option("--allow-skip", ALLOW_SKIP_HELP)
    .option("--max-skip <fraction>", MAX_SKIP_HELP, "0.01");
}

/**
 * The skip policy from --allow-skip/--max-skip, printing each file's rows read / used / skipped (with the
 * reasons and example lines) on stderr; too many skipped rows stop the command (features/fileRows.ts).
 */
export function rowReading(opts: RowOptions): {
  allowSkip: boolean;
  maxSkipFraction: number;
  onRows: (c: RowCounts) => void;
} {
  const max = Number(opts.maxSkip ?? "0.01");
  if (!(max >= 0 && max <= 1))
    throw new CliError(`--max-skip must be a fraction in [0, 1] (got "${opts.maxSkip}")`);
  return {
    allowSkip: opts.allowSkip === true,
    maxSkipFraction: max,
    onRows: (c) => process.stderr.write(`${formatRowCounts(c)}\n`),
  };
}
