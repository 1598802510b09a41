/**
 * The process's peak RSS for the benches: a worker thread samples /proc/self/statm (the whole process, DuckDB's
 * native memory included) every `everyMs` into shared memory, so a step that blocks the main thread (a native
 * query, a JS fold) is still sampled; `takePeak` returns the peak since the last call and starts a new span.
 * VmHWM (the kernel's exact peak) is read from /proc/self/status; `resetHwm` sets it back to the current RSS
 * (clear_refs 5; false where the kernel refuses). With `spillDir` (DuckDB's `<store>.tmp`) the thread also samples the
 * size of that directory's files, `takeSpillPeak` returning its peak per span: how much a step spilled.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { Worker } from "node:worker_threads";

export interface RssSampler {
  /** Peak RSS in MB since the last takePeak (or the start), at least the current RSS; starts a new span. */
  takePeak(): number;
  /** Peak size in MB of the spill directory's files since the last takeSpillPeak (0 without a spill directory). */
  takeSpillPeak(): number;
  /** Stops the sampling thread. */
  stop(): void;
}

export function startRssSampler(everyMs = 100, spillDir?: string): RssSampler {
  // [0] = max RSS in MB of the span, [1] = stop, [2] = max spill size in MB of the span
  const shared = new Int32Array(new SharedArrayBuffer(12));
  const worker = new Worker(
    `const { workerData } = require("node:worker_threads");
     const fs = require("node:fs");
     const path = require("node:path");
     const { a, everyMs, spill } = workerData;
     const spilled = () => {
       let bytes = 0;
       try {
         for (const f of fs.readdirSync(spill)) bytes += fs.statSync(path.join(spill, f)).blocks * 512;
       } catch {}
       return bytes;
     };
     const tick = () => {
       if (Atomics.load(a, 1) === 1) return;
       const rss = Number(fs.readFileSync("/proc/self/statm", "utf8").split(" ")[1]) * 4096 / 1048576;
       if (rss > Atomics.load(a, 0)) Atomics.store(a, 0, Math.round(rss));
       if (spill) {
         const mb = Math.round(spilled() / 1048576);
         if (mb > Atomics.load(a, 2)) Atomics.store(a, 2, mb);
       }
       setTimeout(tick, everyMs);
     };
     tick();`,
    { eval: true, workerData: { a: shared, everyMs, spill: spillDir ?? null } },
  );
  worker.unref();
  return {
    takePeak: () => Math.max(Atomics.exchange(shared, 0, 0), Math.round(process.memoryUsage().rss / 1048576)),
    takeSpillPeak: () => Atomics.exchange(shared, 2, 0),
    stop: () => Atomics.store(shared, 1, 1),
  };
}

/** The process's VmHWM in MB. */
export const hwmMB = (): number =>
  Math.round(Number(/VmHWM:\s+(\d+)/.exec(readFileSync("/proc/self/status", "utf8"))?.[1] ?? 0) / 1024);

/** Resets VmHWM to the current RSS; false where the kernel refuses. */
export function resetHwm(): boolean {
  try {
    writeFileSync("/proc/self/clear_refs", "5");
    return true;
  } catch {
    return false;
  }
}
