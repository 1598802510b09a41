/**
 * `npm run chaos`: starts private PostgreSQL, Redis and NATS (chaos/services.ts), runs every
 * scenario of chaos/scenarios.ts against real `mastery worker` / `mastery serve` processes, and
 * prints one row of counts per scenario (markdown, for docs/benchmarks.md "Reliability").
 *   npx tsx chaos/run.ts [--short] [--only SUBSTRING] [--scale 0.5]
 * --short runs the reduced set the test suite runs (test/chaos/chaos.int.test.ts).
 */
import { cpus, loadavg } from "node:os";
import { chaosPlan, formatTable, meetsTargets } from "./plan.ts";
import { killChildren, type ScenarioContext, type ScenarioResult } from "./scenarios.ts";
import { missingTools, startChaosServices } from "./services.ts";

const args = process.argv.slice(2);
const short = args.includes("--short");
const onlyAt = args.indexOf("--only");
const only = onlyAt >= 0 ? args[onlyAt + 1] : undefined;
const scaleAt = args.indexOf("--scale");
const scale = scaleAt >= 0 ? Number(args[scaleAt + 1]) : short ? 0.1 : 1;
if (!(scale > 0)) throw new Error("--scale must be a positive number (e.g. 0.5: half the events)");
const log = (m: string) => process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${m}\n`);

const missing = missingTools();
if (missing.length > 0) {
  log(`chaos: cannot run, missing ${missing.join(", ")}`);
  process.exit(2);
}
const services = await startChaosServices(log);
// Ctrl-C / SIGTERM: stop the private services (and remove their data) before exiting.
for (const sig of ["SIGINT", "SIGTERM"] as const)
  process.once(sig, () => {
    log(`${sig}: stopping the chaos services`);
    killChildren();
    void services.close().finally(() => process.exit(130));
  });
const ctx: ScenarioContext = { services, log, scale };
const results: ScenarioResult[] = [];
let failed = 0;
try {
  const plan = chaosPlan(short).filter((p) => only === undefined || p.name.includes(only));
  for (const [i, p] of plan.entries()) {
    log(
      `[${i + 1}/${plan.length}] ${p.name} (load average ${loadavg()[0]!.toFixed(1)} on ${cpus().length} cores)`,
    );
    let r: ScenarioResult;
    try {
      r = await p.run(ctx);
    } catch (err) {
      // A scenario that could not run (e.g. a process that never started) is a failed row, and the
      // rest of the plan still runs.
      log(`  could not run: ${(err as Error).message}`);
      failed++;
      continue;
    }
    results.push(r);
    const miss = meetsTargets(r);
    if (miss.length > 0) failed++;
    log(
      `  sent ${r.sent}, acknowledged ${r.acknowledged}, stored ${r.stored}, lost ${r.lost}, double-counted ${r.doubleCounted}, ` +
        `recompute ${r.recomputeOk ? "equal" : "DIFFERS"}, dead letters ${r.deadLettered}, 5xx ${r.http5xx}, 503 ${r.http503}, ` +
        `healthz max ${r.healthzMaxMs ?? "-"} ms (warm ${r.healthzWarmMaxMs ?? "-"} ms), ${r.seconds} s${miss.length > 0 ? `; MISSED: ${miss.join("; ")}` : ""}`,
    );
    for (const n of r.notes.slice(0, 5)) log(`  note: ${n}`);
    for (const d of r.deadLetterReasons.slice(0, 6)) log(`  dead letter: ${d}`);
  }
} finally {
  await services.close();
}
process.stdout.write(`\n${formatTable(results)}\n`);
log(`${results.length - failed} of ${results.length} scenarios met every target`);
process.exit(failed > 0 ? 1 : 0);
