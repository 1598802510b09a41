/**
 * Histogram-based gradient-boosted trees (Chen & Guestrin 2016, "XGBoost: A Scalable Tree Boosting System",
 * Eq. 5-7 for the leaf weight and split gain; LightGBM/XGBoost-hist style binning and histograms).
 *
 * Each round fits one regression tree to the gradients g and hessians h of the loss at the current margin:
 *   leaf weight  w* = -G / (H + lambda)                                         (Eq. 5, times learningRate)
 *   split gain   GL^2/(HL+lambda) + GR^2/(HR+lambda) - G^2/(H+lambda)           (Eq. 7 without the 1/2)
 * A split needs both children to have hessian sum >= minChildWeight, and is kept when its gain is > 1e-6 and
 * >= `gamma`. The gain omits the paper's factor 1/2 like XGBoost's implementation does, so `gamma` means the
 * same as XGBoost's.
 *
 * The split search follows XGBoost's `hist` method (1.7) so that, on the same data and parameters, the trees are
 * XGBoost's up to float rounding: the same candidate cuts (gbtBinning.ts, gbtSketch.ts); for each feature in
 * order, first every "bins 0..b left, missing right" split for ascending b (including b = last bin, which
 * separates the missing rows from all others), then, when the node has missing values, every "bins b+1.. right,
 * missing left" split for descending b; the first candidate with the largest gain wins. A node without missing
 * values for the split feature sends missing values right.
 *
 * Speed: features are binned once (gbtBinning.ts); a node's split is found from its gradient/hessian histogram;
 * only the smaller child's histogram is built from rows, the larger one is parent minus smaller.
 *
 * Input X is a Matrix (treeEnsemble.ts): Float64Array, row-major or column-major, NaN = missing.
 * The trained trees are plain `Tree` structures (raw thresholds, "x < threshold goes left", covers = hessian
 * sums), shared with TreeSHAP, export and XGBoost import.
 */
import { type BinnedMatrix, binMatrix, MISSING_BIN } from "./gbtBinning.ts";
import {
  type GbtPool,
  type GbtThreadRuntime,
  type HistItem,
  type HistogramBuilder,
  ParallelHistogramBuilder,
  type PartitionItem,
  SerialHistogramBuilder,
} from "./gbtHistogram.ts";
import { sigmoid } from "./logistic.ts";
import { mulberry32 as rng } from "./prng.ts";
import {
  allocTree,
  checkMatrix,
  leafIndex,
  type Matrix,
  predictEnsembleRaw,
  readRow,
  type Tree,
  type TreeEnsemble,
  type TreeJson,
  treeFromJson,
  treeToJson,
  validateTree,
} from "./treeEnsemble.ts";

export type GbtObjective = "squared" | "logistic";

export interface GbtParams {
  /** "squared": regression on y; "logistic": binary y in {0,1}, margin = log-odds. */
  objective: GbtObjective;
  /** Boosting rounds (trees), unless early stopping ends sooner. */
  nRounds: number;
  /** Shrinkage applied to every leaf weight, in (0, 1]. */
  learningRate: number;
  /** Maximum depth of a tree (root = depth 0), >= 1. */
  maxDepth: number;
  /** Maximum leaves per tree; 0 = no limit (depth-wise growth). With a limit, the best-gain leaf splits first. */
  maxLeaves: number;
  /** L2 regularization of leaf weights. */
  lambda: number;
  /** Minimum split gain (XGBoost's gamma / min_split_loss). */
  gamma: number;
  /** Minimum hessian sum in each child (XGBoost's min_child_weight). */
  minChildWeight: number;
  /** Fraction of rows sampled (Bernoulli, per round) to grow each tree, in (0, 1]. */
  subsample: number;
  /** Value bins per feature, 2..256 (XGBoost's max_bin; missing values are kept apart in addition). */
  maxBins: number;
  /** Stop after this many rounds without validation improvement; 0 = off. Needs `validation` in fit(). */
  earlyStoppingRounds: number;
  /** Seed of the row-sampling generator; training is deterministic given the seed. */
  seed: number;
  /**
   * Threads for binning, histograms, partitions and gradients (1 = this thread only). Results are identical
   * for any value; > 1 uses nThreads - 1 worker threads of the runtime passed to fit (`threads`,
   * training/gbtThreads.ts gbtThreads, which keeps idle pools between fits).
   */
  nThreads: number;
  /** Initial margin; null = from the data (mean of y, or log-odds of the mean for logistic). */
  baseScore: number | null;
}

export const DEFAULT_GBT_PARAMS: Readonly<GbtParams> = {
  objective: "squared",
  nRounds: 100,
  learningRate: 0.1,
  maxDepth: 6,
  maxLeaves: 0,
  lambda: 1,
  gamma: 0,
  minChildWeight: 1,
  subsample: 1,
  maxBins: 256,
  earlyStoppingRounds: 0,
  seed: 42,
  nThreads: 1,
  baseScore: null,
};

export interface GbtFitOptions {
  /** Per-row sample weights (>= 0); they multiply gradients and hessians. */
  weights?: ArrayLike<number>;
  /** Held-out set for early stopping and the validation history. */
  validation?: { X: Matrix; y: ArrayLike<number> };
  /** Called after each round (e.g. to drive a progress bar). */
  onRound?: (round: number, validLoss: number | null) => void;
  /**
   * Worker threads for nThreads > 1 (training/gbtThreads.ts gbtThreads); models/ starts none itself.
   * Ignored when nThreads is 1.
   */
  threads?: GbtThreadRuntime;
}

export interface GbtJson {
  kind: "gbt";
  version: 1;
  params: GbtParams;
  nFeatures: number;
  baseScore: number;
  bestRound: number;
  trainLoss: number[];
  validLoss: number[];
  trees: TreeJson[];
}

export class GbtParamError extends Error {
  readonly code = "GBT_PARAM";
  override readonly name = "GbtParamError";
}

export class GbtInputError extends Error {
  readonly code = "GBT_INPUT";
  override readonly name = "GbtInputError";
}

function checkParams(p: GbtParams): void {
  const bad = (name: string, rule: string, v: unknown): never => {
    throw new GbtParamError(`GBT ${name} must be ${rule} (got ${v})`);
  };
  if (p.objective !== "squared" && p.objective !== "logistic")
    bad("objective", '"squared" or "logistic"', p.objective);
  if (!Number.isInteger(p.nRounds) || p.nRounds < 1) bad("nRounds", "an integer >= 1", p.nRounds);
  if (!(p.learningRate > 0 && p.learningRate <= 1)) bad("learningRate", "in (0, 1]", p.learningRate);
  if (!Number.isInteger(p.maxDepth) || p.maxDepth < 1 || p.maxDepth > 30)
    bad("maxDepth", "an integer in 1..30", p.maxDepth);
  if (!Number.isInteger(p.maxLeaves) || p.maxLeaves === 1 || p.maxLeaves < 0)
    bad("maxLeaves", "0 or an integer >= 2", p.maxLeaves);
  if (!(p.lambda >= 0)) bad("lambda", ">= 0", p.lambda);
  if (!(p.gamma >= 0)) bad("gamma", ">= 0", p.gamma);
  if (!(p.minChildWeight >= 0)) bad("minChildWeight", ">= 0", p.minChildWeight);
  if (!(p.subsample > 0 && p.subsample <= 1)) bad("subsample", "in (0, 1]", p.subsample);
  if (!Number.isInteger(p.maxBins) || p.maxBins < 2 || p.maxBins > 256)
    bad("maxBins", "an integer in 2..256", p.maxBins);
  if (!Number.isInteger(p.earlyStoppingRounds) || p.earlyStoppingRounds < 0) {
    bad("earlyStoppingRounds", "an integer >= 0", p.earlyStoppingRounds);
  }
  if (!Number.isInteger(p.seed)) bad("seed", "an integer", p.seed);
  if (!Number.isInteger(p.nThreads) || p.nThreads < 1 || p.nThreads > 64)
    bad("nThreads", "an integer in 1..64", p.nThreads);
  if (p.baseScore !== null && !Number.isFinite(p.baseScore)) bad("baseScore", "finite or null", p.baseScore);
}

/** Mean loss at margins `m`: squared error, or log-loss for logistic (computed stably from the margin). */
function meanLoss(
  objective: GbtObjective,
  y: ArrayLike<number>,
  m: Float64Array,
  w: Float64Array | null,
): number {
  let s = 0;
  let sw = 0;
  for (let i = 0; i < m.length; i++) {
    const wi = w === null ? 1 : w[i]!;
    const mi = m[i]!;
    let l: number;
    if (objective === "squared") {
      const d = mi - y[i]!;
      l = d * d;
    } else {
      // log(1 + e^m) - y m, written to avoid overflow for large |m|.
      l = Math.max(mi, 0) + Math.log1p(Math.exp(-Math.abs(mi))) - y[i]! * mi;
    }
    s += wi * l;
    sw += wi;
  }
  return s / sw;
}

/** Open nodes split per step of grow() without a leaf limit (see there). */
const GROW_BATCH = 8;

/** Split candidate of a node during growth. */
interface Candidate {
  node: number;
  start: number;
  end: number;
  depth: number;
  G: number;
  H: number;
  hist: Float64Array;
  gain: number;
  feature: number;
  bin: number;
  defaultLeft: boolean;
  GL: number;
  HL: number;
}

/** Growth-time tree in growable JS arrays; converted to a typed `Tree` at the end. */
class TreeBuilder {
  feature: number[] = [];
  threshold: number[] = [];
  left: number[] = [];
  right: number[] = [];
  defaultLeft: number[] = [];
  value: number[] = [];
  cover: number[] = [];
  splitBin: number[] = [];
  start: number[] = [];
  end: number[] = [];

  add(value: number, cover: number, start: number, end: number): number {
    this.feature.push(-1);
    this.threshold.push(0);
    this.left.push(-1);
    this.right.push(-1);
    this.defaultLeft.push(0);
    this.value.push(value);
    this.cover.push(cover);
    this.splitBin.push(-1);
    this.start.push(start);
    this.end.push(end);
    return this.feature.length - 1;
  }

  build(): Tree {
    const t = allocTree(this.feature.length);
    t.feature.set(this.feature);
    t.threshold.set(this.threshold);
    t.left.set(this.left);
    t.right.set(this.right);
    t.defaultLeft.set(this.defaultLeft);
    t.value.set(this.value);
    t.cover.set(this.cover);
    return t;
  }
}

/** Everything one fit() needs, allocated once and reused every round. */
class Trainer {
  readonly n: number;
  readonly nCols: number;
  /** Byte columns per row of `bins` (features + missing indicators). */
  readonly stride: number;
  readonly rowIdx: Uint32Array;
  /** Interleaved gradient/hessian: gh[2r] = g_r, gh[2r+1] = h_r. */
  readonly gh: Float64Array;
  /** Row-major bin codes (the histogram builder's copy, shared with its threads). */
  readonly bins: Uint8Array;
  private readonly hb: HistogramBuilder;

  constructor(
    readonly data: BinnedMatrix,
    readonly p: GbtParams,
    pool: GbtPool | null,
  ) {
    this.n = data.nRows;
    this.nCols = data.nCols;
    this.stride = data.stride;
    // Open candidates hold histograms: with batches of GROW_BATCH at most ~GROW_BATCH per depth are left
    // behind, plus a batch's children (maxLeaves: at most maxLeaves). Beyond the arena, histograms are private
    // buffers built by the calling thread.
    const slots = Math.min(p.maxLeaves > 0 ? p.maxLeaves + 2 : GROW_BATCH * (p.maxDepth + 3), 128);
    this.hb =
      pool !== null
        ? new ParallelHistogramBuilder(data.bins, this.n, data.stride, pool, slots)
        : new SerialHistogramBuilder(data.bins, this.n, data.stride);
    this.rowIdx = this.hb.rowIdx;
    this.gh = this.hb.gh;
    this.bins = this.hb.bins;
    const lastOk = new Uint8Array(this.nCols);
    // The missing-only split needs a threshold above every value; a last cut of +Infinity (a +Infinity value,
    // or a float32 overflow) cannot send +Infinity left, so it is not offered.
    for (let f = 0; f < this.nCols; f++) lastOk[f] = data.cuts[f]!.at(-1)! < Number.POSITIVE_INFINITY ? 1 : 0;
    this.hb.configureSplits({
      nFeat: this.nCols,
      nBins: data.nBins,
      hasMissing: data.hasMissing,
      missingCol: data.missingCol,
      lastOk,
      lambda: p.lambda,
      gamma: p.gamma,
      minChildWeight: p.minChildWeight,
    });
  }

  close(): void {
    this.hb.close();
  }

  private takeHist(): Float64Array {
    return this.hb.take();
  }

  private releaseHist(h: Float64Array): void {
    this.hb.release(h);
  }

  /**
   * Sums g and h per (byte column, code) over rows rowIdx[start..end) (`all`: the rows are exactly 0..n-1);
   * with `parent`, the parent's histogram becomes parent - hist.
   */
  private buildHist(
    hist: Float64Array,
    start: number,
    end: number,
    all: boolean,
    parent: Float64Array | null,
  ): void {
    this.hb.build(hist, start, end, all, parent);
  }

  /** Margins of the training rows (shared with the histogram builder's threads). */
  get margin(): Float64Array {
    return this.hb.margin;
  }

  setTargets(y: ArrayLike<number>, w: Float64Array | null): void {
    this.hb.setTargets(y, w, this.p.objective === "logistic");
  }

  /** g and h of every row at the current margins into gh; returns the mean loss there. */
  gradients(): number {
    return this.hb.gradients();
  }

  /** Adds every leaf's value to the margins of its rows (leaf ranges of rowIdx covering 0..nSample). */
  addLeaves(tb: TreeBuilder, nSample: number): void {
    let nLeaves = 0;
    for (let i = 0; i < tb.feature.length; i++) if (tb.feature[i]! < 0) nLeaves++;
    const buf = this.hb.leafBuffer(nLeaves);
    let j = 0;
    for (let i = 0; i < tb.feature.length; i++) {
      if (tb.feature[i]! >= 0) continue;
      buf[3 * j] = tb.start[i]!;
      buf[3 * j + 1] = Math.min(tb.end[i]!, nSample);
      buf[3 * j + 2] = tb.value[i]!;
      j++;
    }
    this.hb.addLeaves(nLeaves, nSample);
  }

  /** The partition of a candidate's rows by its split (rows going left first; see HistogramBuilder). */
  private partitionItem(c: Candidate): PartitionItem {
    const side = new Uint8Array(256);
    const f = c.feature;
    const mc = this.data.missingCol[f]!;
    const missLeft = c.defaultLeft ? 1 : 0;
    // Code MISSING_BIN is the missing code unless the feature has an indicator (or no missing values).
    const codeMissing = mc < 0 && this.data.hasMissing[f] === 1;
    for (let b = 0; b < 256; b++) side[b] = b === MISSING_BIN && codeMissing ? missLeft : b <= c.bin ? 1 : 0;
    return { start: c.start, end: c.end, f, side, mc, missLeft };
  }

  /** Split search for candidates (in order); a candidate without a split gets gain -Infinity. */
  private findSplits(cs: Candidate[]): void {
    if (cs.length === 0) return;
    const res = this.hb.splitMany(cs.map((c) => ({ hist: c.hist, G: c.G, H: c.H })));
    cs.forEach((c, i) => {
      const o = 6 * i;
      c.gain = res[o]!;
      c.feature = res[o + 1]!;
      c.bin = res[o + 2]!;
      c.defaultLeft = res[o + 3] === 1;
      c.GL = res[o + 4]!;
      c.HL = res[o + 5]!;
    });
  }

  private canSplit(depth: number, H: number, count: number): boolean {
    return depth < this.p.maxDepth && H >= 2 * this.p.minChildWeight && count >= 2;
  }

  /**
   * Grows one tree on rows rowIdx[0..nSample) (gradients already in gh). Returns the builder, whose leaf
   * ranges index rowIdx.
   *
   * Without a leaf limit, up to GROW_BATCH open nodes are split per step (the last ones opened): their row
   * partitions, their children's histograms and the children's split searches each run as one batch on the
   * threads. Splits are node-local, so the batching changes only the order in which nodes are numbered, and
   * the batches are the same for any thread count. With a leaf limit the best-gain leaf splits first, one
   * per step.
   */
  grow(nSample: number, all: boolean): TreeBuilder {
    const { lambda, learningRate: lr, maxLeaves } = this.p;
    const tb = new TreeBuilder();
    let G = 0;
    let H = 0;
    const { gh, rowIdx } = this;
    for (let k = 0; k < nSample; k++) {
      const r = rowIdx[k]!;
      G += gh[2 * r]!;
      H += gh[2 * r + 1]!;
    }
    const root = tb.add((-G / (H + lambda)) * lr, H, 0, nSample);
    const open: Candidate[] = [];
    const candidate = (
      node: number,
      start: number,
      end: number,
      depth: number,
      g: number,
      h: number,
      hist: Float64Array,
    ): Candidate => ({
      node,
      start,
      end,
      depth,
      G: g,
      H: h,
      hist,
      gain: 0,
      feature: -1,
      bin: -1,
      defaultLeft: false,
      GL: 0,
      HL: 0,
    });
    // Candidates whose split was searched: open if there is a split, else their histogram is freed.
    const consider = (cs: Candidate[]): void => {
      this.findSplits(cs);
      for (const c of cs) {
        if (c.gain > Number.NEGATIVE_INFINITY) open.push(c);
        else this.releaseHist(c.hist);
      }
    };
    if (this.canSplit(0, H, nSample)) {
      const hist = this.takeHist();
      this.buildHist(hist, 0, nSample, all, null);
      consider([candidate(root, 0, nSample, 0, G, H, hist)]);
    }
    let leaves = 1;
    while (open.length > 0 && (maxLeaves === 0 || leaves < maxLeaves)) {
      let batch: Candidate[];
      if (maxLeaves > 0) {
        let bi = open.length - 1;
        for (let i = 0; i < open.length; i++) if (open[i]!.gain > open[bi]!.gain) bi = i;
        batch = [open[bi]!];
        open[bi] = open[open.length - 1]!;
        open.pop();
      } else batch = open.splice(Math.max(0, open.length - GROW_BATCH));

      const mids = this.hb.partitionMany(batch.map((c) => this.partitionItem(c)));
      const builds: HistItem[] = [];
      const after: Float64Array[] = [];
      const children: Candidate[] = [];
      batch.forEach((c, i) => {
        const mid = mids[i]!;
        const GL = c.GL;
        const HL = c.HL;
        const GR = c.G - GL;
        const HR = c.H - HL;
        const li = tb.add((-GL / (HL + lambda)) * lr, HL, c.start, mid);
        const ri = tb.add((-GR / (HR + lambda)) * lr, HR, mid, c.end);
        const node = c.node;
        tb.feature[node] = c.feature;
        tb.threshold[node] = this.data.cuts[c.feature]![c.bin]!;
        tb.left[node] = li;
        tb.right[node] = ri;
        tb.defaultLeft[node] = c.defaultLeft ? 1 : 0;
        tb.splitBin[node] = c.bin;
        leaves++;

        const d = c.depth + 1;
        const nL = mid - c.start;
        const nR = c.end - mid;
        const splitL = this.canSplit(d, HL, nL);
        const splitR = this.canSplit(d, HR, nR);
        if (!splitL && !splitR) {
          this.releaseHist(c.hist);
          return;
        }
        // Subtraction trick: build one child's histogram, the other becomes parent - built. Like XGBoost, the
        // child with the smaller hessian sum is built (ties: the left one), usually the one with fewer rows.
        const small = this.takeHist();
        const leftSmaller = !(HR < HL);
        const large = c.hist;
        builds.push({
          hist: small,
          start: leftSmaller ? c.start : mid,
          end: leftSmaller ? mid : c.end,
          all: false,
          parent: large,
        });
        const histL = leftSmaller ? small : large;
        const histR = leftSmaller ? large : small;
        if (splitL) children.push(candidate(li, c.start, mid, d, GL, HL, histL));
        else after.push(histL);
        if (splitR) children.push(candidate(ri, mid, c.end, d, GR, HR, histR));
        else after.push(histR);
      });
      this.hb.buildMany(builds);
      for (const h of after) this.releaseHist(h);
      consider(children);
    }
    for (const c of open) this.releaseHist(c.hist);
    return tb;
  }

  /** Leaf reached by training row r through the binned splits (for rows outside the round's sample). */
  leafOfBinnedRow(tb: TreeBuilder, r: number): number {
    const { bins, stride } = this;
    const { hasMissing, missingCol } = this.data;
    let i = 0;
    while (tb.feature[i]! >= 0) {
      const f = tb.feature[i]!;
      const b = bins[r * stride + f]!;
      const mc = missingCol[f]!;
      const isMissing = mc >= 0 ? bins[r * stride + mc] === 1 : b === MISSING_BIN && hasMissing[f] === 1;
      const goLeft = isMissing ? tb.defaultLeft[i] === 1 : b <= tb.splitBin[i]!;
      i = goLeft ? tb.left[i]! : tb.right[i]!;
    }
    return i;
  }
}

/** Gradient-boosted regression/classification trees; see the module comment for the math. */
export class GradientBoostedTrees implements TreeEnsemble {
  readonly params: GbtParams;
  trees: Tree[] = [];
  baseScore = 0;
  nFeatures = 0;
  /** Index of the round with the best validation loss (last round without validation). */
  bestRound = -1;
  /** Mean training loss after each round (squared error or log-loss, weighted). */
  trainLoss: number[] = [];
  /** Mean validation loss after each round (empty without validation). */
  validLoss: number[] = [];

  constructor(params: Partial<GbtParams> = {}) {
    this.params = { ...DEFAULT_GBT_PARAMS, ...params };
    checkParams(this.params);
  }

  fit(X: Matrix, y: ArrayLike<number>, opts: GbtFitOptions = {}): this {
    checkMatrix(X);
    const p = this.params;
    const n = X.nRows;
    if (n < 1) throw new GbtInputError("X has no rows; fit needs at least one");
    checkLabels(y, n, p.objective, "y");
    const w = opts.weights === undefined ? null : Float64Array.from(opts.weights);
    if (w !== null) {
      if (w.length !== n) throw new GbtInputError(`weights has ${w.length} entries but X has ${n} rows`);
      for (let i = 0; i < n; i++) {
        if (!(w[i]! >= 0 && Number.isFinite(w[i]!)))
          throw new GbtInputError(`weights[${i}] must be finite and >= 0 (got ${w[i]})`);
      }
    }
    const valid = opts.validation;
    if (valid !== undefined) {
      checkMatrix(valid.X);
      if (valid.X.nCols !== X.nCols) {
        throw new GbtInputError(`validation.X has ${valid.X.nCols} columns but X has ${X.nCols}`);
      }
      checkLabels(valid.y, valid.X.nRows, p.objective, "validation.y");
    }
    if (p.earlyStoppingRounds > 0 && valid === undefined) {
      throw new GbtParamError("earlyStoppingRounds > 0 needs fit(X, y, { validation: { X, y } })");
    }

    this.nFeatures = X.nCols;
    this.baseScore = p.baseScore ?? initialMargin(p.objective, y, w);
    this.trees = [];
    this.trainLoss = [];
    this.validLoss = [];
    this.bestRound = -1;

    // The threads come first: binning runs on them too.
    const runtime = opts.threads;
    if (p.nThreads > 1 && runtime === undefined)
      throw new GbtParamError(
        `nThreads = ${p.nThreads} needs a thread runtime: fit(X, y, { threads: gbtThreads }) with gbtThreads from training/gbtThreads.ts (or nThreads: 1)`,
      );
    const pool = p.nThreads > 1 && runtime !== undefined ? runtime.acquire(p.nThreads) : null;
    let tr: Trainer;
    try {
      const binned = binMatrix(X, p.maxBins, w, pool);
      tr = new Trainer(binned, p, pool);
    } catch (e) {
      if (pool !== null) runtime!.release(pool);
      throw e;
    }
    tr.setTargets(y, w);
    const margin = tr.margin;
    margin.fill(this.baseScore);
    const inSample = new Uint8Array(n);
    const random = rng(p.seed);
    const { rowIdx } = tr;

    // Validation rows copied row-major once so each round's traversal reads contiguous memory.
    const vRows = valid === undefined ? null : toRowMajor(valid.X);
    const vMargin = valid === undefined ? null : new Float64Array(valid.X.nRows).fill(this.baseScore);
    let bestLoss = Number.POSITIVE_INFINITY;
    const nF = X.nCols;

    try {
      for (let round = 0; round < p.nRounds; round++) {
        // The loss at the current margin (after the previous round) comes out of the gradient pass for free.
        const lossBefore = tr.gradients();
        if (round > 0) this.trainLoss.push(lossBefore);
        let nSample = 0;
        if (p.subsample < 1) {
          for (let r = 0; r < n; r++) {
            const take = random() < p.subsample;
            inSample[r] = take ? 1 : 0;
            if (take) rowIdx[nSample++] = r;
          }
        } else {
          for (let r = 0; r < n; r++) rowIdx[r] = r;
          nSample = n;
        }
        const tb = tr.grow(nSample, nSample === n);
        // Training margins: sampled rows by leaf ranges, the rest through the binned splits.
        tr.addLeaves(tb, nSample);
        if (nSample < n) {
          for (let r = 0; r < n; r++)
            if (inSample[r] === 0) margin[r]! += tb.value[tr.leafOfBinnedRow(tb, r)]!;
        }
        const tree = tb.build();
        this.trees.push(tree);
        let vl: number | null = null;
        if (vRows !== null && vMargin !== null && valid !== undefined) {
          for (let r = 0; r < vMargin.length; r++) {
            vMargin[r]! += tree.value[leafIndex(tree, vRows.subarray(r * nF, (r + 1) * nF))]!;
          }
          vl = meanLoss(p.objective, valid.y, vMargin, null);
          this.validLoss.push(vl);
          if (vl < bestLoss) {
            bestLoss = vl;
            this.bestRound = round;
          }
        } else {
          this.bestRound = round;
        }
        opts.onRound?.(round, vl);
        if (p.earlyStoppingRounds > 0 && round - this.bestRound >= p.earlyStoppingRounds) break;
      }
      this.trainLoss.push(tr.gradients());
    } finally {
      tr.close();
      if (pool !== null) runtime!.release(pool);
    }
    // Keep the trees up to the best validation round (XGBoost keeps them all and records best_iteration).
    if (p.earlyStoppingRounds > 0) this.trees.length = this.bestRound + 1;
    return this;
  }

  /** Raw margins: baseScore + sum of leaf values (log-odds for logistic). */
  predictRaw(X: Matrix): Float64Array {
    this.checkFitted();
    return predictEnsembleRaw(this, X);
  }

  /** Predictions: the margin for squared loss, the probability sigmoid(margin) for logistic. */
  predict(X: Matrix): Float64Array {
    const m = this.predictRaw(X);
    if (this.params.objective === "logistic") for (let i = 0; i < m.length; i++) m[i] = sigmoid(m[i]!);
    return m;
  }

  toJSON(): GbtJson {
    return {
      kind: "gbt",
      version: 1,
      params: { ...this.params },
      nFeatures: this.nFeatures,
      baseScore: this.baseScore,
      bestRound: this.bestRound,
      trainLoss: [...this.trainLoss],
      validLoss: [...this.validLoss],
      trees: this.trees.map(treeToJson),
    };
  }

  static fromJSON(json: GbtJson): GradientBoostedTrees {
    if (json.kind !== "gbt" || json.version !== 1) {
      throw new GbtInputError(
        `expected a gbt model of version 1 (got kind ${json.kind}, version ${json.version})`,
      );
    }
    const m = new GradientBoostedTrees(json.params);
    m.nFeatures = json.nFeatures;
    m.baseScore = json.baseScore;
    m.bestRound = json.bestRound;
    m.trainLoss = [...json.trainLoss];
    m.validLoss = [...json.validLoss];
    m.trees = json.trees.map(treeFromJson);
    for (const t of m.trees) validateTree(t, m.nFeatures);
    return m;
  }

  private checkFitted(): void {
    if (this.nFeatures === 0) throw new GbtInputError("model is not fitted; call fit() or fromJSON() first");
  }
}

function checkLabels(y: ArrayLike<number>, n: number, objective: GbtObjective, name: string): void {
  if (y.length !== n) throw new GbtInputError(`${name} has ${y.length} labels but X has ${n} rows`);
  for (let i = 0; i < n; i++) {
    const v = y[i]!;
    if (objective === "logistic" ? v !== 0 && v !== 1 : !Number.isFinite(v)) {
      throw new GbtInputError(
        `${name}[${i}] = ${v}: ${objective === "logistic" ? "logistic labels must be 0 or 1" : "labels must be finite"}`,
      );
    }
  }
}

function initialMargin(objective: GbtObjective, y: ArrayLike<number>, w: Float64Array | null): number {
  let s = 0;
  let sw = 0;
  for (let i = 0; i < y.length; i++) {
    const wi = w === null ? 1 : w[i]!;
    s += wi * y[i]!;
    sw += wi;
  }
  const mean = sw > 0 ? s / sw : 0;
  if (objective === "squared") return mean;
  const q = Math.min(1 - 1e-6, Math.max(1e-6, mean));
  return Math.log(q / (1 - q));
}

function toRowMajor(X: Matrix): Float64Array {
  if (X.layout === "row") return X.data;
  const out = new Float64Array(X.nRows * X.nCols);
  const row = new Float64Array(X.nCols);
  for (let r = 0; r < X.nRows; r++) out.set(readRow(X, r, row), r * X.nCols);
  return out;
}
