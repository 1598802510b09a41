import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { RULE_STATE_COLUMNS } from "../../models/ruleScorer.ts";
import {
  RULE_BLOCK_ROWS,
  RULE_MIN_BLOCK_ROWS,
  RULE_ROW_BYTES,
  ruleBlockRows,
} from "../../serving/ruleScoring.ts";

describe("ruleBlockRows", () => {
  it("sizes the two block buffers to 1/8 of DuckDB's memory limit", () => {
    // rid + the state's 14 columns, 8 bytes each.
    expect(RULE_STATE_COLUMNS.length).toBe(14);
    expect(RULE_ROW_BYTES).toBe(120);
    // 800 MB: 800e6 / 8 / (2 x 120) = 416,666.7 -> 416,666 rows (2 x 50.0 MB of buffers).
    expect(ruleBlockRows(800e6)).toBe(416_666);
    // DuckDB prints "2.4 GiB": 2,576,980,378 / 8 / 240 = 1,342,177.3 -> 1,342,177.
    expect(ruleBlockRows(2_576_980_378)).toBe(1_342_177);
    // From ~3.6 GiB up the cap: 2M rows (2 x 240 MB).
    expect(ruleBlockRows(8 * 2 ** 30)).toBe(RULE_BLOCK_ROWS);
    expect(ruleBlockRows(Number.POSITIVE_INFINITY)).toBe(RULE_BLOCK_ROWS);
    // A tiny limit still reads blocks of the minimum.
    expect(ruleBlockRows(0)).toBe(RULE_MIN_BLOCK_ROWS);
    expect(ruleBlockRows(1e6)).toBe(RULE_MIN_BLOCK_ROWS);
  });

  it("stays within [min, max], never lowers with a larger limit, and fits 1/8 of the limit above the minimum", () => {
    fc.assert(
      fc.property(
        fc.double({ min: 0, max: 2 ** 45, noNaN: true }),
        fc.double({ min: 0, max: 2 ** 45, noNaN: true }),
        (a, b) => {
          const [lo, hi] = a <= b ? [a, b] : [b, a];
          const rows = ruleBlockRows(lo);
          expect(Number.isInteger(rows)).toBe(true);
          expect(rows).toBeGreaterThanOrEqual(RULE_MIN_BLOCK_ROWS);
          expect(rows).toBeLessThanOrEqual(RULE_BLOCK_ROWS);
          expect(ruleBlockRows(hi)).toBeGreaterThanOrEqual(rows);
          if (rows > RULE_MIN_BLOCK_ROWS) expect(2 * rows * RULE_ROW_BYTES).toBeLessThanOrEqual(lo / 8);
        },
      ),
    );
  });
});
