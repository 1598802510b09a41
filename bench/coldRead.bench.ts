/**
 * Where a cold GET /mastery (body cache miss) goes, on PostgreSQL + Redis: the app's miss path
 * (ctx.masteryJson, no HTTP) of students with COLD_TOPICS topics (bkt + elo rows each, as
 * bench/load.bench.ts seeds its "wide" students), and its parts measured on their own over the same
 * students: the query with the topics join (read.masteryRows), as one json_agg text, without the join
 * (read.scoreRows, what the miss runs), rows -> view (readStudentMastery), the experiment arm and model
 * scores, JSON.stringify, the encoding + ETag (servedBody), and a 5 ms sleep (the process's CPU while it
 * only waits). Median ms and CPU (user + system, all threads) per read, mean and median, in rounds.
 *
 *   npx tsx bench/coldRead.bench.ts                     # 100 topics, 200 students, 3 rounds
 *   COLD_TOPICS=20 COLD_STUDENTS=300 COLD_ROUNDS=5 npx tsx bench/coldRead.bench.ts
 *
 * Target (issue 15): a cold GET /mastery <= 2 ms of server time for a student with 100 topics.
 */
import { loadavg } from "node:os";
import { pino } from "pino";
import { Pseudonymizer } from "../features/pseudonymize.ts";
import { parseThresholds } from "../serving/alerts.ts";
import { createApp } from "../serving/app.ts";
import { readStudentMastery, topicMetaOf } from "../serving/masteryView.ts";
import { servedBody } from "../serving/servedBody.ts";
import { openServingBackends } from "../serving/servingBackends.ts";
import { streamModels } from "../serving/updater.ts";
import { DuckStore } from "../storage/duckdb.ts";
import type { PgStore } from "../storage/postgres.ts";
import {
  envNumber as env,
  BENCH_PSEUDONYM_KEY as KEY,
  BENCH_PG_URL as PG_URL,
  BENCH_REDIS_URL as REDIS_URL,
  BENCH_SECRET as SECRET,
} from "./benchEnv.ts";
import { seedWideStudents } from "./wideSeed.ts";

/** The same rows as one JSON text built by PostgreSQL (the lead "one row, no per-row protocol parse"). */
const JSON_AGG_SQL = `SELECT json_agg(json_build_array(topic_id, mastery_score, score_source, model_version, as_of,
    explanation, last_updated) ORDER BY topic_id, score_source)::text AS j
  FROM student_mastery WHERE student_key = $1`;

/** scoreRows' query without the unserved source's explanation and last_updated and the NULL topic columns. */
const SERVED_ONLY_SQL = `SELECT topic_id, mastery_score, score_source, model_version, as_of,
    CASE WHEN score_source = $2 THEN explanation END AS explanation,
    CASE WHEN score_source = $2 THEN last_updated END AS last_updated
  FROM student_mastery WHERE student_key = $1 ORDER BY topic_id, score_source`;

const topicsN = env("COLD_TOPICS", 100);
const studentsN = env("COLD_STUDENTS", 200);
const rounds = env("COLD_ROUNDS", 3);
// COLD_SCHEMA_PREFIX: a prefix for the PostgreSQL schema / Redis keys (a shared machine's naming rule).
const tag = `${process.env.COLD_SCHEMA_PREFIX ?? ""}cold_read_${process.pid}`;
const pseudo = new Pseudonymizer(KEY);
const duck = await DuckStore.open(":memory:", { encryption: null });
const backends = await openServingBackends({
  duck,
  stores: { dbPath: ":memory:", duck, pgUrl: PG_URL, pgSchema: tag, redisUrl: REDIS_URL, redisPrefix: tag },
  models: streamModels({}),
});
const pg = backends.stores?.pg as PgStore;
const cpuUs = () => {
  const u = process.cpuUsage();
  return u.user + u.system;
};
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;
try {
  await seedWideStudents(pg, pseudo, studentsN, topicsN);
  const { ctx } = await createApp({
    store: duck,
    pseudonymizer: pseudo,
    jwtSecret: SECRET,
    logger: pino({ level: "warn" }),
    thresholds: parseThresholds({}, {}),
    defaultMetrics: false,
    ...backends.deps,
  });
  const keys = Array.from({ length: studentsN }, (_, s) => pseudo.studentKey(`wide-${s}`));
  const meta = topicMetaOf(await ctx.topicRows());
  // Warm-up: JIT, prepared statements on the pool's connections, the topics cache.
  for (const k of keys.slice(0, 20)) await ctx.masteryJson(k);
  const now = new Date();
  console.log(
    `cold read: ${studentsN} students x ${topicsN} topics (bkt + elo rows), PostgreSQL schema ${tag}, ${rounds} rounds; ` +
      `load average ${loadavg()
        .map((x) => x.toFixed(1))
        .join(" ")}`,
  );
  for (let r = 0; r < rounds; r++) {
    const part: Record<string, { ms: number[]; cpu: number; cpus: number[] }> = {};
    const time = async <T>(name: string, fn: () => Promise<T> | T): Promise<T> => {
      part[name] ??= { ms: [], cpu: 0, cpus: [] };
      const p = part[name];
      const c0 = cpuUs();
      const t0 = performance.now();
      const v = await fn();
      p.ms.push(performance.now() - t0);
      const c = cpuUs() - c0;
      p.cpu += c;
      p.cpus.push(c);
      return v;
    };
    // The whole miss path: each student once, from an empty cache (the app drops a student's body
    // on invalidate; a fresh app round would re-read topics).
    await ctx.invalidate(keys);
    for (const k of keys) await time("whole miss (masteryJson)", () => ctx.masteryJson(k));
    for (const k of keys) {
      await time("query with the topics join (masteryRows)", () => ctx.read.masteryRows(k));
      await time("query, one JSON text (json_agg) + parse", async () => {
        const r = await pg.allPrepared<{ j: string }>(JSON_AGG_SQL, [k]);
        return JSON.parse(r[0]?.j ?? "[]") as unknown[];
      });
      // (A tree before scoreRows existed measures masteryRows twice.)
      const rd = ctx.read as Partial<Pick<typeof ctx.read, "scoreRows">> & typeof ctx.read;
      const got = await time("query without the join (scoreRows)", () =>
        rd.scoreRows !== undefined ? rd.scoreRows(k) : rd.masteryRows(k),
      );
      // The lead "read only what the served view needs": the one served source's explanation and last_updated,
      // not the other source's (bkt is served here: both sources stored, bkt first in the default order), and
      // no NULL topic columns. Measures the query's price without them; the app does not run it.
      await time("query, served explanation only", () => pg.allPrepared(SERVED_ONLY_SQL, [k, "bkt"]));
      const view = await time("rows -> view (readStudentMastery)", () =>
        readStudentMastery(ctx.read, k, { rows: got, now, topics: async () => meta }),
      );
      await time("experiment arm + model scores (no model)", async () => {
        await ctx.experimentArm(k);
        return ctx.modelScoring.scoreStudent(duck, k, [...new Set(got.map((r) => r.topic_id))]);
      });
      const json = await time("JSON.stringify", () => JSON.stringify(view));
      await time("Buffer + ETag (servedBody)", () => servedBody(json, view.topics));
    }
    // The process's CPU while it only waits (timers, other threads): what every part's CPU includes per ms of wall.
    for (let i = 0; i < 20; i++)
      await time("idle: a 5 ms sleep", () => new Promise((ok) => setTimeout(ok, 5)));
    console.log(`round ${r + 1}:`);
    for (const [name, p] of Object.entries(part))
      console.log(
        `  ${name.padEnd(36)} median ${median(p.ms).toFixed(3)} ms   CPU ${(p.cpu / p.ms.length).toFixed(0)} µs per read (median ${median(p.cpus).toFixed(0)})`,
      );
  }
} finally {
  await pg.run(`DROP SCHEMA IF EXISTS ${tag} CASCADE`).catch(() => undefined);
  await backends.close();
  duck.close();
}
