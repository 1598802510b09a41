/** The logistic function 1 / (1 + e^-z), unclamped (models/blend.ts keeps its own, clamped to +-MAX_LOGIT). */
export const sigmoid = (z: number): number => 1 / (1 + Math.exp(-z));
