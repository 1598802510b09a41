/**
 * Where a paced request's latency goes (issue 15, bench/load.bench.ts LOAD_TRACE=1): each request's times
 * on the machine's monotonic clock, from the generator (due, written, answer read: bench/pacedLoad.ts
 * `trace`) joined by id with the server's ('request' event, res.end), cut into segments:
 *   queue     due -> written (waiting for a free connection of the pool, and the generator's own loop lag)
 *   toServer  written -> the server's 'request' event (the kernel, and the server's loop busy before it read it)
 *   server    'request' -> the app's res.end (the server's own time)
 *   back      res.end -> the generator has read the answer's last byte (the kernel, the generator's loop)
 *   total     due -> answer read (what the paced generator reports)
 * and the tail's clustering in time with what the processes were doing meanwhile. Pure: no I/O.
 */

export interface TraceRow {
  kind: string;
  due: number;
  write: number;
  req: number;
  fin: number;
  done: number;
}

export const SEGMENTS = ["queue", "toServer", "server", "back", "total"] as const;
export type Segment = (typeof SEGMENTS)[number];

export const segmentOf = (r: TraceRow, s: Segment): number =>
  s === "queue"
    ? r.write - r.due
    : s === "toServer"
      ? r.req - r.write
      : s === "server"
        ? r.fin - r.req
        : s === "back"
          ? r.done - r.fin
          : r.done - r.due;

export interface Quantiles {
  n: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

/** Nearest-rank quantiles (index floor(q n) of the sorted values, as bench/pacedLoad.ts). */
export function quantiles(xs: readonly number[]): Quantiles {
  const s = Float64Array.from(xs).sort();
  const at = (q: number) =>
    s.length === 0 ? Number.NaN : (s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? 0);
  return {
    n: s.length,
    p50: at(0.5),
    p90: at(0.9),
    p99: at(0.99),
    max: s.length === 0 ? Number.NaN : (s.at(-1) ?? 0),
  };
}

/** Rows with every time known (answered, and seen by the server). */
export const complete = (rows: readonly TraceRow[]): TraceRow[] =>
  rows.filter((r) => Number.isFinite(r.due + r.write + r.req + r.fin + r.done));

/** Quantiles of each segment, over all rows ("all") and per kind. */
export function segmentTable(rows: readonly TraceRow[]): Map<string, Record<Segment, Quantiles>> {
  const byKind = new Map<string, TraceRow[]>([["all", [...rows]]]);
  for (const r of rows) {
    const xs = byKind.get(r.kind) ?? [];
    if (xs.length === 0) byKind.set(r.kind, xs);
    xs.push(r);
  }
  const out = new Map<string, Record<Segment, Quantiles>>();
  for (const [kind, rs] of byKind) {
    const rec = {} as Record<Segment, Quantiles>;
    for (const s of SEGMENTS) rec[s] = quantiles(rs.map((r) => segmentOf(r, s)));
    out.set(kind, rec);
  }
  return out;
}

/** A pause that started at `start` and lasted `duration` ms (e.g. a GC). */
export interface Pause {
  start: number;
  duration: number;
}
/** A value observed at time t (loop lag: how late a timer due then ran; cpu: cumulative CPU-ms at t). */
export interface Sample {
  t: number;
  v: number;
}

/** Sum and longest of the pauses' parts inside [from, to). */
export function pausesIn(
  pauses: readonly Pause[],
  from: number,
  to: number,
): { ms: number; max: number; n: number } {
  let ms = 0;
  let max = 0;
  let n = 0;
  for (const p of pauses) {
    const part = Math.min(to, p.start + p.duration) - Math.max(from, p.start);
    if (part <= 0) continue;
    ms += part;
    n++;
    max = Math.max(max, p.duration);
  }
  return { ms, max, n };
}

/** Largest sample value with t in [from, to) (0 if none). */
export const maxIn = (xs: readonly Sample[], from: number, to: number): number =>
  xs.reduce((m, x) => (x.t >= from && x.t < to ? Math.max(m, x.v) : m), 0);

/**
 * Share of one core a process used over [from, to), from cumulative CPU-ms samples: the difference between
 * the last sample at or before `from` and the first at or after `to`, over that sampled stretch (NaN
 * without samples on both sides).
 */
export function cpuShare(cum: readonly Sample[], from: number, to: number): number {
  let a: Sample | undefined;
  let b: Sample | undefined;
  for (const x of cum) {
    if (x.t <= from) a = x;
    if (x.t >= to && b === undefined) b = x;
  }
  if (a === undefined || b === undefined || b.t <= a.t) return Number.NaN;
  return (b.v - a.v) / (b.t - a.t);
}

/** Most requests of `kind` in flight at the server ('request' to 'finish') at any instant in [from, to). */
export function maxInFlight(rows: readonly TraceRow[], kind: string, from: number, to: number): number {
  const edges: [number, number][] = [];
  for (const r of rows) {
    if (r.kind !== kind || r.fin <= from || r.req >= to) continue;
    edges.push([Math.max(r.req, from), 1], [r.fin, -1]);
  }
  edges.sort((x, y) => x[0] - y[0] || x[1] - y[1]);
  let cur = 0;
  let max = 0;
  for (const [, d] of edges) {
    cur += d;
    max = Math.max(max, cur);
  }
  return max;
}

export interface TailWindow {
  /** Start of the window (due times in [start, start + windowMs)). */
  start: number;
  /** Tail requests due in it. */
  n: number;
  /** Mean of each segment over them. */
  mean: Record<Segment, number>;
}

export interface TailClusters {
  /** The total latency at the quantile (the tail: rows at or above it). */
  threshold: number;
  n: number;
  /** Mean of each segment over the tail. */
  mean: Record<Segment, number>;
  /** Windows holding any tail request, and how few of them (largest first) hold half / 80% of the tail. */
  windows: number;
  windowsForHalf: number;
  windowsFor80: number;
  /** Windows of the whole run (from the first due time to the last). */
  runWindows: number;
  /** The largest windows, largest first. */
  top: TailWindow[];
}

const meanOf = (rows: readonly TraceRow[]): Record<Segment, number> => {
  const m = {} as Record<Segment, number>;
  for (const s of SEGMENTS) m[s] = rows.reduce((a, r) => a + segmentOf(r, s), 0) / Math.max(1, rows.length);
  return m;
};

/** The rows at or above the q quantile of the total latency, grouped by due time into windows of windowMs. */
export function tailClusters(
  rows: readonly TraceRow[],
  q: number,
  windowMs: number,
  topN: number,
): TailClusters {
  const totals = rows.map((r) => segmentOf(r, "total")).sort((a, b) => a - b);
  const threshold = totals[Math.min(totals.length - 1, Math.floor(q * totals.length))] ?? Number.NaN;
  const tail = rows.filter((r) => segmentOf(r, "total") >= threshold);
  const first = rows.reduce((m, r) => Math.min(m, r.due), Number.POSITIVE_INFINITY);
  const last = rows.reduce((m, r) => Math.max(m, r.due), Number.NEGATIVE_INFINITY);
  const byWindow = new Map<number, TraceRow[]>();
  for (const r of tail) {
    const w = Math.floor((r.due - first) / windowMs);
    const xs = byWindow.get(w) ?? [];
    if (xs.length === 0) byWindow.set(w, xs);
    xs.push(r);
  }
  const sorted = [...byWindow.entries()].sort((a, b) => b[1].length - a[1].length || a[0] - b[0]);
  const needed = (share: number): number => {
    let acc = 0;
    for (let i = 0; i < sorted.length; i++) {
      acc += sorted[i]?.[1].length ?? 0;
      if (acc >= share * tail.length) return i + 1;
    }
    return sorted.length;
  };
  return {
    threshold,
    n: tail.length,
    mean: meanOf(tail),
    windows: sorted.length,
    windowsForHalf: needed(0.5),
    windowsFor80: needed(0.8),
    runWindows: rows.length === 0 ? 0 : Math.floor((last - first) / windowMs) + 1,
    top: sorted
      .slice(0, topN)
      .map(([w, xs]) => ({ start: first + w * windowMs, n: xs.length, mean: meanOf(xs) })),
  };
}
