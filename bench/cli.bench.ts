/**
 * CLI start-up: wall time of `mastery --version`, `mastery --help` and `mastery models list` on the demo DB,
 * against a bare `node -e 0` measured in the same rounds (interleaved, so machine load hits all alike).
 * Targets (issue 14): --version and --help <= 0.3 s on an idle 2-core machine (<= 2x bare node), models
 * list <= 0.6 s. Runs the compiled bin (dist/; `npm run build` first) and, for comparison, the same commands
 * through tsx (MASTERY_FROM_SOURCE=1), as every call ran before the build step.
 *   npx tsx bench/cli.bench.ts [--runs 15] [--db .mastery/demo/mastery.duckdb]
 * Without --db and no demo DB, a small demo (500 students, 14 days) is built into bench/out/cli-demo first.
 * Results: docs/benchmarks.md ("CLI start-up").
 */
import { spawnSync } from "node:child_process";
import { existsSync, statSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { join, resolve } from "node:path";

const args = process.argv.slice(2);
const opt = (name: string): string | undefined => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : undefined;
};
const RUNS = Number(opt("runs") ?? 15);
const root = resolve(import.meta.dirname, "..");
const bin = join(root, "bin", "mastery.js");
const stamp = join(root, "dist", ".build-stamp");
if (!existsSync(stamp)) {
  process.stderr.write(
    "no build in dist/: run `npm run build` first (the bench measures the compiled bin)\n",
  );
  process.exit(1);
}

const env = (fromSource: boolean): NodeJS.ProcessEnv => ({
  ...process.env,
  MASTERY_QUIET: "1",
  ...(fromSource ? { MASTERY_FROM_SOURCE: "1" } : {}),
});

// CPU time (user + sys) of the child, from GNU time when installed: on a loaded machine it is a better guide to
// the idle wall time than the wall time itself (start-up is one thread).
const TIME = existsSync("/usr/bin/time") ? "/usr/bin/time" : undefined;
const CPU_MARK = "cpu-seconds:";

function run(argv: string[], fromSource = false): { wall: number; cpu: number } {
  const [cmd, cmdArgs] = TIME
    ? [TIME, ["-f", `${CPU_MARK}%U %S`, process.execPath, ...argv]]
    : [process.execPath, argv];
  const t = performance.now();
  const r = spawnSync(cmd, cmdArgs, { env: env(fromSource), encoding: "utf8" });
  const wall = performance.now() - t;
  if (r.status !== 0) throw new Error(`${argv.join(" ")} exited ${r.status}: ${r.stderr}`);
  const m = new RegExp(`${CPU_MARK}([\\d.]+) ([\\d.]+)`).exec(r.stderr);
  return { wall, cpu: m ? (Number(m[1]) + Number(m[2])) * 1000 : Number.NaN };
}

let db = opt("db") ?? join(root, ".mastery", "demo", "mastery.duckdb");
if (!existsSync(db)) {
  const dir = join(root, "bench", "out", "cli-demo");
  db = join(dir, "mastery.duckdb");
  if (!existsSync(db)) {
    process.stderr.write(`building a small demo DB in ${dir} (500 students, 14 days) ...\n`);
    run([bin, "demo", "--students", "500", "--days", "14", "--dir", dir]);
  }
}
// A stale build makes the bin fall back to tsx: say so rather than measure the wrong thing.
const probe = spawnSync(process.execPath, [bin, "--version"], {
  env: { ...process.env, MASTERY_QUIET: "0" },
  encoding: "utf8",
});
if (probe.stderr.includes("tsx")) {
  process.stderr.write(`${probe.stderr.trim()}\nrun \`npm run build\` first\n`);
  process.exit(1);
}

const cases: { name: string; argv: string[]; fromSource?: boolean }[] = [
  { name: "node -e 0", argv: ["-e", "0"] },
  { name: "mastery --version", argv: [bin, "--version"] },
  { name: "mastery --help", argv: [bin, "--help"] },
  { name: "mastery models list (demo DB)", argv: [bin, "models", "list", "--db", db] },
  { name: "tsx: mastery --version", argv: [bin, "--version"], fromSource: true },
  { name: "tsx: mastery models list", argv: [bin, "models", "list", "--db", db], fromSource: true },
];
const times = cases.map(() => [] as number[]);
const cpu = cases.map(() => [] as number[]);
for (const c of cases) run(c.argv, c.fromSource); // warm the page cache
process.stderr.write(`${RUNS} rounds of ${cases.length} commands `);
for (let r = 0; r < RUNS; r++) {
  cases.forEach((c, i) => {
    const t = run(c.argv, c.fromSource);
    times[i]!.push(t.wall);
    cpu[i]!.push(t.cpu);
  });
  process.stderr.write(".");
}
process.stderr.write("\n");

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const base = median(times[0]!);
console.log(
  `CLI start-up, ${RUNS} interleaved rounds; ${cpus().length} cores, load average ${loadavg()
    .map((l) => l.toFixed(1))
    .join(" ")}; built ${statSync(stamp).mtime.toISOString()}`,
);
const baseCpu = median(cpu[0]!);
console.log(
  "| command | median wall (ms) | min wall (ms) | wall x bare node | median CPU (ms) | CPU x bare node |",
);
console.log("| --- | ---: | ---: | ---: | ---: | ---: |");
cases.forEach((c, i) => {
  const t = times[i]!;
  const u = median(cpu[i]!);
  console.log(
    `| ${c.name} | ${median(t).toFixed(0)} | ${Math.min(...t).toFixed(0)} | ${(median(t) / base).toFixed(2)} | ` +
      `${u.toFixed(0)} | ${(u / baseCpu).toFixed(2)} |`,
  );
});
