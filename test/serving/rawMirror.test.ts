import { afterAll, describe, expect, it } from "vitest";
import { RawMirror } from "../../serving/rawMirror.ts";
import { DuckStore } from "../../storage/duckdb.ts";
import { DuckRawEventStore, type RawEventRow } from "../../storage/rawEventStore.ts";
import { rawEventRow } from "../storage/rawEventRowFixture.ts";

const stores: DuckStore[] = [];
afterAll(() => {
  for (const s of stores) s.close();
});

function row(eventId: string, student: string, topic = "T1"): RawEventRow {
  return rawEventRow(
    {
      event_id: eventId,
      type: "quiz_attempt",
      student_key: student,
      topic_id: topic,
      ts_us: Date.UTC(2026, 1, 1) * 1000,
      ingested_at_us: Date.UTC(2026, 1, 2) * 1000,
    },
    { question_id: "q1", is_correct: true, time_spent_sec: 20 },
  );
}

describe("RawMirror: the after-the-answer copy of raw rows into the server's DuckDB", () => {
  it("copies every queued row once; rows queued during a copy go in the next one; reports the students", async () => {
    const store = await DuckStore.open(":memory:");
    stores.push(store);
    const raw = await DuckRawEventStore.open(store);
    const batches: number[] = [];
    const written: string[][] = [];
    const mirror = new RawMirror({
      write: async (rows) => {
        batches.push(rows.length);
        await raw.record(rows);
      },
      onWritten: (keys) => written.push([...keys].sort()),
    });
    mirror.enqueue([row("e1", "sa"), row("e2", "sa")]);
    // Queued while the first copy runs: one second copy for all three.
    mirror.enqueue([row("e3", "sb")]);
    mirror.enqueue([row("e4", "sc"), row("e1", "sa")]);
    await mirror.idle();
    expect(batches).toEqual([2, 3]);
    expect(written).toEqual([["sa"], ["sa", "sb", "sc"]]);
    const n = await store.all<{ n: number; e: number }>(
      "SELECT count(*)::INTEGER AS n, count(DISTINCT event_id)::INTEGER AS e FROM raw_events",
    );
    expect(n[0]).toEqual({ n: 4, e: 4 });
  });

  it("retries a failed copy with the same rows (nothing lost), and drops the oldest past maxPending", async () => {
    let fail = 2;
    const got: string[] = [];
    const errors: number[] = [];
    const mirror = new RawMirror({
      write: async (rows) => {
        if (fail-- > 0) throw new Error("store down");
        got.push(...rows.map((r) => r.event_id));
      },
      onError: (_e, pending) => errors.push(pending),
      retryMs: 1,
      maxPending: 3,
    });
    mirror.enqueue([row("a", "s"), row("b", "s")]);
    mirror.enqueue([row("c", "s")]);
    await mirror.idle();
    // "c" was queued before the first failure was seen: both retries carry all three rows.
    expect(errors).toEqual([3, 3]);
    expect(got).toEqual(["a", "b", "c"]);
    expect(mirror.dropped).toBe(0);
    const over = new RawMirror({ write: async () => undefined, maxPending: 2 });
    over.enqueue([row("x", "s"), row("y", "s"), row("z", "s")]);
    await over.idle();
    expect(over.dropped).toBe(1);
  });
  it("starts copies at most one per minGapMs under steady writes; a quiet spell's row and idle() go at once", async () => {
    const starts: number[] = [];
    const sizes: number[] = [];
    const mirror = new RawMirror({
      write: async (rows) => {
        starts.push(performance.now());
        sizes.push(rows.length);
      },
      minGapMs: 80,
    });
    const t0 = performance.now();
    mirror.enqueue([row("a", "s")]);
    // The first copy started within enqueue (nothing was copied before).
    expect(sizes).toEqual([1]);
    // Rows arriving during the gap wait for it and are copied together. They are enqueued in separate turns of
    // the event loop but without timers, so a loaded machine cannot stretch their arrival past the 80 ms gap.
    for (let i = 0; i < 5; i++) {
      await Promise.resolve();
      mirror.enqueue([row(`b${i}`, "s")]);
    }
    expect(sizes).toEqual([1]);
    // The second copy waits for the gap; poll for it (a loaded machine may fire the gap's timer late).
    for (let waited = 0; sizes.length < 2 && waited < 5_000; waited += 10)
      await new Promise((r) => setTimeout(r, 10));
    expect(sizes).toEqual([1, 5]);
    expect(starts[1]! - starts[0]!).toBeGreaterThanOrEqual(75);
    expect(starts[0]! - t0).toBeLessThan(20);
    // idle() does not wait out the gap: with a gap of a minute it still resolves at once, every row copied.
    const slow = new RawMirror({ write: async (rows) => void sizes.push(rows.length), minGapMs: 60_000 });
    slow.enqueue([row("c", "s")]);
    slow.enqueue([row("d", "s"), row("e", "s")]);
    const t1 = performance.now();
    await slow.idle();
    expect(performance.now() - t1).toBeLessThan(2_000);
    expect(sizes.slice(2)).toEqual([1, 2]);
    expect(() => new RawMirror({ write: async () => undefined, minGapMs: -1 })).toThrow(
      /minGapMs must be >= 0/,
    );
  });
});
