/**
 * The alert catch-up's read at a server start (storage/alertStore.ts PgAlertStore.recentlyScored) on a
 * PostgreSQL store the size the availability bench leaves behind: its 10 minutes at 500 req/s send 5%
 * POST /events of 10 quiz attempts over 500 students x 20 topics, i.e. ~250 events/s, each moving its
 * key's bkt and elo scores: ~500 history rows/s, ~300,000 over the run, ~60,000 in a 2-minute window.
 * Seeds that history (recorded_at in append order, explanations of the stream's size) through
 * main's DDL (schema <RECENT_SCHEMA>_before: BRIN on recorded_at) and through this tree's
 * (<RECENT_SCHEMA>_after), then alternates main's statement there and this tree's recentlyScored here,
 * printing EXPLAIN ANALYZE's execution time, the client's wall time and whether the keys are the same.
 *
 *   RECENT_SCHEMA=serve11_recent RECENT_ROUNDS=7 npx tsx bench/recentlyScored.bench.ts
 */
import { PG_RECENTLY_SCORED, PgAlertStore } from "../storage/alertStore.ts";
import { PgMasteryStore } from "../storage/masteryStore.ts";
import { PgStore, pgDialectDdl } from "../storage/postgres.ts";
import { CORE_DDL, STREAM_DDL } from "../storage/schema.ts";
import { BENCH_PG_URL, envNumber } from "./benchEnv.ts";

const SCHEMA = process.env.RECENT_SCHEMA || "bench_recent";
const STUDENTS = envNumber("RECENT_STUDENTS", 500);
const TOPICS = envNumber("RECENT_TOPICS", 20);
const ROWS_PER_S = envNumber("RECENT_ROWS_PER_S", 500);
const RUN_S = envNumber("RECENT_RUN_S", 600);
const ROUNDS = envNumber("RECENT_ROUNDS", 5);
const WINDOW_MIN = envNumber("RECENT_WINDOW_MIN", 2);
const LIMIT = 200_000;
const T_END = Date.UTC(2026, 11, 4, 22, 0, 0);

/** The statement before serve11: every key of the window sorted by its newest history row. */
const OLD_SQL = `SELECT student_key, topic_id FROM student_mastery_history WHERE recorded_at >= $1::timestamp
  GROUP BY student_key, topic_id ORDER BY max(recorded_at) DESC, student_key, topic_id LIMIT $2`;

const pgTs = (ms: number) => new Date(ms).toISOString().replace("T", " ").replace("Z", "");

/**
 * Seeds one schema's history. `before`: main's index (BRIN on recorded_at, created on the empty table as
 * PgMasteryStore.open did); after: the tree's PgMasteryStore.open.
 */
async function seed(pg: PgStore, before: boolean): Promise<void> {
  if (before) {
    for (const ddl of [...CORE_DDL, ...STREAM_DDL]) await pg.run(pgDialectDdl(ddl));
    await pg.run(
      "CREATE INDEX IF NOT EXISTS student_mastery_history_recorded ON student_mastery_history USING brin (recorded_at)",
    );
  } else await PgMasteryStore.open(pg);
  const have = await pg.all<{ n: string }>("SELECT count(*)::text AS n FROM student_mastery_history");
  const want = ROWS_PER_S * RUN_S;
  if (Number(have[0]?.n ?? 0) === want) return;
  process.stdout.write(`seeding ${want} history rows...\n`);
  await pg.run("TRUNCATE student_mastery_history");
  // One row per (event, source): row i is recorded at T_END - RUN_S + i / ROWS_PER_S seconds; the key
  // cycles like the bench's POSTs (a student, 10 consecutive topics); ~330-byte explanation JSON.
  const chunk = 50_000;
  for (let from = 0; from < want; from += chunk) {
    await pg.run(
      `INSERT INTO student_mastery_history
         (student_key, topic_id, mastery_score, score_source, model_version, as_of, explanation, recorded_at)
       SELECT md5('student-' || ((i / 20) * 7919 % $2)), 'T' || ((i / 2) % $3),
              0.5, CASE WHEN i % 2 = 0 THEN 'bkt' ELSE 'elo' END, 'bkt@1',
              $4::timestamp + (i * (1000000 / $5)) * interval '1 microsecond',
              '{"top":[{"factor":"recent_accuracy","value":0.6667,"contribution":0.1234},' ||
              '{"factor":"attempts_7d","value":12,"contribution":0.0456},{"factor":"hints_ratio","value":0.1,' ||
              '"contribution":-0.0123}],"base":0.5,"p_mastery":0.6,"p_learn":0.1,"p_slip":0.1,"p_guess":0.2,' ||
              '"elo_ability":0.42,"n":' || i || '}',
              $4::timestamp + (i * (1000000 / $5)) * interval '1 microsecond'
       FROM generate_series($1::int, $6::int) AS i`,
      [from, STUDENTS, TOPICS, pgTs(T_END - RUN_S * 1000), ROWS_PER_S, Math.min(want, from + chunk) - 1],
    );
  }
}

async function explain(pg: PgStore, sql: string, since: string): Promise<{ ms: number; plan: string }> {
  const rows = await pg.all<{ "QUERY PLAN": string }>(`EXPLAIN (ANALYZE, BUFFERS) ${sql}`, [since, LIMIT]);
  const plan = rows.map((r) => r["QUERY PLAN"]).join("\n");
  const m = /Execution Time: ([\d.]+) ms/.exec(plan);
  return { ms: Number(m?.[1] ?? Number.NaN), plan };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? Number.NaN;
};
const list = (xs: number[]) => `${xs.map((x) => x.toFixed(1)).join(" / ")} (median ${median(xs).toFixed(1)})`;

async function main(): Promise<void> {
  const pgBefore = await PgStore.open(BENCH_PG_URL, { schema: `${SCHEMA}_before` });
  const pgAfter = await PgStore.open(BENCH_PG_URL, { schema: `${SCHEMA}_after` });
  try {
    await seed(pgBefore, true);
    await seed(pgAfter, false);
    const alerts = await PgAlertStore.open(pgAfter);
    const since = T_END - WINDOW_MIN * 60_000;
    const total = await pgAfter.all<{ n: string; w: string; k: string }>(
      `SELECT count(*)::text AS n, count(*) FILTER (WHERE recorded_at >= $1::timestamp)::text AS w,
              (SELECT count(*) FROM (SELECT DISTINCT student_key, topic_id FROM student_mastery_history
                WHERE recorded_at >= $1::timestamp) d)::text AS k
       FROM student_mastery_history`,
      [pgTs(since)],
    );
    process.stdout.write(
      `history rows ${total[0]?.n}, in the ${WINDOW_MIN}-minute window ${total[0]?.w}, keys in it ${total[0]?.k}\n`,
    );
    const ms = { before: [] as number[], after: [] as number[] };
    const wall = { before: [] as number[], after: [] as number[] };
    const plans = { before: "", after: "" };
    let same = true;
    for (let r = 0; r < ROUNDS; r++) {
      for (const side of r % 2 === 0 ? (["before", "after"] as const) : (["after", "before"] as const)) {
        const pg = side === "before" ? pgBefore : pgAfter;
        const sql = side === "before" ? OLD_SQL : PG_RECENTLY_SCORED;
        const e = await explain(pg, sql, pgTs(since));
        ms[side].push(e.ms);
        plans[side] = e.plan;
        const t0 = performance.now();
        await pg.all(sql, [pgTs(since), LIMIT]);
        wall[side].push(performance.now() - t0);
      }
      const a = await pgBefore.all<{ student_key: string; topic_id: string }>(OLD_SQL, [pgTs(since), LIMIT]);
      const b = await alerts.recentlyScored(new Date(since), LIMIT);
      if (
        a.length !== b.length ||
        a.some((k, i) => k.student_key !== b[i]?.studentKey || k.topic_id !== b[i]?.topicId)
      )
        same = false;
    }
    process.stdout.write(
      `before (BRIN, one-sided window) plan, last round:\n${plans.before}\n` +
        `after (B-tree, two-sided window) plan, last round:\n${plans.after}\n` +
        `EXPLAIN ANALYZE execution ms, before: ${list(ms.before)}\n` +
        `EXPLAIN ANALYZE execution ms, after:  ${list(ms.after)}\n` +
        `client wall ms, before: ${list(wall.before)}\n` +
        `client wall ms, after:  ${list(wall.after)}\n` +
        `after/before, medians: execution ${(median(ms.after) / median(ms.before)).toFixed(3)}, wall ${(median(wall.after) / median(wall.before)).toFixed(3)}\n` +
        `same keys in the same order in every round: ${same}\n`,
    );
  } finally {
    await pgBefore.close();
    await pgAfter.close();
  }
}

await main();
