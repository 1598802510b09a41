/**
 * BFGS with central-difference gradients (models/quasiNewton.ts): known minima, the stop reasons, and the error
 * for a start where the objective is not finite.
 */
import { describe, expect, it } from "vitest";
import { QuasiNewtonError, quasiNewton } from "../../models/quasiNewton.ts";

describe("quasiNewton", () => {
  it("finds the minimum (1, 1) of Rosenbrock's function from (-1.2, 1) to 1e-4", () => {
    const rosen = (x: Float64Array) => 100 * (x[1]! - x[0]! ** 2) ** 2 + (1 - x[0]!) ** 2;
    const r = quasiNewton(rosen, [-1.2, 1], { maxEvaluations: 5_000, gradientStep: 1e-6 });
    expect(r.x[0]!).toBeCloseTo(1, 4);
    expect(r.x[1]!).toBeCloseTo(1, 4);
    expect(r.f).toBeLessThan(1e-8);
    expect(r.stop).not.toBe("budget");
  });

  it("minimises an ill-scaled 6-D quadratic (curvatures 1e-2..1e3) to its known centre", () => {
    const centre = [3, -2, 0.5, 10, -7, 1];
    const curv = [1e-2, 1e-1, 1, 10, 100, 1e3];
    const f = (x: Float64Array) => {
      let v = 0;
      for (let i = 0; i < 6; i++) v += 0.5 * curv[i]! * (x[i]! - centre[i]!) ** 2;
      // A coupling term so the axes are not the eigenvectors.
      return v + 0.5 * (x[0]! - centre[0]!) * (x[1]! - centre[1]!) * 0.01;
    };
    const r = quasiNewton(f, [0, 0, 0, 0, 0, 0], { maxEvaluations: 3_000, maxStep: 5 });
    for (let i = 0; i < 6; i++) expect(Math.abs(r.x[i]! - centre[i]!)).toBeLessThan(1e-3);
    expect(r.stop === "gradient" || r.stop === "f-tolerance").toBe(true);
  });

  it("stops at the evaluation budget and never passes it", () => {
    const rosen = (x: Float64Array) => 100 * (x[1]! - x[0]! ** 2) ** 2 + (1 - x[0]!) ** 2;
    let calls = 0;
    const r = quasiNewton(
      (x) => {
        calls++;
        return rosen(x);
      },
      [-1.2, 1],
      { maxEvaluations: 40 },
    );
    expect(r.stop).toBe("budget");
    expect(calls).toBe(r.evaluations);
    expect(r.evaluations).toBeLessThanOrEqual(40);
    expect(r.f).toBeLessThan(rosen(Float64Array.from([-1.2, 1])));
  });

  it("returns the central-difference gradient at its point (a quadratic's analytic gradient, to 1e-6)", () => {
    const f = (x: Float64Array) => 2 * x[0]! ** 2 + 0.5 * x[1]! ** 2 + x[0]! * x[1]!;
    const r = quasiNewton(f, [3, -4], { maxEvaluations: 12 });
    expect(r.stop).toBe("budget");
    expect(r.gradient[0]!).toBeCloseTo(4 * r.x[0]! + r.x[1]!, 6);
    expect(r.gradient[1]!).toBeCloseTo(r.x[1]! + r.x[0]!, 6);
    expect(Math.hypot(r.gradient[0]!, r.gradient[1]!)).toBeGreaterThan(1e-3);
  });

  it("names the fix when the start is not finite", () => {
    expect(() => quasiNewton(() => Number.POSITIVE_INFINITY, [0, 0])).toThrow(QuasiNewtonError);
    expect(() => quasiNewton(() => Number.NaN, [0])).toThrow(/start quasiNewton where f is finite/);
  });
});
