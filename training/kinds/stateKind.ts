import {
  applyEvent,
  type ExplainedScore,
  initialLearnerState,
  type LearnerState,
  type TopicParams,
} from "../../models/learnerState.ts";
import type { Attempt, TopicScore } from "../modelKind.ts";

/**
 * Scores of the per-(student, topic) fold (models/learnerState.ts) for the bkt and elo kinds: each target
 * topic's attempts, in order, folded from a new learner with the model's parameters; the mastery function
 * gives the score and its exact factor decomposition (the fold factors).
 */
export function foldTopicScores(
  attempts: readonly Attempt[],
  topics: readonly string[],
  paramsFor: (topicId: string) => TopicParams,
  mastery: (state: LearnerState, params: TopicParams) => ExplainedScore,
): TopicScore[] {
  const byTopic = new Map<string, Attempt[]>();
  for (const a of attempts) {
    const list = byTopic.get(a.topicId);
    if (list) list.push(a);
    else byTopic.set(a.topicId, [a]);
  }
  return topics.map((t) => {
    const params = paramsFor(t);
    let s = initialLearnerState(params);
    (byTopic.get(t) ?? []).forEach((a, k) => {
      s = applyEvent(
        s,
        {
          eventId: String(k).padStart(12, "0"),
          type: "quiz_attempt",
          ts: k,
          isCorrect: a.correct,
          questionId: a.questionId,
        },
        params,
      );
    });
    return mastery(s, params);
  });
}
