import type { TopicRow } from "./masteryReadStore.ts";
import { type MasterySource, readStoreOf } from "./masteryView.ts";

/**
 * What a student should work on next, and how hard the next quiz item should be.
 *
 * Order: the student's weak topics (served score < masteredAt), weakest first; each preceded by its
 * unmet prerequisites (unscored, or scored < masteredAt), deepest first, so a student is sent to the
 * foundation before the topic built on it. A topic appears once (the first time it is needed).
 *
 * Adaptive quizzes: under the Elo model P(correct) = σ(θ − d) (models/elo.ts eloProbability), so the
 * item difficulty with P(success) = p is d = θ − logit(p); with p = 0.7, d = θ − 0.8473. θ is the
 * student's per-topic Elo ability from learner_state (0 for a student without Elo state on the
 * topic), on the same scale as the model's topic difficulty + item offset.
 */
export const DEFAULT_TARGET_SUCCESS = 0.7;
export const DEFAULT_MASTERED_AT = 0.7;

export interface RecommendationInput {
  /** topic_id -> prerequisites, for every known topic. */
  prerequisites: ReadonlyMap<string, readonly string[]>;
  /** Served mastery per scored topic. */
  scores: ReadonlyMap<string, number>;
  /** Per-topic Elo ability of the student. */
  abilities: ReadonlyMap<string, number>;
  masteredAt?: number;
  targetSuccess?: number;
  limit?: number;
}

export interface Recommendation {
  topicId: string;
  score: number | null;
  /** weak: the student's own weak topic; prerequisite: needed first by `forTopic`. */
  reason: "weak" | "prerequisite";
  forTopic: string | null;
  unmetPrerequisites: string[];
  ability: number;
  /** Item difficulty (Elo scale) with predicted P(success) = targetSuccess. */
  targetDifficulty: number;
  targetSuccess: number;
}

export function logit(p: number): number {
  return Math.log(p / (1 - p));
}

/** d = θ − logit(p): the difficulty a student of ability θ answers correctly with probability p. */
export function targetDifficulty(ability: number, p = DEFAULT_TARGET_SUCCESS): number {
  return ability - logit(p);
}

export function recommend(input: RecommendationInput): Recommendation[] {
  const masteredAt = input.masteredAt ?? DEFAULT_MASTERED_AT;
  const p = input.targetSuccess ?? DEFAULT_TARGET_SUCCESS;
  const limit = input.limit ?? 10;
  const unmet = (t: string): boolean => {
    const s = input.scores.get(t);
    return s === undefined || s < masteredAt;
  };
  // Unscored sorts as 0: nothing is known, so it is treated as not mastered at all.
  const byScore = (a: string, b: string) =>
    (input.scores.get(a) ?? 0) - (input.scores.get(b) ?? 0) || (a < b ? -1 : a > b ? 1 : 0);
  const unmetPrereqs = (t: string): string[] =>
    [...(input.prerequisites.get(t) ?? [])].filter((q) => q !== t && unmet(q)).sort(byScore);

  const out: Recommendation[] = [];
  const emitted = new Set<string>();
  const visiting = new Set<string>();
  const emit = (t: string, reason: Recommendation["reason"], forTopic: string | null) => {
    const ability = input.abilities.get(t) ?? 0;
    out.push({
      topicId: t,
      score: input.scores.get(t) ?? null,
      reason,
      forTopic,
      unmetPrerequisites: unmetPrereqs(t),
      ability,
      targetDifficulty: targetDifficulty(ability, p),
      targetSuccess: p,
    });
    emitted.add(t);
  };
  const visit = (t: string, reason: Recommendation["reason"], forTopic: string | null) => {
    if (emitted.has(t) || visiting.has(t)) return; // visiting: a prerequisite cycle in the metadata
    visiting.add(t);
    for (const q of unmetPrereqs(t)) visit(q, "prerequisite", t);
    visiting.delete(t);
    emit(t, reason, forTopic);
  };
  const weak = [...input.scores.entries()]
    .filter(([, s]) => s < masteredAt)
    .map(([t]) => t)
    .sort(byScore);
  for (const t of weak) visit(t, "weak", null);
  return out.slice(0, limit);
}

/** Loads the topic graph and the student's Elo abilities; scores come from the served mastery. */
export async function loadRecommendationContext(
  source: MasterySource,
  studentKey: string,
  opts: {
    /** The topics table when the caller keeps a copy (the server re-reads it at most once a minute). */
    topics?: () => Promise<readonly TopicRow[]>;
    /** The student's topics when the caller has them (its GET /mastery body). */
    topicIds?: readonly string[];
  } = {},
): Promise<Pick<RecommendationInput, "prerequisites" | "abilities">> {
  const store = readStoreOf(source);
  const topics = opts.topics !== undefined ? await opts.topics() : await store.topics();
  return {
    prerequisites: new Map(topics.map((t) => [t.topic_id, t.prerequisites ?? []])),
    abilities: await store.eloAbilities(studentKey, opts.topicIds),
  };
}
