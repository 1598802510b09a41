/**
 * Where a cold GET /mastery (body cache miss) goes, on PostgreSQL + Redis (default) or on the embedded file
 * (COLD_STORE=duckdb).
 *
 * PostgreSQL + Redis: the app's miss path (ctx.masteryJson, no HTTP) of students with COLD_TOPICS topics
 * (bkt + elo rows each, as bench/load.bench.ts seeds its "wide" students), and its parts measured on their own
 * over the same students: the query with the topics join (read.masteryRows), as one json_agg text, without the
 * join (read.scoreRows, what the miss runs), rows -> view (readStudentMastery), the experiment arm and model
 * scores, JSON.stringify, the encoding + ETag (servedBody), and a 5 ms sleep (the process's CPU while it only
 * waits). Median ms and CPU (user + system, all threads) per read, mean and median, in rounds.
 *
 * Embedded (COLD_STORE=duckdb): a DuckDB file whose students have the daily batch's rows (bench/batchRowSeed.ts:
 * per topic bkt and elo stored as numbers, rule_based as its block, and a decaying 'served' text row unless
 * COLD_SERVED=0; in student order, or spread in hash order with COLD_LAYOUT=spread), the app as `mastery serve` opens it (serving.yaml duck_threads, or COLD_DUCK_THREADS; the
 * read pool), read at one fixed instant. Measured: the
 * whole miss (ctx.masteryBody: what GET /mastery runs), CPU per miss median and p90, and a SHA-256 of every
 * body (two trees must print the same); then the miss's parts on their own over the same students, as main's
 * read store runs them: the query on a prepared statement, the result -> row objects (getRowObjectsJS), the
 * newest revision per key and the order, the number columns taken off every row, the needed rows' texts
 * rendered from their numbers (explanationText); the tree's own read store's read of them (scoreRows with
 * needs, all of the above on main), the body text from the rows (studentMasteryJson: served
 * choice, read-time rule scores and decay, serialization), the experiment arm and model scores, and
 * servedBody. COLD_PROF=dir: a V8 CPU profile of each round's whole misses in dir/round<n>.cpuprofile.
 *
 *   npx tsx bench/coldRead.bench.ts                     # PostgreSQL + Redis, 100 topics, 200 students, 3 rounds
 *   COLD_TOPICS=20 COLD_STUDENTS=300 COLD_ROUNDS=5 npx tsx bench/coldRead.bench.ts
 *   COLD_STORE=duckdb npx tsx bench/coldRead.bench.ts   # the embedded file, batch rows + served rows
 *   COLD_STORE=duckdb COLD_LAYOUT=spread npx tsx bench/coldRead.bench.ts   # its base rows in hash order
 *   COLD_STORE=duckdb COLD_RANGE_READS=0 npx tsx bench/coldRead.bench.ts   # every miss through the index
 *
 * Target (issue 15): a cold GET /mastery <= 2 ms of server time for a student with 100 topics.
 */
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { Session } from "node:inspector/promises";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { Pseudonymizer } from "../features/pseudonymize.ts";
import { parseThresholds } from "../serving/alerts.ts";
import { type AppDeps, createApp, loadServingConfig, servingDuckOptions } from "../serving/app.ts";
import { DuckMasteryReadStore, type MasteryViewRow, neededRows } from "../serving/masteryReadStore.ts";
import {
  readStudentMastery,
  scoreRowNeeds,
  studentMasteryJson,
  topicMetaOf,
} from "../serving/masteryView.ts";
import { servedBody } from "../serving/servedBody.ts";
import { openServingBackends } from "../serving/servingBackends.ts";
import { explanationText } from "../serving/storedExplanations.ts";
import { streamModels } from "../serving/updater.ts";
import { DuckStore } from "../storage/duckdb.ts";
import {
  STORED_NUMBERS_SELECT,
  takeExplanationNumbers,
  type WithExplanationNumberColumns,
} from "../storage/explanationNumbers.ts";
import type { PgStore } from "../storage/postgres.ts";
import { newestRevisions, type RevisionRow, revisionsSql } from "../storage/revisionTable.ts";
import { compareUtf8 } from "../storage/utf8Order.ts";
import { seedBatchRows } from "./batchRowSeed.ts";
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
const pseudo = new Pseudonymizer(KEY);
const cpuUs = () => {
  const u = process.cpuUsage();
  return u.user + u.system;
};
const quantile = (xs: number[], q: number) =>
  [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))] ?? Number.NaN;
const median = (xs: number[]) => quantile(xs, 0.5);
const loadText = () =>
  loadavg()
    .map((x) => x.toFixed(1))
    .join(" ");

/** One round's timers: wall ms and CPU µs (user + system, all threads) of each named part, per call. */
function roundTimers() {
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
  const print = (round: number) => {
    // The process's CPU while it only waits (timers, other threads) is the "idle" line: every part's CPU
    // includes it per ms of wall.
    console.log(`round ${round}:`);
    for (const [name, p] of Object.entries(part))
      console.log(
        `  ${name.padEnd(44)} median ${median(p.ms).toFixed(3)} ms   CPU ${(p.cpu / p.ms.length).toFixed(0)} µs per read (median ${median(p.cpus).toFixed(0)}, p90 ${quantile(p.cpus, 0.9).toFixed(0)})`,
      );
  };
  const idle = async () => {
    for (let i = 0; i < 20; i++)
      await time("idle: a 5 ms sleep", () => new Promise((ok) => setTimeout(ok, 5)));
  };
  return { time, print, idle };
}

/** The app as the cold reads run it: warn-level logs, no default process metrics. */
const benchApp = (deps: Pick<AppDeps, "store"> & Partial<AppDeps>) =>
  createApp({
    pseudonymizer: pseudo,
    jwtSecret: SECRET,
    logger: pino({ level: "warn" }),
    thresholds: parseThresholds({}, {}),
    defaultMetrics: false,
    ...deps,
  });

async function pgColdRead(): Promise<void> {
  // COLD_SCHEMA_PREFIX: a prefix for the PostgreSQL schema / Redis keys (a shared machine's naming rule).
  const tag = `${process.env.COLD_SCHEMA_PREFIX ?? ""}cold_read_${process.pid}`;
  const duck = await DuckStore.open(":memory:", { encryption: null });
  const backends = await openServingBackends({
    duck,
    stores: { dbPath: ":memory:", duck, pgUrl: PG_URL, pgSchema: tag, redisUrl: REDIS_URL, redisPrefix: tag },
    models: streamModels({}),
  });
  const pg = backends.stores?.pg as PgStore;
  try {
    await seedWideStudents(pg, pseudo, studentsN, topicsN);
    const { ctx } = await benchApp({ store: duck, ...backends.deps });
    const keys = Array.from({ length: studentsN }, (_, s) => pseudo.studentKey(`wide-${s}`));
    const meta = topicMetaOf(await ctx.topicRows());
    // Warm-up: JIT, prepared statements on the pool's connections, the topics cache.
    for (const k of keys.slice(0, 20)) await ctx.masteryJson(k);
    const now = new Date();
    console.log(
      `cold read: ${studentsN} students x ${topicsN} topics (bkt + elo rows), PostgreSQL schema ${tag}, ${rounds} rounds; load average ${loadText()}`,
    );
    for (let r = 0; r < rounds; r++) {
      const { time, print, idle } = roundTimers();
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
      await idle();
      print(r + 1);
    }
  } finally {
    await pg.run(`DROP SCHEMA IF EXISTS ${tag} CASCADE`).catch(() => undefined);
    await backends.close();
    duck.close();
  }
}

/**
 * scoreRows' read on the embedded file as main's DuckMasteryReadStore runs it (serving/masteryReadStore.ts
 * DUCK_SCORE_SQL), for the parts measured on their own.
 */
const DUCK_SCORE_SQL = revisionsSql(
  "student_mastery",
  `topic_id, mastery_score, score_source, model_version, as_of, explanation, last_updated, ${STORED_NUMBERS_SELECT},
   NULL AS name, NULL AS chapter_id, NULL AS subject_id, NULL AS course_id`,
  "student_key = $1",
);

async function duckColdRead(): Promise<void> {
  // One read instant and scoring time for every run and tree (a decayed score depends on them).
  const readAt = new Date(Date.UTC(2026, 11, 6));
  const dir = mkdtempSync(join(process.env.TMPDIR ?? tmpdir(), "cold-read-"));
  const path = join(dir, "cold.duckdb");
  const served = process.env.COLD_SERVED !== "0";
  const warm = 20;
  const seeded = await DuckStore.open(path, { encryption: null });
  const layout = process.env.COLD_LAYOUT === "spread" ? "spread" : "student";
  const all = await seedBatchRows(seeded, pseudo, {
    students: studentsN + warm,
    topics: topicsN,
    served,
    latent: process.env.COLD_LATENT === "1",
    asOf: new Date(readAt.getTime() - 20 * 3600_000),
    layout,
  });
  seeded.close();
  await seeded.whenClosed();
  // Opened as `mastery serve` opens it: config/serving.yaml duck_threads (COLD_DUCK_THREADS overrides), the app's
  // read pool.
  const duckThreads = Number(process.env.COLD_DUCK_THREADS ?? loadServingConfig().duckThreads);
  const duck = await DuckStore.open(path, { encryption: null, ...servingDuckOptions({ duckThreads }) });
  const profDir = process.env.COLD_PROF;
  const inspector = profDir === undefined ? null : new Session();
  try {
    // COLD_RANGE_READS=0: the read before mastery22 (every miss through the student index, one statement).
    const byIndex = process.env.COLD_RANGE_READS === "0";
    const { ctx } = await benchApp({
      store: duck,
      now: () => readAt,
      ...(byIndex
        ? {
            read: new DuckMasteryReadStore(
              await duck.readPool(loadServingConfig().readConnections || 1),
              undefined,
              {
                rangeReads: false,
              },
            ),
          }
        : {}),
    });
    const keys = all.slice(0, studentsN);
    const meta = topicMetaOf(await ctx.topicRows());
    const needs = scoreRowNeeds({});
    const statement = await duck.withConnection((c) => c.prepare(DUCK_SCORE_SQL));
    // Warm-up on students the rounds do not read: JIT, the pool's prepared statements, the topics cache.
    for (const k of all.slice(studentsN)) await ctx.masteryBody(k);
    console.log(
      `cold read, embedded: ${studentsN} students x ${topicsN} topics (bkt + elo as numbers, rule_based as its block` +
        `${served ? ", served text" : ""})${byIndex ? ", index reads only" : ""}, base rows in ${layout === "spread" ? "hash order (spread)" : "student order"}, read at ${readAt.toISOString()}, DuckDB threads ${duckThreads || "default"}, ` +
        `${rounds} rounds; load average ${loadText()}`,
    );
    for (let r = 0; r < rounds; r++) {
      const { time, print, idle } = roundTimers();
      await ctx.invalidate(keys);
      const digest = createHash("sha256");
      if (inspector !== null) {
        inspector.connect();
        await inspector.post("Profiler.enable");
        await inspector.post("Profiler.setSamplingInterval", { interval: 100 });
        await inspector.post("Profiler.start");
      }
      for (const k of keys)
        digest.update((await time("whole miss (masteryBody)", () => ctx.masteryBody(k))).buf);
      if (inspector !== null && profDir !== undefined) {
        const { profile } = await inspector.post("Profiler.stop");
        mkdirSync(profDir, { recursive: true });
        writeFileSync(join(profDir, `round${r + 1}.cpuprofile`), JSON.stringify(profile));
        inspector.disconnect();
      }
      for (const k of keys) {
        const reader = await time("query (prepared, runAndReadAll)", () => {
          statement.bind([k]);
          return statement.runAndReadAll();
        });
        const objects = (await time("result -> row objects (getRowObjectsJS)", () =>
          reader.getRowObjectsJS(),
        )) as unknown as (MasteryViewRow & RevisionRow & WithExplanationNumberColumns)[];
        const rows = await time("newest revision per key + order", () =>
          newestRevisions("student_mastery", objects, ["student_key"]).sort(
            (a, b) => compareUtf8(a.topic_id, b.topic_id) || compareUtf8(a.score_source, b.score_source),
          ),
        );
        const numbers = await time("number columns off every row", () =>
          rows.map((x) => takeExplanationNumbers(x)),
        );
        await time("needed rows' texts rendered from numbers", () => {
          const needed = neededRows(rows, needs);
          for (let i = 0; i < rows.length; i++)
            if (needed[i])
              rows[i]!.explanation = explanationText(
                rows[i]!.explanation,
                numbers[i],
                rows[i]!.mastery_score,
              );
        });
        // The read store's whole read as the miss runs it (on the tree measured), and the body from its rows, names
        // from the topics cache as the app fills them.
        const got = await time("the read store's read (scoreRows with needs)", () =>
          ctx.read.scoreRows(k, needs),
        );
        for (const x of got) x.name = `Wide ${x.topic_id.slice(1)}`;
        const arm = await ctx.experimentArm(k);
        const model = await time("experiment arm + model scores (no model)", async () => {
          await ctx.experimentArm(k);
          return ctx.modelScoring.scoreStudent(duck, k, [...new Set(got.map((x) => x.topic_id))]);
        });
        const body = await time("rows -> body text (studentMasteryJson)", () =>
          studentMasteryJson(ctx.read, k, { arm, model, rows: got, now: readAt, topics: async () => meta }),
        );
        await time("Buffer + ETag (servedBody)", () => servedBody(body.parts, body.topics));
      }
      await idle();
      print(r + 1);
      console.log(
        `  bodies' SHA-256 ${digest.digest("hex").slice(0, 16)} (the same on every tree that serves the same bytes)`,
      );
    }
    statement.destroySync();
  } finally {
    duck.close();
    await duck.whenClosed();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.env.COLD_STORE === "duckdb") await duckColdRead();
else await pgColdRead();
process.exit(0);
