/**
 * Stream latency: events published to NATS JetStream at a fixed rate, applied by `mastery worker`
 * process(es) into Redis (learner_state) and PostgreSQL (student_mastery); for a sample of the
 * events, the time from publish until the API's read path (student_mastery in PostgreSQL) shows a
 * score as of that event. Target: p99 <= 1 s at 2,000 events/s.
 *   npx tsx bench/stream.bench.ts [--rate 2000] [--seconds 60] [--workers 1] [--students 5000] [--topics 10]
 * Uses MASTERY_NATS_URL / MASTERY_PG_URL / MASTERY_REDIS_URL (default: the local services), a fresh
 * stream, schema and key prefix, removed at the end. Results: docs/benchmarks.md ("Stream").
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Pseudonymizer } from "../features/pseudonymize.ts";
import { NatsBus } from "../storage/bus.ts";
import { PgStore } from "../storage/postgres.ts";
import { RedisStateStore } from "../storage/stateStore.ts";

const args = process.argv.slice(2);
const flag = (name: string, dflt: number) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
const RATE = flag("rate", 2000);
const SECONDS = flag("seconds", 60);
const WORKERS = flag("workers", 1);
const STUDENTS = flag("students", 5000);
const TOPICS = flag("topics", 10);
const SAMPLE_EVERY = 10;
const NATS_URL = process.env.MASTERY_NATS_URL || "nats://127.0.0.1:4222";
const PG_URL = process.env.MASTERY_PG_URL || "postgres://postgres@127.0.0.1:5432/test";
const REDIS_URL = process.env.MASTERY_REDIS_URL || "redis://127.0.0.1:6379";
const KEY = "stream-bench-key-0123456789abcdef";
const id = `bench_stream_${randomBytes(3).toString("hex")}`;
const root = join(dirname(fileURLToPath(import.meta.url)), "..");

const bus = await NatsBus.open({
  url: NATS_URL,
  stream: id,
  subjectPrefix: `bench.${id}`,
  durable: "workers",
});
const pg = await PgStore.open(PG_URL, { schema: id, coreTables: true });
const pseudonymizer = new Pseudonymizer(KEY);
const workers: ChildProcess[] = [];

const cleanup = async () => {
  for (const w of workers) if (w.exitCode === null) w.kill("SIGTERM");
  await Promise.all(workers.map((w) => (w.exitCode === null ? new Promise((r) => w.on("exit", r)) : null)));
  await bus.destroy().catch(() => undefined);
  await bus.close().catch(() => undefined);
  await pg.dropSchema().catch(() => undefined);
  await pg.close();
  const r = await RedisStateStore.open(REDIS_URL, id);
  await r.clear();
  await r.close();
};

try {
  for (let k = 0; k < WORKERS; k++) {
    const w = spawn(
      process.execPath,
      [
        join(root, "bin", "mastery.js"),
        "worker",
        "--stream",
        id,
        "--subject-prefix",
        `bench.${id}`,
        "--durable",
        "workers",
      ],
      {
        env: {
          ...process.env,
          MASTERY_NATS_URL: NATS_URL,
          MASTERY_PG_URL: PG_URL,
          MASTERY_PG_SCHEMA: id,
          MASTERY_REDIS_URL: REDIS_URL,
          MASTERY_REDIS_PREFIX: id,
          MASTERY_PSEUDONYM_KEY: KEY,
        },
        stdio: ["ignore", "ignore", process.env.BENCH_VERBOSE ? "inherit" : "ignore"],
      },
    );
    workers.push(w);
  }

  const encoder = new TextEncoder();
  let seq = 0;
  let lastUs = 0;
  type Sample = { key: string; topic: string; tsUs: number; sentAt: number };
  const pending = new Map<number, Sample>();
  const latencies: number[] = [];
  const event = (sampled: boolean): { data: Uint8Array; type: string; sample?: Sample } => {
    const s = Math.floor(Math.random() * STUDENTS);
    const t = Math.floor(Math.random() * TOPICS);
    // Strictly increasing event times, so "as_of >= this event's time" means "this event is in".
    const us = Math.max(Date.now() * 1000, lastUs + 1);
    lastUs = us;
    const ms = Math.floor(us / 1000);
    const iso = `${new Date(ms).toISOString().slice(0, 23)}${String(us % 1000).padStart(3, "0")}Z`;
    const e = {
      event_id: `${id}-${seq++}`,
      type: "quiz_attempt",
      student_id: `s${s}`,
      topic_id: `t${t}`,
      timestamp: iso,
      question_id: `q${t}-${seq % 7}`,
      is_correct: Math.random() < 0.7,
    };
    const out: { data: Uint8Array; type: string; sample?: Sample } = {
      data: encoder.encode(JSON.stringify(e)),
      type: e.type,
    };
    if (sampled)
      out.sample = { key: pseudonymizer.studentKey(e.student_id), topic: e.topic_id, tsUs: us, sentAt: 0 };
    return out;
  };

  const visibleAsOf = async (samples: Sample[]): Promise<Map<string, number>> => {
    const rows = await pg.allArrays<{ student_key: string; topic_id: string; as_of_us: number }>(
      `SELECT m.student_key, m.topic_id, (extract(epoch FROM m.as_of) * 1000000)::float8 AS as_of_us
       FROM student_mastery m JOIN (SELECT DISTINCT * FROM unnest($1::text[], $2::text[]) AS k(student_key, topic_id)) k
         USING (student_key, topic_id)
       WHERE m.score_source = 'bkt'`,
      [samples.map((s) => s.key), samples.map((s) => s.topic)],
    );
    return new Map(rows.map((r) => [`${r.student_key}/${r.topic_id}`, r.as_of_us]));
  };

  // Warm-up: wait until the workers are up and a first event is visible.
  {
    const w = event(true);
    await bus.publish(bus.subjectFor(w.type), w.data);
    const deadline = Date.now() + 60_000;
    for (;;) {
      const m = await visibleAsOf([w.sample!]);
      if ((m.get(`${w.sample!.key}/${w.sample!.topic}`) ?? 0) >= w.sample!.tsUs) break;
      if (Date.now() > deadline) throw new Error("worker did not start within 60 s");
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  // Sampler: polls the read path for the pending samples every 20 ms.
  let sampling = true;
  let polls = 0;
  const sampler = (async () => {
    while (sampling || pending.size > 0) {
      // The oldest 300 pending samples only: a poll over thousands of keys would itself load
      // PostgreSQL and slow the worker it measures (samples become visible roughly in order).
      const list: [number, Sample][] = [];
      for (const e of pending) {
        list.push(e);
        if (list.length === 300) break;
      }
      if (list.length > 0) {
        const asOf = await visibleAsOf(list.map(([, s]) => s));
        const now = performance.now();
        polls++;
        for (const [k, s] of list) {
          if ((asOf.get(`${s.key}/${s.topic}`) ?? 0) >= s.tsUs) {
            latencies.push(now - s.sentAt);
            pending.delete(k);
          }
        }
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  })();

  // Producer: RATE events/s in 10 ms ticks; publishes are not awaited one by one (acks are).
  const t0 = performance.now();
  const inflight = new Set<Promise<void>>();
  let published = 0;
  let maxBacklog = 0;
  let sampleId = 0;
  const backlogTimer = setInterval(async () => {
    const b = await bus.backlog().catch(() => undefined);
    if (b !== undefined) maxBacklog = Math.max(maxBacklog, b.pending + b.ackPending);
  }, 500);
  while (performance.now() - t0 < SECONDS * 1000) {
    const due = Math.floor(((performance.now() - t0) / 1000) * RATE);
    while (published < due) {
      const e = event(published % SAMPLE_EVERY === 0);
      const sentAt = performance.now();
      const p = bus.publish(bus.subjectFor(e.type), e.data).then(() => {
        inflight.delete(p);
      });
      inflight.add(p);
      if (e.sample !== undefined) {
        e.sample.sentAt = sentAt;
        pending.set(sampleId++, e.sample);
      }
      published++;
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  const produceSeconds = (performance.now() - t0) / 1000;
  await Promise.all(inflight);
  sampling = false;
  const drainDeadline = Date.now() + 60_000;
  while (pending.size > 0 && Date.now() < drainDeadline) await new Promise((r) => setTimeout(r, 100));
  const lost = pending.size;
  pending.clear();
  await sampler;
  clearInterval(backlogTimer);

  latencies.sort((a, b) => a - b);
  const q = (p: number) =>
    latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] ?? Number.NaN;
  const result = {
    rate: RATE,
    seconds: SECONDS,
    workers: WORKERS,
    keys: STUDENTS * TOPICS,
    published,
    achievedRate: Math.round(published / produceSeconds),
    samples: latencies.length,
    notVisibleAfter60s: lost,
    latencyMs: {
      p50: Math.round(q(0.5)),
      p90: Math.round(q(0.9)),
      p99: Math.round(q(0.99)),
      max: Math.round(latencies.at(-1) ?? Number.NaN),
    },
    maxBacklog,
    readPathPolls: polls,
    machine: { cpus: cpus().length, loadavg1: Number(loadavg()[0]!.toFixed(1)) },
  };
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  mkdirSync(join(root, "bench", "out"), { recursive: true });
  writeFileSync(
    join(root, "bench", "out", `stream-${RATE}x${SECONDS}s-${WORKERS}w.json`),
    JSON.stringify(result),
  );
} finally {
  await cleanup();
}
