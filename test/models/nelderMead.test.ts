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

  it("stops on no relative progress before the cap, at the same minimum and on the same path", () => {
    // A 4-d quadratic with minimum 2 at (1, 2, 3, 4): the tolerances (negative) never stop it, so
    // without the stall rule it runs to the cap; with it, it stops once 100 evaluations gain < 1e-9 relative.
    const f = (x: Float64Array): number =>
      2 + (x[0]! - 1) ** 2 + 3 * (x[1]! - 2) ** 2 + (x[2]! - 3) ** 2 + 0.5 * (x[3]! - 4) ** 2;
    const opts = { maxEvaluations: 5000, fTolerance: -1, xTolerance: -1 };
    const capped = nelderMead(f, [0, 0, 0, 0], opts);
    expect(capped.stop).toBe("budget");
    expect(capped.evaluations).toBeGreaterThanOrEqual(5000);
    const stalled = nelderMead(f, [0, 0, 0, 0], { ...opts, stallEvaluations: 100, stallTolerance: 1e-9 });
    expect(stalled.stop).toBe("stall");
    expect(stalled.evaluations).toBeLessThan(2500);
    expect(stalled.f - 2).toBeLessThan(1e-8);
    expect(stalled.f - 2).toBeGreaterThanOrEqual(0);
    for (const [i, want] of [1, 2, 3, 4].entries()) expect(stalled.x[i]).toBeCloseTo(want, 3);
    // Deterministic path: the capped run stopped at the same count is the stalled run.
    const same = nelderMead(f, [0, 0, 0, 0], { ...opts, maxEvaluations: stalled.evaluations });
    expect(same.f).toBe(stalled.f);
  });

  it("does not stop on the stall rule while the best value still falls fast", () => {
    // Rosenbrock's valley: slow but steady progress; a 1e-12 tolerance over 20 evaluations is never met
    // before the minimum, so the run ends on the tolerances at (1, 1).
    const res = nelderMead((x) => 100 * (x[1]! - x[0]! ** 2) ** 2 + (1 - x[0]!) ** 2, [-1.2, 1], {
      maxEvaluations: 4000,
      fTolerance: 1e-14,
      xTolerance: 1e-10,
      stallEvaluations: 200,
      stallTolerance: 1e-15,
    });
    expect(res.stop).not.toBe("budget");
    expect(res.x[0]).toBeCloseTo(1, 3);
    expect(res.x[1]).toBeCloseTo(1, 3);
  });
});
