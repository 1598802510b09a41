import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { mulberry32 } from "../../models/prng.ts";
import { trainElo } from "../../training/elo.ts";
import {
  evaluateOnline,
  loadPredictor,
  predictorFromJson,
  registeredKinds,
} from "../../training/evaluate.ts";
import { loadResponses } from "../../training/responses.ts";

const dir = mkdtempSync(join(tmpdir(), "elo-train-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A small TSV response log from a Rasch process: 10 items over 2 skills, item k has difficulty k/3 - 1.5. */
function writeLog(path: string, users: number, firstUser: number, seed: number): void {
  const rand = mulberry32(seed);
  const lines = ["student\tquestion\tkc\tok"];
  for (let u = firstUser; u < firstUser + users; u++) {
    const ability = 2 * rand() - 1;
    for (let k = 0; k < 10; k++) {
      const p = 1 / (1 + Math.exp(-(ability - (k / 3 - 1.5))));
      lines.push(`u${u}\tq${k}\tkc${k % 2}\t${rand() < p ? 1 : 0}`);
    }
  }
  writeFileSync(path, `${lines.join("\n")}\n`);
}

const trainPath = join(dir, "train.tsv");
const testPath = join(dir, "test.tsv");
writeLog(trainPath, 120, 0, 1);
writeLog(testPath, 40, 1000, 2);
const columns = { user: "student", skill: "kc", correct: "ok", item: "question" };

describe("training/elo", () => {
  it("writes model.json with kind elo, K parameters, item difficulties by name and the training log-loss", () => {
    const { modelPath, artifact } = trainElo({
      data: trainPath,
      columns,
      out: join(dir, "m1"),
      maxEvaluations: 40,
    });
    const json = JSON.parse(readFileSync(modelPath, "utf8"));
    expect(json.kind).toBe("elo");
    expect(Object.keys(json.params).sort()).toEqual(["itemA", "itemB", "skillA", "studentA", "studentB"]);
    expect(Object.keys(json.items).sort()).toEqual(Array.from({ length: 10 }, (_, k) => `q${k}`).sort());
    expect(json.train.logloss).toBeCloseTo(artifact.train.logloss, 15);
    expect(json.data.rows).toBe(1200);
    // Easiest item q0 (difficulty -1.5) comes out easier than the hardest q9 (+1.5).
    expect(json.items.q0.difficulty).toBeLessThan(json.items.q9.difficulty);
  });

  it("registers kind elo with the online evaluator, and evaluation never peeks at the predicted row", () => {
    expect(registeredKinds()).toContain("elo");
    const dirModel = join(dir, "m2");
    trainElo({ data: trainPath, columns, out: dirModel, maxEvaluations: 30 });
    const predictor = loadPredictor(dirModel);
    const log = loadResponses(testPath, columns);
    const p = predictor.predictLog(log);
    const m = evaluateOnline(predictor, log);
    expect(m.n).toBe(400);
    expect(m.auc).toBeGreaterThan(0.6);
    // Flipping the label of row k (and every row after it) must leave row k's prediction unchanged.
    for (const k of [0, 5, 137, 399]) {
      const flipped = { ...log, correct: Uint8Array.from(log.correct, (c, j) => (j >= k ? 1 - c : c)) };
      const q = predictorFromJson(JSON.parse(readFileSync(join(dirModel, "model.json"), "utf8"))).predictLog(
        flipped,
      );
      expect(q[k]).toBe(p[k]);
      for (let j = 0; j < k; j++) expect(q[j]).toBe(p[j]);
    }
  });

  it("CLI: train elo then evaluate, end to end", () => {
    const out = join(dir, "cli");
    const env = { ...process.env, MASTERY_QUIET: "1" };
    // The `mastery` bin as installed (dist/ after `npm ci`'s build; the TypeScript through tsx without one).
    const mastery = join(import.meta.dirname, "../../bin/mastery.js");
    const colSpec = "user=student,skill=kc,correct=ok,item=question";
    const trained = JSON.parse(
      execFileSync(
        process.execPath,
        [
          mastery,
          "train",
          "elo",
          "--data",
          trainPath,
          "--columns",
          colSpec,
          "--seed",
          "1",
          "--max-evaluations",
          "20",
          "--out",
          out,
        ],
        { env, encoding: "utf8" },
      ),
    );
    expect(trained.kind).toBe("elo");
    expect(trained.rows).toBe(1200);
    const evaluated = JSON.parse(
      execFileSync(
        process.execPath,
        [mastery, "evaluate", "--model", out, "--data", testPath, "--columns", colSpec],
        {
          env,
          encoding: "utf8",
        },
      ),
    );
    expect(Object.keys(evaluated)).toEqual(["auc", "rmse", "logloss", "ece", "n"]);
    expect(evaluated.n).toBe(400);
    expect(evaluated.logloss).toBeGreaterThan(0);
    expect(evaluated.logloss).toBeLessThan(Math.log(2));
  });
});
