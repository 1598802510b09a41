import type { Pseudonymizer } from "../features/pseudonymize.ts";
import type { PgStore } from "../storage/postgres.ts";

/** A stored rule-style explanation of realistic size, for the serving benches' seeded score rows. */
export const SEED_EXPLANATION = `{"base":0.3,"factors":[{"name":"correct_answers","value":5,"contribution":0.3},{"name":"incorrect_answers","value":2,"contribution":-0.1},{"name":"bkt_learn","value":0.1,"contribution":0.05}],"rest":0,"score":0.55}`;

/** A stored served explanation (serving/servedScoring.ts servedExplanation's shape, with decay), for the same. */
export const SEED_SERVED_EXPLANATION = JSON.stringify({
  base: 0.3,
  factors: [
    { name: "recent_accuracy", value: 0.8, contribution: 0.21 },
    { name: "attempts_log", value: 2.3, contribution: 0.07 },
    { name: "topic_difficulty", value: -0.4, contribution: -0.05 },
  ],
  rest: 0.02,
  score: 0.55,
  interval: { lo: 0.41, hi: 0.68, level: 0.8 },
  evidence: { kind: "measured", attempts: 12, daysSinceLast: 3.5 },
  pCorrect: 0.62,
  decay: { halfLifeDays: 45.2, floor: 0.18, pFloor: 0.31 },
});

/**
 * The cold-read benches' PostgreSQL seed: `topics` topics W0.. and, for students wide-0 .. wide-(students-1),
 * a bkt and an elo row per topic in student_mastery (scores spread over [0, 1)), with `served` also a
 * 'served' row per topic (SEED_SERVED_EXPLANATION: served, so decayed at read time), then ANALYZE.
 */
export async function seedWideStudents(
  pg: PgStore,
  pseudo: Pseudonymizer,
  students: number,
  topics: number,
  served = false,
): Promise<void> {
  const topicRows = Array.from(
    { length: topics },
    (_, i) => `('W${i}', 'Wide ${i}', 'WC${i % 10}', 'S2', 'K1', 0, 10)`,
  );
  await pg.run(
    `INSERT INTO topics (topic_id, name, chapter_id, subject_id, course_id, difficulty_estimate, content_length) VALUES ${topicRows.join(",")}`,
  );
  const ts = "TIMESTAMP '2026-01-05 10:00:00'";
  const rows: string[] = [];
  for (let s = 0; s < students; s++)
    for (let i = 0; i < topics; i++)
      for (const src of served ? ["bkt", "elo", "served"] : ["bkt", "elo"])
        rows.push(
          `('${pseudo.studentKey(`wide-${s}`)}', 'W${i}', ${((s * 7 + i * 13) % 100) / 100}, '${src}', 'default', ${ts}, '${src === "served" ? SEED_SERVED_EXPLANATION : SEED_EXPLANATION}', ${ts})`,
        );
  for (let i = 0; i < rows.length; i += 5000)
    await pg.run(
      `INSERT INTO student_mastery (student_key, topic_id, mastery_score, score_source, model_version, as_of, explanation, last_updated) VALUES ${rows.slice(i, i + 5000).join(",")}`,
    );
  await pg.run("ANALYZE");
}
