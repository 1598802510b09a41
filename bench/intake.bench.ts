/**
 * Where one POST /events batch spends its time, and how long it holds the event loop (issues 12 + 15).
 *
 * For each store (INTAKE_MODES, default "embedded,pg": the DuckDB file; PostgreSQL + Redis with an own
 * schema and key prefix, as `mastery serve` with MASTERY_PG_URL / MASTERY_REDIS_URL) and each batch shape
 * it posts INTAKE_REPS batches (default 7) through HTTP to the real app in this process and prints medians:
 *   - POST ms: the request end to end (client side);
 *   - loop max ms: the longest the event loop was blocked while the POST ran (perf_hooks
 *     monitorEventLoopDelay, 1 ms resolution), the figure /healthz latency follows;
 *   - /healthz max ms: the slowest of /healthz requests sent every 5 ms while the POST ran;
 *   - the synchronous check (contract validation + pseudonymization + row mapping), timed on its own;
 *   - the updater's steps (IncrementalUpdater.stats: record, load, replay, commit, mastery), then the
 *     alert check. (On PostgreSQL the server also copies the raw rows into its DuckDB, in the same
 *     group step as the alert check: part of POST ms, not timed alone.)
 * Batch shapes: "10 keys" = 10 quiz attempts of one student on 10 topics (the load bench's POST);
 * "500 keys" = 50 students x 10 topics; "500 one key" = 500 attempts of one student on one topic.
 *
 *   npx tsx bench/intake.bench.ts
 *   INTAKE_MODES=pg INTAKE_REPS=11 npx tsx bench/intake.bench.ts
 * INTAKE_PREFILL_STUDENTS=N (embedded only): the file holds N other students first, as a district's store
 * would: INTAKE_PREFILL_EVENTS raw events each (default 100) on 20 topics with school and grade, and bkt +
 * elo scores for each of their (student, topic) pairs, so the work of a POST that grows with the store shows.
 *   INTAKE_MODES=embedded INTAKE_PREFILL_STUDENTS=10000 npx tsx bench/intake.bench.ts
 */

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { configuredTimeRange, timeBounds } from "../features/contractConfig.ts";
import { checkRecord } from "../features/ingest.ts";
import { Pseudonymizer } from "../features/pseudonymize.ts";
import { parseThresholds } from "../serving/alerts.ts";
import { createApp } from "../serving/app.ts";
import { type IncrementalUpdater, rowsFromEvent } from "../serving/updater.ts";
import { DuckStore } from "../storage/duckdb.ts";
import type { PgStore } from "../storage/postgres.ts";
import { baseTable } from "../storage/servingTables.ts";
import { upsertStudentContextSql } from "../storage/studentContext.ts";
import { openBenchPgBackends } from "./benchBackends.ts";
import { BENCH_PSEUDONYM_KEY as KEY } from "./benchEnv.ts";
import { listenBenchApp } from "./benchServer.ts";

const REPS = Number(process.env.INTAKE_REPS ?? 7);
if (!Number.isInteger(REPS) || REPS < 1)
  throw new Error(`INTAKE_REPS=${process.env.INTAKE_REPS} must be a positive integer (e.g. 7)`);

type Mode = "embedded" | "pg";
interface Shape {
  name: string;
  batch(rep: number): Record<string, unknown>[];
}

let seq = 0;
const attempt = (student: string, topic: string, n: number): Record<string, unknown> => ({
  event_id: `intake-${process.pid}-${seq++}`,
  type: "quiz_attempt",
  student_id: student,
  topic_id: topic,
  timestamp: new Date(Date.UTC(2026, 0, 6, 8) + n * 1000).toISOString(),
  question_id: `q-${n % 50}`,
  is_correct: n % 3 !== 0,
  time_spent_sec: 20,
});

const SHAPES: Shape[] = [
  {
    name: "10 keys",
    batch: (rep) => Array.from({ length: 10 }, (_, i) => attempt(`s10-${rep}`, `T${i}`, rep * 10 + i)),
  },
  {
    name: "500 keys",
    batch: (rep) =>
      Array.from({ length: 500 }, (_, i) => attempt(`s500-${rep}-${i % 50}`, `T${i % 10}`, rep * 500 + i)),
  },
  {
    name: "500 one key",
    batch: (rep) => Array.from({ length: 500 }, (_, i) => attempt(`s1-${rep}`, "T0", i)),
  },
];

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? Number.NaN;
};
const f1 = (x: number) => x.toFixed(1);

async function open(mode: Mode, dir: string) {
  const store = await DuckStore.open(join(dir, "intake.duckdb"), { encryption: null });
  if (mode === "embedded") return { store, extra: {}, close: async () => {} };
  const tag = `intake_bench_${process.pid}`;
  const backends = await openBenchPgBackends(store, tag);
  const pg = backends.stores?.pg as PgStore;
  const state = backends.stores?.state as { clear?: () => Promise<number> } | undefined;
  return {
    store,
    extra: backends.deps,
    close: async () => {
      await pg.run(`DROP SCHEMA ${tag} CASCADE`).catch(() => undefined);
      await state?.clear?.().catch(() => undefined);
      await backends.close();
    },
  };
}

const PREFILL_STUDENTS = Number(process.env.INTAKE_PREFILL_STUDENTS ?? 0);
const PREFILL_EVENTS = Number(process.env.INTAKE_PREFILL_EVENTS ?? 100);
if (
  !Number.isInteger(PREFILL_STUDENTS) ||
  PREFILL_STUDENTS < 0 ||
  !Number.isInteger(PREFILL_EVENTS) ||
  PREFILL_EVENTS < 1
)
  throw new Error(
    `INTAKE_PREFILL_STUDENTS=${process.env.INTAKE_PREFILL_STUDENTS} / INTAKE_PREFILL_EVENTS=${process.env.INTAKE_PREFILL_EVENTS}: whole numbers (e.g. 10000 / 100)`,
  );

/** Other students' raw events and scores in the embedded file (INTAKE_PREFILL_STUDENTS). */
async function prefill(store: DuckStore): Promise<void> {
  if (PREFILL_STUDENTS === 0) return;
  const t0 = performance.now();
  const n = PREFILL_STUDENTS * PREFILL_EVENTS;
  await store.run(
    `INSERT INTO raw_events (event_id, type, student_key, topic_id, ts, school_id, class_id, grade, question_id,
       is_correct, time_spent_sec, source, ingested_at)
     SELECT 'prefill-' || i, 'quiz_attempt', 'prefill-student-' || (i % $1), 'T' || (i % 20),
            TIMESTAMP '2025-09-01 08:00:00' + to_seconds(i), 'school-' || (i % $1 % 50), 'class-' || (i % $1 % 400),
            1 + i % $1 % 12, 'q-' || (i % 50), i % 3 <> 0, 20, 'prefill', TIMESTAMP '2025-09-01 08:00:00'
     FROM range(${n}) t(i)`,
    [PREFILL_STUDENTS],
  );
  // What a writer of raw_events keeps with them (storage/studentContext.ts); a file without the table skips it.
  const hasContext = await store.one(
    "SELECT 1 AS ok FROM duckdb_tables() WHERE table_name = 'student_context'",
  );
  if (hasContext !== undefined)
    await store.run(
      upsertStudentContextSql(
        "SELECT student_key, ts, school_id, grade FROM raw_events WHERE source = 'prefill'",
      ),
    );
  await store.run(
    `INSERT INTO ${baseTable("student_mastery")} (student_key, topic_id, mastery_score, score_source, model_version,
       as_of, explanation, last_updated)
     SELECT 'prefill-student-' || s, 'T' || t, ((s * 7 + t * 13) % 100) / 100, src, 'default',
            TIMESTAMP '2025-12-01 08:00:00', '{"base":0.3,"factors":[],"rest":0,"score":0.3}', TIMESTAMP '2025-12-01 08:00:00'
     FROM range($1) a(s), range(20) b(t), (VALUES ('bkt'), ('elo')) c(src)`,
    [PREFILL_STUDENTS],
  );
  await store.run("CHECKPOINT");
  process.stderr.write(
    `prefill: ${n.toLocaleString("en-US")} raw events, ${(PREFILL_STUDENTS * 40).toLocaleString("en-US")} scores of ${PREFILL_STUDENTS.toLocaleString("en-US")} students in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`,
  );
}

async function runMode(mode: Mode): Promise<string[]> {
  const dir = mkdtempSync(join(process.env.BENCH_DIR ?? tmpdir(), "intake-bench-"));
  const { store, extra, close } = await open(mode, dir);
  if (mode === "embedded") await prefill(store);
  const pseudo = new Pseudonymizer(KEY);
  const { ctx, server, base, authorization } = await listenBenchApp(
    { createApp, parseThresholds },
    { store, pseudonymizer: pseudo, ...extra },
  );
  const token = authorization.slice("Bearer ".length);
  const updater = ctx.updater as IncrementalUpdater;
  // The alert check, timed by wrapping it (the server calls it once per group, after the updater).
  const extraMs = { alerts: 0 };
  const timed =
    <A extends unknown[], R>(fn: (...a: A) => Promise<R>, k: keyof typeof extraMs) =>
    async (...a: A): Promise<R> => {
      const t = performance.now();
      try {
        return await fn(...a);
      } finally {
        extraMs[k] += performance.now() - t;
      }
    };
  ctx.alerts.check = timed(ctx.alerts.check.bind(ctx.alerts), "alerts");
  const bounds = timeBounds(configuredTimeRange(), Date.now());
  const out: string[] = [];
  const post = (body: string) =>
    fetch(`${base}/events`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body,
    }).then(async (r) => {
      const t = await r.text();
      if (r.status !== 200) throw new Error(`POST /events answered ${r.status}: ${t.slice(0, 300)}`);
    });
  // Warm-up (JIT, first statements): not measured.
  for (let w = 0; w < 3; w++) for (const s of SHAPES) await post(JSON.stringify(s.batch(1000 + w)));

  for (const shape of SHAPES) {
    const m = { post: [] as number[], loop: [] as number[], health: [] as number[], check: [] as number[] };
    const steps = {
      record: [] as number[],
      load: [] as number[],
      replay: [] as number[],
      commit: [] as number[],
      mastery: [] as number[],
    };
    const extra = { alerts: [] as number[] };
    for (let rep = 0; rep < REPS; rep++) {
      process.stderr.write(`\r${mode} ${shape.name}: ${rep + 1}/${REPS}   `);
      const events = shape.batch(rep);
      const body = JSON.stringify(events);
      // The synchronous check alone, as intakeEvents runs it.
      const c0 = performance.now();
      for (const e of events) {
        const c = checkRecord(e, pseudo, bounds);
        if (c.ok) rowsFromEvent(c.event, pseudo, { source: "api", ingestedAtUs: 0 });
      }
      m.check.push(performance.now() - c0);
      const before = structuredClone(updater.stats.ms);
      const beforeExtra = { ...extraMs };
      const h = monitorEventLoopDelay({ resolution: 1 });
      let done = false;
      let healthMax = 0;
      const health = (async () => {
        while (!done) {
          const t0 = performance.now();
          await fetch(`${base}/healthz`).then((r) => r.arrayBuffer());
          healthMax = Math.max(healthMax, performance.now() - t0);
          await new Promise((r) => setTimeout(r, 5));
        }
      })();
      await new Promise((r) => setTimeout(r, 20));
      h.enable();
      const t0 = performance.now();
      await post(body);
      m.post.push(performance.now() - t0);
      h.disable();
      done = true;
      await health;
      m.loop.push(h.max / 1e6);
      m.health.push(healthMax);
      for (const k of Object.keys(steps) as (keyof typeof steps)[])
        steps[k].push(updater.stats.ms[k] - before[k]);
      extra.alerts.push(extraMs.alerts - beforeExtra.alerts);
    }
    process.stderr.write("\n");
    out.push(
      `| ${mode} | ${shape.name} | ${f1(median(m.post))} | ${f1(median(m.loop))} | ${f1(median(m.health))} | ${f1(median(m.check))} | ${(Object.keys(steps) as (keyof typeof steps)[]).map((k) => f1(median(steps[k]))).join(" | ")} | ${f1(median(extra.alerts))} |`,
    );
  }
  server.closeAllConnections();
  server.close();
  await close();
  await store.close();
  rmSync(dir, { recursive: true, force: true });
  return out;
}

const modes = (process.env.INTAKE_MODES ?? "embedded,pg").split(",").map((s) => s.trim());
const rows: string[] = [];
for (const mode of modes) {
  if (mode !== "embedded" && mode !== "pg")
    throw new Error(`INTAKE_MODES: unknown mode "${mode}"; use embedded, pg or embedded,pg`);
  rows.push(...(await runMode(mode)));
}
const { loadavg } = await import("node:os");
console.log(
  `intake bench: medians of ${REPS} POST /events per row; load average ${loadavg()
    .map((x) => x.toFixed(2))
    .join(" ")}`,
);
console.log(
  "| store | batch | POST ms | loop max ms | /healthz max ms | check ms (sync) | record | load | replay | commit | mastery | alerts |",
);
console.log("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
for (const r of rows) console.log(r);
process.exit(0);
