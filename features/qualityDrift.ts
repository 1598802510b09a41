/**
 * Data-quality drift: schema drift per source and daily volume anomalies.
 *
 * Schema drift compares the fields (and their value types) a source sends now with a reference:
 *  - events (raw_events, any path): per (source, event type), the optional columns that carry at
 *    least one non-null value, and each one's value type (the column type; for text columns the
 *    type the values would parse as: BIGINT, DOUBLE or VARCHAR), over the newest `profileDays` of
 *    the source's events; plus dead letters that rejected a field for its type (a numeric field
 *    arriving as text never reaches raw_events, so the rejects are the evidence);
 *  - files (ingest_profiles, CSV/Parquet): the newest file's header and DuckDB-inferred types.
 * The reference is the stored one (`mastery quality --set-reference`, table quality_reference)
 * for the (origin, source, type) groups it has, else each group's first profile (events: the
 * first `profileDays` of the source's events; files: the first profiled file).
 * Types compare by family (integer, float, text, boolean, temporal, list), so BIGINT -> DOUBLE on
 * a day of fractional values is not reported while DOUBLE -> VARCHAR is.
 *
 * Volume anomalies: daily distinct events per source (type "(all)") and per (source, type), from
 * each series' first day to the newest day in the store (missing days count 0), scored against the
 * trailing baseline by models/volumeAnomaly.ts.
 */
import {
  DEFAULT_VOLUME_OPTIONS,
  scoreDailyCounts,
  type VolumeAnomalyOptions,
} from "../models/volumeAnomaly.ts";
import type { DuckStore } from "../storage/duckdb.ts";
import { QUALITY_DDL } from "../storage/schema.ts";
import { ident, lit } from "./ingestSql.ts";

export type ProfileOrigin = "events" | "file";

export interface FieldType {
  field: string;
  /** DuckDB type name (BIGINT, DOUBLE, VARCHAR, BOOLEAN, TIMESTAMP, VARCHAR[], ...). */
  valueType: string;
  /** Events only: share of the window's rows where the field is non-null. */
  nonNullRate: number | null;
}

export interface FieldProfile {
  origin: ProfileOrigin;
  source: string;
  /** Event type; "*" for a file whose type column mixes types. */
  type: string;
  /** Rows profiled (events) or rows in the file. */
  rows: number;
  /** Window (events: event time) or profile time (files). */
  from: string;
  to: string;
  /** Fields present (events: at least one non-null value), sorted by name. */
  fields: FieldType[];
}

export type SchemaChangeKind = "new" | "missing" | "retyped";

export interface SchemaChange {
  origin: ProfileOrigin;
  source: string;
  type: string;
  change: SchemaChangeKind;
  field: string;
  referenceType: string | null;
  currentType: string | null;
  detail: string;
}

export interface SchemaDriftReport {
  /** When the stored reference was set (null: every group compares with its first profile). */
  referenceSetAt: string | null;
  /** Groups compared, and how many of them against the stored reference. */
  groups: number;
  storedGroups: number;
  changes: SchemaChange[];
}

export interface VolumeDay {
  source: string;
  /** Event type, or "(all)" for every type of the source together. */
  type: string;
  day: string;
  count: number;
  median: number | null;
  z: number | null;
  ratio: number | null;
  anomaly: "spike" | "drop" | null;
}

export interface VolumeReport {
  options: VolumeAnomalyOptions & { reportDays: number };
  /** Newest day in the store (UTC), the end of every series. */
  lastDay: string | null;
  /** Each series' newest day (the value on /metrics). */
  latest: VolumeDay[];
  /** Flagged days within the last reportDays days, newest first. */
  anomalies: VolumeDay[];
}

export interface QualityDriftOptions {
  /** Days of events one profile covers (the newest ones, or the first ones for a default reference). */
  profileDays: number;
  /** A field counts as retyped when type rejects are at least this share of its source's rows. */
  minRetypeShare: number;
  volume: VolumeAnomalyOptions;
  /** Flagged volume days reported from the last this many days. */
  reportDays: number;
}

export const DEFAULT_QUALITY_DRIFT_OPTIONS: QualityDriftOptions = {
  profileDays: 1,
  minRetypeShare: 0.01,
  volume: DEFAULT_VOLUME_OPTIONS,
  reportDays: 7,
};

export class QualityDriftError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = "QualityDriftError";
  }
}

/** Nullable raw_events columns profiled per (source, type) (the NOT NULL ones are always present). */
export const PROFILED_EVENT_COLUMNS: readonly string[] = [
  "school_id",
  "class_id",
  "grade",
  "question_id",
  "is_correct",
  "time_spent_sec",
  "attempt_number",
  "hints_used",
  "assignment_id",
  "score_pct",
  "video_id",
  "watch_pct",
  "watch_duration_sec",
  "rewind_count",
  "attempts",
  "correct_count",
  "help_requests",
  "resolved_count",
];

const DAY_MS = 86_400_000;
const num = (v: unknown): number => (typeof v === "bigint" ? Number(v) : typeof v === "number" ? v : 0);
const iso = (v: unknown): string => (v instanceof Date ? v.toISOString() : String(v));
const dayIso = (dayNumber: number): string => new Date(dayNumber * DAY_MS).toISOString().slice(0, 10);

/** The family a DuckDB type belongs to; types compare by family. */
export function typeFamily(t: string): string {
  const u = t.toUpperCase();
  if (u.endsWith("[]") || u.startsWith("STRUCT") || u.startsWith("MAP")) return "nested";
  if (/^(TINYINT|SMALLINT|INTEGER|BIGINT|HUGEINT|UTINYINT|USMALLINT|UINTEGER|UBIGINT|UHUGEINT)$/.test(u))
    return "integer";
  if (/^(FLOAT|DOUBLE|REAL)$/.test(u) || u.startsWith("DECIMAL")) return "float";
  if (u === "BOOLEAN") return "boolean";
  if (u.startsWith("TIMESTAMP") || u === "DATE" || u.startsWith("TIME")) return "temporal";
  return "text";
}

/** Numbers widen: integer and float are one numeric family for the retyping test. */
function comparableFamily(t: string): string {
  const f = typeFamily(t);
  return f === "integer" || f === "float" ? "numeric" : f;
}

const groupKey = (p: { origin: string; source: string; type: string }) =>
  `${p.origin}\u0000${p.source}\u0000${p.type}`;

/**
 * New, missing and retyped fields of each current profile against the reference profile of the
 * same (origin, source, type). Groups without a reference are skipped. Pure.
 */
export function compareProfiles(
  reference: readonly FieldProfile[],
  current: readonly FieldProfile[],
): SchemaChange[] {
  const refs = new Map(reference.map((p) => [groupKey(p), p]));
  const out: SchemaChange[] = [];
  for (const cur of current) {
    const ref = refs.get(groupKey(cur));
    if (ref === undefined) continue;
    const before = new Map(ref.fields.map((f) => [f.field, f]));
    const now = new Map(cur.fields.map((f) => [f.field, f]));
    const base = { origin: cur.origin, source: cur.source, type: cur.type };
    for (const [field, f] of now) {
      const r = before.get(field);
      if (r === undefined)
        out.push({
          ...base,
          change: "new",
          field,
          referenceType: null,
          currentType: f.valueType,
          detail: `${field} (${f.valueType}) is new`,
        });
      else if (comparableFamily(r.valueType) !== comparableFamily(f.valueType))
        out.push({
          ...base,
          change: "retyped",
          field,
          referenceType: r.valueType,
          currentType: f.valueType,
          detail: `${field} was ${r.valueType}, now ${f.valueType}`,
        });
    }
    for (const [field, r] of before)
      if (!now.has(field))
        out.push({
          ...base,
          change: "missing",
          field,
          referenceType: r.valueType,
          currentType: null,
          detail:
            cur.origin === "events"
              ? `${field} was non-null in ${pctText(r.nonNullRate)} of rows, now always null`
              : `${field} is no longer in the file header`,
        });
  }
  return out.sort(
    (a, b) =>
      a.origin.localeCompare(b.origin) ||
      a.source.localeCompare(b.source) ||
      a.type.localeCompare(b.type) ||
      a.change.localeCompare(b.change) ||
      a.field.localeCompare(b.field),
  );
}

const pctText = (x: number | null) => (x === null ? "some" : `${(100 * x).toFixed(1)}%`);

async function ensureTables(store: DuckStore): Promise<void> {
  for (const ddl of QUALITY_DDL) await store.run(ddl);
}

function positiveInt(x: number, name: string): number {
  if (!Number.isInteger(x) || x <= 0)
    throw new QualityDriftError(
      "QUALITY_OPTION",
      `${name} must be a positive integer number of days (got ${x})`,
    );
  return x;
}

/**
 * Event profiles per (source, type) over each source's first or newest `days` days of events.
 * Text columns get the type their values parse as (all BIGINT, else all DOUBLE, else VARCHAR).
 */
export async function eventProfiles(
  store: DuckStore,
  which: "first" | "latest",
  days: number,
): Promise<FieldProfile[]> {
  positiveInt(days, "profileDays");
  const declared = new Map(
    (
      await store.all<{ column_name: string; data_type: string }>(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'raw_events' AND table_schema = 'main'",
      )
    ).map((r) => [r.column_name, r.data_type]),
  );
  const cols = PROFILED_EVENT_COLUMNS.filter((c) => declared.has(c));
  const window =
    which === "first" ? `r.ts < b.lo + INTERVAL ${days} DAY` : `r.ts > b.hi - INTERVAL ${days} DAY`;
  const aggs = cols.map((c, i) => {
    const col = `r.${ident(c)}`;
    const parts = [`count(${col}) AS nn${i}`];
    if (declared.get(c) === "VARCHAR")
      parts.push(
        `bool_and(TRY_CAST(${col} AS BIGINT) IS NOT NULL) FILTER (WHERE ${col} IS NOT NULL) AS int${i}`,
        `bool_and(TRY_CAST(${col} AS DOUBLE) IS NOT NULL) FILTER (WHERE ${col} IS NOT NULL) AS dbl${i}`,
      );
    return parts.join(", ");
  });
  const rows = await store.all(
    `WITH b AS (SELECT coalesce(source, '(none)') AS src, type, min(ts) AS lo, max(ts) AS hi
                FROM raw_events GROUP BY ALL)
     SELECT b.src AS source, b.type, count(*) AS n, min(r.ts) AS lo, max(r.ts) AS hi, ${aggs.join(", ")}
     FROM raw_events r JOIN b ON coalesce(r.source, '(none)') = b.src AND r.type = b.type
     WHERE ${window}
     GROUP BY ALL ORDER BY 1, 2`,
  );
  return rows.map((r) => {
    const n = num(r.n);
    const fields: FieldType[] = [];
    cols.forEach((c, i) => {
      const nn = num(r[`nn${i}`]);
      if (nn === 0) return;
      let valueType = declared.get(c)!;
      if (valueType === "VARCHAR")
        valueType = r[`int${i}`] === true ? "BIGINT" : r[`dbl${i}`] === true ? "DOUBLE" : "VARCHAR";
      fields.push({ field: c, valueType, nonNullRate: nn / n });
    });
    fields.sort((a, b) => a.field.localeCompare(b.field));
    return {
      origin: "events" as const,
      source: String(r.source),
      type: String(r.type),
      rows: n,
      from: iso(r.lo),
      to: iso(r.hi),
      fields,
    };
  });
}

/** The first or newest ingest profile per (source, event type). */
export async function fileProfiles(store: DuckStore, which: "first" | "latest"): Promise<FieldProfile[]> {
  await ensureTables(store);
  const pick = which === "first" ? "arg_min" : "arg_max";
  const rows = await store.all(
    `SELECT source, event_type, ${pick}(columns, profiled_at) AS columns, ${pick}(rows, profiled_at) AS rows,
            ${which === "first" ? "min" : "max"}(profiled_at) AS at
     FROM ingest_profiles GROUP BY ALL ORDER BY 1, 2`,
  );
  return rows.map((r) => {
    const cols = JSON.parse(String(r.columns)) as { name: string; type: string }[];
    return {
      origin: "file" as const,
      source: String(r.source),
      type: String(r.event_type),
      rows: num(r.rows),
      from: iso(r.at),
      to: iso(r.at),
      fields: cols
        .map((c) => ({ field: c.name, valueType: c.type, nonNullRate: null }))
        .sort((a, b) => a.field.localeCompare(b.field)),
    };
  });
}

/** The stored reference (empty when none was set). */
export async function storedReference(
  store: DuckStore,
): Promise<{ setAt: string | null; profiles: FieldProfile[] }> {
  await ensureTables(store);
  const rows = await store.all(
    "SELECT set_at, origin, source, event_type, field, value_type, non_null_rate FROM quality_reference ORDER BY origin, source, event_type, field",
  );
  const groups = new Map<string, FieldProfile>();
  let setAt: string | null = null;
  for (const r of rows) {
    setAt = iso(r.set_at);
    const p = {
      origin: String(r.origin) as ProfileOrigin,
      source: String(r.source),
      type: String(r.event_type),
    };
    const k = groupKey(p);
    let g = groups.get(k);
    if (g === undefined) {
      g = { ...p, rows: 0, from: setAt, to: setAt, fields: [] };
      groups.set(k, g);
    }
    g.fields.push({
      field: String(r.field),
      valueType: String(r.value_type),
      nonNullRate: r.non_null_rate === null ? null : num(r.non_null_rate),
    });
  }
  return { setAt, profiles: [...groups.values()] };
}

/**
 * Stores the current profiles (newest `profileDays` of events per source and type, newest file
 * per source and type) as the reference, replacing any earlier one. Returns the groups stored.
 */
export async function setQualityReference(
  store: DuckStore,
  at: Date,
  opts: Pick<QualityDriftOptions, "profileDays"> = DEFAULT_QUALITY_DRIFT_OPTIONS,
): Promise<FieldProfile[]> {
  await ensureTables(store);
  const profiles = [
    ...(await eventProfiles(store, "latest", opts.profileDays)),
    ...(await fileProfiles(store, "latest")),
  ];
  await store.transaction(async () => {
    await store.run("DELETE FROM quality_reference");
    for (const p of profiles)
      for (const f of p.fields)
        await store.run(
          "INSERT INTO quality_reference VALUES (CAST($at AS TIMESTAMP), $origin, $source, $type, $field, $vt, $rate)",
          {
            at: at.toISOString().replace("T", " ").replace("Z", ""),
            origin: p.origin,
            source: p.source,
            type: p.type,
            field: f.field,
            vt: f.valueType,
            rate: f.nonNullRate,
          },
        );
  });
  return profiles;
}

/** Type of the offending value in a contract message `... must be a number (got "12a")`. */
function gotType(reason: string): string {
  const m = / \(got (.*)\)$/.exec(reason);
  const v = m?.[1]?.trim() ?? "";
  if (v.startsWith('"')) return "VARCHAR";
  if (v === "true" || v === "false") return "BOOLEAN";
  if (v !== "" && Number.isFinite(Number(v))) return "DOUBLE";
  if (v.startsWith("[")) return "LIST";
  return "VARCHAR";
}

/**
 * Fields rejected for their type in each source's newest `days` days of dead letters, when the
 * rejects are at least `minShare` of the rows that source and type sent in that time (accepted
 * rows by ingested_at plus rejected rows).
 */
export async function typeRejectChanges(
  store: DuckStore,
  days: number,
  minShare: number,
): Promise<SchemaChange[]> {
  positiveInt(days, "profileDays");
  const declared = new Map(
    (
      await store.all<{ column_name: string; data_type: string }>(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'raw_events' AND table_schema = 'main'",
      )
    ).map((r) => [r.column_name, r.data_type]),
  );
  const rows = await store.all(
    `WITH d AS (
       SELECT coalesce(source, '(none)') AS src, type, field, reason, row_number, rejected_at,
              max(rejected_at) OVER (PARTITION BY coalesce(source, '(none)')) AS hi
       FROM dead_letter WHERE type IS NOT NULL),
     recent AS (SELECT * FROM d WHERE rejected_at > hi - INTERVAL ${days} DAY),
     typed AS (
       SELECT src, type, field, count(DISTINCT row_number) AS n, any_value(reason) AS reason, any_value(hi) AS hi
       FROM recent
       WHERE regexp_matches(reason, ' must be (a string|a number|an integer|a boolean|an array)( |$)')
       GROUP BY ALL),
     rejected AS (SELECT src, type, count(DISTINCT row_number) AS n FROM recent GROUP BY ALL),
     accepted AS (
       SELECT coalesce(r.source, '(none)') AS src, r.type, count(DISTINCT r.event_id) AS n
       FROM raw_events r JOIN (SELECT DISTINCT src, hi FROM d) h ON coalesce(r.source, '(none)') = h.src
       WHERE r.ingested_at > h.hi - INTERVAL ${days} DAY
       GROUP BY ALL)
     SELECT t.src AS source, t.type, t.field, t.n, t.reason,
            coalesce(a.n, 0) + coalesce(j.n, 0) AS total
     FROM typed t LEFT JOIN accepted a USING (src, type) LEFT JOIN rejected j USING (src, type)
     ORDER BY 1, 2, 3`,
  );
  const out: SchemaChange[] = [];
  for (const r of rows) {
    const n = num(r.n);
    const total = num(r.total);
    if (total === 0 || n / total < minShare) continue;
    const field = String(r.field);
    const reason = String(r.reason);
    out.push({
      origin: "events",
      source: String(r.source),
      type: String(r.type),
      change: "retyped",
      field,
      referenceType: declared.get(field) ?? null,
      currentType: gotType(reason),
      detail: `${n} of ${total} recent rows rejected: ${reason.replace(/ \(got .*\)$/, "")}`,
    });
  }
  return out;
}

/** Schema drift of every source against the stored reference or its first profile. */
export async function schemaDrift(
  store: DuckStore,
  opts: QualityDriftOptions = DEFAULT_QUALITY_DRIFT_OPTIONS,
): Promise<SchemaDriftReport> {
  const stored = await storedReference(store);
  const storedKeys = new Set(stored.profiles.map(groupKey));
  const current = [
    ...(await eventProfiles(store, "latest", opts.profileDays)),
    ...(await fileProfiles(store, "latest")),
  ];
  const firsts = [
    ...(await eventProfiles(store, "first", opts.profileDays)),
    ...(await fileProfiles(store, "first")),
  ].filter((p) => !storedKeys.has(groupKey(p)));
  const changes = compareProfiles([...stored.profiles, ...firsts], current);
  // A type reject explains a "missing" field (its values never reached raw_events): keep the retype.
  const rejects = await typeRejectChanges(store, opts.profileDays, opts.minRetypeShare);
  const retypedKeys = new Set(rejects.map((c) => `${groupKey(c)}\u0000${c.field}`));
  const merged = [
    ...changes.filter((c) => !(c.origin === "events" && retypedKeys.has(`${groupKey(c)}\u0000${c.field}`))),
    ...rejects,
  ];
  return {
    referenceSetAt: stored.setAt,
    groups: current.length,
    storedGroups: current.filter((p) => storedKeys.has(groupKey(p))).length,
    changes: compareOrder(merged),
  };
}

function compareOrder(xs: SchemaChange[]): SchemaChange[] {
  return xs.sort(
    (a, b) =>
      a.origin.localeCompare(b.origin) ||
      a.source.localeCompare(b.source) ||
      a.type.localeCompare(b.type) ||
      a.field.localeCompare(b.field) ||
      a.change.localeCompare(b.change),
  );
}

/** Daily event counts per source and per (source, type), scored against their trailing baselines. */
export async function volumeAnomalies(
  store: DuckStore,
  opts: Pick<QualityDriftOptions, "volume" | "reportDays"> = DEFAULT_QUALITY_DRIFT_OPTIONS,
  asOf?: Date,
): Promise<VolumeReport> {
  positiveInt(opts.volume.baselineDays, "volume.baselineDays");
  positiveInt(opts.reportDays, "reportDays");
  const cap = asOf === undefined ? "" : `WHERE ts < ${tsLit(asOf)}`;
  const rows = await store.all(
    `SELECT src AS source, coalesce(type, '(all)') AS type, datediff('day', DATE '1970-01-01', day) AS d,
            count(DISTINCT event_id) AS n
     FROM (SELECT coalesce(source, '(none)') AS src, type, CAST(ts AS DATE) AS day, event_id FROM raw_events ${cap})
     GROUP BY GROUPING SETS ((src, day, type), (src, day))
     ORDER BY 1, 2, 3`,
  );
  const series = new Map<
    string,
    { source: string; type: string; days: Map<number, number>; first: number }
  >();
  let last = Number.NEGATIVE_INFINITY;
  for (const r of rows) {
    const source = String(r.source);
    const type = String(r.type);
    const d = num(r.d);
    const k = `${source}\u0000${type}`;
    let s = series.get(k);
    if (s === undefined) {
      s = { source, type, days: new Map(), first: d };
      series.set(k, s);
    }
    s.days.set(d, num(r.n));
    s.first = Math.min(s.first, d);
    last = Math.max(last, d);
  }
  const latest: VolumeDay[] = [];
  const anomalies: VolumeDay[] = [];
  // Only the last reportDays days are reported, each against the baselineDays before it: the
  // series is cut to that window, so the work is bounded by the options, never by the span of
  // the timestamps (an event dated 0001 next to one dated 9999 is 3.6 million days apart).
  const windowDays = opts.reportDays + opts.volume.baselineDays;
  for (const s of series.values()) {
    const from = Math.max(s.first, last - windowDays + 1);
    const counts = new Float64Array(last - from + 1);
    for (const [d, n] of s.days) if (d >= from) counts[d - from] = n;
    const scores = scoreDailyCounts(counts, opts.volume);
    const toDay = (i: number): VolumeDay => {
      const x = scores[i]!;
      return {
        source: s.source,
        type: s.type,
        day: dayIso(from + i),
        count: x.count,
        median: x.z === null ? null : x.median,
        z: x.z,
        ratio: x.ratio,
        anomaly: x.anomaly,
      };
    };
    latest.push(toDay(scores.length - 1));
    for (let i = Math.max(0, scores.length - opts.reportDays); i < scores.length; i++)
      if (scores[i]!.anomaly !== null) anomalies.push(toDay(i));
  }
  anomalies.sort(
    (a, b) => b.day.localeCompare(a.day) || a.source.localeCompare(b.source) || a.type.localeCompare(b.type),
  );
  return {
    options: { ...opts.volume, reportDays: opts.reportDays },
    lastDay: Number.isFinite(last) ? dayIso(last) : null,
    latest,
    anomalies,
  };
}

function tsLit(d: Date): string {
  return `TIMESTAMP ${lit(d.toISOString().replace("T", " ").replace("Z", ""))}`;
}

/**
 * Records an ingested file's header and DuckDB-inferred column types (features/ingest.ts calls
 * this once per CSV/Parquet file, inside the ingest transaction).
 */
export async function recordIngestProfile(
  store: DuckStore,
  p: {
    source: string;
    file: string;
    format: string;
    eventType: string;
    rows: number;
    columns: readonly { name: string; type: string }[];
    at: Date;
  },
): Promise<void> {
  await ensureTables(store);
  await store.run(
    "INSERT INTO ingest_profiles VALUES ($source, $file, $format, $type, $rows, $columns, CAST($at AS TIMESTAMP))",
    {
      source: p.source,
      file: p.file,
      format: p.format,
      type: p.eventType,
      rows: p.rows,
      columns: JSON.stringify(p.columns.map((c) => ({ name: c.name, type: c.type }))),
      at: p.at.toISOString().replace("T", " ").replace("Z", ""),
    },
  );
}
