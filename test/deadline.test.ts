import { describe, expect, it } from "vitest";
import { deadlineScale, MAX_DEADLINE_SCALE, scaledTimeout } from "./deadline.ts";

describe("deadlineScale", () => {
  it("is 1 on a quiet machine, the run queue per core when busy, capped", () => {
    expect(deadlineScale(0.5, 2)).toBe(1);
    expect(deadlineScale(2, 2)).toBe(1);
    expect(deadlineScale(9, 2)).toBe(4.5);
    expect(deadlineScale(22, 2)).toBe(MAX_DEADLINE_SCALE);
    expect(deadlineScale(3, 0)).toBe(3);
  });
  it("never shortens a deadline", () => {
    expect(scaledTimeout(1000)).toBeGreaterThanOrEqual(1000);
    expect(scaledTimeout(1000)).toBeLessThanOrEqual(1000 * MAX_DEADLINE_SCALE);
  });
});
