import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { DeferredAlertChecks } from "../../serving/deferredAlertChecks.ts";
import type { UpdatedKey } from "../../serving/updater.ts";

const key = (s: number, t: number): UpdatedKey => ({ studentKey: `s${s}`, topicId: `T${t}` });
const id = (k: UpdatedKey) => `${k.studentKey}/${k.topicId}`;
const tick = () => new Promise<void>((r) => setImmediate(r));

describe("DeferredAlertChecks", () => {
  it("a burst of enqueues is checked once per key, after the burst, one check at a time", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.array(fc.tuple(fc.nat(5), fc.nat(3)), { maxLength: 8 }), { minLength: 1, maxLength: 10 }),
        fc.integer({ min: 1, max: 6 }),
        async (bursts, maxKeys) => {
          const checked: string[][] = [];
          let inFlight = 0;
          let maxInFlight = 0;
          const q = new DeferredAlertChecks({
            maxKeys,
            check: async (keys) => {
              inFlight++;
              maxInFlight = Math.max(maxInFlight, inFlight);
              await tick();
              checked.push(keys.map(id));
              inFlight--;
            },
          });
          for (const b of bursts) q.enqueue(b.map(([s, t]) => key(s, t)));
          // Nothing runs inside the caller's turn (the answer is written first).
          expect(checked).toEqual([]);
          await q.drain();
          const want = new Set(bursts.flat().map(([s, t]) => `s${s}/T${t}`));
          const got = checked.flat();
          expect(got.length).toBe(want.size); // each key once
          expect(new Set(got)).toEqual(want);
          for (const c of checked) expect(c.length).toBeLessThanOrEqual(maxKeys);
          expect(maxInFlight).toBeLessThanOrEqual(1);
          expect(q.pending).toBe(0);
        },
      ),
      { numRuns: 100 },
    );
  });

  it("keys queued while a check runs go into the next check", async () => {
    const checked: string[][] = [];
    let release = () => {};
    const q = new DeferredAlertChecks({
      check: async (keys) => {
        checked.push(keys.map(id));
        if (checked.length === 1) await new Promise<void>((r) => (release = r));
      },
    });
    q.enqueue([key(1, 1), key(2, 1)]);
    await tick();
    expect(checked).toEqual([["s1/T1", "s2/T1"]]);
    q.enqueue([key(1, 1), key(3, 1)]);
    q.enqueue([key(3, 1)]);
    release();
    await q.drain();
    // s1/T1 again: its score may have moved since the first check read it.
    expect(checked).toEqual([
      ["s1/T1", "s2/T1"],
      ["s1/T1", "s3/T1"],
    ]);
  });

  it("a failed check is retried with doubling backoff up to its cap until it succeeds; each key once then", async () => {
    const delays: number[] = [];
    let fails = 3;
    const checked: string[][] = [];
    const q = new DeferredAlertChecks({
      minBackoffMs: 20,
      maxBackoffMs: 50,
      check: async (keys) => {
        if (fails-- > 0) throw new Error("store down");
        checked.push(keys.map(id));
      },
      onError: (_err, pending, retryInMs) => delays.push(pending * 1000 + retryInMs),
    });
    q.enqueue([key(1, 1)]);
    await tick();
    q.enqueue([key(1, 1), key(2, 2)]); // during the backoff: joins the retry
    const t0 = performance.now();
    while (checked.length === 0) await new Promise((r) => setTimeout(r, 5));
    // 20 + 40 + 50 (capped) ms of backoff before the 4th attempt.
    expect(performance.now() - t0).toBeGreaterThanOrEqual(100);
    expect(delays).toEqual([1020, 2040, 2050]);
    expect(checked).toEqual([["s1/T1", "s2/T2"]]);
    expect(q.stats).toEqual({ checks: 4, keys: 2, failures: 3 });
  });

  it("drain runs a waiting retry at once, and returns after one failed attempt with the keys kept", async () => {
    let up = false;
    const checked: string[][] = [];
    const q = new DeferredAlertChecks({
      minBackoffMs: 60_000,
      maxBackoffMs: 60_000,
      check: async (keys) => {
        if (!up) throw new Error("store down");
        checked.push(keys.map(id));
      },
    });
    q.enqueue([key(1, 1)]);
    await tick();
    await tick();
    expect(q.stats.failures).toBe(1);
    await q.drain(); // fails again, does not wait 60 s
    expect(q.stats.failures).toBe(2);
    expect(q.pending).toBe(1);
    up = true;
    await q.drain();
    expect(checked).toEqual([["s1/T1"]]);
    expect(q.pending).toBe(0);
  });

  it("background keys are checked in small paced checks, only while no answered request's keys wait", async () => {
    const checked: { at: number; keys: string[] }[] = [];
    let release = () => {};
    const q = new DeferredAlertChecks({
      backgroundMaxKeys: 2,
      backgroundPauseMs: 30,
      check: async (keys) => {
        checked.push({ at: performance.now(), keys: keys.map(id) });
        if (checked.length === 1) await new Promise<void>((r) => (release = r));
      },
    });
    q.enqueueBackground([key(1, 1), key(2, 1), key(3, 1), key(4, 1), key(5, 1)]);
    expect(q.pending).toBe(5);
    while (checked.length === 0) await new Promise((r) => setTimeout(r, 2));
    expect(checked[0]?.keys).toEqual(["s1/T1", "s2/T1"]);
    // A request's keys arrive while a background check runs: they go first once it ends, whole,
    // and a background key queued live (s4/T1) leaves the background lane.
    q.enqueue([key(9, 9), key(4, 1)]);
    release();
    while (checked.length < 3) await new Promise((r) => setTimeout(r, 2));
    expect(checked.map((c) => c.keys)).toEqual([
      ["s1/T1", "s2/T1"],
      ["s9/T9", "s4/T1"],
      ["s3/T1", "s5/T1"],
    ]);
    // The live check ran as soon as the background one ended; the next background one waited its pause
    // (timers may fire a millisecond early).
    expect(checked[2]!.at - checked[1]!.at).toBeGreaterThanOrEqual(28);
    await new Promise((r) => setTimeout(r, 80));
    expect(checked.length).toBe(3);
    expect(q.pending).toBe(0);
  });

  it("drain checks both lanes at once, without the background pause", async () => {
    const checked: string[][] = [];
    const q = new DeferredAlertChecks({
      backgroundMaxKeys: 1,
      backgroundPauseMs: 60_000,
      check: async (keys) => void checked.push(keys.map(id)),
    });
    q.enqueueBackground([key(1, 1), key(2, 1), key(3, 1)]);
    q.enqueue([key(7, 7)]);
    await q.drain();
    expect(checked).toEqual([["s7/T7"], ["s1/T1"], ["s2/T1"], ["s3/T1"]]);
    expect(q.pending).toBe(0);
  });

  it("rejects backoff bounds that cannot work, saying which", () => {
    expect(() => new DeferredAlertChecks({ check: async () => {}, minBackoffMs: 0 })).toThrow(
      /0 < minBackoffMs <= maxBackoffMs \(got 0, 30000\)/,
    );
    expect(() => new DeferredAlertChecks({ check: async () => {}, maxKeys: 0 })).toThrow(/maxKeys/);
    expect(() => new DeferredAlertChecks({ check: async () => {}, backgroundMaxKeys: 0 })).toThrow(
      /backgroundMaxKeys >= 1 .*got 0, undefined/,
    );
  });
});
