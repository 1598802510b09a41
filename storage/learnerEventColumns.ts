import type { DuckDBVector } from "@duckdb/node-api";
import type { DuckStore } from "./duckdb.ts";
import { DOUBLE, DuckDBDataChunk } from "./duckdbApi.ts";
import { baseTable, deltaTable } from "./servingTables.ts";
import type { LearnerStateRow } from "./stateStore.ts";

/**
 * Columnar reads for the BKT/Elo batch (serving/learnerState.ts scoreBktElo): the raw events each
 * (student, topic) key still has to fold, as typed arrays sorted by key and then (ts, event_id),
 * read chunk by chunk from DuckDB's vectors (no row objects). Which events: every event of a key
 * with no usable state (none, other model versions, or a full run), else those after the key's
 * cursor (last_ts, last_event_id) — the same selection and the same first-ingested de-duplication
 * as the stream updater (models/learnerState.ts), so both paths fold the same events.
 */

export interface LearnerEventColumns {
  /** Number of keys; key k is row k of the temp table bkt_col_keys (student_key, topic_id, last_event_id). */
  keys: number;
  /** Per key: index into `topics` of its topic_id. */
  topic: Int32Array;
  topics: string[];
  /** 1 when the key is folded from a new learner, 0 when from its stored state. */
  replay: Uint8Array;
  /** Key k owns the event rows keyStart[k] .. keyStart[k + 1] - 1 (global row numbers, see EventBlock). */
  keyStart: Int32Array;
  questions: string[];
  /** Stored states of the keys with replay = 0, by key index. */
  stored: Map<number, LearnerStateRow>;
  /** True when no two keys share their 64-bit hash (the event rows then join their key on it). */
  keyHashUnique: boolean;
  /** raw_events' max(ingested_at) in microseconds (null when empty) and row count before the read: the next watermark. */
  extent: { maxUs: bigint | null; rows: bigint };
  /** How the keys were narrowed: "full", "watermark", or why the watermark could not be used. */
  narrowing: string;
  /** Where the event rows are read from: the temp table bkt_col_new, or the temp view bkt_col_raw. */
  rowsFrom: "bkt_col_new" | "bkt_col_raw";
  /**
   * True when the rows were read without de-duplication on the assumption that no key holds an event twice
   * (a full run's first attempt): forEachEventBlock then checks each key of each block and throws RepeatedEvents
   * when one does.
   */
  repeatsCheckedOnRead: boolean;
}

/**
 * Thrown by forEachEventBlock when a key of a run read with `repeatsCheckedOnRead` holds two rows of one event:
 * the run must read again with `repeats: "before"` (the rows de-duplicated first). Blocks already passed to the
 * callback were folded from rows that were not de-duplicated and must be discarded.
 */
export class RepeatedEvents extends Error {
  readonly code = "repeated_events";
}

/**
 * The event rows of the keys firstKey .. endKey - 1, in key order and then (ts, event_id): row i here is
 * global row rowBase + i, and key k owns rows keyStart[k - firstKey] .. keyStart[k - firstKey + 1] - 1.
 */
export interface EventBlock {
  firstKey: number;
  endKey: number;
  rowBase: number;
  keyStart: Int32Array;
  /** Per row: 1 correct, 0 incorrect, -1 not an answer (not a quiz attempt, or is_correct unknown). */
  answer: Int8Array;
  /** Per row: index into `questions`, -1 for none. */
  question: Int32Array;
  /** Per row: epoch microseconds. */
  ts: Float64Array;
}

/**
 * Event rows held in JavaScript at a time (13 bytes a row): a run with more rows reads them one key range at a
 * time, so the job's memory outside DuckDB grows with its keys, not its events (~1.3 GB of rows at 100M events).
 */
export const EVENT_BLOCK_ROWS = 4_194_304;

// Duplicate rows of one event for the same key (a re-delivery) count once: the first ingested. `rows` is
// raw_events, or its rows of the candidate keys (an incremental run).
const dedupedEvents = (rows: string) => `ev AS (
  SELECT event_id, type, student_key, topic_id, ts, is_correct, question_id
  FROM ${rows}
  QUALIFY row_number() OVER (PARTITION BY student_key, topic_id, event_id ORDER BY ingested_at, ts) = 1
)`;

// Stored states usable as a starting point: built by the same model versions ($1, $2).
const USABLE_STATES = `st AS (
  SELECT student_key, topic_id, last_ts, last_event_id, event_n FROM learner_state
  WHERE bkt_model_version = $1 AND elo_model_version = $2
)`;

// An incremental run first narrows the keys with one hash aggregation over raw_events (count and max ts per
// key, no sort, ~0.15 CPU-s per 1M rows): a key is left alone when its usable state has folded as many
// events as it has stored rows (event_n = count) and no row is later than its cursor; only the other keys'
// rows are de-duplicated and planned. Any new row, late or not, or a re-delivery raises the count. Since
// the raw zone is append-only (every event a state folded is stored), such a key's rows are exactly the
// events its state folded, all at or before the cursor: the plan below would leave it alone too.
const aggregatedCandidates = `${USABLE_STATES}, kr AS (
  SELECT student_key, topic_id, count(*) AS n, max(ts) AS max_ts FROM raw_events GROUP BY student_key, topic_id
), cand AS (
  SELECT kr.student_key, kr.topic_id FROM kr LEFT JOIN st USING (student_key, topic_id)
  WHERE st.student_key IS NULL OR st.event_n IS NULL OR st.last_ts IS NULL OR kr.n <> st.event_n
     OR kr.max_ts > st.last_ts
)`;

/**
 * SQL: the newest learner_state row (the view's row) of each key in the relation `keys` (columns student_key,
 * topic_id; no duplicates needed), with the columns `columns` of learner_state (`*`: all of them), read from
 * the base and delta tables joined to the keys instead of through the view.
 */
const candidateStates = (keys: string, columns: string) => `WITH cd AS (
  SELECT * EXCLUDE (delta_seq) FROM (
    SELECT * FROM ${deltaTable("learner_state")} SEMI JOIN ${keys} USING (student_key, topic_id)
    QUALIFY row_number() OVER (PARTITION BY student_key, topic_id ORDER BY delta_seq DESC) = 1
  )
)
SELECT ${columns} FROM cd
UNION ALL BY NAME
SELECT ${columns} FROM (
  SELECT * FROM ${baseTable("learner_state")} SEMI JOIN ${keys} USING (student_key, topic_id)
) ANTI JOIN cd USING (student_key, topic_id)`;

// With a usable ingest watermark (the previous run's max(ingested_at), see BatchWatermark) the candidates are
// the keys with a row ingested after it instead: a filter on ingested_at that DuckDB's row-group min/max
// (raw_events is appended in ingest order) turns into a read of the new rows only, so finding the day's keys
// is O(new rows), not O(store). Their rows are then read whole, and the same plan decides per key. Only the
// candidates' stored states are read (`st`: every later use joins it to a candidate's events): the newest
// revision of each from learner_state's base and delta tables joined to the candidates (the view's rule,
// storage/servingTables.ts: the delta's newest row hides the base row), instead of the whole view, whose
// window over the delta and anti-join of every base row cost O(keys stored) (docs/benchmarks.md "The 1% day's
// BKT/Elo reads").
const watermarkCandidates = (watermarkUs: bigint) => `cand AS (
  SELECT DISTINCT student_key, topic_id FROM raw_events WHERE ingested_at > make_timestamp(${watermarkUs})
), st AS (
  SELECT student_key, topic_id, last_ts, last_event_id, event_n FROM (${candidateStates("cand", "student_key, topic_id, last_ts, last_event_id, event_n, bkt_model_version, elo_model_version")})
  WHERE bkt_model_version = $1 AND elo_model_version = $2
)`;

const candidateRows = (watermarkUs: bigint | null) => `${
  watermarkUs === null ? aggregatedCandidates : watermarkCandidates(watermarkUs)
}, cand_rows AS (
  SELECT r.* FROM raw_events r SEMI JOIN cand USING (student_key, topic_id)
)`;

/**
 * What a successful BKT/Elo run saw of raw_events, recorded in its write transaction (table
 * bkt_elo_watermark, one row): the max ingested_at and the row count read in one snapshot, and the model
 * versions. The next incremental run with the same versions looks only at keys with rows ingested after
 * it, when that is safe to do: raw_events now holds exactly the recorded rows plus those ingested after
 * the watermark (count now - recorded count = rows after it: nothing was deleted, and no transaction that
 * began before the watermark committed rows after the read), and every stored state is of the current
 * versions with its event count. Otherwise the run narrows the keys with the aggregation over all rows.
 */
export interface BatchWatermark {
  ingestedThroughUs: bigint;
  rawRows: bigint;
  bktVersion: string;
  eloVersion: string;
}

const WATERMARK_DDL = `CREATE TABLE IF NOT EXISTS bkt_elo_watermark (
  ingested_through_us BIGINT NOT NULL, raw_rows BIGINT NOT NULL,
  bkt_model_version VARCHAR NOT NULL, elo_model_version VARCHAR NOT NULL)`;

/** raw_events' max(ingested_at) (null when empty) and row count, in one snapshot. */
async function rawEventsExtent(store: DuckStore): Promise<{ maxUs: bigint | null; rows: bigint }> {
  const r = await store.one<{ u: bigint | null; n: bigint }>(
    "SELECT epoch_us(max(ingested_at)) AS u, count(*) AS n FROM raw_events",
  );
  return { maxUs: r?.u ?? null, rows: r?.n ?? 0n };
}

/**
 * The watermark usable by an incremental run with these versions (BatchWatermark's conditions), or null
 * with the reason it is not; and raw_events' extent (rawEventsExtent) to record as the run's watermark.
 *
 * With a recorded watermark of these versions, the row count, the rows ingested after the watermark and
 * the max ingested_at at or after it are read in one statement (one snapshot): the two filtered counts are
 * WHERE filters on ingested_at, which DuckDB's row-group min/max turn into a read of the row groups holding
 * the watermark's time or later (raw_events is appended in ingest order), where a count(*) FILTER or max()
 * over all rows read the whole column (docs/benchmarks.md "The 1% day's BKT/Elo reads"). The max over the
 * rows at or after the watermark is raw_events' max whenever there is such a row (every other row is
 * earlier); without one the whole column is read as before. The states' check reads the newest revision of
 * each key as the view does (storage/servingTables.ts), from the delta's rows and the base rows the check's
 * filter keeps, instead of the view's anti-join of every base row.
 */
async function incrementalStart(
  store: DuckStore,
  opts: { bktVersion: string; eloVersion: string },
): Promise<{ watermarkUs: bigint | null; reason: string; extent: { maxUs: bigint | null; rows: bigint } }> {
  await store.run(WATERMARK_DDL);
  const w = await store.one<{ u: bigint; n: bigint; b: string; e: string }>(
    "SELECT ingested_through_us AS u, raw_rows AS n, bkt_model_version AS b, elo_model_version AS e FROM bkt_elo_watermark",
  );
  if (w === undefined)
    return { watermarkUs: null, reason: "no watermark recorded", extent: await rawEventsExtent(store) };
  if (w.b !== opts.bktVersion || w.e !== opts.eloVersion)
    return { watermarkUs: null, reason: "model versions changed", extent: await rawEventsExtent(store) };
  // The watermark as a literal (a BIGINT read from the table): a prepared parameter is not pushed into the scan.
  const at = `make_timestamp(${BigInt(w.u)}::BIGINT)`;
  const r = await store.one<{ n: bigint; after: bigint; u: bigint | null }>(
    `SELECT (SELECT count(*) FROM raw_events) AS n,
            (SELECT count(*) FROM raw_events WHERE ingested_at > ${at}) AS after,
            (SELECT epoch_us(max(ingested_at)) FROM raw_events WHERE ingested_at >= ${at}) AS u`,
  );
  const extent = r === undefined || r.u === null ? await rawEventsExtent(store) : { maxUs: r.u, rows: r.n };
  if (r === undefined || r.n - w.n !== r.after)
    return { watermarkUs: null, reason: "raw_events changed below the watermark", extent };
  const otherState =
    "bkt_model_version <> $1 OR elo_model_version <> $2 OR event_n IS NULL OR last_ts IS NULL";
  const other = await store.one<{ n: bigint }>(
    `SELECT (SELECT count(*) FROM (
               SELECT * FROM ${deltaTable("learner_state")}
               QUALIFY row_number() OVER (PARTITION BY student_key, topic_id ORDER BY delta_seq DESC) = 1
             ) WHERE ${otherState})
          + (SELECT count(*) FROM (SELECT student_key, topic_id FROM ${baseTable("learner_state")} WHERE ${otherState})
             ANTI JOIN ${deltaTable("learner_state")} USING (student_key, topic_id)) AS n`,
    [opts.bktVersion, opts.eloVersion],
  );
  if ((other?.n ?? 0n) > 0n) return { watermarkUs: null, reason: "states of other versions", extent };
  return { watermarkUs: w.u, reason: "", extent };
}

/** Records `w` as the batch watermark (call inside the run's write transaction). */
export async function writeBatchWatermark(store: DuckStore, w: BatchWatermark): Promise<void> {
  await store.run(WATERMARK_DDL);
  await store.run("DELETE FROM bkt_elo_watermark");
  await store.run("INSERT INTO bkt_elo_watermark VALUES ($1, $2, $3, $4)", [
    w.ingestedThroughUs,
    w.rawRows,
    w.bktVersion,
    w.eloVersion,
  ]);
}

// Which keys to fold, and from where (models/learnerState.ts batchPlan, the one late-event rule): a key with a
// usable stored state continues from it only when the state has folded exactly the stored events at or
// before its cursor (event_n); a late event (at or before the cursor, arrived after the state was written)
// or a state without a count makes the key replay from a new learner. Keys with nothing after the cursor
// and a matching count are left alone. (A full run ignores stored states and needs no plan: every key
// replays; see fullRunEvents.)
const plannedEvents = (
  watermarkUs: bigint | null,
) => `WITH ${candidateRows(watermarkUs)}, ${dedupedEvents("cand_rows")}, kc AS (
  SELECT ev.student_key, ev.topic_id, bool_or(st.student_key IS NULL) AS no_state, any_value(st.event_n) AS event_n,
         count(*) FILTER (WHERE st.student_key IS NOT NULL
           AND (ev.ts < st.last_ts OR (ev.ts = st.last_ts AND ev.event_id <= st.last_event_id))) AS at_or_before,
         count(*) FILTER (WHERE st.student_key IS NULL
           OR ev.ts > st.last_ts OR (ev.ts = st.last_ts AND ev.event_id > st.last_event_id)) AS after
  FROM ev LEFT JOIN st USING (student_key, topic_id) GROUP BY ev.student_key, ev.topic_id
), plan AS (
  SELECT student_key, topic_id,
         (no_state OR event_n IS NULL OR event_n < 0 OR event_n <> at_or_before) AS replay
  FROM kc WHERE no_state OR event_n IS NULL OR event_n < 0 OR event_n <> at_or_before OR after > 0
)`;

// A 64-bit hash of the key, carried with each event row so the event rows join their key on one integer instead
// of two strings (measured at 1M rows, load ~14: 0.50-0.60 CPU-s for the sorted read against 0.67-0.86); used
// only when no two keys of the run share it (checked on the keys), else the join is on the strings.
const KEY_HASH = "hash(student_key, topic_id)";

// A full run folds every (de-duplicated) event of every key from a new learner, with no aggregation, join or
// plan (measured at 1M events: ~0.3 CPU-s for a copy against ~0.5 for the planned selection, whose states are
// all ignored anyway): read in place when raw_events has no duplicates, else de-duplicated into a copy.
const fullRunEvents = (
  duplicates: boolean,
  where = "",
) => `${duplicates ? `WITH ${dedupedEvents("raw_events")}` : ""}
SELECT student_key, topic_id, ${KEY_HASH} AS h, event_id, type, ts, is_correct, question_id, true AS replay
FROM ${duplicates ? "ev" : "raw_events"} ${where}`;

/**
 * Whether raw_events holds two rows of one event for one key. No product write path stores one (ingest, the
 * stream's record() and the raw mirror's append keep the first copy of an event id), but a store filled
 * otherwise (a bulk load, SQL) may, and a full run must fold each event once. A full run therefore reads
 * without de-duplication first and checks each key's rows as its block is read (forEachEventBlock,
 * RepeatedEvents); this check runs only when that found a repeated event (readLearnerEventColumns'
 * `repeats: "before"`), to decide the de-duplicated read. First a hash aggregation on one 64-bit hash of
 * (student_key, topic_id, event_id): two rows of one event have the same hash, so no repeated hash means no
 * duplicate, and the usual answer costs a grouping on 8-byte keys instead of three strings (measured at 1M
 * rows, load ~30: 0.15-0.22 CPU-s against 0.35-0.99). A repeated hash (a duplicate, or a collision: ~3e-8 at
 * 1M rows) is settled by the exact grouping. Its one group per event row grew 5.0x for 3.0x the events past
 * the memory limit (docs/benchmarks.md "100M's bend"): why it no longer runs first.
 */
async function hasDuplicateEvents(store: DuckStore): Promise<boolean> {
  const repeated = (group: string) =>
    store.one<{ dup: boolean }>(
      `SELECT EXISTS (SELECT 1 FROM raw_events GROUP BY ${group} HAVING count(*) > 1) AS dup`,
    );
  if ((await repeated("hash(student_key, topic_id, event_id)"))?.dup !== true) return false;
  return (await repeated("student_key, topic_id, event_id"))?.dup === true;
}

/**
 * Selects the events to fold and reads their keys (per-key columns; the rows themselves are read by
 * `forEachEventBlock`, which must follow). Leaves the temp table `bkt_col_keys` (k, student_key,
 * topic_id, last_event_id) for the caller's writes, which append key indices and join the strings in
 * SQL; `dropLearnerEventColumns` removes it.
 */
export async function readLearnerEventColumns(
  store: DuckStore,
  opts: {
    bktVersion: string;
    eloVersion: string;
    full: boolean;
    /** Called at the end of each step with its name (the caller measures time or CPU between calls). */
    onPhase?: (phase: string) => void;
    /**
     * A full run's check for a key holding an event twice: "on read" (default) reads the rows as they are and
     * leaves the check to forEachEventBlock (RepeatedEvents); "before" checks raw_events first and reads
     * de-duplicated rows when it holds a repeated event. An incremental run always de-duplicates.
     */
    repeats?: "on read" | "before";
  },
): Promise<LearnerEventColumns> {
  // Before the read: rows committed after this are at most folded twice (the plan then leaves them), never missed.
  const since = opts.full
    ? { watermarkUs: null, reason: "full", extent: await rawEventsExtent(store) }
    : await incrementalStart(store, opts);
  const extent = since.extent;
  opts.onPhase?.("read: watermark check");
  let rowsFrom: LearnerEventColumns["rowsFrom"] = "bkt_col_new";
  const repeatsCheckedOnRead = opts.full && opts.repeats !== "before";
  if (opts.full) {
    const duplicates = !repeatsCheckedOnRead && (await hasDuplicateEvents(store));
    opts.onPhase?.("read: duplicate check");
    // Without duplicates (or with the check left to the read) the rows are read in place (a view), not copied
    // (measured at 1M events, load ~25: the copy took 0.77 CPU-s, and the reads after it cost about the same from
    // raw_events as from the copy). The rows are those ingested up to the extent read above, so every read of the
    // run sees the same rows while others append (the row counts are checked on read), and the run folds exactly
    // what its watermark says.
    if (!duplicates && extent.maxUs !== null) {
      rowsFrom = "bkt_col_raw";
      await store.run(
        `CREATE OR REPLACE TEMP VIEW bkt_col_raw AS ${fullRunEvents(false, `WHERE ingested_at <= make_timestamp(${extent.maxUs})`)}`,
      );
    } else await store.run(`CREATE OR REPLACE TEMP TABLE bkt_col_new AS ${fullRunEvents(duplicates)}`);
  } else
    await store.run(
      `CREATE OR REPLACE TEMP TABLE bkt_col_new AS
       ${plannedEvents(since.watermarkUs)}
       SELECT ev.student_key, ev.topic_id, hash(ev.student_key, ev.topic_id) AS h, ev.event_id, ev.type, ev.ts,
              ev.is_correct, ev.question_id, p.replay
       FROM ev JOIN plan p USING (student_key, topic_id) LEFT JOIN st USING (student_key, topic_id)
       WHERE p.replay OR ev.ts > st.last_ts OR (ev.ts = st.last_ts AND ev.event_id > st.last_event_id)`,
      [opts.bktVersion, opts.eloVersion],
    );
  opts.onPhase?.("read: events to fold");
  // The run's topics and questions as dictionaries (ti, qi: ranks in string order) from one scan of the rows for
  // their distinct pairs (a few thousand).
  await store.run(
    `CREATE OR REPLACE TEMP TABLE bkt_col_pairs AS SELECT DISTINCT topic_id, question_id FROM ${rowsFrom}`,
  );
  await store.run(
    `CREATE OR REPLACE TEMP TABLE bkt_col_topics AS
     SELECT (row_number() OVER (ORDER BY topic_id) - 1)::INTEGER AS ti, topic_id
     FROM (SELECT DISTINCT topic_id FROM bkt_col_pairs)`,
  );
  await store.run(
    `CREATE OR REPLACE TEMP TABLE bkt_col_questions AS
     SELECT (row_number() OVER (ORDER BY question_id) - 1)::INTEGER AS qi, question_id
     FROM (SELECT DISTINCT question_id FROM bkt_col_pairs WHERE question_id IS NOT NULL)`,
  );
  await store.run("DROP TABLE bkt_col_pairs");
  // The keys: grouped with their row count and greatest ts, then numbered in (student_key, ti) order (the same order
  // as (student_key, topic_id)), with the cursor's event id: the greatest event id among the key's rows at its
  // greatest ts, i.e. the event id of its greatest (ts, event_id). That is found by a join of the rows to their
  // key's greatest ts (a hash join on the key hash and ts, about one match a key) instead of an
  // arg_max(event_id, (ts, event_id)) in the grouping (a struct holding a string compared per row: 8.5 of the keys
  // step's 13 CPU-s at 10M events), and the keys are sorted once where a dense_rank over topic_id sorted them a
  // second time (docs/benchmarks.md "100M's bend, round 2"). (The arg_max replaced last(event_id ORDER BY ts,
  // event_id), which collected every row of a key to sort it and ran out of memory at 1M events and 50MB.)
  await store.run(
    `CREATE OR REPLACE TEMP TABLE bkt_col_groups AS
     SELECT student_key, topic_id, bool_or(replay) AS replay, count(*)::INTEGER AS n, max(ts) AS max_ts,
            any_value(h) AS h
     FROM ${rowsFrom} GROUP BY student_key, topic_id`,
  );
  const keyHashUnique =
    (await store.one<{ u: boolean }>("SELECT count(DISTINCT h) = count(*) AS u FROM bkt_col_groups"))?.u ===
    true;
  const keyOf = keyHashUnique ? ["h"] : ["student_key", "topic_id"];
  const on = keyOf.map((c) => `g.${c} = e.${c}`).join(" AND ");
  await store.run(
    `CREATE OR REPLACE TEMP TABLE bkt_col_keys AS
     WITH last AS (
       SELECT ${keyOf.map((c) => `g.${c}`).join(", ")}, max(e.event_id) AS last_event_id
       FROM ${rowsFrom} e JOIN bkt_col_groups g ON ${on} AND g.max_ts = e.ts
       GROUP BY ALL
     )
     SELECT (row_number() OVER (ORDER BY g.student_key, t.ti) - 1)::INTEGER AS k, g.student_key, g.topic_id, t.ti,
            g.replay, g.n, last.last_event_id, g.h
     FROM bkt_col_groups g JOIN bkt_col_topics t USING (topic_id) JOIN last USING (${keyOf.join(", ")})`,
  );
  await store.run("DROP TABLE bkt_col_groups");
  const nKeys = Number((await store.one<{ n: bigint }>("SELECT count(*) AS n FROM bkt_col_keys"))?.n ?? 0n);
  const cols: LearnerEventColumns = {
    keys: nKeys,
    topic: new Int32Array(nKeys),
    topics: (await store.all<{ topic_id: string }>("SELECT topic_id FROM bkt_col_topics ORDER BY ti")).map(
      (r) => r.topic_id,
    ),
    replay: new Uint8Array(nKeys),
    keyStart: new Int32Array(nKeys + 1),
    questions: (
      await store.all<{ question_id: string }>("SELECT question_id FROM bkt_col_questions ORDER BY qi")
    ).map((r) => r.question_id),
    stored: new Map(),
    keyHashUnique,
    extent,
    narrowing: since.watermarkUs !== null ? "watermark" : since.reason,
    rowsFrom,
    repeatsCheckedOnRead,
  };
  opts.onPhase?.("read: keys and questions");
  let rows = 0;
  let k = 0;
  for await (const chunk of store.chunks(
    "SELECT ti, replay::TINYINT AS replay, n FROM bkt_col_keys ORDER BY k",
  )) {
    const ti = chunk.getColumnVector(0) as DuckDBVector<number>;
    const replay = chunk.getColumnVector(1) as DuckDBVector<number>;
    const n = chunk.getColumnVector(2) as DuckDBVector<number>;
    for (let i = 0; i < chunk.rowCount; i++, k++) {
      cols.topic[k] = ti.getItem(i)!;
      cols.replay[k] = replay.getItem(i)!;
      cols.keyStart[k] = rows;
      rows += n.getItem(i)!;
    }
  }
  cols.keyStart[nKeys] = rows;
  opts.onPhase?.("read: key columns");
  // The stored states of the keys that continue from one: their newest revisions read from learner_state's
  // base and delta tables joined to the keys (candidateStates), not the view joined to them (which built the
  // whole view first: O(keys stored) for a day of a few keys).
  const stored = await store.all<LearnerStateRow & { k: number }>(
    `WITH ks AS (SELECT k, student_key, topic_id FROM bkt_col_keys WHERE NOT replay)
     SELECT ks.k, s.*, epoch_us(s.last_ts)::DOUBLE AS last_ts_us
     FROM (${candidateStates("ks", "*")}) s JOIN ks USING (student_key, topic_id)`,
  );
  for (const r of stored) cols.stored.set(r.k, r);
  opts.onPhase?.("read: stored states");
  return cols;
}

// Per event row in (key, ts, event_id) order: the answer, the question's index and the time. `order` "ts": ordered
// by (key, ts) only, which is the same order when no two rows of a key share a ts (the reader checks that and
// reads again with the full order when they do): the sort then has no string column (measured at 1M rows, load
// ~14: 0.29-0.41 CPU-s for the sorted read against 0.50-0.60 with event_id). `order` "none": unsorted, for the
// reads that place each row at its key's slots themselves (forEachEventBlock's scatter reads): no sort of every
// event row in DuckDB. `order` "k": by key alone (an integer sort, a key's rows in any order), for the block reads
// of forEachEventBlock. `keys`: only the rows of the key indices lo .. hi - 1. A read whose repeats are checked on read
// (LearnerEventColumns.repeatsCheckedOnRead) adds a fifth column: 32 bits of the row's event id hash.
const eventRows = (
  cols: LearnerEventColumns,
  order: "none" | "k" | "ts" | "ts, event_id",
  keys?: { lo: number; hi: number },
) => `SELECT k.k,
       CASE WHEN e.type = 'quiz_attempt' AND e.is_correct IS NOT NULL THEN e.is_correct::TINYINT ELSE -1 END::TINYINT AS answer,
       coalesce(q.qi, -1)::INTEGER AS question, epoch_us(e.ts)::DOUBLE AS ts_us${
         cols.repeatsCheckedOnRead ? ", (hash(e.event_id) >> 32)::UINTEGER AS eh" : ""
       }
FROM ${cols.rowsFrom} e
JOIN bkt_col_keys k ON ${cols.keyHashUnique ? "k.h = e.h" : "k.student_key = e.student_key AND k.topic_id = e.topic_id"}
LEFT JOIN bkt_col_questions q ON q.question_id = e.question_id${
  keys === undefined ? "" : `\nWHERE k.k >= ${keys.lo} AND k.k < ${keys.hi}`
}${order === "none" ? "" : order === "k" ? "\nORDER BY k.k" : `\nORDER BY k.k, e.ts${order === "ts" ? "" : ", e.event_id"}`}`;

/** Thrown by a read ordered by (key, ts) only when two rows of one key share a ts: read again with event_id. */
class TiedTimestamps extends Error {}

/**
 * Calls `fn` with the event rows of `cols`' keys in blocks of whole keys, in key order, each of at most
 * `blockRows` rows (or one key's rows, when a key has more). When every row fits in one block the rows are
 * streamed into it unsorted and placed by key; otherwise they are joined to their key indices once into a temp
 * table sorted by the key index alone, and each block is one key range of it, read with a filter on k (DuckDB's
 * zone maps skip the other row groups) and placed the same way.
 * Either way a key's rows are ordered by ts in JavaScript, and a block with two rows of a key at one ts is read
 * again sorted by (key, ts, event_id). A run read with `repeatsCheckedOnRead` also reads 32 bits of each row's
 * event id hash and, before a block goes to `fn`, throws RepeatedEvents when a key of it holds two rows of one
 * event (blocks already passed to `fn` are then void). `fn` may run statements on the store: no result is open
 * while it runs. Drops the read's temp tables (bkt_col_keys stays for the writes).
 */
export async function forEachEventBlock(
  store: DuckStore,
  cols: LearnerEventColumns,
  fn: (block: EventBlock) => Promise<void>,
  opts: { blockRows?: number; onPhase?: (phase: string) => void } = {},
): Promise<void> {
  const total = cols.keyStart[cols.keys]!;
  let widest = 0;
  for (let k = 0; k < cols.keys; k++) widest = Math.max(widest, cols.keyStart[k + 1]! - cols.keyStart[k]!);
  const capacity = Math.max(1, widest, Math.min(total, opts.blockRows ?? EVENT_BLOCK_ROWS));
  const answer = new Int8Array(Math.min(capacity, Math.max(total, 1)));
  const question = new Int32Array(answer.length);
  const ts = new Float64Array(answer.length);
  // Per row, when the run checks repeats on read: 32 bits of its event id's hash, at the row's slot as read (the
  // ordering by ts below moves the other columns within a key, not this one: the check looks at a key's set).
  const eventHash = new Uint32Array(cols.repeatsCheckedOnRead ? answer.length : 0);
  // The chunks of `sql` (columns k, answer, question, ts_us and, when repeats are checked, eh) as column vectors;
  // fails once more than `limit` rows arrive (the raw zone changed under the read).
  async function* eventChunks(sql: string, limit: number) {
    let seen = 0;
    for await (const chunk of store.chunks(sql)) {
      const n = chunk.rowCount;
      seen += n;
      if (seen > limit)
        throw new Error(
          `readLearnerEventColumns: read more than the ${limit} event rows expected; the raw zone changed mid-read`,
        );
      yield {
        n,
        kv: chunk.getColumnVector(0) as DuckDBVector<number>,
        a: chunk.getColumnVector(1) as DuckDBVector<number>,
        q: chunk.getColumnVector(2) as DuckDBVector<number>,
        t: chunk.getColumnVector(3) as DuckDBVector<number>,
        h: cols.repeatsCheckedOnRead ? (chunk.getColumnVector(4) as DuckDBVector<number>) : undefined,
      };
    }
  }
  // Reads `sql` (columns k, answer, question, ts_us; the rows of keys firstKey ..) into the buffers; returns
  // the rows read. Each row's key must be the one its position says (keyStart), and its time at or after the
  // key's previous row: a block read out of order fails here instead of folding wrong states.
  const readInto = async (sql: string, firstKey: number, limit: number): Promise<number> => {
    const rowBase = cols.keyStart[firstKey]!;
    let at = 0;
    let key = firstKey;
    for await (const { n, kv, a, q, t, h } of eventChunks(sql, limit)) {
      for (let i = 0; i < n; i++, at++) {
        while (cols.keyStart[key + 1]! <= rowBase + at) key++;
        const time = t.getItem(i)!;
        if (kv.getItem(i) !== key || (rowBase + at > cols.keyStart[key]! && time < ts[at - 1]!))
          throw new Error(
            `readLearnerEventColumns: event row ${rowBase + at} is out of (key, ts) order (key ${kv.getItem(i)}, expected ${key}); the rows must be read sorted`,
          );
        answer[at] = a.getItem(i)!;
        question[at] = q.getItem(i)!;
        ts[at] = time;
        if (h !== undefined) eventHash[at] = h.getItem(i)!;
      }
    }
    return at;
  };
  // Orders rows start .. end - 1 of the buffers by ts: an insertion sort for a short or nearly ordered run, else a
  // sort of the row indices. Two rows with the same ts throw TiedTimestamps (their order needs event_id).
  const orderByTs = (start: number, end: number): void => {
    let moves = 0;
    for (let i = start + 1; i < end; i++) {
      const time = ts[i]!;
      if (time > ts[i - 1]!) continue;
      if (time === ts[i - 1]) throw new TiedTimestamps();
      moves += i - start;
      if (end - start > 64 && moves > 8 * (end - start)) {
        const index = Array.from({ length: end - start }, (_, j) => start + j).sort(
          (x, y) => ts[x]! - ts[y]!,
        );
        const t = index.map((j) => ts[j]!);
        const a = index.map((j) => answer[j]!);
        const q = index.map((j) => question[j]!);
        for (let j = 0; j < index.length; j++) {
          if (j > 0 && t[j] === t[j - 1]) throw new TiedTimestamps();
          ts[start + j] = t[j]!;
          answer[start + j] = a[j]!;
          question[start + j] = q[j]!;
        }
        return;
      }
      const ai = answer[i]!;
      const qi = question[i]!;
      let j = i - 1;
      for (; j >= start && ts[j]! > time; j--) {
        ts[j + 1] = ts[j]!;
        answer[j + 1] = answer[j]!;
        question[j + 1] = question[j]!;
      }
      if (j >= start && ts[j] === time) throw new TiedTimestamps();
      ts[j + 1] = time;
      answer[j + 1] = ai;
      question[j + 1] = qi;
    }
  };
  // Reads `sql` (columns k, answer, question, ts_us; the rows of the keys firstKey .. endKey - 1, in any order) into
  // the buffers, each row at the next free slot of its key (keyStart: a counting sort by key), then orders each key's
  // rows by ts (insertion sort: a key's rows are few, and mostly arrive in time order). Two rows of one key with the
  // same ts throw TiedTimestamps (the caller reads again sorted by (key, ts, event_id)), so the rows end in the order
  // the sorted read gives. A row of a key outside the range, or more rows for a key than the keys step counted, fails.
  const scatterInto = async (
    sql: string,
    firstKey: number,
    endKey: number,
    limit: number,
  ): Promise<number> => {
    const rowBase = cols.keyStart[firstKey]!;
    const next = cols.keyStart.slice(firstKey, endKey);
    let at = 0;
    for await (const { n, kv, a, q, t, h } of eventChunks(sql, limit)) {
      for (let i = 0; i < n; i++, at++) {
        const key = kv.getItem(i)!;
        const slot = key >= firstKey && key < endKey ? next[key - firstKey]! : -1;
        if (slot < 0 || slot >= cols.keyStart[key + 1]!)
          throw new Error(
            `readLearnerEventColumns: event row for key ${key} is beyond the rows counted for it (keys ${firstKey} .. ${endKey - 1} read); the raw zone changed mid-read`,
          );
        next[key - firstKey] = slot + 1;
        answer[slot - rowBase] = a.getItem(i)!;
        question[slot - rowBase] = q.getItem(i)!;
        ts[slot - rowBase] = t.getItem(i)!;
        if (h !== undefined) eventHash[slot - rowBase] = h.getItem(i)!;
      }
    }
    if (at !== limit) return at;
    for (let k = firstKey; k < endKey; k++)
      orderByTs(cols.keyStart[k]! - rowBase, cols.keyStart[k + 1]! - rowBase);
    return at;
  };
  const emit = async (firstKey: number, endKey: number): Promise<void> => {
    const rowBase = cols.keyStart[firstKey]!;
    const n = cols.keyStart[endKey]! - rowBase;
    const keyStart = new Int32Array(endKey - firstKey + 1);
    for (let k = firstKey; k <= endKey; k++) keyStart[k - firstKey] = cols.keyStart[k]! - rowBase;
    await fn({
      firstKey,
      endKey,
      rowBase,
      keyStart,
      answer: answer.subarray(0, n),
      question: question.subarray(0, n),
      ts: ts.subarray(0, n),
    });
  };
  const expect = (got: number, want: number) => {
    if (got !== want)
      throw new Error(
        `readLearnerEventColumns: read ${got} event rows, expected ${want}; the raw zone changed mid-read`,
      );
  };
  // Whether rows start .. end - 1 (one key's) hold two equal event hashes: pairwise for a few rows, else sorted.
  let sorted = new Uint32Array(0);
  const hashRepeated = (start: number, end: number): boolean => {
    if (end - start <= 16) {
      for (let i = start + 1; i < end; i++)
        for (let j = start; j < i; j++) if (eventHash[i] === eventHash[j]) return true;
      return false;
    }
    if (sorted.length < end - start) sorted = new Uint32Array(Math.max(end - start, 2 * sorted.length));
    const run = sorted.subarray(0, end - start);
    run.set(eventHash.subarray(start, end));
    run.sort();
    for (let i = 1; i < run.length; i++) if (run[i] === run[i - 1]) return true;
    return false;
  };
  // A run checked on read: fails with RepeatedEvents when a key of the block holds two rows of one event. Two equal
  // 32-bit hashes of a key's event ids (a repeat, or a collision: the 10M bench store's keys hold 59M pairs of rows,
  // so about one run in 73 meets one) are settled exactly on that key's rows (one scan of the run's rows).
  const checkRepeats = async (firstKey: number, endKey: number): Promise<void> => {
    if (!cols.repeatsCheckedOnRead) return;
    const rowBase = cols.keyStart[firstKey]!;
    for (let k = firstKey; k < endKey; k++) {
      if (!hashRepeated(cols.keyStart[k]! - rowBase, cols.keyStart[k + 1]! - rowBase)) continue;
      const r = await store.one<{ dup: boolean }>(
        `SELECT EXISTS (
           SELECT 1 FROM ${cols.rowsFrom} e SEMI JOIN (SELECT student_key, topic_id FROM bkt_col_keys WHERE k = ${k}) x
             USING (student_key, topic_id)
           GROUP BY e.event_id HAVING count(*) > 1) AS dup`,
      );
      if (r?.dup === true)
        throw new RepeatedEvents(
          `readLearnerEventColumns: key ${k} holds two rows of one event; read again with repeats: "before" (de-duplicated rows)`,
        );
    }
  };
  // The rows of the keys firstKey .. endKey - 1 into the buffers, from `unsorted` (their rows in any order); on a tie
  // of two timestamps within a key, again from the event rows joined to their keys, sorted by (key, ts, event_id).
  const readBlock = async (unsorted: string, firstKey: number, endKey: number): Promise<void> => {
    const want = cols.keyStart[endKey]! - cols.keyStart[firstKey]!;
    let got: number;
    try {
      got = await scatterInto(unsorted, firstKey, endKey, want);
    } catch (err) {
      if (!(err instanceof TiedTimestamps)) throw err;
      got = await readInto(eventRows(cols, "ts, event_id", { lo: firstKey, hi: endKey }), firstKey, want);
    }
    expect(got, want);
    await checkRepeats(firstKey, endKey);
  };
  try {
    if (total <= capacity) {
      await readBlock(eventRows(cols, "none"), 0, cols.keys);
      opts.onPhase?.("read: event columns (join, sort)");
      if (cols.keys > 0) await emit(0, cols.keys);
      return;
    }
    // More rows than one block: the event rows joined to their key indices once and stored sorted by the key index
    // alone (an integer sort; insertion order kept for this statement whatever the store's setting), then each block
    // (a key range) read with a filter on k, which DuckDB's zone maps turn into a read of the block's row groups,
    // and placed by the scatter read. Sorting every event row by (key, ts, event_id) instead (a string in the sort
    // key) spilled past the memory limit at 30M and 100M events; an unsorted table made every block scan every row
    // (docs/benchmarks.md "100M's bend").
    const setting = await store.one<{ v: boolean }>(
      "SELECT current_setting('preserve_insertion_order') AS v",
    );
    await store.run("SET preserve_insertion_order = true");
    try {
      await store.run(`CREATE OR REPLACE TEMP TABLE bkt_col_rows AS ${eventRows(cols, "k")}`);
    } finally {
      await store.run(`SET preserve_insertion_order = ${setting?.v === false ? "false" : "true"}`);
    }
    opts.onPhase?.("read: event columns (join, sort)");
    for (let firstKey = 0; firstKey < cols.keys; ) {
      let endKey = firstKey + 1;
      while (endKey < cols.keys && cols.keyStart[endKey + 1]! - cols.keyStart[firstKey]! <= capacity)
        endKey++;
      await readBlock(
        `SELECT k, answer, question, ts_us${cols.repeatsCheckedOnRead ? ", eh" : ""} FROM bkt_col_rows
         WHERE k >= ${firstKey} AND k < ${endKey}`,
        firstKey,
        endKey,
      );
      await emit(firstKey, endKey);
      firstKey = endKey;
    }
  } finally {
    await store.run("DROP TABLE IF EXISTS bkt_col_rows");
    await store.run("DROP TABLE IF EXISTS bkt_col_new");
    await store.run("DROP VIEW IF EXISTS bkt_col_raw");
    await store.run("DROP TABLE IF EXISTS bkt_col_questions");
    await store.run("DROP TABLE IF EXISTS bkt_col_topics");
  }
}

export async function dropLearnerEventColumns(store: DuckStore): Promise<void> {
  await store.run("DROP TABLE IF EXISTS bkt_col_keys");
}

/**
 * Appends `n` rows of DOUBLE columns to `table` (all of whose columns are DOUBLE, in this order) as
 * data chunks of up to 2,048 rows: one vector write per value, no appender call per value.
 */
export async function appendDoubleColumns(
  store: DuckStore,
  table: string,
  columns: readonly Float64Array[],
  n: number,
): Promise<void> {
  const types = columns.map(() => DOUBLE);
  await store.appendRows(
    table,
    (appender) => {
      for (let at = 0; at < n; at += 2048) {
        const len = Math.min(2048, n - at);
        const chunk = DuckDBDataChunk.create(types, len);
        for (let c = 0; c < columns.length; c++) {
          const col = columns[c]!;
          const vec = chunk.getColumnVector(c);
          for (let i = 0; i < len; i++) vec.setItem(i, col[at + i]!);
          vec.flush();
        }
        appender.appendDataChunk(chunk);
      }
    },
    { schema: "main", catalog: "temp" },
  );
}
