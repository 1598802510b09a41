/**
 * Proxy labels of the served mastery estimate (issue 16): a pair's performance in the days after the training
 * snapshot over every graded outcome (quiz answers, practice sets, assignment scores), each weighted by the
 * information it carries about the pair's accuracy, in units of one quiz answer.
 *
 * A quiz answer weighs 1. A practice set (its share correct) and an assignment score (0-1) weigh
 * w_k = v / s_k^2, with v = pbar (1 - pbar) the variance of one quiz answer at the mean accuracy pbar and s_k^2
 * the variance of the kind's value around the same pair's quiz accuracy in the window, less that accuracy's
 * own sampling noise: s_k^2 = mean((x - q)^2 - q (1 - q) / (m - 1)) over outcomes whose pair has m >= 2 quiz
 * answers (q their share correct). s_k^2 holds the kind's own noise and its offset from the quiz scale (a
 * practice item easier than the quiz, an assignment averaging neighbouring topics), so a kind that tracks quiz
 * accuracy poorly weighs little. The label is the weighted mean of the outcomes, its weight the sum of weights.
 *
 * Pure math: no I/O.
 */

export interface WindowOutcomes {
  quizN: number;
  quizCorrect: number;
  /** Share correct of each practice set in the window. */
  practice: number[];
  /** Score (0-1) of each assignment covering the topic in the window. */
  assignments: number[];
}

export interface KindWeights {
  practice: number;
  assignment: number;
  /** Outcomes behind each estimate (0: the kind weighs 0). */
  nPractice: number;
  nAssignment: number;
}

/** Upper bound of a kind's weight (quiz-answer equivalents): keeps one outcome from swamping a label. */
export const MAX_KIND_WEIGHT = 10;
/** Fewest comparisons before a kind gets a weight. */
export const MIN_KIND_COMPARISONS = 30;

export function kindWeights(pairs: readonly WindowOutcomes[]): KindWeights {
  let qn = 0;
  let qc = 0;
  for (const p of pairs) {
    qn += p.quizN;
    qc += p.quizCorrect;
  }
  const pbar = qn > 0 ? qc / qn : 0.5;
  const v = Math.max(1e-3, pbar * (1 - pbar));
  const est = (get: (p: WindowOutcomes) => readonly number[]): [number, number] => {
    let s = 0;
    let n = 0;
    for (const p of pairs) {
      if (p.quizN < 2) continue;
      const q = p.quizCorrect / p.quizN;
      const noise = (q * (1 - q)) / (p.quizN - 1);
      for (const x of get(p)) {
        s += (x - q) ** 2 - noise;
        n++;
      }
    }
    if (n < MIN_KIND_COMPARISONS) return [0, n];
    const s2 = s / n;
    return [s2 > 0 ? Math.min(MAX_KIND_WEIGHT, v / s2) : MAX_KIND_WEIGHT, n];
  };
  const [practice, nPractice] = est((p) => p.practice);
  const [assignment, nAssignment] = est((p) => p.assignments);
  return { practice, assignment, nPractice, nAssignment };
}

/** The pair's weighted label and its weight (quiz-answer equivalents); weight 0 when nothing is graded. */
export function denseLabel(p: WindowOutcomes, w: KindWeights): { label: number; weight: number } {
  let s = p.quizCorrect;
  let n = p.quizN;
  for (const x of p.practice) {
    s += w.practice * x;
    n += w.practice;
  }
  for (const x of p.assignments) {
    s += w.assignment * x;
    n += w.assignment;
  }
  return n > 0 ? { label: s / n, weight: n } : { label: Number.NaN, weight: 0 };
}
