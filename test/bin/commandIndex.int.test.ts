/**
 * bin/commandIndex.ts against the command files: every top-level command the files register is in the
 * index, under the file(s) the index names, and nothing else is. Integration tier: it imports every command
 * file (DuckDB, tfjs, onnxruntime ...), which takes seconds.
 */
import { Command } from "commander";
import { describe, expect, it } from "vitest";
import { COMMANDS } from "../../bin/commandIndex.ts";

async function registered(file: string): Promise<Command> {
  const program = new Command();
  const mod = (await import(`../../bin/commands/${file}.ts`)) as { register: (p: Command) => void };
  mod.register(program);
  return program;
}

describe("the command index", () => {
  it("names, for each command and subcommand, the file that registers it", async () => {
    for (const entry of COMMANDS) {
      if (typeof entry.files === "string") {
        const p = await registered(entry.files);
        expect(
          p.commands.map((c) => c.name()),
          entry.files,
        ).toEqual([entry.name]);
      } else {
        for (const [sub, file] of Object.entries(entry.files)) {
          const p = await registered(file);
          expect(p.commands.map((c) => c.name())).toEqual([entry.name]);
          expect(
            p.commands[0]!.commands.map((c) => c.name()),
            `${entry.name} ${sub} in ${file}`,
          ).toContain(sub);
        }
      }
    }
  });

  it("covers every file in bin/commands", async () => {
    const { readdirSync } = await import("node:fs");
    const files = readdirSync(new URL("../../bin/commands/", import.meta.url))
      .filter((f) => f.endsWith(".ts"))
      .map((f) => f.slice(0, -3))
      .sort();
    const indexed = new Set(
      COMMANDS.flatMap((c) => (typeof c.files === "string" ? [c.files] : Object.values(c.files))),
    );
    expect([...indexed].sort()).toEqual(files);
  });
});
