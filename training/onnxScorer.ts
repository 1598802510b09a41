/**
 * Scores float32 feature rows with an exported .onnx model through onnxruntime-node (CPU).
 * The models written by training/onnxExport.ts take one input "input" [N, F] float and produce
 * "margin", "score" and optionally "calibrated" ([N, 1] each); any other single-input float model works too.
 */
import { readFileSync } from "node:fs";
import * as ort from "onnxruntime-node";

export class OnnxScorerError extends Error {
  readonly code = "ONNX_SCORER";
  override readonly name = "OnnxScorerError";
}

export interface OnnxScores {
  /** One Float32Array of length nRows per [N, 1] output (wider outputs are returned flattened row-major). */
  outputs: Record<string, Float32Array>;
  nRows: number;
}

export class OnnxScorer {
  private constructor(
    private readonly session: ort.InferenceSession,
    readonly inputName: string,
    readonly nFeatures: number | null,
    readonly outputNames: readonly string[],
    /** Element type of the input: float32 (the default export) or float64 (`--precision float64`). */
    readonly inputType: "float32" | "float64",
  ) {}

  /** Loads a model from a path or from the bytes of a .onnx file. */
  static async load(source: string | Uint8Array, opts: { threads?: number } = {}): Promise<OnnxScorer> {
    let bytes: Uint8Array;
    try {
      bytes = typeof source === "string" ? readFileSync(source) : source;
    } catch (err) {
      throw new OnnxScorerError(`cannot read ONNX model ${String(source)}: ${(err as Error).message}`);
    }
    let session: ort.InferenceSession;
    try {
      session = await ort.InferenceSession.create(bytes, {
        intraOpNumThreads: opts.threads ?? 1,
        interOpNumThreads: 1,
        graphOptimizationLevel: "all",
      });
    } catch (err) {
      throw new OnnxScorerError(
        `onnxruntime could not load the model${typeof source === "string" ? ` ${source}` : ""}: ${(err as Error).message}`,
      );
    }
    if (session.inputNames.length !== 1)
      throw new OnnxScorerError(
        `the model has ${session.inputNames.length} inputs (${session.inputNames.join(", ")}); expected one [N, F] float input`,
      );
    const inputName = session.inputNames[0]!;
    const meta = session.inputMetadata.find((m) => m.name === inputName);
    if (meta === undefined || !meta.isTensor || (meta.type !== "float32" && meta.type !== "float64"))
      throw new OnnxScorerError(`the model's input "${inputName}" is not a float32/float64 tensor`);
    const width = meta.shape[1];
    return new OnnxScorer(
      session,
      inputName,
      typeof width === "number" ? width : null,
      session.outputNames,
      meta.type,
    );
  }

  /**
   * Scores row-major rows (x[r][c] at r*nCols+c; NaN = missing). Rows are converted to the model's input
   * type when they differ (float64 -> float32 rounds each feature).
   */
  async score(rows: Float32Array | Float64Array, nRows: number, nCols: number): Promise<OnnxScores> {
    if (rows.length !== nRows * nCols)
      throw new OnnxScorerError(`rows has ${rows.length} values but nRows*nCols = ${nRows * nCols}`);
    if (this.nFeatures !== null && nCols !== this.nFeatures)
      throw new OnnxScorerError(`rows have ${nCols} features but the model expects ${this.nFeatures}`);
    const tensor =
      this.inputType === "float32"
        ? new ort.Tensor("float32", rows instanceof Float32Array ? rows : Float32Array.from(rows), [
            nRows,
            nCols,
          ])
        : new ort.Tensor("float64", rows instanceof Float64Array ? rows : Float64Array.from(rows), [
            nRows,
            nCols,
          ]);
    const feeds = { [this.inputName]: tensor };
    const result = await this.session.run(feeds);
    const outputs: Record<string, Float32Array> = {};
    for (const name of this.outputNames) {
      const t = result[name];
      if (t === undefined || t.type !== "float32") continue;
      outputs[name] = t.data as Float32Array;
    }
    return { outputs, nRows };
  }

  /** The named output of `score`, checked to exist. */
  async scoreOutput(
    rows: Float32Array | Float64Array,
    nRows: number,
    nCols: number,
    output: string,
  ): Promise<Float32Array> {
    const { outputs } = await this.score(rows, nRows, nCols);
    const o = outputs[output];
    if (o === undefined)
      throw new OnnxScorerError(
        `the model has no float output "${output}"; outputs: ${this.outputNames.join(", ")}`,
      );
    return o;
  }

  async close(): Promise<void> {
    await this.session.release();
  }
}
