/**
 * Offline arithmetic on a validity-bench dump (`DUMP=dir npx tsx bench/validity.bench.ts` writes one JSON per
 * setting): the stored filter posterior (score_source 'latent') mapped by centred-logit with a given anchor
 * and an added anchor sd, against the generator's truth: MAE, mean, 80% coverage, Spearman. Round 7
 * (docs/benchmarks.md "Validity") uses it for the "no added sd" column. Bench only: it reads the truth.
 *
 *   ANCHOR=0.757 npx tsx bench/validityReplay.ts /tmp/dump/seed_1_*.json
 * ANCHOR defaults to the dumped model's anchor (absent: its gap-accuracy base); SDS = comma-separated sds.
 */
import { readFileSync } from "node:fs";
import { spearman } from "../models/validity.ts";

interface DumpRow {
  k: string;
  source: string;
  score: number;
  truth?: number;
  x: { interval: { lo: number; hi: number } } | null;
}
interface Dump {
  title: string;
  model: {
    global: { base: number };
    anchor?: { base: number; sd: number };
    latent: { params: { guess: number; slip: number } };
  };
  rows: DumpRow[];
}

const logit = (p: number): number => {
  const q = Math.min(1 - 1e-3, Math.max(1e-3, p));
  return Math.log(q / (1 - q));
};
const sig = (z: number): number => 1 / (1 + Math.exp(-z));
const Z80 = 1.2815515655446004;
const files = process.argv.slice(2);
if (files.length === 0)
  throw new Error("usage: npx tsx bench/validityReplay.ts DUMP.json [...] (from DUMP=dir)");
for (const file of files) {
  const d = JSON.parse(readFileSync(file, "utf8")) as Dump;
  const p = d.model.latent.params;
  const emit = (k: number) => p.guess + (1 - p.guess - p.slip) * k;
  const anchor = Number(process.env.ANCHOR ?? d.model.anchor?.base ?? d.model.global.base);
  const sds = (process.env.SDS ?? `0,${d.model.anchor?.sd ?? 0}`).split(",").map(Number);
  console.log(
    `${d.title}: anchor ${anchor.toFixed(3)} (gap-accuracy base ${d.model.global.base.toFixed(3)})`,
  );
  for (const sd of sds) {
    const s: number[] = [];
    const t: number[] = [];
    let mae = 0;
    let inside = 0;
    for (const r of d.rows) {
      if (r.source !== "latent" || r.truth === undefined || r.x === null) continue;
      const z = logit(emit(r.score)) - logit(anchor);
      const e = (Z80 * sd) ** 2;
      const wl = Math.sqrt((z - (logit(emit(r.x.interval.lo)) - logit(anchor))) ** 2 + e);
      const wh = Math.sqrt((logit(emit(r.x.interval.hi)) - logit(anchor) - z) ** 2 + e);
      const score = sig(z);
      mae += Math.abs(score - r.truth);
      if (r.truth >= sig(z - wl) && r.truth <= sig(z + wh)) inside++;
      s.push(score);
      t.push(r.truth);
    }
    const n = s.length;
    console.log(
      `  added sd ${sd.toFixed(3)}: pairs ${n} MAE ${(mae / n).toFixed(3)} mean ${(s.reduce((a, b) => a + b, 0) / n).toFixed(3)} cover80 ${(inside / n).toFixed(3)} spearman ${spearman(s, t).toFixed(3)}`,
    );
  }
}
