// `npm test`: typecheck, lint, every vitest test except the fault test, then the fault test alone (it SIGKILLs
// workers and wants the machine to itself). Every step runs even when an earlier one fails, so one failure
// does not hide another; the summary lists each step's result and the exit code is 1 if any failed.
import { spawnSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const bin = (name) => join(root, "node_modules", ".bin", name);
const FAULT = "test/serving/fault.int.test.ts";
const steps = [
  ["typecheck", bin("tsc"), ["-p", "tsconfig.json", "--noEmit"]],
  ["lint", bin("biome"), ["check", "."]],
  ["vitest (unit + int, without the fault test)", bin("vitest"), ["run", "--exclude", FAULT]],
  ["vitest (fault test)", bin("vitest"), ["run", FAULT]],
];
const results = [];
for (const [name, cmd, args] of steps) {
  process.stderr.write(`\n== ${name}: ${[cmd.replace(`${root}/`, ""), ...args].join(" ")}\n`);
  const started = Date.now();
  const r = spawnSync(cmd, args, { cwd: root, stdio: "inherit" });
  results.push({ name, ok: r.status === 0, status: r.status ?? r.signal, s: (Date.now() - started) / 1000 });
}
process.stderr.write("\n== npm test summary\n");
for (const r of results)
  process.stderr.write(
    `  ${r.ok ? "pass" : "FAIL"}  ${r.name} (${r.s.toFixed(0)} s${r.ok ? "" : `, exit ${r.status}`})\n`,
  );
process.exit(results.every((r) => r.ok) ? 0 : 1);
