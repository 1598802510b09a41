import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { EXPORT_COLUMNS, exportResponses, retrain } from "../../monitoring/retrain.ts";
import { openRegistry } from "../../registry/registry.ts";
import { DuckStore } from "../../storage/duckdb.ts";
import { KIND_NAMES, kindOf } from "../../training/kinds.ts";
import type { KindParams } from "../../training/modelKind.ts";
import { loadResponses } from "../../training/responses.ts";
import { CFG, insertAnswers, NOW } from "./driftData.ts";

/**
 * Retrain for every kind of the table (issue 13 item 5): a champion of the kind fitted on flipped labels
 * is registered and promoted; `retrain` with the default trainer fits a challenger of the same kind with
 * the champion's own fit parameters and seed on the recent window, records holdout metrics with the
 * version, and the gate decides. The run is logged in retrain_runs. The rule's ranking barely depends on
 * its prior, so flipped labels leave its AUC about the same and the gate refuses the challenger (AUC
 * gain below the required +0.002): the refusal and its reason are what is checked for it.
 */
const SMALL: Record<string, KindParams> = {
  rule: { kGrid: [1, 4, 16] },
  bkt: { forgets: true, restarts: 2, maxIter: 40 },
  elo: { maxEvaluations: 15 },
  gbt: { gbt: { nRounds: 30, maxDepth: 3, maxBins: 32, earlyStoppingRounds: 8 } },
  mlp: { mlp: { hidden: [8], maxEpochs: 3 } },
  blend: {
    gbt: { nRounds: 20, maxDepth: 3, maxBins: 32, earlyStoppingRounds: 8 },
    mlp: { hidden: [6], maxEpochs: 2 },
  },
};

describe("retrain every kind with the default trainer", () => {
  for (const kind of KIND_NAMES) {
    it(`${kind}: challenger of the same kind, champion's params and seed, metrics recorded, the gate decides`, async () => {
      const root = mkdtempSync(join(tmpdir(), `retrain-${kind}-`));
      const store = await DuckStore.open(":memory:");
      const { registry, opened } = await openRegistry({ dbPath: ":memory:", artifactBase: join(root, "a") });
      try {
        await insertAnswers(store);
        const csv = join(root, "champ.csv");
        await exportResponses(store, new Date("2025-01-20T00:00:00Z"), new Date("2025-03-14T00:00:00Z"), csv);
        const lines = readFileSync(csv, "utf8").trim().split("\n");
        const ci = lines[0]!.split(",").indexOf("correct");
        const flipped = lines.map((l, i) => {
          if (i === 0) return l;
          const f = l.split(",");
          f[ci] = f[ci] === "1" ? "0" : "1";
          return f.join(",");
        });
        writeFileSync(csv, `${flipped.join("\n")}\n`);
        const champ = await kindOf(kind)
          .create(SMALL[kind])
          .fit(loadResponses(csv, EXPORT_COLUMNS), { seed: 5 });
        mkdirSync(join(root, "champ"));
        writeFileSync(join(root, "champ", "model.json"), JSON.stringify(champ.toJSON()));
        const name = `${kind}-test`;
        const v = await registry.register({ name, dir: join(root, "champ"), actor: "test" });
        expect(v.kind).toBe(kind);
        await registry.setAlias(name, "champion", v.version, {
          actor: "test",
          reason: "seed",
          action: "promote",
        });

        const config = { ...CFG, retrain: { ...CFG.retrain, model: name } };
        const r = await retrain({ store, registry, config, workDir: root, now: NOW }, "manual");
        const expected = kind === "rule" ? "rejected" : "promoted";
        expect(r, r.summary).toMatchObject({ status: expected, champion: 1, challenger: 2 });
        if (expected === "rejected") expect(r.reasons.join(" ")).toMatch(/AUC .* misses the required gain/);
        const c = await registry.store.getVersion(name, 2);
        expect(c?.kind).toBe(kind);
        expect(c?.params).toEqual(JSON.parse(JSON.stringify({ ...champ.params, seed: 5 })));
        expect(Object.keys(c?.metrics ?? {}).sort()).toEqual(["auc", "ece", "logloss", "n", "rmse"]);
        expect(c!.metrics.n).toBe(r.holdoutRows);
        expect(c!.metrics.auc).toBeGreaterThan(kind === "rule" ? 0.55 : 0.6);
        expect(c?.data.from).toBeDefined();
        expect(await registry.store.aliasTarget(name, "champion")).toBe(expected === "promoted" ? 2 : 1);
        const runs = await store.all<{ status: string }>("SELECT status FROM retrain_runs");
        expect(runs.map((x) => x.status)).toEqual([expected]);
      } finally {
        store.close();
        await opened.close();
        rmSync(root, { recursive: true, force: true });
      }
    });
  }
});
