/**
 * RowIdRunMemory (storage/rowIdRanges.ts): how GET /mastery's miss on the embedded file chooses its read from what
 * earlier reads found. Known answers for each rule, and a fast-check property against a plain reference model
 * (a list of the remembered students and the weighted share written out).
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { type RowIdRange, RowIdRunMemory } from "../../storage/rowIdRanges.ts";

const ONE_RUN: RowIdRange[] = [[0, 399]];

describe("RowIdRunMemory: the miss read's plan", () => {
  it("a student not seen yet is probed on a fresh memory (a batch-written file is in student order)", () => {
    const m = new RowIdRunMemory();
    expect(m.plan("a")).toEqual({ kind: "probe" });
    expect(m.recentShare).toBe(1);
  });

  it("a student read before: its runs (one statement that checks itself), or the index when none paid", () => {
    const m = new RowIdRunMemory();
    m.learn("a", ONE_RUN);
    m.learn("b", null);
    expect(m.plan("a")).toEqual({ kind: "ranges", runs: ONE_RUN });
    expect(m.plan("b")).toEqual({ kind: "index" });
    // The last read wins: the batch rewrote the base in student order, or a fold spread the rows.
    m.learn("b", [
      [10, 20],
      [5000, 5100],
    ]);
    m.learn("a", null);
    expect(m.plan("b")).toEqual({
      kind: "ranges",
      runs: [
        [10, 20],
        [5000, 5100],
      ],
    });
    expect(m.plan("a")).toEqual({ kind: "index" });
  });

  it("a spread base: after enough reads without runs that pay, a new student goes straight to the index", () => {
    // Weight 1/4 a read, threshold 1/16: 0.75^9 = 0.075 still probes, 0.75^10 = 0.056 does not.
    const m = new RowIdRunMemory({ rate: 0.25, minShare: 1 / 16 });
    for (let i = 0; i < 9; i++) m.learn(`s${i}`, null);
    expect(m.recentShare).toBeCloseTo(0.75 ** 9, 12);
    expect(m.plan("new")).toEqual({ kind: "probe" });
    m.learn("s9", null);
    expect(m.recentShare).toBeCloseTo(0.75 ** 10, 12);
    expect(m.plan("new")).toEqual({ kind: "index" });
    // One read that finds runs (the base was rewritten in student order) brings the probe back at once.
    m.learn("s10", ONE_RUN);
    expect(m.recentShare).toBeCloseTo(0.75 ** 11 + 0.25, 12);
    expect(m.plan("new")).toEqual({ kind: "probe" });
  });

  it("keeps at most `capacity` students, the least recently read dropped first", () => {
    const m = new RowIdRunMemory({ capacity: 3 });
    m.learn("a", ONE_RUN);
    m.learn("b", null);
    m.learn("c", ONE_RUN);
    m.learn("a", ONE_RUN); // a read again: now the most recent
    m.learn("d", null); // drops b
    expect(m.size).toBe(3);
    expect(m.plan("b")).toEqual({ kind: "probe" });
    expect(m.plan("a").kind).toBe("ranges");
    expect(m.plan("c").kind).toBe("ranges");
    expect(m.plan("d").kind).toBe("index");
    const none = new RowIdRunMemory({ capacity: 0 });
    none.learn("a", ONE_RUN);
    expect(none.size).toBe(0);
    expect(none.plan("a")).toEqual({ kind: "probe" });
  });

  it("refuses a capacity or a rate it cannot use", () => {
    expect(() => new RowIdRunMemory({ capacity: -1 })).toThrow(/capacity/);
    expect(() => new RowIdRunMemory({ capacity: 1.5 })).toThrow(/capacity/);
    expect(() => new RowIdRunMemory({ rate: 0 })).toThrow(/rate/);
    expect(() => new RowIdRunMemory({ rate: 1.5 })).toThrow(/rate/);
  });

  it("property: plans match a reference model over any sequence of reads", () => {
    const read = fc.record({
      student: fc.integer({ min: 0, max: 7 }),
      pays: fc.boolean(),
      lo: fc.integer({ min: 0, max: 1e6 }),
    });
    fc.assert(
      fc.property(
        fc.array(read, { maxLength: 80 }),
        fc.integer({ min: 0, max: 5 }),
        fc.double({ min: 0.01, max: 1, noNaN: true }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        (reads, capacity, rate, minShare) => {
          const m = new RowIdRunMemory({ capacity, rate, minShare });
          // Reference: students in order of their last read (oldest first), and the share as a product.
          let order: { key: string; runs: RowIdRange[] | null }[] = [];
          let share = 1;
          for (const r of reads) {
            const key = `s${r.student}`;
            const runs: RowIdRange[] | null = r.pays ? [[r.lo, r.lo + 400]] : null;
            m.learn(key, runs);
            share = (1 - rate) * share + rate * (r.pays ? 1 : 0);
            order = order.filter((x) => x.key !== key);
            if (capacity > 0) {
              if (order.length >= capacity) order.shift();
              order.push({ key, runs });
            }
            expect(m.recentShare).toBeCloseTo(share, 9);
            expect(m.size).toBe(order.length);
            for (let s = 0; s < 8; s++) {
              const k = `s${s}`;
              const held = order.find((x) => x.key === k);
              const want =
                held === undefined
                  ? { kind: m.recentShare >= minShare ? "probe" : "index" }
                  : held.runs === null
                    ? { kind: "index" }
                    : { kind: "ranges", runs: held.runs };
              expect(m.plan(k)).toEqual(want);
            }
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});
