/**
 * The shared, explicit structure of an additive tree ensemble (what GBT training produces, what TreeSHAP
 * explains, what ONNX export and XGBoost import read/write), plus prediction by traversal.
 *
 * Conventions (the same as XGBoost's, so its models load without translation):
 * - a node splits on `feature[i]`; a row goes LEFT when `x < threshold[i]`, right otherwise;
 * - a missing value (NaN) goes left when `defaultLeft[i] === 1`, right otherwise;
 * - `feature[i] === -1` marks a leaf; its output is `value[i]` (learning rate already applied);
 * - `cover[i]` is the hessian sum of the training rows that reached node i (the row count for squared loss),
 *   and a parent's cover equals the sum of its children's; TreeSHAP weighs branches by these covers;
 * - node 0 is the root; the raw margin of a row is `baseScore + sum over trees of the reached leaf's value`.
 */

/** One regression tree, struct-of-arrays indexed by node id. */
export interface Tree {
  /** Split feature of each node; -1 for a leaf. */
  feature: Int32Array;
  /** Split threshold: `x < threshold` goes left. Unused (0) for leaves. */
  threshold: Float64Array;
  /** Left child id, -1 for a leaf. */
  left: Int32Array;
  /** Right child id, -1 for a leaf. */
  right: Int32Array;
  /** 1 when a missing value (NaN) follows the left branch. */
  defaultLeft: Uint8Array;
  /** Leaf output; internal nodes hold the output they would have had as a leaf (informative only). */
  value: Float64Array;
  /** Hessian sum of the training rows reaching the node (sample count for squared loss). */
  cover: Float64Array;
}

/** A sum of trees plus a constant, in margin (raw) space. */
export interface TreeEnsemble {
  trees: readonly Tree[];
  baseScore: number;
  nFeatures: number;
}

/** A dense matrix: `layout` "row" stores x[r][c] at r*nCols+c, "col" stores it at c*nRows+r. NaN = missing. */
export interface Matrix {
  data: Float64Array;
  nRows: number;
  nCols: number;
  layout: "row" | "col";
}

export class TreeStructureError extends Error {
  readonly code = "TREE_STRUCTURE";
  override readonly name = "TreeStructureError";
}

export class MatrixShapeError extends Error {
  readonly code = "MATRIX_SHAPE";
  override readonly name = "MatrixShapeError";
}

/** Wraps row-major data (x[r][c] at r*nCols+c). */
export function rowMajor(data: Float64Array, nRows: number, nCols: number): Matrix {
  return checkMatrix({ data, nRows, nCols, layout: "row" });
}

/** Wraps column-major data (x[r][c] at c*nRows+r). */
export function colMajor(data: Float64Array, nRows: number, nCols: number): Matrix {
  return checkMatrix({ data, nRows, nCols, layout: "col" });
}

export function checkMatrix(m: Matrix): Matrix {
  if (!Number.isInteger(m.nRows) || m.nRows < 0 || !Number.isInteger(m.nCols) || m.nCols < 1) {
    throw new MatrixShapeError(
      `matrix nRows/nCols must be integers with nCols >= 1 (got ${m.nRows} x ${m.nCols})`,
    );
  }
  if (m.data.length !== m.nRows * m.nCols) {
    throw new MatrixShapeError(
      `matrix data has ${m.data.length} values but nRows*nCols = ${m.nRows * m.nCols}; pass the right shape`,
    );
  }
  return m;
}

/** Value of row r, column c. */
export function cell(m: Matrix, r: number, c: number): number {
  return m.layout === "row" ? m.data[r * m.nCols + c]! : m.data[c * m.nRows + r]!;
}

/** Copies row r into `out` (length >= nCols). */
export function readRow(m: Matrix, r: number, out: Float64Array): Float64Array {
  if (m.layout === "row") {
    const o = r * m.nCols;
    for (let c = 0; c < m.nCols; c++) out[c] = m.data[o + c]!;
  } else {
    for (let c = 0; c < m.nCols; c++) out[c] = m.data[c * m.nRows + r]!;
  }
  return out;
}

/** Id of the leaf a row (features `x`) reaches. */
export function leafIndex(tree: Tree, x: ArrayLike<number>): number {
  let i = 0;
  let f = tree.feature[0]!;
  while (f >= 0) {
    const v = x[f]!;
    const goLeft = Number.isNaN(v) ? tree.defaultLeft[i] === 1 : v < tree.threshold[i]!;
    i = goLeft ? tree.left[i]! : tree.right[i]!;
    f = tree.feature[i]!;
  }
  return i;
}

/** Raw margin of the ensemble for one row. */
export function predictRowRaw(ens: TreeEnsemble, x: ArrayLike<number>): number {
  let s = ens.baseScore;
  for (const t of ens.trees) s += t.value[leafIndex(t, x)]!;
  return s;
}

/** Raw margins for every row of `X`. */
export function predictEnsembleRaw(ens: TreeEnsemble, X: Matrix): Float64Array {
  checkMatrix(X);
  if (X.nCols < ens.nFeatures) {
    throw new MatrixShapeError(`matrix has ${X.nCols} columns but the model uses ${ens.nFeatures} features`);
  }
  const out = new Float64Array(X.nRows).fill(ens.baseScore);
  const row = new Float64Array(X.nCols);
  for (let r = 0; r < X.nRows; r++) {
    readRow(X, r, row);
    let s = out[r]!;
    for (const t of ens.trees) s += t.value[leafIndex(t, row)]!;
    out[r] = s;
  }
  return out;
}

/** Depth of the deepest leaf (a lone leaf has depth 0). */
export function treeDepth(tree: Tree): number {
  let best = 0;
  const stack: number[] = [0, 0];
  while (stack.length > 0) {
    const d = stack.pop()!;
    const i = stack.pop()!;
    if (tree.feature[i]! < 0) best = Math.max(best, d);
    else stack.push(tree.left[i]!, d + 1, tree.right[i]!, d + 1);
  }
  return best;
}

/**
 * Checks that `tree` is a proper binary tree rooted at 0 (every node reached once, children in range, leaves
 * marked consistently, features < nFeatures, covers finite and >= 0). Throws TreeStructureError naming the node.
 */
export function validateTree(tree: Tree, nFeatures: number): void {
  const n = tree.feature.length;
  for (const [name, arr] of [
    ["threshold", tree.threshold],
    ["left", tree.left],
    ["right", tree.right],
    ["defaultLeft", tree.defaultLeft],
    ["value", tree.value],
    ["cover", tree.cover],
  ] as const) {
    if (arr.length !== n) {
      throw new TreeStructureError(`tree.${name} has ${arr.length} entries but tree.feature has ${n}`);
    }
  }
  if (n === 0) throw new TreeStructureError("tree has no nodes; a tree needs at least a root leaf");
  const seen = new Uint8Array(n);
  const stack = [0];
  while (stack.length > 0) {
    const i = stack.pop()!;
    if (seen[i] === 1)
      throw new TreeStructureError(`tree node ${i} is reached twice; the tree must not share nodes`);
    seen[i] = 1;
    const f = tree.feature[i]!;
    const c = tree.cover[i]!;
    if (!Number.isFinite(c) || c < 0)
      throw new TreeStructureError(`tree node ${i} has cover ${c}; need >= 0`);
    if (f < 0) {
      if (!Number.isFinite(tree.value[i]!)) {
        throw new TreeStructureError(`tree leaf ${i} has non-finite value ${tree.value[i]}`);
      }
      continue;
    }
    if (f >= nFeatures) {
      throw new TreeStructureError(`tree node ${i} splits on feature ${f} but the model has ${nFeatures}`);
    }
    const l = tree.left[i]!;
    const r = tree.right[i]!;
    if (l <= 0 || l >= n || r <= 0 || r >= n || l === r) {
      throw new TreeStructureError(`tree node ${i} has children (${l}, ${r}) outside 1..${n - 1}`);
    }
    stack.push(l, r);
  }
  const orphan = seen.indexOf(0);
  if (orphan >= 0) throw new TreeStructureError(`tree node ${orphan} is not reachable from the root`);
}

/** Allocates an empty tree with `n` nodes (all leaves of value 0). */
export function allocTree(n: number): Tree {
  return {
    feature: new Int32Array(n).fill(-1),
    threshold: new Float64Array(n),
    left: new Int32Array(n).fill(-1),
    right: new Int32Array(n).fill(-1),
    defaultLeft: new Uint8Array(n),
    value: new Float64Array(n),
    cover: new Float64Array(n),
  };
}

/** Plain-JSON form of a tree (arrays of numbers), for the registry. */
export interface TreeJson {
  feature: number[];
  threshold: number[];
  left: number[];
  right: number[];
  defaultLeft: number[];
  value: number[];
  cover: number[];
}

export function treeToJson(t: Tree): TreeJson {
  return {
    feature: Array.from(t.feature),
    threshold: Array.from(t.threshold),
    left: Array.from(t.left),
    right: Array.from(t.right),
    defaultLeft: Array.from(t.defaultLeft),
    value: Array.from(t.value),
    cover: Array.from(t.cover),
  };
}

export function treeFromJson(j: TreeJson): Tree {
  return {
    feature: Int32Array.from(j.feature),
    threshold: Float64Array.from(j.threshold),
    left: Int32Array.from(j.left),
    right: Int32Array.from(j.right),
    defaultLeft: Uint8Array.from(j.defaultLeft),
    value: Float64Array.from(j.value),
    cover: Float64Array.from(j.cover),
  };
}
