import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { BKT } from "../../models/bkt.ts";
import { Elo } from "../../models/elo.ts";
import { explanationTotal } from "../../models/explanation.ts";
import { attemptFeatures } from "../../training/attemptFeatures.ts";
import {
  BLEND_SOURCES,
  type BlendArtifact,
  BlendAttemptModel,
  trainAttemptModel,
} from "../../training/blendTrain.ts";
import { predictorFromJson } from "../../training/evaluate.ts";
import type { GbtAttemptModel } from "../../training/gbtTrain.ts";
import { loadResponses } from "../../training/responses.ts";
import { type Attempt, makeLog, syntheticAttempts } from "./attemptLog.ts";

const COLUMNS = "user=student,skill=kc,correct=ok,item=q";

/** A TSV in the Gervet layout (user, item, timestamp 0, correct, skill). */
function writeTsv(dir: string, name: string, rows: readonly Attempt[]): string {
  const path = join(dir, name);
  const lines = ["student\tq\ttimestamp\tok\tkc", ...rows.map(([u, s, i, c]) => `${u}\t${i}\t0\t${c}\t${s}`)];
  writeFileSync(path, `${lines.join("\n")}\n`);
  return path;
}

const testRows = (): Attempt[] =>
  syntheticAttempts(20, 40, 99).map(([u, s, i, c]) => [`t${u}`, s, i, c] as Attempt);

describe("mastery train blend / evaluate (CLI, end to end)", () => {
  it("trains on a small file, writes a blend model.json, and evaluate prints the metrics line", () => {
    const dir = mkdtempSync(join(tmpdir(), "blend-cli-"));
    const train = writeTsv(dir, "train.tsv", syntheticAttempts(60, 40, 1));
    const test = writeTsv(dir, "test.tsv", testRows());
    const out = join(dir, "model");
    const env = { ...process.env, MASTERY_QUIET: "1" };
    const fit = spawnSync(
      process.execPath,
      [
        "bin/mastery.js",
        "train",
        "blend",
        "--data",
        train,
        "--columns",
        COLUMNS,
        "--folds",
        "4",
        "--rounds",
        "25",
        "--epochs",
        "3",
        "--threads",
        "1",
        "--out",
        out,
      ],
      { encoding: "utf8", env },
    );
    expect(fit.status, fit.stderr).toBe(0);
    const summary = JSON.parse(fit.stdout.trim().split("\n").pop()!);
    expect(summary.kind).toBe("blend");
    expect(summary.rows).toBe(2400);
    expect(Object.keys(summary.weights)).toEqual([...BLEND_SOURCES]);
    const model = JSON.parse(readFileSync(join(out, "model.json"), "utf8")) as BlendArtifact;
    expect(model.kind).toBe("blend");
    expect(["platt", "isotonic"]).toContain(model.blend.calibrator.kind);
    // The validation fold is one of 4 student folds: 15 of 60 students, 40 rows each.
    expect((model.training.data as { validRows: number }).validRows).toBe(600);

    const ev = spawnSync(
      process.execPath,
      ["bin/mastery.js", "evaluate", "--model", out, "--data", test, "--columns", COLUMNS],
      { encoding: "utf8", env },
    );
    expect(ev.status, ev.stderr).toBe(0);
    const lines = ev.stdout.trim().split("\n");
    expect(lines).toHaveLength(1);
    const m = JSON.parse(lines[0]!);
    expect(Object.keys(m)).toEqual(["auc", "rmse", "logloss", "ece", "n"]);
    expect(m.n).toBe(800);
    expect(m.auc).toBeGreaterThan(0.65);

    // The same artifact, loaded in process: every test prediction is online, and the explanation sums.
    const blend = BlendAttemptModel.fromArtifact(model);
    const log = loadResponses(test, { user: "student", skill: "kc", correct: "ok", item: "q" });
    const X = attemptFeatures(log, blend.context);
    const p = blend.predictFeatures(X);
    for (const row of [0, 1, 17, 399, 799]) {
      const e = blend.explainRow(X, row);
      let s = e.intercept;
      for (const src of e.sources) s += src.contribution;
      expect(s).toBeCloseTo(e.logit, 10);
      expect(e.probability).toBeCloseTo(p[row]!, 12);
      expect(explanationTotal(e.explanation)).toBeCloseTo(e.probability, 10);
      expect(e.gbtTopFeatures).toHaveLength(3);
      const shaps = e.gbtTopFeatures.map((f) => Math.abs(f.shap));
      expect(shaps[0]).toBeGreaterThanOrEqual(shaps[1]!);
      expect(shaps[1]).toBeGreaterThanOrEqual(shaps[2]!);
      const shapSum = e.gbtTopFeatures.reduce((a, f) => a + f.shap, e.gbtExpectedValue + e.gbtRest);
      expect(shapSum).toBeCloseTo(e.gbtMargin, 8);
      const gbtSource = e.sources.find((src) => src.name === "gbt")!;
      expect(gbtSource.value).toBe(e.gbtMargin);
    }
  }, 60_000);
});

describe("train gbt with given BKT / Elo models", () => {
  it("uses the model.json files of --bkt-model / --elo-model instead of fitting", async () => {
    const dir = mkdtempSync(join(tmpdir(), "gbt-given-"));
    const rows = syntheticAttempts(30, 20, 8);
    const train = writeTsv(dir, "train.tsv", rows);
    const log = makeLog(rows);
    const bkt = new BKT({ restarts: 1, seed: 3 }).fit(log);
    const elo = new Elo({ params: { studentA: 0.3, skillA: 0.2 }, fitK: false }).fit(log);
    for (const [name, json] of [
      ["bkt", bkt.toJSON()],
      ["elo", elo.toJSON()],
    ] as const) {
      mkdirSync(join(dir, name));
      writeFileSync(join(dir, name, "model.json"), JSON.stringify(json));
    }
    const res = await trainAttemptModel({
      kind: "gbt",
      data: train,
      columns: { user: "student", skill: "kc", correct: "ok", item: "q" },
      out: join(dir, "model"),
      bktModel: join(dir, "bkt"),
      eloModel: join(dir, "elo"),
      threads: 1,
      gbt: { nRounds: 5 },
    });
    const json = JSON.parse(readFileSync(res.modelPath, "utf8"));
    expect(json.context.elo.params).toEqual(elo.params);
    expect(json.context.bkt.skills).toEqual(JSON.parse(JSON.stringify(bkt.toJSON().skills)));
  });
});

describe("train gbt (in process) and its registered predictor", () => {
  it("model.json predicts like the trained model, online: a later test label never moves an earlier prediction", async () => {
    const dir = mkdtempSync(join(tmpdir(), "gbt-train-"));
    const train = writeTsv(dir, "train.tsv", syntheticAttempts(50, 30, 5));
    const res = await trainAttemptModel({
      kind: "gbt",
      data: train,
      columns: { user: "student", skill: "kc", correct: "ok", item: "q" },
      out: join(dir, "model"),
      folds: 5,
      threads: 1,
      gbt: { nRounds: 20 },
    });
    const json = JSON.parse(readFileSync(res.modelPath, "utf8"));
    expect(json.kind).toBe("gbt");
    const predictor = predictorFromJson(json);
    const rows = testRows().slice(0, 120);
    const log = makeLog(rows);
    const p = predictor.predictLog(log);
    const direct = (res.model as GbtAttemptModel).predictLog(log);
    for (let k = 0; k < log.n; k++) expect(p[k]).toBeCloseTo(direct[k]!, 12);
    const j = 70;
    const flipped = makeLog(rows.map((r, k) => (k === j ? ([r[0], r[1], r[2], 1 - r[3]] as Attempt) : r)));
    const q = predictor.predictLog(flipped);
    for (let k = 0; k <= j; k++) expect(q[k]).toBe(p[k]);
  }, 60_000);
});
