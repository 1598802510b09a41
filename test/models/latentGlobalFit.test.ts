/**
 * Round 30: the latent filter's converged global fit (`globalFit: "converged"`, models/latentFilter.ts with
 * models/quasiNewton.ts) ends at a stationary point of its objective: on a small log simulated from the model, no
 * step of one global coordinate (either way, two sizes) lowers the mean negative log-likelihood per graded
 * observation by more than a tolerance, where the budgeted Nelder-Mead's result (the default) leaves such a step.
 */
import { describe, expect, it } from "vitest";
import {
  LATENT_NOISE_COORDINATE,
  LatentFilter,
  type LatentFitOptions,
  latentGlobalObjective,
  polishGlobalFit,
} from "../../models/latentFilter.ts";
import { LATENT_TEST_PARAMS, simulateLatent } from "./latentFixtures.ts";

const seqs = simulateLatent({ ...LATENT_TEST_PARAMS, halfLifeDays: 8 }, 260, 31);
const BASE: LatentFitOptions = { bins: 16, maxEvaluations: 300 };
// Nats over the whole sample that one coordinate step may still gain at a stationary point.
const TOLERANCE_NATS = 0.01;

/**
 * The largest gain (nats) of a single-coordinate step of size 0.03 or 0.003 either way from the fitted point
 * (the coordinates in `skip` not stepped).
 */
function bestCoordinateGain(model: LatentFilter, skip: readonly number[] = []): number {
  const obj = latentGlobalObjective(seqs, BASE);
  const x = obj.vector(model.json.params);
  const at = obj.nll(x);
  let best = 0;
  for (let i = 0; i < x.length; i++)
    for (const d of [0.03, -0.03, 0.003, -0.003]) {
      if (skip.includes(i)) continue;
      const q = Float64Array.from(x);
      q[i]! += d;
      best = Math.max(best, (at - obj.nll(q)) * obj.observations);
    }
  return best;
}

describe("latent filter: the converged global fit", () => {
  it("reaches a stationary point (no coordinate step gains > 0.01 nats) where the budgeted search does not, and ends no worse", () => {
    const budget = LatentFilter.fit(seqs, BASE);
    const converged = LatentFilter.fit(seqs, { ...BASE, globalFit: "converged" });
    const obj = latentGlobalObjective(seqs, BASE);
    expect(obj.priorSd).toBe(Number.POSITIVE_INFINITY); // plain maximum likelihood: no small-data penalty
    const pol = converged.json.fit.globalPolish;
    expect(pol).toBeDefined();
    expect(budget.json.fit.globalPolish).toBeUndefined();
    expect(pol!.logLikAfter).toBeGreaterThanOrEqual(pol!.logLikBefore);
    // The polish starts where the budgeted fit ends (same Nelder-Mead path) and records its gain.
    expect(pol!.logLikBefore).toBeCloseTo(budget.json.fit.logLikPerObs * obj.observations, 6);
    expect(converged.json.fit.logLikPerObs * obj.observations).toBeCloseTo(pol!.logLikAfter, 6);
    expect(bestCoordinateGain(budget)).toBeGreaterThan(TOLERANCE_NATS);
    expect(bestCoordinateGain(converged)).toBeLessThan(TOLERANCE_NATS);
  });

  it("converged-noise-held (round 31) keeps the budgeted search's noise bit for bit and converges every other coordinate", () => {
    const budget = LatentFilter.fit(seqs, BASE);
    const held = LatentFilter.fit(seqs, { ...BASE, globalFit: "converged-noise-held" });
    const pol = held.json.fit.globalPolish;
    expect(pol?.held).toEqual(["noise"]);
    expect(held.json.params.noise).toBe(budget.json.params.noise);
    expect(held.json.params.halfLifeDays).not.toBe(budget.json.params.halfLifeDays);
    expect(pol!.logLikAfter).toBeGreaterThan(pol!.logLikBefore);
    expect(bestCoordinateGain(budget, [LATENT_NOISE_COORDINATE])).toBeGreaterThan(TOLERANCE_NATS);
    expect(bestCoordinateGain(held, [LATENT_NOISE_COORDINATE])).toBeLessThan(TOLERANCE_NATS);
  });
});

describe("polishGlobalFit: held coordinates", () => {
  it("minimises over the free coordinates only: a coupled quadratic's conditional minimum, the held value kept", () => {
    // f = (x0 - 1)^2 + 2 (x1 - x2)^2 + (x2 - 3)^2 with x2 held at 0.5: the minimum over (x0, x1) is (1, 0.5), f
    // = 6.25; unheld the minimum is (1, 3, 3), f = 0.
    const f = (x: Float64Array): number => (x[0]! - 1) ** 2 + 2 * (x[1]! - x[2]!) ** 2 + (x[2]! - 3) ** 2;
    const start = Float64Array.from([0, 0, 0.5]);
    const held = polishGlobalFit(f, start, 1, [2]);
    expect(held.x[2]).toBe(0.5);
    expect(held.x[0]).toBeCloseTo(1, 4);
    expect(held.x[1]).toBeCloseTo(0.5, 4);
    expect(held.f).toBeCloseTo(6.25, 6);
    expect(held.record.held).toEqual(["guess"]);
    const free = polishGlobalFit(f, start, 1);
    expect(free.x[2]).toBeCloseTo(3, 3);
    expect(free.f).toBeLessThan(1e-6);
    expect(free.record.held).toBeUndefined();
  });
});
