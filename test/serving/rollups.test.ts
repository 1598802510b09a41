import { describe, expect, it } from "vitest";
import { rollupMastery } from "../../serving/rollups.ts";
import { DuckStore } from "../../storage/duckdb.ts";

describe("rollups", () => {
  it("chapter, subject and course mastery are content-length-weighted means over scored topics", async () => {
    const store = await DuckStore.open(":memory:");
    // t3 has no length: it weighs the mean positive length (10 + 30 + 20 + 20) / 4 = 20
    await store.run(`INSERT INTO topics (topic_id, chapter_id, subject_id, course_id, content_length) VALUES
      ('t1', 'c1', 'sub1', 'k1', 10), ('t2', 'c1', 'sub1', 'k1', 30), ('t3', 'c1', 'sub1', 'k1', NULL),
      ('t4', 'c2', 'sub1', 'k1', 20), ('t5', 'c2', 'sub1', 'k1', 20), ('t6', 'c3', 'sub2', NULL, 0)`);
    await store.run(`INSERT INTO student_mastery_base (student_key, topic_id, mastery_score, score_source, model_version, as_of, explanation, last_updated) VALUES
      ('s1', 't1', 0.2, 'rule_based', 'v', TIMESTAMP '2024-01-01', '{}', now()),
      ('s1', 't2', 0.6, 'rule_based', 'v', TIMESTAMP '2024-01-01', '{}', now()),
      ('s1', 't3', 0.5, 'rule_based', 'v', TIMESTAMP '2024-01-01', '{}', now()),
      ('s1', 't4', 0.9, 'rule_based', 'v', TIMESTAMP '2024-01-01', '{}', now()),
      ('s1', 't6', 0.4, 'rule_based', 'v', TIMESTAMP '2024-01-01', '{}', now()),
      ('s1', 't1', 1.0, 'bkt', 'v', TIMESTAMP '2024-01-01', '{}', now()),
      ('s2', 't5', 0.7, 'rule_based', 'v', TIMESTAMP '2024-01-01', '{}', now())`);
    const chapters = await rollupMastery(store, "chapter", { studentKey: "s1", scoreSource: "rule_based" });
    expect(chapters.map((c) => [c.id, c.topicsScored, c.topicsTotal])).toEqual([
      ["c1", 3, 3],
      ["c2", 1, 2],
      ["c3", 1, 1],
    ]);
    expect(chapters[0]?.masteryScore).toBeCloseTo((10 * 0.2 + 30 * 0.6 + 20 * 0.5) / 60, 12); // 0.5
    expect(chapters[1]?.masteryScore).toBeCloseTo(0.9, 12); // unscored t5 is left out, not a 0
    expect(chapters[2]?.masteryScore).toBeCloseTo(0.4, 12); // length 0 -> mean length, alone anyway
    const subjects = await rollupMastery(store, "subject", { studentKey: "s1", scoreSource: "rule_based" });
    expect(subjects.map((s) => s.id)).toEqual(["sub1", "sub2"]);
    expect(subjects[0]?.masteryScore).toBeCloseTo((2 + 18 + 10 + 20 * 0.9) / 80, 12); // 0.6
    const courses = await rollupMastery(store, "course", { scoreSource: "rule_based" });
    // t6 has no course; s2 has only t5
    expect(courses.map((c) => [c.studentKey, c.id, c.topicsScored, c.topicsTotal])).toEqual([
      ["s1", "k1", 4, 5],
      ["s2", "k1", 1, 5],
    ]);
    expect(courses[0]?.masteryScore).toBeCloseTo(0.6, 12);
    const bkt = await rollupMastery(store, "chapter", { scoreSource: "bkt" });
    expect(bkt.map((c) => [c.id, c.masteryScore])).toEqual([["c1", 1]]);
    store.close();
  });
});
