// `npm run build` (and `prepare`, so `npm ci` builds too): compiles the TypeScript to dist/ for the `mastery`
// bin, links the files the code reads beside itself (config/, the dashboard's public/) into dist/, and writes
// the stamp bin/mastery.js compares with the sources' times. Plain JavaScript: it runs before anything else.
import { spawnSync } from "node:child_process";
import { mkdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const dist = join(root, "dist");
const started = Date.now();
process.stderr.write(
  "build: compiling TypeScript to dist/ (tsc -p tsconfig.build.json; about 30 s of CPU)\n",
);
const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");
const run = spawnSync(process.execPath, [tsc, "-p", join(root, "tsconfig.build.json")], { stdio: "inherit" });
if (run.status !== 0) {
  process.stderr.write(
    "build: tsc failed (errors above); fix them, or run `npm run typecheck` for the same list\n",
  );
  process.exit(run.status ?? 1);
}

// Symbolic links, not copies, so an edited config/*.yaml or dashboard page is seen without a rebuild.
for (const rel of ["config", "serving/dashboard/public"]) {
  const link = join(dist, rel);
  mkdirSync(dirname(link), { recursive: true });
  rmSync(link, { recursive: true, force: true });
  symlinkSync(relative(dirname(link), join(root, rel)), link, "dir");
}
writeFileSync(join(dist, ".build-stamp"), `${new Date().toISOString()}\n`);
process.stderr.write(`build: dist/ ready in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
