import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { explanationTotal } from "../../models/explanation.ts";
import {
  decayWeight,
  foldRuleEvents,
  mergeRuleStates,
  parseRuleConfig,
  priorRuleExplanation,
  RULE_SIGNALS,
  RULE_STATE_COLUMNS,
  type RuleConfig,
  type RuleEvent,
  type RuleState,
  type RuleStateColumns,
  ruleBlockRange,
  ruleScoreAt,
  ruleScoreOnlyAt,
  type StoredRuleExplanation,
  type StoredRuleState,
  scoreRuleState,
  storedRuleRange,
  storedRuleRow,
} from "../../models/ruleScorer.ts";
import { withExplanationTexts } from "../../serving/storedExplanations.ts";
import {
  ruleBlockValues,
  takeExplanationNumbers,
  type WithExplanationNumberColumns,
} from "../../storage/explanationNumbers.ts";
import { RULE_BLOCK_COLUMNS, RULE_FACTOR_SIGNALS } from "../../storage/schema.ts";

const here = dirname(fileURLToPath(import.meta.url));
const DEFAULT = parseRuleConfig(
  parseYaml(readFileSync(join(here, "../../config/rule-weights.yaml"), "utf8")),
  "config/rule-weights.yaml",
);
const DAY_US = 86_400e6;
/** 2024-03-01T00:00:00Z in microseconds: day 0 of the hand-computed logs. */
const T0 = Date.UTC(2024, 2, 1) * 1000;
const day = (d: number): number => T0 + d * DAY_US;

const config = (
  over: Partial<RuleConfig> = {},
  weights: Partial<RuleConfig["weights"]> = {},
): RuleConfig => ({
  ...DEFAULT,
  ...over,
  weights: { ...DEFAULT.weights, ...weights },
});

const quiz = (d: number, correct: boolean, hints = 0): RuleEvent => ({
  tUs: day(d),
  type: "quiz_attempt",
  isCorrect: correct,
  hintsUsed: hints,
});

function state(events: RuleEvent[], cfg = DEFAULT, refUs?: number): RuleState {
  const s = foldRuleEvents(events, cfg.evidenceHalfLifeDays, refUs);
  if (s === null) throw new Error("no events");
  return s;
}

const contribution = (e: { factors: { name: string; contribution: number }[] }, name: string) =>
  e.factors.find((f) => f.name === name)?.contribution;

describe("decayWeight and foldRuleEvents known answers", () => {
  it("an event 14 days (one half-life) before the reference weighs 0.5, 28 days 0.25", () => {
    expect(decayWeight(day(0), day(14), 14)).toBe(0.5);
    expect(decayWeight(day(0), day(28), 14)).toBe(0.25);
    expect(decayWeight(day(3), day(3), 14)).toBe(1);
  });

  it("folds the decayed sums at the last event (hand-computed)", () => {
    // Day 0: a correct answer with 2 hints (weight 2^(-14/14) = 0.5 at day 14); day 14: a wrong answer
    // (weight 1), an assignment at 80 %, a video at 60 %, practice 3 of 4.
    const s = state([
      quiz(0, true, 2),
      quiz(14, false),
      { tUs: day(14), type: "assignment", scorePct: 80 },
      { tUs: day(14), type: "video", watchPct: 60 },
      { tUs: day(14), type: "practice", attempts: 4, correctCount: 3 },
      { tUs: day(10), type: "chatbot" },
    ]);
    expect(s.ref_us).toBe(day(14));
    expect(s.last_us).toBe(day(14));
    expect(s.q_n).toBe(1.5); // 0.5 + 1
    expect(s.q_correct).toBe(0.5);
    expect(s.q_hints).toBe(1); // 0.5 * 2
    // x = (t - L) / 1 day: -14 and 0. Sx = 0.5 * -14 = -7, Sxx = 0.5 * 196 = 98, Sxy = 0.5 * -14 * 1 = -7.
    expect(s.q_sx).toBe(-7);
    expect(s.q_sxx).toBe(98);
    expect(s.q_sxy).toBe(-7);
    expect([s.a_n, s.a_pct, s.v_n, s.v_pct, s.p_n, s.p_correct]).toEqual([1, 80, 1, 60, 4, 3]);
  });
});

describe("scoreRuleState known answers (hand-computed)", () => {
  // Day 0: correct, 2 hints; day 14: wrong, no hints; day 14: assignment 80 %. L = day 14.
  // At L: quiz n = 1.5, correct 0.5 -> accuracy 1/3; hints 1 / 1.5 = 2/3 per attempt -> x = (2/3) / 2 = 1/3;
  // assignment 80 -> x = 0.8; quiz n 1.5 < 5 -> no trend. Present positive weights: accuracy 0.35,
  // assignment 0.2, recency 0.15 -> W+ = 0.7; a = 0.5, 2/7, 3/14; hint_usage a = -0.1 / 0.7 = -1/7.
  // Parts: accuracy 0.5 (1/3 - 0.5) = -1/12; assignment (2/7)(0.8 - 0.5) = 6/70; hint_usage -(1/7)(1/3) = -1/21.
  // Evidence n(L) = 1.5 quiz + 1 assignment = 2.5.
  const events = [quiz(0, true, 2), quiz(14, false), { tUs: day(14), type: "assignment", scorePct: 80 }];
  const parts = -1 / 12 + 6 / 70 - 1 / 21; // = -19/420

  it("as of the last event: lambda = 2.5 / 7.5 = 1/3, recency x = 1, score = 0.5 + (1/3)(-19/420 + 3/28) = 0.5 + 13/630", () => {
    const { score, explanation } = scoreRuleState(state(events), day(14), DEFAULT);
    expect(score).toBeCloseTo(0.5 + 13 / 630, 14);
    expect(contribution(explanation, "recency")).toBeCloseTo((1 / 3) * (3 / 14) * 0.5, 14);
    expect(contribution(explanation, "assignment_score")).toBeCloseTo((1 / 3) * (6 / 70), 14);
    expect(contribution(explanation, "accuracy")).toBeCloseTo((1 / 3) * (-1 / 12), 14);
    expect(explanation.rest).toBeCloseTo((1 / 3) * (-1 / 21), 14); // hint_usage, the 4th factor
    expect(explanationTotal(explanation)).toBeCloseTo(score, 14);
  });

  it("14 days later with no event: n = 2.5 * 0.5 = 1.25, lambda = 1.25 / 6.25 = 0.2, recency x = 2^(-14/30)", () => {
    const { score, explanation } = scoreRuleState(state(events), day(28), DEFAULT);
    const rec = (3 / 14) * (2 ** (-14 / 30) - 0.5);
    expect(score).toBeCloseTo(0.5 + 0.2 * (parts + rec), 14);
    // every ratio is the same: the accuracy factor's value is still 1/3, its contribution 0.2 x its part
    const acc = explanation.factors.find((f) => f.name === "accuracy");
    expect(acc?.value).toBeCloseTo(1 / 3, 14);
    expect(acc?.contribution).toBeCloseTo(0.2 * (-1 / 12), 14);
    expect(contribution(explanation, "recency")).toBeCloseTo(0.2 * rec, 14);
    // The same log scored directly as of day 28 (weights 0.25 and 0.5): quiz n 0.75, correct 0.25, n = 1.25.
    const direct = state(events, DEFAULT, day(28));
    expect(direct.q_n).toBe(0.75);
    expect(scoreRuleState(direct, day(28), DEFAULT).score).toBeCloseTo(score, 14);
  });

  it("a year later the evidence has faded (n = 2.5 * 2^(-351/14) ~ 7e-8) and the score is the prior to 1e-7", () => {
    const { score } = scoreRuleState(state(events), day(365), DEFAULT);
    expect(Math.abs(score - 0.5)).toBeLessThan(1e-7);
    expect(score).not.toBe(0.5);
  });

  it("trend: the weighted least-squares slope of correctness on days (h huge: plain OLS, 9/35 per day)", () => {
    // Days 0..5, wrong, wrong, wrong, right, right, right: x centred -2.5..2.5, Sxx = 17.5,
    // Sum (x - mean) y = 0.5 + 1.5 + 2.5 = 4.5, slope = 4.5 / 17.5 = 9/35.
    const cfg = config({ evidenceHalfLifeDays: 1e12 });
    const log = [0, 1, 2, 3, 4, 5].map((d) => quiz(d, d >= 3));
    const trend = storedRuleRow(state(log, cfg), day(5), cfg).explanation as StoredRuleExplanation;
    const f = trend.rule?.factors.find((x) => x.name === "trend");
    expect(f?.value).toBeCloseTo(9 / 35, 9);
    // x = clamp(0.5 + (9/35) / (2 * 0.0333)) = 1; part = a_trend (1 - 0.5), a_trend = 0.1 / 0.6
    expect(f?.part).toBeCloseTo((0.1 / 0.6) * 0.5, 9);
  });

  it("trend: no slope from one session's answers minutes apart (variance < 0.25 day^2), nor below trend_min_attempts", () => {
    const session = [0, 1, 2, 3, 4, 5].map((m) => ({ ...quiz(0, m >= 3), tUs: day(0) + m * 60e6 }));
    const e1 = storedRuleRow(state(session), day(1), DEFAULT).explanation as StoredRuleExplanation;
    expect(e1.rule?.factors.some((f) => f.name === "trend")).toBe(false);
    // Four attempts over four days (decayed count < 4 < 5): no trend; with trend_min_attempts 3 there is one.
    const four = [0, 1, 2, 3].map((d) => quiz(d, d >= 2));
    const e2 = storedRuleRow(state(four), day(3), DEFAULT).explanation as StoredRuleExplanation;
    expect(e2.rule?.factors.some((f) => f.name === "trend")).toBe(false);
    const cfg = config({ trendMinAttempts: 3 });
    const e3 = storedRuleRow(state(four, cfg), day(3), cfg).explanation as StoredRuleExplanation;
    expect(e3.rule?.factors.some((f) => f.name === "trend")).toBe(true);
  });

  it("a missing signal drops out and the remaining weights are renormalized (practice only + recency)", () => {
    // Practice 8 of 10 at day 0, scored at day 0: present accuracy? no quiz. Positive: practice 0.15,
    // recency 0.15 -> a = 0.5 each. lambda = 10 / 15. raw = 0.5 + (2/3)(0.5 (0.8 - 0.5) + 0.5 (1 - 0.5)) = 0.5 + (2/3)(0.4).
    const s = state([{ tUs: day(0), type: "practice", attempts: 10, correctCount: 8 }]);
    const { score, explanation } = scoreRuleState(s, day(0), DEFAULT);
    expect(score).toBeCloseTo(0.5 + (2 / 3) * 0.4, 14);
    expect(explanation.factors.map((f) => f.name).sort()).toEqual(["practice_success", "recency"]);
  });

  it("clamps at 0 and records the clamp as a factor so the explanation still sums", () => {
    const cfg = config({ prior: 0.05, shrinkageK: 0 }, { hint_usage: -5 });
    const s = state([quiz(0, false, 10), quiz(0, false, 10)]);
    const { score, explanation } = scoreRuleState(s, day(0), cfg);
    expect(score).toBe(0);
    const clamp = explanation.factors.find((f) => f.name === "clamp");
    expect(clamp).toBeDefined();
    expect(explanationTotal(explanation)).toBeCloseTo(0, 12);
  });

  it("with only chatbot events there is no evidence: lambda = 0 and the score is the prior at every time", () => {
    const s = state([{ tUs: day(0), type: "chatbot" }]);
    expect(scoreRuleState(s, day(0), DEFAULT).score).toBe(0.5);
    expect(scoreRuleState(s, day(40), DEFAULT).score).toBe(0.5);
  });
});

describe("decay: older evidence counts less", () => {
  it("the same perfect answers pull the score up less the older they are", () => {
    const log = [0, 0.5, 1, 1.5, 2].map((d) => quiz(d, true));
    const s = state(log);
    const at = [2, 10, 30, 90].map((d) => scoreRuleState(s, day(d), DEFAULT).score);
    for (let i = 1; i < at.length; i++) expect(at[i]).toBeLessThan(at[i - 1] as number);
    expect(at[3]).toBeGreaterThan(0.5);
  });

  it("recent successes after old failures score higher than the reverse", () => {
    const failThenPass = [quiz(0, false), quiz(0.5, false), quiz(20, true), quiz(20.5, true)];
    const passThenFail = [quiz(0, true), quiz(0.5, true), quiz(20, false), quiz(20.5, false)];
    const a = scoreRuleState(state(failThenPass), day(21), DEFAULT).score;
    const b = scoreRuleState(state(passThenFail), day(21), DEFAULT).score;
    expect(a).toBeGreaterThan(b);
  });
});

/** Random events of one pair within 200 days of day 0, at whole microseconds. */
const eventArb: fc.Arbitrary<RuleEvent> = fc
  .record({
    at: fc.integer({ min: 0, max: 200 * 86_400 }),
    type: fc.constantFrom("quiz_attempt", "quiz_attempt", "practice", "video", "assignment", "chatbot"),
    isCorrect: fc.option(fc.boolean(), { freq: 8 }),
    hints: fc.option(fc.integer({ min: 0, max: 5 }), { freq: 8 }),
    attempts: fc.option(fc.integer({ min: 0, max: 12 }), { freq: 8 }),
    correct: fc.integer({ min: 0, max: 12 }),
    pct: fc.option(fc.double({ min: 0, max: 100, noNaN: true }), { freq: 8 }),
  })
  .map((r) => ({
    tUs: T0 + r.at * 1e6,
    type: r.type,
    isCorrect: r.isCorrect,
    hintsUsed: r.hints,
    attempts: r.attempts,
    correctCount: r.attempts === null ? null : Math.min(r.correct, r.attempts),
    watchPct: r.pct,
    scorePct: r.pct,
  }));
const logArb = fc.array(eventArb, { minLength: 1, maxLength: 40 });
/** A signal weight: 0 (left out) or in [min, max] (no subnormal ratios). */
const weightArb = (min: number, max: number) =>
  fc.oneof(fc.constant(0), fc.double({ min, max, noNaN: true }));
// Half-lives from 2 days: over the 600 days of a log plus a read time, weights stay above 2^-300 (a weight
// that underflows to 0 would drop a signal in one form and not the other; at h = 14 that takes 41 years).
const cfgArb: fc.Arbitrary<RuleConfig> = fc.record({
  prior: fc.double({ min: 0, max: 1, noNaN: true }),
  shrinkageK: fc.oneof(fc.constant(0), fc.double({ min: 0.01, max: 20, noNaN: true })),
  evidenceHalfLifeDays: fc.double({ min: 2, max: 120, noNaN: true }),
  inactivityHalfLifeDays: fc.double({ min: 0.5, max: 120, noNaN: true }),
  weights: fc.record({
    accuracy: fc.double({ min: 0.01, max: 1, noNaN: true }),
    assignment_score: weightArb(0.01, 1),
    practice_success: weightArb(0.01, 1),
    video_completion: weightArb(0.01, 1),
    hint_usage: weightArb(-1, -0.01),
    trend: weightArb(0.01, 1),
    recency: fc.oneof(weightArb(0.01, 1), weightArb(-0.5, -0.01)),
  }),
  hintRateMax: fc.double({ min: 0.5, max: 5, noNaN: true }),
  trendSlopeFull: fc.double({ min: 0.01, max: 0.2, noNaN: true }),
  trendMinAttempts: fc.integer({ min: 0, max: 8 }),
});
const laterArb = fc.integer({ min: 0, max: 400 * 86_400 }).map((s) => s * 1e6);

/** Each column within 1e-9 of the larger magnitude (x-sums can cancel, hence the absolute floor). */
function expectStatesClose(a: RuleState, b: RuleState): void {
  for (const c of RULE_STATE_COLUMNS) {
    const scale = Math.max(1, Math.abs(a[c]), Math.abs(b[c]));
    expect(Math.abs(a[c] - b[c]), c).toBeLessThanOrEqual(1e-9 * scale);
  }
}

describe("scorer invariants (property)", () => {
  it("score in [0,1], explanation sums to the score within 1e-12, at most 3 factors, at any time after L", () => {
    fc.assert(
      fc.property(logArb, cfgArb, laterArb, (log, cfg, later) => {
        const s = state(log, cfg);
        const { score, explanation } = scoreRuleState(s, s.last_us + later, cfg);
        expect(score).toBeGreaterThanOrEqual(0);
        expect(score).toBeLessThanOrEqual(1);
        expect(explanation.factors.length).toBeLessThanOrEqual(3);
        expect(Math.abs(explanationTotal(explanation) - score)).toBeLessThan(1e-12);
      }),
    );
  });

  it("merge(fold a, fold b) equals fold(a ++ b) (1e-9 relative), whatever the order of a's and b's times", () => {
    fc.assert(
      fc.property(logArb, logArb, cfgArb, (a, b, cfg) => {
        const h = cfg.evidenceHalfLifeDays;
        const merged = mergeRuleStates(foldRuleEvents(a, h), foldRuleEvents(b, h), h);
        const whole = foldRuleEvents([...a, ...b], h);
        if (merged === null || whole === null) throw new Error("non-empty logs");
        expectStatesClose(merged, whole);
        expect(merged.ref_us).toBe(whole.ref_us);
        expect(merged.last_us).toBe(whole.last_us);
      }),
    );
  });

  it("the score as of T from the state at L equals scoring the log directly at T (1e-9)", () => {
    fc.assert(
      fc.property(logArb, cfgArb, laterArb, (log, cfg, later) => {
        const s = state(log, cfg);
        // The trend's presence is a threshold on the count and the spread: both forms compute them up to
        // rounding, so cases within rounding of a threshold may flip it and are left out.
        const mx = s.q_sx / s.q_n;
        fc.pre(Math.abs(s.q_sxx / s.q_n - mx * mx - 0.25) > 1e-6);
        fc.pre(Math.abs(s.q_n - cfg.trendMinAttempts) > 1e-9 * Math.max(1, s.q_n));
        const at = s.last_us + later;
        const fromL = scoreRuleState(s, at, cfg).score;
        const direct = scoreRuleState(state(log, cfg, at), at, cfg).score;
        expect(Math.abs(fromL - direct)).toBeLessThan(1e-9);
      }),
    );
  });

  it("the columnar batch gives exactly the single-state stored form", () => {
    fc.assert(
      fc.property(fc.array(logArb, { minLength: 1, maxLength: 8 }), cfgArb, laterArb, (logs, cfg, later) => {
        const states = logs.map((l) => state(l, cfg));
        const cols = {} as RuleStateColumns;
        for (const c of RULE_STATE_COLUMNS) cols[c] = Float64Array.from(states, (s) => s[c]);
        const at = T0 + 200 * DAY_US + later;
        const got: string[] = [];
        storedRuleRange(cols, at, 0, states.length, cfg, (_i, r) => got.push(JSON.stringify(r)));
        expect(got).toEqual(states.map((s) => JSON.stringify(storedRuleRow(s, at, cfg))));
      }),
    );
  });
});

describe("stored form and read time (issue 17 item 3)", () => {
  it("property: the stored form read as of any time is bit for bit the state scored then; the score-only path too", () => {
    fc.assert(
      fc.property(logArb, cfgArb, laterArb, laterArb, (log, cfg, runLater, readLater) => {
        const s = state(log, cfg);
        const runAt = s.last_us + runLater;
        const stored = storedRuleRow(s, runAt, cfg);
        // through JSON, as it is stored
        const e = JSON.parse(JSON.stringify(stored.explanation)) as StoredRuleExplanation;
        expect(ruleScoreAt(e, runAt).score).toBe(stored.score);
        const at = runAt + readLater;
        const direct = scoreRuleState(s, at, cfg);
        const read = ruleScoreAt(e, at);
        expect(read.score).toBe(direct.score);
        expect(JSON.stringify(read.explanation)).toBe(JSON.stringify(direct.explanation));
        expect(ruleScoreOnlyAt(e.rule, stored.score, at)).toBe(direct.score);
      }),
    );
  });

  it("stores the run's score and top 3 with the `rule` block last; the block holds what read time needs", () => {
    const events = [quiz(0, true, 2), quiz(14, false), { tUs: day(14), type: "assignment", scorePct: 80 }];
    const stored = storedRuleRow(state(events), day(15), DEFAULT);
    const e = stored.explanation as StoredRuleExplanation;
    expect(Object.keys(e).at(-1)).toBe("rule");
    expect(e.rule).toMatchObject({
      prior: 0.5,
      refUs: day(14),
      lastUs: day(14),
      evidence: 2.5,
      shrinkageK: 5,
      evidenceHalfLifeDays: 14,
      inactivityHalfLifeDays: 30,
      centered: true,
    });
    expect(e.rule?.recencyWeight).toBeCloseTo(3 / 14, 15);
    expect(e.rule?.partSum).toBeCloseTo(-19 / 420, 15);
    expect(e.rule?.factors.map((f) => f.name)).toEqual(["accuracy", "assignment_score", "hint_usage"]);
    expect(e.factors.length).toBe(3);
    expect(stored.score).toBe(scoreRuleState(state(events), day(15), DEFAULT).score);
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
    // Two weeks of a pair: quiz answers on days 0-13 (improving), practice, two videos, two assignments;
    // the stored form as of 1.5 days after the last event.
    const log: RuleEvent[] = [
      ...[0, 2, 4, 6, 8, 9, 10, 11, 12, 13].map((d, i) => quiz(d, i % 3 !== 0 || d > 9, d < 6 ? 2 : 0)),
      { tUs: day(3), type: "practice", attempts: 10, correctCount: 6 },
      { tUs: day(11), type: "practice", attempts: 5, correctCount: 4 },
      { tUs: day(5), type: "video", watchPct: 50 },
      { tUs: day(12), type: "video", watchPct: 90 },
      { tUs: day(1), type: "assignment", scorePct: 65 },
      { tUs: day(13), type: "assignment", scorePct: 85 },
    ];
    const stored = storedRuleRow(state(log), day(14.5), DEFAULT);
    const got = `${JSON.stringify(stored.explanation, null, 2)}\n`;
    const path = join(here, "../golden/rule-explanation.json");
    if (process.env.UPDATE_GOLDEN === "1") writeFileSync(path, got);
    expect(got).toBe(readFileSync(path, "utf8"));
  });
});

describe("the rule block stored as numbers, rendered on read (rule20)", () => {
  /** A block as the batch stores it: one row of RULE_BLOCK_COLUMNS and the row's as_of, as DuckDB returns them. */
  const asStoredRow = (block: StoredRuleState | null, asOfUs: number): WithExplanationNumberColumns => {
    const values = block === null ? RULE_BLOCK_COLUMNS.map(() => null) : ruleBlockValues(block);
    return { ...Object.fromEntries(RULE_BLOCK_COLUMNS.map((c, i) => [c, values[i]])), rule_as_of_us: asOfUs };
  };

  it("the factor columns are the scorer's signals but recency, in signal order", () => {
    expect([...RULE_FACTOR_SIGNALS, "recency"]).toEqual([...RULE_SIGNALS]);
  });

  it("property: the text rendered from the stored numbers is JSON.stringify of storedRuleRow's explanation, byte for byte; the score is its score", () => {
    fc.assert(
      fc.property(logArb, cfgArb, laterArb, (log, cfg, later) => {
        const s = state(log, cfg);
        const asOfUs = s.last_us + later;
        const before = storedRuleRow(s, asOfUs, cfg);
        const cols = Object.fromEntries(
          RULE_STATE_COLUMNS.map((c) => [c, Float64Array.of(s[c])]),
        ) as RuleStateColumns;
        let got: { score: number; block: StoredRuleState | null } | undefined;
        ruleBlockRange(cols, asOfUs, 0, 1, cfg, (_, score, block) => {
          got = { score, block };
        });
        if (got === undefined) throw new Error("ruleBlockRange scored no row");
        expect(got.score).toBe(before.score);
        const row = { explanation: "", mastery_score: got.score, ...asStoredRow(got.block, asOfUs) };
        if (got.block === null) {
          // No signal counts: the row keeps its (short) text, and has no numbers.
          expect(JSON.stringify(priorRuleExplanation(cfg))).toBe(JSON.stringify(before.explanation));
          expect(takeExplanationNumbers(row)).toBeNull();
          return;
        }
        const [rendered] = withExplanationTexts([row]);
        expect(rendered?.explanation).toBe(JSON.stringify(before.explanation));
        // the columns were taken off the row
        expect(Object.keys(rendered ?? {}).sort()).toEqual(["explanation", "mastery_score"]);
      }),
      { numRuns: 300 },
    );
  });

  it("a row with text keeps it; a row with numbers and text keeps the text (rows written before the columns)", () => {
    const s = state([{ tUs: T0, type: "quiz_attempt", isCorrect: true, hintsUsed: 0 }], DEFAULT);
    const stored = storedRuleRow(s, T0, DEFAULT);
    const block = (stored.explanation as StoredRuleExplanation).rule as StoredRuleState;
    const [a, b] = withExplanationTexts([
      { explanation: '{"base":1}', mastery_score: 0.5, ...asStoredRow(block, T0) },
      { explanation: "", mastery_score: stored.score, ...asStoredRow(block, T0) },
    ]);
    expect(a?.explanation).toBe('{"base":1}');
    expect(b?.explanation).toBe(JSON.stringify(stored.explanation));
    // a block's factor whose signal has no column is an error naming it, not a silent drop
    expect(() => ruleBlockValues({ ...block, factors: [{ name: "recency", value: 1, part: 0 }] })).toThrow(
      /factor "recency" has no column/,
    );
  });
});
