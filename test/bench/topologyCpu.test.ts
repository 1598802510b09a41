import { describe, expect, it } from "vitest";
import {
  cpuPerRequest,
  formatCpuRows,
  processCpuMs,
  procStatTicks,
  samplePids,
  type TopologyPids,
  windowCpu,
} from "../../bench/topologyCpu.ts";

describe("bench/topologyCpu", () => {
  it("splits the CPU between two samples per group and per request, leaving out processes seen once", () => {
    const t: TopologyPids = {
      groups: new Map([
        ["server 1", [10]],
        ["PostgreSQL backends of the topology", [20, 21, 22]],
        ["Redis (shared)", [30]],
      ]),
    };
    // pid 22 closed between the samples (a pooled connection): not counted.
    const before = new Map([
      [10, 1000],
      [20, 50],
      [21, 70],
      [22, 5],
      [30, 400],
    ]);
    const after = new Map([
      [10, 1600],
      [20, 150],
      [21, 90],
      [30, 430],
    ]);
    const rows = cpuPerRequest(t, before, after, 200);
    expect(rows).toEqual([
      { label: "server 1", cpuMs: 600, msPerRequest: 3, counted: 1, pids: 1 },
      { label: "PostgreSQL backends of the topology", cpuMs: 120, msPerRequest: 0.6, counted: 2, pids: 3 },
      { label: "Redis (shared)", cpuMs: 30, msPerRequest: 0.15, counted: 1, pids: 1 },
    ]);
    // The product line leaves out the shared processes: (600 + 120) / 200 = 3.6 ms; all: 750 / 200.
    const text = formatCpuRows(rows, 200, 10);
    expect(text).toContain("product (servers + worker + its PG backends + HAProxy): 3.600 CPU-ms/request");
    expect(text).toContain("all above: 3.750");
  });

  it("reads this process's own CPU from /proc, and undefined for a pid that does not exist", () => {
    const ms = processCpuMs(process.pid);
    expect(ms).toBeGreaterThan(0);
    expect(processCpuMs(2 ** 30)).toBeUndefined();
  });

  it("reads utime + stime from a stat line whose command name holds spaces and parentheses", () => {
    // A PostgreSQL backend's line (proc(5): pid, (comm), state, ppid, ... field 14 utime, 15 stime, 16 cutime).
    const line =
      "4242 (postgres: post32 a) (b) S 900 900 900 0 -1 4194560 2651 0 0 0 137 29 0 0 20 0 1 0 5312 226312192 3221 18446744073709551615\n";
    expect(procStatTicks(line)).toBe(137 + 29);
    // cutime / cstime (fields 16-17, the children's) are not counted.
    expect(procStatTicks("1 (x) R 0 0 0 0 -1 0 0 0 0 0 5 7 1000 1000 20 0")).toBe(12);
    expect(procStatTicks("no parenthesis here")).toBeUndefined();
    expect(procStatTicks("1 (x) R 0 0")).toBeUndefined();
    expect(procStatTicks("1 (x) R 0 0 0 0 -1 0 0 0 0 0 5 x7 0 0")).toBeUndefined();
  });

  it("counts a window's CPU of a changing set: both samples' difference, a started process whole, an ended one lost", () => {
    // 20 and 21 alive throughout; 22 closed inside the window (its CPU there unknown: lost); 23 opened in it.
    const before = new Map([
      [20, 50],
      [21, 70],
      [22, 5],
    ]);
    const after = new Map([
      [20, 150],
      [21, 90],
      [23, 30],
    ]);
    // (150 - 50) + (90 - 70) + 30 = 150 ms.
    expect(windowCpu(before, after)).toEqual({ cpuMs: 150, counted: 2, started: 1, gone: 1 });
    expect(windowCpu(new Map(), new Map())).toEqual({ cpuMs: 0, counted: 0, started: 0, gone: 0 });
    // samplePids: this process's own CPU, and nothing for a pid that does not exist.
    const sample = samplePids([process.pid, 2 ** 30]);
    expect([...sample.keys()]).toEqual([process.pid]);
    expect(windowCpu(sample, samplePids([process.pid])).cpuMs).toBeGreaterThanOrEqual(0);
  });
});
