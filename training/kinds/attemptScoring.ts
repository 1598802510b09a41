import { type AttemptContext, type AttemptFeatureMatrix, attemptFeatures } from "../attemptFeatures.ts";
import type { Attempt } from "../modelKind.ts";
import { intern, type ResponseLog } from "../responses.ts";
import { selectRows } from "../trainingSet.ts";

/**
 * A response log holding, for each target topic, the student's attempts followed by one virtual attempt
 * on that topic (unknown item, label 0 — read only after its features are written, and nothing follows it).
 * Each target gets its own copy of the sequence (a separate "user"), so no virtual row sees another.
 * With `virtualTimeMs` (time-aware models), every attempt needs `timeMs` and the log carries times; the
 * virtual attempt sits at max(virtualTimeMs, the last attempt's time).
 */
export function virtualAttemptLog(
  attempts: readonly Attempt[],
  targets: readonly string[],
  virtualTimeMs?: number,
): { log: ResponseLog; virtualRows: Int32Array } {
  const skills = new Map<string, number>();
  const items = new Map<string, number>();
  const per = attempts.length + 1;
  const n = per * targets.length;
  const log: ResponseLog = {
    n,
    user: new Int32Array(n),
    skill: new Int32Array(n),
    item: new Int32Array(n),
    correct: new Uint8Array(n),
    userNames: targets.map((t) => `target:${t}`),
    skillNames: [],
    itemNames: [],
    userStart: new Int32Array(targets.length + 1),
  };
  const time = virtualTimeMs === undefined ? undefined : new Float64Array(n);
  const lastMs = attempts.reduce((m, a) => Math.max(m, a.timeMs ?? Number.NaN), Number.NEGATIVE_INFINITY);
  const virtualMs = virtualTimeMs === undefined ? Number.NaN : Math.max(virtualTimeMs, lastMs);
  const skillOf = Int32Array.from(attempts, (a) => intern(skills, a.topicId));
  const itemOf = Int32Array.from(attempts, (a) => (a.questionId === null ? -1 : intern(items, a.questionId)));
  const virtualRows = new Int32Array(targets.length);
  for (let u = 0; u < targets.length; u++) {
    const o = u * per;
    log.userStart[u] = o;
    for (let k = 0; k < attempts.length; k++) {
      log.user[o + k] = u;
      log.skill[o + k] = skillOf[k]!;
      log.item[o + k] = itemOf[k]!;
      log.correct[o + k] = attempts[k]!.correct ? 1 : 0;
      if (time !== undefined) time[o + k] = attempts[k]!.timeMs ?? Number.NaN;
    }
    const r = o + attempts.length;
    log.user[r] = u;
    log.skill[r] = intern(skills, targets[u]!);
    log.item[r] = -1;
    log.correct[r] = 0;
    if (time !== undefined) time[r] = virtualMs;
    virtualRows[u] = r;
  }
  if (time !== undefined) log.time = time;
  log.userStart[targets.length] = n;
  log.skillNames = [...skills.keys()];
  log.itemNames = [...items.keys()];
  return { log, virtualRows };
}

/**
 * The attempt-feature rows of a NEW, average item of each target topic after all of `attempts`: what
 * the next-response models (gbt, mlp, blend) score as the student's mastery of the topic.
 */
export function targetFeatureRows(
  attempts: readonly Attempt[],
  targets: readonly string[],
  context: AttemptContext,
  nowMs?: number,
): AttemptFeatureMatrix {
  // Time-aware models (context.time, trained with time=COL) read the attempt times; the virtual attempt is "now".
  const virtualMs = context.time === true ? (nowMs ?? Date.now()) : undefined;
  const { log, virtualRows } = virtualAttemptLog(attempts, targets, virtualMs);
  return selectRows(attemptFeatures(log, context), virtualRows);
}

/** Row `r` of a column-major feature matrix. */
export function featureRow(X: AttemptFeatureMatrix, r: number): Float64Array {
  const x = new Float64Array(X.nCols);
  for (let c = 0; c < X.nCols; c++) x[c] = X.data[c * X.nRows + r]!;
  return x;
}
