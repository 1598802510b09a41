/**
 * GBT benchmark: our histogram GBT vs XGBoost `hist` on the same synthetic matrix, and our TreeSHAP vs
 * XGBoost's pred_contribs on XGBoost's own trees.
 *
 *   npx tsx bench/gbt.bench.ts                      # 200k x 30, 100 rounds, depth 6, lr 0.1, 256 bins
 *   GBT_ROWS=50000 GBT_REPEAT=1 GBT_THREADS=1 npx tsx bench/gbt.bench.ts
 *
 * The label is a known nonlinear function of 6 of the 30 features plus logistic noise; features are rounded to
 * float32 so XGBoost (which works in float32) and we see identical values. AUC is measured on a held-out 25%.
 * XGBoost runs if `python3 -c "import xgboost"` works (Debian: apt-get install python3-xgboost python3-sklearn);
 * otherwise only our figures are printed. Timings are medians of GBT_REPEAT runs (wall clock, and process CPU
 * time which is steadier on a shared machine), each side with the same thread count (GBT_THREADS, default 2).
 */
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Progress } from "../bin/progress.ts";
import { GradientBoostedTrees } from "../models/gbt.ts";
import { auc } from "../models/metrics.ts";
import { rowMajor, type Tree } from "../models/treeEnsemble.ts";
import { treeShap } from "../models/treeshap.ts";
import { ensembleFromXgboostJson } from "../models/xgboostTrees.ts";
import { gbtThreads } from "../training/gbtThreads.ts";

const nRows = Number(process.env.GBT_ROWS ?? 200_000);
const nCols = Number(process.env.GBT_COLS ?? 30);
const repeat = Number(process.env.GBT_REPEAT ?? 3);
const threads = Number(process.env.GBT_THREADS ?? 2);
const params = { nRounds: 100, maxDepth: 6, learningRate: 0.1, lambda: 1, maxBins: 256, minChildWeight: 1 };
const shapRows = 2000;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** Seeded data: f(x) = sin(3 x0) + 2 x1 x2 + step(x3 > 0.2) + x4^2 - |x5| + logistic noise. */
function makeData(n: number, d: number): { X: Float64Array; y: Float64Array } {
  let s = 12345;
  const rnd = (): number => {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    return (s + 0.5) / 4294967296;
  };
  const X = new Float64Array(n * d);
  const y = new Float64Array(n);
  for (let r = 0; r < n; r++) {
    const o = r * d;
    for (let c = 0; c < d; c++) X[o + c] = Math.fround(rnd() * 2 - 1);
    // 2% missing in x3 so the default-direction path is exercised.
    if (rnd() < 0.02) X[o + 3] = Number.NaN;
    const x3 = X[o + 3]!;
    const f =
      Math.sin(3 * X[o]!) +
      2 * X[o + 1]! * X[o + 2]! +
      (Number.isNaN(x3) ? 0.3 : x3 > 0.2 ? 1 : -0.5) +
      X[o + 4]! ** 2 -
      Math.abs(X[o + 5]!);
    const u = rnd();
    y[r] = f + Math.log(u / (1 - u)) > 0.2 ? 1 : 0;
  }
  return { X, y };
}

/**
 * Walks our tree and XGBoost's from the root together: a tree counts as identical when every node has the same
 * split feature, the same threshold as float32 and the same default direction (leaf values are compared
 * separately: XGBoost computes them in float32).
 */
function compareTrees(
  ours: readonly Tree[],
  xgb: readonly Tree[],
): { identical: number; maxLeafDiff: number; first: number } {
  let identical = 0;
  let maxLeafDiff = 0;
  let first = -1;
  for (let k = 0; k < Math.min(ours.length, xgb.length); k++) {
    const a = ours[k]!;
    const b = xgb[k]!;
    const same = (i: number, j: number): boolean => {
      const leafA = a.feature[i]! < 0;
      if (leafA !== b.left[j]! < 0) return false;
      if (leafA) {
        maxLeafDiff = Math.max(maxLeafDiff, Math.abs(a.value[i]! - b.value[j]!));
        return true;
      }
      if (a.feature[i] !== b.feature[j] || a.defaultLeft[i] !== b.defaultLeft[j]) return false;
      if (Math.fround(a.threshold[i]!) !== Math.fround(b.threshold[j]!)) return false;
      return same(a.left[i]!, b.left[j]!) && same(a.right[i]!, b.right[j]!);
    };
    if (same(0, 0)) identical++;
    else if (first < 0) first = k;
  }
  return { identical, maxLeafDiff, first };
}

function findPython(): string | null {
  for (const py of ["python3", "/usr/bin/python3"]) {
    const r = spawnSync(py, ["-c", "import xgboost, numpy"], { stdio: "ignore" });
    if (r.status === 0) return py;
  }
  return null;
}

const PY = `
import sys, json, time, numpy as np, xgboost as xgb
d = sys.argv[1]; cfg = json.load(open(d + "/cfg.json"))
n, m, nt = cfg["nTrain"], cfg["nCols"], cfg["nTest"]
Xtr = np.fromfile(d + "/xtr.f64").reshape(n, m); ytr = np.fromfile(d + "/ytr.f64")
Xte = np.fromfile(d + "/xte.f64").reshape(nt, m)
p = {"objective": "binary:logistic", "tree_method": "hist", "max_depth": cfg["maxDepth"], "eta": cfg["learningRate"],
     "lambda": cfg["lambda"], "max_bin": cfg["maxBins"], "min_child_weight": cfg["minChildWeight"], "gamma": 0,
     "base_score": float(ytr.mean()), "nthread": cfg["threads"]}
times = []; cpu = []
for _ in range(cfg["repeat"]):
    t = time.perf_counter(); c = time.process_time()
    b = xgb.train(p, xgb.DMatrix(Xtr, label=ytr, nthread=cfg["threads"]), cfg["nRounds"])
    times.append(time.perf_counter() - t); cpu.append(time.process_time() - c)
b.predict(xgb.DMatrix(Xte), output_margin=True).astype(np.float64).tofile(d + "/xgb_margin.f64")
b.save_model(d + "/xgb_model.json")
ds = xgb.DMatrix(Xte[: cfg["shapRows"]])
t = time.perf_counter(); c = b.predict(ds, pred_contribs=True); shap_t = time.perf_counter() - t
c.astype(np.float64).tofile(d + "/xgb_contribs.f64")
print(json.dumps({"times": times, "cpu": sorted(cpu)[len(cpu) // 2], "shapSec": shap_t, "version": xgb.__version__}))
`;

function main(): void {
  const nTrain = Math.floor(nRows * 0.75);
  const nTest = nRows - nTrain;
  const t0 = performance.now();
  const { X, y } = makeData(nRows, nCols);
  const Xtr = X.subarray(0, nTrain * nCols);
  const ytr = y.subarray(0, nTrain);
  const Xte = X.subarray(nTrain * nCols);
  const yte = y.subarray(nTrain);
  console.log(
    `data: ${nTrain} train + ${nTest} test rows x ${nCols} features, positives ${(
      (100 * ytr.reduce((a, b) => a + b, 0)) / nTrain
    ).toFixed(1)}%, generated in ${((performance.now() - t0) / 1000).toFixed(1)}s`,
  );
  console.log(
    `params: ${params.nRounds} rounds, depth ${params.maxDepth}, lr ${params.learningRate}, lambda ${params.lambda}, ` +
      `${params.maxBins} bins, threads ${threads}, repeat ${repeat}`,
  );

  const ours: number[] = [];
  const oursCpu: number[] = [];
  let model: GradientBoostedTrees | null = null;
  for (let k = 0; k < repeat; k++) {
    const bar = new Progress(`gbt fit ${k + 1}/${repeat}`, params.nRounds);
    const t = performance.now();
    const c0 = process.cpuUsage();
    model = new GradientBoostedTrees({ ...params, objective: "logistic", nThreads: threads }).fit(
      rowMajor(Xtr, nTrain, nCols),
      ytr,
      { onRound: () => bar.tick(), threads: gbtThreads },
    );
    ours.push((performance.now() - t) / 1000);
    const c1 = process.cpuUsage(c0);
    oursCpu.push((c1.user + c1.system) / 1e6);
    bar.finish();
  }
  const ourAuc = auc(yte, model!.predictRaw(rowMajor(Xte, nTest, nCols)));
  const ourTime = median(ours);
  console.log(
    `ours:    fit ${ourTime.toFixed(2)}s (runs ${ours.map((v) => v.toFixed(2)).join(", ")}; cpu ${median(oursCpu).toFixed(2)}s), test AUC ${ourAuc.toFixed(5)}`,
  );

  const py = findPython();
  if (py === null) {
    console.log("xgboost: not available (python3 -c 'import xgboost' failed); no ratio");
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), "gbt-bench-"));
  try {
    writeFileSync(join(dir, "xtr.f64"), Xtr);
    writeFileSync(join(dir, "ytr.f64"), ytr);
    writeFileSync(join(dir, "xte.f64"), Xte);
    writeFileSync(
      join(dir, "cfg.json"),
      JSON.stringify({ ...params, nTrain, nTest, nCols, threads, repeat, shapRows }),
    );
    writeFileSync(join(dir, "run.py"), PY);
    const out = execFileSync(py, [join(dir, "run.py"), dir], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "inherit"],
    });
    const res = JSON.parse(out.trim().split("\n").at(-1)!) as {
      times: number[];
      cpu: number;
      shapSec: number;
      version: string;
    };
    const readF64 = (f: string): Float64Array => {
      const b = readFileSync(join(dir, f));
      return new Float64Array(b.buffer, b.byteOffset, b.byteLength / 8);
    };
    const xgbAuc = auc(yte, readF64("xgb_margin.f64"));
    const xgbTime = median(res.times);
    console.log(
      `xgboost ${res.version}: fit ${xgbTime.toFixed(2)}s (runs ${res.times.map((v) => v.toFixed(2)).join(", ")}; cpu ${res.cpu.toFixed(2)}s), test AUC ${xgbAuc.toFixed(5)}`,
    );
    console.log(
      `ratio:   time ours/xgboost ${(ourTime / xgbTime).toFixed(2)}x (target <= 1.5), AUC ours - xgboost ${(ourAuc - xgbAuc).toFixed(5)} (target |d| <= 0.003)`,
    );

    const ens = ensembleFromXgboostJson(JSON.parse(readFileSync(join(dir, "xgb_model.json"), "utf8")));
    const cmp = compareTrees(model!.trees, ens.trees);
    console.log(
      `trees:   ${cmp.identical}/${ens.trees.length} identical to XGBoost's (features, float32 thresholds, default ` +
        `directions)${cmp.first >= 0 ? `, first difference in tree ${cmp.first}` : ""}; max |leaf difference| on ` +
        `identical trees ${cmp.maxLeafDiff.toExponential(2)}`,
    );

    // TreeSHAP on XGBoost's own trees vs its pred_contribs.
    const contribs = readF64("xgb_contribs.f64");
    const Xs = rowMajor(Xte.subarray(0, shapRows * nCols), shapRows, nCols);
    const t = performance.now();
    const shap = treeShap(ens, Xs);
    const shapSec = (performance.now() - t) / 1000;
    let maxDiff = 0;
    for (let r = 0; r < shapRows; r++) {
      for (let c = 0; c < nCols; c++) {
        maxDiff = Math.max(maxDiff, Math.abs(shap.phi[r * nCols + c]! - contribs[r * (nCols + 1) + c]!));
      }
      maxDiff = Math.max(maxDiff, Math.abs(shap.expectedValue - contribs[r * (nCols + 1) + nCols]!));
    }
    console.log(
      `treeshap: ${shapRows} rows x ${ens.trees.length} XGBoost trees, max |ours - pred_contribs| ${maxDiff.toExponential(2)} ` +
        `(target 1e-6); ours ${shapSec.toFixed(2)}s (1 thread) vs xgboost ${res.shapSec.toFixed(2)}s`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main();
