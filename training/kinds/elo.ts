import { Elo } from "../../models/elo.ts";
import { eloMastery, topicParamsResolver } from "../../models/learnerState.ts";
import {
  type Attempt,
  type FitOptions,
  jsonObject,
  type KindModel,
  type KindParams,
  type ModelKind,
  ModelNotFittedError,
  paramsOf,
  parseOrThrow,
  seedOf,
  type TopicScore,
} from "../modelKind.ts";
import type { ResponseLog } from "../responses.ts";
import { foldTopicScores } from "./stateKind.ts";

/**
 * Hierarchical Elo with a fitted K function (models/elo.ts). Served mastery = P(correct on an average
 * item of the topic) of the per-(student, topic) fold; explained by the fold's factors.
 */
const DEFAULTS: KindParams = { maxEvaluations: 150 };

class EloKindModel implements KindModel {
  readonly kind = "elo";
  constructor(
    readonly params: KindParams,
    private model?: Elo,
    public seed: number | undefined = undefined,
  ) {}

  get fitted(): boolean {
    return this.model !== undefined;
  }
  get elo(): Elo {
    if (this.model === undefined) throw new ModelNotFittedError("elo", "the Elo ratings");
    return this.model;
  }

  async fit(log: ResponseLog, opts: FitOptions): Promise<this> {
    const max = this.params.maxEvaluations;
    this.model = new Elo({
      seed: opts.seed,
      ...(typeof max === "number" ? { maxEvaluations: max } : {}),
    }).fit(log);
    this.seed = opts.seed;
    return this;
  }

  predictLog(log: ResponseLog): Float64Array {
    return this.elo.predict(log);
  }

  scoreTopics(attempts: readonly Attempt[], topics: readonly string[]): TopicScore[] {
    return foldTopicScores(
      attempts,
      topics,
      topicParamsResolver({ bkt: undefined, elo: this.elo }),
      eloMastery,
    );
  }

  toJSON(): { kind: string; fitParams: KindParams; seed: number; [key: string]: unknown } {
    return { ...this.elo.toJSON(), fitParams: this.params, seed: this.seed ?? 0 };
  }
}

export const eloKind: ModelKind = {
  kind: "elo",
  summary: "hierarchical Elo with a fitted K function; fold-factor explanations",
  scoreSource: "elo",
  servedFrom: "elo-state",
  onnx: false,
  defaults: DEFAULTS,
  create: (params?: KindParams) => new EloKindModel({ ...DEFAULTS, ...params }),
  fromJSON(json) {
    const o = jsonObject(json, "elo");
    const model = parseOrThrow("elo", () => Elo.fromJSON(o));
    return new EloKindModel(paramsOf(o, DEFAULTS), model, seedOf(o));
  },
};

export type { EloKindModel };
