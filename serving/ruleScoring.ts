import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { DuckDBDoubleVector } from "@duckdb/node-api";
import { parse as parseYaml } from "yaml";
import type { FeatureWatermark } from "../features/incrementalFeatures.ts";
import { rawEventParts, resolveAsOf, studentRangeSql } from "../features/windows.ts";
import {
  parseRuleConfig,
  priorRuleExplanation,
  RULE_MODEL_FORM,
  RULE_STATE_COLUMNS,
  type RuleConfig,
  type RuleStateColumns,
  ruleBlockRange,
} from "../models/ruleScorer.ts";
import type { DuckStore } from "../storage/duckdb.ts";
import { sqlString } from "../storage/duckdb.ts";
import { BOOLEAN, DOUBLE, DuckDBDataChunk, VARCHAR } from "../storage/duckdbApi.ts";
import { ruleBlockValues } from "../storage/explanationNumbers.ts";
import { RULE_DIRTY_SQL, ruleStateSql } from "../storage/ruleStateSql.ts";
import { RULE_BLOCK_COLUMNS, ruleBlockColumnType } from "../storage/schema.ts";
import { baseTable, deltaTable, foldDelta, replaceBaseRows } from "../storage/servingTables.ts";
import { createRollupViews } from "./rollups.ts";
import { RuleWorkerPool } from "./ruleWorkerPool.ts";

/** config/rule-weights.yaml beside the project root. */
export const DEFAULT_RULE_CONFIG = join(
  dirname(fileURLToPath(import.meta.url)),
  "..",
  "config",
  "rule-weights.yaml",
);

export interface LoadedRuleConfig {
  config: RuleConfig;
  /**
   * "rule-" + first 10 hex digits of SHA-256 over the scorer's form (RULE_MODEL_FORM) and the validated
   * config (formatting-insensitive).
   */
  modelVersion: string;
}

/** Reads and validates a rule-weights YAML file (errors name the file and the bad key). */
export function loadRuleConfig(path = DEFAULT_RULE_CONFIG): LoadedRuleConfig {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new RuleScoringError(`cannot read rule weights ${path}: ${(err as Error).message}`);
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw new RuleScoringError(`${path} is not valid YAML: ${(err as Error).message}`);
  }
  const config = parseRuleConfig(doc, path);
  const modelVersion = `rule-${createHash("sha256")
    .update(JSON.stringify({ form: RULE_MODEL_FORM, ...config }))
    .digest("hex")
    .slice(0, 10)}`;
  return { config, modelVersion };
}

export class RuleScoringError extends Error {
  readonly code = "RULE_SCORING";
  constructor(message: string) {
    super(message);
    this.name = "RuleScoringError";
  }
}

export interface ScoreRulesOptions {
  /** Time the scores are as of: events at or after it are not read. Default: "now" (the newest event + 1 s). */
  asOf?: Date;
  configPath?: string;
  /** Wall-clock stamp for last_updated / recorded_at (default: now). */
  now?: Date;
  onProgress?: (done: number, total: number) => void;
  /**
   * Worker threads scoring in parallel; 0 = score on the calling thread. Default: one per core
   * (up to 4) from WORKERS_FROM_ROWS rows on, else 0 (starting a worker costs about 0.5 s).
   */
  workers?: number;
  /**
   * Incremental run (issue 17 item 3): the previous run's as-of and ingest watermark. Only pairs with an event
   * ingested after the watermark or at or after that as-of (storage/ruleStateSql.ts RULE_DIRTY_SQL) are
   * refolded from raw_events and written; every other pair's stored state is what a full run would store
   * (only time passed, which read time applies: models/ruleScorer.ts ruleScoreAt). Falls back to a full run
   * (the result says why) when there is no stored rule score, one is of another model version, or the
   * as-of is before the previous one.
   */
  since?: FeatureWatermark | null;
  /**
   * Called once when the scores are computed and the writes begin (serving/batchSteps.ts: the "writes" schedule
   * starts the BKT/Elo step's reads beside the rule step's one-thread writes).
   */
  onWrites?: () => void;
  /** Called after each step with its name (the bench prints CPU per step), as scoreBktElo's onPhase. */
  onPhase?: (phase: string) => void;
  /**
   * With workers: state rows read and scored per block (default ruleBlockRows of DuckDB's memory_limit), so
   * the state columns in memory are bounded. The result does not depend on it.
   */
  blockRows?: number;
  /**
   * A full run builds temp.rule_states in this many student-key ranges, one statement each (default:
   * rawEventParts, 1 unless raw_events outgrows DuckDB's memory_limit). The states do not depend on it.
   */
  parts?: number;
}

/** Most state rows per block of the worker path: 15 doubles a row, two blocks (double-buffered) ~0.5 GB. */
export const RULE_BLOCK_ROWS = 2_000_000;
/** Fewest rows per block, whatever the memory limit (a block's messages and chunk boundaries cost per block). */
export const RULE_MIN_BLOCK_ROWS = 16_384;
/** Bytes a state row takes in one block buffer: rid and the state's columns as doubles. */
export const RULE_ROW_BYTES = (1 + RULE_STATE_COLUMNS.length) * 8;

/**
 * Rows per block of the worker path for a DuckDB memory_limit of `limitBytes`: the two block buffers (one
 * read while the other is scored) take at most 1/8 of it, as they live outside DuckDB's buffer pool, within
 * [RULE_MIN_BLOCK_ROWS, RULE_BLOCK_ROWS]. 800 MB -> 416,666 rows (2 x 50 MB); ~4 GB and more -> 2,000,000.
 */
export function ruleBlockRows(limitBytes: number): number {
  const fit = Math.floor(limitBytes / 8 / (2 * RULE_ROW_BYTES));
  return Math.max(
    RULE_MIN_BLOCK_ROWS,
    Math.min(RULE_BLOCK_ROWS, Number.isFinite(fit) ? fit : RULE_BLOCK_ROWS),
  );
}

/** Below this many rows the default is to score on the calling thread. */
export const WORKERS_FROM_ROWS = 200_000;

export interface ScoreRulesResult {
  mode: "full" | "incremental";
  /** Why an incremental run (since) scored every pair. */
  fullReason?: string;
  asOf: Date;
  modelVersion: string;
  /** Pairs whose state was folded and written (every pair in a full run, the dirty ones in a day). */
  scored: number;
  /** Rows appended to student_mastery_history (new or changed scores). */
  changed: number;
  millis: number;
}

/**
 * The rule-scoring job: per-pair decayed states from raw_events (storage/ruleStateSql.ts, one GROUP BY) ->
 * models/ruleScorer (columnar, typed arrays) -> student_mastery (score_source 'rule_based', the score as of
 * the run with the `rule` block read time needs) and student_mastery_history (only rows whose score
 * changed), then (re)creates the rollup views. One transaction: readers never see half a run. No features
 * snapshot is read (the 7/30/90-day snapshot is for training sets, drift and the ML models).
 */
export async function scoreRules(store: DuckStore, opts: ScoreRulesOptions = {}): Promise<ScoreRulesResult> {
  const started = performance.now();
  const { config, modelVersion } = loadRuleConfig(opts.configPath);
  const asOf = opts.asOf ?? (await resolveAsOf(store, "now"));
  const asOfUs = BigInt(asOf.getTime()) * 1000n;
  const now = opts.now ?? new Date();
  let scored = 0;
  let changed = 0;
  let mode: ScoreRulesResult["mode"] = "full";
  let fullReason: string | undefined;
  await store.transaction(async () => {
    let source = "raw_events";
    if (opts.since !== undefined) {
      const why =
        opts.since === null
          ? "no previous run recorded"
          : await incrementalBlocker(store, opts.since, asOf, modelVersion);
      if (why === null && opts.since !== null) {
        mode = "incremental";
        const wm = opts.since.ingestedThroughUs;
        await store.run(RULE_DIRTY_SQL, {
          t1: asOfUs,
          t0: BigInt(opts.since.asOf.getTime()) * 1000n,
          wm: wm === null ? -(2n ** 62n) : BigInt(wm),
        });
        source =
          "(SELECT r.* FROM raw_events r SEMI JOIN temp.rule_dirty d ON r.student_key = d.student_key AND r.topic_id = d.topic_id)";
      } else if (why !== null) fullReason = why;
      opts.onPhase?.("dirty pairs");
    }
    // An explicit row number (rid, storage/ruleStateSql.ts) joins the scores back: rows created in this
    // transaction have rowids from 2^55 on, which a DOUBLE (the scorer's columns) cannot tell apart.
    const stateParams = { t: asOfUs, h: config.evidenceHalfLifeDays };
    const parts = mode === "full" ? (opts.parts ?? (await rawEventParts(store))) : 1;
    if (parts === 1)
      await store.run(`CREATE OR REPLACE TEMP TABLE rule_states AS ${ruleStateSql(source)}`, stateParams);
    else {
      // One GROUP BY over all of raw_events spills past the memory limit and slows several fold (at 30M events
      // and 1.6 GB: 0.51x of the CPU in 6 ranges, docs/benchmarks.md "100M's bend, round 3"): the states are
      // built a student-key range at a time, each range's rids (1..m) moved past the rows before it, so the
      // rids stay 1..n and every pair's state is the same (its events all lie in its student's range).
      let before = 0n;
      for (let i = 0; i < parts; i++) {
        const range = `(SELECT * FROM raw_events WHERE ${studentRangeSql(i, parts)})`;
        if (i === 0) {
          await store.run(`CREATE OR REPLACE TEMP TABLE rule_states AS ${ruleStateSql(range)}`, stateParams);
          before = (await store.one<{ n: bigint }>("SELECT count(*) AS n FROM temp.rule_states"))?.n ?? 0n;
        } else
          before += BigInt(
            await store.runCount(
              `INSERT INTO temp.rule_states SELECT * REPLACE (rid + $before::BIGINT AS rid) FROM (${ruleStateSql(range)})`,
              { ...stateParams, before },
            ),
          );
      }
    }
    if (mode === "incremental") await store.run("DROP TABLE temp.rule_dirty");
    opts.onPhase?.("states");
    const n = Number((await store.one<{ n: bigint }>("SELECT count(*) AS n FROM temp.rule_states"))?.n ?? 0n);
    const cores = availableParallelism();
    const workers = opts.workers ?? (n >= WORKERS_FROM_ROWS && cores >= 2 ? Math.min(4, cores) : 0);
    scored = n;
    const at = Number(asOfUs);
    // The steps after scoring (history, the student_mastery writes and the commit) are mostly serial: a full
    // run does them on one DuckDB thread, through the commit (storage/duckdb.ts withThreads; docs/benchmarks.md
    // "The full rule step's CPU (rules15)"). The day's writes are a few rows: switching threads would cost more
    // than the busy-wait (measured).
    const writePhase = (fn: () => Promise<void>): Promise<void> => {
      opts.onWrites?.();
      return mode === "full" ? store.withThreads(1, fn) : fn();
    };
    // Both writes read the scores (`scores`: rid, score, explanation, the rule block's columns) joined with the
    // states' keys by rid as
    // they go, rather than from a table of the joined rows: that table held every explanation once more (at
    // 10M ~1 GB, at 100M ~10 GB of temp storage), and the worker path reads the threads' files straight
    // into history and student_mastery (docs/benchmarks.md "The rule step's writes (rulew18)").
    const writeScores = async (scores: string): Promise<void> => {
      const params = { mv: modelVersion, now: BigInt(now.getTime()) * 1000n, t: asOfUs };
      // A row with a block stores it as numbers and '' (the worker files' '' reads as NULL); readers render the
      // text (serving/storedExplanations.ts). A row without one (the prior) keeps its short text.
      const scored = `(SELECT f.student_key, f.topic_id, r.score, make_timestamp($t::BIGINT) AS as_of,
           coalesce(r.explanation, '') AS explanation, ${RULE_BLOCK_COLUMNS.map((c) => `r.${c}`).join(", ")}
         FROM ${scores} r JOIN temp.rule_states f ON f.rid = r.rid::BIGINT) s`;
      const blockCols = RULE_BLOCK_COLUMNS.join(", ");
      const blockOf = RULE_BLOCK_COLUMNS.map((c) => `s.${c}`).join(", ");
      const hadScores =
        (await store.one("SELECT 1 AS x FROM student_mastery WHERE score_source = 'rule_based' LIMIT 1")) !==
        undefined;
      // A row whose stored score is the same is not history. With no stored rule score (a first run) every
      // row is new, so no join; else NOT EXISTS, which DuckDB runs as an anti join that keeps only the keys
      // (the LEFT JOIN it replaces carried every scored row's explanation through the join: half the step).
      changed = await store.runCount(
        `INSERT INTO student_mastery_history
           (student_key, topic_id, mastery_score, score_source, model_version, as_of, explanation, recorded_at,
            ${blockCols})
         SELECT s.student_key, s.topic_id, s.score, 'rule_based', $mv, s.as_of, s.explanation,
                make_timestamp($now::BIGINT), ${blockOf}
         FROM ${scored}
         ${
           hadScores
             ? `WHERE NOT EXISTS (SELECT 1 FROM student_mastery m
           WHERE m.student_key = s.student_key AND m.topic_id = s.topic_id AND m.score_source = 'rule_based'
             AND m.mastery_score = s.score)`
             : ""
         }`,
        params,
      );
      opts.onPhase?.("history");
      // student_mastery is a view over a base and an append-only delta (storage/servingTables.ts): the pairs of
      // an incremental day are appended to the delta (the newest row per key wins), so the commit writes them at
      // the tail instead of rewriting every row group holding one; a full run folds the delta's rule rows into
      // the base and rewrites the base.
      if (mode === "full") {
        await foldDelta(store, "student_mastery", "score_source = 'rule_based'");
        opts.onPhase?.("fold delta");
      }
      // A full run writes its rows to the base in student order (the pairs come in the GROUP BY's hash order):
      // one student's rule rows then lie next to each other, and GET /mastery's miss reads them as one row-id
      // range instead of fetching each through the index (storage/rowIdRanges.ts; docs/benchmarks.md "The
      // embedded cold read, round 3 (mastery22)"). The day's rows go to the delta, which is scanned whole.
      const rows = `SELECT s.student_key, s.topic_id, s.score AS mastery_score, 'rule_based' AS score_source,
               $mv AS model_version, s.as_of, s.explanation, make_timestamp($now::BIGINT) AS last_updated, ${blockOf}
             FROM ${scored}${mode === "full" ? " ORDER BY s.student_key, s.topic_id" : ""}`;
      let written: number;
      if (hadScores && mode === "full") {
        // A full run replaces the stored rule rows of the pairs it scored (every pair in temp.rule_states) by
        // writing the base anew (the rows it keeps, then the new rule rows) and swapping it in
        // (storage/servingTables.ts replaceBaseRows): deleting a third of the base's keys from its primary key
        // at commit cost more than the rewrite. Not ON CONFLICT DO UPDATE either: an update keeps every updated
        // row's old values (the explanation among them) in the transaction's memory until commit, so a rerun
        // over the stored scores of 10M events ran out of an 800 MB limit; inserts into a new table are written
        // to the file as they go (DuckDB's optimistic writes), so the rewrite stays within the limit.
        written = await replaceBaseRows(
          store,
          "student_mastery",
          `NOT (b.score_source = 'rule_based' AND EXISTS (SELECT 1 FROM temp.rule_states f
               WHERE f.student_key = b.student_key AND f.topic_id = b.topic_id))`,
          rows,
          params,
        );
      } else
        written = await store.runCount(
          `INSERT INTO ${mode === "incremental" ? deltaTable("student_mastery") : baseTable("student_mastery")} BY NAME ${rows}`,
          params,
        );
      if (written !== n)
        throw new RuleScoringError(
          `the rule step wrote ${written} student_mastery rows for ${n} scored pairs: a score's rid matched no state (its scores file or table is incomplete); rerun the step`,
        );
      opts.onPhase?.("student_mastery");
      await store.run("DROP TABLE temp.rule_states");
    };
    if (workers > 0 && n > 0) {
      const block = Math.max(1, Math.min(n, opts.blockRows ?? ruleBlockRows(await store.memoryLimitBytes())));
      await scoreInWorkers(store, at, n, block, config, workers, opts.onProgress, opts.onPhase, (scores) =>
        writePhase(() => writeScores(scores)),
      );
    } else {
      await store.run(
        `CREATE OR REPLACE TEMP TABLE rule_scores (rid DOUBLE, score DOUBLE NOT NULL, explanation VARCHAR NOT NULL,
           ${RULE_BLOCK_COLUMNS.map((c) => `${c} ${ruleBlockColumnType(c)}`).join(", ")})`,
      );
      const { rid, cols } = await readStateColumns(store, n, n, false, async () => {});
      await appendScores(store, rid, at, cols, n, config, opts.onProgress);
      opts.onPhase?.("score");
      await writePhase(async () => {
        await writeScores("temp.rule_scores");
        await store.run("DROP TABLE temp.rule_scores");
      });
    }
  });
  opts.onPhase?.("commit");
  await createRollupViews(store);
  return {
    mode,
    ...(fullReason !== undefined ? { fullReason } : {}),
    asOf,
    modelVersion,
    scored,
    changed,
    millis: performance.now() - started,
  };
}

/**
 * Why refolding only the dirty pairs would not give what a full run stores (null: it would): the stored
 * rule rows must exist and all be of this model version (a changed config or scorer form rescales every
 * pair), and time must not go back.
 */
async function incrementalBlocker(
  store: DuckStore,
  since: FeatureWatermark,
  asOf: Date,
  modelVersion: string,
): Promise<string | null> {
  if (asOf.getTime() < since.asOf.getTime())
    return `as-of ${asOf.toISOString()} is before the previous run's ${since.asOf.toISOString()}`;
  const r = await store.one<{ other: bigint; stored: bigint }>(
    `SELECT count(*) FILTER (WHERE model_version <> $mv) AS other, count(*) AS stored
     FROM student_mastery WHERE score_source = 'rule_based'`,
    { mv: modelVersion },
  );
  const other = Number(r?.other ?? 0n);
  if (other > 0) return `${other} stored rule scores are of another model version than ${modelVersion}`;
  if (Number(r?.stored ?? 0n) === 0) return "no stored rule scores to start from";
  return null;
}

const CHUNK = 2048;

/**
 * Scores all rows and bulk-loads (rid, score, explanation, the rule block's columns) into temp.rule_scores in
 * data chunks of 2048 rows (one native call per column per chunk instead of one per value). A row with a
 * block has explanation '' (readers render it from the block); one without has the prior's text.
 */
async function appendScores(
  store: DuckStore,
  rid: Float64Array,
  asOfUs: number,
  cols: RuleStateColumns,
  n: number,
  config: RuleConfig,
  onProgress: ((done: number, total: number) => void) | undefined,
): Promise<void> {
  await store.appendRows(
    "rule_scores",
    (appender) => {
      const ridBuf: number[] = new Array(CHUNK);
      const scoreBuf: number[] = new Array(CHUNK);
      const jsonBuf: string[] = new Array(CHUNK);
      const blockBufs: (number | boolean | null)[][] = RULE_BLOCK_COLUMNS.map(() => new Array(CHUNK));
      const types = [
        DOUBLE,
        DOUBLE,
        VARCHAR,
        ...RULE_BLOCK_COLUMNS.map((c) => (c === "rule_centered" ? BOOLEAN : DOUBLE)),
      ];
      const priorText = JSON.stringify(priorRuleExplanation(config));
      const values: (number | boolean | null)[] = [];
      let fill = 0;
      const flush = (): void => {
        if (fill === 0) return;
        const chunk = DuckDBDataChunk.create(types, fill);
        const part = <T>(buf: T[]): T[] => (fill === CHUNK ? buf : buf.slice(0, fill));
        chunk.setColumnValues(0, part(ridBuf));
        chunk.setColumnValues(1, part(scoreBuf));
        chunk.setColumnValues(2, part(jsonBuf));
        blockBufs.forEach((buf, k) => {
          chunk.setColumnValues(3 + k, part(buf));
        });
        appender.appendDataChunk(chunk);
        fill = 0;
      };
      const step = Math.max(CHUNK, Math.floor(n / 20));
      ruleBlockRange(cols, asOfUs, 0, n, config, (i, score, block) => {
        ridBuf[fill] = rid[i] as number;
        scoreBuf[fill] = score;
        if (block === null) {
          jsonBuf[fill] = priorText;
          for (const buf of blockBufs) buf[fill] = null;
        } else {
          jsonBuf[fill] = "";
          ruleBlockValues(block, values);
          for (let k = 0; k < blockBufs.length; k++)
            (blockBufs[k] as (number | boolean | null)[])[fill] = values[k] as number | boolean | null;
        }
        if (++fill === CHUNK) flush();
        if (onProgress && (i + 1) % step === 0) onProgress(i + 1, n);
      });
      flush();
    },
    { schema: "main", catalog: "temp" },
  );
  onProgress?.(n, n);
}

/**
 * Scores temp.rule_states in a pool of `workers` persistent threads (serving/ruleWorkerPool.ts), `block` rows
 * at a time: each block's state columns are read into shared memory and split between the threads, which
 * append their share as tab-separated lines (ruleScoringWorker.ts) to their own temp file; when every block
 * is scored, `write` gets a read_csv() of the files (rid, score, explanation) to insert from, and the files are
 * removed after it. Two block buffers: the next block is read while the threads score the last one.
 * JSON.stringify of the explanations (number-to-text conversion) is most of the scoring CPU, so this divides
 * the step's single-threaded part by the core count. The connection is not used while the state rows stream
 * (that would end the stream), hence the writes at the end.
 */
async function scoreInWorkers(
  store: DuckStore,
  asOfUs: number,
  n: number,
  block: number,
  config: RuleConfig,
  workers: number,
  onProgress: ((done: number, total: number) => void) | undefined,
  onPhase: ((phase: string) => void) | undefined,
  write: (scores: string) => Promise<void>,
): Promise<void> {
  // Beside the store (about 330 bytes a row), else in the OS temp directory for in-memory stores.
  const base = store.path === ":memory:" ? tmpdir() : dirname(store.path);
  const dir = mkdtempSync(join(base, ".mastery-rules-"));
  const pool = RuleWorkerPool.start(workers, config, asOfUs, dir);
  try {
    let scoredBefore = 0;
    const scoreBlock = (rid: Float64Array, cols: RuleStateColumns, rows: number): Promise<void> => {
      const before = scoredBefore;
      scoredBefore += rows;
      return pool.score({ rid, cols }, rows, (k) => onProgress?.(before + k, n));
    };
    await readStateColumns(store, n, block, true, scoreBlock);
    const written = await pool.close();
    if (written !== n)
      throw new RuleScoringError(`rule scoring threads scored ${written} rows, expected ${n}`);
    onPhase?.("score");
    // The files are read by the writes themselves (each of them once), and removed after them.
    await write(
      `read_csv([${pool.paths.map(sqlString).join(", ")}],
         delim = '\\t', quote = '', escape = '', header = false, auto_detect = false, new_line = '\\n',
         columns = {'rid': 'DOUBLE', 'score': 'DOUBLE', 'explanation': 'VARCHAR', ${RULE_BLOCK_COLUMNS.map(
           (c) => `'${c}': '${ruleBlockColumnType(c)}'`,
         ).join(", ")}})`,
    );
  } catch (err) {
    await pool.terminate();
    throw err;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Reads temp.rule_states' columns straight from DuckDB's vectors into Float64Arrays: no per-row objects.
 * rid is the row number, used to join back. Rows come `block` at a time: `onBlock(rid, cols, rows, index)` is
 * called for each full block and the last one. With `shared` the arrays are SharedArrayBuffers and there
 * are two sets: the next block is read into one while onBlock's promise for the other is pending (it is
 * awaited before that set is refilled, and every one before returning). Without, one set, each onBlock
 * awaited before the next rows (block = n: one read, and the returned arrays hold every row). The
 * connection must not run other statements until this returns.
 */
async function readStateColumns(
  store: DuckStore,
  n: number,
  block: number,
  shared: boolean,
  onBlock: (rid: Float64Array, cols: RuleStateColumns, rows: number, index: number) => Promise<void>,
): Promise<{ rid: Float64Array; cols: RuleStateColumns }> {
  const names = ["rid", ...RULE_STATE_COLUMNS];
  const expr = (c: string): string => `${c}::DOUBLE AS ${c}`;
  const size = Math.max(0, Math.min(n, block));
  const sets = shared && size < n ? 2 : 1;
  const buffers = Array.from({ length: sets }, () => {
    // Shared memory lets worker threads read the columns without a copy.
    const arrays = names.map(() =>
      shared ? new Float64Array(new SharedArrayBuffer(size * 8)) : new Float64Array(size),
    );
    const cols = {} as RuleStateColumns;
    RULE_STATE_COLUMNS.forEach((c, k) => {
      cols[c] = arrays[k + 1] as Float64Array;
    });
    return { arrays, rid: arrays[0] as Float64Array, cols };
  });
  const pending: (Promise<void> | undefined)[] = new Array(sets).fill(undefined);
  // A failed block must not go unhandled while the next one is read; it is awaited (and thrown) below.
  const hand = (p: Promise<void>): Promise<void> => {
    p.catch(() => {});
    return p;
  };
  const chunks = store.chunks(`SELECT ${names.map(expr).join(", ")} FROM temp.rule_states`);
  let total = 0;
  let fill = 0;
  let index = 0;
  let cur = buffers[0]!;
  const emit = async (rows: number): Promise<void> => {
    const slot = index % sets;
    const p = hand(onBlock(cur.rid, cur.cols, rows, index++));
    if (sets === 1) await p;
    else pending[slot] = p;
    const next = index % sets;
    await pending[next];
    cur = buffers[next]!;
  };
  try {
    for await (const chunk of chunks) {
      const rows = chunk.rowCount;
      if (total + rows > n) {
        total += rows;
        break;
      }
      // A DuckDB chunk (<= 2,048 rows) may straddle two blocks.
      for (let from = 0; from < rows; ) {
        const take = Math.min(rows - from, size - fill);
        for (let c = 0; c < names.length; c++) {
          const vec = chunk.getColumnVector(c) as DuckDBDoubleVector;
          const out = cur.arrays[c] as Float64Array;
          for (let j = 0; j < take; j++) {
            const v = vec.getItem(from + j);
            out[fill + j] = v === null ? Number.NaN : v;
          }
        }
        fill += take;
        from += take;
        if (fill === size) {
          await emit(fill);
          fill = 0;
        }
      }
      total += rows;
    }
    if (total !== n)
      throw new RuleScoringError(`rule states changed while reading (${total} rows, expected ${n})`);
    if (fill > 0) await emit(fill);
  } finally {
    await Promise.allSettled(pending);
  }
  for (const p of pending) await p;
  const first = buffers[0]!;
  return { rid: first.rid, cols: first.cols };
}
