/**
 * POST /events' write path alone, one vs several score writers in flight (IncrementalUpdater `masteryWriters`,
 * serving/updater.ts), interleaved in ONE process so both sides see the same machine: segments A B A B ...
 * of SCORE_SEGMENT_S seconds each (pairs B/A in the summary), A with 1 writer (main's behaviour), B with SCORE_WRITERS (default 4).
 *
 * Each side is the server's stack without HTTP: a CoalescingUpdater (pipelined) over an IncrementalUpdater on
 * real PostgreSQL + Redis (own schema / prefix `post25_sw_<pid>`, dropped at the end). Offered load, open loop:
 * SCORE_RATE requests/s (default 50: the 5% POST share of the load bench's 1,000 req/s), each 10 quiz attempts
 * of one of 10,000 students drawn Zipf-like, topics T0-T19; beside it SCORE_READS/s reads of one student's
 * scores from the same pool (default 200: roughly the mix's cache misses at 1,000 req/s). A request's latency is
 * from its scheduled time to its answer.
 *
 *   npx tsx bench/scoreWriters.bench.ts
 *   SCORE_SEGMENTS=6 SCORE_SEGMENT_S=15 SCORE_RATE=50 SCORE_WRITERS=4 npx tsx bench/scoreWriters.bench.ts
 *   SCORE_B_FIRST=1 ...                                  # segments B A B A ... (the order's bias, other way)
 */
import { Pseudonymizer } from "../features/pseudonymize.ts";
import { CoalescingUpdater } from "../serving/coalescingUpdater.ts";
import { openStreamStores } from "../serving/streamStores.ts";
import { IncrementalUpdater, streamModels } from "../serving/updater.ts";
import { PgStore } from "../storage/postgres.ts";
import type { RawEventRow } from "../storage/rawEventStore.ts";
import { RedisStateStore } from "../storage/stateStore.ts";
import { rawEventRow } from "../test/storage/rawEventRowFixture.ts";
import {
  BENCH_PSEUDONYM_KEY,
  envNumber as env,
  BENCH_PG_URL as PG_URL,
  BENCH_REDIS_URL as REDIS_URL,
} from "./benchEnv.ts";

const SEGMENTS = env("SCORE_SEGMENTS", 6);
const SEGMENT_S = env("SCORE_SEGMENT_S", 15);
const RATE = env("SCORE_RATE", 50);
const READS = env("SCORE_READS", 200);
const WRITERS = env("SCORE_WRITERS", 4);
/** SCORE_B_FIRST=1: segments B A B A ... (each side runs first in half of the runs: the stores fill with time). */
const B_FIRST = process.env.SCORE_B_FIRST === "1";
const STUDENTS = 10_000;
const TOPICS = 20;
const BATCH = 10;

const id = `post25_sw_${process.pid}`;
const stores = await openStreamStores({
  dbPath: ":memory:",
  pgUrl: PG_URL,
  pgSchema: id,
  redisUrl: REDIS_URL,
  redisPrefix: id,
});
const models = streamModels({});
const pseudo = new Pseudonymizer(BENCH_PSEUDONYM_KEY);
const keys = Array.from({ length: STUDENTS }, (_, i) => pseudo.studentKey(`student-${i}`));

// Zipf(1) over the students: rank k with weight 1/k (as bench/load.bench.ts draws them).
const cdf = new Float64Array(STUDENTS);
let total = 0;
for (let k = 0; k < STUDENTS; k++) cdf[k] = total += 1 / (k + 1);
function student(): string {
  const u = Math.random() * total;
  let lo = 0;
  let hi = STUDENTS - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (cdf[mid]! < u) lo = mid + 1;
    else hi = mid;
  }
  return keys[lo]!;
}

let n = 0;
const t0Us = Date.UTC(2026, 0, 6, 8) * 1000;
function request(): RawEventRow[] {
  const key = student();
  const rows: RawEventRow[] = [];
  for (let i = 0; i < BATCH; i++, n++)
    rows.push(
      rawEventRow(
        {
          event_id: `${id}-${n}`,
          type: "quiz_attempt",
          student_key: key,
          topic_id: `T${n % TOPICS}`,
          ts_us: t0Us + n * 1_000_000,
          ingested_at_us: Date.now() * 1000,
        },
        { question_id: `q-${n % 50}`, is_correct: n % 3 !== 0, time_spent_sec: 20, source: "bench" },
      ),
    );
  return rows;
}

function side(writers: number) {
  const inner = new IncrementalUpdater({
    raw: stores.raw,
    state: stores.state,
    mastery: stores.mastery,
    models,
    pipelineMastery: true,
    masteryWriters: writers,
  });
  return { inner, outer: new CoalescingUpdater(inner, { pipelined: true }) };
}
const sides = { A: side(1), B: side(WRITERS) };

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? Number.NaN : s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};

interface Segment {
  side: "A" | "B";
  load: number;
  p50: number;
  p90: number;
  p99: number;
  n: number;
  failed: number;
  cpuUsPerRequest: number;
  perBatch: Record<string, number>;
  batches: number;
}

async function segment(name: "A" | "B"): Promise<Segment> {
  const { inner, outer } = sides[name];
  const before = { ...inner.stats.ms, batches: inner.stats.batches };
  const latencies: number[] = [];
  let failed = 0;
  const inFlight: Promise<void>[] = [];
  const cpu0 = process.cpuUsage();
  const start = performance.now();
  const end = start + SEGMENT_S * 1000;
  let sent = 0;
  let reads = 0;
  // Open loop: the i-th request is due at start + i / RATE s, whether or not earlier ones have answered.
  while (performance.now() < end) {
    const now = performance.now();
    while (start + (sent * 1000) / RATE <= now) {
      const due = start + (sent * 1000) / RATE;
      sent++;
      inFlight.push(
        outer.apply(request()).then(
          () => {
            latencies.push(performance.now() - due);
          },
          () => {
            failed++;
          },
        ),
      );
    }
    while (start + (reads * 1000) / READS <= now) {
      reads++;
      inFlight.push(stores.mastery.forStudent(student()).then(() => undefined));
    }
    await new Promise((r) => setTimeout(r, 1));
  }
  await Promise.all(inFlight);
  const cpu = process.cpuUsage(cpu0);
  const batches = inner.stats.batches - before.batches;
  const perBatch: Record<string, number> = {};
  for (const [k, v] of Object.entries(inner.stats.ms))
    perBatch[k] = (v - (before as Record<string, number>)[k]!) / Math.max(1, batches);
  const { loadavg } = await import("node:os");
  return {
    side: name,
    load: loadavg()[0]!,
    p50: pct(latencies, 50),
    p90: pct(latencies, 90),
    p99: pct(latencies, 99),
    n: latencies.length,
    failed,
    cpuUsPerRequest: (cpu.user + cpu.system) / Math.max(1, latencies.length),
    perBatch,
    batches,
  };
}

const f1 = (x: number) => x.toFixed(1);
console.log(
  `score writers: ${SEGMENTS} segments of ${SEGMENT_S} s, A = 1 writer, B = ${WRITERS}; ${RATE} POST x${BATCH}/s offered + ${READS} score reads/s; PostgreSQL schema / Redis prefix ${id}`,
);
console.log(
  "| segment | side | load (1 min) | POSTs | p50 / p90 / p99 ms | failed | client CPU µs a POST | per group ms: record / commit / scoreQueue / scoreWrite (groups) |",
);
console.log("|---|---|---|---|---|---|---|---|");
const out: Segment[] = [];
// Warm-up: the first seconds create keys and plans on both sides.
for (const s of ["A", "B"] as const) {
  const w = performance.now();
  while (performance.now() - w < 2000) await sides[s].outer.apply(request());
}
for (let i = 0; i < SEGMENTS; i++) {
  const s = await segment((i % 2 === 0) !== B_FIRST ? "A" : "B");
  out.push(s);
  const b = s.perBatch;
  console.log(
    `| ${i + 1} | ${s.side} | ${s.load.toFixed(1)} | ${s.n} | ${f1(s.p50)} / ${f1(s.p90)} / ${f1(s.p99)} | ${s.failed} | ${Math.round(s.cpuUsPerRequest)} | ${f1(b.record!)} / ${f1(b.commit!)} / ${f1(b.scoreQueue!)} / ${f1(b.scoreWrite!)} (${s.batches}) |`,
  );
}
const med = (xs: number[]) => pct(xs, 50);
const pairs: { p50: number; p99: number }[] = [];
for (let i = 0; i + 1 < out.length; i += 2) {
  const [a, b] = out[i]!.side === "A" ? [out[i]!, out[i + 1]!] : [out[i + 1]!, out[i]!];
  pairs.push({ p50: b.p50 / a.p50, p99: b.p99 / a.p99 });
}
const A = out.filter((s) => s.side === "A");
const B = out.filter((s) => s.side === "B");
console.log(
  `medians: A p50 ${f1(med(A.map((s) => s.p50)))} p99 ${f1(med(A.map((s) => s.p99)))} ms; B p50 ${f1(med(B.map((s) => s.p50)))} p99 ${f1(med(B.map((s) => s.p99)))} ms; pairs B/A p50 ${pairs.map((p) => p.p50.toFixed(2)).join(", ")}; p99 ${pairs.map((p) => p.p99.toFixed(2)).join(", ")}`,
);

await stores.close();
const pg = await PgStore.open(PG_URL);
await pg.run(`DROP SCHEMA IF EXISTS ${id} CASCADE`);
await pg.close();
const r = await RedisStateStore.open(REDIS_URL, id);
await r.clear();
await r.close();
process.exit(0);
