import { explain } from "../../models/explanation.ts";
import { binaryMetrics } from "../../models/metrics.ts";
import {
  type Attempt,
  type FitOptions,
  jsonObject,
  type KindModel,
  type KindParams,
  ModelJsonError,
  type ModelKind,
  ModelNotFittedError,
  paramsOf,
  seedOf,
  type TopicScore,
} from "../modelKind.ts";
import type { ResponseLog } from "../responses.ts";

/**
 * The rule: a student's accuracy on the topic shrunk toward a prior with k pseudo-answers,
 *   score = (correct + k * prior) / (answers + k),
 * the accuracy signal and shrinkage step of models/ruleScorer.ts on quiz answers alone. Its weights (prior,
 * k) are fitted: prior = the training accuracy, k = the candidate with the lowest online log-loss.
 * Explanation (exact): base = prior; correct answers add c (1 - prior) / (n + k), incorrect ones subtract
 * (n - c) prior / (n + k).
 */
const K_GRID = [0.5, 1, 2, 3, 5, 8, 13, 20, 30, 50];
const DEFAULTS: KindParams = { kGrid: K_GRID };

interface RuleWeights {
  prior: number;
  k: number;
}

function online(log: ResponseLog, w: RuleWeights): Float64Array {
  const out = new Float64Array(log.n);
  const ns = log.skillNames.length;
  const counts = new Map<number, [number, number]>();
  for (let r = 0; r < log.n; r++) {
    const key = log.user[r]! * ns + log.skill[r]!;
    let c = counts.get(key);
    if (c === undefined) {
      c = [0, 0];
      counts.set(key, c);
    }
    out[r] = (c[1] + w.k * w.prior) / (c[0] + w.k);
    c[0]++;
    c[1] += log.correct[r]!;
  }
  return out;
}

class RuleKindModel implements KindModel {
  readonly kind = "rule";
  constructor(
    readonly params: KindParams,
    private weights?: RuleWeights,
    public seed: number | undefined = undefined,
  ) {}

  get fitted(): boolean {
    return this.weights !== undefined;
  }
  private get w(): RuleWeights {
    if (this.weights === undefined) throw new ModelNotFittedError("rule", "the rule weights");
    return this.weights;
  }

  async fit(log: ResponseLog, opts: FitOptions): Promise<this> {
    if (log.n === 0) throw new ModelNotFittedError("rule", "fitting on an empty log (no answers)");
    let sum = 0;
    for (let r = 0; r < log.n; r++) sum += log.correct[r]!;
    const prior = Math.min(0.99, Math.max(0.01, sum / log.n));
    const grid = Array.isArray(this.params.kGrid) ? (this.params.kGrid as number[]) : K_GRID;
    let best: RuleWeights = { prior, k: grid[0]! };
    let bestLoss = Number.POSITIVE_INFINITY;
    for (const k of grid) {
      const loss = binaryMetrics(log.correct, online(log, { prior, k })).logloss;
      if (loss < bestLoss) {
        bestLoss = loss;
        best = { prior, k };
      }
    }
    this.weights = best;
    this.seed = opts.seed;
    return this;
  }

  predictLog(log: ResponseLog): Float64Array {
    return online(log, this.w);
  }

  scoreTopics(attempts: readonly Attempt[], topics: readonly string[]): TopicScore[] {
    const { prior, k } = this.w;
    const counts = new Map<string, [number, number]>();
    for (const a of attempts) {
      const c = counts.get(a.topicId) ?? [0, 0];
      c[0]++;
      if (a.correct) c[1]++;
      counts.set(a.topicId, c);
    }
    return topics.map((t) => {
      const [n, c] = counts.get(t) ?? [0, 0];
      const score = (c + k * prior) / (n + k);
      const factors = [
        {
          name: "correct_answers",
          label: "correct answers",
          value: c,
          contribution: (c * (1 - prior)) / (n + k),
        },
        {
          name: "incorrect_answers",
          label: "incorrect answers",
          value: n - c,
          contribution: (-(n - c) * prior) / (n + k),
        },
      ];
      return { score, explanation: explain(prior, factors, score) };
    });
  }

  toJSON(): { kind: string; fitParams: KindParams; seed: number; [key: string]: unknown } {
    return { kind: "rule", version: 1, weights: { ...this.w }, fitParams: this.params, seed: this.seed ?? 0 };
  }
}

const ruleJsonError = (problem: string): ModelJsonError => new ModelJsonError("rule", problem);

function ruleFromJSON(json: unknown): RuleKindModel {
  const o = jsonObject(json, "rule");
  const w = o.weights as Partial<RuleWeights> | undefined;
  if (typeof w !== "object" || w === null) throw ruleJsonError('needs a "weights" object {prior, k}');
  if (typeof w.prior !== "number" || !(w.prior > 0 && w.prior < 1))
    throw ruleJsonError(`weights.prior must be a number in (0, 1) (got ${JSON.stringify(w.prior)})`);
  if (typeof w.k !== "number" || !(w.k > 0))
    throw ruleJsonError(`weights.k must be a number > 0 (got ${JSON.stringify(w.k)})`);
  return new RuleKindModel(paramsOf(o, DEFAULTS), { prior: w.prior, k: w.k }, seedOf(o));
}

export const ruleKind: ModelKind = {
  kind: "rule",
  summary: "topic accuracy shrunk toward a fitted prior (fitted rule weights); answer-count explanations",
  scoreSource: "rule_based",
  servedFrom: "attempts",
  onnx: false,
  defaults: DEFAULTS,
  create: (params?: KindParams) => new RuleKindModel({ ...DEFAULTS, ...params }),
  fromJSON: ruleFromJSON,
};
