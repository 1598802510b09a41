/**
 * POST /events alone in PostgreSQL + Redis mode: server CPU per sequential 10-event POST (issue 15).
 *
 * A child process runs the app on its own PostgreSQL schema and Redis prefix (`post_bench_<pid>`); this
 * process sends 10-event quiz batches (one student, 10 topics, as the load bench's POST) one after another
 * for POST_SECONDS and reports the child's CPU (user + system, all threads) per POST and its latency median.
 *
 *   npx tsx bench/post.bench.ts                 # 20 s, 300 students round robin
 *   POST_SECONDS=10 POST_PROF=1 npx tsx ...     # + CPU profile of the server (--cpu-prof), top self time
 *   POST_RAW_ROWS=500000 npx tsx ...            # the server's DuckDB copy of raw rows starts with that many
 *   POST_STORE=1 POST_RAW_ROWS=200000 npx tsx ... # the raw-row writes alone (record / append), no server
 *   POST_STORE=1 POST_STORE_ROWS=200 ...        # ... with 200 rows a call (default 10)
 *   MASTERY_PG_URL / MASTERY_REDIS_URL          # default postgres://postgres@127.0.0.1:5432/test, redis://127.0.0.1:6379
 */
import { fork } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { pino } from "pino";
import { Pseudonymizer } from "../features/pseudonymize.ts";
import { parseThresholds } from "../serving/alerts.ts";
import { createApp } from "../serving/app.ts";
import { signToken } from "../serving/auth.ts";
import { DuckStore } from "../storage/duckdb.ts";
import type { PgStore } from "../storage/postgres.ts";
import { rawEventRow } from "../test/storage/rawEventRowFixture.ts";
import { openBenchPgBackends } from "./benchBackends.ts";
import {
  BENCH_PSEUDONYM_KEY as KEY,
  envNumber as num,
  POST_BATCH,
  quizPostBody,
  BENCH_SECRET as SECRET,
} from "./benchEnv.ts";

const TOPICS = 20;

const cpuUs = () => {
  const u = process.cpuUsage();
  return u.user + u.system;
};
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;

async function serve(): Promise<void> {
  // POST_NAME_PREFIX: the PostgreSQL schema and Redis prefix start with it (a helper's own prefix).
  const name = `${process.env.POST_NAME_PREFIX || "post_bench"}_${process.pid}`;
  const dir = mkdtempSync(join(tmpdir(), "post-bench-"));
  const store = await DuckStore.open(join(dir, "mastery.duckdb"), { encryption: null });
  const backends = await openBenchPgBackends(store, name, { invalidatedCacheTtlMs: 30_000 });
  const pg = backends.stores?.pg as PgStore;
  // POST_RAW_ROWS: history already in the server's DuckDB copy of raw rows (a server that has run a while).
  const history = Number(process.env.POST_RAW_ROWS ?? 0);
  if (history > 0)
    await store.run(
      `INSERT INTO raw_events (event_id, type, student_key, topic_id, ts, question_id, is_correct, ingested_at)
       SELECT 'hist-' || i, 'quiz_attempt', 'key-' || (i % 5000), 'T' || (i % ${TOPICS}),
              TIMESTAMP '2025-09-01' + INTERVAL (i) SECOND, 'q-' || (i % 50), i % 3 <> 0, TIMESTAMP '2025-09-01'
       FROM range(${history}) t(i)`,
    );
  const rows = Array.from(
    { length: TOPICS },
    (_, i) => `('T${i}', 'Topic ${i}', 'C${i % 4}', 'S1', 'K1', 0, 10)`,
  );
  await pg.run(
    `INSERT INTO topics (topic_id, name, chapter_id, subject_id, course_id, difficulty_estimate, content_length) VALUES ${rows.join(",")}`,
  );
  const logger = pino({ level: "warn" });
  const { app } = await createApp({
    store,
    pseudonymizer: new Pseudonymizer(KEY),
    jwtSecret: SECRET,
    logger,
    thresholds: parseThresholds({}, {}),
    defaultMetrics: false,
    config: { rateLimit: { windowMs: 60_000, limit: 0 } },
    ...backends.deps,
  });
  const server = app.listen(0, "127.0.0.1");
  await new Promise((r) => server.once("listening", r));
  process.send?.({ port: (server.address() as AddressInfo).port });
  process.on("message", (m) => {
    if (m === "cpu") process.send?.({ cpu: cpuUs() });
    if (m === "stop")
      void (async () => {
        logger.level = "silent";
        server.closeAllConnections();
        server.close();
        await pg.run(`DROP SCHEMA ${name} CASCADE`).catch(() => undefined);
        await backends.close();
        rmSync(dir, { recursive: true, force: true });
        process.exit(0);
      })();
  });
}

let seq = 0;
function batch(student: number): string {
  const body = quizPostBody(`post-${process.pid}`, student, seq, TOPICS);
  seq += POST_BATCH;
  return body;
}

async function drive(): Promise<void> {
  const seconds = num("POST_SECONDS", 20);
  const students = num("POST_STUDENTS", 300);
  const prof = process.env.POST_PROF === "1";
  const profDir = prof ? mkdtempSync(join(tmpdir(), "post-prof-")) : "";
  const child = fork(fileURLToPath(import.meta.url), [], {
    env: { ...process.env, POST_CHILD: "1" },
    execArgv: [...process.execArgv, ...(prof ? ["--cpu-prof", `--cpu-prof-dir=${profDir}`] : [])],
  });
  const next = <T>() => new Promise<T>((ok) => child.once("message", (m) => ok(m as T)));
  const { port } = await next<{ port: number }>();
  const token = await signToken(SECRET, { role: "admin", sub: "bench" });
  const post = async (student: number) => {
    const r = await fetch(`http://127.0.0.1:${port}/events`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: batch(student),
    });
    const text = await r.text();
    if (r.status !== 200 && r.status !== 202) throw new Error(`POST /events answered ${r.status}: ${text}`);
  };
  for (let k = 0; k < 30; k++) await post(k % students); // warm-up (JIT, validators, pools)
  child.send("cpu");
  const cpu0 = (await next<{ cpu: number }>()).cpu;
  const ms: number[] = [];
  const end = performance.now() + seconds * 1000;
  let k = 0;
  while (performance.now() < end) {
    const t0 = performance.now();
    await post(k++ % students);
    ms.push(performance.now() - t0);
    if (k % 200 === 0) process.stderr.write(`  ${k} POSTs\n`);
  }
  child.send("cpu");
  const cpu1 = (await next<{ cpu: number }>()).cpu;
  const exited = new Promise((r) => child.once("exit", r));
  child.send("stop");
  await exited;
  console.log(
    `POST /events x10, pg + Redis, ${ms.length} sequential POSTs in ${seconds} s: median ${median(ms).toFixed(1)} ms, ` +
      `server CPU ${((cpu1 - cpu0) / ms.length / 1000).toFixed(2)} ms per POST`,
  );
  if (prof) {
    const file = readdirSync(profDir).find((f) => f.endsWith(".cpuprofile"));
    if (!file) throw new Error(`no .cpuprofile in ${profDir}`);
    const p = JSON.parse(readFileSync(join(profDir, file), "utf8")) as {
      nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number } }[];
      samples: number[];
    };
    const counts = new Map<number, number>();
    for (const s of p.samples) counts.set(s, (counts.get(s) ?? 0) + 1);
    const self = new Map<string, number>();
    for (const n of p.nodes) {
      const c = counts.get(n.id) ?? 0;
      const key = `${n.callFrame.functionName || "(anon)"} ${n.callFrame.url.replace(/^.*\/(node_modules|h-[^/]+|main)\//, "")}:${n.callFrame.lineNumber}`;
      self.set(key, (self.get(key) ?? 0) + c);
    }
    const total = p.samples.length;
    console.log(`profile ${join(profDir, file)} (${total} samples), top self time:`);
    for (const [key, c] of [...self].sort((a, b) => b[1] - a[1]).slice(0, 40))
      console.log(`  ${((100 * c) / total).toFixed(1)}%  ${key}`);
  }
}

/**
 * POST_STORE=1: the raw-row writes alone on a DuckDB file holding POST_RAW_ROWS rows: CPU per 10-row
 * DuckRawEventStore.record (the embedded write path) and .append (the server's copy in pg mode).
 */
async function storeOnly(): Promise<void> {
  const history = Number(process.env.POST_RAW_ROWS ?? 0);
  // Rows per call: 10 is one POST's; the server's copy batches what arrived while its last write ran.
  const storeRows = Number(process.env.POST_STORE_ROWS ?? 10);
  const dir = mkdtempSync(join(tmpdir(), "post-store-"));
  const { DuckRawEventStore } = await import("../storage/rawEventStore.ts");
  try {
    for (const method of ["record", "append"] as const) {
      const store = await DuckStore.open(join(dir, `${method}.duckdb`), { encryption: null });
      const raw = await DuckRawEventStore.open(store);
      if (!(method in raw)) continue; // a tree without append()
      if (history > 0)
        await store.run(
          `INSERT INTO raw_events (event_id, type, student_key, topic_id, ts, ingested_at)
           SELECT 'hist-' || i, 'quiz_attempt', 'key-' || (i % 5000), 'T' || (i % ${TOPICS}),
                  TIMESTAMP '2025-09-01' + INTERVAL (i) SECOND, TIMESTAMP '2025-09-01' FROM range(${history}) t(i)`,
        );
      const rows = () =>
        Array.from({ length: storeRows }, () => {
          const n = seq++;
          return rawEventRow(
            {
              event_id: `e-${n}`,
              type: "quiz_attempt",
              student_key: `k-${n % 300}`,
              topic_id: `T${n % TOPICS}`,
              ts_us: 1.77e15 + n * 1e6,
              ingested_at_us: 1.77e15 + n,
            },
            { question_id: `q-${n % 50}`, is_correct: n % 3 !== 0, time_spent_sec: 20 },
          );
        });
      const call = (r: ReturnType<typeof rows>) =>
        (raw as unknown as Record<string, (x: typeof r) => Promise<unknown>>)[method]!(r);
      for (let i = 0; i < 30; i++) await call(rows());
      const reps = 300;
      const c0 = cpuUs();
      const t0 = performance.now();
      // The main thread's busy time (event-loop utilization): what blocks other requests; process CPU
      // also counts DuckDB's own threads.
      const elu0 = performance.eventLoopUtilization();
      for (let i = 0; i < reps; i++) await call(rows());
      const elu = performance.eventLoopUtilization(elu0);
      console.log(
        `DuckRawEventStore.${method}, ${storeRows} rows, ${history} rows stored: ${((cpuUs() - c0) / reps / 1000).toFixed(2)} ms CPU, ` +
          `${((performance.now() - t0) / reps).toFixed(2)} ms wall, main thread busy ${(elu.active / reps).toFixed(3)} ms per call`,
      );
      store.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.env.POST_CHILD === "1") await serve();
else if (process.env.POST_STORE === "1") await storeOnly();
else await drive();
