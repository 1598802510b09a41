import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { DuckDBVector } from "@duckdb/node-api";
import { BKT } from "../models/bkt.ts";
import { MASTERY_BKT_OPTIONS } from "../models/bktMasteryOptions.ts";
import { Elo, eloProbability } from "../models/elo.ts";
import {
  eloMastery,
  initialLearnerState,
  type TopicParams,
  topicParamsResolver,
} from "../models/learnerState.ts";
import { foldKeyRun, type KeyRuns } from "../models/learnerStateFold.ts";
import type { DuckStore } from "../storage/duckdb.ts";
import { DuckDBTimestampValue } from "../storage/duckdbApi.ts";
import { EXPLANATION_NUMBERS_SELECT } from "../storage/explanationNumbers.ts";
import {
  appendDoubleColumns,
  dropLearnerEventColumns,
  type EventBlock,
  forEachEventBlock,
  RepeatedEvents,
  readLearnerEventColumns,
  writeBatchWatermark,
} from "../storage/learnerEventColumns.ts";
import { EXPLANATION_NUMBER_COLUMNS } from "../storage/schema.ts";
import { baseTable, deltaTable, foldDelta } from "../storage/servingTables.ts";
import { LEARNER_STATE_COLUMNS, learnerStateFromRow } from "../storage/stateStore.ts";
import { intern } from "../training/responses.ts";
import type { StreamLatent } from "./latentStream.ts";
import type { StreamRule } from "./ruleStream.ts";

/**
 * The BKT + Elo scoring job (the one batch path: `mastery score bkt-elo`, the pipeline, the demo and
 * `mastery schedule`): folds raw_events per (student_key, topic_id) in (ts, event_id) order into
 * learner_state, then writes the 'bkt' and 'elo' scores to student_mastery (one row per key and
 * source) and student_mastery_history (one row per key and source whose state moved in this run; a
 * full run only where the score, explanation or model version differs from the stored row), each with
 * its explanation stored as the numbers it is made of (typed columns, an empty text; readers render the text:
 * serving/storedExplanations.ts).
 *
 * Incremental by default, with the stream's late-event rule (models/learnerState.ts batchPlan): a
 * key continues from its stored state with only the events after its cursor (last_ts,
 * last_event_id) when the state already holds every stored event at or before the cursor; a key
 * with a late event (stored after the state was built, ts before the cursor), with a state built
 * by other model versions, or with no state, is replayed from its first event. The events come as
 * typed-array columns (storage/learnerEventColumns.ts) and each key is one fold over its sorted run
 * (models/learnerStateFold.ts, bit for bit the stream's applyEvent), so the state equals a full
 * replay and the stream updater's (test/serving/learnerState.int.test.ts).
 */

export class LearnerStateError extends Error {
  readonly code = "LEARNER_STATE";
  constructor(message: string) {
    super(message);
    this.name = "LearnerStateError";
  }
}

/** The models behind the scores and the versions written with them. */
export interface BktEloModels {
  bkt: BKT | undefined;
  bktVersion: string;
  elo: Elo | undefined;
  eloVersion: string;
  /**
   * The served model's latent filter, carried per key by the stream updater and the recompute
   * (serving/latentStream.ts); absent: no latent state, no 'latent' / 'served' scores from the stream.
   */
  latent?: StreamLatent | undefined;
  /**
   * The rule scorer's config, whose decayed state the stream updater and the recompute carry per key
   * (serving/ruleStream.ts); absent: no rule state, no 'rule_based' rows from the stream.
   */
  rule?: StreamRule | undefined;
}

/** Per-topic parameters from the models (models/learnerState.ts; re-exported for the serving callers). */
export { topicParamsResolver };

/** sha256 of the model file, shortened: the model_version written with each score. */
export function modelFileVersion(dir: string): { json: unknown; version: string } {
  const path = join(dir, "model.json");
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new LearnerStateError(
      `cannot read ${path} (${(err as Error).message}); pass the directory written by "mastery train bkt|elo"`,
    );
  }
  return {
    json: JSON.parse(text),
    version: `sha256:${createHash("sha256").update(text).digest("hex").slice(0, 16)}`,
  };
}

function jsonVersion(prefix: string, json: unknown): string {
  return `${prefix}:${createHash("sha256").update(JSON.stringify(json)).digest("hex").slice(0, 16)}`;
}

/**
 * The quick fit reads at most about this many quiz attempts: a store with more (~60M at 100M events) is
 * sampled by student (hash(student_key) % m = 0, the smallest m that brings the count under it), so the
 * fit's memory stays bounded however large the store is; a store with fewer is read whole, as before.
 */
export const QUICK_FIT_MAX_ATTEMPTS = 8_000_000;

/**
 * Quiz attempts of the store as a response log (skill = topic_id, item = question_id), for a quick fit.
 * Streamed from DuckDB's vectors into typed arrays (no object per row); above `maxAttempts` (default
 * QUICK_FIT_MAX_ATTEMPTS) only a deterministic sample of students is read (`sampledEvery` = m, 1 = all).
 */
export async function loadQuizLog(
  store: DuckStore,
  opts: { maxAttempts?: number } = {},
): Promise<{
  n: number;
  user: Int32Array;
  skill: Int32Array;
  item: Int32Array;
  correct: Uint8Array;
  userNames: string[];
  skillNames: string[];
  itemNames: string[];
  sampledEvery: number;
}> {
  const max = opts.maxAttempts ?? QUICK_FIT_MAX_ATTEMPTS;
  const quiz = "type = 'quiz_attempt' AND is_correct IS NOT NULL";
  const total = Number(
    (await store.one<{ n: bigint }>(`SELECT count(*) AS n FROM raw_events WHERE ${quiz}`))?.n ?? 0n,
  );
  const every = total > max ? Math.ceil(total / max) : 1;
  const sql = `${dedupedEvents(every > 1 ? `WHERE hash(student_key) % ${every} = 0` : "")}
     SELECT student_key, topic_id, question_id, is_correct::TINYINT AS c FROM ev
     WHERE ${quiz}
     ORDER BY student_key, ts, event_id`;
  const users = new Map<string, number>();
  const skills = new Map<string, number>();
  const items = new Map<string, number>();
  let cap = Math.min(total, max + (max >> 2)) || 1024;
  let user = new Int32Array(cap);
  let skill = new Int32Array(cap);
  let item = new Int32Array(cap);
  let correct = new Uint8Array(cap);
  let n = 0;
  for await (const chunk of store.chunks(sql)) {
    const rows = chunk.rowCount;
    if (n + rows > cap) {
      cap = Math.max(cap * 2, n + rows);
      const grow = <A extends Int32Array | Uint8Array>(a: A, make: (len: number) => A): A => {
        const b = make(cap);
        b.set(a.subarray(0, n));
        return b;
      };
      user = grow(user, (l) => new Int32Array(l));
      skill = grow(skill, (l) => new Int32Array(l));
      item = grow(item, (l) => new Int32Array(l));
      correct = grow(correct, (l) => new Uint8Array(l));
    }
    const sk = chunk.getColumnVector(0) as DuckDBVector<string>;
    const tp = chunk.getColumnVector(1) as DuckDBVector<string>;
    const q = chunk.getColumnVector(2) as DuckDBVector<string | null>;
    const c = chunk.getColumnVector(3) as DuckDBVector<number>;
    for (let j = 0; j < rows; j++, n++) {
      user[n] = intern(users, sk.getItem(j)!);
      skill[n] = intern(skills, tp.getItem(j)!);
      const qid = q.getItem(j);
      item[n] = qid === null ? -1 : intern(items, qid);
      correct[n] = c.getItem(j) === 1 ? 1 : 0;
    }
  }
  return {
    n,
    user: user.subarray(0, n),
    skill: skill.subarray(0, n),
    item: item.subarray(0, n),
    correct: correct.subarray(0, n),
    userNames: [...users.keys()],
    skillNames: [...skills.keys()],
    itemNames: [...items.keys()],
    sampledEvery: every,
  };
}

/**
 * Models for the job: from model directories when given, else fitted quickly on the store's quiz
 * attempts (version "store-fit:<hash>"), else defaults (version "default") when there are none.
 */
export async function resolveModels(
  store: DuckStore,
  opts: { bktModelDir?: string; eloModelDir?: string; seed?: number },
): Promise<BktEloModels> {
  let bkt: BKT | undefined;
  let bktVersion = "default";
  let elo: Elo | undefined;
  let eloVersion = "default";
  if (opts.bktModelDir !== undefined) {
    const m = modelFileVersion(opts.bktModelDir);
    bkt = BKT.fromJSON(m.json);
    bktVersion = m.version;
  }
  if (opts.eloModelDir !== undefined) {
    const m = modelFileVersion(opts.eloModelDir);
    elo = Elo.fromJSON(m.json);
    eloVersion = m.version;
  }
  if (bkt === undefined || elo === undefined) {
    const log = await loadQuizLog(store);
    if (log.n > 0) {
      if (bkt === undefined) {
        bkt = new BKT({ ...MASTERY_BKT_OPTIONS, restarts: 3, seed: opts.seed ?? 42 }).fit(log);
        bktVersion = jsonVersion("store-fit", bkt.toJSON());
      }
      if (elo === undefined) {
        elo = new Elo({ maxEvaluations: 60, seed: opts.seed ?? 0 }).fit(log);
        eloVersion = jsonVersion("store-fit", elo.toJSON());
      }
    }
  }
  return { bkt, bktVersion, elo, eloVersion };
}

// models/learnerState.ts firstIngestedCopies in SQL: a key's copies of one event count once, the
// first ingested (then the earlier ts). The fold applies the same rule again. `where` filters raw_events
// before the window (a sample of students keeps all of each sampled key's copies).
const dedupedEvents = (where: string) => `WITH ev AS (
  SELECT event_id, type, student_key, topic_id, ts, is_correct, question_id, ingested_at
  FROM raw_events ${where}
  QUALIFY row_number() OVER (PARTITION BY student_key, topic_id, event_id ORDER BY ingested_at, ts) = 1
)`;

export interface ScoreBktEloOptions {
  /** Replay every key from its first event, ignoring stored states. */
  full?: boolean;
  /** Wall time written to updated_at / last_updated / recorded_at (default: now). */
  now?: Date;
  onProgress?: (doneKeys: number, totalKeys: number) => void;
  /**
   * Called at the end of each step of the job with its name (read steps, fold, writes, commit), so a
   * caller can split the job's time or CPU (bench/bktElo.bench.ts PHASES=1).
   */
  onPhase?: (phase: string) => void;
  /** Keys folded and staged per block (default STAGE_KEYS); the result does not depend on it. */
  stageKeys?: number;
  /**
   * Event rows read into memory per block (default EVENT_BLOCK_ROWS, storage/learnerEventColumns.ts); the
   * result does not depend on it.
   */
  eventBlockRows?: number;
  /**
   * Keys written per transaction (default: bktEloWriteKeys of DuckDB's memory_limit); the rows written do not
   * depend on it, only what one transaction holds until its COMMIT.
   */
  writeKeys?: number;
  /** Called after each block's transaction has committed, with the keys written so far and the run's keys. */
  onWriteBlock?: (writtenKeys: number, totalKeys: number) => void;
  /**
   * Awaited once after the fold, before the job reads the stored scores and states or writes anything
   * (serving/batchSteps.ts: the batch folds while the rule step runs and writes after it has committed).
   */
  beforeWrite?: () => Promise<void>;
}

/**
 * Keys written per transaction at a DuckDB memory_limit of `limitBytes`: one key per WRITE_BYTES_PER_KEY of the
 * limit, within [WRITE_KEYS_MIN, WRITE_KEYS_MAX]. A block's transaction holds the key's learner_state row, its two
 * student_mastery rows and their history rows with their primary-key entries, and the staged rows behind them.
 */
export function bktEloWriteKeys(limitBytes: number): number {
  if (!Number.isFinite(limitBytes) || limitBytes <= 0)
    throw new LearnerStateError(
      `bktEloWriteKeys: the memory limit must be a positive number of bytes, got ${limitBytes}; pass DuckStore.memoryLimitBytes()`,
    );
  return Math.max(WRITE_KEYS_MIN, Math.min(WRITE_KEYS_MAX, Math.floor(limitBytes / WRITE_BYTES_PER_KEY)));
}
export const WRITE_BYTES_PER_KEY = 2048;
export const WRITE_KEYS_MIN = 16_384;
export const WRITE_KEYS_MAX = 4_194_304;

/** Keys whose fold results are staged per block: 19 doubles a key, ~10 MB a block. */
export const STAGE_KEYS = 65_536;

export interface ScoreBktEloResult {
  /** Keys whose state moved in this run. */
  keys: number;
  /** Of those, keys replayed from their first event (new, model changed, or full run). */
  replayedKeys: number;
  events: number;
  quizAttempts: number;
  bktVersion: string;
  eloVersion: string;
  /** How the keys were narrowed: "full", "watermark" (O(new rows)), or why the whole store was aggregated. */
  narrowing: string;
  /** Blocks of event rows read and folded (1 unless the run has more than `eventBlockRows` rows). */
  eventBlocks: number;
  /**
   * Rows appended to student_mastery_history: an incremental run, one per key and source it scored; a full
   * run, one per (key, source) whose score, explanation or model version changed (0 for a rerun over
   * unchanged events).
   */
  historyRows: number;
}

/** Columns of the staged fold results (all DOUBLE; integers are exact), in append order. */
const STAGED = [
  "k",
  "p_mastery",
  "elo_ability",
  "elo_n",
  "bkt_n",
  "last_ts_us",
  "correct_streak",
  "correct_n",
  "bkt_correct_delta",
  "bkt_incorrect_delta",
  "bkt_learn_delta",
  "bkt_streak_obs_delta",
  "bkt_streak_learn_delta",
  "elo_correct_delta",
  "elo_incorrect_delta",
  "elo_streak_delta",
  "p_unknown",
  "event_n",
  "elo_score",
] as const;

/** learner_state's columns other than the key and updated_at: what a full run compares with the stored row. */
const STATE_VALUE_COLUMNS = LEARNER_STATE_COLUMNS.split(",")
  .map((c) => c.trim())
  .filter((c) => !["student_key", "topic_id", "updated_at"].includes(c));

/**
 * SQL: whether the new state row `x` differs from the stored base row `b` (NULL when there is none) in any
 * value a full run writes: every column but the key and updated_at (a DOUBLE's sign too, so 0.0 and -0.0
 * differ), or a stored latent filter state (a full run's rows carry none).
 */
export function learnerStateMoved(x: string, b: string): string {
  const differs = STATE_VALUE_COLUMNS.map((c) => `${x}.${c} IS DISTINCT FROM ${b}.${c}`);
  return `(${b}.student_key IS NULL OR ${b}.latent_state IS NOT NULL OR ${b}.latent_model_version IS NOT NULL
    OR ${differs.join(" OR ")} OR ${learnerStateResigned(x, b)})`;
}

const DOUBLE_STATE_COLUMNS = STATE_VALUE_COLUMNS.filter(
  (c) => ["p_mastery", "elo_ability", "p_unknown"].includes(c) || c.endsWith("_delta"),
);

/**
 * SQL: whether a DOUBLE of the new state row `x` and the stored row `b` differ only in the sign of a zero. A
 * DuckDB UPDATE leaves a stored 0.0 where it is given -0.0 (and the reverse: it compares the values), so such a
 * row is deleted and inserted instead.
 */
export function learnerStateResigned(x: string, b: string): string {
  return `(${DOUBLE_STATE_COLUMNS.map((c) => `coalesce(signbit(${x}.${c}) <> signbit(${b}.${c}), false)`).join(" OR ")})`;
}

/**
 * A full rerun's learner_state write for one block of keys (the staged rows of temp.bkt_elo_state_rows, marked
 * is_new / moved / resigned): in the first block the stored states of keys no longer in the run are deleted (none
 * while raw_events only grows; bkt_col_keys holds every key of the run); the block's states differing only in a
 * zero's sign are deleted too (inserted again: see learnerStateResigned), moved rows are rewritten whole (the
 * latent columns cleared, as a full run's insert leaves them), the others get updated_at alone (one column of
 * their row groups for the checkpoint), and new keys are inserted. After the last block the base holds exactly
 * what the delete and reinsert of every state wrote.
 */
async function rewriteMovedStates(
  store: DuckStore,
  now: DuckDBTimestampValue,
  first: boolean,
): Promise<void> {
  const base = baseTable("learner_state");
  const match = `${base}.student_key = x.student_key AND ${base}.topic_id = x.topic_id`;
  if (first)
    await store.run(
      `DELETE FROM ${base} WHERE NOT EXISTS (SELECT 1 FROM temp.bkt_col_keys x WHERE ${match})`,
    );
  await store.run(
    `DELETE FROM ${base} USING (SELECT student_key, topic_id FROM temp.bkt_elo_state_rows WHERE resigned) x
     WHERE ${match}`,
  );
  await store.run(
    `UPDATE ${base} SET ${STATE_VALUE_COLUMNS.map((c) => `${c} = x.${c}`).join(", ")}, updated_at = x.updated_at,
         latent_state = NULL, latent_model_version = NULL, rule_state = NULL, rule_model_version = NULL
       FROM (SELECT * FROM temp.bkt_elo_state_rows WHERE moved AND NOT is_new AND NOT resigned) x WHERE ${match}`,
  );
  await store.run(
    `UPDATE ${base} SET updated_at = $now
       FROM (SELECT student_key, topic_id FROM temp.bkt_elo_state_rows WHERE NOT moved) x WHERE ${match}`,
    { now },
  );
  await store.run(
    `INSERT INTO ${base} (${LEARNER_STATE_COLUMNS})
     SELECT ${LEARNER_STATE_COLUMNS} FROM temp.bkt_elo_state_rows WHERE is_new OR resigned`,
  );
}

/** Runs the job on `store` with `models`; see the module comment. */
export async function scoreBktElo(
  store: DuckStore,
  models: BktEloModels,
  opts: ScoreBktEloOptions = {},
): Promise<ScoreBktEloResult> {
  const now = opts.now ?? new Date();
  const nowUs = now.getTime() * 1000;
  const paramsFor = topicParamsResolver(models);
  // A full run reads the event rows as stored and checks each key for a repeated event as its block is read
  // (storage/learnerEventColumns.ts RepeatedEvents): no product write path stores one, so the check costs a hash
  // per row and a look at each key's rows instead of a grouping of every row first. A store holding one (filled
  // outside ingest and record(): a bulk load, SQL) is read again de-duplicated, and what the first read folded
  // is discarded (bkt_elo_state is created again): the rows stored are the same either way.
  const readAndFold = async (repeats: "on read" | "before") => {
    const cols = await readLearnerEventColumns(store, {
      bktVersion: models.bktVersion,
      eloVersion: models.eloVersion,
      full: opts.full === true,
      repeats,
      ...(opts.onPhase !== undefined ? { onPhase: opts.onPhase } : {}),
    });
    const nKeys = cols.keys;
    const nRows = cols.keyStart[nKeys]!;
    const offsetsByMap = new Map<TopicParams["itemOffsets"], Float64Array>();
    const topicParams = cols.topics.map((t) => paramsFor(t));
    const offsetsOf = (params: TopicParams): Float64Array => {
      let offsets = offsetsByMap.get(params.itemOffsets);
      if (offsets === undefined) {
        offsets = Float64Array.from(cols.questions, (q) => params.itemOffsets.get(q) ?? 0);
        offsetsByMap.set(params.itemOffsets, offsets);
      }
      return offsets;
    };
    // The fold's results as columns (one Float64Array per STAGED column) for up to `stageKeys` keys at a time,
    // appended after each block (bounded memory: 19 doubles a key would be ~1.6 GB at 100M events); the key
    // strings, the cursor's event id and the versions are added in SQL.
    await store.run(
      `CREATE OR REPLACE TEMP TABLE bkt_elo_state (${STAGED.map((c) => `${c} DOUBLE`).join(", ")})`,
    );
    const block = Math.max(1, Math.min(nKeys, opts.stageKeys ?? STAGE_KEYS));
    const out = STAGED.map(() => new Float64Array(block));
    const [ok, pM, eA, eN, bN, lastTs, cS, cN, d0, d1, d2, d3, d4, d5, d6, d7, pU, evN, eloS] = out;
    let replayedKeys = 0;
    let quizAttempts = 0;
    // The events are read one block of whole keys at a time (storage/learnerEventColumns.ts forEachEventBlock):
    // per row, the Elo offset of its question under its key's topic parameters, then each key's fold.
    let eventBlocks = 0;
    const fold = async (ev: EventBlock): Promise<void> => {
      eventBlocks++;
      const itemOffset = new Float64Array(ev.answer.length);
      for (let k = ev.firstKey; k < ev.endKey; k++) {
        const offsets = offsetsOf(topicParams[cols.topic[k]!]!);
        for (let i = ev.keyStart[k - ev.firstKey]!; i < ev.keyStart[k - ev.firstKey + 1]!; i++) {
          const q = ev.question[i]!;
          itemOffset[i] = q < 0 ? 0 : offsets[q]!;
        }
      }
      for (let i = 0; i < ev.answer.length; i++) if (ev.answer[i]! >= 0) quizAttempts++;
      const runs: KeyRuns = { keyStart: ev.keyStart, answer: ev.answer, itemOffset, ts: ev.ts };
      for (let k = ev.firstKey; k < ev.endKey; k++) {
        const params = topicParams[cols.topic[k]!]!;
        const at = k % block;
        const storedRow = cols.replay[k] === 1 ? undefined : cols.stored.get(k);
        if (storedRow === undefined) replayedKeys++;
        const from = storedRow === undefined ? initialLearnerState(params) : learnerStateFromRow(storedRow);
        // Every key here has at least one event, so its cursor's event id is bkt_col_keys.last_event_id.
        const s = foldKeyRun(runs, k - ev.firstKey, params, from, "");
        ok![at] = k;
        pM![at] = s.pMastery;
        eA![at] = s.eloAbility;
        eN![at] = s.eloN;
        bN![at] = s.bktN;
        lastTs![at] = Math.round(s.lastTs ?? nowUs);
        cS![at] = s.correctStreak;
        cN![at] = s.correctN;
        d0![at] = s.bktCorrectDelta;
        d1![at] = s.bktIncorrectDelta;
        d2![at] = s.bktLearnDelta;
        d3![at] = s.bktStreakObsDelta;
        d4![at] = s.bktStreakLearnDelta;
        d5![at] = s.eloCorrectDelta;
        d6![at] = s.eloIncorrectDelta;
        d7![at] = s.eloStreakDelta;
        pU![at] = s.pUnknown;
        evN![at] = s.eventN;
        eloS![at] = eloProbability(s.eloAbility, params.topicDifficulty);
        if (at === block - 1 || k === nKeys - 1)
          await appendDoubleColumns(store, "bkt_elo_state", out, at + 1);
        if ((k + 1) % 10_000 === 0) opts.onProgress?.(k + 1, nKeys);
      }
    };
    await forEachEventBlock(store, cols, fold, {
      ...(opts.eventBlockRows !== undefined ? { blockRows: opts.eventBlockRows } : {}),
      ...(opts.onPhase !== undefined ? { onPhase: opts.onPhase } : {}),
    });
    return { cols, nKeys, nRows, topicParams, replayedKeys, quizAttempts, eventBlocks };
  };
  let read: Awaited<ReturnType<typeof readAndFold>>;
  try {
    read = await readAndFold("on read");
  } catch (err) {
    if (!(err instanceof RepeatedEvents)) throw err;
    read = await readAndFold("before");
  }
  const { cols, nKeys, nRows, topicParams, replayedKeys, quizAttempts, eventBlocks } = read;
  opts.onPhase?.("fold");
  // Per topic index: the explanations' base values and the BKT learn rate shown as a factor value.
  await store.run(
    "CREATE OR REPLACE TEMP TABLE bkt_elo_topic (ti DOUBLE, bkt_prior DOUBLE, bkt_learn DOUBLE, elo_base DOUBLE)",
  );
  await appendDoubleColumns(
    store,
    "bkt_elo_topic",
    [
      Float64Array.from(topicParams, (_, i) => i),
      Float64Array.from(topicParams, (p) => p.bkt.prior),
      Float64Array.from(topicParams, (p) => p.bkt.learn),
      Float64Array.from(topicParams, (p) => eloMastery(initialLearnerState(p), p).explanation.base),
    ],
    topicParams.length,
  );
  opts.onProgress?.(nKeys, nKeys);

  const params = {
    now: new DuckDBTimestampValue(BigInt(Math.round(nowUs))),
    bkt: models.bktVersion,
    elo: models.eloVersion,
  };
  opts.onPhase?.("stage fold results");
  await opts.beforeWrite?.();
  // The score rows, each with the numbers its explanation is made of (models/learnerState.ts
  // bktExplanationNumbers / eloExplanationNumbers, the same arithmetic) and an empty explanation text: readers
  // render the text (serving/storedExplanations.ts), so ~300 bytes of JSON a row are neither built nor written.
  // A full run also marks each row against the stored one (the student_mastery view: its newest bkt/elo rows;
  // this job is the file's one writer while it runs): `is_new` (no stored row) and `moved` (new, or the score,
  // model version or explanation differs, or the stored row holds its explanation as text, as the stream writes
  // it). Joined on the key alone, the rest compared after the match (a NOT EXISTS on every column hashed each
  // explanation text: 1.7 CPU-s at 1M events, load ~27, for a warm rerun that wrote no row).
  const ex = (c: string[]) => EXPLANATION_NUMBER_COLUMNS.map((name, i) => `${c[i]} AS ${name}`).join(", ");
  const bktEx = ex([
    "t.bkt_prior",
    "(s.correct_n - s.correct_streak)::INTEGER",
    "s.bkt_correct_delta",
    "(s.bkt_n - s.correct_n)::INTEGER",
    "s.bkt_incorrect_delta",
    "t.bkt_learn",
    "s.bkt_learn_delta",
    "s.correct_streak::INTEGER",
    "s.bkt_streak_obs_delta + s.bkt_streak_learn_delta",
  ]);
  const eloEx = ex([
    "t.elo_base",
    "(s.correct_n - s.correct_streak)::INTEGER",
    "s.elo_correct_delta",
    "(s.elo_n - s.correct_n)::INTEGER",
    "s.elo_incorrect_delta",
    "NULL::DOUBLE",
    "NULL::DOUBLE",
    "s.correct_streak::INTEGER",
    "s.elo_streak_delta",
  ]);
  const differs = EXPLANATION_NUMBER_COLUMNS.map((c) => `m.${c} IS DISTINCT FROM x.${c}`).join(" OR ");
  // A full run over a store with no bkt / elo row (the first run) marks every row new without the join.
  const scoresStored =
    opts.full === true &&
    (
      await store.one<{ e: boolean }>(
        "SELECT EXISTS (SELECT 1 FROM student_mastery WHERE score_source IN ('bkt', 'elo')) AS e",
      )
    )?.e === true;
  // A full run over a store that already holds states (a rerun) rewrites only the states that moved: each new
  // state is marked against the stored base row (learnerStateMoved), and the write below updates the moved
  // rows, sets updated_at alone on the others and inserts the new keys, instead of deleting and reinserting
  // every row (the primary key's deletes made the commit checkpoint every index of the file).
  const stateRerun =
    opts.full === true &&
    Number(
      (await store.one<{ n: bigint }>(`SELECT count(*) AS n FROM ${baseTable("learner_state")}`))?.n ?? 0n,
    ) > 0;
  // student_mastery / learner_state are views over a base and an append-only delta (storage/servingTables.ts):
  // a full run rewrites the bases; an incremental day appends its rows to the deltas, so its commit writes
  // them at the tail instead of rewriting every row group holding one of its keys.
  const scoreCols = `student_key, topic_id, mastery_score, score_source, model_version, as_of, explanation, ${EXPLANATION_NUMBERS_SELECT}`;
  const scoreValues = `student_key, topic_id, mastery_score, score_source, model_version, as_of, '', ${EXPLANATION_NUMBERS_SELECT}`;
  // The writes go in blocks of `writeKeys` keys (key indices lo .. hi - 1), each block staged and then written in a
  // transaction of its own, so what a transaction holds until its COMMIT (the rows, their primary-key entries, the
  // staged score rows) is bounded by the block, not the run: at 100M events and a 5 GB DuckDB limit the one
  // transaction of 11.1M keys failed at its COMMIT ("failed to pin block"). The run's watermark is written in the
  // last block's transaction, so a run that stops between blocks leaves the previous watermark: the next run (full
  // or incremental) then scores every key again or continues each written key from its stored state, and stores
  // what one uninterrupted run stores (each key's state and score depend only on its events; a block already
  // written counts as stored, so it adds no second history point). Blocks only split the writes: the rows written
  // are the same whatever the block size (test/serving/learnerState.int.test.ts).
  const writeKeys = Math.max(1, opts.writeKeys ?? bktEloWriteKeys(await store.memoryLimitBytes()));
  let historyRows = 0;
  for (let lo = 0; lo === 0 || lo < nKeys; lo += writeKeys) {
    const hi = Math.min(nKeys, lo + writeKeys);
    const first = lo === 0;
    const last = hi >= nKeys;
    const writeBlock = async (): Promise<void> => {
      // The block's keys (no filter when it is the whole run). bkt_elo_state is appended in key order, so the
      // filter on s.k skips the other row groups by their min/max.
      const keyed = `bkt_elo_state s JOIN bkt_col_keys k ON k.k = s.k::INTEGER${
        first && last ? "" : ` AND s.k >= ${lo} AND s.k < ${hi}`
      }`;
      await store.run(
        `CREATE OR REPLACE TEMP TABLE bkt_elo_score AS
         WITH x AS (
           SELECT k.student_key, k.topic_id, s.p_mastery AS mastery_score, 'bkt' AS score_source, $bkt AS model_version,
                  make_timestamp(s.last_ts_us::BIGINT) AS as_of, ${bktEx}
           FROM ${keyed} JOIN bkt_elo_topic t ON t.ti = k.ti::DOUBLE
           UNION ALL
           SELECT k.student_key, k.topic_id, s.elo_score, 'elo', $elo, make_timestamp(s.last_ts_us::BIGINT), ${eloEx}
           FROM ${keyed} JOIN bkt_elo_topic t ON t.ti = k.ti::DOUBLE)
         ${
           opts.full === true && !scoresStored
             ? "SELECT x.*, true AS is_new, true AS moved FROM x"
             : opts.full === true
               ? `SELECT x.*, m.student_key IS NULL AS is_new,
                  m.student_key IS NULL OR m.mastery_score <> x.mastery_score OR m.model_version <> x.model_version
                    OR m.explanation <> '' OR ${differs} AS moved
                FROM x LEFT JOIN (SELECT student_key, topic_id, score_source, mastery_score, model_version, explanation,
                                         ${EXPLANATION_NUMBERS_SELECT}
                                  FROM student_mastery WHERE score_source IN ('bkt', 'elo')) m
                  ON m.student_key = x.student_key AND m.topic_id = x.topic_id AND m.score_source = x.score_source`
               : "SELECT * FROM x"
         }`,
        { bkt: params.bkt, elo: params.elo },
      );
      opts.onPhase?.("scores and explanation numbers (SQL)");
      const stateRows = `SELECT k.student_key, k.topic_id, s.p_mastery, s.elo_ability, s.elo_n::INTEGER AS elo_n,
                  s.bkt_n::INTEGER AS bkt_n, make_timestamp(s.last_ts_us::BIGINT) AS last_ts, k.last_event_id,
                  s.correct_streak::INTEGER AS correct_streak, $now AS updated_at, s.correct_n::INTEGER AS correct_n,
                  s.bkt_correct_delta, s.bkt_incorrect_delta, s.bkt_learn_delta, s.bkt_streak_obs_delta,
                  s.bkt_streak_learn_delta, s.elo_correct_delta, s.elo_incorrect_delta, s.elo_streak_delta,
                  $bkt AS bkt_model_version, $elo AS elo_model_version, s.p_unknown, s.event_n::INTEGER AS event_n
           FROM ${keyed}`;
      // Staged before the write transaction: a temp table created inside it makes its COMMIT checkpoint the
      // whole database (measured: 0.3-1.3 s at 1M, 8 s at 10M), where the day's commit otherwise writes a small WAL.
      if (opts.full !== true)
        await store.run(`CREATE OR REPLACE TEMP TABLE bkt_elo_state_rows AS ${stateRows}`, params);
      if (stateRerun)
        await store.run(
          `CREATE OR REPLACE TEMP TABLE bkt_elo_state_rows AS
           SELECT x.*, b.student_key IS NULL AS is_new, ${learnerStateMoved("x", "b")} AS moved,
                  b.student_key IS NOT NULL AND ${learnerStateResigned("x", "b")} AS resigned
           FROM (${stateRows}) x LEFT JOIN ${baseTable("learner_state")} b
             ON b.student_key = x.student_key AND b.topic_id = x.topic_id`,
          params,
        );
      // History rows. An incremental day writes one per key and source (every key it scores has new events), as
      // the stream does. A full run replays every key, so it writes one only where the visible score moved
      // (`moved` above); a rerun over unchanged events adds none.
      const insertHistory = async (where: string): Promise<number> => {
        const r = await store.one<{ Count: bigint }>(
          `INSERT INTO student_mastery_history (${scoreCols}, recorded_at)
           SELECT ${scoreValues}, $now FROM bkt_elo_score ${where}`,
          { now: params.now },
        );
        opts.onPhase?.("history insert");
        return Number(r?.Count ?? 0n);
      };
      await store.transaction(async () => {
        if (opts.full === true) {
          // Every state is rewritten: after the DELETEs a plain INSERT (one row per key) needs no conflict checks.
          if (first) await store.run(`DELETE FROM ${deltaTable("learner_state")}`);
          if (stateRerun) await rewriteMovedStates(store, params.now, first);
          else {
            if (first) await store.run(`DELETE FROM ${baseTable("learner_state")}`);
            await store.run(
              `INSERT INTO ${baseTable("learner_state")} (${LEARNER_STATE_COLUMNS}) ${stateRows}`,
              params,
            );
          }
          opts.onPhase?.("learner_state write");
          // The delta's bkt/elo rows first move to the base, so the base then holds every stored row of the sources.
          if (first) await foldDelta(store, "student_mastery", "score_source IN ('bkt', 'elo')");
          const sm = baseTable("student_mastery");
          historyRows += await insertHistory("WHERE moved");
          // Stored rows are updated in place and only new ones inserted (an INSERT OR REPLACE probes the primary key
          // per row and deletes from it: ~0.6-1.3 CPU-s at 1M events against ~0.3-0.8). A row that did not move gets
          // only its as_of and last_updated (a video event moves as_of alone): a DuckDB checkpoint rewrites the
          // updated columns of each row group an UPDATE touches, so a rerun over unchanged events rewrites two
          // timestamp columns, not every column.
          const match = `${sm}.student_key = x.student_key AND ${sm}.topic_id = x.topic_id AND ${sm}.score_source = x.score_source`;
          await store.run(
            `UPDATE ${sm} SET mastery_score = x.mastery_score, model_version = x.model_version, as_of = x.as_of,
                 explanation = '', ${EXPLANATION_NUMBER_COLUMNS.map((c) => `${c} = x.${c}`).join(", ")}, last_updated = $now
               FROM (SELECT * FROM temp.bkt_elo_score WHERE moved AND NOT is_new) x
               WHERE ${match}`,
            { now: params.now },
          );
          await store.run(
            `UPDATE ${sm} SET as_of = x.as_of, last_updated = $now
               FROM (SELECT student_key, topic_id, score_source, as_of FROM temp.bkt_elo_score WHERE NOT moved) x
               WHERE ${match}`,
            { now: params.now },
          );
          // New keys' rows in student order (a block is a range of keys in student order): one student's bkt and
          // elo rows lie next to each other, for GET /mastery's row-id range read (storage/rowIdRanges.ts).
          await store.run(
            `INSERT INTO ${sm} (${scoreCols}, last_updated)
               SELECT ${scoreValues}, $now FROM temp.bkt_elo_score WHERE is_new
               ORDER BY student_key, topic_id, score_source`,
            { now: params.now },
          );
        } else {
          // The newest row per key wins: an appended state replaces the key's row as a whole, so the latent
          // filter's columns (not the batch's) are carried over from the row it replaces, as an UPDATE kept them.
          const x = LEARNER_STATE_COLUMNS.split(",")
            .map((c) => `x.${c.trim()}`)
            .join(", ");
          await store.run(
            `INSERT INTO ${deltaTable("learner_state")} (${LEARNER_STATE_COLUMNS}, latent_state, latent_model_version)
             SELECT ${x}, l.latent_state, l.latent_model_version FROM temp.bkt_elo_state_rows x
             LEFT JOIN learner_state l ON l.student_key = x.student_key AND l.topic_id = x.topic_id`,
          );
          opts.onPhase?.("learner_state write");
          // Every key here moved (it has new events): one history row per key and source, as the stream writes.
          historyRows += await insertHistory("");
          await store.run(
            `INSERT INTO ${deltaTable("student_mastery")} (${scoreCols}, last_updated)
             SELECT ${scoreValues}, $now FROM temp.bkt_elo_score`,
            { now: params.now },
          );
        }
        opts.onPhase?.("student_mastery write");
        if (last && cols.extent.maxUs !== null)
          await writeBatchWatermark(store, {
            ingestedThroughUs: cols.extent.maxUs,
            rawRows: cols.extent.rows,
            bktVersion: models.bktVersion,
            eloVersion: models.eloVersion,
          });
      });
      opts.onPhase?.("watermark and commit");
      opts.onWriteBlock?.(hi, nKeys);
    };
    // A full run's block (the staged scores, the learner_state and student_mastery writes, the history rows and
    // the COMMIT) is mostly serial and runs on one DuckDB thread: on two the calling thread busy-waits for the
    // worker (storage/duckdb.ts withThreads). At 1M: 3.40 -> 2.80 CPU-s for the step, medians of 3 interleaved pairs;
    // at 10M no gain (28.8 -> 28.3): the COMMIT then writes the row groups a parallel insert writes as it goes
    // (docs/benchmarks.md "The batch's serial write phases on one DuckDB thread (duck16)"). An incremental day
    // writes a few rows: not switched.
    if (opts.full === true) await store.withThreads(1, writeBlock);
    else await writeBlock();
  }
  await dropLearnerEventColumns(store);
  for (const t of ["bkt_elo_state", "bkt_elo_score", "bkt_elo_topic", "bkt_elo_state_rows"])
    await store.run(`DROP TABLE IF EXISTS ${t}`);
  return {
    keys: nKeys,
    replayedKeys,
    events: nRows,
    quizAttempts,
    bktVersion: models.bktVersion,
    eloVersion: models.eloVersion,
    narrowing: cols.narrowing,
    eventBlocks,
    historyRows,
  };
}
