/**
 * Exact path-dependent TreeSHAP: Lundberg, Erion & Lee (2018), "Consistent individualized feature attribution
 * for tree ensembles", Algorithm 2 (EXTEND / UNWIND), O(T L D^2) per row. The value function is the
 * cover-weighted conditional expectation E[f(x) | x_S] of Algorithm 1: a split on a feature in S follows x; a
 * split on a feature outside S averages both children weighted by cover(child) / cover(node).
 *
 * Guarantee (local accuracy): expectedValue + sum_i phi[i] === raw margin f(x) (up to float rounding), where
 * expectedValue = baseScore + sum over trees of E[tree | x_{}] (the empty-set expectation).
 *
 * `treeShapBruteForce` computes the same Shapley values by enumerating all 2^M subsets (tests only).
 */
import {
  checkMatrix,
  type Matrix,
  MatrixShapeError,
  readRow,
  type Tree,
  type TreeEnsemble,
  treeDepth,
} from "./treeEnsemble.ts";

export interface ShapResult {
  /** Row-major nRows x nFeatures attributions in margin space. */
  phi: Float64Array;
  /** E[f] over the training distribution encoded by the covers, baseScore included. */
  expectedValue: number;
  nRows: number;
  nFeatures: number;
}

/** Empty-set expectation of one tree (Algorithm 1 with S = {}). */
export function treeExpectation(tree: Tree): number {
  const rec = (i: number): number => {
    if (tree.feature[i]! < 0) return tree.value[i]!;
    const l = tree.left[i]!;
    const r = tree.right[i]!;
    const cl = tree.cover[l]!;
    const cr = tree.cover[r]!;
    const c = tree.cover[i]!;
    // A zero-cover node is never reached in expectation; if the covers are all zero fall back to even weights.
    if (c <= 0) return cl + cr > 0 ? (cl * rec(l) + cr * rec(r)) / (cl + cr) : 0.5 * (rec(l) + rec(r));
    return (cl * rec(l) + cr * rec(r)) / c;
  };
  return rec(0);
}

/** Expected value of the ensemble (baseScore + each tree's empty-set expectation). */
export function expectedValue(ens: TreeEnsemble): number {
  let s = ens.baseScore;
  for (const t of ens.trees) s += treeExpectation(t);
  return s;
}

/**
 * Reusable workspace for one tree depth: the "unique path" m of Algorithm 2, one segment per recursion level
 * (each level copies its parent's path so siblings see it unchanged), struct-of-arrays.
 */
class PathBuffer {
  readonly d: Int32Array;
  readonly z: Float64Array;
  readonly o: Float64Array;
  readonly w: Float64Array;
  constructor(maxDepth: number) {
    // Level k (root = 0) holds at most k + 1 elements and starts after levels 0..k-1: (D+2)(D+3)/2 suffices.
    const size = ((maxDepth + 2) * (maxDepth + 3)) / 2 + 1;
    this.d = new Int32Array(size);
    this.z = new Float64Array(size);
    this.o = new Float64Array(size);
    this.w = new Float64Array(size);
  }
}

/**
 * Algorithm 2, EXTEND: appends (pi, pz, po) to the path [off, off+len) and updates the permutation weights
 * w so that w[j] is the weight of subsets of size j among the path's features.
 */
function extend(p: PathBuffer, off: number, len: number, pz: number, po: number, pi: number): void {
  const { d, z, o, w } = p;
  d[off + len] = pi;
  z[off + len] = pz;
  o[off + len] = po;
  w[off + len] = len === 0 ? 1 : 0;
  const denom = len + 1;
  for (let i = len - 1; i >= 0; i--) {
    w[off + i + 1]! += (po * w[off + i]! * (i + 1)) / denom;
    w[off + i] = (pz * w[off + i]! * (len - i)) / denom;
  }
}

/** Algorithm 2, UNWIND: removes element k from the path [off, off+len), inverting EXTEND. Returns len - 1. */
function unwind(p: PathBuffer, off: number, len: number, k: number): number {
  const { d, z, o, w } = p;
  const l = len - 1;
  const ok = o[off + k]!;
  const zk = z[off + k]!;
  let n = w[off + l]!;
  for (let j = l - 1; j >= 0; j--) {
    if (ok !== 0) {
      const t = w[off + j]!;
      w[off + j] = (n * (l + 1)) / ((j + 1) * ok);
      n = t - (w[off + j]! * zk * (l - j)) / (l + 1);
    } else {
      w[off + j] = (w[off + j]! * (l + 1)) / (zk * (l - j));
    }
  }
  for (let j = k; j < l; j++) {
    d[off + j] = d[off + j + 1]!;
    z[off + j] = z[off + j + 1]!;
    o[off + j] = o[off + j + 1]!;
  }
  return l;
}

/** sum(UNWIND(m, k).w) without modifying the path (the same recurrence as `unwind`, accumulated). */
function unwoundSum(p: PathBuffer, off: number, len: number, k: number): number {
  const { z, o, w } = p;
  const l = len - 1;
  const ok = o[off + k]!;
  const zk = z[off + k]!;
  let n = w[off + l]!;
  let total = 0;
  for (let j = l - 1; j >= 0; j--) {
    if (ok !== 0) {
      const t = (n * (l + 1)) / ((j + 1) * ok);
      total += t;
      n = w[off + j]! - (t * zk * (l - j)) / (l + 1);
    } else {
      total += (w[off + j]! * (l + 1)) / (zk * (l - j));
    }
  }
  return total;
}

/** Algorithm 2, RECURSE, for node `node` whose parent path is [parentOff, parentOff+parentLen). */
function recurse(
  tree: Tree,
  x: ArrayLike<number>,
  phi: Float64Array,
  phiOff: number,
  p: PathBuffer,
  node: number,
  parentOff: number,
  parentLen: number,
  pz: number,
  po: number,
  pi: number,
): void {
  const off = parentOff + parentLen;
  for (let j = 0; j < parentLen; j++) {
    p.d[off + j] = p.d[parentOff + j]!;
    p.z[off + j] = p.z[parentOff + j]!;
    p.o[off + j] = p.o[parentOff + j]!;
    p.w[off + j] = p.w[parentOff + j]!;
  }
  extend(p, off, parentLen, pz, po, pi);
  let len = parentLen + 1;
  const f = tree.feature[node]!;
  if (f < 0) {
    const v = tree.value[node]!;
    for (let i = 1; i < len; i++) {
      const s = unwoundSum(p, off, len, i);
      phi[phiOff + p.d[off + i]!]! += s * (p.o[off + i]! - p.z[off + i]!) * v;
    }
    return;
  }
  const xv = x[f]!;
  const goLeft = Number.isNaN(xv) ? tree.defaultLeft[node] === 1 : xv < tree.threshold[node]!;
  const hot = goLeft ? tree.left[node]! : tree.right[node]!;
  const cold = goLeft ? tree.right[node]! : tree.left[node]!;
  let iz = 1;
  let io = 1;
  // A feature already on the path is unwound and re-entered with its fractions multiplied (Algorithm 2).
  for (let k = 1; k < len; k++) {
    if (p.d[off + k] === f) {
      iz = p.z[off + k]!;
      io = p.o[off + k]!;
      len = unwind(p, off, len, k);
      break;
    }
  }
  const c = tree.cover[node]!;
  const ch = tree.cover[hot]!;
  const cc = tree.cover[cold]!;
  const rh = c > 0 ? ch / c : 0.5;
  const rc = c > 0 ? cc / c : 0.5;
  // A branch with zero-fraction 0 and one-fraction 0 has all path weights 0: its contribution is exactly 0
  // (skipping it also avoids UNWIND dividing by that zero fraction further down).
  if (iz * rh !== 0 || io !== 0) recurse(tree, x, phi, phiOff, p, hot, off, len, iz * rh, io, f);
  if (iz * rc !== 0) recurse(tree, x, phi, phiOff, p, cold, off, len, iz * rc, 0, f);
}

/** Adds one tree's SHAP values for row `x` into phi[phiOff .. phiOff + nFeatures). */
export function treeShapTree(
  tree: Tree,
  x: ArrayLike<number>,
  phi: Float64Array,
  phiOff = 0,
  buffer?: PathBuffer,
): void {
  if (tree.feature[0]! < 0) return;
  const p = buffer ?? new PathBuffer(treeDepth(tree));
  recurse(tree, x, phi, phiOff, p, 0, 0, 0, 1, 1, -1);
}

/** TreeSHAP values of every row of `X` for the ensemble, in margin space. */
export function treeShap(ens: TreeEnsemble, X: Matrix): ShapResult {
  checkMatrix(X);
  if (X.nCols < ens.nFeatures) {
    throw new MatrixShapeError(`matrix has ${X.nCols} columns but the model uses ${ens.nFeatures} features`);
  }
  const m = ens.nFeatures;
  const phi = new Float64Array(X.nRows * m);
  let maxDepth = 0;
  for (const t of ens.trees) maxDepth = Math.max(maxDepth, treeDepth(t));
  const buffer = new PathBuffer(maxDepth);
  const row = new Float64Array(X.nCols);
  for (let r = 0; r < X.nRows; r++) {
    readRow(X, r, row);
    for (const t of ens.trees) treeShapTree(t, row, phi, r * m, buffer);
  }
  return { phi, expectedValue: expectedValue(ens), nRows: X.nRows, nFeatures: m };
}

/** Algorithm 1: E[tree(x) | x_S] with S given as a membership mask over features. */
export function conditionalExpectation(tree: Tree, x: ArrayLike<number>, inS: Uint8Array): number {
  const rec = (i: number): number => {
    const f = tree.feature[i]!;
    if (f < 0) return tree.value[i]!;
    const l = tree.left[i]!;
    const r = tree.right[i]!;
    if (inS[f] === 1) {
      const v = x[f]!;
      const goLeft = Number.isNaN(v) ? tree.defaultLeft[i] === 1 : v < tree.threshold[i]!;
      return rec(goLeft ? l : r);
    }
    const c = tree.cover[i]!;
    if (c <= 0) return 0.5 * (rec(l) + rec(r));
    return (tree.cover[l]! * rec(l) + tree.cover[r]! * rec(r)) / c;
  };
  return rec(0);
}

/**
 * Shapley values by definition: phi_i = sum over S not containing i of |S|! (M-|S|-1)! / M! (v(S+i) - v(S)),
 * v(S) = baseScore + sum_t E[t(x) | x_S]. Exponential in nFeatures; for tests (nFeatures <= ~12).
 */
export function treeShapBruteForce(ens: TreeEnsemble, x: ArrayLike<number>): Float64Array {
  const m = ens.nFeatures;
  if (m > 20) throw new MatrixShapeError(`brute-force Shapley needs nFeatures <= 20 (got ${m})`);
  const nSets = 1 << m;
  const value = new Float64Array(nSets);
  const inS = new Uint8Array(m);
  for (let s = 0; s < nSets; s++) {
    for (let i = 0; i < m; i++) inS[i] = (s >> i) & 1;
    let v = ens.baseScore;
    for (const t of ens.trees) v += conditionalExpectation(t, x, inS);
    value[s] = v;
  }
  // weight[k] = k! (M-k-1)! / M!
  const fact = [1];
  for (let i = 1; i <= m; i++) fact.push(fact[i - 1]! * i);
  const phi = new Float64Array(m);
  for (let i = 0; i < m; i++) {
    const bit = 1 << i;
    for (let s = 0; s < nSets; s++) {
      if ((s & bit) !== 0) continue;
      let k = 0;
      for (let t = s; t !== 0; t &= t - 1) k++;
      const wgt = (fact[k]! * fact[m - k - 1]!) / fact[m]!;
      phi[i]! += wgt * (value[s | bit]! - value[s]!);
    }
  }
  return phi;
}
