/**
 * A/B of the embedded (DuckDB) server in one process: the app of another tree (DUCKAB_BEFORE, e.g. main
 * unpacked next to this one) against this tree's, each on its own copy of one seeded file, requests
 * alternating between them (the order swapped each time) so that both see the same machine load.
 *
 * Seed (as bench/load.bench.ts): DUCKAB_STUDENTS students x 20 topics and DUCKAB_WIDE students x 100 topics,
 * bkt + elo scores in student_mastery_base; DUCKAB_DELTA of the 20-topic students also have one newer
 * score in the delta (as after a day of POSTs, before the compaction). Measured, per side:
 * - cold GET /mastery (body cache miss): server time of ctx.masteryJson, each student once per side, for
 *   100 and 20 topics: median and p99 wall, mean and median CPU (this process, user + system, DuckDB's threads
 *   included) per read;
 * - POST /events of 10 quiz attempts (one student, 10 topics; HTTP, one group): median and p99 wall, CPU.
 *
 *   git archive main | tar -x -C /tmp/ab/before && ln -s "$PWD/node_modules" /tmp/ab/before/node_modules
 *   DUCKAB_BEFORE=/tmp/ab/before npx tsx bench/duckAB.bench.ts
 *   DUCKAB_BEFORE=/tmp/ab/before DUCKAB_READS=200 DUCKAB_POSTS=60 npx tsx bench/duckAB.bench.ts
 *
 * Without DUCKAB_BEFORE both sides are this tree (an A/A run: the noise floor of the ratios).
 * DUCKAB_THREADS_BEFORE=n / DUCKAB_THREADS_AFTER=n: that side's DuckDB instance with n threads (default: one per
 * core), e.g. DUCKAB_THREADS_AFTER=1 without DUCKAB_BEFORE measures `serving.yaml duck_threads: 1` alone.
 * DUCKAB_PROF=dir: a V8 CPU profile of each measured phase (both sides) in dir/<phase>.cpuprofile.
 * DUCKAB_SERVED=1: the 100-topic students also have a decaying 'served' row per topic (bench/wideSeed.ts
 * SEED_SERVED_EXPLANATION, as of 2026-01-05: served, decayed at read time), both sides read at one instant,
 * the cold reads time ctx.masteryBody (what GET /mastery runs, not the decode back to text) and both sides'
 * bodies are compared byte for byte.
 * Target (issue 15): a cold GET /mastery <= 2 ms of server time for a student with 100 topics.
 */
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { Session } from "node:inspector/promises";
import { loadavg, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { Pseudonymizer } from "../features/pseudonymize.ts";
import { DuckStore } from "../storage/duckdb.ts";
import { baseTable, deltaTable } from "../storage/servingTables.ts";
import { envNumber as env, BENCH_PSEUDONYM_KEY as KEY, quizPostBody } from "./benchEnv.ts";
import { listenBenchApp } from "./benchServer.ts";
import { SEED_EXPLANATION, SEED_SERVED_EXPLANATION } from "./wideSeed.ts";

const STUDENTS = env("DUCKAB_STUDENTS", 3000);
const WIDE = env("DUCKAB_WIDE", 200);
const DELTA = Number(process.env.DUCKAB_DELTA ?? 0.3);
const READS = env("DUCKAB_READS", 150);
const POSTS = env("DUCKAB_POSTS", 40);
const here = resolve(fileURLToPath(import.meta.url), "../..");
const beforeDir = resolve(process.env.DUCKAB_BEFORE ?? here);
if (READS + 10 > WIDE || READS + 10 > STUDENTS)
  throw new Error(`DUCKAB_READS (${READS}) + 10 warm-up reads must not exceed DUCKAB_WIDE / DUCKAB_STUDENTS`);

const EXPLANATION = SEED_EXPLANATION;
const WITH_SERVED = process.env.DUCKAB_SERVED === "1";
// One read instant for both sides (a decayed score depends on it).
const readAt = new Date();
const pseudo = new Pseudonymizer(KEY);
const dir = mkdtempSync(join(process.env.TMPDIR ?? tmpdir(), "duck-ab-"));

async function seed(path: string): Promise<void> {
  const s = await DuckStore.open(path, { encryption: null });
  const topics: string[] = [];
  for (let i = 0; i < 20; i++) topics.push(`('T${i}', 'Topic ${i}', 'C${i % 4}', 'S1', 'K1', 0, 10)`);
  for (let i = 0; i < 100; i++) topics.push(`('W${i}', 'Wide ${i}', 'WC${i % 10}', 'S2', 'K1', 0, 10)`);
  await s.run(
    `INSERT INTO topics (topic_id, name, chapter_id, subject_id, course_id, difficulty_estimate, content_length) VALUES ${topics.join(",")}`,
  );
  await s.run("CREATE TEMP TABLE ab_keys (student_key VARCHAR, n INTEGER, wide BOOLEAN)");
  const keys: string[] = [];
  for (let i = 0; i < STUDENTS; i++) keys.push(`('${pseudo.studentKey(`student-${i}`)}', ${i}, false)`);
  for (let i = 0; i < WIDE; i++) keys.push(`('${pseudo.studentKey(`wide-${i}`)}', ${i}, true)`);
  for (let i = 0; i < keys.length; i += 5000)
    await s.run(`INSERT INTO ab_keys VALUES ${keys.slice(i, i + 5000).join(",")}`);
  const ts = "TIMESTAMP '2026-01-05 10:00:00'";
  const cols =
    "student_key, topic_id, mastery_score, score_source, model_version, as_of, explanation, last_updated";
  await s.run(
    `INSERT INTO ${baseTable("student_mastery")} (${cols})
     SELECT student_key, (CASE WHEN wide THEN 'W' ELSE 'T' END) || t.i, ((n * 7 + t.i * 13) % 100) / 100.0, src,
            'default', ${ts}, '${EXPLANATION}', ${ts}
     FROM temp.ab_keys, range(100) t(i), (VALUES ('bkt'), ('elo')) x(src) WHERE wide OR t.i < 20`,
  );
  if (WITH_SERVED)
    await s.run(
      `INSERT INTO ${baseTable("student_mastery")} (${cols})
       SELECT student_key, 'W' || t.i, ((n * 7 + t.i * 13) % 100) / 100.0, 'served', 'default', ${ts},
              '${SEED_SERVED_EXPLANATION}', ${ts}
       FROM temp.ab_keys, range(100) t(i) WHERE wide`,
    );
  await s.run(
    `INSERT INTO ${deltaTable("student_mastery")} (${cols})
     SELECT student_key, 'T1', 0.9, 'bkt', 'default', TIMESTAMP '2026-01-06 10:00:00', '${EXPLANATION}',
            TIMESTAMP '2026-01-06 10:00:00'
     FROM temp.ab_keys WHERE NOT wide AND n < ${Math.round(DELTA * STUDENTS)}`,
  );
  await s.run("CHECKPOINT");
  s.close();
}

interface Side {
  name: string;
  /** The cold read: ctx.masteryJson's text, or with DUCKAB_SERVED=1 ctx.masteryBody's bytes. */
  masteryJson(studentKey: string): Promise<string | Buffer>;
  post(body: string): Promise<void>;
  close(): Promise<void>;
}

/** The app of the tree at `root` on its own copy of the seeded file. */
async function openSide(name: string, root: string, seeded: string): Promise<Side> {
  const path = join(dir, `${name}.duckdb`);
  copyFileSync(seeded, path);
  const { DuckStore: Store } = (await import(
    join(root, "storage/duckdb.ts")
  )) as typeof import("../storage/duckdb.ts");
  const { createApp } = (await import(join(root, "serving/app.ts"))) as typeof import("../serving/app.ts");
  const { parseThresholds } = (await import(
    join(root, "serving/alerts.ts")
  )) as typeof import("../serving/alerts.ts");
  const threads = process.env[`DUCKAB_THREADS_${name.toUpperCase()}`];
  const store = await Store.open(path, {
    encryption: null,
    ...(threads ? { threads: Number(threads) } : {}),
  });
  const {
    ctx,
    server,
    base,
    authorization: auth,
  } = await listenBenchApp(
    { createApp, parseThresholds },
    { store, pseudonymizer: pseudo, ...(WITH_SERVED ? { now: () => readAt } : {}) },
  );
  const url = `${base}/events`;
  return {
    name,
    masteryJson: WITH_SERVED ? async (k) => (await ctx.masteryBody(k)).buf : (k) => ctx.masteryJson(k),
    async post(body) {
      const r = await fetch(url, {
        method: "POST",
        headers: { authorization: auth, "content-type": "application/json" },
        body,
      });
      if (r.status !== 200) throw new Error(`${name}: POST /events answered ${r.status}: ${await r.text()}`);
    },
    async close() {
      server.closeAllConnections();
      server.close();
      await store.close();
    },
  };
}

const cpuUs = () => {
  const u = process.cpuUsage();
  return u.user + u.system;
};
const quantile = (xs: number[], q: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? Number.NaN;
};
interface Sample {
  ms: number[];
  cpu: number[];
}

/** `n` calls of `call(side, i)` on both sides, alternating which goes first; per side wall ms and CPU µs. */
async function alternate(sides: [Side, Side], n: number, call: (s: Side, i: number) => Promise<unknown>) {
  const out: [Sample, Sample] = [
    { ms: [], cpu: [] },
    { ms: [], cpu: [] },
  ];
  for (let i = 0; i < n; i++) {
    const got: unknown[] = [];
    for (const j of i % 2 === 0 ? [0, 1] : [1, 0]) {
      const c0 = cpuUs();
      const t0 = performance.now();
      got[j] = await call(sides[j]!, i);
      out[j]!.ms.push(performance.now() - t0);
      out[j]!.cpu.push(cpuUs() - c0);
    }
    if (WITH_SERVED && Buffer.isBuffer(got[0]) && Buffer.isBuffer(got[1]) && !got[0].equals(got[1]))
      throw new Error(
        `call ${i}: the two trees' GET /mastery bodies differ (the A/B must not change a byte)`,
      );
  }
  return out;
}

const profDir = process.env.DUCKAB_PROF;
const inspector = profDir === undefined ? null : new Session();
/** `phase()` measured, and profiled into DUCKAB_PROF/<name>.cpuprofile when set. */
async function profiled<T>(name: string, phase: () => Promise<T>): Promise<T> {
  if (inspector === null || profDir === undefined) return phase();
  mkdirSync(profDir, { recursive: true });
  inspector.connect();
  await inspector.post("Profiler.enable");
  await inspector.post("Profiler.start");
  const out = await phase();
  const { profile } = await inspector.post("Profiler.stop");
  writeFileSync(join(profDir, `${name.replace(/[^a-z0-9]+/gi, "_")}.cpuprofile`), JSON.stringify(profile));
  inspector.disconnect();
  return out;
}

function report(what: string, sides: [Side, Side], [a, b]: [Sample, Sample]) {
  const f = (s: Sample) => ({
    median: quantile(s.ms, 0.5),
    p99: quantile(s.ms, 0.99),
    cpu: s.cpu.reduce((x, y) => x + y, 0) / s.cpu.length,
    cpuMedian: quantile(s.cpu, 0.5),
  });
  const [x, y] = [f(a), f(b)];
  console.log(
    `${what.padEnd(22)} ${sides[0].name}: median ${x.median.toFixed(2)} ms, p99 ${x.p99.toFixed(2)} ms, CPU ${x.cpu.toFixed(0)} µs (median ${x.cpuMedian.toFixed(0)}) | ` +
      `${sides[1].name}: median ${y.median.toFixed(2)} ms, p99 ${y.p99.toFixed(2)} ms, CPU ${y.cpu.toFixed(0)} µs (median ${y.cpuMedian.toFixed(0)}) | ` +
      `after/before median ${(y.median / x.median).toFixed(2)}x, CPU ${(y.cpu / x.cpu).toFixed(2)}x (medians ${(y.cpuMedian / x.cpuMedian).toFixed(2)}x)`,
  );
}

const load0 = loadavg();
const seeded = join(dir, "seed.duckdb");
await seed(seeded);
const sides: [Side, Side] = [
  await openSide("before", beforeDir, seeded),
  await openSide("after", here, seeded),
];
console.log(
  `duck A/B: before ${beforeDir}${beforeDir === here ? " (this tree: A/A)" : ""}, after ${here}; ${STUDENTS} x 20 + ${WIDE} x 100 topics, ` +
    `${Math.round(DELTA * STUDENTS)} students with a delta row${WITH_SERVED ? ", a served row per 100-topic topic (ctx.masteryBody, bodies compared)" : ""}; ${READS} cold reads, ${POSTS} POSTs per side; ` +
    `DuckDB threads before ${process.env.DUCKAB_THREADS_BEFORE ?? "default"}, after ${process.env.DUCKAB_THREADS_AFTER ?? "default"}`,
);
// JIT warm-up on students the measured reads do not use.
await alternate(sides, 10, (s, i) => s.masteryJson(pseudo.studentKey(`wide-${READS + i}`)));
await alternate(sides, 10, (s, i) => s.masteryJson(pseudo.studentKey(`student-${READS + i}`)));
await alternate(sides, 5, (s, i) => s.post(quizPostBody(`abwarm${i}`, STUDENTS - 1 - i, i * 10, 20)));
report(
  "cold GET 100 topics",
  sides,
  await profiled("cold100", () =>
    alternate(sides, READS, (s, i) => s.masteryJson(pseudo.studentKey(`wide-${i}`))),
  ),
);
report(
  "cold GET 20 topics",
  sides,
  await profiled("cold20", () =>
    alternate(sides, READS, (s, i) => s.masteryJson(pseudo.studentKey(`student-${i}`))),
  ),
);
// Each POST to a student not read above, so its group writes a fresh cache entry's student.
report(
  "POST /events x10",
  sides,
  await profiled("post10", () =>
    alternate(sides, POSTS, (s, i) => s.post(quizPostBody(`ab${i}`, READS + 20 + (i % 500), i * 10, 20))),
  ),
);
console.log(
  `load average at start ${load0.map((l) => l.toFixed(1)).join(" ")}, at end ${loadavg()
    .map((l) => l.toFixed(1))
    .join(" ")}`,
);
for (const s of sides) await s.close();
rmSync(dir, { recursive: true, force: true });
process.exit(0);
