/**
 * Docs and comments name files that exist: every repository path mentioned in docs/*.md, README.md, the
 * folder READMEs and the comments of the TypeScript/JavaScript sources (e.g. "features/contractSql.ts") must
 * resolve, from the repository root or from the mentioning file's folder. A renamed or deleted file then
 * fails here instead of sending a reader to nothing.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { describe, expect, it } from "vitest";

const ROOT = resolve(import.meta.dirname, "..", "..");
const TOP = [
  "bin",
  "models",
  "features",
  "training",
  "storage",
  "registry",
  "serving",
  "experiments",
  "monitoring",
  "notebooks",
  "bench",
  "test",
  "scripts",
  "config",
  "docs",
  "chaos",
];
const EXT = "ts|mts|js|mjs|md|yaml|yml|json|sql|html|css|py|onnx";
/** A path with a known extension, optionally ./ or ../ prefixed; no glob or placeholder characters. */
const PATH = new RegExp(
  `(?<![\\w./-])((?:\\.\\.?/)*[A-Za-z0-9_][\\w.-]*(?:/[\\w.-]+)*\\.(?:${EXT}))(?![\\w/*<{-])`,
  "g",
);

function walk(dir: string, keep: (file: string) => boolean, out: string[] = []): string[] {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.name === "node_modules" || e.name === "dist" || e.name.startsWith(".")) continue;
    const p = join(dir, e.name);
    if (e.isDirectory()) walk(p, keep, out);
    else if (keep(p)) out.push(p);
  }
  return out;
}

/** The text of a file that may mention paths: all of a markdown file, only the comments of code. */
function mentionText(file: string): string {
  const text = readFileSync(file, "utf8");
  if (file.endsWith(".md")) return text;
  const comments: string[] = [];
  for (const m of text.matchAll(/\/\*[\s\S]*?\*\/|(?<![:"'`\\])\/\/[^\n]*/g)) comments.push(m[0]);
  return comments.join("\n");
}

/** Candidate paths in `text` that look like repository files: a top-level folder or a sibling name. */
function mentionedPaths(text: string): string[] {
  const out = new Set<string>();
  for (const m of text.matchAll(PATH)) {
    const p = m[1]!;
    const first = p.replace(/^(\.\.?\/)+/, "").split("/")[0]!;
    // A path under a top-level folder, or relative (./, ../). Bare names ("model.json", "Chart.js") are
    // file kinds or products more often than files; URLs and package paths are not ours.
    if (!p.includes("/") || (!TOP.includes(first) && !p.startsWith("."))) continue;
    out.add(p);
  }
  return [...out];
}

// The public datasets live beside the repository (../shared, see README); a checkout without them cannot check
// those mentions, so they are skipped (and said so) rather than failed.
const SHARED = resolve(ROOT, "..", "shared");
// The checkout's sibling folder with the datasets; a bare ../shared (e.g. an empty /tmp/shared next to a
// clone in /tmp) is not it.
const sharedAbsent = !existsSync(resolve(SHARED, "data"));
const underShared = (p: string, from: string): boolean =>
  [resolve(ROOT, p), resolve(dirname(from), p)].some((q) => q === SHARED || q.startsWith(`${SHARED}/`));

function exists(p: string, from: string): boolean {
  return existsSync(join(ROOT, p)) || existsSync(resolve(dirname(from), p));
}

describe("file paths in docs and comments", () => {
  const docs = [
    ...walk(join(ROOT, "docs"), (f) => f.endsWith(".md")),
    join(ROOT, "README.md"),
    ...TOP.flatMap((t) =>
      existsSync(join(ROOT, t)) ? walk(join(ROOT, t), (f) => f.endsWith("README.md")) : [],
    ),
  ];
  // This file names a missing path on purpose (its own check of the scan).
  const code = TOP.filter((t) => existsSync(join(ROOT, t))).flatMap((t) =>
    walk(join(ROOT, t), (f) => /\.(ts|mts|js|mjs)$/.test(f) && f !== import.meta.filename),
  );

  it("finds the files it checks (the scan itself works)", () => {
    expect(docs.length).toBeGreaterThan(10);
    expect(code.length).toBeGreaterThan(100);
    expect(mentionedPaths("see features/contractSql.ts and docs/runbook.md, not https://x.io/a.md")).toEqual([
      "features/contractSql.ts",
      "docs/runbook.md",
    ]);
  });

  it("every mentioned repository path exists", () => {
    const missing: string[] = [];
    let checked = 0;
    let skipped = 0;
    for (const file of [...docs, ...code]) {
      for (const p of mentionedPaths(mentionText(file))) {
        if (sharedAbsent && underShared(p, file)) {
          skipped++;
          continue;
        }
        checked++;
        if (exists(p, file)) continue;
        missing.push(`${relative(ROOT, file)}: ${p}`);
      }
    }
    if (skipped > 0)
      console.warn(`skipped ${skipped} mention(s) of ../shared: ${SHARED} is absent (the datasets folder)`);
    expect(checked).toBeGreaterThan(100);
    expect(missing, "paths named in docs/comments that do not exist (fix the mention or the file)").toEqual(
      [],
    );
  });
});
