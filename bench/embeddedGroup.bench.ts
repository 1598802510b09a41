/**
 * The embedded POST /events group's CPU without HTTP (issue 15): the write path as the embedded server runs
 * it (IncrementalUpdater on the DuckDB file, one transaction per group, then the alert check), applied to
 * 10-event groups of one student (bench/benchEnv.ts quizPostBody's events), every store statement timed by
 * the process's CPU. No HTTP client shares the process, so a statement's CPU is its own (in
 * bench/duckStatements.bench.ts the in-process fetch and the server's parse overlap the awaited statements).
 *
 *   GROUP_SEED_FILE=/tmp/x/seed.duckdb npx tsx bench/embeddedGroup.bench.ts
 *
 * GROUP_SEED_FILE: a file bench/duckStatements.bench.ts saved (its STMT_SEED_FILE; STMT_RAW_EVENTS=100
 * STMT_STATE=1 for a district's raw zone and state); it is copied, never written. Two phases of GROUP_REPS
 * groups (default 100) after 10 warm-up ones: "spread" (a different seeded student each group) and
 * "repeat" (20 students in turn, so their keys' states come from this run's own commits). DuckDB on 1
 * thread, as `mastery serve` runs it.
 */
import { copyFileSync, existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { LearningEvent } from "../features/contracts.ts";
import { Pseudonymizer } from "../features/pseudonymize.ts";
import { AlertEngine, loadThresholds } from "../serving/alerts.ts";
import { alertKeys, IncrementalUpdater, rowsFromEvent, streamModels } from "../serving/updater.ts";
import { DuckAlertStore } from "../storage/alertStore.ts";
import { DuckStore } from "../storage/duckdb.ts";
import { DuckMasteryStore } from "../storage/masteryStore.ts";
import { DuckRawEventStore, type RawEventRow } from "../storage/rawEventStore.ts";
import { DuckStateStore } from "../storage/stateStore.ts";
import { envNumber, BENCH_PSEUDONYM_KEY as KEY, quizPostBody } from "./benchEnv.ts";

const seedFile = process.env.GROUP_SEED_FILE;
if (seedFile === undefined || !existsSync(seedFile))
  throw new Error(
    `GROUP_SEED_FILE must name a seeded file (got ${seedFile ?? "nothing"}); make one with STMT_SEED_FILE=... npx tsx bench/duckStatements.bench.ts`,
  );
const REPS = envNumber("GROUP_REPS", 100);
const dir = mkdtempSync(join(tmpdir(), "group-bench-"));
const file = join(dir, "mastery.duckdb");
copyFileSync(seedFile, file);
const store = await DuckStore.open(file, { encryption: null, threads: 1 });
const pseudo = new Pseudonymizer(KEY);
const updater = new IncrementalUpdater({
  raw: await DuckRawEventStore.open(store),
  state: await DuckStateStore.open(store),
  mastery: await DuckMasteryStore.open(store),
  models: streamModels({}),
});
const alerts = new AlertEngine(await DuckAlertStore.open(store), loadThresholds(), {});

const cpuUs = (): number => {
  const u = process.cpuUsage();
  return u.user + u.system;
};
const statements = new Map<string, { n: number; us: number }>();
type Run = (sql: string, ...rest: unknown[]) => Promise<unknown>;
const methods = store as unknown as Record<"run" | "runPrepared" | "allPrepared" | "all", Run>;
for (const m of ["run", "runPrepared", "allPrepared", "all"] as const) {
  const orig = methods[m].bind(store);
  methods[m] = async (sql, ...rest) => {
    const c0 = cpuUs();
    try {
      return await orig(sql, ...rest);
    } finally {
      const label = sql.replace(/\s+/g, " ").trim().slice(0, 70);
      const s = statements.get(label) ?? { n: 0, us: 0 };
      s.n++;
      s.us += cpuUs() - c0;
      statements.set(label, s);
    }
  };
}

const rowsOf = (tag: string, student: number, first: number): RawEventRow[] =>
  (JSON.parse(quizPostBody(tag, student, first, 20)).events as LearningEvent[]).flatMap((e) =>
    rowsFromEvent(e, pseudo, { source: "api", ingestedAtUs: Date.now() * 1000 }),
  );

async function phase(name: string, rows: (i: number) => RawEventRow[]): Promise<void> {
  const group = async (i: number): Promise<number> => {
    const results = await store.transaction(() => updater.apply(rows(i)));
    const a0 = cpuUs();
    await alerts.check(alertKeys(results));
    return cpuUs() - a0;
  };
  for (let i = 0; i < 10; i++) await group(1_000_000 + i);
  statements.clear();
  const c0 = cpuUs();
  let alertUs = 0;
  for (let i = 0; i < REPS; i++) alertUs += await group(i);
  const calls = [...statements.values()].reduce((s, r) => s + r.n, 0);
  console.log(
    `${name}: ${((cpuUs() - c0) / REPS / 1000).toFixed(2)} ms CPU a group (the alert check ${(alertUs / REPS / 1000).toFixed(2)}); ${(calls / REPS).toFixed(1)} statements`,
  );
  for (const [label, s] of [...statements].sort((a, b) => b[1].us - a[1].us))
    console.log(
      `  ${(s.n / REPS).toFixed(1).padStart(4)}x ${(s.us / REPS / 1000).toFixed(2).padStart(6)} ms  ${label}`,
    );
}

console.log(`embedded group: seed ${seedFile}, ${REPS} groups of 10 events per phase, DuckDB threads 1`);
await phase("spread (a seeded student a group)", (i) =>
  rowsOf(`spread-${i}`, 2000 + (i % 5000), (i % 2) * 10),
);
await phase("repeat (20 students in turn)", (i) =>
  rowsOf(`repeat-${i}`, 3 + (i % 20), (i % 2) * 10 + 100_000 * i),
);
store.close();
rmSync(dir, { recursive: true, force: true });
process.exit(0);
