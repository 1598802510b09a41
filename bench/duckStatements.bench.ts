/**
 * Where the embedded (DuckDB) server's requests spend their time, statement by statement (issue 15).
 *
 * The real app in this process on a DuckDB file seeded as bench/load.bench.ts seeds it (STMT_STUDENTS
 * students x 20 topics, bkt + elo scores, 3 history rows per topic). Every DuckDB call of the server
 * (connection run / runAndReadAll, prepared-statement runs of the read pool, appender flushes) is wrapped
 * and timed: wall time and this process's CPU (user + system, DuckDB's threads included). Then, after 5
 * warm-up requests each, STMT_REPS sequential requests of three kinds: POST /events with 10 quiz attempts
 * (one student, 10 topics: the load bench's POST, one group), GET /mastery cache misses (masteryJson of a
 * new student each time, no HTTP) and GET /mastery cache hits (HTTP). Prints per request: median wall,
 * CPU, DuckDB calls, and per statement text (first 70 characters) its calls, wall and CPU.
 *
 *   npx tsx bench/duckStatements.bench.ts
 *   STMT_STUDENTS=10000 STMT_REPS=30 STMT_THREADS=1 npx tsx bench/duckStatements.bench.ts
 *   STMT_STUDENTS=10000 STMT_RAW_EVENTS=100 STMT_STATE=1 npx tsx bench/duckStatements.bench.ts
 *
 * STMT_RAW_EVENTS=N: the seeded students also hold N raw events each (20 topics, with school and grade, as
 * bench/intake.bench.ts INTAKE_PREFILL_STUDENTS does), so the statements that read raw_events read a
 * district's raw zone, not only the bench's own POSTs. STMT_STATE=1: every seeded key also has a
 * learner_state row folded from those events (as after a daily run), so a POST folds forward instead of
 * rebuilding its keys from raw_events. STMT_SEED_FILE=path: reuse a seeded file (copied; seeded and saved
 * there on the first run with the same STMT_* shape).
 */
import { copyFileSync, existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Pseudonymizer } from "../features/pseudonymize.ts";
import { replayEvents } from "../models/learnerState.ts";
import { parseThresholds } from "../serving/alerts.ts";
import { createApp } from "../serving/app.ts";
import { topicParamsResolver } from "../serving/learnerState.ts";
import { learnerEvent, streamModels } from "../serving/updater.ts";
import { DuckStore } from "../storage/duckdb.ts";
import { DuckRawEventStore, type LearnerRow } from "../storage/rawEventStore.ts";
import { baseTable, compactServingTables } from "../storage/servingTables.ts";
import { DuckStateStore, type StateCommit } from "../storage/stateStore.ts";
import { upsertStudentContextSql } from "../storage/studentContext.ts";
import { envNumber as env, BENCH_PSEUDONYM_KEY as KEY, quizPostBody } from "./benchEnv.ts";
import { listenBenchApp } from "./benchServer.ts";
import { SEED_EXPLANATION } from "./wideSeed.ts";

const STUDENTS = env("STMT_STUDENTS", 3000);
const REPS = env("STMT_REPS", 20);
const THREADS = process.env.STMT_THREADS ? env("STMT_THREADS", 2) : undefined;
const RAW_EVENTS = env("STMT_RAW_EVENTS", 0);
const WITH_STATE = process.env.STMT_STATE === "1";
const TOPICS = 20;
const EXPLANATION = SEED_EXPLANATION;

const SEED_FILE = process.env.STMT_SEED_FILE;
const dir = mkdtempSync(join(tmpdir(), "stmt-bench-"));
const dbPath = join(dir, "mastery.duckdb");
const reuse = SEED_FILE !== undefined && existsSync(SEED_FILE);
if (reuse) copyFileSync(SEED_FILE!, dbPath);
const openStore = () =>
  DuckStore.open(dbPath, { encryption: null, ...(THREADS !== undefined ? { threads: THREADS } : {}) });
let store = await openStore();
const pseudo = new Pseudonymizer(KEY);

async function seed(): Promise<void> {
  const topics = Array.from(
    { length: TOPICS },
    (_, i) => `('T${i}', 'Topic ${i}', 'C${i % 4}', 'S1', 'K1', 0, 10)`,
  );
  await store.run(
    `INSERT INTO topics (topic_id, name, chapter_id, subject_id, course_id, difficulty_estimate, content_length) VALUES ${topics.join(",")}`,
  );
  await store.run("CREATE TABLE stmt_keys (student_key VARCHAR, n INTEGER)");
  const keys = Array.from({ length: STUDENTS }, (_, s) => `('${pseudo.studentKey(`student-${s}`)}', ${s})`);
  for (let i = 0; i < keys.length; i += 5000)
    await store.run(`INSERT INTO stmt_keys VALUES ${keys.slice(i, i + 5000).join(",")}`);
  const ts = "TIMESTAMP '2026-01-05 10:00:00'";
  const scores = `SELECT k.student_key, t.topic_id, ((k.n * 7) % 100) / 100.0 AS score, s.src
    FROM stmt_keys k, (SELECT topic_id FROM topics) t, (VALUES ('bkt'), ('elo')) s(src)`;
  await store.run(
    `INSERT INTO ${baseTable("student_mastery")} (student_key, topic_id, mastery_score, score_source, model_version, as_of, explanation, last_updated)
     SELECT student_key, topic_id, score, src, 'default', ${ts}, '${EXPLANATION}', ${ts} FROM (${scores}) x`,
  );
  await store.run(
    `INSERT INTO student_mastery_history (student_key, topic_id, mastery_score, score_source, model_version, as_of, explanation, recorded_at)
     SELECT student_key, topic_id, score * h.f, src, 'default', ${ts}, '${EXPLANATION}', ${ts}
     FROM (${scores}) x, (VALUES (0.5), (0.8), (1.0)) h(f) WHERE src = 'bkt'`,
  );
  if (RAW_EVENTS > 0) {
    // n events per student, topic i % 20, a day apart per topic round, with school and grade.
    await store.run(
      `INSERT INTO raw_events (event_id, type, student_key, topic_id, ts, school_id, class_id, grade, question_id,
         is_correct, time_spent_sec, source, ingested_at)
       SELECT 'seed-' || k.n || '-' || e.i, 'quiz_attempt', k.student_key, 'T' || (e.i % ${TOPICS}),
              TIMESTAMP '2025-09-01 08:00:00' + to_seconds(e.i * 3600), 'school-' || (k.n % 50), 'class-' || (k.n % 400),
              1 + k.n % 12, 'q-' || (e.i % 50), (e.i + k.n) % 3 <> 0, 20, 'seed', TIMESTAMP '2025-09-01 08:00:00'
       FROM stmt_keys k, range(${RAW_EVENTS}) e(i)`,
    );
    await store.run(
      upsertStudentContextSql(
        "SELECT student_key, ts, school_id, grade FROM raw_events WHERE source = 'seed'",
      ),
    );
  }
  await store.run("DROP TABLE stmt_keys");
  await store.run("CHECKPOINT");
}

/** STMT_STATE=1: every seeded key's learner_state, folded from its seeded events by the recompute's path. */
async function seedState(): Promise<void> {
  if (!WITH_STATE) return;
  const models = streamModels({});
  const state = await DuckStateStore.open(store);
  const raw = await DuckRawEventStore.open(store);
  const events = await raw.allEvents();
  const byKey = new Map<string, LearnerRow[]>();
  for (const e of events) {
    const id = `${e.student_key}\u0000${e.topic_id}`;
    const l = byKey.get(id);
    if (l === undefined) byKey.set(id, [e]);
    else l.push(e);
  }
  const params = topicParamsResolver(models);
  const commits: StateCommit[] = [];
  for (const rows of byKey.values()) {
    const r0 = rows[0]!;
    const evs = rows.map(learnerEvent);
    commits.push({
      studentKey: r0.student_key,
      topicId: r0.topic_id,
      expectedRev: 0,
      state: {
        ...replayEvents(evs, params(r0.topic_id)),
        bktModelVersion: "default",
        eloModelVersion: "default",
      },
      processed: evs.map((e) => e.eventId),
      updatedAtUs: Date.UTC(2026, 0, 5) * 1000,
    });
  }
  for (let i = 0; i < commits.length; i += 20_000) await state.commit(commits.slice(i, i + 20_000));
  await compactServingTables(store);
}

interface Rec {
  n: number;
  ms: number;
  cpuUs: number;
}
let recs = new Map<string, Rec>();
const cpuUs = (): number => {
  const u = process.cpuUsage();
  return u.user + u.system;
};
const label = (sql: string): string => sql.replace(/\s+/g, " ").trim().slice(0, 70);
function note(key: string, t0: number, c0: number): void {
  const r = recs.get(key) ?? { n: 0, ms: 0, cpuUs: 0 };
  r.n++;
  r.ms += performance.now() - t0;
  r.cpuUs += cpuUs() - c0;
  recs.set(key, r);
}

/** Wraps the connection and prepared-statement prototypes (every connection of the instance). */
async function instrument(): Promise<void> {
  type Fn = (this: { __timing?: boolean }, ...a: unknown[]) => Promise<unknown>;
  const conn = Object.getPrototypeOf(store.conn) as Record<string, Fn>;
  for (const m of ["run", "runAndReadAll"]) {
    const orig = conn[m]!;
    // runAndReadAll calls run: time the outer call only.
    conn[m] = async function (this: { __timing?: boolean }, ...a: unknown[]) {
      if (this.__timing) return orig.apply(this, a);
      const t0 = performance.now();
      const c0 = cpuUs();
      this.__timing = true;
      try {
        return await orig.apply(this, a);
      } finally {
        this.__timing = false;
        note(label(String(a[0])), t0, c0);
      }
    };
  }
  const sqlOf = new WeakMap<object, string>();
  const prepare = conn.prepare!;
  conn.prepare = async function (this: object, ...a: unknown[]) {
    const ps = (await prepare.apply(this, a)) as object;
    sqlOf.set(ps, label(String(a[0])));
    return ps;
  };
  const probe = await store.conn.prepare("SELECT 1");
  const psProto = Object.getPrototypeOf(probe) as Record<string, Fn>;
  probe.destroySync();
  // runAndReadAll calls run: time the outer call only (DuckStore.runPrepared calls run alone).
  for (const m of ["run", "runAndReadAll"]) {
    const runPs = psProto[m]!;
    psProto[m] = async function (this: { __timing?: boolean }) {
      if (this.__timing) return runPs.apply(this);
      const t0 = performance.now();
      const c0 = cpuUs();
      this.__timing = true;
      try {
        return await runPs.apply(this);
      } finally {
        this.__timing = false;
        note(`prepared: ${sqlOf.get(this) ?? "?"}`, t0, c0);
      }
    };
  }
  const createAppender = conn.createAppender!;
  conn.createAppender = async function (this: object, ...a: unknown[]) {
    const ap = (await createAppender.apply(this, a)) as { flushSync(): void };
    const flush = ap.flushSync.bind(ap);
    ap.flushSync = () => {
      const t0 = performance.now();
      const c0 = cpuUs();
      flush();
      note(`appender ${String(a[0])}`, t0, c0);
    };
    return ap;
  };
}

async function phase(name: string, run: (i: number) => Promise<unknown>): Promise<void> {
  for (let i = 0; i < 5; i++) await run(1_000_000 + i);
  recs = new Map();
  const c0 = cpuUs();
  const ms: number[] = [];
  for (let i = 0; i < REPS; i++) {
    const t0 = performance.now();
    await run(i);
    ms.push(performance.now() - t0);
  }
  ms.sort((a, b) => a - b);
  const all = [...recs.values()];
  const calls = all.reduce((s, r) => s + r.n, 0);
  const inCalls = all.reduce((s, r) => s + r.ms, 0);
  console.log(
    `\n${name}: median ${ms[REPS >> 1]!.toFixed(2)} ms wall, ${((cpuUs() - c0) / REPS / 1000).toFixed(2)} ms CPU per request; ` +
      `${(calls / REPS).toFixed(1)} DuckDB calls, ${(inCalls / REPS).toFixed(2)} ms in them`,
  );
  for (const [k, r] of [...recs.entries()].sort((a, b) => b[1].ms - a[1].ms))
    console.log(
      `  ${(r.n / REPS).toFixed(1).padStart(5)}x ${(r.ms / REPS).toFixed(2).padStart(8)} ms  CPU ${(r.cpuUs / REPS / 1000).toFixed(2).padStart(7)} ms  ${k}`,
    );
}

if (!reuse) {
  await seed();
  await seedState();
  if (SEED_FILE !== undefined) {
    // STMT_SEED_FILE: the seeded file is kept there and copied by the next run (the seed takes minutes at 10k).
    await store.run("CHECKPOINT");
    store.close();
    copyFileSync(dbPath, SEED_FILE);
    store = await openStore();
  }
}
const { ctx, server, base, authorization } = await listenBenchApp(
  { createApp, parseThresholds },
  { store, pseudonymizer: pseudo },
);
const auth = { authorization };
await instrument();
console.log(
  `duck statements: ${STUDENTS} students x ${TOPICS} topics, ${RAW_EVENTS} raw events each, state ${WITH_STATE ? "seeded" : "none"}, ${REPS} requests per kind, DuckDB threads ${THREADS ?? "default"}`,
);
await phase("POST /events x10", async (i) => {
  const r = await fetch(`${base}/events`, {
    method: "POST",
    headers: { ...auth, "content-type": "application/json" },
    body: quizPostBody(`stmt${i}`, 7 + (i % 50), (i % 1000) * 10, TOPICS),
  });
  if (r.status !== 200) throw new Error(`POST /events answered ${r.status}: ${await r.text()}`);
});
let miss = 100;
await phase("GET /mastery miss (masteryJson)", () => ctx.masteryJson(pseudo.studentKey(`student-${miss++}`)));
await phase("GET /mastery hit (HTTP)", () =>
  fetch(`${base}/mastery/student-100`, { headers: auth }).then((r) => r.text()),
);
server.close();
store.close();
rmSync(dir, { recursive: true, force: true });
process.exit(0);
