import type { BktOptions } from "./bkt.ts";

/**
 * BKT options for serving a mastery estimate (issue 16, item 4), as opposed to the unbounded pyBKT-comparable
 * fit (DEFAULT_BKT_OPTIONS) used for next-response benchmarks.
 *
 * Why: with forget fixed at 0 and nothing bounding learn, a long correct streak drives P(learned) to 1 - 1e-6
 * and no amount of time lowers it; on generated data 45% of such scores were above 0.95 while the true mean
 * mastery is about 0.5. The bounds keep each fit in the plausible region of the BKT literature:
 * - forgets: true with forget >= 0.02 (min): the L->U transition caps P(learned) after any step at 0.98, so a
 *   streak alone cannot saturate the score, and time (attempts) without practice erodes it;
 * - guess <= 0.3 and slip <= 0.3 (Baker, Corbett & Aleven 2008, "model degeneracy": guess or slip above 0.5
 *   makes a correct answer evidence of NOT knowing; 0.3 is the usual plausibility cut);
 * - learn <= 0.4 (pyBKT's own initialisation range): one attempt cannot make a student learned;
 * - every probability >= 0.02 so the topic prior cannot collapse to 0.004 for rarely-seen topics.
 * Effect on next-response AUC and on validity against the latent truth: docs/benchmarks.md, "Validity".
 */
export const MASTERY_BKT_OPTIONS: Readonly<Pick<BktOptions, "forgets" | "bounds">> = Object.freeze({
  forgets: true,
  bounds: Object.freeze({ min: 0.02, maxGuess: 0.3, maxSlip: 0.3, maxLearn: 0.4, maxForget: 0.3 }),
});
