/**
 * DuckDB orders VARCHAR by their UTF-8 bytes (no collation), i.e. by code point. JavaScript's `<` on strings
 * compares UTF-16 code units, which differs for characters above U+FFFF (stored as surrogate pairs,
 * 0xD800-0xDFFF) against U+E000-U+FFFF. `compareUtf8` gives DuckDB's order, for rows read unordered and
 * sorted in JS (storage/revisionTable.ts).
 */
export function compareUtf8(a: string, b: string): number {
  if (a === b) return 0;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    // Surrogates (a code point above U+FFFF) sort after every other code unit.
    if (x >= 0xd800 && y >= 0xd800) {
      const xs = x <= 0xdfff;
      const ys = y <= 0xdfff;
      if (xs !== ys) return xs ? 1 : -1;
    }
    return x - y;
  }
  return a.length - b.length;
}
