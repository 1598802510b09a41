/**
 * How much of the between-topic spread of accuracy is topic ease (round 8, issue 16).
 *
 * The served scale has one anchor for every topic (models/servedMastery.ts fitAnchor), so a topic whose items
 * are easier is served as better mastered. Round 7 carried the whole between-topic sd of the topics' mean
 * logits in every interval: an upper bound that reads every topic difference as unidentified ease. This
 * estimates the ease share from the answers themselves, without mastery labels:
 *
 *  - ease is a property of a topic's items, so it moves a topic's accuracy by the same logit amount on a
 *    pair's first answer (before practice) and on its last answer (after it); differences in knowledge
 *    between topics come from what students bring and what they learn, and move between the two;
 *  - per topic, the logit of the mean accuracy of every pair's first quiz answer (early) and of the last
 *    answer of pairs with >= 2 answers (late), each in two halves of the students (disjoint, so sampling
 *    noise does not correlate across halves);
 *  - share = cov(early, late) / var(late) across topics, both moments cross-half (early of one half with
 *    late of the other, averaged both ways; late of one half with late of the other), so neither carries
 *    the topics' sampling variance. Clamped to [0, 1]; with too few topics, or no between-topic variance of
 *    late accuracy, the share is 1 (round 7's upper bound: no evidence, no narrowing).
 *
 * Caveat (documented, not hidden): knowledge a topic starts with and keeps (a topic most students already
 * know) persists like ease and is counted as ease, so the share stays an upper bound in that direction;
 * topics that start low and catch up through teaching lower it.
 */

/** One (student, topic) pair's quiz answers before the snapshot, reduced to what the estimate reads. */
export interface PairAnswers {
  topic: string;
  /** 0 or 1: which half of the students (a hash of the pseudonymous student key). */
  half: 0 | 1;
  /** The pair's first quiz answer, 1 = correct. */
  first: 0 | 1;
  /** The pair's last quiz answer (1 = correct); null when the pair has a single answer. */
  last: 0 | 1 | null;
}

export interface EaseShare {
  /** Share of the between-topic variance of late accuracy that is persistent (read as ease), in [0, 1]. */
  share: number;
  /** Topics with enough pairs in both halves (MIN_TOPIC_PAIRS first and last answers in each). */
  topics: number;
  /** Cross-half covariance of early and late topic accuracy (logit units squared). */
  covEarlyLate: number;
  /** Cross-half covariance of late topic accuracy (its between-topic variance, logit units squared). */
  varLate: number;
}

/** A topic enters with at least this many first and last answers in each half. */
export const EASE_MIN_TOPIC_PAIRS = 10;
/** Fewer topics than this: no estimate (share 1). */
export const EASE_MIN_TOPICS = 5;

const logitMean = (correct: number, n: number): number => Math.log((correct + 0.5) / (n - correct + 0.5));

/** Sample covariance of two equally long series. */
function covariance(x: readonly number[], y: readonly number[]): number {
  const n = x.length;
  let mx = 0;
  let my = 0;
  for (let i = 0; i < n; i++) {
    mx += x[i]!;
    my += y[i]!;
  }
  mx /= n;
  my /= n;
  let s = 0;
  for (let i = 0; i < n; i++) s += (x[i]! - mx) * (y[i]! - my);
  return s / (n - 1);
}

/** The ease share of the between-topic spread (see the file comment). Pure. */
export function easeShare(pairs: readonly PairAnswers[]): EaseShare {
  // Per topic and half: [first correct, first n, last correct, last n].
  const counts = new Map<string, Float64Array>();
  for (const p of pairs) {
    let c = counts.get(p.topic);
    if (c === undefined) {
      c = new Float64Array(8);
      counts.set(p.topic, c);
    }
    const o = p.half * 4;
    c[o] = c[o]! + p.first;
    c[o + 1] = c[o + 1]! + 1;
    if (p.last !== null) {
      c[o + 2] = c[o + 2]! + p.last;
      c[o + 3] = c[o + 3]! + 1;
    }
  }
  const early: [number[], number[]] = [[], []];
  const late: [number[], number[]] = [[], []];
  for (const c of [...counts.keys()].sort().map((t) => counts.get(t)!)) {
    if (c[1]! < EASE_MIN_TOPIC_PAIRS || c[5]! < EASE_MIN_TOPIC_PAIRS) continue;
    if (c[3]! < EASE_MIN_TOPIC_PAIRS || c[7]! < EASE_MIN_TOPIC_PAIRS) continue;
    for (const h of [0, 1] as const) {
      early[h].push(logitMean(c[h * 4]!, c[h * 4 + 1]!));
      late[h].push(logitMean(c[h * 4 + 2]!, c[h * 4 + 3]!));
    }
  }
  const topics = early[0].length;
  if (topics < EASE_MIN_TOPICS) return { share: 1, topics, covEarlyLate: Number.NaN, varLate: Number.NaN };
  const covEarlyLate = (covariance(early[0], late[1]) + covariance(early[1], late[0])) / 2;
  const varLate = covariance(late[0], late[1]);
  const share = varLate > 0 ? Math.min(1, Math.max(0, covEarlyLate / varLate)) : 1;
  return { share, topics, covEarlyLate, varLate };
}
