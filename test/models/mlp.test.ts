import { beforeAll, describe, expect, it } from "vitest";
import {
  type FeatureMatrix,
  MlpConfigError,
  MlpInputError,
  type MlpJSON,
  type MlpNetwork,
  MlpNotFittedError,
  MlpRegressor,
  mlpForward,
} from "../../models/mlp.ts";
import { mulberry32 as rng } from "../../models/prng.ts";
import { loadTf } from "../../training/tfRuntime.ts";

/** tfjs is injected (models/ never loads it): the WASM backend, falling back to cpu. */
const TF = await loadTf();

const sig = (v: number) => 1 / (1 + Math.exp(-v));

/** X uniform in [-2, 2]^d (row-major), y = sigmoid(2 x0 - x1) (x2.. are distractors). */
function smoothTask(n: number, d: number, seed: number): { X: FeatureMatrix; y: Float64Array } {
  const r = rng(seed);
  const data = new Float64Array(n * d);
  const y = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < d; c++) data[i * d + c] = 4 * r() - 2;
    y[i] = sig(2 * data[i * d]! - data[i * d + 1]!);
  }
  return { X: { data, nRows: n, nCols: d, layout: "row" }, y };
}

describe("mlpForward (typed arrays, no tfjs)", () => {
  it("matches a hand-computed 2-2-1 ReLU network with standardisation", () => {
    // z = ((1-1)/2, (5-3)/1) = (0, 2); hidden pre = [0*1 + 2*(-1) + 0.5, 0*2 + 2*1 - 1] = [-1.5, 1]
    // relu -> [0, 1]; margin = 0*3 + 1*(-2) + 0.25 = -1.75; sigmoid(-1.75) = 0.148047...
    const net: MlpNetwork = {
      activation: "relu",
      output: "sigmoid",
      mean: Float64Array.of(1, 3),
      std: Float64Array.of(2, 1),
      layers: [
        { nIn: 2, nOut: 2, W: Float64Array.of(1, 2, -1, 1), b: Float64Array.of(0.5, -1) },
        { nIn: 2, nOut: 1, W: Float64Array.of(3, -2), b: Float64Array.of(0.25) },
      ],
    };
    expect(mlpForward(net, [1, 5])).toBeCloseTo(1 / (1 + Math.exp(1.75)), 14);
    // A missing input is imputed with the training mean: x0 = NaN behaves like x0 = 1.
    expect(mlpForward(net, [Number.NaN, 5])).toBe(mlpForward(net, [1, 5]));
    // tanh hidden layer, linear output: pre = [-1.5, 1] -> tanh; margin = 3 tanh(-1.5) - 2 tanh(1) + 0.25
    const tanhNet: MlpNetwork = { ...net, activation: "tanh", output: "linear" };
    expect(mlpForward(tanhNet, [1, 5])).toBeCloseTo(3 * Math.tanh(-1.5) - 2 * Math.tanh(1) + 0.25, 14);
  });
});

describe("MlpRegressor", () => {
  const train = smoothTask(2000, 3, 1);
  const test = smoothTask(1000, 3, 2);
  let model: MlpRegressor;
  beforeAll(async () => {
    model = await new MlpRegressor({ learningRate: 1e-2, batchSize: 128, maxEpochs: 40, patience: 8 }).fit(
      train.X,
      train.y,
      { featureNames: ["x0", "x1", "x2"], tf: TF },
    );
  });

  it("trains on the WASM backend", () => {
    expect(model.training!.backend).toBe("wasm");
    expect(model.training!.backendNote).toBeNull();
  });

  it("learns y = sigmoid(2 x0 - x1) to an RMSE below 0.02 on fresh inputs", () => {
    const p = model.predict(test.X);
    let se = 0;
    for (let i = 0; i < p.length; i++) se += (p[i]! - test.y[i]!) ** 2;
    expect(Math.sqrt(se / p.length)).toBeLessThan(0.02);
  });

  it("typed-array forward pass agrees with the tfjs forward pass within 1e-5", async () => {
    const a = model.predict(test.X);
    const b = await model.predictTf(test.X, TF);
    let worst = 0;
    for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
    expect(worst).toBeLessThan(1e-5);
    expect(worst).toBeGreaterThan(0); // float32 (tfjs) vs float64: equal only if one path were skipped
  });

  it("survives a JSON round trip with identical predictions", () => {
    const json = JSON.parse(JSON.stringify(model.toJSON())) as MlpJSON;
    expect(json.layers.map((l) => [l.nIn, l.nOut])).toEqual([
      [3, 32],
      [32, 16],
      [16, 1],
    ]);
    const back = MlpRegressor.fromJSON(json);
    expect(back.featureNames).toEqual(["x0", "x1", "x2"]);
    expect(back.params).toEqual(model.params);
    expect(back.training).toEqual(model.training);
    expect(Array.from(back.predict(test.X))).toEqual(Array.from(model.predict(test.X)));
  });

  it("stores the training mean and std of each input", () => {
    let m0 = 0;
    for (let i = 0; i < train.X.nRows; i++) m0 += train.X.data[i * 3]!;
    m0 /= train.X.nRows;
    // The fitted mean uses the 90% training split, so it is close to (not equal to) the full mean.
    expect(model.network!.mean[0]).toBeCloseTo(m0, 1);
    // Uniform on [-2, 2] has std 4 / sqrt(12) = 1.1547.
    expect(model.network!.std[0]).toBeCloseTo(4 / Math.sqrt(12), 1);
  });

  it("rejects bad shapes, targets and options with coded errors", async () => {
    const wrongCols: FeatureMatrix = { data: new Float64Array(4), nRows: 2, nCols: 2, layout: "row" };
    expect(() => model.predict(wrongCols)).toThrow(MlpInputError);
    expect(() => new MlpRegressor({ hidden: [0] })).toThrow(MlpConfigError);
    expect(() => new MlpRegressor({ validationFraction: 1 })).toThrow(/validationFraction/);
    expect(() => new MlpRegressor().predict(test.X)).toThrow(MlpNotFittedError);
    await expect(new MlpRegressor().fit(train.X, train.y.subarray(1), { tf: TF })).rejects.toThrow(
      /one target per row/,
    );
    const bad = Float64Array.from(train.y);
    bad[5] = 1.5;
    await expect(new MlpRegressor().fit(train.X, bad, { tf: TF })).rejects.toMatchObject({
      code: "MLP_INPUT",
    });
  });
});

describe("MlpRegressor training mechanics", () => {
  it("is deterministic for a seed and differs across seeds", async () => {
    const { X, y } = smoothTask(400, 3, 3);
    const opts = { hidden: [8], maxEpochs: 5, batchSize: 64 };
    const a = await new MlpRegressor({ ...opts, seed: 7 }).fit(X, y, { tf: TF });
    const b = await new MlpRegressor({ ...opts, seed: 7 }).fit(X, y, { tf: TF });
    const c = await new MlpRegressor({ ...opts, seed: 8 }).fit(X, y, { tf: TF });
    expect(Array.from(a.predict(X))).toEqual(Array.from(b.predict(X)));
    expect(a.training!.history).toEqual(b.training!.history);
    expect(Array.from(a.predict(X))).not.toEqual(Array.from(c.predict(X)));
  });

  it("early stopping keeps the best validation epoch's weights", async () => {
    // Few noisy training rows and a wide network overfit: validation loss falls, then rises.
    const r = rng(11);
    const n = 60;
    const d = 4;
    const data = new Float64Array(n * d);
    const y = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      for (let c = 0; c < d; c++) data[i * d + c] = 4 * r() - 2;
      y[i] = r() < sig(data[i * d]!) ? 1 : 0;
    }
    const val = smoothTask(500, d, 12);
    const valY = Float64Array.from(val.X.data.filter((_, k) => k % d === 0).map(sig));
    const m = await new MlpRegressor({
      hidden: [64, 64],
      learningRate: 2e-2,
      batchSize: 16,
      maxEpochs: 200,
      patience: 5,
      l2: 0,
    }).fit({ data, nRows: n, nCols: d, layout: "row" }, y, { validation: { X: val.X, y: valY }, tf: TF });
    const t = m.training!;
    expect(t.stoppedEarly).toBe(true);
    expect(t.epochsRun).toBe(t.bestEpoch + 1 + 5);
    const losses = t.history.map((h) => h.validationLoss);
    expect(Math.min(...losses)).toBe(t.bestValidationLoss);
    expect(losses[t.bestEpoch]).toBe(t.bestValidationLoss);
    expect(losses[losses.length - 1]!).toBeGreaterThan(t.bestValidationLoss + 1e-4);
    // The kept weights reproduce the best epoch's validation loss (cross-entropy), not the last epoch's.
    const p = m.predict(val.X);
    let ce = 0;
    for (let i = 0; i < p.length; i++) {
      const q = Math.min(1 - 1e-7, Math.max(1e-7, p[i]!));
      ce -= valY[i]! * Math.log(q) + (1 - valY[i]!) * Math.log(1 - q);
    }
    expect(ce / p.length).toBeCloseTo(t.bestValidationLoss, 4);
  });

  it("fits a linear output with squared error, and releases every tfjs tensor", async () => {
    const { tf } = await loadTf();
    const before = tf.memory().numTensors;
    const r = rng(5);
    const n = 400;
    const data = new Float64Array(n * 2);
    const y = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      data[2 * i] = 10 + 5 * r(); // large offset: standardisation must handle it
      data[2 * i + 1] = r();
      y[i] = 3 * data[2 * i]! - 2 * data[2 * i + 1]! + 1;
    }
    const X: FeatureMatrix = { data, nRows: n, nCols: 2, layout: "row" };
    const m = await new MlpRegressor({
      hidden: [],
      output: "linear",
      learningRate: 0.1,
      batchSize: 50,
      maxEpochs: 30,
      l2: 0,
    }).fit(X, y, { tf: TF });
    expect(tf.memory().numTensors).toBe(before);
    // hidden: [] is linear regression: weight in raw units = W / std.
    const net = m.network!;
    expect(net.layers[0]!.W[0]! / net.std[0]!).toBeCloseTo(3, 3);
    expect(net.layers[0]!.W[1]! / net.std[1]!).toBeCloseTo(-2, 3);
    expect(m.predictOne([12, 0.5])).toBeCloseTo(36 - 1 + 1, 3);
  });

  it("trains on the cpu backend too (same seed: same model up to float32 rounding) and switches back", async () => {
    const { X, y } = smoothTask(300, 3, 4);
    const opts = { hidden: [8], maxEpochs: 3, batchSize: 50 };
    const onCpu = await new MlpRegressor(opts).fit(X, y, { tf: await loadTf("cpu") });
    const onWasm = await new MlpRegressor(opts).fit(X, y, { tf: TF });
    expect(onCpu.training!.backend).toBe("cpu");
    expect(onWasm.training!.backend).toBe("wasm");
    const { tf } = await loadTf();
    expect(tf.getBackend()).toBe("wasm");
    const a = onCpu.predict(X);
    const b = onWasm.predict(X);
    let worst = 0;
    for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
    expect(worst).toBeLessThan(1e-4);
  });

  it("accepts column-major matrices", async () => {
    const { X, y } = smoothTask(300, 2, 9);
    const col = new Float64Array(X.data.length);
    for (let i = 0; i < X.nRows; i++) for (let c = 0; c < 2; c++) col[c * X.nRows + i] = X.data[i * 2 + c]!;
    const opts = { hidden: [4], maxEpochs: 3, batchSize: 50 };
    const a = await new MlpRegressor(opts).fit(X, y, { tf: TF });
    const b = await new MlpRegressor(opts).fit({ data: col, nRows: X.nRows, nCols: 2, layout: "col" }, y, {
      tf: TF,
    });
    expect(Array.from(b.predict({ data: col, nRows: X.nRows, nCols: 2, layout: "col" }))).toEqual(
      Array.from(a.predict(X)),
    );
  });
});
