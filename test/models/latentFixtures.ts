import type { LatentParams } from "../../models/latentFilter.ts";

/** Latent filter parameters of a plausible fitted model, shared by the filter, state and stream tests. */
export const LATENT_TEST_PARAMS: LatentParams = {
  priorMean: 0.35,
  priorConcentration: 4,
  guess: 0.2,
  slip: 0.1,
  learn: [0.05, 0.1, 0.08, 0.04, 0.02],
  halfLifeDays: 20,
  floor: 0.1,
  noise: 0.02,
  assignmentConcentration: 8,
};
