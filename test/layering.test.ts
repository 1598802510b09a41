import { readdirSync, readFileSync } from "node:fs";
import { join, relative, resolve, sep } from "node:path";
import { describe, expect, it } from "vitest";

/**
 * The layering of docs/architecture.md, checked on every import of every .ts file: a folder imports
 * only the folders its "may import" column names, and the folder graph has no cycle. models/ is pure:
 * no node: built-ins and no package at run time except the pure ones listed (type-only imports,
 * e.g. tfjs types for an injected handle, are allowed). storage/ may name models' types (type-only).
 */

const ROOT = resolve(import.meta.dirname, "..");

/** Folder -> folders it may import (besides itself). "*" = anything. */
const MAY_IMPORT: Record<string, readonly string[] | "*"> = {
  models: [],
  storage: [],
  features: ["models", "storage"],
  registry: ["storage"],
  experiments: ["models", "storage"],
  training: ["models", "features", "registry", "storage"],
  monitoring: ["models", "features", "registry", "storage", "training"],
  serving: ["models", "features", "registry", "storage", "training", "experiments", "monitoring"],
  bin: "*",
  bench: "*",
  notebooks: "*",
  scripts: "*",
  chaos: "*",
  test: "*",
};

/** Type-only imports allowed beyond MAY_IMPORT (types carry no code or I/O). */
const TYPE_ONLY_EXTRA: Record<string, readonly string[]> = { storage: ["models"] };

/** Packages models/ may load at run time: pure math, no I/O. */
const MODELS_PACKAGES = new Set(["simple-statistics"]);

interface Import {
  file: string;
  spec: string;
  typeOnly: boolean;
}

function tsFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.name === "node_modules" || e.name.startsWith(".") || e.name === "dist") continue;
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...tsFiles(p));
    else if (e.name.endsWith(".ts") && !e.name.endsWith(".d.ts")) out.push(p);
  }
  return out;
}

/** Static imports/exports and dynamic import("...") with a literal specifier. */
function importsOf(text: string): { spec: string; typeOnly: boolean }[] {
  const out: { spec: string; typeOnly: boolean }[] = [];
  const stat = /^\s*(import|export)\s+(type\s+)?(?:[^"';]*?\s+from\s+)?["']([^"']+)["']/gm;
  for (const m of text.matchAll(stat)) out.push({ spec: m[3]!, typeOnly: m[2] !== undefined });
  const dyn = /\bimport\(\s*["']([^"']+)["']\s*\)/g;
  for (const m of text.matchAll(dyn)) out.push({ spec: m[1]!, typeOnly: false });
  return out;
}

const folderOf = (file: string): string => relative(ROOT, file).split(sep)[0]!;

function allImports(): Import[] {
  const out: Import[] = [];
  for (const folder of Object.keys(MAY_IMPORT)) {
    let files: string[];
    try {
      files = tsFiles(join(ROOT, folder));
    } catch {
      continue;
    }
    for (const file of files) for (const i of importsOf(readFileSync(file, "utf8"))) out.push({ file, ...i });
  }
  return out;
}

/** The violations of MAY_IMPORT and of models/ purity, as "file: reason" lines. */
function violations(imports: readonly Import[]): string[] {
  const bad: string[] = [];
  for (const { file, spec, typeOnly } of imports) {
    const from = folderOf(file);
    const rule = MAY_IMPORT[from];
    if (rule === undefined || rule === "*") continue;
    const where = relative(ROOT, file);
    if (spec.startsWith(".")) {
      const to = folderOf(resolve(file, "..", spec));
      if (to === from || rule.includes(to)) continue;
      if (typeOnly && (TYPE_ONLY_EXTRA[from] ?? []).includes(to)) continue;
      bad.push(`${where}: ${from}/ may not import ${to}/ (${spec}); allowed: ${rule.join(", ") || "none"}`);
    } else if (from === "models" && !typeOnly) {
      const pkg = spec.startsWith("@") ? spec.split("/").slice(0, 2).join("/") : spec.split("/")[0]!;
      if (!MODELS_PACKAGES.has(pkg))
        bad.push(`${where}: models/ is pure math and may not load "${spec}" (inject it from training/)`);
    }
  }
  return bad;
}

/** Folder cycles in the import graph (every import, type-only included), as "a -> b -> a". */
function cycles(imports: readonly Import[]): string[] {
  const graph = new Map<string, Set<string>>();
  for (const { file, spec } of imports) {
    if (!spec.startsWith(".")) continue;
    const from = folderOf(file);
    const to = folderOf(resolve(file, "..", spec));
    if (from === to || MAY_IMPORT[from] === "*" || MAY_IMPORT[to] === "*" || MAY_IMPORT[to] === undefined)
      continue;
    const s = graph.get(from) ?? new Set<string>();
    graph.set(from, s);
    s.add(to);
  }
  const found: string[] = [];
  const state = new Map<string, "open" | "done">();
  const path: string[] = [];
  const visit = (n: string): void => {
    state.set(n, "open");
    path.push(n);
    for (const m of graph.get(n) ?? []) {
      if (state.get(m) === "open") found.push([...path.slice(path.indexOf(m)), m].join(" -> "));
      else if (state.get(m) === undefined) visit(m);
    }
    path.pop();
    state.set(n, "done");
  };
  for (const n of graph.keys()) if (state.get(n) === undefined) visit(n);
  return found;
}

describe("layering (docs/architecture.md 'may import')", () => {
  const imports = allImports();

  it("parses the imports of the tree (the check is not vacuous)", () => {
    expect(imports.length).toBeGreaterThan(500);
    expect(imports.some((i) => folderOf(i.file) === "serving" && i.spec.startsWith("../training/"))).toBe(
      true,
    );
  });

  it("every folder imports only what its row allows; models/ loads no I/O package", () => {
    expect(violations(imports)).toEqual([]);
  });

  it("the folder import graph has no cycle", () => {
    expect(cycles(imports)).toEqual([]);
  });

  it("catches a forbidden import, a cycle and an impure models/ import (planted)", () => {
    const at = (folder: string) => join(ROOT, folder, "x.ts");
    const planted: Import[] = [
      { file: at("training"), spec: "../serving/app.ts", typeOnly: false },
      { file: at("serving"), spec: "../training/evaluate.ts", typeOnly: false },
      { file: at("models"), spec: "node:worker_threads", typeOnly: false },
      { file: at("models"), spec: "@tensorflow/tfjs", typeOnly: true },
      { file: at("storage"), spec: "../models/learnerState.ts", typeOnly: true },
      { file: at("registry"), spec: "../training/evaluate.ts", typeOnly: false },
    ];
    expect(violations(planted)).toEqual([
      "training/x.ts: training/ may not import serving/ (../serving/app.ts); allowed: models, features, registry, storage",
      'models/x.ts: models/ is pure math and may not load "node:worker_threads" (inject it from training/)',
      "registry/x.ts: registry/ may not import training/ (../training/evaluate.ts); allowed: storage",
    ]);
    expect(cycles(planted)).toEqual(["training -> serving -> training"]);
    expect(
      importsOf('import type { A } from "./a.ts";\nexport { b } from "../b.ts";\nawait import("x");'),
    ).toEqual([
      { spec: "./a.ts", typeOnly: true },
      { spec: "../b.ts", typeOnly: false },
      { spec: "x", typeOnly: false },
    ]);
  });
});

/** Product folders: everything but tests, benches, scripts and the chaos harness. */
const PRODUCT = new Set([
  "models",
  "storage",
  "features",
  "registry",
  "experiments",
  "training",
  "monitoring",
  "serving",
  "bin",
]);

/** Uses of DuckStore's bare connection (`x.conn.` or `x.conn)`) outside storage/duckdb.ts, as "file:line". */
function bareConnectionUses(files: readonly { file: string; text: string }[]): string[] {
  const out: string[] = [];
  for (const { file, text } of files) {
    const rel = relative(ROOT, file);
    if (!PRODUCT.has(folderOf(file)) || rel === join("storage", "duckdb.ts")) continue;
    text.split("\n").forEach((line, i) => {
      if (/\.conn\b(?!ection)/.test(line) && !/^\s*(\/\/|\*)/.test(line)) out.push(`${rel}:${i + 1}`);
    });
  }
  return out;
}

describe("DuckDB's connection is reached only through DuckStore's counted methods (docs/architecture.md)", () => {
  it("no product file outside storage/duckdb.ts uses store.conn (close() could free it under the use)", () => {
    const files = tsFiles(ROOT).map((file) => ({ file, text: readFileSync(file, "utf8") }));
    expect(files.filter((f) => PRODUCT.has(folderOf(f.file))).length).toBeGreaterThan(100);
    expect(bareConnectionUses(files)).toEqual([]);
  });

  it("catches a planted use, not a comment or a word that merely starts with conn", () => {
    const at = (folder: string, text: string) => ({ file: join(ROOT, folder, "x.ts"), text });
    expect(
      bareConnectionUses([
        at("serving", "const a = await store.conn.createAppender(t);"),
        at("storage", "// store.conn.run is not counted\nconst c = pool.connection;"),
        at("test", "await store.conn.run('SELECT 1');"),
      ]),
    ).toEqual([join("serving", "x.ts:1")]);
  });
});
