/**
 * The served step's full write at the batch's scale, alone (issue 17 item 4): `writeServedScores` (serving/
 * servedScoring.ts) rewrites student_mastery's base in one transaction (storage/servingTables.ts replaceBaseRows:
 * the rule, BKT and Elo rows kept, the new served and latent rows added, the student index built again) and
 * appends the served rows to the history. At 100M events (1M students, ~11M pairs, 5 rows a pair) this write ran
 * out of a 5 GB DuckDB limit while the base carried its primary key (an in-memory ART over every key); this bench
 * builds a base of that shape without the batch before it, so the write's memory can be seen at any scale in
 * minutes.
 *
 *   STUDENTS=100000 MEMORY_LIMIT=1GB npx tsx bench/baseRewrite.bench.ts             # ~1.1M pairs, 5.5M rows
 *   STUDENTS=1000000 MEMORY_LIMIT=5GB npx tsx bench/baseRewrite.bench.ts            # the 100M store's shape
 *   LAYOUT=keyed ...                                                                # the base with its primary key
 *                                                                                   # (a file from before)
 * TOPICS (pairs a student, default 11: the 100M store's 11.1 pairs a student), EXPLANATION_BYTES (each served and
 * latent row's explanation text, default 400, digits varying by row so it does not compress away; the rule, BKT and
 * Elo rows store theirs as numbers, here an empty text), BENCH_DIR (default
 * $TMPDIR/baseRewrite), THREADS (DuckDB's). Prints the fill's and the write's wall, process CPU and peak RSS
 * (sampled every 100 ms; VmHWM reset before the write), whether the write fit ("ok" or DuckDB's error), the
 * base's keys held twice afterwards (none expected) and the file's size.
 */
import { mkdirSync, rmSync, statSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { writeServedScores } from "../serving/servedScoring.ts";
import { DuckStore } from "../storage/duckdb.ts";
import { baseDuplicateKeys, baseTable } from "../storage/servingTables.ts";
import { cpuNow } from "./cpuClock.ts";
import { hwmMB, resetHwm, startRssSampler } from "./rssSampler.ts";

const students = Number(process.env.STUDENTS ?? 100_000);
const topics = Number(process.env.TOPICS ?? 11);
const explanationBytes = Number(process.env.EXPLANATION_BYTES ?? 400);
const memoryLimit = process.env.MEMORY_LIMIT ?? "1GB";
const layout = process.env.LAYOUT ?? "plain";
const threads = process.env.THREADS === undefined ? undefined : Number(process.env.THREADS);
if (!(students >= 1 && topics >= 1 && explanationBytes >= 20) || !["plain", "keyed"].includes(layout))
  throw new Error(
    `baseRewrite: STUDENTS and TOPICS must be >= 1, EXPLANATION_BYTES >= 20, LAYOUT plain or keyed (got ${students}, ${topics}, ${explanationBytes}, ${layout})`,
  );
const dir = join(process.env.BENCH_DIR ?? join(tmpdir(), "baseRewrite"), `store-${students}-${layout}`);
rmSync(dir, { recursive: true, force: true });
mkdirSync(dir, { recursive: true });
const path = join(dir, "mastery.duckdb");
const log = (s: string) => process.stderr.write(`${new Date().toISOString()} ${s}\n`);
const sampler = startRssSampler();

const store = await DuckStore.open(path, {
  memoryLimit,
  ...(threads === undefined ? {} : { threads }),
  encryption: null,
});
await store.run("SET preserve_insertion_order = false");
const base = baseTable("student_mastery");
if (layout === "keyed") {
  // A file from before: the base with the table's primary key (replaceBaseRows drops it at this rewrite, so the
  // write builds no key; the fill below still pays for one).
  const ddl = await store.one<{ sql: string }>(
    `SELECT sql FROM duckdb_tables() WHERE table_name = '${base}'`,
  );
  await store.run("DROP VIEW student_mastery");
  await store.run(`DROP TABLE ${base}`);
  await store.run(
    (ddl?.sql ?? "").replace(/\);?\s*$/, ", PRIMARY KEY (student_key, topic_id, score_source));"),
  );
}
await store.run(`CREATE INDEX IF NOT EXISTS student_mastery_by_student ON ${base} (student_key)`);

// A text of about `explanationBytes` whose digits move with the row (a constant would compress to nothing).
const text = (salt: string) =>
  `'{"top":[{"f":"recent_accuracy","v":' || ((${salt}) % 997)::VARCHAR || '},{"f":"attempts","v":' ||
   ((${salt}) % 89)::VARCHAR || '}],"pad":"' || repeat(md5((${salt})::VARCHAR), ${Math.ceil(explanationBytes / 32)}) || '"}'`;
const key = "'s' || lpad(s::VARCHAR, 8, '0')";
const topic = "'topic-' || lpad(t::VARCHAR, 3, '0')";

const span = () => ({ t: performance.now(), c: cpuNow() });
const done = (m: { t: number; c: number }) => ({
  seconds: Number(((performance.now() - m.t) / 1000).toFixed(1)),
  cpuSeconds: Number((cpuNow() - m.c).toFixed(1)),
  peakRssMB: sampler.takePeak(),
});

// The base as the steps before the served one leave it: rule, BKT and Elo rows in student order, then the
// served and latent rows of yesterday's run (2 of the 5 rows a pair), in blocks so the fill's progress shows.
log(
  `baseRewrite: ${students.toLocaleString("en")} students x ${topics} topics = ${(students * topics).toLocaleString("en")} pairs, ${layout} base, memory_limit ${memoryLimit}`,
);
sampler.takePeak();
const fill = span();
const block = 50_000;
for (let from = 0; from < students; from += block) {
  const to = Math.min(students, from + block);
  await store.run(
    `INSERT INTO ${base} (student_key, topic_id, mastery_score, score_source, model_version, as_of, explanation, last_updated)
     SELECT ${key}, ${topic}, ((s * 31 + t * 7 + src) % 1000) / 1000.0, ['rule_based', 'bkt', 'elo', 'served', 'latent'][src + 1],
            'v1', TIMESTAMP '2026-11-30', CASE WHEN src >= 3 THEN ${text("s * 131 + t * 17 + src")} ELSE '' END,
            TIMESTAMP '2026-11-30'
     FROM range(${from}, ${to}) a(s), range(${topics}) b(t), range(5) c(src) ORDER BY 1, 2, 4`,
  );
  if (to === students || (to / block) % 4 === 0)
    log(`  fill: ${to.toLocaleString("en")} / ${students.toLocaleString("en")} students`);
}
await store.run("CHECKPOINT");
const filled = done(fill);
log(`fill: ${filled.seconds} s, cpu ${filled.cpuSeconds} s, peak RSS ${filled.peakRssMB} MB`);

// Today's served run: two rows a pair, new scores and texts, in the temp table the served step writes from.
await store.run(
  `CREATE OR REPLACE TEMP TABLE served_score AS
   SELECT ${key} AS student_key, ${topic} AS topic_id, ((s * 37 + t * 11 + src) % 1000) / 1000.0 AS mastery_score,
          ${text("s * 137 + t * 19 + src + 1")} AS explanation, ['served', 'latent'][src + 1] AS score_source
   FROM range(${students}) a(s), range(${topics}) b(t), range(2) c(src)`,
);
resetHwm();
sampler.takePeak();
const write = span();
let outcome = "ok";
try {
  await writeServedScores(
    store,
    "served-bench",
    new Date("2026-12-01T00:00:00Z"),
    new Date("2026-12-01T00:00:01Z"),
  );
} catch (e) {
  outcome = e instanceof Error ? e.message.split("\n")[0]! : String(e);
}
const wrote = { ...done(write), vmHwmMB: hwmMB() };
log(
  `write: ${outcome}: ${wrote.seconds} s, cpu ${wrote.cpuSeconds} s, peak RSS ${wrote.peakRssMB} MB (VmHWM ${wrote.vmHwmMB})`,
);
// DuckDB's own account of its memory after the write, by tag (the ART indexes' share among them), in MB.
const memory = Object.fromEntries(
  (
    await store.all<{ tag: string; bytes: bigint }>(
      "SELECT tag, memory_usage_bytes AS bytes FROM duckdb_memory() WHERE memory_usage_bytes > 0 ORDER BY tag",
    )
  ).map((m) => [m.tag, Math.round(Number(m.bytes) / 1048576)]),
);
const rows = await store.one<{ n: bigint }>(`SELECT count(*) AS n FROM ${base}`);
const duplicates = outcome === "ok" ? (await baseDuplicateKeys(store, "student_mastery", 3)).length : null;
await store.run("CHECKPOINT");
store.close();
await store.whenClosed();
sampler.stop();
const fileMB = Math.round(statSync(path).size / 1048576);
process.stdout.write(
  `${JSON.stringify({
    students,
    topics,
    pairs: students * topics,
    layout,
    memoryLimit,
    explanationBytes,
    baseRows: Number(rows?.n ?? 0n),
    fill: filled,
    write: { outcome, ...wrote },
    duplicateKeys: duplicates,
    duckdbMemoryMB: memory,
    fileMB,
    load: loadavg().map((x) => Number(x.toFixed(2))),
  })}\n`,
);
rmSync(dir, { recursive: true, force: true });
