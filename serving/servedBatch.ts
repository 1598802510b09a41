import { closeSync, mkdtempSync, openSync, rmSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { Worker } from "node:worker_threads";
import type { DuckDBVector } from "@duckdb/node-api";
import type { FeatureWatermark } from "../features/incrementalFeatures.ts";
import { rawEventParts, studentRangeSql } from "../features/windows.ts";
import { LATENT_EVENT_TYPES, latentDays, latentEventOf } from "../models/latentState.ts";
import { LATENT_WIDE_KERNELS, type LatentWideKernel } from "../models/latentWideWasm.ts";
import type { ServedMastery } from "../models/servedMastery.ts";
import type { DuckStore } from "../storage/duckdb.ts";
import { sqlString } from "../storage/duckdb.ts";
import { poolHeapMb, watchPoolThread } from "./poolThread.ts";
import {
  type EvidenceCounts,
  ServedBatchError,
  type ServedGroup,
  ServedGroupScorer,
  ServedLineFile,
} from "./servedBatchGroup.ts";
import type { ServedWorkerReply, ServedWorkerSetup } from "./servedBatchWorker.ts";
import { type ScoreServedResult, scoreServed, writeServedScores } from "./servedScoring.ts";

/**
 * The served score in the daily batch (issue 17 item 1): every (student, topic) of the store scored as of `asOf`
 * with the served model's latent filter, the same rows `mastery score served` (serving/servedScoring.ts
 * scoreServed) stores, in bounded memory and on every core:
 * - the pairs (events before as-of, or a stored score) are numbered in (student_key, topic_id) order in
 *   temp.served_pairs;
 * - per student-key range (features/windows.ts studentRangeSql: the ranges the other steps use at the store's
 *   memory limit) the filter's events are read in (pair, ts, event_id) order chunk by chunk, as columns, after
 *   the first-ingested de-duplication (models/learnerState.ts firstIngestedCopies) and the time cut, ties in
 *   time put in the fold's own event_id order (models/learnerState.ts compareEvents);
 * - groups of whole students (about `groupEvents` events) go to a pool of scoring threads
 *   (serving/servedBatchWorker.ts), which append "pid, source, score, explanation" lines to their own files;
 *   JavaScript holds one range's pair numbers and the groups in flight, never the store's events;
 * - DuckDB reads the files back joined to the pairs, and the rows are written as scoreServed writes them.
 * A model that serves from its stack (not from the latent filter) is scored by scoreServed itself.
 */
export interface ScoreServedBatchOptions {
  asOf: Date;
  now?: Date;
  /** Scoring threads; default min(4, cores) from SERVED_WORKERS_FROM_PAIRS pairs on, else 0 (this thread). */
  workers?: number;
  /** Student-key ranges; default rawEventParts (the features and rule steps' ranges). */
  parts?: number;
  /** Events per group sent to a thread (whole students; default SERVED_GROUP_EVENTS). */
  groupEvents?: number;
  /**
   * The previous run's watermark (features/incrementalFeatures.ts FeatureWatermark: its as-of and
   * max(raw_events.ingested_at)): only the students with a row ingested after it, or with an event time in
   * [its as-of, this as-of) (a far-dated row ingested earlier), are scored, every pair of theirs (a student's offset
   * moves all of their topics). The others' stored rows stay: their scores move with time at read time by the
   * decay their explanation carries (GET /mastery, serving/masteryView.ts), which is what a full run computes for
   * them when the filter's as-of step is the deterministic decay (`asOfForgetting: "decay"`, the default). With
   * another as-of step, or null / undefined, every student is scored (`incremental` in the result says which).
   */
  since?: FeatureWatermark | null;
  /**
   * The latent filter's kernel for a pair's basis folds (wasm34): "wasm" (WebAssembly, the default) or "js" (the
   * reference); the same bits. Default: MASTERY_LATENT_KERNEL if set, else "wasm".
   */
  latentKernel?: LatentWideKernel;
  onProgress?: (pairsDone: number, pairsTotal: number) => void;
  onPhase?: (phase: string) => void;
}

export interface ScoreServedBatchResult extends ScoreServedResult {
  workers: number;
  parts: number;
  events: number;
  /** Whether only the students with rows ingested after `since` were scored; else why not (null: asked for all). */
  incremental: true | string | null;
}

export const SERVED_GROUP_EVENTS = 65_536;
/** Below this many pairs the threads' start (~0.5 s each from source) costs more than they save. */
export const SERVED_WORKERS_FROM_PAIRS = 20_000;
/** Default heap cap of each scoring thread in MB: a thread holds a few groups' events and lines. */
export const SERVED_WORKER_HEAP_MB = 512;

const TYPE_CODE = `CASE type ${LATENT_EVENT_TYPES.map((t, i) => `WHEN ${sqlString(t)} THEN ${i}`).join(" ")} ELSE -1 END`;

export async function scoreServedBatch(
  store: DuckStore,
  model: ServedMastery,
  modelVersion: string,
  opts: ScoreServedBatchOptions,
): Promise<ScoreServedBatchResult> {
  const asOf = opts.asOf;
  const asOfIso = asOf.toISOString();
  const lj = model.json.latent;
  if (model.json.servedFrom !== "latent" || lj === undefined) {
    opts.onPhase?.("served from the stack: scoreServed");
    const r = await scoreServed(store, model, modelVersion, opts);
    return {
      ...r,
      workers: 0,
      parts: 1,
      events: 0,
      incremental: opts.since == null ? null : "served from the stack",
    };
  }
  let incremental: true | string | null = null;
  if (opts.since != null) {
    const wm = opts.since.ingestedThroughUs;
    if (wm !== null && !/^\d+$/.test(wm))
      throw new ServedBatchError(
        `since.ingestedThroughUs must be microseconds as a decimal string (got "${wm}"): pass the previous run's watermark`,
      );
    if (!(opts.since.asOf.getTime() <= asOf.getTime()))
      throw new ServedBatchError(
        `since.asOf ${opts.since.asOf.toISOString()} is after this run's as-of ${asOf.toISOString()}: a daily run moves forward`,
      );
    incremental =
      lj.params.asOfForgetting === "decay"
        ? true
        : `the filter's as-of step is "${lj.params.asOfForgetting ?? "forget"}", not "decay"`;
  }
  opts.onPhase?.("pairs");
  // An incremental run's students: those with a row ingested after the watermark or an event time the previous
  // run's as-of did not reach.
  const students = incremental === true ? "served_students" : null;
  if (students !== null) {
    const wm = opts.since!.ingestedThroughUs;
    await store.run(
      `CREATE OR REPLACE TEMP TABLE served_students AS
       SELECT DISTINCT student_key FROM raw_events
       WHERE ${wm === null ? "true" : "ingested_at > make_timestamp($3::BIGINT)"}
          OR (ts >= $1::TIMESTAMP AND ts < $2::TIMESTAMP)`,
      wm === null ? [opts.since!.asOf.toISOString(), asOfIso] : [opts.since!.asOf.toISOString(), asOfIso, wm],
    );
  }
  const only = (rel: string) =>
    students === null ? rel : `(SELECT * FROM ${rel} SEMI JOIN ${students} USING (student_key))`;
  await store.run(
    `CREATE OR REPLACE TEMP TABLE served_pairs AS
     SELECT (row_number() OVER (ORDER BY student_key, topic_id) - 1)::DOUBLE AS pid, student_key, topic_id
     FROM (SELECT student_key, topic_id FROM ${only("raw_events")} WHERE ts < $1::TIMESTAMP
           UNION SELECT student_key, topic_id FROM ${only("student_mastery")})`,
    [asOfIso],
  );
  const total = Number((await store.one<{ n: bigint }>("SELECT count(*) AS n FROM served_pairs"))?.n ?? 0n);
  const topics = (
    await store.all<{ topic_id: string }>("SELECT DISTINCT topic_id FROM served_pairs ORDER BY topic_id")
  ).map((r) => r.topic_id);
  const topicIndex = new Map(topics.map((t, i) => [t, i]));
  const parts = opts.parts ?? (await rawEventParts(store));
  const groupEvents = opts.groupEvents ?? SERVED_GROUP_EVENTS;
  if (!(Number.isInteger(groupEvents) && groupEvents >= 1))
    throw new ServedBatchError(`groupEvents must be a whole number >= 1 (got ${groupEvents})`);
  const cores = availableParallelism();
  const workers = opts.workers ?? (total >= SERVED_WORKERS_FROM_PAIRS && cores >= 2 ? Math.min(4, cores) : 0);
  if (!(Number.isInteger(workers) && workers >= 0))
    throw new ServedBatchError(`workers must be a whole number >= 0 (got ${workers})`);
  // Beside the store (about 1.2 kB a pair), else in the OS temp directory for in-memory stores.
  const dir = mkdtempSync(
    join(store.path === ":memory:" ? tmpdir() : dirname(store.path), ".mastery-served-"),
  );
  const latentKernel = opts.latentKernel ?? latentKernelFromEnv(process.env.MASTERY_LATENT_KERNEL);
  const setup = { model: model.json, topics, asOfDays: latentDays(asOf.getTime() * 1000), latentKernel };
  const pool = workers > 0 ? ThreadPool.start(workers, setup, dir) : InlineScorer.start(setup, dir);
  const kinds: EvidenceCounts = {};
  let done = 0;
  let events = 0;
  try {
    const inFlight: Promise<void>[] = [];
    const send = async (g: ServedGroup): Promise<void> => {
      inFlight.push(
        pool.score(g).then((r) => {
          for (const [k, v] of Object.entries(r.kinds)) kinds[k] = (kinds[k] ?? 0) + v;
          done += r.pairs;
          opts.onProgress?.(done, total);
        }),
      );
      // Two groups a thread in flight: the reading runs ahead of the scoring, never far.
      while (inFlight.length > 2 * Math.max(1, workers)) await inFlight.shift();
    };
    let nextId = 0;
    for (let part = 0; part < parts; part++) {
      opts.onPhase?.(`range ${part + 1} of ${parts}`);
      const range = studentRangeSql(part, parts);
      const where = range === "" ? "" : `WHERE ${range}`;
      const pairs = await readRangePairs(store, where, topicIndex);
      const builder = new GroupBuilder(pairs, groupEvents, () => nextId++);
      for await (const chunk of store.chunks(
        `SELECT p.pid, e.ts_us, e.type_code, e.correct, e.attempts, e.correct_count, e.score_pct, e.event_id
         FROM (SELECT student_key, topic_id, event_id, ts, epoch_us(ts)::DOUBLE AS ts_us, ${TYPE_CODE}::TINYINT AS type_code,
                      CASE WHEN is_correct IS NULL THEN -1 WHEN is_correct THEN 1 ELSE 0 END::TINYINT AS correct,
                      coalesce(attempts, 0)::DOUBLE AS attempts, coalesce(correct_count, 0)::DOUBLE AS correct_count,
                      coalesce(score_pct, 'NaN'::DOUBLE) AS score_pct
               FROM ${only("raw_events")} ${where}
               QUALIFY row_number() OVER (PARTITION BY student_key, topic_id, event_id ORDER BY ingested_at, ts) = 1) e
         JOIN served_pairs p USING (student_key, topic_id)
         WHERE e.ts < $1::TIMESTAMP AND e.type_code >= 0
         ORDER BY p.pid, e.ts, e.event_id`,
        [asOfIso],
      )) {
        events += chunk.rowCount;
        for (const g of builder.addChunk(chunk)) await send(g);
      }
      for (const g of builder.finish()) await send(g);
    }
    await Promise.all(inFlight);
    const scored = await pool.close();
    if (scored !== total)
      throw new ServedBatchError(
        `the served step scored ${scored} pairs, expected ${total}: the store changed mid-run`,
      );
    opts.onPhase?.("write");
    await store.run(
      `CREATE OR REPLACE TEMP TABLE served_score AS
       SELECT p.student_key, p.topic_id, s.mastery_score, s.explanation, s.score_source
       FROM read_csv([${pool.paths.map(sqlString).join(", ")}],
              delim = '\\t', quote = '', escape = '', header = false, auto_detect = false, new_line = '\\n',
              columns = {'pid': 'DOUBLE', 'score_source': 'VARCHAR', 'mastery_score': 'DOUBLE', 'explanation': 'VARCHAR'}) s
       JOIN served_pairs p USING (pid)`,
    );
    await writeServedScores(
      store,
      modelVersion,
      asOf,
      opts.now ?? new Date(),
      incremental === true ? "incremental" : "full",
    );
  } catch (err) {
    await pool.terminate();
    throw err;
  } finally {
    rmSync(dir, { recursive: true, force: true });
    await store.run("DROP TABLE IF EXISTS served_pairs");
    await store.run("DROP TABLE IF EXISTS served_students");
  }
  return { scored: total, asOf: asOfIso, evidence: kinds, modelVersion, workers, parts, events, incremental };
}

/** One range's pairs in pid order: pid, a student number (changes with the student key) and topic index. */
interface RangePairs {
  n: number;
  pid: Float64Array;
  sid: Float64Array;
  ti: Int32Array;
}

async function readRangePairs(
  store: DuckStore,
  where: string,
  topicIndex: Map<string, number>,
): Promise<RangePairs> {
  let cap = 1024;
  let pid = new Float64Array(cap);
  let sid = new Float64Array(cap);
  let ti = new Int32Array(cap);
  let n = 0;
  let student = -1;
  let lastKey: string | null = null;
  for await (const chunk of store.chunks(
    `SELECT pid, student_key, topic_id FROM served_pairs ${where} ORDER BY pid`,
  )) {
    const p = chunk.getColumnVector(0) as DuckDBVector<number>;
    const s = chunk.getColumnVector(1) as DuckDBVector<string>;
    const t = chunk.getColumnVector(2) as DuckDBVector<string>;
    for (let i = 0; i < chunk.rowCount; i++) {
      if (n === cap) {
        cap *= 2;
        pid = grow(pid, cap);
        sid = grow(sid, cap);
        ti = grow(ti, cap);
      }
      const key = s.getItem(i)!;
      if (key !== lastKey) {
        student++;
        lastKey = key;
      }
      pid[n] = p.getItem(i)!;
      sid[n] = student;
      ti[n] = topicIndex.get(t.getItem(i)!) ?? -1;
      n++;
    }
  }
  return { n, pid, sid, ti };
}

function grow<T extends Float64Array | Int32Array | Int8Array>(a: T, cap: number): T {
  const b = new (a.constructor as new (n: number) => T)(cap);
  b.set(a);
  return b;
}

/**
 * Turns one range's event chunks (pid, ts_us, type_code, correct, attempts, correct_count, score_pct, event_id;
 * in pid, ts, event_id order) into groups of whole students with their pairs (those without events too).
 */
class GroupBuilder {
  private at = 0;
  private groupStart = 0;
  private evCap = 1024;
  private t = new Float64Array(this.evCap);
  private kind = new Int8Array(this.evCap);
  private nn = new Float64Array(this.evCap);
  private kk = new Float64Array(this.evCap);
  private evCount = 0;
  /** Event count at the start of each pair of the group (relative to the group). */
  private pairStart: number[] = [];
  /** Event ids of rows tied in time with a neighbour of the same pair (index in the group -> id). */
  private tied = new Map<number, string>();
  private prevPid = -1;
  private prevTs = Number.NaN;
  private prevIds: DuckDBVector<string> | null = null;
  private prevRow = -1;

  constructor(
    private readonly pairs: RangePairs,
    private readonly groupEvents: number,
    private readonly nextId: () => number,
  ) {}

  private push(t: number, kind: number, n: number, k: number): void {
    if (this.evCount === this.evCap) {
      this.evCap *= 2;
      this.t = grow(this.t, this.evCap);
      this.kind = grow(this.kind, this.evCap);
      this.nn = grow(this.nn, this.evCap);
      this.kk = grow(this.kk, this.evCap);
    }
    this.t[this.evCount] = t;
    this.kind[this.evCount] = kind;
    this.nn[this.evCount] = n;
    this.kk[this.evCount] = k;
    this.evCount++;
  }

  /** Opens pair `this.at` in the group: first ends the group at a student boundary when it is full. */
  private openPair(out: ServedGroup[]): void {
    this.sortTies();
    const { sid } = this.pairs;
    if (this.at > this.groupStart && this.evCount >= this.groupEvents && sid[this.at] !== sid[this.at - 1])
      out.push(this.take());
    this.pairStart.push(this.evCount);
    this.at++;
  }

  addChunk(chunk: { rowCount: number; getColumnVector(i: number): unknown }): ServedGroup[] {
    const out: ServedGroup[] = [];
    const pidV = chunk.getColumnVector(0) as DuckDBVector<number>;
    const tsV = chunk.getColumnVector(1) as DuckDBVector<number>;
    const typeV = chunk.getColumnVector(2) as DuckDBVector<number>;
    const corV = chunk.getColumnVector(3) as DuckDBVector<number>;
    const attV = chunk.getColumnVector(4) as DuckDBVector<number>;
    const ccV = chunk.getColumnVector(5) as DuckDBVector<number>;
    const spV = chunk.getColumnVector(6) as DuckDBVector<number>;
    const idV = chunk.getColumnVector(7) as DuckDBVector<string>;
    const { pid: pairPid, n: nPairs } = this.pairs;
    for (let i = 0; i < chunk.rowCount; i++) {
      const pid = pidV.getItem(i)!;
      if (pid !== this.prevPid) {
        // Pairs before this one (without events) and this one open in turn.
        while (this.at < nPairs && pairPid[this.at]! < pid) this.openPair(out);
        if (this.at >= nPairs || pairPid[this.at] !== pid)
          throw new ServedBatchError(
            `event row of pair ${pid} is outside its student-key range or out of order`,
          );
        this.openPair(out);
      }
      const ts = tsV.getItem(i)!;
      if (pid === this.prevPid && ts === this.prevTs) {
        const here = this.evCount;
        if (!this.tied.has(here - 1)) this.tied.set(here - 1, this.prevIds!.getItem(this.prevRow)!);
        this.tied.set(here, idV.getItem(i)!);
      }
      const sp = spV.getItem(i)!;
      const code = typeV.getItem(i)!;
      const c = corV.getItem(i)!;
      const e = latentEventOf({
        type: LATENT_EVENT_TYPES[code]!,
        ts,
        isCorrect: c < 0 ? null : c === 1,
        attempts: attV.getItem(i)!,
        correctCount: ccV.getItem(i)!,
        scorePct: Number.isNaN(sp) ? null : sp,
      });
      if (e === null)
        throw new ServedBatchError(`event type code ${code} is not one the latent filter reads`);
      this.push(e.t, e.kind, e.n, e.k);
      this.prevPid = pid;
      this.prevTs = ts;
      this.prevIds = idV;
      this.prevRow = i;
    }
    return out;
  }

  /** Puts each run of equal times of the last opened pair in compareEvents' event_id order. */
  private sortTies(): void {
    if (this.tied.size === 0) return;
    const idx = [...this.tied.keys()].sort((a, b) => a - b);
    let r = 0;
    while (r < idx.length) {
      let e = r + 1;
      while (e < idx.length && idx[e] === idx[e - 1]! + 1 && this.t[idx[e]!] === this.t[idx[r]!]) e++;
      const run = idx.slice(r, e);
      const order = run.map((j) => ({
        id: this.tied.get(j)!,
        kind: this.kind[j]!,
        n: this.nn[j]!,
        k: this.kk[j]!,
      }));
      order.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
      run.forEach((j, x) => {
        this.kind[j] = order[x]!.kind;
        this.nn[j] = order[x]!.n;
        this.kk[j] = order[x]!.k;
      });
      r = e;
    }
    this.tied.clear();
  }

  /** The group of pairs groupStart .. at - 1 with their events (called before pair `at` opens: it starts the next group). */
  private take(): ServedGroup {
    const from = this.groupStart;
    const to = this.at; // exclusive: pair `at` is not opened yet
    const evEnd = this.evCount;
    const g = this.build(from, to, evEnd);
    // The next group starts empty: nothing of the pair being opened has been pushed yet.
    this.evCount = 0;
    this.pairStart = [];
    this.groupStart = to;
    return g;
  }

  private build(from: number, to: number, evEnd: number): ServedGroup {
    const { pid, sid, ti } = this.pairs;
    const evStart = new Int32Array(to - from + 1);
    for (let q = 0; q < to - from; q++) evStart[q] = this.pairStart[q]!;
    evStart[to - from] = evEnd;
    return {
      id: this.nextId(),
      pairs: to - from,
      pid: pid.slice(from, to),
      sid: sid.slice(from, to),
      ti: ti.slice(from, to),
      evStart,
      t: this.t.slice(0, evEnd),
      kind: this.kind.slice(0, evEnd),
      n: this.nn.slice(0, evEnd),
      k: this.kk.slice(0, evEnd),
    };
  }

  /** The range's last group: its remaining pairs (those without events included). */
  finish(): ServedGroup[] {
    const out: ServedGroup[] = [];
    while (this.at < this.pairs.n) this.openPair(out);
    this.sortTies();
    if (this.at > this.groupStart) out.push(this.take());
    return out;
  }
}

interface GroupSink {
  readonly paths: readonly string[];
  score(g: ServedGroup): Promise<{ pairs: number; kinds: EvidenceCounts }>;
  /** Closes the files; resolves with the pairs written in all. */
  close(): Promise<number>;
  terminate(): Promise<void>;
}

/** Scores in the calling thread (small stores, `workers: 0`), into one file. */
class InlineScorer implements GroupSink {
  private written = 0;
  private readonly file: ServedLineFile;
  private constructor(
    private readonly scorer: ServedGroupScorer,
    private readonly fd: number,
    readonly paths: readonly string[],
  ) {
    this.file = new ServedLineFile(fd);
  }

  static start(setup: Omit<ServedWorkerSetup, "path">, dir: string): InlineScorer {
    const path = join(dir, "served-0.tsv");
    return new InlineScorer(new ServedGroupScorer(setup), openSync(path, "w"), [path]);
  }

  async score(g: ServedGroup): Promise<{ pairs: number; kinds: EvidenceCounts }> {
    const kinds: EvidenceCounts = {};
    this.scorer.score(g, this.file, kinds);
    this.file.flush();
    this.written += g.pairs;
    return { pairs: g.pairs, kinds };
  }

  async close(): Promise<number> {
    closeSync(this.fd);
    return this.written;
  }

  async terminate(): Promise<void> {
    try {
      closeSync(this.fd);
    } catch {
      // already closed
    }
  }
}

/**
 * Persistent scoring threads (serving/servedBatchWorker.ts), each with its own output file; a group goes to
 * the thread with the fewest pairs in flight. Each thread's old generation is capped (SERVED_WORKER_HEAP, MB),
 * so a runaway thread fails with an error instead of growing the process past the batch's memory.
 */
class ThreadPool implements GroupSink {
  private readonly pending = new Map<
    number,
    {
      resolve: (r: { pairs: number; kinds: EvidenceCounts }) => void;
      reject: (e: Error) => void;
      w: number;
      pairs: number;
    }
  >();
  private readonly load: number[];
  private failure: Error | null = null;
  private readonly closed: Promise<number>[] = [];

  private constructor(
    private readonly workers: Worker[],
    readonly paths: readonly string[],
  ) {
    this.load = workers.map(() => 0);
  }

  static start(size: number, setup: Omit<ServedWorkerSetup, "path">, dir: string): ThreadPool {
    const heapMb = heapFromEnv();
    const entry = import.meta.url.endsWith(".ts")
      ? new URL("./servedBatchWorkerEntry.mjs", import.meta.url)
      : new URL("./servedBatchWorker.js", import.meta.url);
    const paths: string[] = [];
    const workers: Worker[] = [];
    for (let w = 0; w < size; w++) {
      const path = join(dir, `served-${w}.tsv`);
      paths.push(path);
      workers.push(
        new Worker(entry, {
          workerData: { ...setup, path } satisfies ServedWorkerSetup,
          resourceLimits: { maxOldGenerationSizeMb: heapMb },
        }),
      );
    }
    const pool = new ThreadPool(workers, paths);
    for (const [w, worker] of workers.entries()) pool.watch(worker, w, heapMb);
    return pool;
  }

  private watch(worker: Worker, w: number, heapMb: number): void {
    this.closed.push(
      watchPoolThread<ServedWorkerReply>(worker, {
        name: `served scoring thread ${w}`,
        heapMb,
        heapEnv: "SERVED_WORKER_HEAP",
        makeError: (message) => new ServedBatchError(message),
        closedCount: (m) => ("closed" in m ? m.pairs : undefined),
        onMessage: (m) => {
          if ("closed" in m) return;
          const p = this.pending.get(m.id);
          if (p === undefined) return;
          this.pending.delete(m.id);
          this.load[p.w]! -= p.pairs;
          p.resolve({ pairs: m.pairs, kinds: m.kinds });
        },
        onFailure: (e) => {
          this.failure ??= e;
          for (const p of this.pending.values()) p.reject(e);
          this.pending.clear();
        },
      }),
    );
  }

  score(g: ServedGroup): Promise<{ pairs: number; kinds: EvidenceCounts }> {
    if (this.failure) return Promise.reject(this.failure);
    let w = 0;
    for (let i = 1; i < this.workers.length; i++) if (this.load[i]! < this.load[w]!) w = i;
    this.load[w]! += g.pairs;
    return new Promise((resolve, reject) => {
      this.pending.set(g.id, { resolve, reject, w, pairs: g.pairs });
      const buffers = [g.pid, g.sid, g.ti, g.evStart, g.t, g.kind, g.n, g.k].map(
        (x) => x.buffer as ArrayBuffer,
      );
      this.workers[w]!.postMessage(g, buffers);
    });
  }

  async close(): Promise<number> {
    for (const worker of this.workers) worker.postMessage({ close: true });
    const pairs = await Promise.all(this.closed);
    return pairs.reduce((a, b) => a + b, 0);
  }

  async terminate(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}

function heapFromEnv(): number {
  return poolHeapMb("SERVED_WORKER_HEAP", SERVED_WORKER_HEAP_MB, 32, (m) => new ServedBatchError(m));
}

/** MASTERY_LATENT_KERNEL's kernel ("wasm" when unset or empty); any other value is refused with the choices. */
export function latentKernelFromEnv(value: string | undefined): LatentWideKernel {
  if (value === undefined || value === "") return "wasm";
  const kind = LATENT_WIDE_KERNELS.find((k) => k === value);
  if (kind === undefined)
    throw new ServedBatchError(
      `MASTERY_LATENT_KERNEL must be one of ${LATENT_WIDE_KERNELS.join(", ")} (got "${value}"): unset it for the default, wasm`,
    );
  return kind;
}
