import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  bktEloWriteKeys,
  WRITE_BYTES_PER_KEY,
  WRITE_KEYS_MAX,
  WRITE_KEYS_MIN,
} from "../../serving/learnerState.ts";

describe("serving/learnerState bktEloWriteKeys (keys written per transaction)", () => {
  it("known answers: one key per 2 KB of the limit, within [16,384, 4,194,304]", () => {
    expect(WRITE_BYTES_PER_KEY).toBe(2048);
    // MEMORY_LIMIT=5GB as DuckDB reports it (4.6 GiB): 2,411,724 keys, so 11.1M keys (100M events) in 5 transactions.
    expect(bktEloWriteKeys(4.6 * 1024 ** 3)).toBe(2_411_724);
    // 500MB (476.8 MiB): 244,121 keys, 5 blocks at 10M events.
    expect(bktEloWriteKeys(476.8 * 1024 * 1024)).toBe(244_121);
    expect(bktEloWriteKeys(60e6)).toBe(29_296);
    expect(bktEloWriteKeys(1024)).toBe(WRITE_KEYS_MIN);
    expect(bktEloWriteKeys(64 * 1024 ** 3)).toBe(WRITE_KEYS_MAX);
  });

  it("property: within the bounds and monotone in the limit", () => {
    fc.assert(
      fc.property(
        fc.double({ min: 1, max: 1e13, noNaN: true }),
        fc.double({ min: 1, max: 1e13, noNaN: true }),
        (a, b) => {
          const [lo, hi] = a <= b ? [a, b] : [b, a];
          const k = bktEloWriteKeys(lo);
          expect(k).toBeGreaterThanOrEqual(WRITE_KEYS_MIN);
          expect(k).toBeLessThanOrEqual(WRITE_KEYS_MAX);
          expect(Number.isInteger(k)).toBe(true);
          expect(bktEloWriteKeys(hi)).toBeGreaterThanOrEqual(k);
        },
      ),
    );
  });

  it("a limit that is not a positive number of bytes is an error naming it", () => {
    expect(() => bktEloWriteKeys(0)).toThrow(/positive number of bytes, got 0/);
    expect(() => bktEloWriteKeys(Number.NaN)).toThrow(/got NaN/);
  });
});
