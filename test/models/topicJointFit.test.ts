import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { jointTopicMin } from "../../models/latentFilter.ts";

describe("jointTopicMin: damped Newton on a 2-D objective (round 27)", () => {
  it("finds the minimum of a narrow rotated quadratic (correlation 0.98) that coordinate searches crawl along", () => {
    // f = q(o - 0.7, d + 0.12) with Hessian [[1, 0.98 s], [0.98 s, s^2]], s = 10: the ridge of the fixture's scales.
    const s = 10;
    const f = (o: number, d: number): number => {
      const a = o - 0.7;
      const b = d + 0.12;
      return 0.5 * (a * a + 2 * 0.98 * s * a * b + s * s * b * b) + 3;
    };
    const r = jointTopicMin(
      f,
      { o: 0, d: 0 },
      { lo: [-3, -0.5], hi: [3, 0.5] },
      {
        h: [0.05, 0.01],
        tolerance: 1e-4,
        maxEvaluations: 150,
      },
    );
    expect(r.o).toBeCloseTo(0.7, 6);
    expect(r.d).toBeCloseTo(-0.12, 6);
    expect(r.value).toBeCloseTo(3, 10);
    // Newton is exact on a quadratic (central differences are too): one step there, then the next finds nothing
    // lower (or predicts less than the tolerance).
    expect(r.steps).toBeLessThanOrEqual(2);
    expect(r.evaluations).toBeLessThanOrEqual(2 * 9 + 10);
    expect(["converged", "no-descent"]).toContain(r.stop);
  });

  it("follows a curved (banana) valley to its minimum at (1, 1), and stops on the box where the minimum is outside", () => {
    const banana = (o: number, d: number): number => (1 - o) ** 2 + 20 * (d - o * o) ** 2;
    const r = jointTopicMin(
      banana,
      { o: -1, d: 0.5 },
      { lo: [-3, -3], hi: [3, 3] },
      {
        h: [1e-3, 1e-3],
        tolerance: 1e-12,
        maxEvaluations: 2_000,
      },
    );
    expect(r.o).toBeCloseTo(1, 3);
    expect(r.d).toBeCloseTo(1, 3);
    expect(r.value).toBeLessThan(1e-7);
    const boxed = jointTopicMin(
      banana,
      { o: 0, d: 0 },
      { lo: [-3, -0.5], hi: [3, 0.5] },
      {
        h: [1e-3, 1e-3],
        tolerance: 1e-12,
        maxEvaluations: 2_000,
      },
    );
    expect(boxed.d).toBeLessThanOrEqual(0.5);
    expect(boxed.d).toBeGreaterThan(0.49);
    // On the edge d = 0.5 the minimum of (1 - o)^2 + 20 (0.5 - o^2)^2 is near o = 0.72.
    expect(boxed.o).toBeGreaterThan(0.7);
    expect(boxed.o).toBeLessThan(0.75);
  });

  it("property: never worse than its start, never more runs than the budget", () => {
    fc.assert(
      fc.property(
        fc.double({ min: -2, max: 2, noNaN: true }),
        fc.double({ min: -0.4, max: 0.4, noNaN: true }),
        fc.double({ min: -0.99, max: 0.99, noNaN: true }),
        fc.integer({ min: 12, max: 60 }),
        (co, cd, rho, budget) => {
          const f = (o: number, d: number): number =>
            Math.log1p(
              (o - co) ** 2 + 2 * rho * 10 * (o - co) * (d - cd) + 100 * (d - cd) ** 2 + (o * d) ** 4,
            );
          const r = jointTopicMin(
            f,
            { o: 0, d: 0 },
            { lo: [-3, -0.5], hi: [3, 0.5] },
            {
              h: [0.05, 0.01],
              tolerance: 1e-6,
              maxEvaluations: budget,
            },
          );
          expect(r.value).toBeLessThanOrEqual(f(0, 0));
          expect(r.value).toBe(f(r.o, r.d));
          expect(r.evaluations).toBeLessThanOrEqual(budget);
        },
      ),
      { numRuns: 40 },
    );
  });
});
