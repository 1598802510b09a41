/**
 * Round 30: the latent filter's converged global fit (`globalFit: "converged"`, models/latentFilter.ts with
 * models/quasiNewton.ts) ends at a stationary point of its objective: on a small log simulated from the model, no
 * step of one global coordinate (either way, two sizes) lowers the mean negative log-likelihood per graded
 * observation by more than a tolerance, where the budgeted Nelder-Mead's result (the default) leaves such a step.
 */
import { describe, expect, it } from "vitest";
import { LatentFilter, type LatentFitOptions, latentGlobalObjective } from "../../models/latentFilter.ts";
import { LATENT_TEST_PARAMS, simulateLatent } from "./latentFixtures.ts";

const seqs = simulateLatent({ ...LATENT_TEST_PARAMS, halfLifeDays: 8 }, 260, 31);
const BASE: LatentFitOptions = { bins: 16, maxEvaluations: 300 };
// Nats over the whole sample that one coordinate step may still gain at a stationary point.
const TOLERANCE_NATS = 0.01;

/** The largest gain (nats) of a single-coordinate step of size 0.03 or 0.003 either way from the fitted point. */
function bestCoordinateGain(model: LatentFilter): number {
  const obj = latentGlobalObjective(seqs, BASE);
  const x = obj.vector(model.json.params);
  const at = obj.nll(x);
  let best = 0;
  for (let i = 0; i < x.length; i++)
    for (const d of [0.03, -0.03, 0.003, -0.003]) {
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
});
