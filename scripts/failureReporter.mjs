// A vitest reporter for `npm test`'s summary: it writes every failure of the run to the JSON file named by
// MASTERY_FAILURES_FILE: failed tests, and also the errors vitest's JSON reporter leaves out (a describe's
// beforeAll/afterAll, a module's collection error, unhandled errors), each with the first lines of its stack.
import { writeFileSync } from "node:fs";

/** The error's first line and its first three stack frames outside node_modules. */
function firstLines(e) {
  const [head, ...frames] = String(e?.stack || e?.message || e?.name || "an error without a message").split(
    "\n",
  );
  const ours = frames.map((l) => l.trim()).filter((l) => l !== "" && !l.includes("node_modules"));
  return [head.trim(), ...ours.slice(0, 3)].join(" | ").slice(0, 600);
}

export default class FailureReporter {
  onTestRunEnd(testModules, unhandledErrors) {
    const file = process.env.MASTERY_FAILURES_FILE;
    if (!file) return;
    const failures = [];
    for (const m of testModules) {
      const where = m.relativeModuleId ?? m.moduleId;
      for (const e of m.errors()) failures.push(`${where}: ${firstLines(e)}`);
      for (const s of m.children.allSuites())
        for (const e of s.errors())
          failures.push(`${where} > ${s.fullName} (a hook of the suite): ${firstLines(e)}`);
      for (const t of m.children.allTests("failed"))
        for (const e of t.result().errors ?? []) failures.push(`${where} > ${t.fullName}: ${firstLines(e)}`);
      if (m.state() === "failed" && !failures.some((f) => f.startsWith(where)))
        failures.push(`${where}: failed without an error vitest reported (search the log for the file name)`);
    }
    for (const e of unhandledErrors) failures.push(`unhandled error: ${firstLines(e)}`);
    writeFileSync(file, JSON.stringify({ failures }, null, 1));
  }
}
