/**
 * Tree ensembles <-> ONNX ai.onnx.ml TreeEnsembleRegressor
 * (https://onnx.ai/onnx/operators/onnx_aionnxml_TreeEnsembleRegressor.html).
 *
 * Export: one TreeEnsembleRegressor with nodes_modes BRANCH_LT (our "x < threshold goes left" = the ONNX
 * "true" branch), nodes_missing_value_tracks_true = defaultLeft, base_values = [baseScore], post_transform
 * NONE, giving the raw margin; a Sigmoid node (logistic loss) or Identity (squared loss) gives "score"; an
 * optional calibrator tail gives "calibrated". Covers are written to nodes_hitrates (a field ONNX documents
 * as "popularity of each node", ignored by runtimes), so an import can run TreeSHAP without data.
 *
 * Float32: ONNX tree inputs and thresholds are float32. Each threshold t is exported as the smallest float32
 * t32 >= t; no float32 lies in [t, t32), so for every float32 input x, `x < t` <=> `x < t32`: the exported
 * model routes every float32 row exactly as the float64 trees do. Rows with features that are not float32
 * values are rounded when fed to ONNX, which can change a split; serve float32 rows or compare on them.
 * Leaf values are float32 too and ONNX Runtime sums them in float32: margins agree to ~1e-6, not bit-exactly.
 *
 * (post_transform LOGISTIC is read as a logistic model on import, per the spec, but onnxruntime ignores it on
 * TreeEnsembleRegressor, so our exports and fixtures use a separate Sigmoid node.)
 *
 * Import: BRANCH_LT/LEQ/GT/GTE (LEQ/GT become LT with the next float32 up as threshold, GT/GTE swap the
 * branches), one target, SUM aggregation. Covers come from nodes_hitrates when they form a valid cover
 * (every parent equals the sum of its children), else from counting the rows of a background data set that
 * reach each node (what XGBoost's cover is for squared loss; for logistic loss XGBoost weighs by p(1-p)).
 */
import type { CalibratorJSON } from "../calibration.ts";
import {
  allocTree,
  checkMatrix,
  type Matrix,
  readRow,
  type Tree,
  type TreeEnsemble,
  validateTree,
} from "../treeEnsemble.ts";
import { buildModel, columnOutput, GraphBuilder } from "./graphBuilder.ts";
import { attribute, DataType, type OnnxAttribute, type OnnxModel, type OnnxNode } from "./onnxProto.ts";

export class OnnxTreeError extends Error {
  readonly code = "ONNX_TREES";
  override readonly name = "OnnxTreeError";
}

export type TreeObjective = "logistic" | "squared";

export interface TreeExportOptions {
  objective: TreeObjective;
  featureNames?: readonly string[];
  /** Adds a "calibrated" output: the calibrator applied to the margin. */
  calibrator?: CalibratorJSON;
  /** Extra metadata_props (e.g. the source model's kind and version). */
  metadata?: Record<string, string>;
  /** Write covers to nodes_hitrates (default true). */
  covers?: boolean;
  /**
   * "float32" (default): float input, float32 thresholds rounded up (see the module comment), float32 sums.
   * "float64": double input with thresholds, leaf values and base score as double tensors (ai.onnx.ml 3
   * `*_as_tensor` attributes); ONNX Runtime then routes and sums in double and only the output is float32.
   */
  precision?: "float32" | "float64";
}

const scratch = new DataView(new ArrayBuffer(4));

/** The next float32 above a finite float32 value v. */
export function nextFloat32Up(v: number): number {
  if (v === 0) return 1.401298464324817e-45;
  scratch.setFloat32(0, v, true);
  const bits = scratch.getInt32(0, true);
  scratch.setInt32(0, v > 0 ? bits + 1 : bits - 1, true);
  return scratch.getFloat32(0, true);
}

/** Smallest float32 >= t: for float32 x, x < t <=> x < ceilFloat32(t). */
export function ceilFloat32(t: number): number {
  const f = Math.fround(t);
  return f < t ? nextFloat32Up(f) : f;
}

/** FLOATS attribute, or its ai.onnx.ml-3 `_as_tensor` double form. */
function floatsAttr(name: string, values: number[], double: boolean): OnnxAttribute {
  if (!double) return { name, type: "floats", floats: values };
  return {
    name: `${name}_as_tensor`,
    type: "tensor",
    t: { name: "", dims: [values.length], dataType: DataType.DOUBLE, data: Float64Array.from(values) },
  };
}

/** Builds the ONNX model of a tree ensemble. Input "input" [N, nFeatures] float; outputs margin, score(, calibrated). */
export function treeEnsembleToOnnx(ens: TreeEnsemble, opts: TreeExportOptions): OnnxModel {
  const double = opts.precision === "float64";
  const ids: number[] = [];
  const treeIds: number[] = [];
  const featureIds: number[] = [];
  const modes: string[] = [];
  const values: number[] = [];
  const trueIds: number[] = [];
  const falseIds: number[] = [];
  const missingTrue: number[] = [];
  const hitrates: number[] = [];
  const tTree: number[] = [];
  const tNode: number[] = [];
  const tWeight: number[] = [];
  ens.trees.forEach((t, k) => {
    validateTree(t, ens.nFeatures);
    for (let i = 0; i < t.feature.length; i++) {
      const leaf = t.feature[i]! < 0;
      treeIds.push(k);
      ids.push(i);
      featureIds.push(leaf ? 0 : t.feature[i]!);
      modes.push(leaf ? "LEAF" : "BRANCH_LT");
      values.push(leaf ? 0 : double ? t.threshold[i]! : ceilFloat32(t.threshold[i]!));
      trueIds.push(leaf ? 0 : t.left[i]!);
      falseIds.push(leaf ? 0 : t.right[i]!);
      missingTrue.push(leaf ? 0 : t.defaultLeft[i]!);
      hitrates.push(t.cover[i]!);
      if (leaf) {
        tTree.push(k);
        tNode.push(i);
        tWeight.push(t.value[i]!);
      }
    }
  });
  const g = new GraphBuilder();
  const attrs: OnnxNode["attributes"] = [
    { name: "aggregate_function", type: "string", s: "SUM" },
    floatsAttr("base_values", [ens.baseScore], double),
    { name: "n_targets", type: "int", i: 1 },
    { name: "nodes_falsenodeids", type: "ints", ints: falseIds },
    { name: "nodes_featureids", type: "ints", ints: featureIds },
    { name: "nodes_missing_value_tracks_true", type: "ints", ints: missingTrue },
    { name: "nodes_modes", type: "strings", strings: modes },
    { name: "nodes_nodeids", type: "ints", ints: ids },
    { name: "nodes_treeids", type: "ints", ints: treeIds },
    { name: "nodes_truenodeids", type: "ints", ints: trueIds },
    floatsAttr("nodes_values", values, double),
    { name: "post_transform", type: "string", s: "NONE" },
    { name: "target_ids", type: "ints", ints: new Array<number>(tTree.length).fill(0) },
    { name: "target_nodeids", type: "ints", ints: tNode },
    { name: "target_treeids", type: "ints", ints: tTree },
    floatsAttr("target_weights", tWeight, double),
  ];
  if (opts.covers !== false) attrs.push(floatsAttr("nodes_hitrates", hitrates, double));
  const margin = g.op("TreeEnsembleRegressor", ["input"], attrs, { domain: "ai.onnx.ml", output: "margin" });
  g.op(opts.objective === "logistic" ? "Sigmoid" : "Identity", [margin], [], { output: "score" });
  const outputs = [columnOutput("margin"), columnOutput("score")];
  if (opts.calibrator !== undefined) {
    g.calibrator(margin, opts.calibrator, "calibrated");
    outputs.push(columnOutput("calibrated"));
  }
  const metadata: Record<string, string> = {
    "mastery.model": "tree-ensemble",
    "mastery.objective": opts.objective,
    "mastery.threshold_rounding": double ? "none-float64" : "ceil-float32",
    ...opts.metadata,
  };
  if (opts.featureNames !== undefined) metadata["mastery.feature_names"] = JSON.stringify(opts.featureNames);
  return buildModel({
    graph: {
      name: "mastery_tree_ensemble",
      nodes: g.nodes,
      initializers: g.initializers,
      inputs: [
        { name: "input", elemType: double ? DataType.DOUBLE : DataType.FLOAT, shape: ["N", ens.nFeatures] },
      ],
      outputs,
      docString: "",
    },
    docString: `Tree ensemble (${ens.trees.length} trees, ${opts.objective} loss); margin = base + sum of leaves`,
    metadata,
    usesMl: true,
  });
}

// ---------------------------------------------------------------------------------------------------------
// Import.

export interface ImportedTrees {
  ensemble: TreeEnsemble;
  objective: TreeObjective;
  /** Where the covers (for TreeSHAP) came from. */
  coverSource: "hitrates" | "background";
  featureNames: string[] | null;
}

function ints(node: OnnxNode, name: string, required = true): number[] {
  const a = attribute(node, name);
  if (a === undefined) {
    if (required) throw new OnnxTreeError(`TreeEnsembleRegressor has no ${name} attribute`);
    return [];
  }
  if (a.type !== "ints") throw new OnnxTreeError(`${name} must be an INTS attribute (got ${a.type})`);
  return Array.from(a.ints);
}

function floats(node: OnnxNode, name: string, required = true): number[] {
  const a = attribute(node, name);
  if (a === undefined) {
    const asTensor = attribute(node, `${name}_as_tensor`);
    if (asTensor?.type === "tensor") return Array.from(asTensor.t.data as ArrayLike<number>);
    if (required) throw new OnnxTreeError(`TreeEnsembleRegressor has no ${name} attribute`);
    return [];
  }
  if (a.type !== "floats") throw new OnnxTreeError(`${name} must be a FLOATS attribute (got ${a.type})`);
  return Array.from(a.floats);
}

function str(node: OnnxNode, name: string, dflt: string): string {
  const a = attribute(node, name);
  if (a === undefined) return dflt;
  if (a.type !== "string") throw new OnnxTreeError(`${name} must be a STRING attribute (got ${a.type})`);
  return a.s;
}

/** Number of input features: from the graph input's shape, else 1 + the largest split feature id. */
function inputWidth(model: OnnxModel, node: OnnxNode, featureIds: number[]): number {
  const input = model.graph.inputs.find((v) => v.name === node.inputs[0]);
  const w = input?.shape[1];
  if (typeof w === "number" && w > 0) return w;
  return featureIds.reduce((m, f) => Math.max(m, f + 1), 1);
}

/**
 * Reads the (single) TreeEnsembleRegressor of `model` into a TreeEnsemble. `background` (rows x features)
 * is needed only when the file carries no usable covers in nodes_hitrates.
 */
export function treeEnsembleFromOnnx(model: OnnxModel, background?: Matrix): ImportedTrees {
  const found = model.graph.nodes.filter(
    (n) => n.opType === "TreeEnsembleRegressor" && n.domain === "ai.onnx.ml",
  );
  if (found.length !== 1) {
    const ops = [...new Set(model.graph.nodes.map((n) => n.opType))].join(", ");
    throw new OnnxTreeError(
      `expected exactly one ai.onnx.ml TreeEnsembleRegressor node, found ${found.length} (ops: ${ops}); classifiers and multi-ensemble graphs are not supported`,
    );
  }
  const node = found[0]!;
  const nTargets = attribute(node, "n_targets");
  if (nTargets !== undefined && (nTargets.type !== "int" || nTargets.i !== 1))
    throw new OnnxTreeError("n_targets must be 1; multi-output ensembles are not supported");
  const agg = str(node, "aggregate_function", "SUM");
  if (agg !== "SUM") throw new OnnxTreeError(`aggregate_function ${agg} is not supported; only SUM`);
  const post = str(node, "post_transform", "NONE");
  if (post !== "NONE" && post !== "LOGISTIC")
    throw new OnnxTreeError(`post_transform ${post} is not supported; only NONE or LOGISTIC`);
  const out = node.outputs[0];
  const sigmoidAfter = model.graph.nodes.some((n) => n.opType === "Sigmoid" && n.inputs[0] === out);
  const objective: TreeObjective = post === "LOGISTIC" || sigmoidAfter ? "logistic" : "squared";

  const treeIds = ints(node, "nodes_treeids");
  const nodeIds = ints(node, "nodes_nodeids");
  const featureIds = ints(node, "nodes_featureids");
  const modes = (() => {
    const a = attribute(node, "nodes_modes");
    if (a?.type !== "strings") throw new OnnxTreeError("nodes_modes must be a STRINGS attribute");
    return a.strings;
  })();
  const thresholds = floats(node, "nodes_values");
  const trueIds = ints(node, "nodes_truenodeids");
  const falseIds = ints(node, "nodes_falsenodeids");
  const missing = ints(node, "nodes_missing_value_tracks_true", false);
  const hitrates = floats(node, "nodes_hitrates", false);
  const n = treeIds.length;
  for (const [name, arr] of [
    ["nodes_nodeids", nodeIds],
    ["nodes_featureids", featureIds],
    ["nodes_modes", modes],
    ["nodes_values", thresholds],
    ["nodes_truenodeids", trueIds],
    ["nodes_falsenodeids", falseIds],
  ] as const) {
    if (arr.length !== n)
      throw new OnnxTreeError(`${name} has ${arr.length} entries but nodes_treeids has ${n}`);
  }
  const tTree = ints(node, "target_treeids");
  const tNode = ints(node, "target_nodeids");
  const tIds = ints(node, "target_ids", false);
  const tWeight = floats(node, "target_weights");
  const base = floats(node, "base_values", false);

  // Group node rows by tree; map (tree, onnx node id) -> row.
  const byTree = new Map<number, Map<number, number>>();
  for (let r = 0; r < n; r++) {
    let m = byTree.get(treeIds[r]!);
    if (m === undefined) {
      m = new Map();
      byTree.set(treeIds[r]!, m);
    }
    if (m.has(nodeIds[r]!)) throw new OnnxTreeError(`tree ${treeIds[r]} lists node ${nodeIds[r]} twice`);
    m.set(nodeIds[r]!, r);
  }
  const leafWeight = new Map<string, number>();
  for (let k = 0; k < tTree.length; k++) {
    if ((tIds[k] ?? 0) !== 0) throw new OnnxTreeError("target_ids other than 0 are not supported");
    const key = `${tTree[k]}:${tNode[k]}`;
    leafWeight.set(key, (leafWeight.get(key) ?? 0) + tWeight[k]!);
  }
  const nFeatures = inputWidth(model, node, featureIds);
  const trees: Tree[] = [];
  let hitratesUsable = hitrates.length === n;
  const rowOf: Int32Array[] = [];
  for (const [treeId, rows] of [...byTree.entries()].sort((a, b) => a[0] - b[0])) {
    // The root is the one node no other node points to.
    const children = new Set<number>();
    for (const r of rows.values()) {
      if (modes[r] !== "LEAF") children.add(trueIds[r]!).add(falseIds[r]!);
    }
    const roots = [...rows.keys()].filter((id) => !children.has(id));
    if (roots.length !== 1) throw new OnnxTreeError(`tree ${treeId} has ${roots.length} roots; expected 1`);
    // Renumber breadth-first from the root so node 0 is the root.
    const t = allocTree(rows.size);
    const order: number[] = [rows.get(roots[0]!)!];
    const ourId = new Map<number, number>([[roots[0]!, 0]]);
    for (let q = 0; q < order.length; q++) {
      const r = order[q]!;
      const mode = modes[r]!;
      if (mode === "LEAF") {
        t.value[q] = leafWeight.get(`${treeId}:${nodeIds[r]}`) ?? 0;
        continue;
      }
      const childId = (onnxId: number): number => {
        const cr = rows.get(onnxId);
        if (cr === undefined)
          throw new OnnxTreeError(`tree ${treeId} node ${nodeIds[r]} points to missing node ${onnxId}`);
        if (ourId.has(onnxId)) throw new OnnxTreeError(`tree ${treeId} node ${onnxId} has two parents`);
        ourId.set(onnxId, order.length);
        order.push(cr);
        return order.length - 1;
      };
      const tIdx = childId(trueIds[r]!);
      const fIdx = childId(falseIds[r]!);
      const th = thresholds[r]!;
      const tracksTrue = (missing[r] ?? 0) === 1;
      t.feature[q] = featureIds[r]!;
      if (mode === "BRANCH_LT" || mode === "BRANCH_LEQ") {
        t.threshold[q] = mode === "BRANCH_LT" ? th : nextFloat32Up(th);
        t.left[q] = tIdx;
        t.right[q] = fIdx;
        t.defaultLeft[q] = tracksTrue ? 1 : 0;
      } else if (mode === "BRANCH_GTE" || mode === "BRANCH_GT") {
        // x >= t is true  <=>  x < t is false: the false branch is our left one.
        t.threshold[q] = mode === "BRANCH_GTE" ? th : nextFloat32Up(th);
        t.left[q] = fIdx;
        t.right[q] = tIdx;
        t.defaultLeft[q] = tracksTrue ? 0 : 1;
      } else {
        throw new OnnxTreeError(
          `tree ${treeId} node ${nodeIds[r]} has mode ${mode}; only BRANCH_LT/LEQ/GT/GTE and LEAF`,
        );
      }
    }
    if (order.length !== rows.size)
      throw new OnnxTreeError(
        `tree ${treeId} has ${rows.size - order.length} nodes unreachable from its root`,
      );
    const rowIndex = Int32Array.from(order);
    rowOf.push(rowIndex);
    if (hitratesUsable) {
      for (let q = 0; q < rowIndex.length; q++) t.cover[q] = hitrates[rowIndex[q]!]!;
      hitratesUsable = coversConsistent(t);
    }
    trees.push(t);
  }
  let coverSource: ImportedTrees["coverSource"] = "hitrates";
  if (!hitratesUsable) {
    if (background === undefined || background.nRows === 0)
      throw new OnnxTreeError(
        "the ONNX trees carry no covers (nodes_hitrates missing or not parent = sum of children); pass background rows (e.g. --background FILE) so covers can be counted for TreeSHAP",
      );
    countCovers(trees, background);
    coverSource = "background";
  }
  for (const t of trees) {
    fillInternalValues(t);
    validateTree(t, nFeatures);
  }
  const meta = model.metadataProps.find((p) => p.key === "mastery.feature_names");
  return {
    ensemble: { trees, baseScore: base[0] ?? 0, nFeatures },
    objective,
    coverSource,
    featureNames: meta === undefined ? null : (JSON.parse(meta.value) as string[]),
  };
}

/** Covers are usable when positive at the root and every parent equals the sum of its children (float32 slack). */
function coversConsistent(t: Tree): boolean {
  if (!(t.cover[0]! > 0)) return false;
  for (let i = 0; i < t.feature.length; i++) {
    const c = t.cover[i]!;
    if (!Number.isFinite(c) || c < 0) return false;
    if (t.feature[i]! < 0) continue;
    const s = t.cover[t.left[i]!]! + t.cover[t.right[i]!]!;
    if (Math.abs(s - c) > 1e-4 * Math.max(1, c)) return false;
  }
  return true;
}

/** Cover = number of background rows that pass through each node. */
export function countCovers(trees: readonly Tree[], X: Matrix): void {
  checkMatrix(X);
  const row = new Float64Array(X.nCols);
  for (const t of trees) t.cover.fill(0);
  for (let r = 0; r < X.nRows; r++) {
    readRow(X, r, row);
    for (const t of trees) {
      let i = 0;
      t.cover[0]! += 1;
      while (t.feature[i]! >= 0) {
        const v = row[t.feature[i]!]!;
        const goLeft = Number.isNaN(v) ? t.defaultLeft[i] === 1 : v < t.threshold[i]!;
        i = goLeft ? t.left[i]! : t.right[i]!;
        t.cover[i]! += 1;
      }
    }
  }
}

/** Internal nodes' value = cover-weighted mean of their children's (informative only; ONNX keeps leaf values). */
function fillInternalValues(t: Tree): void {
  for (let i = t.feature.length - 1; i >= 0; i--) {
    if (t.feature[i]! < 0) continue;
    const l = t.left[i]!;
    const r = t.right[i]!;
    const cl = t.cover[l]!;
    const cr = t.cover[r]!;
    t.value[i] =
      cl + cr > 0 ? (cl * t.value[l]! + cr * t.value[r]!) / (cl + cr) : 0.5 * (t.value[l]! + t.value[r]!);
  }
}
