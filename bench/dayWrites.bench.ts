/**
 * What the 1% day's writes cost in the store's file, in place vs append-only (issue 17 item 3, lead (b)).
 * On a copy of the dailyDay store (bench/dailyDay.bench.ts builds it under BENCH_DIR), the day's row sets
 * are staged first (not timed): the rule rows of the pairs the day's features recompute
 * (features/incrementalFeatures.ts markDirtyPairs: new events and window edges), and the bkt/elo rows and
 * learner_state rows of the keys with a new event, each with a new score, as_of and an explanation of the
 * same length. Then, with DuckDB's automatic checkpoint held off, each write set is applied and CHECKPOINTed
 * on its own (the file write it causes is measured with it):
 *   "update": UPDATE in place, as serving/ruleScoring.ts and serving/learnerState.ts do today;
 *   "delta":  INSERT into an append-only side table without an index (newest row per key would win at read
 *            time; a compaction folds the side table into the base table off the daily path);
 *   "deltaidx": as "delta", the side tables with an index on student_key (for the point lookups);
 *   "compact": the deltas of DAYS days folded into the base tables at once (UPDATE from the newest delta row
 *            per key, then the side table emptied): the cost a compaction pays, to amortize over DAYS days.
 * Also timed in "delta": the read a point lookup would pay (one student's rows: base rows without a delta
 * row, plus the newest delta rows), against the base-only lookup, over LOOKUPS active students.
 *
 *   STUDENTS=100000 RUNS=2 npx tsx bench/dayWrites.bench.ts
 *
 * Reported: wall and process CPU seconds (user + sys, DuckDB threads included) per write and its CHECKPOINT,
 * per mode and run; medians; load average at the start and end.
 */
import { copyFileSync, readFileSync, rmSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import { alignedAsOf, markDirtyPairs } from "../features/incrementalFeatures.ts";
import { resolveAsOf } from "../features/windows.ts";
import { DuckStore } from "../storage/duckdb.ts";
import { cpuNow, roundedMedian as median } from "./cpuClock.ts";

const students = Number(process.env.STUDENTS ?? 10_000);
const runs = Number(process.env.RUNS ?? 2);
const days = Number(process.env.DAYS ?? 7);
const lookups = Number(process.env.LOOKUPS ?? 200);
const modes = (process.env.MODES ?? "update,delta,deltaidx,compact").split(",") as (
  | "update"
  | "delta"
  | "deltaidx"
  | "compact"
)[];
const root = process.env.BENCH_DIR ?? `/tmp/day-bench-${students}`;
const log = (s: string) => process.stderr.write(`${s}\n`);

const meta = JSON.parse(readFileSync(join(root, "day.json"), "utf8")) as {
  since: { asOf: string; ingestedThroughUs: string | null };
};
const since = { asOf: new Date(meta.since.asOf), ingestedThroughUs: meta.since.ingestedThroughUs };
const scratch = join(root, "writes.duckdb");
const SM =
  "student_key, topic_id, mastery_score, score_source, model_version, as_of, explanation, last_updated";
// The same length as the stored text, different content: the column's compression sees a real change.
const newExplanation = "'{\"d\":1,' || substr(explanation, 8)";

/** The day's write sets into persistent day_* tables (checkpointed before any timing). */
async function stage(store: DuckStore): Promise<Record<string, number>> {
  const asOf = alignedAsOf(since, await resolveAsOf(store, "now"));
  const dirty = await markDirtyPairs(store, since, asOf);
  const t1 = BigInt(asOf.getTime()) * 1000n;
  await store.run(
    `CREATE TABLE day_rule AS SELECT student_key, topic_id, mastery_score * 0.99 AS mastery_score, score_source,
       model_version, make_timestamp(${t1}) AS as_of, ${newExplanation} AS explanation, now()::TIMESTAMP AS last_updated
     FROM student_mastery m SEMI JOIN temp.incr_dirty d USING (student_key, topic_id)
     WHERE score_source = 'rule_based'`,
  );
  await store.run(
    `CREATE TEMP TABLE day_keys AS SELECT DISTINCT student_key, topic_id FROM raw_events
     WHERE epoch_us(ingested_at) > ${since.ingestedThroughUs ?? "0"}`,
  );
  await store.run(
    `CREATE TABLE day_bkt AS SELECT student_key, topic_id, mastery_score * 0.99 AS mastery_score, score_source,
       model_version, make_timestamp(${t1}) AS as_of, ${newExplanation} AS explanation, now()::TIMESTAMP AS last_updated
     FROM student_mastery m SEMI JOIN temp.day_keys d USING (student_key, topic_id)
     WHERE score_source IN ('bkt', 'elo')`,
  );
  await store.run(
    `CREATE TABLE day_state AS SELECT * REPLACE (p_mastery * 0.99 AS p_mastery, elo_ability + 0.01 AS elo_ability,
       event_n + 1 AS event_n, now()::TIMESTAMP AS updated_at)
     FROM learner_state s SEMI JOIN temp.day_keys d USING (student_key, topic_id)`,
  );
  await store.run(
    `CREATE TABLE student_mastery_delta AS SELECT ${SM}, 0::BIGINT AS day FROM student_mastery LIMIT 0`,
  );
  await store.run(
    "CREATE TABLE learner_state_delta AS SELECT *, 0::BIGINT AS day FROM learner_state LIMIT 0",
  );
  await store.run("CHECKPOINT");
  const count = async (t: string) =>
    Number((await store.one<{ n: bigint }>(`SELECT count(*) AS n FROM ${t}`))?.n ?? 0n);
  return {
    dirtyPairs: dirty,
    ruleRows: await count("day_rule"),
    bktEloRows: await count("day_bkt"),
    stateRows: await count("day_state"),
    studentMastery: await count("student_mastery"),
    learnerState: await count("learner_state"),
  };
}

const stateCols = async (store: DuckStore) =>
  (
    await store.all<{ name: string }>(
      "SELECT column_name AS name FROM duckdb_columns() WHERE table_name = 'learner_state' ORDER BY column_index",
    )
  ).map((r) => r.name);

type Timings = Record<string, { wall: number[]; cpu: number[] }>;
const results: Record<string, Timings> = {};
let counts: Record<string, number> = {};
const load0 = loadavg();
const base = join(root, "base.duckdb");
const staged = join(root, "writes-staged.duckdb");
{
  rmSync(staged, { force: true });
  rmSync(`${staged}.wal`, { force: true });
  copyFileSync(base, staged);
  const store = await DuckStore.open(staged);
  counts = await stage(store);
  store.close();
  log(`staged: ${JSON.stringify(counts)}`);
}
for (let r = 0; r < runs; r++) {
  for (const mode of modes) {
    rmSync(scratch, { force: true });
    rmSync(`${scratch}.wal`, { force: true });
    copyFileSync(staged, scratch);
    const store = await DuckStore.open(scratch);
    await store.run("SET checkpoint_threshold = '1TB'");
    const per = results[mode] ?? {};
    results[mode] = per;
    const time = async (name: string, fn: () => Promise<unknown>) => {
      const t0 = performance.now();
      const c0 = cpuNow();
      await fn();
      const wall = (performance.now() - t0) / 1000;
      const cpu = cpuNow() - c0;
      const slot = per[name] ?? { wall: [], cpu: [] };
      per[name] = slot;
      slot.wall.push(wall);
      slot.cpu.push(cpu);
      log(`run ${r + 1} ${mode} ${name}: ${wall.toFixed(2)} s (cpu ${cpu.toFixed(2)} s)`);
    };
    const cols = await stateCols(store);
    const stateSet = cols
      .filter((c) => c !== "student_key" && c !== "topic_id")
      .map((c) => `${c} = x.${c}`)
      .join(", ");
    const smSet = `mastery_score = x.mastery_score, model_version = x.model_version, as_of = x.as_of,
      explanation = x.explanation, last_updated = x.last_updated`;
    const smMatch = `student_mastery.student_key = x.student_key AND student_mastery.topic_id = x.topic_id
      AND student_mastery.score_source = x.score_source`;
    if (mode === "update") {
      await time("rule rows: UPDATE", () =>
        store.run(`UPDATE student_mastery SET ${smSet} FROM day_rule x WHERE ${smMatch}`),
      );
      await time("rule rows: CHECKPOINT", () => store.run("CHECKPOINT"));
      await time("bkt/elo: UPDATE learner_state + student_mastery", async () => {
        await store.run(
          `UPDATE learner_state SET ${stateSet} FROM day_state x
           WHERE learner_state.student_key = x.student_key AND learner_state.topic_id = x.topic_id`,
        );
        await store.run(`UPDATE student_mastery SET ${smSet} FROM day_bkt x WHERE ${smMatch}`);
      });
      await time("bkt/elo: CHECKPOINT", () => store.run("CHECKPOINT"));
    } else if (mode === "delta" || mode === "deltaidx") {
      if (mode === "deltaidx") {
        await store.run("CREATE INDEX smd_by_student ON student_mastery_delta (student_key)");
        await store.run("CREATE INDEX lsd_by_student ON learner_state_delta (student_key)");
        await store.run("CHECKPOINT");
      }
      await time("rule rows: INSERT delta", () =>
        store.run(`INSERT INTO student_mastery_delta (${SM}, delta_seq) SELECT ${SM}, 1 FROM day_rule`),
      );
      await time("rule rows: CHECKPOINT", () => store.run("CHECKPOINT"));
      await time("bkt/elo: INSERT deltas", async () => {
        await store.run(`INSERT INTO learner_state_delta SELECT *, 1 FROM day_state`);
        await store.run(`INSERT INTO student_mastery_delta (${SM}, delta_seq) SELECT ${SM}, 1 FROM day_bkt`);
      });
      await time("bkt/elo: CHECKPOINT", () => store.run("CHECKPOINT"));
      const who = (
        await store.all<{ s: string }>(
          `SELECT DISTINCT student_key AS s FROM day_bkt ORDER BY hash(student_key) LIMIT ${lookups}`,
        )
      ).map((x) => x.s);
      await time(`read: ${who.length} point lookups, base only`, async () => {
        for (const s of who)
          await store.all(`SELECT ${SM} FROM student_mastery WHERE student_key = $s`, { s });
      });
      await time(`read: ${who.length} point lookups, base + newest delta`, async () => {
        for (const s of who)
          await store.all(
            `WITH d AS (SELECT ${SM} FROM student_mastery_delta WHERE student_key = $s
                        QUALIFY row_number() OVER (PARTITION BY topic_id, score_source ORDER BY day DESC) = 1)
             SELECT ${SM} FROM student_mastery m WHERE student_key = $s
               AND NOT EXISTS (SELECT 1 FROM d WHERE d.topic_id = m.topic_id AND d.score_source = m.score_source)
             UNION ALL SELECT * FROM d`,
            { s },
          );
      });
    } else {
      // DAYS days of deltas (the same keys each day, as the worst case for the fold: every delta row is
      // newer than the last), then one compaction into the base tables.
      for (let d = 1; d <= days; d++) {
        await store.run(
          `INSERT INTO student_mastery_delta (${SM}, delta_seq) SELECT ${SM}, ${d} FROM day_rule`,
        );
        await store.run(
          `INSERT INTO student_mastery_delta (${SM}, delta_seq) SELECT ${SM}, ${d} FROM day_bkt`,
        );
        await store.run(`INSERT INTO learner_state_delta SELECT *, ${d} FROM day_state`);
      }
      await store.run("CHECKPOINT");
      await time(`compact ${days} days: UPDATE from newest delta rows, empty deltas`, async () => {
        await store.run(
          `UPDATE student_mastery SET ${smSet}
           FROM (SELECT * FROM student_mastery_delta
                 QUALIFY row_number() OVER (PARTITION BY student_key, topic_id, score_source ORDER BY day DESC) = 1) x
           WHERE ${smMatch}`,
        );
        await store.run(
          `UPDATE learner_state SET ${stateSet}
           FROM (SELECT * FROM learner_state_delta
                 QUALIFY row_number() OVER (PARTITION BY student_key, topic_id ORDER BY day DESC) = 1) x
           WHERE learner_state.student_key = x.student_key AND learner_state.topic_id = x.topic_id`,
        );
        await store.run("DELETE FROM student_mastery_delta");
        await store.run("DELETE FROM learner_state_delta");
      });
      await time(`compact ${days} days: CHECKPOINT`, () => store.run("CHECKPOINT"));
    }
    store.close();
  }
}
rmSync(scratch, { force: true });
rmSync(staged, { force: true });
const load1 = loadavg();
const summary: Record<string, Record<string, { wall: number; cpu: number }>> = {};
for (const [mode, per] of Object.entries(results)) {
  summary[mode] = {};
  for (const [name, v] of Object.entries(per))
    summary[mode]![name] = { wall: median(v.wall), cpu: median(v.cpu) };
}
process.stdout.write(
  `${JSON.stringify(
    {
      students,
      counts,
      days,
      medians: summary,
      loadavg: { start: load0.map((x) => +x.toFixed(2)), end: load1.map((x) => +x.toFixed(2)) },
    },
    null,
    2,
  )}\n`,
);
