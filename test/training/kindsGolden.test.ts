import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { explanationTotal } from "../../models/explanation.ts";
import { KIND_NAMES, kindOf } from "../../training/kinds.ts";
import type { Attempt } from "../../training/modelKind.ts";
import { makeLog, SMALL_FITS, studentAttempts, syntheticAttempts } from "./attemptLog.ts";

/**
 * Golden explanations per kind (test/golden/explanations-<kind>.json): a model of each kind fitted with a
 * fixed seed on fixed synthetic data scores a fixed student's topics; the scores and their explanations
 * (gbt: TreeSHAP features, mlp: integrated gradients, blend: sources, rule/bkt/elo: fold factors) must
 * match the file to 1e-9. After an intended change: UPDATE_GOLDEN=1 npx vitest run test/training/kindsGolden.test.ts
 */
const GOLDEN = join(import.meta.dirname, "../golden");
const train = makeLog(syntheticAttempts(60, 24, 21));
const attempts: Attempt[] = studentAttempts(20, 22);
const topics = ["k0", "k1", "k2", "k3"];

function close(actual: unknown, expected: unknown, path: string): void {
  if (typeof expected === "number") {
    expect(typeof actual, path).toBe("number");
    if (Number.isNaN(expected)) expect(Number.isNaN(actual as number), path).toBe(true);
    else expect(Math.abs((actual as number) - expected), path).toBeLessThan(1e-9);
  } else if (typeof expected === "object" && expected !== null) {
    expect(Object.keys(actual as object).sort(), path).toEqual(Object.keys(expected).sort());
    for (const [k, v] of Object.entries(expected))
      close((actual as Record<string, unknown>)[k], v, `${path}.${k}`);
  } else expect(actual, path).toEqual(expected);
}

describe("golden explanations per kind", () => {
  for (const kind of KIND_NAMES) {
    it(kind, async () => {
      const model = await kindOf(kind).create(SMALL_FITS[kind]).fit(train, { seed: 1 });
      const scores = model.scoreTopics(attempts, topics);
      for (const s of scores) expect(Math.abs(explanationTotal(s.explanation) - s.score)).toBeLessThan(1e-9);
      // NaN (a missing feature value) is written as the string "NaN" so JSON keeps it.
      const actual = JSON.parse(
        JSON.stringify(
          topics.map((t, j) => ({ topic: t, ...scores[j] })),
          (_k, v) => (typeof v === "number" && Number.isNaN(v) ? "NaN" : v),
        ),
      ) as unknown;
      const file = join(GOLDEN, `explanations-${kind}.json`);
      if (process.env.UPDATE_GOLDEN === "1") writeFileSync(file, `${JSON.stringify(actual, null, 1)}\n`);
      expect(existsSync(file), `${file} is missing; run with UPDATE_GOLDEN=1 once and review it`).toBe(true);
      close(actual, JSON.parse(readFileSync(file, "utf8")), kind);
    });
  }
});
