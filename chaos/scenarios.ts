import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { appendFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { signToken } from "../serving/auth.ts";
import type { BktEloModels } from "../serving/learnerState.ts";
import { recompute } from "../serving/recompute.ts";
import { openStreamStores } from "../serving/streamStores.ts";
import { streamModels } from "../serving/updater.ts";
import { NatsBus } from "../storage/bus.ts";
import { PgStore } from "../storage/postgres.ts";
import { RedisStateStore } from "../storage/stateStore.ts";
import { generateStreamEvents } from "../test/serving/streamEvents.ts";
import { fuzzEvent, fuzzRng } from "./fuzz.ts";
import { type ChaosServices, sleep, waitForPort } from "./services.ts";

/**
 * The chaos scenarios: real `mastery worker` / `mastery serve` processes against the private
 * services of chaos/services.ts, a fault injected while events flow, then an audit of what was
 * acknowledged against what PostgreSQL holds and against a full replay (`mastery recompute`).
 * Each returns the counts the runbook's guarantees are stated in.
 */

const MASTERY = join(dirname(fileURLToPath(import.meta.url)), "..", "bin", "mastery.js");
const PSEUDONYM_KEY = "chaos-pseudonym-key-0123456789abcdef";
const JWT_SECRET = "chaos-jwt-secret-0123456789abcdef0123456789";
/** What `mastery worker` and `mastery serve` run with here (default models, default rule weights): the audit's replay. */
const MODELS: BktEloModels = streamModels({});

export interface ScenarioResult {
  name: string;
  /** Events offered (published to NATS, or posted). */
  sent: number;
  /** Events the system said it has: JetStream publish acks, or POST /events items accepted/duplicate. */
  acknowledged: number;
  /** Distinct event ids in PostgreSQL raw_events afterwards. */
  stored: number;
  /** Acknowledged valid events absent from raw_events (or never folded into learner_state). */
  lost: number;
  /** Keys whose stored state differs from the replay of their events (an event folded twice or not at all). */
  doubleCounted: number;
  /** learner_state and student_mastery equal the full replay. */
  recomputeOk: boolean;
  deadLettered: number;
  /** The first dead letters: event id, field, reason. */
  deadLetterReasons: string[];
  /** HTTP 5xx other than 503-with-Retry-After. */
  http5xx: number;
  /** 503 answers carrying Retry-After (the designed answer during an outage; the client retries). */
  http503: number;
  /** Slowest /healthz answer while the scenario ran (ms); null when no server ran. */
  healthzMaxMs: number | null;
  /** Slowest /healthz answer after the server's first POST /events was answered (warm process). */
  healthzWarmMaxMs: number | null;
  seconds: number;
  notes: string[];
}

export interface ScenarioContext {
  services: ChaosServices;
  log: (m: string) => void;
  /** Scales event counts (1 = the long `npm run chaos`; the test uses less). */
  scale: number;
}

const encoder = new TextEncoder();

/** A PostgreSQL schema / Redis prefix / NATS stream name for one run (<= 48 characters). */
function runId(label: string): string {
  return `chaos_${label.slice(0, 34)}_${randomBytes(3).toString("hex")}`;
}

interface Child {
  proc: ChildProcess;
  exited: Promise<number | null>;
  tail(): string;
}

/** Every worker/server process a scenario started and that has not exited yet. */
const live = new Set<ChildProcess>();

/** Kills (SIGKILL) every process the scenarios started (the runner calls it on Ctrl-C). */
export function killChildren(): void {
  for (const p of live) p.kill("SIGKILL");
}

function spawnMastery(args: string[], env: Record<string, string>): Child {
  const proc = spawn(process.execPath, [MASTERY, ...args], {
    env: { ...process.env, MASTERY_QUIET: "1", LOG_LEVEL: "warn", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let tail = "";
  // MASTERY_CHAOS_LOG_DIR=DIR keeps each child's whole output (DIR/<pid>-<command>.log) for a post-mortem.
  const logDir = process.env.MASTERY_CHAOS_LOG_DIR;
  const logFile = logDir ? join(logDir, `${proc.pid ?? "x"}-${args[0] ?? "mastery"}.log`) : null;
  const keep = (d: Buffer) => {
    tail = (tail + d.toString()).slice(-6000);
    if (logFile !== null) appendFileSync(logFile, d);
  };
  proc.stdout?.on("data", keep);
  proc.stderr?.on("data", keep);
  live.add(proc);
  const exited = new Promise<number | null>((r) =>
    proc.once("exit", (code) => {
      live.delete(proc);
      r(code);
    }),
  );
  return { proc, exited, tail: () => tail };
}

function storeEnv(s: ChaosServices, id: string): Record<string, string> {
  return {
    MASTERY_PG_URL: s.pgUrl,
    MASTERY_PG_SCHEMA: id,
    MASTERY_REDIS_URL: s.redisUrl,
    MASTERY_REDIS_PREFIX: id,
    MASTERY_PSEUDONYM_KEY: PSEUDONYM_KEY,
  };
}

/** What PostgreSQL + Redis hold for run `id`, checked against the acknowledged ids and a replay. */
async function audit(
  s: ChaosServices,
  id: string,
  acknowledged: ReadonlySet<string>,
): Promise<
  Pick<
    ScenarioResult,
    "stored" | "lost" | "doubleCounted" | "recomputeOk" | "deadLettered" | "deadLetterReasons"
  >
> {
  const stores = await openStreamStores({
    dbPath: ":memory:",
    pgUrl: s.pgUrl,
    pgSchema: id,
    redisUrl: s.redisUrl,
    redisPrefix: id,
  });
  try {
    const pg = stores.pg!;
    const ids = await pg.all<{ event_id: string }>("SELECT DISTINCT event_id FROM raw_events");
    const stored = new Set(ids.map((r) => r.event_id));
    let lost = 0;
    for (const e of acknowledged) if (!stored.has(e)) lost++;
    const dl = await pg.one<{ n: string }>("SELECT count(*) AS n FROM dead_letter");
    const reasons = await pg.all<{ event_id: string | null; field: string; reason: string }>(
      "SELECT event_id, field, left(reason, 160) AS reason FROM dead_letter ORDER BY event_id LIMIT 10",
    );
    const report = await recompute(stores, MODELS);
    const ls = report.tables.find((t) => t.table === "learner_state")!;
    if (!report.ok && process.env.MASTERY_CHAOS_VERBOSE === "1")
      console.error(JSON.stringify(report.tables, null, 1).slice(0, 12000));
    return {
      deadLetterReasons: reasons.map((r) => `${r.event_id ?? "(no id)"} ${r.field}: ${r.reason}`),
      stored: stored.size,
      lost,
      doubleCounted: ls.differences + ls.extra,
      recomputeOk: report.ok,
      deadLettered: Number(dl?.n ?? 0),
    };
  } finally {
    await stores.close();
  }
}

async function dropRun(s: ChaosServices, id: string): Promise<void> {
  const pg = await PgStore.open(s.pgUrl);
  await pg.run(`DROP SCHEMA IF EXISTS ${id} CASCADE`);
  await pg.close();
  const r = await RedisStateStore.open(s.redisUrl, id);
  await r.clear();
  await r.close();
}

// ------------------------------------------------------------------------------------------------
// Stream scenarios: NATS -> `mastery worker` -> PostgreSQL + Redis

type StreamFault = (ctx: ScenarioContext, run: StreamRun) => Promise<void>;

interface StreamRun {
  id: string;
  /** The worker process now (replaced when a fault restarts it). */
  worker: Child;
  startWorker(): Child;
  /** Resolves once every event has been published (acknowledged or given up). */
  published: Promise<void>;
  /** Messages published so far (acknowledged by JetStream). */
  progress(): number;
  /** Messages published and settled by the worker (acked or dead-lettered). */
  settled(): Promise<number>;
  total: number;
}

async function streamScenario(
  ctx: ScenarioContext,
  name: string,
  opts: { events: number; fault: StreamFault; extra?: () => { data: Uint8Array; valid: string | null }[] },
): Promise<ScenarioResult> {
  const t0 = Date.now();
  const s = ctx.services;
  const id = runId(name.replace(/[^a-z0-9]+/gi, "_").toLowerCase());
  const bus = await NatsBus.open({
    url: s.natsUrl,
    stream: id,
    subjectPrefix: `chaos.${id}`,
    durable: "workers",
    ackWaitMs: 5000,
    maxDeliver: 5,
  });
  const set = generateStreamEvents({ students: 50, topics: 6, events: opts.events, seed: 7 });
  const messages: { data: Uint8Array; id: string | null; subject: string }[] = set.publishOrder.map((e) => ({
    data: encoder.encode(JSON.stringify(e)),
    id: String(e.event_id),
    subject: bus.subjectFor(String(e.type)),
  }));
  for (const x of opts.extra?.() ?? []) {
    const at = Math.floor((messages.length * (x.valid === null ? 0.5 : 0.3)) % (messages.length + 1));
    messages.splice(at, 0, { data: x.data, id: x.valid, subject: bus.subjectFor("quiz_attempt") });
  }
  const acknowledged = new Set<string>();
  const notes: string[] = [];
  const args = [
    "worker",
    "--stream",
    id,
    "--subject-prefix",
    `chaos.${id}`,
    "--durable",
    "workers",
    "--ack-wait",
    "5000",
    "--max-deliver",
    "5",
    "--batch",
    "200",
  ];
  const env = { ...storeEnv(s, id), MASTERY_NATS_URL: s.natsUrl };
  let done = 0;
  const run: StreamRun = {
    id,
    worker: spawnMastery(args, env),
    startWorker: () => {
      run.worker = spawnMastery(args, env);
      return run.worker;
    },
    published: Promise.resolve(),
    progress: () => done,
    settled: async () => {
      const b = await bus.backlog().catch(() => null);
      return b === null ? 0 : done - b.pending - b.ackPending;
    },
    total: messages.length,
  };
  // Publish in windows, retrying each message until JetStream acknowledges it (msgId = event_id:
  // a re-publish within the duplicate window is dropped by the server, so retries never double).
  run.published = (async () => {
    const window = 100;
    for (let i = 0; i < messages.length; i += window) {
      await Promise.all(
        messages.slice(i, i + window).map(async (m, k) => {
          for (let attempt = 0; attempt < 200; attempt++) {
            try {
              await bus.publish(m.subject, m.data, m.id ?? `poison-${i + k}`);
              if (m.id !== null) acknowledged.add(m.id);
              done++;
              return;
            } catch {
              await sleep(Math.min(2000, 100 * 2 ** Math.min(attempt, 4)));
            }
          }
          notes.push(`message ${i + k} never acknowledged by JetStream`);
        }),
      );
      await sleep(20);
    }
  })();
  try {
    await Promise.all([run.published, opts.fault(ctx, run)]);
    // Drain: everything published is settled (bounded by the amount of work, not a fixed deadline).
    const deadline = Date.now() + 60_000 + messages.length * 20;
    for (;;) {
      const b = await bus.backlog().catch(() => ({ pending: 1, ackPending: 0 }));
      if (b.pending + b.ackPending === 0) break;
      if (Date.now() > deadline) {
        notes.push(`not drained: ${b.pending} pending, ${b.ackPending} unacknowledged`);
        break;
      }
      if (run.worker.proc.exitCode !== null) {
        notes.push(
          `worker exited (${run.worker.proc.exitCode}); restarted: ${run.worker.tail().slice(-300)}`,
        );
        run.startWorker();
      }
      await sleep(250);
    }
    const w = run.worker;
    w.proc.kill("SIGTERM");
    const code = await Promise.race([w.exited, sleep(15_000).then(() => "timeout" as const)]);
    if (code !== 0) notes.push(`worker SIGTERM exit: ${code}`);
    if (process.env.MASTERY_CHAOS_VERBOSE === "1") ctx.log(`  worker log tail:\n${w.tail().slice(-3000)}`);
    const a = await audit(s, id, acknowledged);
    return {
      name,
      sent: messages.length,
      acknowledged: acknowledged.size,
      ...a,
      http5xx: 0,
      http503: 0,
      healthzMaxMs: null,
      healthzWarmMaxMs: null,
      seconds: Math.round((Date.now() - t0) / 1000),
      notes,
    };
  } finally {
    if (run.worker.proc.exitCode === null) run.worker.proc.kill("SIGKILL");
    await bus.destroy().catch(() => undefined);
    await bus.close().catch(() => undefined);
    await dropRun(s, id).catch(() => undefined);
  }
}

/** Waits until the worker has settled `share` of the stream, then runs `fn` (the fault lands mid-stream). */
async function at(run: StreamRun, share: number, fn: () => Promise<void>): Promise<void> {
  while ((await run.settled()) < run.total * share) await sleep(100);
  await fn();
}

export const streamPgRestart = (ctx: ScenarioContext, downMs: number) =>
  streamScenario(ctx, `stream: PostgreSQL down ${downMs / 1000} s`, {
    events: Math.round(20_000 * ctx.scale),
    fault: (c, run) => at(run, 0.3, () => c.services.outage("postgres", downMs)),
  });

export const streamRedisRestart = (ctx: ScenarioContext) =>
  streamScenario(ctx, "stream: Redis restart", {
    events: Math.round(20_000 * ctx.scale),
    fault: (c, run) => at(run, 0.3, () => c.services.outage("redis", 2000)),
  });

export const streamNatsRestart = (ctx: ScenarioContext) =>
  streamScenario(ctx, "stream: NATS restart", {
    events: Math.round(20_000 * ctx.scale),
    fault: (c, run) => at(run, 0.3, () => c.services.outage("nats", 3000)),
  });

/** kill -9 the worker at random moments across the whole stream, restarting it each time. */
export const streamKill9 = (ctx: ScenarioContext, kills: number) =>
  streamScenario(ctx, `stream: worker kill -9 x${kills}`, {
    events: Math.round(20_000 * ctx.scale),
    fault: async (c, run) => {
      const rng = fuzzRng(17);
      for (let k = 0; k < kills; k++) {
        // Spread the kills over the stream: kill k lands once share k/(kills+1) of it was settled,
        // a random 0.3-1.8 s after this worker started taking messages.
        while ((await run.settled()) < (run.total * k) / (kills + 1)) await sleep(100);
        await sleep(300 + rng.int(1500));
        run.worker.proc.kill("SIGKILL");
        await run.worker.exited;
        c.log(`  worker kill -9 #${k + 1} at ${await run.settled()}/${run.total} settled`);
        run.startWorker();
      }
    },
  });

/** Poison messages among valid ones: malformed JSON, invalid events, values the store refuses. */
export const streamPoison = (ctx: ScenarioContext) =>
  streamScenario(ctx, "stream: poison messages", {
    events: 40,
    fault: async () => {},
    extra: () => {
      const q = (id: string, over: Record<string, unknown>) => ({
        event_id: id,
        type: "quiz_attempt",
        student_id: "student-poison",
        timestamp: "2026-01-05T10:00:00Z",
        topic_id: "topic-1",
        question_id: "q1",
        is_correct: true,
        time_spent_sec: 5,
        ...over,
      });
      const bytes = (v: unknown) => encoder.encode(typeof v === "string" ? v : JSON.stringify(v));
      return [
        { data: bytes('{"event_id": "p1", "type": "quiz_attempt"'), valid: null },
        { data: bytes(q("p2", { time_spent_sec: -3 })), valid: null },
        { data: bytes(q("p3", { topic_id: "topic\u0000nul" })), valid: null },
        { data: bytes(q("p4", { attempt_number: 2 ** 40 })), valid: null },
        { data: bytes(q("p5", { topic_id: "t".repeat(100_000) })), valid: null },
      ];
    },
  });

// ------------------------------------------------------------------------------------------------
// HTTP scenarios: POST /events -> `mastery serve` on PostgreSQL + Redis

interface HttpRun {
  server: Child;
  /** Batches posted so far / in total. */
  progress(): number;
  total: number;
}

type HttpFault = (ctx: ScenarioContext, run: HttpRun) => Promise<void>;

async function httpScenario(
  ctx: ScenarioContext,
  name: string,
  opts: {
    batches: unknown[][];
    /** Event ids a correct system must store (valid events); default: every event_id sent. */
    valid?: ReadonlySet<string>;
    fault: HttpFault;
    concurrency?: number;
  },
): Promise<ScenarioResult> {
  const t0 = Date.now();
  const s = ctx.services;
  const id = runId(name.replace(/[^a-z0-9]+/gi, "_").toLowerCase());
  const dir = mkdtempSync(join(tmpdir(), "mastery-chaos-serve-"));
  const port = Number(process.env.MASTERY_CHAOS_HTTP_PORT ?? 28080);
  const server = spawnMastery(
    ["serve", "--port", String(port), "--db", join(dir, "serve.duckdb"), "--no-monitor"],
    { ...storeEnv(s, id), MASTERY_JWT_SECRET: JWT_SECRET, MASTERY_ARTIFACTS: join(dir, "artifacts") },
  );
  const notes: string[] = [];
  let http5xx = 0;
  let http503 = 0;
  let healthzMaxMs = 0;
  let healthzMaxAt = "";
  let healthzWarmMaxMs = 0;
  let warm = false;
  const acknowledged = new Set<string>();
  let posted = 0;
  const base = `http://127.0.0.1:${port}`;
  try {
    // Fails at once if the server exits instead of listening (its log tail says why).
    await Promise.race([
      waitForPort(port, 180_000),
      server.exited.then((code) => {
        throw new Error(`mastery serve exited (${code}) before listening: ${server.tail().slice(-500)}`);
      }),
    ]);
    const token = await signToken(
      JWT_SECRET,
      { role: "service", sub: "chaos", scopes: ["events:write"] },
      "2h",
    );
    let stopHealth = false;
    const health = (async () => {
      while (!stopHealth) {
        const h0 = performance.now();
        try {
          const r = await fetch(`${base}/healthz`, { signal: AbortSignal.timeout(5000) });
          await r.arrayBuffer();
        } catch {
          /* counted as the time it took */
        }
        const took = performance.now() - h0;
        if (warm) healthzWarmMaxMs = Math.max(healthzWarmMaxMs, took);
        if (took > healthzMaxMs) {
          healthzMaxMs = took;
          healthzMaxAt = `${Math.round((Date.now() - t0) / 100) / 10} s into the scenario, ${posted}/${opts.batches.length} batches posted`;
        }
        await sleep(50);
      }
    })();
    const run: HttpRun = { server, progress: () => posted, total: opts.batches.length };
    const post = async (batch: unknown[]) => {
      let errors = 0;
      for (let attempt = 0; attempt < 120; attempt++) {
        let res: Response;
        try {
          res = await fetch(`${base}/events`, {
            method: "POST",
            headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
            body: JSON.stringify(batch),
            signal: AbortSignal.timeout(30_000),
          });
        } catch (err) {
          // A server that died is a failure to report now (with its log), not an outage to wait out.
          if (server.proc.exitCode !== null || server.proc.signalCode !== null)
            throw new Error(
              `mastery serve died during the scenario (exit ${server.proc.exitCode ?? server.proc.signalCode}); its log tail: ${server.tail().slice(-2500)}`,
            );
          notes.push(`POST failed: ${(err as Error).message}`);
          await sleep(500);
          continue;
        }
        const body = (await res.json().catch(() => null)) as {
          items?: { eventId: string | null; status: string }[];
        } | null;
        if (res.status === 503 && res.headers.get("retry-after") !== null) {
          http503++;
          await sleep(1000 * Number(res.headers.get("retry-after")));
          continue;
        }
        if (res.status >= 500) {
          http5xx++;
          if (notes.length < 20) notes.push(`${res.status}: ${JSON.stringify(body).slice(0, 200)}`);
          // A 5xx is a bug, not an outage: two more tries, then the batch is given up (and its
          // valid events show up as never acknowledged).
          if (++errors >= 3) return;
          await sleep(500);
          continue;
        }
        warm = true;
        for (const it of body?.items ?? [])
          if ((it.status === "accepted" || it.status === "duplicate") && it.eventId !== null)
            acknowledged.add(it.eventId);
        return;
      }
      notes.push("a batch was never answered without 5xx after 120 attempts");
    };
    const queue = opts.batches.map((b, i) => ({ b, i }));
    const lanes = Array.from({ length: opts.concurrency ?? 2 }, async () => {
      for (let next = queue.shift(); next !== undefined; next = queue.shift()) {
        await post(next.b);
        posted++;
      }
    });
    await Promise.all([...lanes, opts.fault(ctx, run)]);
    stopHealth = true;
    await health;
    // Bounded graceful shutdown: SIGTERM must end the server (and release its DuckDB file).
    const s0 = Date.now();
    server.proc.kill("SIGTERM");
    const code = await Promise.race([server.exited, sleep(15_000).then(() => "timeout" as const)]);
    if (code !== 0) notes.push(`serve SIGTERM exit: ${code} after ${Date.now() - s0} ms`);
    const sentIds = new Set<string>();
    for (const b of opts.batches)
      for (const e of b) {
        const eid = (e as { event_id?: unknown; id?: unknown } | null)?.event_id;
        if (typeof eid === "string") sentIds.add(eid);
      }
    if (healthzMaxMs > 100)
      notes.push(`/healthz slowest (${Math.round(healthzMaxMs)} ms) at ${healthzMaxAt}`);
    const valid = opts.valid ?? sentIds;
    const mustHave = new Set([...acknowledged].filter((e) => valid.has(e)));
    const a = await audit(s, id, acknowledged);
    const unacknowledgedValid = [...valid].filter((e) => !acknowledged.has(e)).length;
    if (unacknowledgedValid > 0) notes.push(`${unacknowledgedValid} valid events were never acknowledged`);
    if (mustHave.size !== acknowledged.size)
      notes.push(`${acknowledged.size - mustHave.size} fuzzed events were acknowledged (valid after all)`);
    return {
      name,
      sent: opts.batches.reduce((n, b) => n + b.length, 0),
      acknowledged: acknowledged.size,
      ...a,
      http5xx,
      http503,
      healthzMaxMs: Math.round(healthzMaxMs),
      healthzWarmMaxMs: Math.round(healthzWarmMaxMs),
      seconds: Math.round((Date.now() - t0) / 1000),
      notes,
    };
  } finally {
    if (server.proc.exitCode === null) server.proc.kill("SIGKILL");
    if (http5xx > 0 || notes.length > 0 || process.env.MASTERY_CHAOS_VERBOSE === "1")
      ctx.log(`  server log tail:\n${server.tail().slice(-3000)}`);
    rmSync(dir, { recursive: true, force: true });
    await dropRun(s, id).catch(() => undefined);
  }
}

function eventBatches(events: readonly Record<string, unknown>[], size: number): unknown[][] {
  const out: unknown[][] = [];
  for (let i = 0; i < events.length; i += size) out.push(events.slice(i, i + size));
  return out;
}

async function atBatch(run: HttpRun, share: number, fn: () => Promise<void>): Promise<void> {
  while (run.progress() < run.total * share) await sleep(50);
  await fn();
}

export const httpPgOutage = (ctx: ScenarioContext, downMs: number) =>
  httpScenario(ctx, `POST /events: PostgreSQL down ${downMs / 1000} s`, {
    batches: eventBatches(
      generateStreamEvents({
        students: 40,
        topics: 5,
        events: Math.round(8000 * ctx.scale),
        seed: 11,
        idPrefix: "h",
      }).events,
      20,
    ),
    fault: (c, run) => atBatch(run, 0.3, () => c.services.outage("postgres", downMs)),
  });

export const httpRedisRestart = (ctx: ScenarioContext) =>
  httpScenario(ctx, "POST /events: Redis restart", {
    batches: eventBatches(
      generateStreamEvents({
        students: 40,
        topics: 5,
        events: Math.round(8000 * ctx.scale),
        seed: 12,
        idPrefix: "r",
      }).events,
      20,
    ),
    fault: (c, run) => atBatch(run, 0.3, () => c.services.outage("redis", 2000)),
  });

/** `n` fuzzed events mixed with as many valid ones, 100 per request. */
export const httpFuzz = (ctx: ScenarioContext, n: number) => {
  const valid = generateStreamEvents({ students: 30, topics: 5, events: n, seed: 13, idPrefix: "v" }).events;
  const r = fuzzRng(99);
  const mixed: unknown[] = [];
  valid.forEach((e, i) => {
    mixed.push(e);
    mixed.push(fuzzEvent(r, e, `f-${i}`));
  });
  return httpScenario(ctx, `POST /events: ${n} fuzzed + ${n} valid`, {
    batches: eventBatches(mixed as Record<string, unknown>[], 100),
    valid: new Set(valid.map((e) => String(e.event_id))),
    fault: async () => {},
  });
};

/** 1,000 events on one (student, topic): in one request, and one request per event. */
export const httpOneKey = (ctx: ScenarioContext, oneByOne: boolean) => {
  const n = 1000;
  const events = Array.from({ length: n }, (_, i) => ({
    event_id: `k-${oneByOne ? "s" : "b"}-${String(i).padStart(4, "0")}`,
    type: "quiz_attempt",
    student_id: "student-one-key",
    timestamp: new Date(Date.UTC(2026, 0, 5) + i * 60_000).toISOString(),
    topic_id: "topic-one",
    question_id: `q-${i % 7}`,
    is_correct: true,
    time_spent_sec: 10,
  }));
  return httpScenario(
    ctx,
    `POST /events: 1,000 events on one key ${oneByOne ? "one per request" : "in one batch"}`,
    {
      batches: oneByOne ? events.map((e) => [e]) : [events],
      fault: async () => {},
      concurrency: oneByOne ? 4 : 1,
    },
  );
};
