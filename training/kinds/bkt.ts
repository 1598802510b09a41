import { BKT } from "../../models/bkt.ts";
import { bktMastery, topicParamsResolver } from "../../models/learnerState.ts";
import { fitBktParallel } from "../bktFit.ts";
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
  type TopicScore,
} from "../modelKind.ts";
import type { ResponseLog } from "../responses.ts";
import { foldTopicScores } from "./stateKind.ts";

/**
 * Bayesian knowledge tracing per topic (models/bkt.ts, EM with restarts on worker threads). Served
 * mastery = P(learned) of the per-(student, topic) fold; explained by the fold's factors.
 * Defaults: forgets, 5 restarts (the variant at least as accurate as pyBKT on every benchmark log).
 */
const DEFAULTS: KindParams = { forgets: true, restarts: 5 };

class BktKindModel implements KindModel {
  readonly kind = "bkt";
  constructor(
    readonly params: KindParams,
    private model?: BKT,
  ) {}

  get fitted(): boolean {
    return this.model !== undefined;
  }
  get seed(): number | undefined {
    return this.model?.options.seed;
  }
  get bkt(): BKT {
    if (this.model === undefined) throw new ModelNotFittedError("bkt", "the BKT parameters");
    return this.model;
  }

  async fit(log: ResponseLog, opts: FitOptions): Promise<this> {
    this.model = await fitBktParallel(
      log,
      { ...(this.params as object), seed: opts.seed },
      {
        threads: opts.threads ?? 1,
        ...(opts.onProgress
          ? { onProgress: (d: number, t: number) => opts.onProgress?.("bkt em", d, t) }
          : {}),
      },
    );
    return this;
  }

  predictLog(log: ResponseLog): Float64Array {
    return this.bkt.predict(log);
  }

  scoreTopics(attempts: readonly Attempt[], topics: readonly string[]): TopicScore[] {
    return foldTopicScores(
      attempts,
      topics,
      topicParamsResolver({ bkt: this.bkt, elo: undefined }),
      bktMastery,
    );
  }

  toJSON(): { kind: string; fitParams: KindParams; seed: number; [key: string]: unknown } {
    const { fitSeconds: _timing, ...json } = this.bkt.toJSON();
    return { ...json, fitParams: this.params, seed: this.bkt.options.seed };
  }
}

export const bktKind: ModelKind = {
  kind: "bkt",
  summary: "Bayesian knowledge tracing per topic (EM, restarts, forgetting); fold-factor explanations",
  scoreSource: "bkt",
  servedFrom: "bkt-state",
  onnx: false,
  defaults: DEFAULTS,
  create: (params?: KindParams) => new BktKindModel({ ...DEFAULTS, ...params }),
  fromJSON(json) {
    const o = jsonObject(json, "bkt");
    const model = parseOrThrow("bkt", () => BKT.fromJSON(o));
    const s = model.options;
    return new BktKindModel(paramsOf(o, { forgets: s.forgets, restarts: s.restarts }), model);
  },
};

export type { BktKindModel };
