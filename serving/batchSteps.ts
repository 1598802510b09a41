/**
 * The daily batch's scoring steps, side by side where they do not depend on each other (issue 17: on two
 * cores a step that runs JavaScript on one thread, such as the BKT/Elo fold, leaves the other core to the
 * rest). What each step reads and writes (docs/benchmarks.md "Overlapping the batch's steps"):
 *
 *   features      reads raw_events (and the previous snapshot)   writes features, feature_snapshots
 *   score rules   reads raw_events, its own rule rows             writes student_mastery (rule_based rows, a
 *                                                                 full rerun rewrites the base table),
 *                                                                 student_mastery_history, the rollup views
 *   score bkt-elo reads raw_events, learner_state, its own        writes learner_state, student_mastery (bkt /
 *                 bkt/elo rows, bkt_elo_watermark                 elo rows), student_mastery_history,
 *                                                                 bkt_elo_watermark
 *
 * No step reads what another writes, so each may run on a session of the store (a connection of its own:
 * storage/duckdb.ts session()) beside the others. Two steps write the same tables: the rule step's full rerun
 * swaps in a new student_mastery base, which must not race the BKT/Elo step's updates of the old one. So the
 * BKT/Elo step writes only after the rule step has committed (scoreBktElo's beforeWrite), in the same order as
 * the sequential batch; each step's rows are then what the sequential batch stores
 * (test/serving/batchSteps.int.test.ts).
 *
 * Three schedules. "sequence": one step after another. "steps" (overlap true): the three start together
 * (overlap18: no gain, the steps took turns on the two cores). "writes": each step's one-thread write phase runs
 * beside another step's work (docs/benchmarks.md "The 10M batch by CPU, round 3 (rule25)"): the rule step runs
 * first alone; when its scores are computed and its writes begin (on one DuckDB thread, database-wide), the
 * BKT/Elo step starts its reads and fold beside them; when the fold is done, the features step starts beside
 * what is left of the rule writes and the BKT/Elo writes (one thread again). At most two steps run at once, and
 * the threads setting is changed by one step at a time (the rule writes' switch ends with their commit, before
 * the BKT/Elo writes begin theirs), so it always ends where it started.
 */
import type { DuckStore } from "../storage/duckdb.ts";

/** The scoring steps, in the order a sequential batch runs them. */
export const BATCH_STEPS = ["features", "score rules", "score bkt-elo"] as const;
export type BatchStep = (typeof BATCH_STEPS)[number];

/**
 * Above this many raw events the steps run one after another. Overlapping adds the steps' memory outside
 * DuckDB's buffer pool (the pool itself is one limit for the whole instance, whatever the connections): at
 * 100M events the sequential batch peaked at 7,759 MiB with a 5 GB DuckDB limit (rules 7,751, BKT/Elo 6,509 MB),
 * so the rule step's ~2.7 GB and the BKT/Elo step's ~1.5 GB beside DuckDB's limit would pass the 8 GB target
 * together. At 10M (~4.9 GB peak in sequence) the sum fits with room; 30M is three times that.
 */
export const OVERLAP_MAX_EVENTS = 30_000_000;

/**
 * false: in sequence; true: the three steps start together; "writes": the one-thread write phases beside the
 * next step's work (see the module comment); "auto": "writes" while raw_events holds at most OVERLAP_MAX_EVENTS
 * rows, else in sequence.
 */
export type OverlapSetting = boolean | "writes" | "auto";

/** How runBatchSteps runs the steps (the module comment). */
export type BatchSchedule = "sequence" | "steps" | "writes";

/** The schedule for `setting`; "auto" reads raw_events' row count from the table's metadata (no scan). */
export async function batchSchedule(store: DuckStore, setting: OverlapSetting): Promise<BatchSchedule> {
  if (setting === false) return "sequence";
  if (setting === true) return "steps";
  if (setting === "writes") return "writes";
  const r = await store.one<{ n: bigint | number | null }>(
    "SELECT estimated_size AS n FROM duckdb_tables() WHERE table_name = 'raw_events' AND NOT temporary LIMIT 1",
  );
  return Number(r?.n ?? 0) <= OVERLAP_MAX_EVENTS ? "writes" : "sequence";
}

/** A step's own span: when it started and ended, in milliseconds since the steps started. */
export interface StepSpan {
  startMs: number;
  endMs: number;
}

export interface BatchStepsOptions<F, R, B> {
  /** The features snapshot, when this batch builds one. */
  features?: (store: DuckStore) => Promise<F>;
  /**
   * The rule step; it calls `writesBegin` once its scores are computed, before it writes (scoreRules' onWrites):
   * the "writes" schedule starts the BKT/Elo step then. A step that never calls it is waited for whole.
   */
  rules: (store: DuckStore, writesBegin: () => void) => Promise<R>;
  /** BKT/Elo state and scores; `beforeWrite` goes to scoreBktElo (it resolves once the rule step committed). */
  bktElo?: (store: DuckStore, beforeWrite: () => Promise<void>) => Promise<B>;
  /**
   * The schedule (OverlapSetting): one after another (false, the default), all together (true), the write phases
   * beside the next step's work ("writes"), or "writes" by the store's size ("auto"). All together lost at 10M
   * (docs/benchmarks.md "Overlapping the batch's steps (overlap18)"); the pipeline uses "auto" (rule25).
   */
  overlap?: OverlapSetting;
  /** Called when a step ends, with its own span (steps that overlap report overlapping spans). */
  onStep?: (step: BatchStep, span: StepSpan) => void;
}

export interface BatchStepsResult<F, R, B> {
  features?: F;
  rules: R;
  bktElo?: B;
  overlapped: boolean;
  /** The schedule the steps ran on. */
  schedule: BatchSchedule;
  spans: Partial<Record<BatchStep, StepSpan>>;
  /** Wall time of all the steps together. */
  millis: number;
}

/**
 * Runs the steps, overlapped or in sequence (see the module comment). When a step fails the others still
 * run to their end (a step's transaction either commits or rolls back whole; the BKT/Elo step does not
 * write when the rule step failed, as in sequence), then the first failure is thrown.
 */
export async function runBatchSteps<F, R, B>(
  store: DuckStore,
  opts: BatchStepsOptions<F, R, B>,
): Promise<BatchStepsResult<F, R, B>> {
  const t0 = performance.now();
  const spans: Partial<Record<BatchStep, StepSpan>> = {};
  const timed = async <T>(step: BatchStep, fn: () => Promise<T>): Promise<T> => {
    const startMs = performance.now() - t0;
    const out = await fn();
    const span = { startMs, endMs: performance.now() - t0 };
    spans[step] = span;
    opts.onStep?.(step, span);
    return out;
  };
  const { features, rules, bktElo } = opts;
  const schedule = await batchSchedule(store, opts.overlap ?? false);
  if (schedule === "sequence") {
    const f = features === undefined ? undefined : await timed("features", () => features(store));
    const r = await timed("score rules", () => rules(store, () => {}));
    const b =
      bktElo === undefined ? undefined : await timed("score bkt-elo", () => bktElo(store, async () => {}));
    return result(f, r, b);
  }
  const sessions: DuckStore[] = [];
  const session = async (): Promise<DuckStore> => {
    const s = await store.session();
    sessions.push(s);
    return s;
  };
  try {
    // Resolved when the rule step's writes begin (or it ends without saying so), and when the BKT/Elo step's fold
    // is done (or it ends): the "writes" schedule starts the BKT/Elo step, then the features step, there.
    const rulesWriting = signal();
    const bktFolded = signal();
    const rulesDone = timed("score rules", async () => rules(await session(), rulesWriting.fire));
    // The BKT/Elo step waits for the rule step's commit before it writes; a failed rule step stops it there.
    const gate = rulesDone.then(() => undefined);
    gate.catch(() => undefined);
    const staggered = schedule === "writes";
    const after = (start: Promise<void>, end: Promise<unknown>): Promise<void> =>
      staggered ? Promise.race([start, end.then(noop, noop)]) : Promise.resolve();
    const bktDone =
      bktElo === undefined
        ? Promise.resolve(undefined)
        : after(rulesWriting.promise, rulesDone).then(() =>
            timed("score bkt-elo", async () =>
              bktElo(await session(), async () => {
                bktFolded.fire();
                await gate;
              }),
            ),
          );
    // Without a BKT/Elo step the features step follows the rule step's writes' start.
    const featuresStart =
      bktElo === undefined ? after(rulesWriting.promise, rulesDone) : after(bktFolded.promise, bktDone);
    const settled = await Promise.allSettled([
      features === undefined
        ? Promise.resolve(undefined)
        : featuresStart.then(() => timed("features", async () => features(await session()))),
      rulesDone,
      bktDone,
    ]);
    const failed = settled.find((s): s is PromiseRejectedResult => s.status === "rejected");
    if (failed !== undefined) throw failed.reason;
    const [f, r, b] = settled as [
      PromiseFulfilledResult<F | undefined>,
      PromiseFulfilledResult<R>,
      PromiseFulfilledResult<B | undefined>,
    ];
    return result(f.value, r.value, b.value);
  } finally {
    for (const s of sessions) s.close();
    await Promise.all(sessions.map((s) => s.whenClosed()));
  }

  function result(f: F | undefined, r: R, b: B | undefined): BatchStepsResult<F, R, B> {
    return {
      ...(f !== undefined ? { features: f } : {}),
      rules: r,
      ...(b !== undefined ? { bktElo: b } : {}),
      overlapped: schedule !== "sequence",
      schedule,
      spans,
      millis: performance.now() - t0,
    };
  }
}

const noop = (): void => {};

/** A one-shot signal: `fire` resolves `promise` (later calls do nothing). */
function signal(): { promise: Promise<void>; fire: () => void } {
  let fire = noop;
  const promise = new Promise<void>((resolve) => {
    fire = () => resolve();
  });
  return { promise, fire };
}
