// `npm test`: typecheck, lint, every vitest test except the fault test, then the fault test alone (it SIGKILLs
// workers and wants the machine to itself). Every step runs even when an earlier one fails, so one failure
// does not hide another; the summary lists each step's result and the exit code is 1 if any failed.
// Each vitest step also writes a JSON report, and the summary names every failed test with the first lines
// of its error, so a CI log that keeps only its tail still says what failed.
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const bin = (name) => join(root, "node_modules", ".bin", name);
const FAULT = "test/serving/fault.int.test.ts";
const reports = mkdtempSync(join(tmpdir(), "mastery-test-"));
const vitestReport = (file) => [
  "--reporter",
  "default",
  "--reporter",
  "json",
  "--outputFile.json",
  join(reports, file),
];
const steps = [
  ["typecheck", bin("tsc"), ["-p", "tsconfig.json", "--noEmit"]],
  ["lint", bin("biome"), ["check", "."]],
  ["vitest (unit + int, without the fault test)", bin("vitest"), ["run", "--exclude", FAULT], "main.json"],
  ["vitest (fault test)", bin("vitest"), ["run", FAULT], "fault.json"],
];

/** Failed tests (and failed files with no failed test: an import error or a hook) from a vitest JSON report. */
function failuresIn(file) {
  if (!existsSync(file)) return [`no JSON report was written (${file}): the run crashed before reporting`];
  const report = JSON.parse(readFileSync(file, "utf8"));
  const out = [];
  for (const suite of report.testResults ?? []) {
    const where = relative(root, suite.name);
    const failed = (suite.assertionResults ?? []).filter((t) => t.status === "failed");
    for (const t of failed) {
      const first = (t.failureMessages ?? []).join("\n").split("\n").slice(0, 3).join(" | ");
      out.push(`${where} > ${t.fullName}: ${first.slice(0, 400)}`);
    }
    if (failed.length === 0 && suite.status === "failed")
      out.push(
        `${where}: ${(suite.message ?? "failed outside any test").split("\n").slice(0, 3).join(" | ")}`,
      );
  }
  if (out.length === 0 && report.success === false)
    out.push("no test or file failed: an unhandled error or a worker crash (search the log for 'Unhandled')");
  return out;
}

const results = [];
for (const [name, cmd, args, json] of steps) {
  const full = json ? [...args, ...vitestReport(json)] : args;
  process.stderr.write(`\n== ${name}: ${[cmd.replace(`${root}/`, ""), ...full].join(" ")}\n`);
  const started = Date.now();
  const r = spawnSync(cmd, full, { cwd: root, stdio: "inherit" });
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
