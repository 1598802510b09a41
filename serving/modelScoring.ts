import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ExperimentStore } from "../experiments/store.ts";
import type { Explanation } from "../models/explanation.ts";
import {
  bktMastery,
  type ExplainedScore,
  eloMastery,
  type LearnerState,
  replayEvents,
  type TopicParams,
} from "../models/learnerState.ts";
import { LocalArtifactStore } from "../registry/artifacts.ts";
import { formatModelVersion, Registry } from "../registry/registry.ts";
import { type ModelVersion, RegistryError, SqlRegistryStore } from "../registry/store.ts";
import type { DuckStore } from "../storage/duckdb.ts";
import { EXPERIMENT_DDL, REGISTRY_DDL } from "../storage/schema.ts";
import { type LearnerStateRow, learnerStateFromRow } from "../storage/stateStore.ts";
import type { BktKindModel } from "../training/kinds/bkt.ts";
import type { EloKindModel } from "../training/kinds/elo.ts";
import { KIND_NAMES, kindOf } from "../training/kinds.ts";
import type { KindModel } from "../training/modelKind.ts";
import type { ArmAssignment, ExperimentArms } from "./experimentArms.ts";
import { topicParamsResolver } from "./learnerState.ts";

export { virtualAttemptLog } from "../training/kinds/attemptScoring.ts";

/**
 * Scores served from the model registry (issue 6 item 2).
 *
 * Which model: the student's experiment arm when an experiment is active (serving/experimentArms.ts,
 * sticky), else `<modelName>@champion`. Aliases are resolved when the scorer refreshes (at most every
 * `refreshMs`, and at once after an alias move or experiment change over REST); a registered version is
 * immutable, so its loaded model is cached for the life of the process.
 *
 * How a (student, topic) is scored, cheaply and from stored data only:
 *  - bkt / elo: mastery = P(learned) (BKT) or P(correct on an average item of the topic) (Elo) of the
 *    per-(student, topic) state of models/learnerState.ts, with the model's parameters. The stored
 *    learner_state row is used as is when it was built with this very model file (its
 *    bkt_model_version / elo_model_version equal "sha256:" + the first 16 hex of the registered
 *    model.json's sha256, as serving/learnerState.ts writes it); otherwise the student's quiz attempts on
 *    the topic are replayed through the same fold with the model's parameters (exact, O(attempts)).
 *    Explanations are the fold's own factor decomposition.
 *  - every other kind of the table (training/kinds.ts: rule, gbt, mlp, blend): KindModel.scoreTopics over
 *    the student's quiz attempts. For the next-response models (gbt, mlp, blend): mastery = the model's
 *    P(correct) on a NEW, average item of the topic (unknown question id) after all of the student's quiz
 *    attempts so far. The input row is built by appending that virtual attempt to the student's attempt
 *    sequence (all topics, in (ts, event_id) order) and running the same online feature builder as
 *    training; each target topic gets its own copy of the sequence (a separate "user" of the log), so no
 *    virtual row sees another. Cost: one query and T x (attempts + 1) feature rows per student.
 *    Explanations, in probability space: gbt = top 3 TreeSHAP features of the served row, mlp = integrated
 *    gradients, blend = per-source contributions (detail: the GBT's top 3 TreeSHAP features), rule = its
 *    answer counts.
 * The result is part of GET /mastery's body, so the server's per-student body cache holds it; it is
 * dropped when the student's events change or when the served model changes.
 */

export const DEFAULT_MODEL_NAME = "mastery";
export const MODEL_NAME_ENV = "MASTERY_MODEL_NAME";

/** Score source of a registered kind in GET /mastery (the gold table's vocabulary; training/kinds.ts). */
export function scoreSourceOfKind(kind: string): string {
  return KIND_NAMES.includes(kind) ? kindOf(kind).scoreSource : "ml";
}

export class ModelScoringError extends Error {
  readonly code = "MODEL_SCORING";
  constructor(message: string) {
    super(message);
    this.name = "ModelScoringError";
  }
}

/** What served (or did not serve) the student's ML scores: top-level `servedModel` of GET /mastery. */
export interface ServedModelInfo {
  /** served: a registry version scored every topic; none: nothing to serve; unavailable: it failed. */
  status: "served" | "none" | "unavailable";
  modelName: string;
  /** "name@version" of the version that scored, or null. */
  modelVersion: string | null;
  version: number | null;
  kind: string | null;
  scoreSource: string | null;
  /** The reference resolved: "mastery@champion" or an arm's reference. */
  modelRef: string | null;
  experimentArm: { experimentId: string; arm: string; modelRef: string } | null;
  reason: string;
}

export interface ModelTopicScore {
  score: number;
  scoreSource: string;
  modelVersion: string;
  asOf: string;
  explanation: Explanation;
  /** Blend only: per-source logit contributions and the GBT's top TreeSHAP features. */
  detail?: unknown;
}

export interface StudentModelScores {
  info: ServedModelInfo;
  topics: Map<string, ModelTopicScore>;
}

type Loaded =
  | { kind: "bkt" | "elo"; fileVersion: string; params: (topicId: string) => TopicParams }
  | { kind: "attempt"; model: KindModel };

interface ResolvedRefs {
  champion: ModelVersion | null;
  /** Arm reference -> version, or the error message when it does not resolve. */
  arms: Map<string, ModelVersion | string>;
}

export interface ModelScoringOptions {
  registry: Registry;
  /** Active-experiment routing; null = no experiments. */
  arms: ExperimentArms | null;
  /** Where exposures go (required with arms). */
  experiments: ExperimentStore | null;
  modelName: string;
  /** Directory for materialized model versions (default: a new temp directory). */
  cacheDir?: string;
  now?: () => Date;
  refreshMs?: number;
}

export class ModelScoring {
  readonly modelName: string;
  private readonly registry: Registry;
  private readonly arms: ExperimentArms | null;
  private readonly experiments: ExperimentStore | null;
  private readonly now: () => Date;
  private readonly refreshMs: number;
  private cacheDir: string | undefined;
  private readonly loaded = new Map<string, Loaded>();
  private refs: ResolvedRefs = { champion: null, arms: new Map() };
  private refreshedAt = Number.NEGATIVE_INFINITY;
  private signature = "(never)";

  constructor(opts: ModelScoringOptions) {
    this.registry = opts.registry;
    this.arms = opts.arms;
    this.experiments = opts.experiments;
    this.modelName = opts.modelName;
    this.cacheDir = opts.cacheDir;
    this.now = opts.now ?? (() => new Date());
    this.refreshMs = opts.refreshMs ?? 5000;
  }

  /** True when a refresh is due (the caller then runs refresh() under the store gate). */
  due(): boolean {
    return this.now().getTime() - this.refreshedAt >= this.refreshMs;
  }

  /**
   * Re-resolves the champion, the active experiment and its arms' references. Returns true when any
   * served version changed (cached bodies must then be dropped).
   */
  async refresh(force = false): Promise<boolean> {
    if (!force && !this.due()) return false;
    this.refreshedAt = this.now().getTime();
    if (this.arms !== null) await this.arms.refresh(force);
    const champion = await this.tryResolve(`${this.modelName}@champion`);
    const arms = new Map<string, ModelVersion | string>();
    for (const a of this.arms?.experiment?.arms ?? []) {
      const ref =
        "alias" in a.model ? `${a.model.name}@${a.model.alias}` : `${a.model.name}@${a.model.version}`;
      const v = await this.tryResolve(ref);
      arms.set(ref, v ?? `${ref} does not resolve in the registry`);
    }
    this.refs = { champion, arms };
    const sig = JSON.stringify([
      champion === null ? null : formatModelVersion(champion.name, champion.version),
      this.arms?.experiment?.id ?? null,
      this.arms?.experiment?.updatedAt ?? null,
      [...arms].map(([k, v]) => [k, typeof v === "string" ? v : v.version]),
    ]);
    const changed = sig !== this.signature;
    this.signature = sig;
    return changed;
  }

  private async tryResolve(ref: string): Promise<ModelVersion | null> {
    try {
      return await this.registry.resolve(ref);
    } catch (err) {
      if (err instanceof RegistryError) return null;
      throw err;
    }
  }

  /** The student's arm in the active experiment (after the last refresh). */
  assignment(studentKey: string): ArmAssignment | null {
    return this.arms?.assign(studentKey) ?? null;
  }

  /**
   * False when scoreStudent and logExposures would not touch the store for this student (no
   * champion, no experiment arm): the server then builds the body without the store gate.
   */
  usesStore(studentKey: string): boolean {
    return this.refs.champion !== null || this.assignment(studentKey) !== null;
  }

  /**
   * Scores every topic in `topicIds` for the student with the model that serves them. Run under the
   * store gate (it reads learner_state / raw_events and may materialize artifacts).
   */
  async scoreStudent(
    store: DuckStore,
    studentKey: string,
    topicIds: readonly string[],
  ): Promise<StudentModelScores> {
    const arm = this.assignment(studentKey);
    const topics = new Map<string, ModelTopicScore>();
    const base = {
      modelName: this.modelName,
      modelVersion: null,
      version: null,
      kind: null,
      scoreSource: null,
      modelRef: arm?.modelRef ?? null,
      experimentArm:
        arm === null ? null : { experimentId: arm.experimentId, arm: arm.arm, modelRef: arm.modelRef },
    };
    let v: ModelVersion;
    if (arm !== null) {
      const r = this.refs.arms.get(arm.modelRef);
      if (r === undefined || typeof r === "string")
        return {
          info: {
            ...base,
            status: "unavailable",
            reason: `experiment ${arm.experimentId} arm ${arm.arm}: ${r ?? `${arm.modelRef} was not resolved`}; no ML score served`,
          },
          topics,
        };
      v = r;
    } else {
      if (this.refs.champion === null)
        return {
          info: {
            ...base,
            status: "none",
            reason: `no ML model is served: the registry has no champion for "${this.modelName}" (register a version and promote it: mastery models promote ${this.modelName} ...)`,
          },
          topics,
        };
      v = this.refs.champion;
    }
    const modelVersion = formatModelVersion(v.name, v.version);
    const info: ServedModelInfo = {
      ...base,
      status: "served",
      modelVersion,
      version: v.version,
      kind: v.kind,
      scoreSource: scoreSourceOfKind(v.kind),
      modelRef: arm?.modelRef ?? `${this.modelName}@champion`,
      reason:
        arm === null
          ? `champion of ${this.modelName} is ${modelVersion}`
          : `experiment ${arm.experimentId} assigns arm ${arm.arm}, which serves ${arm.modelRef} = ${modelVersion}`,
    };
    if (topicIds.length === 0) return { info, topics };
    let model: Loaded;
    try {
      model = await this.load(v);
    } catch (err) {
      return {
        info: {
          ...info,
          status: "unavailable",
          reason: `${modelVersion} could not be loaded: ${(err as Error).message}`,
        },
        topics: new Map(),
      };
    }
    const scored =
      model.kind === "attempt"
        ? await scoreAttemptModel(store, studentKey, topicIds, model.model)
        : await scoreStateModel(store, studentKey, topicIds, model.kind, model.fileVersion, model.params);
    for (const [topicId, s] of scored) {
      topics.set(topicId, {
        score: s.score,
        scoreSource: info.scoreSource!,
        modelVersion,
        asOf: s.asOf,
        explanation: s.explanation,
        ...(s.detail !== undefined ? { detail: s.detail } : {}),
      });
    }
    return { info, topics };
  }

  /** One exposure row per served score of an experiment arm (experiments/store.ts logExposure). */
  async logExposures(
    studentKey: string,
    info: ServedModelInfo,
    served: { score: number }[],
  ): Promise<number> {
    if (
      this.experiments === null ||
      info.experimentArm === null ||
      info.status !== "served" ||
      served.length === 0
    )
      return 0;
    const at = this.now().toISOString();
    await this.experiments.logExposures(
      served.map((s) => ({
        experimentId: info.experimentArm!.experimentId,
        arm: info.experimentArm!.arm,
        studentKey,
        modelName: info.modelVersion!.slice(0, info.modelVersion!.lastIndexOf("@")),
        modelVersion: info.version!,
        score: s.score,
        servedAt: at,
      })),
    );
    return served.length;
  }

  private async load(v: ModelVersion): Promise<Loaded> {
    const key = formatModelVersion(v.name, v.version);
    const hit = this.loaded.get(key);
    if (hit !== undefined) return hit;
    this.cacheDir ??= mkdtempSync(join(tmpdir(), "mastery-served-models-"));
    const dir = join(this.cacheDir, `${v.name}@${v.version}`);
    if (!existsSync(join(dir, "model.json"))) await this.registry.materialize(v.name, v.version, dir);
    const json = JSON.parse(readFileSync(join(dir, "model.json"), "utf8")) as unknown;
    const sha = v.artifacts.find((a) => a.path === "model.json")?.sha256 ?? "";
    if (!KIND_NAMES.includes(v.kind))
      throw new ModelScoringError(
        `kind "${v.kind}" cannot be served (servable kinds: ${KIND_NAMES.join(", ")}; training/kinds.ts)`,
      );
    const kind = kindOf(v.kind);
    const model = kind.fromJSON(json);
    const fileVersion = `sha256:${sha.slice(0, 16)}`;
    let loaded: Loaded;
    if (kind.servedFrom === "bkt-state")
      loaded = {
        kind: "bkt",
        fileVersion,
        params: topicParamsResolver({ bkt: (model as BktKindModel).bkt, elo: undefined }),
      };
    else if (kind.servedFrom === "elo-state")
      loaded = {
        kind: "elo",
        fileVersion,
        params: topicParamsResolver({ bkt: undefined, elo: (model as EloKindModel).elo }),
      };
    else loaded = { kind: "attempt", model };
    this.loaded.set(key, loaded);
    return loaded;
  }
}

interface ScoredTopic extends ExplainedScore {
  asOf: string;
  detail?: unknown;
}

type QuizRow = {
  topic_id: string;
  event_id: string;
  ts_us: number;
  is_correct: boolean;
  question_id: string | null;
  ingested_at_us: number;
};

/**
 * The student's quiz attempts with a known outcome; the replay (models/learnerState.ts
 * replayEvents) dedupes and orders them like the update path. The SQL applies the same dedupe
 * first (firstIngestedCopies: the first ingested copy of an event_id per topic).
 */
async function quizAttempts(store: DuckStore, studentKey: string): Promise<QuizRow[]> {
  return store.all<QuizRow>(
    `SELECT topic_id, event_id, epoch_us(ts)::DOUBLE AS ts_us, is_correct, question_id,
            epoch_us(ingested_at)::DOUBLE AS ingested_at_us
     FROM raw_events
     WHERE student_key = $1 AND type = 'quiz_attempt' AND is_correct IS NOT NULL
     QUALIFY row_number() OVER (PARTITION BY topic_id, event_id ORDER BY ingested_at, ts) = 1
     ORDER BY ts, event_id`,
    [studentKey],
  );
}

const isoUs = (us: number | null, fallback: Date): string =>
  us === null ? fallback.toISOString() : new Date(us / 1000).toISOString();

async function scoreStateModel(
  store: DuckStore,
  studentKey: string,
  topicIds: readonly string[],
  kind: "bkt" | "elo",
  fileVersion: string,
  paramsFor: (topicId: string) => TopicParams,
): Promise<Map<string, ScoredTopic>> {
  const column = kind === "bkt" ? "bkt_model_version" : "elo_model_version";
  const rows = await store.all<LearnerStateRow & { version: string }>(
    `SELECT s.*, epoch_us(s.last_ts)::DOUBLE AS last_ts_us, s.${column} AS version
     FROM learner_state s WHERE s.student_key = $1`,
    [studentKey],
  );
  const stored = new Map<string, LearnerState>();
  for (const r of rows) if (r.version === fileVersion) stored.set(r.topic_id, learnerStateFromRow(r));
  const replay = topicIds.filter((t) => !stored.has(t));
  const events = new Map<string, QuizRow[]>();
  if (replay.length > 0) {
    for (const e of await quizAttempts(store, studentKey)) {
      const list = events.get(e.topic_id);
      if (list) list.push(e);
      else events.set(e.topic_id, [e]);
    }
  }
  const out = new Map<string, ScoredTopic>();
  const now = new Date();
  for (const topicId of topicIds) {
    const params = paramsFor(topicId);
    let state = stored.get(topicId);
    if (state === undefined)
      state = replayEvents(
        (events.get(topicId) ?? []).map((e) => ({
          eventId: e.event_id,
          type: "quiz_attempt",
          ts: e.ts_us,
          isCorrect: e.is_correct,
          questionId: e.question_id,
          ingestedAt: e.ingested_at_us,
        })),
        params,
      );
    const s = kind === "bkt" ? bktMastery(state, params) : eloMastery(state, params);
    out.set(topicId, { ...s, asOf: isoUs(state.lastTs, now) });
  }
  return out;
}

async function scoreAttemptModel(
  store: DuckStore,
  studentKey: string,
  topicIds: readonly string[],
  model: KindModel,
): Promise<Map<string, ScoredTopic>> {
  const rows = await quizAttempts(store, studentKey);
  const lastTs = new Map<string, number>();
  for (const r of rows) lastTs.set(r.topic_id, r.ts_us);
  const now = new Date();
  // Time-aware models (trained with time=COL) read the event times; the virtual attempt is "now".
  const scores = model.scoreTopics(
    rows.map((r) => ({
      topicId: r.topic_id,
      questionId: r.question_id,
      correct: r.is_correct,
      timeMs: r.ts_us / 1000,
    })),
    topicIds,
    now.getTime(),
  );
  const out = new Map<string, ScoredTopic>();
  topicIds.forEach((t, j) => {
    const s = scores[j]!;
    out.set(t, {
      score: s.score,
      explanation: s.explanation,
      asOf: isoUs(lastTs.get(t) ?? rows.at(-1)?.ts_us ?? null, now),
      ...(s.detail !== undefined ? { detail: s.detail } : {}),
    });
  });
  return out;
}

/**
 * The registry and experiment store on the server's own DuckDB store (one connection: the caller runs
 * every use under its StoreGate). Creates their tables if missing.
 */
export async function servingRegistry(
  store: DuckStore,
  artifactBase: string,
  now: () => Date = () => new Date(),
): Promise<{ registry: Registry; experiments: ExperimentStore }> {
  for (const ddl of [...REGISTRY_DDL, ...EXPERIMENT_DDL]) await store.run(ddl);
  return {
    registry: new Registry(
      new SqlRegistryStore(store, "duckdb"),
      new LocalArtifactStore(artifactBase),
      store,
      now,
    ),
    experiments: new ExperimentStore(store, now),
  };
}
