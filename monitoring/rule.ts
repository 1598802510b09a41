/**
 * The rule that turns many per-feature, per-segment comparisons into one drift verdict. Pure.
 *
 * A comparison ALERTS when its p-value, adjusted over the whole family of comparisons of one check
 * (Benjamini-Hochberg by default, or Bonferroni), is <= alpha AND an effect size in excess of its
 * sampling noise clears a floor: PSI excess >= psi.alert, or (numeric) Wasserstein-1 / sd(reference)
 * minus sqrt(1/n + 1/m) >= effect.wasserstein, or (categorical) JS divergence minus its noise
 * >= effect.js. It WARNS when significant with PSI excess >= psi.warn. The noise term is PSI's
 * expectation when nothing changed, (k - 1)(1/n + 1/m) for k bins (n m / (n + m) PSI is
 * asymptotically chi-square with k - 1 df, PSI being the symmetrized KL divergence), which is
 * ~0.3 for 10 bins and 60 rows a side: small segments must shift more to alert. Requiring significance bounds the false-alarm rate of the whole
 * check by alpha when nothing changed (Bonferroni: FWER <= alpha; BH: FWER = FDR <= alpha under the
 * complete null); requiring a PSI effect keeps huge samples from alerting on negligible shifts.
 *
 * The set counts as drifted when any of:
 *  - >= rule.minFeatures distinct features alert over all rows (segment "all"),
 *  - >= rule.minSegments distinct segments (topic/school/grade values) have an alerting feature,
 *  - a key feature alerts in any segment.
 */
import { adjustPValues } from "../models/drift.ts";
import type { DriftConfig, SegmentDimension } from "./config.ts";

export type ComparisonStatus = "ok" | "warn" | "alert" | "insufficient";

export interface Comparison {
  /** Feature column, categorical name (topic_id, ...), or "score.<score_source>". */
  feature: string;
  kind: "numeric" | "categorical" | "score";
  dimension: "all" | SegmentDimension;
  /** "all" or the segment's value (a topic_id, school_id or grade). */
  segment: string;
  nReference: number;
  nCurrent: number;
  psi: number;
  /** Expected PSI under no change: (bins - 1)(1/nReference + 1/nCurrent). */
  psiNoise: number;
  js: number;
  /** KS statistic (numeric, score) or chi-square statistic (categorical); NaN when insufficient. */
  statistic: number;
  test: "ks" | "chi2" | "none";
  pValue: number;
  /** Categorical only: categories absent from the reference but present now (e.g. a new event source). */
  newCategories?: string[];
  /** Numeric only: Wasserstein-1 / sd(reference), and the two means. */
  wassersteinScaled?: number;
  meanReference?: number;
  meanCurrent?: number;
  pAdjusted: number;
  status: ComparisonStatus;
}

export interface DriftDecision {
  drift: boolean;
  reasons: string[];
  /** Features alerting over all rows. */
  alertingFeatures: string[];
  /** "topic=t3", "school=s1" ... with at least one alerting feature, and which. */
  alertingSegments: { segment: string; features: string[] }[];
  keyFeatureAlerts: string[];
  testsRun: number;
  correction: DriftConfig["test"]["correction"];
  alpha: number;
}

/**
 * The second effect size of a comparison minus its expectation under no change: Wasserstein-1 in
 * reference sd units minus sqrt(1/n + 1/m) (the scale of W1 between two samples of one
 * distribution), or JS divergence (bits) minus (k - 1)(1/n + 1/m) / (8 ln 2) (JS ~ PSI / 8 for
 * small shifts). -Infinity when not available.
 */
export function secondaryEffectExcess(c: Comparison): number {
  const noise = 1 / c.nReference + 1 / c.nCurrent;
  if (c.kind === "categorical") {
    if (!Number.isFinite(c.js) || !Number.isFinite(c.psiNoise)) return Number.NEGATIVE_INFINITY;
    return c.js - c.psiNoise / (8 * Math.LN2);
  }
  const w = c.wassersteinScaled;
  if (w === undefined || !Number.isFinite(w)) return Number.NEGATIVE_INFINITY;
  return w - Math.sqrt(noise);
}

function secondaryFloor(c: Comparison, cfg: DriftConfig): number {
  return c.kind === "categorical" ? cfg.effect.js : cfg.effect.wasserstein;
}

/** Fills pAdjusted and status of every comparison (in place) and returns the verdict. */
export function applyDriftRule(comparisons: Comparison[], cfg: DriftConfig): DriftDecision {
  const tested = comparisons.filter((c) => c.status !== "insufficient" && !Number.isNaN(c.pValue));
  const adjusted = adjustPValues(
    tested.map((c) => c.pValue),
    cfg.test.correction,
  );
  tested.forEach((c, i) => {
    c.pAdjusted = adjusted[i]!;
    const significant = c.pAdjusted <= cfg.test.alpha;
    const excess = c.psi - c.psiNoise;
    const big = excess >= cfg.psi.alert || secondaryEffectExcess(c) >= secondaryFloor(c, cfg);
    c.status = significant && big ? "alert" : significant && excess >= cfg.psi.warn ? "warn" : "ok";
  });
  const alerts = tested.filter((c) => c.status === "alert");
  const alertingFeatures = [
    ...new Set(alerts.filter((c) => c.dimension === "all").map((c) => c.feature)),
  ].sort();
  const bySegment = new Map<string, Set<string>>();
  for (const c of alerts) {
    if (c.dimension === "all") continue;
    const key = `${c.dimension}=${c.segment}`;
    let set = bySegment.get(key);
    if (set === undefined) {
      set = new Set();
      bySegment.set(key, set);
    }
    set.add(c.feature);
  }
  const alertingSegments = [...bySegment]
    .map(([segment, f]) => ({ segment, features: [...f].sort() }))
    .sort((a, b) => a.segment.localeCompare(b.segment));
  const key = new Set(cfg.rule.keyFeatures);
  const keyFeatureAlerts = [
    ...new Set(
      alerts.filter((c) => key.has(c.feature)).map((c) => `${c.feature}@${c.dimension}=${c.segment}`),
    ),
  ].sort();
  const reasons: string[] = [];
  if (alertingFeatures.length >= cfg.rule.minFeatures)
    reasons.push(
      `${alertingFeatures.length} feature(s) alert over all rows (>= ${cfg.rule.minFeatures}): ${alertingFeatures.join(", ")}`,
    );
  if (alertingSegments.length >= cfg.rule.minSegments)
    reasons.push(
      `${alertingSegments.length} segment(s) alert (>= ${cfg.rule.minSegments}): ${alertingSegments
        .map((s) => `${s.segment} [${s.features.join(", ")}]`)
        .join("; ")}`,
    );
  for (const c of alerts)
    if (c.newCategories !== undefined && c.newCategories.length > 0)
      reasons.push(`${c.feature}: new value(s) not in the reference: ${c.newCategories.join(", ")}`);
  if (keyFeatureAlerts.length > 0) reasons.push(`key feature(s) alert: ${keyFeatureAlerts.join(", ")}`);
  return {
    drift: reasons.length > 0,
    reasons,
    alertingFeatures,
    alertingSegments,
    keyFeatureAlerts,
    testsRun: tested.length,
    correction: cfg.test.correction,
    alpha: cfg.test.alpha,
  };
}
