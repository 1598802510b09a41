/**
 * Rule scores of a daily run (only pairs with new or late events refolded, serving/ruleScoring.ts `since`)
 * against a full run over the same store (issue 17 item 3), on the store bench/dailyDay.bench.ts builds:
 * both start from a copy of its base (full run as of day 0 plus the new day's events); one runs the
 * incremental day, the other a full rule run as of the same time. Prints, over every rule row: how many
 * stored `rule` blocks are byte-identical, the largest difference of the scores readers see
 * (serving/readTimeScoreSql.ts) as of the run and 1 and 30 days later, and a SHA-256 digest of those scores
 * (rounded to 12 decimals) per side.
 *
 *   BENCH_DIR=/tmp/day-bench-10000 npx tsx bench/ruleDayEquality.bench.ts   # after dailyDay.bench.ts built it
 *   FIRST=full ...   # the first side a full run too: how much two full runs differ (DuckDB's parallel sums)
 */
import { createHash } from "node:crypto";
import { copyFileSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { alignedAsOf } from "../features/incrementalFeatures.ts";
import { resolveAsOf } from "../features/windows.ts";
import { readTimeScoreSql } from "../serving/readTimeScoreSql.ts";
import { scoreRules } from "../serving/ruleScoring.ts";
import { DuckStore, sqlString } from "../storage/duckdb.ts";

const root = process.env.BENCH_DIR ?? "/tmp/day-bench-10000";
const meta = JSON.parse(readFileSync(join(root, "day.json"), "utf8")) as {
  since: { asOf: string; ingestedThroughUs: string | null };
};
const since = { asOf: new Date(meta.since.asOf), ingestedThroughUs: meta.since.ingestedThroughUs };
const first = process.env.FIRST === "full" ? "full" : "day";
const paths = { [first]: join(root, "eq-a.duckdb"), full2: join(root, "eq-b.duckdb") };
let asOf = new Date(0);
for (const [side, path] of Object.entries(paths)) {
  rmSync(path, { force: true });
  copyFileSync(join(root, "base.duckdb"), path);
  const store = await DuckStore.open(path);
  asOf = alignedAsOf(since, await resolveAsOf(store, "now"));
  const r = await scoreRules(store, { asOf, ...(side === "day" ? { since } : {}) });
  if (side === "day" && r.mode !== "incremental")
    throw new Error(`expected an incremental day: ${r.fullReason}`);
  process.stderr.write(`${side}: mode ${r.mode}, ${r.scored} pairs refolded\n`);
  store.close();
  await store.whenClosed();
}
const store = await DuckStore.open(":memory:");
await store.run(`ATTACH ${sqlString(join(root, "eq-a.duckdb"))} AS d (READ_ONLY)`);
await store.run(`ATTACH ${sqlString(join(root, "eq-b.duckdb"))} AS f (READ_ONLY)`);
const DAY_US = 86_400_000_000n;
const t0 = BigInt(asOf.getTime()) * 1000n;
const out: Record<string, unknown> = { asOf: asOf.toISOString(), sides: Object.keys(paths) };
const blocks = await store.one<{ n: bigint; same: bigint }>(
  `SELECT count(*) AS n, count(*) FILTER (WHERE json_extract(a.explanation, '$.rule')::VARCHAR
     IS NOT DISTINCT FROM json_extract(b.explanation, '$.rule')::VARCHAR) AS same
   FROM d.student_mastery a JOIN f.student_mastery b USING (student_key, topic_id, score_source)
   WHERE score_source = 'rule_based'`,
);
out.ruleRows = Number(blocks?.n);
out.identicalBlocks = Number(blocks?.same);
for (const days of [0n, 1n, 30n]) {
  const at = t0 + days * DAY_US;
  const r = await store.one<{ maxdiff: number; dd: string; fd: string }>(
    `WITH a AS (SELECT student_key, topic_id, ${readTimeScoreSql("m", `${at}::BIGINT`)} AS s
                FROM d.student_mastery m WHERE score_source = 'rule_based'),
          b AS (SELECT student_key, topic_id, ${readTimeScoreSql("m", `${at}::BIGINT`)} AS s
                FROM f.student_mastery m WHERE score_source = 'rule_based')
     SELECT max(abs(a.s - b.s)) AS maxdiff,
            string_agg(printf('%.12f', a.s), ',' ORDER BY a.student_key, a.topic_id) AS dd,
            string_agg(printf('%.12f', b.s), ',' ORDER BY b.student_key, b.topic_id) AS fd
     FROM a JOIN b USING (student_key, topic_id)`,
  );
  const sha = (x: string | undefined) =>
    createHash("sha256")
      .update(x ?? "")
      .digest("hex")
      .slice(0, 16);
  out[`plus${days}d`] = { maxAbsDiff: r?.maxdiff, digestA: sha(r?.dd), digestB: sha(r?.fd) };
}
store.close();
for (const p of Object.values(paths)) {
  rmSync(p, { force: true });
  rmSync(`${p}.wal`, { force: true });
}
process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
