import { Command } from "commander";
import { redactSecrets } from "../storage/unavailable.ts";
import { COMMANDS, planCommand } from "./commandIndex.ts";
import { CliError } from "./options.ts";

// Compiled (dist/bin/cli.js) imports compiled siblings; from source (tsx) the .ts files.
const EXT = import.meta.url.endsWith(".ts") ? ".ts" : ".js";

const program = new Command();
program
  .name("mastery")
  .description("Mastery engine: turn learning events into calibrated, explainable mastery scores")
  .version("0.1.0")
  .showHelpAfterError("(run with --help for usage)");

// Only the named command's file(s) are imported (bin/commandIndex.ts), so `mastery --version` or
// `mastery token` never load DuckDB, tfjs or onnxruntime. The other commands are listed by summary.
const plan = planCommand(process.argv.slice(2));
for (const c of COMMANDS) {
  if (c !== plan.entry) {
    program.command(c.name).description(c.summary);
    continue;
  }
  for (const file of plan.files) {
    const mod = (await import(new URL(`./commands/${file}${EXT}`, import.meta.url).href)) as {
      register?: (p: Command) => void;
    };
    mod.register?.(program);
  }
}

try {
  await program.parseAsync(process.argv);
} catch (err) {
  // Never a connection URL's password on stderr (a driver may quote the URL it was given).
  if (err instanceof CliError || (err instanceof Error && "code" in err)) {
    process.stderr.write(`error: ${redactSecrets(err.message)}\n`);
  } else {
    process.stderr.write(
      `${redactSecrets(err instanceof Error ? (err.stack ?? String(err)) : String(err))}\n`,
    );
  }
  process.exitCode = 1;
}
