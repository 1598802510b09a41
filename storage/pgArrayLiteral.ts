/**
 * A one-dimensional PostgreSQL array parameter as its text literal (`{"a","b",NULL}`), built by us instead
 * of node-postgres: the same text its own conversion (pg/lib/utils.js `arrayString`) sends for strings,
 * finite numbers, booleans and null, so the server receives the very same bytes, but cheaper where a POST
 * spends it: node-postgres runs two regular-expression replaces on every element, which for the score rows'
 * ~300-600-byte JSON explanations (full of `"`) was ~5% of the POST's server CPU (docs/benchmarks.md "The
 * POST's CPU, round 4 (post16, 2026-12-05)"). Pass the result as the parameter of a `$n::type[]` cast.
 *
 * An element is quoted with `"` and `\` escaped by a backslash. For a string without control characters
 * and without surrogate code units, `JSON.stringify` writes exactly that (it escapes only `"`, `\`, control
 * characters and lone surrogates), natively and in one pass; so an array of strings whose JSON holds no
 * other escape is that JSON with braces for brackets (a micro-bench of 300 explanations, the literal and its byte length: 190-390 µs
 * against node-postgres' 680-850); other arrays go element by element, a string without `"` or `\`
 * quoted as it is, any other through the two replaces.
 */
export type PgArrayElement = string | number | boolean | null;

// Characters JSON.stringify would write other than as PostgreSQL's array quoting does.
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what JSON escapes otherwise
const JSON_DIFFERS = /[\u0000-\u001f\ud800-\udfff]/;
const NEEDS_ESCAPE = /["\\]/;
// In JSON.stringify's output: an escape of a control character (\b \f \n \r \t \u00XX) or a lone surrogate (\uDXXX).
const JSON_ESCAPED = /\\[bfnrtu]/;

/** One element as node-postgres quotes it (escapeElement). */
export function pgArrayElement(s: string): string {
  if (!NEEDS_ESCAPE.test(s)) return `"${s}"`;
  if (!JSON_DIFFERS.test(s)) return JSON.stringify(s);
  return `"${s.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;
}

/** The array literal of `values` (null and undefined elements as NULL). */
export function pgArrayLiteral(values: readonly (PgArrayElement | undefined)[]): string {
  // All strings that JSON quotes as PostgreSQL does (the explanations' column): the whole array in one
  // native pass, its brackets swapped for braces.
  if (values.length > 0 && values.every((v) => typeof v === "string")) {
    const json = JSON.stringify(values);
    // JSON wrote no escape but \" and \\ (one scan of the output, not one per element; a backslash that
    // merely precedes such a letter sends the array the long way, never a wrong text).
    if (!JSON_ESCAPED.test(json)) return `{${json.slice(1, -1)}}`;
  }
  let out = "{";
  for (let i = 0; i < values.length; i++) {
    if (i > 0) out += ",";
    const v = values[i];
    if (v === null || v === undefined) out += "NULL";
    else out += pgArrayElement(typeof v === "string" ? v : String(v));
  }
  return `${out}}`;
}
