// `npm test`: typecheck, lint, every vitest test except the fault test, then the fault test alone (it SIGKILLs
// workers and wants the machine to itself). Every step runs even when an earlier one fails, so one failure
// does not hide another; the summary lists each step's result and the exit code is 1 if any failed.
// Each vitest step also runs scripts/failureReporter.mjs, and the summary names every failed test, hook and
// module with the first lines of its error, so a CI log that keeps only its tail still says what failed.
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const bin = (name) => join(root, "node_modules", ".bin", name);
const FAULT = "test/serving/fault.int.test.ts";
const reports = mkdtempSync(join(tmpdir(), "mastery-test-"));
const vitestReport = () => [
  "--reporter",
  "default",
  "--reporter",
  join(root, "scripts", "failureReporter.mjs"),
];
const steps = [
  ["typecheck", bin("tsc"), ["-p", "tsconfig.json", "--noEmit"]],
  ["lint", bin("biome"), ["check", "."]],
  [
    "vitest (unit + int, without the fault test)",
    bin("vitest"),
    // Two workers on the 2-core CI machine (vitest's default is cores - 1 = one): most int files wait on
    // PostgreSQL, Redis, NATS or child processes, and no two files share a schema, key prefix, stream or port
    // (ci22's audit, docs/benchmarks.md "CI time, round 2").
    ["run", "--exclude", FAULT, "--maxWorkers", "2"],
    "main.failures.json",
  ],
  ["vitest (fault test)", bin("vitest"), ["run", FAULT], "fault.failures.json"],
];

/** Every failure the run's failure reporter (scripts/failureReporter.mjs) wrote: tests, hooks, modules, unhandled. */
function failuresIn(file) {
  if (!existsSync(file)) return [`no failure report was written (${file}): the run crashed before reporting`];
  const { failures } = JSON.parse(readFileSync(file, "utf8"));
  return failures.length > 0
    ? failures
    : [
        "vitest exited non-zero but reported no failure: a worker crash (search the log for 'Unhandled' or 'exited')",
      ];
}

const results = [];
for (const [name, cmd, args, json] of steps) {
  const full = json ? [...args, ...vitestReport()] : args;
  process.stderr.write(`\n== ${name}: ${[cmd.replace(`${root}/`, ""), ...full].join(" ")}\n`);
  const started = Date.now();
  const env = json ? { ...process.env, MASTERY_FAILURES_FILE: join(reports, json) } : process.env;
  const r = spawnSync(cmd, full, { cwd: root, stdio: "inherit", env });
  const ok = r.status === 0;
  const failures = ok || !json ? [] : failuresIn(join(reports, json));
  results.push({ name, ok, status: r.status ?? r.signal, s: (Date.now() - started) / 1000, failures });
}
rmSync(reports, { recursive: true, force: true });
process.stderr.write("\n== npm test summary\n");
for (const r of results) {
  process.stderr.write(
    `  ${r.ok ? "pass" : "FAIL"}  ${r.name} (${r.s.toFixed(0)} s${r.ok ? "" : `, exit ${r.status}`})\n`,
  );
  for (const f of r.failures) process.stderr.write(`        - ${f}\n`);
}
process.exit(results.every((r) => r.ok) ? 0 : 1);
