/**
 * Where a served score's ranking of the truth is lost, on a validity-bench dump (`DUMP=dir npx tsx
 * bench/validity.bench.ts`): the truth Spearman split into students and topics (how well the served student
 * and topic means track the true ones, the sd of each, the share of the variance between them, the Spearman
 * within a student or topic, and what the total would be with each group's means made exact), then the bias
 * and the 80% interval's cover (truth below / above) by the pair's answers. Rounds 13 and 17 ran this as
 * scratch scripts (docs/benchmarks.md Validity); round 18 keeps it. Bench only: it reads the truth.
 *
 *   npx tsx bench/validityDecompose.ts /tmp/dump/seed_4_*.json [SOURCE=served]
 */
import { readFileSync } from "node:fs";
import { spearman } from "../models/validity.ts";

interface DumpRow {
  k: string;
  source: string;
  score: number;
  truth?: number;
  x: { interval?: { lo: number; hi: number }; evidence?: { attempts: number } } | null;
}
interface Row {
  student: string;
  topic: string;
  score: number;
  truth: number;
  lo: number;
  hi: number;
  attempts: number;
}

const source = process.env.SOURCE ?? "served";
const mean = (a: readonly number[]): number => a.reduce((s, v) => s + v, 0) / a.length;
const sd = (a: readonly number[]): number => {
  const m = mean(a);
  return Math.sqrt(mean(a.map((v) => (v - m) ** 2)));
};
const f3 = (x: number): string => x.toFixed(3);
const BANDS = [0, 1, 5, 15] as const;
const bandOf = (n: number): number => {
  let b = 0;
  for (let i = 0; i < BANDS.length; i++) if (n >= BANDS[i]!) b = i;
  return b;
};

function groups(rows: readonly Row[], key: (r: Row) => string): Map<string, Row[]> {
  const out = new Map<string, Row[]>();
  for (const r of rows) {
    const g = out.get(key(r));
    if (g === undefined) out.set(key(r), [r]);
    else g.push(r);
  }
  return out;
}

function byGroup(rows: readonly Row[], name: string, key: (r: Row) => string): string {
  const g = groups(rows, key);
  const means = new Map(
    [...g].map(([k, rs]) => [k, [mean(rs.map((r) => r.score)), mean(rs.map((r) => r.truth))]]),
  );
  const ms = [...means.values()].map((m) => m[0]!);
  const mt = [...means.values()].map((m) => m[1]!);
  const t = rows.map((r) => r.truth);
  const s = rows.map((r) => r.score);
  const share = (v: readonly number[], i: 0 | 1): number => {
    const m = mean(v);
    return mean(rows.map((r) => (means.get(key(r))![i]! - m) ** 2)) / mean(v.map((x) => (x - m) ** 2));
  };
  let within = 0;
  let n = 0;
  for (const rs of g.values())
    if (rs.length >= 5) {
      const w = spearman(
        rs.map((r) => r.score),
        rs.map((r) => r.truth),
      );
      if (Number.isFinite(w)) {
        within += w * rs.length;
        n += rs.length;
      }
    }
  const exact = rows.map((r) => r.score - means.get(key(r))![0]! + means.get(key(r))![1]!);
  return (
    `  by ${name} (${g.size}): means Spearman ${f3(spearman(ms, mt))}, sd served ${f3(sd(ms))} / true ${f3(sd(mt))}; ` +
    `share of variance between: served ${f3(share(s, 0))} / true ${f3(share(t, 1))}; Spearman within ${f3(within / n)}; ` +
    `total with the ${name} means exact ${f3(spearman(exact, t))}`
  );
}

for (const file of process.argv.slice(2)) {
  const dump = JSON.parse(readFileSync(file, "utf8")) as { title: string; rows: DumpRow[] };
  const rows: Row[] = [];
  for (const r of dump.rows) {
    if (r.source !== source || r.truth === undefined) continue;
    const [student, topic] = r.k.split("|");
    rows.push({
      student: student!,
      topic: topic!,
      score: r.score,
      truth: r.truth,
      lo: r.x?.interval?.lo ?? Number.NaN,
      hi: r.x?.interval?.hi ?? Number.NaN,
      attempts: r.x?.evidence?.attempts ?? 0,
    });
  }
  const s = rows.map((r) => r.score);
  const t = rows.map((r) => r.truth);
  console.log(
    `${dump.title} (${source}): ${rows.length} pairs, Spearman ${f3(spearman(s, t))}; served mean ${f3(mean(s))} sd ${f3(sd(s))}, truth mean ${f3(mean(t))} sd ${f3(sd(t))}`,
  );
  console.log(byGroup(rows, "student", (r) => r.student));
  console.log(byGroup(rows, "topic", (r) => r.topic));
  const bands = BANDS.map((from, b) => {
    const rs = rows.filter((r) => bandOf(r.attempts) === b);
    if (rs.length === 0) return `${from}+: -`;
    const below = rs.filter((r) => r.truth < r.lo).length / rs.length;
    const above = rs.filter((r) => r.truth > r.hi).length / rs.length;
    return `${from}+ (${rs.length}): bias ${f3(mean(rs.map((r) => r.score - r.truth)))}, cover ${f3(1 - below - above)} (below ${f3(below)} / above ${f3(above)})`;
  });
  const below = rows.filter((r) => r.truth < r.lo).length / rows.length;
  const above = rows.filter((r) => r.truth > r.hi).length / rows.length;
  console.log(`  by answers: ${bands.join("; ")}`);
  console.log(
    `  all: bias ${f3(mean(rows.map((r) => r.score - r.truth)))}, cover ${f3(1 - below - above)} (below ${f3(below)} / above ${f3(above)})`,
  );
}
