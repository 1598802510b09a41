/**
 * The students of test/storage/rowIdRanges.test.ts and rowIdRunMemory.int.test.ts: STUDENTS students x TOPICS
 * topics x SOURCES rows on a checkpointed DuckDB file, in a chosen row order, with revisions in the delta.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll } from "vitest";
import { DuckStore } from "../../storage/duckdb.ts";
import { EXPLANATION_NUMBER_COLUMNS, RULE_BLOCK_COLUMNS } from "../../storage/schema.ts";
import { baseTable, deltaTable } from "../../storage/servingTables.ts";

export const SOURCES = ["bkt", "elo", "rule_based", "served"] as const;
export const STUDENTS = 12;
export const TOPICS = 60;

/**
 * Every student's 240 base rows (bkt / elo with their numbers, rule_based with a block, served with a text), from
 * a fixed formula, inserted in `order` (an ORDER BY over the rows' columns), then checkpointed.
 */
export async function seed(duck: DuckStore, order: string, filler = 0): Promise<void> {
  const f = (salt: number) => `((hash(s.i * 7919 + t.i * 104729 + ${salt}) % 1000000) / 1000000.0)`;
  const ex = EXPLANATION_NUMBER_COLUMNS.map(
    (c, k) =>
      `CASE WHEN v.src IN ('bkt', 'elo') THEN ${c.startsWith("ex_correct") || c === "ex_incorrect" || c === "ex_streak" ? `(${f(k)} * 20)::INTEGER` : f(k)} END AS ${c}`,
  );
  const rule = RULE_BLOCK_COLUMNS.map(
    (c, k) =>
      `CASE WHEN v.src = 'rule_based' THEN ${c === "rule_centered" ? `${f(100 + k)} < 0.5` : f(100 + k)} END AS ${c}`,
  );
  await duck.run(`DELETE FROM ${baseTable("student_mastery")}`);
  await duck.run(`DELETE FROM ${deltaTable("student_mastery")}`);
  await duck.run(
    `INSERT INTO ${baseTable("student_mastery")} BY NAME
     SELECT * EXCLUDE (s_i, t_i) FROM (
       SELECT s.i AS s_i, t.i AS t_i, 'student-' || s.i::VARCHAR AS student_key, 'T' || lpad(t.i::VARCHAR, 3, '0') AS topic_id,
              ${f(99)} AS mastery_score, v.src AS score_source, 'v1' AS model_version,
              make_timestamp(1764000000000000 + t.i * 1000000) AS as_of,
              CASE WHEN v.src = 'served' THEN '{"score":' || (${f(98)})::VARCHAR || '}' ELSE '' END AS explanation,
              make_timestamp(1764000000000000 + s.i * 1000000) AS last_updated, ${[...ex, ...rule].join(", ")}
       FROM range(${STUDENTS}) s(i), range(${TOPICS}) t(i), (VALUES ${SOURCES.map((x) => `('${x}')`).join(", ")}) v(src)
       UNION ALL BY NAME
       SELECT 'filler-' || f.i::VARCHAR AS student_key, 'F' AS topic_id, 0.5 AS mastery_score, 'bkt' AS score_source,
              'v1' AS model_version, TIMESTAMP '2026-11-01' AS as_of, '{}' AS explanation,
              TIMESTAMP '2026-11-01' AS last_updated
       FROM range(${filler}) f(i))
     ORDER BY ${order}`,
  );
  // Revisions in the delta: a newer bkt row for topics 0, 17, 34, 51 of every third student; student-12 only there.
  await duck.run(
    `INSERT INTO ${deltaTable("student_mastery")} (student_key, topic_id, mastery_score, score_source, model_version,
       as_of, explanation, last_updated)
     SELECT 'student-' || s.i::VARCHAR, 'T' || lpad(t.i::VARCHAR, 3, '0'), 0.25 + t.i / 1000.0, 'bkt', 'v2',
            TIMESTAMP '2026-12-01 00:00:00', '{"delta":' || t.i::VARCHAR || '}', TIMESTAMP '2026-12-01 00:00:00'
     FROM range(0, ${STUDENTS + 1}, 3) s(i), range(0, ${TOPICS}, 17) t(i)`,
  );
  await duck.run("CHECKPOINT");
}

/**
 * A checkpointable DuckDB file in its own temporary folder for one describe block, with the student index the
 * server creates on open (the bench stores lack it): opened before the block's tests, closed and removed after.
 */
export function seedFile(prefix: string): { readonly duck: DuckStore } {
  let dir = "";
  let duck: DuckStore | undefined;
  beforeAll(async () => {
    dir = mkdtempSync(join(process.env.TMPDIR ?? tmpdir(), prefix));
    duck = await DuckStore.open(join(dir, "m.duckdb"), { encryption: null });
    await duck.run(
      `CREATE INDEX IF NOT EXISTS student_mastery_by_student ON ${baseTable("student_mastery")} (student_key)`,
    );
  });
  afterAll(async () => {
    duck?.close();
    await duck?.whenClosed();
    rmSync(dir, { recursive: true, force: true });
  });
  return {
    get duck(): DuckStore {
      if (!duck) throw new Error("seedFile: the store is opened in beforeAll; use it inside a test");
      return duck;
    },
  };
}
