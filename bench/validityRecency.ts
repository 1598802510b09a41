/**
 * Recency diagnostic on a validity-bench dump (`DUMP=dir npx tsx bench/validity.bench.ts`): the served score's
 * bias against the generator's truth (mean of score - truth) and its Spearman, by days from the pair's last
 * event to the cut, plus the spread of the bucket biases (max - min) and the pooled Spearman. Round 8 found
 * the bias monotone in recency (docs/benchmarks.md "Validity", round 8); round 9 checks its forgetting change
 * with it. Bench only: it reads the truth.
 *
 *   npx tsx bench/validityRecency.ts /tmp/dump/seed_1_*.json [SOURCE=served]
 */
import { readFileSync } from "node:fs";
import { spearman } from "../models/validity.ts";

interface DumpRow {
  source: string;
  score: number;
  truth?: number;
  x: { evidence?: { daysSinceLast: number | null } } | null;
}

const BUCKETS: readonly [string, number, number][] = [
  ["0-3 d", 0, 3],
  ["3-10 d", 3, 10],
  ["10-20 d", 10, 20],
  ["20-40 d", 20, 40],
  ["40+ d", 40, Number.POSITIVE_INFINITY],
];
const source = process.env.SOURCE ?? "served";

for (const file of process.argv.slice(2)) {
  const dump = JSON.parse(readFileSync(file, "utf8")) as { title: string; rows: DumpRow[] };
  const rows = dump.rows.filter(
    (r) => r.source === source && r.truth !== undefined && r.x?.evidence?.daysSinceLast != null,
  );
  console.log(`${dump.title} (${source}, ${rows.length} pairs with a truth and events)`);
  console.log("bucket     pairs   bias (score - truth)   Spearman");
  const biases: number[] = [];
  for (const [name, lo, hi] of BUCKETS) {
    const b = rows.filter((r) => {
      const d = r.x!.evidence!.daysSinceLast!;
      return d >= lo && d < hi;
    });
    if (b.length === 0) continue;
    const bias = b.reduce((s, r) => s + r.score - r.truth!, 0) / b.length;
    biases.push(bias);
    const rho = spearman(
      b.map((r) => r.score),
      b.map((r) => r.truth!),
    );
    console.log(
      `${name.padEnd(9)} ${String(b.length).padStart(6)}   ${bias.toFixed(3).padStart(8)}               ${rho.toFixed(3)}`,
    );
  }
  const pooled = spearman(
    rows.map((r) => r.score),
    rows.map((r) => r.truth!),
  );
  console.log(
    `spread of bucket biases ${(Math.max(...biases) - Math.min(...biases)).toFixed(3)}; pooled Spearman ${pooled.toFixed(3)}\n`,
  );
}
