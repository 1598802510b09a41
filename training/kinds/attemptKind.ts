import type { Explanation } from "../../models/explanation.ts";
import type { AttemptContext, AttemptFeatureMatrix } from "../attemptFeatures.ts";
import { type AttemptModelKind, fitAttemptModel } from "../blendTrain.ts";
import {
  type Attempt,
  type FitOptions,
  jsonObject,
  type KindModel,
  type KindParams,
  ModelNotFittedError,
  paramsOf,
  parseOrThrow,
  seedOf,
  type TopicScore,
} from "../modelKind.ts";
import type { ResponseLog } from "../responses.ts";
import { targetFeatureRows } from "./attemptScoring.ts";

/** The fitted part shared by the gbt, mlp and blend online models. */
export interface AttemptPredictor {
  readonly context: AttemptContext;
  predictFeatures(X: AttemptFeatureMatrix): Float64Array;
  predictLog(log: ResponseLog): Float64Array;
}

export interface AttemptKindSpec<P extends AttemptPredictor> {
  kind: AttemptModelKind;
  defaults: KindParams;
  fromArtifact(json: Record<string, unknown>): P;
  /** Explanations of every row of X (probability space, base + factors + rest === predictFeatures). */
  explainRows(model: P, X: AttemptFeatureMatrix): { explanation: Explanation; detail?: unknown }[];
}

/** A gbt / mlp / blend model behind the ModelKind contract (fit = training/blendTrain.ts fitAttemptModel). */
export class AttemptKindModel<P extends AttemptPredictor> implements KindModel {
  readonly kind: string;
  private json: Record<string, unknown> | undefined;
  private model: P | undefined;
  seed: number | undefined;

  constructor(
    private readonly spec: AttemptKindSpec<P>,
    readonly params: KindParams,
    loaded?: { json: Record<string, unknown>; model: P; seed: number },
  ) {
    this.kind = spec.kind;
    if (loaded !== undefined) {
      this.json = loaded.json;
      this.model = loaded.model;
      this.seed = loaded.seed;
    }
  }

  get fitted(): boolean {
    return this.model !== undefined;
  }

  /** The underlying online model (GbtAttemptModel, MlpAttemptModel or BlendAttemptModel). */
  get predictor(): P {
    if (this.model === undefined) throw new ModelNotFittedError(this.kind, "predictor");
    return this.model;
  }

  async fit(log: ResponseLog, opts: FitOptions): Promise<this> {
    const p = this.params as { gbt?: object; mlp?: object; folds?: number };
    const r = await fitAttemptModel(log, {
      kind: this.spec.kind,
      seed: opts.seed,
      ...(p.gbt !== undefined ? { gbt: p.gbt } : {}),
      ...(p.mlp !== undefined ? { mlp: p.mlp } : {}),
      ...(p.folds !== undefined ? { folds: p.folds } : {}),
      threads: opts.threads ?? 1,
      ...(opts.onProgress !== undefined ? { onProgress: opts.onProgress } : {}),
    });
    this.json = r.artifact as unknown as Record<string, unknown>;
    this.model = r.model as unknown as P;
    this.seed = opts.seed;
    return this;
  }

  predictLog(log: ResponseLog): Float64Array {
    return this.predictor.predictLog(log);
  }

  scoreTopics(attempts: readonly Attempt[], topics: readonly string[], nowMs?: number): TopicScore[] {
    const m = this.predictor;
    if (topics.length === 0) return [];
    const X = targetFeatureRows(attempts, topics, m.context, nowMs);
    return this.spec.explainRows(m, X).map((e) => ({
      score: e.explanation.score,
      explanation: e.explanation,
      ...(e.detail !== undefined ? { detail: e.detail } : {}),
    }));
  }

  toJSON(): { kind: string; fitParams: KindParams; seed: number; [key: string]: unknown } {
    if (this.json === undefined || this.seed === undefined)
      throw new ModelNotFittedError(this.kind, "toJSON");
    return { ...this.json, kind: this.kind, fitParams: this.params, seed: this.seed };
  }

  static fromJSON<P extends AttemptPredictor>(spec: AttemptKindSpec<P>, json: unknown): AttemptKindModel<P> {
    const o = jsonObject(json, spec.kind);
    const model = parseOrThrow(spec.kind, () => spec.fromArtifact(o));
    const training = (o.training ?? {}) as { seed?: unknown };
    const seed = typeof o.seed === "number" ? seedOf(o) : seedOf({ seed: training.seed });
    return new AttemptKindModel(spec, paramsOf(o, spec.defaults), { json: o, model, seed });
  }
}
