import { createRequire } from "node:module";
import fc from "fast-check";
import type pg from "pg";
import { describe, expect, it } from "vitest";
import { parsePgTimestamp } from "../../storage/pgTimestamp.ts";

// The driver's own parser of TIMESTAMPTZ text (pg-types / postgres-date), given the value with "+00":
// the same instant as our TIMESTAMP read as UTC.
const driver = (createRequire(import.meta.url)("pg") as typeof pg).types.getTypeParser(1184, "text") as (
  v: string,
) => Date;
// What storage/postgres.ts did before: ISO text through Date's string parser.
const generic = (v: string) => new Date(`${v.replace(" ", "T")}Z`);

/** PostgreSQL's text output of a TIMESTAMP: 4-digit (or longer) year, fraction without trailing zeros. */
function pgText(ms: number, micros: number): string {
  const d = new Date(ms);
  const p = (x: number, w = 2) => String(x).padStart(w, "0");
  const frac = d.getUTCMilliseconds() * 1000 + micros;
  const f = frac === 0 ? "" : `.${p(frac, 6).replace(/0+$/, "")}`;
  return `${p(d.getUTCFullYear(), 4)}-${p(d.getUTCMonth() + 1)}-${p(d.getUTCDate())} ${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())}${f}`;
}

const time = (v: Date) => v.getTime();

describe("parsePgTimestamp", () => {
  it("known answers: whole seconds, fractions of 1-6 digits, leap day, year edges, fallbacks", () => {
    expect(parsePgTimestamp("2026-01-05 10:00:00").toISOString()).toBe("2026-01-05T10:00:00.000Z");
    expect(parsePgTimestamp("2026-01-05 10:00:00.5").toISOString()).toBe("2026-01-05T10:00:00.500Z");
    expect(parsePgTimestamp("2026-01-05 10:00:00.123456").toISOString()).toBe("2026-01-05T10:00:00.123Z");
    expect(parsePgTimestamp("2024-02-29 23:59:59.999").toISOString()).toBe("2024-02-29T23:59:59.999Z");
    expect(parsePgTimestamp("1000-01-01 00:00:00").getTime()).toBe(Date.UTC(1000, 0, 1));
    // Years under 1000 and past 9999 go through the generic parser: still right.
    expect(parsePgTimestamp("0044-03-15 12:00:00").getUTCFullYear()).toBe(44);
    expect(Number.isNaN(parsePgTimestamp("infinity").getTime())).toBe(true);
    // Out-of-range fields are not rolled over into the next month: same as the generic parser (invalid).
    expect(Number.isNaN(parsePgTimestamp("2023-02-29 00:00:00").getTime())).toBe(
      Number.isNaN(generic("2023-02-29 00:00:00").getTime()),
    );
  });

  it("equals the driver's parser and the generic one on any timestamp of years 1-9999 (fast-check)", () => {
    const year1 = new Date(0);
    year1.setUTCFullYear(1, 0, 1); // Date.UTC(1, ...) would mean 1901
    fc.assert(
      fc.property(
        fc.integer({ min: year1.getTime(), max: Date.UTC(9999, 11, 31, 23, 59, 59, 999) }),
        fc.integer({ min: 0, max: 999 }),
        (ms, micros) => {
          const text = pgText(ms, micros);
          const got = time(parsePgTimestamp(text));
          expect(got).toBe(time(generic(text)));
          expect(got).toBe(time(driver(`${text}+00`)));
        },
      ),
      { numRuns: 20_000 },
    );
  });

  it("equals the generic parser on near-miss texts (wrong separators, digits, lengths)", () => {
    const chars = fc.constantFrom(..."0123456789-: .TZx".split(""));
    fc.assert(
      fc.property(
        fc.integer({ min: Date.UTC(1000, 0, 1), max: Date.UTC(9999, 0, 1) }),
        fc.nat(25),
        chars,
        (ms, at, c) => {
          const good = pgText(ms, 0);
          const text = good.slice(0, at) + c + good.slice(at + 1);
          const a = time(parsePgTimestamp(text));
          const b = time(generic(text));
          expect(Number.isNaN(a) ? "NaN" : a).toBe(Number.isNaN(b) ? "NaN" : b);
        },
      ),
      { numRuns: 5000 },
    );
  });

  it("repeated texts (the few kept ones) give the generic parser's instant, each time a new Date", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.oneof(
            fc.constantFrom(
              "2026-01-05 10:00:00",
              "2026-01-05 10:00:00.5",
              "",
              "infinity",
              "2023-02-29 00:00:00",
            ),
            fc
              .tuple(
                fc.integer({ min: Date.UTC(1000, 0, 1), max: Date.UTC(9999, 0, 1) }),
                fc.integer({ min: 0, max: 999 }),
              )
              .map(([ms, us]) => pgText(ms, us)),
          ),
          { minLength: 1, maxLength: 40 },
        ),
        (texts) => {
          const seen = new Set<Date>();
          for (const t of [...texts, ...texts.slice().reverse(), ...texts]) {
            const d = parsePgTimestamp(t);
            expect(Object.is(d.getTime(), generic(t).getTime())).toBe(true);
            expect(seen.has(d)).toBe(false);
            seen.add(d);
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});
