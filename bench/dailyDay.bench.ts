/**
 * One daily run of `mastery schedule` on a day with ACTIVE_PCT % of the students active (issue 17 item 3:
 * <= 5 s at 1% on a 10M-event store), step by step: incremental features (features/incrementalFeatures.ts),
 * rule scores, the BKT/Elo incremental day (serving/learnerState.ts), then a CHECKPOINT (what the day
 * leaves to write to the file). "day" is all four; "day without features" is the batch as the schedule
 * runs it by default (config/schedule.yaml batch.features false: the drift check's snapshot is built by
 * the checks job, so the features step is that job's cost, not the scoring day's). Rule scores two ways, alternating on copies of the same stored store:
 *   "all":   every pair's decayed state refolded from raw_events and rescored (a full rule run);
 *   "dirty": only the pairs with new or late events since the previous run's watermark (serving/ruleScoring.ts
 *            `since`; a rule row stores decayed evidence that readers take as of any time, so an untouched
 *            pair's row needs no write).
 *
 *   STUDENTS=10000 npx tsx bench/dailyDay.bench.ts          # ~1M events
 *   STUDENTS=100000 RUNS=2 npx tsx bench/dailyDay.bench.ts  # ~10M events
 *   "dirty1": as "dirty", with DuckDB's automatic checkpoint held off for the day (checkpoint_threshold)
 *            so the file is written once, by the CHECKPOINT step, instead of at each step's commit.
 *   MODES=dirty ... / THREADS=1 ... / PHASES=1 ... (rule scores' wall and CPU per step)
 *   LOOKUPS=100: after the day, GET /mastery's point read of student_mastery for 100 students of the day
 *            (the view over base + delta since storage/servingTables.ts; a plain table before);
 *   COMPACT=1: then fold the day's delta rows into the base tables (compactServingTables) and read again.
 *   "full":  the full features build (truncate) and full rule scoring of the new day instead (what a full
 *            run's features + rules steps cost on this store); BKT/Elo is the incremental day as in the others.
 *   FEATURE_LOOKUPS=100: after the day, the new snapshot's features of 100 students of the day, one query
 *            each (the features view over stored rows since storage/featureRows.ts; a plain table before).
 *
 * The first run builds the store once under BENCH_DIR (default /tmp/day-bench-<students>): generate,
 * ingest, features, rule scores, BKT/Elo fitted (saved as model directories) and scored in full, then the
 * new day appended (the last day of events of ACTIVE_PCT % of the students again, one day later). Every run
 * copies it to a scratch file. Reported per run and mode: wall and process CPU seconds (user + sys, DuckDB
 * threads included) of each step; medians per mode; load average at the start and end.
 */
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import {
  alignedAsOf,
  buildFeaturesIncremental,
  type FeatureWatermark,
  ingestWatermark,
} from "../features/incrementalFeatures.ts";
import { Pseudonymizer } from "../features/pseudonymize.ts";
import { buildFeatures, resolveAsOf } from "../features/windows.ts";
import { resolveModels, scoreBktElo } from "../serving/learnerState.ts";
import { runPipeline } from "../serving/pipeline.ts";
import { scoreRules } from "../serving/ruleScoring.ts";
import { DuckStore } from "../storage/duckdb.ts";
import { cpuNow, roundedMedian } from "./cpuClock.ts";
import { appendNextDay } from "./nextDay.ts";
import { saveQuickModels } from "./quickModels.ts";
import { seedSchool } from "./seedSchool.ts";

const students = Number(process.env.STUDENTS ?? 10_000);
const runs = Number(process.env.RUNS ?? 2);
const activePct = Number(process.env.ACTIVE_PCT ?? 1);
const threads = Number(process.env.THREADS ?? 0);
const phases = process.env.PHASES === "1";
const lookups = Number(process.env.LOOKUPS ?? 0);
const compact = process.env.COMPACT === "1";
const featureLookups = Number(process.env.FEATURE_LOOKUPS ?? 0);
const modes = (process.env.MODES ?? "all,dirty").split(",") as (
  | "all"
  | "dirty"
  | "dirty1"
  | "dirtyc"
  | "full"
)[];
const root = process.env.BENCH_DIR ?? `/tmp/day-bench-${students}`;
const basePath = join(root, "base.duckdb");
const bktDir = join(root, "bkt");
const eloDir = join(root, "elo");
const metaPath = join(root, "day.json");
const log = (s: string) => process.stderr.write(`${s}\n`);

const median = (xs: number[]) => roundedMedian(xs, 2);

interface DayMeta {
  since: { asOf: string; ingestedThroughUs: string | null };
  newEvents: number;
  pairs: number;
  events: number;
}

if (!existsSync(metaPath)) {
  rmSync(root, { recursive: true, force: true });
  mkdirSync(root, { recursive: true });
  log(`building the store for ${students} students in ${root} (once)`);
  const store = await DuckStore.open(basePath);
  const day0 = await runPipeline({
    store,
    pseudonymizer: new Pseudonymizer("bench-key-0123456789abcdef"),
    dataDir: join(root, "data"),
    generate: seedSchool(students, join(root, "data")),
    skip: ["score bkt-elo"],
    onStep: (s, ms) => log(`  ${s}: ${(ms / 1000).toFixed(1)} s`),
  });
  const since = { asOf: day0.asOf.toISOString(), ingestedThroughUs: await ingestWatermark(store) };
  await saveQuickModels(store, bktDir, eloDir);
  const saved = await resolveModels(store, { bktModelDir: bktDir, eloModelDir: eloDir });
  const t0 = performance.now();
  await scoreBktElo(store, saved, { full: true });
  log(`  score bkt-elo (full): ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  await appendNextDay(store, { mod: 10_000, below: Math.round(activePct * 100), from: day0.asOf });
  const n = await store.one<{ n: bigint }>(
    "SELECT count(*) AS n FROM raw_events WHERE event_id LIKE '%-next'",
  );
  await store.run("CHECKPOINT");
  const meta: DayMeta = {
    since,
    newEvents: Number(n?.n ?? 0n),
    pairs: day0.featureRows,
    events: day0.events,
  };
  writeFileSync(metaPath, JSON.stringify(meta));
  store.close();
  rmSync(join(root, "data"), { recursive: true, force: true });
}

const meta = JSON.parse(readFileSync(metaPath, "utf8")) as DayMeta;
const since: FeatureWatermark = {
  asOf: new Date(meta.since.asOf),
  ingestedThroughUs: meta.since.ingestedThroughUs,
};
const scratch = join(root, "scratch.duckdb");
const load0 = loadavg();
type Step =
  | "features"
  | "rules"
  | "bkt-elo"
  | "checkpoint"
  | "day"
  | "day without features"
  | "lookups"
  | "compact"
  | "lookups after compact"
  | "feature lookups";
const results: Record<string, Record<Step, { wall: number[]; cpu: number[] }>> = {};
let counts: Record<string, unknown> = {};
for (let r = 0; r < runs; r++) {
  for (const mode of modes) {
    rmSync(scratch, { force: true });
    rmSync(`${scratch}.wal`, { force: true });
    copyFileSync(basePath, scratch);
    const store = await DuckStore.open(scratch, threads > 0 ? { threads } : {});
    const models = await resolveModels(store, { bktModelDir: bktDir, eloModelDir: eloDir });
    const asOf = alignedAsOf(since, await resolveAsOf(store, "now"));
    const per = results[mode] ?? {
      features: { wall: [], cpu: [] },
      rules: { wall: [], cpu: [] },
      "bkt-elo": { wall: [], cpu: [] },
      checkpoint: { wall: [], cpu: [] },
      day: { wall: [], cpu: [] },
      "day without features": { wall: [], cpu: [] },
      lookups: { wall: [], cpu: [] },
      compact: { wall: [], cpu: [] },
      "lookups after compact": { wall: [], cpu: [] },
      "feature lookups": { wall: [], cpu: [] },
    };
    results[mode] = per;
    if (mode === "dirty1" || mode === "dirtyc") await store.run("SET checkpoint_threshold = '1TB'");
    // dirtyc: each step ends with its own CHECKPOINT, so a step's figure includes the file writes it causes.
    const own = async () => {
      if (mode === "dirtyc") await store.run("CHECKPOINT");
    };
    const dayT0 = performance.now();
    const dayC0 = cpuNow();
    const step = async <T>(name: Step, fn: () => Promise<T>): Promise<T> => {
      const t0 = performance.now();
      const c0 = cpuNow();
      const out = await fn();
      const wall = (performance.now() - t0) / 1000;
      const cpu = cpuNow() - c0;
      per[name].wall.push(wall);
      per[name].cpu.push(cpu);
      log(`run ${r + 1} ${mode} ${name}: ${wall.toFixed(2)} s (cpu ${cpu.toFixed(2)} s)`);
      return out;
    };
    let phaseC = cpuNow();
    let phaseT = performance.now();
    const phaseOf = (stepName: string) => {
      phaseC = cpuNow();
      phaseT = performance.now();
      return (name: string) => {
        const c = cpuNow();
        const t = performance.now();
        if (phases)
          log(
            `  ${stepName} ${name}: ${((t - phaseT) / 1000).toFixed(2)} s (cpu ${(c - phaseC).toFixed(2)} s)`,
          );
        phaseC = c;
        phaseT = t;
      };
    };
    const features = await step("features", () =>
      (mode === "full"
        ? buildFeatures(store, asOf, { truncate: true }).then((r) => ({
            mode: "full" as const,
            fullReason: "MODES=full" as string | undefined,
            recomputed: r.rows,
            copied: 0,
          }))
        : buildFeaturesIncremental(store, asOf, since, { onPhase: phaseOf("features") })
      ).then(async (r) => {
        await own();
        return r;
      }),
    );
    if (mode !== "full" && features.mode !== "incremental")
      throw new Error(`expected incremental features: ${features.fullReason}`);
    const rules = await step("rules", () =>
      scoreRules(store, {
        asOf,
        onPhase: phaseOf("rules"),
        ...(mode !== "all" && mode !== "full" ? { since } : {}),
      }).then(async (r) => {
        await own();
        return r;
      }),
    );
    if (mode !== "all" && mode !== "full" && rules.mode !== "incremental")
      throw new Error(`expected incremental rule scores: ${rules.fullReason}`);
    const bkt = await step("bkt-elo", () =>
      scoreBktElo(store, models, { onPhase: phaseOf("bkt-elo") }).then(async (r) => {
        await own();
        return r;
      }),
    );
    await step("checkpoint", () => store.run("CHECKPOINT"));
    per.day.wall.push((performance.now() - dayT0) / 1000);
    per.day.cpu.push(cpuNow() - dayC0);
    log(
      `run ${r + 1} ${mode} day: ${per.day.wall.at(-1)!.toFixed(2)} s (cpu ${per.day.cpu.at(-1)!.toFixed(2)} s)`,
    );
    // The batch as `mastery schedule` runs it by default (batch.features false): the snapshot is the checks job's.
    per["day without features"].wall.push(per.day.wall.at(-1)! - per.features.wall.at(-1)!);
    per["day without features"].cpu.push(per.day.cpu.at(-1)! - per.features.cpu.at(-1)!);
    log(
      `run ${r + 1} ${mode} day without features (the scheduled batch; features in the checks job): ${per["day without features"].wall.at(-1)!.toFixed(2)} s (cpu ${per["day without features"].cpu.at(-1)!.toFixed(2)} s)`,
    );
    if (lookups > 0) {
      const who = (
        await store.all<{ s: string }>(
          `SELECT DISTINCT student_key AS s FROM raw_events WHERE event_id LIKE '%-next'
           ORDER BY hash(student_key) LIMIT ${lookups}`,
        )
      ).map((x) => x.s);
      const read = async () => {
        for (const s of who)
          await store.all(
            `SELECT student_key, topic_id, score_source, mastery_score, model_version, as_of, explanation, last_updated
             FROM student_mastery WHERE student_key = $s ORDER BY topic_id, score_source`,
            { s },
          );
      };
      await step("lookups", read);
      if (compact) {
        const { compactServingTables } = await import("../storage/servingTables.ts");
        await step("compact", () => compactServingTables(store));
        await step("lookups after compact", read);
      }
    }
    if (featureLookups > 0) {
      const who = (
        await store.all<{ s: string }>(
          `SELECT DISTINCT student_key AS s FROM raw_events WHERE event_id LIKE '%-next'
           ORDER BY hash(student_key) LIMIT ${featureLookups}`,
        )
      ).map((x) => x.s);
      const t = BigInt(asOf.getTime()) * 1000n;
      await step("feature lookups", async () => {
        for (const s of who)
          await store.all(
            "SELECT * FROM features WHERE as_of = make_timestamp($t::BIGINT) AND student_key = $s ORDER BY topic_id",
            { s, t },
          );
      });
    }
    counts = {
      asOf: asOf.toISOString(),
      featurePairsRecomputed: features.recomputed,
      featurePairsCopied: features.copied,
      [`ruleScored_${mode}`]: rules.scored,
      bktEloKeys: bkt.keys,
      ...counts,
    };
    store.close();
  }
}
rmSync(scratch, { force: true });
const load1 = loadavg();
const summary: Record<string, Record<string, { wall: number; cpu: number }>> = {};
for (const [mode, per] of Object.entries(results)) {
  summary[mode] = {};
  for (const [step, v] of Object.entries(per))
    summary[mode]![step] = { wall: median(v.wall), cpu: median(v.cpu) };
}
process.stdout.write(
  `${JSON.stringify(
    {
      students,
      events: meta.events + meta.newEvents,
      pairs: meta.pairs,
      newDayEvents: meta.newEvents,
      activePct,
      threads: threads || "default",
      counts,
      medians: summary,
      runs: results,
      loadavg: { start: load0.map((x) => +x.toFixed(2)), end: load1.map((x) => +x.toFixed(2)) },
    },
    null,
    2,
  )}\n`,
);
