import { buildFeatures, WINDOW_DAYS, WINDOW_FEATURES } from "../features/windows.ts";
import type { BKT } from "../models/bkt.ts";
import { type Elo, eloProbability } from "../models/elo.ts";
import {
  bktNextCorrect,
  type LearnerEvent,
  type LearnerState,
  statesBefore,
  type TopicParams,
  topicParamsResolver,
} from "../models/learnerState.ts";
import type { DuckStore } from "../storage/duckdb.ts";
import { TrainingSetError } from "./trainingSet.ts";

/**
 * Training sets from timestamped events (raw_events): (student, topic, as_of) points sampled along each
 * history on a grid of as-of times.
 *
 * - Features as of t: the windowed aggregates of features/windows.ts (events with ts < t only) plus the online
 *   BKT + Elo state of models/learnerState.ts after replaying the pair's quiz attempts with ts < t.
 * - Labels from events at or after t only: accuracy on the topic over [t, t + horizon) (the proxy mastery
 *   label; NaN when there is no attempt in the horizon) and the correctness of the next quiz attempt on the
 *   topic (NaN when there is none).
 * - Time-based split: the as-of grid is cut at two times; validation and test points are later than every
 *   training point, and a training point whose label window [t, t + horizon) reaches into the validation
 *   period is purged (marked SPLIT_PURGED), as is a validation point whose window reaches into the test period,
 *   so no training label is computed from events of a later split.
 */

export const SPLIT_TRAIN = 0;
export const SPLIT_VALID = 1;
export const SPLIT_TEST = 2;
export const SPLIT_PURGED = 3;

const DAY_MS = 86_400_000;

/** Feature columns read from the features table, then the replayed state columns. */
export const EVENT_FEATURES: readonly string[] = Object.freeze([
  ...WINDOW_DAYS.flatMap((w) => WINDOW_FEATURES.map((f) => `${f}_${w}d`)),
  "trend_slope_30d",
  "days_since_last_activity",
  "bkt_p_mastery",
  "bkt_p_correct",
  "elo_ability",
  "elo_mastery",
  "quiz_attempts_total",
  "correct_streak",
]);
const TABLE_FEATURES = EVENT_FEATURES.length - 6;

export interface EventTrainingSetOptions {
  /** As-of times; default: every `stepDays` from the first event time (exclusive) to the last (inclusive). */
  asOf?: readonly Date[];
  stepDays?: number;
  /** Label horizon in days (default 7). */
  horizonDays?: number;
  /** BKT / Elo models behind the replayed state (defaults: BKT fallback parameters, default Elo K, difficulty 0). */
  bkt?: BKT;
  elo?: Elo;
  /** Scratch table for the feature snapshots (default "ml_features"; rebuilt on every call). */
  table?: string;
  /** Shares of the as-of grid (by time) for validation and test (defaults 0.15 and 0.15). */
  validFraction?: number;
  testFraction?: number;
  onProgress?: (done: number, total: number) => void;
}

export interface EventTrainingSet {
  names: readonly string[];
  /** Column-major nRows x names.length, NaN = missing (the Matrix shape of models/). */
  X: { data: Float64Array; nRows: number; nCols: number; layout: "col" };
  student: string[];
  topic: string[];
  /** As-of time of each row, epoch milliseconds. */
  asOfMs: Float64Array;
  /** Accuracy on the topic over [as_of, as_of + horizon); NaN when no attempt falls in it. */
  accuracyNext: Float64Array;
  /** Attempts on the topic in [as_of, as_of + horizon). */
  attemptsNext: Int32Array;
  /** Correctness (0/1) of the first quiz attempt on the topic at or after as_of; NaN when none. */
  nextCorrect: Float64Array;
  /** SPLIT_TRAIN / SPLIT_VALID / SPLIT_TEST / SPLIT_PURGED per row. */
  split: Uint8Array;
  /** The two cut times (epoch ms): validation starts at validStart, test at testStart. */
  validStart: number;
  testStart: number;
  horizonDays: number;
}

/** Per-topic state parameters from the models, as the online scorer builds them. */

const IDENT = /^[a-z_][a-z0-9_]*$/;

export async function buildEventTrainingSet(
  store: DuckStore,
  opts: EventTrainingSetOptions = {},
): Promise<EventTrainingSet> {
  const horizonDays = opts.horizonDays ?? 7;
  const table = opts.table ?? "ml_features";
  if (!IDENT.test(table)) throw new TrainingSetError(`table name must match ${IDENT} (got "${table}")`);
  if (!(horizonDays > 0)) throw new TrainingSetError(`horizonDays must be > 0 (got ${horizonDays})`);

  let times = opts.asOf !== undefined ? [...opts.asOf] : undefined;
  if (times === undefined) {
    const span = await store.one<{ lo: Date | null; hi: Date | null }>(
      "SELECT min(ts) AS lo, max(ts) AS hi FROM raw_events",
    );
    if (!span?.lo || !span.hi)
      throw new TrainingSetError(
        "raw_events is empty: ingest or generate events before building a training set",
      );
    const step = (opts.stepDays ?? 7) * DAY_MS;
    times = [];
    for (let t = span.lo.getTime() + step; t <= span.hi.getTime(); t += step) times.push(new Date(t));
  }
  times.sort((a, b) => a.getTime() - b.getTime());
  if (times.length < 3)
    throw new TrainingSetError(
      `need at least 3 as-of times for a train/validation/test split in time (got ${times.length}); use a smaller stepDays`,
    );

  await store.run(`DROP TABLE IF EXISTS ${table}`);
  await buildFeatures(store, times, {
    table,
    ...(opts.onProgress !== undefined ? { onProgress: opts.onProgress } : {}),
  });

  // Feature rows with their labels. Labels read events with ts >= as_of only; features read ts < as_of.
  const cols = EVENT_FEATURES.slice(0, TABLE_FEATURES)
    .map((c) => `f.${c}`)
    .join(", ");
  const rows = await store.all<Record<string, number | bigint | string | null>>(
    `WITH quiz AS (
       SELECT student_key, topic_id, ts, event_id, is_correct FROM raw_events
       WHERE type = 'quiz_attempt' AND is_correct IS NOT NULL
     ),
     horizon AS (
       SELECT f.student_key, f.topic_id, f.as_of,
         avg(q.is_correct::DOUBLE) AS accuracy_next, count(q.ts) AS attempts_next
       FROM ${table} f LEFT JOIN quiz q
         ON q.student_key = f.student_key AND q.topic_id = f.topic_id
        AND q.ts >= f.as_of AND q.ts < f.as_of + to_days($h::INTEGER)
       GROUP BY ALL
     ),
     nxt AS (
       SELECT f.student_key, f.topic_id, f.as_of,
         arg_min(q.is_correct::DOUBLE, struct_pack(t := q.ts, id := q.event_id)) AS next_correct
       FROM ${table} f JOIN quiz q
         ON q.student_key = f.student_key AND q.topic_id = f.topic_id AND q.ts >= f.as_of
       GROUP BY ALL
     )
     SELECT f.student_key, f.topic_id, epoch_ms(f.as_of) AS as_of_ms, ${cols},
       h.accuracy_next, h.attempts_next, n.next_correct
     FROM ${table} f
     JOIN horizon h USING (student_key, topic_id, as_of)
     LEFT JOIN nxt n USING (student_key, topic_id, as_of)
     ORDER BY f.student_key, f.topic_id, f.as_of`,
    { h: horizonDays },
  );

  const n = rows.length;
  const d = EVENT_FEATURES.length;
  const data = new Float64Array(n * d);
  const student: string[] = new Array(n);
  const topic: string[] = new Array(n);
  const asOfMs = new Float64Array(n);
  const accuracyNext = new Float64Array(n);
  const attemptsNext = new Int32Array(n);
  const nextCorrect = new Float64Array(n);
  const num = (v: unknown): number => (v === null || v === undefined ? Number.NaN : Number(v));
  rows.forEach((r, k) => {
    student[k] = String(r.student_key);
    topic[k] = String(r.topic_id);
    asOfMs[k] = num(r.as_of_ms);
    for (let c = 0; c < TABLE_FEATURES; c++) data[c * n + k] = num(r[EVENT_FEATURES[c]!]);
    accuracyNext[k] = num(r.accuracy_next);
    attemptsNext[k] = num(r.attempts_next);
    nextCorrect[k] = num(r.next_correct);
  });

  // BKT + Elo state as of each row: models/learnerState.ts statesBefore over the pair's quiz
  // attempts (the one replay: first ingested copy wins, (ts, event_id) order, only ts < as_of).
  const events = await store.all<{
    student_key: string;
    topic_id: string;
    ts_us: number | bigint;
    event_id: string;
    is_correct: boolean;
    question_id: string | null;
    ingested_at_us: number | bigint;
  }>(
    `SELECT student_key, topic_id, epoch_us(ts) AS ts_us, event_id, is_correct, question_id,
            epoch_us(ingested_at) AS ingested_at_us
     FROM raw_events WHERE type = 'quiz_attempt' AND is_correct IS NOT NULL
     ORDER BY student_key, topic_id, ts, event_id`,
  );
  const eventsByKey = new Map<string, LearnerEvent[]>();
  for (const ev of events) {
    const key = `${ev.student_key}\u0000${ev.topic_id}`;
    let list = eventsByKey.get(key);
    if (list === undefined) {
      list = [];
      eventsByKey.set(key, list);
    }
    list.push({
      eventId: ev.event_id,
      type: "quiz_attempt",
      ts: Number(ev.ts_us),
      isCorrect: ev.is_correct,
      questionId: ev.question_id,
      ingestedAt: Number(ev.ingested_at_us),
    });
  }
  const paramsOf = topicParamsResolver({ bkt: opts.bkt, elo: opts.elo });
  // Rows come ordered by (student, topic, as_of): one statesBefore call per pair.
  for (let k0 = 0; k0 < n; ) {
    const s = student[k0]!;
    const t = topic[k0]!;
    let k1 = k0;
    while (k1 < n && student[k1] === s && topic[k1] === t) k1++;
    const params = paramsOf(t);
    const times: number[] = [];
    for (let k = k0; k < k1; k++) times.push(asOfMs[k]! * 1000);
    const states = statesBefore(eventsByKey.get(`${s}\u0000${t}`) ?? [], params, times);
    for (let k = k0; k < k1; k++) putState(k, states[k - k0]!, params);
    k0 = k1;
  }
  function putState(k: number, st: LearnerState, params: TopicParams): void {
    const put = (name: string, v: number): void => {
      data[EVENT_FEATURES.indexOf(name) * n + k] = v;
    };
    put("bkt_p_mastery", st.pMastery);
    put("bkt_p_correct", bktNextCorrect(st, params));
    put("elo_ability", st.eloAbility);
    put("elo_mastery", eloProbability(st.eloAbility, params.topicDifficulty));
    put("quiz_attempts_total", st.bktN);
    put("correct_streak", st.correctStreak);
  }

  // Time split on the grid, with purging of label windows that cross a cut.
  const validFraction = opts.validFraction ?? 0.15;
  const testFraction = opts.testFraction ?? 0.15;
  const grid = times.map((t) => t.getTime());
  const cut = (frac: number): number =>
    grid[Math.min(grid.length - 1, Math.max(1, Math.floor(grid.length * (1 - frac))))]!;
  const testStart = cut(testFraction);
  const validStart = Math.min(cut(testFraction + validFraction), testStart);
  const h = horizonDays * DAY_MS;
  const split = new Uint8Array(n);
  for (let k = 0; k < n; k++) {
    const t = asOfMs[k]!;
    if (t >= testStart) split[k] = SPLIT_TEST;
    else if (t >= validStart) split[k] = t + h <= testStart ? SPLIT_VALID : SPLIT_PURGED;
    else split[k] = t + h <= validStart ? SPLIT_TRAIN : SPLIT_PURGED;
  }

  return {
    names: EVENT_FEATURES,
    X: { data, nRows: n, nCols: d, layout: "col" },
    student,
    topic,
    asOfMs,
    accuracyNext,
    attemptsNext,
    nextCorrect,
    split,
    validStart,
    testStart,
    horizonDays,
  };
}
