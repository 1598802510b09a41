/**
 * Throughput of the synthetic generator (`mastery generate`): ~1M and ~10M events, with worker
 * threads (default) and on the main thread only. Files go to a temporary directory that is
 * removed after each run (so one run's page-cache writeback does not slow the next as much).
 * Prints events, seconds, events/s and bytes written per configuration.
 *
 *   npx tsx bench/generate.bench.ts            # 1M and 10M, workers = default and 0
 *   SIZES=1 npx tsx bench/generate.bench.ts    # only the 1M size
 */
import { mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { defaultWorkers, generateSynthetic } from "../features/synthetic/generate.ts";
import { seedSchool } from "./seedSchool.ts";

const sizes = (process.env.SIZES ?? "1,10").split(",").map(Number);
const workerCounts = [defaultWorkers(), 0];

for (const millions of sizes) {
  // events ~= students x days x events-per-day (3.4): 10k students x 30 days ~ 1M events
  const students = Math.round((millions * 1_000_000) / (30 * 3.4));
  for (const workers of workerCounts) {
    const dir = mkdtempSync(join(tmpdir(), "mastery-gen-bench-"));
    const t0 = performance.now();
    const m = await generateSynthetic(seedSchool(students, dir, { workers }));
    const secs = (performance.now() - t0) / 1000;
    const bytes = readdirSync(dir).reduce((s, f) => s + statSync(join(dir, f)).size, 0);
    rmSync(dir, { recursive: true, force: true });
    process.stdout.write(
      `${JSON.stringify({
        students,
        workers,
        events: m.counts.events,
        groundTruthRows: m.counts.ground_truth_rows,
        seconds: Number(secs.toFixed(2)),
        eventsPerSec: Math.round(m.counts.events / secs),
        megabytes: Math.round(bytes / 1e6),
      })}\n`,
    );
  }
}
