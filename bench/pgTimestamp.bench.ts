/**
 * storage/pgTimestamp.ts against the generic parse it replaced (`new Date(text.replace(" ", "T") + "Z")`):
 * 1. the parse alone, on 400 PostgreSQL timestamp texts (a 100-topic cold read's as_of + last_updated),
 *    CPU per 400 parses, interleaved;
 * 2. per query: a node-postgres client reading 200 rows x 2 TIMESTAMP columns + 8 others (the cold read's
 *    shape) with each parser, alternating query by query, CPU per query of this process.
 *   npx tsx bench/pgTimestamp.bench.ts        (PGTS_ROUNDS=3, PGTS_QUERIES=300)
 */
import { createRequire } from "node:module";
import { loadavg } from "node:os";
import type pg from "pg";
import { parsePgTimestamp } from "../storage/pgTimestamp.ts";
import { BENCH_PG_URL, envNumber as env } from "./benchEnv.ts";

const generic = (v: string) => new Date(`${v.replace(" ", "T")}Z`);
const cpu = () => {
  const u = process.cpuUsage();
  return u.user + u.system;
};
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;
const rounds = env("PGTS_ROUNDS", 3);
const queries = env("PGTS_QUERIES", 300);
const la = () =>
  loadavg()
    .map((x) => x.toFixed(1))
    .join(" ");

const texts: string[] = [];
for (let i = 0; i < 400; i++) {
  const d = new Date(Date.UTC(2026, 0, 5, 10) + i * 3_600_123 + (i % 7) * 0.001);
  const iso = d.toISOString().replace("T", " ").replace("Z", "");
  texts.push(i % 3 === 0 ? `${iso}456` : i % 3 === 1 ? iso.slice(0, 19) : iso);
}
let sink = 0;
const parseRound = (f: (v: string) => Date, reps: number) => {
  const c0 = cpu();
  for (let r = 0; r < reps; r++) for (const t of texts) sink += f(t).getTime() & 1;
  return (cpu() - c0) / reps;
};
parseRound(parsePgTimestamp, 2000);
parseRound(generic, 2000);
process.stdout.write(`pgTimestamp bench (load ${la()})\n`);
for (let r = 1; r <= rounds; r++) {
  const a = parseRound(generic, 3000);
  const b = parseRound(parsePgTimestamp, 3000);
  process.stdout.write(
    `  parse alone, round ${r}: generic ${a.toFixed(1)} µs / 400, fast ${b.toFixed(1)} µs / 400 (fast/generic ${(b / a).toFixed(2)})\n`,
  );
}

const pgm = createRequire(import.meta.url)("pg") as typeof pg;
const types = (f: (v: string) => Date) =>
  ({
    getTypeParser: (oid: number, format?: "text" | "binary") =>
      oid === 1114 && format !== "binary" ? f : pgm.types.getTypeParser(oid, format ?? "text"),
  }) as pg.CustomTypesConfig;
const sql = `SELECT 'student-key-' || g AS student_key, 'T' || g AS topic_id, random() AS mastery_score, 'bkt' AS score_source,
    'default' AS model_version, TIMESTAMP '2026-01-05 10:00:00' + g * INTERVAL '1 second 123456 microseconds' AS as_of,
    '{"base":0.3,"factors":[]}' AS explanation, TIMESTAMP '2026-01-05 10:00:00' + g * INTERVAL '17 minutes' AS last_updated,
    g AS n, g % 2 = 0 AS flag
  FROM generate_series(1, 200) g`;
const a = new pgm.Client({ connectionString: BENCH_PG_URL, types: types(generic) });
const b = new pgm.Client({ connectionString: BENCH_PG_URL, types: types(parsePgTimestamp) });
await a.connect();
await b.connect();
const q = (c: pg.Client) => c.query({ name: "pgts", text: sql });
for (let i = 0; i < 30; i++) {
  await q(a);
  await q(b);
}
for (let r = 1; r <= rounds; r++) {
  const ca: number[] = [];
  const cb: number[] = [];
  for (let i = 0; i < queries; i++) {
    let c0 = cpu();
    await q(a);
    ca.push(cpu() - c0);
    c0 = cpu();
    await q(b);
    cb.push(cpu() - c0);
  }
  const ma = ca.reduce((x, y) => x + y, 0) / queries;
  const mb = cb.reduce((x, y) => x + y, 0) / queries;
  process.stdout.write(
    `  per query (200 rows, 400 timestamps), round ${r}: client CPU generic ${ma.toFixed(0)} µs (median ${median(ca)}), ` +
      `fast ${mb.toFixed(0)} µs (median ${median(cb)}) (fast/generic ${(mb / ma).toFixed(2)}; load ${la()})\n`,
  );
}
await a.end();
await b.end();
if (sink < 0) process.stdout.write("");
