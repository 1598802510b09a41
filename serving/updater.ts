import { type LearningEvent, timestampMicros } from "../features/contracts.ts";
import type { Pseudonymizer } from "../features/pseudonymize.ts";
import { BKT } from "../models/bkt.ts";
import { Elo } from "../models/elo.ts";
import {
  bktMastery,
  eloMastery,
  firstIngestedCopies,
  initialLearnerState,
  type LearnerEvent,
  type LearnerState,
  replayEvents,
  replayOrder,
  type TopicParams,
  updatePlan,
} from "../models/learnerState.ts";
import type { MasteryStore, MasteryWrite } from "../storage/masteryStore.ts";
import type { LearnerRow, RawEventRow, RawEventStore } from "../storage/rawEventStore.ts";
import type {
  KeyLoad,
  LoadedKey,
  StateCommit,
  StateStore,
  StoredLearnerState,
} from "../storage/stateStore.ts";
import { EventLoopBudget } from "./eventLoopBudget.ts";
import {
  foldLatentColumns,
  hasStudentEffect,
  type LatentColumns,
  latentScores,
  latentUsable,
  loadStreamLatent,
  studentOffsetOfStates,
} from "./latentStream.ts";
import { type BktEloModels, modelFileVersion, topicParamsResolver } from "./learnerState.ts";
import { foldRuleColumns, loadStreamRule, type RuleColumns, ruleScores, ruleUsable } from "./ruleStream.ts";

/**
 * The ONE incremental update path: the stream worker and POST /events both hand validated,
 * pseudonymized event rows to `EventUpdater.apply`, which
 *   1. appends them to the raw zone (first stored version of an event_id wins),
 *   2. per (student, topic) loads the state, its revision and which of the events it already holds,
 *   3. folds the new events with models/learnerState.ts replayEvents as its updatePlan (the one
 *      late-event rule) says — forward from the state when they all come after the key's cursor
 *      (last_ts, last_event_id), otherwise (a late event, a new key, or other model versions) by
 *      replaying the key's stored events from the start,
 *   4. commits state + processed event ids with compare-and-set on the revision (retrying a key that
 *      another worker moved meanwhile), and
 *   5. writes the BKT and Elo scores with their explanations to student_mastery (+ history).
 * Invariant after every commit: a key's state is the fold, in (ts, event_id) order, of exactly the
 * events in its processed set. So duplicates and redeliveries change nothing, arrival order does not
 * matter, and once every event is processed the state equals `mastery recompute`'s full replay.
 * A crash between any two steps is safe: unacknowledged events come back, step 1 is idempotent, and
 * step 5 is re-run for every key an event touches, even a duplicate one.
 */

export type ApplyOutcome = "applied" | "replayed" | "duplicate";

export interface ApplyResult {
  eventId: string;
  studentKey: string;
  topicId: string;
  /**
   * applied: folded forward onto the key's state; replayed: the key was rebuilt from its stored
   * events (first event of the key, an event older than its cursor, or a model change);
   * duplicate: the event was already in the state (nothing changed).
   */
  outcome: ApplyOutcome;
  /** The key's scores after this batch. */
  bkt: number;
  elo: number;
}

/** A (student, topic) whose scores a batch may have moved (alerts re-check these). */
export interface UpdatedKey {
  studentKey: string;
  topicId: string;
}

/** The distinct keys of `results` whose events were applied or replayed (not duplicates only). */
export function updatedKeys(results: readonly ApplyResult[]): UpdatedKey[] {
  const seen = new Map<string, UpdatedKey>();
  for (const r of results)
    if (r.outcome !== "duplicate")
      seen.set(keyId(r.studentKey, r.topicId), { studentKey: r.studentKey, topicId: r.topicId });
  return [...seen.values()];
}

/**
 * Every (student, topic) a batch carried, duplicates included: what the alert check looks at. A
 * "duplicate" may be the redelivery (or the client's retry) of a batch whose process died after its
 * scores were written and before its check ran; the check is idempotent (a crossing already stored
 * raises nothing), so checking those keys again costs a read and closes that gap.
 */
export function alertKeys(results: readonly ApplyResult[]): UpdatedKey[] {
  const seen = new Map<string, UpdatedKey>();
  for (const r of results)
    seen.set(keyId(r.studentKey, r.topicId), { studentKey: r.studentKey, topicId: r.topicId });
  return [...seen.values()];
}

export interface EventUpdater {
  /**
   * Applies the rows; resolves only once they are durably in the stores readers use (raw zone,
   * state, scores), with one result per row: "duplicate" only for an event its key's state already
   * held (applied before, by this or another updater), never for one merely seen.
   */
  apply(rows: readonly RawEventRow[]): Promise<ApplyResult[]>;
  /** Optional: resolves when the updater can start on a new batch right away. */
  stateStageIdle?(): Promise<void>;
  /** Optional: the event ids among `rows` whose keys' states already hold them (nothing is written). */
  applied?(rows: readonly RawEventRow[]): Promise<Set<string>>;
}

export class UpdaterError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = "UpdaterError";
  }
}

/**
 * An event timestamp (features/contracts.ts TIMESTAMP_PATTERN: offset required, at most
 * microseconds) as epoch microseconds UTC, exactly (Date.parse keeps only milliseconds).
 */
export function isoToMicros(ts: string): number {
  const us = timestampMicros(ts);
  if (us === null)
    throw new UpdaterError(
      "EVENT_TIMESTAMP",
      `timestamp "${ts}" is not ISO 8601 with an offset (e.g. 2026-01-05T10:00:00.123456Z)`,
    );
  return us;
}

/** A validated event as raw_events rows: pseudonymized, one row per topic (assignments fan out). */
export function rowsFromEvent(
  event: LearningEvent,
  pseudonymizer: Pseudonymizer,
  opts: { source: string; ingestedAtUs: number },
): RawEventRow[] {
  const e = event as unknown as Record<string, unknown>;
  const str = (k: string): string | null => (typeof e[k] === "string" ? (e[k] as string) : null);
  const num = (k: string): number | null => (typeof e[k] === "number" ? (e[k] as number) : null);
  const topics = event.type === "assignment" ? [...new Set(event.topic_ids)] : [event.topic_id];
  const topic = topics[0];
  if (topic === undefined) return [];
  // The row as one literal with its topic: a spread that adds a field (`{ ...base, topic_id }`) leaves V8's
  // fast path (~7 µs a row, docs/benchmarks.md "The app's CPU per request, round 8 (req29)"); one that only
  // overrides a field (an assignment's further topics, below) stays on it.
  const first: RawEventRow = {
    event_id: event.event_id,
    type: event.type,
    student_key: pseudonymizer.studentKey(event.student_id),
    topic_id: topic,
    ts_us: isoToMicros(event.timestamp),
    school_id: str("school_id"),
    class_id: str("class_id"),
    grade: num("grade"),
    question_id: str("question_id"),
    is_correct: typeof e.is_correct === "boolean" ? e.is_correct : null,
    time_spent_sec: num("time_spent_sec"),
    attempt_number: num("attempt_number"),
    hints_used: num("hints_used"),
    assignment_id: str("assignment_id"),
    score_pct: num("score_pct"),
    video_id: str("video_id"),
    watch_pct: num("watch_pct"),
    watch_duration_sec: num("watch_duration_sec"),
    rewind_count: num("rewind_count"),
    attempts: num("attempts"),
    correct_count: num("correct_count"),
    help_requests: num("help_requests"),
    resolved_count: num("resolved_count"),
    source: opts.source,
    ingested_at_us: opts.ingestedAtUs,
  };
  return topics.length === 1 ? [first] : topics.map((topic_id) => ({ ...first, topic_id }));
}

/**
 * Models for the stream: from model directories (written by `mastery train bkt|elo`), else the
 * defaults (version "default"). Never fitted at start-up, unlike resolveModels: every worker and
 * the recompute must use the very same parameters, or their states could not agree.
 */
export function streamModels(opts: {
  bktModelDir?: string | undefined;
  eloModelDir?: string | undefined;
  /** A served model (`mastery train served`) whose latent filter the stream carries (serving/latentStream.ts). */
  servedModelDir?: string | undefined;
  /**
   * The rule weights whose decayed state the stream keeps (serving/ruleStream.ts); default
   * config/rule-weights.yaml, null: no rule state and no 'rule_based' rows from the stream.
   */
  ruleConfigPath?: string | null | undefined;
}): BktEloModels {
  const models: BktEloModels = {
    bkt: undefined,
    bktVersion: "default",
    elo: undefined,
    eloVersion: "default",
  };
  if (opts.bktModelDir !== undefined) {
    const m = modelFileVersion(opts.bktModelDir);
    models.bkt = BKT.fromJSON(m.json);
    models.bktVersion = m.version;
  }
  if (opts.eloModelDir !== undefined) {
    const m = modelFileVersion(opts.eloModelDir);
    models.elo = Elo.fromJSON(m.json);
    models.eloVersion = m.version;
  }
  if (opts.servedModelDir !== undefined) models.latent = loadStreamLatent(opts.servedModelDir);
  if (opts.ruleConfigPath !== null) models.rule = loadStreamRule(opts.ruleConfigPath);
  return models;
}

export function learnerEvent(r: LearnerRow): LearnerEvent {
  return {
    eventId: r.event_id,
    type: r.type,
    ts: r.ts_us,
    isCorrect: r.is_correct,
    questionId: r.question_id,
    ingestedAt: r.ingested_at_us,
    attempts: r.attempts,
    correctCount: r.correct_count,
    scorePct: r.score_pct,
  };
}

/** BKT and Elo scores of a state as student_mastery rows. Shared with the recompute. */
export function masteryScores(
  state: LearnerState,
  params: TopicParams,
  models: Pick<BktEloModels, "bktVersion" | "eloVersion">,
): MasteryWrite["scores"] {
  const b = bktMastery(state, params);
  const e = eloMastery(state, params);
  return [
    {
      source: "bkt",
      score: b.score,
      modelVersion: models.bktVersion,
      explanation: JSON.stringify(b.explanation),
    },
    {
      source: "elo",
      score: e.score,
      modelVersion: models.eloVersion,
      explanation: JSON.stringify(e.explanation),
    },
  ];
}

// The stored state as one object literal: a rest pattern (the LearnerState part of a stored state) or a
// spread followed by new fields copies through V8's generic property path, ~1-4 µs a key, and both ran for
// every key of every POST (docs/benchmarks.md "The app's CPU per request, round 8 (req29)"). A field added
// to StoredLearnerState fails to compile here until it is listed. The fold and the scores read a stored
// state's LearnerState fields as they are (applyEvent copies its input; the extra fields it carries over are
// not read, and not kept: this literal takes the LearnerState fields only).
function toStored(
  s: LearnerState,
  models: BktEloModels,
  latent: LatentColumns,
  rule: RuleColumns,
): StoredLearnerState {
  return {
    pMastery: s.pMastery,
    pUnknown: s.pUnknown,
    bktN: s.bktN,
    eloAbility: s.eloAbility,
    eloN: s.eloN,
    correctN: s.correctN,
    correctStreak: s.correctStreak,
    lastTs: s.lastTs,
    lastEventId: s.lastEventId,
    eventN: s.eventN,
    bktCorrectDelta: s.bktCorrectDelta,
    bktIncorrectDelta: s.bktIncorrectDelta,
    bktLearnDelta: s.bktLearnDelta,
    bktStreakObsDelta: s.bktStreakObsDelta,
    bktStreakLearnDelta: s.bktStreakLearnDelta,
    eloCorrectDelta: s.eloCorrectDelta,
    eloIncorrectDelta: s.eloIncorrectDelta,
    eloStreakDelta: s.eloStreakDelta,
    bktModelVersion: models.bktVersion,
    eloModelVersion: models.eloVersion,
    latent: latent.latent ?? null,
    latentModelVersion: latent.latentModelVersion ?? null,
    rule: rule.rule ?? null,
    ruleModelVersion: rule.ruleModelVersion ?? null,
  };
}

/** A key's stored rows as the fold counts them: the first ingested copy of each event (firstIngestedCopies). */
export function firstIngestedRows(rows: readonly LearnerRow[]): LearnerRow[] {
  // Each row by its event object (not `{ ...learnerEvent(row), row }`: a spread that adds a field leaves V8's
  // fast path, ~4-7 µs a row).
  const byEvent = new Map<LearnerEvent, LearnerRow>();
  const events = rows.map((row) => {
    const e = learnerEvent(row);
    byEvent.set(e, row);
    return e;
  });
  return firstIngestedCopies(events).map((e) => byEvent.get(e)!);
}

/**
 * BKT/Elo scores of a stored state, then the latent filter's (serving/latentStream.ts) at the student's offset
 * (studentOffsetOfStates over all of the student's states; 0 without a student effect). Shared with the
 * recompute.
 */
export function stateScores(
  state: StoredLearnerState,
  topicId: string,
  params: TopicParams,
  models: BktEloModels,
  studentOffset = 0,
): MasteryWrite["scores"] {
  const scores = masteryScores(state, params, models);
  const latent = latentScores(models.latent, topicId, state, state.lastTs, studentOffset);
  const rule = ruleScores(models.rule, state);
  return latent.length === 0 && rule.length === 0 ? scores : [...scores, ...latent, ...rule];
}

const keyId = (studentKey: string, topicId: string): string => `${studentKey}\u0000${topicId}`;

export interface IncrementalUpdaterOptions {
  raw: RawEventStore;
  state: StateStore;
  mastery: MasteryStore;
  models: BktEloModels;
  /** Wall clock in epoch microseconds (tests pin it). */
  nowUs?: () => number;
  /** Compare-and-set attempts per key before the batch fails (and is redelivered). */
  maxAttempts?: number;
  /**
   * Let a batch's student_mastery write overlap the next batch's state update (throughput; the
   * revision guard keeps the scores right in any order). Only when the mastery store has its own
   * connection: openStreamStores sets it for PostgreSQL, not for a shared DuckDB connection.
   */
  pipelineMastery?: boolean;
  /**
   * Send a batch's state load together with its raw append instead of after it (one round trip less;
   * the load is a read, guarded by the commit's compare-and-set). Only when the raw and state stores do
   * not share one DuckDB connection. Default: `pipelineMastery` (set for PostgreSQL).
   */
  earlyStateLoad?: boolean;
  /** Longest synchronous slice of a batch's fold before the event loop gets a turn (default 5 ms). */
  sliceMs?: number;
  /**
   * With `pipelineMastery`: how many batches' score writes may be in flight at once (default 1: one after
   * the other). Each write is one statement guarded by the revisions (a key's row moves only to a newer
   * revision; keys are locked in one order, so writers cannot deadlock), the same guard that lets several
   * workers write at once; so a batch's write need not wait for the previous batch's. A batch is still
   * answered only after its own write.
   */
  masteryWriters?: number;
}

interface Staged {
  rows: readonly RawEventRow[];
  plans: Map<string, KeyPlan>;
}

interface KeyPlan {
  studentKey: string;
  topicId: string;
  rows: LearnerRow[];
  /** Event ids of `rows` (one row per event and key). */
  ids: Set<string>;
  outcome: Map<string, ApplyOutcome>;
  final: { rev: number; state: StoredLearnerState } | null;
  /**
   * A key of the model's topics that the batch does not carry, of a student it does (student effect only):
   * committed unchanged (a new revision) when the student's offset may move, so its scores are rewritten.
   */
  sibling?: boolean;
  /** Committed by this batch (its scores are written with the new revision). */
  committed?: boolean;
}

/** Counters of an updater since it was made (logs and benchmarks read them). */
export interface UpdaterStats {
  batches: number;
  rows: number;
  /** Keys rebuilt from the start (their stored events, or the batch's own rows for a key new to the store). */
  replayedKeys: number;
  /** Of those, keys whose stored events were read back (the others had none before the batch). */
  storedReads: number;
  /** Compare-and-set failures (another writer moved the key first); each costs a retry. */
  conflicts: number;
  /**
   * Milliseconds spent per step, summed over batches. `mastery` is the score step (rows built and written);
   * of it, `scoreWrite` the write statement alone; `scoreQueue` is the wait before the step for a free
   * score writer (pipelined: the previous batches' writes).
   */
  ms: {
    record: number;
    load: number;
    replay: number;
    commit: number;
    mastery: number;
    scoreWrite: number;
    scoreQueue: number;
  };
}

export class IncrementalUpdater implements EventUpdater {
  readonly stats: UpdaterStats = {
    batches: 0,
    rows: 0,
    replayedKeys: 0,
    storedReads: 0,
    conflicts: 0,
    ms: { record: 0, load: 0, replay: 0, commit: 0, mastery: 0, scoreWrite: 0, scoreQueue: 0 },
  };
  private readonly paramsFor: (topicId: string) => TopicParams;
  private readonly nowUs: () => number;
  private readonly maxAttempts: number;
  // One batch at a time per process: callers (the worker, concurrent HTTP requests) queue here.
  private tail: Promise<unknown> = Promise.resolve();

  constructor(private readonly opts: IncrementalUpdaterOptions) {
    this.paramsFor = topicParamsResolver(opts.models);
    this.nowUs = opts.nowUs ?? (() => Date.now() * 1000);
    this.maxAttempts = opts.maxAttempts ?? 50;
    const writers = opts.masteryWriters ?? 1;
    if (!Number.isInteger(writers) || writers < 1)
      throw new RangeError(
        `IncrementalUpdater masteryWriters must be an integer >= 1 (got ${opts.masteryWriters}); e.g. 4`,
      );
    this.writers = new WriterSlots(writers);
  }

  apply(rows: readonly RawEventRow[]): Promise<ApplyResult[]> {
    if (this.opts.pipelineMastery !== true) {
      const run = this.tail.then(async () => {
        const staged = await this.updateState(rows);
        return this.writeMastery(staged);
      });
      this.tail = run.catch(() => undefined);
      return run;
    }
    // Two stages: the state update one batch at a time, in order; batch n+1's state update may run while
    // batch n's scores are written, and up to `masteryWriters` batches' score writes run at once.
    const staged = this.tail.then(() => this.updateState(rows));
    this.tail = staged.catch(() => undefined);
    return staged.then((st) => {
      const queued = performance.now();
      return this.writers.run(() => {
        this.stats.ms.scoreQueue += performance.now() - queued;
        return this.writeMastery(st);
      });
    });
  }

  private readonly writers: WriterSlots;

  async applied(rows: readonly RawEventRow[]): Promise<Set<string>> {
    const keys = keyLoads(rows, []);
    const out = new Set<string>();
    if (keys.length === 0) return out;
    for (const l of await this.opts.state.load(keys)) for (const e of l.seen) out.add(e);
    return out;
  }

  /** Resolves when no batch is queued for or in the state update (a worker forms its next batch then). */
  async stateStageIdle(): Promise<void> {
    let seen: Promise<unknown>;
    do {
      seen = this.tail;
      await seen;
    } while (seen !== this.tail);
  }

  private async updateState(rows: readonly RawEventRow[]): Promise<Staged> {
    if (rows.length === 0) return { rows, plans: new Map() };
    const { raw, state: stateStore, models } = this.opts;
    const ms = this.stats.ms;
    let t = performance.now();
    const lap = (step: keyof UpdaterStats["ms"]) => {
      const now = performance.now();
      ms[step] += now - t;
      t = now;
    };
    this.stats.batches++;
    this.stats.rows += rows.length;
    const effect = hasStudentEffect(models.latent);
    // The state load is a read: it is sent with the raw append instead of after it (one round trip less
    // on the batch's path). It asks for the keys and event ids of the rows as received; the fold uses it
    // when the stored rows (the canonical ones: an event_id stored before keeps its stored row) ask for
    // the same, else it loads again. Compare-and-set at the commit guards it like any load.
    const siblingTopics = effect ? Object.keys(models.latent!.filter.json.topicPriorMean) : [];
    const early =
      (this.opts.earlyStateLoad ?? this.opts.pipelineMastery) === true ? keyLoads(rows, siblingTopics) : null;
    const earlyLoad = early === null ? null : stateStore.load(early);
    // A failed append throws below; the early load's outcome is then not read.
    earlyLoad?.catch(() => undefined);
    // With the append: which keys held no stored event before it (a store that can tell in the same round trip).
    const recorded =
      raw.recordWithNewKeys === undefined
        ? { rows: await raw.record(rows), newKeys: [] }
        : await raw.recordWithNewKeys(rows);
    const canonical = recorded.rows;
    const newKeys = new Set(recorded.newKeys.map((k) => keyId(k.studentKey, k.topicId)));
    lap("record");
    const plans = planKeys(canonical, siblingTopics);
    const earlyUsable = early !== null && sameLoad(early, plans);
    const moving = new Set<string>();

    // The fold is synchronous: slices with the event loop free in between (serving/eventLoopBudget.ts).
    const budget = new EventLoopBudget(this.opts.sliceMs);
    let pending = [...plans.values()];
    for (let attempt = 0; pending.length > 0; attempt++) {
      if (attempt >= this.maxAttempts)
        throw new UpdaterError(
          "UPDATER_CONTENTION",
          `${pending.length} key(s) still moved by another writer after ${this.maxAttempts} attempts; the batch will be redelivered`,
        );
      const loaded =
        attempt === 0 && earlyUsable && earlyLoad !== null
          ? byKeyOf(await earlyLoad, pending)
          : await stateStore.load(loadRequest(pending));
      lap("load");
      // The loop ran while the load was in flight: the fold's slice starts now (a turn right after an
      // await is one more wait behind every queued request, for nothing).
      budget.resume();
      const commits: StateCommit[] = [];
      const committing: KeyPlan[] = [];
      const replay: { plan: KeyPlan; loaded: LoadedKey }[] = [];
      const updatedAtUs = this.nowUs();
      if (effect)
        pending.forEach((plan, i) => {
          if (plan.rows.some((r) => !loaded[i]!.seen.has(r.event_id))) moving.add(plan.studentKey);
        });
      for (let i = 0; i < pending.length; i++) {
        if (budget.due) await budget.yield();
        const plan = pending[i]!;
        const l = loaded[i]!;
        const fresh = plan.rows.filter((r) => !l.seen.has(r.event_id));
        // (A key committed in an earlier attempt and retried with its student keeps its outcomes.)
        for (const r of plan.rows)
          if (l.seen.has(r.event_id) && !plan.outcome.has(r.event_id))
            plan.outcome.set(r.event_id, "duplicate");
        const s = l.state;
        const usable =
          s !== null &&
          s.bktModelVersion === models.bktVersion &&
          s.eloModelVersion === models.eloVersion &&
          latentUsable(models.latent, s) &&
          ruleUsable(models.rule, s);
        if (fresh.length === 0) {
          plan.final = s === null ? null : { rev: l.rev, state: s };
          if (s === null || !moving.has(plan.studentKey)) continue;
          if (!usable) {
            // A key of a moving student built by other models: rebuilt, so its summary counts.
            replay.push({ plan, loaded: l });
            continue;
          }
          commits.push({
            studentKey: plan.studentKey,
            topicId: plan.topicId,
            expectedRev: l.rev,
            state: s,
            processed: [],
            updatedAtUs,
          });
          committing.push(plan);
          continue;
        }
        const events = replayOrder(fresh.map(learnerEvent));
        if (updatePlan(usable ? s : null, events) === "replay") {
          replay.push({ plan, loaded: l });
          continue;
        }
        const next = replayEvents(events, this.paramsFor(plan.topicId), s!);
        const latent = foldLatentColumns(models.latent, plan.topicId, events, s);
        const rule = foldRuleColumns(models.rule, fresh, s, next.eventN);
        for (const r of fresh) plan.outcome.set(r.event_id, "applied");
        commits.push({
          studentKey: plan.studentKey,
          topicId: plan.topicId,
          expectedRev: l.rev,
          state: toStored(next, models, latent, rule),
          processed: fresh.map((r) => r.event_id),
          updatedAtUs,
        });
        committing.push(plan);
      }

      if (replay.length > 0) {
        this.stats.replayedKeys += replay.length;
        // Rebuild these keys from every stored event (ours were stored in step 1, so they are in). A key
        // with no state and no stored event before our append is rebuilt from our rows alone, without
        // reading them back: the state then holds exactly the events it folded, as after any replay. (An
        // event of it stored meanwhile by another writer is that writer's to fold: its commit finds our
        // revision and folds it onto our state. A key with a state, even one left by another writer since
        // our load, is always read back: its state may hold events we would otherwise drop.)
        const ownRows = (x: { plan: KeyPlan; loaded: LoadedKey }) =>
          x.loaded.state === null &&
          x.loaded.seen.size === 0 &&
          newKeys.has(keyId(x.plan.studentKey, x.plan.topicId));
        const stored = replay.filter((x) => !ownRows(x)).map((x) => x.plan);
        const events = stored.length === 0 ? [] : await raw.keyEvents(stored);
        if (stored.length > 0) budget.resume();
        this.stats.storedReads += stored.length;
        const byKey = new Map<string, LearnerRow[]>();
        for (const x of replay)
          if (ownRows(x)) byKey.set(keyId(x.plan.studentKey, x.plan.topicId), [...x.plan.rows]);
        for (const e of events) {
          const id = keyId(e.student_key, e.topic_id);
          const list = byKey.get(id);
          if (list === undefined) byKey.set(id, [e]);
          else list.push(e);
        }
        for (const { plan, loaded: l } of replay) {
          if (budget.due) await budget.yield();
          const keyRows = firstIngestedRows(byKey.get(keyId(plan.studentKey, plan.topicId)) ?? []);
          const evs = keyRows.map(learnerEvent);
          const next = replayEvents(evs, this.paramsFor(plan.topicId));
          const rule = foldRuleColumns(models.rule, keyRows, null, next.eventN);
          // replayEvents sorts its own copy; the filter folds the same order.
          const ordered = models.latent === undefined ? [] : replayOrder(evs);
          const latent = foldLatentColumns(models.latent, plan.topicId, ordered, null);
          for (const r of plan.rows) if (!l.seen.has(r.event_id)) plan.outcome.set(r.event_id, "replayed");
          commits.push({
            studentKey: plan.studentKey,
            topicId: plan.topicId,
            expectedRev: l.rev,
            state: toStored(next, models, latent, rule),
            processed: evs.map((e) => e.eventId),
            updatedAtUs,
          });
          committing.push(plan);
        }
      }

      lap("replay");
      const revs = await stateStore.commit(commits);
      lap("commit");
      pending = [];
      const retryStudents = new Set<string>();
      revs.forEach((rev, i) => {
        const plan = committing[i]!;
        if (rev === null) {
          this.stats.conflicts++;
          plan.outcome.clear();
          pending.push(plan);
          retryStudents.add(plan.studentKey);
        } else {
          plan.final = { rev, state: commits[i]!.state };
          plan.committed = true;
        }
      });
      // Student effect: a student with a key moved by another writer is retried whole (every key reloaded
      // and committed again), so that its offset is never computed from states of two different moments.
      if (effect && retryStudents.size > 0)
        revs.forEach((rev, i) => {
          const plan = committing[i]!;
          if (rev !== null && retryStudents.has(plan.studentKey)) pending.push(plan);
        });
    }

    return { rows, plans };
  }

  private async writeMastery({ rows, plans }: Staged): Promise<ApplyResult[]> {
    if (rows.length === 0) return [];
    const { mastery, models } = this.opts;
    const t = performance.now();
    const budget = new EventLoopBudget(this.opts.sliceMs);
    const writes: MasteryWrite[] = [];
    // The key's scores after the batch, computed once per key (results below repeat them per row).
    const keyScores = new Map<KeyPlan, { bkt: number; elo: number }>();
    // Student effect: each student's offset from the final states of all of their keys (siblings included).
    const offsets = new Map<string, number>();
    if (hasStudentEffect(models.latent)) {
      const byStudent = new Map<string, { topicId: string; state: StoredLearnerState }[]>();
      for (const p of plans.values()) {
        if (p.final === null) continue;
        const l = byStudent.get(p.studentKey) ?? [];
        l.push({ topicId: p.topicId, state: p.final.state });
        byStudent.set(p.studentKey, l);
      }
      for (const [st, l] of byStudent) offsets.set(st, studentOffsetOfStates(models.latent, l));
    }
    for (const p of plans.values()) {
      if (budget.due) await budget.yield();
      // A sibling's scores are rewritten only when the batch committed it (its student moved).
      if (p.sibling === true && p.committed !== true) continue;
      const params = this.paramsFor(p.topicId);
      if (p.final === null) {
        keyScores.set(p, {
          bkt: params.bkt.prior,
          elo: eloMastery(initialLearnerState(params), params).score,
        });
        continue;
      }
      const scores = stateScores(p.final.state, p.topicId, params, models, offsets.get(p.studentKey) ?? 0);
      keyScores.set(p, { bkt: scores[0]!.score, elo: scores[1]!.score });
      writes.push({
        studentKey: p.studentKey,
        topicId: p.topicId,
        rev: p.final.rev,
        asOfUs: p.final.state.lastTs ?? this.nowUs(),
        scores,
      });
    }
    const w = performance.now();
    await mastery.write(writes, this.nowUs());
    const end = performance.now();
    this.stats.ms.scoreWrite += end - w;
    this.stats.ms.mastery += end - t;

    // One result per input row; a second copy of an (event, topic) in the batch, or a row whose
    // event_id was already stored with other content, is a duplicate.
    const results: ApplyResult[] = [];
    const reported = new Set<string>();
    for (const r of rows) {
      const p = plans.get(keyId(r.student_key, r.topic_id));
      const once = `${r.event_id}\u0000${r.student_key}\u0000${r.topic_id}`;
      const first = !reported.has(once);
      reported.add(once);
      let sc = p === undefined ? undefined : keyScores.get(p);
      if (sc === undefined) {
        const params = this.paramsFor(r.topic_id);
        sc = { bkt: params.bkt.prior, elo: eloMastery(initialLearnerState(params), params).score };
      }
      results.push({
        eventId: r.event_id,
        studentKey: r.student_key,
        topicId: r.topic_id,
        outcome: (first ? p?.outcome.get(r.event_id) : undefined) ?? "duplicate",
        bkt: sc.bkt,
        elo: sc.elo,
      });
    }
    return results;
  }
}

/** At most `size` tasks at once; the others start in call order as slots free up. */
class WriterSlots {
  private busy = 0;
  private readonly waiting: (() => void)[] = [];
  constructor(private readonly size: number) {}

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.busy >= this.size) await new Promise<void>((resolve) => this.waiting.push(resolve));
    else this.busy++;
    try {
      return await task();
    } finally {
      // The slot passes straight to the next waiter (busy stays), else it is freed.
      const next = this.waiting.shift();
      if (next !== undefined) next();
      else this.busy--;
    }
  }
}

/**
 * The batch's keys, each with its distinct event rows in order (serving/updater.ts updateState).
 * Student effect (serving/latentStream.ts): a student's offset spans all of their pairs, so the batch
 * carries every key of the model's topics (`siblingTopics`) of each of its students. Those with new
 * events fold them; the others ("siblings") are committed unchanged when the student has new events, all
 * under compare-and-set from one load, so the offset and every pair's scores come from one consistent
 * snapshot of the student.
 */
function planKeys(canonical: readonly LearnerRow[], siblingTopics: readonly string[]): Map<string, KeyPlan> {
  const plans = new Map<string, KeyPlan>();
  for (const r of canonical) {
    const id = keyId(r.student_key, r.topic_id);
    let p = plans.get(id);
    if (p === undefined) {
      p = {
        studentKey: r.student_key,
        topicId: r.topic_id,
        rows: [],
        ids: new Set(),
        outcome: new Map(),
        final: null,
      };
      plans.set(id, p);
    }
    if (!p.ids.has(r.event_id)) {
      p.ids.add(r.event_id);
      p.rows.push(r);
    }
  }
  if (siblingTopics.length > 0) {
    const students = new Set([...plans.values()].map((p) => p.studentKey));
    for (const studentKey of students)
      for (const topicId of siblingTopics) {
        const id = keyId(studentKey, topicId);
        if (!plans.has(id))
          plans.set(id, {
            studentKey,
            topicId,
            rows: [],
            ids: new Set(),
            outcome: new Map(),
            final: null,
            sibling: true,
          });
      }
  }
  return plans;
}

/** What a state load asks for the rows as received: the keys planKeys would make, with their event ids. */
function keyLoads(rows: readonly RawEventRow[], siblingTopics: readonly string[]): KeyLoad[] {
  const byKey = new Map<string, { studentKey: string; topicId: string; eventIds: string[] }>();
  for (const r of rows) {
    const id = keyId(r.student_key, r.topic_id);
    const k = byKey.get(id);
    if (k === undefined)
      byKey.set(id, { studentKey: r.student_key, topicId: r.topic_id, eventIds: [r.event_id] });
    else if (!k.eventIds.includes(r.event_id)) k.eventIds.push(r.event_id);
  }
  if (siblingTopics.length > 0) {
    const students = new Set([...byKey.values()].map((k) => k.studentKey));
    for (const studentKey of students)
      for (const topicId of siblingTopics) {
        const id = keyId(studentKey, topicId);
        if (!byKey.has(id)) byKey.set(id, { studentKey, topicId, eventIds: [] });
      }
  }
  return [...byKey.values()];
}

const loadRequest = (plans: readonly KeyPlan[]): KeyLoad[] =>
  plans.map((p) => ({
    studentKey: p.studentKey,
    topicId: p.topicId,
    eventIds: p.rows.map((r) => r.event_id),
  }));

/** True when `early` asked, for every key of `plans`, exactly the event ids the plan asks (any order). */
function sameLoad(early: readonly KeyLoad[], plans: ReadonlyMap<string, KeyPlan>): boolean {
  if (early.length !== plans.size) return false;
  for (const k of early) {
    const p = plans.get(keyId(k.studentKey, k.topicId));
    if (p === undefined || p.ids.size !== k.eventIds.length) return false;
    for (const e of k.eventIds) if (!p.ids.has(e)) return false;
  }
  return true;
}

/** The early load's answers in `pending`'s order (sameLoad held: every key is there). */
function byKeyOf(loaded: readonly LoadedKey[], pending: readonly KeyPlan[]): LoadedKey[] {
  const by = new Map(loaded.map((l) => [keyId(l.studentKey, l.topicId), l]));
  return pending.map((p) => by.get(keyId(p.studentKey, p.topicId))!);
}
