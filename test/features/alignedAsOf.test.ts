import { describe, expect, it } from "vitest";
import { alignedAsOf } from "../../features/incrementalFeatures.ts";

const T0 = new Date("2026-10-01T00:00:01Z");
const since = { asOf: T0, ingestedThroughUs: null };
const at = (iso: string) => new Date(iso);

describe("alignedAsOf (the daily grid of incremental runs)", () => {
  it("steps whole days from the previous as-of to the first one at or after the newest event + 1 s", () => {
    expect(alignedAsOf(since, at("2026-10-01T23:29:26Z")).toISOString()).toBe("2026-10-02T00:00:01.000Z");
    expect(alignedAsOf(since, at("2026-10-02T00:00:01Z")).toISOString()).toBe("2026-10-02T00:00:01.000Z");
    expect(alignedAsOf(since, at("2026-10-02T00:00:02Z")).toISOString()).toBe("2026-10-03T00:00:01.000Z");
    expect(alignedAsOf(since, T0).toISOString()).toBe(T0.toISOString());
  });
  it("keeps the newest time without a previous run or when time went back", () => {
    const newest = at("2026-10-05T07:00:00Z");
    expect(alignedAsOf(null, newest)).toBe(newest);
    const before = at("2026-09-30T00:00:00Z");
    expect(alignedAsOf(since, before)).toBe(before);
  });
});
