/**
 * PostgreSQL's text form of TIMESTAMP WITHOUT TIME ZONE ("2026-01-05 10:00:00" or with a fraction of up to
 * six digits, "2026-01-05 10:00:00.123456"), read as UTC into a Date. The serving reads return two such
 * columns per row (as_of, last_updated), so the cold GET /mastery of a 100-topic student parses ~400 of them;
 * the generic way (string replace + Date's string parser) costs ~2-3x this digit-by-digit read
 * (docs/benchmarks.md, serve8). Anything else (years before 1000 or after 9999, BC, infinity, another
 * layout) goes through the generic parser, so every input gives what `new Date("<date>T<time>Z")` gives.
 */
export function parsePgTimestamp(text: string): Date {
  // Rows of one scoring run share their times: the last few texts and their instants are kept (a fresh Date
  // is returned each time all the same, as callers may keep or change it).
  for (let i = 0; i < RECENT; i++) if (recentText[i] === text) return new Date(recentMs[i]!);
  const ms = parseTimestampMs(text);
  recentText[next] = text;
  recentMs[next] = ms;
  next = (next + 1) % RECENT;
  return new Date(ms);
}

/** "" (the initial slots) parses to an invalid Date, as NaN gives. */
const RECENT = 4;
const recentText: string[] = new Array<string>(RECENT).fill("");
const recentMs = new Float64Array(RECENT).fill(Number.NaN);
let next = 0;

function parseTimestampMs(text: string): number {
  const n = text.length;
  // "YYYY-MM-DD HH:MM:SS" is 19 characters; ".f" to ".ffffff" adds 2-7.
  if (
    (n === 19 || (n >= 21 && n <= 26 && text.charCodeAt(19) === 46)) &&
    text.charCodeAt(4) === 45 &&
    text.charCodeAt(7) === 45 &&
    text.charCodeAt(10) === 32 &&
    text.charCodeAt(13) === 58 &&
    text.charCodeAt(16) === 58
  ) {
    const year = digits(text, 0, 4);
    const month = digits(text, 5, 2);
    const day = digits(text, 8, 2);
    const hour = digits(text, 11, 2);
    const minute = digits(text, 14, 2);
    const second = digits(text, 17, 2);
    // Milliseconds: the first three fraction digits (Date keeps no more, and truncates the rest).
    let ms = 0;
    let ok = true;
    for (let i = 20; i < 23; i++) {
      ms *= 10;
      if (i < n) {
        const d = text.charCodeAt(i) - 48;
        if (d < 0 || d > 9) ok = false;
        ms += d;
      }
    }
    for (let i = 23; i < n; i++) {
      const d = text.charCodeAt(i) - 48;
      if (d < 0 || d > 9) ok = false;
    }
    if (
      ok &&
      year >= 1000 &&
      month >= 1 &&
      month <= 12 &&
      day >= 1 &&
      day <= daysIn(year, month) &&
      hour >= 0 &&
      hour <= 23 &&
      minute >= 0 &&
      minute <= 59 &&
      second >= 0 &&
      second <= 59
    )
      return Date.UTC(year, month - 1, day, hour, minute, second, ms);
  }
  return new Date(`${text.replace(" ", "T")}Z`).getTime();
}

/** The decimal number of `len` ASCII digits at `at`; -1 if any is not a digit. */
function digits(text: string, at: number, len: number): number {
  let v = 0;
  for (let i = at; i < at + len; i++) {
    const d = text.charCodeAt(i) - 48;
    if (d < 0 || d > 9) return -1;
    v = v * 10 + d;
  }
  return v;
}

function daysIn(year: number, month: number): number {
  if (month === 2) return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0 ? 29 : 28;
  return month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31;
}
