/**
 * A small multilayer perceptron (inputs -> hidden... -> 1) for mastery probabilities or regression targets.
 *
 * Two halves:
 * - `MlpRegressor.fit` trains with TensorFlow.js (WASM backend, 'cpu' fallback): Adam on mini-batches,
 *   inputs standardised with a mean/std fitted on the training rows, an L2 penalty on the weight matrices,
 *   early stopping on a validation set with patience (the best epoch's weights are kept).
 * - `mlpForward` / `predict` run the trained network on plain typed arrays with no tfjs at all, so serving
 *   and explanations (integratedGradients.ts) never load tfjs. `fit` is given a loaded tfjs (training/tfRuntime.ts).
 *
 * Missing inputs (NaN) are imputed with the training mean (0 after standardisation), because the feature
 * pipeline may emit NaN for empty windows and an MLP has no native notion of "missing".
 */
import type * as Tf from "@tensorflow/tfjs";
import { mulberry32 } from "./prng.ts";

export type Activation = "relu" | "tanh";
/** "sigmoid": outputs a probability, trained with cross-entropy (targets in [0, 1]); "linear": squared error. */
export type OutputKind = "sigmoid" | "linear";

export interface MlpParams {
  /** Widths of the hidden layers; [] gives a linear / logistic model. */
  hidden: number[];
  activation: Activation;
  output: OutputKind;
  learningRate: number;
  batchSize: number;
  maxEpochs: number;
  /** Epochs without a validation improvement before training stops. */
  patience: number;
  /** An epoch improves when its validation loss is below best - minDelta. */
  minDelta: number;
  /** Coefficient of the L2 penalty sum(W^2) added to the mean loss (biases are not penalised). */
  l2: number;
  /** Share of rows held out for early stopping when no explicit validation set is given. */
  validationFraction: number;
  seed: number;
}

export const DEFAULT_MLP_PARAMS: Readonly<MlpParams> = Object.freeze({
  hidden: [32, 16],
  activation: "relu",
  output: "sigmoid",
  learningRate: 3e-3,
  batchSize: 256,
  maxEpochs: 100,
  patience: 8,
  minDelta: 0,
  l2: 1e-5,
  validationFraction: 0.1,
  seed: 42,
});

/**
 * A dense matrix: layout "row" stores x[r][c] at r*nCols+c, "col" at c*nRows+r. NaN = missing.
 * Structurally the same as `Matrix` in treeEnsemble.ts, so one feature matrix feeds GBT and MLP alike.
 */
export interface FeatureMatrix {
  data: Float64Array;
  nRows: number;
  nCols: number;
  layout: "row" | "col";
}

/** One dense layer: out_j = b_j + sum_i in_i * W[i*nOut + j]. */
export interface MlpLayer {
  nIn: number;
  nOut: number;
  W: Float64Array;
  b: Float64Array;
}

/** Everything needed to evaluate the trained network (raw input -> output). */
export interface MlpNetwork {
  activation: Activation;
  output: OutputKind;
  /** Training mean of each input (also the imputation value for NaN). */
  mean: Float64Array;
  /** Training standard deviation of each input (1 for constant inputs). */
  std: Float64Array;
  layers: MlpLayer[];
}

export interface EpochLog {
  epoch: number;
  /** Mean penalised training loss over the epoch's mini-batches. */
  trainLoss: number;
  /** Unpenalised validation loss (cross-entropy or squared error). */
  validationLoss: number;
}

export interface MlpTrainingLog {
  backend: string;
  /** Why the WASM backend was not used, when it was not. */
  backendNote: string | null;
  bestEpoch: number;
  bestValidationLoss: number;
  epochsRun: number;
  stoppedEarly: boolean;
  nTrain: number;
  nValidation: number;
  history: EpochLog[];
}

export interface MlpFitOptions {
  /** Explicit validation rows (e.g. a time-based holdout); otherwise a seeded random split. */
  validation?: { X: FeatureMatrix; y: ArrayLike<number> };
  featureNames?: readonly string[];
  /** Called after every epoch (progress bars live in the caller; models/ does no I/O). */
  onEpoch?: (log: EpochLog, maxEpochs: number) => void;
  /** tfjs with its backend (training/tfRuntime.ts loadTf("wasm" | "cpu")); models/ never loads it. */
  tf: TfHandle;
}

/**
 * Registry form: plain arrays only. Each layer's W is row-major [nIn, nOut] (ONNX Gemm's B with transB = 0);
 * the network applies (x - mean) / std first, then the layers, then the output link.
 */
export interface MlpJSON {
  kind: "mlp";
  version: 1;
  params: MlpParams;
  featureNames: string[] | null;
  activation: Activation;
  output: OutputKind;
  mean: number[];
  std: number[];
  layers: { nIn: number; nOut: number; W: number[]; b: number[] }[];
  training: MlpTrainingLog | null;
}

export class MlpConfigError extends Error {
  readonly code = "MLP_CONFIG";
  override readonly name = "MlpConfigError";
}

export class MlpInputError extends Error {
  readonly code = "MLP_INPUT";
  override readonly name = "MlpInputError";
}

export class MlpNotFittedError extends Error {
  readonly code = "MLP_NOT_FITTED";
  override readonly name = "MlpNotFittedError";
}

export class MlpJsonError extends Error {
  readonly code = "MLP_JSON";
  override readonly name = "MlpJsonError";
}

// ---------------------------------------------------------------------------------------------------------
// Pure typed-array forward pass (no tfjs).

/** Reads x[r][c] whatever the layout. */
function at(X: FeatureMatrix, r: number, c: number): number {
  return X.layout === "row" ? X.data[r * X.nCols + c]! : X.data[c * X.nRows + r]!;
}

/** Standardises one raw row into `z` (NaN -> 0, i.e. the training mean). */
export function standardizeInto(net: MlpNetwork, x: ArrayLike<number>, z: Float64Array): Float64Array {
  const d = net.mean.length;
  if (x.length !== d)
    throw new MlpInputError(`input row has ${x.length} features but the model expects ${d}`);
  for (let i = 0; i < d; i++) {
    const v = x[i]!;
    z[i] = Number.isNaN(v) ? 0 : (v - net.mean[i]!) / net.std[i]!;
  }
  return z;
}

/** Scratch buffers for one forward pass: activations[0] is the standardised input. */
export function allocActivations(net: MlpNetwork): Float64Array[] {
  const acts = [new Float64Array(net.mean.length)];
  for (const l of net.layers) acts.push(new Float64Array(l.nOut));
  return acts;
}

/**
 * Forward pass from standardised inputs already in acts[0]; fills acts[1..] and returns the output
 * pre-activation (the margin / logit). Hidden layers apply the activation; the last layer does not.
 */
export function forwardStandardized(net: MlpNetwork, acts: Float64Array[]): number {
  const L = net.layers.length;
  const relu = net.activation === "relu";
  for (let l = 0; l < L; l++) {
    const { nIn, nOut, W, b } = net.layers[l]!;
    const a = acts[l]!;
    const o = acts[l + 1]!;
    for (let j = 0; j < nOut; j++) o[j] = b[j]!;
    for (let i = 0; i < nIn; i++) {
      const ai = a[i]!;
      if (ai === 0) continue;
      const row = i * nOut;
      for (let j = 0; j < nOut; j++) o[j] = o[j]! + ai * W[row + j]!;
    }
    if (l < L - 1) {
      for (let j = 0; j < nOut; j++) o[j] = relu ? Math.max(o[j]!, 0) : Math.tanh(o[j]!);
    }
  }
  return acts[L]![0]!;
}

export function sigmoid(m: number): number {
  return m >= 0 ? 1 / (1 + Math.exp(-m)) : Math.exp(m) / (1 + Math.exp(m));
}

/** The output link: probability for "sigmoid", identity for "linear". */
export function applyOutput(net: MlpNetwork, margin: number): number {
  return net.output === "sigmoid" ? sigmoid(margin) : margin;
}

/** f(x) for one raw input row, in float64, without tfjs. */
export function mlpForward(net: MlpNetwork, x: ArrayLike<number>, acts = allocActivations(net)): number {
  standardizeInto(net, x, acts[0]!);
  return applyOutput(net, forwardStandardized(net, acts));
}

/** f(x) for every row of X. */
export function mlpForwardBatch(net: MlpNetwork, X: FeatureMatrix): Float64Array {
  const d = net.mean.length;
  if (X.nCols !== d) throw new MlpInputError(`X has ${X.nCols} columns but the model expects ${d}`);
  const acts = allocActivations(net);
  const row = new Float64Array(d);
  const out = new Float64Array(X.nRows);
  for (let r = 0; r < X.nRows; r++) {
    for (let c = 0; c < d; c++) row[c] = at(X, r, c);
    out[r] = mlpForward(net, row, acts);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// Training with tfjs.

/**
 * A loaded tfjs with its backend selected: a process resource (WASM binaries, the global backend), so
 * it is made outside models/ (training/tfRuntime.ts loadTf) and passed to MlpRegressor.fit.
 */
export interface TfHandle {
  tf: typeof Tf;
  backend: string;
  note: string | null;
}

function shuffleInPlace(idx: Uint32Array, rand: () => number): void {
  for (let i = idx.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    const t = idx[i]!;
    idx[i] = idx[j]!;
    idx[j] = t;
  }
}

function checkParams(p: MlpParams): void {
  const bad = (field: string, v: unknown, want: string) =>
    new MlpConfigError(`mlp.${field} must be ${want} (got ${JSON.stringify(v)})`);
  if (!Array.isArray(p.hidden) || p.hidden.some((h) => !Number.isInteger(h) || h < 1))
    throw bad("hidden", p.hidden, "an array of positive integers");
  if (p.activation !== "relu" && p.activation !== "tanh")
    throw bad("activation", p.activation, '"relu" or "tanh"');
  if (p.output !== "sigmoid" && p.output !== "linear") throw bad("output", p.output, '"sigmoid" or "linear"');
  if (!(p.learningRate > 0)) throw bad("learningRate", p.learningRate, "> 0");
  if (!Number.isInteger(p.batchSize) || p.batchSize < 1)
    throw bad("batchSize", p.batchSize, "an integer >= 1");
  if (!Number.isInteger(p.maxEpochs) || p.maxEpochs < 1)
    throw bad("maxEpochs", p.maxEpochs, "an integer >= 1");
  if (!Number.isInteger(p.patience) || p.patience < 1) throw bad("patience", p.patience, "an integer >= 1");
  if (!(p.minDelta >= 0)) throw bad("minDelta", p.minDelta, ">= 0");
  if (!(p.l2 >= 0)) throw bad("l2", p.l2, ">= 0");
  if (!(p.validationFraction > 0 && p.validationFraction < 1))
    throw bad("validationFraction", p.validationFraction, "in (0, 1)");
  if (!Number.isInteger(p.seed)) throw bad("seed", p.seed, "an integer");
}

function checkXy(X: FeatureMatrix, y: ArrayLike<number>, what: string, output: OutputKind): void {
  if (X.data.length !== X.nRows * X.nCols || X.nCols < 1)
    throw new MlpInputError(
      `${what}.X has ${X.data.length} values for ${X.nRows} x ${X.nCols}; fix the shape`,
    );
  if (y.length !== X.nRows)
    throw new MlpInputError(
      `${what}.y has ${y.length} values but X has ${X.nRows} rows; pass one target per row`,
    );
  for (let i = 0; i < y.length; i++) {
    const v = y[i]!;
    if (!Number.isFinite(v) || (output === "sigmoid" && (v < 0 || v > 1)))
      throw new MlpInputError(
        `${what}.y[${i}] = ${v}; targets must be finite${output === "sigmoid" ? " and in [0, 1] for a sigmoid output" : ""}`,
      );
  }
}

/** Copies the chosen rows of X, standardised, into a row-major Float32Array (tfjs's input format). */
function standardizedRows(
  X: FeatureMatrix,
  rows: ArrayLike<number>,
  mean: Float64Array,
  std: Float64Array,
): Float32Array {
  const d = X.nCols;
  const out = new Float32Array(rows.length * d);
  for (let k = 0; k < rows.length; k++) {
    const r = rows[k]!;
    for (let c = 0; c < d; c++) {
      const v = at(X, r, c);
      out[k * d + c] = Number.isNaN(v) ? 0 : (v - mean[c]!) / std[c]!;
    }
  }
  return out;
}

export class MlpRegressor {
  readonly params: MlpParams;
  network: MlpNetwork | null = null;
  training: MlpTrainingLog | null = null;
  featureNames: string[] | null = null;

  constructor(params: Partial<MlpParams> = {}) {
    this.params = {
      ...DEFAULT_MLP_PARAMS,
      ...params,
      hidden: [...(params.hidden ?? DEFAULT_MLP_PARAMS.hidden)],
    };
    checkParams(this.params);
  }

  async fit(X: FeatureMatrix, y: ArrayLike<number>, opts: MlpFitOptions): Promise<this> {
    const p = this.params;
    checkXy(X, y, "fit", p.output);
    const d = X.nCols;
    if (opts.featureNames !== undefined && opts.featureNames.length !== d)
      throw new MlpInputError(`featureNames has ${opts.featureNames.length} names but X has ${d} columns`);
    const rand = mulberry32(p.seed);

    // Rows for training and validation.
    let trainRows: Uint32Array;
    let valX: FeatureMatrix;
    let valRows: Uint32Array;
    let valY: ArrayLike<number>;
    if (opts.validation !== undefined) {
      const v = opts.validation;
      checkXy(v.X, v.y, "validation", p.output);
      if (v.X.nCols !== d) throw new MlpInputError(`validation.X has ${v.X.nCols} columns but X has ${d}`);
      trainRows = Uint32Array.from({ length: X.nRows }, (_, i) => i);
      valX = v.X;
      valRows = Uint32Array.from({ length: v.X.nRows }, (_, i) => i);
      valY = v.y;
    } else {
      const perm = Uint32Array.from({ length: X.nRows }, (_, i) => i);
      shuffleInPlace(perm, rand);
      const nVal = Math.round(X.nRows * p.validationFraction);
      valRows = perm.slice(0, nVal);
      trainRows = perm.slice(nVal);
      valX = X;
      valY = y;
    }
    const nTrain = trainRows.length;
    const nVal = valRows.length;
    if (nTrain < 1 || nVal < 1)
      throw new MlpInputError(
        `need at least one training and one validation row (got ${nTrain} and ${nVal})`,
      );

    // Standardisation fitted on the training rows only (NaN ignored).
    const mean = new Float64Array(d);
    const std = new Float64Array(d);
    for (let c = 0; c < d; c++) {
      let n = 0;
      let m = 0;
      let s = 0;
      for (let k = 0; k < nTrain; k++) {
        const v = at(X, trainRows[k]!, c);
        if (Number.isNaN(v)) continue;
        n++;
        const delta = v - m; // Welford's online update, stable for large offsets.
        m += delta / n;
        s += delta * (v - m);
      }
      mean[c] = n > 0 ? m : 0;
      const sd = n > 1 ? Math.sqrt(s / n) : 0;
      std[c] = sd > 1e-12 ? sd : 1;
    }
    const xTrain = standardizedRows(X, trainRows, mean, std);
    const yTrain = new Float32Array(nTrain);
    for (let k = 0; k < nTrain; k++) yTrain[k] = y[trainRows[k]!]!;
    const xVal = standardizedRows(valX, valRows, mean, std);
    const yVal = new Float32Array(nVal);
    for (let k = 0; k < nVal; k++) yVal[k] = valY[valRows[k]!]!;

    // Seeded init: He-uniform for ReLU layers, Glorot-uniform for tanh and the output layer.
    const widths = [d, ...p.hidden, 1];
    const init: { W: Float32Array; b: Float32Array; nIn: number; nOut: number }[] = [];
    for (let l = 0; l + 1 < widths.length; l++) {
      const nIn = widths[l]!;
      const nOut = widths[l + 1]!;
      const hiddenRelu = l + 2 < widths.length && p.activation === "relu";
      const limit = hiddenRelu ? Math.sqrt(6 / nIn) : Math.sqrt(6 / (nIn + nOut));
      const W = new Float32Array(nIn * nOut);
      for (let i = 0; i < W.length; i++) W[i] = (2 * rand() - 1) * limit;
      init.push({ W, b: new Float32Array(nOut), nIn, nOut });
    }
    // Start the output bias at the target mean (its logit for sigmoid) so early epochs fit the shape of
    // the function rather than spend Adam steps (~learningRate each) walking the bias to the mean.
    let yMean = 0;
    for (let k = 0; k < nTrain; k++) yMean += yTrain[k]!;
    yMean /= nTrain;
    if (p.output === "sigmoid") {
      const q = Math.min(1 - 1e-4, Math.max(1e-4, yMean));
      yMean = Math.log(q / (1 - q));
    }
    init[init.length - 1]!.b[0] = yMean;

    const { tf, backend, note } = opts.tf;
    // The active backend is global to tfjs: re-select ours in case a fit on another backend switched it.
    if (tf.getBackend() !== backend) await tf.setBackend(backend);
    // tidy frees the initial-value tensors (a variable keeps its own reference to the data). Variables are
    // left unnamed so concurrent fits in one process cannot collide in tfjs's global variable registry.
    const Ws = init.map((l) => tf.tidy(() => tf.variable(tf.tensor2d(l.W, [l.nIn, l.nOut]))));
    const bs = init.map((l) => tf.tidy(() => tf.variable(tf.tensor1d(l.b))));
    const optimizer = tf.train.adam(p.learningRate);
    const valXT = tf.tensor2d(xVal, [nVal, d]);
    const valYT = tf.tensor2d(yVal, [nVal, 1]);
    const last = Ws.length - 1;

    const margin = (x: Tf.Tensor2D): Tf.Tensor2D => {
      let h = x;
      for (let l = 0; l <= last; l++) {
        h = tf.add(tf.matMul(h, Ws[l]!), bs[l]!);
        if (l < last) h = p.activation === "relu" ? tf.relu(h) : tf.tanh(h);
      }
      return h;
    };
    const dataLoss = (x: Tf.Tensor2D, t: Tf.Tensor2D): Tf.Scalar =>
      p.output === "sigmoid"
        ? tf.losses.sigmoidCrossEntropy(t, margin(x)) // stable log(1+exp) form on the logits
        : tf.losses.meanSquaredError(t, margin(x));

    const history: EpochLog[] = [];
    let best = Number.POSITIVE_INFINITY;
    let bestEpoch = -1;
    let bestWeights: { W: Float32Array; b: Float32Array }[] = [];
    let sinceBest = 0;
    let stoppedEarly = false;
    const order = trainRows.map((_, i) => i);
    try {
      for (let epoch = 0; epoch < p.maxEpochs; epoch++) {
        shuffleInPlace(order, rand);
        let lossSum = 0;
        for (let start = 0; start < nTrain; start += p.batchSize) {
          const m = Math.min(p.batchSize, nTrain - start);
          const xb = new Float32Array(m * d);
          const yb = new Float32Array(m);
          for (let k = 0; k < m; k++) {
            const r = order[start + k]!;
            xb.set(xTrain.subarray(r * d, r * d + d), k * d);
            yb[k] = yTrain[r]!;
          }
          const cost = tf.tidy(() => {
            const xt = tf.tensor2d(xb, [m, d]);
            const yt = tf.tensor2d(yb, [m, 1]);
            return optimizer.minimize(() => {
              const base = dataLoss(xt, yt);
              if (p.l2 === 0) return base;
              let pen: Tf.Scalar = tf.scalar(0);
              for (const W of Ws) pen = tf.add(pen, tf.sum(tf.square(W)));
              return tf.add(base, tf.mul(pen, p.l2));
            }, true) as Tf.Scalar; // returnCost = true: never null
          });
          lossSum += cost.dataSync()[0]! * m;
          cost.dispose();
        }
        const vl = tf.tidy(() => dataLoss(valXT, valYT));
        const validationLoss = vl.dataSync()[0]!;
        vl.dispose();
        const log: EpochLog = { epoch, trainLoss: lossSum / nTrain, validationLoss };
        history.push(log);
        opts.onEpoch?.(log, p.maxEpochs);
        // Let timers and I/O run between epochs (a long fit must not freeze a server's event loop).
        await new Promise<void>((resolve) => setImmediate(resolve));
        if (tf.getBackend() !== backend) await tf.setBackend(backend);
        if (validationLoss < best - p.minDelta) {
          best = validationLoss;
          bestEpoch = epoch;
          sinceBest = 0;
          bestWeights = Ws.map((W, i) => ({
            // Copies: the cpu backend's dataSync may hand back its own buffer.
            W: Float32Array.from(W.dataSync()),
            b: Float32Array.from(bs[i]!.dataSync()),
          }));
        } else if (++sinceBest >= p.patience) {
          stoppedEarly = epoch + 1 < p.maxEpochs;
          break;
        }
      }
    } finally {
      for (const v of [...Ws, ...bs]) v.dispose();
      optimizer.dispose();
      valXT.dispose();
      valYT.dispose();
    }
    if (bestEpoch < 0)
      throw new MlpInputError(
        "validation loss was never finite; check the inputs for infinities or huge values",
      );

    this.network = {
      activation: p.activation,
      output: p.output,
      mean,
      std,
      layers: init.map((l, i) => ({
        nIn: l.nIn,
        nOut: l.nOut,
        W: Float64Array.from(bestWeights[i]!.W),
        b: Float64Array.from(bestWeights[i]!.b),
      })),
    };
    this.featureNames = opts.featureNames !== undefined ? [...opts.featureNames] : null;
    this.training = {
      backend,
      backendNote: note,
      bestEpoch,
      bestValidationLoss: best,
      epochsRun: history.length,
      stoppedEarly,
      nTrain,
      nValidation: nVal,
      history,
    };
    return this;
  }

  private net(): MlpNetwork {
    if (this.network === null)
      throw new MlpNotFittedError("the MLP has no weights yet; call fit() or fromJSON()");
    return this.network;
  }

  /** The fitted network (weights, standardisation); throws MlpNotFittedError before fit. */
  fittedNetwork(): MlpNetwork {
    return this.net();
  }

  /** Predictions for every row (float64 typed-array forward pass, no tfjs). */
  predict(X: FeatureMatrix): Float64Array {
    return mlpForwardBatch(this.net(), X);
  }

  /** Prediction for one raw row. */
  predictOne(x: ArrayLike<number>): number {
    return mlpForward(this.net(), x);
  }

  /** The same predictions computed by tfjs in float32 (to cross-check the typed-array pass). */
  async predictTf(X: FeatureMatrix, handle: TfHandle): Promise<Float64Array> {
    const net = this.net();
    const d = net.mean.length;
    if (X.nCols !== d) throw new MlpInputError(`X has ${X.nCols} columns but the model expects ${d}`);
    const { tf, backend } = handle;
    if (tf.getBackend() !== backend) await tf.setBackend(backend);
    const rows = Uint32Array.from({ length: X.nRows }, (_, i) => i);
    const xs = standardizedRows(X, rows, net.mean, net.std);
    const out = tf.tidy(() => {
      let h: Tf.Tensor2D = tf.tensor2d(xs, [X.nRows, d]);
      net.layers.forEach((l, i) => {
        h = tf.add(
          tf.matMul(h, tf.tensor2d(Float32Array.from(l.W), [l.nIn, l.nOut])),
          tf.tensor1d(Float32Array.from(l.b)),
        );
        if (i < net.layers.length - 1) h = net.activation === "relu" ? tf.relu(h) : tf.tanh(h);
      });
      return net.output === "sigmoid" ? tf.sigmoid(h) : h;
    });
    const v = Float64Array.from(out.dataSync());
    out.dispose();
    return v;
  }

  toJSON(): MlpJSON {
    const net = this.net();
    return {
      kind: "mlp",
      version: 1,
      params: { ...this.params, hidden: [...this.params.hidden] },
      featureNames: this.featureNames === null ? null : [...this.featureNames],
      activation: net.activation,
      output: net.output,
      mean: Array.from(net.mean),
      std: Array.from(net.std),
      layers: net.layers.map((l) => ({ nIn: l.nIn, nOut: l.nOut, W: Array.from(l.W), b: Array.from(l.b) })),
      training: this.training === null ? null : structuredClone(this.training),
    };
  }

  static fromJSON(json: MlpJSON): MlpRegressor {
    if (json.kind !== "mlp" || json.version !== 1)
      throw new MlpJsonError(
        `expected an MLP JSON of kind "mlp", version 1 (got ${json.kind} v${json.version})`,
      );
    const m = new MlpRegressor(json.params);
    const d = json.mean.length;
    if (json.std.length !== d) throw new MlpJsonError(`std has ${json.std.length} entries but mean has ${d}`);
    let width = d;
    json.layers.forEach((l, i) => {
      if (l.nIn !== width || l.W.length !== l.nIn * l.nOut || l.b.length !== l.nOut)
        throw new MlpJsonError(
          `layers[${i}] is ${l.nIn}x${l.nOut} with ${l.W.length} weights and ${l.b.length} biases; expected nIn=${width}, W of nIn*nOut, b of nOut`,
        );
      width = l.nOut;
    });
    if (width !== 1 || json.layers.length === 0)
      throw new MlpJsonError(
        `the last layer must have 1 output (got ${width}); the JSON is truncated or not an MLP`,
      );
    m.network = {
      activation: json.activation,
      output: json.output,
      mean: Float64Array.from(json.mean),
      std: Float64Array.from(json.std),
      layers: json.layers.map((l) => ({
        nIn: l.nIn,
        nOut: l.nOut,
        W: Float64Array.from(l.W),
        b: Float64Array.from(l.b),
      })),
    };
    m.featureNames = json.featureNames === null ? null : [...json.featureNames];
    m.training = json.training === null ? null : structuredClone(json.training);
    return m;
  }
}
