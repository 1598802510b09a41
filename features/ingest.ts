/**
 * Ingest: validate -> pseudonymize -> de-duplicate by event_id -> append to raw_events; every
 * invalid row goes to dead_letter with its field, reason and row number, and valid rows of the
 * same file are kept.
 *
 * Two front ends share one back end (a TEMP staging table of VARCHAR contract columns):
 *  - CSV/TSV/Parquet are loaded by DuckDB and validated in SQL compiled from the JSON Schemas
 *    (features/ingestSql.ts), because pushing 10M rows through ajv in JS would cost minutes.
 *  - JSON/JSONL/xAPI (and the HTTP API through `ingestEvents`) are validated by ajv in JS.
 * Pseudonyms are computed in JS for the distinct raw ids only and joined in through a TEMP table;
 * TEMP tables are never persisted, so raw ids never reach a stored table.
 */
import { closeSync, openSync, readdirSync, readFileSync, readSync, statSync } from "node:fs";
import { basename, extname, join } from "node:path";
import type { DuckStore } from "../storage/duckdb.ts";
import { sqlString } from "../storage/duckdb.ts";
import { listValue } from "../storage/duckdbApi.ts";
import { newestContextSql, upsertNewestSql } from "../storage/studentContext.ts";
import { builtinMappingFor, type ColumnMapping, sourceSql } from "./columnMappings.ts";
import { configuredTimeRange, type TimeBounds, type TimeRange, timeBounds } from "./contractConfig.ts";
import {
  EVENT_TYPES,
  type EventType,
  isEventType,
  type LearningEvent,
  LIMITS,
  nestsDeeperThan,
  type TopicMetadata,
  type ValidationIssue,
  validateEvent,
  validateTopic,
} from "./contracts.ts";
import { deadLetterEntry, jsonErrorText, redactedPayload, unparsedPayload } from "./deadLetters.ts";
import type { RowCounts } from "./fileRows.ts";
import {
  deadLetterFieldSql,
  deadLetterReasonSql,
  ident,
  issuesSql,
  LIST_SEPARATOR,
  lit,
  STAGE_COLUMNS,
  validSql,
} from "./ingestSql.ts";
import type { Pseudonymizer } from "./pseudonymize.ts";
import { recordIngestProfile } from "./qualityDrift.ts";
import { isXapiStatement, xapiToEvent } from "./xapi.ts";

export interface IngestOptions {
  pseudonymizer: Pseudonymizer;
  /** raw_events.source / dead_letter.source; default: the file name, or "api" for ingestEvents. */
  source?: string;
  mapping?: ColumnMapping;
  /** Clock for ingested_at / rejected_at and the plausible-timestamp check (tests pin it). */
  now?: Date;
  /** Plausible timestamp range (default: config/events.yaml and the environment). */
  timeRange?: TimeRange;
  /** Called after each phase of each file (for progress bars). */
  onPhase?: (file: string, phase: string) => void;
}

export interface FileReport {
  file: string;
  source: string;
  format: "csv" | "parquet" | "jsonl" | "json" | "xapi" | "topics" | "api";
  /** Events (not fanned-out rows) appended to raw_events, or topics upserted. */
  accepted: number;
  duplicate: number;
  rejected: number;
  /**
   * Rows read, used (accepted + duplicate) and rejected with the most common reasons and their first
   * lines (features/fileRows.ts), from this run's dead_letter rows. Absent for topic files.
   */
  rows?: RowCounts;
}

export interface IngestReport {
  files: FileReport[];
  total: { accepted: number; duplicate: number; rejected: number };
}

export class IngestError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
    this.name = "IngestError";
  }
}

/** Phases reported through onPhase, in order, for every file. */
export const PHASES = ["pseudonymize", "dedupe", "insert", "reject"] as const;

const FILE_TYPES: Record<string, EventType> = {
  quiz_attempts: "quiz_attempt",
  quiz_attempt: "quiz_attempt",
  quizzes: "quiz_attempt",
  assignments: "assignment",
  assignment: "assignment",
  videos: "video",
  video: "video",
  practice: "practice",
  practices: "practice",
  chatbot: "chatbot",
  chatbots: "chatbot",
};

const TABULAR = new Set([".csv", ".tsv", ".parquet"]);
/** Files a directory may hold that are not events (the generator's labels and manifest); skipped. */
const NOT_EVENTS = new Set(["manifest", "ground_truth", "roster"]);
const JSONISH = new Set([".json", ".jsonl", ".ndjson"]);

/**
 * Expands directories (their files, sorted, not recursive, topics first) to the ingestible files;
 * manifest.* and ground_truth.* are skipped in directories (labels, not events).
 */
export function expandPaths(paths: readonly string[]): string[] {
  const out: string[] = [];
  for (const p of paths) {
    let st: ReturnType<typeof statSync>;
    try {
      st = statSync(p);
    } catch {
      throw new IngestError("INGEST_PATH", `${p}: no such file or directory`);
    }
    if (st.isDirectory()) {
      const files = readdirSync(p)
        .filter((f) => TABULAR.has(extname(f).toLowerCase()) || JSONISH.has(extname(f).toLowerCase()))
        .filter((f) => !NOT_EVENTS.has(basename(f, extname(f)).toLowerCase()))
        .sort(topicsFirst)
        .map((f) => join(p, f));
      out.push(...files);
    } else out.push(p);
  }
  return out;
}

// Topic metadata first, so a directory's events land after the topics they refer to.
function topicsFirst(a: string, b: string): number {
  const ta = isTopicsFile(a) ? 0 : 1;
  const tb = isTopicsFile(b) ? 0 : 1;
  return ta - tb || a.localeCompare(b);
}

function isTopicsFile(path: string): boolean {
  const stem = basename(path, extname(path)).toLowerCase();
  return stem === "topics";
}

/** The timestamp bounds of one ingest run (one receive time for the whole file). */
function boundsOf(opts: IngestOptions): TimeBounds {
  return timeBounds(opts.timeRange ?? configuredTimeRange(), (opts.now ?? new Date()).getTime());
}

/**
 * Refuses, with a one-line message, a file that is empty or not text (a CSV/JSON file whose first
 * 64 KiB are more than 10% control bytes), before anything of it is parsed or printed.
 */
export function checkFileContent(path: string, kind: "text" | "binary"): void {
  const size = statSync(path).size;
  if (size === 0) throw new IngestError("INGEST_EMPTY", `${path}: the file is empty (no header, no rows)`);
  if (kind === "binary") return;
  const buf = Buffer.alloc(Math.min(size, 65_536));
  const fd = openSync(path, "r");
  try {
    readSync(fd, buf, 0, buf.length, 0);
  } finally {
    closeSync(fd);
  }
  // A NUL in one cell is a bad row (rejected per field); binary files are full of control bytes.
  let control = 0;
  for (const b of buf) if (b < 32 && b !== 9 && b !== 10 && b !== 13 && b !== 12) control++;
  if (control > buf.length * 0.1)
    throw new IngestError(
      "INGEST_BINARY",
      `${path}: not a text file (binary content in its first ${buf.length} bytes); expected CSV, TSV, JSON or JSONL text`,
    );
}

export async function ingestPaths(
  store: DuckStore,
  paths: readonly string[],
  opts: IngestOptions,
): Promise<IngestReport> {
  const files: FileReport[] = [];
  for (const file of expandPaths(paths)) files.push(await ingestFile(store, file, opts));
  const total = { accepted: 0, duplicate: 0, rejected: 0 };
  for (const f of files) {
    if (f.format === "topics") continue;
    total.accepted += f.accepted;
    total.duplicate += f.duplicate;
    total.rejected += f.rejected;
  }
  return { files, total };
}

export async function ingestFile(
  store: DuckStore,
  path: string,
  options: IngestOptions,
): Promise<FileReport> {
  const ext = extname(path).toLowerCase();
  const source = options.source ?? basename(path);
  // One receive time for the whole file, so this run's dead letters can be told from earlier ones.
  const opts = { ...options, now: options.now ?? new Date() };
  if (isTopicsFile(path)) return ingestTopicsFile(store, path, source, opts);
  if (TABULAR.has(ext)) {
    const report = await ingestTabular(store, path, source, opts);
    // CSV dead letters number data rows (line = row + 1, the header is line 1); Parquet numbers rows.
    return { ...report, rows: await rowCounts(store, report, opts.now, ext === ".parquet" ? 0 : 1) };
  }
  if (JSONISH.has(ext)) {
    checkFileContent(path, "text");
    const { records, lines, format } = readJsonRecords(path, ext);
    const report = await ingestRecords(store, records, { ...opts, source }, lines);
    const file = { ...report, file: path, format };
    return { ...file, rows: await rowCounts(store, file, opts.now, 0) };
  }
  throw new IngestError(
    "INGEST_FORMAT",
    `${path}: unsupported file type "${ext}"; use .csv, .tsv, .parquet, .jsonl, .ndjson or .json`,
  );
}

// ---------------------------------------------------------------------------------------------
// Tabular (DuckDB) path

async function ingestTabular(
  store: DuckStore,
  path: string,
  source: string,
  opts: IngestOptions,
): Promise<FileReport> {
  const ext = extname(path).toLowerCase();
  const isParquet = ext === ".parquet";
  checkFileContent(path, isParquet ? "binary" : "text");
  const bounds = boundsOf(opts);
  const mapping = opts.mapping;
  const delimiter = mapping?.delimiter ?? (ext === ".tsv" ? "\t" : ",");
  const reader = isParquet
    ? `read_parquet(${sqlString(path)}, file_row_number = true)`
    : `read_csv(${sqlString(path)}, header = true, all_varchar = true, delim = ${lit(delimiter)}, ` +
      "quote = '\"', escape = '\"', ignore_errors = true, store_rejects = true, " +
      "rejects_table = '__csv_rejects', rejects_scan = '__csv_scans')";
  // CSV: one sniff gives the header and the inferred types the schema-drift checks record; the load reads
  // every column as text, so the columns' load types are VARCHAR. (A second DESCRIBE of the all-text
  // reader cost ~0.05-0.1 CPU-s a file, the sample's type detection included.)
  const sniffSql =
    `DESCRIBE SELECT * FROM read_csv(${sqlString(path)}, header = true, delim = ${lit(delimiter)}, ` +
    "quote = '\"', escape = '\"', ignore_errors = true)";
  let described: { column_name: string; column_type: string }[];
  let inferred: { column_name: string; column_type: string }[];
  try {
    if (isParquet) {
      described = await store.all(`DESCRIBE SELECT * FROM ${reader}`);
      inferred = described;
    } else {
      inferred = await store.all(sniffSql);
      described = inferred.map((d) => ({ column_name: d.column_name, column_type: "VARCHAR" }));
    }
  } catch (err) {
    throw new IngestError(
      "INGEST_READ",
      `${path}: cannot read as ${isParquet ? "Parquet" : "CSV"}: ${firstLine(err)}`,
    );
  }
  const columnTypes = new Map(described.map((d) => [d.column_name, d.column_type]));
  const available = new Set(columnTypes.keys());

  const select: string[] = [];
  for (const field of STAGE_COLUMNS) {
    const src = mapping?.fields[field];
    if (src) select.push(`${sourceSql(src, available)} AS ${ident(field)}`);
    else if (!mapping && available.has(field))
      select.push(`${asText(field, columnTypes.get(field)!)} AS ${ident(field)}`);
    else select.push(`CAST(NULL AS VARCHAR) AS ${ident(field)}`);
  }
  const typeSrc = mapping?.fields.type;
  let typeSql: string | undefined;
  let fixedType: EventType | undefined;
  if (typeSrc) typeSql = sourceSql(typeSrc, available);
  else if (mapping?.type) fixedType = mapping.type;
  else if (!mapping && available.has("type")) typeSql = ident("type");
  else {
    const stem = basename(path, extname(path)).toLowerCase();
    fixedType = FILE_TYPES[stem];
    if (!fixedType) {
      throw new IngestError(
        "INGEST_TYPE",
        `${path}: no "type" column and the file name does not say the event type; add a type column ` +
          `(${EVENT_TYPES.join(", ")}) or name the file quiz_attempts.csv, assignments.csv, videos.csv, ` +
          "practice.csv or chatbot.csv",
      );
    }
  }
  const rnSql = isParquet ? "CAST(file_row_number + 1 AS BIGINT) AS __rn, " : "";
  const inner = `SELECT ${rnSql}${typeSql ?? lit(fixedType!)} AS "type", ${select.join(", ")} FROM ${reader}`;
  // CSV rows are numbered in file order by a streaming window, only in the passes that need it.
  const rel = (t: EventType | undefined): Relation => ({
    sql: `SELECT *, ${validSql('"type"', bounds, t)} AS __ok FROM (${inner})`,
    hasRn: isParquet,
    fixedType: t,
  });
  const report = await withoutFsst(store, () =>
    store.transaction(async () => {
      const r = await loadRelation(store, path, source, opts, bounds, rel(fixedType), "sql", rel);
      const structural = isParquet ? 0 : await deadLetterCsvRejects(store, source, opts);
      // Header + inferred types for schema-drift checks (features/qualityDrift.ts), from the sniff above.
      await recordIngestProfile(store, {
        source,
        file: path,
        format: isParquet ? "parquet" : "csv",
        eventType: fixedType ?? "*",
        rows: r.accepted + r.duplicate + r.rejected + structural,
        columns: inferred.map((d) => ({ name: d.column_name, type: d.column_type })),
        at: opts.now ?? new Date(),
      });
      return { ...r, rejected: r.rejected + structural };
    }),
  );
  return { ...report, format: isParquet ? "parquet" : "csv" };
}

/**
 * The file's rows as read / used / skipped, with this run's rejection reasons (most common first) and
 * their first three line numbers, read back from dead_letter (so the numbers are what was stored).
 */
async function rowCounts(store: DuckStore, r: FileReport, at: Date, lineOffset: number): Promise<RowCounts> {
  const reasons =
    r.rejected === 0
      ? []
      : await store.all<{ field: string; reason: string; n: bigint; first: bigint[] }>(
          `SELECT field, reason, count(*) AS n, list(row_number ORDER BY row_number)[1:3] AS first
           FROM dead_letter WHERE source = $source AND rejected_at = ${tsLiteral(at)}
           GROUP BY field, reason ORDER BY n DESC, field, reason`,
          { source: r.source },
        );
  return {
    file: r.file,
    read: r.accepted + r.duplicate + r.rejected,
    used: r.accepted + r.duplicate,
    skipped: r.rejected,
    reasons: reasons.map((x) => ({
      reason: `${x.field}: ${x.reason}`,
      count: Number(x.n),
      examples: x.first.map((rn) => ({ line: Number(rn) + lineOffset, detail: "" })),
    })),
  };
}

/** VARCHAR text in CSV conventions for a column of any DuckDB type (Parquet). */
function asText(column: string, type: string): string {
  const c = ident(column);
  if (type === "VARCHAR") return c;
  if (type.endsWith("[]")) return `array_to_string(${c}, ${lit(LIST_SEPARATOR)})`;
  if (type === "TIMESTAMP WITH TIME ZONE") return `strftime(timezone('UTC', ${c}), '%Y-%m-%dT%H:%M:%S.%fZ')`;
  // A naive TIMESTAMP keeps no offset; printed without one it fails the contract, as it should.
  if (type === "TIMESTAMP") return `strftime(${c}, '%Y-%m-%dT%H:%M:%S.%f')`;
  return `CAST(${c} AS VARCHAR)`;
}

async function deadLetterCsvRejects(store: DuckStore, source: string, opts: IngestOptions): Promise<number> {
  const exists = await store.one<{ n: bigint }>(
    "SELECT count(*) AS n FROM duckdb_tables() WHERE temporary AND table_name = '__csv_rejects'",
  );
  if (!exists || Number(exists.n) === 0) return 0;
  // Structural problems (wrong column count, bad quoting, bad encoding): ONE dead letter per line.
  // Every pass over the file records its rejects again, and a line missing several columns has
  // one reject per column, so only the first reject of each line is kept. The raw line is not
  // kept: it holds the raw student id.
  const changed = await store.runCount(
    `INSERT INTO dead_letter SELECT ${lit(source)}, CAST(line - 1 AS BIGINT), NULL, NULL, '(row)', ` +
      `left('malformed CSV row: ' || error_type || ' (' || error_message || ')', 500), NULL, ${tsLiteral(opts.now)} ` +
      "FROM (SELECT *, row_number() OVER (PARTITION BY line ORDER BY scan_id, column_idx) AS k FROM __csv_rejects) " +
      "WHERE k = 1",
  );
  await store.run("DROP TABLE IF EXISTS __csv_rejects");
  await store.run("DROP TABLE IF EXISTS __csv_scans");
  return changed;
}

// ---------------------------------------------------------------------------------------------
// Shared back end: a relation ("type", <STAGE_COLUMNS>, __ok[, __rn]) -> dead_letter + raw_events.
// It is streamed from the file in a few passes rather than materialized: materializing 10M rows
// costs more than re-reading the CSV.

interface Relation {
  /** SELECT producing "type", the STAGE_COLUMNS as VARCHAR, __ok, and __rn when hasRn. */
  sql: string;
  hasRn: boolean;
  fixedType: EventType | undefined;
}

/** The relation with a 1-based row number __rn in file order. */
function numbered(rel: Relation): string {
  return rel.hasRn ? `(${rel.sql})` : `(SELECT row_number() OVER () AS __rn, * FROM (${rel.sql}))`;
}

async function loadRelation(
  store: DuckStore,
  file: string,
  source: string,
  opts: IngestOptions,
  bounds: TimeBounds,
  rel: Relation,
  validatedBy: "sql" | "js" = "sql",
  /** Rebuilds the relation for one type; used when the type column turns out to hold a single type. */
  specialize?: (t: EventType) => Relation,
): Promise<FileReport> {
  const now = tsLiteral(opts.now);
  // Pass 1 (no validation): distinct raw ids with row counts, and the event ids seen more than once
  // (not hash(event_id): DuckDB's 64-bit string hash collides on similar ids, and grouping the
  // strings themselves costs about the same).
  // The third grouping set lists the types present, so a file whose type column holds one type
  // is then validated and inserted with that type's checks only.
  const pass1 = await store.withConnection((conn) =>
    conn.runAndReadAll(
      `SELECT student_id, event_id AS h, "type", count(*) AS n, GROUPING(student_id, h) AS g,
            min(unicode(event_id)) AS lo, max(unicode(event_id)) AS hi
     FROM (SELECT student_id, event_id, "type" FROM (${rel.sql}))
     GROUP BY GROUPING SETS ((student_id), (h), ("type"))
     HAVING GROUPING(student_id) = 0 OR (GROUPING(h) = 0 AND h IS NOT NULL AND count(*) > 1) OR GROUPING("type") = 0`,
    ),
  );
  // GROUPING(student_id, h): 1 = per-student row, 2 = per-event-id row, 3 = per-type row.
  // An empty result has no columns at all, hence the defaults.
  const columns = pass1.getColumnsJS();
  const ids = (columns[0] ?? []) as (string | null)[];
  const dupCandidates = (columns[1] ?? []) as (string | null)[];
  const types = (columns[2] ?? []) as (string | null)[];
  const ns = (columns[3] ?? []) as bigint[];
  const gs = (columns[4] ?? []) as bigint[];
  const los = (columns[5] ?? []) as (number | null)[];
  const his = (columns[6] ?? []) as (number | null)[];
  let total = 0;
  const dupIds: string[] = [];
  const present: (string | null)[] = [];
  // The code points the file's event ids start with, lowest and highest (over its per-type rows).
  let lo: number | null = null;
  let hi: number | null = null;
  for (let i = 0; i < ids.length; i++) {
    if (Number(gs[i]) !== 3) continue;
    present.push(types[i] ?? null);
    const l = los[i] ?? null;
    const h = his[i] ?? null;
    if (l !== null && (lo === null || l < lo)) lo = l;
    if (h !== null && (hi === null || h > hi)) hi = h;
  }
  const only = present.length === 1 ? present[0] : undefined;
  if (specialize && rel.fixedType === undefined && isEventType(only)) rel = specialize(only);
  await store.run("CREATE OR REPLACE TEMP TABLE __pseudo (student_id VARCHAR, student_key VARCHAR)");
  await store.appendRows(
    "__pseudo",
    (appender) => {
      for (let i = 0; i < ids.length; i++) {
        const g = Number(gs[i]);
        if (g === 3) continue;
        if (g === 2) {
          dupIds.push(dupCandidates[i]!);
          continue;
        }
        total += Number(ns[i]);
        const id = ids[i];
        if (id === null || id === undefined) continue;
        appender.appendVarchar(id);
        appender.appendVarchar(opts.pseudonymizer.studentKey(id));
        appender.endRow();
      }
    },
    { schema: "main", catalog: "temp" },
  );
  opts.onPhase?.(file, "pseudonymize");

  // Within-file duplicates: the first valid row of an event_id wins.
  let dupFilter = "";
  let from = `(${rel.sql})`;
  let withinDups = 0;
  if (dupIds.length > 0) {
    await store.run(
      `CREATE OR REPLACE TEMP TABLE __dups AS
       SELECT event_id, min(__rn) AS keep_rn, count(*) AS n FROM ${numbered(rel)}
       WHERE __ok AND event_id IN (SELECT unnest($ids::VARCHAR[]))
       GROUP BY event_id HAVING count(*) > 1`,
      { ids: listValue(dupIds) },
    );
    const d = await store.one<{ extra: bigint | null }>("SELECT sum(n - 1) AS extra FROM __dups");
    withinDups = Number(d?.extra ?? 0);
    dupFilter = " ANTI JOIN __dups d ON d.event_id = s.event_id AND d.keep_rn <> s.__rn";
    from = numbered(rel);
  }
  opts.onPhase?.(file, "dedupe");

  // Events already stored are skipped. A correlated NOT EXISTS is planned as a delim join that
  // materializes every column of the file but scans raw_events only for the file's ids: right for a
  // small batch into a big store. An explicit ANTI JOIN streams the file but reads every stored
  // event_id (about 30 ns a row, against about 400 ns a file row for the materialization; 12% of
  // the insert's CPU on a 6M-row file): right once the file is more than a few percent of the store.
  // Only stored ids that start with a code point in the file's range can match. UTF-8 orders strings by
  // code point, so that is a range of event_id, and DuckDB's zone maps skip the row groups outside it:
  // files whose ids do not overlap the store's by first character (ids prefixed by source or type) need no
  // join at all, the others build it on the overlap only (a join over every stored id is O(store) per
  // file and spills past the memory limit at 100M). The first code point, not the ids' min and max:
  // integer min/max cost ~5% of pass 1, string min/max ~70%.
  const range = idRangeSql(lo, hi);
  const stored = await store.one<{ n: bigint }>(
    range === null ? "SELECT 0 AS n" : `SELECT count(*) AS n FROM raw_events WHERE ${range}`,
  );
  const storedRows = Number(stored?.n ?? 0n);
  let notStored = dupFilter;
  let keep = "s.__ok";
  if (storedRows > 0 && total * 8 >= storedRows) {
    notStored = ` ANTI JOIN (SELECT event_id FROM raw_events WHERE ${range}) r ON r.event_id = s.event_id${dupFilter}`;
  } else if (storedRows > 0) {
    keep = "s.__ok AND NOT EXISTS (SELECT 1 FROM raw_events r WHERE r.event_id = s.event_id)";
  }
  const cols = rawColumns(now, lit(source));
  let accepted = 0;
  if (rel.fixedType !== "assignment") {
    const single = await store.runCount(
      `INSERT INTO raw_events SELECT ${cols.replace("{topic}", "s.topic_id")}
     FROM ${from} s JOIN __pseudo p USING (student_id)${notStored} WHERE ${keep} AND s."type" <> 'assignment'`,
    );
    accepted += single;
  }
  if (rel.fixedType === undefined || rel.fixedType === "assignment") {
    // Assignments fan out to one row per topic (a valid one has at least one); they count as events: the
    // distinct event ids this run's rows gained. Counted in the stored rows, before and after (this run's
    // rows are found by ingested_at and source, which zone maps narrow to them), not by a pass over the file.
    const assignedSql = `SELECT count(DISTINCT event_id) AS n FROM raw_events
       WHERE ingested_at = ${now} AND source = ${lit(source)} AND "type" = 'assignment'`;
    const before = Number((await store.one<{ n: bigint }>(assignedSql))?.n ?? 0n);
    const fanned = await store.runCount(
      `INSERT INTO raw_events SELECT ${cols.replace("{topic}", "t.topic_id")}
       FROM ${from} s JOIN __pseudo p USING (student_id)${notStored},
            unnest(list_distinct(string_split(s.topic_ids, ${lit(LIST_SEPARATOR)}))) AS t(topic_id)
       WHERE ${keep} AND s."type" = 'assignment'`,
    );
    if (fanned > 0) accepted += Number((await store.one<{ n: bigint }>(assignedSql))?.n ?? 0n) - before;
  }
  // The students' newest school / grade (storage/studentContext.ts) from this file's rows, found by their
  // ingest time and source; DuckDB's zone maps on ingested_at skip the row groups stored before.
  // Reduced per student into a TEMP table first, then upserted (storage/studentContext.ts newestContextSql).
  if (accepted > 0) {
    await store.run(
      `CREATE OR REPLACE TEMP TABLE __context AS ${newestContextSql(
        `SELECT student_key, ts, school_id, grade FROM raw_events
         WHERE ingested_at = ${now} AND source = ${lit(source)} AND (school_id IS NOT NULL OR grade IS NOT NULL)`,
      )}`,
    );
    await store.run(upsertNewestSql("SELECT * FROM __context"));
    await store.run("DROP TABLE __context");
  }
  opts.onPhase?.(file, "insert");

  // Rows neither accepted nor within-file duplicates are invalid or already stored. The validation
  // pass runs only then, so a clean file into a fresh store is read twice, not three times.
  let rejected = 0;
  if (validatedBy === "sql" && total - accepted - withinDups > 0) {
    const payloadCols = STAGE_COLUMNS.filter((c) => c !== "student_id")
      .map((c) => `${lit(c)}, ${ident(c)}`)
      .join(", ");
    // One dead letter per row: its first problem's field and every problem's message.
    const cut = (c: string, n: number) =>
      `CASE WHEN length(${c}) > ${n} THEN left(${c}, ${n}) || '…' ELSE ${c} END`;
    await store.run(
      `CREATE OR REPLACE TEMP TABLE __bad AS
       SELECT __rn, ${cut("event_id", LIMITS.idLength)} AS event_id, ${cut('"type"', 64)} AS "type",
              coalesce(${deadLetterFieldSql("l")}, '(row)') AS field,
              coalesce(nullif(${deadLetterReasonSql("l")}, ''), 'row is invalid') AS reason,
              CAST(json_object('type', ${cut('"type"', 64)}, ${payloadCols}, 'student_key', student_key) AS VARCHAR) AS payload
       FROM (SELECT s.*, p.student_key, ${issuesSql('s."type"', bounds, rel.fixedType)} AS l
             FROM ${numbered(rel)} s LEFT JOIN __pseudo p USING (student_id) WHERE NOT coalesce(s.__ok, false))`,
    );
    await store.run(
      `INSERT INTO dead_letter SELECT ${lit(source)}, __rn, event_id, "type", field, reason, payload, ${now} FROM __bad`,
    );
    const r = await store.one<{ n: bigint }>("SELECT count(*) AS n FROM __bad");
    rejected = Number(r?.n ?? 0);
    await store.run("DROP TABLE __bad");
    // Pass 1 reads only the id and type columns, so a row whose other columns the CSV reader cannot
    // decode (bad UTF-8) is counted there but dropped by the passes that read every column (it is
    // dead-lettered as a malformed row instead). Count the rows those passes see, so such a row is not
    // also reported as a duplicate. __ok reads every column.
    const seen = await store.one<{ n: bigint }>(
      `SELECT count(*) FILTER (WHERE __ok IS NOT DISTINCT FROM __ok) AS n FROM (${rel.sql})`,
    );
    total = Number(seen?.n ?? total);
  } else if (validatedBy === "js") {
    rejected = 0; // the JSON path dead-letters before staging; its caller adds those
  }
  opts.onPhase?.(file, "reject");
  await store.run("DROP TABLE IF EXISTS __pseudo");
  await store.run("DROP TABLE IF EXISTS __dups");
  return { file, source, format: "csv", accepted, duplicate: total - accepted - rejected, rejected };
}

/**
 * SQL condition on event_id: it starts with a code point in [lo, hi] (unicode() of the file's ids; -1 is
 * the empty id), or null when the file has no id. Lower bound chr(lo), upper bound chr(hi + 1) exclusive,
 * stepping over the surrogates (never in UTF-8) and open past the last code point.
 */
function idRangeSql(lo: number | null, hi: number | null): string | null {
  if (lo === null || hi === null) return null;
  const parts: string[] = [];
  if (lo > 0) parts.push(`event_id >= chr(${lo})`);
  let next = hi + 1;
  if (next >= 0xd800 && next <= 0xdfff) next = 0xe000;
  if (next <= 0x10ffff) parts.push(`event_id < chr(${Math.max(next, 1)})`);
  return parts.length === 0 ? "true" : parts.join(" AND ");
}

/**
 * Runs `fn` with FSST string compression off. The only raw_events column FSST wins on is event_id
 * (unique ids; the others are dictionary-encoded), and FSST's analysis and encoding cost about 2
 * CPU-s per 6M rows inserted, for about 10 bytes a row on disk. The setting is changed and restored
 * outside `fn`'s transaction: a SET inside a failed transaction would fail too and hide the error.
 */
async function withoutFsst<T>(store: DuckStore, fn: () => Promise<T>): Promise<T> {
  const cur = await store.one<{ v: string | null }>(
    "SELECT current_setting('disabled_compression_methods') AS v",
  );
  const before = cur?.v ?? "";
  const methods = new Set(before.split(",").filter((m) => m !== ""));
  methods.add("fsst");
  methods.add("dict_fsst");
  await store.run(`SET disabled_compression_methods = ${lit([...methods].join(","))}`);
  try {
    return await fn();
  } finally {
    await store.run(`SET disabled_compression_methods = ${lit(before)}`);
  }
}

/** SELECT list matching raw_events' columns, from stage alias s and pseudonym alias p. */
function rawColumns(now: string, source: string): string {
  const v = (c: string) => `s.${ident(c)}`;
  const dbl = (c: string) => `CAST(${v(c)} AS DOUBLE)`;
  const int = (c: string) => `CAST(CAST(${v(c)} AS DOUBLE) AS INTEGER)`;
  return [
    v("event_id"),
    's."type"',
    "p.student_key",
    "{topic}",
    // UTC wall time through epoch microseconds: no time-zone lookup per row (ICU casts are 4x slower).
    `make_timestamp(epoch_us(CAST(${v("timestamp")} AS TIMESTAMPTZ)))`,
    v("school_id"),
    v("class_id"),
    int("grade"),
    v("question_id"),
    `${v("is_correct")} = 'true'`,
    dbl("time_spent_sec"),
    int("attempt_number"),
    int("hints_used"),
    v("assignment_id"),
    dbl("score_pct"),
    v("video_id"),
    dbl("watch_pct"),
    dbl("watch_duration_sec"),
    int("rewind_count"),
    int("attempts"),
    int("correct_count"),
    int("help_requests"),
    int("resolved_count"),
    source,
    now,
  ].join(", ");
}

function tsLiteral(now: Date | undefined): string {
  const iso = (now ?? new Date()).toISOString();
  return `TIMESTAMP ${lit(iso.replace("T", " ").replace("Z", ""))}`;
}

/** The first line of an error message, printable characters only, at most 300 of them. */
function firstLine(err: unknown): string {
  const line = String((err as Error).message ?? err).split("\n")[0] ?? "";
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is removed
  return line.replace(/[\u0000-\u001f\u007f-\u009f]/g, "?").slice(0, 300);
}

// ---------------------------------------------------------------------------------------------
// JSON path (JSONL files, xAPI files, HTTP API)

interface JsonRecords {
  records: unknown[];
  /** 1-based line (JSONL) or array index + 1 (JSON) of each record. */
  lines: number[];
  format: "jsonl" | "json" | "xapi";
}

function readJsonRecords(path: string, ext: string): JsonRecords {
  const text = readFileSync(path, "utf8");
  const records: unknown[] = [];
  const lines: number[] = [];
  let format: JsonRecords["format"] = ext === ".json" ? "json" : "jsonl";
  if (ext === ".json") {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (err) {
      throw new IngestError("INGEST_JSON", `${path}: not valid JSON (${jsonErrorText(err)})`);
    }
    const list = Array.isArray(parsed) ? parsed : [parsed];
    list.forEach((r, i) => {
      records.push(r);
      lines.push(i + 1);
    });
  } else {
    const all = text.split("\n");
    for (let i = 0; i < all.length; i++) {
      const line = all[i]!.trim();
      if (line === "") continue;
      try {
        records.push(JSON.parse(line));
      } catch (err) {
        records.push(new MalformedRecord(jsonErrorText(err), Buffer.byteLength(line)));
      }
      lines.push(i + 1);
    }
  }
  if (records.length > 0 && records.every((r) => isXapiStatement(r))) format = "xapi";
  return { records, lines, format };
}

/** What the HTTP API returns per rejected event. */
export interface RecordIssues {
  index: number;
  eventId?: string;
  issues: ValidationIssue[];
}

/**
 * Ingests parsed JSON records: learning events or xAPI statements (mixed is fine). The HTTP API
 * calls this with a request body; invalid records go to dead_letter and are returned, valid ones
 * are stored.
 */
export async function ingestEvents(
  store: DuckStore,
  records: readonly unknown[],
  opts: IngestOptions,
): Promise<FileReport & { problems: RecordIssues[] }> {
  const report = await ingestRecords(store, records, opts, undefined);
  return report;
}

/** A record that failed the contract, ready for dead_letter (one row) and for the API's item list. */
export interface RejectedRecord {
  ok: false;
  /** Its event_id (or xAPI statement id) when it has a usable one, cut to LIMITS.idLength. */
  eventId: string | null;
  type: string | null;
  /** Every problem, each naming its field. */
  issues: ValidationIssue[];
  /** dead_letter.field and .reason (features/deadLetters.ts deadLetterEntry). */
  field: string;
  reason: string;
  /** Redacted, bounded payload (features/deadLetters.ts). */
  payload: string;
}

export type CheckedRecord = { ok: true; event: LearningEvent } | RejectedRecord;

/** A JSON line or message that is not JSON; checkRecord rejects it without keeping its text. */
export class MalformedRecord {
  constructor(
    readonly message: string,
    readonly bytes: number,
  ) {}
}

const cutId = (v: unknown, max: number): string | null => {
  if (typeof v !== "string") return null;
  const chars = Array.from(v);
  return chars.length <= max ? v : `${chars.slice(0, max).join("")}…`;
};

/**
 * The one check of a JSON record (a learning event or an xAPI statement) for every JSON path:
 * JSON/JSONL/xAPI files, POST /events and the stream. Never throws, whatever the record holds.
 */
export function checkRecord(rec: unknown, pseudonymizer: Pseudonymizer, bounds: TimeBounds): CheckedRecord {
  const reject = (original: unknown, mapped: unknown, issues: ValidationIssue[]): RejectedRecord => {
    const obj = (typeof mapped === "object" && mapped !== null ? mapped : {}) as Record<string, unknown>;
    const eventId = cutId(
      typeof obj.event_id === "string" ? obj.event_id : xapiId(original),
      LIMITS.idLength,
    );
    const type = cutId(obj.type, 64);
    const entry = deadLetterEntry(type, issues);
    const payload =
      original instanceof MalformedRecord
        ? unparsedPayload(original.bytes)
        : redactedPayload(original, pseudonymizer);
    return { ok: false, eventId, type, issues, ...entry, payload };
  };
  if (rec instanceof MalformedRecord)
    return reject(rec, null, [{ field: "(row)", reason: `malformed JSON: ${rec.message}` }]);
  if (nestsDeeperThan(rec, LIMITS.depth))
    return reject(rec, null, [
      { field: "(event)", reason: `event nests deeper than ${LIMITS.depth} levels; flatten it` },
    ]);
  let candidate: unknown = rec;
  if (isXapiStatement(rec)) {
    const mapped = xapiToEvent(rec);
    if (!mapped.ok) return reject(rec, null, mapped.issues);
    candidate = mapped.value;
  }
  const r = validateEvent(candidate, { bounds });
  return r.ok ? { ok: true, event: r.value } : reject(rec, candidate, r.issues);
}

async function ingestRecords(
  store: DuckStore,
  records: readonly unknown[],
  opts: IngestOptions,
  lines: number[] | undefined,
): Promise<FileReport & { problems: RecordIssues[] }> {
  const source = opts.source ?? "api";
  const bounds = boundsOf(opts);
  const valid: { rn: number; event: LearningEvent }[] = [];
  const problems: RecordIssues[] = [];
  const dead: (RejectedRecord & { rn: number })[] = [];
  records.forEach((rec, i) => {
    const rn = lines?.[i] ?? i + 1;
    const c = checkRecord(rec, opts.pseudonymizer, bounds);
    if (c.ok) {
      valid.push({ rn, event: c.event });
      return;
    }
    const p: RecordIssues = { index: i, issues: c.issues };
    if (c.eventId !== null) p.eventId = c.eventId;
    problems.push(p);
    dead.push({ ...c, rn });
  });

  return withoutFsst(store, () =>
    store.transaction(async () => {
      if (dead.length > 0) {
        const now = tsLiteral(opts.now);
        await store.run(
          "CREATE OR REPLACE TEMP TABLE __dead (rn BIGINT, event_id VARCHAR, type VARCHAR, field VARCHAR, reason VARCHAR, payload VARCHAR)",
        );
        await store.appendRows(
          "__dead",
          (ap) => {
            for (const d of dead) {
              ap.appendBigInt(BigInt(d.rn));
              d.eventId === null ? ap.appendNull() : ap.appendVarchar(d.eventId);
              d.type === null ? ap.appendNull() : ap.appendVarchar(d.type);
              ap.appendVarchar(d.field);
              ap.appendVarchar(d.reason);
              ap.appendVarchar(d.payload);
              ap.endRow();
            }
          },
          { schema: "main", catalog: "temp" },
        );
        await store.run(
          `INSERT INTO dead_letter SELECT ${lit(source)}, rn, event_id, type, field, reason, payload, ${now} FROM __dead`,
        );
        await store.run("DROP TABLE __dead");
      }
      await store.run(
        `CREATE OR REPLACE TEMP TABLE __stage (__rn BIGINT, "type" VARCHAR, ${STAGE_COLUMNS.map((c) => `${ident(c)} VARCHAR`).join(", ")}, __ok BOOLEAN)`,
      );
      await store.appendRows(
        "__stage",
        (ap) => {
          for (const { rn, event } of valid) {
            ap.appendBigInt(BigInt(rn));
            ap.appendVarchar(event.type);
            const e = event as unknown as Record<string, unknown>;
            for (const c of STAGE_COLUMNS) {
              const v = e[c];
              if (v === undefined || v === null) ap.appendNull();
              else if (Array.isArray(v)) ap.appendVarchar(v.join(LIST_SEPARATOR));
              else ap.appendVarchar(String(v));
            }
            ap.appendBoolean(true);
            ap.endRow();
          }
        },
        { schema: "main", catalog: "temp" },
      );
      const rejectedRecords = records.length - valid.length;
      const report = await loadRelation(
        store,
        "(records)",
        source,
        opts,
        bounds,
        { sql: "SELECT * FROM __stage", hasRn: true, fixedType: undefined },
        "js",
      );
      await store.run("DROP TABLE IF EXISTS __stage");
      return { ...report, format: "api" as const, rejected: rejectedRecords, problems };
    }),
  );
}

function xapiId(rec: unknown): string | null {
  if (typeof rec === "object" && rec !== null && typeof (rec as { id?: unknown }).id === "string") {
    return (rec as { id: string }).id;
  }
  return null;
}

// ---------------------------------------------------------------------------------------------
// Topic metadata

async function ingestTopicsFile(
  store: DuckStore,
  path: string,
  source: string,
  opts: IngestOptions,
): Promise<FileReport> {
  const ext = extname(path).toLowerCase();
  let records: unknown[];
  if (ext === ".json") {
    checkFileContent(path, "text");
    let parsed: unknown;
    try {
      parsed = JSON.parse(readFileSync(path, "utf8"));
    } catch (err) {
      throw new IngestError("INGEST_JSON", `${path}: not valid JSON (${jsonErrorText(err)})`);
    }
    const list = Array.isArray(parsed) ? parsed : (parsed as { topics?: unknown }).topics;
    if (!Array.isArray(list)) {
      throw new IngestError("INGEST_TOPICS", `${path}: expected a JSON array of topics or {"topics": [...]}`);
    }
    records = list;
  } else if (ext === ".csv" || ext === ".tsv") {
    checkFileContent(path, "text");
    const rows = await store.all(
      `SELECT * FROM read_csv(${sqlString(path)}, header = true, all_varchar = true, delim = ${lit(ext === ".tsv" ? "\t" : ",")})`,
    );
    records = rows.map(topicFromCsv);
  } else {
    throw new IngestError("INGEST_TOPICS", `${path}: topics must be topics.json or topics.csv`);
  }
  const good: TopicMetadata[] = [];
  const now = tsLiteral(opts.now);
  let rejected = 0;
  return store.transaction(async () => {
    for (let i = 0; i < records.length; i++) {
      const r = validateTopic(records[i]);
      if (r.ok) {
        good.push(r.value);
        continue;
      }
      rejected++;
      const entry = deadLetterEntry(null, r.issues);
      await store.run(
        `INSERT INTO dead_letter VALUES ($source, $rn, NULL, 'topic', $field, $reason, $payload, ${now})`,
        {
          source,
          rn: i + 1,
          field: entry.field,
          reason: entry.reason,
          payload: redactedPayload(records[i], opts.pseudonymizer),
        },
      );
    }
    // One statement for the file: a statement per topic cost ~8 ms of CPU each (about 1 CPU-s for the
    // generator's 120 topics, a tenth of a 1M-event ingest). A topic listed twice: the last copy wins,
    // as it did row by row (one INSERT OR REPLACE cannot update a row twice).
    const last = new Map<string, TopicMetadata>();
    for (const t of good) {
      last.delete(t.topic_id);
      last.set(t.topic_id, t);
    }
    if (last.size > 0) {
      await store.run(
        "CREATE OR REPLACE TEMP TABLE __topics (topic_id VARCHAR, name VARCHAR, chapter_id VARCHAR, subject_id VARCHAR, course_id VARCHAR, difficulty DOUBLE, prereq VARCHAR, content_length DOUBLE)",
      );
      await store.appendRows(
        "__topics",
        (ap) => {
          for (const t of last.values()) {
            ap.appendVarchar(t.topic_id);
            t.name === undefined ? ap.appendNull() : ap.appendVarchar(t.name);
            ap.appendVarchar(t.chapter_id);
            ap.appendVarchar(t.subject_id);
            ap.appendVarchar(t.course_id);
            ap.appendDouble(t.difficulty_estimate);
            ap.appendVarchar(JSON.stringify(t.prerequisites));
            ap.appendDouble(t.content_length);
            ap.endRow();
          }
        },
        { schema: "main", catalog: "temp" },
      );
      await store.run(
        `INSERT OR REPLACE INTO topics SELECT topic_id, name, chapter_id, subject_id, course_id, difficulty,
           from_json(prereq, '["VARCHAR"]'), content_length FROM __topics`,
      );
      await store.run("DROP TABLE __topics");
    }
    return { file: path, source, format: "topics" as const, accepted: good.length, duplicate: 0, rejected };
  });
}

/** A topics.csv row in CSV conventions -> a JSON-typed object for validateTopic. */
function topicFromCsv(row: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(row)) {
    if (v === null || v === undefined) continue;
    const s = String(v);
    if (k === "prerequisites") out[k] = s === "" ? [] : s.split(LIST_SEPARATOR);
    else if (k === "difficulty_estimate" || k === "content_length") {
      const n = Number(s);
      out[k] = s.trim() !== "" && Number.isFinite(n) ? n : s;
    } else out[k] = s;
  }
  if (!("prerequisites" in out) && "prerequisites" in row) out.prerequisites = [];
  return out;
}

/** The built-in --mapping whose columns `path`'s header line has (features/columnMappings.ts), if one does. */
export function mappingHintFor(path: string): string | undefined {
  if (!TABULAR.has(extname(path).toLowerCase()) || extname(path).toLowerCase() === ".parquet")
    return undefined;
  const buf = Buffer.alloc(65_536);
  const fd = openSync(path, "r");
  let n: number;
  try {
    n = readSync(fd, buf, 0, buf.length, 0);
  } finally {
    closeSync(fd);
  }
  const text = buf
    .subarray(0, n)
    .toString("utf8")
    .replace(/^\uFEFF/, "");
  const end = text.search(/\r?\n/);
  return builtinMappingFor(end < 0 ? text : text.slice(0, end));
}
