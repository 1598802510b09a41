import express from "express";
import fc from "fast-check";
import request from "supertest";
import { describe, expect, it } from "vitest";
import {
  historyBodyJson,
  historyBodyOf,
  historyCacheGroup,
  historyCacheKey,
  historyResponseJson,
} from "../../serving/historyBody.ts";
import type { HistoryRow } from "../../serving/masteryReadStore.ts";
import { historyJson, historyJsonParts, ruleRowAt, withProjection } from "../../serving/masteryView.ts";
import { sendJsonText } from "../../serving/servedBody.ts";
import { servedText } from "./servedTextFixture.ts";

const DAY_MS = 86_400_000;
const T0 = Date.UTC(2026, 9, 27);

/** A stored rule_based explanation with its block (models/ruleScorer.ts StoredRuleState, the last key). */
const ruleText = (score: number, lastDaysBefore: number, evidence: number) =>
  JSON.stringify({
    base: 0.4,
    factors: [{ name: "accuracy", value: 0.7, contribution: score - 0.4 }],
    rest: 0,
    score,
    rule: {
      prior: 0.4,
      refUs: (T0 - lastDaysBefore * DAY_MS) * 1000,
      lastUs: (T0 - lastDaysBefore * DAY_MS) * 1000,
      evidence,
      shrinkageK: 5,
      evidenceHalfLifeDays: 14,
      inactivityHalfLifeDays: 30,
      partSum: score - 0.4,
      recencyWeight: 0.1,
      centered: true,
      factors: [{ name: "accuracy", value: 0.7, part: score - 0.4 }],
    },
  });

const plainText = (score: number) =>
  JSON.stringify({
    base: 0.3,
    factors: [{ name: "correct_answers", value: 5, contribution: score - 0.3 }],
    rest: 0,
    score,
  });

const row = (
  score_source: string,
  mastery_score: number,
  explanation: string,
  asOfDaysBefore: number,
): HistoryRow => ({
  mastery_score,
  score_source,
  model_version: "default",
  as_of: new Date(T0 - asOfDaysBefore * DAY_MS),
  recorded_at: new Date(T0 - asOfDaysBefore * DAY_MS + 1000),
  explanation,
});

/** Texts other writers could store: whitespace, escapes, keys JSON.parse reorders or repeats, not an object. */
const foreignText = fc.oneof(
  fc.jsonValue().map((v) => JSON.stringify(v, null, 1) ?? "null"),
  fc.dictionary(fc.string(), fc.jsonValue()).map((o) => JSON.stringify(o)),
  fc
    .dictionary(fc.constantFrom("interval", "evidence", "pCorrect", "x", "1"), fc.jsonValue())
    .map((o) => JSON.stringify(o)),
  fc.constant('{"b":1,"1":{"x":"\\u0041\\/"},"interval":{"lo":0.1}}'),
  fc.constant('{"a":1,"a":{"pCorrect":2},"evidence":[1, 2]}'),
  fc.constant('{ "interval" : null , "score" : 0.5 }'),
  fc.constant("[1,2]"),
  fc.constant('"text"'),
  fc.constant("0.5"),
);

const score = fc.oneof(fc.double({ min: 0, max: 1, noNaN: true }), fc.constantFrom(0, 1, 1e-9, 0.1 + 0.2));

const historyRow: fc.Arbitrary<HistoryRow> = fc.oneof(
  fc
    .record({ s: score, days: fc.integer({ min: 0, max: 400 }), source: fc.constantFrom("bkt", "elo") })
    .map((g) => row(g.source, g.s, plainText(g.s), g.days)),
  fc
    .record({ s: score, days: fc.integer({ min: 0, max: 400 }), last: fc.integer({ min: 0, max: 90 }) })
    .chain((g) =>
      fc
        .double({ min: 0, max: 50, noNaN: true })
        .map((ev) => row("rule_based", g.s, ruleText(g.s, g.days + g.last, ev), g.days)),
    ),
  // A rule row stored without its block (no signal, or an older scorer's form): shown as stored.
  fc
    .record({ s: score, days: fc.integer({ min: 0, max: 400 }) })
    .map((g) => row("rule_based", g.s, plainText(g.s), g.days)),
  fc
    .record({ s: score, days: fc.integer({ min: 0, max: 400 }), decay: fc.boolean() })
    .map((g) => row("served", g.s, servedText(g.s, g.decay), g.days)),
  fc
    .record({
      s: score,
      days: fc.integer({ min: 0, max: 400 }),
      source: fc.constantFrom("bkt", "served", "latent", "teacher_override"),
      text: foreignText,
    })
    .map((g) => row(g.source, g.s, g.text, g.days)),
);

/** historyJson's text, or the error it throws (the route answers the same error as before). */
const outcome = (f: () => string): string => {
  try {
    return f();
  } catch (err) {
    return `throws ${(err as Error).name}: ${(err as Error).message}`;
  }
};

describe("historyJson: GET /mastery/:id/:topic/history's entries as text", () => {
  it("equals JSON.stringify(withProjection(rows, now)) byte for byte, with and without a request time", () => {
    fc.assert(
      fc.property(
        fc.array(historyRow, { maxLength: 12 }),
        fc.option(fc.integer({ min: -30, max: 400 }), { nil: undefined }),
        (rows, nowDays) => {
          const now = nowDays === undefined ? undefined : new Date(T0 + nowDays * DAY_MS);
          expect(outcome(() => historyJson(rows, now))).toBe(
            outcome(() => JSON.stringify(withProjection(rows, now))),
          );
        },
      ),
      { numRuns: 400 },
    );
  });

  it("a rule entry shows its score as of its own run; the served run decayed to now is appended last, projected", () => {
    const rule = row("rule_based", 0.55, ruleText(0.55, 20, 3), 10);
    const served = row("served", 0.8, servedText(0.8, true), 6);
    const text = historyJson([row("bkt", 0.5, plainText(0.5), 12), rule, served], new Date(T0));
    const entries = JSON.parse(text) as Record<string, unknown>[];
    expect(entries.map((e) => e.scoreSource)).toEqual(["bkt", "rule_based", "served", "served"]);
    // The rule entry as ruleRowAt computes it as of the row's as_of (its evidence 10 days old by then).
    expect(entries[1]!.score).toBe(ruleRowAt(rule, rule.as_of).mastery_score);
    expect(entries[1]!.score).not.toBe(0.55);
    expect(entries[1]!.explanation).toEqual(JSON.parse(ruleRowAt(rule, rule.as_of).explanation));
    // The stored served run lists its interval, evidence and P(correct); the projection decays them 6 days.
    expect(entries[2]).toMatchObject({ score: 0.8, pCorrect: 0.5 + 0.8 / 3 });
    expect("projected" in entries[2]!).toBe(false);
    const projected = entries[3]!;
    expect(Object.keys(projected).at(-1)).toBe("projected");
    expect(projected.recordedAt).toBe(new Date(T0).toISOString());
    expect(projected.score as number).toBeLessThan(0.8);
    expect(projected.score as number).toBeGreaterThan(0.2);
    expect(text).toBe(
      JSON.stringify(withProjection([row("bkt", 0.5, plainText(0.5), 12), rule, served], new Date(T0))),
    );
  });

  it("a stored text that is not JSON fails as it did (the route's error handler answers it)", () => {
    const bad = [row("bkt", 0.5, "{not json", 1)];
    expect(() => historyJson(bad, new Date(T0))).toThrow(SyntaxError);
    expect(() => historyJson([row("rule_based", 0.5, "null", 1)], new Date(T0))).toThrow(TypeError);
  });
});

describe("historyBody: the history cache's form of an answer", () => {
  it("answers as the uncached route at every request time; fixed bytes exactly when no served row", () => {
    fc.assert(
      fc.property(
        fc.array(historyRow, { maxLength: 12 }),
        fc.integer({ min: -30, max: 400 }),
        fc.integer({ min: -30, max: 400 }),
        fc.string(),
        (rows, d1, d2, topicId) => {
          let parts: ReturnType<typeof historyJsonParts>;
          try {
            parts = historyJsonParts(rows);
          } catch {
            // A text the route fails on fails before anything is cached (historyJson throws too).
            expect(() => historyJson(rows, new Date(T0))).toThrow();
            return;
          }
          const cached = historyBodyOf("key-1", topicId, parts);
          const hasServed = rows.some((r) => r.score_source === "served");
          expect(cached.kind).toBe(hasServed ? "timed" : "fixed");
          // One cached object, two request times: each answer is the route's for that time.
          for (const days of [d1, d2]) {
            const now = new Date(T0 + days * DAY_MS);
            const want = outcome(() => historyResponseJson("key-1", topicId, historyJson(rows, now)));
            expect(outcome(() => historyBodyJson("key-1", topicId, cached, now))).toBe(want);
          }
          if (cached.kind === "fixed") {
            const text = historyResponseJson("key-1", topicId, historyJson(rows, undefined));
            expect(cached.body.buf.equals(Buffer.from(text, "utf8"))).toBe(true);
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it("a (student, topic) key gives its student back; no two pairs share a key", () => {
    fc.assert(
      fc.property(fc.string(), fc.string(), fc.string(), fc.string(), (s1, t1, s2, t2) => {
        expect(historyCacheGroup(historyCacheKey(s1, t1))).toBe(s1);
        if (s1 !== s2 || t1 !== t2) expect(historyCacheKey(s1, t1)).not.toBe(historyCacheKey(s2, t2));
      }),
      { numRuns: 500 },
    );
    expect(historyCacheKey("ab", "c:d")).toBe("2:abc:d");
  });
});

describe("sendJsonText", () => {
  const body = { studentKey: "k", topicId: "T1", history: [{ score: 0.5, explanation: { a: "é<>&" } }] };
  const appWith = (settings: Record<string, unknown>) => {
    const app = express();
    for (const [k, v] of Object.entries(settings)) app.set(k, v);
    app.get("/json", (_req, res) => void res.json(body));
    app.get("/text", (_req, res) => sendJsonText(res, JSON.stringify(body)));
    return app;
  };

  it("answers res.json's status, type, length, ETag and bytes, a 304 on a matching If-None-Match, headers only to HEAD", async () => {
    for (const settings of [{}, { "json spaces": 2 }, { "json escape": true }]) {
      const app = appWith(settings);
      const a = await request(app).get("/json");
      const b = await request(app).get("/text");
      expect(b.status).toBe(200);
      expect(b.text).toBe(a.text);
      for (const h of ["content-type", "content-length", "etag"]) expect(b.headers[h]).toBe(a.headers[h]);
      const fresh = await request(app)
        .get("/text")
        .set("If-None-Match", a.headers.etag as string);
      expect(fresh.status).toBe(304);
      const head = await request(app).head("/text");
      expect(head.headers["content-length"]).toBe(a.headers["content-length"]);
      expect(head.text).toBeUndefined();
    }
  });
});
