/**
 * MlpNetwork (models/mlp.ts) -> ONNX with plain ai.onnx operators:
 *
 *   input [N, F] --(optional log1p on count columns: Where(mask, Log(Relu(x) + 1), x))
 *     --> z = Where(IsNaN(input), 0, (x - mean) / std)          standardisation; NaN -> training mean, as mlpForward
 *     --> Gemm(W_1, b_1) -> Relu|Tanh -> ... -> Gemm(W_L, b_L) = "margin" [N, 1]
 *     --> Sigmoid (output "sigmoid") or Identity (output "linear") = "score"
 *     --> optional calibrator on Clip(margin, -L, L) = "calibrated"
 *
 * Each layer's W is row-major [nIn, nOut], which is Gemm's B with transB = 0. The standardisation is kept as
 * Sub/Div rather than folded into the first Gemm because NaN imputation must happen after it. Weights are
 * float32 in ONNX, so outputs agree with the float64 typed-array pass to ~1e-6.
 */
import type { CalibratorJSON } from "../calibration.ts";
import type { MlpNetwork } from "../mlp.ts";
import { buildModel, columnOutput, GraphBuilder } from "./graphBuilder.ts";
import { DataType, type OnnxModel } from "./onnxProto.ts";

/** The training code (training/mlpTrain.ts) clips probabilities to [1e-6, 1 - 1e-6] before taking logits. */
const MAX_LOGIT = Math.log((1 - 1e-6) / 1e-6);

export interface MlpExportOptions {
  featureNames?: readonly string[];
  /** 1 for columns that go through log1p(max(0, x)) before the network (mlpInputs in training/mlpTrain.ts). */
  log1pColumns?: ArrayLike<number>;
  /** Applied to the (clipped) margin, giving a "calibrated" output. */
  calibrator?: CalibratorJSON;
  metadata?: Record<string, string>;
}

export function mlpToOnnx(net: MlpNetwork, opts: MlpExportOptions = {}): OnnxModel {
  const d = net.mean.length;
  const g = new GraphBuilder();
  let x = "input";
  const nanMask = g.op("IsNaN", ["input"]);
  const mask = opts.log1pColumns;
  if (mask !== undefined && Array.from(mask).some((v) => v !== 0)) {
    if (mask.length !== d)
      throw new RangeError(`log1pColumns has ${mask.length} entries; the MLP has ${d} inputs`);
    const lp = g.op("Log", [g.op("Add", [g.op("Relu", ["input"]), g.floats("one", [1], [])])]);
    x = g.op("Where", [g.bools("log1p_mask", mask), lp, "input"]);
  }
  const scaled = g.op("Div", [g.op("Sub", [x, g.floats("mean", net.mean)]), g.floats("std", net.std)]);
  let h = g.op("Where", [nanMask, g.floats("zero", [0], []), scaled]);
  net.layers.forEach((l, i) => {
    const last = i === net.layers.length - 1;
    const w = g.floats(`W${i}`, l.W, [l.nIn, l.nOut]);
    const b = g.floats(`b${i}`, l.b, [l.nOut]);
    h = g.op("Gemm", [h, w, b], [], last ? { output: "margin" } : {});
    if (!last) h = g.op(net.activation === "relu" ? "Relu" : "Tanh", [h]);
  });
  g.op(net.output === "sigmoid" ? "Sigmoid" : "Identity", ["margin"], [], { output: "score" });
  const outputs = [columnOutput("margin"), columnOutput("score")];
  if (opts.calibrator !== undefined) {
    const clipped =
      net.output === "sigmoid"
        ? g.op("Clip", [
            "margin",
            g.floats("logit_min", [-MAX_LOGIT], []),
            g.floats("logit_max", [MAX_LOGIT], []),
          ])
        : "margin";
    g.calibrator(clipped, opts.calibrator, "calibrated");
    outputs.push(columnOutput("calibrated"));
  }
  const metadata: Record<string, string> = {
    "mastery.model": "mlp",
    "mastery.output": net.output,
    ...opts.metadata,
  };
  if (opts.featureNames !== undefined) metadata["mastery.feature_names"] = JSON.stringify(opts.featureNames);
  return buildModel({
    graph: {
      name: "mastery_mlp",
      nodes: g.nodes,
      initializers: g.initializers,
      inputs: [{ name: "input", elemType: DataType.FLOAT, shape: ["N", d] }],
      outputs,
      docString: "",
    },
    docString: `MLP ${[d, ...net.layers.map((l) => l.nOut)].join("-")} (${net.activation}, ${net.output} output)`,
    metadata,
    usesMl: false,
  });
}
