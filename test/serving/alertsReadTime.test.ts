/**
 * Alerts on scores that move with time alone (issue 17 item 3). A rule row stores its pair's decayed
 * evidence and is read as of the read time (evidence decayed, recency then); the alert check reads it the
 * same way. Defined behaviour:
 * a score that was above the threshold when scored and decays under it with no new event raises its alert
 * at the first check after the crossing (the score in the alert is the read-time score), once per crossing.
 */
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import {
  foldRuleEvents,
  parseRuleConfig,
  type RuleState,
  ruleScoreAt,
  type StoredRuleExplanation,
  storedRuleRow,
} from "../../models/ruleScorer.ts";
import { AlertEngine, checkTimeCrossings, parseThresholds } from "../../serving/alerts.ts";
import { decayServedRow } from "../../serving/masteryView.ts";
import { readTimeScoreSql } from "../../serving/readTimeScoreSql.ts";
import { DuckAlertStore } from "../../storage/alertStore.ts";
import { DuckStore } from "../../storage/duckdb.ts";

const here = dirname(fileURLToPath(import.meta.url));
const CONFIG = parseRuleConfig(parseYaml(readFileSync(join(here, "../../config/rule-weights.yaml"), "utf8")));
const DAY_MS = 86_400_000;

/** A stored rule row with good recent evidence, last active one day before `asOf`; its score as of a time. */
function decayingRule() {
  const asOf = new Date("2024-06-01T00:00:00Z");
  const lastUs = (asOf.getTime() - DAY_MS) * 1000;
  // six quiz attempts, five right, one every half day up to the last activity
  const events = [0, 1, 2, 3, 4, 5].map((k) => ({
    tUs: lastUs - k * 0.5 * DAY_MS * 1000,
    type: "quiz_attempt",
    isCorrect: k !== 3,
    hintsUsed: 0,
  }));
  const state = foldRuleEvents(events, CONFIG.evidenceHalfLifeDays) as RuleState;
  const stored = storedRuleRow(state, asOf.getTime() * 1000, CONFIG);
  const e = stored.explanation as StoredRuleExplanation;
  const at = (days: number) => new Date(asOf.getTime() + days * DAY_MS);
  const scoreAt = (d: Date) => ruleScoreAt(e, d.getTime() * 1000).score;
  return { asOf, stored, e, at, scoreAt };
}

async function storeWith(
  stored: { score: number },
  e: StoredRuleExplanation,
  asOf: Date,
): Promise<DuckStore> {
  const store = await DuckStore.open(":memory:");
  await store.run(
    `INSERT INTO student_mastery_base (student_key, topic_id, mastery_score, score_source, model_version, as_of,
       explanation, last_updated)
     VALUES ('k1', 't1', $s, 'rule_based', 'rule-test', $a::TIMESTAMP, $e, $a::TIMESTAMP)`,
    { s: stored.score, a: asOf.toISOString(), e: JSON.stringify(e) },
  );
  return store;
}

describe("the batch's alert pass over crossings with time alone", () => {
  it("the SQL read-time score equals ruleScoreAt (to 1e-12), and the batch pass raises the crossing once", async () => {
    const { asOf, stored, e, at, scoreAt } = decayingRule();
    const threshold = (scoreAt(asOf) + scoreAt(at(90))) / 2;
    let day = 1;
    while (scoreAt(at(day)) >= threshold) day++;
    const store = await storeWith(stored, e, asOf);
    try {
      for (const d of [0, 1, 10, day, 90]) {
        const r = await store.one<{ s: number }>(
          `SELECT ${readTimeScoreSql("m", "$at::BIGINT")} AS s FROM student_mastery m`,
          { at: BigInt(at(d).getTime()) * 1000n },
        );
        expect(Math.abs(r!.s - scoreAt(at(d)))).toBeLessThanOrEqual(1e-12);
      }
      const cfg = parseThresholds({ default: { at_risk: threshold }, hysteresis: 0.01 }, {});
      const pass = async (d: number) => {
        const engine = new AlertEngine(await DuckAlertStore.open(store), cfg, { now: () => at(d) });
        return checkTimeCrossings(store, engine, at(d), cfg);
      };
      expect(await pass(day - 1)).toEqual({ candidates: 0, raised: [] });
      const crossed = await pass(day);
      expect(crossed.candidates).toBe(1);
      expect(crossed.raised.map((a) => [a.studentKey, a.topicId, a.crossing])).toEqual([["k1", "t1", 1]]);
      // Already below: not a candidate again, so no second alert for the same crossing.
      expect(await pass(day + 30)).toEqual({ candidates: 0, raised: [] });
    } finally {
      store.close();
    }
  });
});

describe("alerts read scores as of the check time", () => {
  it("a rule score decaying under the threshold with no new event raises one alert at the next check", async () => {
    const { asOf, stored, e, at, scoreAt } = decayingRule();
    const s0 = scoreAt(asOf);
    const s90 = scoreAt(at(90));
    expect(s90).toBeLessThan(s0);
    // The threshold sits between the score at the run and 90 days later: the crossing happens in between.
    const threshold = (s0 + s90) / 2;

    const store = await storeWith(stored, e, asOf);
    try {
      let now = asOf;
      const engine = new AlertEngine(
        await DuckAlertStore.open(store),
        parseThresholds({ default: { at_risk: threshold }, hysteresis: 0.01 }, {}),
        { now: () => now },
      );
      const key = [{ studentKey: "k1", topicId: "t1" }];
      expect(await engine.check(key)).toEqual([]);
      // The first day the read-time score is under the threshold: a check the day before raises nothing.
      let day = 1;
      while (scoreAt(at(day)) >= threshold) day++;
      now = at(day - 1);
      expect(await engine.check(key)).toEqual([]);
      now = at(day);
      const raised = await engine.check(key);
      expect(raised).toHaveLength(1);
      expect(raised[0]).toMatchObject({
        studentKey: "k1",
        topicId: "t1",
        scoreSource: "rule_based",
        crossing: 1,
      });
      expect(raised[0]!.score).toBe(scoreAt(at(day)));
      expect(raised[0]!.score).toBeLessThan(threshold);
      // Further decay is the same crossing: no second alert.
      now = at(day + 30);
      expect(await engine.check(key)).toEqual([]);
      // The stored row was not rewritten by the checks.
      const kept = await store.one<{ s: number }>("SELECT mastery_score AS s FROM student_mastery");
      expect(kept?.s).toBe(stored.score);
    } finally {
      store.close();
    }
  });
});

describe("the check brings only each key's served row to check time", () => {
  it("a rule row beside a served bkt row is not read: the bkt score decides, the rule row's text is never parsed", async () => {
    const { asOf, stored, e, at, scoreAt } = decayingRule();
    const store = await storeWith(stored, e, asOf);
    try {
      // bkt ranks before rule_based (serving/masteryView.ts DEFAULT_SOURCE_ORDER), so bkt is served; the rule
      // row is made unreadable, which a check that parsed it would fail on.
      await store.run(
        `INSERT INTO student_mastery_base (student_key, topic_id, mastery_score, score_source, model_version, as_of,
           explanation, last_updated)
         VALUES ('k1', 't1', 0.2, 'bkt', 'bkt-test', $a::TIMESTAMP, '{}', $a::TIMESTAMP)`,
        { a: asOf.toISOString() },
      );
      await store.run(
        "UPDATE student_mastery_base SET explanation = 'not json' WHERE score_source = 'rule_based'",
      );
      // The threshold lies between the bkt score (0.2) and the rule score: only the bkt row is under it.
      const threshold = 0.3;
      expect(scoreAt(at(1))).toBeGreaterThan(threshold);
      const engine = new AlertEngine(
        await DuckAlertStore.open(store),
        parseThresholds({ default: { at_risk: threshold }, hysteresis: 0.01 }, {}),
        { now: () => at(1) },
      );
      const raised = await engine.check([{ studentKey: "k1", topicId: "t1" }]);
      expect(raised.map((a) => [a.scoreSource, a.score, a.crossing])).toEqual([["bkt", 0.2, 1]]);
    } finally {
      store.close();
    }
  });
});

describe("the SQL read-time score of served rows is decayServedRow's", () => {
  it("decays a pair with evidence to 1e-12 and leaves a pair without events, an undecaying row and a later as_of as stored", async () => {
    const asOf = new Date("2024-06-01T00:00:00Z");
    const explanation = (daysSinceLast: number | null, halfLifeDays: number) =>
      JSON.stringify({
        base: 0.4,
        factors: [{ name: "quiz answers", value: 6, contribution: 0.22 }],
        rest: 0,
        interval: { lo: 0.5, hi: 0.75, level: 0.8 },
        evidence: { kind: daysSinceLast === null ? "prior" : "direct", attempts: 6, daysSinceLast },
        pCorrect: 0.7,
        decay: { halfLifeDays, floor: 0.18, pFloor: 0.35 },
      });
    // key, source, score, explanation: evidence 2 days old; a prior pair (no events); half-life 0 (no decay);
    // a row without evidence (an older model's: decays as GET /mastery decays it)
    const rows: [string, string, number, string][] = [
      ["k1", "served", 0.62, explanation(2, 30)],
      ["k2", "served", 0.41, explanation(null, 30)],
      ["k3", "latent", 0.55, explanation(1, 0)],
      [
        "k4",
        "latent",
        0.66,
        JSON.stringify({
          base: 0.66,
          factors: [],
          rest: 0,
          decay: { halfLifeDays: 12, floor: 0.2, pFloor: 0.3 },
        }),
      ],
    ];
    const store = await DuckStore.open(":memory:");
    try {
      for (const [k, src, s, e] of rows)
        await store.run(
          `INSERT INTO student_mastery_base (student_key, topic_id, mastery_score, score_source, model_version, as_of,
             explanation, last_updated)
           VALUES ($k, 't1', $s, $src, 'served-test', $a::TIMESTAMP, $e, $a::TIMESTAMP)`,
          { k, s, src, a: asOf.toISOString(), e },
        );
      for (const days of [-1, 0, 0.5, 7, 45]) {
        const at = new Date(asOf.getTime() + days * DAY_MS);
        const got = await store.all<{ k: string; s: number }>(
          `SELECT student_key AS k, ${readTimeScoreSql("m", "$at::BIGINT", { served: true })} AS s
           FROM student_mastery m ORDER BY student_key`,
          { at: BigInt(at.getTime()) * 1000n },
        );
        for (const [i, [k, src, s, e]] of rows.entries()) {
          const want = decayServedRow(
            { score_source: src, as_of: asOf, mastery_score: s, explanation: e },
            at,
          ).mastery_score;
          expect(got[i]!.k).toBe(k);
          expect(Math.abs(got[i]!.s - want)).toBeLessThanOrEqual(1e-12);
        }
        // The hand-computed cases: k1 moves towards its floor by 2^(-days/30); k2 and k3 never move.
        const moved = days > 0 ? 0.18 + (0.62 - 0.18) * 2 ** (-days / 30) : 0.62;
        expect(Math.abs(got[0]!.s - moved)).toBeLessThanOrEqual(1e-12);
        expect(got[1]!.s).toBe(0.41);
        expect(got[2]!.s).toBe(0.55);
        if (days > 0) expect(got[3]!.s).toBeLessThan(0.66);
      }
    } finally {
      store.close();
    }
  });
});
