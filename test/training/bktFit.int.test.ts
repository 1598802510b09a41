import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { mulberry32 } from "../../models/prng.ts";
import { fitBktParallel } from "../../training/bktFit.ts";
import { evaluateOnline, predictorFromJson } from "../../training/evaluate.ts";
import { loadResponses } from "../../training/responses.ts";

/** A small CSV: 60 students, 3 skills, students interleaved in the file to exercise grouping. */
function writeLog(dir: string): string {
  const rnd = mulberry32(99);
  const lines = ["student,kc,ok,t"];
  const truth = [
    { prior: 0.3, learn: 0.15, guess: 0.2, slip: 0.1 },
    { prior: 0.6, learn: 0.05, guess: 0.25, slip: 0.15 },
    { prior: 0.2, learn: 0.3, guess: 0.1, slip: 0.05 },
  ];
  const state = new Map<string, boolean>();
  for (let t = 0; t < 12; t++) {
    for (let u = 0; u < 60; u++) {
      const s = (u + t) % 3;
      const p = truth[s]!;
      const key = `${u}/${s}`;
      let learned = state.get(key) ?? rnd() < p.prior;
      const ok = learned ? rnd() >= p.slip : rnd() < p.guess;
      lines.push(`u${u},kc${s},${ok ? 1 : 0},${t}`);
      learned = learned || rnd() < p.learn;
      state.set(key, learned);
    }
  }
  const path = join(dir, "log.csv");
  writeFileSync(path, `${lines.join("\n")}\n`);
  return path;
}

const columns = { user: "student", skill: "kc", correct: "ok", order: "t" };

describe("fitBktParallel", () => {
  it("gives the identical model on 1 and 2 threads", async () => {
    const dir = mkdtempSync(join(tmpdir(), "bkt-fit-"));
    const log = loadResponses(writeLog(dir), columns);
    const opts = { forgets: true, restarts: 4, seed: 8 };
    const one = await fitBktParallel(log, opts, { threads: 1 });
    const two = await fitBktParallel(log, opts, { threads: 2 });
    const strip = (j: ReturnType<typeof one.toJSON>) => JSON.stringify({ ...j, fitSeconds: 0 });
    expect(strip(two.toJSON())).toBe(strip(one.toJSON()));
    expect(one.skills.size).toBe(3);
  });

  it("evaluate dispatches a 'bkt' model.json to the bkt row of the kind table", async () => {
    const dir = mkdtempSync(join(tmpdir(), "bkt-eval-"));
    const log = loadResponses(writeLog(dir), columns);
    const model = await fitBktParallel(log, { restarts: 2 }, { threads: 1 });
    const predictor = predictorFromJson(JSON.parse(JSON.stringify(model.toJSON())));
    expect(predictor.kind).toBe("bkt");
    const m = evaluateOnline(predictor, log);
    expect(m.n).toBe(720);
    expect(m.auc).toBeGreaterThan(0.6);
    expect(() => predictorFromJson({ kind: "nope" })).toThrow(
      /unknown model kind "nope"; known kinds: rule, bkt, elo, gbt, mlp, blend/,
    );
  });
});

describe("mastery train bkt / evaluate (CLI)", () => {
  it("writes model.json and prints one JSON line of metrics", () => {
    const dir = mkdtempSync(join(tmpdir(), "bkt-cli-"));
    const data = writeLog(dir);
    const out = join(dir, "model");
    const env = { ...process.env, MASTERY_QUIET: "1" };
    const train = spawnSync(
      process.execPath,
      [
        "bin/mastery.js",
        "train",
        "bkt",
        "--data",
        data,
        "--columns",
        "user=student,skill=kc,correct=ok,order=t",
        "--restarts",
        "3",
        "--seed",
        "4",
        "--forgets",
        "--out",
        out,
      ],
      { encoding: "utf8", env },
    );
    // The row report (features/fileRows.ts) is the only thing on stderr.
    expect(train.stderr).toBe(`${data}: read 720 rows, used 720, skipped 0\n`);
    expect(train.status).toBe(0);
    const model = JSON.parse(readFileSync(join(out, "model.json"), "utf8"));
    expect(model.kind).toBe("bkt");
    expect(model.nRows).toBe(720);
    expect(model.settings).toMatchObject({ forgets: true, restarts: 3, seed: 4 });
    expect(Object.keys(model.skills).sort()).toEqual(["kc0", "kc1", "kc2"]);
    for (const f of Object.values(model.skills) as Record<string, number>[])
      for (const k of ["prior", "learn", "forget", "guess", "slip"]) expect(f[k]).toBeGreaterThanOrEqual(0);
    expect(Number.isFinite(model.logLikelihood)).toBe(true);

    const evaluate = spawnSync(
      process.execPath,
      [
        "bin/mastery.js",
        "evaluate",
        "--model",
        out,
        "--data",
        data,
        "--columns",
        "user=student,skill=kc,correct=ok,order=t",
      ],
      { encoding: "utf8", env },
    );
    expect(evaluate.status).toBe(0);
    const lines = evaluate.stdout.trim().split("\n");
    expect(lines).toHaveLength(1);
    const metrics = JSON.parse(lines[0]!);
    expect(Object.keys(metrics)).toEqual(["auc", "rmse", "logloss", "ece", "n"]);
    expect(metrics.n).toBe(720);
    expect(metrics.auc).toBeGreaterThan(0.6);
  });

  it("names the missing column in its error", () => {
    const dir = mkdtempSync(join(tmpdir(), "bkt-cli-"));
    const data = writeLog(dir);
    const r = spawnSync(
      process.execPath,
      [
        "bin/mastery.js",
        "train",
        "bkt",
        "--data",
        data,
        "--columns",
        "user=student,skill=topic,correct=ok",
        "--out",
        dir,
      ],
      { encoding: "utf8", env: { ...process.env, MASTERY_QUIET: "1" } },
    );
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/column "topic" not found/);
  });
});
