import { describe, expect, it } from "vitest";
import { cpuPerRequest, formatCpuRows, processCpuMs, type TopologyPids } from "../../bench/topologyCpu.ts";

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
});
