#!/usr/bin/env node
// Entry point for the `mastery` bin. Runs the compiled CLI in dist/ (`npm run build`, which `npm ci` runs
// through the `prepare` script). Without a build, or when a source file is newer than the build, it loads
// the TypeScript through tsx instead and says so in one line (MASTERY_FROM_SOURCE=1 forces tsx silently).
import { existsSync, readdirSync, statSync } from "node:fs";

const root = new URL("../", import.meta.url);
const stamp = new URL("dist/.build-stamp", root);
const SOURCE_DIRS = [
  "bin",
  "models",
  "features",
  "training",
  "storage",
  "registry",
  "serving",
  "experiments",
  "monitoring",
];

/** The newest .ts file under the compiled folders is newer than the build (an edit since `npm run build`). */
function sourcesNewerThan(ms) {
  for (const dir of SOURCE_DIRS) {
    const base = new URL(`${dir}/`, root);
    for (const f of readdirSync(base, { recursive: true })) {
      if (f.endsWith(".ts") && statSync(new URL(f, base)).mtimeMs > ms) return `${dir}/${f}`;
    }
  }
  return undefined;
}

// The hint is one line on stderr; MASTERY_QUIET=1 (scripts, tests) leaves it out.
const hint = (why) => {
  if (process.env.MASTERY_QUIET !== "1")
    process.stderr.write(
      `mastery: ${why}; running the TypeScript through tsx (run \`npm run build\` for fast start-up)\n`,
    );
};
let compiled = process.env.MASTERY_FROM_SOURCE !== "1" && existsSync(stamp);
if (compiled) {
  const newer = sourcesNewerThan(statSync(stamp).mtimeMs);
  if (newer !== undefined) {
    compiled = false;
    hint(`${newer} changed since the last build`);
  }
} else if (process.env.MASTERY_FROM_SOURCE !== "1") {
  hint("no build in dist/");
}

if (compiled) {
  await import(new URL("dist/bin/cli.js", root).href);
} else {
  const { register } = await import("tsx/esm/api");
  register();
  await import(new URL("bin/cli.ts", root).href);
}
