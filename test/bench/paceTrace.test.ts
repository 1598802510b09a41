import { describe, expect, it } from "vitest";
import {
  cpuShare,
  maxIn,
  maxInFlight,
  pausesIn,
  quantiles,
  segmentOf,
  segmentTable,
  type TraceRow,
  tailClusters,
} from "../../bench/paceTrace.ts";

// A request due at `due` that waited q for a connection, t to reach the server, s in it, b to come back.
const row = (kind: string, due: number, q: number, t: number, s: number, b: number): TraceRow => ({
  kind,
  due,
  write: due + q,
  req: due + q + t,
  fin: due + q + t + s,
  done: due + q + t + s + b,
});

describe("paceTrace's segments", () => {
  it("cuts each request into queue, toServer, server and back, which add up to its total", () => {
    const r = row("mastery", 1000, 2, 3, 5, 7);
    expect([
      segmentOf(r, "queue"),
      segmentOf(r, "toServer"),
      segmentOf(r, "server"),
      segmentOf(r, "back"),
    ]).toEqual([2, 3, 5, 7]);
    expect(segmentOf(r, "total")).toBe(17);
  });

  it("gives nearest-rank quantiles over all kinds and per kind", () => {
    // 100 GETs with server time 1..100 ms, 10 POSTs with 200 ms.
    const rows = [
      ...Array.from({ length: 100 }, (_, i) => row("mastery", i, 0, 0, i + 1, 0)),
      ...Array.from({ length: 10 }, (_, i) => row("events", i, 0, 0, 200, 0)),
    ];
    const t = segmentTable(rows);
    expect(t.get("mastery")?.server).toEqual({ n: 100, p50: 51, p90: 91, p99: 100, max: 100 });
    expect(t.get("events")?.server.p50).toBe(200);
    // All 110: index floor(0.5 * 110) = 55 -> 56; floor(0.9 * 110) = 99 -> 100; floor(0.99 * 110) = 108 -> 200.
    expect(t.get("all")?.server).toEqual({ n: 110, p50: 56, p90: 100, p99: 200, max: 200 });
    expect(quantiles([]).p99).toBeNaN();
  });
});

describe("paceTrace's tail", () => {
  it("finds the p99 tail, its mean segments and how few 100 ms windows hold it", () => {
    // 1,000 requests 1 ms apart, 1 ms each; 10 slow ones: 8 due in [300, 400) waiting 50 ms for a
    // connection, 2 due in [700, 800) taking 40 ms in the server.
    const rows: TraceRow[] = [];
    for (let i = 0; i < 1000; i++) {
      if (i >= 300 && i < 308) rows.push(row("mastery", i, 50, 1, 1, 1));
      else if (i === 700 || i === 750) rows.push(row("events", i, 0, 1, 40, 1));
      else rows.push(row("mastery", i, 0, 0.25, 0.5, 0.25));
    }
    const t = tailClusters(rows, 0.99, 100, 3);
    expect(t.threshold).toBe(42); // the POSTs: 1 + 40 + 1
    expect(t.n).toBe(10);
    expect(t.mean.queue).toBeCloseTo(40, 10); // (8 x 50 + 2 x 0) / 10
    expect(t.mean.server).toBeCloseTo(8.8, 10); // (8 x 1 + 2 x 40) / 10
    expect(t.windows).toBe(2);
    expect(t.runWindows).toBe(10);
    expect(t.windowsForHalf).toBe(1);
    expect(t.windowsFor80).toBe(1);
    expect(t.top.map((w) => [w.start, w.n])).toEqual([
      [300, 8],
      [700, 2],
    ]);
    expect(t.top[0]?.mean.total).toBe(53);
  });

  it("measures what happened in a stretch: pauses, lag, CPU share and requests in flight", () => {
    const gc = [
      { start: 90, duration: 20 },
      { start: 150, duration: 5 },
      { start: 300, duration: 50 },
    ];
    // [100, 200): 10 ms of the first pause, all 5 of the second; the longest pause touching it 20.
    expect(pausesIn(gc, 100, 200)).toEqual({ ms: 15, max: 20, n: 2 });
    const lag = [
      { t: 50, v: 30 },
      { t: 120, v: 4 },
      { t: 180, v: 9 },
    ];
    expect(maxIn(lag, 100, 200)).toBe(9);
    // Cumulative CPU-ms every 50 ms: 25 ms of CPU between t=100 and t=200 is a quarter of one core.
    const cpu = [0, 50, 100, 150, 200, 250].map((t) => ({
      t,
      v: t < 100 ? 0 : t <= 200 ? (t - 100) / 4 : 25,
    }));
    expect(cpuShare(cpu, 100, 200)).toBeCloseTo(0.25, 10);
    expect(cpuShare(cpu, 100, 300)).toBeNaN();
    const posts = [
      row("events", 0, 0, 100, 50, 0),
      row("events", 0, 0, 120, 50, 0),
      row("events", 0, 0, 160, 10, 0),
      row("events", 0, 0, 150, 10, 0),
    ];
    // In flight at the server: [100, 150), [120, 170), [160, 170), [150, 160): at most 2 at once (one that
    // ends as another starts is not counted with it).
    expect(maxInFlight(posts, "events", 0, 1000)).toBe(2);
    expect(maxInFlight(posts, "mastery", 0, 1000)).toBe(0);
  });
});
