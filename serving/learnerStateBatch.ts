import {
  bktMastery,
  type ExplainedScore,
  eloMastery,
  initialLearnerState,
  type TopicParams,
} from "../models/learnerState.ts";
import { foldKeyRun, type KeyRuns } from "../models/learnerStateFold.ts";
import type { DuckStore } from "../storage/duckdb.ts";
import { DuckDBTimestampValue } from "../storage/duckdbApi.ts";
import { dropLearnerEventColumns, readLearnerEventColumns } from "../storage/learnerEventColumns.ts";
import { LEARNER_STATE_COLUMNS, learnerStateFromRow } from "../storage/stateStore.ts";
import {
  type BktEloModels,
  type ScoreBktEloOptions,
  type ScoreBktEloResult,
  topicParamsResolver,
} from "./learnerState.ts";

/**
 * The BKT/Elo batch at memory speed: the same job as serving/learnerState.ts scoreBktElo (same
 * events, same states, same scores and history rows; test/serving/learnerStateBatch.int.test.ts
 * compares every table), but the events come as typed-array columns (storage/learnerEventColumns.ts)
 * and each key is one fold over its sorted run (models/learnerStateFold.ts), with no object per
 * event. The writes are the same bulk appends and set-based upserts.
 */
export async function scoreBktEloColumnar(
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
