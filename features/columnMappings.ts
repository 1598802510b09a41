/**
 * Column mappings: how a foreign tabular log (ASSISTments, DataShop/Cognitive Tutor, an LMS export)
 * becomes contract fields, so real logs flow through the same validate -> pseudonymize -> dedupe
 * path as native files. A mapping is declarative (column names plus a closed set of transforms),
 * never SQL text, so a mapping file cannot inject SQL.
 *
 * Built-ins (`--mapping assistments`, `--mapping cognitive_tutor`) and their documented choices:
 *  - assistments (as.csv, ASSISTments 2009 skill builder): one row = the first response to one
 *    problem -> quiz_attempt. The file has no timestamps; order_id is ASSISTments' global log
 *    sequence, so timestamp = 2008-09-01T00:00:00Z + order_id seconds: monotone in log order
 *    (what BKT/Elo need) but the calendar dates are synthetic. attempt_count is 0 on 306 rows where
 *    the student only asked for hints; the row is still the first response, so attempt_number is
 *    clamped to >= 1. topic_id = skill_name, else skill_id.
 *  - cognitive_tutor (ct.tsv, KDD Cup / DataShop step export): one row = one step -> quiz_attempt,
 *    is_correct = Correct First Attempt, question_id = "Problem Name / Step Name" (step names
 *    repeat across problems), attempt_number = 1 (the row records the first attempt).
 *    First Transaction Time has no offset: read as UTC. Rows without a KC(Default) are rejected to
 *    dead_letter ("quiz_attempt.topic_id is required"), as pyBKT drops untagged steps: folding them
 *    into the problem hierarchy would create pseudo-skills that mean "this unit", not a skill.
 *    Multi-KC steps ("a~~b") keep the combined label as one topic id.
 * event_id gets a source prefix ("assistments:", "ct:") because raw row ids repeat across logs.
 */
import { readFileSync } from "node:fs";
import { extname } from "node:path";
import { parse as parseYaml } from "yaml";
import { EVENT_TYPES, type EventType } from "./contracts.ts";
import { ident, lit, STAGE_COLUMNS } from "./ingestSql.ts";

export type FieldSource =
  | { const: string }
  | {
      /** One column, several columns (first non-empty wins), or several joined with `separator`. */
      column?: string;
      coalesce?: string[];
      concat?: string[];
      separator?: string;
      prefix?: string;
      /** Numeric value divided by this (e.g. 1000 for milliseconds -> seconds). */
      divide?: number;
      /** Numeric value raised to at least this. */
      clampMin?: number;
      /** "01": 1/0 -> true/false. */
      boolean?: "01";
      /** "naive-utc": "2006-10-26 09:52:30.0" read as UTC; or a synthetic time from a sequence number. */
      timestamp?: "naive-utc" | { epoch: string; secondsPerUnit: number };
    };

export interface ColumnMapping {
  name: string;
  description?: string;
  /** Field separator; default: tab for .tsv files, else comma. */
  delimiter?: string;
  /** Event type of every row, unless `fields.type` maps a column. */
  type?: EventType;
  fields: Record<string, FieldSource>;
}

export class MappingError extends Error {
  readonly code = "MAPPING_INVALID";
  constructor(message: string) {
    super(message);
    this.name = "MappingError";
  }
}

export const BUILTIN_MAPPINGS: Readonly<Record<string, ColumnMapping>> = {
  assistments: {
    name: "assistments",
    description: "ASSISTments 2009 skill-builder export (as.csv)",
    delimiter: ",",
    type: "quiz_attempt",
    fields: {
      event_id: { column: "order_id", prefix: "assistments:" },
      student_id: { column: "user_id" },
      topic_id: { coalesce: ["skill_name", "skill_id"] },
      question_id: { column: "problem_id" },
      is_correct: { column: "correct", boolean: "01" },
      time_spent_sec: { column: "ms_first_response", divide: 1000 },
      attempt_number: { column: "attempt_count", clampMin: 1 },
      hints_used: { column: "hint_count" },
      school_id: { column: "school_id" },
      class_id: { column: "student_class_id" },
      timestamp: { column: "order_id", timestamp: { epoch: "2008-09-01T00:00:00Z", secondsPerUnit: 1 } },
    },
  },
  cognitive_tutor: {
    name: "cognitive_tutor",
    description: "PSLC DataShop / KDD Cup step export (ct.tsv)",
    delimiter: "\t",
    type: "quiz_attempt",
    fields: {
      event_id: { column: "Row", prefix: "ct:" },
      student_id: { column: "Anon Student Id" },
      topic_id: { column: "KC(Default)" },
      question_id: { concat: ["Problem Name", "Step Name"], separator: " / " },
      is_correct: { column: "Correct First Attempt", boolean: "01" },
      time_spent_sec: { column: "Step Duration (sec)" },
      hints_used: { column: "Hints" },
      attempt_number: { const: "1" },
      timestamp: { column: "First Transaction Time", timestamp: "naive-utc" },
    },
  },
};

const SOURCE_KEYS = new Set([
  "const",
  "column",
  "coalesce",
  "concat",
  "separator",
  "prefix",
  "divide",
  "clampMin",
  "boolean",
  "timestamp",
]);

/** A built-in mapping by name, or a YAML/JSON mapping file. */
export function loadMapping(nameOrFile: string): ColumnMapping {
  const builtin = BUILTIN_MAPPINGS[nameOrFile];
  if (builtin) return builtin;
  const ext = extname(nameOrFile).toLowerCase();
  if (![".json", ".yaml", ".yml"].includes(ext)) {
    throw new MappingError(
      `--mapping ${nameOrFile}: not a built-in mapping (${Object.keys(BUILTIN_MAPPINGS).join(", ")}) ` +
        "nor a .json/.yaml mapping file",
    );
  }
  let text: string;
  try {
    text = readFileSync(nameOrFile, "utf8");
  } catch (err) {
    throw new MappingError(`--mapping ${nameOrFile}: cannot read the file (${(err as Error).message})`);
  }
  let parsed: unknown;
  try {
    parsed = ext === ".json" ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    throw new MappingError(`--mapping ${nameOrFile}: not valid ${ext.slice(1)} (${(err as Error).message})`);
  }
  return checkMapping(parsed, nameOrFile);
}

/** Validates a parsed mapping, naming the offending key. */
export function checkMapping(value: unknown, where: string): ColumnMapping {
  const fail = (msg: string): never => {
    throw new MappingError(`mapping ${where}: ${msg}`);
  };
  if (typeof value !== "object" || value === null) return fail("must be an object with `fields`");
  const m = value as Record<string, unknown>;
  if (m.type !== undefined && !(EVENT_TYPES as readonly unknown[]).includes(m.type)) {
    fail(`type must be one of ${EVENT_TYPES.join(", ")} (got ${JSON.stringify(m.type)})`);
  }
  if (m.delimiter !== undefined && (typeof m.delimiter !== "string" || m.delimiter.length !== 1)) {
    fail(`delimiter must be one character (got ${JSON.stringify(m.delimiter)})`);
  }
  if (typeof m.fields !== "object" || m.fields === null)
    return fail("fields must map contract fields to sources");
  const allowed = new Set([...STAGE_COLUMNS, "type"]);
  for (const [field, src] of Object.entries(m.fields as Record<string, unknown>)) {
    if (!allowed.has(field)) fail(`fields.${field} is not a contract field (${[...allowed].join(", ")})`);
    if (typeof src !== "object" || src === null)
      fail(`fields.${field} must be an object like {column: NAME}`);
    const s = src as Record<string, unknown>;
    for (const k of Object.keys(s))
      if (!SOURCE_KEYS.has(k)) fail(`fields.${field}.${k} is not a known option`);
    const bases = ["const", "column", "coalesce", "concat"].filter((k) => s[k] !== undefined);
    if (bases.length !== 1) fail(`fields.${field} needs exactly one of const, column, coalesce, concat`);
    for (const k of ["divide", "clampMin"]) {
      if (s[k] !== undefined && (typeof s[k] !== "number" || !Number.isFinite(s[k]) || s[k] === 0)) {
        fail(`fields.${field}.${k} must be a non-zero number`);
      }
    }
    for (const k of ["coalesce", "concat"]) {
      const v = s[k];
      if (
        v !== undefined &&
        (!Array.isArray(v) || v.length === 0 || !v.every((x) => typeof x === "string"))
      ) {
        fail(`fields.${field}.${k} must be a non-empty list of column names`);
      }
    }
    if (s.boolean !== undefined && s.boolean !== "01") fail(`fields.${field}.boolean must be "01"`);
    const ts = s.timestamp as unknown;
    if (ts !== undefined && ts !== "naive-utc") {
      const o = ts as Record<string, unknown> | null;
      if (
        typeof o !== "object" ||
        o === null ||
        typeof o.epoch !== "string" ||
        Number.isNaN(Date.parse(o.epoch)) ||
        typeof o.secondsPerUnit !== "number"
      ) {
        fail(
          `fields.${field}.timestamp must be "naive-utc" or {epoch: ISO date-time, secondsPerUnit: number}`,
        );
      }
    }
  }
  const name = typeof m.name === "string" ? m.name : where;
  return { ...(m as unknown as ColumnMapping), name };
}

/** SQL VARCHAR expression (CSV conventions) producing `src` from the file's columns. */
export function sourceSql(src: FieldSource, available: ReadonlySet<string>): string {
  if ("const" in src && src.const !== undefined) return lit(src.const);
  const s = src as Exclude<FieldSource, { const: string }>;
  const col = (name: string): string => {
    if (!available.has(name)) {
      throw new MappingError(`mapping refers to column "${name}", which the file does not have`);
    }
    return ident(name);
  };
  let e: string;
  if (s.column !== undefined) e = col(s.column);
  else if (s.coalesce) e = `coalesce(${s.coalesce.map((c) => `nullif(${col(c)}, '')`).join(", ")})`;
  else if (s.concat) e = `concat_ws(${lit(s.separator ?? "")}, ${s.concat.map(col).join(", ")})`;
  else throw new MappingError("a field source needs one of const, column, coalesce, concat");
  if (s.divide !== undefined) e = `coalesce(CAST(TRY_CAST(${e} AS DOUBLE) / ${s.divide} AS VARCHAR), ${e})`;
  if (s.clampMin !== undefined) {
    e = `coalesce(CAST(greatest(TRY_CAST(${e} AS DOUBLE), ${s.clampMin}) AS VARCHAR), ${e})`;
  }
  if (s.boolean === "01") e = `CASE ${e} WHEN '1' THEN 'true' WHEN '0' THEN 'false' ELSE ${e} END`;
  if (s.timestamp === "naive-utc") e = `(replace(${e}, ' ', 'T') || 'Z')`;
  else if (s.timestamp !== undefined) {
    const epoch = new Date(s.timestamp.epoch).toISOString().replace("T", " ").replace("Z", "");
    e =
      `coalesce(strftime(TIMESTAMP ${lit(epoch)} + to_microseconds(CAST(round(TRY_CAST(${e} AS DOUBLE) * ` +
      `${s.timestamp.secondsPerUnit * 1e6}) AS BIGINT)), '%Y-%m-%dT%H:%M:%S.%fZ'), ${e})`;
  }
  if (s.prefix !== undefined) e = `(${lit(s.prefix)} || ${e})`;
  return e;
}

/**
 * The built-in mapping whose columns a file's header line has (split by the mapping's delimiter; every
 * mapped field's column, one of a coalesce list, every part of a concat), if exactly one fits: the hint
 * when a foreign log is ingested without --mapping and every row is rejected.
 */
export function builtinMappingFor(headerLine: string): string | undefined {
  const matches = Object.values(BUILTIN_MAPPINGS).filter((m) => {
    const has = new Set(headerLine.split(m.delimiter ?? ",").map((h) => h.trim().replace(/^"(.*)"$/, "$1")));
    return Object.values(m.fields).every((src) => {
      if ("const" in src) return true;
      if (src.column !== undefined) return has.has(src.column);
      if (src.coalesce !== undefined) return src.coalesce.some((c) => has.has(c));
      if (src.concat !== undefined) return src.concat.every((c) => has.has(c));
      return true;
    });
  });
  return matches.length === 1 ? matches[0]!.name : undefined;
}
