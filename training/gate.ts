import { type BinaryMetrics, binaryMetrics, ece } from "../models/metrics.ts";

/**
 * The promotion gate: a pure decision (no I/O, no clock) on predictions of the champion and the
 * challenger over the same frozen holdout rows. The challenger passes only if
 *   AUC(challenger)     >= AUC(champion)     + minAucGain
 *   logloss(challenger) <= logloss(champion) - minLoglossGain
 *   ECE(challenger)     <= ECE(champion)     + maxEceIncrease
 * and, for every group (e.g. each school, each grade) with at least minGroupSize rows,
 *   ECE_g(challenger)   <= ECE_g(champion)   + maxGroupEceIncrease.
 * Smaller groups are skipped and listed (their ECE is too noisy to judge).
 */
export interface GateConfig {
  minAucGain: number;
  minLoglossGain: number;
  maxEceIncrease: number;
  maxGroupEceIncrease: number;
  minGroupSize: number;
  /** Bins of the ECE (equal-width over [0, 1]). */
  eceBins: number;
}

export const DEFAULT_GATE: GateConfig = {
  minAucGain: 0.002,
  minLoglossGain: 0.001,
  maxEceIncrease: 0.005,
  maxGroupEceIncrease: 0.02,
  minGroupSize: 200,
  eceBins: 10,
};

/** Rows' group labels for one grouping column (e.g. column "school_id", one value per holdout row). */
export interface GroupColumn {
  column: string;
  values: readonly string[];
}

export interface GateInput {
  y: ArrayLike<number>;
  champion: ArrayLike<number>;
  challenger: ArrayLike<number>;
  groups?: readonly GroupColumn[];
}

export interface GateCheck {
  name: "auc" | "logloss" | "ece" | "group_ece";
  pass: boolean;
  champion: number;
  challenger: number;
  /** challenger - champion */
  delta: number;
  /** The bound the delta was held to (e.g. ">= +0.002"). */
  rule: string;
  reason: string;
}

export interface GroupCheck {
  column: string;
  group: string;
  n: number;
  championEce: number;
  challengerEce: number;
  delta: number;
  pass: boolean;
}

export interface GateDecision {
  pass: boolean;
  checks: GateCheck[];
  groups: GroupCheck[];
  skippedGroups: { column: string; group: string; n: number }[];
  champion: BinaryMetrics;
  challenger: BinaryMetrics;
  config: GateConfig;
  /** One line: PASS/FAIL and the failed checks. */
  summary: string;
}

export class GateError extends Error {
  readonly code = "GATE_INPUT";
  constructor(message: string) {
    super(message);
    this.name = "GateError";
  }
}

const f = (x: number): string => (Number.isFinite(x) ? x.toFixed(4) : String(x));
const signed = (x: number): string => (x >= 0 ? `+${f(x)}` : f(x));

export function promotionGate(input: GateInput, config: GateConfig = DEFAULT_GATE): GateDecision {
  const n = input.y.length;
  if (input.champion.length !== n || input.challenger.length !== n)
    throw new GateError(
      `holdout has ${n} labels but champion has ${input.champion.length} and challenger ${input.challenger.length} predictions; both models must score every holdout row`,
    );
  if (n === 0) throw new GateError("holdout is empty; the gate needs labelled rows");
  const champ = binaryMetrics(input.y, input.champion);
  const chall = binaryMetrics(input.y, input.challenger);
  champ.ece = ece(input.y, input.champion, config.eceBins);
  chall.ece = ece(input.y, input.challenger, config.eceBins);
  const checks: GateCheck[] = [];

  const dAuc = chall.auc - champ.auc;
  const aucPass = Number.isFinite(dAuc) && dAuc >= config.minAucGain;
  checks.push({
    name: "auc",
    pass: aucPass,
    champion: champ.auc,
    challenger: chall.auc,
    delta: dAuc,
    rule: `>= +${config.minAucGain}`,
    reason: Number.isFinite(dAuc)
      ? `AUC ${f(chall.auc)} vs champion ${f(champ.auc)} (${signed(dAuc)}); ${aucPass ? "meets" : "misses"} the required gain of +${config.minAucGain}`
      : "AUC is undefined: the holdout has only one class; use a holdout with both correct and incorrect responses",
  });

  const dLl = chall.logloss - champ.logloss;
  const llPass = dLl <= -config.minLoglossGain;
  checks.push({
    name: "logloss",
    pass: llPass,
    champion: champ.logloss,
    challenger: chall.logloss,
    delta: dLl,
    rule: `<= -${config.minLoglossGain}`,
    reason: `log-loss ${f(chall.logloss)} vs champion ${f(champ.logloss)} (${signed(dLl)}); ${
      llPass ? "meets" : "misses"
    } the required reduction of ${config.minLoglossGain}`,
  });

  const dEce = chall.ece - champ.ece;
  const ecePass = dEce <= config.maxEceIncrease;
  checks.push({
    name: "ece",
    pass: ecePass,
    champion: champ.ece,
    challenger: chall.ece,
    delta: dEce,
    rule: `<= +${config.maxEceIncrease}`,
    reason: `ECE ${f(chall.ece)} vs champion ${f(champ.ece)} (${signed(dEce)}); ${
      ecePass ? "within" : "exceeds"
    } the allowed increase of ${config.maxEceIncrease}`,
  });

  const groups: GroupCheck[] = [];
  const skippedGroups: GateDecision["skippedGroups"] = [];
  for (const col of input.groups ?? []) {
    if (col.values.length !== n)
      throw new GateError(
        `group column "${col.column}" has ${col.values.length} values for ${n} holdout rows`,
      );
    const rowsOf = new Map<string, number[]>();
    for (let i = 0; i < n; i++) {
      const g = col.values[i]!;
      let list = rowsOf.get(g);
      if (list === undefined) {
        list = [];
        rowsOf.set(g, list);
      }
      list.push(i);
    }
    for (const [group, rows] of [...rowsOf].sort((a, b) => a[0].localeCompare(b[0]))) {
      if (rows.length < config.minGroupSize) {
        skippedGroups.push({ column: col.column, group, n: rows.length });
        continue;
      }
      const y = new Float64Array(rows.length);
      const pc = new Float64Array(rows.length);
      const pn = new Float64Array(rows.length);
      for (let k = 0; k < rows.length; k++) {
        const i = rows[k]!;
        y[k] = input.y[i]!;
        pc[k] = input.champion[i]!;
        pn[k] = input.challenger[i]!;
      }
      const championEce = ece(y, pc, config.eceBins);
      const challengerEce = ece(y, pn, config.eceBins);
      const delta = challengerEce - championEce;
      groups.push({
        column: col.column,
        group,
        n: rows.length,
        championEce,
        challengerEce,
        delta,
        pass: delta <= config.maxGroupEceIncrease,
      });
    }
  }
  const worse = groups.filter((g) => !g.pass);
  const worst = groups.reduce<GroupCheck | undefined>(
    (w, g) => (w === undefined || g.delta > w.delta ? g : w),
    undefined,
  );
  const skippedNote = skippedGroups.length
    ? `; ${skippedGroups.length} group(s) below ${config.minGroupSize} rows skipped`
    : "";
  checks.push({
    name: "group_ece",
    pass: worse.length === 0,
    champion: worst?.championEce ?? Number.NaN,
    challenger: worst?.challengerEce ?? Number.NaN,
    delta: worst?.delta ?? Number.NaN,
    rule: `<= +${config.maxGroupEceIncrease} in every group of >= ${config.minGroupSize} rows`,
    reason:
      groups.length === 0
        ? `no group was checked (${input.groups?.length ? "all groups too small" : "no group columns given"})${skippedNote}`
        : worse.length === 0
          ? `ECE not worse by more than ${config.maxGroupEceIncrease} in any of ${groups.length} group(s); worst ${worst!.column}=${worst!.group} ${signed(worst!.delta)}${skippedNote}`
          : `ECE worse by more than ${config.maxGroupEceIncrease} in ${worse
              .map(
                (g) =>
                  `${g.column}=${g.group} (${f(g.championEce)} -> ${f(g.challengerEce)}, ${signed(g.delta)}, n=${g.n})`,
              )
              .join("; ")}${skippedNote}`,
  });

  const failed = checks.filter((c) => !c.pass);
  return {
    pass: failed.length === 0,
    checks,
    groups,
    skippedGroups,
    champion: champ,
    challenger: chall,
    config,
    summary:
      failed.length === 0
        ? `PASS: challenger beats champion on ${checks.map((c) => c.name).join(", ")}`
        : `FAIL: ${failed.map((c) => c.name).join(", ")} (${failed.map((c) => c.reason).join(" | ")})`,
  };
}

/** The gate for a first promotion (no champion yet): there is nothing to compare, so it passes, saying so. */
export function firstChampionDecision(
  y: ArrayLike<number>,
  challenger: ArrayLike<number>,
  config: GateConfig = DEFAULT_GATE,
) {
  const m = binaryMetrics(y, challenger);
  return {
    pass: true,
    checks: [] as GateCheck[],
    groups: [] as GroupCheck[],
    skippedGroups: [] as GateDecision["skippedGroups"],
    challenger: m,
    config,
    summary: "PASS: no current champion; the challenger becomes the first champion",
  };
}
