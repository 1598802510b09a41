/**
 * Server CPU per request of each request kind of the load bench's mix, at a fixed store state (issue 15: what a
 * GET /mastery hit and miss, a history, a recommendation and a POST /events x10 each cost the server process on
 * PostgreSQL + Redis). bench/load.bench.ts measures the mix, whose state moves with its own throughput (a hot
 * topic's history grows with the POSTs made so far, the hit rate with the requests); here every kind runs against
 * the same state in every run, so two trees can be compared kind by kind.
 *
 * The server runs in a child process (as `mastery serve` would, with the load bench's options); the driver
 * (autocannon, this process) sends each kind for REQ_N requests on REQ_CONNECTIONS connections and reads the
 * child's CPU time (user + system) before and after, each time once the work the requests left for after their
 * answers is done (createApp's drain: a POST's alert check and raw copy, cache invalidations): CPU per request =
 * its difference / requests answered.
 * The same windows read the CPU of the PostgreSQL backends serving the server (its pooled connections, tagged with
 * application_name = the run's schema name through PGAPPNAME; pids from pg_stat_activity at each sample, utime +
 * stime from /proc/<pid>/stat) and of redis-server (shared: other users' commands count there too, so compare its
 * column only between interleaved runs). "product" = app + PostgreSQL backends per request; "+Redis" adds Redis.
 * /proc's clock ticks are 10 ms: a round's PostgreSQL figure is good to ~10 ms over its requests.
 * Kinds, in order: `hit` (GET /mastery of REQ_HOT students read before: cache hits), `miss` (GET /mastery of
 * students never read: each request a cold miss), `history` (GET /mastery/:id/T0/history of REQ_HOT students whose
 * T0 history holds ~3 x REQ_HISTORY_POSTS entries, written by real POSTs before the runs), `recommendations` (of the
 * hot students), `events` (POST /events x10 of random students). Each kind runs REQ_ROUNDS times, interleaved
 * (hit, miss, ..., hit, miss, ...); the median is printed. Store: REQ_STUDENTS students x 20 topics seeded with a
 * bkt and an elo score each (the load bench's rows).
 *
 *   npx tsx bench/requestCpu.bench.ts
 *   REQ_N=3000 REQ_ROUNDS=5 REQ_HISTORY_POSTS=100 npx tsx bench/requestCpu.bench.ts
 *   REQ_NAME_PREFIX=me_req REQ_PORT=41220 ...     # PostgreSQL schema / Redis prefix and the server's port
 *   REQ_KINDS=miss,events ...                      # only these kinds (the warm-up still sends every kind)
 *   REQ_PROF=/tmp/dir ...                          # the server under --cpu-prof, its .cpuprofile written there,
 *                                                  # with windows.json (REQ_WINDOWS)
 *   REQ_WINDOWS=/tmp/w.json ...                    # each measured round's kind, start and end (µs, CLOCK_MONOTONIC:
 *                                                  # the clock of a .cpuprofile and of /proc samples), and the
 *                                                  # server's pid
 *   REQ_SERVER_NODE_FLAGS="--trace-gc" ...         # node / V8 flags of the server process
 *   REQ_HISTORY_CACHE_MB=0 ...                     # the history cache off: each history request a miss
 *   REQ_JSON=/tmp/r.json ...                       # every round's figures per kind, and their medians, as JSON
 * The history kind reads the same hot histories without writes in between: with the history cache (its default)
 * that is the cost of a history cache hit; REQ_HISTORY_CACHE_MB=0 gives the cost of a miss.
 */
import { fork } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Redis } from "ioredis";
import { pino } from "pino";
import { Pseudonymizer } from "../features/pseudonymize.ts";
import { parseThresholds } from "../serving/alerts.ts";
import { createApp, loadServingConfig, servingDuckOptions } from "../serving/app.ts";
import { signToken } from "../serving/auth.ts";
import { DuckStore } from "../storage/duckdb.ts";
import { PgStore } from "../storage/postgres.ts";
import { openBenchPgBackends } from "./benchBackends.ts";
import {
  envNumber as env,
  BENCH_PSEUDONYM_KEY as KEY,
  BENCH_PG_URL as PG_URL,
  quizPostBody,
  BENCH_REDIS_URL as REDIS_URL,
  BENCH_SECRET as SECRET,
} from "./benchEnv.ts";
import { pgrep, samplePids, windowCpu } from "./topologyCpu.ts";
import { SEED_EXPLANATION } from "./wideSeed.ts";

const TOPICS = 20;
const KINDS = ["hit", "miss", "history", "recommendations", "events"] as const;
type Kind = (typeof KINDS)[number];
const PREFIX = (() => {
  const p = process.env.REQ_NAME_PREFIX ?? "req_cpu";
  if (!/^[a-z_][a-z0-9_]{0,40}$/.test(p))
    throw new Error(
      `REQ_NAME_PREFIX must be a lower-case SQL identifier of at most 41 characters (got "${p}")`,
    );
  return p;
})();

interface CannonResult {
  requests: { total: number; average: number };
  non2xx: number;
  errors: number;
  timeouts: number;
}
type Cannon = (opts: Record<string, unknown>) => Promise<CannonResult>;

/** REQ_HISTORY_CACHE_MB: the server's history cache bound in MiB (0 turns it off), or undefined (the default). */
function historyCacheMb(): number | undefined {
  const v = process.env.REQ_HISTORY_CACHE_MB;
  if (v === undefined || v === "") return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0)
    throw new Error(`REQ_HISTORY_CACHE_MB=${v} must be a number >= 0 (MiB; 0 turns the history cache off)`);
  return n;
}

// ------------------------------------------------------------------------------------------------
// Server child

async function serve(): Promise<void> {
  const students = env("REQ_STUDENTS", 8000);
  const pseudo = new Pseudonymizer(KEY);
  const name = `${PREFIX}_${process.pid}`;
  // Every connection node-postgres opens from here on carries the name: the driver finds this server's
  // backends in pg_stat_activity by it.
  process.env.PGAPPNAME = name;
  const dir = mkdtempSync(join(tmpdir(), "req-cpu-"));
  const store = await DuckStore.open(join(dir, "mastery.duckdb"), {
    encryption: null,
    ...servingDuckOptions({ duckThreads: loadServingConfig().duckThreads }),
  });
  const backends = await openBenchPgBackends(store, name, { invalidatedCacheTtlMs: 30_000 });
  const pg = backends.stores?.pg as PgStore;
  // The load bench's rows: a bkt and an elo score per (student, topic), 3 bkt history rows each.
  const topicRows = Array.from(
    { length: TOPICS },
    (_, i) => `('T${i}', 'Topic ${i}', 'C${i % 4}', 'S1', 'K1', 0, 10)`,
  );
  await pg.run(
    `INSERT INTO topics (topic_id, name, chapter_id, subject_id, course_id, difficulty_estimate, content_length) VALUES ${topicRows.join(",")}`,
  );
  await pg.run("CREATE TABLE req_keys (student_key VARCHAR, n INTEGER)");
  for (let s = 0; s < students; s += 5000) {
    const rows: string[] = [];
    for (let i = s; i < Math.min(students, s + 5000); i++)
      rows.push(`('${pseudo.studentKey(`student-${i}`)}', ${i})`);
    await pg.run(`INSERT INTO req_keys VALUES ${rows.join(",")}`);
  }
  const ts = "TIMESTAMP '2026-01-05 10:00:00'";
  const scores = `SELECT k.student_key, t.topic_id, ((k.n * 7 + CAST(substr(t.topic_id, 2) AS INTEGER) * 13) % 100) / 100.0 AS score, s.src
      FROM req_keys k, topics t, (VALUES ('bkt'), ('elo')) s(src)`;
  await pg.run(
    `INSERT INTO student_mastery (student_key, topic_id, mastery_score, score_source, model_version, as_of, explanation, last_updated)
     SELECT student_key, topic_id, score, src, 'default', ${ts}, '${SEED_EXPLANATION}', ${ts} FROM (${scores}) x`,
  );
  await pg.run(
    `INSERT INTO student_mastery_history (student_key, topic_id, mastery_score, score_source, model_version, as_of, explanation, recorded_at)
     SELECT student_key, topic_id, score * h.f, src, 'default', ${ts}, '${SEED_EXPLANATION}', ${ts}
     FROM (${scores}) x, (VALUES (0.5), (0.8), (1.0)) h(f) WHERE src = 'bkt'`,
  );
  await pg.run("DROP TABLE req_keys");
  await pg.run("ANALYZE");
  const { app, ctx, drain } = await createApp({
    store,
    pseudonymizer: pseudo,
    jwtSecret: SECRET,
    logger: pino({ level: "warn" }),
    thresholds: parseThresholds({}, {}),
    defaultMetrics: false,
    config: {
      rateLimit: { windowMs: 60_000, limit: 0 },
      // REQ_HISTORY_CACHE_MB=0: every history a miss (the history cache off; a tree without it ignores this).
      ...(historyCacheMb() !== undefined ? { historyCacheMaxBytes: historyCacheMb()! * 1024 * 1024 } : {}),
    },
    ...backends.deps,
  });
  const server = app.listen(env("REQ_PORT", 0), "127.0.0.1");
  await new Promise((r) => server.once("listening", r));
  const cpu = () => {
    const u = process.cpuUsage();
    return u.user + u.system;
  };
  process.on("message", (m) => {
    // With the POST group commit's counters (a tree whose intake updater has none sends 0s).
    const groups = (ctx.intake.updater as { stats?: { groups?: number; requests?: number } }).stats;
    // The work a request leaves for after its answer (a POST's alert check and raw copy into DuckDB, cache
    // invalidations sent) is done first, so that it counts for the kind that caused it and not for the next
    // kind's round.
    if (m === "cpu")
      void drain().then(() =>
        process.send?.({ cpu: cpu(), groups: groups?.groups ?? 0, posts: groups?.requests ?? 0 }),
      );
    if (m === "stop")
      void (async () => {
        server.closeAllConnections();
        server.close();
        await pg.run(`DROP SCHEMA ${name} CASCADE`).catch(() => undefined);
        await backends.close();
        // The learner states and processed sets this run left in Redis (its own prefix).
        const redis = new Redis(REDIS_URL);
        let cursor = "0";
        do {
          const [next, keys] = await redis.scan(cursor, "MATCH", `${name}:*`, "COUNT", 5000);
          if (keys.length > 0) await redis.unlink(...keys);
          cursor = next;
        } while (cursor !== "0");
        redis.disconnect();
        rmSync(dir, { recursive: true, force: true });
        process.exit(0);
      })();
  });
  process.send?.({ port: (server.address() as AddressInfo).port, name });
}

// ------------------------------------------------------------------------------------------------
// Driver

async function drive(): Promise<void> {
  const students = env("REQ_STUDENTS", 8000);
  const hot = env("REQ_HOT", 20);
  const n = env("REQ_N", 2000);
  const rounds = env("REQ_ROUNDS", 3);
  const connections = env("REQ_CONNECTIONS", 16);
  const historyPosts = env("REQ_HISTORY_POSTS", 100);
  const autocannon = createRequire(import.meta.url)("autocannon") as Cannon;
  const token = await signToken(SECRET, { role: "admin", sub: "bench" });
  const auth = { authorization: `Bearer ${token}` };
  const kinds = (process.env.REQ_KINDS ?? KINDS.join(",")).split(",").map((k) => k.trim()) as Kind[];
  for (const k of kinds)
    if (!KINDS.includes(k))
      throw new Error(`REQ_KINDS: unknown kind "${k}"; use a list of ${KINDS.join(", ")}`);
  const prof = process.env.REQ_PROF;
  const server = fork(fileURLToPath(import.meta.url), ["--serve"], {
    execArgv: [
      "--import",
      "tsx",
      ...(process.env.REQ_SERVER_NODE_FLAGS ?? "").split(" ").filter((f) => f !== ""),
      ...(prof ? ["--cpu-prof", `--cpu-prof-dir=${prof}`] : []),
    ],
  });
  const ready = await new Promise<{ port: number; name: string }>((ok, fail) => {
    server.once("message", (m) => ok(m as { port: number; name: string }));
    server.once("exit", (code) => fail(new Error(`the server exited with ${code} before it was ready`)));
  });
  const base = `http://127.0.0.1:${ready.port}`;
  // The driver's own connection (not tagged with the server's name) lists the server's backends at each sample.
  const pgc = await PgStore.open(PG_URL, { poolMax: 1 });
  const redisPids = pgrep(["-x", "redis-server"]);
  const sampleServices = async () => {
    const pids = (
      await pgc.all<{ pid: number }>("SELECT pid FROM pg_stat_activity WHERE application_name = $1", [
        ready.name,
      ])
    ).map((r) => Number(r.pid));
    return { pg: samplePids(pids), redis: samplePids(redisPids) };
  };
  /** The server's CPU µs so far, and its POST groups and the requests they held. */
  const cpu = () =>
    new Promise<{ cpu: number; groups: number; posts: number }>((ok) => {
      const on = (m: unknown) => {
        const c = m as { cpu?: number; groups?: number; posts?: number };
        if (c.cpu === undefined) return;
        server.off("message", on);
        ok({ cpu: c.cpu, groups: c.groups ?? 0, posts: c.posts ?? 0 });
      };
      server.on("message", on);
      server.send("cpu");
    });
  let seq = 0;
  const post = (student: number, topics: number) => {
    const body = quizPostBody(`req-${process.pid}`, student, seq, topics);
    seq += 10;
    return body;
  };
  // The hot students' T0 histories: REQ_HISTORY_POSTS POSTs each of 10 events on T0 (a bkt, an elo and a
  // rule_based entry per group that moved the key), the hot students in parallel as the mix sends them.
  const t0 = performance.now();
  for (let r = 0; r < historyPosts; r++)
    await Promise.all(
      Array.from({ length: hot }, (_, s) =>
        fetch(`${base}/events`, {
          method: "POST",
          headers: { ...auth, "content-type": "application/json" },
          body: post(s, 1),
        }).then((res) => res.text()),
      ),
    );
  const histories = await Promise.all(
    Array.from({ length: hot }, (_, s) =>
      fetch(`${base}/mastery/student-${s}/T0/history`, { headers: auth }).then(
        async (res) => ((await res.json()) as { history: unknown[] }).history.length,
      ),
    ),
  );
  const meanHistory = histories.reduce((a, b) => a + b, 0) / histories.length;
  process.stdout.write(
    `request CPU bench: ${students} students x ${TOPICS} topics (PostgreSQL + Redis, ${ready.name}); ${hot} hot students, ` +
      `T0 history ${meanHistory.toFixed(0)} entries on average (${historyPosts} POSTs each, ${((performance.now() - t0) / 1000).toFixed(1)} s); ` +
      `${n} requests a kind a round on ${connections} connections, ${rounds} rounds\n`,
  );
  // Cold students for the misses: never read, each read once (students hot..students-1, in order).
  let cold = hot;
  const path = (kind: Kind, i: number): { method: string; path: string; body?: string } => {
    const s = i % hot;
    switch (kind) {
      case "hit":
        return { method: "GET", path: `/mastery/student-${s}` };
      case "miss":
        if (cold >= students) throw new Error(`REQ_STUDENTS=${students} is too few for the misses: raise it`);
        return { method: "GET", path: `/mastery/student-${cold++}` };
      case "history":
        return { method: "GET", path: `/mastery/student-${s}/T0/history` };
      case "recommendations":
        return { method: "GET", path: `/recommendations/student-${s}` };
      case "events":
        return {
          method: "POST",
          path: "/events",
          body: post(hot + Math.floor(Math.random() * (students - hot)), TOPICS),
        };
    }
  };
  const run = (kind: Kind, amount: number) => {
    let i = 0;
    return autocannon({
      url: base,
      connections,
      amount,
      headers: auth,
      requests: [
        {
          setupRequest: (req: Record<string, unknown>) => {
            const r = path(kind, i++);
            return r.body === undefined
              ? { ...req, method: r.method, path: r.path }
              : {
                  ...req,
                  method: r.method,
                  path: r.path,
                  headers: { ...(req.headers as Record<string, string>), "content-type": "application/json" },
                  body: r.body,
                };
          },
        },
      ],
    });
  };
  // Warm-up: the JIT and the hot students' bodies (cached from here on; nothing invalidates them).
  for (const kind of KINDS) if (kind !== "miss") await run(kind, Math.min(n, 500));
  await run("miss", Math.min(n, 200));
  interface Round {
    cpuUs: number;
    pgUs: number;
    redisUs: number;
    productUs: number;
    rps: number;
    perGroup: number;
    pgBackends: number;
    pgGone: number;
  }
  const results = new Map<Kind, Round[]>();
  // The profile's timestamps are CLOCK_MONOTONIC µs, as process.hrtime's in any process of this machine.
  const windows: { kind: Kind; round: number; fromUs: number; toUs: number }[] = [];
  const monoUs = () => Number(process.hrtime.bigint() / 1000n);
  for (let r = 0; r < rounds; r++)
    for (const kind of kinds) {
      // The POSTs touch cold students only: the hot students' bodies stay cached.
      const amount = kind === "events" ? Math.max(50, Math.round(n / 10)) : n;
      const c0 = await cpu();
      const s0 = await sampleServices();
      const fromUs = monoUs();
      const res = await run(kind, amount);
      windows.push({ kind, round: r, fromUs, toUs: monoUs() });
      const c1 = await cpu();
      const s1 = await sampleServices();
      const pgWin = windowCpu(s0.pg, s1.pg);
      const redisWin = windowCpu(s0.redis, s1.redis);
      if (res.non2xx + res.errors + res.timeouts > 0)
        throw new Error(
          `${kind}: ${res.non2xx} non-2xx, ${res.errors} errors, ${res.timeouts} timeouts; the bench needs every answer 2xx`,
        );
      const list = results.get(kind) ?? [];
      results.set(kind, list);
      const total = res.requests.total;
      const cpuUs = (c1.cpu - c0.cpu) / total;
      const pgUs = (pgWin.cpuMs * 1000) / total;
      list.push({
        cpuUs,
        pgUs,
        redisUs: (redisWin.cpuMs * 1000) / total,
        productUs: cpuUs + pgUs,
        rps: res.requests.average,
        perGroup: c1.groups > c0.groups ? (c1.posts - c0.posts) / (c1.groups - c0.groups) : 0,
        pgBackends: pgWin.counted + pgWin.started,
        pgGone: pgWin.gone,
      });
    }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;
  const col = (list: Round[], f: (x: Round) => number) =>
    `${median(list.map(f)).toFixed(0).padStart(6)} (${list.map((x) => f(x).toFixed(0)).join(", ")})`;
  process.stdout.write(
    "  CPU-µs a request, median of the rounds (each round's in parentheses); Redis is shared (other users count)\n" +
      `  ${"kind".padEnd(16)} ${"app".padEnd(24)} ${"PostgreSQL backends".padEnd(24)} ${"product = app + PG".padEnd(24)} ${"Redis (shared)".padEnd(24)} +Redis\n`,
  );
  for (const kind of kinds) {
    const list = results.get(kind) ?? [];
    process.stdout.write(
      `  ${kind.padEnd(16)} ${col(list, (x) => x.cpuUs).padEnd(24)} ${col(list, (x) => x.pgUs).padEnd(24)} ` +
        `${col(list, (x) => x.productUs).padEnd(24)} ${col(list, (x) => x.redisUs).padEnd(24)} ` +
        `${median(list.map((x) => x.productUs + x.redisUs)).toFixed(0)}; ` +
        `${median(list.map((x) => x.rps)).toFixed(0)} req/s, ${Math.max(...list.map((x) => x.pgBackends))} backends` +
        `${list.some((x) => x.pgGone > 0) ? ` (${list.reduce((n, x) => n + x.pgGone, 0)} closed in a window: their CPU there lost)` : ""}` +
        `${kind === "events" ? `, ${median(list.map((x) => x.perGroup)).toFixed(1)} POSTs a group` : ""}\n`,
    );
  }
  const jsonFile = process.env.REQ_JSON;
  if (jsonFile !== undefined)
    writeFileSync(
      jsonFile,
      `${JSON.stringify(
        Object.fromEntries(
          kinds.map((k) => {
            const list = results.get(k) ?? [];
            return [
              k,
              {
                rounds: list,
                median: {
                  app: median(list.map((x) => x.cpuUs)),
                  pg: median(list.map((x) => x.pgUs)),
                  redis: median(list.map((x) => x.redisUs)),
                  product: median(list.map((x) => x.productUs)),
                },
              },
            ];
          }),
        ),
        null,
        1,
      )}\n`,
    );
  await pgc.close();
  server.send("stop");
  await new Promise((ok) => server.once("exit", ok));
  const windowsFile = process.env.REQ_WINDOWS ?? (prof ? join(prof, "windows.json") : undefined);
  if (windowsFile !== undefined)
    writeFileSync(windowsFile, `${JSON.stringify({ serverPid: server.pid, windows }, null, 1)}\n`);
}

if (process.argv.includes("--serve")) await serve();
else await drive();
