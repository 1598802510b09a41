import { LATENT_FACTORS, type LatentEstimate } from "../models/latentFilter.ts";
import type { ServedEstimate } from "../models/servedMastery.ts";
import type { LatentExplanationExtra } from "./latentScoring.ts";

/**
 * The stored text of the daily batch's two explanations per pair (lean29), written straight from the estimates:
 * `servedExplanationText(e)` is JSON.stringify(servedExplanation(e)) (serving/servedRows.ts) and
 * `latentExplanationText(est, decay)` is JSON.stringify(latentExplanation(est, decay)) (serving/latentScoring.ts),
 * character for character, without the objects, the copies and the sort models/explanation.ts `explain` builds
 * (~40% of what the scoring threads allocated a pair). The factors are ordered by explain's comparator (largest
 * |contribution| first, ties by the name's localeCompare) and the rest summed in that order, so the numbers are
 * the same bits. Where that order is not a strict one (a NaN or infinite contribution, a name outside
 * LATENT_FACTORS, or two names localeCompare calls equal) or a field is not a number, the functions return null
 * and the caller builds the explanation as before.
 */

/** Each LATENT_FACTORS name's place in localeCompare's order (this process's default collation, as explain's). */
const RANK: ReadonlyMap<string, number> = (() => {
  const names = [...LATENT_FACTORS].sort((a, b) => a.localeCompare(b));
  for (let i = 1; i < names.length; i++) if (names[i - 1]!.localeCompare(names[i]!) === 0) return new Map();
  return new Map(names.map((n, i) => [n, i]));
})();

const TOP = 3;
const names: string[] = [];
const values: number[] = [];
const contributions: number[] = [];
const ranks: number[] = [];
const order: number[] = [];

/** JSON's text of a number (JSON.stringify: a finite number as String gives it, else null). */
const num = (v: number): string => (Number.isFinite(v) ? `${v}` : "null");

/**
 * `{"base":..,"factors":[top 3],"rest":..,"score":..` of explain(base, factors, score) from the factors in
 * `names` / `values` / `contributions` (the first `n`), the rest plus `restExtra`; null where explain's order
 * is not a strict one.
 */
function head(n: number, base: number, score: number, restExtra: number): string | null {
  for (let i = 0; i < n; i++) {
    const r = RANK.get(names[i]!);
    if (r === undefined || !Number.isFinite(contributions[i]!)) return null;
    ranks[i] = r;
    // Insertion by explain's comparator: |contribution| descending, then the name's collation order.
    let at = i;
    const a = Math.abs(contributions[i]!);
    while (at > 0) {
      const o = order[at - 1]!;
      const b = Math.abs(contributions[o]!);
      if (b > a || (b === a && ranks[o]! < r)) break;
      order[at] = o;
      at--;
    }
    order[at] = i;
  }
  let text = `{"base":${num(base)},"factors":[`;
  const top = Math.min(TOP, n);
  for (let k = 0; k < top; k++) {
    const i = order[k]!;
    text += `${k > 0 ? "," : ""}{"name":"${names[i]}","value":${num(values[i]!)},"contribution":${num(contributions[i]!)}}`;
  }
  let rest = 0;
  for (let k = top; k < n; k++) rest += contributions[order[k]!]!;
  return `${text}],"rest":${num(rest + restExtra)},"score":${num(score)}`;
}

const isNum = (v: unknown): v is number => typeof v === "number";

/**
 * `,"interval":..,"evidence":..,"pCorrect":..,"decay":..}`: the fields both explanations end with; null where one
 * of them is not a number (JSON.stringify would leave it out).
 */
function tail(
  lo: number,
  hi: number,
  kind: string,
  attempts: number,
  daysSinceLast: number | null,
  pCorrect: number,
  decay: { halfLifeDays: number; floor: number; pFloor: number } | undefined,
): string | null {
  if (
    !(
      isNum(lo) &&
      isNum(hi) &&
      isNum(attempts) &&
      (daysSinceLast === null || isNum(daysSinceLast)) &&
      isNum(pCorrect) &&
      decay !== undefined &&
      isNum(decay.halfLifeDays) &&
      isNum(decay.floor) &&
      isNum(decay.pFloor)
    )
  )
    return null;
  return `,"interval":{"lo":${num(lo)},"hi":${num(hi)},"level":0.8},"evidence":{"kind":"${kind}","attempts":${num(attempts)},"daysSinceLast":${daysSinceLast === null ? "null" : num(daysSinceLast)}},"pCorrect":${num(pCorrect)},"decay":{"halfLifeDays":${num(decay.halfLifeDays)},"floor":${num(decay.floor)},"pFloor":${num(decay.pFloor)}}}`;
}

/** JSON.stringify(servedExplanation(e)), or null (see the module comment). */
export function servedExplanationText(e: ServedEstimate): string | null {
  if (!(isNum(e.base) && isNum(e.score) && isNum(e.rest))) return null;
  const t = tail(e.lo, e.hi, e.evidence, e.attempts, e.daysSinceLast, e.pCorrect, e.decay);
  if (t === null) return null;
  const cs = e.contributions;
  for (let i = 0; i < cs.length; i++) {
    const c = cs[i]!;
    if (!(isNum(c.value) && isNum(c.contribution))) return null;
    names[i] = c.name;
    values[i] = c.value;
    contributions[i] = c.contribution;
  }
  const h = head(cs.length, e.base, e.score, e.rest);
  return h === null ? null : h + t;
}

/** JSON.stringify(latentExplanation(est, decay)), or null (see the module comment). */
export function latentExplanationText(
  est: LatentEstimate,
  decay: NonNullable<LatentExplanationExtra["decay"]>,
): string | null {
  if (!(isNum(est.base) && isNum(est.score) && isNum(est.events))) return null;
  const kind = est.observations > 0 ? "measured" : est.events > 0 ? "indirect" : "prior";
  const t = tail(est.lo, est.hi, kind, est.observations, est.daysSinceLast, est.pCorrect, decay);
  if (t === null) return null;
  // Object.entries' order (latentExplanation's): the record's own keys as the estimate built them.
  let n = 0;
  for (const name in est.contributions) {
    if (!Object.hasOwn(est.contributions, name)) continue;
    const c = est.contributions[name as keyof LatentEstimate["contributions"]];
    if (!isNum(c)) return null;
    names[n] = name;
    values[n] = c;
    contributions[n] = c;
    n++;
  }
  const h = head(n, est.base, est.score, 0);
  return h === null ? null : h + t;
}
