import type { Explanation } from "./explanation.ts";
import { LATENT_FACTORS } from "./latentFilter.ts";

/**
 * The stored form of a served / latent explanation as numbers (the daily batch's 'served' and 'latent' rows,
 * issue 17 item 1): serving/servedRows.ts servedExplanation and serving/latentScoring.ts latentExplanation build
 * the same shape (base, top 3 factors of the latent filter's, rest, score, 80% interval, evidence, P(correct),
 * decay), so both are kept as these numbers and rendered back to the text JSON.stringify wrote, byte for byte.
 * A shape these numbers cannot hold (a factor outside LATENT_FACTORS, more than 3 factors, a label, no decay,
 * a number JSON writes as null) is not encoded: the row keeps its text.
 */

/** Evidence kinds in code order (the stored `kind` is an index into this list). */
export const SERVED_EVIDENCE_KINDS = ["measured", "indirect", "prior"] as const;
export type ServedEvidenceKind = (typeof SERVED_EVIDENCE_KINDS)[number];

/** Factors a stored served explanation can name (the stored `factor` is an index into this list). */
export const SERVED_FACTOR_NAMES: readonly string[] = LATENT_FACTORS;

/** The explanation shape of a served or latent row, key order as JSON.stringify writes it. */
export interface ServedExplanationShape extends Explanation {
  interval: { lo: number; hi: number; level: 0.8 };
  evidence: { kind: ServedEvidenceKind; attempts: number; daysSinceLast: number | null };
  pCorrect: number;
  decay?: { halfLifeDays: number; floor: number; pFloor: number } | undefined;
}

export interface ServedExplanationNumbers {
  base: number;
  rest: number;
  /** The top factors (at most 3), in the explanation's order: index into SERVED_FACTOR_NAMES, value, contribution. */
  factors: { factor: number; value: number; contribution: number }[];
  lo: number;
  hi: number;
  /** Index into SERVED_EVIDENCE_KINDS. */
  kind: number;
  attempts: number;
  daysSinceLast: number | null;
  pCorrect: number;
  halfLifeDays: number;
  floor: number;
  pFloor: number;
}

/** At most this many factors are stored (models/explanation.ts explain's default top). */
export const SERVED_STORED_FACTORS = 3;

const FACTOR_INDEX = new Map(SERVED_FACTOR_NAMES.map((n, i) => [n, i]));
const KIND_INDEX = new Map<string, number>(SERVED_EVIDENCE_KINDS.map((k, i) => [k, i]));

/**
 * The numbers of `e` when its text is exactly what servedExplanationText renders from them with score `score`
 * (so e.score must be `score`), else null: the row then stores its text.
 */
export function servedExplanationNumbers(
  e: ServedExplanationShape,
  score: number,
): ServedExplanationNumbers | null {
  const d = e.decay;
  if (d === undefined || !Object.is(e.score, score) || e.interval.level !== 0.8) return null;
  if (e.factors.length > SERVED_STORED_FACTORS) return null;
  const kind = KIND_INDEX.get(e.evidence.kind);
  if (kind === undefined) return null;
  const factors: ServedExplanationNumbers["factors"] = [];
  for (const f of e.factors) {
    const i = FACTOR_INDEX.get(f.name);
    if (i === undefined || f.label !== undefined || !kept(f.value) || !kept(f.contribution)) return null;
    factors.push({ factor: i, value: f.value, contribution: f.contribution });
  }
  const days = e.evidence.daysSinceLast;
  if (
    !kept(e.base) ||
    !kept(e.rest) ||
    !kept(e.interval.lo) ||
    !kept(e.interval.hi) ||
    !kept(e.evidence.attempts) ||
    (days !== null && !kept(days)) ||
    !kept(e.pCorrect) ||
    !kept(d.halfLifeDays) ||
    !kept(d.floor) ||
    !kept(d.pFloor)
  )
    return null;
  return {
    base: e.base,
    rest: e.rest,
    factors,
    lo: e.interval.lo,
    hi: e.interval.hi,
    kind,
    attempts: e.evidence.attempts,
    daysSinceLast: days,
    pCorrect: e.pCorrect,
    halfLifeDays: d.halfLifeDays,
    floor: d.floor,
    pFloor: d.pFloor,
  };
}

/**
 * A number stored as a DOUBLE renders as JSON.stringify wrote it: any finite double (-0 included: both write
 * "0"). A non-finite one (JSON null) is left to the text.
 */
const kept = (v: number): boolean => typeof v === "number" && Number.isFinite(v);

/** The explanation the numbers stand for, with the row's score (servedExplanation's / latentExplanation's key order). */
export function servedExplanationFromNumbers(
  n: ServedExplanationNumbers,
  score: number,
): ServedExplanationShape & { decay: NonNullable<ServedExplanationShape["decay"]> } {
  const factors = n.factors.map((f) => {
    const name = SERVED_FACTOR_NAMES[f.factor];
    if (name === undefined) throw new RangeError(`served explanation: factor index ${f.factor} has no name`);
    return { name, value: f.value, contribution: f.contribution };
  });
  const kind = SERVED_EVIDENCE_KINDS[n.kind];
  if (kind === undefined)
    throw new RangeError(`served explanation: evidence kind index ${n.kind} has no name`);
  return {
    base: n.base,
    factors,
    rest: n.rest,
    score,
    interval: { lo: n.lo, hi: n.hi, level: 0.8 },
    evidence: { kind, attempts: n.attempts, daysSinceLast: n.daysSinceLast },
    pCorrect: n.pCorrect,
    decay: { halfLifeDays: n.halfLifeDays, floor: n.floor, pFloor: n.pFloor },
  };
}

/** The stored text: JSON.stringify of servedExplanationFromNumbers. */
export function servedExplanationText(n: ServedExplanationNumbers, score: number): string {
  return JSON.stringify(servedExplanationFromNumbers(n, score));
}

/** Each factor name's place in String.prototype.localeCompare order (explain's tie-break), computed once. */
const NAME_RANK: Int32Array = (() => {
  const order = SERVED_FACTOR_NAMES.map((_, i) => i).sort((a, b) =>
    SERVED_FACTOR_NAMES[a]!.localeCompare(SERVED_FACTOR_NAMES[b]!),
  );
  const rank = new Int32Array(SERVED_FACTOR_NAMES.length);
  for (const [r, f] of order.entries()) rank[f] = r;
  return rank;
})();

/**
 * models/explanation.ts explain's top factors and rest, for factors named by their SERVED_FACTOR_NAMES index
 * (each index at most once): the same order (|contribution| descending, then the name by localeCompare), the
 * same top SERVED_STORED_FACTORS, and `rest` summed in the same order, without building the factor objects.
 * Null when a contribution is not finite (explain's order is then not a total order; the caller builds the
 * explanation itself).
 */
export function topServedFactors(
  factor: ArrayLike<number>,
  value: ArrayLike<number>,
  contribution: ArrayLike<number>,
  n: number,
): { factors: ServedExplanationNumbers["factors"]; rest: number } | null {
  const order: number[] = [];
  for (let i = 0; i < n; i++) {
    if (!Number.isFinite(contribution[i]!)) return null;
    // Insertion by explain's comparator: a before b when |b| - |a| < 0, or equal and a's name first.
    let j = order.length;
    while (j > 0) {
      const k = order[j - 1]!;
      const d = Math.abs(contribution[i]!) - Math.abs(contribution[k]!);
      if (d > 0 || (d === 0 && NAME_RANK[factor[i]!]! < NAME_RANK[factor[k]!]!)) j--;
      else break;
    }
    order.splice(j, 0, i);
  }
  const factors: ServedExplanationNumbers["factors"] = [];
  let rest = 0;
  for (let r = 0; r < order.length; r++) {
    const i = order[r]!;
    if (r < SERVED_STORED_FACTORS)
      factors.push({ factor: factor[i]!, value: value[i]!, contribution: contribution[i]! });
    else rest += contribution[i]!;
  }
  return { factors, rest };
}

/**
 * The numbers of an explanation whose factors come from topServedFactors and the rest of its fields as given
 * (servedExplanationNumbers' checks on them: finite numbers, a known evidence kind), else null.
 */
export function servedNumbersFrom(
  top: { factors: ServedExplanationNumbers["factors"]; rest: number },
  fields: Omit<ServedExplanationNumbers, "factors" | "rest" | "kind"> & { kind: string; restExtra?: number },
): ServedExplanationNumbers | null {
  const kind = KIND_INDEX.get(fields.kind);
  if (kind === undefined) return null;
  for (const f of top.factors) if (!kept(f.value)) return null;
  const rest = fields.restExtra === undefined ? top.rest : top.rest + fields.restExtra;
  const days = fields.daysSinceLast;
  if (
    !kept(fields.base) ||
    !kept(rest) ||
    !kept(fields.lo) ||
    !kept(fields.hi) ||
    !kept(fields.attempts) ||
    (days !== null && !kept(days)) ||
    !kept(fields.pCorrect) ||
    !kept(fields.halfLifeDays) ||
    !kept(fields.floor) ||
    !kept(fields.pFloor)
  )
    return null;
  return {
    base: fields.base,
    rest,
    factors: top.factors,
    lo: fields.lo,
    hi: fields.hi,
    kind,
    attempts: fields.attempts,
    daysSinceLast: days,
    pCorrect: fields.pCorrect,
    halfLifeDays: fields.halfLifeDays,
    floor: fields.floor,
    pFloor: fields.pFloor,
  };
}
