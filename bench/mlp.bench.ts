/**
 * MLP training time and quality on synthetic data, plus integrated-gradients cost and completeness.
 * Labels are Bernoulli draws from a known nonlinear logit over 8 of the features (the rest are noise), so the
 * oracle's log-loss/AUC bound what any model can reach; a logistic model (hidden: []) is the anchor.
 *   npx tsx bench/mlp.bench.ts [rows=100000] [cols=30] [--backend=cpu] [--no-anchor]
 * Figures go to docs/benchmarks.md ("MLP").
 */
import { Progress } from "../bin/progress.ts";
import { integratedGradients } from "../models/integratedGradients.ts";
import { auc, logloss } from "../models/metrics.ts";
import { type FeatureMatrix, MlpRegressor } from "../models/mlp.ts";
import { mulberry32 as rng } from "../models/prng.ts";
import { loadTf } from "../training/tfRuntime.ts";

const positional = process.argv.slice(2).filter((a) => !a.startsWith("--"));
const rows = Number(positional[0] ?? 100_000);
const cols = Number(positional[1] ?? 30);
const backend = process.argv.includes("--backend=cpu") ? "cpu" : "wasm";
const anchor = !process.argv.includes("--no-anchor");

const sig = (v: number) => 1 / (1 + Math.exp(-v));

function dataset(n: number, seed: number): { X: FeatureMatrix; y: Float64Array; p: Float64Array } {
  const r = rng(seed);
  const normal = () => Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
  const data = new Float64Array(n * cols);
  const y = new Float64Array(n);
  const p = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const x = data.subarray(i * cols, (i + 1) * cols);
    for (let c = 0; c < cols; c++) x[c] = normal();
    const logit =
      1.5 * Math.tanh(x[0]! + x[1]!) -
      0.6 * x[2]! * x[3]! +
      0.8 * x[4]! -
      0.7 * Math.abs(x[5]!) +
      0.5 * Math.max(0, x[6]!) -
      0.4 * x[7]! +
      0.3;
    p[i] = sig(logit);
    y[i] = r() < p[i]! ? 1 : 0;
  }
  return { X: { data, nRows: n, nCols: cols, layout: "row" }, y, p };
}

const train = dataset(rows, 1);
const test = dataset(20_000, 2);
console.log(`data: ${rows} x ${cols} train, 20000 test; backend ${backend}`);

async function fitTimed(label: string, params: ConstructorParameters<typeof MlpRegressor>[0]) {
  const progress = new Progress(label, params?.maxEpochs ?? 100);
  const t0 = performance.now();
  const m = await new MlpRegressor(params).fit(train.X, train.y, {
    tf: await loadTf(backend),
    onEpoch: (log) => progress.set(log.epoch + 1),
  });
  const secs = (performance.now() - t0) / 1000;
  progress.finish();
  const t = m.training!;
  const pt = m.predict(test.X);
  console.log(
    `${label}: ${secs.toFixed(1)} s, ${t.epochsRun} epochs (${(secs / t.epochsRun).toFixed(2)} s/epoch), best epoch ${t.bestEpoch}, backend ${t.backend}${t.backendNote ? ` (${t.backendNote})` : ""}; test logloss ${logloss(test.y, pt).toFixed(4)} AUC ${auc(test.y, pt).toFixed(4)}`,
  );
  return m;
}

const { tf } = await loadTf(backend);
const tensorsBefore = tf.memory().numTensors;
const mlp = await fitTimed("mlp [32,16] relu", {});
if (anchor) await fitTimed("logistic (hidden [])", { hidden: [] });
console.log(
  `oracle (true p): test logloss ${logloss(test.y, test.p).toFixed(4)} AUC ${auc(test.y, test.p).toFixed(4)}`,
);
console.log(`tfjs tensors alive after training: ${tf.memory().numTensors - tensorsBefore} (0 = no leak)`);

let t0 = performance.now();
const a = mlp.predict(test.X);
const tTyped = performance.now() - t0;
t0 = performance.now();
const b = await mlp.predictTf(test.X, await loadTf(backend));
const tTf = performance.now() - t0;
let worst = 0;
for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
console.log(
  `predict 20000 rows: typed-array ${tTyped.toFixed(0)} ms, tfjs ${tTf.toFixed(0)} ms; max |diff| ${worst.toExponential(2)}`,
);

// Integrated gradients on 1000 test rows against the training mean.
const net = mlp.network!;
const nIg = 1000;
const stats = (method: "exact" | "trapezoid", steps = 64) => {
  let worstRel = 0;
  let worstAbs = 0;
  let pieces = 0;
  const rel: number[] = [];
  const t = performance.now();
  for (let i = 0; i < nIg; i++) {
    const x = test.X.data.subarray(i * cols, (i + 1) * cols);
    const ig = integratedGradients(net, x, { method, steps });
    pieces += ig.steps;
    const delta = Math.abs(ig.value - ig.baselineValue);
    worstAbs = Math.max(worstAbs, Math.abs(ig.gap));
    // Relative error is meaningless when f(x) ~ f(baseline); rows with |delta| < 0.01 count only in worstAbs.
    if (delta >= 0.01) {
      rel.push(Math.abs(ig.gap) / delta);
      worstRel = Math.max(worstRel, Math.abs(ig.gap) / delta);
    }
  }
  const ms = (performance.now() - t) / nIg;
  rel.sort((p, q) => p - q);
  const median = rel[Math.floor(rel.length / 2)] ?? Number.NaN;
  console.log(
    `IG ${method}${method === "trapezoid" ? ` m=${steps}` : ""}: ${ms.toFixed(3)} ms/row, avg ${(pieces / nIg).toFixed(1)} ${method === "exact" ? "linear pieces" : "steps"}; completeness |gap|/|f(x)-f(b)| median ${median.toExponential(2)} worst ${worstRel.toExponential(2)} (${rel.length} rows with |delta| >= 0.01); worst |gap| ${worstAbs.toExponential(2)}`,
  );
};
stats("exact");
stats("trapezoid", 64);
stats("trapezoid", 256);
