/**
 * GET /mastery's miss read on the embedded file (DuckMasteryReadStore.scoreRows, no body) three ways in one process,
 * alternating per student on one read-pool connection: "probe" (a RowIdRunMemory that remembers nothing and
 * always probes: the row ids first, then the ranges or the index, the read from mastery22 to emb24), "memory" (the
 * default: storage/rowIdRanges.ts RowIdRunMemory), "index" (rangeReads false: one statement through the student
 * index, the read before mastery22). CPU (user + system) per read, medians per round, and the ratios. Rounds after
 * the first read the same students again (the memory then reads remembered students by their ranges).
 *
 *   npx tsx bench/coldReadPaths.bench.ts                              # batch rows in student order (bench/batchRowSeed.ts)
 *   AB_LAYOUT=spread npx tsx bench/coldReadPaths.bench.ts             # the same rows in hash order
 *   AB_SHAPE=load AB_TOPICS=20 AB_STUDENTS=400 npx tsx bench/coldReadPaths.bench.ts   # bench/load.bench.ts's store
 *
 * AB_SEEDED students are seeded (default 300; with AB_SHAPE=load the 100-topic ones, beside 3,000 of 20 topics),
 * AB_STUDENTS of them read (default 60), AB_ROUNDS rounds (default 3).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { Pseudonymizer } from "../features/pseudonymize.ts";
import { loadServingConfig, servingDuckOptions } from "../serving/app.ts";
import { DuckMasteryReadStore } from "../serving/masteryReadStore.ts";
import { scoreRowNeeds } from "../serving/masteryView.ts";
import { DuckStore } from "../storage/duckdb.ts";
import { RowIdRunMemory } from "../storage/rowIdRanges.ts";
import { seedBatchRows } from "./batchRowSeed.ts";
import { BENCH_PSEUDONYM_KEY } from "./benchEnv.ts";

const SEEDED = Number(process.env.AB_SEEDED ?? 300);
const N = Number(process.env.AB_STUDENTS ?? 60);
const ROUNDS = Number(process.env.AB_ROUNDS ?? 3);
const layout = process.env.AB_LAYOUT === "spread" ? "spread" : "student";
const cpu = () => {
  const u = process.cpuUsage();
  return u.user + u.system;
};
const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const readAt = new Date(Date.UTC(2026, 11, 6));
const dir = mkdtempSync(join(process.env.TMPDIR ?? tmpdir(), "emb24-ab-"));
const path = join(dir, "ab.duckdb");
const seeded = await DuckStore.open(path, { encryption: null });
const pseudo = new Pseudonymizer(BENCH_PSEUDONYM_KEY);
const TOPICS = Number(process.env.AB_TOPICS ?? 20);
let keys: string[];
if (process.env.AB_SHAPE === "load") {
  // bench/load.bench.ts's seed: bkt + elo text rows, written in a join's order (spread), 3,000 students of 20
  // topics and AB_SEEDED of 100 ("wide"); AB_TOPICS picks which are read.
  const text = JSON.stringify({ base: 0.3, factors: [{ name: "a", value: 1, contribution: 0.1 }], rest: 0 });
  await seeded.run("CREATE TABLE k (student_key VARCHAR, n INTEGER, wide BOOLEAN)");
  const rows: string[] = [];
  for (let s = 0; s < 3000; s++) rows.push(`('${pseudo.studentKey(`student-${s}`)}', ${s}, false)`);
  for (let s = 0; s < SEEDED; s++) rows.push(`('${pseudo.studentKey(`wide-${s}`)}', ${s}, true)`);
  await seeded.run(`INSERT INTO k VALUES ${rows.join(",")}`);
  await seeded.run(`INSERT INTO student_mastery_base (student_key, topic_id, mastery_score, score_source, model_version, as_of, explanation, last_updated)
    SELECT k.student_key, t.topic_id, ((k.n * 7 + t.i) % 100) / 100.0, s.src, 'default', TIMESTAMP '2026-01-05 10:00:00', '${text}', TIMESTAMP '2026-01-05 10:00:00'
    FROM k JOIN (SELECT 'T' || i AS topic_id, i, false AS wide FROM range(20) r(i) UNION ALL SELECT 'W' || i, i, true FROM range(100) r(i)) t
      ON t.wide = k.wide, (VALUES ('bkt'), ('elo')) s(src)
    ORDER BY hash(k.student_key, t.topic_id, s.src)`);
  keys = Array.from({ length: TOPICS === 100 ? SEEDED : 3000 }, (_, s) =>
    pseudo.studentKey(TOPICS === 100 ? `wide-${s}` : `student-${s}`),
  );
} else
  keys = await seedBatchRows(seeded, pseudo, {
    students: SEEDED,
    topics: 100,
    served: true,
    asOf: new Date(readAt.getTime() - 20 * 3600_000),
    layout,
  });
await seeded.run(
  "CREATE INDEX IF NOT EXISTS student_mastery_by_student ON student_mastery_base (student_key)",
);
seeded.close();
await seeded.whenClosed();
const duck = await DuckStore.open(path, {
  encryption: null,
  ...servingDuckOptions({ duckThreads: loadServingConfig().duckThreads }),
});
const pool = await duck.readPool(1);
const needs = scoreRowNeeds({});
const variants: Record<string, DuckMasteryReadStore> = {
  probe: new DuckMasteryReadStore(pool, undefined, {
    memory: new RowIdRunMemory({ capacity: 0, minShare: 0 }),
  }),
  memory: new DuckMasteryReadStore(pool),
  index: new DuckMasteryReadStore(pool, undefined, { rangeReads: false }),
};
// Warm-up on students the rounds do not read (the memory learns the layout from them, as the app's first misses).
for (const k of keys.slice(N, N + 20)) for (const v of Object.values(variants)) await v.scoreRows(k, needs);
console.log(
  `${process.env.AB_SHAPE === "load" ? `load bench shape, ${TOPICS}-topic students` : `layout ${layout}, ${SEEDED} students seeded (${SEEDED * 400} base rows)`}, ${N} read, load ${loadavg()[0]!.toFixed(1)}`,
);
const names = Object.keys(variants);
for (let r = 0; r < ROUNDS; r++) {
  const c: Record<string, number[]> = Object.fromEntries(names.map((n) => [n, []]));
  for (let s = 0; s < N; s++) {
    // Alternate the order per student so no variant always runs first.
    const order = s % 2 === 0 ? names : [...names].reverse();
    for (const n of order) {
      const c0 = cpu();
      await variants[n]!.scoreRows(keys[s]!, needs);
      c[n]!.push(cpu() - c0);
    }
  }
  const m = Object.fromEntries(names.map((n) => [n, med(c[n]!) / 1000]));
  console.log(
    `round ${r + 1} (load ${loadavg()[0]!.toFixed(1)}): CPU median ${names.map((n) => `${n} ${m[n]!.toFixed(2)} ms`).join(", ")}; memory/probe ${(m.memory! / m.probe!).toFixed(2)}, memory/index ${(m.memory! / m.index!).toFixed(2)}, probe/index ${(m.probe! / m.index!).toFixed(2)}`,
  );
}
console.log(
  `memory: share ${variants.memory!.memory!.recentShare.toFixed(3)}, students ${variants.memory!.memory!.size}`,
);
duck.close();
await duck.whenClosed();
rmSync(dir, { recursive: true, force: true });
process.exit(0);
