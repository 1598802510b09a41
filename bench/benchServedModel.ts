import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { LatentModelJson } from "../models/latentFilter.ts";
import { latentOnlyServedJson, type ServedMasteryJson } from "../models/servedMastery.ts";
import { LATENT_TEST_PARAMS } from "../test/models/latentFixtures.ts";

/**
 * Writes a served model whose score is the latent filter (`mastery train served --latent on` form) to
 * `dir`/model.json and returns `dir`: hand-set parameters (LATENT_TEST_PARAMS), since the stream's cost
 * does not depend on their values. `studentEffect`: the student prior's sd and the topics it covers.
 */
export function benchServedModel(
  dir: string,
  studentEffect?: { priorSd: number; topics: readonly string[] },
): string {
  const latent: LatentModelJson = {
    version: 1,
    bins: 40,
    params: LATENT_TEST_PARAMS,
    // With a student effect, the topics it covers (LatentFilter.studentTopic).
    topicPriorMean:
      studentEffect === undefined ? {} : Object.fromEntries(studentEffect.topics.map((t) => [t, 0.35])),
    fit: { logLikPerObs: 0, observations: 0, sequences: 0, evaluations: 0 },
    intervalScale: 1.2,
    ...(studentEffect === undefined ? {} : { studentPriorSd: studentEffect.priorSd }),
  };
  const json: ServedMasteryJson = latentOnlyServedJson(latent);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "model.json"), JSON.stringify(json));
  return dir;
}
