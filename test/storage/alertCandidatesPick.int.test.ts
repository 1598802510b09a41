import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sourceRank } from "../../serving/masteryReadStore.ts";
import { scoreRowNeeds } from "../../serving/masteryView.ts";
import { type AlertCandidate, PgAlertStore, type ServedRowPick } from "../../storage/alertStore.ts";
import { PgMasteryStore } from "../../storage/masteryStore.ts";
import { PgStore } from "../../storage/postgres.ts";

/**
 * PgAlertStore.candidates with a pick (the alert check's read, storage/alertStore.ts ServedRowPick) on the
 * local PostgreSQL (own schema): for every asked key with scores, exactly the row sourceRank puts first (ties
 * of unranked sources: the first by name), with its explanation when its source is one of pick.explained and
 * "" otherwise, its alert state and nothing of the keys not asked; against all rows picked in JavaScript.
 */
const URL = process.env.MASTERY_TEST_PG_URL ?? "postgres://postgres@127.0.0.1:5432/test";
const SCHEMA = `rel_alert_pick_${process.pid}`;
let pg: PgStore;
let alerts: PgAlertStore;

beforeAll(async () => {
  pg = await PgStore.open(URL, { schema: SCHEMA });
  await PgMasteryStore.open(pg);
  alerts = await PgAlertStore.open(pg);
});
afterAll(async () => {
  await pg.run(`DROP SCHEMA IF EXISTS ${SCHEMA} CASCADE`);
  await pg.close();
});

const SOURCES = ["teacher_override", "served", "bkt", "rule_based", "elo", "latent", "zeta", "alpha"];
const STUDENTS = ["s1", "s2", "s3"];
const TOPICS = ["T1", "T2", "T3"];

interface Row {
  student: string;
  topic: string;
  source: string;
  score: number;
  explanation: string;
}

const rowsArb = fc
  .uniqueArray(
    fc.record({
      student: fc.constantFrom(...STUDENTS),
      topic: fc.constantFrom(...TOPICS),
      source: fc.constantFrom(...SOURCES),
      score: fc.double({ min: 0, max: 1, noNaN: true }),
      explanation: fc.string({ maxLength: 12 }).map((s) => JSON.stringify({ note: s })),
    }),
    { selector: (r) => `${r.student}|${r.topic}|${r.source}`, maxLength: 30 },
  )
  .map((rows) => rows as Row[]);

const pickArb: fc.Arbitrary<ServedRowPick> = fc.oneof(
  fc.constant(scoreRowNeeds({})),
  fc.record({
    first: fc.constantFrom(...SOURCES),
    order: fc.shuffledSubarray(SOURCES),
    explained: fc.subarray(SOURCES),
  }),
);

const keysArb = fc.uniqueArray(
  fc.record({ studentKey: fc.constantFrom(...STUDENTS), topicId: fc.constantFrom(...TOPICS) }),
  { selector: (k) => `${k.studentKey}|${k.topicId}`, minLength: 1 },
);

const view = (c: AlertCandidate) => ({
  key: `${c.student_key}|${c.topic_id}`,
  source: c.score_source,
  score: c.mastery_score,
  explanation: c.explanation,
  below: c.below,
  crossings: c.crossings,
});

describe("PgAlertStore.candidates with a pick", () => {
  it("property: each asked key's first-ranked row alone, its text only where the pick reads it", async () => {
    await fc.assert(
      fc.asyncProperty(rowsArb, pickArb, keysArb, fc.boolean(), async (rows, pick, keys, belowS1) => {
        await pg.run("TRUNCATE student_mastery, alert_state");
        for (const r of rows)
          await pg.run(
            `INSERT INTO student_mastery (student_key, topic_id, mastery_score, score_source, model_version, as_of, explanation, last_updated)
             VALUES ($1, $2, $3, $4, 'v', TIMESTAMP '2026-01-05 10:00:00', $5, TIMESTAMP '2026-01-05 10:00:00')`,
            [r.student, r.topic, r.score, r.source, r.explanation],
          );
        await pg.run(
          `INSERT INTO alert_state (student_key, topic_id, below, crossings, updated_at)
           VALUES ('s1', 'T1', $1, 2, TIMESTAMP '2026-01-05 10:00:00')`,
          [belowS1],
        );
        const all = await alerts.candidates(keys);
        const rank = (s: string) => sourceRank(s, pick.order, pick.first);
        const expected = new Map<string, AlertCandidate>();
        for (const c of all) {
          const k = `${c.student_key}|${c.topic_id}`;
          const cur = expected.get(k);
          const better =
            cur === undefined ||
            rank(c.score_source) < rank(cur.score_source) ||
            (rank(c.score_source) === rank(cur.score_source) && c.score_source < cur.score_source);
          if (better) expected.set(k, c);
        }
        const want = [...expected.values()]
          .map((c) => ({ ...c, explanation: pick.explained.includes(c.score_source) ? c.explanation : "" }))
          .map(view);
        const got = (await alerts.candidates(keys, pick)).map(view);
        const order = (a: { key: string }, b: { key: string }) =>
          a.key < b.key ? -1 : a.key > b.key ? 1 : 0;
        expect(got.sort(order)).toEqual(want.sort(order));
        // Nothing of a key not asked; every asked key with a row is there.
        const asked = new Set(keys.map((k) => `${k.studentKey}|${k.topicId}`));
        const withRows = new Set(rows.map((r) => `${r.student}|${r.topic}`));
        expect(new Set(got.map((g) => g.key))).toEqual(new Set([...asked].filter((k) => withRows.has(k))));
      }),
      { numRuns: 60 },
    );
  });

  it("known answer: bkt served over rule_based and elo, its text not read; a rule_based row alone keeps its text", async () => {
    await pg.run("TRUNCATE student_mastery, alert_state");
    const put = (student: string, source: string, score: number) =>
      pg.run(
        `INSERT INTO student_mastery (student_key, topic_id, mastery_score, score_source, model_version, as_of, explanation, last_updated)
         VALUES ($1, 'T1', $2, $3, 'v', TIMESTAMP '2026-01-05 10:00:00', '{"x":1}', TIMESTAMP '2026-01-05 10:00:00')`,
        [student, score, source],
      );
    await put("a", "elo", 0.1);
    await put("a", "rule_based", 0.2);
    await put("a", "bkt", 0.3);
    await put("b", "rule_based", 0.4);
    await put("b", "elo", 0.5);
    const got = await alerts.candidates(
      [
        { studentKey: "a", topicId: "T1" },
        { studentKey: "b", topicId: "T1" },
      ],
      scoreRowNeeds({}),
    );
    expect(got.map((c) => [c.student_key, c.score_source, c.mastery_score, c.explanation]).sort()).toEqual([
      ["a", "bkt", 0.3, ""],
      ["b", "rule_based", 0.4, '{"x":1}'],
    ]);
  });
});
