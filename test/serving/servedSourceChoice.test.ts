import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { MasteryViewRow } from "../../serving/masteryReadStore.ts";
import { readStudentMastery, TEACHER_OVERRIDE } from "../../serving/masteryView.ts";

const SOURCES = [
  "served",
  "blend",
  "ml",
  "bkt",
  "rule_based",
  "elo",
  TEACHER_OVERRIDE,
  "zeta",
  "Alpha",
  "alpha",
];

const row = (topic: string, source: string, score: number, t: number): MasteryViewRow => ({
  topic_id: topic,
  mastery_score: score,
  score_source: source,
  model_version: "v1",
  as_of: new Date(t),
  explanation: JSON.stringify({ base: score, factors: [], rest: 0, score }),
  last_updated: new Date(t + 1000),
  name: null,
  chapter_id: null,
  subject_id: null,
  course_id: null,
});

describe("readStudentMastery: which stored score is served", () => {
  it("is the first row by (teacher override, position in the order, unknown sources by name), as a sort would give", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.uniqueArray(fc.constantFrom(...SOURCES), { minLength: 1, maxLength: SOURCES.length }),
        fc.shuffledSubarray(SOURCES.slice(0, 6)),
        fc.integer({ min: 0, max: 2 ** 40 }),
        async (sources, order, t) => {
          const rows = sources.map((s, i) => row("T1", s, i / 16, t + i * 60_000));
          const view = await readStudentMastery({} as never, "k", {
            rows,
            sourceOrder: order,
            topics: async () => ({
              level: { chapter: new Map(), subject: new Map(), course: new Map() },
              weight: new Map(),
              totals: { chapter: new Map(), subject: new Map(), course: new Map() },
            }),
          });
          const rank = (s: string) =>
            s === TEACHER_OVERRIDE ? -1 : order.indexOf(s) < 0 ? order.length : order.indexOf(s);
          const want = [...rows].sort(
            (a, b) =>
              rank(a.score_source) - rank(b.score_source) || a.score_source.localeCompare(b.score_source),
          )[0]!;
          const topic = view.topics[0]!;
          expect(topic.scoreSource).toBe(want.score_source);
          expect(topic.score).toBe(want.mastery_score);
          expect(topic.asOf).toBe(want.as_of.toISOString());
          expect(topic.lastUpdated).toBe(want.last_updated.toISOString());
          for (const r of rows) expect(topic.scores[r.score_source]!.asOf).toBe(r.as_of.toISOString());
        },
      ),
      { numRuns: 300 },
    );
  });
});
