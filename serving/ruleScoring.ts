import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { DuckDBDoubleVector } from "@duckdb/node-api";
import { parse as parseYaml } from "yaml";
import { buildFeatures, resolveAsOf } from "../features/windows.ts";
import {
  parseRuleConfig,
  RULE_FEATURE_COLUMNS,
  type RuleConfig,
  type RuleFeatureColumns,
  storedRuleRange,
} from "../models/ruleScorer.ts";
import type { DuckStore } from "../storage/duckdb.ts";
import { sqlString } from "../storage/duckdb.ts";
import { DOUBLE, DuckDBDataChunk, VARCHAR } from "../storage/duckdbApi.ts";
import {
  daysSinceSql,
  FEATURE_ROWS,
  FEATURE_SNAPSHOTS,
  featureSnapshot,
  visibleAtSql,
} from "../storage/featureRows.ts";
import { baseTable, deltaTable, foldDelta } from "../storage/servingTables.ts";
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
  /** "rule-" + first 10 hex digits of SHA-256 over the validated config (formatting-insensitive). */
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
  const modelVersion = `rule-${createHash("sha256").update(JSON.stringify(config)).digest("hex").slice(0, 10)}`;
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
  /** Features snapshot to score; built first if the features table has none for it. Default: the latest snapshot (or "now"). */
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
   * Incremental run (issue 17 item 3): rescore only the pairs of this temp table (student_key, topic_id),
   * the pairs whose features changed (features/incrementalFeatures.ts `keepDirty`). Untouched pairs keep
   * their stored row: it holds the score without recency, which read time adds (models/ruleScorer.ts
   * ruleScoreAt), so it is what a full run would store. Falls back to a full run (the result says why)
   * when a stored rule row is of another model version or a snapshot pair has no rule row besides these.
   */
  onlyPairs?: string;
  /** Called after each step with its name (the bench prints CPU per step), as scoreBktElo's onPhase. */
  onPhase?: (phase: string) => void;
  /**
   * With workers: feature rows read and scored per block (default ruleBlockRows of DuckDB's memory_limit),
   * so the feature columns in memory are bounded (31 doubles a row: ~2.7 GB for the 11M rows of 100M
   * events unblocked). The result does not depend on it.
   */
  blockRows?: number;
}

/** Most feature rows per block of the worker path: 31 doubles a row, two blocks (double-buffered) ~1 GB. */
export const RULE_BLOCK_ROWS = 2_000_000;
/** Fewest rows per block, whatever the memory limit (a block's messages and chunk boundaries cost per block). */
export const RULE_MIN_BLOCK_ROWS = 16_384;
/** Bytes a feature row takes in one block buffer: rid, last activity and the scorer's columns as doubles. */
export const RULE_ROW_BYTES = (2 + RULE_FEATURE_COLUMNS.length) * 8;

/**
 * Rows per block of the worker path for a DuckDB memory_limit of `limitBytes`: the two block buffers (one
 * read while the other is scored) take at most 1/8 of it, as they live outside DuckDB's buffer pool, within
 * [RULE_MIN_BLOCK_ROWS, RULE_BLOCK_ROWS]. 800 MB -> 201,612 rows (2 x 50 MB); ~8 GB and more -> 2,000,000.
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
  /** Why an incremental run (onlyPairs) scored every pair. */
  fullReason?: string;
  asOf: Date;
  modelVersion: string;
  scored: number;
  /** Rows appended to student_mastery_history (new or changed scores). */
  changed: number;
  builtFeatures: boolean;
  millis: number;
}

/**
 * The rule-scoring job: features snapshot -> models/ruleScorer (columnar, typed arrays) ->
 * student_mastery (upsert, score_source 'rule_based') and student_mastery_history (only rows whose
 * score changed), then (re)creates the rollup views. One transaction: readers never see half a run.
 */
export async function scoreRules(store: DuckStore, opts: ScoreRulesOptions = {}): Promise<ScoreRulesResult> {
  const started = performance.now();
  const { config, modelVersion } = loadRuleConfig(opts.configPath);
  let asOf = opts.asOf;
  let builtFeatures = false;
  if (!asOf) {
    const latest = await store.one<{ t: Date | null }>(`SELECT max(as_of) AS t FROM ${FEATURE_SNAPSHOTS}`);
    asOf = latest?.t ?? undefined;
  }
  if (!asOf) asOf = await resolveAsOf(store, "now");
  const asOfUs = BigInt(asOf.getTime()) * 1000n;
  const have = await store.one<{ n: bigint }>(
    `SELECT count(*) AS n FROM ${FEATURE_SNAPSHOTS} WHERE as_of = make_timestamp($t::BIGINT)`,
    { t: asOfUs },
  );
  if (Number(have?.n ?? 0n) === 0) {
    await buildFeatures(store, asOf);
    builtFeatures = true;
  }

  const now = opts.now ?? new Date();
  let scored = 0;
  let changed = 0;
  let mode: ScoreRulesResult["mode"] = "full";
  let fullReason: string | undefined;
  await store.transaction(async () => {
    // The snapshot's stored rows (storage/featureRows.ts), its chain resolved once.
    const snap = await featureSnapshot(store, asOfUs);
    if (snap === null)
      throw new RuleScoringError(
        `no features snapshot as of ${asOf.toISOString()}: build it first (\`mastery features build --as-of ...\`)`,
      );
    let onlyPairs: string | undefined;
    if (opts.onlyPairs !== undefined) {
      const why = await incrementalBlocker(store, opts.onlyPairs, asOfUs, snap.chainId, modelVersion);
      if (why === null) {
        mode = "incremental";
        onlyPairs = opts.onlyPairs;
      } else fullReason = why;
      opts.onPhase?.("incremental check");
    }
    const source = snapshotSource(snap.chainId, onlyPairs);
    const n = await snapshotRows(store, asOfUs, source);
    const cores = availableParallelism();
    const workers = opts.workers ?? (n >= WORKERS_FROM_ROWS && cores >= 2 ? Math.min(4, cores) : 0);
    scored = n;
    await store.run(
      "CREATE OR REPLACE TEMP TABLE rule_scores (rid DOUBLE, score DOUBLE NOT NULL, explanation VARCHAR NOT NULL)",
    );
    if (workers > 0 && n > 0) {
      const block = Math.max(1, Math.min(n, opts.blockRows ?? ruleBlockRows(await store.memoryLimitBytes())));
      await scoreInWorkers(store, asOfUs, source, n, block, config, workers, opts.onProgress);
    } else {
      const { rid, lastUs, cols } = await readFeatureColumns(
        store,
        asOfUs,
        n,
        n,
        false,
        source,
        async () => {},
      );
      await appendScores(store, rid, lastUs, cols, n, config, opts.onProgress);
    }
    opts.onPhase?.("score");

    const params = { mv: modelVersion, now: BigInt(now.getTime()) * 1000n };
    await store.run(
      `
      CREATE OR REPLACE TEMP TABLE rule_scored AS
      SELECT r.rid, f.student_key, f.topic_id, r.score, make_timestamp($t::BIGINT) AS as_of, r.explanation
      FROM temp.rule_scores r JOIN ${FEATURE_ROWS} f ON f.rowid = r.rid::BIGINT`,
      { t: asOfUs },
    );
    opts.onPhase?.("join keys");
    const before = await historyCount(store);
    const hadScores =
      (await store.one("SELECT 1 AS x FROM student_mastery WHERE score_source = 'rule_based' LIMIT 1")) !==
      undefined;
    // A row whose stored score is the same is not history. With no stored rule score (a first run) every
    // row is new, so no join; else NOT EXISTS, which DuckDB runs as an anti join that keeps only the keys
    // (the LEFT JOIN it replaces carried every scored row's explanation through the join: half the step).
    await store.run(
      `INSERT INTO student_mastery_history
         (student_key, topic_id, mastery_score, score_source, model_version, as_of, explanation, recorded_at)
       SELECT s.student_key, s.topic_id, s.score, 'rule_based', $mv, s.as_of, s.explanation,
              make_timestamp($now::BIGINT)
       FROM temp.rule_scored s
       ${
         hadScores
           ? `WHERE NOT EXISTS (SELECT 1 FROM student_mastery m
         WHERE m.student_key = s.student_key AND m.topic_id = s.topic_id AND m.score_source = 'rule_based'
           AND m.mastery_score = s.score)`
           : ""
       }`,
      params,
    );
    changed = (await historyCount(store)) - before;
    opts.onPhase?.("history");
    // student_mastery is a view over a base and an append-only delta (storage/servingTables.ts): the pairs of
    // an incremental day are appended to the delta (the newest row per key wins), so the commit writes them at
    // the tail instead of rewriting every row group holding one; a full run folds the delta's rule rows into
    // the base and rewrites the base.
    if (mode === "full") {
      await foldDelta(store, "student_mastery", "score_source = 'rule_based'");
      opts.onPhase?.("fold delta");
    }
    const upsert = hadScores && mode === "full";
    const insertScores = (): Promise<void> =>
      store.run(
        `INSERT INTO ${mode === "incremental" ? deltaTable("student_mastery") : baseTable("student_mastery")}
         (student_key, topic_id, mastery_score, score_source, model_version, as_of, explanation, last_updated)
       SELECT s.student_key, s.topic_id, s.score, 'rule_based', $mv, s.as_of, s.explanation,
              make_timestamp($now::BIGINT)
       FROM temp.rule_scored s`,
        params,
      );
    if (upsert) {
      // A full run replaces the stored rule rows of the pairs it scored: DELETE then a plain INSERT, not
      // ON CONFLICT DO UPDATE. An update keeps every updated row's old values (the ~300-byte explanation
      // among them) in the transaction's memory until commit, so a rerun over the stored scores of 10M
      // events ran out of an 800 MB limit, in blocks of rows too; deletes are a mark per row, and a large
      // insert is written to the file as it goes (DuckDB's optimistic writes), so both stay within the limit.
      await store.run(
        `DELETE FROM ${baseTable("student_mastery")} m USING temp.rule_scored s
         WHERE m.student_key = s.student_key AND m.topic_id = s.topic_id AND m.score_source = 'rule_based'`,
      );
      opts.onPhase?.("delete replaced");
    }
    await insertScores();
    opts.onPhase?.("student_mastery");
    await store.run("DROP TABLE temp.rule_scores");
    await store.run("DROP TABLE temp.rule_scored");
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
    builtFeatures,
    millis: performance.now() - started,
  };
}

/**
 * Why rescoring only the pairs of `table` would not give what a full run stores (null: it would). Every
 * stored rule row must be of this model version, and every pair of the snapshot must have a rule row or
 * be in `table` (counts: the stored rows plus the table's pairs without one equal the snapshot's rows,
 * as a snapshot never loses a pair; a rule row of a pair not in the snapshot makes them differ too).
 */
async function incrementalBlocker(
  store: DuckStore,
  table: string,
  asOfUs: bigint,
  chainId: bigint,
  modelVersion: string,
): Promise<string | null> {
  if (!/^[a-z_][a-z0-9_]*$/.test(table))
    throw new RuleScoringError(`onlyPairs must name a temp table (got "${table}")`);
  const r = await store.one<{ other: bigint; stored: bigint; fresh: bigint; snapshot: bigint }>(
    `SELECT
       (SELECT count(*) FROM student_mastery WHERE score_source = 'rule_based' AND model_version <> $mv) AS other,
       (SELECT count(*) FROM student_mastery WHERE score_source = 'rule_based') AS stored,
       (SELECT count(*) FROM temp.${table} d WHERE NOT EXISTS (SELECT 1 FROM student_mastery m
          WHERE m.student_key = d.student_key AND m.topic_id = d.topic_id AND m.score_source = 'rule_based')
          AND EXISTS (SELECT 1 FROM ${snapshotSource(chainId)}
          AND features.student_key = d.student_key AND features.topic_id = d.topic_id)) AS fresh,
       (SELECT count(*) FROM ${snapshotSource(chainId)}) AS snapshot`,
    { mv: modelVersion, t: asOfUs },
  );
  const other = Number(r?.other ?? 0n);
  if (other > 0) return `${other} stored rule scores are of another model version than ${modelVersion}`;
  const stored = Number(r?.stored ?? 0n);
  const fresh = Number(r?.fresh ?? 0n);
  const snapshot = Number(r?.snapshot ?? 0n);
  if (stored + fresh !== snapshot)
    return `the stored rule scores (${stored}) plus the new pairs (${fresh}) are not the snapshot's ${snapshot} pairs`;
  return null;
}

const CHUNK = 2048;

/**
 * Scores all rows and bulk-loads (rid, score, explanation JSON) into temp.rule_scores in data
 * chunks of 2048 rows (one native call per column per chunk instead of one per value).
 */
async function appendScores(
  store: DuckStore,
  rid: Float64Array,
  lastUs: Float64Array,
  cols: RuleFeatureColumns,
  n: number,
  config: RuleConfig,
  onProgress: ((done: number, total: number) => void) | undefined,
): Promise<void> {
  const appender = await store.conn.createAppender("rule_scores", "main", "temp");
  const ridBuf: number[] = new Array(CHUNK);
  const scoreBuf: number[] = new Array(CHUNK);
  const jsonBuf: string[] = new Array(CHUNK);
  let fill = 0;
  const flush = (): void => {
    if (fill === 0) return;
    const chunk = DuckDBDataChunk.create([DOUBLE, DOUBLE, VARCHAR], fill);
    chunk.setColumnValues(0, fill === CHUNK ? ridBuf : ridBuf.slice(0, fill));
    chunk.setColumnValues(1, fill === CHUNK ? scoreBuf : scoreBuf.slice(0, fill));
    chunk.setColumnValues(2, fill === CHUNK ? jsonBuf : jsonBuf.slice(0, fill));
    appender.appendDataChunk(chunk);
    fill = 0;
  };
  const step = Math.max(CHUNK, Math.floor(n / 20));
  storedRuleRange(cols, lastUs, 0, n, config, (i, r) => {
    ridBuf[fill] = rid[i] as number;
    scoreBuf[fill] = r.score;
    jsonBuf[fill] = JSON.stringify(r.explanation);
    if (++fill === CHUNK) flush();
    if (onProgress && (i + 1) % step === 0) onProgress(i + 1, n);
  });
  flush();
  appender.closeSync();
  onProgress?.(n, n);
}

/**
 * Scores the snapshot in a pool of `workers` persistent threads (serving/ruleWorkerPool.ts), `block` rows at
 * a time: each block's feature columns are read into shared memory and split between the threads, which
 * append their share as tab-separated lines (ruleScoringWorker.ts) to their own temp file; when every block
 * is scored, DuckDB loads the files into temp.rule_scores in parallel. Two block buffers: the next block is
 * read while the threads score the last one. JSON.stringify of the explanations (number-to-text
 * conversion) is most of the scoring CPU, so this divides the step's single-threaded part by the core
 * count. The connection is not used while the feature rows stream (that would end the stream), hence one
 * load at the end.
 */
async function scoreInWorkers(
  store: DuckStore,
  asOfUs: bigint,
  source: string,
  n: number,
  block: number,
  config: RuleConfig,
  workers: number,
  onProgress: ((done: number, total: number) => void) | undefined,
): Promise<void> {
  // Beside the store (about 330 bytes a row), else in the OS temp directory for in-memory stores.
  const base = store.path === ":memory:" ? tmpdir() : dirname(store.path);
  const dir = mkdtempSync(join(base, ".mastery-rules-"));
  const pool = RuleWorkerPool.start(workers, config, dir);
  try {
    let scoredBefore = 0;
    const scoreBlock = (
      rid: Float64Array,
      lastUs: Float64Array,
      cols: RuleFeatureColumns,
      rows: number,
    ): Promise<void> => {
      const before = scoredBefore;
      scoredBefore += rows;
      return pool.score({ rid, lastUs, cols }, rows, (k) => onProgress?.(before + k, n));
    };
    await readFeatureColumns(store, asOfUs, n, block, true, source, scoreBlock);
    const written = await pool.close();
    if (written !== n)
      throw new RuleScoringError(`rule scoring threads scored ${written} rows, expected ${n}`);
    await store.run(
      `INSERT INTO temp.rule_scores
       SELECT rid, score, explanation FROM read_csv([${pool.paths.map(sqlString).join(", ")}],
         delim = '\\t', quote = '', escape = '', header = false, auto_detect = false, new_line = '\\n',
         columns = {'rid': 'DOUBLE', 'score': 'DOUBLE', 'explanation': 'VARCHAR'})`,
    );
    const loaded = await store.one<{ n: bigint }>("SELECT count(*) AS n FROM temp.rule_scores");
    if (Number(loaded?.n ?? 0n) !== n)
      throw new RuleScoringError(`rule scoring workers wrote ${Number(loaded?.n)} scores, expected ${n}`);
  } catch (err) {
    await pool.terminate();
    throw err;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * FROM ... WHERE of the stored rows the features snapshot as of $t reads (storage/featureRows.ts), aliased
 * `features`; the rowid joins the scores back. days_since_last_activity is computed as of the snapshot
 * (daysSinceSql), as the view does. `onlyPairs` (a temp table of keys) restricts it by a SEMI JOIN: a
 * correlated EXISTS there was planned as a delim join that materialized every visible row's ~30 columns
 * before the semi join (+0.3 CPU-s of the rule step at 1M, a 1% day; bench/dailyDay.bench.ts).
 */
const SNAPSHOT_AS_OF = "make_timestamp($t::BIGINT)";

function snapshotSource(chainId: bigint, onlyPairs?: string): string {
  const pairs =
    onlyPairs === undefined
      ? ""
      : `SEMI JOIN temp.${onlyPairs} d ON d.student_key = features.student_key AND d.topic_id = features.topic_id`;
  return `${FEATURE_ROWS} features ${pairs} WHERE ${visibleAtSql(SNAPSHOT_AS_OF, "features", chainId)}`;
}

async function snapshotRows(store: DuckStore, asOfUs: bigint, source: string): Promise<number> {
  const countRow = await store.one<{ n: bigint }>(`SELECT count(*) AS n FROM ${source}`, {
    t: asOfUs,
  });
  return Number(countRow?.n ?? 0n);
}

async function historyCount(store: DuckStore): Promise<number> {
  const r = await store.one<{ n: bigint }>("SELECT count(*) AS n FROM student_mastery_history");
  return Number(r?.n ?? 0n);
}

/**
 * Reads the scorer's feature columns of one snapshot straight from DuckDB's vectors into
 * Float64Arrays (NULL -> NaN): no per-row objects. rid is the features rowid, used to join back.
 * Rows come `block` at a time: `onBlock(rid, lastUs, cols, rows, index)` is called for each full block and
 * the last one. With `shared` the arrays are SharedArrayBuffers and there are two sets: the next block is
 * read into one while onBlock's promise for the other is pending (it is awaited before that set is
 * refilled, and every one before returning). Without, one set, each onBlock awaited before the next rows
 * (block = n: one read, and the returned arrays hold every row). The connection must not run other
 * statements until this returns.
 */
async function readFeatureColumns(
  store: DuckStore,
  asOfUs: bigint,
  n: number,
  block: number,
  shared: boolean,
  source: string,
  onBlock: (
    rid: Float64Array,
    lastUs: Float64Array,
    cols: RuleFeatureColumns,
    rows: number,
    index: number,
  ) => Promise<void>,
): Promise<{ rid: Float64Array; lastUs: Float64Array; cols: RuleFeatureColumns }> {
  const names = ["rowid", "last_activity_us", ...RULE_FEATURE_COLUMNS];
  const expr = (c: string): string =>
    c === "rowid"
      ? "features.rowid::DOUBLE AS rid"
      : c === "last_activity_us"
        ? "epoch_us(last_activity_at)::DOUBLE AS last_activity_us"
        : c === "days_since_last_activity"
          ? `(${daysSinceSql(SNAPSHOT_AS_OF, "features")})::DOUBLE AS ${c}`
          : `${c}::DOUBLE AS ${c}`;
  const size = Math.max(0, Math.min(n, block));
  const sets = shared && size < n ? 2 : 1;
  const buffers = Array.from({ length: sets }, () => {
    // Shared memory lets worker threads read the columns without a copy.
    const arrays = names.map(() =>
      shared ? new Float64Array(new SharedArrayBuffer(size * 8)) : new Float64Array(size),
    );
    const cols = {} as RuleFeatureColumns;
    RULE_FEATURE_COLUMNS.forEach((c, k) => {
      cols[c] = arrays[k + 2] as Float64Array;
    });
    return { arrays, rid: arrays[0] as Float64Array, lastUs: arrays[1] as Float64Array, cols };
  });
  const pending: (Promise<void> | undefined)[] = new Array(sets).fill(undefined);
  // A failed block must not go unhandled while the next one is read; it is awaited (and thrown) below.
  const hand = (p: Promise<void>): Promise<void> => {
    p.catch(() => {});
    return p;
  };
  const result = await store.conn.stream(`SELECT ${names.map(expr).join(", ")} FROM ${source}`, {
    t: asOfUs,
  });
  let total = 0;
  let fill = 0;
  let index = 0;
  let cur = buffers[0]!;
  const emit = async (rows: number): Promise<void> => {
    const slot = index % sets;
    const p = hand(onBlock(cur.rid, cur.lastUs, cur.cols, rows, index++));
    if (sets === 1) await p;
    else pending[slot] = p;
    const next = index % sets;
    await pending[next];
    cur = buffers[next]!;
  };
  try {
    for (;;) {
      const chunk = await result.fetchChunk();
      if (!chunk || chunk.rowCount === 0) break;
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
      throw new RuleScoringError(`features changed while reading (${total} rows, expected ${n})`);
    if (fill > 0) await emit(fill);
  } finally {
    await Promise.allSettled(pending);
  }
  for (const p of pending) await p;
  const first = buffers[0]!;
  return { rid: first.rid, lastUs: first.lastUs, cols: first.cols };
}
