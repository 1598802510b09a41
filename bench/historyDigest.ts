/**
 * GET /mastery/:id/:topic/history bodies of two trees over one PostgreSQL + Redis store (issue 15, req28's history
 * cache): a SHA-256 of every body of each tree, to show a change left the bytes as they were. Both trees' apps are
 * loaded in this process (their own module graphs), each on its own DuckDB file and the same PostgreSQL schema and
 * Redis prefix, with one fixed request time. The store: HD_STUDENTS students, each HD_POSTS POSTs of 10 quiz
 * attempts through the first tree (bkt, elo and rule_based history rows as the stream writes them), and for every
 * third student a 'served' row on each topic (with a decay on two of three: a projected entry as of the request
 * time). Every (student, topic) history is read from tree A, then twice from tree B (its cache's miss, then hit),
 * and once more from both after a further POST of each fifth student (the cache dropped by the write).
 *
 *   npx tsx bench/historyDigest.ts                          # A = /work/h-req28-base, B = this tree
 *   HD_A=/path/to/tree HD_B=/other/tree HD_NAME=me_hd npx tsx bench/historyDigest.ts
 */
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { Redis } from "ioredis";
import { pino } from "pino";
import request from "supertest";
import { Pseudonymizer } from "../features/pseudonymize.ts";
import { signToken } from "../serving/auth.ts";
import { servedText } from "../test/serving/servedTextFixture.ts";
import {
  envNumber as env,
  BENCH_PSEUDONYM_KEY as KEY,
  quizPostBody,
  BENCH_REDIS_URL as REDIS_URL,
  BENCH_SECRET as SECRET,
} from "./benchEnv.ts";

const TOPICS = 20;
const NOW = new Date(Date.UTC(2026, 2, 1, 12));
const treeA = resolve(process.env.HD_A ?? "/work/h-req28-base");
const treeB = resolve(process.env.HD_B ?? ".");
const NAME = process.env.HD_NAME ?? "req28_hd";
if (!/^[a-z_][a-z0-9_]{0,40}$/.test(NAME))
  throw new Error(`HD_NAME must be a lower-case SQL identifier of at most 41 characters (got "${NAME}")`);

interface Tree {
  app: Parameters<typeof request>[0];
  close: () => Promise<void>;
  pgRun: (sql: string) => Promise<unknown>;
}

async function openTree(root: string, dir: string): Promise<Tree> {
  const { createApp, loadServingConfig, servingDuckOptions } = await import(`${root}/serving/app.ts`);
  const { DuckStore } = await import(`${root}/storage/duckdb.ts`);
  const { Pseudonymizer } = await import(`${root}/features/pseudonymize.ts`);
  const { parseThresholds } = await import(`${root}/serving/alerts.ts`);
  const { openBenchPgBackends } = await import(`${root}/bench/benchBackends.ts`);
  const store = await DuckStore.open(join(dir, "mastery.duckdb"), {
    encryption: null,
    ...servingDuckOptions({ duckThreads: loadServingConfig().duckThreads }),
  });
  const backends = await openBenchPgBackends(store, NAME, { invalidatedCacheTtlMs: 30_000 });
  const { app } = await createApp({
    store,
    pseudonymizer: new Pseudonymizer(KEY),
    jwtSecret: SECRET,
    logger: pino({ level: "warn" }),
    thresholds: parseThresholds({}, {}),
    defaultMetrics: false,
    now: () => NOW,
    config: { rateLimit: { windowMs: 60_000, limit: 0 } },
    ...backends.deps,
  });
  return {
    app,
    pgRun: (sql) => backends.stores.pg.run(sql),
    close: async () => {
      await backends.close();
      store.close();
    },
  };
}

async function main(): Promise<void> {
  const students = env("HD_STUDENTS", 30);
  const posts = env("HD_POSTS", 5);
  const pseudo = new Pseudonymizer(KEY);
  const auth = { authorization: `Bearer ${await signToken(SECRET, { role: "admin", sub: "bench" })}` };
  const dirs = [mkdtempSync(join(tmpdir(), "hd-a-")), mkdtempSync(join(tmpdir(), "hd-b-"))];
  // B first: its app creates the schema; A opens the same one.
  const b = await openTree(treeB, dirs[1]!);
  const a = await openTree(treeA, dirs[0]!);
  let seq = 0;
  const post = async (s: number) => {
    const res = await request(b.app)
      .post("/events")
      .set(auth)
      .set("content-type", "application/json")
      .send(quizPostBody(`hd-${process.pid}`, s, seq, TOPICS));
    seq += 10;
    if (res.status !== 200) throw new Error(`POST /events: ${res.status} ${res.text}`);
  };
  try {
    for (let p = 0; p < posts; p++) for (let s = 0; s < students; s++) await post(s);
    const served: string[] = [];
    for (let s = 0; s < students; s += 3)
      for (let t = 0; t < TOPICS; t++) {
        const score = ((s * 7 + t * 13) % 100) / 100;
        const text = servedText(score, t % 3 !== 0).replaceAll("'", "''");
        served.push(
          `('${pseudo.studentKey(`student-${s}`)}', 'T${t}', ${score}, 'served', 'served-v1', TIMESTAMP '2026-02-20 08:00:00', '${text}', TIMESTAMP '2026-02-20 08:00:01')`,
        );
      }
    await b.pgRun(
      `INSERT INTO ${NAME}.student_mastery_history (student_key, topic_id, mastery_score, score_source, model_version, as_of, explanation, recorded_at) VALUES ${served.join(",")}`,
    );
    const digests = { a: createHash("sha256"), bMiss: createHash("sha256"), bHit: createHash("sha256") };
    let bodies = 0;
    let differ = 0;
    let entries = 0;
    const readAll = async () => {
      for (let s = 0; s < students; s++)
        for (let t = 0; t < TOPICS; t++) {
          const path = `/mastery/student-${s}/T${t}/history`;
          const ra = await request(a.app).get(path).set(auth);
          const rb = await request(b.app).get(path).set(auth);
          const rh = await request(b.app).get(path).set(auth);
          for (const r of [ra, rb, rh])
            if (r.status !== 200) throw new Error(`GET ${path}: ${r.status} ${r.text.slice(0, 200)}`);
          digests.a.update(ra.text);
          digests.bMiss.update(rb.text);
          digests.bHit.update(rh.text);
          bodies++;
          entries += (JSON.parse(ra.text) as { history: unknown[] }).history.length;
          if (ra.text !== rb.text || rb.text !== rh.text || ra.headers.etag !== rh.headers.etag) differ++;
        }
    };
    await readAll();
    for (let s = 0; s < students; s += 5) await post(s);
    await readAll();
    const hex = (h: ReturnType<typeof createHash>) => h.digest("hex").slice(0, 16);
    console.log(
      `history bodies: ${bodies} (${entries} entries in all; ${students} students x ${TOPICS} topics, read twice around a POST of every fifth student)`,
    );
    console.log(`  A ${treeA}: SHA-256 ${hex(digests.a)}`);
    console.log(
      `  B ${treeB}: SHA-256 ${hex(digests.bMiss)} (first read), ${hex(digests.bHit)} (second read)`,
    );
    console.log(`  bodies or ETags that differ: ${differ}`);
    if (differ > 0) process.exitCode = 1;
  } finally {
    await a.close();
    await b.pgRun(`DROP SCHEMA ${NAME} CASCADE`).catch(() => undefined);
    await b.close();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
    // The learner states and processed sets left under this run's Redis prefix.
    const redis = new Redis(REDIS_URL);
    let cursor = "0";
    do {
      const [next, keys] = await redis.scan(cursor, "MATCH", `${NAME}:*`, "COUNT", 5000);
      if (keys.length > 0) await redis.unlink(...keys);
      cursor = next;
    } while (cursor !== "0");
    redis.disconnect();
  }
}

await main();
