import { mulberry32 as mulberry } from "../../models/prng.ts";
import type { KindParams, Attempt as TopicAttempt } from "../../training/modelKind.ts";
import { intern, type ResponseLog } from "../../training/responses.ts";

/** One hand-written attempt: [user, skill, item, correct]; rows must come grouped by user, in order. */
export type Attempt = readonly [string, string, string, number];

/** Builds a ResponseLog (dense ids in order of first appearance) from attempts grouped by user. */
export function makeLog(rows: readonly Attempt[]): ResponseLog {
  const ids = () => new Map<string, number>();
  const users = ids();
  const skills = ids();
  const items = ids();
  const n = rows.length;
  const log: ResponseLog = {
    n,
    user: new Int32Array(n),
    skill: new Int32Array(n),
    item: new Int32Array(n),
    correct: new Uint8Array(n),
    userNames: [],
    skillNames: [],
    itemNames: [],
    userStart: new Int32Array(0),
  };
  rows.forEach(([u, s, i, c], k) => {
    const uid = intern(users, u);
    if (k > 0 && uid < log.user[k - 1]!) throw new Error(`rows of user ${u} are not contiguous`);
    log.user[k] = uid;
    log.skill[k] = intern(skills, s);
    log.item[k] = intern(items, i);
    log.correct[k] = c;
  });
  log.userNames = [...users.keys()];
  log.skillNames = [...skills.keys()];
  log.itemNames = [...items.keys()];
  log.userStart = new Int32Array(users.size + 1);
  let u = -1;
  for (let k = 0; k < n; k++) while (u < log.user[k]!) log.userStart[++u] = k;
  while (u < users.size) log.userStart[++u] = n;
  return log;
}

/**
 * Item difficulties are fixed (the same items for every seed, as train and test files share items); the seed
 * draws the students and their answers.
 */
export function syntheticAttempts(
  nStudents: number,
  perStudent: number,
  seed: number,
  nSkills = 4,
  itemsPerSkill = 6,
): Attempt[] {
  const items = mulberry(12345);
  const itemD = Array.from({ length: nSkills * itemsPerSkill }, () => 3 * items() - 1.5);
  const rnd = mulberry(seed);
  const rows: Attempt[] = [];
  for (let s = 0; s < nStudents; s++) {
    const ability = 2 * rnd() - 1;
    const practice = new Array<number>(nSkills).fill(0);
    for (let k = 0; k < perStudent; k++) {
      const skill = Math.floor(rnd() * nSkills);
      const item = skill * itemsPerSkill + Math.floor(rnd() * itemsPerSkill);
      const x = ability + 0.25 * practice[skill]! - itemD[item]!;
      const c = rnd() < 1 / (1 + Math.exp(-x)) ? 1 : 0;
      practice[skill]! += 1;
      rows.push([`u${s}`, `k${skill}`, `q${item}`, c]);
    }
  }
  return rows;
}

/** Small fits per model kind, for the contract and golden suites: they check behaviour, not accuracy. */
export const SMALL_FITS: Record<string, KindParams> = {
  rule: {},
  bkt: { restarts: 2, maxIter: 30 },
  elo: { maxEvaluations: 12 },
  gbt: { gbt: { nRounds: 15, maxDepth: 3, maxBins: 16, earlyStoppingRounds: 5 } },
  mlp: { mlp: { hidden: [6], maxEpochs: 2, batchSize: 128 } },
  blend: {
    gbt: { nRounds: 10, maxDepth: 3, maxBins: 16, earlyStoppingRounds: 5 },
    mlp: { hidden: [4], maxEpochs: 2, batchSize: 128 },
  },
};

/** One student's attempts (from syntheticAttempts with the given size and seed) as the scoring contract's input. */
export function studentAttempts(n: number, seed: number): TopicAttempt[] {
  return syntheticAttempts(1, n, seed).map(([, s, i, c]) => ({
    topicId: s,
    questionId: i,
    correct: c === 1,
  }));
}
