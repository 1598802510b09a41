import type { Pseudonymizer } from "../features/pseudonymize.ts";
import type { PgStore } from "../storage/postgres.ts";

/** A stored rule-style explanation of realistic size, for the serving benches' seeded score rows. */
export const SEED_EXPLANATION = `{"base":0.3,"factors":[{"name":"correct_answers","value":5,"contribution":0.3},{"name":"incorrect_answers","value":2,"contribution":-0.1},{"name":"bkt_learn","value":0.1,"contribution":0.05}],"rest":0,"score":0.55}`;

/**
 * The cold-read benches' PostgreSQL seed: `topics` topics W0.. and, for students wide-0 .. wide-(students-1),
 * a bkt and an elo row per topic in student_mastery (scores spread over [0, 1)), then ANALYZE.
 */
export async function seedWideStudents(
  pg: PgStore,
  pseudo: Pseudonymizer,
  students: number,
  topics: number,
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
      for (const src of ["bkt", "elo"])
        rows.push(
          `('${pseudo.studentKey(`wide-${s}`)}', 'W${i}', ${((s * 7 + i * 13) % 100) / 100}, '${src}', 'default', ${ts}, '${SEED_EXPLANATION}', ${ts})`,
        );
  for (let i = 0; i < rows.length; i += 5000)
    await pg.run(
      `INSERT INTO student_mastery (student_key, topic_id, mastery_score, score_source, model_version, as_of, explanation, last_updated) VALUES ${rows.slice(i, i + 5000).join(",")}`,
    );
  await pg.run("ANALYZE");
}
