import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { BKT } from "../models/bkt.ts";
import { MASTERY_BKT_OPTIONS } from "../models/bktMasteryOptions.ts";
import { Elo } from "../models/elo.ts";
import {
  batchPlan,
  bktMastery,
  type ExplainedScore,
  eloMastery,
  type LearnerEvent,
  type LearnerState,
  replayEvents,
  topicParamsResolver,
} from "../models/learnerState.ts";
import type { DuckStore } from "../storage/duckdb.ts";
import { DuckDBTimestampValue } from "../storage/duckdbApi.ts";
import {
  appendLearnerStateRow,
  LEARNER_STATE_COLUMNS,
  type LearnerStateRow,
  learnerStateFromRow,
} from "../storage/stateStore.ts";
import { intern } from "../training/responses.ts";

/**
 * The BKT + Elo scoring job: replays raw_events per (student_key, topic_id) in (ts, event_id)
 * order through models/learnerState.ts into learner_state, then writes the 'bkt' and 'elo' scores
 * to student_mastery (one row per key and source) and student_mastery_history (one row per key and
 * source whose state moved in this run), each with its explanation.
 *
 * Incremental by default, with the stream's late-event rule (models/learnerState.ts batchPlan): a
 * key continues from its stored state with only the events after its cursor (last_ts,
 * last_event_id) when the state already holds every stored event at or before the cursor; a key
 * with a late event (stored after the state was built, ts before the cursor), with a state built
 * by other model versions, or with no state, is replayed from its first event. Both go through
 * models/learnerState.ts replayEvents, so the state equals a full replay
 * (test/serving/learnerState.int.test.ts proves it).
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

type EventRow = {
  student_key: string;
  topic_id: string;
  event_id: string;
  type: string;
  ts_us: number;
  is_correct: boolean | null;
  question_id: string | null;
  ingested_at_us: number;
};

const micros = (us: number): DuckDBTimestampValue => new DuckDBTimestampValue(BigInt(Math.round(us)));

/** Runs the job on `store` with `models`; see the module comment. */
export async function scoreBktElo(
  store: DuckStore,
  models: BktEloModels,
  opts: ScoreBktEloOptions = {},
): Promise<ScoreBktEloResult> {
  const now = opts.now ?? new Date();
  const nowUs = now.getTime() * 1000;
  const paramsFor = topicParamsResolver(models);
  const versions = [models.bktVersion, models.eloVersion];

  // Per key: whether it has a usable state (same model versions, not a full run), and how many of
  // its stored events lie at or before / after that state's cursor.
  const usable = `s.student_key = ev.student_key AND s.topic_id = ev.topic_id
      AND s.bkt_model_version = $1 AND s.elo_model_version = $2 AND NOT $3`;
  const afterCursor = `(s.last_ts IS NULL OR ev.ts > s.last_ts OR (ev.ts = s.last_ts AND ev.event_id > s.last_event_id))`;
  const keyRows = await store.all<{
    student_key: string;
    topic_id: string;
    has_state: boolean;
    event_n: number | null;
    n_before: bigint;
    n_after: bigint;
  }>(
    `${DEDUPED_EVENTS}
     SELECT ev.student_key, ev.topic_id, bool_or(s.student_key IS NOT NULL) AS has_state,
            any_value(s.event_n) AS event_n,
            count(*) FILTER (WHERE s.student_key IS NOT NULL AND NOT ${afterCursor}) AS n_before,
            count(*) FILTER (WHERE s.student_key IS NULL OR ${afterCursor}) AS n_after
     FROM ev LEFT JOIN learner_state s ON ${usable}
     GROUP BY ev.student_key, ev.topic_id`,
    [...versions, opts.full === true],
  );
  // The late-event rule (models/learnerState.ts batchPlan, the stream's updatePlan seen from the
  // store): a key is continued from its state only when the state holds every stored event at or
  // before its cursor; otherwise (no state, other models, a late event) it is replayed in full.
  await store.run(
    "CREATE OR REPLACE TEMP TABLE bkt_elo_plan (student_key VARCHAR, topic_id VARCHAR, replay BOOLEAN)",
  );
  const planApp = await store.conn.createAppender("bkt_elo_plan", "main", "temp");
  let nKeys = 0;
  for (const r of keyRows) {
    const state = r.has_state ? { eventN: r.event_n ?? -1 } : null;
    const replay = batchPlan(state, Number(r.n_before)) === "replay";
    if (!replay && Number(r.n_after) === 0) continue;
    planApp.appendVarchar(r.student_key);
    planApp.appendVarchar(r.topic_id);
    planApp.appendBoolean(replay);
    planApp.endRow();
    nKeys++;
  }
  planApp.flushSync();
  planApp.closeSync();

  const stateRows = await store.all<LearnerStateRow>(
    `SELECT s.*, epoch_us(s.last_ts)::DOUBLE AS last_ts_us
     FROM learner_state s JOIN bkt_elo_plan p USING (student_key, topic_id) WHERE NOT p.replay`,
  );
  const stored = new Map<string, LearnerState>();
  for (const r of stateRows) stored.set(`${r.student_key}\u0000${r.topic_id}`, learnerStateFromRow(r));
  const events = await store.all<EventRow>(
    `${DEDUPED_EVENTS}
     SELECT ev.student_key, ev.topic_id, ev.event_id, ev.type, epoch_us(ev.ts)::DOUBLE AS ts_us,
            ev.is_correct, ev.question_id, epoch_us(ev.ingested_at)::DOUBLE AS ingested_at_us
     FROM ev JOIN bkt_elo_plan p USING (student_key, topic_id)
     LEFT JOIN learner_state s ON ${usable} AND NOT p.replay
     WHERE p.replay OR ${afterCursor}
     ORDER BY ev.student_key, ev.topic_id, ev.ts, ev.event_id`,
    [...versions, opts.full === true],
  );

  await store.run(
    `CREATE OR REPLACE TEMP TABLE bkt_elo_state AS SELECT ${LEARNER_STATE_COLUMNS} FROM learner_state LIMIT 0`,
  );
  await store.run(
    `CREATE OR REPLACE TEMP TABLE bkt_elo_score (
       student_key VARCHAR, topic_id VARCHAR, mastery_score DOUBLE, score_source VARCHAR,
       model_version VARCHAR, as_of TIMESTAMP, explanation VARCHAR)`,
  );
  const stateApp = await store.conn.createAppender("bkt_elo_state");
  const scoreApp = await store.conn.createAppender("bkt_elo_score");
  const writeScore = (
    key: string,
    topic: string,
    s: ExplainedScore,
    source: string,
    version: string,
    asOfUs: number,
  ) => {
    scoreApp.appendVarchar(key);
    scoreApp.appendVarchar(topic);
    scoreApp.appendDouble(s.score);
    scoreApp.appendVarchar(source);
    scoreApp.appendVarchar(version);
    scoreApp.appendTimestamp(micros(asOfUs));
    scoreApp.appendVarchar(JSON.stringify(s.explanation));
    scoreApp.endRow();
  };

  let quizAttempts = 0;
  let replayedKeys = 0;
  let doneKeys = 0;
  let k = 0;
  while (k < events.length) {
    const first = events[k]!;
    const keyId = `${first.student_key}\u0000${first.topic_id}`;
    const params = paramsFor(first.topic_id);
    const prior = stored.get(keyId);
    if (prior === undefined) replayedKeys++;
    const keyEvents: LearnerEvent[] = [];
    for (; k < events.length; k++) {
      const e = events[k]!;
      if (e.student_key !== first.student_key || e.topic_id !== first.topic_id) break;
      if (e.type === "quiz_attempt" && e.is_correct !== null) quizAttempts++;
      keyEvents.push({
        eventId: e.event_id,
        type: e.type,
        ts: e.ts_us,
        isCorrect: e.is_correct,
        questionId: e.question_id,
        ingestedAt: e.ingested_at_us,
      });
    }
    const state = replayEvents(keyEvents, params, prior);
    const s = state;
    appendLearnerStateRow(
      stateApp,
      first.student_key,
      first.topic_id,
      s,
      nowUs,
      models.bktVersion,
      models.eloVersion,
    );
    const asOf = s.lastTs ?? nowUs;
    writeScore(first.student_key, first.topic_id, bktMastery(s, params), "bkt", models.bktVersion, asOf);
    writeScore(first.student_key, first.topic_id, eloMastery(s, params), "elo", models.eloVersion, asOf);
    doneKeys++;
    if (doneKeys % 1000 === 0) opts.onProgress?.(doneKeys, nKeys);
  }
  stateApp.closeSync();
  scoreApp.closeSync();
  opts.onProgress?.(doneKeys, nKeys);

  await store.transaction(async () => {
    if (opts.full === true) await store.run("DELETE FROM learner_state");
    await store.run(
      `INSERT OR REPLACE INTO learner_state (${LEARNER_STATE_COLUMNS}) SELECT ${LEARNER_STATE_COLUMNS} FROM bkt_elo_state`,
    );
    await store.run(
      `INSERT OR REPLACE INTO student_mastery
         (student_key, topic_id, mastery_score, score_source, model_version, as_of, explanation, last_updated)
       SELECT student_key, topic_id, mastery_score, score_source, model_version, as_of, explanation, $1
       FROM bkt_elo_score`,
      [micros(nowUs)],
    );
    await store.run(
      `INSERT INTO student_mastery_history
         (student_key, topic_id, mastery_score, score_source, model_version, as_of, explanation, recorded_at)
       SELECT student_key, topic_id, mastery_score, score_source, model_version, as_of, explanation, $1
       FROM bkt_elo_score`,
      [micros(nowUs)],
    );
  });
  await store.run("DROP TABLE IF EXISTS bkt_elo_plan");
  await store.run("DROP TABLE IF EXISTS bkt_elo_state");
  await store.run("DROP TABLE IF EXISTS bkt_elo_score");
  return {
    keys: doneKeys,
    replayedKeys,
    events: events.length,
    quizAttempts,
    bktVersion: models.bktVersion,
    eloVersion: models.eloVersion,
  };
}
