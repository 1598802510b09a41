/**
 * Production-shaped load on the HTTP API (issue 15 item 1), against bare Express in the same script.
 *
 * Store: LOAD_STUDENTS students x 20 topics (bkt + elo scores, 3 history rows per topic), plus 200
 * "wide" students with 100 topics for the cold-read figure. Traffic: LOAD_CONNECTIONS connections,
 * each request drawn at random: 85% GET /mastery/:id, 5% GET /mastery/:id/:topic/history, 5% GET
 * /recommendations/:id, 5% POST /events (10 quiz attempts). Students are drawn Zipf-like (rank k with
 * weight 1/k), so the hot cache both hits and misses, and events invalidate it. The same mix runs
 * against a bare Express app answering every route with a fixed body of the same size as the app's
 * (POST bodies are parsed as JSON there too), in its own child process, and the ratio is printed.
 * Then both run at a fixed LOAD_RATE req/s (autocannon overallRate) for the p99.
 * Cold read: server time of ctx.masteryJson (the GET /mastery body on a cache miss, no HTTP) for
 * students with 100 topics, measured in the server process before the load.
 *
 * Modes (LOAD_MODES, comma-separated; default "embedded,pg,pg-workers"):
 *   embedded  the DuckDB file (a fresh temp file)
 *   pg        PostgreSQL (MASTERY_PG_URL or postgres://postgres@127.0.0.1:5432/test, own schema) for
 *             scores/history/raw events + Redis (MASTERY_REDIS_URL or redis://127.0.0.1:6379, own prefix)
 *             for learner_state, as `mastery serve` with those variables (body cache invalidated over
 *             Redis pub/sub, serving.yaml shared_cache_ttl_s (300 s) unless LOAD_SHARED_TTL_S says otherwise;
 *             LOAD_SHARED_TTL_S=0: no invalidation channel, the 1 s TTL).
 *   pg-workers  the same stores, LOAD_WORKERS (default 2) app processes sharing one port (node:cluster,
 *             as `mastery serve --workers 2` deploys on a 2-core box), against bare Express with as
 *             many cluster workers; each process has its own body cache (no cold-read figure).
 *   pg-stream the pg stores with the write path as deploy/local.sh and the systemd example run it
 *             (`mastery serve --via-stream` + one `mastery worker`): POST /events is acknowledged once
 *             NATS JetStream (MASTERY_NATS_URL or nats://127.0.0.1:4222, own stream) holds the batch, and
 *             the worker (a child process of the server, the compiled build: `npm run build` first, as
 *             deploy/local.sh) applies it. Not in the default list. The server CPU per request counts
 *             the worker's CPU too, and after each run the server waits until the worker has applied
 *             everything (the drain, counted in that CPU): printed with the largest backlog seen, so the
 *             freshness the write path gave up is in the output next to the latency it bought.
 *
 * Default size is reduced for the shared machine; the issue's size:
 *   LOAD_STUDENTS=10000 LOAD_SECONDS=30 npx tsx bench/load.bench.ts
 *   npx tsx bench/load.bench.ts                       # 3,000 students, 8 s per run
 *   LOAD_PROF=1 npx tsx bench/load.bench.ts           # + CPU profile of the server (--cpu-prof), top self time
 *   LOAD_PROF=1 LOAD_PROF_KEEP=1 ...                  # and keep the .cpuprofile (its directory is printed)
 *   LOAD_DUCK_THREADS=2 ...                           # the server's DuckDB with that many threads (0: one per
 *                                                       core; default serving.yaml duck_threads, as `mastery serve`)
 *   LOAD_GROUP_STATS=1 ...                            # the server prints its POST group-commit stats at the end
 *   LOAD_HOT=100 ...                                  # only GET /mastery of 100 students: the cache-hit path alone
 *   LOAD_SEQ_N=200 ...                                # sequential GETs of each kind before the load (CPU each)
 *   LOAD_KINDS=1 ...                                  # then each request kind alone, open loop for LOAD_KIND_SECONDS
 *                                                       (default 5): server CPU per request of each kind
 *   LOAD_SERVER_NODE_FLAGS="--max-semi-space-size=32" ...  # node / V8 flags of the app's server process only
 *   LOAD_HEAP_PROF=/tmp/dir ...                       # the server's allocations (sampling heap profiler, freed
 *                                                       objects included) in /tmp/dir/server.heapprofile
 *   LOAD_APP_PORT=41500 LOAD_BARE_PORT=41501 ...      # fixed ports of the app and bare Express (one-process modes)
 *   LOAD_PG_ACTIVITY=1 ...                            # the app's PostgreSQL backends (pg_stat_activity every 20 ms)
 *                                                       over its fixed-rate run: mean backends by state and statement
 *   LOAD_PACED=only LOAD_TRACE=1 ...                  # each paced request's latency cut into segments (due -> written
 *                                                       -> server 'request' -> 'finish' -> answer read; bench/paceTrace.ts),
 *                                                       per kind, for bare Express and the app; the tail's clustering in
 *                                                       time with GC, loop lag, POSTs in flight and CPU meanwhile
 *                                                       (LOAD_TRACE_DIR=/tmp/dir: the raw trace as JSON there)
 *   LOAD_STEADY_FROM_S=5 ...                          # the paced runs' latency also without their first 5 s (default
 *                                                       5; 0 = off): the headline p99 keeps them (a run starts with
 *                                                       the body cache's entries expired: its TTL is 30 s and the
 *                                                       bare run before lasts 30 s), this line shows the rest
 * The app's PostgreSQL pool: MASTERY_PG_POOL_MAX (default 10); the line pg-acquire gives how long its acquires
 * waited for a connection (PgStore.onAcquire), in both runs of the app, and a line counts the connections the app
 * opened during each run (pg_stat_activity's backend_start of its application_name, those still open at the end).
 * Targets: throughput >= 0.5x bare Express; p99 <= 50 ms at 1,000 req/s; 0 errors; cold GET <= 2 ms.
 */
import { type ChildProcess, fork } from "node:child_process";
import cluster, { type Worker } from "node:cluster";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { type AddressInfo, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { monitorEventLoopDelay, PerformanceObserver, constants as perfConstants } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import express from "express";
import { Redis } from "ioredis";
import { pino } from "pino";
import { Pseudonymizer } from "../features/pseudonymize.ts";
import { parseThresholds } from "../serving/alerts.ts";
import { createApp, loadServingConfig, type ServingContext, servingDuckOptions } from "../serving/app.ts";
import { signToken } from "../serving/auth.ts";
import { within } from "../serving/gracefulShutdown.ts";
import { openServingBackends } from "../serving/servingBackends.ts";
import { type EventUpdater, streamModels } from "../serving/updater.ts";
import { NatsBus } from "../storage/bus.ts";
import { DuckStore } from "../storage/duckdb.ts";
import { PgStore } from "../storage/postgres.ts";
import { baseTable } from "../storage/servingTables.ts";
import {
  envNumber as env,
  BENCH_PSEUDONYM_KEY as KEY,
  BENCH_NATS_URL as NATS_URL,
  BENCH_PG_URL as PG_URL,
  POST_BATCH,
  quizPostBody,
  BENCH_REDIS_URL as REDIS_URL,
  BENCH_SECRET as SECRET,
} from "./benchEnv.ts";
import { monoOffsetMs, type PacedRequest, type PacedResult, pacedLoad } from "./pacedLoad.ts";
import {
  complete,
  cpuShare,
  maxIn,
  maxInFlight,
  type Pause,
  pausesIn,
  type Sample,
  SEGMENTS,
  segmentTable,
  type TraceRow,
  tailClusters,
} from "./paceTrace.ts";
import { type ActivitySummary, sampleActivity } from "./pgActivity.ts";
import { PostPhases } from "./postPhases.ts";
import { spawnStreamWorker } from "./streamWorker.ts";
import { processCpuMs } from "./topologyCpu.ts";
import { SEED_EXPLANATION } from "./wideSeed.ts";

const TOPICS = 20;
/** PostgreSQL schema and Redis prefix of a run: `<LOAD_NAME_PREFIX>_<server pid>` (helpers share the services). */
const NAME_PREFIX = (() => {
  const p = process.env.LOAD_NAME_PREFIX ?? "serve_load";
  if (!/^[a-z_][a-z0-9_]{0,40}$/.test(p))
    throw new Error(
      `LOAD_NAME_PREFIX must be a lower-case SQL identifier of at most 41 characters (got "${p}"), e.g. serve8_load`,
    );
  return p;
})();
const WIDE_STUDENTS = 200;
const WIDE_TOPICS = 100;

const EXPLANATION = SEED_EXPLANATION;

type Mode = "embedded" | "pg" | "pg-stream" | "pg-workers";
interface Ready {
  port: number;
  postMedianMs: number;
  /** CPU (user + system) per sequential POST of the process that sent them (the server in the one-process modes, its fetch included), µs. */
  postCpuUs: number;
  /**
   * Sequential requests of each GET kind (LOAD_SEQ_N each, after a warm-up; GET /mastery of one student:
   * cache hits): median ms and CPU per request of the process that sent them (in-process fetch included).
   */
  seq: Record<string, { medianMs: number; cpuUs: number }>;
  cold: {
    wideMedianMs: number;
    wideP90Ms: number;
    narrowMedianMs: number;
    /** Server CPU (user + system) per cold read, mean over the reads (µs). */
    wideCpuUs: number;
    narrowCpuUs: number;
    n: number;
  };
  bodies: { mastery: number; history: number; recommendations: number; events: number };
  describe: string;
  /** The server's shared PostgreSQL pool size (null: embedded), whose acquires the probe times (pg-acquire). */
  pgPoolMax: number | null;
}

// ------------------------------------------------------------------------------------------------
// Server child

/**
 * Seeds a store through `exec` (DuckDB and PostgreSQL share this SQL); `masteryTable`: where the scores
 * go (on the DuckDB file student_mastery is a view over student_mastery_base + its delta, storage/servingTables.ts).
 */
async function seed(
  exec: (sql: string) => Promise<void>,
  pseudo: Pseudonymizer,
  students: number,
  masteryTable: string,
) {
  const topicRows: string[] = [];
  for (let i = 0; i < TOPICS; i++) topicRows.push(`('T${i}', 'Topic ${i}', 'C${i % 4}', 'S1', 'K1', 0, 10)`);
  for (let i = 0; i < WIDE_TOPICS; i++)
    topicRows.push(`('W${i}', 'Wide ${i}', 'WC${i % 10}', 'S2', 'K1', 0, 10)`);
  await exec(
    `INSERT INTO topics (topic_id, name, chapter_id, subject_id, course_id, difficulty_estimate, content_length) VALUES ${topicRows.join(",")}`,
  );
  await exec("CREATE TABLE load_keys (student_key VARCHAR, n INTEGER, wide BOOLEAN)");
  const keyRows: string[] = [];
  for (let s = 0; s < students; s++) keyRows.push(`('${pseudo.studentKey(`student-${s}`)}', ${s}, false)`);
  for (let s = 0; s < WIDE_STUDENTS; s++) keyRows.push(`('${pseudo.studentKey(`wide-${s}`)}', ${s}, true)`);
  for (let i = 0; i < keyRows.length; i += 5000)
    await exec(`INSERT INTO load_keys VALUES ${keyRows.slice(i, i + 5000).join(",")}`);
  const ts = "TIMESTAMP '2026-01-05 10:00:00'";
  const scores = `SELECT k.student_key, t.topic_id, ((k.n * 7 + t.i * 13) % 100) / 100.0 AS score, s.src
      FROM load_keys k
      JOIN (SELECT topic_id, CAST(substr(topic_id, 2) AS INTEGER) AS i, substr(topic_id, 1, 1) = 'W' AS wide FROM topics) t
        ON t.wide = k.wide, (VALUES ('bkt'), ('elo')) s(src)`;
  await exec(
    `INSERT INTO ${masteryTable} (student_key, topic_id, mastery_score, score_source, model_version, as_of, explanation, last_updated)
     SELECT student_key, topic_id, score, src, 'default', ${ts}, '${EXPLANATION}', ${ts} FROM (${scores}) x`,
  );
  await exec(
    `INSERT INTO student_mastery_history (student_key, topic_id, mastery_score, score_source, model_version, as_of, explanation, recorded_at)
     SELECT student_key, topic_id, score * h.f, src, 'default', ${ts}, '${EXPLANATION}', ${ts}
     FROM (${scores}) x, (VALUES (0.5), (0.8), (1.0)) h(f) WHERE src = 'bkt'`,
  );
  await exec("DROP TABLE load_keys");
}

const quantile = (xs: number[], q: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? Number.NaN;
};

/** Opens the server's stores; with `seedStudents` also seeds them (pg: a new schema). */
async function openStores(
  mode: "embedded" | "pg" | "pg-stream",
  pseudo: Pseudonymizer,
  seedStudents: number | null,
  names: { schema: string; prefix: string },
) {
  const dir = mkdtempSync(join(tmpdir(), "load-bench-"));
  // As `mastery serve` opens its file: config/serving.yaml duck_threads, unless LOAD_DUCK_THREADS says otherwise.
  const duckThreads = Number(process.env.LOAD_DUCK_THREADS ?? loadServingConfig().duckThreads);
  const store = await DuckStore.open(join(dir, "mastery.duckdb"), {
    encryption: null,
    ...servingDuckOptions({ duckThreads }),
  });
  let extra = {};
  let describe = `embedded DuckDB file ${store.path}`;
  let close = async (_drop: boolean) => {};
  let backlog: (() => Promise<number>) | undefined;
  let pgStore: PgStore | undefined;
  if (mode !== "embedded") {
    const backends = await openServingBackends({
      duck: store,
      stores: {
        dbPath: store.path,
        duck: store,
        pgUrl: PG_URL,
        pgSchema: names.schema,
        redisUrl: REDIS_URL,
        redisPrefix: names.prefix,
      },
      models: streamModels({}),
      // LOAD_SHARED_TTL_S: serving.yaml shared_cache_ttl_s (0: no Redis invalidation, the 1 s TTL as before it).
      // Unset: the product's default (serving/servingBackends.ts INVALIDATED_CACHE_TTL_MS).
      invalidatedCacheTtlMs:
        process.env.LOAD_SHARED_TTL_S === undefined
          ? undefined
          : 1000 * Number(process.env.LOAD_SHARED_TTL_S),
      ...(mode === "pg-stream" ? { viaStream: { natsUrl: NATS_URL, ...streamNames(names.schema) } } : {}),
    });
    const pg = backends.stores?.pg as PgStore;
    const bus = backends.bus;
    if (bus instanceof NatsBus)
      backlog = async () => {
        const b = await bus.backlog();
        return b.pending + b.ackPending;
      };
    if (seedStudents !== null) {
      await seed((sql) => pg.run(sql), pseudo, seedStudents, "student_mastery");
      await pg.run("ANALYZE");
      // The seed writes ~0.5 GB of WAL (10,000 students: 440k score rows, 660k history rows and their indexes)
      // seconds before the measured runs; a deployment's store is not bulk-loaded under its traffic. A
      // CHECKPOINT here writes those pages out before measuring, instead of PostgreSQL's checkpointer doing it
      // during the runs (LOAD_PG_CHECKPOINT=0: not, as before 2026-12-07 stop 53).
      if (process.env.LOAD_PG_CHECKPOINT !== "0")
        await pg.run("CHECKPOINT").catch((err: unknown) => {
          process.stderr.write(
            `  (no CHECKPOINT after the seed: ${(err as Error).message}; it needs a superuser or pg_checkpoint)\n`,
          );
        });
    }
    extra = backends.deps;
    describe = backends.describe;
    pgStore = pg;
    close = async (drop: boolean) => {
      if (drop) await pg.run(`DROP SCHEMA ${names.schema} CASCADE`).catch(() => undefined);
      if (drop && bus instanceof NatsBus) await bus.destroy().catch(() => undefined);
      await backends.close();
    };
  } else if (seedStudents !== null) {
    await seed((sql) => store.run(sql), pseudo, seedStudents, baseTable("student_mastery"));
    await store.run("CHECKPOINT");
  }
  return {
    store,
    extra,
    describe,
    dir,
    /** pg-stream: events published and not yet applied and acknowledged by the worker (its durable consumer). */
    backlog,
    /** The shared PostgreSQL store (pool) of the server, when not embedded. */
    pg: pgStore,
    close: async (drop: boolean) => {
      await close(drop);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function openApp(stores: Awaited<ReturnType<typeof openStores>>, pseudo: Pseudonymizer) {
  const logger = pino({ level: "warn" });
  const { app, ctx } = await createApp({
    store: stores.store,
    pseudonymizer: pseudo,
    jwtSecret: SECRET,
    logger,
    thresholds: parseThresholds({}, {}),
    defaultMetrics: false,
    config: {
      rateLimit: { windowMs: 60_000, limit: 0 },
      // LOAD_CACHE_MB: serving.yaml cache_max_mb (the GET /mastery body cache's bound); unset: the product's.
      ...(process.env.LOAD_CACHE_MB !== undefined
        ? { cacheMaxBytes: Math.round(Number(process.env.LOAD_CACHE_MB) * 1024 * 1024) }
        : {}),
    },
    ...stores.extra,
  });
  return { app, ctx, logger };
}

/** This process's GET /mastery body cache hits and misses so far (its /metrics counter). */
async function cacheCounts(ctx: ServingContext, workerPid?: number): Promise<Counts> {
  const c = await ctx.metrics.cache.get();
  const n = (r: string) => c.values.find((v) => v.labels.result === r)?.value ?? 0;
  const h = await ctx.metrics.historyCache.get();
  const hn = (r: string) => h.values.find((v) => v.labels.result === r)?.value ?? 0;
  return {
    hits: n("hit"),
    misses: n("miss"),
    historyHits: hn("hit"),
    historyMisses: hn("miss"),
    // pg-stream: the worker applies the POSTs' events; its CPU is part of what a request costs.
    cpuUs: cpuUs() + (workerPid === undefined ? 0 : 1000 * (processCpuMs(workerPid) ?? 0)),
  };
}

/** GET /mastery cache counters and CPU time (user + system, µs) of a server process so far. */
interface Counts {
  hits: number;
  misses: number;
  /** GET /mastery/:id/:topic/history cache hits and misses (its /metrics counter). */
  historyHits: number;
  historyMisses: number;
  cpuUs: number;
}
const cpuUs = (): number => {
  const u = process.cpuUsage();
  return u.user + u.system;
};
/** Server time per request (arrival of the request to the last byte handed to the socket), by kind. */
interface ProbeStats {
  kind: string;
  n: number;
  p50: number;
  p99: number;
  mean: number;
}
const requestKind = (method: string | undefined, url: string | undefined): string =>
  method === "POST"
    ? "events"
    : (url ?? "").startsWith("/recommendations")
      ? "recommendations"
      : (url ?? "").endsWith("/history")
        ? "history"
        : "mastery";

/**
 * The server-side probe: every request's time in this process, from its 'request' event to 'finish',
 * kept per kind until the driver asks ("probe" message: quantiles, then reset). What the server itself
 * adds, apart from the generator and the network stack. Also, over the same stretch, the event loop's
 * delay (monitorEventLoopDelay, 1 ms resolution: how late a due timer ran, i.e. how long the loop was
 * held, kind "loop") and the garbage collector's pauses (kind "gc": n pauses, their p50 / p99 / mean ms; "gc-major": the mark-compact ones).
 * Returns a recorder of other waits in this process (e.g. "pg-acquire": each acquire of the PostgreSQL pool),
 * reported as their own kinds over the same stretch and not counted in "all".
 */
/**
 * LOAD_TRACE=1: this server's times of each paced request that carries `x-bench-id` (bench/pacedLoad.ts
 * `trace`), its 'request' event (a listener ahead of the app's) and its res.end call, on the machine's monotonic
 * clock; its GC pauses (start, duration) and its event loop's lateness (a 5 ms timer: how late it ran,
 * kept when over 1 ms). Sent and cleared on a "trace" message.
 */
function installTrace(server: import("node:http").Server): void {
  const mono = monoOffsetMs();
  const ids: number[] = [];
  const reqs: number[] = [];
  const fins: number[] = [];
  const gc: Pause[] = [];
  const lag: Sample[] = [];
  server.prependListener("request", (req, res) => {
    const t0 = performance.now() + mono;
    const id = req.headers["x-bench-id"];
    if (typeof id !== "string") return;
    // The end of the server's time is when the app called res.end (the answer's bytes go to the kernel
    // then): 'finish' waits for a write callback, which a busy loop runs late, after the client has read it.
    const end = res.end;
    let t1 = Number.NaN;
    res.end = function (this: typeof res, ...args: unknown[]) {
      t1 = performance.now() + mono;
      return (end as (...a: unknown[]) => typeof res).apply(this, args);
    } as typeof res.end;
    res.once("finish", () => {
      ids.push(Number(id));
      reqs.push(t0);
      fins.push(t1);
    });
  });
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) gc.push({ start: e.startTime + mono, duration: e.duration });
  }).observe({ entryTypes: ["gc"] });
  let expected = performance.now() + 5;
  setInterval(() => {
    const now = performance.now();
    if (now - expected > 1) lag.push({ t: expected + mono, v: now - expected });
    expected = now + 5;
  }, 5).unref();
  process.on("message", (m) => {
    if (m !== "trace") return;
    process.send?.({ trace: { ids, reqs, fins, gc, lag } });
    for (const xs of [ids, reqs, fins, gc, lag]) xs.length = 0;
  });
}

/** What installTrace sends. */
interface ServerTrace {
  ids: number[];
  reqs: number[];
  fins: number[];
  gc: Pause[];
  lag: Sample[];
}

/**
 * The paced run's decomposition (bench/paceTrace.ts) as lines: each segment's quantiles over all kinds and
 * per kind, the tail's (>= p99) clustering in 100 ms windows of due time, and for the largest windows what
 * the processes did over the window plus the tail's median latency: the server's GC and loop lag, the
 * generator's loop lag, POSTs in flight at the server, and the CPU (share of one core) of the server, the
 * generator and every postgres process on the machine.
 */
function traceLines(
  who: string,
  rows: TraceRow[],
  server: ServerTrace,
  genLag: Sample[],
  cpu: { server: Sample[]; gen: Sample[]; pg: Sample[] },
): string[] {
  const ok = complete(rows);
  const f = (x: number) => (Number.isFinite(x) ? x.toFixed(1) : "-");
  const out = [
    `  paced trace, ${who}: ${ok.length} of ${rows.length} requests with every time (ms: p50 / p90 / p99 / max)`,
  ];
  for (const [kind, rec] of segmentTable(ok))
    out.push(
      `    ${kind.padEnd(16)} ` +
        SEGMENTS.map(
          (s) => `${s} ${f(rec[s].p50)} / ${f(rec[s].p90)} / ${f(rec[s].p99)} / ${f(rec[s].max)}`,
        ).join("; ") +
        ` (n ${rec.total.n})`,
    );
  const t = tailClusters(ok, 0.99, 100, 5);
  const mean = (m: Record<string, number>) => SEGMENTS.map((s) => `${s} ${f(m[s] ?? Number.NaN)}`).join(", ");
  out.push(
    `    tail (total >= p99 ${f(t.threshold)} ms, ${t.n} requests): mean ${mean(t.mean)}; in ${t.windows} of ` +
      `${t.runWindows} windows of 100 ms, half of them in ${t.windowsForHalf}, 80% in ${t.windowsFor80}`,
  );
  const tailMedian = quantile(
    ok.filter((r) => r.done - r.due >= t.threshold).map((r) => r.done - r.due),
    0.5,
  );
  for (const w of t.top) {
    const [a, b] = [w.start, w.start + 100 + tailMedian];
    const g = pausesIn(server.gc, a, b);
    const pct = (xs: Sample[]) => `${f(100 * cpuShare(xs, a, b))}%`;
    out.push(
      `    window +${f((w.start - (ok[0]?.due ?? w.start)) / 1000)} s: ${w.n} tail requests, mean ${mean(w.mean)}; ` +
        `over ${f(b - a)} ms: server GC ${f(g.ms)} ms in ${g.n} pauses (longest ${f(g.max)}), server loop lag max ${f(maxIn(server.lag, a, b))}, ` +
        `generator loop lag max ${f(maxIn(genLag, a, b))}, POSTs in flight max ${maxInFlight(ok, "events", a, b)}; ` +
        `CPU server ${pct(cpu.server)}, generator ${pct(cpu.gen)}, postgres ${pct(cpu.pg)}`,
    );
  }
  const all = pausesIn(server.gc, ok[0]?.due ?? 0, ok.at(-1)?.done ?? 0);
  out.push(
    `    whole run: server GC ${f(all.ms)} ms in ${all.n} pauses; server loop lag samples > 1 ms ${server.lag.length} (max ${f(maxIn(server.lag, 0, Number.POSITIVE_INFINITY))}); ` +
      `generator's ${genLag.length} (max ${f(maxIn(genLag, 0, Number.POSITIVE_INFINITY))})`,
  );
  return out;
}

function installProbe(
  server: import("node:http").Server,
  phases?: PostPhases,
): (kind: string, ms: number) => void {
  const times = new Map<string, number[]>();
  const loop = monitorEventLoopDelay({ resolution: 1 });
  loop.enable();
  const gcPauses: number[] = [];
  const gcMajor: number[] = [];
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      gcPauses.push(e.duration);
      if ((e as { detail?: { kind?: number } }).detail?.kind === perfConstants.NODE_PERFORMANCE_GC_MAJOR)
        gcMajor.push(e.duration);
    }
  }).observe({ entryTypes: ["gc"] });
  // A POST's waits (PostPhases), by phase: reported as kinds "events.<phase>" (not in "all").
  const phaseTimes = new Map<string, number[]>();
  const waits = new Map<string, number[]>();
  server.on("request", (req, res) => {
    const t0 = performance.now();
    const kind = requestKind(req.method, req.url);
    res.once("finish", () => {
      const t1 = performance.now();
      const xs = times.get(kind) ?? [];
      if (xs.length === 0) times.set(kind, xs);
      xs.push(t1 - t0);
      if (kind !== "events" || phases === undefined) return;
      const body = (req as { body?: { events?: { event_id?: unknown }[] } }).body;
      const id = body?.events?.[0]?.event_id;
      if (typeof id !== "string") return;
      for (const [phase, ms] of phases.take(id, t0, t1)) {
        const ps = phaseTimes.get(phase) ?? [];
        if (ps.length === 0) phaseTimes.set(phase, ps);
        ps.push(ms);
      }
    });
  });
  process.on("message", (m) => {
    if (m !== "probe") return;
    const all = [...times.values()].flat();
    const stats = (kind: string, xs: number[]): ProbeStats => ({
      kind,
      n: xs.length,
      p50: quantile(xs, 0.5),
      p99: quantile(xs, 0.99),
      mean: xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length),
    });
    const probe = [
      stats("all", all),
      ...[...times.entries()].sort().map(([k, xs]) => stats(k, xs)),
      ...[...phaseTimes.entries()].map(([k, xs]) => stats(`events.${k}`, xs)),
      ...[...waits.entries()].map(([k, xs]) => stats(k, xs)),
      // (Kinds without a sample are left out: their quantiles are NaN, which the IPC sends as null.)
      ...(loop.count > 0
        ? [
            {
              kind: "loop",
              n: loop.count,
              p50: loop.percentile(50) / 1e6,
              p99: loop.percentile(99) / 1e6,
              mean: loop.mean / 1e6,
            },
          ]
        : []),
      ...(gcPauses.length > 0 ? [stats("gc", gcPauses)] : []),
      ...(gcMajor.length > 0 ? [stats("gc-major", gcMajor)] : []),
    ];
    times.clear();
    phaseTimes.clear();
    waits.clear();
    loop.reset();
    gcPauses.length = 0;
    gcMajor.length = 0;
    process.send?.({ probe });
  });
  return (kind, ms) => {
    const xs = waits.get(kind) ?? [];
    if (xs.length === 0) waits.set(kind, xs);
    xs.push(ms);
  };
}

const sumCounts = (cs: Counts[]): Counts => ({
  hits: cs.reduce((a, c) => a + c.hits, 0),
  misses: cs.reduce((a, c) => a + c.misses, 0),
  historyHits: cs.reduce((a, c) => a + c.historyHits, 0),
  historyMisses: cs.reduce((a, c) => a + c.historyMisses, 0),
  cpuUs: cs.reduce((a, c) => a + c.cpuUs, 0),
});

/** Asks each cluster worker for its Counts (it answers {cache}) and sums them. */
function workerCounts(workers: readonly Worker[]): Promise<Counts> {
  return Promise.all(
    workers.map(
      (w) =>
        new Promise<Counts>((ok) => {
          w.once("message", (r) => ok((r as { cache: Counts }).cache));
          w.send("cache");
        }),
    ),
  ).then(sumCounts);
}

/** Body sizes of each route (for the bare twin) and the median of 20 sequential POST /events. */
async function sizeAndPost(
  port: number,
): Promise<Pick<Ready, "bodies" | "postMedianMs" | "postCpuUs" | "seq">> {
  const token = await signToken(SECRET, { role: "admin", sub: "bench" });
  const get = (path: string) =>
    fetch(`http://127.0.0.1:${port}${path}`, { headers: { authorization: `Bearer ${token}` } }).then((r) =>
      r.text(),
    );
  const postMs: number[] = [];
  let cpu0 = cpuUs();
  for (let k = 0; k < 30; k++) {
    // The first 10 warm the intake path up (JIT, validators); the figures are of the last 20.
    if (k === 10) {
      postMs.length = 0;
      cpu0 = cpuUs();
    }
    const t0 = performance.now();
    await fetch(`http://127.0.0.1:${port}/events`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: eventBatch("warm", k),
    }).then((r) => r.text());
    postMs.push(performance.now() - t0);
  }
  const eventsBody = await fetch(`http://127.0.0.1:${port}/events`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: eventBatch("sizing", 0),
  }).then((r) => r.text());
  return {
    postMedianMs: quantile(postMs, 0.5),
    postCpuUs: (cpuUs() - cpu0) / postMs.length,
    seq: await sequentialGets(get),
    bodies: {
      mastery: (await get("/mastery/student-1")).length,
      history: (await get("/mastery/student-1/T3/history")).length,
      recommendations: (await get("/recommendations/student-1")).length,
      events: eventsBody.length,
    },
  };
}

/**
 * Each GET kind alone, sequentially (one request in flight): a cost per request that the other jobs on
 * the machine inflate less than the open-loop runs. Students 1..n in turn (the history and
 * recommendations of students whose GET /mastery body is cached), GET /mastery of student 1 only.
 */
async function sequentialGets(
  get: (path: string) => Promise<string>,
): Promise<Record<string, { medianMs: number; cpuUs: number }>> {
  const n = env("LOAD_SEQ_N", 200);
  const paths: Record<string, (i: number) => string> = {
    "mastery (hit)": () => "/mastery/student-1",
    history: (i) => `/mastery/student-${1 + (i % 50)}/T${i % TOPICS}/history`,
    recommendations: (i) => `/recommendations/student-${1 + (i % 50)}`,
  };
  for (let i = 1; i <= 50; i++) await get(`/mastery/student-${i}`);
  const out: Record<string, { medianMs: number; cpuUs: number }> = {};
  for (const [kind, path] of Object.entries(paths)) {
    for (let i = 0; i < 50; i++) await get(path(i)); // warm-up
    const ms: number[] = [];
    const cpu0 = cpuUs();
    for (let i = 0; i < n; i++) {
      const t0 = performance.now();
      await get(path(i));
      ms.push(performance.now() - t0);
    }
    out[kind] = { medianMs: quantile(ms, 0.5), cpuUs: (cpuUs() - cpu0) / n };
  }
  return out;
}

async function serve(mode: Mode): Promise<void> {
  if (mode === "pg-workers") return serveWorkers();
  const students = env("LOAD_STUDENTS", 3000);
  const pseudo = new Pseudonymizer(KEY);
  const names = { schema: `${NAME_PREFIX}_${process.pid}`, prefix: `${NAME_PREFIX}_${process.pid}` };
  const stores = await openStores(mode, pseudo, students, names);
  const worker = mode === "pg-stream" ? await startStreamWorker(names, stores.dir) : undefined;
  const sampler = stores.backlog === undefined ? undefined : new BacklogSampler(stores.backlog);
  // A POST's waits for the probe (bench/postPhases.ts): the group commit's updater (PostgreSQL + Redis:
  // the backends' IncrementalUpdater), the group commit itself and the invalidation publish, timed.
  const phases = new PostPhases();
  const extra = stores.extra as { updater?: EventUpdater };
  const inner = extra.updater as { stats?: { replayedKeys?: number; storedReads?: number } } | undefined;
  if (extra.updater !== undefined) extra.updater = phases.inner(extra.updater);
  const { app, ctx, logger } = await openApp(stores, pseudo);
  const groupCommit = ctx.intake.updater;
  ctx.intake.updater = phases.outer(groupCommit);
  ctx.invalidate = phases.invalidate(ctx.invalidate.bind(ctx));
  // Cold reads: each wide / narrow student once, sequentially, before any request.
  const time = async (key: string) => {
    const t0 = performance.now();
    await ctx.masteryJson(key);
    return performance.now() - t0;
  };
  for (let s = 100; s < 110; s++) await time(pseudo.studentKey(`wide-${s}`)); // JIT warm-up
  const wide: number[] = [];
  const cpu0 = cpuUs();
  for (let s = 0; s < 100; s++) wide.push(await time(pseudo.studentKey(`wide-${s}`)));
  const cpu1 = cpuUs();
  const narrow: number[] = [];
  for (let s = students - 100; s < students; s++) narrow.push(await time(pseudo.studentKey(`student-${s}`)));
  const cpu2 = cpuUs();
  // LOAD_APP_PORT / LOAD_BARE_PORT: fixed ports for the one-process modes (helpers sharing a machine each
  // keep to their own range); default 0, any free port.
  const server = app.listen(env("LOAD_APP_PORT", 0), "127.0.0.1");
  await new Promise((r) => server.once("listening", r));
  const record = installProbe(server, phases);
  if (process.env.LOAD_TRACE === "1") installTrace(server);
  // pg-acquire: how long each acquire of the shared PostgreSQL pool waited for a connection.
  if (stores.pg !== undefined) stores.pg.onAcquire = (ms) => record("pg-acquire", ms);
  const port = (server.address() as AddressInfo).port;
  const ready: Ready = {
    port,
    describe: stores.describe,
    pgPoolMax: stores.pg?.poolMax ?? null,
    cold: {
      wideMedianMs: quantile(wide, 0.5),
      wideP90Ms: quantile(wide, 0.9),
      narrowMedianMs: quantile(narrow, 0.5),
      wideCpuUs: (cpu1 - cpu0) / wide.length,
      narrowCpuUs: (cpu2 - cpu1) / narrow.length,
      n: wide.length,
    },
    ...(await sizeAndPost(port)),
  };
  const heap = await startHeapSampling();
  process.send?.(ready);
  process.on("message", (m) => {
    if (m === "cache") void cacheCounts(ctx, worker?.pid).then((cache) => process.send?.({ cache }));
    if (m === "backlog" && sampler !== undefined)
      void sampler.drain().then((backlog) => process.send?.({ backlog }));
    if (m === "stop")
      void (async () => {
        await heap?.();
        sampler?.stop();
        process.stderr.write(
          `  app server process: peak RSS ${Math.round(process.resourceUsage().maxRSS / 1024)} MiB\n`,
        );
        if (worker !== undefined) await stopChild(worker, 12_000);
        // Requests still queued when the bench stops fail on the closed stores: not bench errors.
        logger.level = "silent";
        const cs = (groupCommit as { stats?: object }).stats;
        if (process.env.LOAD_GROUP_STATS === "1" && cs)
          process.stderr.write(`  coalescing stats ${JSON.stringify(cs)}\n`);
        // Keys rebuilt from the start, and how many of them read their stored events back (serving/updater.ts).
        if (process.env.LOAD_GROUP_STATS === "1" && inner?.stats?.replayedKeys !== undefined)
          process.stderr.write(
            `  updater: ${inner.stats.replayedKeys} keys rebuilt, ${inner.stats.storedReads ?? "-"} of them read back\n`,
          );
        // Mean milliseconds per batch of each updater step (serving/updater.ts UpdaterStats.ms).
        const u = inner?.stats as { batches?: number; ms?: Record<string, number> } | undefined;
        if (process.env.LOAD_GROUP_STATS === "1" && u?.ms !== undefined && (u.batches ?? 0) > 0)
          process.stderr.write(
            `  updater ms per batch (${u.batches}): ${Object.entries(u.ms)
              .map(([k, v]) => `${k} ${(v / u.batches!).toFixed(1)}`)
              .join(", ")}\n`,
          );
        server.closeAllConnections();
        server.close();
        // Queries still running keep DuckDB busy; exiting releases the file (the profile is written on exit).
        await within(stores.close(true), 15000);
        process.exit(0);
      })();
  });
}

/** pg-stream: the run's NATS stream, subject prefix and durable consumer (own names on a shared NATS). */
function streamNames(schema: string) {
  return { stream: schema.toUpperCase(), subjectPrefix: `${schema}.events`, durable: `${schema}-worker` };
}

/**
 * pg-stream: one `mastery worker` on the run's schema, Redis prefix and stream (as deploy/local.sh starts it,
 * from the compiled build), with the bench's pseudonym key; resolves once it logged that it consumes.
 */
async function startStreamWorker(
  names: { schema: string; prefix: string },
  dir: string,
): Promise<ChildProcess> {
  const s = streamNames(names.schema);
  let log = "";
  let started: (() => void) | undefined;
  const w = spawnStreamWorker({
    stream: s.stream,
    subjectPrefix: s.subjectPrefix,
    durable: s.durable,
    schema: names.schema,
    redisPrefix: names.prefix,
    pseudonymKey: KEY,
    db: join(dir, "worker.duckdb"),
    env: { LOG_LEVEL: "warn" },
    onLog: (d) => {
      log += d;
      if (process.env.LOAD_WORKER_LOG === "1") process.stderr.write(`[worker] ${d}`);
      // Its first line names the stores and models, once it has opened them and before it consumes.
      if (/ worker: /.test(log)) started?.();
    },
  });
  await new Promise<void>((ok, fail) => {
    const timer = setTimeout(
      () => fail(new Error(`pg-stream: the stream worker did not start within 60 s; its log:\n${log}`)),
      60_000,
    );
    started = () => {
      clearTimeout(timer);
      ok();
    };
    if (/ worker: /.test(log)) started();
    w.once("exit", (code) => {
      clearTimeout(timer);
      fail(new Error(`pg-stream: the stream worker exited with ${code} before it started; its log:\n${log}`));
    });
  });
  return w;
}

/** SIGTERM, then SIGKILL after `ms`; resolves when the process is gone. */
async function stopChild(p: ChildProcess, ms: number): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return;
  let exited = false;
  const gone = new Promise((ok) => p.once("exit", ok)).then(() => {
    exited = true;
  });
  p.kill("SIGTERM");
  await within(gone, ms);
  if (!exited) p.kill("SIGKILL");
  await gone;
}

/**
 * pg-stream: the worker's backlog (events acknowledged to the client and not yet applied), sampled every
 * 200 ms; drain() waits until it is empty (at most 120 s) and returns the largest backlog since the last
 * drain and how long the emptying took.
 */
class BacklogSampler {
  private max = 0;
  private readonly timer: NodeJS.Timeout;
  constructor(private readonly read: () => Promise<number>) {
    this.timer = setInterval(() => {
      void this.read()
        .then((n) => {
          this.max = Math.max(this.max, n);
        })
        .catch(() => undefined);
    }, 200);
  }
  async drain(): Promise<{ maxEvents: number; drainMs: number; leftEvents: number }> {
    const t0 = performance.now();
    let left = await this.read();
    while (left > 0 && performance.now() - t0 < 120_000) {
      this.max = Math.max(this.max, left);
      await new Promise((r) => setTimeout(r, 50));
      left = await this.read();
    }
    const out = { maxEvents: this.max, drainMs: performance.now() - t0, leftEvents: left };
    this.max = 0;
    return out;
  }
  stop(): void {
    clearInterval(this.timer);
  }
}

/**
 * LOAD_HEAP_PROF=dir: V8's sampling heap profiler in the server from when it is ready until it stops, counting
 * the objects the garbage collector freed too (where the young generation's churn is allocated), written to
 * dir/server.heapprofile (Chrome DevTools reads it). Returns the stop, or undefined when not asked for.
 */
async function startHeapSampling(): Promise<(() => Promise<void>) | undefined> {
  const dir = process.env.LOAD_HEAP_PROF;
  if (dir === undefined || dir === "") return undefined;
  const { Session } = await import("node:inspector/promises");
  const session = new Session();
  session.connect();
  await session.post("HeapProfiler.enable");
  await session.post("HeapProfiler.startSampling", {
    samplingInterval: 16384,
    includeObjectsCollectedByMajorGC: true,
    includeObjectsCollectedByMinorGC: true,
  });
  return async () => {
    const { profile } = await session.post("HeapProfiler.stopSampling");
    writeFileSync(join(dir, "server.heapprofile"), JSON.stringify(profile));
    session.disconnect();
  };
}

/**
 * pg-workers: LOAD_WORKERS (default 2) app processes behind one port (node:cluster, as `mastery serve
 * --workers N` runs them) on one PostgreSQL schema and Redis prefix, each with its own body cache and
 * the cross-process invalidation. The primary seeds, forks and measures the POSTs; no cold read.
 */
async function serveWorkers(): Promise<void> {
  const n = env("LOAD_WORKERS", 2);
  const pseudo = new Pseudonymizer(KEY);
  if (cluster.isWorker) {
    const names = { schema: process.env.LOAD_SCHEMA ?? "", prefix: process.env.LOAD_PREFIX ?? "" };
    const stores = await openStores("pg", pseudo, null, names);
    const { app, ctx, logger } = await openApp(stores, pseudo);
    const server = app.listen(Number(process.env.LOAD_PORT), "127.0.0.1");
    await new Promise((r) => server.once("listening", r));
    process.on("message", (m) => {
      if (m === "cache") void cacheCounts(ctx).then((cache) => process.send?.({ cache }));
      if (m === "stop")
        void (async () => {
          logger.level = "silent";
          server.closeAllConnections();
          server.close();
          await within(stores.close(false), 3000);
          process.exit(0);
        })();
    });
    process.send?.("up");
    return;
  }
  const names = { schema: `${NAME_PREFIX}_${process.pid}`, prefix: `${NAME_PREFIX}_${process.pid}` };
  const seeded = await openStores("pg", pseudo, env("LOAD_STUDENTS", 3000), names);
  await seeded.close(false);
  const port = await freePort();
  const workers = Array.from({ length: n }, () =>
    cluster.fork({ LOAD_SCHEMA: names.schema, LOAD_PREFIX: names.prefix, LOAD_PORT: String(port) }),
  );
  await Promise.all(
    workers.map(
      (w) =>
        new Promise<void>((ok, fail) => {
          w.once("message", () => ok());
          w.once("exit", (code) =>
            fail(new Error(`pg-workers: a worker exited with ${code} before it listened`)),
          );
        }),
    ),
  );
  const ready: Ready = {
    port,
    describe: `${n} app processes (node:cluster, one port) on PostgreSQL schema ${names.schema} + Redis prefix ${names.prefix}`,
    pgPoolMax: null,
    cold: {
      wideMedianMs: Number.NaN,
      wideP90Ms: Number.NaN,
      narrowMedianMs: Number.NaN,
      wideCpuUs: Number.NaN,
      narrowCpuUs: Number.NaN,
      n: 0,
    },
    ...(await sizeAndPost(port)),
  };
  process.send?.(ready);
  process.on("message", (m) => {
    if (m === "cache") void workerCounts(workers).then((cache) => process.send?.({ cache }));
    if (m === "stop")
      void (async () => {
        await Promise.all(
          workers.map((w) => {
            const gone = new Promise((ok) => w.once("exit", ok));
            w.send("stop");
            return within(gone, 5000);
          }),
        );
        const drop = await openStores("pg", pseudo, null, names);
        await within(drop.close(true), 15000);
        process.exit(0);
      })();
  });
}

async function freePort(): Promise<number> {
  const s = createServer().listen(0, "127.0.0.1");
  await new Promise((ok) => s.once("listening", ok));
  const port = (s.address() as AddressInfo).port;
  await new Promise((ok) => s.close(ok));
  return port;
}

/**
 * Bare Express: every route answers a fixed body of the app's size for that route; with LOAD_BARE_WORKERS
 * > 1 as that many node:cluster processes on one port (the anchor of the pg-workers mode).
 */
async function serveBare(): Promise<void> {
  const n = Number(process.env.LOAD_BARE_WORKERS ?? 1);
  if (n > 1 && cluster.isPrimary) {
    const port = await freePort();
    const workers = Array.from({ length: n }, () => cluster.fork({ LOAD_PORT: String(port) }));
    await Promise.all(workers.map((w) => new Promise((ok) => w.once("listening", ok))));
    process.send?.({ port });
    process.on("message", (msg) => {
      if (msg === "cache") void workerCounts(workers).then((cache) => process.send?.({ cache }));
      if (msg === "stop") {
        for (const w of workers) w.process.kill();
        process.exit(0);
      }
    });
    return;
  }
  const sizes = JSON.parse(process.env.LOAD_BODIES ?? "{}") as Ready["bodies"];
  const body = (n: number) => JSON.stringify({ pad: "x".repeat(Math.max(0, n - 10)) });
  const m = body(sizes.mastery);
  const h = body(sizes.history);
  const r = body(sizes.recommendations);
  const e = body(sizes.events);
  const app = express();
  app.use(express.json({ limit: "5mb" }));
  app.get("/mastery/:id", (_q, res) => void res.type("application/json").send(m));
  app.get("/mastery/:id/:topic/history", (_q, res) => void res.type("application/json").send(h));
  app.get("/recommendations/:id", (_q, res) => void res.type("application/json").send(r));
  app.post("/events", (_q, res) => void res.type("application/json").send(e));
  const server = app.listen(
    cluster.isWorker ? Number(process.env.LOAD_PORT) : env("LOAD_BARE_PORT", 0),
    "127.0.0.1",
  );
  await new Promise((ok) => server.once("listening", ok));
  if (!cluster.isWorker) installProbe(server);
  if (!cluster.isWorker && process.env.LOAD_TRACE === "1") installTrace(server);
  const counts = (): Counts => ({ hits: 0, misses: 0, historyHits: 0, historyMisses: 0, cpuUs: cpuUs() });
  if (cluster.isWorker) {
    process.on("message", (msg) => {
      if (msg === "cache") process.send?.({ cache: counts() });
    });
    return;
  }
  process.send?.({ port: (server.address() as AddressInfo).port });
  process.on("message", (msg) => {
    if (msg === "cache") process.send?.({ cache: counts() });
    if (msg === "stop") process.exit(0);
  });
}

// ------------------------------------------------------------------------------------------------
// Driver

let eventSeq = 0;
function eventBatch(tag: string, student: number): string {
  const body = quizPostBody(`load-${tag}-${process.pid}`, student, eventSeq, TOPICS);
  eventSeq += POST_BATCH;
  return body;
}

/** Zipf(1) sampler over 0..n-1 (rank = student index). */
function zipf(n: number): () => number {
  const cdf = new Float64Array(n);
  let acc = 0;
  for (let k = 0; k < n; k++) {
    acc += 1 / (k + 1);
    cdf[k] = acc;
  }
  return () => {
    const u = Math.random() * acc;
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if ((cdf[mid] as number) < u) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
}

/** The mix's request kinds, and the uniform draw that picks each one in setupRequest. */
const KINDS = ["mastery", "history", "recommendations", "events"] as const;
type Kind = (typeof KINDS)[number];
const KIND_DRAW: Record<Kind, number> = { mastery: 0, history: 0.87, recommendations: 0.92, events: 0.97 };

interface CannonResult {
  requests: { average: number; total: number; sent: number };
  latency: { p50: number; p90: number; p99: number; max: number };
  non2xx: number;
  errors: number;
  timeouts: number;
}
type Cannon = (opts: Record<string, unknown>) => Promise<CannonResult>;

/** pg-stream's drain after a run (BacklogSampler.drain, in the server). */
interface Backlog {
  maxEvents: number;
  drainMs: number;
  leftEvents: number;
}

/**
 * LOAD_TRACE=1, over one paced run: the generator's loop lateness (a 5 ms timer, kept when over 1 ms) and
 * every 50 ms the cumulative CPU-ms of the server, this process and all postgres processes (listed again
 * every 500 ms, as the pool's backends come and go; a backend that exits keeps its last reading, so its CPU
 * after that reading is missed); then joins the generator's trace with the server's (installTrace) into traceLines.
 */
class TraceSampler {
  private readonly mono = monoOffsetMs();
  private readonly lag: Sample[] = [];
  private readonly cpu = { server: [] as Sample[], gen: [] as Sample[], pg: [] as Sample[] };
  /** CPU-ms of each postgres process at its last reading. */
  private readonly pgMs = new Map<number, number>();
  private pgPids: number[] = [];
  private pgListed = 0;
  private readonly timers: NodeJS.Timeout[];
  constructor(private readonly proc: ChildProcess) {
    let expected = performance.now() + 5;
    const lagTimer = setInterval(() => {
      const now = performance.now();
      if (now - expected > 1) this.lag.push({ t: expected + this.mono, v: now - expected });
      expected = now + 5;
    }, 5);
    const cpuTimer = setInterval(() => this.sampleCpu(), 50);
    this.sampleCpu();
    this.timers = [lagTimer, cpuTimer];
  }
  private sampleCpu(): void {
    const t = performance.now() + this.mono;
    this.cpu.server.push({ t, v: processCpuMs(this.proc.pid ?? -1) ?? Number.NaN });
    this.cpu.gen.push({ t, v: cpuUs() / 1000 });
    if (t - this.pgListed >= 500) {
      this.pgListed = t;
      this.pgPids = readdirSync("/proc").flatMap((d) => {
        if (!/^\d+$/.test(d)) return [];
        try {
          return readFileSync(`/proc/${d}/comm`, "utf8").trim() === "postgres" ? [Number(d)] : [];
        } catch {
          return [];
        }
      });
    }
    for (const pid of this.pgPids) {
      const ms = processCpuMs(pid);
      if (ms !== undefined) this.pgMs.set(pid, ms);
    }
    this.cpu.pg.push({ t, v: [...this.pgMs.values()].reduce((a, b) => a + b, 0) });
  }
  async lines(who: string, trace: import("./pacedLoad.ts").PacedTrace, kinds: string[]): Promise<string[]> {
    this.sampleCpu();
    for (const t of this.timers) clearInterval(t);
    const server = await ask<ServerTrace>(this.proc, "trace");
    const rows: TraceRow[] = kinds.map((kind, i) => ({
      kind,
      due: trace.due[i] ?? Number.NaN,
      write: trace.write[i] ?? Number.NaN,
      req: Number.NaN,
      fin: Number.NaN,
      done: trace.done[i] ?? Number.NaN,
    }));
    server.ids.forEach((id, j) => {
      const r = rows[id];
      if (r === undefined) return;
      r.req = server.reqs[j] ?? Number.NaN;
      r.fin = server.fins[j] ?? Number.NaN;
    });
    const dir = process.env.LOAD_TRACE_DIR;
    if (dir !== undefined && dir !== "") {
      // Created here, so a run of minutes does not end on a missing directory after its measurements.
      mkdirSync(dir, { recursive: true });
      writeFileSync(
        join(dir, `trace-${who.replace(/[^a-z]+/gi, "_")}-${process.pid}.json`),
        JSON.stringify({ rows, server, genLag: this.lag, cpu: this.cpu }),
      );
    }
    return traceLines(who, rows, server, this.lag, this.cpu);
  }
}

/** Sends `what` to a server child and resolves with the field of that name of its reply. */
function ask<T>(proc: ChildProcess, what: "cache" | "probe" | "backlog" | "trace"): Promise<T> {
  return new Promise<T>((ok) => {
    const on = (m: unknown) => {
      const v = (m as Record<string, unknown>)[what];
      if (v === undefined) return;
      proc.off("message", on);
      ok(v as T);
    };
    proc.on("message", on);
    proc.send(what);
  });
}

function child(args: string[], extraEnv: Record<string, string>, execArgv: string[] = []) {
  return fork(fileURLToPath(import.meta.url), args, {
    execArgv: ["--import", "tsx", ...execArgv],
    env: { ...process.env, ...extraEnv },
  });
}

function selfTimeReport(profDir: string): string {
  const files = readdirSync(profDir).filter((f) => f.endsWith(".cpuprofile"));
  if (files.length === 0) return "  (no profile written)\n";
  type Node = { id: number; callFrame: { functionName: string; url: string; lineNumber: number } };
  const prof = JSON.parse(readFileSync(join(profDir, files[0] as string), "utf8")) as {
    nodes: Node[];
    samples: number[];
    timeDeltas: number[];
  };
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const fn = new Map<string, number>();
  const area = new Map<string, number>();
  let total = 0;
  prof.samples.forEach((id, i) => {
    const dt = prof.timeDeltas[i] ?? 0;
    total += dt;
    const cf = byId.get(id)?.callFrame;
    if (cf === undefined) return;
    const url = cf.url.replace(/^file:\/\//, "");
    const short = url.includes("node_modules/")
      ? url.slice(url.lastIndexOf("node_modules/") + 13)
      : url.replace(/^.*\/h-[^/]+\//, "").replace(/^.*\/main\//, "");
    const name = `${cf.functionName || "(anonymous)"} ${short}:${cf.lineNumber + 1}`;
    fn.set(name, (fn.get(name) ?? 0) + dt);
    const a =
      cf.functionName === "(idle)"
        ? "idle"
        : cf.functionName === "(garbage collector)"
          ? "GC"
          : url === ""
            ? `native/${cf.functionName}`
            : url.includes("node_modules/")
              ? (url.split("node_modules/").pop() ?? "").split("/")[0] === "@duckdb"
                ? "@duckdb"
                : (url.split("node_modules/").pop() ?? "").split("/")[0]
              : url.startsWith("node:")
                ? "node core"
                : "project";
    area.set(a ?? "?", (area.get(a ?? "?") ?? 0) + dt);
  });
  const top = (m: Map<string, number>, n: number) =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([k, v]) => `  ${((100 * v) / total).toFixed(1).padStart(5)}%  ${k}`)
      .join("\n");
  return `  by area (share of profiled wall time):\n${top(area, 12)}\n  top self time:\n${top(fn, 18)}\n`;
}

async function drive(): Promise<void> {
  const students = env("LOAD_STUDENTS", 3000);
  const seconds = env("LOAD_SECONDS", 8);
  const connections = env("LOAD_CONNECTIONS", 50);
  const rate = env("LOAD_RATE", 1000);
  const modes = (process.env.LOAD_MODES ?? "embedded,pg,pg-workers")
    .split(",")
    .map((m) => m.trim()) as Mode[];
  const prof = process.env.LOAD_PROF === "1";
  const autocannon = createRequire(import.meta.url)("autocannon") as Cannon;
  const token = await signToken(SECRET, { role: "admin", sub: "bench" });
  const pick = zipf(students);
  // LOAD_HOT=n: only GET /mastery of students 0..n-1 (after the warm-up all cache hits): the hit path alone.
  const hotOnly = process.env.LOAD_HOT ? env("LOAD_HOT", 100) : 0;
  const out: string[] = [
    `load bench: ${students} students x ${TOPICS} topics (+${WIDE_STUDENTS} x ${WIDE_TOPICS}), ${connections} connections, ` +
      `mix 85% GET /mastery, 5% history, 5% recommendations, 5% POST /events x10; Zipf(1) students; ${seconds} s per run`,
  ];
  for (const mode of modes) {
    if (mode !== "embedded" && mode !== "pg" && mode !== "pg-stream" && mode !== "pg-workers")
      throw new Error(
        `LOAD_MODES: unknown mode "${mode}"; use embedded, pg, pg-stream, pg-workers or a list (embedded,pg)`,
      );
    const profDir = prof ? mkdtempSync(join(tmpdir(), `load-prof-${mode}-`)) : "";
    // LOAD_SERVER_NODE_FLAGS: node / V8 flags of the app's server process only (e.g. --max-semi-space-size=32).
    const serverFlags = (process.env.LOAD_SERVER_NODE_FLAGS ?? "").split(" ").filter((f) => f !== "");
    // The app's PostgreSQL connections carry application_name <prefix>_app (PGAPPNAME): each run counts the
    // ones opened during it, and LOAD_PG_ACTIVITY=1 samples what they do.
    const appName = mode !== "embedded" ? `${NAME_PREFIX}_app` : null;
    const activityName = process.env.LOAD_PG_ACTIVITY === "1" ? appName : null;
    const app = child(["--serve", mode], appName === null ? {} : { PGAPPNAME: appName }, [
      ...serverFlags,
      ...(prof ? ["--cpu-prof", `--cpu-prof-dir=${profDir}`] : []),
    ]);
    const ready = await new Promise<Ready>((ok, fail) => {
      app.once("message", (m) => ok(m as Ready));
      app.once("exit", (code) => fail(new Error(`${mode} server exited with ${code} before it was ready`)));
    });
    const bare = child(["--bare"], {
      LOAD_BODIES: JSON.stringify(ready.bodies),
      LOAD_BARE_WORKERS: mode === "pg-workers" ? String(env("LOAD_WORKERS", 2)) : "1",
    });
    const barePort = await new Promise<number>((ok) =>
      bare.once("message", (m) => ok((m as { port: number }).port)),
    );
    // One request of the mix (kind: one request kind alone, the LOAD_KINDS phase; undefined: the mix).
    const draw = (kind?: Kind): PacedRequest => {
      const u = hotOnly ? 0 : kind !== undefined ? KIND_DRAW[kind] : Math.random();
      const s = hotOnly ? Math.floor(Math.random() * hotOnly) : pick();
      if (u < 0.85) return { method: "GET", path: `/mastery/student-${s}` };
      if (u < 0.9) return { method: "GET", path: `/mastery/student-${s}/T${s % TOPICS}/history` };
      if (u < 0.95) return { method: "GET", path: `/recommendations/student-${s}` };
      return { method: "POST", path: "/events", body: eventBatch(mode, s) };
    };
    const run = (port: number, duration: number, overallRate?: number, kind?: Kind) =>
      autocannon({
        url: `http://127.0.0.1:${port}`,
        connections,
        duration,
        ...(overallRate !== undefined ? { overallRate } : {}),
        headers: { authorization: `Bearer ${token}` },
        requests: [
          {
            setupRequest: (req: Record<string, unknown>) => {
              const r = draw(kind);
              return r.body === undefined
                ? { ...req, method: r.method, path: r.path }
                : {
                    ...req,
                    method: r.method,
                    path: r.path,
                    headers: {
                      ...(req.headers as Record<string, string>),
                      "content-type": "application/json",
                    },
                    body: r.body,
                  };
            },
          },
        ],
      });
    // The mix at a fixed rate from the paced generator (bench/pacedLoad.ts), as a CannonResult.
    const paced = async (port: number, duration: number): Promise<CannonResult> => {
      const tracing = process.env.LOAD_TRACE === "1";
      const kinds: string[] = [];
      const sampler = tracing ? new TraceSampler(port === barePort ? bare : app) : null;
      const p = await pacedLoad({
        port,
        rate,
        durationS: duration,
        connections,
        headers: { authorization: `Bearer ${token}` },
        next: () => {
          const r = draw();
          if (tracing) kinds.push(requestKind(r.method, r.path));
          return r;
        },
        trace: tracing,
        ...(steadyFromS > 0 ? { steadyFromS } : {}),
      });
      if (sampler !== null && p.trace !== undefined)
        traceOut.push(
          ...(await sampler.lines(port === barePort ? "bare Express" : `app (${mode})`, p.trace, kinds)),
        );
      pacedLast.r = p;
      const ms = (x: number) => Math.round(x * 10) / 10;
      return {
        requests: { average: p.achievedRate, total: p.completed, sent: p.due },
        latency: {
          p50: ms(p.latency.p50),
          p90: ms(p.latency.p90),
          p99: ms(p.latency.p99),
          max: ms(p.latency.max),
        },
        non2xx: p.non2xx,
        errors: p.errors,
        timeouts: p.timeouts,
      };
    };
    const pacedLast: { r: PacedResult | null } = { r: null };
    const steadyFromS = env("LOAD_STEADY_FROM_S", 5);
    const traceOut: string[] = [];
    // Body cache hits / misses of the app's GET /mastery so far (its /metrics counter).
    const counts = (proc: ReturnType<typeof child>) => ask<Counts>(proc, "cache");
    // A run with the server's body cache hit rate and CPU time per request served (user + system of
    // the server process(es) over the run / requests answered): the cost of a request, which the
    // other jobs on a shared machine inflate far less than they move req/s.
    const measured = async (proc: ReturnType<typeof child>, fn: () => Promise<CannonResult>) => {
      const c0 = await counts(proc);
      const k0 = cpuUs();
      const opened0 = proc === app ? await backendsNow() : null;
      const r = await fn();
      const k1 = cpuUs();
      // The app's PostgreSQL connections opened during the run and open at its end (a new backend each: a
      // process start, cold catalog caches, statements to prepare again).
      const opened = opened0 === null ? null : await backendsOpenedSince(opened0.at);
      // pg-stream: wait until the worker has applied the run's events (its CPU for them is counted below).
      const backlog = mode === "pg-stream" && proc === app ? await ask<Backlog>(proc, "backlog") : undefined;
      const c1 = await counts(proc);
      const h = c1.hits - c0.hits;
      const n = h + c1.misses - c0.misses;
      const hh = c1.historyHits - c0.historyHits;
      const hn = hh + c1.historyMisses - c0.historyMisses;
      const cpuPerReq = (c1.cpuUs - c0.cpuUs) / Math.max(1, r.requests.total);
      // The load generator's own CPU (this process, autocannon) per request: it shares the 2 cores.
      const clientCpuPerReq = (k1 - k0) / Math.max(1, r.requests.total);
      const probe = await probeOf(proc);
      return {
        r,
        hits: `${((100 * h) / Math.max(1, n)).toFixed(1)}% of ${n}`,
        historyHits: `${((100 * hh) / Math.max(1, hn)).toFixed(1)}% of ${hn}`,
        cpuPerReq,
        clientCpuPerReq,
        probe,
        backlog,
        opened,
      };
    };
    const backendPg = appName === null ? null : await PgStore.open(PG_URL, { poolMax: 1 });
    /** PostgreSQL's clock now (backend_start is compared on the server's own clock). */
    const backendsNow = async () =>
      backendPg === null
        ? null
        : { at: String((await backendPg.all<{ at: string }>("SELECT now()::text AS at"))[0]?.at) };
    const backendsOpenedSince = async (at: string) =>
      backendPg === null
        ? null
        : Number(
            (
              await backendPg.all<{ n: string }>(
                "SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = $1 AND backend_start >= $2::timestamptz",
                [appName, at],
              )
            )[0]?.n ?? 0,
          );
    // The server-side probe's figures since the last call (installProbe; none from cluster workers).
    const probeOf = (proc: ReturnType<typeof child>) =>
      mode === "pg-workers" ? Promise.resolve<ProbeStats[]>([]) : ask<ProbeStats[]>(proc, "probe");
    const probeLine = (ps: ProbeStats[]) =>
      ps
        .map(
          (p) =>
            `${p.kind} ${p.n}: p50 ${p.p50.toFixed(1)} / p99 ${p.p99.toFixed(1)} / mean ${p.mean.toFixed(1)} ms`,
        )
        .join("; ");
    // JIT warm-up of both (short; most students stay cold).
    await run(barePort, 1);
    await run(ready.port, 1);
    // LOAD_PACED=1: the fixed rate also from the paced generator; LOAD_PACED=only: from it alone.
    const pacedMode = process.env.LOAD_PACED ?? "0";
    const bm = await measured(bare, () => run(barePort, seconds));
    const am = await measured(app, () => run(ready.port, seconds));
    const fixed = (port: number) => (pacedMode === "only" ? paced(port, seconds) : run(port, seconds, rate));
    const bfm = await measured(bare, () => fixed(barePort));
    const bfLag = pacedLast.r?.sendLag;
    const bfSteady = pacedMode === "only" ? pacedLast.r?.steady : undefined;
    // LOAD_PG_ACTIVITY=1: the app's PostgreSQL backends sampled every 20 ms over its fixed-rate run (bench/pgActivity.ts).
    const activityPg = activityName === null ? null : await PgStore.open(PG_URL, { poolMax: 1 });
    const activity: { r: ActivitySummary | null } = { r: null };
    const afm = await measured(app, async () => {
      const sampler = activityPg === null ? null : sampleActivity(activityPg, activityName as string, 20);
      const r = await fixed(ready.port);
      activity.r = (await sampler?.stop()) ?? null;
      return r;
    });
    await activityPg?.close();
    const afLag = pacedLast.r?.sendLag;
    const afSteady = pacedMode === "only" ? pacedLast.r?.steady : undefined;
    const pacedRuns =
      pacedMode === "1"
        ? {
            bare: await measured(bare, () => paced(barePort, seconds)),
            bareLag: pacedLast.r?.sendLag,
            bareSteady: pacedLast.r?.steady,
            app: await measured(app, () => paced(ready.port, seconds)),
            appLag: pacedLast.r?.sendLag,
            appSteady: pacedLast.r?.steady,
          }
        : null;
    const steadyLine = (
      bareS: PacedResult["steady"] | undefined,
      appS: PacedResult["steady"] | undefined,
    ): string[] =>
      bareS === undefined || appS === undefined
        ? []
        : [
            `  paced at ${rate} req/s from +${steadyFromS} s (the run without its first seconds; the p99 above keeps them): ` +
              `app p50 ${appS.p50.toFixed(1)} / p99 ${appS.p99.toFixed(1)} / max ${appS.max.toFixed(1)} ms (${appS.n} requests) vs ` +
              `bare p50 ${bareS.p50.toFixed(1)} / p99 ${bareS.p99.toFixed(1)} / max ${bareS.max.toFixed(1)} ms (${bareS.n})`,
          ];
    const [b, a, bf, af] = [bm.r, am.r, bfm.r, afm.r];
    const [aHits, afHits] = [am.hits, afm.hits];
    const row = (name: string, r: CannonResult) =>
      `  ${name.padEnd(30)} ${r.requests.average.toFixed(0).padStart(6)} req/s  p50 ${String(r.latency.p50).padStart(4)} ms  ` +
      `p90 ${String(r.latency.p90).padStart(4)} ms  p99 ${String(r.latency.p99).padStart(4)} ms  ` +
      `non-2xx ${r.non2xx}  errors ${r.errors + r.timeouts}`;
    out.push(
      `[${mode}] ${ready.describe}`,
      `  bodies (bytes): mastery ${ready.bodies.mastery}, history ${ready.bodies.history}, ` +
        `recommendations ${ready.bodies.recommendations}, events ${ready.bodies.events}`,
      row("bare Express, open loop", b),
      row("app, open loop", a),
      row(`bare Express, ${rate} req/s${pacedMode === "only" ? " paced" : ""}`, bf),
      row(`app, ${rate} req/s${pacedMode === "only" ? " paced" : ""}`, af),
      ...(pacedRuns === null
        ? []
        : [
            row(`bare Express, ${rate} req/s paced`, pacedRuns.bare.r),
            row(`app, ${rate} req/s paced`, pacedRuns.app.r),
          ]),
      `  throughput ratio app/bare = ${(a.requests.average / b.requests.average).toFixed(2)} (target >= 0.50); ` +
        `p99 at ${rate} req/s = ${af.latency.p99} ms (target <= 50); errors+non-2xx ${a.errors + a.non2xx + af.errors + af.non2xx + a.timeouts + af.timeouts} (target 0)`,
      ready.cold.n === 0
        ? "  cold GET /mastery: measured in the one-process modes"
        : `  cold GET /mastery server time (masteryJson, cache miss): ${WIDE_TOPICS} topics median ${ready.cold.wideMedianMs.toFixed(2)} ms, ` +
            `p90 ${ready.cold.wideP90Ms.toFixed(2)} ms (target <= 2); ${TOPICS} topics median ${ready.cold.narrowMedianMs.toFixed(2)} ms; ` +
            `server CPU per read ${ready.cold.wideCpuUs.toFixed(0)} / ${ready.cold.narrowCpuUs.toFixed(0)} µs`,
      `  POST /events (10 events) alone, sequential: median ${ready.postMedianMs.toFixed(1)} ms` +
        (ready.cold.n === 0
          ? ""
          : `; server CPU ${ready.postCpuUs.toFixed(0)} µs per POST (its in-process fetch included)`),
      ready.cold.n === 0
        ? "  sequential GETs: measured in the one-process modes"
        : `  sequential GETs (one in flight, LOAD_SEQ_N each; CPU of the server process with its in-process fetch): ` +
            Object.entries(ready.seq)
              .map(([k, v]) => `${k} ${v.medianMs.toFixed(2)} ms, ${v.cpuUs.toFixed(0)} µs`)
              .join("; "),
      ...(am.backlog === undefined || afm.backlog === undefined
        ? []
        : [
            `  stream worker backlog (events acknowledged, not yet applied): open loop at most ${am.backlog.maxEvents}, ` +
              `applied ${(am.backlog.drainMs / 1000).toFixed(1)} s after the run; at ${rate} req/s at most ${afm.backlog.maxEvents}, ` +
              `applied ${(afm.backlog.drainMs / 1000).toFixed(1)} s after the run` +
              (am.backlog.leftEvents + afm.backlog.leftEvents > 0
                ? ` (NOT drained after 120 s: ${am.backlog.leftEvents} / ${afm.backlog.leftEvents} left)`
                : ""),
          ]),
      `  GET /mastery body cache hits: open loop ${aHits}, at ${rate} req/s ${afHits}`,
      `  GET history cache hits: open loop ${am.historyHits}, at ${rate} req/s ${afm.historyHits}`,
      ...(am.opened === null || afm.opened === null
        ? []
        : [
            `  the app's PostgreSQL connections opened during the run (still open at its end): open loop ${am.opened}, at ${rate} req/s${pacedMode === "only" ? " paced" : ""} ${afm.opened}`,
          ]),
      ...(ready.pgPoolMax === null
        ? []
        : [
            `  pg-acquire (wait for a connection of the server's pool of ${ready.pgPoolMax}): open loop ${probeLine(am.probe.filter((p) => p.kind === "pg-acquire"))}; ` +
              `at ${rate} req/s ${probeLine(afm.probe.filter((p) => p.kind === "pg-acquire"))}`,
          ]),
      ...(activity.r === null
        ? []
        : [
            `  PostgreSQL backends of the app at ${rate} req/s (mean over ${activity.r.samples} samples of pg_stat_activity, 20 ms apart): ` +
              activity.r.lines.map(([line, n]) => `${line} ${n.toFixed(3)}`).join("; "),
          ]),
      `  server time per request (probe: request to finish, in the server): open loop app ${probeLine(am.probe)} | bare ${probeLine(bm.probe)}`,
      `  server time per request at ${rate} req/s${pacedMode === "only" ? " paced" : ""}: app ${probeLine(afm.probe)} | bare ${probeLine(bfm.probe)}`,
      ...(pacedMode === "only" && bfLag !== undefined && afLag !== undefined
        ? [
            `  paced generator send lag p99 / max: bare run ${bfLag.p99.toFixed(1)} / ${bfLag.max.toFixed(1)} ms, app run ${afLag.p99.toFixed(1)} / ${afLag.max.toFixed(1)} ms`,
          ]
        : []),
      ...steadyLine(bfSteady, afSteady),
      ...(pacedRuns === null ? [] : steadyLine(pacedRuns.bareSteady, pacedRuns.appSteady)),
      ...(pacedRuns === null
        ? []
        : [
            `  paced at ${rate} req/s: app p99 ${pacedRuns.app.r.latency.p99} ms vs bare ${pacedRuns.bare.r.latency.p99} ms; server CPU per request app ${pacedRuns.app.cpuPerReq.toFixed(0)} µs vs bare ${pacedRuns.bare.cpuPerReq.toFixed(0)} µs; ` +
              `send lag p99 ${pacedRuns.appLag?.p99.toFixed(1)} / ${pacedRuns.bareLag?.p99.toFixed(1)} ms; generator CPU per request ${pacedRuns.app.clientCpuPerReq.toFixed(0)} µs`,
            `  server time per request, paced: app ${probeLine(pacedRuns.app.probe)} | bare ${probeLine(pacedRuns.bare.probe)}`,
          ]),
      `  server CPU per request (user + system): open loop app ${am.cpuPerReq.toFixed(0)} µs vs bare ${bm.cpuPerReq.toFixed(0)} µs ` +
        `(bare/app ${(bm.cpuPerReq / am.cpuPerReq).toFixed(2)}); at ${rate} req/s app ${afm.cpuPerReq.toFixed(0)} µs vs bare ${bfm.cpuPerReq.toFixed(0)} µs ` +
        `(bare/app ${(bfm.cpuPerReq / afm.cpuPerReq).toFixed(2)})`,
      `  load generator CPU per request (autocannon, or the paced generator at the fixed rate with LOAD_PACED=only; this process): open loop ${am.clientCpuPerReq.toFixed(0)} µs (bare ${bm.clientCpuPerReq.toFixed(0)}); ` +
        `at ${rate} req/s ${afm.clientCpuPerReq.toFixed(0)} µs (bare ${bfm.clientCpuPerReq.toFixed(0)})`,
    );
    out.push(...traceOut);
    if (process.env.LOAD_KINDS === "1") {
      // Each kind alone, open loop: the server's CPU per request of that kind (hits and misses as they
      // come for GET /mastery, with the cache as the mix left it).
      const kindSeconds = env("LOAD_KIND_SECONDS", 5);
      const parts: string[] = [];
      for (const kind of KINDS) {
        const km = await measured(app, () => run(ready.port, kindSeconds, undefined, kind));
        parts.push(
          `${kind} ${km.cpuPerReq.toFixed(0)} µs (${km.r.requests.average.toFixed(0)} req/s` +
            (kind === "mastery" ? `, hits ${km.hits})` : ")"),
        );
      }
      out.push(
        `  server CPU per request by kind, each alone, open loop ${kindSeconds} s: ${parts.join("; ")}`,
      );
    }
    await backendPg?.close();
    bare.send("stop");
    app.send("stop");
    await new Promise((ok) => app.once("exit", ok));
    if (prof) {
      out.push(`  CPU profile of the ${mode} server (warm-up + 4 runs incl. bare phases as idle):`);
      out.push(selfTimeReport(profDir));
      // LOAD_PROF_KEEP=1 keeps the .cpuprofile (e.g. for Chrome DevTools or an inclusive-time breakdown).
      if (process.env.LOAD_PROF_KEEP === "1") out.push(`  profile kept in ${profDir}`);
      else rmSync(profDir, { recursive: true, force: true });
    }
    if (mode !== "embedded") {
      const redis = new Redis(REDIS_URL);
      const keys = await redis.keys(`${NAME_PREFIX}_${app.pid}*`);
      for (let i = 0; i < keys.length; i += 1000) await redis.del(...keys.slice(i, i + 1000));
      redis.disconnect();
      // The server drops its schema on stop, but a drop still waiting when it exits is lost (seen under load).
      const pg = await PgStore.open(PG_URL);
      await pg.run(`DROP SCHEMA IF EXISTS ${NAME_PREFIX}_${app.pid} CASCADE`);
      await pg.close();
    }
    process.stdout.write(`${out.splice(0).join("\n")}\n`);
  }
}

const i = process.argv.indexOf("--serve");
// A server child ends with its driver: if the driver dies (an error, a kill), the IPC channel closes, and a
// server left running would load the machine under every later bench.
if (process.send !== undefined) process.on("disconnect", () => process.exit(0));
if (i > 0) await serve(process.argv[i + 1] as Mode);
else if (process.argv.includes("--bare")) await serveBare();
else await drive();
