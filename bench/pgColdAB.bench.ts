/**
 * A/B of the cold GET /mastery (body cache miss) on PostgreSQL + Redis in one process: the app of another
 * tree (PGAB_BEFORE, e.g. main checked out next to this one) against this tree's, both on one seeded schema,
 * misses alternating per student between them (the order swapped each time) so that both see the same
 * machine load. Each miss is ctx.masteryBody (no HTTP: what GET /mastery runs, the body's bytes and ETag) of a
 * student with PGAB_TOPICS topics (bkt + elo rows, as bench/coldRead.bench.ts seeds them); every student is
 * read once per side per round, from an empty cache. PGAB_TEXT=1 times ctx.masteryJson instead (the body
 * decoded back to a string as well: what the bench timed before serve14; not server work on GET /mastery). Prints per round the median wall and the median and mean CPU (this process, user + system,
 * all threads) per miss of each side, and their ratios; checks both sides' bodies are the same bytes.
 *
 *   git worktree add /tmp/ab/before main --detach && ln -s "$PWD/node_modules" /tmp/ab/before/node_modules
 *   PGAB_BEFORE=/tmp/ab/before npx tsx bench/pgColdAB.bench.ts
 *   PGAB_BEFORE=/tmp/ab/before PGAB_STUDENTS=300 PGAB_ROUNDS=5 PGAB_SCHEMA_PREFIX=me_ npx tsx bench/pgColdAB.bench.ts
 *
 * PGAB_SERVED=1 seeds a decaying 'served' row per topic too (the served one; both sides read a student at one
 * instant).
 * PGAB_PROF=dir: a V8 CPU profile of each measured round (both sides) in dir/round<n>.cpuprofile.
 * Without PGAB_BEFORE both sides are this tree (an A/A run: the noise floor of the ratios).
 * Target (issue 15): a cold GET /mastery <= 2 ms of server time for a student with 100 topics.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { Session } from "node:inspector/promises";
import { loadavg } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { pino } from "pino";
import { Pseudonymizer } from "../features/pseudonymize.ts";
import { PgStore } from "../storage/postgres.ts";
import {
  envNumber as env,
  BENCH_PSEUDONYM_KEY as KEY,
  BENCH_PG_URL as PG_URL,
  BENCH_REDIS_URL as REDIS_URL,
  BENCH_SECRET as SECRET,
} from "./benchEnv.ts";
import { seedWideStudents } from "./wideSeed.ts";

const topicsN = env("PGAB_TOPICS", 100);
const studentsN = env("PGAB_STUDENTS", 200);
const rounds = env("PGAB_ROUNDS", 3);
// PGAB_SERVED=1: a 'served' row per topic too (served first, decayed at read time: the served row's path).
const withServed = process.env.PGAB_SERVED === "1";
const asText = process.env.PGAB_TEXT === "1";
// Both sides read a student at the same instant (a decayed score depends on it), set before each pair.
let readAt = new Date();
const here = resolve(fileURLToPath(import.meta.url), "../..");
const beforeDir = resolve(process.env.PGAB_BEFORE ?? here);
const tag = `${process.env.PGAB_SCHEMA_PREFIX ?? ""}cold_ab_pg_${process.pid}`;
if (!/^[a-z_][a-z0-9_]{0,50}$/.test(tag))
  throw new Error(`PGAB_SCHEMA_PREFIX must make a lower-case SQL identifier (got "${tag}"), e.g. me_`);
const pseudo = new Pseudonymizer(KEY);
const cpuUs = () => {
  const u = process.cpuUsage();
  return u.user + u.system;
};
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;

interface Side {
  name: string;
  /** The miss's body bytes (ctx.masteryBody's, or ctx.masteryJson's text encoded with PGAB_TEXT=1). */
  miss(k: string): Promise<Buffer | string>;
  invalidate(keys: string[]): Promise<void>;
  close(): Promise<void>;
}

/** The app of the tree at `root` on the shared schema (its own DuckDB file in memory, its own pool). */
async function openSide(name: string, root: string): Promise<Side> {
  const imp = async <T>(p: string) => (await import(join(root, p))) as T;
  const { DuckStore: Store } = await imp<typeof import("../storage/duckdb.ts")>("storage/duckdb.ts");
  const { createApp } = await imp<typeof import("../serving/app.ts")>("serving/app.ts");
  const { parseThresholds } = await imp<typeof import("../serving/alerts.ts")>("serving/alerts.ts");
  const { openServingBackends } = await imp<typeof import("../serving/servingBackends.ts")>(
    "serving/servingBackends.ts",
  );
  const { streamModels } = await imp<typeof import("../serving/updater.ts")>("serving/updater.ts");
  const duck = await Store.open(":memory:", { encryption: null });
  const backends = await openServingBackends({
    duck,
    stores: { dbPath: ":memory:", duck, pgUrl: PG_URL, pgSchema: tag, redisUrl: REDIS_URL, redisPrefix: tag },
    models: streamModels({}),
  });
  const { ctx } = await createApp({
    store: duck,
    pseudonymizer: pseudo,
    jwtSecret: SECRET,
    logger: pino({ level: "warn" }),
    thresholds: parseThresholds({}, {}),
    defaultMetrics: false,
    ...backends.deps,
    ...(withServed ? { now: () => readAt } : {}),
  });
  return {
    name,
    miss: asText ? (k) => ctx.masteryJson(k) : async (k) => (await ctx.masteryBody(k)).buf,
    invalidate: (keys) => ctx.invalidate(keys),
    async close() {
      await backends.close();
      duck.close();
    },
  };
}

const pg = await PgStore.open(PG_URL, { schema: tag, coreTables: true });
const sides: Side[] = [];
try {
  await seedWideStudents(pg, pseudo, studentsN + 20, topicsN, withServed);
  sides.push(await openSide("before", beforeDir), await openSide("after", here));
  const keys = Array.from({ length: studentsN }, (_, s) => pseudo.studentKey(`wide-${s}`));
  // Warm-up (JIT, prepared statements, topics caches) on students the measured rounds do not read.
  for (let s = studentsN; s < studentsN + 20; s++)
    for (const side of sides) await side.miss(pseudo.studentKey(`wide-${s}`));
  console.log(
    `pg cold A/B: before ${beforeDir}${beforeDir === here ? " (this tree: A/A)" : ""}, after ${here}; ` +
      `${studentsN} students x ${topicsN} topics (bkt + elo${withServed ? " + served" : ""}), ${asText ? "ctx.masteryJson (text)" : "ctx.masteryBody (bytes)"}, schema ${tag}, ${rounds} rounds; load average ${loadavg()
        .map((x) => x.toFixed(1))
        .join(" ")}`,
  );
  const profDir = process.env.PGAB_PROF;
  const inspector = profDir === undefined ? null : new Session();
  for (let r = 0; r < rounds; r++) {
    for (const side of sides) await side.invalidate(keys);
    if (inspector !== null) {
      inspector.connect();
      await inspector.post("Profiler.enable");
      await inspector.post("Profiler.setSamplingInterval", { interval: 100 });
      await inspector.post("Profiler.start");
    }
    const m = sides.map(() => ({ ms: [] as number[], cpu: [] as number[] }));
    for (let i = 0; i < keys.length; i++) {
      const bodies: (Buffer | string)[] = [];
      readAt = new Date();
      for (const j of i % 2 === 0 ? [0, 1] : [1, 0]) {
        const c0 = cpuUs();
        const t0 = performance.now();
        bodies[j] = await sides[j]!.miss(keys[i]!);
        m[j]!.ms.push(performance.now() - t0);
        m[j]!.cpu.push(cpuUs() - c0);
      }
      const [b0, b1] = [Buffer.from(bodies[0]!), Buffer.from(bodies[1]!)];
      if (!b0.equals(b1))
        throw new Error(
          `student ${i}: the two trees' GET /mastery bodies differ (the A/B must not change a byte)`,
        );
    }
    if (inspector !== null && profDir !== undefined) {
      const { profile } = await inspector.post("Profiler.stop");
      mkdirSync(profDir, { recursive: true });
      writeFileSync(join(profDir, `round${r + 1}.cpuprofile`), JSON.stringify(profile));
      inspector.disconnect();
    }
    const f = (x: { ms: number[]; cpu: number[] }) => ({
      ms: median(x.ms),
      cpu: median(x.cpu),
      mean: x.cpu.reduce((a, b) => a + b, 0) / x.cpu.length,
    });
    const [b, a] = [f(m[0]!), f(m[1]!)];
    console.log(
      `round ${r + 1} (load ${loadavg()[0]!.toFixed(1)}): before median ${b.ms.toFixed(3)} ms, CPU median ${b.cpu.toFixed(0)} µs (mean ${b.mean.toFixed(0)}) | ` +
        `after median ${a.ms.toFixed(3)} ms, CPU median ${a.cpu.toFixed(0)} µs (mean ${a.mean.toFixed(0)}) | ` +
        `after/before wall ${(a.ms / b.ms).toFixed(2)}x, CPU ${(a.cpu / b.cpu).toFixed(2)}x (means ${(a.mean / b.mean).toFixed(2)}x); bodies identical`,
    );
  }
} finally {
  for (const s of sides) await s.close().catch(() => undefined);
  await pg.run(`DROP SCHEMA IF EXISTS ${tag} CASCADE`).catch(() => undefined);
  await pg.close();
}
