/**
 * CPU of the local serving topology (deploy/local.sh), per process, from /proc/<pid>/stat (utime + stime,
 * clock ticks): bench/availability.bench.ts samples it twice in steady state (AVAIL_CPU_FROM / AVAIL_CPU_TO)
 * and prints CPU-ms per answered request for each server, the worker, the PostgreSQL backends the topology
 * opened (tagged with PGAPPNAME), HAProxy, the load client, and the shared Redis / NATS / PostgreSQL
 * background processes (shared: other users' work on the machine counts there too). Linux only.
 */
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";

/** Clock ticks per second of /proc's utime and stime (USER_HZ; 100 on every Linux this runs on). */
const TICKS_PER_S = Number(execFileSync("getconf", ["CLK_TCK"]).toString().trim()) || 100;

/** utime + stime of `pid` in ms of CPU, or undefined when the process is gone. */
export function processCpuMs(pid: number): number | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return undefined;
  }
  // The command name (field 2) may hold spaces and parentheses: the fields after it start after the last ")".
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // Fields 14 (utime) and 15 (stime) of proc(5), i.e. 11 and 12 counted from field 3.
  const ticks = Number(fields[11]) + Number(fields[12]);
  return Number.isFinite(ticks) ? (ticks * 1000) / TICKS_PER_S : undefined;
}

export interface TopologyPids {
  /** Label -> pids (a label such as "PostgreSQL backends" sums several processes). */
  groups: Map<string, number[]>;
}

const pidFile = (dir: string, name: string): number[] => {
  const f = join(dir, `${name}.pid`);
  if (!existsSync(f)) return [];
  const pid = Number(readFileSync(f, "utf8").trim());
  return Number.isInteger(pid) && pid > 0 ? [pid] : [];
};

const pgrep = (args: string[]): number[] => {
  try {
    return execFileSync("pgrep", args)
      .toString()
      .split("\n")
      .filter((l) => l.trim() !== "")
      .map(Number);
  } catch {
    return []; // pgrep exits 1 when nothing matches
  }
};

/**
 * The topology's processes: servers and worker from deploy/local.sh's pid files in `localDir`, HAProxy,
 * `pgBackends` (pids of the backends the topology's connections use), this process (the load client),
 * and the shared Redis, NATS and PostgreSQL's non-backend processes.
 */
export function topologyPids(localDir: string, servers: number, pgBackends: number[]): TopologyPids {
  const groups = new Map<string, number[]>();
  for (let i = 1; i <= servers; i++) groups.set(`server ${i}`, pidFile(localDir, `server${i}`));
  groups.set("stream worker", pidFile(localDir, "worker"));
  groups.set("PostgreSQL backends of the topology", pgBackends);
  groups.set("HAProxy", pidFile(localDir, "haproxy"));
  groups.set("load client (this process)", [process.pid]);
  groups.set("Redis (shared)", pgrep(["-x", "redis-server"]));
  groups.set("NATS (shared)", pgrep(["-x", "nats-server"]));
  // The postmaster's other children (WAL writer, checkpointer, autovacuum...): shared with other users.
  const postmaster = pgrep(["-o", "-x", "postgres"]);
  const children = postmaster.length > 0 ? pgrep(["-P", String(postmaster[0])]) : [];
  groups.set(
    "PostgreSQL other processes (shared)",
    [...postmaster, ...children].filter((p) => !pgBackends.includes(p)),
  );
  return { groups };
}

/** CPU-ms of every pid of `t` at this instant. */
export function sampleCpu(t: TopologyPids): Map<number, number> {
  const out = new Map<number, number>();
  for (const pids of t.groups.values())
    for (const pid of pids) {
      const ms = processCpuMs(pid);
      if (ms !== undefined) out.set(pid, ms);
    }
  return out;
}

export interface CpuRow {
  label: string;
  cpuMs: number;
  msPerRequest: number;
  /** Processes present at both samples / in the group. */
  counted: number;
  pids: number;
}

/**
 * CPU used between two samples, per group and per request (a process missing from either sample, e.g. a
 * pooled connection closed in between, is left out and shows in `counted` < `pids`).
 */
export function cpuPerRequest(
  t: TopologyPids,
  before: Map<number, number>,
  after: Map<number, number>,
  requests: number,
): CpuRow[] {
  const rows: CpuRow[] = [];
  for (const [label, pids] of t.groups) {
    let cpuMs = 0;
    let counted = 0;
    for (const pid of pids) {
      const a = before.get(pid);
      const b = after.get(pid);
      if (a === undefined || b === undefined) continue;
      cpuMs += b - a;
      counted++;
    }
    rows.push({
      label,
      cpuMs,
      msPerRequest: requests > 0 ? cpuMs / requests : Number.NaN,
      counted,
      pids: pids.length,
    });
  }
  return rows;
}

/** The table bench/availability.bench.ts prints. */
export function formatCpuRows(rows: CpuRow[], requests: number, seconds: number): string {
  const product = rows.filter((r) => !r.label.includes("shared") && !r.label.startsWith("load client"));
  const productMs = product.reduce((n, r) => n + r.cpuMs, 0);
  const allMs = rows.reduce((n, r) => n + r.cpuMs, 0);
  return (
    `  CPU between the samples (${seconds.toFixed(0)} s, ${requests} requests answered, ${(requests / seconds).toFixed(0)}/s):\n` +
    rows
      .map(
        (r) =>
          `    ${r.label.padEnd(38)} ${(r.cpuMs / 1000).toFixed(2).padStart(7)} CPU-s  ${r.msPerRequest.toFixed(3).padStart(7)} ms/request` +
          `  (${r.counted}/${r.pids} processes)\n`,
      )
      .join("") +
    `    product (servers + worker + its PG backends + HAProxy): ${(productMs / requests).toFixed(3)} CPU-ms/request; ` +
    `all above: ${(allMs / requests).toFixed(3)}\n`
  );
}
