/**
 * bin/commandIndex.ts: the CLI imports only the file(s) of the command being run, and `--version` / `--help`
 * import nothing heavy. (test/bin/commandIndex.int.test.ts checks the index against what the files register.)
 */
import { readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { COMMANDS, planCommand } from "../../bin/commandIndex.ts";

const ROOT = resolve(import.meta.dirname, "..", "..");
const HEAVY = [
  "@duckdb/node-api",
  "@tensorflow/tfjs",
  "onnxruntime-node",
  "pg",
  "ioredis",
  "nats",
  "express",
];

/**
 * Packages reached from `file` through static value imports and top-level `createRequire(import.meta.url)("pkg")`
 * (storage/duckdbApi.ts loads DuckDB that way); type-only imports, import() and require() inside functions
 * (loaded on first use) are not start-up cost and are excluded.
 */
function staticPackages(file: string, seen = new Set<string>(), out = new Set<string>()): Set<string> {
  if (seen.has(file)) return out;
  seen.add(file);
  const text = readFileSync(file, "utf8");
  for (const m of text.matchAll(/^import\s+(?!type\s)(?:[^"';]*?\s+from\s+)?["']([^"']+)["'];?/gm)) {
    const spec = m[1]!;
    if (spec.startsWith(".")) staticPackages(resolve(dirname(file), spec), seen, out);
    else if (!spec.startsWith("node:")) out.add(spec);
  }
  for (const m of text.matchAll(
    /^(?:export )?const [^=]+=\s*createRequire\(import\.meta\.url\)\(\s*"([^"]+)"\)/gm,
  ))
    out.add(m[1]!);
  return out;
}

describe("planCommand", () => {
  it("imports nothing for --version, --help or an unknown command", () => {
    for (const args of [[], ["--version"], ["-h"], ["--help"], ["nope"], ["--", "train"]])
      expect(planCommand(args), args.join(" ")).toEqual({ entry: undefined, files: [] });
  });

  it("imports only the subcommand's file, (model kinds come from the table in training/kinds.ts, not from imports)", () => {
    expect(planCommand(["train", "bkt", "--data", "x.csv"])).toMatchObject({
      files: ["train-bkt"],
    });
    expect(planCommand(["train", "--help"])).toMatchObject({
      files: ["train-rule", "train-bkt", "train-elo", "train-ml", "train-served"],
    });
    expect(planCommand(["train", "blend"]).files).toEqual(["train-ml"]);
    expect(planCommand(["score", "bkt-elo"]).files).toEqual(["score-bkt-elo"]);
    expect(planCommand(["models", "list", "--db", "x"])).toMatchObject({
      files: ["models"],
    });
    expect(planCommand(["models", "promote", "m"])).toMatchObject({ files: ["models"] });
    expect(planCommand(["evaluate", "--model", "m"])).toMatchObject({
      files: ["evaluate"],
    });
    expect(planCommand(["--help", "token"])).toMatchObject({ files: ["token"] });
  });

  it("lists each command once, in name order, with files that exist", () => {
    const names = COMMANDS.map((c) => c.name);
    expect(names).toEqual([...new Set(names)].sort());
    for (const c of COMMANDS) {
      const files = typeof c.files === "string" ? [c.files] : Object.values(c.files);
      for (const f of files)
        expect(() => readFileSync(join(ROOT, "bin", "commands", `${f}.ts`))).not.toThrow();
    }
  });
});

describe("start-up imports", () => {
  it("bin/cli.ts reaches no database, ML runtime or server package through static imports", () => {
    const reached = staticPackages(join(ROOT, "bin", "cli.ts"));
    expect([...reached].sort()).toEqual(["commander"]);
    // The walk does see heavy packages where they are imported (so the check above can fail).
    const duck = staticPackages(join(ROOT, "storage", "duckdb.ts"));
    expect(HEAVY.filter((p) => duck.has(p))).toEqual(["@duckdb/node-api"]);
    const locks = staticPackages(join(ROOT, "monitoring", "locks.ts"));
    expect(HEAVY.filter((p) => locks.has(p))).toContain("pg");
  });
});
