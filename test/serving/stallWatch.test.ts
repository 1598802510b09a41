import { describe, expect, it } from "vitest";
import { type Stall, StallWatch } from "../../serving/stallWatch.ts";

describe("StallWatch", () => {
  it("reports a timer that fired late by the threshold or more, with the GC time seen in the stretch", () => {
    const stalls: Stall[] = [];
    const w = new StallWatch({
      thresholdMs: 100,
      intervalMs: 20,
      observeGc: false,
      onStall: (s) => stalls.push(s),
    });
    // The clock starts at 0 in tick's arithmetic: ticks at 20 and 40 are on time, 80 is 20 ms late.
    w.tick(20);
    w.tick(40);
    w.tick(80);
    expect(stalls).toEqual([]);
    // 40 ms of GC, then the next tick 250 ms after the previous one: 230 ms late.
    w.addGc(40);
    w.tick(330);
    expect(stalls.map(({ blockedMs, gcMs }) => ({ blockedMs, gcMs }))).toEqual([
      { blockedMs: 230, gcMs: 40 },
    ]);
    // GC seen before an on-time tick is not carried into the next stall.
    w.addGc(15);
    w.tick(350);
    w.tick(470); // 100 ms late: exactly the threshold
    expect(stalls.map((s) => s.blockedMs)).toEqual([230, 100]);
    expect(stalls[1]?.gcMs).toBe(0);
    expect(w.stats).toEqual({ stalls: 2, blockedMs: 330, worstMs: 230 });
  });

  it("sees a real blocked event loop", async () => {
    const stalls: Stall[] = [];
    const w = new StallWatch({ thresholdMs: 150, intervalMs: 10, onStall: (s) => stalls.push(s) });
    w.start();
    await new Promise((r) => setTimeout(r, 30));
    const until = performance.now() + 300;
    while (performance.now() < until) {
      // busy: nothing else runs
    }
    await new Promise((r) => setTimeout(r, 40));
    w.stop();
    // The busy 300 ms is one stall (a loaded machine may add late timers of its own).
    expect(stalls.length).toBeGreaterThanOrEqual(1);
    expect(Math.max(...stalls.map((s) => s.blockedMs))).toBeGreaterThanOrEqual(250);
  });

  it("rejects settings that cannot work, saying which", () => {
    expect(() => new StallWatch({ intervalMs: 0, onStall: () => {} })).toThrow(/intervalMs > 0 .*got 0, 100/);
  });
});
