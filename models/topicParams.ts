import { type BKT, type BktParams, meanParams } from "./bkt.ts";
import { DEFAULT_ELO_PARAMS, type Elo } from "./elo.ts";
import type { TopicParams } from "./learnerState.ts";

const DEFAULT_BKT_PARAMS: BktParams = meanParams([]);

/**
 * Per-topic parameters of the per-(student, topic) fold (models/learnerState.ts) from a BKT and/or an
 * Elo model; defaults where a model or a topic is missing. Pure: the models are already loaded.
 */
export function topicParamsResolver(models: {
  bkt: BKT | undefined;
  elo: Elo | undefined;
}): (topicId: string) => TopicParams {
  const { bkt, elo } = models;
  const itemOffsets = new Map<string, number>();
  const skillDifficulty = new Map<string, number>();
  let unseen = 0;
  const eloParams = elo?.params ?? DEFAULT_ELO_PARAMS;
  if (elo !== undefined) {
    elo.itemNames.forEach((name, i) => {
      if (elo.itemCount[i]! > 0) itemOffsets.set(name, elo.itemOffset[i]!);
    });
    elo.skillNames.forEach((name, c) => {
      skillDifficulty.set(name, elo.skillDifficulty[c]!);
    });
    unseen = elo.unseenSkillDifficulty();
  }
  const cache = new Map<string, TopicParams>();
  return (topicId) => {
    let p = cache.get(topicId);
    if (p === undefined) {
      p = {
        bkt: bkt !== undefined ? bkt.paramsFor(topicId) : DEFAULT_BKT_PARAMS,
        eloA: eloParams.studentA + eloParams.skillA,
        eloB: eloParams.studentB,
        topicDifficulty: skillDifficulty.get(topicId) ?? unseen,
        itemOffsets,
      };
      cache.set(topicId, p);
    }
    return p;
  };
}
