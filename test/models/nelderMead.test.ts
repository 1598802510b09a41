import { describe, expect, it } from "vitest";
import { nelderMead } from "../../models/nelderMead.ts";

describe("nelderMead", () => {
  it("finds the minimum of a shifted quadratic", () => {
    const res = nelderMead((x) => (x[0]! - 3) ** 2 + 2 * (x[1]! + 1) ** 2 + 5, [0, 0], {
      maxEvaluations: 500,
      fTolerance: 1e-12,
      xTolerance: 1e-8,
    });
    expect(res.x[0]).toBeCloseTo(3, 4);
    expect(res.x[1]).toBeCloseTo(-1, 4);
    expect(res.f).toBeCloseTo(5, 8);
  });

  it("finds the Rosenbrock minimum at (1, 1) from the classic start (-1.2, 1)", () => {
    const res = nelderMead((x) => 100 * (x[1]! - x[0]! ** 2) ** 2 + (1 - x[0]!) ** 2, [-1.2, 1], {
      maxEvaluations: 2000,
      fTolerance: 1e-14,
      xTolerance: 1e-10,
    });
    expect(res.x[0]).toBeCloseTo(1, 3);
    expect(res.x[1]).toBeCloseTo(1, 3);
  });

  it("respects the evaluation budget (up to one shrink step) and treats NaN as worst", () => {
    let calls = 0;
    const res = nelderMead(
      (x) => {
        calls++;
        return x[0]! > 2 ? Number.NaN : (x[0]! - 1) ** 2 + x[1]! ** 2 + x[2]! ** 2;
      },
      [0, 0, 0],
      { maxEvaluations: 30 },
    );
    expect(calls).toBe(res.evaluations);
    expect(res.evaluations).toBeLessThanOrEqual(30 + 3);
    expect(Number.isFinite(res.f)).toBe(true);
  });
});
