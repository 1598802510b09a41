import { describe, expect, it } from "vitest";
import { explanationTotal } from "../../models/explanation.ts";
import { KIND_NAMES, KINDS, kindOf, modelFromJson } from "../../training/kinds.ts";
import {
  type Attempt,
  type KindModel,
  ModelJsonError,
  ModelKindError,
  ModelNotFittedError,
} from "../../training/modelKind.ts";
import { makeLog, SMALL_FITS, studentAttempts, syntheticAttempts } from "./attemptLog.ts";

/**
 * The conformance suite of the model-kind contract (training/modelKind.ts), run over every row of the
 * table (training/kinds.ts): same seed -> same model; JSON round trip -> identical predictions and scores;
 * outputs in [0, 1]; every explanation sums (base + factors + rest) to its score within 1e-9; predicting
 * before fit and malformed JSON throw typed errors.
 */

const train = makeLog(syntheticAttempts(60, 24, 7));
const test = makeLog(syntheticAttempts(20, 24, 8));
const attempts: Attempt[] = studentAttempts(30, 9);
const topics = ["k0", "k1", "k3", "never-seen-topic"];

/** model.json without wall-clock timings (fitSeconds ...), which legitimately differ between fits. */
function stable(json: object): string {
  return JSON.stringify(json, (k, v) => (/seconds$/i.test(k) ? undefined : v));
}

async function fitted(kind: string, seed: number): Promise<KindModel> {
  return kindOf(kind).create(SMALL_FITS[kind]).fit(train, { seed });
}

describe("the kind table", () => {
  it("holds every served kind once, each with a score source", () => {
    expect(KIND_NAMES).toEqual(["rule", "bkt", "elo", "gbt", "mlp", "blend"]);
    expect(new Set(KINDS.map((k) => k.scoreSource))).toEqual(
      new Set(["rule_based", "bkt", "elo", "ml", "blend"]),
    );
    expect(KINDS.filter((k) => k.onnx).map((k) => k.kind)).toEqual(["gbt", "mlp"]);
  });

  it("names the known kinds when asked for an unknown one", () => {
    expect(() => kindOf("nope")).toThrow(ModelKindError);
    expect(() => kindOf("nope")).toThrow(/known kinds: rule, bkt, elo, gbt, mlp, blend/);
    expect(() => modelFromJson({ kind: 3 })).toThrow(ModelJsonError);
    expect(() => modelFromJson(null)).toThrow(ModelJsonError);
  });
});

for (const kind of KIND_NAMES) {
  describe(`kind ${kind}`, () => {
    it("before fit: predict, score and toJSON throw ModelNotFittedError", () => {
      const m = kindOf(kind).create(SMALL_FITS[kind]);
      expect(m.fitted).toBe(false);
      expect(() => m.predictLog(test)).toThrow(ModelNotFittedError);
      expect(() => m.scoreTopics(attempts, topics)).toThrow(ModelNotFittedError);
      expect(() => m.toJSON()).toThrow(ModelNotFittedError);
    });

    it("malformed model.json throws ModelJsonError", () => {
      const k = kindOf(kind);
      for (const bad of [null, 7, "x", [], { kind: "other" }, { kind }]) {
        expect(() => k.fromJSON(bad), JSON.stringify(bad)).toThrow(ModelJsonError);
      }
    });

    it("fits with a seed: same seed same model, JSON round trip identical, outputs in [0,1], explanations sum", async () => {
      const a = await fitted(kind, 11);
      const b = await fitted(kind, 11);
      expect(a.fitted).toBe(true);
      expect(a.seed).toBe(11);
      expect(stable(b.toJSON())).toBe(stable(a.toJSON()));

      const json = JSON.parse(JSON.stringify(a.toJSON())) as unknown;
      expect((json as { kind: string }).kind).toBe(kind);
      const back = kindOf(kind).fromJSON(json);
      const viaTable = modelFromJson(json);
      expect(back.seed).toBe(11);
      expect(back.params).toEqual(a.params);

      const p = a.predictLog(test);
      expect(p.length).toBe(test.n);
      expect(Array.from(back.predictLog(test))).toEqual(Array.from(p));
      expect(Array.from(viaTable.predictLog(test))).toEqual(Array.from(p));
      for (const v of p) expect(v >= 0 && v <= 1, `prediction ${v}`).toBe(true);
      // Online: row k's prediction depends on earlier rows only, so truncating the log keeps it.
      const head = makeLog(syntheticAttempts(20, 24, 8).slice(0, 30));
      expect(Array.from(a.predictLog(head))).toEqual(Array.from(p.subarray(0, 30)));

      const scores = a.scoreTopics(attempts, topics);
      expect(back.scoreTopics(attempts, topics)).toEqual(scores);
      expect(scores.length).toBe(topics.length);
      for (const s of scores) {
        expect(s.score >= 0 && s.score <= 1).toBe(true);
        expect(s.explanation.score).toBe(s.score);
        expect(Math.abs(explanationTotal(s.explanation) - s.score)).toBeLessThan(1e-9);
        expect(s.explanation.factors.length).toBeGreaterThan(0);
        expect(s.explanation.factors.length).toBeLessThanOrEqual(3);
        for (const f of s.explanation.factors) expect(Number.isFinite(f.contribution)).toBe(true);
      }
      // Evidence moves the score: a topic with answers differs from one never seen.
      expect(scores[0]!.score).not.toBe(scores[3]!.score);
    });
  });
}
