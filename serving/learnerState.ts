import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { BKT } from "../models/bkt.ts";
import { MASTERY_BKT_OPTIONS } from "../models/bktMasteryOptions.ts";
import { Elo } from "../models/elo.ts";
import {
  bktMastery,
  type ExplainedScore,
  eloMastery,
  initialLearnerState,
  type TopicParams,
  topicParamsResolver,
} from "../models/learnerState.ts";
import { foldKeyRun, type KeyRuns } from "../models/learnerStateFold.ts";
import type { DuckStore } from "../storage/duckdb.ts";
import { DuckDBTimestampValue } from "../storage/duckdbApi.ts";
import { dropLearnerEventColumns, readLearnerEventColumns } from "../storage/learnerEventColumns.ts";
import { LEARNER_STATE_COLUMNS, learnerStateFromRow } from "../storage/stateStore.ts";
import { intern } from "../training/responses.ts";

/**
 * The BKT + Elo scoring job (the one batch path: `mastery score bkt-elo`, the pipeline, the demo and
 * `mastery schedule`): folds raw_events per (student_key, topic_id) in (ts, event_id) order into
 * learner_state, then writes the 'bkt' and 'elo' scores to student_mastery (one row per key and
 * source) and student_mastery_history (one row per key and source whose state moved in this run),
 * each with its explanation.
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

/** Quiz attempts of the store as a response log (skill = topic_id, item = question_id), for a quick fit. */
export async function loadQuizLog(store: DuckStore): Promise<{
  n: number;
  user: Int32Array;
  skill: Int32Array;
  item: Int32Array;
  correct: Uint8Array;
  userNames: string[];
  skillNames: string[];
  itemNames: string[];
}> {
  const rows = await store.all<{
    student_key: string;
    topic_id: string;
    question_id: string | null;
    c: boolean;
  }>(
    `${DEDUPED_EVENTS}
     SELECT student_key, topic_id, question_id, is_correct AS c FROM ev
     WHERE type = 'quiz_attempt' AND is_correct IS NOT NULL
     ORDER BY student_key, ts, event_id`,
  );
  const n = rows.length;
  const users = new Map<string, number>();
  const skills = new Map<string, number>();
  const items = new Map<string, number>();
  const log = {
    n,
    user: new Int32Array(n),
    skill: new Int32Array(n),
    item: new Int32Array(n),
    correct: new Uint8Array(n),
    userNames: [] as string[],
    skillNames: [] as string[],
    itemNames: [] as string[],
  };
  rows.forEach((r, k) => {
    log.user[k] = intern(users, r.student_key);
    log.skill[k] = intern(skills, r.topic_id);
    log.item[k] = r.question_id === null ? -1 : intern(items, r.question_id);
    log.correct[k] = r.c ? 1 : 0;
  });
  log.userNames = [...users.keys()];
  log.skillNames = [...skills.keys()];
  log.itemNames = [...items.keys()];
  return log;
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
// first ingested (then the earlier ts). The fold applies the same rule again.
const DEDUPED_EVENTS = `WITH ev AS (
  SELECT event_id, type, student_key, topic_id, ts, is_correct, question_id, ingested_at
  FROM raw_events
  QUALIFY row_number() OVER (PARTITION BY student_key, topic_id, event_id ORDER BY ingested_at, ts) = 1
)`;

export interface ScoreBktEloOptions {
  /** Replay every key from its first event, ignoring stored states. */
  full?: boolean;
  /** Wall time written to updated_at / last_updated / recorded_at (default: now). */
  now?: Date;
  onProgress?: (doneKeys: number, totalKeys: number) => void;
}

export interface ScoreBktEloResult {
  /** Keys whose state moved in this run. */
  keys: number;
  /** Of those, keys replayed from their first event (new, model changed, or full run). */
  replayedKeys: number;
  events: number;
  quizAttempts: number;
  bktVersion: string;
  eloVersion: string;
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
  const cols = await readLearnerEventColumns(store, {
    bktVersion: models.bktVersion,
    eloVersion: models.eloVersion,
    full: opts.full === true,
  });
  const nKeys = cols.keys;
  const nRows = cols.answer.length;

  // Per row: the Elo offset of its question under its key's topic parameters.
  const itemOffset = new Float64Array(nRows);
  const offsetsByMap = new Map<TopicParams["itemOffsets"], Float64Array>();
  const topicParams = cols.topics.map((t) => paramsFor(t));
  for (let k = 0; k < nKeys; k++) {
    const params = topicParams[cols.topic[k]!]!;
    let offsets = offsetsByMap.get(params.itemOffsets);
    if (offsets === undefined) {
      offsets = Float64Array.from(cols.questions, (q) => params.itemOffsets.get(q) ?? 0);
      offsetsByMap.set(params.itemOffsets, offsets);
    }
    for (let i = cols.keyStart[k]!; i < cols.keyStart[k + 1]!; i++) {
      const q = cols.question[i]!;
      itemOffset[i] = q < 0 ? 0 : offsets[q]!;
    }
  }
  const runs: KeyRuns = { keyStart: cols.keyStart, answer: cols.answer, itemOffset, ts: cols.ts };

  // Staged by key index; the key strings, the cursor's event id and the versions are joined in SQL.
  await store.run(
    `CREATE OR REPLACE TEMP TABLE bkt_elo_state (
       k INTEGER, p_mastery DOUBLE, elo_ability DOUBLE, elo_n INTEGER, bkt_n INTEGER, last_ts TIMESTAMP,
       correct_streak INTEGER, correct_n INTEGER, bkt_correct_delta DOUBLE, bkt_incorrect_delta DOUBLE,
       bkt_learn_delta DOUBLE, bkt_streak_obs_delta DOUBLE, bkt_streak_learn_delta DOUBLE,
       elo_correct_delta DOUBLE, elo_incorrect_delta DOUBLE, elo_streak_delta DOUBLE, p_unknown DOUBLE,
       event_n INTEGER)`,
  );
  await store.run(
    `CREATE OR REPLACE TEMP TABLE bkt_elo_score (
       k INTEGER, score_source VARCHAR, mastery_score DOUBLE, as_of TIMESTAMP, explanation VARCHAR)`,
  );
  const stateApp = await store.conn.createAppender("bkt_elo_state");
  const scoreApp = await store.conn.createAppender("bkt_elo_score");
  const writeScore = (k: number, s: ExplainedScore, source: string, asOf: DuckDBTimestampValue) => {
    scoreApp.appendInteger(k);
    scoreApp.appendVarchar(source);
    scoreApp.appendDouble(s.score);
    scoreApp.appendTimestamp(asOf);
    scoreApp.appendVarchar(JSON.stringify(s.explanation));
    scoreApp.endRow();
  };

  let replayedKeys = 0;
  for (let k = 0; k < nKeys; k++) {
    const params = topicParams[cols.topic[k]!]!;
    const storedRow = cols.replay[k] === 1 ? undefined : cols.stored.get(k);
    if (storedRow === undefined) replayedKeys++;
    const from = storedRow === undefined ? initialLearnerState(params) : learnerStateFromRow(storedRow);
    // Every key here has at least one event, so its cursor's event id is bkt_col_keys.last_event_id.
    const s = foldKeyRun(runs, k, params, from, "");
    const asOf = new DuckDBTimestampValue(BigInt(Math.round(s.lastTs ?? nowUs)));
    stateApp.appendInteger(k);
    stateApp.appendDouble(s.pMastery);
    stateApp.appendDouble(s.eloAbility);
    stateApp.appendInteger(s.eloN);
    stateApp.appendInteger(s.bktN);
    stateApp.appendTimestamp(asOf);
    stateApp.appendInteger(s.correctStreak);
    stateApp.appendInteger(s.correctN);
    stateApp.appendDouble(s.bktCorrectDelta);
    stateApp.appendDouble(s.bktIncorrectDelta);
    stateApp.appendDouble(s.bktLearnDelta);
    stateApp.appendDouble(s.bktStreakObsDelta);
    stateApp.appendDouble(s.bktStreakLearnDelta);
    stateApp.appendDouble(s.eloCorrectDelta);
    stateApp.appendDouble(s.eloIncorrectDelta);
    stateApp.appendDouble(s.eloStreakDelta);
    stateApp.appendDouble(s.pUnknown);
    stateApp.appendInteger(s.eventN);
    stateApp.endRow();
    writeScore(k, bktMastery(s, params), "bkt", asOf);
    writeScore(k, eloMastery(s, params), "elo", asOf);
    if ((k + 1) % 10_000 === 0) opts.onProgress?.(k + 1, nKeys);
  }
  stateApp.closeSync();
  scoreApp.closeSync();
  opts.onProgress?.(nKeys, nKeys);
  let quizAttempts = 0;
  for (let i = 0; i < nRows; i++) if (cols.answer[i]! >= 0) quizAttempts++;

  const params = {
    now: new DuckDBTimestampValue(BigInt(Math.round(nowUs))),
    bkt: models.bktVersion,
    elo: models.eloVersion,
  };
  const scores = `SELECT k.student_key, k.topic_id, s.mastery_score, s.score_source,
         CASE s.score_source WHEN 'bkt' THEN $bkt ELSE $elo END AS model_version, s.as_of, s.explanation, $now AS stamp
       FROM bkt_elo_score s JOIN bkt_col_keys k USING (k)`;
  await store.transaction(async () => {
    if (opts.full === true) await store.run("DELETE FROM learner_state");
    await store.run(
      `INSERT OR REPLACE INTO learner_state (${LEARNER_STATE_COLUMNS})
       SELECT k.student_key, k.topic_id, s.p_mastery, s.elo_ability, s.elo_n, s.bkt_n, s.last_ts, k.last_event_id,
              s.correct_streak, $now, s.correct_n, s.bkt_correct_delta, s.bkt_incorrect_delta, s.bkt_learn_delta,
              s.bkt_streak_obs_delta, s.bkt_streak_learn_delta, s.elo_correct_delta, s.elo_incorrect_delta,
              s.elo_streak_delta, $bkt, $elo, s.p_unknown, s.event_n
       FROM bkt_elo_state s JOIN bkt_col_keys k USING (k)`,
      params,
    );
    await store.run(
      `INSERT OR REPLACE INTO student_mastery
         (student_key, topic_id, mastery_score, score_source, model_version, as_of, explanation, last_updated)
       ${scores}`,
      params,
    );
    await store.run(
      `INSERT INTO student_mastery_history
         (student_key, topic_id, mastery_score, score_source, model_version, as_of, explanation, recorded_at)
       ${scores}`,
      params,
    );
  });
  await dropLearnerEventColumns(store);
  await store.run("DROP TABLE IF EXISTS bkt_elo_state");
  await store.run("DROP TABLE IF EXISTS bkt_elo_score");
  return {
    keys: nKeys,
    replayedKeys,
    events: nRows,
    quizAttempts,
    bktVersion: models.bktVersion,
    eloVersion: models.eloVersion,
  };
}
