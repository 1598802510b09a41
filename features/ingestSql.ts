/**
 * Compiles the JSON Schemas of features/contracts.ts into DuckDB SQL, so bulk CSV/Parquet rows are
 * validated inside DuckDB by the same contract (and with the same messages) as JSON events are by
 * ajv. The input is a staging table of VARCHAR columns named after the contract fields, holding
 * text in the CSV conventions: empty = NULL, booleans true/false, lists joined by "|".
 *
 * Only the keywords the contracts use are understood (type, const, required, minLength, pattern,
 * format date-time, minimum, maximum incl. `$data` sibling references, minItems, items); an
 * unknown keyword throws at compile time so the two paths cannot drift silently.
 */
import {
  dataPointerField,
  EVENT_SCHEMAS,
  EVENT_TYPES,
  type EventType,
  type FieldSchema,
  messages,
  TIMESTAMP_PATTERN,
} from "./contracts.ts";

/** Separator of list cells (topic_ids, prerequisites) in CSV. */
export const LIST_SEPARATOR = "|";

/** Every contract field but `type`, in a stable order: the VARCHAR columns of the staging table. */
export const STAGE_COLUMNS: readonly string[] = (() => {
  const cols: string[] = [];
  for (const t of EVENT_TYPES) {
    for (const f of Object.keys(EVENT_SCHEMAS[t].properties)) {
      if (f !== "type" && !cols.includes(f)) cols.push(f);
    }
  }
  return cols;
})();

const KNOWN_KEYWORDS = new Set([
  "type",
  "description",
  "const",
  "minLength",
  "pattern",
  "format",
  "minimum",
  "maximum",
  "minItems",
  "items",
]);

export function ident(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

export function lit(value: string): string {
  return `'${value.replaceAll("'", "''")}'`;
}

interface Check {
  field: string;
  /** SQL boolean: true when the row violates this rule. */
  bad: string;
  /** SQL VARCHAR: the message. */
  message: string;
}

const num = (c: string) => `TRY_CAST(${c} AS DOUBLE)`;
const isNum = (c: string) => `coalesce(isfinite(${num(c)}), false)`;
// Strings are quoted as JSON in messages, like `show()` does for JSON input.
const shown = (c: string) => `CAST(to_json(${c}) AS VARCHAR)`;
const concat = (...parts: string[]) => parts.join(" || ");

function fieldChecks(scope: string, field: string, fs: FieldSchema, required: boolean): Check[] {
  for (const k of Object.keys(fs)) {
    if (!KNOWN_KEYWORDS.has(k))
      throw new Error(`contract keyword "${k}" on ${scope}.${field} has no SQL form`);
  }
  const c = ident(field);
  const checks: Check[] = [];
  if (required) checks.push({ field, bad: `${c} IS NULL`, message: lit(messages.required(scope, field)) });
  const present = `${c} IS NOT NULL`;
  switch (fs.type) {
    case "string": {
      if (fs.const !== undefined) break; // the type column is set by the loader, never free text
      if (fs.minLength !== undefined && fs.minLength > 0) {
        checks.push({
          field,
          bad: `${present} AND length(${c}) < ${fs.minLength}`,
          message: lit(messages.minLength(scope, field)),
        });
      }
      if (fs.pattern !== undefined) {
        if (fs.pattern !== TIMESTAMP_PATTERN || fs.format !== "date-time") {
          throw new Error(`${scope}.${field}: only the timestamp pattern has an SQL form`);
        }
        checks.push({
          field,
          bad: `${present} AND NOT (regexp_full_match(${c}, ${lit(fs.pattern)}) AND TRY_CAST(${c} AS TIMESTAMPTZ) IS NOT NULL)`,
          message: template(messages.timestamp(scope, field, HOLE), shown(c)),
        });
      }
      break;
    }
    case "boolean":
      checks.push({
        field,
        bad: `${present} AND ${c} NOT IN ('true', 'false')`,
        message: typeMessage(scope, field, fs, shown(c)),
      });
      break;
    case "number":
    case "integer": {
      const notNum = `${present} AND NOT ${isNum(c)}`;
      checks.push({ field, bad: notNum, message: typeMessage(scope, field, fs, shown(c)) });
      if (fs.type === "integer") {
        checks.push({
          field,
          bad: `${present} AND ${isNum(c)} AND ${num(c)} <> trunc(${num(c)})`,
          message: typeMessage(scope, field, fs, c),
        });
      }
      if (fs.minimum !== undefined) {
        checks.push({
          field,
          bad: `${present} AND ${num(c)} < ${fs.minimum}`,
          message: template(messages.minimum(scope, field, fs.minimum, HOLE), c),
        });
      }
      if (typeof fs.maximum === "number") {
        checks.push({
          field,
          bad: `${present} AND ${num(c)} > ${fs.maximum}`,
          message: template(messages.maximum(scope, field, fs.maximum, HOLE), c),
        });
      } else if (fs.maximum !== undefined) {
        const other = dataPointerField(fs.maximum.$data);
        const o = ident(other);
        // Like ajv with $data: the rule applies only when the referenced field is a number.
        checks.push({
          field,
          bad: `${present} AND ${isNum(o)} AND ${num(c)} > ${num(o)}`,
          message: template(messages.maximumField(scope, field, other, HOLE, HOLE), c, o),
        });
      }
      break;
    }
    case "array": {
      const items = `string_split(${c}, ${lit(LIST_SEPARATOR)})`;
      checks.push({
        field,
        bad: `${present} AND list_contains(${items}, '')`,
        message: lit(messages.emptyItem(scope, field)),
      });
      break;
    }
  }
  return checks;
}

const HOLE = "\u0000";

/** Turns a message rendered with HOLEs in place of values into SQL that splices `values` in, in order. */
function template(rendered: string, ...values: string[]): string {
  const pieces = rendered.split(HOLE);
  const parts: string[] = [];
  pieces.forEach((piece, i) => {
    if (piece !== "") parts.push(lit(piece));
    const v = values[i];
    if (i < pieces.length - 1 && v !== undefined) parts.push(v);
  });
  return concat(...parts);
}

function typeMessage(scope: string, field: string, fs: FieldSchema, gotSql: string): string {
  return template(messages.type(scope, field, fs, HOLE), gotSql);
}

const checksCache = new Map<EventType, Check[]>();

/** Every rule of one event type, compiled from its schema. */
export function checksFor(type: EventType): Check[] {
  let checks = checksCache.get(type);
  if (!checks) {
    const schema = EVENT_SCHEMAS[type];
    checks = [];
    for (const [field, fs] of Object.entries(schema.properties)) {
      if (field === "type") continue;
      checks.push(...fieldChecks(type, field, fs, schema.required.includes(field)));
    }
    checksCache.set(type, checks);
  }
  return checks;
}

/**
 * SQL boolean: the row satisfies its type's contract. `typeSql` is the type column; `fixedType`
 * when the whole file has one type (only that type's checks are emitted).
 */
export function validSql(typeSql: string, fixedType?: EventType): string {
  if (fixedType)
    return `NOT (${checksFor(fixedType)
      .map((c) => `(${c.bad})`)
      .join(" OR ")})`;
  const arms = EVENT_TYPES.map((t) => {
    const bad = checksFor(t).map((c) => `(${c.bad})`);
    return `WHEN ${lit(t)} THEN NOT (${bad.join(" OR ")})`;
  });
  return `coalesce(CASE ${typeSql} ${arms.join(" ")} ELSE false END, false)`;
}

/** SQL list of STRUCT(field, reason): every violation of the row (empty for valid rows). */
export function issuesSql(typeSql: string, fixedType?: EventType): string {
  const listOf = (t: EventType) =>
    `[${checksFor(t)
      .map((c) => `CASE WHEN ${c.bad} THEN {'field': ${lit(c.field)}, 'reason': ${c.message}} END`)
      .join(", ")}]`;
  if (fixedType) return `list_filter(${listOf(fixedType)}, x -> x IS NOT NULL)`;
  const arms = EVENT_TYPES.map((t) => `WHEN ${lit(t)} THEN ${listOf(t)}`);
  const missing = lit(`event.type is required; allowed types: ${EVENT_TYPES.join(", ")}`);
  const wrong = template(`event.type must be one of ${EVENT_TYPES.join(", ")} (got ${HOLE})`, shown(typeSql));
  const unknown = `CASE WHEN ${typeSql} IS NULL THEN ${missing} ELSE ${wrong} END`;
  return `list_filter(CASE ${typeSql} ${arms.join(" ")} ELSE [{'field': 'type', 'reason': ${unknown}}] END, x -> x IS NOT NULL)`;
}
