/**
 * A small builder for ONNX graphs (nodes, constant initializers, float inputs/outputs) plus the calibration
 * tail shared by the tree and MLP exporters: Platt scaling and piecewise-linear isotonic regression as plain
 * ai.onnx operators, clipped to [1e-6, 1 - 1e-6] like models/blend.ts `calibrate`.
 */
import type { CalibratorJSON } from "../calibration.ts";
import {
  DataType,
  type OnnxAttribute,
  type OnnxGraph,
  type OnnxModel,
  type OnnxNode,
  type OnnxTensor,
} from "./onnxProto.ts";

/** Default-domain opset (Clip/ReduceSum take min/max/axes as inputs from 13 on). */
export const ONNX_OPSET = 17;
/** ai.onnx.ml opset (TreeEnsembleRegressor). */
export const ONNX_ML_OPSET = 3;
/** IR version 8 goes with opset 17 / ai.onnx.ml 3 (ONNX 1.12). */
export const ONNX_IR_VERSION = 8;

/** Same clipping as models/blend.ts (P_EPS). */
const P_EPS = 1e-6;

export class GraphBuilder {
  readonly nodes: OnnxNode[] = [];
  readonly initializers: OnnxTensor[] = [];
  private counter = 0;

  /** Adds a node and returns its first output's name. */
  op(
    opType: string,
    inputs: string[],
    attributes: OnnxAttribute[] = [],
    opts: { domain?: string; output?: string } = {},
  ): string {
    const out = opts.output ?? `${opType.toLowerCase()}_${this.counter}`;
    this.nodes.push({
      name: `${opType}_${this.counter++}`,
      opType,
      domain: opts.domain ?? "",
      inputs,
      outputs: [out],
      attributes,
    });
    return out;
  }

  /** A float32 constant; returns its name. */
  floats(name: string, values: ArrayLike<number>, dims: number[] = [values.length]): string {
    this.initializers.push({ name, dims, dataType: DataType.FLOAT, data: Float32Array.from(values) });
    return name;
  }

  bools(name: string, values: ArrayLike<number>): string {
    this.initializers.push({
      name,
      dims: [values.length],
      dataType: DataType.BOOL,
      data: Uint8Array.from(values, (v) => (v ? 1 : 0)),
    });
    return name;
  }

  ints(name: string, values: number[]): string {
    this.initializers.push({ name, dims: [values.length], dataType: DataType.INT64, data: values });
    return name;
  }

  /**
   * Appends a calibrator on the [N, 1] score tensor `score` and names its output `output`.
   * Platt: p = 1 / (1 + exp(a s + b)) = Sigmoid(-a s - b).
   * Isotonic (linear between knots, flat beyond the ends): y0 + sum_k slope_k (clip(s, x_k, x_k+1) - x_k).
   */
  calibrator(score: string, cal: CalibratorJSON, output: string): string {
    let p: string;
    if (cal.kind === "platt") {
      const z = this.op("Add", [
        this.op("Mul", [score, this.floats("platt_neg_a", [-cal.a], [])]),
        this.floats("platt_neg_b", [-cal.b], []),
      ]);
      p = this.op("Sigmoid", [z]);
    } else {
      const lo: number[] = [];
      const hi: number[] = [];
      const slope: number[] = [];
      for (let k = 0; k + 1 < cal.x.length; k++) {
        const span = cal.x[k + 1]! - cal.x[k]!;
        if (!(span > 0)) continue;
        lo.push(cal.x[k]!);
        hi.push(cal.x[k + 1]!);
        slope.push((cal.y[k + 1]! - cal.y[k]!) / span);
      }
      if (lo.length === 0) {
        lo.push(cal.x[0]!);
        hi.push(cal.x[0]!);
        slope.push(0);
      }
      const loT = this.floats("iso_lo", lo);
      const clipped = this.op("Min", [this.op("Max", [score, loT]), this.floats("iso_hi", hi)]);
      const part = this.op("Mul", [this.op("Sub", [clipped, loT]), this.floats("iso_slope", slope)]);
      const sum = this.op(
        "ReduceSum",
        [part, this.ints("iso_axes", [1])],
        [{ name: "keepdims", type: "int", i: 1 }],
      );
      p = this.op("Add", [sum, this.floats("iso_y0", [cal.y[0]!], [])]);
    }
    return this.op(
      "Clip",
      [p, this.floats("p_min", [P_EPS], []), this.floats("p_max", [1 - P_EPS], [])],
      [],
      {
        output,
      },
    );
  }
}

/** Wraps a graph into a model with our opset imports and metadata. */
export function buildModel(opts: {
  graph: OnnxGraph;
  docString: string;
  metadata: Record<string, string>;
  usesMl: boolean;
}): OnnxModel {
  const opsetImports = [{ domain: "", version: ONNX_OPSET }];
  if (opts.usesMl) opsetImports.push({ domain: "ai.onnx.ml", version: ONNX_ML_OPSET });
  return {
    irVersion: ONNX_IR_VERSION,
    producerName: "mastery-engine",
    producerVersion: "0.1.0",
    domain: "",
    modelVersion: 1,
    docString: opts.docString,
    graph: opts.graph,
    opsetImports,
    metadataProps: Object.entries(opts.metadata).map(([key, value]) => ({ key, value })),
  };
}

/** [N, 1] float output value info. */
export function columnOutput(name: string): { name: string; elemType: number; shape: (number | string)[] } {
  return { name, elemType: DataType.FLOAT, shape: ["N", 1] };
}
