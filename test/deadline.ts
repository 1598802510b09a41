/**
 * Test deadlines that scale with how busy the machine is. The 2-core machines this project runs on are
 * shared: a property test that takes 60 s alone took over 240 s at a load average of 22 (CI, 2026-12-04).
 * A fixed deadline then fails a correct test. `scaledTimeout(ms)` multiplies a deadline set for a quiet
 * machine by the run queue per core at the time the test file loads (1-minute load average / cores),
 * never by less than 1 nor more than 6, so a hung test still fails in bounded time.
 */
import { availableParallelism, loadavg } from "node:os";

export const MAX_DEADLINE_SCALE = 6;

export function deadlineScale(load1 = loadavg()[0] ?? 0, cores = availableParallelism()): number {
  const perCore = load1 / Math.max(1, cores);
  return Math.min(MAX_DEADLINE_SCALE, Math.max(1, perCore));
}

export function scaledTimeout(ms: number): number {
  return Math.round(ms * deadlineScale());
}
