/**
 * Availability through restarts (issue 15 item 4): mixed traffic at a fixed rate through HAProxy to 2
 * `mastery serve --via-stream` processes + 1 stream worker (deploy/local.sh, on its own ports, PG
 * schema, Redis prefix and NATS stream), while every AVAIL_PERIOD seconds one disruption runs, in turn:
 * server 1 restarted gracefully (SIGTERM: drain, then start), server 2 killed (SIGKILL, then start),
 * the stream worker killed (SIGKILL) and restarted. The graceful restart is overlapped (deploy/local.sh:
 * the new process serves before the old one drains), so its window includes the ~10 s overlap.
 * Reports: share of requests that succeeded (connection errors, timeouts and 5xx are failures), p99
 * outside the disruption windows (from the command's start to 2 s after the server is ready again),
 * and acknowledged events lost: every event_id a POST /events answered as accepted must be in
 * PostgreSQL raw_events once the worker has caught up.
 *
 *   npx tsx bench/availability.bench.ts                                   # 120 s at 200 req/s, period 30 s
 *   AVAIL_SECONDS=600 AVAIL_RATE=500 AVAIL_PERIOD=120 npx tsx bench/availability.bench.ts   # the issue's run
 *   AVAIL_SECONDS=100 AVAIL_PERIOD=30 AVAIL_STEPS=kill npx tsx bench/availability.bench.ts  # SIGKILLs only
 * Targets: >= 99.9% success, 0 acknowledged events lost, p99 <= 100 ms outside restarts.
 */
import { execFile } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { Agent, request as httpRequest } from "node:http";
import { loadavg } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { connect } from "nats";
import { DEMO_JWT_SECRET, signToken } from "../serving/auth.ts";
import { PgStore } from "../storage/postgres.ts";
import { envNumber as env } from "./benchEnv.ts";
import { cpuPerRequest, formatCpuRows, sampleCpu, topologyPids } from "./topologyCpu.ts";

const run = promisify(execFile);

/** The disruptions of one cycle, by name (deploy/local.sh's commands). */
const DISRUPTIONS: Record<string, [string, string[]]> = {
  graceful: ["graceful restart of server 1", ["restart-server", "1"]],
  kill: ["SIGKILL of server 2", ["kill-server", "2"]],
  worker: ["SIGKILL + restart of the stream worker", ["restart-worker"]],
};

/**
 * AVAIL_STEPS: the cycle of disruptions, comma-separated names of DISRUPTIONS (default
 * "graceful,kill,worker", the issue's plan); e.g. `AVAIL_STEPS=kill` repeats the SIGKILL every period.
 */
function disruptionSteps(spec: string | undefined): [string, string[]][] {
  const names = (spec || "graceful,kill,worker").split(",").map((n) => n.trim());
  return names.map((n) => {
    const step = DISRUPTIONS[n];
    if (!step) {
      throw new Error(
        `AVAIL_STEPS: unknown disruption "${n}"; use a comma-separated list of ${Object.keys(DISRUPTIONS).join(", ")}`,
      );
    }
    return step;
  });
}
const SECONDS = env("AVAIL_SECONDS", 120);
const RATE = env("AVAIL_RATE", 200);
const PERIOD = env("AVAIL_PERIOD", 30);
/** Seconds between progress lines (each with that stretch's p99). */
const PROGRESS = env("AVAIL_PROGRESS_SECONDS", 30);
/** Names of this run's schema, Redis prefix and NATS stream (AVAIL_TAG: a prefix of your own on a shared machine). */
const tag = `${process.env.AVAIL_TAG || "scale_avail"}_${process.pid}`;
/**
 * AVAIL_CPU_FROM / AVAIL_CPU_TO (seconds into the run): sample each topology process's CPU ticks at those
 * two times and print CPU-ms per answered request (bench/topologyCpu.ts); meaningful with no disruption
 * between them (AVAIL_PERIOD larger than AVAIL_SECONDS).
 */
const CPU_FROM = process.env.AVAIL_CPU_FROM ? env("AVAIL_CPU_FROM", 1) : undefined;
const CPU_TO = env("AVAIL_CPU_TO", SECONDS - 5);
/** The checkout whose deploy/local.sh and build run (AVAIL_ROOT: another worktree, for A/B pairs). */
const ROOT = process.env.AVAIL_ROOT || fileURLToPath(new URL("..", import.meta.url));
// Ports LB, LB+1 (stats), servers LB+3.. and their restart slots LB+5.. (deploy/local.sh): 8 apart per run.
const LB_PORT = env("AVAIL_LB_PORT", 19080 + (process.pid % 500) * 8);
const topo: Record<string, string> = {
  ...(process.env as Record<string, string>),
  SERVERS: "2",
  LB_PORT: String(LB_PORT),
  BASE_PORT: String(LB_PORT + 2),
  LOCAL_DIR: `/tmp/${tag}`,
  MASTERY_PG_URL: process.env.MASTERY_PG_URL || "postgres://postgres@127.0.0.1:5432/test",
  MASTERY_PG_SCHEMA: tag,
  MASTERY_REDIS_PREFIX: tag,
  MASTERY_NATS_STREAM: tag.toUpperCase(),
  MASTERY_NATS_SUBJECT_PREFIX: `${tag}.events`,
  MASTERY_JWT_SECRET: "",
  MASTERY_PSEUDONYM_KEY: "",
  // node-postgres tags every connection with it: the topology's backends in pg_stat_activity.
  PGAPPNAME: tag,
};
const local = (...args: string[]) =>
  run("bash", [`${ROOT}/deploy/local.sh`, ...args], { env: topo, cwd: ROOT, timeout: 120_000 });

/**
 * One HTTP request on a keep-alive agent: status and body text; rejects on connection errors, and
 * once 5 s have passed since the request was due, whether it was sent or still waited for a socket
 * (an open-loop client must not queue without bound: a request that waits 5 s is a failure).
 */
function request(
  agent: Agent,
  url: string,
  opts: { method?: string; headers: Record<string, string>; body?: string },
): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const deadline = setTimeout(() => req.destroy(new Error("timeout after 5 s")), 5000);
    const req = httpRequest(url, { agent, method: opts.method ?? "GET", headers: opts.headers }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => {
        text += c;
      });
      res.on("end", () => {
        clearTimeout(deadline);
        resolve({ status: res.statusCode ?? 0, text });
      });
      res.on("error", (err) => {
        clearTimeout(deadline);
        reject(err);
      });
    });
    req.on("error", (err) => {
      clearTimeout(deadline);
      reject(err);
    });
    req.end(opts.body);
  });
}

interface Sample {
  at: number;
  ms: number;
  ok: boolean;
  what: string;
  /** Why it failed: the status (5xx) or the error message. */
  why?: string;
}

/**
 * The servers' "event loop blocked" log lines (serving/stallWatch.ts, `mastery serve`), by the bench's
 * clock: which process stopped answering, when, for how long and how much of it was GC, so a slow
 * 30-second stretch above can be matched with a stall (or shown not to be one).
 */
function stallReport(dir: string, start: number): string {
  const rows: { t: number; file: string; ms: number; gc: number; warming: boolean }[] = [];
  for (const file of readdirSync(dir).filter((f) => f.endsWith(".log"))) {
    for (const line of readFileSync(join(dir, file), "utf8").split("\n")) {
      if (!line.includes('"event loop blocked"')) continue;
      try {
        const j = JSON.parse(line) as { time: number; blockedMs: number; gcMs: number; warmingUp?: boolean };
        if (j.time >= start)
          rows.push({
            t: (j.time - start) / 1000,
            file,
            ms: j.blockedMs,
            gc: j.gcMs,
            warming: j.warmingUp === true,
          });
      } catch {
        // a line cut by a SIGKILL
      }
    }
  }
  rows.sort((a, b) => a.t - b.t);
  const total = rows.reduce((n, r) => n + r.ms, 0);
  const worst = rows
    .slice()
    .sort((a, b) => b.ms - a.ms)
    .slice(0, 12)
    .sort((a, b) => a.t - b.t);
  return (
    `  event-loop stalls >= 100 ms in the servers' logs: ${rows.length}, ${(total / 1000).toFixed(1)} s in all` +
    `${rows.length > 0 ? "; the longest:" : ""}\n` +
    worst
      .map(
        (r) =>
          `    t=${r.t.toFixed(1)} s ${r.file}: ${r.ms} ms (GC ${r.gc} ms${r.warming ? ", warming up" : ""})\n`,
      )
      .join("")
  );
}

async function main(): Promise<void> {
  process.stdout.write(`starting the topology (deploy/local.sh, LB port ${LB_PORT})...\n`);
  try {
    await local("start");
  } catch (err) {
    // A start that timed out (a server not ready in 60 s on a starved machine) leaves processes behind.
    await local("stop").catch(() => undefined);
    throw new Error(
      `deploy/local.sh start failed (${(err as Error).message.split("\n")[0]}); the topology was stopped. ` +
        `See ${topo.LOCAL_DIR}/*.log; on a loaded machine retry with a lower AVAIL_RATE or later.`,
    );
  }
  // The LMS integration: one service token (services are not rate-limited by default, users are:
  // serving/rateLimit.ts). A 429 counts as a failure below, like a 5xx.
  const token = await signToken(DEMO_JWT_SECRET, {
    role: "service",
    sub: "availability-bench",
    scopes: ["mastery:read", "events:write"],
  });
  // Up to 256 connections (HAProxy maxconn 4096): at 500 req/s and a few ms per request a handful is
  // used; the bound only matters when the servers fall behind (then requests time out after 5 s).
  // Idle sockets are closed after 4 s, before HAProxy's `timeout http-keep-alive 10s` closes them: a
  // request sent on a socket the balancer is closing at that instant fails with ECONNRESET (3 such in the
  // 10-minute run, outside any restart). An LMS client should do the same (docs/runbook.md).
  const agent = new Agent({ keepAlive: true, maxSockets: 256, timeout: 4000 });
  const base = `http://127.0.0.1:${LB_PORT}`;
  const samples: Sample[] = [];
  const acked: string[] = [];
  const windows: { from: number; to: number; what: string }[] = [];
  let seq = 0;
  const one = async (): Promise<void> => {
    const n = seq++;
    const u = Math.random();
    const student = Math.floor(Math.random() * 500);
    const t0 = performance.now();
    let ok = false;
    let what = "GET /mastery";
    let why: string | undefined;
    try {
      if (u < 0.95) {
        const path =
          u < 0.85
            ? `/mastery/student-${student}`
            : u < 0.9
              ? `/mastery/student-${student}/T${n % 20}/history`
              : `/recommendations/student-${student}`;
        what = u < 0.85 ? "GET /mastery" : u < 0.9 ? "GET history" : "GET recommendations";
        const r = await request(agent, `${base}${path}`, { headers: { authorization: `Bearer ${token}` } });
        ok = r.status > 0 && r.status < 500 && r.status !== 429;
        // HAProxy's own 503 (no server up) is HTML; the app's is JSON with the reason.
        if (!ok)
          why = `${r.status} ${r.text.startsWith("{") ? r.text.slice(0, 90) : "from HAProxy (no server available)"}`;
      } else {
        what = "POST /events";
        const ids = Array.from({ length: 10 }, (_, i) => `${tag}-${n}-${i}`);
        const events = ids.map((id, i) => ({
          event_id: id,
          type: "quiz_attempt",
          student_id: `student-${student}`,
          topic_id: `T${(n + i) % 20}`,
          timestamp: new Date(Date.UTC(2026, 0, 6, 8) + n * 10 + i).toISOString(),
          question_id: `q-${i}`,
          is_correct: (n + i) % 3 !== 0,
          time_spent_sec: 20,
        }));
        const r = await request(agent, `${base}/events`, {
          method: "POST",
          headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
          body: JSON.stringify({ events }),
        });
        ok = r.status > 0 && r.status < 500 && r.status !== 429;
        // HAProxy's own 503 (no server up) is HTML; the app's is JSON with the reason.
        if (!ok)
          why = `${r.status} ${r.text.startsWith("{") ? r.text.slice(0, 90) : "from HAProxy (no server available)"}`;
        const body = (ok ? JSON.parse(r.text) : {}) as { items?: { eventId: string; status: string }[] };
        if (r.status === 200 || r.status === 207)
          for (const it of body.items ?? []) if (it.status === "accepted") acked.push(it.eventId);
      }
    } catch (err) {
      ok = false;
      why = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    }
    samples.push({
      at: Date.now(),
      ms: performance.now() - t0,
      ok,
      what,
      ...(why !== undefined ? { why } : {}),
    });
  };

  // Open loop: RATE requests a second in 10 ms ticks, whatever the latency.
  const start = Date.now();
  const end = start + SECONDS * 1000;
  let sent = 0;
  const pending = new Set<Promise<void>>();
  const ticker = setInterval(() => {
    const due = Math.floor(((Date.now() - start) / 1000) * RATE) - sent;
    for (let i = 0; i < due && Date.now() < end; i++) {
      sent++;
      const p = one();
      pending.add(p);
      void p.finally(() => pending.delete(p));
    }
  }, 10);
  // Progress every PROGRESS s: requests due / answered / failed, outstanding, and that stretch's p99.
  let shown = 0;
  const progress = setInterval(() => {
    const recent = samples.slice(shown);
    shown = samples.length;
    const ms = recent.map((s) => s.ms).sort((a, b) => a - b);
    const p99 = ms[Math.min(ms.length - 1, Math.floor(0.99 * ms.length))] ?? Number.NaN;
    process.stdout.write(
      `  t=${Math.round((Date.now() - start) / 1000)} s: ${sent} sent, ${samples.length} done, ` +
        `${samples.filter((s) => !s.ok).length} failed, ${pending.size} outstanding; last ${PROGRESS} s: ` +
        `${(recent.length / PROGRESS).toFixed(0)} answered/s, p99 ${p99.toFixed(0)} ms, ` +
        `${recent.filter((s) => !s.ok).length} failed; load ${loadavg()[0]!.toFixed(1)}\n`,
    );
  }, PROGRESS * 1000);
  // CPU per process between AVAIL_CPU_FROM and AVAIL_CPU_TO (bench/topologyCpu.ts).
  let cpuReport = "";
  const cpuDone =
    CPU_FROM === undefined
      ? Promise.resolve()
      : (async () => {
          await new Promise((r) => setTimeout(r, start + CPU_FROM * 1000 - Date.now()));
          const pgc = await PgStore.open(topo.MASTERY_PG_URL as string, { schema: tag });
          const backends = (
            await pgc.all<{ pid: number }>("SELECT pid FROM pg_stat_activity WHERE application_name = $1", [
              tag,
            ])
          ).map((r) => Number(r.pid));
          await pgc.close();
          const pids = topologyPids(topo.LOCAL_DIR as string, 2, backends);
          const before = sampleCpu(pids);
          const n0 = samples.length;
          const t0 = Date.now();
          await new Promise((r) => setTimeout(r, start + CPU_TO * 1000 - Date.now()));
          const after = sampleCpu(pids);
          const requests = samples.length - n0;
          cpuReport = formatCpuRows(
            cpuPerRequest(pids, before, after, requests),
            requests,
            (Date.now() - t0) / 1000,
          );
        })();
  // Disruptions at PERIOD, 2*PERIOD, ... (not in the last 10 s).
  const steps = disruptionSteps(process.env.AVAIL_STEPS);
  for (let k = 1; start + k * PERIOD * 1000 < end - 10_000; k++) {
    await new Promise((r) => setTimeout(r, start + k * PERIOD * 1000 - Date.now()));
    const [what, args] = steps[(k - 1) % steps.length] as [string, string[]];
    const from = Date.now();
    await local(...args);
    windows.push({ from, to: Date.now() + 2000, what });
    process.stdout.write(
      `  t=${((from - start) / 1000).toFixed(0)} s ${what}: ${((Date.now() - from) / 1000).toFixed(1)} s\n`,
    );
  }
  await new Promise((r) => setTimeout(r, Math.max(0, end - Date.now())));
  clearInterval(ticker);
  await Promise.all(pending);
  await cpuDone;
  clearInterval(progress);
  agent.destroy();

  // Every acknowledged event must reach PostgreSQL (the worker catches up first).
  const pg = await PgStore.open(topo.MASTERY_PG_URL as string, { schema: tag });
  let missing = acked.length;
  const want = new Set(acked);
  const deadline = Date.now() + 90_000;
  while (Date.now() < deadline) {
    const rows = await pg.all<{ event_id: string }>(
      "SELECT DISTINCT event_id FROM raw_events WHERE event_id LIKE $1",
      [`${tag}-%`],
    );
    const have = new Set(rows.map((r) => r.event_id));
    missing = [...want].filter((id) => !have.has(id)).length;
    if (missing === 0) break;
    await new Promise((r) => setTimeout(r, 2000));
  }

  const inWindow = (s: Sample) => windows.some((w) => s.at >= w.from && s.at - s.ms <= w.to);
  const failed = samples.filter((s) => !s.ok);
  const outside = samples.filter((s) => !inWindow(s)).map((s) => s.ms);
  const q = (xs: number[], p: number) => {
    const a = [...xs].sort((x, y) => x - y);
    return a[Math.min(a.length - 1, Math.floor(p * a.length))] ?? Number.NaN;
  };
  const byWhat = new Map<string, number>();
  for (const f of failed) byWhat.set(f.what, (byWhat.get(f.what) ?? 0) + 1);
  const byWhy = new Map<string, number>();
  for (const f of failed) byWhy.set(f.why ?? "?", (byWhy.get(f.why ?? "?") ?? 0) + 1);
  const failedInWindows = failed.filter(inWindow).length;
  process.stdout.write(
    `availability bench: ${SECONDS} s at ${RATE} req/s through HAProxy to 2 servers (+1 stream worker), disruption every ${PERIOD} s\n` +
      `  requests ${samples.length}, failed ${failed.length} (${[...byWhat].map(([k, v]) => `${k} ${v}`).join(", ") || "none"}): ` +
      `success ${((100 * (samples.length - failed.length)) / samples.length).toFixed(3)}% (target >= 99.9%)\n` +
      `  failures by cause: ${[...byWhy].map(([k, v]) => `${k} ${v}`).join(", ") || "none"}; ` +
      `${failedInWindows} of them during a disruption window\n` +
      `  p50 ${q(outside, 0.5).toFixed(1)} ms, p99 outside the ${windows.length} disruption windows ${q(outside, 0.99).toFixed(1)} ms ` +
      `(target <= 100); p99 overall ${q(
        samples.map((s) => s.ms),
        0.99,
      ).toFixed(1)} ms\n` +
      `  acknowledged events ${acked.length}, missing from PostgreSQL raw_events after catch-up: ${missing} (target 0)\n` +
      `  load average at the end ${loadavg()
        .map((l) => l.toFixed(1))
        .join(" / ")} (1 / 5 / 15 min)\n`,
  );

  process.stdout.write(stallReport(topo.LOCAL_DIR as string, start));
  process.stdout.write(cpuReport);
  await local("stop").catch((e: Error) => process.stderr.write(`stop: ${e.message}\n`));
  await pg.run(`DROP SCHEMA ${tag} CASCADE`).catch(() => undefined);
  await pg.close();
  const { Redis } = await import("ioredis");
  const redis = new Redis(process.env.MASTERY_REDIS_URL || "redis://127.0.0.1:6379");
  const keys = await redis.keys(`${tag}*`);
  for (let i = 0; i < keys.length; i += 1000) await redis.del(...keys.slice(i, i + 1000));
  redis.disconnect();
  const nc = await connect({ servers: process.env.MASTERY_NATS_URL || "nats://127.0.0.1:4222" });
  await (await nc.jetstreamManager()).streams.delete(tag.toUpperCase()).catch(() => false);
  await nc.close();
}

await main();
