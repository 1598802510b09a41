import { readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Command } from "commander";
import { CliError } from "./options.ts";

const program = new Command();
program
  .name("mastery")
  .description("Mastery engine: turn learning events into calibrated, explainable mastery scores")
  .version("0.1.0")
  .showHelpAfterError("(run with --help for usage)");

// Every file in bin/commands registers its own subcommands, so a concern owns its CLI surface.
const commandsDir = join(dirname(fileURLToPath(import.meta.url)), "commands");
for (const file of readdirSync(commandsDir).sort()) {
  if (!file.endsWith(".ts")) continue;
  const mod = (await import(join(commandsDir, file))) as { register?: (p: Command) => void };
  mod.register?.(program);
}

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CliError || (err instanceof Error && "code" in err)) {
    process.stderr.write(`error: ${err.message}\n`);
    process.exitCode = 1;
  } else {
    throw err;
  }
}
