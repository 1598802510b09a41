/**
 * Compiles the JSON Schemas of features/contracts.ts into DuckDB SQL, so bulk CSV/Parquet rows are
 * validated inside DuckDB by the same contract (and with the same messages) as JSON events are by
 * ajv. The input is a staging table of VARCHAR columns named after the contract fields, holding
 * text in the CSV conventions: empty = NULL, booleans true/false, lists joined by "|".
 *
 * Only the keywords the contracts use are understood (type, const, required, minLength, maxLength,
 * pattern (the timestamp and text patterns), format date-time, x-plausible-time, minimum, maximum
 * incl. `$data` sibling references, minItems, maxItems, items); an unknown keyword throws at
 * compile time so the two paths cannot drift silently. CSV text is UTF-8 (DuckDB rejects other
 * bytes as a malformed row), so the text pattern's SQL form only has NUL characters to find.
 */

import type { TimeBounds } from "./contractConfig.ts";
import {
  dataPointerField,
  EVENT_SCHEMAS,
  EVENT_TYPES,
  type EventType,
  type FieldSchema,
  LIMITS,
  messages,
  TEXT_PATTERN,
  TIMESTAMP_PATTERN,
} from "./contracts.ts";
import { UNKNOWN_FIELD_POSITION } from "./deadLetters.ts";

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
  "maxLength",
  "pattern",
  "format",
  "x-plausible-time",
  "x-max-bytes",
  "minimum",
  "maximum",
  "minItems",
  "maxItems",
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
const tooLongSuffix = (c: string) => `'… (' || length(${c}) || ' characters)'`;
// Strings are quoted as JSON in messages, at most LIMITS.echo characters, like `show()` does for JSON input.
const shown = (c: string) =>
  `CASE WHEN length(${c}) > ${LIMITS.echo} THEN CAST(to_json(left(${c}, ${LIMITS.echo})) AS VARCHAR) || ${tooLongSuffix(c)} ELSE CAST(to_json(${c}) AS VARCHAR) END`;
// A raw cell (a number's text), bounded the same way.
const bounded = (c: string) =>
  `CASE WHEN length(${c}) > ${LIMITS.echo} THEN left(${c}, ${LIMITS.echo}) || ${tooLongSuffix(c)} ELSE ${c} END`;
const hasNul = (c: string) => `contains(${c}, chr(0))`;
const concat = (...parts: string[]) => parts.join(" || ");

/** A check, or one made from the time bounds of a run. */
type Rule = Check | ((bounds: TimeBounds) => Check);

function fieldChecks(
  scope: string,
  field: string,
  fs: FieldSchema,
  required: boolean,
  scopeSql?: string,
): Rule[] {
  for (const k of Object.keys(fs)) {
    if (!KNOWN_KEYWORDS.has(k))
      throw new Error(`contract keyword "${k}" on ${scope}.${field} has no SQL form`);
  }
  const c = ident(field);
  const checks: Rule[] = [];
  const { s, msg } = scoped(scope, scopeSql);
  if (required) checks.push({ field, bad: `${c} IS NULL`, message: msg(messages.required(s, field)) });
  const present = `${c} IS NOT NULL`;
  switch (fs.type) {
    case "string": {
      if (fs.const !== undefined) break; // the type column is set by the loader, never free text
      if (fs.minLength !== undefined && fs.minLength > 0) {
        checks.push({
          field,
          bad: `${present} AND length(${c}) < ${fs.minLength}`,
          message: msg(messages.minLength(s, field)),
        });
      }
      if (fs.maxLength !== undefined) {
        checks.push({
          field,
          bad: `${present} AND length(${c}) > ${fs.maxLength}`,
          message: msg(messages.maxLength(s, field, fs.maxLength, HOLE), `CAST(length(${c}) AS VARCHAR)`),
        });
      }
      if (fs.pattern === TEXT_PATTERN) {
        checks.push({ field, bad: `${present} AND ${hasNul(c)}`, message: msg(messages.text(s, field)) });
      } else if (fs.pattern !== undefined) {
        if (fs.pattern !== TIMESTAMP_PATTERN || fs.format !== "date-time") {
          throw new Error(`${scope}.${field}: only the timestamp and text patterns have an SQL form`);
        }
        const wellFormed = wellFormedTimestamp(c, fs.pattern);
        checks.push({
          field,
          bad: `${present} AND NOT (${wellFormed})`,
          message: msg(messages.timestamp(s, field, HOLE), shown(c)),
        });
      }
      break;
    }
    case "boolean":
      checks.push({
        field,
        bad: `${present} AND ${c} NOT IN ('true', 'false')`,
        message: msg(messages.type(s, field, fs, HOLE), shown(c)),
      });
      break;
    case "number":
    case "integer": {
      const notNum = `${present} AND NOT ${isNum(c)}`;
      checks.push({ field, bad: notNum, message: msg(messages.type(s, field, fs, HOLE), shown(c)) });
      if (fs.type === "integer") {
        checks.push({
          field,
          bad: `${present} AND ${isNum(c)} AND ${num(c)} <> trunc(${num(c)})`,
          message: msg(messages.type(s, field, fs, HOLE), bounded(c)),
        });
      }
      if (fs.minimum !== undefined) {
        checks.push({
          field,
          bad: `${present} AND ${num(c)} < ${fs.minimum}`,
          message: msg(messages.minimum(s, field, fs.minimum, HOLE), bounded(c)),
        });
      }
      if (typeof fs.maximum === "number") {
        checks.push({
          field,
          bad: `${present} AND ${num(c)} > ${fs.maximum}`,
          message: msg(messages.maximum(s, field, fs.maximum, HOLE), bounded(c)),
        });
      } else if (fs.maximum !== undefined) {
        if (scopeSql !== undefined) throw new Error(`${field}: a cross-field rule needs a fixed scope`);
        const other = dataPointerField(fs.maximum.$data);
        const o = ident(other);
        // Like ajv with $data: the rule applies only when the referenced field is a number.
        checks.push({
          field,
          bad: `${present} AND ${isNum(o)} AND ${num(c)} > ${num(o)}`,
          message: msg(messages.maximumField(s, field, other, HOLE, HOLE), bounded(c), bounded(o)),
        });
      }
      break;
    }
    case "array": {
      const items = `string_split(${c}, ${lit(LIST_SEPARATOR)})`;
      checks.push({
        field,
        bad: `${present} AND list_contains(${items}, '')`,
        message: msg(messages.emptyItem(s, field)),
      });
      if (fs.maxItems !== undefined) {
        checks.push({
          field,
          bad: `${present} AND len(${items}) > ${fs.maxItems}`,
          message: msg(messages.maxItems(s, field, fs.maxItems, HOLE), `CAST(len(${items}) AS VARCHAR)`),
        });
      }
      const it = fs.items;
      if (it?.maxLength !== undefined) {
        checks.push({
          field,
          bad: `${present} AND len(list_filter(${items}, x -> length(x) > ${it.maxLength})) > 0`,
          message: msg(messages.itemTooLong(s, field, it.maxLength)),
        });
      }
      if (it?.pattern === TEXT_PATTERN) {
        checks.push({
          field,
          bad: `${present} AND len(list_filter(${items}, x -> ${hasNul("x")})) > 0`,
          message: msg(messages.itemText(s, field)),
        });
      }
      break;
    }
  }
  return [...checks, ...extensionChecks(scope, field, fs, scopeSql)];
}

/**
 * Our keywords (x-plausible-time, x-max-bytes), applied like validateEvent applies them: only to a
 * present value on which no other rule of the field failed (`clean`: every other rule, passed).
 */
function extensionChecks(scope: string, field: string, fs: FieldSchema, scopeSql?: string): Rule[] {
  const c = ident(field);
  const { s, msg } = scoped(scope, scopeSql);
  const items = `string_split(${c}, ${lit(LIST_SEPARATOR)})`;
  const ok: string[] = [`${c} IS NOT NULL`];
  if (fs.type === "string") {
    if (fs.minLength !== undefined && fs.minLength > 0) ok.push(`length(${c}) >= ${fs.minLength}`);
    if (fs.maxLength !== undefined) ok.push(`length(${c}) <= ${fs.maxLength}`);
    if (fs.pattern === TEXT_PATTERN) ok.push(`NOT ${hasNul(c)}`);
    else if (fs.pattern !== undefined) ok.push(wellFormedTimestamp(c, fs.pattern));
  } else if (fs.type === "array") {
    ok.push(`NOT list_contains(${items}, '')`);
    if (fs.maxItems !== undefined) ok.push(`len(${items}) <= ${fs.maxItems}`);
    if (fs.items?.maxLength !== undefined)
      ok.push(`len(list_filter(${items}, x -> length(x) > ${fs.items.maxLength})) = 0`);
    if (fs.items?.pattern === TEXT_PATTERN) ok.push(`len(list_filter(${items}, x -> ${hasNul("x")})) = 0`);
  }
  const clean = ok.join(" AND ");
  const out: Rule[] = [];
  if (fs["x-plausible-time"] === true) {
    // The bounds depend on the receive time: these two checks are made per run.
    const us = `epoch_us(TRY_CAST(${c} AS TIMESTAMPTZ))`;
    out.push((b) => ({
      field,
      bad: `${clean} AND ${us} < ${Math.trunc(b.minUs)}`,
      message: msg(messages.timeMin(s, field, b, HOLE), shown(c)),
    }));
    out.push((b) => ({
      field,
      bad: `${clean} AND ${us} > ${Math.trunc(b.maxUs)}`,
      message: msg(messages.timeMax(s, field, b, HOLE), shown(c)),
    }));
  }
  const maxBytes = fs["x-max-bytes"];
  if (maxBytes !== undefined) {
    out.push({
      field,
      bad: `${clean} AND strlen(${c}) > ${maxBytes}`,
      message: msg(messages.maxBytes(s, field, maxBytes, HOLE), `CAST(strlen(${c}) AS VARCHAR)`),
    });
  }
  const itemBytes = fs.items?.["x-max-bytes"];
  if (itemBytes !== undefined) {
    out.push({
      field,
      bad: `${clean} AND len(list_filter(${items}, x -> strlen(x) > ${itemBytes})) > 0`,
      message: msg(messages.itemTooManyBytes(s, field, itemBytes)),
    });
  }
  return out;
}

const wellFormedTimestamp = (c: string, pattern: string): string =>
  `regexp_full_match(${c}, ${lit(pattern)}) AND TRY_CAST(${c} AS TIMESTAMPTZ) IS NOT NULL`;

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

/**
 * The scope of a field's messages: a fixed type name, or (scopeSql) the row's type column, spliced
 * into the message's leading hole.
 */
function scoped(
  scope: string,
  scopeSql: string | undefined,
): { s: string; msg: (rendered: string, ...values: string[]) => string } {
  if (scopeSql === undefined)
    return { s: scope, msg: (rendered, ...values) => template(rendered, ...values) };
  return { s: HOLE, msg: (rendered, ...values) => template(rendered, scopeSql, ...values) };
}

/**
 * Fields every event type declares alike (same schema, required-ness and position: event_id,
 * student_id, timestamp, ...). In a file of mixed types their rules are emitted once, with the
 * type column as the message scope, instead of once per type: the SQL stays half the size, and
 * DuckDB's planning time grows with it.
 */
const COMMON_FIELDS: ReadonlySet<string> = (() => {
  const [first, ...rest] = EVENT_TYPES.map((t) => EVENT_SCHEMAS[t]);
  const out = new Set<string>();
  const keys = Object.keys(first!.properties);
  for (const [i, f] of keys.entries()) {
    if (f === "type") continue;
    const same = rest.every((sc) => {
      const k = Object.keys(sc.properties);
      return (
        k[i] === f &&
        JSON.stringify(sc.properties[f]) === JSON.stringify(first!.properties[f]) &&
        sc.required.includes(f) === first!.required.includes(f)
      );
    });
    if (same) out.add(f);
  }
  return out;
})();

const ruleCache = new Map<string, Rule[]>();

/** The rules of a type's fields (`which`), cached: the bounded ones are made per run. */
function rulesFor(type: EventType, which: "all" | "own" | "common", typeSql?: string): Rule[] {
  const key = `${type}\u0000${which}\u0000${typeSql ?? ""}`;
  let rules = ruleCache.get(key);
  if (!rules) {
    const schema = EVENT_SCHEMAS[type];
    rules = [];
    for (const [field, fs] of Object.entries(schema.properties)) {
      if (field === "type") continue;
      if (which === "own" && COMMON_FIELDS.has(field)) continue;
      if (which === "common" && !COMMON_FIELDS.has(field)) continue;
      const scopeSql = which === "common" ? typeSql : undefined;
      rules.push(...fieldChecks(type, field, fs, schema.required.includes(field), scopeSql));
    }
    ruleCache.set(key, rules);
  }
  return rules;
}

const withBounds = (rules: readonly Rule[], bounds: TimeBounds): Check[] =>
  rules.map((c) => (typeof c === "function" ? c(bounds) : c));

/** Every rule of one event type, compiled from its schema, with the time bounds of this run. */
export function checksFor(type: EventType, bounds: TimeBounds): Check[] {
  return withBounds(rulesFor(type, "all"), bounds);
}

/**
 * SQL boolean: a value of `field` passes every rule fieldChecks and extensionChecks make for it
 * (NULL passes when the field is optional). The same rules as `NOT (any bad)`, written as one
 * conjunction so each cast and the timestamp regex run once per row: the OR of "bad" checks
 * evaluates the timestamp regex 3 times and its TIMESTAMPTZ cast 5 times (half the CPU of a CSV
 * load). test/features/ingestSql.int.test.ts checks it against issuesSql (no issue = valid).
 */
function fieldOk(field: string, fs: FieldSchema, required: boolean, bounds: TimeBounds): string {
  const c = ident(field);
  const conds: string[] = [];
  const n = num(c);
  switch (fs.type) {
    case "string": {
      if (fs.const !== undefined) break;
      // length() counts characters (a scan); strlen() is the byte length, stored with the string.
      // Characters <= bytes, so the byte test settles both bounds for most values.
      if (fs.minLength !== undefined && fs.minLength > 0)
        conds.push(fs.minLength === 1 ? `strlen(${c}) >= 1` : `length(${c}) >= ${fs.minLength}`);
      if (fs.maxLength !== undefined)
        conds.push(`(strlen(${c}) <= ${fs.maxLength} OR length(${c}) <= ${fs.maxLength})`);
      if (fs.pattern === TEXT_PATTERN) conds.push(`NOT ${hasNul(c)}`);
      else if (fs.pattern !== undefined) {
        if (fs.pattern !== TIMESTAMP_PATTERN || fs.format !== "date-time") {
          throw new Error(`${field}: only the timestamp and text patterns have an SQL form`);
        }
        conds.push(`regexp_full_match(${c}, ${lit(fs.pattern)})`);
        if (fs["x-plausible-time"] !== true) conds.push(`TRY_CAST(${c} AS TIMESTAMPTZ) IS NOT NULL`);
      }
      break;
    }
    case "boolean":
      conds.push(`${c} IN ('true', 'false')`);
      break;
    case "number":
    case "integer": {
      conds.push(isNum(c));
      if (fs.type === "integer") conds.push(`${n} = trunc(${n})`);
      if (fs.minimum !== undefined) conds.push(`${n} >= ${fs.minimum}`);
      if (typeof fs.maximum === "number") conds.push(`${n} <= ${fs.maximum}`);
      else if (fs.maximum !== undefined) {
        const o = ident(dataPointerField(fs.maximum.$data));
        conds.push(`(NOT ${isNum(o)} OR ${n} <= ${num(o)})`);
      }
      break;
    }
    case "array": {
      const items = `string_split(${c}, ${lit(LIST_SEPARATOR)})`;
      conds.push(`NOT list_contains(${items}, '')`);
      if (fs.maxItems !== undefined) conds.push(`len(${items}) <= ${fs.maxItems}`);
      if (fs.items?.maxLength !== undefined)
        conds.push(`len(list_filter(${items}, x -> length(x) > ${fs.items.maxLength})) = 0`);
      if (fs.items?.pattern === TEXT_PATTERN)
        conds.push(`len(list_filter(${items}, x -> ${hasNul("x")})) = 0`);
      const itemBytes = fs.items?.["x-max-bytes"];
      if (itemBytes !== undefined)
        conds.push(`len(list_filter(${items}, x -> strlen(x) > ${itemBytes})) = 0`);
      break;
    }
  }
  if (fs["x-plausible-time"] === true) {
    // One cast: NULL (not a time) fails the range test too.
    conds.push(
      `coalesce(epoch_us(TRY_CAST(${c} AS TIMESTAMPTZ)) BETWEEN ${Math.trunc(bounds.minUs)} AND ${Math.trunc(bounds.maxUs)}, false)`,
    );
  }
  if (fs["x-max-bytes"] !== undefined) conds.push(`strlen(${c}) <= ${fs["x-max-bytes"]}`);
  const present = conds.length === 0 ? "true" : conds.join(" AND ");
  return required ? `(${c} IS NOT NULL AND ${present})` : `(${c} IS NULL OR (${present}))`;
}

/** The conjunction of fieldOk over a type's fields (`which`, as rulesFor selects them). */
function typeOk(type: EventType, which: "all" | "own" | "common", bounds: TimeBounds): string {
  const schema = EVENT_SCHEMAS[type];
  const parts: string[] = [];
  for (const [field, fs] of Object.entries(schema.properties)) {
    if (field === "type") continue;
    if (which === "own" && COMMON_FIELDS.has(field)) continue;
    if (which === "common" && !COMMON_FIELDS.has(field)) continue;
    parts.push(fieldOk(field, fs, schema.required.includes(field), bounds));
  }
  return parts.length === 0 ? "true" : parts.join(" AND ");
}

/**
 * SQL boolean: the row satisfies its type's contract. `typeSql` is the type column; `fixedType`
 * when the whole file has one type (only that type's checks are emitted).
 */
export function validSql(typeSql: string, bounds: TimeBounds, fixedType?: EventType): string {
  if (fixedType) return `coalesce(${typeOk(fixedType, "all", bounds)}, false)`;
  const common = typeOk(EVENT_TYPES[0], "common", bounds);
  const arms = EVENT_TYPES.map((t) => `WHEN ${lit(t)} THEN ${typeOk(t, "own", bounds)}`);
  const known = `${typeSql} IN (${EVENT_TYPES.map(lit).join(", ")})`;
  return `coalesce(${known} AND ${common} AND CASE ${typeSql} ${arms.join(" ")} ELSE false END, false)`;
}

/**
 * SQL list of STRUCT(pos, reason, field): every violation of the row (empty for valid rows), sorted
 * by the field's position in the schema and then the message, as features/deadLetters.ts sorts
 * the issues of a JSON record.
 */
export function issuesSql(typeSql: string, bounds: TimeBounds, fixedType?: EventType): string {
  const listOf = (t: EventType, checks: readonly Check[]) => {
    const order = Object.keys(EVENT_SCHEMAS[t].properties);
    return `[${checks
      .map(
        (c) =>
          `CASE WHEN ${c.bad} THEN {'pos': ${order.indexOf(c.field)}, 'reason': ${c.message}, 'field': ${lit(c.field)}} END`,
      )
      .join(", ")}]`;
  };
  const sorted = (list: string) => `list_sort(list_filter(${list}, x -> x IS NOT NULL))`;
  if (fixedType) return sorted(listOf(fixedType, checksFor(fixedType, bounds)));
  const first = EVENT_TYPES[0];
  const common = listOf(first, withBounds(rulesFor(first, "common", typeSql), bounds));
  const arms = EVENT_TYPES.map(
    (t) => `WHEN ${lit(t)} THEN ${listOf(t, withBounds(rulesFor(t, "own"), bounds))}`,
  );
  const missing = lit(`event.type is required; allowed types: ${EVENT_TYPES.join(", ")}`);
  const wrong = template(`event.type must be one of ${EVENT_TYPES.join(", ")} (got ${HOLE})`, shown(typeSql));
  const unknown = `CASE WHEN ${typeSql} IS NULL THEN ${missing} ELSE ${wrong} END`;
  const known = `${typeSql} IN (${EVENT_TYPES.map(lit).join(", ")})`;
  return sorted(
    `CASE WHEN ${known} THEN list_concat(${common}, CASE ${typeSql} ${arms.join(" ")} END) ELSE [{'pos': ${UNKNOWN_FIELD_POSITION}, 'reason': ${unknown}, 'field': 'type'}] END`,
  );
}

/** The one dead_letter field of a row from its sorted issuesSql list `l`: the first problem's field. */
export const deadLetterFieldSql = (l: string): string => `${l}[1].field`;

/** The one dead_letter reason of a row from its sorted issuesSql list `l`: every message, joined by "; ". */
export const deadLetterReasonSql = (l: string): string =>
  `array_to_string(list_transform(${l}, x -> x.reason), '; ')`;
