import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import { DuckMasteryReadStore } from "../../serving/masteryReadStore.ts";
import { DuckAlertStore } from "../../storage/alertStore.ts";
import { DuckStore } from "../../storage/duckdb.ts";
import { listValue } from "../../storage/duckdbApi.ts";
import { newestRevisions, revisionsSql } from "../../storage/revisionTable.ts";
import { baseTable, deltaTable, foldDelta } from "../../storage/servingTables.ts";
import { DuckStateStore } from "../../storage/stateStore.ts";
import { compareUtf8 } from "../../storage/utf8Order.ts";

const stores: DuckStore[] = [];
afterAll(() => {
  for (const s of stores) s.close();
});

let shared: Promise<DuckStore> | null = null;
/** One in-memory file for every run (opening one costs ~1 s); each run's students are its own. */
function opened(): Promise<DuckStore> {
  shared ??= (async () => {
    const duck = await DuckStore.open(":memory:");
    stores.push(duck);
    await DuckStateStore.open(duck);
    await DuckAlertStore.open(duck);
    return duck;
  })();
  return shared;
}

// Few students, topics and sources: keys repeat across base and delta and within one statement.
const studentIx = fc.integer({ min: 0, max: 3 });
const TOPICS = ["t0", "t1", "t2", "é", "\u{1F600}", "\uFFFD", "T"];
const ALL_KEYS = [0, 1, 2, 3].flatMap((s) => TOPICS.map((topic) => ({ s, topic })));
const topic = fc.constantFrom(...TOPICS);
const source = fc.constantFrom("bkt", "elo", "rule_based");
const row = fc.record({ s: studentIx, topic, source, score: fc.integer({ min: 0, max: 100 }) });
/** A write: rows replacing base rows (a full run), rows appended to the delta, or a fold of the delta (deletes). */
const op = fc.oneof(
  fc.record({ kind: fc.constant("base" as const), rows: fc.array(row, { maxLength: 6 }) }),
  fc.record({ kind: fc.constant("delta" as const), rows: fc.array(row, { minLength: 1, maxLength: 8 }) }),
  fc.record({ kind: fc.constant("fold" as const), source: fc.option(source, { nil: undefined }) }),
);

const TS = "TIMESTAMP '2026-01-05 10:00:00'";

async function apply(duck: DuckStore, run: number, o: OpValue) {
  const sk = (s: number) => `r${run}-s${s}`;
  if (o.kind === "fold") {
    await foldDelta(
      duck,
      "student_mastery",
      o.source === undefined ? "TRUE" : `score_source = '${o.source}'`,
    );
    await foldDelta(duck, "learner_state");
    return;
  }
  if (o.rows.length === 0) return;
  // Base rows replace the key's base row (the last of a key in the write wins); delta rows append in list
  // order, each with the next delta_seq.
  const rows = o.kind === "base" ? dedupeLast(o.rows, (r) => `${r.s}/${r.topic}/${r.source}`) : o.rows;
  // The student_mastery base has no primary key (BASE_PRIMARY_KEY): a base write drops the keys' rows first.
  if (o.kind === "base")
    await duck.run(
      `DELETE FROM ${baseTable("student_mastery")} WHERE (student_key, topic_id, score_source) IN
         (SELECT (unnest($1::VARCHAR[]), unnest($2::VARCHAR[]), unnest($3::VARCHAR[])))`,
      [
        listValue(rows.map((r) => sk(r.s))),
        listValue(rows.map((r) => r.topic)),
        listValue(rows.map((r) => r.source)),
      ],
    );
  const target = `INSERT INTO ${o.kind === "base" ? baseTable("student_mastery") : deltaTable("student_mastery")}`;
  await duck.run(
    `${target} (student_key, topic_id, mastery_score, score_source, model_version, as_of, explanation, last_updated)
     SELECT unnest($1::VARCHAR[]), unnest($2::VARCHAR[]), unnest($4::DOUBLE[]), unnest($3::VARCHAR[]), 'v',
            ${TS}, '{}', ${TS}`,
    [
      listValue(rows.map((r) => sk(r.s))),
      listValue(rows.map((r) => r.topic)),
      listValue(rows.map((r) => r.source)),
      listValue(rows.map((r) => (r.score + 0.5) / 100)),
    ],
  );
  // learner_state: the same keys (one per student and topic), elo_ability = the score.
  const stateRows = o.kind === "base" ? dedupeLast(o.rows, (r) => `${r.s}/${r.topic}`) : o.rows;
  await duck.run(
    `${o.kind === "base" ? `INSERT OR REPLACE INTO ${baseTable("learner_state")}` : `INSERT INTO ${deltaTable("learner_state")}`}
       (student_key, topic_id, p_mastery, elo_ability, elo_n, bkt_n, correct_streak, updated_at, correct_n,
        bkt_correct_delta, bkt_incorrect_delta, bkt_learn_delta, bkt_streak_obs_delta, bkt_streak_learn_delta,
        elo_correct_delta, elo_incorrect_delta, elo_streak_delta, bkt_model_version, elo_model_version)
     SELECT unnest($1::VARCHAR[]), unnest($2::VARCHAR[]), 0.5, unnest($3::DOUBLE[]), 1, 1, 0, ${TS}, 0,
            0, 0, 0, 0, 0, 0, 0, 0, 'b', 'e'`,
    [
      listValue(stateRows.map((r) => sk(r.s))),
      listValue(stateRows.map((r) => r.topic)),
      listValue(stateRows.map((r) => r.score)),
    ],
  );
}

type RowValue = { s: number; topic: string; source: string; score: number };
type OpValue = { kind: "base" | "delta"; rows: RowValue[] } | { kind: "fold"; source?: string | undefined };

function dedupeLast<T>(xs: readonly T[], id: (x: T) => string): T[] {
  const m = new Map<string, T>();
  for (const x of xs) {
    m.delete(id(x));
    m.set(id(x), x);
  }
  return [...m.values()];
}

describe("revision tables read by student (storage/revisionTable.ts)", () => {
  it("compareUtf8 orders as DuckDB's ORDER BY on VARCHAR (UTF-8 bytes), surrogate pairs included", async () => {
    const duck = await opened();
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.string({
            unit: fc.constantFrom("a", "b", "é", "\uE000", "\uFFFD", "\u{1F600}", "\u{10000}", "A", ""),
          }),
          {
            maxLength: 12,
          },
        ),
        fc.array(fc.string({ unit: "grapheme" }), { maxLength: 12 }),
        async (few, any) => {
          // An empty list has no item type to bind: one string always.
          const xs = [...few, ...any, "a"];
          const sql = (
            await duck.all<{ x: string }>("SELECT unnest($1::VARCHAR[]) AS x ORDER BY x", [listValue(xs)])
          ).map((r) => r.x);
          expect([...xs].sort(compareUtf8)).toEqual(sql);
        },
      ),
      { numRuns: 100 },
    );
    // Known answers: U+E000 < U+FFFD < U+1F600 by code point, while UTF-16 units put U+1F600 (0xD83D ...) first.
    expect(["\u{1F600}", "\uFFFD", "\uE000", "z"].sort(compareUtf8)).toEqual([
      "z",
      "\uE000",
      "\uFFFD",
      "\u{1F600}",
    ]);
  });

  it("property: the newest revision picked in JS equals the view's, for any base / delta content, repeated keys and folds (deletes)", async () => {
    let run = 0;
    const read = new DuckMasteryReadStore(await opened());
    // The miss read through the index alone (the default reads the base by row-id ranges where they pay).
    const byIndex = new DuckMasteryReadStore(await opened(), undefined, { rangeReads: false });
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 6 }), async (ops) => {
        run++;
        const duck = await opened();
        for (const o of ops) await apply(duck, run, o as OpValue);
        for (let s = 0; s < 4; s++) {
          const sk = `r${run}-s${s}`;
          // GET /mastery's reads: the same rows in the same order as the view with its ORDER BY.
          const view = await duck.all(
            `SELECT m.topic_id, m.mastery_score, m.score_source, t.name FROM student_mastery m
             LEFT JOIN topics t USING (topic_id) WHERE m.student_key = $1 ORDER BY m.topic_id, m.score_source`,
            [sk],
          );
          const pick = (
            rows: { topic_id: string; mastery_score: number; score_source: string; name: string | null }[],
          ) =>
            rows.map((r) => ({
              topic_id: r.topic_id,
              mastery_score: r.mastery_score,
              score_source: r.score_source,
              name: r.name,
            }));
          expect(pick(await read.masteryRows(sk))).toEqual(view);
          expect(pick(await read.scoreRows(sk))).toEqual(view);
          expect(pick(await byIndex.scoreRows(sk))).toEqual(view);
          // The abilities (learner_state): newest per topic.
          const abilities = await duck.all<{ topic_id: string; elo_ability: number }>(
            "SELECT topic_id, elo_ability FROM learner_state WHERE student_key = $1",
            [sk],
          );
          expect(await read.eloAbilities(sk)).toEqual(
            new Map(abilities.map((a) => [a.topic_id, a.elo_ability])),
          );
        }
        // Several students in one read (an IN list), the generic helper directly.
        const sks = [0, 1, 2, 3].map((s) => `r${run}-s${s}`);
        const both = newestRevisions(
          "student_mastery",
          await duck.all<{
            student_key: string;
            topic_id: string;
            score_source: string;
            mastery_score: number;
            revision_seq: number;
          }>(
            revisionsSql(
              "student_mastery",
              "student_key, topic_id, score_source, mastery_score",
              "student_key IN ($1, $2, $3, $4)",
            ),
            sks,
          ),
        ).map(({ revision_seq: _, ...r }) => r);
        const viewAll = await duck.all(
          `SELECT student_key, topic_id, score_source, mastery_score FROM student_mastery
           WHERE student_key IN ($1, $2, $3, $4)`,
          sks,
        );
        const order = (rs: Record<string, unknown>[]) =>
          [...rs].sort((a, b) => compareUtf8(JSON.stringify(a), JSON.stringify(b)));
        expect(order(both)).toEqual(order(viewAll));
      }),
      { numRuns: 20, endOnFailure: true },
    );
  }, 240_000);

  it("property: the alert check's candidates equal the view's rows of the checked keys", async () => {
    let run = 1000;
    const alerts = await DuckAlertStore.open(await opened());
    await fc.assert(
      fc.asyncProperty(
        fc.array(op, { minLength: 1, maxLength: 5 }),
        // Every key of the run's students (so base and delta revisions of one key are met), or a few of them.
        fc.oneof(
          fc.constant(ALL_KEYS),
          fc.array(fc.record({ s: studentIx, topic }), { minLength: 1, maxLength: 10 }),
        ),
        async (ops, checked) => {
          run++;
          const duck = await opened();
          for (const o of ops) await apply(duck, run, o as OpValue);
          const keys = checked.map((k) => ({ studentKey: `r${run}-s${k.s}`, topicId: k.topic }));
          const got = (await alerts.candidates(keys)).map((c) => [
            c.student_key,
            c.topic_id,
            c.score_source,
            c.mastery_score,
          ]);
          const want = (
            await duck.all<{
              student_key: string;
              topic_id: string;
              score_source: string;
              mastery_score: number;
            }>(
              `SELECT student_key, topic_id, score_source, mastery_score FROM student_mastery
               JOIN (SELECT DISTINCT unnest($1::VARCHAR[]) AS student_key, unnest($2::VARCHAR[]) AS topic_id) k
               USING (student_key, topic_id)`,
              [listValue(keys.map((k) => k.studentKey)), listValue(keys.map((k) => k.topicId))],
            )
          ).map((c) => [c.student_key, c.topic_id, c.score_source, c.mastery_score]);
          const order = (xs: unknown[][]) => xs.map((x) => JSON.stringify(x)).sort();
          expect(order(got)).toEqual(order(want));
        },
      ),
      { numRuns: 30, endOnFailure: true },
    );
  }, 240_000);
});
