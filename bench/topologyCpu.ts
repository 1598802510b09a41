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

/**
 * utime + stime in clock ticks from the text of a /proc/<pid>/stat file, or undefined when it does not parse.
 * The command name (field 2) may hold spaces and parentheses: the fields after it start after the last ")".
 */
export function procStatTicks(stat: string): number | undefined {
  const close = stat.lastIndexOf(")");
  if (close < 0) return undefined;
  const fields = stat.slice(close + 2).split(" ");
  // Fields 14 (utime) and 15 (stime) of proc(5), i.e. 11 and 12 counted from field 3.
  const utime = fields[11];
  const stime = fields[12];
  if (utime === undefined || stime === undefined || !/^\d+$/.test(utime) || !/^\d+$/.test(stime))
    return undefined;
  return Number(utime) + Number(stime);
}

/** utime + stime of `pid` in ms of CPU, or undefined when the process is gone. */
export function processCpuMs(pid: number): number | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return undefined;
  }
  const ticks = procStatTicks(stat);
  return ticks === undefined ? undefined : (ticks * 1000) / TICKS_PER_S;
}

/** CPU-ms of each of `pids` at this instant (a pid that is gone is left out). */
export function samplePids(pids: readonly number[]): Map<number, number> {
  const out = new Map<number, number>();
  for (const pid of pids) {
    const ms = processCpuMs(pid);
    if (ms !== undefined) out.set(pid, ms);
  }
  return out;
}

/** The CPU a set of processes used in one window, from a sample at its start and one at its end. */
export interface WindowCpu {
  cpuMs: number;
  /** Processes in both samples (their difference counted). */
  counted: number;
  /** Processes only in the end's sample: started inside the window, their whole CPU counted. */
  started: number;
  /** Processes only in the start's sample: ended inside the window, their CPU in it lost (not counted). */
  gone: number;
}

/**
 * CPU used between two samples of a group whose members may change (a pool's PostgreSQL backends: one opened in
 * the window counts from 0, since all its CPU was spent after the start's sample; one closed in it is lost and
 * shows in `gone`). The end's sample must list every member alive at the end.
 */
export function windowCpu(
  before: ReadonlyMap<number, number>,
  after: ReadonlyMap<number, number>,
): WindowCpu {
  let cpuMs = 0;
  let counted = 0;
  let started = 0;
  for (const [pid, ms] of after) {
    const b = before.get(pid);
    if (b === undefined) {
      started++;
      cpuMs += ms;
    } else {
      counted++;
      cpuMs += ms - b;
    }
  }
  let gone = 0;
  for (const pid of before.keys()) if (!after.has(pid)) gone++;
  return { cpuMs, counted, started, gone };
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

/** pgrep's pids for `args` (none when nothing matches). */
export const pgrep = (args: string[]): number[] => {
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
  return samplePids([...t.groups.values()].flat());
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
