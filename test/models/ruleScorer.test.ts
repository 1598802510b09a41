import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { explanationTotal } from "../../models/explanation.ts";
import {
  bandDecayWeights,
  parseRuleConfig,
  RULE_FEATURE_COLUMNS,
  RULE_SIGNALS,
  type RuleConfig,
  type RuleFeatureColumns,
  type RuleFeatureRow,
  ruleScoreAt,
  ruleScoreOnlyAt,
  type StoredRuleExplanation,
  scoreRuleColumns,
  scoreRuleRow,
  storedRuleRow,
} from "../../models/ruleScorer.ts";

const here = dirname(fileURLToPath(import.meta.url));
const DEFAULT = parseRuleConfig(
  parseYaml(readFileSync(join(here, "../../config/rule-weights.yaml"), "utf8")),
  "config/rule-weights.yaml",
);

/** The same counts in all three windows: all evidence is in the 7-day band. */
function recentOnly(f: Record<string, number | null>): RuleFeatureRow {
  const row: Record<string, number | null> = {};
  for (const [k, v] of Object.entries(f)) for (const w of ["7d", "30d", "90d"]) row[`${k}_${w}`] = v;
  return row as RuleFeatureRow;
}

const config = (
  over: Partial<RuleConfig> = {},
  weights: Partial<RuleConfig["weights"]> = {},
): RuleConfig => ({
  ...DEFAULT,
  ...over,
  weights: { ...DEFAULT.weights, ...weights },
});

describe("bandDecayWeights", () => {
  it("is the mean of 2^(-t/h) over each band (h = 14 d, hand-computed)", () => {
    const w = bandDecayWeights(14);
    // 14 / (ln 2 · 7) · (1 - 2^-0.5), etc.
    expect(w[0]).toBeCloseTo(0.8451111885843478, 14);
    expect(w[1]).toBeCloseTo(0.42211137462532344, 14);
    expect(w[2]).toBeCloseTo(0.0723151418125409, 14);
  });

  it("property: older bands always weigh less, and a longer half-life flattens the decay", () => {
    fc.assert(
      fc.property(fc.double({ min: 0.1, max: 1000, noNaN: true }), (h) => {
        const w = bandDecayWeights(h);
        expect(w[0]).toBeGreaterThan(w[1] as number);
        expect(w[1]).toBeGreaterThan(w[2] as number);
        expect(w[0]).toBeLessThanOrEqual(1);
        expect(bandDecayWeights(h * 2)[2]).toBeGreaterThan(w[2] as number);
      }),
    );
  });
});

describe("scoreRuleRow known answers", () => {
  const omega0 = (14 / (Math.LN2 * 7)) * (1 - 2 ** -0.5);

  it("accuracy + hints + recency, evidence only in the 7-day band", () => {
    const row = {
      ...recentOnly({
        attempts: 4,
        correct: 3,
        hint_usage_rate: 0.5,
        practice_attempts: 0,
        videos: 0,
        assignments: 0,
      }),
      trend_slope_30d: 0.01, // ignored: 4 attempts < trend_min_attempts = 5
      days_since_last_activity: 0,
    };
    const { score, explanation } = scoreRuleRow(row, DEFAULT);
    // present: accuracy x=0.75 (w .35), recency x=1 (w .15), hint_usage x=0.5/2=0.25 (w -.1)
    // W+ = .5 -> a = .7, .3, -.2; n = 4 ω0, λ = n / (n + 5)
    const lambda = (4 * omega0) / (4 * omega0 + 5);
    const acc = lambda * 0.7 * (0.75 - 0.5);
    const rec = lambda * 0.3 * (1 - 0.5);
    const hint = lambda * -0.2 * 0.25;
    expect(score).toBeCloseTo(0.5 + acc + rec + hint, 14); // = 0.5 + 0.275 λ
    expect(score).toBeCloseTo(0.5 + 0.275 * lambda, 14);
    expect(explanation.base).toBe(0.5);
    expect(explanation.factors.map((f) => f.name)).toEqual(["accuracy", "recency", "hint_usage"]);
    expect(explanation.factors[0]?.value).toBe(0.75);
    expect(explanation.factors[0]?.contribution).toBeCloseTo(acc, 15);
    expect(explanation.factors[2]?.contribution).toBeCloseTo(hint, 15);
    expect(explanation.factors[2]?.value).toBe(0.5); // hints per attempt, natural unit
    expect(explanation.rest).toBe(0);
  });

  it("a missing signal drops out and the remaining weights are renormalized", () => {
    // only assignments (2 at 80 %) and recency (30 days = one inactivity half-life -> x = 0.5)
    const row = {
      ...recentOnly({
        attempts: 0,
        correct: 0,
        practice_attempts: 0,
        videos: 0,
        assignments: 2,
        assignment_score_pct: 80,
      }),
      days_since_last_activity: 30,
    };
    const { score, explanation } = scoreRuleRow(row, DEFAULT);
    const lambda = (2 * omega0) / (2 * omega0 + 5);
    // W+ = .2 + .15 = .35; recency contributes λ (.15/.35)(0.5 - 0.5) = 0
    expect(score).toBeCloseTo(0.5 + lambda * (0.2 / 0.35) * (0.8 - 0.5), 14);
    expect(explanation.factors.find((f) => f.name === "recency")?.contribution).toBe(0);
  });

  it("trend maps slope 0 to 0.5 and trend_slope_full to 1", () => {
    const base = recentOnly({
      attempts: 10,
      correct: 5,
      hint_usage_rate: 0,
      practice_attempts: 0,
      videos: 0,
      assignments: 0,
    });
    const cfg = config({}, { accuracy: 0, hint_usage: 0, recency: 0, trend: 1 });
    const flat = scoreRuleRow({ ...base, trend_slope_30d: 0, days_since_last_activity: 1 }, cfg);
    expect(flat.score).toBe(0.5);
    const up = scoreRuleRow({ ...base, trend_slope_30d: 0.0333, days_since_last_activity: 1 }, cfg);
    const lambda = (10 * omega0) / (10 * omega0 + 5);
    expect(up.score).toBeCloseTo(0.5 + lambda * 0.5, 14);
  });

  it("clamps at 0 and records the clamp as a factor so the explanation still sums", () => {
    const cfg = config(
      { shrinkageK: 0 },
      {
        accuracy: 0.1,
        hint_usage: -1,
        recency: 0,
        trend: 0,
        assignment_score: 0,
        practice_success: 0,
        video_completion: 0,
      },
    );
    const row = {
      ...recentOnly({ attempts: 10, correct: 0, hint_usage_rate: 4 }),
      days_since_last_activity: 0,
    };
    const { score, explanation } = scoreRuleRow(row, cfg);
    // λ = 1; accuracy: 1 · (0 - .5) = -.5; hints: (-1/.1) · 1 = -10; raw = .5 - 10.5 = -10
    expect(score).toBe(0);
    const clamp = explanation.factors.find((f) => f.name === "clamp");
    expect(clamp?.value).toBeCloseTo(-10, 12);
    expect(clamp?.contribution).toBeCloseTo(10, 12);
    expect(Math.abs(explanationTotal(explanation) - score)).toBeLessThanOrEqual(1e-12);
  });

  it("with no evidence at all the score is the prior and nothing is explained", () => {
    const r = scoreRuleRow({}, config({}, { recency: 0.15 }));
    expect(r.score).toBe(0.5);
    expect(r.explanation.factors).toEqual([]);
  });
});

describe("decay: older evidence counts less", () => {
  const sameEvidenceIn = (band: 0 | 1 | 2): RuleFeatureRow => {
    const row: Record<string, number> = { days_since_last_activity: 0 };
    ["7d", "30d", "90d"].forEach((w, i) => {
      const n = i >= band ? 10 : 0;
      Object.assign(row, { [`attempts_${w}`]: n, [`correct_${w}`]: n, [`hint_usage_rate_${w}`]: 0 });
    });
    return row;
  };

  it("the same perfect answers pull the score up less the older they are", () => {
    const s = [0, 1, 2].map((b) => scoreRuleRow(sameEvidenceIn(b as 0 | 1 | 2), DEFAULT).score);
    expect(s[0]).toBeGreaterThan(s[1] as number);
    expect(s[1]).toBeGreaterThan(s[2] as number);
    expect(s[2]).toBeGreaterThan(0.5);
  });

  it("recent successes after old failures score higher than the reverse", () => {
    // 10 attempts in the last 7 days and 10 more 7-30 days ago
    const recentGood = {
      ...sameEvidenceIn(0),
      attempts_30d: 20,
      attempts_90d: 20,
      correct_30d: 10,
      correct_90d: 10,
    };
    const oldGood = { ...recentGood, correct_7d: 0 };
    expect(scoreRuleRow(recentGood, DEFAULT).score).toBeGreaterThan(scoreRuleRow(oldGood, DEFAULT).score);
  });
});

/** Random nested-window feature rows (counts grow with the window). */
const featureRow: fc.Arbitrary<RuleFeatureRow> = fc
  .record({
    counts: fc.array(fc.array(fc.integer({ min: 0, max: 40 }), { minLength: 5, maxLength: 5 }), {
      minLength: 3,
      maxLength: 3,
    }),
    rates: fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { minLength: 15, maxLength: 15 }),
    hints: fc.array(fc.double({ min: 0, max: 6, noNaN: true }), { minLength: 3, maxLength: 3 }),
    slope: fc.option(fc.double({ min: -0.2, max: 0.2, noNaN: true })),
    days: fc.double({ min: 0, max: 400, noNaN: true }),
  })
  .map(({ counts, rates, hints, slope, days }) => {
    const row: Record<string, number | null> = { trend_slope_30d: slope, days_since_last_activity: days };
    const cum = [0, 0, 0, 0, 0];
    ["7d", "30d", "90d"].forEach((w, i) => {
      counts[i]?.forEach((c, j) => {
        cum[j] = (cum[j] as number) + c;
      });
      const [attempts, practice, videos, assignments] = cum as [number, number, number, number, number];
      const r = (k: number) => rates[i * 5 + k] as number;
      Object.assign(row, {
        [`attempts_${w}`]: attempts,
        [`correct_${w}`]: Math.round(attempts * r(0)),
        [`hint_usage_rate_${w}`]: attempts > 0 ? hints[i] : null,
        [`practice_attempts_${w}`]: practice,
        [`practice_success_rate_${w}`]: practice > 0 ? r(1) : null,
        [`videos_${w}`]: videos,
        [`video_watch_pct_${w}`]: videos > 0 ? 100 * r(2) : null,
        [`assignments_${w}`]: assignments,
        [`assignment_score_pct_${w}`]: assignments > 0 ? 100 * r(3) : null,
      });
    });
    return row as RuleFeatureRow;
  });

const ruleConfig: fc.Arbitrary<RuleConfig> = fc
  .record({
    prior: fc.double({ min: 0, max: 1, noNaN: true }),
    shrinkageK: fc.double({ min: 0, max: 50, noNaN: true }),
    half: fc.double({ min: 0.5, max: 200, noNaN: true }),
    inact: fc.double({ min: 0.5, max: 200, noNaN: true }),
    w: fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { minLength: 7, maxLength: 7 }),
    hintPenalty: fc.double({ min: 0, max: 3, noNaN: true }),
  })
  .map(({ prior, shrinkageK, half, inact, w, hintPenalty }) => {
    const weights = {} as RuleConfig["weights"];
    RULE_SIGNALS.forEach((s, i) => {
      weights[s] = s === "hint_usage" ? -hintPenalty : (w[i] as number) + 0.01;
    });
    return {
      ...DEFAULT,
      prior,
      shrinkageK,
      evidenceHalfLifeDays: half,
      inactivityHalfLifeDays: inact,
      weights,
    };
  });

describe("scorer invariants (property)", () => {
  it("score in [0,1], explanation sums to the score within 1e-12, at most 3 factors", () => {
    fc.assert(
      fc.property(featureRow, ruleConfig, (row, cfg) => {
        const { score, explanation } = scoreRuleRow(row, cfg);
        expect(score).toBeGreaterThanOrEqual(0);
        expect(score).toBeLessThanOrEqual(1);
        expect(explanation.score).toBe(score);
        expect(explanation.factors.length).toBeLessThanOrEqual(3);
        expect(Math.abs(explanationTotal(explanation) - score)).toBeLessThanOrEqual(1e-12);
      }),
      { numRuns: 500 },
    );
  });

  it("the columnar batch gives exactly the single-row results", () => {
    fc.assert(
      fc.property(fc.array(featureRow, { minLength: 1, maxLength: 20 }), ruleConfig, (rows, cfg) => {
        const cols = {} as RuleFeatureColumns;
        for (const c of RULE_FEATURE_COLUMNS) cols[c] = Float64Array.from(rows, (r) => r[c] ?? Number.NaN);
        const seen: string[] = [];
        const scores = scoreRuleColumns(cols, rows.length, cfg, (_i, r) =>
          seen.push(JSON.stringify(r.explanation)),
        );
        rows.forEach((row, i) => {
          const one = scoreRuleRow(row, cfg);
          expect(scores[i]).toBe(one.score);
          expect(seen[i]).toBe(JSON.stringify(one.explanation));
        });
      }),
      { numRuns: 100 },
    );
  });
});

/** A features row as of `asOfUs` whose last activity was `ageUs` before it (days as features/windows.ts computes them). */
const DAY_US = 86_400e6;
const timed = fc.record({
  row: featureRow,
  // whole milliseconds, as a Date carries them; ages up to 400 days in microseconds
  asOfMs: fc.integer({ min: 1_600_000_000_000, max: 1_900_000_000_000 }),
  ageUs: fc.integer({ min: 0, max: 400 * 86_400_000_000 }),
  laterUs: fc.integer({ min: 0, max: 200 * 86_400_000_000 }),
});

describe("stored form and read-time recency (issue 17 item 3)", () => {
  it("property: applied at the snapshot's own time, the stored form is bit for bit scoreRuleRow", () => {
    fc.assert(
      fc.property(timed, ruleConfig, ({ row, asOfMs, ageUs }, cfg) => {
        const asOfUs = asOfMs * 1000;
        const lastUs = asOfUs - ageUs;
        const withDays = { ...row, days_since_last_activity: (asOfUs - lastUs) / DAY_US };
        const stored = storedRuleRow(withDays, lastUs, cfg);
        const atRead = ruleScoreAt(stored.explanation as StoredRuleExplanation, asOfUs);
        const direct = scoreRuleRow(withDays, cfg);
        expect(atRead.score).toBe(direct.score);
        expect(JSON.stringify(atRead.explanation)).toBe(JSON.stringify(direct.explanation));
      }),
      { numRuns: 1000 },
    );
  });

  it("property: as of a later time it equals scoring the same evidence with the later days since last activity", () => {
    fc.assert(
      fc.property(timed, ruleConfig, ({ row, asOfMs, ageUs, laterUs }, cfg) => {
        const asOfUs = asOfMs * 1000;
        const lastUs = asOfUs - ageUs;
        const stored = storedRuleRow({ ...row, days_since_last_activity: ageUs / DAY_US }, lastUs, cfg);
        const at = asOfUs + laterUs;
        const later = scoreRuleRow({ ...row, days_since_last_activity: (at - lastUs) / DAY_US }, cfg);
        const atRead = ruleScoreAt(stored.explanation as StoredRuleExplanation, at);
        expect(atRead.score).toBe(later.score);
        expect(JSON.stringify(atRead.explanation)).toBe(JSON.stringify(later.explanation));
        expect(atRead.explanation.factors.length).toBeLessThanOrEqual(3);
        // The score-only path (readers listing scores) gives the same bits from the stored JSON.
        const e = JSON.parse(JSON.stringify(stored.explanation)) as StoredRuleExplanation;
        expect(ruleScoreOnlyAt(e.recency, stored.score, at)).toBe(later.score);
      }),
      { numRuns: 500 },
    );
  });

  it("the stored score leaves recency out, keeps every other factor, and says what read time needs", () => {
    const row = recentOnly({ attempts: 10, correct: 8, hint_usage_rate: 0 });
    const lastUs = Date.UTC(2024, 5, 1) * 1000;
    const asOfUs = lastUs + 3 * DAY_US;
    const stored = storedRuleRow({ ...row, days_since_last_activity: 3 }, lastUs, DEFAULT);
    const e = stored.explanation as StoredRuleExplanation;
    expect(e.factors.map((f) => f.name).sort()).toEqual(["accuracy", "hint_usage"]);
    expect(e.recency?.lastActivityUs).toBe(lastUs);
    expect(e.recency?.halfLifeDays).toBe(DEFAULT.inactivityHalfLifeDays);
    // read time adds recency: 3 days after the last activity it is above the prior, so the score rises
    const now = ruleScoreAt(e, asOfUs);
    expect(now.explanation.factors.map((f) => f.name)).toContain("recency");
    const recency = now.explanation.factors.find((f) => f.name === "recency");
    expect(recency?.value).toBe(3);
    // a year without activity: recency pulls the score down, and keeps falling with time
    const yearLater = ruleScoreAt(e, asOfUs + 365 * DAY_US).score;
    const twoYears = ruleScoreAt(e, asOfUs + 730 * DAY_US).score;
    expect(yearLater).toBeLessThan(now.score);
    expect(twoYears).toBeLessThanOrEqual(yearLater);
  });
});

describe("parseRuleConfig", () => {
  const doc = () =>
    parseYaml(readFileSync(join(here, "../../config/rule-weights.yaml"), "utf8")) as Record<
      string,
      Record<string, unknown>
    >;

  it("names the bad key", () => {
    const typo = doc();
    (typo.weights as Record<string, unknown>).acuracy = 0.3;
    expect(() => parseRuleConfig(typo, "w.yaml")).toThrow('w.yaml: weights: unknown key "acuracy"');
    const bad = doc();
    (bad as Record<string, unknown>).prior = 1.5;
    expect(() => parseRuleConfig(bad, "w.yaml")).toThrow(
      "w.yaml: prior must be a finite number >= 0 and <= 1 (got 1.5)",
    );
    const missing = doc();
    delete (missing.normalization as Record<string, unknown>).hint_rate_max;
    expect(() => parseRuleConfig(missing, "w.yaml")).toThrow(
      "w.yaml: normalization.hint_rate_max is missing",
    );
    const zero = doc();
    (zero as Record<string, unknown>).evidence_half_life_days = 0;
    expect(() => parseRuleConfig(zero, "w.yaml")).toThrow(
      "evidence_half_life_days must be a finite number > 0",
    );
    const text = doc();
    (text.weights as Record<string, unknown>).trend = "high";
    expect(() => parseRuleConfig(text, "w.yaml")).toThrow(
      'w.yaml: weights.trend must be a finite number (got "high")',
    );
  });
});

describe("golden explanation", () => {
  it("matches test/golden/rule-explanation.json (UPDATE_GOLDEN=1 to rewrite after an intended change)", () => {
    const row: RuleFeatureRow = {
      attempts_7d: 6,
      correct_7d: 5,
      hint_usage_rate_7d: 0.5,
      practice_attempts_7d: 10,
      practice_success_rate_7d: 0.8,
      videos_7d: 1,
      video_watch_pct_7d: 90,
      assignments_7d: 0,
      assignment_score_pct_7d: null,
      attempts_30d: 14,
      correct_30d: 9,
      hint_usage_rate_30d: 0.75,
      practice_attempts_30d: 15,
      practice_success_rate_30d: 0.6,
      videos_30d: 2,
      video_watch_pct_30d: 70,
      assignments_30d: 1,
      assignment_score_pct_30d: 85,
      attempts_90d: 20,
      correct_90d: 11,
      hint_usage_rate_90d: 1,
      practice_attempts_90d: 15,
      practice_success_rate_90d: 0.6,
      videos_90d: 2,
      video_watch_pct_90d: 70,
      assignments_90d: 2,
      assignment_score_pct_90d: 75,
      trend_slope_30d: 0.02,
      days_since_last_activity: 1.5,
    };
    const got = `${JSON.stringify(scoreRuleRow(row, DEFAULT).explanation, null, 2)}\n`;
    const path = join(here, "../golden/rule-explanation.json");
    if (process.env.UPDATE_GOLDEN === "1") writeFileSync(path, got);
    expect(got).toBe(readFileSync(path, "utf8"));
  });
});
