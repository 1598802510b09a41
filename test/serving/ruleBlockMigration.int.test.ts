import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parseThresholds, timeCrossingKeys } from "../../serving/alerts.ts";
import { readStudentHistories, studentMasteryJson } from "../../serving/masteryView.ts";
import { ROLLUP_LEVELS, rollupMastery } from "../../serving/rollups.ts";
import { scoreRules } from "../../serving/ruleScoring.ts";
import { loadPairEvidence } from "../../serving/servedInputs.ts";
import { withExplanationTexts } from "../../serving/storedExplanations.ts";
import { DuckAlertStore } from "../../storage/alertStore.ts";
import { DuckStore } from "../../storage/duckdb.ts";
import { STORED_NUMBERS_SELECT } from "../../storage/explanationNumbers.ts";
import { RULE_BLOCK_COLUMNS } from "../../storage/schema.ts";
import { insertEvents, type TestEvent } from "../features/eventRows.ts";

/**
 * The rule block stored as numbers (rule20): a store written before the rule columns existed (the batch's
 * rule rows hold their JSON text) is moved by opening it (storage/schema.ts DUCK_ONLY_DDL adds the columns,
 * NULL) and answers every reader exactly as a store the batch writes now (numbers, text rendered on read):
 * GET /mastery bodies and histories (as stored and as of a later time), rollups, the alert pass's
 * time-crossing keys and the export's rule inputs. A full rerun on the moved store then writes numbers.
 */

const T = new Date("2024-03-31T00:00:00Z");
const DAY = 86_400_000;
const ago = (days: number): string => new Date(T.getTime() - days * DAY).toISOString();

/** 30 students x 6 topics of quizzes, assignments, practice and videos (every signal, some pairs bare). */
function events(): TestEvent[] {
  const out: TestEvent[] = [];
  for (let s = 0; s < 30; s++)
    for (let t = 0; t < 6; t++) {
      const k = s * 6 + t;
      const pair = { student: `s${s}`, topic: `t${t}` };
      for (let a = 0; a < k % 9; a++)
        out.push({
          type: "quiz_attempt",
          ...pair,
          ts: ago((k * 7 + a * 5) % 100),
          is_correct: (k + a) % 3 !== 0,
          time_spent_sec: 30,
          hints_used: a % 3,
        });
      if (k % 4 === 0) out.push({ type: "assignment", ...pair, ts: ago(k % 40), score_pct: k % 101 });
      if (k % 5 === 1)
        out.push({ type: "practice", ...pair, ts: ago(k % 20), attempts: 5, correct_count: k % 6 });
      if (k % 3 === 2) out.push({ type: "video", ...pair, ts: ago(k % 60), watch_pct: k % 100 });
      if (k % 7 === 3) out.push({ type: "chatbot", ...pair, ts: ago(k % 30), help_requests: 2 });
    }
  // A pair with chatbot events only: recency is its one signal.
  out.push({ type: "chatbot", student: "s99", topic: "t0", ts: ago(2), help_requests: 1 });
  return out;
}

const LATER = new Date(T.getTime() + 9.5 * DAY);

/** Every answer that reads rule rows, as JSON texts. */
async function answers(store: DuckStore): Promise<Record<string, string[]>> {
  await DuckAlertStore.open(store);
  const keys = (
    await store.all<{ student_key: string }>("SELECT DISTINCT student_key FROM student_mastery ORDER BY 1")
  ).map((r) => r.student_key);
  const out: Record<string, string[]> = {
    mastery: [],
    history: [],
    rollups: [],
    crossings: [],
    evidence: [],
  };
  for (const now of [undefined, LATER])
    for (const k of keys) {
      out.mastery!.push(JSON.stringify(await studentMasteryJson(store, k, now === undefined ? {} : { now })));
      out.history!.push(JSON.stringify(await readStudentHistories(store, k, null, now)));
    }
  for (const level of ROLLUP_LEVELS)
    for (const r of await rollupMastery(store, level)) out.rollups!.push(JSON.stringify(r));
  for (const atRisk of [0.4, 0.5, 0.6])
    for (const k of await timeCrossingKeys(
      store,
      LATER,
      parseThresholds({ default: { at_risk: atRisk } }, {}),
    ))
      out.crossings!.push(`${atRisk} ${JSON.stringify(k)}`);
  const ev = await loadPairEvidence(store, LATER);
  for (const id of [...ev.keys()].sort()) out.evidence!.push(`${id} ${JSON.stringify(ev.get(id))}`);
  return out;
}

/**
 * Rewrites a store the batch wrote now into the layout of a store written before the rule columns: each
 * rule row's text put in `explanation` (rendered from its numbers), then the columns dropped.
 */
async function toOldLayout(store: DuckStore): Promise<void> {
  for (const table of ["student_mastery_base", "student_mastery_delta", "student_mastery_history"]) {
    const rows = withExplanationTexts(
      await store.all<{ explanation: string; mastery_score: number; id: bigint } & Record<string, unknown>>(
        `SELECT rowid AS id, mastery_score, explanation, ${STORED_NUMBERS_SELECT} FROM ${table}
         WHERE score_source = 'rule_based'`,
      ),
    );
    for (const r of rows)
      await store.run(`UPDATE ${table} SET explanation = $1 WHERE rowid = $2`, [r.explanation, r.id]);
  }
  await store.run("DROP INDEX IF EXISTS student_mastery_by_student");
  await store.run("DROP INDEX IF EXISTS student_mastery_history_by_student");
  for (const table of ["student_mastery_base", "student_mastery_delta", "student_mastery_history"])
    for (const c of RULE_BLOCK_COLUMNS) await store.run(`ALTER TABLE ${table} DROP COLUMN ${c}`);
  await store.run("DROP VIEW student_mastery");
  await store.run(
    "CREATE VIEW student_mastery AS SELECT * EXCLUDE (delta_seq) FROM student_mastery_delta WHERE false UNION ALL SELECT * FROM student_mastery_base",
  );
}

describe("the rule block as numbers: stores written before the columns (rule20)", () => {
  it("an old store (rule rows with text) moved on open answers as the batch's store with numbers does; a rerun writes numbers", async () => {
    const dir = mkdtempSync(join(tmpdir(), "rule-block-"));
    try {
      const path = join(dir, "m.duckdb");
      let store = await DuckStore.open(path);
      await insertEvents(store, events());
      await store.run(
        `INSERT INTO topics (topic_id, name, chapter_id, subject_id, course_id, content_length)
         SELECT 't' || i, 'Topic ' || i, 'c' || (i // 2), 'sub' || (i // 4), 'course', 10 + i FROM range(6) r(i)`,
      );
      await scoreRules(store, { asOf: new Date(T.getTime() - 3 * DAY), now: T, workers: 0 });
      const scored = (await scoreRules(store, { asOf: T, now: T, workers: 0 })).scored;
      const numbered = await store.one<{ n: bigint; text: bigint }>(
        `SELECT count(*) FILTER (WHERE rule_prior IS NOT NULL AND explanation = '') AS n,
                count(*) FILTER (WHERE rule_prior IS NULL) AS text
         FROM student_mastery WHERE score_source = 'rule_based'`,
      );
      // Every rule row stores numbers (with the default weights recency counts for every pair, so every pair
      // has a block; a block-less row would keep the prior's text: test/models/ruleScorer.test.ts).
      expect(scored).toBeGreaterThan(150);
      expect(Number(numbered?.n)).toBe(scored);
      expect(Number(numbered?.text)).toBe(0);
      const now = await answers(store);
      expect(now.mastery!.length).toBe(62);
      expect(now.rollups!.length).toBeGreaterThan(0);
      expect(now.crossings!.length).toBeGreaterThan(0);
      expect(now.history!.filter((h) => h.includes('"scoreSource":"rule_based"')).length).toBe(62);

      await toOldLayout(store);
      store.close();
      store = await DuckStore.open(path);
      const moved = await store.one<{ n: bigint; text: bigint }>(
        `SELECT count(*) FILTER (WHERE rule_prior IS NOT NULL) AS n, count(*) FILTER (WHERE explanation = '') AS text
         FROM student_mastery WHERE score_source = 'rule_based'`,
      );
      expect([Number(moved?.n), Number(moved?.text)]).toEqual([0, 0]);
      expect(await answers(store)).toEqual(now);

      // A full rerun over the text rows (same as-of: no score changes, no history) stores numbers again.
      const rerun = await scoreRules(store, { asOf: T, now: T, workers: 0 });
      expect(rerun.changed).toBe(0);
      const after = await store.one<{ n: bigint }>(
        "SELECT count(*) FILTER (WHERE rule_prior IS NOT NULL) AS n FROM student_mastery WHERE score_source = 'rule_based'",
      );
      expect(Number(after?.n)).toBe(Number(numbered?.n));
      expect(await answers(store)).toEqual(now);
      store.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 240_000);
});
