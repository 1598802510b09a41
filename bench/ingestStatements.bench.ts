/**
 * Where a CSV ingest's CPU goes, statement by statement, and the largest file's two big statements taken
 * apart (issue 17; docs/benchmarks.md "Ingest at 10M, round 4").
 *
 *   STUDENTS=10000 INGEST_DIR=/tmp/ing nice -n 10 npx tsx bench/ingestStatements.bench.ts          # ~1M events
 *   STUDENTS=100000 INGEST_DIR=/tmp/ing PARTS=0 nice -n 10 npx tsx bench/ingestStatements.bench.ts # ~10M
 *
 * 1. One `ingestPaths` over the generator's directory (bench/seedSchool.ts; generated into INGEST_DIR/data-<n>
 *    on the first run, reused after) on a fresh DuckDB file, memory_limit MEMORY_LIMIT (4GB) and
 *    preserve_insertion_order = false as bench/big.bench.ts. Every connection run / runAndReadAll is wrapped
 *    (runAndReadAll calls run: the outer call only) and its process CPU (user + system, DuckDB's threads
 *    included) added to its statement kind. The pseudonyms' HMAC and appends run outside statements ("other").
 * 2. PARTS=1 (default): the largest file's single-topic insert, as captured in step 1, replayed REPS times
 *    (default 3, interleaved) on fresh files: only read + validated + cast + joined to the pseudonyms (a count
 *    and a hash of every output column, nothing stored), into a TEMP table (stored in memory, no
 *    compression), and into raw_events (as the ingest does, COMMIT included); and pass 1 with and without its
 *    event-id grouping set (the within-file duplicate check).
 */
import { existsSync, rmSync } from "node:fs";
import { join } from "node:path";
import { ingestPaths } from "../features/ingest.ts";
import { Pseudonymizer } from "../features/pseudonymize.ts";
import { generateSynthetic } from "../features/synthetic/generate.ts";
import { DuckStore, sqlString } from "../storage/duckdb.ts";
import { BENCH_PSEUDONYM_KEY } from "./benchEnv.ts";
import { cpuNow, roundedMedian } from "./cpuClock.ts";
import { seedSchool } from "./seedSchool.ts";

const students = Number(process.env.STUDENTS ?? 10_000);
const base = process.env.INGEST_DIR ?? "/tmp/ingest-statements";
const memoryLimit = process.env.MEMORY_LIMIT ?? "4GB";
const reps = Number(process.env.REPS ?? 3);
const parts = process.env.PARTS !== "0";
const dataDir = join(base, `data-${students}`);
const dbPath = join(base, "bench.duckdb");

function removeStore(): void {
  for (const p of [dbPath, `${dbPath}.wal`, `${dbPath}.tmp`]) rmSync(p, { recursive: true, force: true });
}

async function freshStore(): Promise<DuckStore> {
  removeStore();
  const store = await DuckStore.open(dbPath, { memoryLimit, encryption: null });
  await store.run("SET preserve_insertion_order = false");
  return store;
}

/** The statement kinds of features/ingest.ts, by their text. */
function kindOf(sql: string): string {
  const s = sql.replace(/\s+/g, " ").trim();
  if (s.startsWith("INSERT INTO raw_events") && s.includes("unnest(")) return "insert, assignments (fan-out)";
  if (s.startsWith("INSERT INTO raw_events")) return "insert, single-topic files";
  if (s.includes("GROUPING SETS")) return "pass 1 (ids, repeated event ids, types)";
  if (s.includes("__context") || s.startsWith("INSERT INTO student_context")) return "student_context";
  if (s === "COMMIT") return "COMMIT";
  if (s.startsWith("DESCRIBE")) return "DESCRIBE (header and type sniff)";
  if (s.includes("count(DISTINCT event_id)")) return "assignments' event count";
  return "other statements";
}

if (!existsSync(join(dataDir, "manifest.json"))) {
  process.stderr.write(`generating ${students.toLocaleString("en")} students into ${dataDir}\n`);
  await generateSynthetic(seedSchool(students, dataDir));
}

// 1. The whole ingest, statement by statement.
const store = await freshStore();
type Fn = (this: { __timing?: boolean }, ...a: unknown[]) => Promise<unknown>;
const proto = Object.getPrototypeOf(store.conn) as Record<string, Fn>;
const byKind = new Map<string, number>();
const captured: string[] = [];
const originals = new Map<string, Fn>();
for (const m of ["run", "runAndReadAll"]) {
  const orig = proto[m]!;
  originals.set(m, orig);
  proto[m] = async function (this: { __timing?: boolean }, ...a: unknown[]) {
    if (this.__timing) return orig.apply(this, a);
    const c0 = cpuNow();
    this.__timing = true;
    try {
      return await orig.apply(this, a);
    } finally {
      this.__timing = false;
      const sql = String(a[0]);
      const k = kindOf(sql);
      byKind.set(k, (byKind.get(k) ?? 0) + cpuNow() - c0);
      if (k.startsWith("insert, single") || k.startsWith("pass 1")) captured.push(sql);
    }
  };
}
const c0 = cpuNow();
const t0 = performance.now();
const report = await ingestPaths(store, [dataDir], { pseudonymizer: new Pseudonymizer(BENCH_PSEUDONYM_KEY) });
const ingestCpu = cpuNow() - c0;
const ingestWall = (performance.now() - t0) / 1000;
for (const [m, orig] of originals) proto[m] = orig;
store.close();
const inStatements = [...byKind.values()].reduce((a, b) => a + b, 0);
byKind.set("other (HMAC of the distinct ids, appends, JS)", ingestCpu - inStatements);
process.stdout.write(
  `ingest of ${report.total.accepted.toLocaleString("en")} events: ${ingestCpu.toFixed(2)} CPU-s, ${ingestWall.toFixed(1)} s wall\n`,
);
for (const [k, v] of [...byKind].sort((a, b) => b[1] - a[1]))
  process.stdout.write(
    `  ${v.toFixed(2).padStart(7)} CPU-s  ${((100 * v) / ingestCpu).toFixed(0).padStart(3)}%  ${k}\n`,
  );

// 2. The largest file's insert and pass 1, taken apart.
if (parts) {
  const largest = report.files.filter((f) => f.format === "csv").sort((a, b) => b.accepted - a.accepted)[0];
  const mine = (prefix: string) =>
    captured.find(
      (s) => s.trimStart().startsWith(prefix) && largest !== undefined && s.includes(largest.file),
    );
  const insert = mine("INSERT INTO raw_events");
  const pass1 = mine("SELECT student_id, event_id AS h");
  if (largest === undefined || insert === undefined || pass1 === undefined)
    throw new Error("no single-topic CSV insert was captured; is the directory the generator's?");
  const select = insert.replace(/^\s*INSERT INTO raw_events /, "");
  // Pass 1 without its event-id grouping set: the relation is what its FROM reads.
  const relation = pass1.slice(pass1.indexOf("FROM (SELECT student_id, event_id"), pass1.indexOf("GROUP BY"));
  const variants: Record<string, string> = {
    "insert: read + validate + cast + join, nothing stored": `SELECT count(*), bit_xor(hash(*COLUMNS(*))) FROM (${select}) x`,
    "insert: into a TEMP table": `CREATE TEMP TABLE __copy AS ${select}`,
    "insert: into raw_events (as ingested)": insert,
    "pass 1 as ingested": pass1,
    "pass 1 without the event-id grouping set": `SELECT student_id, "type", count(*) AS n ${relation} GROUP BY GROUPING SETS ((student_id), ("type"))`,
  };
  const cpu: Record<string, number[]> = {};
  for (let r = 0; r < reps; r++) {
    for (const [name, sql] of Object.entries(variants)) {
      const s = await freshStore();
      await s.run("SET disabled_compression_methods = 'fsst,dict_fsst'");
      const ids = await s.all<{ id: string }>(
        `SELECT DISTINCT student_id AS id FROM read_csv(${sqlString(largest.file)}, all_varchar = true) WHERE student_id IS NOT NULL`,
      );
      const pseudo = new Pseudonymizer(BENCH_PSEUDONYM_KEY);
      await s.run("CREATE OR REPLACE TEMP TABLE __pseudo (student_id VARCHAR, student_key VARCHAR)");
      await s.appendRows(
        "__pseudo",
        (ap) => {
          for (const { id } of ids) {
            ap.appendVarchar(id);
            ap.appendVarchar(pseudo.studentKey(id));
            ap.endRow();
          }
        },
        { schema: "main", catalog: "temp" },
      );
      await s.run("BEGIN TRANSACTION");
      const c = cpuNow();
      await s.run(sql);
      await s.run("COMMIT");
      const runs = cpu[name] ?? [];
      runs.push(cpuNow() - c);
      cpu[name] = runs;
      s.close();
    }
  }
  process.stdout.write(
    `${largest.file} (${largest.accepted.toLocaleString("en")} rows), CPU-s, ${reps} runs:\n`,
  );
  for (const [name, xs] of Object.entries(cpu))
    process.stdout.write(
      `  ${roundedMedian(xs, 2).toFixed(2).padStart(6)} median (${xs.map((x) => x.toFixed(2)).join(" ")})  ${name}\n`,
    );
}
removeStore();
