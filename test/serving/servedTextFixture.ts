/**
 * A stored 'served' explanation in serving/servedScoring.ts's shape, with a decay or without: the row text the
 * history JSON tests and bench/historyDigest.ts write into history tables.
 */
export const servedText = (score: number, decay: boolean): string =>
  JSON.stringify({
    base: 0.3,
    factors: [{ name: "recent_accuracy", value: 0.8, contribution: score - 0.3 }],
    rest: 0,
    score,
    interval: { lo: score * 0.8, hi: Math.min(1, score * 1.2), level: 0.8 },
    evidence: { kind: "measured", attempts: 4, daysSinceLast: 2.5 },
    pCorrect: 0.5 + score / 3,
    ...(decay ? { decay: { halfLifeDays: 9, floor: 0.2, pFloor: 0.35 } } : {}),
  });
