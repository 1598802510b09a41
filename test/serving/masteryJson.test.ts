import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { masteryViewJson } from "../../serving/masteryJson.ts";
import type { MasteryViewRow } from "../../serving/masteryReadStore.ts";
import {
  readStudentMastery,
  type StudentMastery,
  storedExplanationText,
  topicMetaOf,
} from "../../serving/masteryView.ts";
import type { StudentModelScores } from "../../serving/modelScoring.ts";

// Any code point, lone surrogate halves and control characters included: the writer's escaping must
// match JSON.stringify's.
const text = fc.string({ unit: "binary", maxLength: 12 });
const id = fc.oneof(text, fc.constantFrom("T1", "T2", "T3", "topic é", 'q"uote', "back\\slash"));
const number = fc.oneof(
  fc.double(),
  fc.constantFrom(0, -0, 0.1, 1e-7, 1e21, 123456789.125, Number.NaN, Number.POSITIVE_INFINITY),
);
const explanation = fc.record(
  {
    base: number,
    factors: fc.array(fc.record({ name: text, value: number, contribution: number }), { maxLength: 3 }),
    rest: number,
    score: number,
    interval: fc.record({ lo: number, hi: number, level: number }),
    evidence: fc.record({
      kind: fc.constantFrom("measured", "indirect", "prior"),
      attempts: fc.nat(),
      daysSinceLast: fc.option(number),
    }),
    pCorrect: number,
  },
  { requiredKeys: ["base", "factors", "rest", "score"] },
);
const date = fc.date({
  min: new Date("2020-01-01T00:00:00Z"),
  max: new Date("2030-01-01T00:00:00Z"),
  noInvalidDate: true,
});
const row = fc.record({
  topic_id: fc.constantFrom("T1", "T2", "T3", "T4"),
  mastery_score: number,
  // Not rule_based: its stored form is the rule scorer's (tested with it in ruleScoring tests).
  score_source: fc.oneof(fc.constantFrom("bkt", "elo", "served", "latent", "teacher_override", "ml"), id),
  model_version: id,
  as_of: date,
  explanation: fc.tuple(explanation, fc.boolean()).map(([e, pretty]) =>
    // A pretty-printed stored text is not JSON.stringify's form: the writer must not splice it.
    pretty ? JSON.stringify(e, null, 1) : JSON.stringify(e),
  ),
  last_updated: date,
  name: fc.option(id),
  chapter_id: fc.option(fc.constantFrom("C1", "C2")),
  subject_id: fc.option(fc.constantFrom("S1")),
  course_id: fc.option(id),
});
const meta = topicMetaOf(
  ["T1", "T2", "T3", "T4"].map((t, i) => ({
    topic_id: t,
    chapter_id: i < 2 ? "C1" : "C2",
    subject_id: "S1",
    course_id: "K1",
    content_length: i + 1,
    prerequisites: null,
  })),
);
const model = fc.option(
  fc.record({
    score: number,
    scoreSource: fc.constantFrom("ml", "blend"),
    modelVersion: id,
    asOf: date.map((d) => d.toISOString()),
    explanation: explanation,
  }),
);
const arm = fc.option(
  fc.record(
    { experimentId: id, arm: id, scoreSource: fc.constantFrom("bkt", "elo") },
    { requiredKeys: ["experimentId", "arm"] },
  ),
);

async function viewOf(
  rows: MasteryViewRow[],
  opts: {
    arm: { experimentId: string; arm: string; scoreSource?: string } | null;
    modelTopic: Parameters<StudentModelScores["topics"]["set"]>[1] | null;
    now: Date | null;
  },
): Promise<StudentMastery> {
  const topics = new Map();
  if (opts.modelTopic !== null) topics.set("T2", opts.modelTopic);
  return readStudentMastery({} as never, "student-key-1", {
    rows,
    arm: opts.arm,
    topics: async () => meta,
    ...(opts.now !== null ? { now: opts.now } : {}),
    ...(opts.modelTopic !== null
      ? {
          model: {
            topics,
            info: { status: "served", name: "m", version: "3", scoreSource: "ml" },
          } as unknown as StudentModelScores,
        }
      : {}),
  });
}

describe("masteryViewJson (the GET /mastery body written directly)", () => {
  it("equals JSON.stringify of the view, character for character (fast-check)", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.uniqueArray(row, { selector: (r) => `${r.topic_id}\u0000${r.score_source}`, maxLength: 12 }),
        arm,
        model,
        fc.option(date),
        async (rows, a, m, now) => {
          const view = await viewOf(rows, { arm: a, modelTopic: m, now });
          // Written first: JSON.stringify reads (parses) every explanation.
          const direct = masteryViewJson(view);
          expect(direct).toBe(JSON.stringify(view));
        },
      ),
      { numRuns: 300 },
    );
  });

  it("splices the stored explanation text until the parsed explanation is read, then writes the object", async () => {
    const stored =
      '{"base":0.3,"factors":[{"name":"correct_answers","value":5,"contribution":0.3}],"rest":0,"score":0.6}';
    const at = new Date("2026-01-05T10:00:00Z");
    const view = await viewOf(
      [
        {
          topic_id: "T1",
          mastery_score: 0.6,
          score_source: "bkt",
          model_version: "default",
          as_of: at,
          explanation: stored,
          last_updated: at,
          name: "Fractions",
          chapter_id: "C1",
          subject_id: "S1",
          course_id: "K1",
        },
      ],
      { arm: null, modelTopic: null, now: null },
    );
    const t = view.topics[0]!;
    expect(storedExplanationText(t)).toBe(stored);
    expect(masteryViewJson(view)).toContain(`"explanation":${stored},`);
    // A reader changed the parsed explanation: the body shows the change, not the stored text.
    (t.explanation as { rest: number }).rest = 0.25;
    expect(storedExplanationText(t)).toBeUndefined();
    expect(masteryViewJson(view)).toContain('"rest":0.25,"score":0.6}');
    expect(masteryViewJson(view)).toBe(JSON.stringify(view));
  });
});
