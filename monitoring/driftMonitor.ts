/**
 * The drift monitor: reads a reference and a current window of windowed features (features/windows.ts)
 * and served scores from the store, compares them per feature over all rows and within each topic,
 * school and grade, adjusts the p-values over the whole check and applies the drift rule
 * (monitoring/rule.ts). The statistics themselves are in models/drift.ts.
 *
 * Rows: within a window, only the LATEST snapshot of each (student_key, topic_id) is used, so one
 * pair observed on many as_of dates does not count many times (repeated snapshots of a pair are
 * strongly correlated and would make the tests' p-values too small).
 */
import { buildFeatures } from "../features/windows.ts";
import { type CategoricalDrift, categoricalDrift, type NumericDrift, numericDrift } from "../models/drift.ts";
import type { DuckStore } from "../storage/duckdb.ts";
import { MONITORING_DDL } from "../storage/schema.ts";
import type { CategoricalName, DriftConfig, SegmentDimension } from "./config.ts";
import { applyDriftRule, type Comparison, type DriftDecision } from "./rule.ts";

/** A half-open window [from, to) of feature snapshot times (as_of). */
export interface TimeWindow {
  from: Date;
  to: Date;
}

export type ReferenceSource =
  | { kind: "window"; window: TimeWindow /** e.g. "champion mastery-elo@3 training window" */; label: string }
  | { kind: "snapshot"; id: string };

export class DriftMonitorError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = "DriftMonitorError";
  }
}

/** Rows of one side, columnar: each feature as Float64Array with NaN for NULL. */
export interface FeatureFrame {
  n: number;
  columns: Map<string, Float64Array>;
  topic: string[];
  school: string[];
  grade: string[];
  /** score_source -> served scores (latest per student, topic). */
  scores: Map<string, Float64Array>;
  /** Events in the window per "type:source" (raw_events); empty for stored snapshots. */
  eventSources: Map<string, number>;
}

export interface SideSummary {
  label: string;
  from: string | null;
  to: string | null;
  rows: number;
  scoreRows: number;
}

export interface DriftCheck {
  checkedAt: string;
  reference: SideSummary;
  current: SideSummary;
  comparisons: Comparison[];
  /** Histograms over all rows for the report: numeric (reference-quantile bins) and categorical. */
  global: Record<string, NumericDrift | CategoricalDrift>;
  decision: DriftDecision;
  /**
   * Set when the reference was built from raw_events (asOf; no snapshot was in its window) or when
   * features were left out because their look-back exceeds the history before the reference.
   */
  builtReference?: { asOf: string | null; historyDays: number; skippedFeatures: string[] };
}

export interface DriftCheckOptions {
  config: DriftConfig;
  current: TimeWindow;
  reference: ReferenceSource;
  /** Features table (default "features"). */
  table?: string;
  /** Time stamped on the result and in drift_checks (default: current.to). */
  now?: Date;
  /** Append the verdict to drift_checks (default true). */
  record?: boolean;
  /**
   * When the reference window holds no feature snapshot (a fresh install: one snapshot, at the end),
   * build one from raw_events as of the reference window's end (point in time) and compare the
   * features whose look-back fits in the history before it (default true).
   */
  buildReference?: boolean;
}

const IDENT = /^[a-z_][a-z0-9_]*$/;
const SEGMENT_COLUMN: Record<SegmentDimension, "topic" | "school" | "grade"> = {
  topic: "topic",
  school: "school",
  grade: "grade",
};
const NONE = "(none)";

/** 'YYYY-MM-DD HH:MM:SS.sss' (UTC wall clock), what a TIMESTAMP cast reads. */
export function sqlTimestamp(d: Date): string {
  return d.toISOString().replace("T", " ").replace("Z", "");
}

function num(v: unknown): number {
  if (v === null || v === undefined) return Number.NaN;
  return typeof v === "bigint" ? Number(v) : Number(v);
}

async function tableColumns(store: DuckStore, table: string): Promise<Set<string>> {
  const rows = await store.all<{ column_name: string }>(
    "SELECT column_name FROM information_schema.columns WHERE table_name = $t",
    { t: table },
  );
  return new Set(rows.map((r) => r.column_name));
}

async function checkFeatures(store: DuckStore, table: string, features: readonly string[]): Promise<void> {
  if (!IDENT.test(table)) throw new DriftMonitorError("TABLE", `table name "${table}" must match ${IDENT}`);
  const cols = await tableColumns(store, table);
  if (cols.size === 0)
    throw new DriftMonitorError(
      "NO_FEATURES",
      `table ${table} does not exist; build features first (\`mastery features build --as-of ...\`)`,
    );
  const missing = features.filter((f) => !cols.has(f));
  if (missing.length)
    throw new DriftMonitorError(
      "UNKNOWN_FEATURE",
      `features not in table ${table}: ${missing.join(", ")}; fix the features list in config/drift.yaml`,
    );
}

const COHORT_CTE = `cohort AS (
  SELECT student_key,
         arg_max(school_id, ts) FILTER (WHERE school_id IS NOT NULL) AS school_id,
         arg_max(grade, ts) FILTER (WHERE grade IS NOT NULL) AS grade
  FROM raw_events GROUP BY student_key)`;

/**
 * Rows of one window. activeDays > 0: the rows of the window's NEWEST snapshot whose pair had
 * activity in the `activeDays` before it (the active population at the window's end; taking each
 * pair's latest snapshot instead would over-represent pairs that went quiet early in a long
 * window). activeDays = 0: the latest snapshot of every pair in the window.
 */
function windowRowsSql(table: string, features: readonly string[], activeDays = 0): string {
  const inWindow = "as_of >= CAST($from AS TIMESTAMP) AND as_of < CAST($to AS TIMESTAMP)";
  const latest =
    activeDays > 0
      ? `SELECT * FROM ${table} WHERE as_of = (SELECT max(as_of) FROM ${table} WHERE ${inWindow})
    AND last_activity_at >= as_of - to_microseconds(CAST(${Math.round(activeDays * 86_400_000_000)} AS BIGINT))`
      : `SELECT * FROM ${table} WHERE ${inWindow}
    QUALIFY row_number() OVER (PARTITION BY student_key, topic_id ORDER BY as_of DESC) = 1`;
  return `WITH ${COHORT_CTE},
  latest AS (
    ${latest})
  SELECT l.topic_id, c.school_id, CAST(c.grade AS VARCHAR) AS grade${features.map((f) => `, CAST(l.${f} AS DOUBLE) AS ${f}`).join("")}
  FROM latest l LEFT JOIN cohort c USING (student_key)`;
}

const SCORES_SQL = `SELECT score_source, mastery_score FROM student_mastery_history
  WHERE as_of >= CAST($from AS TIMESTAMP) AND as_of < CAST($to AS TIMESTAMP)
  QUALIFY row_number() OVER (PARTITION BY student_key, topic_id, score_source ORDER BY as_of DESC, recorded_at DESC) = 1`;

function toFrame(rows: Record<string, unknown>[], features: readonly string[]): FeatureFrame {
  const n = rows.length;
  const columns = new Map<string, Float64Array>();
  for (const f of features) columns.set(f, new Float64Array(n));
  const topic = new Array<string>(n);
  const school = new Array<string>(n);
  const grade = new Array<string>(n);
  for (let i = 0; i < n; i++) {
    const r = rows[i]!;
    topic[i] = String(r.topic_id);
    school[i] = r.school_id === null || r.school_id === undefined ? NONE : String(r.school_id);
    grade[i] = r.grade === null || r.grade === undefined ? NONE : String(r.grade);
    for (const f of features) columns.get(f)![i] = num(r[f]);
  }
  return { n, columns, topic, school, grade, scores: new Map(), eventSources: new Map() };
}

function scoresOf(rows: Record<string, unknown>[]): Map<string, Float64Array> {
  const lists = new Map<string, number[]>();
  for (const r of rows) {
    const s = String(r.score_source);
    let l = lists.get(s);
    if (l === undefined) {
      l = [];
      lists.set(s, l);
    }
    const v = num(r.mastery_score);
    if (Number.isFinite(v)) l.push(v);
  }
  return new Map([...lists].map(([k, v]) => [k, Float64Array.from(v)]));
}

const EVENT_SOURCES_SQL = `SELECT type || ':' || coalesce(source, '(none)') AS k, count(*) AS n FROM raw_events
  WHERE ts >= CAST($from AS TIMESTAMP) AND ts < CAST($to AS TIMESTAMP) GROUP BY 1`;

/**
 * Loads the latest row per (student, topic) with as_of in the window (only pairs active in the
 * `activeDays` before that as_of when > 0), with cohort, the served scores and the event-source mix.
 */
export async function loadWindow(
  store: DuckStore,
  window: TimeWindow,
  features: readonly string[],
  table = "features",
  activeDays = 0,
): Promise<FeatureFrame> {
  await checkFeatures(store, table, features);
  const params = { from: sqlTimestamp(window.from), to: sqlTimestamp(window.to) };
  const frame = toFrame(await store.all(windowRowsSql(table, features, activeDays), params), features);
  frame.scores = scoresOf(await store.all(SCORES_SQL, params));
  frame.eventSources = new Map(
    (await store.all<{ k: string; n: bigint | number }>(EVENT_SOURCES_SQL, params)).map((r) => [
      r.k,
      num(r.n),
    ]),
  );
  return frame;
}

/**
 * Stores the rows of `window` as reference snapshot `id` (replacing a snapshot of that id):
 * every feature column plus topic, school and grade, and the served scores.
 */
export async function saveReferenceSnapshot(
  store: DuckStore,
  id: string,
  window: TimeWindow,
  table = "features",
  activeDays = 0,
): Promise<{ rows: number; scoreRows: number }> {
  const cols = [...(await tableColumns(store, table))].filter(
    (c) => !["student_key", "topic_id", "as_of", "last_activity_at"].includes(c),
  );
  await checkFeatures(store, table, cols);
  const select = windowRowsSql(table, cols, activeDays);
  const params = { from: sqlTimestamp(window.from), to: sqlTimestamp(window.to) };
  await store.run(
    `CREATE TABLE IF NOT EXISTS drift_reference AS SELECT ''::VARCHAR AS snapshot_id, * FROM (${select}) WHERE false`,
    params,
  );
  await store.run(
    "CREATE TABLE IF NOT EXISTS drift_reference_scores (snapshot_id VARCHAR NOT NULL, score_source VARCHAR NOT NULL, mastery_score DOUBLE NOT NULL)",
  );
  await store.run(
    "CREATE TABLE IF NOT EXISTS drift_reference_sources (snapshot_id VARCHAR NOT NULL, k VARCHAR NOT NULL, n BIGINT NOT NULL)",
  );
  await store.run(
    "CREATE TABLE IF NOT EXISTS drift_snapshots (snapshot_id VARCHAR PRIMARY KEY, window_from TIMESTAMP NOT NULL, window_to TIMESTAMP NOT NULL, rows BIGINT NOT NULL)",
  );
  return store.transaction(async () => {
    for (const t of [
      "drift_reference",
      "drift_reference_scores",
      "drift_reference_sources",
      "drift_snapshots",
    ])
      await store.run(`DELETE FROM ${t} WHERE snapshot_id = $id`, { id });
    await store.run(`INSERT INTO drift_reference BY NAME SELECT $id AS snapshot_id, * FROM (${select})`, {
      ...params,
      id,
    });
    await store.run(
      `INSERT INTO drift_reference_scores SELECT $id, score_source, mastery_score FROM (${SCORES_SQL})`,
      { ...params, id },
    );
    await store.run(`INSERT INTO drift_reference_sources SELECT $id, k, n FROM (${EVENT_SOURCES_SQL})`, {
      ...params,
      id,
    });
    const rows = num(
      (await store.one("SELECT count(*) AS n FROM drift_reference WHERE snapshot_id = $id", { id }))?.n,
    );
    const scoreRows = num(
      (await store.one("SELECT count(*) AS n FROM drift_reference_scores WHERE snapshot_id = $id", { id }))
        ?.n,
    );
    await store.run(
      "INSERT INTO drift_snapshots VALUES ($id, CAST($from AS TIMESTAMP), CAST($to AS TIMESTAMP), $rows)",
      {
        ...params,
        id,
        rows,
      },
    );
    return { rows, scoreRows };
  });
}

async function loadSnapshot(
  store: DuckStore,
  id: string,
  features: readonly string[],
): Promise<{ frame: FeatureFrame; from: string; to: string }> {
  const names = new Set(await store.tableNames());
  const meta = names.has("drift_snapshots")
    ? await store.one<{ window_from: Date; window_to: Date }>(
        "SELECT window_from, window_to FROM drift_snapshots WHERE snapshot_id = $id",
        { id },
      )
    : undefined;
  if (meta === undefined)
    throw new DriftMonitorError(
      "NO_SNAPSHOT",
      `reference snapshot "${id}" not found; create it with \`mastery drift snapshot --id ${id} --from ... --to ...\``,
    );
  await checkFeatures(store, "drift_reference", features);
  const rows = await store.all(
    `SELECT topic_id, school_id, grade${features.map((f) => `, CAST(${f} AS DOUBLE) AS ${f}`).join("")}
     FROM drift_reference WHERE snapshot_id = $id`,
    { id },
  );
  const frame = toFrame(rows, features);
  frame.scores = scoresOf(
    await store.all(
      "SELECT score_source, mastery_score FROM drift_reference_scores WHERE snapshot_id = $id",
      {
        id,
      },
    ),
  );
  if (names.has("drift_reference_sources"))
    frame.eventSources = new Map(
      (
        await store.all<{ k: string; n: bigint | number }>(
          "SELECT k, n FROM drift_reference_sources WHERE snapshot_id = $id",
          { id },
        )
      ).map((r) => [r.k, num(r.n)]),
    );
  return { frame, from: meta.window_from.toISOString(), to: meta.window_to.toISOString() };
}

/**
 * Default windows: current = the last `currentDays` of snapshots ending 1 s after the newest as_of;
 * reference = the `referenceDays` before it.
 */
export async function defaultWindows(
  store: DuckStore,
  cfg: DriftConfig,
  table = "features",
): Promise<{ current: TimeWindow; reference: TimeWindow }> {
  if (!IDENT.test(table)) throw new DriftMonitorError("TABLE", `table name "${table}" must match ${IDENT}`);
  const r = await store.one<{ t: Date | null }>(`SELECT max(as_of) AS t FROM ${table}`);
  if (!r?.t)
    throw new DriftMonitorError(
      "NO_FEATURES",
      `table ${table} is empty; build feature snapshots first (\`mastery features build --as-of ...\`)`,
    );
  const to = new Date(r.t.getTime() + 1000);
  const day = 86_400_000;
  const cFrom = new Date(to.getTime() - cfg.windows.currentDays * day);
  return {
    current: { from: cFrom, to },
    reference: { from: new Date(cFrom.getTime() - cfg.windows.referenceDays * day), to: cFrom },
  };
}

function finite(values: Float64Array, idx: readonly number[] | null): Float64Array {
  const out: number[] = [];
  if (idx === null) {
    for (let i = 0; i < values.length; i++) if (!Number.isNaN(values[i]!)) out.push(values[i]!);
  } else {
    for (const i of idx) if (!Number.isNaN(values[i]!)) out.push(values[i]!);
  }
  return Float64Array.from(out);
}

/** PSI expected from sampling alone with k bins (see monitoring/rule.ts). */
function psiNoise(k: number, n: number, m: number): number {
  return (k - 1) * (1 / n + 1 / m);
}

function insufficient(
  feature: string,
  kind: Comparison["kind"],
  dimension: Comparison["dimension"],
  segment: string,
  nReference: number,
  nCurrent: number,
): Comparison {
  return {
    feature,
    kind,
    dimension,
    segment,
    nReference,
    nCurrent,
    psi: Number.NaN,
    psiNoise: Number.NaN,
    js: Number.NaN,
    statistic: Number.NaN,
    test: "none",
    pValue: Number.NaN,
    pAdjusted: Number.NaN,
    status: "insufficient",
  };
}

function numericComparison(
  feature: string,
  kind: "numeric" | "score",
  dimension: Comparison["dimension"],
  segment: string,
  ref: Float64Array,
  cur: Float64Array,
  cfg: DriftConfig,
): { c: Comparison; d?: NumericDrift } {
  if (ref.length < cfg.test.minRows || cur.length < cfg.test.minRows)
    return { c: insufficient(feature, kind, dimension, segment, ref.length, cur.length) };
  const d = numericDrift(ref, cur, { bins: cfg.psi.bins, thresholds: cfg.psi });
  return {
    c: {
      feature,
      kind,
      dimension,
      segment,
      nReference: d.nReference,
      nCurrent: d.nCurrent,
      psi: d.psi,
      psiNoise: psiNoise(d.edges.length + 1, d.nReference, d.nCurrent),
      js: d.js,
      statistic: d.ks.statistic,
      test: "ks",
      pValue: d.ks.pValue,
      wassersteinScaled: d.wassersteinScaled,
      meanReference: d.meanReference,
      meanCurrent: d.meanCurrent,
      pAdjusted: Number.NaN,
      status: "ok",
    },
    d,
  };
}

function countsOf(values: readonly string[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const v of values) m.set(v, (m.get(v) ?? 0) + 1);
  return m;
}

function groupIndex(values: readonly string[]): Map<string, number[]> {
  const m = new Map<string, number[]>();
  values.forEach((v, i) => {
    let l = m.get(v);
    if (l === undefined) {
      l = [];
      m.set(v, l);
    }
    l.push(i);
  });
  return m;
}

const CATEGORICAL_SIDE: Record<Exclude<CategoricalName, "event_source">, "topic" | "school" | "grade"> = {
  topic_id: "topic",
  school_id: "school",
  grade: "grade",
};

function categoricalComparison(
  name: string,
  refCounts: Map<string, number>,
  curCounts: Map<string, number>,
  cfg: DriftConfig,
): { c: Comparison; d?: CategoricalDrift } {
  const total = (m: Map<string, number>) => [...m.values()].reduce((a, b) => a + b, 0);
  const nr = total(refCounts);
  const nc = total(curCounts);
  if (nr < cfg.test.minRows || nc < cfg.test.minRows)
    return { c: insufficient(name, "categorical", "all", "all", nr, nc) };
  const d = categoricalDrift(refCounts, curCounts, cfg.psi);
  const newCategories = d.categories.filter((k) => !refCounts.has(k) && (curCounts.get(k) ?? 0) > 0);
  return {
    c: {
      feature: name,
      kind: "categorical",
      dimension: "all",
      segment: "all",
      nReference: d.nReference,
      nCurrent: d.nCurrent,
      psi: d.psi,
      psiNoise: psiNoise(d.categories.length, d.nReference, d.nCurrent),
      js: d.js,
      statistic: d.chiSquare.statistic,
      test: "chi2",
      pValue: d.chiSquare.df === 0 ? Number.NaN : d.chiSquare.pValue,
      pAdjusted: Number.NaN,
      status: d.chiSquare.df === 0 ? "insufficient" : "ok",
      ...(newCategories.length > 0 ? { newCategories } : {}),
    },
    d,
  };
}

/** All comparisons of one check (pure given the two frames), before the p-value adjustment. */
export function compareFrames(
  ref: FeatureFrame,
  cur: FeatureFrame,
  cfg: DriftConfig,
): { comparisons: Comparison[]; global: Record<string, NumericDrift | CategoricalDrift> } {
  const comparisons: Comparison[] = [];
  const global: Record<string, NumericDrift | CategoricalDrift> = {};
  for (const f of cfg.features) {
    const rc = ref.columns.get(f);
    const cc = cur.columns.get(f);
    if (rc === undefined || cc === undefined) continue;
    const { c, d } = numericComparison(f, "numeric", "all", "all", finite(rc, null), finite(cc, null), cfg);
    comparisons.push(c);
    if (d !== undefined) global[f] = d;
  }
  for (const dim of cfg.segments) {
    const side = SEGMENT_COLUMN[dim];
    const refIdx = groupIndex(ref[side]);
    const curIdx = groupIndex(cur[side]);
    const values = [...new Set([...refIdx.keys(), ...curIdx.keys()])].sort();
    for (const v of values) {
      const ri = refIdx.get(v) ?? [];
      const ci = curIdx.get(v) ?? [];
      for (const f of cfg.features) {
        const rc = ref.columns.get(f);
        const cc = cur.columns.get(f);
        if (rc === undefined || cc === undefined) continue;
        comparisons.push(numericComparison(f, "numeric", dim, v, finite(rc, ri), finite(cc, ci), cfg).c);
      }
    }
  }
  for (const name of cfg.categoricals) {
    const { c, d } =
      name === "event_source"
        ? categoricalComparison(name, ref.eventSources, cur.eventSources, cfg)
        : categoricalComparison(
            name,
            countsOf(ref[CATEGORICAL_SIDE[name]]),
            countsOf(cur[CATEGORICAL_SIDE[name]]),
            cfg,
          );
    comparisons.push(c);
    if (d !== undefined) global[name] = d;
  }
  if (cfg.scores) {
    const sources = [...new Set([...ref.scores.keys(), ...cur.scores.keys()])].sort();
    for (const s of sources) {
      const name = `score.${s}`;
      const { c, d } = numericComparison(
        name,
        "score",
        "all",
        "all",
        ref.scores.get(s) ?? new Float64Array(0),
        cur.scores.get(s) ?? new Float64Array(0),
        cfg,
      );
      comparisons.push(c);
      if (d !== undefined) global[name] = d;
    }
  }
  return { comparisons, global };
}

/**
 * Look-back of a feature column in days: the `_Nd` suffix, 90 for days_since_last_activity (the
 * feature builder's longest window), else 0 (no look-back).
 */
export function featureLookbackDays(feature: string, activeDays = 0): number {
  const m = /_(\d+)d$/.exec(feature);
  if (m) return Number(m[1]);
  return feature === "days_since_last_activity" ? (activeDays > 0 ? activeDays : 90) : 0;
}

async function countInWindow(store: DuckStore, table: string, w: TimeWindow): Promise<number> {
  const r = await store.one<{ n: bigint }>(
    `SELECT count(*) AS n FROM ${table} WHERE as_of >= CAST($from AS TIMESTAMP) AND as_of < CAST($to AS TIMESTAMP)`,
    { from: sqlTimestamp(w.from), to: sqlTimestamp(w.to) },
  );
  return num(r?.n);
}

/**
 * Days of raw_events history before the newest snapshot of the reference window (null when the
 * window has no snapshot or there are no events before it).
 */
async function referenceHistoryDays(store: DuckStore, table: string, w: TimeWindow): Promise<number | null> {
  const r = await store.one<{ a: Date | null; t: Date | null }>(
    `SELECT (SELECT max(as_of) FROM ${table} WHERE as_of >= CAST($from AS TIMESTAMP) AND as_of < CAST($to AS TIMESTAMP)) AS a,
            (SELECT min(ts) FROM raw_events) AS t`,
    { from: sqlTimestamp(w.from), to: sqlTimestamp(w.to) },
  );
  if (!r?.a || !r.t) return null;
  return (r.a.getTime() - r.t.getTime()) / 86_400_000;
}

/** Runs one drift check against the store and (by default) records it in drift_checks. */
export async function checkDrift(store: DuckStore, opts: DriftCheckOptions): Promise<DriftCheck> {
  let cfg = opts.config;
  const table = opts.table ?? "features";
  let built: DriftCheck["builtReference"];
  if (opts.reference.kind === "window") {
    // A fresh install has one snapshot (at the end): build the reference point in time from raw_events.
    let builtAt: Date | null = null;
    if (opts.buildReference !== false && (await countInWindow(store, table, opts.reference.window)) === 0) {
      builtAt = new Date(opts.reference.window.to.getTime() - 1000);
      await buildFeatures(store, builtAt, { table });
    }
    // Features whose look-back exceeds the history before the reference differ only because the
    // data is young: leave them out (and say so).
    const history = await referenceHistoryDays(store, table, opts.reference.window);
    if (history !== null) {
      const skipped = cfg.features.filter((f) => featureLookbackDays(f, cfg.windows.activeDays) > history);
      if (skipped.length > 0 || builtAt !== null) {
        built = {
          asOf: builtAt?.toISOString() ?? null,
          historyDays: Math.round(history * 100) / 100,
          skippedFeatures: skipped,
        };
        cfg = {
          ...cfg,
          features: cfg.features.filter((f) => featureLookbackDays(f, cfg.windows.activeDays) <= history),
        };
      }
    }
  }
  const activeDays = cfg.windows.activeDays;
  const cur = await loadWindow(store, opts.current, cfg.features, table, activeDays);
  let ref: FeatureFrame;
  let refSummary: Omit<SideSummary, "rows" | "scoreRows">;
  if (opts.reference.kind === "snapshot") {
    const s = await loadSnapshot(store, opts.reference.id, cfg.features);
    ref = s.frame;
    refSummary = { label: `snapshot ${opts.reference.id}`, from: s.from, to: s.to };
  } else {
    ref = await loadWindow(store, opts.reference.window, cfg.features, table, activeDays);
    refSummary = {
      label:
        built?.asOf == null
          ? opts.reference.label
          : `${opts.reference.label}, built from raw_events as of ${built.asOf}`,
      from: opts.reference.window.from.toISOString(),
      to: opts.reference.window.to.toISOString(),
    };
  }
  if (ref.n === 0)
    throw new DriftMonitorError(
      "EMPTY_REFERENCE",
      `the reference (${refSummary.label}, ${refSummary.from} .. ${refSummary.to}) has no feature rows${activeDays > 0 ? ` active within windows.activeDays = ${activeDays}` : ""}; ingest events before ${refSummary.to}, build feature snapshots in that window (\`mastery features build --as-of ...\`), or pass --snapshot ID`,
    );
  const { comparisons, global } = compareFrames(ref, cur, cfg);
  const decision = applyDriftRule(comparisons, cfg);
  const scoreRows = (f: FeatureFrame) => [...f.scores.values()].reduce((s, a) => s + a.length, 0);
  const check: DriftCheck = {
    checkedAt: (opts.now ?? opts.current.to).toISOString(),
    reference: { ...refSummary, rows: ref.n, scoreRows: scoreRows(ref) },
    current: {
      label: "current window",
      from: opts.current.from.toISOString(),
      to: opts.current.to.toISOString(),
      rows: cur.n,
      scoreRows: scoreRows(cur),
    },
    comparisons,
    global,
    decision,
    ...(built !== undefined ? { builtReference: built } : {}),
  };
  if (opts.record !== false) {
    for (const ddl of MONITORING_DDL) await store.run(ddl);
    await store.run(
      `INSERT INTO drift_checks VALUES (CAST($at AS TIMESTAMP), $drift, $ref, CAST($cf AS TIMESTAMP), CAST($ct AS TIMESTAMP), $tests, $alerts, $decision)`,
      {
        at: sqlTimestamp(new Date(check.checkedAt)),
        drift: decision.drift,
        ref: refSummary.label,
        cf: sqlTimestamp(opts.current.from),
        ct: sqlTimestamp(opts.current.to),
        tests: decision.testsRun,
        alerts: comparisons.filter((c) => c.status === "alert").length,
        decision: JSON.stringify(decision),
      },
    );
  }
  return check;
}

/** Plain-text summary for the CLI. */
export function formatDriftCheck(c: DriftCheck): string {
  const lines: string[] = [];
  const f = (x: number | undefined, d = 3) => (x === undefined || Number.isNaN(x) ? "-" : x.toFixed(d));
  lines.push(
    `Drift check at ${c.checkedAt}: ${c.decision.drift ? "DRIFT" : "no drift"} (${c.decision.testsRun} tests, ${c.decision.correction} at alpha ${c.decision.alpha})`,
    `  reference: ${c.reference.label} ${c.reference.from ?? ""} .. ${c.reference.to ?? ""} (${c.reference.rows} rows, ${c.reference.scoreRows} scores)`,
    `  current:   ${c.current.from} .. ${c.current.to} (${c.current.rows} rows, ${c.current.scoreRows} scores)`,
  );
  if (c.builtReference !== undefined)
    lines.push(
      `  (${c.builtReference.asOf !== null ? `no feature snapshot in the reference window: built one from raw_events as of ${c.builtReference.asOf}; ` : ""}${c.builtReference.historyDays} days of history before the reference${c.builtReference.skippedFeatures.length ? `; not compared, their look-back exceeds that history: ${c.builtReference.skippedFeatures.join(", ")}` : ""})`,
    );
  for (const r of c.decision.reasons) lines.push(`  - ${r}`);
  lines.push("", "  feature                          psi      js    stat   p_adj   status");
  for (const x of c.comparisons.filter((x) => x.dimension === "all"))
    lines.push(
      `  ${x.feature.padEnd(30)} ${f(x.psi).padStart(6)} ${f(x.js).padStart(7)} ${f(x.statistic).padStart(7)} ${f(x.pAdjusted, 4).padStart(7)}   ${x.status}`,
    );
  const seg = c.comparisons.filter(
    (x) => x.dimension !== "all" && (x.status === "alert" || x.status === "warn"),
  );
  if (seg.length) {
    lines.push("", "  segments with warnings or alerts:");
    for (const x of seg)
      lines.push(
        `  ${`${x.dimension}=${x.segment}`.padEnd(18)} ${x.feature.padEnd(28)} psi ${f(x.psi)} p_adj ${f(x.pAdjusted, 4)} ${x.status}`,
      );
  }
  return lines.join("\n");
}
