/**
 * Every served answer that reads rule rows, as digests and with the readers' CPU (rule20: the rule block stored
 * as numbers and rendered on read must leave every answer byte for byte as it was, and moves the text's cost
 * to the readers). On one store file, read-only: GET /mastery bodies (studentMasteryJson) and every topic's
 * history (readStudentHistories) of SAMPLE students (the first by student_key), each as of its stored times
 * and as of AT; the rollups (rollupMastery, every level); the alert pass's time-crossing keys
 * (timeCrossingKeys at AT, config/thresholds.yaml); the export's inputs (loadPairEvidence as of AT: the rule
 * score each pair's served estimate is built from). Prints one SHA-256 (16 hex digits) and the process
 * CPU-seconds (user + sys) per part. Run it with main's code and with a branch's on stores scored by each:
 * equal digests = equal answers.
 *
 *   STORE=/tmp/day1m/rulestep.duckdb SAMPLE=2000 npx tsx bench/ruleAnswers.bench.ts   # AT: 10 days after the
 *   newest rule score unless given (AT=2024-07-01T00:00:00Z)
 */
import { createHash } from "node:crypto";
import { copyFileSync, existsSync, rmSync } from "node:fs";
import { loadavg } from "node:os";
import { loadThresholds, timeCrossingKeys } from "../serving/alerts.ts";
import { readStudentHistories, studentMasteryJson } from "../serving/masteryView.ts";
import { ROLLUP_LEVELS, rollupMastery } from "../serving/rollups.ts";
import { loadPairEvidence } from "../serving/servedInputs.ts";
import { DuckAlertStore } from "../storage/alertStore.ts";
import { DuckStore } from "../storage/duckdb.ts";

const path = process.env.STORE;
if (path === undefined || !existsSync(path))
  throw new Error(
    `STORE must name a store file (got ${path ?? "nothing"}): e.g. STORE=/tmp/day1m/rulestep.duckdb`,
  );
const sample = Number(process.env.SAMPLE ?? 2000);
const atArg = process.env.AT;
if (!Number.isInteger(sample) || sample < 1)
  throw new Error(`SAMPLE must be a positive integer (got ${process.env.SAMPLE})`);

// A copy: opening migrates a file of another layout, and the answers are read from the file as it was scored.
const copy = `${path}.answers.duckdb`;
rmSync(copy, { force: true });
rmSync(`${copy}.wal`, { force: true });
copyFileSync(path, copy);
const store = await DuckStore.open(copy);
await DuckAlertStore.open(store);
// Default AT: 10 days after the newest rule score (rule scores move with time alone).
const newest = await store.one<{ t: number | null }>(
  "SELECT epoch_ms(max(as_of))::DOUBLE AS t FROM student_mastery WHERE score_source = 'rule_based'",
);
const at = new Date(atArg ?? (newest?.t ?? 0) + 10 * 86_400_000);
if (Number.isNaN(at.getTime())) throw new Error(`AT must be an ISO time (got ${atArg})`);
const cpuNow = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};
const out: string[] = [
  `load ${loadavg()
    .map((x) => x.toFixed(1))
    .join(" ")}`,
];
const part = async (name: string, fn: (add: (s: string) => void) => Promise<number>) => {
  const h = createHash("sha256");
  const c0 = cpuNow();
  const n = await fn((s) => h.update(s).update("\n"));
  out.push(`${name}: ${n} answers ${h.digest("hex").slice(0, 16)} cpu ${(cpuNow() - c0).toFixed(2)} s`);
};
const keys = (
  await store.all<{ student_key: string }>(
    "SELECT DISTINCT student_key FROM student_mastery ORDER BY student_key LIMIT $1",
    [sample],
  )
).map((r) => r.student_key);
for (const now of [undefined, at]) {
  const when = now === undefined ? "stored times" : `as of ${at.toISOString()}`;
  await part(`GET /mastery (${when})`, async (add) => {
    for (const k of keys)
      add(JSON.stringify(await studentMasteryJson(store, k, now === undefined ? {} : { now })));
    return keys.length;
  });
  await part(`history (${when})`, async (add) => {
    for (const k of keys) add(JSON.stringify(await readStudentHistories(store, k, null, now)));
    return keys.length;
  });
}
await part("rollups", async (add) => {
  let n = 0;
  for (const level of ROLLUP_LEVELS)
    for (const r of await rollupMastery(store, level)) {
      add(JSON.stringify(r));
      n++;
    }
  return n;
});
await part(`alert time crossings (${at.toISOString()})`, async (add) => {
  const ks = await timeCrossingKeys(store, at, loadThresholds());
  for (const k of ks) add(`${k.studentKey}|${k.topicId}`);
  return ks.length;
});
await part(`export inputs (${at.toISOString()})`, async (add) => {
  const ev = await loadPairEvidence(store, at);
  const ids = [...ev.keys()].sort();
  for (const id of ids) add(`${id}|${JSON.stringify(ev.get(id))}`);
  return ids.length;
});
store.close();
rmSync(copy, { force: true });
rmSync(`${copy}.wal`, { force: true });
process.stdout.write(`${out.join("\n")}\n`);
