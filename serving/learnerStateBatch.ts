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
import { appendLearnerStateRow, LEARNER_STATE_COLUMNS, learnerStateFromRow } from "../storage/stateStore.ts";
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
  const nKeys = cols.studentKey.length;
  const nRows = cols.answer.length;

  // Per row: the Elo offset of its question under its key's topic parameters.
  const itemOffset = new Float64Array(nRows);
  const offsetsByMap = new Map<TopicParams["itemOffsets"], Float64Array>();
  const keyParams: TopicParams[] = new Array(nKeys);
  for (let k = 0; k < nKeys; k++) {
    const params = paramsFor(cols.topicId[k]!);
    keyParams[k] = params;
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
    k: number,
    s: ExplainedScore,
    source: string,
    version: string,
    asOf: DuckDBTimestampValue,
  ) => {
    scoreApp.appendVarchar(cols.studentKey[k]!);
    scoreApp.appendVarchar(cols.topicId[k]!);
    scoreApp.appendDouble(s.score);
    scoreApp.appendVarchar(source);
    scoreApp.appendVarchar(version);
    scoreApp.appendTimestamp(asOf);
    scoreApp.appendVarchar(JSON.stringify(s.explanation));
    scoreApp.endRow();
  };

  let replayedKeys = 0;
  for (let k = 0; k < nKeys; k++) {
    const params = keyParams[k]!;
    const storedRow = cols.replay[k] === 1 ? undefined : cols.stored.get(k);
    if (storedRow === undefined) replayedKeys++;
    const from = storedRow === undefined ? initialLearnerState(params) : learnerStateFromRow(storedRow);
    const s = foldKeyRun(runs, k, params, from, cols.lastEventId[k]!);
    appendLearnerStateRow(
      stateApp,
      cols.studentKey[k]!,
      cols.topicId[k]!,
      s,
      nowUs,
      models.bktVersion,
      models.eloVersion,
    );
    const asOf = new DuckDBTimestampValue(BigInt(Math.round(s.lastTs ?? nowUs)));
    writeScore(k, bktMastery(s, params), "bkt", models.bktVersion, asOf);
    writeScore(k, eloMastery(s, params), "elo", models.eloVersion, asOf);
    if ((k + 1) % 10_000 === 0) opts.onProgress?.(k + 1, nKeys);
  }
  stateApp.closeSync();
  scoreApp.closeSync();
  opts.onProgress?.(nKeys, nKeys);
  let quizAttempts = 0;
  for (let i = 0; i < nRows; i++) if (cols.answer[i]! >= 0) quizAttempts++;

  const nowTs = new DuckDBTimestampValue(BigInt(Math.round(nowUs)));
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
      [nowTs],
    );
    await store.run(
      `INSERT INTO student_mastery_history
         (student_key, topic_id, mastery_score, score_source, model_version, as_of, explanation, recorded_at)
       SELECT student_key, topic_id, mastery_score, score_source, model_version, as_of, explanation, $1
       FROM bkt_elo_score`,
      [nowTs],
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
